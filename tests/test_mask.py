"""``mask`` (compiler/ops/mask.py) and the gateware it lowers to (hw/lfsr.py, SpikeMask): the
mask alone against the golden step in amaranth.sim, random sizes, thresholds and seeds, on
spikes and on multi-bit values, random stalls; in a graph, the LFSR draws and the thresholds 0
and 256 by hand, the PyTorch path against the golden model, the parameter checks, save/load
and the cost row."""

import numpy as np
import pytest
from stream_drivers import run_stream

from est.boards.spec import get_board
from est.compiler import costs
from est.compiler import graph as graph_ir
from est.compiler.costs import Context
from est.compiler.graph import GraphBuilder, IRError, Spec
from est.compiler.ops import SEW, Conv, Input, Mask, Readout, Table
from est.hw.lfsr import SpikeMask
from est.sim import golden
from est.sim.interpreter import run
from est.sim.words import pack, unpack
from est.sw.integer import integer_forward
from netgen import check_integer_path, random_est_graph, random_stimulus


@pytest.mark.parametrize("case", range(8))
def test_spike_mask_matches_golden(case):
    rng = np.random.default_rng(case)
    n = int(rng.integers(1, 40))
    lanes = int(rng.integers(1, 6))
    threshold = [0, 1, 128, 255, int(rng.integers(1, 256))][case % 5]
    seed = int(rng.integers(1, 1 << 32))
    bits = [1, 3][case % 2]
    spikes = rng.integers(0, 1 << bits, (30, n)) * (rng.random((30, n)) < 0.6)
    dut = SpikeMask(n, threshold, seed, lanes, bits)
    got = run_stream(dut, [pack(s, bits) for s in spikes], stall_seed=case)
    state, params = seed, golden.MaskParams(n, threshold)
    for t, s in enumerate(spikes):
        want, state = golden.mask_step(s, state, params)
        np.testing.assert_array_equal(unpack(got[t], n, bits), want, err_msg=f"bin {t}")
    if 64 <= threshold < 256:  # drops are then certain to show over 30 bins
        assert any(unpack(g, n, bits).sum() < s.sum() for g, s in zip(got, spikes, strict=True))


# --- the operation in a graph: values by hand, the PyTorch path, checks, save/load, cost -----

SEED = 0x01234567  # the worked example of docs/semantics.md 8.2
ICEBREAKER = get_board("icebreaker")


def _graph(threshold: int, seed: int = SEED, wide: bool = False):
    """input(4) -> mask -> a kernel-1 conv -> readout; ``wide``: the mask reads 3-bit values
    ``input + [1, 0, 1, 1] + [0, 0, 0, 1]`` (two SEW adds of one-row tables) instead."""
    g = GraphBuilder()
    x = g.add("input", Input(4))
    if wide:
        x = g.add("sum1", SEW("add"), g.add("tab1", Table(np.array([[1, 0, 1, 1]]))), x)
        x = g.add("sum2", SEW("add"), g.add("tab2", Table(np.array([[0, 0, 0, 1]]))), x)
    m = g.add("mask", Mask(threshold, seed), x)
    g.add("readout", Readout(None, 16, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, 4), np.int64), np.zeros(1, np.int64)), m))
    return g.build("masked", ("readout",))


def test_lfsr_draws_by_hand():
    # from 0x01234567 the draws are 70 99 171 230 | 107 88 40 252 | 63 134 240 165 (4 a bin,
    # every channel draws, spike or not); kept where draw >= 99 (99 itself is kept):
    # bin 0 keep 0111, bin 1 keep 1001, bin 2 keep 0111
    stim = np.array([[1, 1, 1, 1], [0, 1, 1, 1], [1, 1, 0, 1]])
    trace, _ = run(_graph(99), stim)
    assert trace.arrays["mask/values"].tolist() == [[0, 1, 1, 1], [0, 0, 0, 1], [0, 1, 0, 1]]
    # one draw more to the threshold (100) drops channel 1 of bin 0 (draw 99)
    trace, _ = run(_graph(100), stim)
    assert trace.arrays["mask/values"].tolist()[0] == [0, 0, 1, 1]


