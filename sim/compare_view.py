"""The picture of a golden-vs-RTL comparison: a PNG of every compared tensor, golden and RTL side
by side (spike rasters for 0/1 tensors, colour maps for membranes and readouts), every differing
value ringed in red and the first divergence marked, and a static HTML page around it with the
per-layer summary. Written by ``est-compare`` next to the RTL trace."""

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from est.sim.trace import Comparison, Trace  # noqa: E402

MAX_BINS = 400  # bins drawn; a longer trace is drawn around its first divergence


def _window(c: Comparison, bins: int) -> slice:
    if bins <= MAX_BINS:
        return slice(0, bins)
    centre = c.first.bin if c.first is not None else 0
    start = min(max(0, centre - MAX_BINS // 2), bins - MAX_BINS)
    return slice(start, start + MAX_BINS)


def _panel(ax, values: np.ndarray, binary: bool, t0: int, title: str, vmin, vmax) -> None:
    if binary:
        t, ch = np.nonzero(values)
        ax.scatter(t + t0, ch, s=4, marker="|", color="black", linewidths=0.8)
        ax.set_ylim(-0.5, values.shape[1] - 0.5)
    else:
        ax.imshow(values.T, aspect="auto", interpolation="nearest", origin="lower",
                  extent=(t0 - 0.5, t0 + values.shape[0] - 0.5, -0.5, values.shape[1] - 0.5),
                  cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_xlim(t0 - 0.5, t0 + values.shape[0] - 0.5)
    ax.set_title(title, fontsize=8, loc="left")
    ax.tick_params(labelsize=6)


def figure_png(golden: Trace, rtl: Trace, c: Comparison) -> bytes:
    """The comparison drawn as PNG bytes (one row per compared tensor)."""
    win = _window(c, golden.bins)
    rows = len(c.tensors)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 1.1 + 1.4 * rows), squeeze=False,
                             sharex=True)
    for row, name in enumerate(c.tensors):
        g, r = golden.arrays[name][win], rtl.arrays[name][win]
        binary = bool(np.isin(g, (0, 1)).all() and np.isin(r, (0, 1)).all())
        lo, hi = min(g.min(), r.min()), max(g.max(), r.max())
        for col, (values, who) in enumerate(((g, "golden"), (r, "RTL"))):
            ax = axes[row, col]
            bad = c.per_tensor[name]
            _panel(ax, values, binary, win.start, f"{name} ({who})"
                   + (f": {bad} mismatches" if bad and col else ""), lo, hi)
            t, ch = np.nonzero(g != r)
            if len(t):
                ax.scatter(t + win.start, ch, s=30, facecolors="none", edgecolors="red",
                           linewidths=1.0)
            if c.first is not None and c.first.tensor == name:
                ax.axvline(c.first.bin, color="red", linewidth=0.8, linestyle="--")
            ax.set_ylabel("channel", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("bin", fontsize=7)
    fig.suptitle("golden vs RTL" + (f": first divergence {c.first.tensor} channel "
                                    f"{c.first.channel} bin {c.first.bin}" if c.first else
                                    ": every value matches"), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def layer_summary(c: Comparison) -> dict[str, dict[str, int]]:
    """Mismatches per layer and tensor: ``{layer: {tensor: count}}`` in network order."""
    out: dict[str, dict[str, int]] = {}
    for name in c.tensors:
        layer, _, tensor = name.partition("/")
        out.setdefault(layer, {})[tensor] = c.per_tensor[name]
    return out


def write(golden: Trace, rtl: Trace, c: Comparison, text: str, stem: Path) -> tuple[Path, Path]:
    """Write ``stem.png`` and ``stem.html``; return both paths."""
    png = figure_png(golden, rtl, c)
    png_path, html_path = stem.with_suffix(".png"), stem.with_suffix(".html")
    png_path.write_bytes(png)
    rows = "".join(
        f"<tr><td>{html.escape(layer)}</td>"
        + "".join(f"<td class='{'bad' if n else 'ok'}'>{html.escape(t)}: {n}</td>"
                  for t, n in tensors.items()) + "</tr>"
        for layer, tensors in layer_summary(c).items())
    verdict = "all values match" if c.mismatches == 0 else f"{c.mismatches} mismatches"
    html_path.write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>est-compare: {html.escape(verdict)}</title>
<style>body{{font-family:sans-serif;margin:2em}} td{{padding:2px 10px}}
.bad{{color:#b00;font-weight:bold}} .ok{{color:#080}} pre{{background:#f4f4f4;padding:1em}}</style>
</head><body>
<h1>golden vs RTL: {html.escape(verdict)}</h1>
<p>{html.escape(str(golden.meta.get("source", "golden")))} vs
{html.escape(str(rtl.meta.get("source", "RTL")))}, {c.bins} bins, {c.values_compared} values.</p>
<h2>Mismatches per layer</h2><table>{rows}</table>
<h2>Report</h2><pre>{html.escape(text)}</pre>
<h2>Rasters</h2><img alt="golden vs RTL" style="max-width:100%"
src="data:image/png;base64,{base64.b64encode(png).decode()}">
</body></html>
""")
    return png_path, html_path
