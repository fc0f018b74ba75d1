"""``lif`` (compiler/ops/lif.py) and the gateware it lowers to (hw/neurons.py, LIFArray). The
operation module: its parameter checks, values by hand (the leak as a flooring shift,
saturation before the threshold compare, both resets), the PyTorch path against the golden
model, the thresholds' rescaling, the width from a calibration run and the cost row. The
gateware: the array alone against the golden step in amaranth.sim, random sizes, widths, leaks
and resets, random stalls."""

import numpy as np
import pytest
from stream_drivers import run_groups

from est.boards.spec import get_board
from est.compiler import costs
from est.compiler.costs import Context
from est.compiler.graph import GraphBuilder, IRError, Spec
from est.compiler.ops import LIF, Conv, Input, Readout
from est.compiler.passes import Quantizer
from est.hw.neurons import LIFArray
from est.sim import golden
from est.sim.interpreter import run
from est.sim.words import unpack
from netgen import check_integer_path, random_stimulus

ICEBREAKER = get_board("icebreaker")


@pytest.mark.parametrize("seed", range(4))
def test_lif_array_matches_lif_step(seed):
    rng = np.random.default_rng(100 + seed)
    n, lanes = int(rng.integers(1, 14)), int(rng.integers(1, 6))
    acc_bits, v_bits = int(rng.integers(4, 12)), int(rng.integers(4, 12))
    leak = [None, 0, 1, 2][rng.integers(4)] if v_bits > 2 else None
    reset = golden.RESET_MODES[seed % 3]
    theta = rng.integers(1, golden.signed_range(v_bits)[1] + 1, n)
    lo, hi = golden.signed_range(acc_bits)
    currents = rng.integers(lo, hi + 1, (25, n))
    dut = LIFArray(n, lanes, acc_bits, v_bits, leak, theta, reset, trace=True)
    got = run_groups(dut, currents, acc_bits, seed)
    params, state = golden.LIFParams(theta, leak, v_bits, reset), golden.lif_init(n)
    for t, word in enumerate(got):
        out, state = golden.lif_step(currents[t], state, params)
        assert unpack(word, n, 1).tolist() == out.spikes.tolist(), f"bin {t}"
        assert unpack(word, n, v_bits, True, pos=n).tolist() == state.v.tolist(), f"bin {t}"


@pytest.mark.parametrize("seed", range(3))
def test_a_current_based_array_matches_lif_step(seed):
    """The synaptic current in the same state word as the membrane: spikes, membranes and
    synaptic currents equal the golden model's in every bin, saturating both."""
    rng = np.random.default_rng(200 + seed)
    n, lanes = int(rng.integers(1, 10)), int(rng.integers(1, 5))
    acc_bits, v_bits, syn_bits = 8, int(rng.integers(5, 10)), int(rng.integers(4, 9))
    leak, syn_shift = [None, 1, 2][seed], [1, None, 0][seed]
    reset = golden.RESET_MODES[seed]
    theta = rng.integers(1, golden.signed_range(v_bits)[1] + 1, n)
    currents = rng.integers(-128, 128, (30, n))
    dut = LIFArray(n, lanes, acc_bits, v_bits, leak, theta, reset, trace=True,
                   syn_shift=syn_shift, syn_bits=syn_bits)
    got = run_groups(dut, currents, acc_bits, seed)
    params = golden.LIFParams(theta, leak, v_bits, reset, syn_shift, syn_bits)
    state, saturated = golden.lif_init(n), 0
    for t, word in enumerate(got):
        out, state = golden.lif_step(currents[t], state, params)
        saturated += out.saturated
        assert unpack(word, n, 1).tolist() == out.spikes.tolist(), f"bin {t}"
        assert unpack(word, n, v_bits, True, pos=n).tolist() == state.v.tolist(), f"bin {t}"
        assert unpack(word, n, syn_bits, True, pos=n + n * v_bits).tolist() == state.i.tolist()
    assert saturated > 0


