"""``readout`` (compiler/ops/readout.py) and the gateware it lowers to (hw/neurons.py,
ReadoutIntegrator). The operation module: its parameter checks, values by hand (leak and
saturation), the PyTorch path against the golden model, the scale it keeps from quantization,
the width from a calibration run and the cost row. The gateware: the integrators alone against
the golden step in amaranth.sim, random sizes, widths and leaks, random stalls."""

import numpy as np
import pytest
from stream_drivers import run_groups

from est.boards.spec import get_board
from est.compiler import costs
from est.compiler.costs import Context
from est.compiler.graph import GraphBuilder, IRError, Spec
from est.compiler.ops import Conv, Input, Readout
from est.compiler.passes import Quantizer
from est.hw.neurons import ReadoutIntegrator
from est.sim import golden
from est.sim.interpreter import run
from est.sim.words import unpack
from netgen import check_integer_path, random_stimulus

ICEBREAKER = get_board("icebreaker")


@pytest.mark.parametrize("seed", range(3))
def test_readout_integrator_matches_integrator_step(seed):
    rng = np.random.default_rng(200 + seed)
    n, lanes = int(rng.integers(1, 10)), int(rng.integers(1, 5))
    acc_bits, v_bits = int(rng.integers(4, 10)), int(rng.integers(4, 10))
    leak = [None, 0, 1, 3][rng.integers(4)] if v_bits > 3 else 0
    lo, hi = golden.signed_range(acc_bits)
    currents = rng.integers(lo, hi + 1, (20, n))
    dut = ReadoutIntegrator(n, lanes, acc_bits, v_bits, leak)
    got = run_groups(dut, currents, acc_bits, seed)
    params, state = golden.IntegratorParams(leak, v_bits), golden.lif_init(n)
    for t, word in enumerate(got):
        _, state = golden.integrator_step(currents[t], state, params)
        assert unpack(word, n, v_bits, True).tolist() == state.v.tolist(), f"bin {t}"


# --- the operation (compiler/ops/readout.py) -----------------------------------------------


def _readout_graph(weight, bias, readout: Readout, bits: int = 1):
    """input (of ``bits``) -> conv (``weight`` [n, n_in], ``bias``) -> ``readout`` ("ro")."""
    g = GraphBuilder()
    g.add("ro", readout, g.add("syn", Conv(weight[None], bias), g.add("input", Input(
        weight.shape[1], bits))))
    return g.build("readout", ("ro",))


# currents per bin: channel 0 20 x0, channel 1 -9 x1, channel 2 -25 (x0 + x1)
_WEIGHT = np.array([[20, 0], [0, -9], [-25, -25]])
_STIM = np.array([[1, 1], [1, 1], [0, 0], [0, 0], [0, 1]])


@pytest.mark.parametrize("leak, want, saturations", [
    # k = 2, r - (r >> 2) flooring, then + c, clamped to 6 bits (-32..31):
    # ch 0: 20; 20-5+20 = 35 -> 31; 31-7 = 24; 24-6 = 18; 18-4 = 14
    # ch 1: -9; -9+3-9 = -15; -15+4 = -11; -11+3 = -8; -8+2-9 = -15
    # ch 2: -50 -> -32; -32+8-50 -> -32; -32+8 = -24; -24+6 = -18; -18+5-25 = -38 -> -32
    (2, [[20, -9, -32], [31, -15, -32], [24, -11, -24], [18, -8, -18], [14, -15, -32]], 4),
    # k = 0: no memory, r = sat(c); only -50 clamps (twice)
    (0, [[20, -9, -32], [20, -9, -32], [0, 0, 0], [0, 0, 0], [0, -9, -25]], 2),
    # no leak: a pure integrator: 40 -> 31; -50, -82 and -57 -> -32
    (None, [[20, -9, -32], [31, -18, -32], [31, -18, -32], [31, -18, -32], [31, -27, -32]], 4),
])
def test_values_by_hand(leak, want, saturations):
    trace, saturated = run(_readout_graph(_WEIGHT, np.zeros(3, np.int64),
                                          Readout(leak, 6, np.ones(3))), _STIM)
    assert trace.arrays["ro/v"].tolist() == want
    assert saturated["ro"] == saturations


def test_k_0_saturates_the_current_by_hand():
    # docs/semantics.md 4: k = 0, v_bits = 12: c = 2500 gives r = 2047; c = -2500 gives -2048
    trace, saturated = run(_readout_graph(np.array([[2500], [-2500]]), np.zeros(2, np.int64),
                                          Readout(0, 12, np.ones(2))), np.array([[1], [0]]))
    assert trace.arrays["ro/v"].tolist() == [[2047, -2048], [0, 0]]
    assert saturated["ro"] == 2


