"""The integer PyTorch path equals the golden interpreter on every tensor of every node."""

import numpy as np
import pytest

from est.sim.interpreter import run
from est.sw.integer import integer_forward
from netgen import random_est_graph, random_mlp_graph, random_stimulus

CASES = [dict(attention="sdsa", sew="add"), dict(attention="ssa", sew="iand", heads=4),
         dict(attention="none", sew="and", cpg=False), dict(sew="none", tpu=False, rsm=0.0),
         dict(attention="ssa", sew="add", d=12, window=16, heads=3)]


@pytest.mark.parametrize("seed, kw", list(enumerate(CASES)))
def test_equal_to_the_interpreter_on_every_tensor(seed, kw):
    g = random_est_graph(seed, **kw)
    stim = random_stimulus(seed, 40, g.n_in)
    golden, _ = run(g, stim)
    ours = integer_forward(g, stim)
    assert set(ours) == set(golden.arrays)
    for name, value in golden.arrays.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_mlp_graph():
    g = random_mlp_graph(4)
    stim = random_stimulus(4, 30, g.n_in)
    golden, _ = run(g, stim)
    ours = integer_forward(g, stim)
    for name, value in golden.arrays.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)