def test_the_synaptic_current_by_hand():
    """syn_shift 1, no membrane leak, threshold 10: i = 8, 4 + 8 = 12, 6 + 0 = 6; v = 8, 8 +
    12 = 20 fires (subtract: 10), 10 + 6 = 16 fires (6)."""
    graph = _lif_graph(np.array([[8]]), np.zeros(1, np.int64),
                       LIF(np.array([10]), None, 8, "subtract", 1, 6))
    trace, _ = run(graph, np.array([[1], [1], [0]]))
    assert trace.arrays["h/i"][:, 0].tolist() == [8, 12, 6]
    assert trace.arrays["h/v"][:, 0].tolist() == [8, 10, 6]
    assert trace.arrays["h/spikes"][:, 0].tolist() == [0, 1, 1]
    op, need = graph.node("h").op.fit_width("h", trace.arrays, trace.arrays["syn/current"], 24)
    # i up to 12 needs 5 bits (-16..15), v1 up to 20 needs 6: each chosen one bit more
    assert (op.syn_bits, op.v_bits, need) == (6, 7, 6)


# --- the operation (compiler/ops/lif.py) ---------------------------------------------------


def _lif_graph(weight, bias, lif: LIF, direct: LIF | None = None):
    """input -> conv (``weight`` [n, n_in], ``bias``) -> ``lif`` ("h") -> conv -> readout;
    with ``direct``, an array ("d") reads the input spikes themselves (a vector) and the conv
    reads its spikes."""
    n, n_in = weight.shape
    g = GraphBuilder()
    x = g.add("input", Input(n_in))
    if direct is not None:
        x = g.add("d", direct, x)
    s = g.add("h", lif, g.add("syn", Conv(weight[None], bias), x))
    g.add("readout", Readout(None, 12, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, n), np.int64), np.zeros(1, np.int64)), s))
    return g.build("lif", ("readout",))


@pytest.mark.parametrize("reset, v2", [("subtract", [6, 9, 1, 7, 4]), ("zero", [6, 9, 0, 6, 3])])
def test_leak_is_a_flooring_shift_by_hand(reset, v2):
    # channel j reads input j alone: currents -5, 7 and 6 when it spikes
    weight = np.diag([-5, 7, 6])
    stim = np.array([[1, 1, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 0]])
    trace, saturated = run(_lif_graph(weight, np.zeros(3, np.int64),
                                      LIF(np.array([10, 10, 10]), 1, 8, reset)), stim)
    v = trace.arrays["h/v"]
    # k = 1, v - (v >> 1) with a flooring shift: -5 - (-3) = -2, -2 - (-1) = -1, -1 - (-1) = 0
    assert v[:, 0].tolist() == [-5, -2, -1, 0, 0]
    # positive: 7 - 3 = 4, 4 - 2 = 2, 2 - 1 = 1, then 1 - 0 = 1 stays (1 >> 1 = 0)
    assert v[:, 1].tolist() == [7, 4, 2, 1, 1]
    # channel 2: 6; 6-3+6 = 9; 9-4+6 = 11 >= 10 fires: 11-10 = 1 (subtract) or 0 (zero);
    # then 1-0+6 = 7, 7-3 = 4 or 0+6 = 6, 6-3 = 3
    assert v[:, 2].tolist() == v2
    assert trace.arrays["h/spikes"].tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0],
                                                 [0, 0, 0]]
    assert saturated["h"] == 0


@pytest.mark.parametrize("reset, v2", [("subtract", [[-8, 2], [0, 2], [-5, 2]]),
                                       ("zero", [[-8, 0], [0, 0], [-5, 0]])])
def test_saturation_comes_before_the_threshold_compare_by_hand(reset, v2):
    # v_bits 4: -8..7; no leak; thresholds 7 and 5. Currents (-20, 30), (15, 0), (-5, 30).
    weight, stim = np.array([[-20, 15], [30, 0]]), np.array([[1, 0], [0, 1], [1, 1]])
    trace, saturated = run(_lif_graph(weight, np.zeros(2, np.int64),
                                      LIF(np.array([7, 5]), None, 4, reset)), stim)
    # channel 0: sat(-20) = -8; sat(-8 + 15) = 7 >= 7 fires (unsaturated, -20 + 15 = -5 would
    # not), 7 - 7 = 0 either way; then 0 - 5 = -5
    # channel 1: sat(30) = 7 >= 5 fires: 2 (subtract) or 0; 2 + 0 = 2 < 5; sat(2 + 30) = 7
    # fires again: 2, or sat(0 + 30) = 7 fires: 0
    assert trace.arrays["h/spikes"].tolist() == [[0, 1], [1, 0], [0, 1]]
    assert trace.arrays["h/v"].tolist() == v2
    assert saturated["h"] == 3  # -20 and 30 in bin 0, 32 (or 30) in bin 2


