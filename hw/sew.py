"""SEW residual joins and the CPG positional table as gateware (docs/semantics.md 8.2)."""

import numpy as np
from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from est.sim.golden import sew_bits


class SEWJoin(wiring.Component):
    """``out`` and ``skip`` vectors of one bin in, their SEW combination out: ADD ``out + skip``
    (adders), AND ``out & skip``, IAND ``~out & skip`` (gates), ``none`` passes ``out``.

    Hardware: the per-channel operators and an output register. Latency: one cycle after both
    inputs are valid; both are taken together.

    Ports: ``out`` stream of ``n``-bit spike vectors; ``skip`` stream of ``n`` fields of
    ``skip_bits`` (1 for spikes); ``o`` stream of ``n`` fields of :func:`~est.sim.golden.sew_bits`.
    """

    def __init__(self, n: int, op: str, skip_bits: int = 1):
        if op not in ("add", "and", "iand", "none"):
            raise ValueError(f"op must be add, and, iand or none, got {op!r}")
        if op in ("and", "iand") and skip_bits != 1:
            raise ValueError("AND and IAND take spikes (skip_bits 1)")
        self.n, self.op, self.skip_bits = n, op, skip_bits
        self.out_bits = sew_bits(op, skip_bits) if op != "none" else 1
        super().__init__({
            "out": In(stream.Signature(unsigned(n))),
            "skip": In(stream.Signature(unsigned(n * skip_bits))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(self.out_bits), n))),
        })

    def elaborate(self, platform):
        m = Module()
        take = self.out.valid & self.skip.valid & (~self.o.valid | self.o.ready)
        m.d.comb += [self.out.ready.eq(take), self.skip.ready.eq(take)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += self.o.valid.eq(1)
            for c in range(self.n):
                a = self.out.payload[c]
                b = self.skip.payload.word_select(c, self.skip_bits)
                value = {"add": a + b, "and": a & b, "iand": ~a & b, "none": a}[self.op]
                m.d.sync += self.o.payload[c].eq(value)
        return m


class CPGTable(wiring.Component):
    """The CPG-PE table as a ROM read by a position counter: bin ``t`` gets row ``t mod P``.

    Hardware: a ROM of ``P`` words of ``C`` bits (block RAM or logic) and a position counter
    reset to 0 with the stream. Latency: the row of the next bin is offered on ``o`` one cycle
    after the previous one is taken.

    Ports: ``o`` stream of ``C``-bit rows (bit j = CPG neuron j), one per bin.
    """

    def __init__(self, table: np.ndarray):
        self.table = np.asarray(table, dtype=np.int64)
        self.positions, self.neurons = self.table.shape
        super().__init__({"o": Out(stream.Signature(unsigned(self.neurons)))})

    def elaborate(self, platform):
        m = Module()
        words = [sum(int(b) << j for j, b in enumerate(row)) for row in self.table]
        # every address the counter's register can hold has a word (the unreachable ones 0),
        # so the read data is defined in every state the formal check starts from
        depth = 1 << max(1, (self.positions - 1).bit_length())
        m.submodules.rom = rom = memory.Memory(shape=unsigned(self.neurons), depth=depth,
                                               init=words + [0] * (depth - len(words)))
        rd = rom.read_port()
        pos = Signal(range(self.positions))
        fetched = Signal()  # rd.data holds row ``pos``
        m.d.comb += [rd.addr.eq(pos), self.o.payload.eq(rd.data), self.o.valid.eq(fetched)]
        m.d.sync += fetched.eq(1)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [fetched.eq(0), pos.eq(Mux(pos == self.positions - 1, 0, pos + 1))]
        return m
