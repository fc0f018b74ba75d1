"""The temporal processing unit (hw/tpu.py) on its own in amaranth.sim: two channels whose own
past spike adds to (channel 0) or takes from (channel 1) their current, spikes worked by hand
(random TPUs against the golden model are in tests/test_recurrence.py)."""

import numpy as np
import pytest
from stream_drivers import run_stream

from est.hw.tpu import TemporalUnit


@pytest.mark.parametrize("lanes, stall_seed", [(1, None), (2, 3)])
def test_past_spikes_feed_back_into_the_current(lanes, stall_seed):
    # current[c] = w_in[c] * x[c] + w_rec[0, c] * y_{t-1}[c]; no leak, threshold 3, reset to 0
    dut = TemporalUnit(np.array([2, 3]), np.array([[1, -1]]), np.array([0, 0]), lanes, 1, 8,
                       None, np.array([3, 3]), "zero")
    spikes = run_stream(dut, [0b11] * 4, stall_seed)
    # channel 0: v 2, 4*, 3*, 3*; channel 1: v 3*, 2, 5*, 2 (* spikes, then v = 0)
    assert spikes == [0b10, 0b01, 0b11, 0b01]
