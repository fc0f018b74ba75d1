"""Random spike masking (RSM) in hardware: the 32-bit Galois LFSR and the mask it drives."""

from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from est.hw.synapse import ceil_div
from est.sim.golden import LFSR_FEEDBACK


def lfsr_steps(m: Module, state, steps: int, name: str):
    """``steps`` Galois steps of :func:`est.sim.golden.lfsr_step` as combinational logic (XOR
    gates only): shift right, XOR the feedback mask where the bit shifted out was 1. Each step
    is its own signal, so the logic grows linearly with ``steps``."""
    for k in range(steps):
        nxt = Signal(32, name=f"{name}_{k}")
        m.d.comb += nxt.eq((state >> 1) ^ (state[0].replicate(32) & LFSR_FEEDBACK))
        state = nxt
    return state


class SpikeMask(wiring.Component):
    """Drops spikes at random, bit-identical to :func:`est.sim.golden.mask_step`.

    Hardware: one 32-bit state register (loaded with ``seed`` by reset), ``lanes`` unrolled
    8-step LFSR stages (XOR gates), ``lanes`` 8-bit comparators against the constant threshold,
    and an ``n``-bit vector register; ``threshold == 0`` builds a plain register (no LFSR).

    Latency: one cycle to accept the vector, ``ceil(n / lanes)`` cycles to draw, then the
    masked vector is offered on ``o`` until taken; ``i`` is ready again once it is.

    Ports: ``i`` and ``o`` streams of ``n`` fields of ``bits`` bits (spikes, or SEW sums: a
    dropped channel becomes 0), channel c in field c.
    """

    def __init__(self, n: int, threshold: int, seed: int, lanes: int = 1, bits: int = 1):
        if not 0 <= threshold <= 256:
            raise ValueError(f"threshold must be 0..256, got {threshold}")
        if not 1 <= seed < 1 << 32:
            raise ValueError(f"seed must be a nonzero 32-bit value, got {seed}")
        self.n, self.threshold, self.seed, self.bits = n, threshold, seed, bits
        self.lanes = max(1, min(lanes, n))
        super().__init__({"i": In(stream.Signature(unsigned(n * bits))),
                          "o": Out(stream.Signature(unsigned(n * bits)))})

    def elaborate(self, platform):
        m = Module()
        n, lanes, bits = self.n, self.lanes, self.bits
        x = Signal(n * bits)
        busy = Signal()
        m.d.comb += self.i.ready.eq(~busy)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [self.o.valid.eq(0), busy.eq(0)]
        if self.threshold == 0:
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(1), busy.eq(1)]
            return m

        state = Signal(32, init=self.seed)
        steps = ceil_div(n, lanes)
        step = Signal(range(steps + 1))
        drawing = Signal()
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [x.eq(self.i.payload), busy.eq(1), drawing.eq(1), step.eq(0)]
        with m.If(drawing):
            s, keep = state, []
            for lane in range(lanes):
                s = lfsr_steps(m, s, 8, f"draw{lane}")
                keep.append(s[:8] >= self.threshold)
            m.d.sync += state.eq(s)
            for c in range(n):  # channel c takes draw c % lanes of step c // lanes
                with m.If((step == c // lanes) & ~keep[c % lanes]):
                    m.d.sync += x.word_select(c, bits).eq(0)
            with m.If(step == steps - 1):
                m.d.sync += drawing.eq(0)
                # the last step may cover fewer than ``lanes`` channels: undo the extra draws
                spare = steps * lanes - n
                if spare:
                    m.d.sync += state.eq(lfsr_steps(m, state, 8 * (lanes - spare), "tail"))
            m.d.sync += step.eq(step + 1)
        with m.If(busy & ~drawing & ~self.o.valid & (step == steps)):
            m.d.sync += [self.o.payload.eq(x), self.o.valid.eq(1), step.eq(0)]
        return m
