"""``maxpool``: max-pooling over time, per channel, of the last ``window`` bins of an unsigned
vector: ``out_t[c] = max(x_t[c], x_{t-1}[c], ..., x_{t-window+1}[c])``, bins before the stream
start counting as 0 (for spikes: did the channel fire in the window).

Hardware: ``MaxOverTime`` (:func:`max_over_time`), ``window - 1`` registers of past vectors
(cleared by reset), a comparator tree per channel and an output register; latency one cycle.

This operation is the worked example of docs/adding_a_block.md: everything it needs is in this
module and its registry line in ``compiler/ops/__init__.py``.
"""

from dataclasses import dataclass
from functools import cache

from est.compiler.graph import IRError, Op, check_vector
from est.sim import golden


@cache
def max_over_time():
    """The component class, built on first use (graph tools load this module without Amaranth)."""
    from amaranth import Module, Mux, Signal, unsigned
    from amaranth.lib import stream, wiring
    from amaranth.lib.wiring import In, Out

    class MaxOverTime(wiring.Component):
        """The per-channel maximum of the last ``window`` vectors of ``n`` fields of ``bits``.

        Hardware: ``window - 1`` past-vector registers, ``n * (window - 1)`` comparators, an
        output register. Latency: one cycle from accepting ``x_t`` to offering the maximum,
        held until taken. Ports: ``i`` and ``o``, ``n * bits``-bit vectors, channel c in field c.
        """

        def __init__(self, n: int, bits: int, window: int):
            self.n, self.bits, self.window = n, bits, window
            super().__init__({"i": In(stream.Signature(unsigned(n * bits))),
                              "o": Out(stream.Signature(unsigned(n * bits)))})

        def elaborate(self, platform):
            m = Module()
            past = [Signal(self.n * self.bits, name=f"past{j}") for j in range(self.window - 1)]
            m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += self.o.valid.eq(0)
            with m.If(self.i.valid & self.i.ready):
                x = self.i.payload
                for c in range(self.n):
                    best = x.word_select(c, self.bits)
                    for p in past:
                        value = p.word_select(c, self.bits)
                        best = Mux(value > best, value, best)
                    m.d.sync += self.o.payload.word_select(c, self.bits).eq(best)
                m.d.sync += self.o.valid.eq(1)
                m.d.sync += [p.eq(newer) for p, newer in zip(past, [x, *past], strict=False)]
            return m

    return MaxOverTime


@dataclass(frozen=True)
class MaxPool(Op):
    window: int

    KIND = "maxpool"

    def check(self, node, ins):
        x = check_vector(node, ins[0], "a max-pool")
        if not isinstance(self.window, int) or not 1 <= self.window <= 64:
            raise IRError(node, "window", f"expected 1..64 bins, got {self.window}")
        return x

    def top(self, out, tops):
        """The largest of its input's values over the window."""
        return tops[0]

    def init(self, ins):
        return golden.history_init(self.window, ins[0].n)

    def step(self, xs, state):
        window, state = golden.history_push(xs[0], state)
        return {"values": window.max(axis=0)}, state

    def seq(self, xs, bins):
        import torch

        x = xs[0]
        out = x.clone()
        for lag in range(1, min(self.window, bins)):
            out[lag:] = torch.maximum(out[lag:], x[: bins - lag])
        return {"values": out}

    def cost(self, node, ins, ctx):
        n, bits = ins[0].n, ins[0].bits
        return [ctx.vector(node, "maxpool", n, bits, 2 * n * bits * (self.window - 1),
                           self.window * n * bits, memory_bits=(self.window - 1) * n * bits)]

    def history(self, ins):
        return [self.window]

    def emit(self, b, node, ins):
        """Core: a ``vec`` instruction, ``window`` cycles a channel."""
        from est.compiler.program import VEC_OPS

        out = b.vector(node, ins[0])
        b.add("vec", sub=VEC_OPS["max"], n=out.n, win=self.window,
              **b.vectors[b.input_of(node)].src(), **out.dst())

    def lower(self, b, node, ins):
        unit = b.add(node, max_over_time()(ins[0].spec.n, ins[0].spec.bits, self.window))
        b.connect(ins[0].stream, unit.i)
        return b.lowered(b.port(unit.o, ins[0].spec), {"values": (unit.o, unit.o.payload)})
