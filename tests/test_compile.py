"""est-compile end to end on a checkpoint (the build, its report.json, the stage table, the fit
check and --lanes auto), and every class of bad input: a clear message, a non-zero exit, and no
build folder (not even a partial one) left behind."""

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from est import EstError
from est.sw.spiking_mlp import make_model, save_checkpoint
from netgen import write_slow_est

BIN = Path(sys.executable).parent
EXAMPLES = Path(__file__).parent.parent / "examples"
DATAFLOW_TINY = Path(__file__).parent / "data" / "est_tiny_dataflow.pt"
DATAFLOW_SMALL = Path(__file__).parent / "data" / "est_small_dataflow.pt"
"""The trained EST that fits an iCEBreaker as a dataflow top (examples/est_tiny.pt before
2026-12-02: spike inputs, a one-bin readout)."""


def compile_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "est-compile", *map(str, args)], capture_output=True, text=True)


def test_compile_writes_a_complete_build(traced_build):
    from est.compiler import graph

    for f in ("ir.json", "weights.npz", "stimulus.npy", "golden.npz", "top.v", "top.json",
              "report.json", "report.html"):
        assert (traced_build / f).is_file(), f
    report = json.loads((traced_build / "report.json").read_text())
    assert report["stimulus_bins"] == 240 and report["lanes"] == 4 and report["trace"] is True
    # one report format for every kind of network: no MLP-only "arch" or "layers"
    assert not {"arch", "layers", "cycles_per_bin", "model_config"} & set(report)
    assert report["operations"] == {"input": 1, "conv": 3, "lif": 2, "readout": 1}
    assert report["passes"] == ["leak", "quantize", "fit_widths"]
    layers = report["quantization"]["layers"]
    assert list(layers) == ["fc1", "fc2", "readout"]
    assert report["saturated_stimulus"] == {"fc1": 0, "fc2": 0, "readout": 0}
    for name, layer in layers.items():
        assert layer["saturated_calibration"] == 0, name
        assert layer["bins_differing_from_wide"] == 0 and layer["v_bits"] > layer["needed_bits"]
    assert all(layers[n]["spike_agreement"] > 0.8 for n in ("fc1", "fc2"))
    hw = report["hardware"]
    assert [s["name"] for s in hw["stages"]] == ["fc1.syn", "fc1", "fc2.syn", "fc2",
                                                 "readout.syn", "readout", "board I/O"]
    for s in hw["stages"]:
        if s["kind"] == "conv":
            assert s["synaptic_ops"] > 0 and s["dense_bound"] == -(-s["synaptic_ops"] // 4)
    top = json.loads((traced_build / "top.json").read_text())
    assert top["lanes"] == 4 and hw["cycles_per_bin"] == top["cycles_per_bin"] > 0
    g = graph.load(traced_build)
    assert [n.name for n in g.nodes] == ["input", "fc1.syn", "fc1", "fc2.syn", "fc2",
                                         "readout.syn", "readout"]
    golden = np.load(traced_build / "golden.npz")
    assert {"fc1.syn/current", "fc1/spikes", "fc1/v", "readout/v"} <= set(golden.files)
    assert not any(k in golden.files for k in ("fc1/current", "readout/current"))
    assert "module top(" in (traced_build / "top.v").read_text()


def test_compile_cli_prints_a_summary_and_no_trace_keeps_only_the_readout(tmp_path, model_pt):
    """Trace is on by default (the traced build above); --no-trace puts only the readout on
    the output stream (golden.npz keeps every tensor)."""
    res = compile_cli(model_pt, "-o", tmp_path / "b", "--bins", "20", "--no-trace")
    assert res.returncode == 0, res.stderr
    assert "12 inputs -> 6 outputs" in res.stdout and "cycles/bin at lanes 4" in res.stdout
    assert re.search(r"^fit check: logic ~\d+ of 5280 logic cells \([\d.]+%\) fits;", res.stdout,
                     re.M), res.stdout
    assert "only the readout is on the output stream" in res.stdout
    assert "warning" not in res.stdout
    top = json.loads((tmp_path / "b" / "top.json").read_text())
    assert top["trace"] is False and [f[0] for f in top["output_fields"]] == ["readout/v"]
    assert json.loads((tmp_path / "b" / "report.json").read_text())["trace"] is False
    assert "fc1/v" in np.load(tmp_path / "b" / "golden.npz").files


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
    """A spiking MLP whose weight ROMs need more block RAMs than the iCEBreaker has is compiled
    all the same, with a one-line warning that names the board, the resource, the largest
    nodes and what would help (est-synth is where an over-size design is refused)."""
    big = tmp_path / "big.pt"
    save_checkpoint(make_model(n_in=100, hidden=(128,), n_out=32), big)
    res = compile_cli(big, "-o", tmp_path / "out", "--bins", "4", "--backend", "dataflow")
    assert res.returncode == 0, res.stderr
    (warning,) = [line for line in res.stdout.splitlines() if "warning" in line]
    assert warning.startswith("est-compile: warning: the model does not fit icebreaker: its "
                              "weight ROMs need about ")
    for part in ("block RAMs against 30", "largest: fc1.syn", "--board ulx3s-85f"):
        assert part in warning, part
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["fit"] == {"board": "icebreaker", "fits": False,
                             "reason": warning.removeprefix("est-compile: warning: ")}
    assert report["hardware"]["membranes"] == "logic"
    assert (tmp_path / "out" / "top.v").is_file()


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


def test_lanes_auto_for_the_spine_takes_the_most_that_fit(tmp_path, model_pt):
    from est.boards.spec import get_board
    from est.compiler import costs, graph

    res = compile_cli(model_pt, "-o", tmp_path / "auto", "--bins", "2", "--lanes", "auto")
    assert res.returncode == 0, res.stderr
    lanes = json.loads((tmp_path / "auto" / "report.json").read_text())["lanes"]
    assert f"--lanes auto: {lanes} lanes fit icebreaker" in res.stdout
    assert lanes in (1, 2, 4, 8)
    assert json.loads((tmp_path / "auto" / "top.json").read_text())["lanes"] == lanes
    # twice the lanes: over the margin, or (strict, as auto is first) placement uncertain
    with pytest.raises(EstError, match=f"icebreaker at lanes {2 * lanes}: its logic estimate"):
        costs.fit(graph.load(tmp_path / "auto"), 2 * lanes, get_board("icebreaker"), strict=True)


# --- the EST examples: the stage table, the fit check, --lanes auto ------------------------------

def test_est_compile_writes_and_prints_the_stage_table(tmp_path):
    """est_tiny_dataflow at lanes 2: the table printed and kept in report.json; lanes 2 doubles the
    datapaths, over the iCEBreaker's logic (lanes 1 fits, see test_synth): compiled with a
    warning."""
    res = compile_cli(DATAFLOW_TINY, "-o", tmp_path / "tiny", "--bins", "4",
                      "--lanes", "2")
    assert res.returncode == 0, res.stderr
    assert "dense lb" in res.stdout and "b0.mlp1.syn" in res.stdout
    report = json.loads((tmp_path / "tiny" / "report.json").read_text())
    assert report["model_config"]["d_model"] == 8 and report["operations"]["attention"] == 1
    hw = report["hardware"]
    assert not report["fit"]["fits"] and "at lanes 2" in report["fit"]["reason"]
    assert "est-compile: warning: the model does not fit icebreaker at lanes 2" in res.stdout
    assert hw["membranes"] == "block RAM"
    assert hw["cycles_per_bin"] == json.loads(
        (tmp_path / "tiny" / "top.json").read_text())["cycles_per_bin"]
    assert hw["total"]["dense_bound"] <= hw["cycles_per_bin"] <= 1.3 * hw["total"]["dense_bound"]


def test_lanes_auto_picks_the_most_lanes_that_fit(tmp_path):
    res = compile_cli(DATAFLOW_TINY, "-o", tmp_path / "auto", "--bins", "2",
                      "--lanes", "auto", "--board", "ulx3s-85f")
    assert res.returncode == 0, res.stderr
    assert "--lanes auto: 16 lanes fit ulx3s-85f" in res.stdout
    assert json.loads((tmp_path / "auto" / "top.json").read_text())["lanes"] == 16


def test_lanes_auto_says_what_is_over_when_nothing_fits(tmp_path):
    res = compile_cli(DATAFLOW_SMALL, "-o", tmp_path / "big", "--bins", "2",
                      "--lanes", "auto", "--board", "icebreaker", "--backend", "dataflow")
    assert res.returncode == 2
    assert len(res.stderr.splitlines()) == 1, res.stderr
    # est_small's weight ROMs alone are over the iCEBreaker's block RAMs at every lanes
    assert "does not fit icebreaker: its weight ROMs need about" in res.stderr
    assert "over" in res.stderr and "largest: readout.syn" in res.stderr
    assert "--board ulx3s-85f" in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "two", "-3"])
