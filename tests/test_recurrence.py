"""``recurrence`` (compiler/ops/recurrence.py) and the gateware it lowers to (hw/tpu.py,
TemporalUnit): the unit alone against the golden recurrence in amaranth.sim, random sizes,
kernels, input widths, leaks and resets, random stalls."""

import numpy as np
import pytest

from est.hw.tpu import TemporalUnit
from est.sim import golden
from est.sim.amaranth_sim import run_stream
from est.sim.words import pack, unpack


@pytest.mark.parametrize("case", range(6))
def test_temporal_unit_matches_golden(case):
    rng = np.random.default_rng(300 + case)
    d, kernel, lanes = int(rng.integers(1, 12)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    x_bits = [1, 2, 3][case % 3]
    v_bits = int(rng.integers(6, 12))
    leak = [None, 0, 1, 3][case % 4]
    reset = ["subtract", "zero"][case % 2]
    w_in, bias = rng.integers(-4, 9, d), rng.integers(-3, 6, d)
    w_rec = rng.integers(-6, 7, (kernel, d))
    theta = rng.integers(1, 12, d)
    dut = TemporalUnit(w_in, w_rec, bias, lanes, x_bits, v_bits, leak, theta, reset, trace=True)
    bins = 40
    r = rng.integers(0, 1 << x_bits, (bins, d))
    got = run_stream(dut, [pack(row, x_bits) for row in r], stall_seed=case)
    params = golden.LIFParams(theta, leak, v_bits, reset)
    state, hist = golden.lif_init(d), golden.history_init(kernel + 1, d)
    fired = 0
    for t in range(bins):
        current = bias + w_in * r[t] + (w_rec * hist.x).sum(axis=0)
        out, state = golden.lif_step(current, state, params)
        y = out.spikes.astype(np.int64)
        _, hist = golden.history_push(y, hist)
        fired += y.sum()
        np.testing.assert_array_equal(unpack(got[t], d, 1), y, err_msg=f"spikes bin {t}")
        np.testing.assert_array_equal(unpack(got[t], d, v_bits, True, pos=d), state.v,
                                      err_msg=f"v bin {t}")
    assert 0 < fired < bins * d
