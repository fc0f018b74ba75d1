"""est-compile end to end on a checkpoint, and every class of bad input: a clear message, a
non-zero exit, and no build folder (not even a partial one) left behind."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from est.sw.spiking_mlp import make_model, save_checkpoint

BIN = Path(sys.executable).parent


def compile_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "est-compile", *map(str, args)], capture_output=True, text=True)


def test_compile_writes_a_complete_build(traced_build):
    for f in ("ir.json", "weights.npz", "stimulus.npy", "golden.npz", "top.v", "top.json",
              "report.json"):
        assert (traced_build / f).is_file(), f
    report = json.loads((traced_build / "report.json").read_text())
    assert report["stimulus_bins"] == 240 and report["lanes"] == 4
    assert [layer["name"] for layer in report["layers"]] == ["fc1", "fc2", "readout"]
    for layer in report["layers"]:
        assert layer["saturated_calibration"] == 0 and layer["saturated_stimulus"] == 0
        assert layer["dense_bound_cycles"] == -(-layer["synaptic_ops_per_bin"] // 4)
    hidden = [layer for layer in report["layers"] if layer["kind"] == "dense_lif"]
    assert all(layer["spike_agreement"] > 0.8 for layer in hidden)
    assert "module top(" in (traced_build / "top.v").read_text()


def test_compile_cli_prints_a_summary(tmp_path, model_pt):
    res = compile_cli(model_pt, "-o", tmp_path / "b", "--bins", "20")
    assert res.returncode == 0, res.stderr
    assert "cycles/bin" in res.stdout and "fits icebreaker" in res.stdout


def _assert_refused(res, tmp_path: Path, *needles: str):
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))]
    assert leftovers == [], leftovers


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = marker
    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"format": "est-checkpoint", "x": payload}))
    res = compile_cli(bad, "-o", tmp_path / "out")
    _assert_refused(res, tmp_path, "evil.pt", "could run code")
    assert not marker.exists()


def test_torch_saved_module_is_refused(tmp_path):
    bad = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(3, 2), bad)
    _assert_refused(compile_cli(bad, "-o", tmp_path / "out"), tmp_path, "could run code")


def test_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("these are my notes, not a model\n")
    _assert_refused(compile_cli(bad, "-o", tmp_path / "out"), tmp_path, "notes.pt",
                    "not a PyTorch checkpoint")


def test_missing_file(tmp_path):
    _assert_refused(compile_cli(tmp_path / "nope.pt", "-o", tmp_path / "out"), tmp_path,
                    "nope.pt", "no such file")


def test_plain_state_dict_is_not_an_est_checkpoint(tmp_path):
    bad = tmp_path / "sd.pt"
    torch.save(make_model().state_dict(), bad)
    _assert_refused(compile_cli(bad, "-o", tmp_path / "out"), tmp_path, "not an est checkpoint",
                    "save_checkpoint")


def _checkpoint(tmp_path: Path, edit) -> Path:
    path = tmp_path / "edited.pt"
    save_checkpoint(make_model(n_in=8, hidden=(6,), n_out=3), path)
    obj = torch.load(path, weights_only=True)
    edit(obj)
    torch.save(obj, path)
    return path


def test_nan_weights_name_the_tensor(tmp_path):
    def edit(obj):
        obj["state_dict"]["layers.fc1.weight"][2, 3] = float("nan")
    _assert_refused(compile_cli(_checkpoint(tmp_path, edit), "-o", tmp_path / "out"), tmp_path,
                    "layers.fc1.weight", "NaN")


def test_unsupported_layer_type_names_the_layer(tmp_path):
    def edit(obj):
        obj["layers"][1] = {"type": "conv1d", "name": "conv1"}
    _assert_refused(compile_cli(_checkpoint(tmp_path, edit), "-o", tmp_path / "out"), tmp_path,
                    "layer 1 (conv1)", "'conv1d' is not supported")


def test_shape_mismatch_names_the_tensor(tmp_path):
    def edit(obj):
        obj["state_dict"]["layers.readout.weight"] = torch.zeros(3, 5)
    _assert_refused(compile_cli(_checkpoint(tmp_path, edit), "-o", tmp_path / "out"), tmp_path,
                    "layers.readout.weight", "(3, 6)")


def test_bad_threshold_value(tmp_path):
    def edit(obj):
        obj["layers"][1]["threshold"] = -1.0
    _assert_refused(compile_cli(_checkpoint(tmp_path, edit), "-o", tmp_path / "out"), tmp_path,
                    "layer 1", "'threshold'")


def test_model_too_large_for_the_board(tmp_path):
    big = tmp_path / "big.pt"
    save_checkpoint(make_model(n_in=256, hidden=(512, 256), n_out=64), big)
    res = compile_cli(big, "-o", tmp_path / "out", "--bins", "4")
    _assert_refused(res, tmp_path, "does not fit icebreaker", "block RAM", "layer 'fc1'",
                    "--board ulx3s-85f")


def test_bad_stimulus_file(tmp_path, model_pt):
    stim = tmp_path / "stim.npy"
    np.save(stim, np.full((10, 12), 2))
    _assert_refused(compile_cli(model_pt, "-o", tmp_path / "out", "--stimulus", stim), tmp_path,
                    "stim.npy", "0 or 1")
    np.save(stim, np.zeros((10, 5)))
    _assert_refused(compile_cli(model_pt, "-o", tmp_path / "out", "--stimulus", stim), tmp_path,
                    "[bins, 12]")


def test_bad_options(tmp_path, model_pt):
    _assert_refused(compile_cli(model_pt, "-o", tmp_path / "out", "--lanes", "0"), tmp_path,
                    "--lanes")
    _assert_refused(compile_cli(model_pt, "-o", tmp_path / "out", "--board", "de0"), tmp_path,
                    "unknown board 'de0'")


def test_output_folder_that_is_not_a_build_is_not_overwritten(tmp_path, model_pt):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    res = compile_cli(model_pt, "-o", out)
    assert res.returncode == 2 and "not an est output folder" in res.stderr
    assert (out / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("beta, k", [(0.875, 3), (0.2, 0), (0.0, 0), (1.0, None), (0.999, 10),
                                     (0.7, 2)])
def test_leak_shift_is_the_nearest_beta(beta, k):
    from est.compiler.quantize import leak_shift_from_beta

    assert leak_shift_from_beta(beta, 23) == k


def test_lanes_auto_for_the_spine_takes_the_most_that_fit(tmp_path, model_pt):
    res = subprocess.run([BIN / "est-compile", model_pt, "-o", tmp_path / "auto", "--bins", "2",
                          "--lanes", "auto"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lanes = json.loads((tmp_path / "auto" / "report.json").read_text())["lanes"]
    assert f"--lanes auto: {lanes} lanes fit icebreaker" in res.stdout
    assert lanes in (1, 2, 4, 8)
    res = subprocess.run([BIN / "est-compile", model_pt, "-o", tmp_path / "more", "--bins", "2",
                          "--lanes", str(2 * lanes)], capture_output=True, text=True)
    assert res.returncode == 2 and "does not fit icebreaker" in res.stderr
