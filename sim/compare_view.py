"""The picture of a golden-vs-RTL comparison, and a static HTML page around it, written by
``est-compare`` next to the RTL trace and embedded in ``report.html`` (``est/report.py``).

On top, the difference panel: a mark wherever the RTL differs from the golden model (red: the
RTL value is higher, blue: lower), the count per tensor on the right, empty when the traces are
equal. Below it, one raster per compared tensor drawn once from the golden trace (the RTL's too
wherever the panel is empty): spikes as tick rasters, other tensors as colour maps; values
where the RTL differs are ringed in red and the first divergence is a dashed line.
"""

import base64
import html
import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from est.cli import mismatches  # noqa: E402
from est.sim.trace import Comparison, Trace  # noqa: E402

MAX_BINS = 400  # bins drawn; a longer trace is drawn around its first divergence
COLUMNS = 2  # rasters side by side
RASTER_HEIGHT = 1.05  # inches per row of rasters
BAND_HEIGHT = 0.14  # inches per tensor in the difference panel

# Axes labels (``Axes.get_label()``), so tests and readers can find the parts of the figure.
DIFFERENCE = "difference"
RASTER = "raster:"  # + tensor name
COLORBAR = "colorbar:"  # + tensor name


def _difference_panel(ax, golden: Trace, rtl: Trace, c: Comparison, win: slice) -> None:
    """Every compared tensor as a band of unit height (channel ``ch`` of ``n`` at
    ``band + (ch + 0.5) / n``, first tensor on top); a mark wherever the RTL differs."""
    n = len(c.tensors)
    marks = {1: ([], []), -1: ([], [])}
    for row, name in enumerate(c.tensors):
        g, r = golden.arrays[name][win], rtl.arrays[name][win]
        band = n - 1 - row
        t, ch = np.nonzero(g != r)
        sign = np.sign(r[t, ch] - g[t, ch])
        for s in (1, -1):
            marks[s][0].extend((t[sign == s] + win.start).tolist())
            marks[s][1].extend((band + (ch[sign == s] + 0.5) / g.shape[1]).tolist())
        if c.per_tensor[name]:
            ax.text(1.005, (band + 0.5) / n, str(c.per_tensor[name]), transform=ax.transAxes,
                    fontsize=6, color="red", va="center", ha="left")
        if band:
            ax.axhline(band, color="#ddd", linewidth=0.5)
    for s, colour, label in ((1, "red", "RTL > golden"), (-1, "tab:blue", "RTL < golden")):
        if marks[s][0]:
            ax.scatter(marks[s][0], marks[s][1], s=14, marker="x", color=colour, linewidths=0.9,
                       label=label)
    if c.first is not None:
        ax.axvline(c.first.bin, color="red", linewidth=0.8, linestyle="--")
        ax.legend(fontsize=6, loc="lower right", bbox_to_anchor=(1, 1), ncol=2, frameon=False,
                  borderaxespad=0.1)
    else:
        ax.text(0.5, 0.5, "no differences: RTL equals golden on every value", fontsize=8,
                color="#080", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, n)
    ax.set_yticks([n - 1 - row + 0.5 for row in range(n)], c.tensors, fontsize=5.5)
    ax.set_xlim(win.start - 0.5, win.stop - 0.5)
    ax.tick_params(axis="x", labelsize=6)
    ax.set_xlabel("bin", fontsize=7)
    ax.set_title(f"differences, RTL - golden: {c.mismatches:,} of {c.values_compared:,} values"
                 + (" (count per tensor on the right)" if c.mismatches else ""), fontsize=8,
                 loc="left")
    ax.set_label(DIFFERENCE)


