"""Causal 1-D convolution over the history of input vectors (docs/semantics.md section 8.2)."""

import numpy as np
from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from est.hw.synapse import SynapticAccumulator, current_group_layout
from est.sim.golden import conv_acc_bits


class HistoryWindow(wiring.Component):
    """Turns a stream of vectors ``x_t`` into windows ``[x_t, x_{t-1}, ..., x_{t-K+1}]``.

    Hardware: ``K - 1`` registers of ``n * bits`` bits (a shift register of past vectors,
    cleared by reset: bins before the stream start are zero) and an output register.

    Latency: one cycle from accepting ``x_t`` to offering the window, held until taken.

    Ports: ``i`` stream of ``n * bits``-bit vectors; ``o`` stream of ``K * n * bits``-bit
    windows, lag 0 in the low bits.
    """

    def __init__(self, width: int, kernel: int):
        self.width, self.kernel = width, kernel
        super().__init__({"i": In(stream.Signature(unsigned(width))),
                          "o": Out(stream.Signature(unsigned(width * kernel)))})

    def elaborate(self, platform):
        m = Module()
        past = [Signal(self.width, name=f"past{j}") for j in range(self.kernel - 1)]
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            x = self.i.payload
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(Cat(x, *past))]
            m.d.sync += [p.eq(newer) for p, newer in zip(past, [x, *past], strict=False)]
        return m


class CausalConv(wiring.Component):
    """``current_t = bias + sum_lag weight[lag] @ x_{t-lag}``: a :class:`HistoryWindow` feeding a
    :class:`SynapticAccumulator` over the window (``kernel * n_in`` inputs, lag-major).

    Latency: the window's one cycle plus the accumulator's ``groups * kernel * n_in + 1``
    cycles per bin (``kernel`` 1 is a dense layer with one extra cycle).

    Ports: ``i`` stream of ``n_in * x_bits``-bit vectors; ``o`` stream of current groups
    (:func:`~est.hw.synapse.current_group_layout`).
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray, lanes: int, weight_bits: int,
                 x_bits: int = 1):
        kernel, n_out, n_in = weight.shape
        self.acc_bits = conv_acc_bits(weight, bias, x_bits)
        flat = weight.transpose(1, 0, 2).reshape(n_out, kernel * n_in)
        self.window = HistoryWindow(n_in * x_bits, kernel)
        self.synapses = SynapticAccumulator(flat, bias, lanes, self.acc_bits, weight_bits, x_bits)
        self.groups = self.synapses.groups
        super().__init__({
            "i": In(stream.Signature(unsigned(n_in * x_bits))),
            "o": Out(stream.Signature(current_group_layout(lanes, self.acc_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.window, m.submodules.synapses = self.window, self.synapses
        wiring.connect(m, wiring.flipped(self.i), self.window.i)
        wiring.connect(m, self.window.o, self.synapses.i)
        wiring.connect(m, self.synapses.o, wiring.flipped(self.o))
        return m
