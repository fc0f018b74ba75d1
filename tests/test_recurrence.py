"""``recurrence`` (compiler/ops/recurrence.py) and the gateware it lowers to (hw/tpu.py,
TemporalUnit). The operation module: its parameter checks, values by hand (``w_rec`` lag 1
first over the unit's own past spikes), the PyTorch path against the golden model,
quantization by hand (one scale per channel shared by ``w_in`` and ``w_rec``), the width from a
calibration run and the cost row. The gateware: the unit alone against the golden recurrence in
amaranth.sim, random sizes, kernels, input widths, leaks and resets, random stalls."""

import numpy as np
import pytest
from stream_drivers import run_stream

from est.boards.spec import get_board
from est.compiler import costs
from est.compiler.costs import Context
from est.compiler.graph import GraphBuilder, IRError, Spec
from est.compiler.ops import Conv, Input, Readout, Recurrence
from est.compiler.passes import Quantizer
from est.hw.tpu import TemporalUnit
from est.sim import golden
from est.sim.interpreter import run
from est.sim.words import pack, unpack
from netgen import check_integer_path, random_stimulus

ICEBREAKER = get_board("icebreaker")


@pytest.mark.parametrize("case", range(6))
def test_temporal_unit_matches_golden(case):
    rng = np.random.default_rng(300 + case)
    d, kernel, lanes = int(rng.integers(1, 12)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    x_bits = [1, 2, 3][case % 3]
    v_bits = int(rng.integers(6, 12))
    leak = [None, 0, 1, 3][case % 4]
    reset = ["subtract", "zero"][case % 2]
    w_in, bias = rng.integers(-4, 9, d), rng.integers(-3, 6, d)
    w_rec = rng.integers(-6, 7, (kernel, d))
    theta = rng.integers(1, 12, d)
    dut = TemporalUnit(w_in, w_rec, bias, lanes, x_bits, v_bits, leak, theta, reset, trace=True)
    bins = 40
    r = rng.integers(0, 1 << x_bits, (bins, d))
    got = run_stream(dut, [pack(row, x_bits) for row in r], stall_seed=case)
    params = golden.LIFParams(theta, leak, v_bits, reset)
    state, hist = golden.lif_init(d), golden.history_init(kernel + 1, d)
    fired = 0
    for t in range(bins):
        current = bias + w_in * r[t] + (w_rec * hist.x).sum(axis=0)
        out, state = golden.lif_step(current, state, params)
        y = out.spikes.astype(np.int64)
        _, hist = golden.history_push(y, hist)
        fired += y.sum()
        np.testing.assert_array_equal(unpack(got[t], d, 1), y, err_msg=f"spikes bin {t}")
        np.testing.assert_array_equal(unpack(got[t], d, v_bits, True, pos=d), state.v,
                                      err_msg=f"v bin {t}")
    assert 0 < fired < bins * d


# --- the operation (compiler/ops/recurrence.py) --------------------------------------------


def _tpu_graph(tpu: Recurrence):
    """input -> ``tpu`` ("t") -> conv -> readout."""
    d = tpu.w_in.shape[0]
    g = GraphBuilder()
    y = g.add("t", tpu, g.add("input", Input(d)))
    g.add("readout", Readout(None, 12, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, d), np.int64), np.zeros(1, np.int64)), y))
    return g.build("tpu", ("readout",))


def _by_hand(v_bits: int = 8) -> Recurrence:
    # lag 1: -2 (channel 0), 3 (channel 1); lag 2: 10, -1. Thresholds 3, zero reset, no leak.
    return Recurrence(np.array([4, 4]), np.array([[-2, 3], [10, -1]]), np.array([0, 1]),
                      np.array([3, 3]), None, v_bits, "zero")


_STIM = np.array([[1, 0], [0, 0], [0, 1], [0, 0], [0, 0]])


