"""report.html (est/report.py): the summary it opens with (verdict, model quality, board) and
one picture per golden-vs-RTL comparison (a difference panel and one raster per tensor)."""

import json
import re
import shutil
from pathlib import Path

import pytest

from est.report import find_metrics, write_report
from est.sim.compare_view import ALT
from est.sim.trace import Trace

EXAMPLE_METRICS = Path(__file__).parent.parent / "examples" / "est_tiny.metrics.json"
SYNTH = {"board": "icebreaker", "bitstream": "top.bin", "seconds": 120.0, "clock": "clk",
         "timing_pass": True,
         "utilisation": {"ICESTORM_LC": {"used": 4760, "available": 5280},
                         "SB_DFF": {"used": 2118, "available": 5280},
                         "ICESTORM_RAM": {"used": 14, "available": 30}},
         "fmax_mhz": 22.51, "board_clock_mhz": 12.0, "board_clock_met": True,
         "cycles_per_bin": 1035, "latency_us_at_board_clock": 86.25,
         "latency_us_at_fmax": 45.98, "bins_per_second_at_board_clock": 11594.2}


@pytest.fixture
def build(tmp_path, traced_build) -> Path:
    """A copy of the traced spine build without RTL traces."""
    out = tmp_path / "spine"
    shutil.copytree(traced_build, out, ignore=shutil.ignore_patterns("rtl_*", "sim_*"))
    return out


def rtl_copy(build: Path, name: str) -> Trace:
    """Write ``rtl_<name>.npz``: the golden trace as the RTL would give it."""
    golden = Trace.load(build / "golden.npz")
    rtl = Trace({k: v for k, v in golden.arrays.items()
                 if k != "input/spikes" and not k.endswith("/current")}, {"source": name})
    rtl.save(build / f"rtl_{name}.npz")
    return rtl


def summary(page: str) -> str:
    start = page.index("<h2>Summary</h2>")
    return page[start:page.index("</table>", start)]


def test_summary_comes_first_and_says_not_simulated_yet(build):
    page = write_report(build).read_text()
    head = summary(page)
    assert page.index("<h2>Summary</h2>") < page.index("<h2>Model</h2>")
    assert "not simulated yet" in head and f"est-sim {build}" in head
    assert "no metrics.json found beside" in head
    assert re.search(r"<b>icebreaker</b>: fits \(estimate\); not synthesized yet", head)


def test_equal_rtl_traces_verdict_and_one_picture_per_comparison(build):
    rtl = rtl_copy(build, "verilator")
    rtl_copy(build, "icarus")
    values = sum(v.size for v in rtl.arrays.values())
    page = write_report(build).read_text()
    head = summary(page)
    assert (f"<span class='ok'>0 mismatches in {values:,} values, on icarus, verilator</span>"
            in head)
    assert f"every value of {len(rtl.arrays)} tensors over 240 bins" in head
    # one picture per comparison (its difference panel and one raster per tensor)
    assert page.count(f"<img alt='{ALT}'") == 2
    assert page.count("data:image/png;base64,") == 2


def test_an_altered_rtl_trace_makes_the_verdict_name_the_mismatches(build):
    rtl_copy(build, "icarus")
    rtl = rtl_copy(build, "verilator")
    rtl.arrays["fc2/v"][9, 3] += 4
    rtl.arrays["fc1/spikes"][50, 0] ^= 1
    rtl.save(build / "rtl_verilator.npz")
    page = write_report(build).read_text()
    head = summary(page)
    values = sum(v.size for v in rtl.arrays.values())
    assert (f"<span class='bad'>2 mismatches in {values:,} values on verilator (first: fc2/v "
            f"channel 3 bin 9)</span>") in head
    assert f"<span class='ok'>0 mismatches in {values:,} values, on icarus</span>" in head
    assert re.search(r"verilator: <span class='bad'>2 mismatches in \d+ values", page)


