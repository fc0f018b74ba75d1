"""``maxpool`` (compiler/ops/maxpool.py), the operation added in one module: golden values by
hand, the PyTorch path, the gateware with stalls and its stream rules (formal, with a mutant)."""

import numpy as np
import pytest

from est.compiler import graph as graph_ir
from est.compiler.graph import GraphBuilder, IRError
from est.compiler.ops import LIF, Conv, Input, MaxPool, Readout
from est.hw.dataflow import DataflowTop
from est.hw.formal import StreamRulesCheck, prove
from est.sim.amaranth_sim import simulate_top
from est.sim.interpreter import run
from netgen import check_integer_path


def _graph(window: int = 3):
    g = GraphBuilder()
    x = g.add("input", Input(3))
    pooled = g.add("pool", MaxPool(window), x)
    s = g.add("h", LIF(np.array([1, 2]), 1, 8),
              g.add("h.syn", Conv(np.array([[[1, 1, 0], [0, 2, -1]]]), np.zeros(2, np.int64)),
                    pooled))
    g.add("readout", Readout(None, 10, np.ones(2)),
          g.add("readout.syn", Conv(np.array([[[3, -1], [1, 2]]]), np.array([0, 1])), s))
    return g.build("pooled", ("readout",))


def test_values_by_hand():
    stim = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 1]])
    trace, _ = run(_graph(3), stim)
    assert trace.arrays["pool/values"].tolist() == [[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0],
                                                    [0, 1, 1]]


def test_pytorch_path_equals_the_golden_model():
    stim = (np.random.default_rng(2).random((40, 3)) < 0.3).astype(np.int64)
    golden, _ = check_integer_path(_graph(4), stim)


def test_gateware_bit_exact_with_stalls():
    g = _graph(3)
    stim = (np.random.default_rng(3).random((20, 3)) < 0.3).astype(np.int64)
    golden, _ = run(g, stim)
    dut = DataflowTop(g, 2, trace=True)
    got = simulate_top(dut, stim, stall_seed=5).trace
    assert "pool/values" in got.arrays
    for name in got.arrays:
        np.testing.assert_array_equal(got.arrays[name], golden.arrays[name], err_msg=name)


def test_saved_and_loaded(tmp_path):
    _graph(5).save(tmp_path)
    assert graph_ir.load(tmp_path).node("pool").op == MaxPool(5)


def test_window_checked():
    with pytest.raises(IRError, match="'pool', field 'window'"):
        g = GraphBuilder()
        g.add("pool", MaxPool(0), g.add("input", Input(2)))
        g.build("bad", ("pool",))


def test_stream_rules_hold_and_an_impatient_mutant_fails(tmp_path):
    from est.compiler.ops.maxpool import max_over_time

    MaxOverTime = max_over_time()
    check = StreamRulesCheck(MaxOverTime(3, 2, 3))
    assert prove("maxpool", check, check.ports, 8, tmp_path).passed

    class Impatient(MaxOverTime):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.comb += self.i.ready.eq(1)  # takes a new vector while its output is stalled
            return m

    check = StreamRulesCheck(Impatient(3, 2, 3))
    result = prove("maxpool_mutant", check, check.ports, 12, tmp_path, "bmc")
    assert result.status == "FAIL"
    assert any("payload changed while stalled" in line for line in result.failed)
