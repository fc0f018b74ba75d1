"""The golden-vs-RTL picture (sim/compare_view.py): one raster per tensor, a difference panel
that is empty when the traces are equal and marks every differing value otherwise, a colour bar
for every colour map."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from est.sim import compare_view
from est.sim.trace import Trace, compare

TENSORS = {"l0/spikes": 6, "l0/v": 6, "b0.res1/values": 4, "readout/v": 3}


def traces(bins: int = 50, seed: int = 0) -> tuple[Trace, Trace]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, n in TENSORS.items():
        if name.endswith("/spikes"):
            arrays[name] = (rng.random((bins, n)) < 0.3).astype(np.int64)
        elif name.endswith("/values"):
            arrays[name] = rng.integers(0, 3, (bins, n))
        else:
            arrays[name] = rng.integers(-300, 300, (bins, n))
    golden = Trace({"input/spikes": np.zeros((bins, 2), np.int64), **arrays},
                   {"source": "golden"})
    rtl = Trace({k: v.copy() for k, v in arrays.items()}, {"source": "verilator"})
    return golden, rtl


def parts(fig) -> dict[str, list]:
    out: dict[str, list] = {}
    for ax in fig.axes:
        out.setdefault(ax.get_label(), []).append(ax)
    return out


def marks(ax) -> np.ndarray:
    """The (bin, y) of every mark the difference panel draws."""
    offsets = [c.get_offsets() for c in ax.collections if len(c.get_offsets())]
    return np.concatenate(offsets) if offsets else np.zeros((0, 2))


def test_equal_traces_give_one_raster_per_tensor_and_an_empty_difference_panel():
    golden, rtl = traces()
    c = compare(golden, rtl)
    fig = compare_view.figure(golden, rtl, c)
    try:
        found = parts(fig)
        for name in TENSORS:  # each tensor drawn once, not golden and RTL side by side
            assert len(found[compare_view.RASTER + name]) == 1, name
        rasters = [k for k in found if k.startswith(compare_view.RASTER)]
        assert len(rasters) == len(TENSORS)
        (diff,) = found[compare_view.DIFFERENCE]
        assert len(marks(diff)) == 0
        assert any("no differences" in t.get_text() for t in diff.texts)
        # every colour map has its colour bar; spike rasters have none
        for name in TENSORS:
            bars = [ax for ax in found.get(compare_view.COLORBAR + name, []) if ax.get_visible()]
            assert len(bars) == (0 if name.endswith("/spikes") else 1), name
        images = [ax for ax in fig.axes if ax.images]
        assert len(images) == 3 and all(
            compare_view.COLORBAR + ax.get_label().removeprefix(compare_view.RASTER)
            in found for ax in images)
        for ax in found[compare_view.RASTER + "l0/v"]:  # nothing ringed
            assert len(ax.collections) == 0
    finally:
        plt.close(fig)


def test_differences_are_marked_in_the_panel_and_ringed_in_the_raster():
    golden, rtl = traces()
    rtl.arrays["l0/v"][7, 2] += 5
    rtl.arrays["readout/v"][30, 0] -= 1
    rtl.arrays["l0/spikes"][12, 5] ^= 1
    c = compare(golden, rtl)
    assert c.mismatches == 3
    fig = compare_view.figure(golden, rtl, c)
    try:
        found = parts(fig)
        (diff,) = found[compare_view.DIFFERENCE]
        got = marks(diff)
        assert sorted(got[:, 0].tolist()) == [7, 12, 30]
        # bands from the top: l0/spikes, l0/v, b0.res1/values, readout/v (unit height each)
        n = len(TENSORS)
        by_bin = {int(t): y for t, y in got}
        assert n - 1 < by_bin[12] < n and n - 2 < by_bin[7] < n - 1 and 0 < by_bin[30] < 1
        assert by_bin[7] == pytest.approx(n - 2 + 2.5 / 6)
        assert [t.get_text() for t in diff.texts] == ["1", "1", "1"]  # count per tensor
        (ring,) = [col for col in found[compare_view.RASTER + "l0/v"][0].collections]
        assert ring.get_offsets().tolist() == [[7, 2]]
        assert "first divergence l0/v channel 2 bin 7 (golden" in fig._suptitle.get_text()
    finally:
        plt.close(fig)


def test_a_long_trace_is_drawn_around_its_first_divergence():
    golden, rtl = traces(bins=1000)
    rtl.arrays["l0/v"][900, 1] += 1
    c = compare(golden, rtl)
    fig = compare_view.figure(golden, rtl, c)
    try:
        (diff,) = parts(fig)[compare_view.DIFFERENCE]
        assert diff.get_xlim() == (599.5, 999.5)
        assert marks(diff)[:, 0].tolist() == [900]
        assert "bins 600..999 of 1000" in fig._suptitle.get_text()
    finally:
        plt.close(fig)


def test_the_view_page_embeds_one_picture(tmp_path):
    golden, rtl = traces()
    rtl.arrays["l0/v"][7, 2] += 5
    c = compare(golden, rtl)
    png, page = compare_view.write(golden, rtl, c, "report text", tmp_path / "rtl_x_compare")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 1 and compare_view.ALT in text
    assert "1 mismatch" in text and "report text" in text


def test_a_comparison_of_many_tensors_is_half_as_tall_as_two_copies():
    rng = np.random.default_rng(1)
    arrays = {f"l{i}/v": rng.integers(-50, 50, (60, 8)) for i in range(21)}
    golden, rtl = Trace(arrays), Trace({k: v.copy() for k, v in arrays.items()})
    fig = compare_view.figure(golden, rtl, compare(golden, rtl))
    try:
        # golden and RTL side by side took 1.1 + 1.4 * 21 = 30.5 inches, 3,355 px at 110 dpi
        assert fig.get_figheight() * 100 <= 3355 / 2
        assert len(fig.axes) == 1 + 2 * 21  # difference panel, rasters and their colour bars
    finally:
        plt.close(fig)