def test_an_rtl_trace_of_another_stimulus_is_named_not_compared(build):
    rtl = rtl_copy(build, "verilator")
    Trace({k: v[:10] for k, v in rtl.arrays.items()}).save(build / "rtl_short.npz")
    head = summary(write_report(build).read_text())
    assert "0 mismatches" in head and "on verilator" in head
    assert "not compared (made from another stimulus): short" in head


def test_quality_line_from_the_metrics_beside_the_checkpoint(build, tmp_path, model_pt):
    model = tmp_path / "models" / "mine.pt"
    model.parent.mkdir()
    shutil.copy(model_pt, model)
    report = json.loads((build / "report.json").read_text())
    report["model"] = str(model)
    (build / "report.json").write_text(json.dumps(report))
    head = summary(write_report(build).read_text())
    assert f"no metrics.json found beside {model}" in head

    shutil.copy(EXAMPLE_METRICS, model.with_suffix(".metrics.json"))
    head = summary(write_report(build).read_text())
    m = {k: json.loads(EXAMPLE_METRICS.read_text())[k]["test"]["bits_per_spike"]
         for k in ("float", "integer", "glm", "true_rates")}
    assert (f"held-out test bits/spike: float {m['float']:.3f}, integer {m['integer']:.3f}, "
            f"GLM {m['glm']:.3f}, true rates {m['true_rates']:.3f}" in head)
    assert str(model.with_suffix(".metrics.json")) in head

    model.with_suffix(".metrics.json").rename(model.parent / "metrics.json")  # est-train's name
    assert find_metrics(str(model))[1] == str(model.parent / "metrics.json")

    report["model_config"] = {"d_model": 99}  # metrics of another model are not shown
    (build / "report.json").write_text(json.dumps(report))
    head = summary(write_report(build).read_text())
    assert "describes another model" in head and "bits/spike" not in head


def test_board_line_from_synthesis(build):
    (build / "synth_icebreaker").mkdir()
    (build / "synth_icebreaker" / "synth.json").write_text(json.dumps(SYNTH))
    head = summary(write_report(build).read_text())
    assert ("<b>icebreaker</b>: logic 4,760/5,280 ICESTORM_LC (90%); Fmax 22.5 MHz, "
            "<span class='ok'>12 MHz board clock met</span>; 86.25 us per bin at the board "
            "clock (1,035 cycles/bin)") in head
    assert "not synthesized yet" not in head


def test_a_tight_logic_fit_is_shown_before_synthesis(build):
    """est-compile's logic fit check (report.json hardware.logic_fit): a design above the
    warning line is shown as uncertain in the summary, with the check's own message."""
    report = json.loads((build / "report.json").read_text())
    message = ("the model on icebreaker at lanes 4: its logic estimate is 4879 of 5280 logic "
               "cells (92.4%)")
    report["hardware"]["logic_fit"].update(verdict="tight", message=message)
    (build / "report.json").write_text(json.dumps(report))
    page = write_report(build).read_text()
    assert "placement uncertain (estimate above the fit check" in page
    assert "Logic fit check (tight)" in page and message in page


def test_a_translation_that_is_not_exact_is_said_in_the_summary(build):
    """A front end's notes (report.json ``notes``: an snnTorch reset by subtraction without
    reset_delay) are shown in the summary, not only kept in the JSON."""
    report = json.loads((build / "report.json").read_text())
    report["notes"] = ["module 1 (Leaky): reset by subtraction with reset_delay=False is not "
                       "exact"]
    (build / "report.json").write_text(json.dumps(report))
    head = summary(write_report(build).read_text())
    assert "not exact</th>" in head and "module 1 (Leaky): reset by subtraction" in head


def test_a_core_builds_cycles_by_instruction_most_first_with_their_share():
    from est.report import _core_instructions

    page = _core_instructions({"by_instruction": {"lif": 30.0, "conv": 60.0, "end": 10.0}})
    assert page.index(">conv<") < page.index(">lif<") < page.index(">end<")
    assert ">60.0<" in page and ">60%<" in page and ">10%<" in page
    assert _core_instructions({}) == ""  # a build from before they were reported
