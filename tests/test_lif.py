"""``lif`` (compiler/ops/lif.py) and the gateware it lowers to (hw/neurons.py, LIFArray): the
array alone against the golden step in amaranth.sim, random sizes, widths, leaks and resets,
random stalls."""

import numpy as np
import pytest

from est.hw.neurons import LIFArray
from est.sim import golden
from est.sim.amaranth_sim import run_groups
from est.sim.words import unpack


@pytest.mark.parametrize("seed", range(4))
def test_lif_array_matches_lif_step(seed):
    rng = np.random.default_rng(100 + seed)
    n, lanes = int(rng.integers(1, 14)), int(rng.integers(1, 6))
    acc_bits, v_bits = int(rng.integers(4, 12)), int(rng.integers(4, 12))
    leak = [None, 0, 1, 2][rng.integers(4)] if v_bits > 2 else None
    reset = ["subtract", "zero"][seed % 2]
    theta = rng.integers(1, golden.signed_range(v_bits)[1] + 1, n)
    lo, hi = golden.signed_range(acc_bits)
    currents = rng.integers(lo, hi + 1, (25, n))
    dut = LIFArray(n, lanes, acc_bits, v_bits, leak, theta, reset, trace=True)
    got = run_groups(dut, currents, acc_bits, seed)
    params, state = golden.LIFParams(theta, leak, v_bits, reset), golden.lif_init(n)
    for t, word in enumerate(got):
        out, state = golden.lif_step(currents[t], state, params)
        assert unpack(word, n, 1).tolist() == out.spikes.tolist(), f"bin {t}"
        assert unpack(word, n, v_bits, True, pos=n).tolist() == state.v.tolist(), f"bin {t}"
