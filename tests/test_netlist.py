"""The post-synthesis iCE40 netlist (yosys synth_ice40, the cells est-synth places) simulated
with yosys' cell models in Icarus: every layer bit-exact with golden."""

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_ice40_netlist_of_a_small_network_is_bit_exact(tmp_path, model_pt):
    build = tmp_path / "spine"
    res = subprocess.run([BIN / "est-compile", model_pt, "-o", build, "--bins", "12",
                          "--lanes", "2"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([BIN / "est-sim", build, "--sim", "icarus", "--netlist", "icebreaker"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    netlist = (build / "netlist_icebreaker.v").read_text()
    assert "SB_LUT4" in netlist and "SB_RAM40_4K" in netlist  # gates, not the RTL
    res = subprocess.run([BIN / "est-compare", build, "--no-view"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rtl_icarus_netlist_icebreaker.npz" in res.stdout
    assert "values over 12 bins in 5 tensors: 0 mismatches" in res.stdout
    stats = json.loads((build / "rtl_icarus_netlist_icebreaker.json").read_text())
    assert stats["bins"] == 12 and stats["scoreboard_mismatches"] == 0


def test_netlist_needs_icarus_and_an_ice40_board(tmp_path, model_pt):
    build = tmp_path / "spine"
    assert subprocess.run([BIN / "est-compile", model_pt, "-o", build, "--bins", "2"],
                          capture_output=True).returncode == 0
    res = subprocess.run([BIN / "est-sim", build, "--netlist", "icebreaker"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--sim icarus" in res.stderr
    res = subprocess.run([BIN / "est-sim", build, "--sim", "icarus", "--netlist", "ulx3s-85f"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "iCE40 boards only" in res.stderr
    assert not list(build.glob("rtl_*"))
