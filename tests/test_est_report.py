"""The per-stage EST report: operations, cycles against the lower bounds, memory, logic."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from est.boards.spec import (
    MEASURED,
    Measured,
    est_memory_plan,
    get_board,
    learn_margin,
    logic_margin,
    logic_verdict,
)
from est.compiler.est_report import est_report, format_table
from est.hw.est_top import measure_cycles
from netgen import random_est

BIN = Path(sys.executable).parent
CONFIGS = [
    dict(attention="sdsa", sew="add", cpg=True, tpu=True, rsm=0.5),
    dict(attention="ssa", sew="and", cpg=False, tpu=True, rsm=0.0),
    dict(attention="none", sew="none", cpg=False, tpu=False, rsm=0.0),
]


@pytest.mark.parametrize("index", range(len(CONFIGS)))
@pytest.mark.parametrize("lanes", [1, 3])
def test_stages_cover_the_network_and_bound_the_measured_cycles(index, lanes):
    net = random_est(40 + index, **CONFIGS[index], n_in=5, d=6, blocks=2, heads=2, hidden=7)
    board = get_board("icebreaker")
    cycles = measure_cycles(net, lanes)
    report = est_report(net, lanes, board, state_in_logic=True, measured_cycles=cycles)
    names = [s["name"] for s in report["stages"]]
    assert names[0] in ("cpg", "embed") and names[-2:] == ["readout", "board I/O"]
    for i, b in enumerate(net.blocks):
        assert (f"b{i}.q" in names) == (b.attention != "none")
        assert (f"b{i}.tpu" in names) == (b.tpu is not None)
        assert f"b{i}.mlp1" in names and f"b{i}.out" in names
    total = report["total"]
    assert total["synaptic_ops"] == sum(s["synaptic_ops"] for s in report["stages"])
    for s in report["stages"]:
        assert s["cycles"] >= s["dense_bound"] and s["cycles"] >= s["memory_bound"]
        assert s["luts"] > 0 and s["ffs"] > 0
    assert total["dense_bound"] <= cycles
    assert "total" in format_table(report)


def test_membranes_in_block_ram_trade_flip_flops_for_block_rams():
    net = random_est(7, attention="sdsa", sew="add", cpg=True, tpu=True, rsm=0.5, n_in=5,
                     d=6, blocks=1, heads=2, hidden=7)
    board = get_board("icebreaker")
    logic = est_report(net, 1, board, state_in_logic=True)["total"]
    ram = est_report(net, 1, board, state_in_logic=False)["total"]
    assert ram["block_rams"] > logic["block_rams"] and ram["ffs"] < logic["ffs"]
    assert est_memory_plan(net, 1, board)[0] is False  # small enough: membranes in RAM


def test_est_compile_writes_and_prints_the_stage_table(tmp_path):
    example = Path(__file__).parent.parent / "examples" / "est_tiny.pt"
    res = subprocess.run([BIN / "est-compile", example, "-o", tmp_path / "tiny", "--bins", "4",
                          "--lanes", "2"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "dense lb" in res.stdout and "b0.mlp1" in res.stdout
    report = json.loads((tmp_path / "tiny" / "report.json").read_text())
    hw = report["hardware"]
    # Lanes 2 doubles the datapaths: over the iCEBreaker's logic (lanes 1 fits, see test_synth).
    assert not report["fit"]["fits"] and "at lanes 2" in report["fit"]["reason"]
    assert "est-compile: warning: the EST does not fit icebreaker" in res.stdout
    assert hw["membranes"] == "block RAM"
    assert hw["cycles_per_bin"] == json.loads(
        (tmp_path / "tiny" / "top.json").read_text())["cycles_per_bin"]
    assert hw["total"]["dense_bound"] <= hw["cycles_per_bin"] <= 1.3 * hw["total"]["dense_bound"]


def test_lanes_auto_picks_the_most_lanes_that_fit(tmp_path):
    example = Path(__file__).parent.parent / "examples" / "est_tiny.pt"
    res = subprocess.run([BIN / "est-compile", example, "-o", tmp_path / "auto", "--bins", "2",
                          "--lanes", "auto", "--board", "ulx3s-85f"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert "--lanes auto: 16 lanes fit ulx3s-85f" in res.stdout
    assert json.loads((tmp_path / "auto" / "top.json").read_text())["lanes"] == 16


def test_lanes_auto_says_what_is_over_when_nothing_fits(tmp_path):
    example = Path(__file__).parent.parent / "examples" / "est_small.pt"
    res = subprocess.run([BIN / "est-compile", example, "-o", tmp_path / "big", "--bins", "2",
                          "--lanes", "auto", "--board", "icebreaker"], capture_output=True,
                         text=True)
    assert res.returncode == 2
    assert "does not fit icebreaker at lanes 1" in res.stderr and "over" in res.stderr
    assert "largest stages" in res.stderr and "--board ulx3s-85f" in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "two", "-3"])
def test_lanes_must_be_a_positive_number_or_auto(tmp_path, value):
    example = Path(__file__).parent.parent / "examples" / "est_tiny.pt"
    res = subprocess.run([BIN / "est-compile", example, "-o", tmp_path / "x", "--lanes", value],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--lanes must be a whole number" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_margin_is_learned_from_placed_and_failed_designs():
    """refuse = ceiling / lowest ratio, warn = ceiling / highest ratio, the ceiling being the
    largest placed share of a family where a failure has been measured (else the iCE40's)."""
    points = [Measured("a", "icebreaker", "est", 4000, 4400, True),   # 83.3%, ratio 1.1
              Measured("b", "icebreaker", "est", 4500, 4500, False),  # ratio 1.0
              Measured("c", "ulx3s-85f", "est", 10000, 10500, True)]
    m = learn_margin(points, "ice40", "est")
    assert m.ceiling == pytest.approx(4400 / 5280) and m.ceiling_measured
    assert (m.ratio_low, m.ratio_high, m.designs) == (1.0, pytest.approx(1.1), 2)
    assert m.refuse == pytest.approx(4400 / 5280) and m.warn == pytest.approx(4000 / 5280)
    e = learn_margin(points, "ecp5", "est")  # no ECP5 failure: the iCE40's ceiling, assumed
    assert not e.ceiling_measured and e.ceiling == pytest.approx(4400 / 5280)
    assert e.ratio_low == e.ratio_high == pytest.approx(1.05)
    # a failure below a placed design: the ceiling is the largest placed share under it
    points.append(Measured("d", "icebreaker", "est", 4000, 4200, False))  # 79.5%
    points.append(Measured("e", "icebreaker", "est", 4000, 4000, True))   # 75.8%
    assert learn_margin(points, "ice40", "est").ceiling == pytest.approx(4000 / 5280)


def test_the_check_agrees_with_every_measured_design():
    """No design nextpnr placed is refused, none it could not place is passed as fitting."""
    assert any(not m.placed for m in MEASURED)
    for m in MEASURED:
        board = get_board(m.board)
        v = logic_verdict(m.estimate, board, m.estimator, "x", "y")
        assert v["verdict"] != ("over" if m.placed else "fits"), (m, v)
        margin = logic_margin(board, m.estimator)
        assert margin.warn <= margin.refuse and v["margin"]["source"] == "bench/results/fit.json"


def test_verdict_messages_name_estimate_capacity_margin_and_advice():
    board = get_board("icebreaker")
    margin = logic_margin(board, "est")
    over = logic_verdict(int(margin.refuse * 5280) + 50, board, "est", "the EST on icebreaker "
                         "at lanes 2", "use fewer lanes")
    assert over["verdict"] == "over" and "\n" not in over["message"]
    assert over["message"].startswith("the EST does not fit icebreaker at lanes 2: its logic "
                                      "estimate is ")
    for part in ("of 5280 logic cells", f"({margin.refuse:.1%}) the fit check allows",
                 "bench/results/fit.json", "use fewer lanes"):
        assert part in over["message"]
    fits = logic_verdict(int(margin.warn * 5280) - 1, board, "est", "s", "a")
    assert fits["verdict"] == "fits"
    if over["refuse_above"] > over["warn_above"]:
        tight = logic_verdict(over["refuse_above"], board, "est", "s", "a")
        assert tight["verdict"] == "tight" and "failed to place" in tight["message"]


def test_lanes_auto_stays_under_the_margin_and_the_report_states_it(tmp_path):
    """est_tiny on the iCEBreaker: lanes 1 is the only choice (lanes 2 is over); the compile
    output and report.json state the margin and where it comes from."""
    example = Path(__file__).parent.parent / "examples" / "est_tiny.pt"
    res = subprocess.run([BIN / "est-compile", example, "-o", tmp_path / "auto", "--bins", "2",
                          "--lanes", "auto", "--board", "icebreaker"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert report["lanes"] == 1
    fit = report["hardware"]["logic_fit"]
    assert fit["verdict"] in ("fits", "tight") and fit["estimate"] <= fit["refuse_above"]
    assert fit["margin"]["source"] == "bench/results/fit.json"
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("fit check"))
    assert f"~{fit['estimate']} of 5280 logic cells" in line and "bench/results/fit.json" in line
    assert (fit["verdict"] == "tight") == ("WARNING: placement uncertain" in line)
