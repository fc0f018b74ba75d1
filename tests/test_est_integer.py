"""The integer PyTorch path of the EST (vectorised over time) against the streaming golden
model: every spike, membrane and SEW value of every layer, every bin, over random configs with
every part on and off, both attention modes, all SEW ops, RSM on and off."""

import itertools

import numpy as np
import pytest

from est.compiler.est_ir import ESTNetwork
from est.sim.est_network import run_est
from est.sw.est_integer import integer_forward
from netgen import random_est

CONFIGS = [dict(attention=a, sew=s, cpg=c, tpu=t, rsm=r) for a, s, c, t, r in [
    ("sdsa", "add", True, True, 0.75), ("ssa", "and", False, True, 0.0),
    ("sdsa", "iand", True, False, 0.5), ("ssa", "add", True, False, 0.75),
    ("none", "add", False, True, 0.0), ("sdsa", "none", False, False, 0.25),
    ("ssa", "iand", True, True, 0.25), ("none", "and", True, False, 0.75),
]]


@pytest.mark.parametrize("seed, cfg", list(enumerate(CONFIGS)))
def test_integer_pytorch_equals_golden_on_every_tensor(seed, cfg):
    net = random_est(seed, **cfg)
    stimulus = (np.random.default_rng(seed).random((120, net.n_in)) < 0.3).astype(np.int64)
    golden = run_est(net, stimulus).arrays
    torch_path = integer_forward(net, stimulus)
    assert sorted(golden) == sorted(torch_path)
    for name in golden:
        np.testing.assert_array_equal(torch_path[name], golden[name], err_msg=name)
    spiking = [golden[k].mean() for k in golden if k.endswith("/spikes") and "input" not in k]
    assert 0.02 < np.mean(spiking) < 0.98, "random config too quiet or saturated to test much"


def test_every_switch_combination_validates():
    for a, s, c, t in itertools.product(("sdsa", "ssa", "none"), ("add", "and", "iand", "none"),
                                        (True, False), (True, False)):
        assert isinstance(random_est(1, attention=a, sew=s, cpg=c, tpu=t, blocks=1), ESTNetwork)


def test_est_ir_round_trip(tmp_path):
    import json

    from est.compiler.est_ir import load_est

    net = random_est(3, attention="ssa", sew="add", cpg=True, tpu=True)
    net.save(tmp_path)
    back = load_est(tmp_path, json.loads((tmp_path / "ir.json").read_text()))
    stimulus = (np.random.default_rng(0).random((40, net.n_in)) < 0.3).astype(np.int64)
    a, b = run_est(net, stimulus).arrays, run_est(back, stimulus).arrays
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert back.blocks[1].tpu.w_rec.shape == (3, net.d_model)