def _raster(ax, cax, name: str, g: np.ndarray, r: np.ndarray, c: Comparison, t0: int) -> None:
    """The golden values of one tensor; the values where ``r`` differs ringed."""
    bad = c.per_tensor[name]
    if name.endswith("/spikes"):  # tick rasters; every other tensor a colour map
        t, ch = np.nonzero(g)
        ax.scatter(t + t0, ch, s=4, marker="|", color="black", linewidths=0.8)
        cax.set_visible(False)
    else:
        image = ax.imshow(g.T, aspect="auto", interpolation="nearest", origin="lower",
                          extent=(t0 - 0.5, t0 + g.shape[0] - 0.5, -0.5, g.shape[1] - 0.5),
                          cmap="viridis", vmin=g.min(), vmax=max(g.max(), g.min() + 1))
        bar = ax.figure.colorbar(image, cax=cax, ticks=MaxNLocator(5, integer=True))
        bar.ax.tick_params(labelsize=5)
        cax.set_label(COLORBAR + name)
    t, ch = np.nonzero(g != r)
    if len(t):
        ax.scatter(t + t0, ch, s=30, facecolors="none", edgecolors="red", linewidths=1.0)
    if c.first is not None and c.first.tensor == name:
        ax.axvline(c.first.bin, color="red", linewidth=0.8, linestyle="--")
    ax.set_ylim(-0.5, g.shape[1] - 0.5)
    ax.set_xlim(t0 - 0.5, t0 + g.shape[0] - 0.5)
    ax.set_title(f"{name}: " + (f"golden; {bad} RTL value{'s differ' if bad > 1 else ' differs'}"
                                f" (ringed)" if bad else "golden = RTL"), fontsize=7, loc="left",
                 color="red" if bad else "black")
    ax.set_ylabel("channel", fontsize=6)
    ax.tick_params(labelsize=5.5)
    ax.set_label(RASTER + name)


def figure(golden: Trace, rtl: Trace, c: Comparison):
    """The comparison as a matplotlib figure: the difference panel, then a raster per tensor."""
    # at most MAX_BINS bins, centred on the first divergence where the trace allows
    start = max(0, min((c.first.bin if c.first else 0) - MAX_BINS // 2, golden.bins - MAX_BINS))
    win = slice(start, min(start + MAX_BINS, golden.bins))
    n = len(c.tensors)
    rows = math.ceil(n / COLUMNS)
    diff_h = max(1.3, BAND_HEIGHT * n + 0.5)
    top, bottom, gap = 0.45, 0.35, 0.55  # inches: title, x labels, between the two parts
    height = top + diff_h + gap + rows * RASTER_HEIGHT + bottom
    fig = plt.figure(figsize=(11, height))
    # [raster, colour bar, space] per column; the difference panel spans the row above
    ratios = [1, 0.025, 0.13] * COLUMNS
    grid = fig.add_gridspec(
        rows + 1, 3 * COLUMNS - 1, height_ratios=[diff_h] + [RASTER_HEIGHT] * rows,
        width_ratios=ratios[:-1], left=0.13, right=0.96, top=1 - top / height,
        bottom=bottom / height, hspace=0.75, wspace=0.05)
    _difference_panel(fig.add_subplot(grid[0, :-1]), golden, rtl, c, win)
    for i, name in enumerate(c.tensors):
        row, col = 1 + i // COLUMNS, 3 * (i % COLUMNS)
        g, r = golden.arrays[name][win], rtl.arrays[name][win]
        _raster(fig.add_subplot(grid[row, col]), fig.add_subplot(grid[row, col + 1]), name, g,
                r, c, win.start)
    shown = (f"bins {win.start}..{win.stop - 1} of {golden.bins}" if win.stop - win.start
             < golden.bins else f"{golden.bins} bins")
    fig.suptitle("golden vs RTL, " + shown + (
        f": first divergence {c.first.tensor} channel {c.first.channel} bin {c.first.bin} "
        f"(golden {c.first.expected}, RTL {c.first.actual})" if c.first else
        ": every value matches, so each tensor is drawn once"), fontsize=9,
        y=1 - 0.12 / height, va="top")
    return fig


def figure_png(golden: Trace, rtl: Trace, c: Comparison, dpi: int = 100) -> bytes:
    """:func:`figure` as PNG bytes."""
    fig = figure(golden, rtl, c)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


ALT = "difference panel (where RTL and golden differ) and one raster per compared tensor"


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
    verdict = "all values match" if c.mismatches == 0 else mismatches(c.mismatches)
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
<h2>Differences and rasters</h2><p>Top: every value where the RTL differs from the golden model
(empty when they are equal). Below: each compared tensor once, from the golden trace, with the
differing values ringed in red.</p><img alt="{ALT}" style="max-width:100%"
src="data:image/png;base64,{base64.b64encode(png).decode()}">
</body></html>
""")
    return png_path, html_path
