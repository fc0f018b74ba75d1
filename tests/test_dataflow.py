"""The dataflow backend in amaranth.sim: every exposed tensor equal to the golden interpreter,
with random stalls, at odd and even lanes; cycles with the trace off."""

import numpy as np
import pytest

from est.hw.dataflow import DataflowTop, measure_cycles
from est.sim.amaranth_sim import simulate_top
from est.sim.interpreter import run
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
    got = simulate_top(dut, dut.fields, stim, stall_seed=lanes).trace
    assert len(got.arrays) == len(dut.fields) > 10
    for name in got.arrays:
        np.testing.assert_array_equal(got.arrays[name], golden.arrays[name], err_msg=name)


def test_mlp_graph_bit_exact_and_cycles():
    g = random_mlp_graph(7)
    stim = random_stimulus(7, 16, g.n_in)
    golden, _ = run(g, stim)
    dut = DataflowTop(g, 3, trace=True)
    run_ = simulate_top(dut, dut.fields, stim, stall_seed=7)
    for name in run_.trace.arrays:
        np.testing.assert_array_equal(run_.trace.arrays[name], golden.arrays[name])
    # a dense layer: (groups - 1) * max(n_in, 2) + n_in + 3 cycles (docs/semantics.md section 7)
    assert measure_cycles(g, 3) == (4 - 1) * 12 + 12 + 3 + (3 - 1) * 10 + 10 + 3 + \
        (2 - 1) * 7 + 7 + 3

