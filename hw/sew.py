"""SEW residual joins and the CPG positional table as gateware (docs/semantics.md 8.2)."""

import numpy as np
from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from est.compiler.ops.table import Table
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
    """The CPG-PE table as a ROM read by a phase accumulator: bin ``t`` gets row
    ``acc >> FRAC``, then ``acc`` moves on by ``advance`` and wraps at ``P << FRAC``
    (``advance`` ``1 << FRAC``, the default: row ``t mod P``); ``acc`` starts at ``start``;
    ``FRAC`` is :attr:`~est.compiler.ops.table.Table.FRAC`.

    Hardware: a ROM of ``P`` words of ``n * bits`` bits (block RAM or logic; ``bits`` the
    widest value's, 1 for spikes), an accumulator register of ``FRAC`` + log2 ``P`` bits reset
    to ``start`` with the stream, its adder and the wrap's comparator and subtractor (with the
    default advance the fraction bits stay 0 and the constants fold: a row counter). Latency: the
    row of the next bin is offered on ``o`` one cycle after the previous one is taken.

    Ports: ``o`` stream of rows of ``n`` values of ``bits`` (value j at bits
    ``[j * bits, (j + 1) * bits)``), one per bin.
    """

    def __init__(self, table: np.ndarray, advance: int = 1 << Table.FRAC, start: int = 0):
        self.table = np.asarray(table, dtype=np.int64)
        self.positions, self.neurons = self.table.shape
        self.bits = max(1, int(self.table.max()).bit_length())
        self.advance, self.start = advance, start
        super().__init__({"o": Out(stream.Signature(unsigned(self.neurons * self.bits)))})

    def elaborate(self, platform):
        m = Module()
        frac, width = Table.FRAC, self.neurons * self.bits
        words = [sum(int(v) << (j * self.bits) for j, v in enumerate(row)) for row in self.table]
        # every row the accumulator's register can hold has a word (the unreachable ones 0),
        # so the read data is defined in every state the formal check starts from
        row_bits = max(1, (self.positions - 1).bit_length())
        m.submodules.rom = rom = memory.Memory(shape=unsigned(width), depth=1 << row_bits,
                                               init=words + [0] * ((1 << row_bits) - len(words)))
        rd = rom.read_port()
        acc = Signal(frac + row_bits, init=self.start)
        total = acc + self.advance
        fetched = Signal()  # rd.data holds row ``acc >> FRAC``
        m.d.comb += [rd.addr.eq(acc[frac:]), self.o.payload.eq(rd.data),
                     self.o.valid.eq(fetched)]
        m.d.sync += fetched.eq(1)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [fetched.eq(0),
                         acc.eq(Mux(total[frac:] >= self.positions,
                                    total - (self.positions << frac), total))]
        return m
