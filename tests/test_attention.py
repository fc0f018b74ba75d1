"""``attention`` (compiler/ops/attention.py) and the gateware it lowers to (hw/attention.py,
SpikeAttention): SDSA and SSA alone against the golden step in amaranth.sim, random heads,
windows and count thresholds, random stalls."""

import numpy as np
import pytest

from est.hw.attention import SpikeAttention
from est.sim import golden
from est.sim.amaranth_sim import run_stream
from est.sim.words import pack, unpack


@pytest.mark.parametrize("case", range(8))
def test_spike_attention_matches_golden(case):
    rng = np.random.default_rng(100 + case)
    mode = ["sdsa", "ssa"][case % 2]
    heads = int(rng.choice([1, 2, 4]))
    d = heads * int(rng.integers(1, 6))
    window = int(rng.integers(1, 9))
    threshold = int(rng.integers(1, window + 2)) if case % 4 == 0 else 1
    dut = SpikeAttention(d, window, mode, heads, threshold)
    bins = 40
    q, k, v = ((rng.random((bins, d)) < p).astype(np.int64) for p in (0.5, 0.4, 0.6))
    got = run_stream(dut, [pack(np.concatenate([q[t], k[t], v[t]]), 1) for t in range(bins)],
                     stall_seed=case)
    params = golden.AttentionParams(mode, window, heads, threshold)
    hist = golden.history_init(window, 2 * d)
    for t in range(bins):
        want, hist = golden.attention_step(q[t], k[t], v[t], hist, params)
        have = unpack(got[t], d, 1 if mode == "sdsa" else dut.out_bits)
        np.testing.assert_array_equal(have, want, err_msg=f"{mode} bin {t}")