def test_lanes_must_be_a_positive_number_or_auto(tmp_path, value):
    res = compile_cli(EXAMPLES / "est_tiny.pt", "-o", tmp_path / "x", "--lanes", value)
    assert res.returncode == 2 and "--lanes must be a whole number" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_lanes_auto_stays_under_the_margin_and_the_report_states_it(tmp_path):
    """est_tiny_dataflow on the iCEBreaker: lanes 1 is the only choice (lanes 2 is over); the
    compile output and report.json state the margin and where it comes from."""
    res = compile_cli(DATAFLOW_TINY, "-o", tmp_path / "auto", "--bins", "2",
                      "--lanes", "auto", "--board", "icebreaker")
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert report["lanes"] == 1
    fit = report["hardware"]["logic_fit"]
    assert fit["verdict"] in ("fits", "tight") and fit["estimate"] <= fit["refuse_above"]
    assert fit["margin"]["source"] == "bench/results/fit.json"
    assert fit["estimator"] == "dataflow"
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("fit check"))
    assert f"~{fit['estimate']} of 5280 logic cells" in line and "bench/results/fit.json" in line
    assert (fit["verdict"] == "tight") == ("WARNING: placement uncertain" in line)


def test_backend_auto_takes_the_core_when_the_dataflow_top_does_not_fit(tmp_path):
    """est_small (as trained before the slow readouts, one output) does not fit the iCEBreaker
    as a dataflow top: auto compiles it for the
    board's core. The build holds the program's listing, the core it needs, the core model's
    cycles and per-node events and bounds (report.json and the HTML report)."""
    res = compile_cli(DATAFLOW_SMALL, "-o", tmp_path / "small", "--bins", "6")
    assert res.returncode == 0, res.stderr
    assert ("--backend auto: core (the dataflow top does not fit icebreaker, the program fits "
            "its core)") in res.stdout
    build = tmp_path / "small"
    top = json.loads((build / "top.json").read_text())
    report = json.loads((build / "report.json").read_text())
    assert top["backend"] == report["backend"] == "core" and top["spram"] is True
    assert top["core"]["lanes"] == report["lanes"] == 8 and top["core"]["weight_words"] == 16384
    assert not (build / "top.v").exists()
    listing = (build / "program.txt").read_text().splitlines()
    hw = report["hardware"]
    assert len(listing) == 1 + hw["instructions"]
    assert listing[1].split()[:3] == ["0", "input", "in"]
    assert "b1.attn" in hw["nodes"] and hw["nodes"]["b1.attn"]["events_mean"] == 0
    syn = hw["nodes"]["b0.mlp1.syn"]
    assert syn["synaptic_events_mean"] > syn["events_mean"] > 0
    assert syn["event_bound_mean"] <= syn["memory_bound_mean"] <= syn["cycles_mean"]
    assert round(hw["bin"]["cycles_mean"], 1) == top["cycles_per_bin"]  # top.json rounds
    assert sum(r["cycles_mean"] for r in hw["nodes"].values()) == pytest.approx(
        hw["bin"]["cycles_mean"]) == sum(hw["by_instruction"].values())
    assert {"conv", "lif", "vec", "readout", "end"} <= set(hw["by_instruction"])
    page = (build / "report.html").read_text()
    assert "Nodes on the core" in page and "The bin's cycles by kind of instruction" in page
    kinds = next(line for line in res.stdout.splitlines()
                 if line.startswith("cycles/bin by instruction (fetch included): "))
    assert "bin (total)" in res.stdout and " conv " in kinds and " vec " in kinds


