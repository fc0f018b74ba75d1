"""The golden step functions against hand-worked values of docs/semantics.md."""

import numpy as np
import pytest

from est.sim import golden


def test_leak_is_a_flooring_arithmetic_shift():
    v = np.array([-5, -1, 0, 1, 5, 7, -8])
    assert golden.leak(v, 1).tolist() == [-2, 0, 0, 1, 3, 4, -4]
    assert golden.leak(v, 0).tolist() == [0] * 7
    assert golden.leak(v, None).tolist() == v.tolist()


def test_saturate_counts_clamped_values():
    out, n = golden.saturate(np.array([-200, -128, 127, 128, 5]), 8)
    assert out.tolist() == [-128, -128, 127, 127, 5] and n == 2


@pytest.mark.parametrize("reset, after", [("subtract", [0, 3, 9, -4]), ("zero", [0, 0, 9, -4])])
def test_lif_step_fires_at_threshold_and_resets(reset, after):
    params = golden.LIFParams(np.array([10, 10, 10, 10]), 2, 8, reset)
    state = golden.LIFState(np.array([0, 8, 12, -8]))
    # leak: 0, 6, 9, -6 ; + current
    out, state = golden.lif_step(np.array([10, 7, 0, 2]), state, params)
    assert out.spikes.tolist() == [1, 1, 0, 0]
    assert state.v.tolist() == after
    assert out.saturated == 0


def test_lif_step_saturates_before_the_threshold_compare():
    params = golden.LIFParams(np.array([100]), None, 8, "subtract")
    out, state = golden.lif_step(np.array([500]), golden.LIFState(np.array([20])), params)
    assert out.saturated == 1 and out.spikes.tolist() == [1] and state.v.tolist() == [27]


def test_integrator_step_and_synapse_step():
    syn = golden.SynapseParams(np.array([[1, -2, 3], [4, 5, -6]]), np.array([10, -10]))
    assert golden.synapse_step(np.array([1, 0, 1]), syn).tolist() == [14, -12]
    sat, state = golden.integrator_step(np.array([14, -12]), golden.LIFState(np.array([8, 8])),
                                        golden.IntegratorParams(1, 5))
    assert sat == 1 and state.v.tolist() == [15, -8]


def test_signed_bits():
    assert golden.signed_bits(-128, 127) == 8
    assert golden.signed_bits(-129, 0) == 9
    assert golden.signed_bits(0, 1) == 2
