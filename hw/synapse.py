"""Dense synapses driven by binary spikes, time-multiplexed over a compile-time number of lanes."""

import numpy as np
from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from est.sim.golden import signed_bits


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def current_group_layout(lanes: int, acc_bits: int) -> data.StructLayout:
    """Payload between synapses and neurons: one group of ``lanes`` currents, and whether it is
    the bin's last group."""
    return data.StructLayout({"current": data.ArrayLayout(signed(acc_bits), lanes),
                              "last": unsigned(1)})


def pack_lanes(values: np.ndarray, lanes: int, bits: int, pad: int = 0) -> list[int]:
    """Pack ``values`` [n] into ``ceil(n/lanes)`` words of ``lanes`` two's-complement fields,
    lane 0 in the low bits; missing lanes of the last word hold ``pad``."""
    groups = ceil_div(len(values), lanes)
    padded = np.full(groups * lanes, pad, dtype=np.int64)
    padded[:len(values)] = values
    mask = (1 << bits) - 1
    words = []
    for g in range(groups):
        word = 0
        for lane in range(lanes):
            word |= (int(padded[g * lanes + lane]) & mask) << (lane * bits)
        words.append(word)
    return words


class SynapticAccumulator(wiring.Component):
    """Dense synapses for one layer: ``current[j] = bias[j] + sum_i weight[j, i] * x[i]``.

    Hardware: a weight ROM of ``groups * n_in`` words, each ``lanes * weight_bits`` wide (block
    RAM), a bias ROM of ``groups`` words, ``lanes`` adders of the accumulator width, and an
    ``n_in * x_bits``-bit register holding the input vector. Neurons are taken ``lanes`` at a
    time (a group); for each group the ROM is read once per input (one word per cycle). With
    ``x_bits == 1`` (spikes) a weight is added where its input spiked; with wider unsigned
    inputs (SEW sums, counts) each lane multiplies its weight by the input (``lanes``
    ``weight_bits x x_bits`` multipliers). Dense, not event-driven: every synapse costs one
    lane-cycle.

    Latency: one cycle to accept the spike vector, then ``n_in + 2`` cycles per group; a group's
    currents leave through an output register, so the next group is computed while the neurons
    take the previous one. A bin costs ``groups * (n_in + 2) + 1`` cycles when ``o`` never stalls.

    Ports: ``i`` stream of input vectors (``n_in`` fields of ``x_bits``, input i in field i);
    ``o`` stream of :func:`current_group_layout` groups, ``groups`` per input vector, in group
    order.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray, lanes: int, acc_bits: int,
                 weight_bits: int, x_bits: int = 1):
        n_out, n_in = weight.shape
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        if bias.shape != (n_out,):
            raise ValueError(f"bias must have shape ({n_out},), got {bias.shape}")
        self.n_in, self.n_out, self.lanes = n_in, n_out, lanes
        self.groups = ceil_div(n_out, lanes)
        self.acc_bits, self.weight_bits, self.x_bits = acc_bits, weight_bits, x_bits
        w = np.zeros((self.groups * lanes, n_in), dtype=np.int64)
        w[:n_out] = weight
        # Word (g * n_in + i) holds weight[g * lanes + lane, i] in lane ``lane``.
        self._weight_words = [word for g in range(self.groups) for i in range(n_in)
                              for word in pack_lanes(w[g * lanes:(g + 1) * lanes, i], lanes,
                                                     weight_bits)]
        self._bias_words = pack_lanes(bias, lanes, acc_bits)
        x_max = (1 << x_bits) - 1
        self._sum_bits = signed_bits(int(np.minimum(w, 0).sum(axis=1).min()) * x_max,
                                     int(np.maximum(w, 0).sum(axis=1).max()) * x_max)
        super().__init__({
            "i": In(stream.Signature(unsigned(n_in * x_bits))),
            "o": Out(stream.Signature(current_group_layout(lanes, acc_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, n_in, wb = self.lanes, self.n_in, self.weight_bits
        m.submodules.weights = weights = memory.Memory(
            shape=unsigned(lanes * wb), depth=len(self._weight_words), init=self._weight_words)
        m.submodules.biases = biases = memory.Memory(
            shape=unsigned(lanes * self.acc_bits), depth=self.groups, init=self._bias_words)
        w_rd = weights.read_port()
        b_rd = biases.read_port()

        xb = self.x_bits
        x = Signal(n_in * xb)
        group = Signal(range(self.groups))
        base = Signal(range(len(self._weight_words) + n_in + 1))
        index = Signal(range(n_in + 1))
        data_valid = Signal()  # w_rd.data holds the word of input ``data_index``
        data_x = Signal(xb)  # ...and that input's value
        acc = [Signal(signed(self._sum_bits), name=f"acc{lane}") for lane in range(lanes)]
        busy = Signal()

        m.d.comb += [w_rd.addr.eq(base + index), b_rd.addr.eq(group)]
        m.d.comb += self.i.ready.eq(~busy)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [x.eq(self.i.payload), busy.eq(1), group.eq(0), base.eq(0),
                         index.eq(0), data_valid.eq(0)]
            m.d.sync += [a.eq(0) for a in acc]

        with m.If(busy):
            m.d.sync += [data_valid.eq(index < n_in), data_x.eq(x.word_select(index, xb))]
            with m.If(index < n_in):
                m.d.sync += index.eq(index + 1)
            weights_now = [w_rd.data.word_select(lane, wb).as_signed() for lane in range(lanes)]
            if xb == 1:
                with m.If(data_valid & data_x):
                    m.d.sync += [a.eq(a + w) for a, w in zip(acc, weights_now, strict=True)]
            else:
                with m.If(data_valid):
                    m.d.sync += [a.eq(a + w * data_x)
                                 for a, w in zip(acc, weights_now, strict=True)]

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        done = busy & (index == n_in) & ~data_valid
        with m.If(done & (~self.o.valid | self.o.ready)):
            bias = [b_rd.data.word_select(lane, self.acc_bits).as_signed()
                    for lane in range(lanes)]
            m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(group == self.groups - 1)]
            m.d.sync += [self.o.payload.current[lane].eq(acc[lane] + bias[lane])
                         for lane in range(lanes)]
            m.d.sync += [index.eq(0), base.eq(base + n_in), group.eq(group + 1)]
            m.d.sync += [a.eq(0) for a in acc]
            with m.If(group == self.groups - 1):
                m.d.sync += busy.eq(0)
        return m