def _core_gateware_matches_golden(build: Path, simulators=("amaranth",)) -> None:
    """est-sim on each simulator, then est-compare: 0 mismatches over the build's 10 bins, on
    every simulator's trace."""
    for simulator in simulators:
        sim = subprocess.run([BIN / "est-sim", build, "--sim", simulator], capture_output=True,
                             text=True)
        assert sim.returncode == 0, sim.stderr
    res = subprocess.run([BIN / "est-compare", build], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    for simulator in simulators:
        assert re.search(rf"rtl_{simulator}\.npz \([^)]*\) vs golden\.npz:\ncompared \d+ "
                         r"values over 10 bins in \d+ tensors: 0 mismatches", res.stdout), \
            res.stdout


def test_an_ssa_est_compiles_for_the_core_with_its_ssa_unit(tmp_path):
    """An EST with SSA attention: auto picks the iCEBreaker's core with its SSA unit (the
    build says so), the program has a score and a sum per block, and the core's gateware
    (est-sim, amaranth.sim) matches the golden model on every traced value, the SSA counts
    reaching the LIF that reads them."""
    from est.sw.est import EST, ESTConfig
    from est.sw.train import save_checkpoint as save_est

    torch.manual_seed(2)
    save_est(EST(ESTConfig(n_in=8, n_out=8, attention="ssa", heads=2, seed=2)),
             tmp_path / "ssa.pt", {})
    build = tmp_path / "ssa"
    res = compile_cli(tmp_path / "ssa.pt", "-o", build, "--bins", "10", "--rate", "0.6")
    assert res.returncode == 0, res.stderr
    assert "icebreaker's core with its SSA unit (the model has SSA attention)" in res.stdout
    assert json.loads((build / "top.json").read_text())["core"]["ssa"] is True
    listing = (build / "program.txt").read_text()
    assert listing.count("vec.score") == listing.count("vec.ssa") == 2
    assert np.load(build / "golden.npz")["b0.attn/v"].any()
    _core_gateware_matches_golden(build)


def test_an_est_with_slow_readouts_runs_on_the_core(tmp_path):
    """Slow readouts make several outputs whose log-rates add up: auto takes the core (the
    dataflow top drives one output, and --backend dataflow says so), the build keeps
    ``sum_outputs``, and the core's gateware (est-sim on amaranth.sim, Icarus and Verilator)
    matches the golden model on every traced value, the slow readouts' too."""
    write_slow_est(tmp_path / "slow.pt", seed=3)
    build = tmp_path / "slow"
    res = compile_cli(tmp_path / "slow.pt", "-o", build, "--bins", "10", "--rate", "0.6")
    assert res.returncode == 0, res.stderr
    assert "the dataflow top drives one output node, this network has 3" in res.stdout
    assert "8 inputs -> 8 log-rates (the sum of 3 readouts)" in res.stdout
    assert json.loads((build / "ir.json").read_text())["meta"]["sum_outputs"] is True
    assert np.load(build / "golden.npz")["readout.slow7/v"].any()
    _core_gateware_matches_golden(build, ("amaranth", "icarus", "verilator"))
    res = compile_cli(tmp_path / "slow.pt", "-o", tmp_path / "df", "--backend", "dataflow")
    assert res.returncode == 2 and "use --backend core" in res.stderr
    assert not (tmp_path / "df").exists()


def test_backend_core_refuses_what_is_over_and_dataflow_options(tmp_path):
    """The HX8K's core has no SPRAM: est_small's weights (as trained 2026-12-03) are over its
    2,048 words; --lanes belongs to the dataflow top. One line each, exit 2, no build."""
    res = compile_cli(DATAFLOW_SMALL, "-o", tmp_path / "x", "--bins", "2",
                      "--backend", "core", "--board", "ice40-hx8k-evn")
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert re.search(r"ice40-hx8k-evn's core: the model does not fit the core \(weight words: "
                     r"needs \d+, the core has 2048; neuron words: needs 301, the core has "
                     r"256\): use a core with larger memories \(est-compile: another "
                     r"--board\)", res.stderr), res.stderr
    res = compile_cli(DATAFLOW_SMALL, "-o", tmp_path / "x", "--bins", "2",
                      "--backend", "core", "--lanes", "4")
    assert res.returncode == 2 and "--lanes is an option of the dataflow top" in res.stderr
    assert list(tmp_path.iterdir()) == []
