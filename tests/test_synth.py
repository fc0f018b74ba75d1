"""Synthesis for iCEBreaker through amaranth-boards and YoWASP, and the report parser."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from est import EstError
from est.boards.synth import parse_nextpnr_log

BIN = Path(sys.executable).parent

LOG = """Info: Max frequency for clock 'cd_sync.clk': 40.00 MHz (PASS at 12.00 MHz)
Info: Device utilisation:
Info: \t         ICESTORM_LC:    2380/   5280    45%
Info: \t        ICESTORM_RAM:      11/     30    36%
Info: \t               SB_IO:       4/     39    10%

Info: Routing..
Info: Max frequency for clock 'cd_sync.clk': 21.50 MHz (PASS at 12.00 MHz)
"""


def test_parse_nextpnr_log_takes_the_post_route_fmax():
    r = parse_nextpnr_log(LOG)
    assert r["fmax_mhz"] == 21.5 and r["timing_pass"]
    assert r["utilisation"]["ICESTORM_LC"] == {"used": 2380, "available": 5280}
    assert r["utilisation"]["ICESTORM_RAM"]["used"] == 11
    with pytest.raises(EstError):
        parse_nextpnr_log("Info: nothing here\n")


def test_icebreaker_bitstream_and_report(tmp_path, model_pt):
    build = tmp_path / "spine"
    res = subprocess.run([BIN / "est-compile", model_pt, "-o", build, "--bins", "8"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([BIN / "est-synth", build, "--board", "icebreaker"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((build / "synth_icebreaker" / "synth.json").read_text())
    bitstream = Path(report["bitstream"])
    assert bitstream.is_file() and bitstream.stat().st_size > 100_000
    lc = report["utilisation"]["ICESTORM_LC"]
    assert 0 < lc["used"] <= lc["available"] == 5280
    assert report["board_clock_met"] and report["fmax_mhz"] >= 12.0
    assert report["cycles_per_bin"] > 0 and report["latency_us_at_fmax"] > 0
    ff = report["utilisation"]["SB_DFF"]  # counted in yosys' netlist: one per logic cell at most
    assert 0 < ff["used"] <= lc["used"] and ff["available"] == 5280
    for row in ("ICESTORM_LC", "SB_DFF", "ICESTORM_RAM", "ICESTORM_SPRAM", "ICESTORM_DSP"):
        assert row in res.stdout  # shown even when unused
    assert "Fmax" in res.stdout and "bins/s" in res.stdout


def test_synth_refuses_a_folder_that_is_not_a_build(tmp_path):
    res = subprocess.run([BIN / "est-synth", tmp_path], capture_output=True, text=True)
    assert res.returncode == 2 and "not an est-compile build folder" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_tiny_est_fits_the_icebreaker_and_meets_its_clock(tmp_path):
    """The iCEBreaker example EST (examples/est_tiny.pt) at lanes 1: membranes go to block RAM
    (the memory plan), multipliers to the UP5K's DSPs; bitstream, board clock met."""
    build = tmp_path / "tiny"
    example = Path(__file__).parent.parent / "examples" / "est_tiny.pt"
    res = subprocess.run([BIN / "est-compile", example, "-o", build, "--bins", "4",
                          "--lanes", "1"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([BIN / "est-synth", build, "--board", "icebreaker"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((build / "synth_icebreaker" / "synth.json").read_text())
    assert Path(report["bitstream"]).stat().st_size > 100_000
    util = report["utilisation"]
    assert util["ICESTORM_LC"]["used"] <= 5280 and util["ICESTORM_DSP"]["used"] > 0
    assert util["ICESTORM_RAM"]["used"] > 11  # weight ROMs and membranes
    assert report["board_clock_met"] and report["fmax_mhz"] >= 12.0
    # est-compile's logic estimate (LUT4s + flip-flops) is within 25% of the placed design.
    total = json.loads((build / "report.json").read_text())["hardware"]["total"]
    used = util["ICESTORM_LC"]["used"]
    assert abs(total["luts"] + total["ffs"] - used) < 0.25 * used
