"""``mask`` (compiler/ops/mask.py) and the gateware it lowers to (hw/lfsr.py, SpikeMask): the
mask alone against the golden step in amaranth.sim, random sizes, thresholds and seeds, on
spikes and on multi-bit values, random stalls."""

import numpy as np
import pytest

from est.hw.lfsr import SpikeMask
from est.sim import golden
from est.sim.amaranth_sim import run_stream
from est.sim.words import pack, unpack


@pytest.mark.parametrize("case", range(8))
def test_spike_mask_matches_golden(case):
    rng = np.random.default_rng(case)
    n = int(rng.integers(1, 40))
    lanes = int(rng.integers(1, 6))
    threshold = [0, 1, 128, 255, int(rng.integers(1, 256))][case % 5]
    seed = int(rng.integers(1, 1 << 32))
    bits = [1, 3][case % 2]
    spikes = rng.integers(0, 1 << bits, (30, n)) * (rng.random((30, n)) < 0.6)
    dut = SpikeMask(n, threshold, seed, lanes, bits)
    got = run_stream(dut, [pack(s, bits) for s in spikes], stall_seed=case)
    state, params = seed, golden.MaskParams(n, threshold)
    for t, s in enumerate(spikes):
        want, state = golden.mask_step(s, state, params)
        np.testing.assert_array_equal(unpack(got[t], n, bits), want, err_msg=f"bin {t}")
    if 64 <= threshold < 256:  # drops are then certain to show over 30 bins
        assert any(unpack(g, n, bits).sum() < s.sum() for g, s in zip(got, spikes, strict=True))