def test_values_by_hand_lag_1_first():
    trace, saturated = run(_tpu_graph(_by_hand()), _STIM)
    # c_t = b + 4 x_t - 2 y_{t-1} + 10 y_{t-2} (channel 0), 1 + 4 x_t + 3 y_{t-1} - y_{t-2}
    # channel 0: 4 fires (v 0); -2 (y_0 at lag 1): v -2; +10 (y_0 at lag 2, y_1 = 0): v 8 fires;
    # -2: v -2; +10: v 8 fires. Lag 2 first would make bin 1 +10 and fire at once.
    # channel 1: 1 (v 1); 1 (v 2); 1 + 4 = 5 (v 7 fires); 1 + 3 = 4 fires; 1 + 3 - 1 = 3 fires
    assert trace.arrays["t/current"].tolist() == [[4, 1], [-2, 1], [10, 5], [-2, 4], [10, 3]]
    assert trace.arrays["t/spikes"].tolist() == [[1, 0], [0, 0], [1, 1], [0, 1], [1, 1]]
    assert trace.arrays["t/v"].tolist() == [[0, 1], [-2, 2], [0, 0], [-2, 0], [0, 0]]
    assert saturated["t"] == 0


def test_its_neurons_leak_saturate_and_subtract_by_hand():
    # one channel, w_in 20, w_rec [-1], threshold 6, k = 1, 5 bits (-16..15), subtract:
    # bin 0: sat(0 + 20) = 15 fires: 9; bin 1: 9 - 4 - 1 = 4 (y_0 at lag 1): no spike;
    # bin 2: 4 - 2 + 20 = 22 -> 15 fires: 9; bin 3: 9 - 4 + 0 - 1 = 4
    tpu = Recurrence(np.array([20]), np.array([[-1]]), np.zeros(1, np.int64), np.array([6]), 1,
                     5, "subtract")
    trace, saturated = run(_tpu_graph(tpu), np.array([[1], [0], [1], [0]]))
    assert trace.arrays["t/current"][:, 0].tolist() == [20, -1, 20, -1]
    assert trace.arrays["t/v"][:, 0].tolist() == [9, 4, 9, 4]
    assert trace.arrays["t/spikes"][:, 0].tolist() == [1, 0, 1, 0]
    assert saturated["t"] == 2


def _random_tpu(seed: int) -> Recurrence:
    rng = np.random.default_rng(seed)
    d, kernel = int(rng.integers(2, 7)), seed % 4 + 1
    return Recurrence(rng.integers(-3, 9, d), rng.integers(-6, 7, (kernel, d)),
                      rng.integers(-2, 5, d), rng.integers(1, 8, d), [None, 0, 1, 3][seed % 4],
                      5 + seed % 3, ["subtract", "zero"][seed % 2])


@pytest.mark.parametrize("seed", range(4))
def test_pytorch_path_equals_the_golden_model(seed):
    graph = _tpu_graph(_random_tpu(seed))
    for bins in (40, 2):  # 2 bins: fewer than a kernel of 3 or 4 reaches back
        stim = random_stimulus(seed, bins, graph.n_in, 0.5)
        golden_trace, _ = check_integer_path(graph, stim, f"{bins} bins")
        assert bins == 2 or golden_trace.arrays["t/spikes"].any()


def test_check_gives_spikes_and_the_current_width():
    tpu = _by_hand()
    assert tpu.check("t", [Spec(2, 1)]) == Spec(2, 1)
    # currents: channel 0 from -2 to 4 + 10 = 14, channel 1 from 1 - 1 = 0 to 1 + 4 + 3 = 8:
    # -2..14 needs 5 bits; on 2-bit inputs (x up to 3) w_in gives 12: -2..22, 6 bits
    assert [f[1:] for f in tpu.fields("t", [Spec(2, 1)])] == [(2, 1, False, True),
                                                               (2, 8, True, True),
                                                               (2, 5, True, False)]
    assert tpu.acc_bits(1) == 5 and tpu.acc_bits(2) == 6


_D = 2
_OK = dict(w_in=np.ones(_D, np.int64), w_rec=np.ones((2, _D), np.int64),
           bias=np.zeros(_D, np.int64), threshold=np.ones(_D, np.int64), leak_shift=None,
           v_bits=8)


def _bad(**changes) -> Recurrence:
    return Recurrence(**{**_OK, **changes})


