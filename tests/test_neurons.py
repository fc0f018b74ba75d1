"""The neuron arrays of hw/neurons.py on their own: a readout integrator in amaranth.sim
saturating at its width (values worked by hand), the output layout, and refused parameters
(the LIF array's gateware is tested against the golden model in tests/test_lif.py)."""

import numpy as np
import pytest
from stream_drivers import run_groups

from est.hw.neurons import LIFArray, ReadoutIntegrator, lif_out_layout
from est.sim.words import unpack


@pytest.mark.parametrize("stall_seed", [None, 1])
def test_readout_integrator_sums_and_saturates(stall_seed):
    dut = ReadoutIntegrator(3, 2, 8, 6, None)  # 6-bit membranes: -32..31
    currents = [[10, -20, 5], [15, -20, 30], [10, 5, -3]]
    words = run_groups(dut, np.array(currents), 8, stall_seed)
    assert [unpack(w, 3, 6, signed=True).tolist() for w in words] == [
        [10, -20, 5], [25, -32, 31], [31, -27, 28]]


def test_layout_and_bad_parameters():
    assert lif_out_layout(4, 8, False).size == 4
    assert lif_out_layout(4, 8, True).size == 4 + 4 * 8
    with pytest.raises(ValueError, match="leak_shift must be None or 0..7"):
        ReadoutIntegrator(3, 1, 8, 8, 8)
    with pytest.raises(ValueError, match="threshold must be 2 integers in 1..127"):
        LIFArray(2, 1, 8, 8, None, np.array([1, 128]), "zero")
    with pytest.raises(ValueError, match="reset must be one of"):
        LIFArray(2, 1, 8, 8, None, np.array([1, 2]), "never")