def test_leak_0_keeps_no_memory_by_hand():
    # k = 0: leak(v) = v - v = 0, so v = sat(c) each bin: 3, 4 (not 7), 7 fires (subtract: 2)
    trace, _ = run(_lif_graph(np.array([[3, 4]]), np.zeros(1, np.int64),
                              LIF(np.array([5]), 0, 8)), np.array([[1, 0], [0, 1], [1, 1]]))
    assert trace.arrays["h/v"][:, 0].tolist() == [3, 4, 2]
    assert trace.arrays["h/spikes"][:, 0].tolist() == [0, 0, 1]


def _random_graph(seed: int):
    """Narrow arrays (v_bits 4 or 5) fed by weights up to +-15, so membranes saturate; the
    first array reads the input spikes."""
    rng = np.random.default_rng(seed)
    n_in, n = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    v_bits = 4 + seed % 2
    lif = LIF(rng.integers(1, 1 << (v_bits - 1), n), [None, 1, 3, 0][seed % 4], v_bits,
              golden.RESET_MODES[seed % 3], *((1, 5) if seed == 4 else ()))
    direct = LIF(rng.integers(1, 3, n_in), [None, 1][seed % 2], 4,
                 ["zero", "subtract"][seed % 2])
    return _lif_graph(rng.integers(-15, 16, (n, n_in)), rng.integers(-4, 5, n), lif, direct)


@pytest.mark.parametrize("seed", range(5))
def test_pytorch_path_equals_the_golden_model(seed):
    graph = _random_graph(seed)
    stim = random_stimulus(seed, 40, graph.n_in, 0.5)
    golden_trace, saturated = check_integer_path(graph, stim)
    assert saturated["h"] > 0 and golden_trace.arrays["d/spikes"].any()


def test_check_gives_spikes_and_takes_the_edges():
    assert LIF(np.array([127, 1]), 7, 8).check("h", [Spec(2, 5, True, "current")]) == Spec(2, 1)
    assert LIF(np.array([1, 1]), None, 2, "zero").check("h", [Spec(2, 3)]) == Spec(2, 1)
    assert LIF(np.array([(1 << 31) - 1]), 31, 32).check("h", [Spec(1, 1)]) == Spec(1, 1)


_T = np.array([3, 5])
_CURRENT = Spec(2, 6, True, "current")


@pytest.mark.parametrize("lif, spec, field", [
    (LIF(np.array([0, 5]), None, 8), _CURRENT, "threshold"),  # below 1
    (LIF(np.array([3, 128]), None, 8), _CURRENT, "threshold"),  # 128 > 127 of 8 bits
    (LIF(np.array([3.0, 5.0]), None, 8), _CURRENT, "threshold"),  # floats
    (LIF(np.array([3, 5, 7]), None, 8), _CURRENT, "threshold"),  # 3 for 2 neurons
    (LIF(_T, None, 8, "hard"), _CURRENT, "reset"),
    (LIF(_T, 8, 8), _CURRENT, "leak_shift"),  # >= v_bits
    (LIF(_T, -1, 8), _CURRENT, "leak_shift"),
    (LIF(_T, None, 1), _CURRENT, "v_bits"),
    (LIF(_T, None, 33), _CURRENT, "v_bits"),
    (LIF(_T, None, 8.0), _CURRENT, "v_bits"),  # not an int
    (LIF(_T, None, 8), Spec(2, 4, True), "inputs"),  # a signed vector
], ids=["threshold-0", "threshold-over-v_bits", "float-threshold", "threshold-shape",
        "reset", "leak-eq-v_bits", "leak-negative", "v_bits-1", "v_bits-33", "float-v_bits",
        "signed-input"])
def test_bad_parameters_are_refused_naming_node_and_field(lif, spec, field):
    with pytest.raises(IRError) as err:
        lif.check("h", [spec])
    assert (err.value.node, err.value.field) == ("h", field)


def test_rescale_by_hand():
    q = Quantizer(8, "h", {})
    lif = LIF(np.array([1.0, 0.5, 0.001, 1.25]), 2, 32, "zero")
    out = lif.rescale(q, np.array([127.0, 127.0, 127.0, 2.0]))
    # threshold x scale, half to even, at least 1: 127, 63.5 -> 64, 0.127 -> 0 -> 1, 2.5 -> 2
    assert out.threshold.tolist() == [127, 64, 1, 2] and out.threshold.dtype == np.int64
    assert (out.leak_shift, out.v_bits, out.reset) == (2, 32, "zero")
    # an array that no weights feed (it reads a vector) is rescaled by 1: 3.5 -> 4, 4.5 -> 4
    assert LIF(np.array([3.5, 4.5]), None, 32).rescale(q, 1.0).threshold.tolist() == [4, 4]


