"""The dataflow backend (hw/dataflow.py) in amaranth.sim: every exposed tensor of random EST
and MLP graphs equal to the golden interpreter, with random stalls, at lanes 1-16; cycles per
bin with the trace off, against the schedule."""

import numpy as np
import pytest

from est.hw.dataflow import DataflowTop, measure_cycles
from est.hw.synapse import ceil_div
from est.sim.amaranth_sim import simulate_top
from est.sim.interpreter import run
from est.sim.trace import compare
from netgen import random_est_graph, random_mlp_graph, random_stimulus

CASES = [(1, dict(attention="sdsa", sew="add")), (3, dict(attention="ssa", sew="iand")),
         (2, dict(attention="none", sew="and", cpg=False)),
         (5, dict(sew="none", tpu=True, d=12, heads=3, blocks=1))]


@pytest.mark.parametrize("lanes, kw", CASES)
def test_est_graph_bit_exact_with_stalls(lanes, kw):
    g = random_est_graph(lanes, **kw)
    stim = random_stimulus(lanes, 12, g.n_in)
    golden, _ = run(g, stim)
    dut = DataflowTop(g, lanes, trace=True)
    got = simulate_top(dut, stim, stall_seed=lanes).trace
    assert len(got.arrays) == len(dut.fields) > 10
    for name in got.arrays:
        np.testing.assert_array_equal(got.arrays[name], golden.arrays[name], err_msg=name)


def test_mlp_graph_bit_exact_and_cycles():
    g = random_mlp_graph(7)
    stim = random_stimulus(7, 16, g.n_in)
    golden, _ = run(g, stim)
    dut = DataflowTop(g, 3, trace=True)
    run_ = simulate_top(dut, stim, stall_seed=7)
    for name in run_.trace.arrays:
        np.testing.assert_array_equal(run_.trace.arrays[name], golden.arrays[name])
    # a dense layer: (groups - 1) * max(n_in, 2) + n_in + 3 cycles (docs/semantics.md section 7)
    assert measure_cycles(g, 3) == (4 - 1) * 12 + 12 + 3 + (3 - 1) * 10 + 10 + 3 + \
        (2 - 1) * 7 + 7 + 3



@pytest.mark.parametrize("seed, lanes", [(0, 1), (1, 2), (2, 3), (3, 7), (4, 16)])
def test_dataflow_top_of_an_mlp_is_bit_exact_with_stalls(seed, lanes):
    graph = random_mlp_graph(seed)
    stimulus = random_stimulus(seed, 24, graph.n_in)
    golden_trace, _ = run(graph, stimulus)
    dut = DataflowTop(graph, lanes, trace=True)
    result = compare(golden_trace, simulate_top(dut, stimulus, stall_seed=seed).trace)
    assert result.tensors == ("fc1/spikes", "fc1/v", "fc2/spikes", "fc2/v", "readout/v")
    assert result.mismatches == 0, result.first


def test_cycles_per_bin_meet_the_schedule():
    """Each dense layer takes (groups - 1) * max(n_in, 2) + n_in + 3 cycles, back to back."""
    graph = random_mlp_graph(9, n_in=16, hidden=(12,), n_out=4)
    dut = DataflowTop(graph, 4, trace=False)
    run_ = simulate_top(dut, random_stimulus(9, 4, 16))
    schedule = sum((ceil_div(n_out, 4) - 1) * max(n_in, 2) + n_in + 3
                   for n_out, n_in in ((12, 16), (4, 12)))
    assert schedule == measure_cycles(graph, 4)
    assert run_.latency_cycles[1:] == [schedule] * 3


@pytest.mark.parametrize("cfg", [
    dict(attention="sdsa", sew="add", cpg=True, tpu=True, rsm=0.5),
    dict(attention="ssa", sew="and", cpg=False, tpu=True, rsm=0.0),
    dict(attention="sdsa", sew="iand", cpg=True, tpu=False, rsm=0.25),
    dict(attention="none", sew="none", cpg=False, tpu=True, rsm=0.5),
])
def test_est_top_matches_golden_in_every_layer(cfg):
    """Two blocks, spike masks, every tensor the top exposes equal to the golden one."""
    graph = random_est_graph(7, **cfg, n_in=5, d=6, blocks=2, heads=2, hidden=7)
    stimulus = (np.random.default_rng(1).random((24, 5)) < 0.4).astype(np.int64)
    dut = DataflowTop(graph, lanes=3)
    rtl = simulate_top(dut, stimulus, stall_seed=2)
    result = compare(run(graph, stimulus)[0], rtl.trace)
    assert result.mismatches == 0, result.first
    assert len(result.tensors) == len(dut.fields) and result.bins == 24
