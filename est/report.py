"""``est-report BUILD``: one static HTML page per build folder, ``BUILD/report.html``.

It opens with a summary: the verdict of every golden-vs-RTL comparison (``0 mismatches in N
values, on verilator, icarus``, or ``not simulated yet``), the model's held-out quality (bits per
spike of the float and integer models, a GLM and the true rates, from the ``metrics.json``
``est-train`` wrote beside the checkpoint), and per synthesized board the logic used, Fmax and
latency per bin. Then the details, gathered from what the other tools wrote into the folder: the
model and its quantization (``report.json``), the per-layer table (shape, bits, saturation,
quantization loss, synaptic operations, cycles against the dense and memory lower bounds,
memory), every golden-vs-RTL comparison (``rtl_*.npz``: a difference panel and one raster per
tensor, ``sim/compare_view.py``), predicted against
true rates for a few neurons (when the build was compiled from a recording, ``recording.npz``),
the board runs (``run*/run.json``) and utilisation and timing per board (``synth_*/synth.json``).
Pictures are embedded, so the page is one file that opens without a server.
``est-compile``, ``est-compare``, ``est-synth`` and ``est-run`` refresh it.
"""

import argparse
import base64
import datetime
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from est import EstError, __version__
from est.cli import Command, mismatches

if TYPE_CHECKING:
    from est.sim.trace import Comparison, Trace

