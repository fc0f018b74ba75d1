"""The synapse helpers and checks of hw/synapse.py: ceiling division, lane packing with a
padded last word, the group payload's width, and refused parameters (the accumulator's gateware
is tested against the golden model in tests/test_conv.py)."""

import numpy as np
import pytest

from est.hw.synapse import SynapticAccumulator, ceil_div, current_group_layout, pack_lanes


def test_ceil_div_and_pack_lanes_by_hand():
    assert [ceil_div(a, 3) for a in (1, 3, 4, 6, 7)] == [1, 1, 2, 2, 3]
    assert pack_lanes(np.array([1, -1, 2]), 2, 4) == [1 | 15 << 4, 2]
    assert pack_lanes(np.array([1, -1, 2]), 2, 4, pad=5) == [1 | 15 << 4, 2 | 5 << 4]
    assert current_group_layout(3, 5).size == 3 * 5 + 1


def test_bad_lanes_and_bias_are_refused():
    weight = np.ones((3, 2), np.int64)
    with pytest.raises(ValueError, match="lanes must be at least 1"):
        SynapticAccumulator(weight, np.zeros(3, np.int64), 0, 8, 4)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        SynapticAccumulator(weight, np.zeros(2, np.int64), 1, 8, 4)
