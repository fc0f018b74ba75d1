"""The temporal processing unit (TPU) as gateware (docs/semantics.md section 8.2)."""

import numpy as np
from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from est.hw.neurons import LIFArray, lif_out_layout
from est.hw.streams import send_groups
from est.hw.synapse import ceil_div, current_group_layout
from est.sim.golden import tpu_acc_bits


class TemporalCurrent(wiring.Component):
    """Per channel ``c`` (depthwise): ``current = bias[c] + w_in[c] * r[c] + sum_j w_rec[j, c] *
    y_{t-1-j}[c]``, where ``y`` are the TPU's own past spikes, given on ``past``.

    Hardware: the per-channel constants as small multiplexed ROMs in logic, ``lanes``
    multipliers (``w_in`` by the input value) and ``lanes`` adders of ``kernel + 2`` terms.

    Latency: one cycle to accept ``r``, then one cycle per group of ``lanes`` channels.
    """

    def __init__(self, w_in: np.ndarray, w_rec: np.ndarray, bias: np.ndarray, lanes: int,
                 x_bits: int):
        self.d, self.kernel = len(w_in), w_rec.shape[0]
        self.lanes, self.x_bits = lanes, x_bits
        self.groups = ceil_div(self.d, lanes)
        self.acc_bits = tpu_acc_bits(w_in, w_rec, bias, x_bits)
        self.w_in, self.w_rec, self.bias = w_in, w_rec, bias
        super().__init__({
            "i": In(stream.Signature(unsigned(self.d * x_bits))),
            "past": In(unsigned(self.d * self.kernel)),  # y_{t-1-j} in word j
            "o": Out(stream.Signature(current_group_layout(lanes, self.acc_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        d, lanes, xb, ab = self.d, self.lanes, self.x_bits, self.acc_bits
        width = self.groups * lanes  # channels, padding included

        def table(values):
            return Array(Const(int(v), signed(ab)) for v in list(values) + [0] * (width - d))

        w_in, bias = table(self.w_in), table(self.bias)
        w_rec = [table(row) for row in self.w_rec]
        x = Signal(width * xb)
        past = [Signal(width, name=f"past{j}") for j in range(self.kernel)]
        m.d.comb += [p.eq(self.past.word_select(j, d)) for j, p in enumerate(past)]

        def current(group, lane):
            c = Signal(range(width), name=f"channel{lane}")
            value = Signal(xb, name=f"x{lane}")
            m.d.comb += [c.eq(group * lanes + lane), value.eq(x.word_select(c, xb))]
            total = bias[c] + w_in[c] * value
            for j in range(self.kernel):
                total = total + Mux(past[j].bit_select(c, 1), w_rec[j][c], 0)
            return total

        send_groups(m, self.i, self.o, x, self.groups, lanes, current)
        return m


class TemporalUnit(wiring.Component):
    """The TPU: :class:`TemporalCurrent` feeding a :class:`~est.hw.neurons.LIFArray`, whose
    spikes are shifted into the ``kernel`` past-spike registers when the bin's output is taken.

    Latency: one cycle plus ``groups`` cycles of currents, overlapped with the LIF array's
    two cycles per group; the output (spikes and, with ``trace``, membranes) is held until taken.
    """

    def __init__(self, w_in, w_rec, bias, lanes: int, x_bits: int, v_bits: int,
                 leak_shift: int | None, threshold: np.ndarray, reset: str, trace: bool = False,
                 state_in_logic: bool = False):
        self.current = TemporalCurrent(w_in, w_rec, bias, lanes, x_bits)
        self.neurons = LIFArray(len(w_in), lanes, self.current.acc_bits, v_bits, leak_shift,
                                threshold, reset, trace, state_in_logic)
        self.d, self.kernel = len(w_in), w_rec.shape[0]
        super().__init__({"i": In(stream.Signature(unsigned(self.d * x_bits))),
                          "o": Out(stream.Signature(lif_out_layout(self.d, v_bits, trace)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.current, m.submodules.neurons = self.current, self.neurons
        past = Signal(self.d * self.kernel)
        m.d.comb += self.current.past.eq(past)
        wiring.connect(m, wiring.flipped(self.i), self.current.i)
        wiring.connect(m, self.current.o, self.neurons.i)
        wiring.connect(m, self.neurons.o, wiring.flipped(self.o))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += past.eq(Cat(self.o.payload.spikes, past[:self.d * (self.kernel - 1)]))
        return m
