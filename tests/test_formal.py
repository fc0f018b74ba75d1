"""Formal checks with SymbiYosys (est.hw.formal): every proof passes on the real designs, and a
deliberately broken design fails the property it breaks. No test skips: a missing tool is an
error (est.hw.formal.prove raises EstError naming it)."""

import numpy as np
import pytest
from amaranth import Module, Mux, Signal, Value, signed
from amaranth.lib import wiring

from est.hw import neurons
from est.hw.attention import SpikeAttention
from est.hw.conv import CausalConv, HistoryWindow
from est.hw.dataflow import DataflowTop
from est.hw.formal import NeuronUpdateCheck, StreamRulesCheck, prove
from est.hw.lfsr import SpikeMask
from est.hw.neurons import LIFArray, ReadoutIntegrator
from est.hw.sew import CPGTable, SEWJoin
from est.hw.streams import Fork, VectorGroups, Zip
from est.hw.synapse import SynapticAccumulator
from est.hw.tpu import TemporalUnit

V_BITS, ACC_BITS = 6, 5  # sums reach [-48, 46], so both saturation bounds are hit
THRESHOLD = np.array([1, 9, 31])  # the smallest, a middle and the largest threshold of 6 bits
DEPTH = 8  # k of k-induction (mode "prove")
BMC_DEPTH = 12  # cycles searched by mode "bmc": four bins after the initial clear


def lif(reset="subtract", leak_shift=2, cls=LIFArray):
    """Three LIF neurons in one group of three lanes, with trace (membranes on the output)."""
    return cls(len(THRESHOLD), len(THRESHOLD), ACC_BITS, V_BITS, leak_shift, THRESHOLD, reset,
               trace=True)


def check(tmp_path, name, design, mode="prove"):
    return prove(name, design, design.ports, DEPTH if mode == "prove" else BMC_DEPTH, tmp_path,
                 mode)


def assert_passes(result):
    assert result.passed, f"{result.name}: {result.status} {list(result.failed)}; see {result.log}"


def assert_fails(result, message):
    """The proof found a counterexample (FAIL, not an error) to the assertion with ``message``."""
    assert result.status == "FAIL", f"{result.name}: expected FAIL, got {result.status}; " \
                                    f"see {result.log}"
    assert any(message in line for line in result.failed), \
        f"{result.name}: expected a failed assertion '{message}', got {list(result.failed)}"


# --- the LIF and readout update against docs/semantics.md 2.2-2.3 ------------------------------

@pytest.mark.parametrize("reset,leak_shift", [("subtract", 2), ("subtract", None), ("zero", 0),
                                              ("zero", 1), ("subtract_delayed", 2),
                                              ("subtract_delayed", None)])
def test_lif_update_meets_the_spec(tmp_path, reset, leak_shift):
    """Range, integrate and fire, reset and output payload: proven for every stored membrane."""
    assert_passes(check(tmp_path, f"lif_{reset}", NeuronUpdateCheck(lif(reset, leak_shift))))


def test_readout_update_meets_the_spec(tmp_path):
    dut = ReadoutIntegrator(2, 2, ACC_BITS, V_BITS, leak_shift=2)
    assert_passes(check(tmp_path, "readout", NeuronUpdateCheck(dut)))


@pytest.mark.parametrize("reset", ["subtract", "zero", "subtract_delayed"])
def test_lif_reads_back_what_it_stored(tmp_path, reset):
    """Bounded: each bin reads the membrane the spec model stored in the previous one."""
    design = NeuronUpdateCheck(lif(reset), history=True)
    assert_passes(check(tmp_path, f"history_{reset}", design, mode="bmc"))


class _UnclampedLIF(LIFArray):
    """Mutant: integrates on an expression as wide as the sum, never clamping to v_bits."""

    def _lane(self, m, lane, v, current, theta):
        v1 = v - (v >> self.leak_shift) + current
        spike = v1 >= theta
        return Mux(spike, v1 - theta if self.reset == "subtract" else 0, v1), spike


class _StrictLIF(LIFArray):
    """Mutant: fires only above the threshold (``v1 > theta``), not at it."""

    def _lane(self, m, lane, v, current, theta):
        v1 = Signal(signed(self.v_bits))
        m.d.comb += v1.eq(neurons._saturate(neurons.leak(v, self.leak_shift) + current,
                                            self.v_bits))
        spike = v1 > theta
        return Mux(spike, v1 - theta, v1), spike