RATE_NEURONS = 4  # neurons drawn in the predicted-vs-true figure (the most active ones)

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em} td,th{padding:3px 9px;border-bottom:1px
solid #ddd;text-align:right} th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.ok{color:#080;font-weight:bold} .bad{color:#b00;font-weight:bold} .note{color:#666;font-size:90%}
img{max-width:100%;border:1px solid #eee} code{background:#f4f4f4;padding:1px 4px}
table.summary td,table.summary th{text-align:left;vertical-align:top} table.summary th{
white-space:nowrap}"""


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # missing or unreadable; not JSON (JSONDecodeError)
        return None


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _verdict(good: bool, yes: str, no: str) -> str:
    return f"<span class='{'ok' if good else 'bad'}'>{html.escape(yes if good else no)}</span>"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f"<img alt='figure' src='data:image/png;base64,{data}'>"


def _model_section(report: dict) -> str:
    rows = [["model", report.get("model", "?")],
            ["SHA-256", report.get("model_sha256") or "?"],
            ["operations", ", ".join(f"{k} {v}" for k, v in
                                     (report.get("operations") or {}).items())],
            ["lanes", report.get("lanes")], ["stimulus bins", report.get("stimulus_bins")]]
    for key, value in (report.get("model_config") or {}).items():
        rows.append([f"model.{key}", value])
    return "<h2>Model</h2>" + _table(["", ""], rows)


def _core_layers(report: dict) -> str:
    """The core backend's per-node table: the core model's cycles, events and bounds."""
    hw = report["hardware"]
    rows = [[name, f"{r['cycles_mean']:.1f}", r["cycles_max"], f"{r['events_mean']:.1f}",
             f"{r['synaptic_events_mean']:.1f}", f"{r['event_bound_mean']:.1f}",
             f"{r['memory_bound_mean']:.1f}",
             "" if r["ratio"] is None else f"{r['ratio']:.2f}"]
            for name, r in [*hw["nodes"].items(), ("bin (total)", hw["bin"])]]
    use = ", ".join(f"{k.replace('_', ' ')} {v:,} of {hw['core'][k]:,}"
                    for k, v in hw["usage"].items())
    return (f"<h2>Nodes on the core</h2><p class='note'>{html.escape(hw['board'])}'s core "
            f"({hw['lanes']} lanes of {hw['core']['weight_bits']}-bit weights; {use}; "
            f"{hw['instructions']} instructions). Per node and bin over the stimulus, from the "
            f"core model (equal to the gateware's cycles when its streams never stall): "
            f"cycles, input events, synaptic events (events x fan-out), the event bound "
            f"(synaptic events / lanes) and the memory bound (weight words read, one a cycle); "
            f"ratio: cycles / the larger bound. The listing is program.txt.</p>" + _table(
                ["node", "cycles/bin", "max", "events", "synaptic events", "event bound",
                 "memory bound", "ratio"], rows) + _core_instructions(hw))


def _core_instructions(hw: dict) -> str:
    """The bin's cycles by kind of instruction (a build written before they were reported
    has none)."""
    kinds = sorted(hw.get("by_instruction", {}).items(), key=lambda kv: -kv[1])
    if not kinds:
        return ""
    total = sum(cycles for _, cycles in kinds)
    rows = [[op, f"{cycles:.1f}", f"{100 * cycles / total:.0f}%"] for op, cycles in kinds]
    return ("<p class='note'>The bin's cycles by kind of instruction, each with its fetch: "
            "where the cycles above the bounds go.</p>"
            + _table(["instruction", "cycles/bin", "share"], rows))


def _layers(report: dict) -> str:
    quant = report["quantization"]["layers"]
    hw = report["hardware"]
    if hw.get("backend") == "core":
        return _core_layers(report)
    rows = []
    for s in hw["stages"]:
        q = quant.get(s["name"], {})
        rows.append([s["name"], s["kind"], s["shape"], q.get("v_bits", ""),
                     q.get("needed_bits", ""), q.get("bins_differing_from_wide", ""),
                     q.get("spike_agreement", ""), s["synaptic_ops"], s["cycles"],
                     s["dense_bound"], s["memory_bound"], s["memory_bits"], s["block_rams"],
                     s["luts"], s["ffs"]])
    t = hw["total"]
    rows.append(["total", "", "", "", "", "", "", t["synaptic_ops"], hw["cycles_per_bin"],
                 t["dense_bound"], t["memory_bound"], t["memory_bits"], t["block_rams"],
                 t["luts"], t["ffs"]])
    return (f"<h2>Nodes</h2><p class='note'>Estimates for {html.escape(hw['board'])} at lanes "
            f"{hw['lanes']}, membranes in {html.escape(hw['membranes'])}; total cycles measured "
            f"in simulation, lower bounds along the longest path. v bits: membrane width "
            f"chosen; needed: the width the calibration run reached; bins changed: calibration "
            f"bins whose membranes change when cut to that width (quantization loss from the "
            f"width; 0 = none); spike agreement (spiking MLP): integer vs float spikes on the "
            f"calibration stimulus.</p>" + _table(
                ["node", "kind", "shape", "v bits", "needed", "bins changed", "spike agr.",
                 "syn ops/bin", "cycles", "dense lb", "memory lb", "memory bits", "BRAM", "LUT~",
                 "FF~"], rows))


class _Compared(NamedTuple):
    """One RTL trace of the build against ``golden.npz``: ``result`` is None when the two have
    different numbers of bins (then nothing is compared)."""

    path: Path
    rtl: "Trace"
    result: "Comparison | None"


def _compared(build: Path) -> tuple["Trace | None", list[_Compared]]:
    """The golden trace and every ``rtl_*.npz`` of the folder held against it (sorted by name);
    ``(None, [])`` before ``est-sim``."""
    from est.sim.trace import Trace, compare

    golden_path = build / "golden.npz"
    rtl_paths = sorted(build.glob("rtl_*.npz"))
    if not golden_path.is_file() or not rtl_paths:
        return None, []
    golden = Trace.load(golden_path)
    out = []
    for path in rtl_paths:
        rtl = Trace.load(path)
        out.append(_Compared(path, rtl, compare(golden, rtl) if rtl.bins == golden.bins
                             else None))
    return golden, out


def _sim_name(path: Path) -> str:
    return path.stem.removeprefix("rtl_")


def _verdict_line(compared: list[_Compared], shown: Path) -> str:
    """``0 mismatches in N values, on verilator, icarus``, or the mismatches per simulator."""
    done = [x for x in compared if x.result is not None]
    skipped = [_sim_name(x.path) for x in compared if x.result is None]
    if not done:
        return ("<b>not simulated yet</b>: run <code>est-sim "
                f"{html.escape(str(shown))}</code>" + (
                    f" (not compared, another stimulus: {html.escape(', '.join(skipped))})"
                    if skipped else ""))
    good = [x for x in done if x.result.mismatches == 0]
    bad = [x for x in done if x.result.mismatches]
    parts = []
    if bad:
        parts.append("<span class='bad'>" + html.escape("; ".join(
            f"{mismatches(x.result.mismatches)} in {x.result.values_compared:,} values on "
            f"{_sim_name(x.path)} (first: {x.result.first.tensor} channel "
            f"{x.result.first.channel} bin {x.result.first.bin})" for x in bad)) + "</span>")
    if good:
        counts = {x.result.values_compared for x in good}
        names = ", ".join(_sim_name(x.path) for x in good)
        text = (f"0 mismatches in {counts.pop():,} values, on {names}" if len(counts) == 1 else
                "0 mismatches, on " + ", ".join(f"{_sim_name(x.path)} ({x.result.values_compared:,}"
                                                f" values)" for x in good))
        parts.append(f"<span class='ok'>{html.escape(text)}</span>")
    first = done[0].result
    parts.append(f"<span class='note'>every value of {len(first.tensors)} tensors over "
                 f"{first.bins} bins</span>")
    if skipped:
        parts.append(f"<span class='bad'>not compared (made from another stimulus): "
                     f"{html.escape(', '.join(skipped))}</span>")
    return "; ".join(parts)


def find_metrics(model: str | None) -> tuple[dict | None, str]:
    """The ``metrics.json`` that ``est-train`` wrote beside the checkpoint ``model`` (the path
    ``est-compile`` recorded in ``report.json``): ``MODEL_STEM.metrics.json`` (as in
    ``examples/``) or ``metrics.json`` in the checkpoint's folder (as ``est-train --out``
    writes it). Returns ``(metrics, path)``, or ``(None, why not)``."""
    if not model:
        return None, "report.json names no model"
    path = Path(model)
    tried = [path.with_suffix(".metrics.json"), path.parent / "metrics.json"]
    for candidate in tried:
        metrics = _json(candidate)
        if isinstance(metrics, dict) and isinstance(metrics.get("float"), dict):
            return metrics, str(candidate)
    return None, (f"no metrics.json found beside {model} (looked for "
                  + " and ".join(str(t) for t in tried) + ")")


def _quality_line(report: dict) -> str:
    """Held-out bits/spike of the float, integer, GLM and true-rate predictions."""
    metrics, where = find_metrics(report.get("model"))
    if metrics is None:
        return f"<span class='note'>{html.escape(where)}</span>"
    trained = (metrics.get("config") or {}).get("model")
    if report.get("model_config") and trained and trained != report["model_config"]:
        return (f"<span class='bad'>{html.escape(where)} describes another model (its config "
                f"differs from this checkpoint's); not shown</span>")
    scores = [(label, (metrics.get(key) or {}).get("test", {}).get("bits_per_spike"))
              for label, key in (("float", "float"), ("integer", "integer"), ("GLM", "glm"),
                                 ("true rates", "true_rates"))]
    shown = ", ".join(f"{label} {value:.3f}" for label, value in scores if value is not None)
    return (f"held-out test bits/spike: {html.escape(shown)} <span class='note'>(higher is "
            f"better; from {html.escape(where)}, written by est-train)</span>")


def _board_lines(build: Path, report: dict, shown: Path) -> list[str]:
    """Per synthesized board: logic used, Fmax against the board clock, latency per bin."""
    from est.boards.synth import logic_used

    lines = []
    for path in sorted(build.glob("synth_*/synth.json")):
        r = _json(path)
        if not r:
            continue
        try:
            cell, used, available = logic_used(r)
        except (KeyError, StopIteration):
            cell, used, available = "logic", 0, 0
        share = f" ({100 * used / available:.0f}%)" if available else ""
        met = r.get("board_clock_met")
        lines.append(
            f"<b>{html.escape(str(r.get('board')))}</b>: logic {used:,}/{available:,} "
            f"{html.escape(cell)}{share}; Fmax {r['fmax_mhz']:.1f} MHz, "
            + _verdict(bool(met), f"{r['board_clock_mhz']:g} MHz board clock met",
                       f"{r['board_clock_mhz']:g} MHz board clock NOT met")
            + f"; {r['latency_us_at_board_clock']:g} us per bin at the board clock "
            f"({r['cycles_per_bin']:,} cycles/bin)")
    if not lines:
        fit = report.get("fit") or {}
        board = fit.get("board") or (report.get("hardware") or {}).get("board") or "?"
        logic_fit = (report.get("hardware") or {}).get("logic_fit") or {}
        estimate = ("does not fit (estimate)" if not fit.get("fits", True) else
                    {"tight": "placement uncertain (estimate above the fit check's warning "
                              "line)"}.get(logic_fit.get("verdict"), "fits (estimate)"))
        lines.append(f"<b>{html.escape(str(board))}</b>: {html.escape(estimate)}; not "
                     f"synthesized yet: <code>est-synth {html.escape(str(shown))} --board "
                     f"{html.escape(str(board))}</code>")
    return lines


def _summary(build: Path, shown: Path, report: dict, compared: list[_Compared]) -> str:
    rows = [("RTL vs golden", _verdict_line(compared, shown)),
            ("model quality", _quality_line(report))]
    rows += [("board", line) for line in _board_lines(build, report, shown)]
    # where the front end's translation of the source model is not exact (report.json notes)
    rows += [("not exact", f"<span class='bad'>{html.escape(note)}</span>")
             for note in report.get("notes", [])]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<h2>Summary</h2><table class='summary'>{body}</table>"


def _comparisons(golden, compared: list[_Compared], shown: Path) -> str:
    if golden is None:
        return ("<h2>Golden vs RTL</h2><p>No RTL trace yet: run <code>est-sim "
                f"{html.escape(str(shown))}</code>.</p>")
    parts = ["<h2>Golden vs RTL</h2>"]
    for path, rtl, c in compared:
        if c is None:
            parts.append(f"<p class='bad'>{html.escape(path.name)}: {rtl.bins} bins, golden has "
                         f"{golden.bins}: made from another stimulus; not compared.</p>")
            continue
        from est.sim.compare_view import ALT, figure_png, layer_summary  # matplotlib: seconds

        stats = _json(path.with_suffix(".json")) or {}
        parts.append(
            f"<h3>{html.escape(_sim_name(path))}: "
            + _verdict(c.mismatches == 0, f"0 mismatches in {c.values_compared} values",
                       f"{mismatches(c.mismatches)} in {c.values_compared} values")
            + f"</h3><p>{c.bins} bins, {len(c.tensors)} tensors; "
            f"{stats.get('cycles_per_bin', '?')} cycles/bin measured in simulation"
            + (f"; first divergence: {html.escape(c.first.tensor)} channel {c.first.channel} "
               f"bin {c.first.bin}: golden {c.first.expected}, RTL {c.first.actual}"
               if c.first else "") + "</p>")
        rows = [[layer, ", ".join(f"{t} {n}" for t, n in tensors.items())]
                for layer, tensors in layer_summary(c).items()]
        parts.append(_table(["layer", "mismatches per tensor"], rows))
        parts.append("<p class='note'>Top: every value where the RTL differs from the golden "
                     "model (empty when they are equal). Below: each tensor once, from the "
                     "golden trace, differing values ringed in red.</p>")
        png = base64.b64encode(figure_png(golden, rtl, c)).decode()
        parts.append(f"<img alt='{ALT}' src='data:image/png;base64,{png}'>")
    return "".join(parts)


def _rates(build: Path) -> str:
    """Predicted (golden readout; the RTL equals it where the comparison says so) against true
    rates, or observed counts, of the most active neurons; row t of the readout predicts bin
    t + 1."""
    rec_path = build / "recording.npz"
    if not rec_path.is_file():
        return ("<h2>Predicted vs true rates</h2><p class='note'>This build was compiled from a "
                "random stimulus; compile with <code>--recording counts.npz</code> to see "
                "predictions against a recording.</p>")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from est.compiler.graph import load
    from est.sim.trace import Trace

    rec = np.load(rec_path)
    counts = rec["counts"]
    truth = rec["rates"] if "rates" in rec.files else None
    net = load(build)
    golden = Trace.load(build / "golden.npz")
    pred = np.exp(net.log_rates(golden.arrays))
    pred, target = pred[:-1], (truth if truth is not None else counts)[1:]
    neurons = np.argsort(-counts.mean(axis=0))[:RATE_NEURONS]
    fig, axes = plt.subplots(len(neurons), 1, figsize=(11, 1.6 * len(neurons)), sharex=True,
                             squeeze=False)
    t = np.arange(1, len(pred) + 1)
    for ax, n in zip(axes[:, 0], neurons, strict=True):
        ax.plot(t, target[:, n], color="black", lw=1,
                label="true rate" if truth is not None else "observed count")
        ax.plot(t, pred[:, n], color="tab:red", lw=1, label="predicted (integer model)")
        ax.set_ylabel(f"neuron {n}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("bin", fontsize=8)
    fig.tight_layout()
    corr = float(np.corrcoef(pred.ravel(), target.ravel())[0, 1])
    what = "true rates" if truth is not None else "observed counts"
    return (f"<h2>Predicted vs true rates</h2><p>{len(pred)} bins of "
            f"{html.escape(str(rec.get('source', rec_path.name)))}; correlation of predicted "
            f"and {what} over all {target.shape[1]} neurons: {corr:.3f}. Expected spikes per "
            f"bin; the {len(neurons)} most active neurons drawn.</p>" + _png(fig))


def _boards(build: Path, shown: Path) -> str:
    rows = []
    for path in sorted(build.glob("synth_*/synth.json")):
        r = _json(path)
        if not r:
            continue
        used = [f"{cell} {u['used']}/{u['available']}" for cell, u in r["utilisation"].items()
                if u["used"] and cell not in ("SB_IO", "SB_GB", "TRELLIS_IO", "DCCA")]
        rows.append([r["board"], "; ".join(used), f"{r['fmax_mhz']:.1f}",
                     f"{r['board_clock_mhz']:g}", "met" if r["board_clock_met"] else "NOT met",
                     r["cycles_per_bin"], r["latency_us_at_board_clock"],
                     r["bins_per_second_at_board_clock"], r["seconds"]])
    if not rows:
        return ("<h2>Boards</h2><p>Not synthesized yet: <code>est-synth "
                f"{html.escape(str(shown))} --board icebreaker</code>.</p>")
    return "<h2>Boards</h2>" + _table(
        ["board", "used / available", "Fmax MHz", "clock MHz", "clock", "cycles/bin",
         "us/bin at clock", "bins/s at clock", "synthesis s"], rows) + _utilisation_figure(build)


def _utilisation_figure(build: Path) -> str:
    """Bars of the share of each resource used, one group per synthesized board."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reports = [r for p in sorted(build.glob("synth_*/synth.json")) if (r := _json(p))]
    fig, axes = plt.subplots(1, len(reports), figsize=(5.5 * len(reports), 2.6), squeeze=False)
    for ax, r in zip(axes[0], reports, strict=True):
        cells = [(c, u) for c, u in r["utilisation"].items() if u["used"] and u["available"]]
        share = [100 * u["used"] / u["available"] for _, u in cells]
        bars = ax.barh([c for c, _ in cells], share, color=["tab:red" if x > 90 else "tab:blue"
                                                            for x in share])
        ax.bar_label(bars, [f"{u['used']}/{u['available']}" for _, u in cells], fontsize=7,
                     padding=2)
        ax.set_xlim(0, 115)
        ax.set_xlabel("% used", fontsize=8)
        ax.set_title(f"{r['board']}: Fmax {r['fmax_mhz']:.1f} MHz", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.invert_yaxis()
    fig.tight_layout()
    return _png(fig)


def _runs(build: Path) -> str:
    rows = []
    for path in sorted(build.glob("*/run.json")):
        r = _json(path) or {}
        if "bins" in r:
            rows.append([path.parent.name, r["port"], r["bins"], r["bins_per_second"],
                         r["recoveries"], f"{r['golden_mismatches']} / {r['golden_values']}"])
    if not rows:
        return ""
    return "<h2>Runs over the host protocol</h2>" + _table(
        ["folder", "port", "bins", "bins/s", "recovered frames", "mismatches / values"], rows)


def read_report(build: Path) -> dict:
    """``build/report.json``, checked to hold what the report reads (a name, the hardware and
    the quantization's layers); else an :class:`EstError` saying to compile again."""
    report = _json(Path(build) / "report.json")
    if not isinstance(report, dict):
        raise EstError(f"{build}: no readable report.json; is this a folder written by "
                       f"est-compile? (est-compile MODEL.pt -o {build})")
    if not (isinstance(report.get("name"), str) and isinstance(report.get("hardware"), dict)
            and isinstance((report.get("quantization") or {}).get("layers"), dict)):
        raise EstError(f"{Path(build) / 'report.json'}: not as est-compile writes it (no name, "
                       f"hardware or quantization.layers); compile the model again "
                       f"(est-compile MODEL.pt -o {build})")
    return report


def write_report(build: Path, shown: Path | None = None) -> Path:
    """Write ``build/report.html`` from what the build folder holds; return its path.
    ``shown``: the folder's name on the page and in its commands (default ``build``)."""
    build = Path(build)
    shown = shown or build
    report = read_report(build)
    layers = _layers(report)
    golden, compared = _compared(build)
    fit = report.get("fit", {})
    fit_line = (f"<p>Fit on {html.escape(str(fit.get('board')))} (estimate before synthesis): "
                + _verdict(fit.get("fits", True), "fits",
                           f"does not fit: {fit.get('reason', '')}") + "</p>")
    logic_fit = (report.get("hardware") or {}).get("logic_fit")
    if logic_fit:
        fit_line += (f"<p>Logic fit check ({html.escape(logic_fit['verdict'])}): "
                     + _verdict(logic_fit["verdict"] == "fits", logic_fit["message"],
                                logic_fit["message"]) + "</p>")
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>est report: {html.escape(report['name'])}</title>
<style>{STYLE}</style></head><body>
<h1>est report: {html.escape(report['name'])}</h1>
<p class="note">{html.escape(str(shown))}, est {__version__}, {stamp}. Regenerate with
<code>est report {html.escape(str(shown))}</code>.</p>
{_summary(build, shown, report, compared)}
<hr><p class="note">Details: the model, the layers, each golden-vs-RTL comparison, predicted
against true rates, the boards and the runs.</p>
{_model_section(report)}{fit_line}{layers}{_comparisons(golden, compared, shown)}{_rates(build)}
{_boards(build, shown)}
{_runs(build)}</body></html>
"""
    out = build / "report.html"
    tmp = out.with_suffix(".html.partial")
    tmp.write_text(page)
    tmp.replace(out)
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("build", type=Path, help="folder written by est-compile")


def run_report(args: argparse.Namespace) -> int:
    print(f"est-report: wrote {write_report(args.build)}")
    return 0


REPORT = Command("report", "Write BUILD/report.html: model, layers, golden vs RTL, rates, "
                 "boards (est-report).", configure, run_report, "  est-report build/tiny")
main = REPORT.main
run_main = REPORT.script
