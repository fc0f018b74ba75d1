"""``attention`` (compiler/ops/attention.py) and the gateware it lowers to (hw/attention.py,
SpikeAttention): SDSA and SSA alone against the golden step in amaranth.sim, random heads,
windows and count thresholds, random stalls; in a graph, SDSA and SSA by hand, the PyTorch
path against the golden model, the parameter checks, save/load and the cost rows."""

import numpy as np
import pytest
from stream_drivers import run_stream

from est.boards.spec import get_board
from est.compiler import costs
from est.compiler import graph as graph_ir
from est.compiler.costs import Context
from est.compiler.graph import GraphBuilder, IRError, Spec
from est.compiler.ops import Attention, Conv, Input, Readout, Table
from est.hw.attention import SpikeAttention
from est.sim import golden
from est.sim.interpreter import run
from est.sim.words import pack, unpack
from est.sw.integer import integer_forward
from netgen import check_integer_path, random_est_graph, random_stimulus


@pytest.mark.parametrize("case", range(8))
def test_spike_attention_matches_golden(case):
    rng = np.random.default_rng(100 + case)
    mode = ["sdsa", "ssa"][case % 2]
    heads = int(rng.choice([1, 2, 4]))
    d = heads * int(rng.integers(1, 6))
    window = int(rng.integers(1, 9))
    threshold = int(rng.integers(1, window + 2)) if case % 4 == 0 else 1
    dut = SpikeAttention(d, window, mode, heads, threshold)
    bins = 40
    q, k, v = ((rng.random((bins, d)) < p).astype(np.int64) for p in (0.5, 0.4, 0.6))
    got = run_stream(dut, [pack(np.concatenate([q[t], k[t], v[t]]), 1) for t in range(bins)],
                     stall_seed=case)
    params = golden.AttentionParams(mode, window, heads, threshold)
    hist = golden.history_init(window, 2 * d)
    for t in range(bins):
        want, hist = golden.attention_step(q[t], k[t], v[t], hist, params)
        have = unpack(got[t], d, 1 if mode == "sdsa" else dut.out_bits)
        np.testing.assert_array_equal(have, want, err_msg=f"{mode} bin {t}")


# --- the operation in a graph: values by hand, the PyTorch path, checks, save/load, cost -----

ICEBREAKER = get_board("icebreaker")
# SDSA example, d = 3, four bins: Q is the stimulus, K and V two tables (one row a bin)
SDSA_Q = np.array([[1, 1, 1], [1, 1, 0], [1, 1, 1], [0, 1, 1]])
SDSA_K = np.array([[1, 1, 0], [1, 0, 1], [0, 0, 1], [0, 1, 0]])
SDSA_V = np.array([[1, 0, 1], [1, 1, 1], [0, 1, 1], [1, 1, 0]])
# K AND V by bin: 100 101 001 010; its sum over the window of 2 (this bin and the one before):
# [1,0,0] [2,0,1] [1,0,2] [0,1,1]
# SSA example, d = 4, three bins
SSA_Q = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 0]])
SSA_K = np.array([[1, 1, 1, 0], [0, 1, 1, 1], [1, 1, 0, 1]])
SSA_V = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1]])


def _graph(op: Attention, keys: np.ndarray, values: np.ndarray, d: int | None = None):
    """Q from the input (``d`` channels, those of the tables by default), K and V played from
    tables, the attention into a kernel-1 conv and a readout."""
    g = GraphBuilder()
    q = g.add("input", Input(d or keys.shape[1]))
    a = g.add("attn", op, q, g.add("keys", Table(keys)), g.add("values", Table(values)))
    g.add("readout", Readout(None, 16, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, keys.shape[1]), np.int64),
                                    np.zeros(1, np.int64)), a))
    return g.build("attended", ("readout",))


@pytest.mark.parametrize("window, count_threshold, want", [
    # q AND (count >= 1): counts [1,0,0] [2,0,1] [1,0,2] [0,1,1] against q 111 110 111 011
    (2, 1, [[1, 0, 0], [1, 0, 0], [1, 0, 1], [0, 1, 1]]),
    # count >= 2 only at bin 1 channel 0 and bin 2 channel 2
    (2, 2, [[0, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]]),
    # window 1: q AND k AND v of the bin alone (100 101 001 010 against q)
    (1, 1, [[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]]),
    # window 2 never holds 3 hits
    (2, 3, [[0, 0, 0]] * 4),
])
def test_sdsa_by_hand(window, count_threshold, want):
    g = _graph(Attention("sdsa", window, 1, count_threshold), SDSA_K, SDSA_V)
    assert g.specs()["attn"] == Spec(3, 1)
    trace, _ = run(g, SDSA_Q)
    assert trace.arrays["attn/spikes"].tolist() == want
    assert integer_forward(g, SDSA_Q)["attn/spikes"].tolist() == want