@pytest.mark.parametrize("lanes", [1, 3])  # 3: the last step draws for 1 channel, not 3
def test_gateware_gives_the_draws_by_hand(lanes):
    stim = np.array([[1, 1, 1, 1], [0, 1, 1, 1], [1, 1, 0, 1]])  # as in test_lfsr_draws_by_hand
    got = run_stream(SpikeMask(4, 99, SEED, lanes), [pack(s, 1) for s in stim], None)
    assert [unpack(w, 4, 1).tolist() for w in got] == [[0, 1, 1, 1], [0, 0, 0, 1],
                                                        [0, 1, 0, 1]]
    got = run_stream(SpikeMask(4, 256, SEED, lanes, 2), [pack([3, 1, 2, 3], 2)] * 2, None)
    assert [unpack(w, 4, 2).tolist() for w in got] == [[0, 0, 0, 0]] * 2


def test_a_multi_bit_value_is_kept_or_dropped_whole():
    # docs/semantics.md 8.2: draws 70 99 171 230 against 128 turn [2, 1, 2, 3] into [0, 0, 2, 3]
    trace, _ = run(_graph(128, wide=True), np.ones((1, 4), np.int64))
    assert trace.arrays["sum2/values"].tolist() == [[2, 1, 2, 3]]
    assert trace.arrays["mask/values"].tolist() == [[0, 0, 2, 3]]


@pytest.mark.parametrize("threshold, keep", [(0, True), (1, True), (256, False)])
def test_threshold_0_keeps_everything_and_256_nothing(threshold, keep):
    # draws are 0..255: every draw is >= 0 (and, in these seeds' first 80 draws, >= 1) and
    # none >= 256
    stim = (np.random.default_rng(7).random((20, 4)) < 0.6).astype(np.int64)
    for g in (_graph(threshold), _graph(threshold, seed=0xFFFFFFFF)):
        values = run(g, stim)[0].arrays["mask/values"]
        np.testing.assert_array_equal(values, stim if keep else np.zeros_like(stim))
        np.testing.assert_array_equal(integer_forward(g, stim)["mask/values"], values)


@pytest.mark.parametrize("seed", [1, 2])
def test_pytorch_path_equals_the_golden_model(seed):
    graphs = [random_est_graph(seed, attention="sdsa", rsm=0.5, n_in=4, d=4, blocks=1, hidden=5),
              _graph(99 + 60 * seed, seed=seed * 0x9E3779B9 % (1 << 32)),
              _graph(128, seed=seed, wide=True)]
    for g in graphs:
        assert "mask" in g.kinds()
        stim = random_stimulus(seed, 30, g.n_in, 0.5)
        golden_trace, _ = check_integer_path(g, stim, g.name)


@pytest.mark.parametrize("threshold, seed, field", [(257, 1, "threshold"), (-1, 1, "threshold"),
                                                    (128, 0, "seed"), (128, 1 << 32, "seed")])
def test_bad_parameters_refused(threshold, seed, field):
    with pytest.raises(IRError) as err:
        _graph(threshold, seed)
    assert (err.value.node, err.value.field) == ("mask", field)


def test_signed_or_current_input_refused():
    with pytest.raises(IRError) as err:
        Mask(128, 1).check("m", [Spec(4, 8, True)])
    assert (err.value.node, err.value.field) == ("m", "inputs")
    g = GraphBuilder()
    syn = g.add("syn", Conv(np.ones((1, 2, 2), np.int64), np.zeros(2, np.int64)),
                g.add("input", Input(2)))
    g.add("mask", Mask(128, 1), syn)
    with pytest.raises(IRError) as err:
        g.build("bad", ("mask",))
    assert (err.value.node, err.value.field) == ("mask", "inputs")


def test_saved_and_loaded(tmp_path):
    _graph(77, seed=0xDEADBEEF).save(tmp_path)
    assert graph_ir.load(tmp_path).node("mask").op == Mask(77, 0xDEADBEEF)


@pytest.mark.parametrize("lanes, cycles, luts", [(1, 5, 52), (3, 3, 132), (8, 2, 172)])
def test_cost_by_hand(lanes, cycles, luts):
    g = _graph(128, wide=True)
    ins = [g.specs()["sum2"]]  # 4 channels of 3 bits
    (row,) = g.node("mask").op.cost("mask", ins, Context(lanes, ICEBREAKER, False))
    # cycles ceil(4 / lanes) + 1; LUTs lanes * 40 + 4 * 3 (at most 4 lanes: one per channel);
    # FFs 32 + 2 * 4 * 3 + 8; the 32-bit LFSR state
    assert (row.name, row.kind, row.shape) == ("mask", "lfsr", "4x3b")
    assert (row.cycles, row.luts, row.ffs, row.memory_bits) == (cycles, luts, 64, 32)
    assert (row.synaptic_ops, row.dense_bound, row.memory_bound, row.block_rams) == (0, 0, 0, 0)
    assert row in costs.stages(g, lanes, ICEBREAKER, False)
