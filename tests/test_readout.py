"""``readout`` (compiler/ops/readout.py) and the gateware it lowers to (hw/neurons.py,
ReadoutIntegrator): the integrators alone against the golden step in amaranth.sim, random
sizes, widths and leaks, random stalls."""

import numpy as np
import pytest

from est.hw.neurons import ReadoutIntegrator
from est.sim import golden
from est.sim.amaranth_sim import run_groups
from est.sim.words import unpack


@pytest.mark.parametrize("seed", range(3))
def test_readout_integrator_matches_integrator_step(seed):
    rng = np.random.default_rng(200 + seed)
    n, lanes = int(rng.integers(1, 10)), int(rng.integers(1, 5))
    acc_bits, v_bits = int(rng.integers(4, 10)), int(rng.integers(4, 10))
    leak = [None, 0, 1, 3][rng.integers(4)] if v_bits > 3 else 0
    lo, hi = golden.signed_range(acc_bits)
    currents = rng.integers(lo, hi + 1, (20, n))
    dut = ReadoutIntegrator(n, lanes, acc_bits, v_bits, leak)
    got = run_groups(dut, currents, acc_bits, seed)
    params, state = golden.IntegratorParams(leak, v_bits), golden.lif_init(n)
    for t, word in enumerate(got):
        _, state = golden.integrator_step(currents[t], state, params)
        assert unpack(word, n, v_bits, True).tolist() == state.v.tolist(), f"bin {t}"