class _OffByOneResetLIF(LIFArray):
    """Mutant: after a spike, the membrane is left one above its reset value."""

    def _lane(self, m, lane, v, current, theta):
        v2, spike = super()._lane(m, lane, v, current, theta)
        return Mux(spike, v2 + 1, v2), spike


class _ForgetfulLIF(LIFArray):
    """Mutant: a second write port zeroes the state RAM whenever the bin's output is taken."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        clear = m.submodules.state.write_port()
        m.d.comb += clear.en.eq(self.o.valid & self.o.ready)
        return m


def test_unclamped_membrane_fails_the_range(tmp_path):
    """With reset to zero every counterexample is a sum below the range, written back as is."""
    result = check(tmp_path, "unclamped", NeuronUpdateCheck(lif("zero", cls=_UnclampedLIF)))
    assert_fails(result, "state out of range")


def test_narrow_saturation_fails_the_spec(tmp_path, monkeypatch):
    """Mutant: the integrator clamps to v_bits - 1 bits instead of v_bits."""
    saturate = neurons._saturate
    monkeypatch.setattr(neurons, "_saturate", lambda value, bits: saturate(value, bits - 1))
    result = check(tmp_path, "narrow_sat", NeuronUpdateCheck(lif()))
    assert_fails(result, "differs from the spec")


def test_logical_shift_leak_fails_the_spec(tmp_path, monkeypatch):
    """Mutant: the leak shifts logically, so a negative membrane leaks the wrong amount."""
    monkeypatch.setattr(neurons, "leak", lambda v, shift: v - (v.as_unsigned() >> shift))
    result = check(tmp_path, "logical_leak", NeuronUpdateCheck(lif()))
    assert_fails(result, "differs from the spec")


def test_strict_compare_fails_the_spike(tmp_path):
    result = check(tmp_path, "strict_fire", NeuronUpdateCheck(lif(cls=_StrictLIF)))
    assert_fails(result, "spike differs from the spec")


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_wrong_reset_fails_the_spec(tmp_path, reset):
    result = check(tmp_path, f"bad_reset_{reset}",
                   NeuronUpdateCheck(lif(reset, cls=_OffByOneResetLIF)))
    assert_fails(result, "state differs from the spec")


def test_forgotten_membrane_fails_the_history(tmp_path):
    design = NeuronUpdateCheck(lif(cls=_ForgetfulLIF), history=True)
    assert_fails(check(tmp_path, "forgetful", design, mode="bmc"), "read a membrane not stored")


# --- stream handshake rules ----------------------------------------------------------------------

def _tiny_graph():
    """input 3 -> fork -> two dense LIF arrays -> SEW ADD -> mask -> readout: the smallest
    graph with a fork, a join and a mask for the dataflow top's proof."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import LIF, SEW, Conv, Input, Mask, Readout

    g = GraphBuilder()
    x = g.add("input", Input(3))
    a = g.add("a", LIF(np.array([2, 3]), 1, V_BITS),
              g.add("a.syn", Conv(np.array([[[3, -2, 5], [-4, 6, 1]]]), np.array([1, -2])), x))
    b = g.add("b", LIF(np.array([1, 1]), None, V_BITS, "zero"),
              g.add("b.syn", Conv(np.array([[[1, 1, -1], [2, 0, 1]]]), np.array([0, 0])), x))
    s = g.add("m", Mask(100, 0x1234), g.add("s", SEW("iand"), a, b))
    g.add("readout", Readout(None, V_BITS, np.ones(2)),
          g.add("readout.syn", Conv(np.array([[[2, -3], [-1, 4]]]), np.array([0, 1])), s))
    return g.build("formal", ("readout",))


