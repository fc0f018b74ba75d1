"""est-train: configs (TOML, YAML, --set), bad configs refused cleanly, determinism for a seed,
and its checkpoint compiled by est-compile into an EST IR whose golden traces equal the integer
PyTorch path on every tensor."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from est.compiler.est_ir import load_est
from est.sim.trace import Trace
from est.sw.est_integer import integer_forward

BIN = Path(sys.executable).parent
TINY = ["--set", "data.n_neurons=6", "--set", "data.bins=1500", "--set", "model.d_model=8",
        "--set", "model.mlp_hidden=8", "--set", "train.steps=4", "--set", "train.qat_steps=2",
        "--set", "train.seq_len=16", "--set", "train.batch=4"]


def cli(tool: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / tool, *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "run"
    res = cli("est-train", "-q", "--out", out, *TINY)
    assert res.returncode == 0, res.stderr
    return out


def test_train_writes_checkpoint_and_metrics(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for part in ("float", "integer", "glm", "true_rates"):
        assert np.isfinite(metrics[part]["test"]["bits_per_spike"]), part
    assert metrics["true_rates"]["test"]["r2"] == pytest.approx(1.0)
    assert metrics["config"]["model"]["d_model"] == 8
    ckpt = torch.load(tiny_run / "model.pt", weights_only=True)
    assert ckpt["arch"] == "est" and ckpt["config"]["n_in"] == 6


def test_train_is_deterministic_for_a_seed(tiny_run, tmp_path):
    res = cli("est-train", "-q", "--out", tmp_path / "again", *TINY)
    assert res.returncode == 0, res.stderr
    a = torch.load(tiny_run / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "again" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((p / "metrics.json").read_text())
              for p in (tiny_run, tmp_path / "again"))
    ma.pop("seconds"), mb.pop("seconds")
    assert ma == mb


def test_train_reads_yaml_and_a_different_seed_differs(tiny_run, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  seed: 7\nmodel:\n  sew: iand\n")
    res = cli("est-train", "-q", "--config", cfg, "--out", tmp_path / "y", *TINY)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "y" / "metrics.json").read_text())
    assert metrics["config"]["model"]["sew"] == "iand" and metrics["config"]["train"]["seed"] == 7


@pytest.mark.parametrize("args, needle", [
    (["--set", "train.stepz=3"], "unknown key(s) ['stepz']"),
    (["--set", "optim.lr=3"], "section one of data, model, train"),
    (["--set", "train.steps"], "expected section.key=value"),
    (["--set", "model.attention='dot'"], "attention: sdsa | ssa | none"),
    (["--set", "model.d_model='wide'"], "config [model]"),
    (["--set", "train.loss='gauss'"], "loss: poisson | negbin"),
    (["--set", "data.n_neurons=0"], "n_neurons"),
    (["--set", "train.seq_len=5000"], "fewer than seq_len + 2"),
    (["--config", "missing.toml"], "no such config file"),
])
def test_bad_configs_are_refused(tmp_path, args, needle):
    res = cli("est-train", "-q", "--out", tmp_path / "out", *TINY, *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not any(p.name.startswith((".out", "out")) for p in tmp_path.iterdir())


def test_invalid_toml_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 3\n")
    res = cli("est-train", "-q", "--config", bad, "--out", tmp_path / "out")
    assert res.returncode == 2 and "not valid TOML/YAML" in res.stderr


EXAMPLE = Path(__file__).parent.parent / "examples" / "est_small.pt"


@pytest.mark.parametrize("which", ["tiny", "example"])
def test_compile_est_checkpoint_golden_equals_integer_path(tiny_run, tmp_path, which):
    build = tmp_path / "b"
    model = tiny_run / "model.pt" if which == "tiny" else EXAMPLE
    res = cli("est-compile", model, "-o", build, "--bins", "120")
    assert res.returncode == 0, res.stderr
    doc = json.loads((build / "ir.json").read_text())
    net = load_est(build, doc)
    stimulus = np.load(build / "stimulus.npy")
    golden = Trace.load(build / "golden.npz")
    ref = integer_forward(net, stimulus)
    assert set(golden.arrays) == set(ref)
    for name, values in ref.items():
        np.testing.assert_array_equal(golden.arrays[name], values, err_msg=name)
    report = json.loads((build / "report.json").read_text())
    assert report["arch"] == "est" and "module top(" in (build / "top.v").read_text()


def _edited_checkpoint(src: Path, dst: Path, edit) -> Path:
    ckpt = torch.load(src, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize("edit, needle", [
    (lambda c: c["state_dict"]["embed.weight"].view(-1).__setitem__(0, float("nan")),
     "'embed.weight' holds 1 NaN"),
    (lambda c: c["config"].__setitem__("heads_per_layer", 3),
     "unknown field(s) ['heads_per_layer']"),
    (lambda c: c["config"].__setitem__("sew", "xor"), "sew: add | and | iand | none"),
    (lambda c: c["state_dict"].pop("readout.bias"), "'readout.bias' is missing"),
    (lambda c: c["state_dict"].__setitem__("readout.bias", torch.zeros(3)),
     "'readout.bias' has shape (3,)"),
])
def test_compile_refuses_bad_est_checkpoints(tiny_run, tmp_path, edit, needle):
    bad = _edited_checkpoint(tiny_run / "model.pt", tmp_path / "bad.pt", edit)
    res = cli("est-compile", bad, "-o", tmp_path / "out")
    assert res.returncode == 2, res.stdout + res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not any(p.name.startswith((".out", "out")) for p in tmp_path.iterdir())


def test_train_on_a_users_recordings(tmp_path):
    from est.sw.data import PopulationConfig, simulate_population

    rec = simulate_population(PopulationConfig(n_neurons=6, bins=1500, seed=3))
    np.savez(tmp_path / "counts.npz", counts=rec.counts)
    t, u = np.nonzero(rec.counts)
    np.savez(tmp_path / "spikes.npz", times=(t + 0.5) * 0.01, units=u)
    for data in (["--set", f"data.path='{tmp_path / 'counts.npz'}'"],
                 ["--set", f"data.spike_times='{tmp_path / 'spikes.npz'}'",
                  "--set", "data.bin_width=0.01"]):
        out = tmp_path / f"run{len(data)}"
        res = cli("est-train", "-q", "--out", out, *TINY[4:], *data)
        assert res.returncode == 0, res.stderr
        metrics = json.loads((out / "metrics.json").read_text())
        assert "true_rates" not in metrics and np.isfinite(
            metrics["integer"]["test"]["bits_per_spike"])
    res = cli("est-train", "-q", "--out", tmp_path / "x", *TINY[4:],
              "--set", f"data.path='{tmp_path / 'counts.npz'}'", "--set", "data.seed=1")
    assert res.returncode == 2 and "only ['path'] are allowed" in res.stderr