@pytest.mark.parametrize("tpu, spec, field", [
    (_bad(w_rec=np.ones(_D, np.int64)), Spec(_D, 1), "w_rec"),  # no lag axis
    (_bad(w_rec=np.ones((2, _D + 1), np.int64)), Spec(_D, 1), "w_rec"),  # 3 channels of 2
    (_bad(w_rec=np.ones((0, _D), np.int64)), Spec(_D, 1), "w_rec"),  # kernel 0
    (_bad(w_rec=np.ones((2, _D))), Spec(_D, 1), "w_rec"),  # floats
    (_bad(w_in=np.ones(_D + 1, np.int64)), Spec(_D, 1), "w_in"),
    (_bad(w_in=np.full(_D, 1 << 15)), Spec(_D, 1), "w_in"),  # beyond 16 bits
    (_bad(bias=np.zeros((1, _D), np.int64)), Spec(_D, 1), "bias"),
    (_bad(bias=np.full(_D, (1 << 31) - 1)), Spec(_D, 1), "bias"),  # 33-bit accumulator
    (_bad(threshold=np.zeros(_D, np.int64)), Spec(_D, 1), "threshold"),
    (_bad(threshold=np.full(_D, 128)), Spec(_D, 1), "threshold"),  # over 8 bits
    (_bad(leak_shift=8), Spec(_D, 1), "leak_shift"),
    (_bad(reset="none"), Spec(_D, 1), "reset"),
    (_bad(v_bits=40), Spec(_D, 1), "v_bits"),
    (_bad(), Spec(_D, 6, True, "current"), "inputs"),  # a convolution's current
], ids=["w_rec-1d", "w_rec-channels", "kernel-0", "float-w_rec", "w_in-shape", "w_in-17-bits",
        "bias-shape", "acc-33-bits", "threshold-0", "threshold-over-v_bits", "leak-eq-v_bits",
        "reset", "v_bits-40", "current-input"])
def test_bad_parameters_are_refused_naming_node_and_field(tpu, spec, field):
    with pytest.raises(IRError) as err:
        tpu.check("t", [spec])
    assert (err.value.node, err.value.field) == ("t", field)


def test_quantize_by_hand_one_scale_for_w_in_and_w_rec():
    q = Quantizer(8, "t", {"t": {"w_in": "tpu_w", "w_rec": "tpu_r", "bias": "tpu_b",
                                 "threshold": "tpu_t"}})  # qmax 127
    tpu = Recurrence(np.array([127 / 64, -0.5, 0.0]),
                     np.array([[-2.5 / 64, 0.25, 0.0],  # lag 1
                               [3.5 / 64, 1.0, 0.0]]),  # lag 2
                     np.array([-5.5 / 64, 0.5, 0.25]), np.array([4.5 / 64, 0.003, 0.25]), 1, 32,
                     "zero")
    op, s = tpu.quantize(q, tpu)
    # s = 127 / max(|w_in|, |w_rec| over lags): channel 0 127 / (127/64) = 64 (from w_in),
    # channel 1 127 / 1.0 = 127 (from w_rec at lag 2), channel 2 none: 127 / threshold 0.25
    assert s.tolist() == [64.0, 127.0, 508.0]
    assert op.w_in.tolist() == [127, -64, 0]  # -63.5 -> -64
    assert op.w_rec.tolist() == [[-2, 32, 0], [4, 127, 0]]  # -2.5 -> -2, 3.5 -> 4, 31.75
    assert op.bias.tolist() == [-6, 64, 127]  # -5.5 -> -6, 63.5 -> 64, 0.25 * 508
    assert op.threshold.tolist() == [4, 1, 127]  # 4.5 -> 4, 0.381 -> 0 -> at least 1
    assert (op.leak_shift, op.v_bits, op.reset) == (1, 32, "zero")
    assert op.check("t", [Spec(3, 1)]) == Spec(3, 1)


def test_fit_width_from_a_wide_run():
    tpu = _by_hand(32)
    trace, _ = run(_tpu_graph(tpu), _STIM)
    # v1 = v_prev + c: channel 0: 4, -2, -2 + 10 = 8, -2, 8; channel 1: 1, 2, 7, 4, 3;
    # -2..8 with the thresholds 3: 5 bits (-16..15), chosen 6. The unit's own current is used
    # (the input's spikes are not its current).
    op, need = tpu.fit_width("t", trace.arrays, None, 32)
    assert (op.v_bits, need) == (6, 5)
    assert op.w_rec.tolist() == tpu.w_rec.tolist() and op.reset == "zero"
    assert tpu.fit_width("t", trace.arrays, None, 5)[0].v_bits == 5  # max_v_bits caps it


