"""Dense synapses driven by binary spikes, time-multiplexed over a compile-time number of lanes."""

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from est.sim.golden import signed_bits
from est.sim.words import pack


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def current_group_layout(lanes: int, acc_bits: int) -> data.StructLayout:
    """Payload between synapses and neurons: one group of ``lanes`` currents, and ``last``."""
    return data.StructLayout({"current": data.ArrayLayout(signed(acc_bits), lanes),
                              "last": unsigned(1)})


def pack_lanes(values: np.ndarray, lanes: int, bits: int, pad: int = 0) -> list[int]:
    """Pack ``values`` [n] into ``ceil(n/lanes)`` words of ``lanes`` two's-complement fields,
    lane 0 in the low bits; missing lanes of the last word hold ``pad``."""
    groups = ceil_div(len(values), lanes)
    padded = np.full(groups * lanes, pad, dtype=np.int64)
    padded[:len(values)] = values
    return [pack(padded[g * lanes:(g + 1) * lanes], bits) for g in range(groups)]


class SynapticAccumulator(wiring.Component):
    """Dense synapses for one layer: ``current[j] = bias[j] + sum_i weight[j, i] * x[i]``.

    Hardware: a weight ROM of ``groups * n_in`` words, each ``lanes * weight_bits`` wide (block
    RAM), a bias ROM of ``groups`` words, ``lanes`` adders of the accumulator width, and an
    ``n_in * x_bits``-bit register holding the input vector. Neurons are taken ``lanes`` at a
    time (a group); for each group the ROM is read once per input (one word per cycle). With
    ``x_bits == 1`` (spikes) a weight is added where its input spiked; with wider unsigned
    inputs (SEW sums, counts) each lane multiplies its weight by the input (``lanes``
    ``weight_bits x x_bits`` multipliers). Dense, not event-driven: a lane-cycle per synapse.

    Latency: one cycle to accept the input vector, then one ROM word per cycle, back to back
    across groups (``groups * n_in`` cycles), plus one cycle of ROM latency; each group's
    currents leave through an output register while the next group is summed. When ``o`` is
    still full as a group completes, everything holds (ROM reads included) until it is taken.

    Ports: ``i`` stream of input vectors (``n_in`` fields of ``x_bits``, input i in field i);
    ``o`` stream of :func:`current_group_layout` groups, ``groups`` per input vector, in order.
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

        xb, groups = self.x_bits, self.groups
        x = Signal(n_in * xb)
        busy = Signal()
        issuing = Signal()  # an address goes to the ROMs this cycle
        addr = Signal(range(max(len(self._weight_words), 1)))
        index = Signal(range(n_in))
        group = Signal(range(groups))
        # Stage 2, one cycle after its address: the ROM words of input ``index`` arrive.
        data_valid, data_x = Signal(), Signal(xb)
        data_last, data_final = Signal(), Signal()  # last input of a group / of the bin
        acc = [Signal(signed(self._sum_bits), name=f"acc{lane}") for lane in range(lanes)]
        # A group is complete but the previous one still waits on ``o``: everything holds.
        stall = Signal()
        m.d.comb += [stall.eq(data_valid & data_last & self.o.valid & ~self.o.ready),
                     w_rd.addr.eq(addr), b_rd.addr.eq(group),
                     w_rd.en.eq(~stall), b_rd.en.eq(~stall), self.i.ready.eq(~busy)]

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [x.eq(self.i.payload), busy.eq(1), issuing.eq(1), addr.eq(0),
                         index.eq(0), group.eq(0)]
        with m.Elif(~stall):
            m.d.sync += [data_valid.eq(issuing), data_x.eq(x.word_select(index, xb)),
                         data_last.eq(index == n_in - 1), data_final.eq(group == groups - 1)]
            with m.If(issuing):
                m.d.sync += addr.eq(addr + 1)
                with m.If(index == n_in - 1):
                    m.d.sync += [index.eq(0), group.eq(group + 1)]
                    with m.If(group == groups - 1):
                        m.d.sync += issuing.eq(0)
                with m.Else():
                    m.d.sync += index.eq(index + 1)

        weights_now = [w_rd.data.word_select(lane, wb).as_signed() for lane in range(lanes)]
        terms = [Mux(data_x[0], w, 0) if xb == 1 else w * data_x for w in weights_now]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(data_valid & ~stall):
            with m.If(data_last):
                bias = [b_rd.data.word_select(lane, self.acc_bits).as_signed()
                        for lane in range(lanes)]
                m.d.sync += [self.o.valid.eq(1), self.o.payload.last.eq(data_final)]
                m.d.sync += [self.o.payload.current[lane].eq(acc[lane] + terms[lane] + bias[lane])
                             for lane in range(lanes)]
                m.d.sync += [a.eq(0) for a in acc]
                with m.If(data_final):
                    m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += [a.eq(a + t) for a, t in zip(acc, terms, strict=True)]
        return m
