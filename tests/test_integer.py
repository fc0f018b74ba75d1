"""The integer PyTorch path equals the golden interpreter on every tensor of every node: random
EST-shaped graphs with every part on and off (both attention modes, every SEW op, CPG, TPU, RSM
on and off), a spiking MLP, and the example checkpoint quantized."""

from pathlib import Path

import numpy as np
import pytest

from netgen import check_integer_path, random_est_graph, random_mlp_graph, random_stimulus

CASES = [dict(attention="sdsa", sew="add"), dict(attention="ssa", sew="iand", heads=4),
         dict(attention="none", sew="and", cpg=False), dict(sew="none", tpu=False, rsm=0.0),
         dict(attention="ssa", sew="add", d=12, window=16, heads=3),
         dict(attention="ssa", sew="and", cpg=False, rsm=0.0),
         dict(attention="sdsa", sew="iand", tpu=False),
         dict(attention="none", sew="add", cpg=False),
         dict(attention="sdsa", sew="none", cpg=False, tpu=False, rsm=0.25),
         dict(attention="none", sew="and", tpu=False, rsm=0.75)]
EXAMPLES = Path(__file__).parent.parent / "examples"


def _assert_equal(graph, stimulus):
    golden, _ = check_integer_path(graph, stimulus)
    return golden.arrays


@pytest.mark.parametrize("seed, kw", list(enumerate(CASES)))
def test_equal_to_the_interpreter_on_every_tensor(seed, kw):
    g = random_est_graph(seed, **kw)
    arrays = _assert_equal(g, random_stimulus(seed, 40, g.n_in))
    spiking = [v.mean() for k, v in arrays.items() if k.endswith("/spikes")
               and not k.startswith("input")]
    assert 0.02 < np.mean(spiking) < 0.98, "random graph too quiet or saturated to test much"


def test_mlp_graph():
    g = random_mlp_graph(4)
    _assert_equal(g, random_stimulus(4, 30, g.n_in))


def test_the_example_checkpoint_quantized():
    """est_tiny as est-compile quantizes it: every tensor equal over a stimulus longer than the
    attention window and the convolution kernels (est_small is held equal through est-compile
    in test_train)."""
    from est.compiler.est_frontend import quantize_est
    from est.compiler.frontend import load_est_checkpoint

    model, _ = load_est_checkpoint(EXAMPLES / "est_tiny.pt")
    n_in = model.cfg.n_in
    g, _ = quantize_est(model, "est_tiny", random_stimulus(1, 200, n_in, 0.2))
    arrays = _assert_equal(g, random_stimulus(2, 120, n_in, 0.2))
    assert arrays["readout/v"].any() and arrays["b0.attn/spikes"].any()