@pytest.mark.parametrize("seed", range(4))
def test_pytorch_path_equals_the_golden_model(seed):
    rng = np.random.default_rng(seed)
    n_in, n = int(rng.integers(2, 6)), int(rng.integers(1, 5))
    readout = Readout([None, 0, 1, 3][seed], 4 + seed // 2, rng.random(n) + 0.5)
    graph = _readout_graph(rng.integers(-15, 16, (n, n_in)), rng.integers(-4, 5, n), readout)
    stim = random_stimulus(seed, 40, n_in, 0.5)
    golden_trace, saturated = check_integer_path(graph, stim)
    assert saturated["ro"] > 0


def test_check_gives_the_signed_values_and_takes_the_edges():
    current = Spec(3, 7, True, "current")
    assert Readout(0, 6, np.ones(3)).check("ro", [current]) == Spec(3, 6, True)
    assert Readout(1, 2, np.full(3, 1e-9)).check("ro", [current]) == Spec(3, 2, True)
    assert Readout(31, 32, np.ones(3, np.float32)).check("ro", [current]) == Spec(3, 32, True)


_CURRENT = Spec(2, 7, True, "current")


@pytest.mark.parametrize("readout, spec, field", [
    (Readout(None, 8, np.array([1.0, 0.0])), _CURRENT, "scale"),  # not positive
    (Readout(None, 8, np.array([1.0, -2.0])), _CURRENT, "scale"),
    (Readout(None, 8, np.array([1.0, np.nan])), _CURRENT, "scale"),
    (Readout(None, 8, np.array([np.inf, 1.0])), _CURRENT, "scale"),
    (Readout(None, 8, np.array([1, 2])), _CURRENT, "scale"),  # integers
    (Readout(None, 8, np.ones(3)), _CURRENT, "scale"),  # 3 for 2 channels
    (Readout(None, 1, np.ones(2)), _CURRENT, "v_bits"),
    (Readout(None, 33, np.ones(2)), _CURRENT, "v_bits"),
    (Readout(8, 8, np.ones(2)), _CURRENT, "leak_shift"),  # >= v_bits
    (Readout(-1, 8, np.ones(2)), _CURRENT, "leak_shift"),
    (Readout(None, 8, np.ones(2)), Spec(2, 1), "inputs"),  # spikes, not a current
], ids=["scale-0", "scale-negative", "scale-nan", "scale-inf", "int-scale", "scale-shape",
        "v_bits-1", "v_bits-33", "leak-eq-v_bits", "leak-negative", "vector-input"])
def test_bad_parameters_are_refused_naming_node_and_field(readout, spec, field):
    with pytest.raises(IRError) as err:
        readout.check("ro", [spec])
    assert (err.value.node, err.value.field) == ("ro", field)


def test_rescale_keeps_the_scale_of_its_weights():
    readout = Readout(2, 32, np.ones(2))
    # the convolution that feeds it: channel 0 max|w| 2.0 -> 127 / 2 = 63.5; channel 1 has
    # no weight: 127 / 1.0 (a readout has no threshold)
    conv = Conv(np.array([[[2.0, -0.5], [0.0, 0.0]]]), np.array([0.25, 1.0]))
    op, s = conv.quantize(Quantizer(8, "ro.syn", {}), readout)
    assert op.weight.tolist() == [[[127, -32], [0, 0]]]  # -31.75 -> -32
    assert op.bias.tolist() == [16, 127]  # 15.875 -> 16
    out = readout.rescale(Quantizer(8, "ro", {}), s)
    assert out.scale.tolist() == [63.5, 127.0] and out.scale.dtype == np.float64
    assert (out.leak_shift, out.v_bits) == (2, 32)
    assert out.check("ro", [Spec(2, 9, True, "current")]) == Spec(2, 32, True)


@pytest.mark.parametrize("leak, need", [(2, 8), (0, 7), (None, 8)])
def test_fit_width_from_a_wide_run(leak, need):
    readout = Readout(leak, 32, np.ones(3))
    trace, saturated = run(_readout_graph(_WEIGHT, np.zeros(3, np.int64), readout), _STIM)
    r = trace.arrays["ro/v"]
    if leak == 2:  # as by hand above, unclamped: 20, 35, 35-8 = 27, 27-6 = 21, 21-5 = 16;
        # -50, -50+13-50 = -87, -87+22 = -65, -65+17 = -48, -48+12-25 = -61
        assert r[:, 0].tolist() == [20, 35, 27, 21, 16]
        assert r[:, 1].tolist() == [-9, -15, -11, -8, -15]
        assert r[:, 2].tolist() == [-50, -87, -65, -48, -61]
    # k 2: -87..35 needs 8 bits (-128..127); k 0: -50..20 needs 7 (-64..63); no leak: -125..40
    # needs 8; chosen one more
    assert saturated["ro"] == 0
    op, got = readout.fit_width("ro", trace.arrays, None, 32)
    assert (op.v_bits, got) == (need + 1, need)
    assert op.leak_shift == leak and op.scale.tolist() == [1.0, 1.0, 1.0]
    assert readout.fit_width("ro", trace.arrays, None, 7)[0].v_bits == 7  # max_v_bits caps it


def test_fit_width_by_hand_is_wider_than_the_leak():
    trace = {"ro/v": np.array([[3], [-2]])}  # -2..3: 3 bits, chosen 4
    assert Readout(None, 32, np.ones(1)).fit_width("ro", trace, None, 24)[0].v_bits == 4
    op, need = Readout(12, 32, np.ones(1)).fit_width("ro", trace, None, 24)
    assert (op.v_bits, need) == (13, 3)  # a shift of 12 needs 13 bits
    # a silent readout still needs 2 bits (values 0..1), chosen 3
    op, need = Readout(None, 32, np.ones(1)).fit_width("ro", {"ro/v": np.zeros((4, 1),
                                                                             np.int64)}, None, 24)
    assert (op.v_bits, need) == (3, 2)


@pytest.mark.parametrize("lanes, state_in_logic, want", [
    # 3 integrators of 10 bits, lanes 1, in logic: LUTs 4*10 + 30 + read mux 10*mux(3) = 10:
    # 80; FFs 3 + 2*ceil(3/2) + 4 + 3*10 = 41
    (1, True, (0, 80, 41)),
    # lanes 2: 2 groups, a 2-word state RAM stays in logic (2*20 + 20 LUTs): 2*4*10 + 30 + 60
    # = 170; FFs 3 + 2 + 4 + 30 = 39
    (2, False, (0, 170, 39)),
    # lanes 1 in block RAM: 3 words of 10 bits in one block RAM; LUTs 70, FFs 11
    (1, False, (1, 70, 11)),
])
def test_cost_by_hand(lanes, state_in_logic, want):
    readout = Readout(1, 10, np.ones(3))
    (row,) = readout.cost("ro", [Spec(3, 7, True, "current")],
                          Context(lanes, ICEBREAKER, state_in_logic))
    assert (row.name, row.kind, row.shape) == ("ro", "readout", "3x10b")
    assert (row.synaptic_ops, row.cycles, row.dense_bound, row.memory_bound) == (0, 0, 0, 0)
    assert row.memory_bits == 2 * 3 * 10
    assert (row.block_rams, row.luts, row.ffs) == want
    graph = _readout_graph(np.ones((3, 2), np.int64), np.zeros(3, np.int64), readout)
    assert row in costs.stages(graph, lanes, ICEBREAKER, state_in_logic)


def test_a_leak_shift_that_is_not_a_whole_number_is_refused():
    with pytest.raises(IRError) as err:
        Readout(0.5, 8, np.ones(1)).check("out", [Spec(1, 4, True, "current")])
    assert (err.value.node, err.value.field) == ("out", "leak_shift")


# --- oscillator readouts (rotate_shift) -----------------------------------------------------


def test_oscillator_values_by_hand():
    """One pair, k = 2, m = 1, 6 bits (-32..31), u fed 8 x0 and w fed 3 x1:
    bin 0: u = 0 + 8 - (0 >> 1) = 8; w = 0 + 0 + (8 >> 1) = 4
    bin 1: u = 8 - 2 + 8 - 2 = 12; w = 4 - 1 + 3 + 6 = 12
    bin 2: u = 12 - 3 + 0 - 6 = 3; w = 12 - 3 + 0 + 1 = 10
    bin 3: u = 3 - 0 + 8 - 5 = 6; w = 10 - 2 + 3 + 3 = 14
    bin 4 (x = 5, 5: u fed 40): u = 6 - 1 + 40 - 7 = 38 -> 31; w = 14 - 3 + 15 + 15 = 41 -> 31
    and the rotation of negative values floors: u = -5 >> 1 = -3."""
    graph = _readout_graph(np.array([[8, 0], [0, 3]]), np.zeros(2, np.int64),
                           Readout(2, 6, np.ones(1), rotate_shift=1), bits=3)
    trace, saturated = run(graph, np.array([[1, 0], [1, 1], [0, 0], [1, 1], [5, 5]]))
    assert trace.arrays["ro/v"][:, 0].tolist() == [8, 12, 3, 6, 31]
    assert trace.arrays["ro/w"][:, 0].tolist() == [4, 12, 10, 14, 31]
    assert saturated["ro"] == 2
    neg = _readout_graph(np.array([[-5], [0]]), np.zeros(2, np.int64),
                         Readout(None, 8, np.ones(1), rotate_shift=1))
    trace, _ = run(neg, np.array([[1]]))
    assert (trace.arrays["ro/v"][0, 0], trace.arrays["ro/w"][0, 0]) == (-5, -3)


def test_oscillator_multiplier_by_hand():
    """c = 3, m = 2 (a rotation of 3/4), no leak, 8 bits, u fed 8 x0 and w fed 2 x1:
    bin 0: u = 0 + 8 - (3 * 0 >> 2) = 8; w = 0 + 0 + (3 * 8 >> 2) = 6
    bin 1 (x1 only): u = 8 - (18 >> 2) = 4; w = 6 + 2 + (12 >> 2) = 11
    bin 2: u = 4 - (33 >> 2) = -4; w = 11 + (-12 >> 2) = 8 (floored: -12 >> 2 = -3)
    bin 3: u = -4 - (24 >> 2) = -10; w = 8 + (-30 >> 2) = 0 (-30 >> 2 = -8)."""
    graph = _readout_graph(np.array([[8, 0], [0, 2]]), np.zeros(2, np.int64),
                           Readout(None, 8, np.ones(1), rotate_shift=2, rotate_mult=3), bits=3)
    trace, saturated = run(graph, np.array([[1, 0], [0, 1], [0, 0], [0, 0]]))
    assert trace.arrays["ro/v"][:, 0].tolist() == [8, 4, -4, -10]
    assert trace.arrays["ro/w"][:, 0].tolist() == [6, 11, 8, 0]
    assert saturated["ro"] == 0


@pytest.mark.parametrize("seed", range(4))
def test_oscillator_pytorch_path_equals_the_golden_model(seed):
    rng = np.random.default_rng(40 + seed)
    n_in, n = int(rng.integers(2, 6)), int(rng.integers(1, 5))
    m = int(rng.integers(0, 4)) if seed < 2 else 2 + seed
    readout = Readout([None, 2, 5, 6][seed], 8 + seed, rng.random(n) + 0.5,
                      rotate_shift=m, rotate_mult=1 if seed < 2 else 2 ** m - 1 - seed)
    graph = _readout_graph(rng.integers(-15, 16, (2 * n, n_in)), rng.integers(-4, 5, 2 * n),
                           readout)
    stim = random_stimulus(seed, 40, n_in, 0.5)
    trace, _ = check_integer_path(graph, stim)
    assert trace.arrays["ro/w"].any()


def test_oscillator_checks_and_scales():
    """Two currents a neuron, a shift below the width; the weights of u and w quantized with
    one scale a pair (the smaller); the dataflow top cannot build it."""
    from est.hw.dataflow import unsupported

    osc = Readout(3, 10, np.ones(2), rotate_shift=2)
    assert osc.check("ro", [Spec(4, 7, True, "current")]) == Spec(2, 10, True)
    with pytest.raises(IRError, match="two currents a neuron"):
        osc.check("ro", [Spec(3, 7, True, "current")])
    with pytest.raises(IRError, match="rotate_shift"):
        Readout(3, 10, np.ones(2), rotate_shift=10).check("ro", [Spec(4, 7, True, "current")])
    for m, c in ((2, 4), (6, 32), (3, 0), (3, True)):
        with pytest.raises(IRError, match="rotate_mult.*expected 1..31, below 2"):
            Readout(3, 10, np.ones(2), rotate_shift=m, rotate_mult=c).check(
                "ro", [Spec(4, 7, True, "current")])
    with pytest.raises(IRError, match="an integrator readout .* has rotate_mult 1, got 3"):
        Readout(3, 10, np.ones(4), rotate_mult=3).check("ro", [Spec(4, 7, True, "current")])
    weight = np.array([[[1.0], [0.5], [-0.25], [2.0]]])  # u0, u1, w0, w1
    conv, scale = Conv(weight, np.zeros(4)).quantize(Quantizer(8, "syn", {}), osc)
    np.testing.assert_allclose(scale, [127 / 1.0, 127 / 2.0] * 2)
    assert conv.weight[0, :, 0].tolist() == [127, 32, -32, 254 // 2]
    assert osc.rescale(None, scale).scale.tolist() == [127.0, 63.5]
    graph = _readout_graph(np.ones((4, 2), np.int64), np.zeros(4, np.int64), osc)
    assert unsupported(graph) == "node 'ro': the dataflow top has no oscillator readout"
    assert unsupported(_readout_graph(_WEIGHT, np.zeros(3, np.int64), Readout(2, 6, np.ones(3)))
                       ) is None
