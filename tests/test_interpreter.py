"""The golden interpreter: hand-computed values on a small graph, and its input checks."""

import numpy as np
import pytest

from est import EstError
from est.compiler.graph import GraphBuilder
from est.compiler.ops import LIF, Conv, Input, Readout
from est.sim.interpreter import run


def _relay(leak_shift=None, readout_leak=None):
    g = GraphBuilder()
    x = g.add("input", Input(2))
    s = g.add("a", LIF(np.array([1, 2]), leak_shift, 8),
              g.add("a.syn", Conv(np.eye(2, dtype=np.int64)[None], np.zeros(2, np.int64)), x))
    lagged = Conv(np.stack([np.zeros((1, 2), np.int64), np.array([[1, 10]])]),
                  np.zeros(1, np.int64))
    g.add("r", Readout(readout_leak, 8, np.ones(1)), g.add("r.syn", lagged, s))
    return g.build("relay", ("r",))


def test_values_by_hand():
    stim = np.array([[1, 1], [0, 1], [1, 0], [0, 0]])
    trace, saturated = run(_relay(), stim)
    # a: channel 0 fires at threshold 1 on every input spike; channel 1 needs two
    assert trace.arrays["a/spikes"].tolist() == [[1, 0], [0, 1], [1, 0], [0, 0]]
    assert trace.arrays["a/v"].tolist() == [[0, 1], [0, 0], [0, 0], [0, 0]]
    # r.syn sees a's spikes one bin late (lag 1 only): 1*s0 + 10*s1 of the bin before
    assert trace.arrays["r.syn/current"][:, 0].tolist() == [0, 1, 10, 1]
    assert trace.arrays["r/v"][:, 0].tolist() == [0, 1, 11, 12]
    assert trace.arrays["input/spikes"].tolist() == stim.tolist()
    assert saturated == {"a": 0, "r": 0}


def test_leak_and_saturation():
    stim = np.ones((12, 2), np.int64)
    trace, saturated = run(_relay(readout_leak=1), stim)
    v = trace.arrays["r/v"][:, 0]
    current = trace.arrays["r.syn/current"][:, 0]
    assert current[2] == 11 and v[1] == 1
    assert v[2] == (v[1] - (v[1] >> 1)) + current[2]  # leak of half, then the current
    trace, saturated = run(_relay(), np.ones((40, 2), np.int64))
    assert trace.arrays["r/v"].max() == 127 and saturated["r"] > 0


@pytest.mark.parametrize("stim, words", [
    (np.zeros((3, 3)), r"\[bins, 2\]"),
    (np.full((3, 2), 2), "binary spikes"),
    (np.full((3, 2), 0.5), "integers"),
])
def test_bad_stimulus(stim, words):
    with pytest.raises(EstError, match=words):
        run(_relay(), stim)