STREAM_COMPONENTS = {
    "lif": lambda: lif(),
    "readout": lambda: ReadoutIntegrator(3, 2, ACC_BITS, V_BITS, leak_shift=1),
    "synapses": lambda: SynapticAccumulator(np.array([[3, -2, 5], [-4, 6, 1], [2, 2, -7]]),
                                            np.array([1, -2, 0]), lanes=2, acc_bits=ACC_BITS,
                                            weight_bits=4),
    "fork": lambda: Fork(3, 3),
    "zip": lambda: Zip([2, 3]),
    "sew": lambda: SEWJoin(3, "add", 2),
    "sdsa": lambda: SpikeAttention(4, 3, "sdsa", 2, 2),
    "ssa": lambda: SpikeAttention(4, 2, "ssa", 2),
    "window": lambda: HistoryWindow(3, 3),
    "mask": lambda: SpikeMask(4, 100, 0x1234, lanes=3, bits=2),
    "conv": lambda: CausalConv(np.array([[[3, -2], [1, 4], [0, 2]], [[-1, 2], [2, -3], [1, 1]]]),
                               np.array([1, -2, 0]), lanes=2, weight_bits=4, x_bits=2),
    "tpu": lambda: TemporalUnit(np.array([2, -1, 3]), np.array([[1, -2, 2], [2, 1, -1]]),
                                np.array([0, 1, -1]), 2, 1, V_BITS, 1, np.array([2, 3, 4]),
                                "subtract", trace=True),
    "groups": lambda: VectorGroups(3, 2, 2),
    "cpg": lambda: CPGTable(np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0]])),
    "dataflow": lambda: DataflowTop(_tiny_graph(), 1, trace=True),
}
COMBINATIONAL = {"zip"}  # output follows the inputs: proved assuming its producers' rules


@pytest.mark.parametrize("kind", sorted(STREAM_COMPONENTS))
def test_output_streams_keep_their_offer(tmp_path, kind):
    """valid stays high and the payload holds until the transfer, whatever the sink does."""
    dut = STREAM_COMPONENTS[kind]()
    assert_passes(check(tmp_path, f"stream_{kind}",
                        StreamRulesCheck(dut, assume_inputs=kind in COMBINATIONAL)))


class _Impatient(wiring.Component):
    """Mutant of any component: its first output stream withdraws ``valid`` for a cycle after
    each cycle the sink did not take it; every other port passes through unchanged."""

    def __init__(self, dut):
        self.dut = dut
        self.port = StreamRulesCheck._streams(dut, wiring.Out)[0]
        super().__init__(dut.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        inner, outer = self.dut.signature.flatten(self.dut), self.signature.flatten(self)
        valid = getattr(self.dut, self.port).valid
        stalled = Signal()
        for (_, member, a), (_, _, b) in zip(inner, outer, strict=True):
            a, b = Value.cast(a), Value.cast(b)
            if member.flow == wiring.In:
                m.d.comb += a.eq(b)
            elif a is Value.cast(valid):
                m.d.comb += b.eq(a & ~stalled)
            else:
                m.d.comb += b.eq(a)
        outer_port = getattr(self, self.port)
        m.d.sync += stalled.eq(outer_port.valid & ~outer_port.ready)
        return m


@pytest.mark.parametrize("kind", sorted(STREAM_COMPONENTS))
def test_an_impatient_mutant_fails_the_handshake(tmp_path, kind):
    dut = _Impatient(STREAM_COMPONENTS[kind]())
    design = StreamRulesCheck(dut, assume_inputs=kind in COMBINATIONAL)
    # a top offers its first word after a whole bin: search long enough to reach a stall
    depth = 40 if kind == "dataflow" else BMC_DEPTH
    result = prove(f"impatient_{kind}", design, design.ports, depth, tmp_path, "bmc")
    assert_fails(result, "valid dropped before the transfer")


class _ImpatientLIF(LIFArray):
    """Mutant: withdraws its output for a cycle after each cycle the sink did not take it."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        stalled = Signal()
        m.d.sync += stalled.eq(self.o.valid & ~self.o.ready)
        with m.If(stalled):
            m.d.comb += self.o.valid.eq(0)
        return m


class _RestlessLIF(LIFArray):
    """Mutant: the spikes on the output flip every cycle, also while the sink stalls."""

    def _drive_output(self, m, spikes, values):
        super()._drive_output(m, spikes, values)
        toggle = Signal()
        m.d.sync += toggle.eq(~toggle)
        m.d.comb += self.o.payload.spikes.eq(spikes ^ toggle.replicate(len(spikes)))


def test_dropping_valid_fails_the_handshake(tmp_path):
    result = check(tmp_path, "impatient", StreamRulesCheck(lif(cls=_ImpatientLIF)))
    assert_fails(result, "valid dropped before the transfer")


def test_changing_payload_fails_the_handshake(tmp_path):
    result = check(tmp_path, "restless", StreamRulesCheck(lif(cls=_RestlessLIF)))
    assert_fails(result, "payload changed while stalled")


def test_changing_payload_fails_the_output_spec(tmp_path):
    result = check(tmp_path, "restless_out", NeuronUpdateCheck(lif(cls=_RestlessLIF)))
    assert_fails(result, "o: spikes differ from spec")