@pytest.mark.parametrize("reset, need", [("subtract", 7), ("zero", 6), ("subtract_delayed", 7)])
def test_fit_width_from_a_wide_run(reset, need):
    # the saturation case at 32 bits, where nothing saturates; v1 = v_prev + c (no leak):
    # channel 0: -20, -20+15 = -5, -5-5 = -10; channel 1: 30 fires, then subtract: 25 + 0 =
    # 25 fires, 20 + 30 = 50; zero: 0 + 0 = 0, 0 + 30 = 30; subtract_delayed: 30 fires, 30 +
    # 0 - 5 = 25 fires, 25 + 30 - 5 = 50
    weight, stim = np.array([[-20, 15], [30, 0]]), np.array([[1, 0], [0, 1], [1, 1]])
    lif = LIF(np.array([7, 5]), None, 32, reset)
    trace, _ = run(_lif_graph(weight, np.zeros(2, np.int64), lif), stim)
    current = trace.arrays["syn/current"]
    # need: signed_bits(-20, 50) = 7 (-64..63), signed_bits(-20, 30) = 6; chosen one more
    op, got = lif.fit_width("h", trace.arrays, current, 32)
    assert (op.v_bits, got) == (need + 1, need)
    assert (op.threshold.tolist(), op.reset) == ([7, 5], reset)
    op, got = lif.fit_width("h", trace.arrays, current, 6)  # capped by max_v_bits
    assert (op.v_bits, got) == (6, need)


def test_fit_width_by_hand_is_wider_than_the_leak_and_the_threshold():
    # v1: 0 + 1 = 1, then leak(1) = 1 - (1 >> 7) = 1, + 1 = 2; the threshold 3 needs 3 bits
    # (-4..3), chosen 4, but a shift of 7 needs 8 bits
    trace, current = {"h/v": np.array([[1], [2]])}, np.array([[1], [1]])
    op, need = LIF(np.array([3]), 7, 32).fit_width("h", trace, current, 24)
    assert (op.v_bits, need) == (8, 3)
    op, need = LIF(np.array([3]), None, 32).fit_width("h", trace, current, 24)
    assert (op.v_bits, need) == (4, 3)


@pytest.mark.parametrize("lanes, state_in_logic, form, want", [
    # 5 neurons of 8 bits, lanes 1, membranes in logic: LUTs 6*8 + 30 + thresholds 8*1 + read
    # mux 8*mux(5) = 16: 102; FFs 5 + 2*ceil(5/2) + 4 + 5*8 = 55
    (1, True, "current", (0, 0, 102, 55)),
    # lanes 3 (2 groups), a vector input (cut into ceil(5/3) = 2 groups); state RAM of 2 words
    # stays in logic: 2*24 + 24 LUTs: 3*6*8 + 30 + 3*8 + 72 = 270; FFs 5 + 2 + 4 + 40 = 51
    (3, False, "vector", (2, 0, 270, 51)),
    # lanes 1 in block RAM: 5 words of 8 bits in one block RAM; LUTs 78 + 8, FFs 15
    (1, False, "vector", (5, 1, 86, 15)),
])
def test_cost_by_hand(lanes, state_in_logic, form, want):
    spec = Spec(5, 6, True, "current") if form == "current" else Spec(5, 1)
    lif = LIF(np.arange(1, 6), 2, 8)
    (row,) = lif.cost("h", [spec], Context(lanes, ICEBREAKER, state_in_logic))
    assert (row.name, row.kind, row.shape) == ("h", "lif", "5x8b")
    assert (row.synaptic_ops, row.dense_bound, row.memory_bound) == (0, 0, 0)
    assert row.memory_bits == 2 * 5 * 8  # membranes and thresholds
    assert (row.cycles, row.block_rams, row.luts, row.ffs) == want
    if form == "current":
        graph = _lif_graph(np.ones((5, 2), np.int64), np.zeros(5, np.int64), lif)
        assert row in costs.stages(graph, lanes, ICEBREAKER, state_in_logic)


def test_a_leak_shift_that_is_not_a_whole_number_is_refused():
    for op in (LIF(np.array([3]), 1.5, 8), LIF(np.array([3]), True, 8)):
        with pytest.raises(IRError) as err:
            op.check("h", [Spec(1, 4, True, "current")])
        assert (err.value.node, err.value.field) == ("h", "leak_shift")
