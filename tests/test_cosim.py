"""The compiled Verilog on Verilator and Icarus (cocotb 2.x) against the golden model: every
spike and membrane of every layer, every bin; with random stalls; across a reset."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from est.compiler.cli import write_build
from est.compiler.graph import load as load_graph
from est.sim.interpreter import run
from est.sim.rtl import simulate
from est.sim.trace import Trace, compare
from netgen import random_mlp_graph, random_stimulus

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_compiled_model_is_bit_exact_over_240_bins(traced_build, simulator):
    golden = Trace.load(traced_build / "golden.npz")
    rtl = simulate(traced_build, simulator, stall_seed=5, golden=traced_build / "golden.npz")
    assert rtl.scoreboard_mismatches == 0
    result = compare(golden, rtl.trace)
    assert result.bins == 240
    assert result.tensors == ("fc1/spikes", "fc1/v", "fc2/spikes", "fc2/v", "readout/v")
    assert result.mismatches == 0, result.first
    assert result.values_compared == 240 * (20 * 2 + 14 * 2 + 6)


@pytest.mark.parametrize("lanes", [1, 2, 3, 4])
def test_handshakes_are_defined_from_reset_on_icarus(tmp_path, lanes):
    """Layers of 33, 5 and 29 neurons: ceil(n / lanes) >= 8 groups to clear after reset, long
    enough that valid/ready from an FSM would still be X on Icarus (the testbench requires
    them defined in the first cycle after reset)."""
    graph = random_mlp_graph(60 + lanes, n_in=9, hidden=(33, 5), n_out=29)
    stimulus = random_stimulus(lanes, 40, 9)
    golden, _ = run(graph, stimulus)
    write_build(tmp_path, graph, stimulus, golden, lanes, trace=True)
    rtl = simulate(tmp_path, "icarus", stall_seed=lanes, golden=tmp_path / "golden.npz")
    result = compare(golden, rtl.trace)
    assert result.bins == 40 and result.mismatches == 0, result.first


def test_reset_starts_a_new_stream(traced_build):
    graph = load_graph(traced_build)
    stimulus = np.load(traced_build / "stimulus.npy")
    rtl = simulate(traced_build, "icarus", reset_at=100)
    first, _ = run(graph, stimulus[:100])
    second, _ = run(graph, stimulus[100:])
    for name, values in rtl.trace.arrays.items():
        expected = np.concatenate([first.arrays[name], second.arrays[name]])
        np.testing.assert_array_equal(values, expected, err_msg=name)


def test_est_sim_and_est_compare_commands(traced_build):
    res = subprocess.run([BIN / "est-sim", traced_build, "--sim", "verilator"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (traced_build / "rtl_verilator.npz").is_file()
    res = subprocess.run([BIN / "est-compare", traced_build], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 mismatches" in res.stdout and "(spikes 0, v 0)" in res.stdout
    assert (traced_build / "rtl_verilator_compare.html").is_file()


def test_est_compare_finds_an_injected_fault(traced_build, tmp_path):
    golden = Trace.load(traced_build / "golden.npz")
    faulty = Trace({k: v.copy() for k, v in golden.arrays.items() if k != "input/spikes"
                    and not k.endswith("/current")}, {"source": "faulty"})
    faulty.arrays["fc2/v"][137, 9] ^= 1 << 3
    faulty.save(tmp_path / "rtl.npz")
    res = subprocess.run([BIN / "est-compare", traced_build / "golden.npz", tmp_path / "rtl.npz"],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "1 mismatch" in res.stdout and "1 mismatches" not in res.stdout
    assert "layer fc2, tensor v, channel 9, bin 137" in res.stdout
    assert "fc2                    1 mismatch (spikes 0, v 1)" in res.stdout
    page = (tmp_path / "rtl_compare.html").read_text()
    assert "1 mismatch" in page and "data:image/png;base64," in page
    assert (tmp_path / "rtl_compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scoreboard_flags_a_word_that_differs_from_golden(traced_build, tmp_path):
    build = tmp_path / "b"
    shutil.copytree(traced_build, build, ignore=shutil.ignore_patterns("sim_*", "rtl_*"))
    golden = Trace.load(build / "golden.npz")
    golden.arrays["fc1/spikes"][100, 4] ^= 1  # the golden side is wrong here: RTL must differ
    golden.save(build / "golden.npz")
    res = subprocess.run([BIN / "est-sim", build, "--sim", "icarus"], capture_output=True,
                         text=True)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "scoreboard saw 1 bin differ" in res.stdout
    log = (build / "sim_icarus" / "test.log").read_text()
    assert "scoreboard: bin 100" in log and "fc1/spikes channel 4" in log
    res = subprocess.run([BIN / "est-compare", build, "--no-view"], capture_output=True,
                         text=True)
    assert res.returncode == 1 and "layer fc1, tensor spikes, channel 4, bin 100" in res.stdout


def test_est_sim_runs_a_core_build_on_amaranth_and_icarus(tmp_path):
    """A core build (est_tiny for the iCEBreaker's core): est-sim loads its program into the
    core's gateware through the load port and streams the bins; est-compare finds every
    traced tensor equal to golden.npz on both simulators."""
    from est.compiler.cli import main as compile_main
    from est.sim.cli import compare_cmd, sim

    build = tmp_path / "tiny"
    example = Path(__file__).parent.parent / "examples" / "est_tiny.pt"
    assert compile_main([str(example), "-o", str(build), "--bins", "4", "--backend",
                         "core"]) == 0
    for simulator in ("amaranth", "icarus"):
        assert sim([str(build), "--sim", simulator, "--stall-seed", "3"]) == 0
        stats = json.loads((build / f"rtl_{simulator}.json").read_text())
        assert stats["scoreboard_mismatches"] == 0 and stats["bins"] == 4
    assert compare_cmd([str(build), "--no-view"]) == 0
    golden = Trace.load(build / "golden.npz")
    rtl = Trace.load(build / "rtl_icarus.npz")
    assert rtl.meta["source"] == "icarus-core"
    assert {"readout/v", "b0.attn/spikes", "embed/v", "b0.tpu/v"} <= set(rtl.arrays)
    assert compare(golden, rtl).mismatches == 0
