"""Trace files and their comparison (sim/trace.py): a trace saved as .npz loads back with its
arrays and meta; a missing or foreign file is refused by name; ``compare`` counts every
differing value and reports the earliest bin's first one, skipping the input."""

import numpy as np
import pytest

from est import EstError
from est.sim.trace import Mismatch, Trace, compare


def test_a_saved_trace_loads_back(tmp_path):
    trace = Trace({"fc1/spikes": np.array([[0, 1], [1, 1], [0, 0]], np.int8),
                   "readout/v": np.array([[-5], [7], [300]])}, {"source": "golden", "bins": 3})
    trace.save(tmp_path / "t.npz")
    back = Trace.load(tmp_path / "t.npz")
    assert back.meta == trace.meta and back.bins == 3 and list(back.arrays) == list(trace.arrays)
    for name, value in trace.arrays.items():
        assert back.arrays[name].dtype == np.int64
        np.testing.assert_array_equal(back.arrays[name], value)


def test_missing_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(EstError, match="no such trace file"):
        Trace.load(tmp_path / "nope.npz")
    (tmp_path / "notes.npz").write_text("not numpy\n")
    with pytest.raises(EstError, match="not an est trace file"):
        Trace.load(tmp_path / "notes.npz")


def test_compare_counts_mismatches_and_finds_the_earliest():
    golden = Trace({"input/spikes": np.zeros((4, 2), np.int64),
                    "a/spikes": np.zeros((4, 3), np.int64), "b/v": np.zeros((4, 2), np.int64)})
    rtl = Trace({k: v.copy() for k, v in golden.arrays.items()})
    rtl.arrays["input/spikes"][0, 0] = 1  # the input is not compared
    assert compare(golden, rtl).mismatches == 0
    rtl.arrays["a/spikes"][2, 1] = 1
    rtl.arrays["a/spikes"][3, 0] = 1
    rtl.arrays["b/v"][1, 1] = -9
    result = compare(golden, rtl)
    assert result.tensors == ("a/spikes", "b/v") and result.values_compared == 20
    assert result.bins == 4 and result.mismatches == 3
    assert result.per_tensor == {"a/spikes": 2, "b/v": 1}
    assert result.first == Mismatch("b/v", 1, 1, 0, -9)
    with pytest.raises(EstError, match="lacks"):
        compare(Trace({"a/spikes": golden.arrays["a/spikes"]}), rtl)