def test_fit_width_by_hand_is_wider_than_the_leak():
    # v1 = 0 + 1; the threshold 3 needs 3 bits (-4..3), chosen 4, but a shift of 9 needs 10
    trace = {"t/v": np.array([[1]]), "t/current": np.array([[1]])}
    tpu = Recurrence(np.ones(1, np.int64), np.ones((1, 1), np.int64), np.zeros(1, np.int64),
                     np.array([3]), 9, 32)
    assert tpu.fit_width("t", trace, None, 24)[0].v_bits == 10
    assert Recurrence(*[getattr(tpu, f) for f in ("w_in", "w_rec", "bias", "threshold")], None,
                      32).fit_width("t", trace, None, 24)[0].v_bits == 4


@pytest.mark.parametrize("lanes, state_in_logic, want", [
    # d 4, kernel 2: ops 4*(1+2) = 12; lanes 1: 4 groups, 4 + 2 cycles; LUTs: a lane's
    # 3*1 + 3*4 + 3*3*mux(4) = 18 -> 33, neurons 6*6 + 30 + 6 + 6*mux(4) = 84, + 30: 147;
    # FFs 2*4 past spikes + 4 inputs + 4 acc + neurons (4 + 4 + 4 + 24) = 52
    (1, True, (6, 4, 147, 52)),
    # lanes 3: 2 groups, 2 + 2 cycles; LUTs 3*(3 + 12 + 9) = 72, neurons 3*36 + 30 + 18 + a
    # 2-word state RAM in logic (2*18 + 18) = 210, + 30: 312; FFs 8 + 4 + 12 + (4+2+4+24) = 58
    (3, False, (4, 2, 312, 58)),
])
def test_cost_by_hand(lanes, state_in_logic, want):
    # weights -4..3: 3 bits; currents: channel 0 -1..3+1, channel 1 -4..1, 0..2, 0..3: -4..4
    # in 4 bits; memory 12*3 + 4*(4 + 2*6) + 2*4 past spikes = 108
    tpu = Recurrence(np.array([3, -4, 1, 0]), np.array([[1, 1, 1, 1], [-1, 0, 0, 2]]),
                     np.zeros(4, np.int64), np.ones(4, np.int64), None, 6)
    (row,) = tpu.cost("t", [Spec(4, 1)], Context(lanes, ICEBREAKER, state_in_logic))
    assert (row.name, row.kind, row.shape) == ("t", "tpu", "4x(1+2)")
    assert (row.synaptic_ops, row.memory_bound, row.memory_bits, row.block_rams) == (12, 0, 108,
                                                                                    0)
    assert (row.cycles, row.dense_bound, row.luts, row.ffs) == want
    assert row in costs.stages(_tpu_graph(tpu), lanes, ICEBREAKER, state_in_logic)


def test_the_current_width_does_not_depend_on_the_dtype():
    wide = Recurrence(np.array([-20000]), np.zeros((1, 1), np.int64), np.array([-20000]),
                      np.ones(1, np.int64), None, 8)
    narrow = Recurrence(*(a.astype(np.int16) for a in (wide.w_in, wide.w_rec, wide.bias,
                                                       wide.threshold)), None, 8)
    # lo = -20000 - 20000 = -40000: 17 bits (-65536..65535)
    assert wide.acc_bits(1) == 17
    assert narrow.acc_bits(1) == 17  # int16 would wrap -40000 to 25536 (2 bits)
    # int32 would wrap 2**31 - 1 + 1, and a 33-bit accumulator would escape the check
    big = Recurrence(np.ones(1, np.int32), np.zeros((1, 1), np.int32),
                     np.array([(1 << 31) - 1], np.int32), np.ones(1, np.int32), None, 8)
    with pytest.raises(IRError) as err:
        big.check("t", [Spec(1, 1)])
    assert err.value.field == "bias"