@pytest.mark.parametrize("heads, bits, want", [
    # heads of channels 0-1 and 2-3, window 2; score(tau) = popcount(q_t[h] AND k_tau[h]):
    # bin 0: h0 q 11 k0 11 -> 2, out 2 * v0[0:2] = [2, 0]; h1 q 01 k0 10 -> 0: [0, 0]
    # bin 1: h0 q 10: k0 -> 1, k1 01 -> 0: 1 * v0 = [1, 0]
    #        h1 q 11: k0 10 -> 1, k1 11 -> 2: 1 * v0[2:4] + 2 * v1[2:4] = [1, 1] + [2, 0]
    # bin 2: h0 q 01: k1 01 -> 1, k2 11 -> 1: v1 + v2 = [0, 1] + [1, 1]
    #        h1 q 10: k1 11 -> 1, k2 01 -> 0: v1[2:4] = [1, 0]
    (2, 3, [[2, 0, 0, 0], [1, 0, 3, 1], [1, 2, 1, 0]]),
    # one head of 4: scores bin 0: 2 (2 * v0); bin 1: 2, 2 (2 * v0 + 2 * v1);
    # bin 2: 2, 1 (2 * v1 + v2)
    (1, 4, [[2, 0, 2, 2], [2, 2, 4, 2], [1, 3, 2, 1]]),
])
def test_ssa_scores_by_hand(heads, bits, want):
    g = _graph(Attention("ssa", 2, heads), SSA_K, SSA_V)
    # counts up to window * d / heads: 4 -> 3 bits, 8 -> 4 bits
    assert g.specs()["attn"] == Spec(4, bits)
    trace, _ = run(g, SSA_Q)
    assert trace.arrays["attn/counts"].tolist() == want
    assert integer_forward(g, SSA_Q)["attn/counts"].tolist() == want


@pytest.mark.parametrize("seed", [1, 2])
def test_pytorch_path_equals_the_golden_model(seed):
    rng = np.random.default_rng(seed)
    keys, values = ((rng.random((9, 4)) < 0.6).astype(np.int64) for _ in range(2))
    graphs = [random_est_graph(seed, attention="sdsa", n_in=4, d=4, blocks=1, hidden=5),
              random_est_graph(seed, attention="ssa", sew="and", n_in=4, d=4, blocks=1,
                               hidden=5),
              _graph(Attention("sdsa", 3, 2, 2), keys, values),
              _graph(Attention("ssa", 5, 2), keys, values)]
    for g in graphs:
        stim = random_stimulus(seed, 30, g.n_in, 0.6)
        golden_trace, _ = check_integer_path(g, stim, g.name)
        assert any(name.endswith(("/spikes", "/counts")) and "attn" in name and value.any()
                   for name, value in golden_trace.arrays.items())


@pytest.mark.parametrize("op, d, field", [
    (Attention("softmax", 2), 4, "mode"),
    (Attention("sdsa", 0), 4, "window"),
    (Attention("ssa", 2, 3), 4, "heads"),  # 3 does not divide 4
    (Attention("sdsa", 2, 0), 4, "heads"),
    (Attention("sdsa", 2, 1, 0), 4, "count_threshold"),
    (Attention("sdsa", 2), 3, "inputs"),  # Q of 3 channels, K and V of 4
])
def test_bad_parameters_and_inputs_refused(op, d, field):
    tab = np.ones((2, 4), np.int64)
    with pytest.raises(IRError) as err:
        _graph(op, tab, tab, d)
    assert (err.value.node, err.value.field) == ("attn", field)


def test_multi_bit_input_refused():
    with pytest.raises(IRError) as err:
        Attention("ssa", 2).check("a", [Spec(4, 1), Spec(4, 2), Spec(4, 1)])
    assert (err.value.node, err.value.field) == ("a", "inputs")


def test_saved_and_loaded(tmp_path):
    op = Attention("ssa", 3, 2, 2)
    _graph(op, SSA_K, SSA_V).save(tmp_path)
    assert graph_ir.load(tmp_path).node("attn").op == op


def test_cost_by_hand():
    ctx = Context(2, ICEBREAKER, False)
    g = _graph(Attention("sdsa", 2), SDSA_K, SDSA_V)
    (row,) = g.node("attn").op.cost("attn", [Spec(3, 1)] * 3, ctx)
    # d = 3, window 2: LUTs d * ceil(2 / 2) + d = 6, FFs window * d + d = 9, one cycle
    assert (row.kind, row.shape, row.cycles, row.luts, row.ffs) == ("sdsa", "3x1b", 1, 6, 9)
    assert (row.synaptic_ops, row.dense_bound, row.block_rams) == (0, 0, 0)
    assert row.memory_bits == 6  # K and V of the one earlier bin: 2 * 3 * (2 - 1)
    g = _graph(Attention("ssa", 2, 2), SSA_K, SSA_V)
    (row,) = g.node("attn").op.cost("attn", [Spec(4, 1)] * 3, ctx)
    # d = 4, 2 heads of 2, window 2, 3-bit counts: LUTs 2 * 2 * 2 * 2 + 4 * 3 * 2 // 2 = 28,
    # FFs 2 * 2 * 4 + 4 * 3 = 28
    assert (row.kind, row.shape, row.cycles, row.luts, row.ffs) == ("ssa", "4x3b", 1, 28, 28)
    assert (row.synaptic_ops, row.dense_bound, row.block_rams) == (0, 0, 0)
    assert row.memory_bits == 8  # 2 * 4 * (2 - 1)
    assert row in costs.stages(g, 2, ICEBREAKER, False)
