"""Neuron arrays with time-multiplexed state: LIF (spiking) and the non-spiking readout."""

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from est.hw.synapse import ceil_div, current_group_layout, pack_lanes
from est.sim.golden import RESET_MODES, leak, signed_range


def _saturate(value, bits: int):
    lo, hi = signed_range(bits)
    return Mux(value > hi, Const(hi, signed(bits)), Mux(value < lo, Const(lo, signed(bits)), value))


class _Phase(enum.Enum, shape=2):
    """A :class:`NeuronArray`'s phase in a bin: fetch a state word, take currents, send the bin."""

    FETCH = 0
    TAKE = 1
    SEND = 2


class NeuronArray(wiring.Component):
    """Shared engine of :class:`LIFArray` and :class:`ReadoutIntegrator`.

    Hardware: a state RAM of ``groups`` words, each ``lanes * v_bits`` wide (one membrane per
    lane), ``lanes`` copies of the update datapath (shift, saturating adder, and for LIF a
    comparator and a subtractor), and an output register holding the whole bin's result.

    Latency: per group, one cycle to fetch the state word and one to update it (overlapped with
    the synapses computing the next group); after the bin's last group the result is offered on
    ``o`` until taken. After reset the array spends ``groups`` cycles writing zero to every
    state word (reset starts a new stream: all membranes zero), then takes input.
    """

    def __init__(self, n: int, lanes: int, acc_bits: int, v_bits: int, leak_shift: int | None,
                 out_layout: data.StructLayout, state_in_logic: bool = False,
                 state_bits: int | None = None):
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        if leak_shift is not None and not 0 <= leak_shift < v_bits:
            raise ValueError(f"leak_shift must be None or 0..{v_bits - 1}, got {leak_shift}")
        self.n, self.lanes, self.groups = n, lanes, ceil_div(n, lanes)
        self.acc_bits, self.v_bits, self.leak_shift = acc_bits, v_bits, leak_shift
        # a neuron's state word: its membrane (low ``v_bits``), and above it any more state
        self.state_bits = state_bits or v_bits
        self.state_in_logic = state_in_logic
        super().__init__({
            "i": In(stream.Signature(current_group_layout(lanes, acc_bits))),
            "o": Out(stream.Signature(out_layout)),
        })

    def _lane(self, m: Module, lane: int, v, current, rom_word):
        """Return the new state of one lane and the bit it sends out (or None); ``v`` is the
        lane's membrane (signed), or its whole state word when that is wider."""
        raise NotImplementedError

    def _rom_words(self) -> list[int] | None:
        return None

    def elaborate(self, platform):
        m = Module()
        lanes, vb, sb = self.lanes, self.v_bits, self.state_bits
        group = Signal(range(self.groups))
        spikes = Signal(self.groups * lanes)
        values = Signal(self.groups * lanes * sb)
        # ``state_in_logic``: flip-flops rather than a block RAM (yosys ``ram_style``), for
        # designs with more small arrays than the FPGA has block RAMs.
        attrs = {"ram_style": "logic"} if self.state_in_logic else None
        m.submodules.state = state = memory.Memory(shape=unsigned(lanes * sb), depth=self.groups,
                                                   init=[], attrs=attrs)
        rd, wr = state.read_port(), state.write_port()
        m.d.comb += [rd.addr.eq(group), wr.addr.eq(group)]
        rom_rd, rom_words = None, self._rom_words()
        if rom_words is not None:
            m.submodules.rom = rom = memory.Memory(shape=unsigned(lanes * vb), depth=self.groups,
                                                   init=rom_words, attrs=attrs)
            rom_rd = rom.read_port()
            m.d.comb += rom_rd.addr.eq(group)

        new_word, out_bits = [], []
        for lane in range(lanes):
            word = rd.data.word_select(lane, sb)
            v = word.as_signed() if sb == vb else word
            rom_word = None if rom_rd is None else rom_rd.data.word_select(lane, vb).as_signed()
            new_v, bit = self._lane(m, lane, v, self.i.payload.current[lane], rom_word)
            new_word.append(new_v.as_unsigned()[:sb])
            out_bits.append(bit)
        # The phase is a plain register, not an FSM: the clear phase's write enable and data,
        # and the ``i.ready`` / ``o.valid`` handshakes, are then comparisons of registers that
        # hold their reset value from the first cycle. An FSM's outputs come from an
        # ``always @*`` block, which Icarus (under cocotb) leaves at X until the FSM first
        # changes state: valid and ready would be undefined for the whole clear phase.
        clearing = Signal(init=1)
        phase = Signal(_Phase)
        update = Signal()
        m.d.comb += [wr.en.eq(clearing | update), wr.data.eq(Mux(clearing, 0, Cat(*new_word))),
                     self.i.ready.eq(phase == _Phase.TAKE),
                     self.o.valid.eq(phase == _Phase.SEND),
                     update.eq(self.i.ready & self.i.valid)]
        with m.If(clearing):
            with m.If(group == self.groups - 1):
                m.d.sync += [group.eq(0), clearing.eq(0)]
            with m.Else():
                m.d.sync += group.eq(group + 1)

        with m.If(~clearing & (phase == _Phase.FETCH)):
            m.d.sync += phase.eq(_Phase.TAKE)
        with m.If(update):
            m.d.sync += values.word_select(group, lanes * sb).eq(Cat(*new_word))
            if out_bits[0] is not None:
                m.d.sync += spikes.word_select(group, lanes).eq(Cat(*out_bits))
            with m.If(self.i.payload.last):
                m.d.sync += [group.eq(0), phase.eq(_Phase.SEND)]
            with m.Else():
                m.d.sync += [group.eq(group + 1), phase.eq(_Phase.FETCH)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += phase.eq(_Phase.FETCH)
        self._drive_output(m, spikes[:self.n], values[:self.n * sb])
        return m

    def _drive_output(self, m: Module, spikes, values) -> None:
        """Every field the output layout has: the bin's ``spikes``, its membranes ``v`` (the
        low ``v_bits`` of each state word), the rest of each word as ``i``."""
        fields = self.o.payload.shape().members
        vb, sb = self.v_bits, self.state_bits
        words = [values.word_select(j, sb) for j in range(self.n)]
        if "spikes" in fields:
            m.d.comb += self.o.payload.spikes.eq(spikes)
        if "v" in fields:
            m.d.comb += self.o.payload.v.as_value().eq(Cat(w[:vb] for w in words))
        if "i" in fields:
            m.d.comb += self.o.payload.i.as_value().eq(Cat(w[vb:] for w in words))


def lif_out_layout(n: int, v_bits: int, trace: bool, syn_bits: int = 0) -> data.StructLayout:
    """Spikes of the bin (bit j = neuron j), and with ``trace`` every membrane after reset
    (and a current-based array's synaptic currents)."""
    fields = {"spikes": unsigned(n)}
    if trace:
        fields["v"] = data.ArrayLayout(signed(v_bits), n)
        if syn_bits:
            fields["i"] = data.ArrayLayout(signed(syn_bits), n)
    return data.StructLayout(fields)


class LIFArray(NeuronArray):
    """``n`` LIF neurons, ``lanes`` updated per cycle, membranes in a RAM (time-multiplexed).

    Per neuron and bin (docs/semantics.md): ``v1 = sat(v - (v >>> k) + current)``,
    ``spike = v1 >= theta``, then reset by subtraction or to zero; or (``subtract_delayed``)
    ``v1 = sat(v - (v >>> k) + current - theta [v >= theta])`` stored unreset (one more
    comparator and subtractor a lane); thresholds in a ROM beside the state RAM. ``trace``
    adds every membrane to the output (debug: ``n * v_bits`` flip-flops). Current-based
    (``syn_bits`` > 0): each state word also holds a synaptic current, updated first,
    ``i = sat(i - (i >>> syn_shift) + current, syn_bits)``, and taken as the membrane's
    current (a second shifter and saturating adder a lane, in series with the first).
    """

    def __init__(self, n: int, lanes: int, acc_bits: int, v_bits: int, leak_shift: int | None,
                 threshold: np.ndarray, reset: str, trace: bool = False,
                 state_in_logic: bool = False, syn_shift: int | None = None,
                 syn_bits: int = 0):
        if reset not in RESET_MODES:
            raise ValueError(f"reset must be one of {RESET_MODES}, got {reset!r}")
        if threshold.shape != (n,) or threshold.min() < 1 or threshold.max() > signed_range(
                v_bits)[1]:
            raise ValueError(f"threshold must be {n} integers in 1..{signed_range(v_bits)[1]}")
        if syn_bits and (syn_bits < 2 or syn_shift is not None and not 0 <= syn_shift < syn_bits):
            raise ValueError(f"syn_bits must be 0 or >= 2 and syn_shift None or "
                             f"0..syn_bits - 1, got {syn_bits}, {syn_shift}")
        self.threshold, self.reset, self.trace = threshold, reset, trace
        self.syn_shift, self.syn_bits = syn_shift, syn_bits
        super().__init__(n, lanes, acc_bits, v_bits, leak_shift,
                         lif_out_layout(n, v_bits, trace, syn_bits), state_in_logic,
                         v_bits + syn_bits)

    def _rom_words(self):
        return pack_lanes(self.threshold, self.lanes, self.v_bits, pad=signed_range(self.v_bits)[1])

    def _lane(self, m, lane, v, current, theta):
        i1 = None
        if self.syn_bits:  # the state word is Cat(v, i): the synaptic current first
            i1 = Signal(signed(self.syn_bits), name=f"i1_{lane}")
            i = v[self.v_bits:].as_signed()
            v = v[:self.v_bits].as_signed()
            m.d.comb += i1.eq(_saturate(leak(i, self.syn_shift) + current, self.syn_bits))
            current = i1
        v2, spike = self._membrane(m, lane, v, current, theta)
        return (v2 if i1 is None else Cat(v2.as_unsigned()[:self.v_bits], i1)), spike

    def _membrane(self, m, lane, v, current, theta):
        v1 = Signal(signed(self.v_bits), name=f"v1_{lane}")
        spike = Signal(name=f"spike{lane}")
        total = leak(v, self.leak_shift) + current
        if self.reset == "subtract_delayed":  # last bin's spike, from the unreset membrane
            total = total - Mux(v >= theta, theta, 0)
        m.d.comb += [v1.eq(_saturate(total, self.v_bits)), spike.eq(v1 >= theta)]
        if self.reset == "subtract_delayed":
            return v1, spike
        after = v1 - theta if self.reset == "subtract" else Const(0, signed(self.v_bits))
        return Mux(spike, after, v1), spike


class ReadoutIntegrator(NeuronArray):
    """``n`` non-spiking integrators: ``r = sat(r - (r >>> k) + current)``; the values are the
    network's output (their float scale to log-rates is metadata for the host)."""

    def __init__(self, n: int, lanes: int, acc_bits: int, v_bits: int, leak_shift: int | None,
                 state_in_logic: bool = False):
        super().__init__(n, lanes, acc_bits, v_bits, leak_shift,
                         data.StructLayout({"v": data.ArrayLayout(signed(v_bits), n)}),
                         state_in_logic)

    def _lane(self, m, lane, v, current, rom_word):
        r = Signal(signed(self.v_bits), name=f"r{lane}")
        m.d.comb += r.eq(_saturate(leak(v, self.leak_shift) + current, self.v_bits))
        return r, None
