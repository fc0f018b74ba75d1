"""The golden step functions (sim/golden.py) against hand-worked values of docs/semantics.md:
neurons, integrators, synapses, and the EST blocks (LFSR, masks, attention, SEW, CPG)."""

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


def test_lif_step_delayed_subtracts_the_threshold_in_the_next_bin_after_the_leak():
    """snnTorch's reset_delay: the membrane is stored unreset; where it is at or above the
    threshold, the next bin subtracts the threshold after the leak."""
    params = golden.LIFParams(np.array([10, 10, 10, 10]), 2, 8, "subtract_delayed")
    state = golden.LIFState(np.array([0, 8, 12, -8]))
    # leak: 0, 6, 9, -6; + current; - 10 where v >= 10 (the third): 10, 13, -1, -4
    out, state = golden.lif_step(np.array([10, 7, 0, 2]), state, params)
    assert out.spikes.tolist() == [1, 1, 0, 0] and state.v.tolist() == [10, 13, -1, -4]
    # 10 - 2 + 0 - 10 = -2, 13 - 3 + 0 - 10 = 0: both fired last bin, neither now
    out, state = golden.lif_step(np.zeros(4, np.int64), state, params)
    assert out.spikes.tolist() == [0, 0, 0, 0] and state.v.tolist()[:2] == [-2, 0]


def test_lif_step_saturates_before_the_threshold_compare():
    params = golden.LIFParams(np.array([100]), None, 8, "subtract")
    out, state = golden.lif_step(np.array([500]), golden.LIFState(np.array([20])), params)
    assert out.saturated == 1 and out.spikes.tolist() == [1] and state.v.tolist() == [27]


def test_integrator_step():
    sat, state = golden.integrator_step(np.array([14, -12]), golden.LIFState(np.array([8, 8])),
                                        golden.IntegratorParams(1, 5))
    assert sat == 1 and state.v.tolist() == [15, -8]


def test_signed_bits():
    assert golden.signed_bits(-128, 127) == 8
    assert golden.signed_bits(-129, 0) == 9
    assert golden.signed_bits(0, 1) == 2


def test_lfsr_steps_by_hand():
    s = golden.lfsr_step(1)
    assert s == 0x80200003
    s = golden.lfsr_step(s)
    assert s == 0x40100001 ^ 0x80200003
    assert golden.lfsr_step(s) == (0x40100001 ^ 0x80200003) >> 1


def test_lfsr_draws_take_the_low_byte_after_eight_steps():
    state = 0xACE1
    draws, end = golden.lfsr_draws(state, 3)
    for d in draws:
        for _ in range(8):
            state = golden.lfsr_step(state)
        assert d == state & 0xFF
    assert end == state


def test_mask_keeps_the_expected_fraction_and_is_deterministic():
    params = golden.MaskParams(64, golden.mask_threshold(0.75))
    assert params.threshold == 192
    x = np.ones(64, dtype=np.int64)
    kept, state = [], 12345
    for _ in range(200):
        y, state = golden.mask_step(x, state, params)
        kept.append(y.mean())
    assert 0.22 < np.mean(kept) < 0.28
    again, _ = golden.mask_step(x, 12345, params)
    first, _ = golden.mask_step(x, 12345, params)
    assert (again == first).all()
    same, st = golden.mask_step(x, 99, golden.MaskParams(64, 0))
    assert (same == x).all() and st == 99


def test_cpg_table_repeats_as_the_brief_says():
    table = golden.cpg_table(168, 10)
    assert set(np.unique(table)) == {0, 1}
    assert len({tuple(row) for row in table}) == 31
    assert table[0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]  # sin 0 < 0.8, cos 0 >= 0.8


def test_conv_step_uses_zero_history_then_shifts():
    params = golden.ConvParams(np.array([[[1, 0]], [[0, 10]], [[100, 0]]]), np.array([5]))
    hist = golden.history_init(3, 2)
    outs = []
    for x in ([1, 1], [0, 1], [1, 0], [0, 0]):
        out, hist = golden.conv_step(np.array(x), hist, params)
        outs.append(int(out[0]))
    assert outs == [5 + 1, 5 + 0 + 10, 5 + 1 + 10 + 100, 5 + 0 + 0 + 0]


def test_sdsa_is_q_and_windowed_count_of_k_and_v():
    params = golden.AttentionParams("sdsa", 2, 1, 2)
    hist = golden.history_init(2, 8)  # keys and values of 4 channels
    q = np.array([1, 1, 1, 0])
    out1, hist = golden.attention_step(q, np.array([1, 1, 0, 1]), np.array([1, 0, 1, 1]), hist,
                                       params)
    assert out1.tolist() == [0, 0, 0, 0]  # counts 1,0,0,1 < 2
    out2, hist = golden.attention_step(q, np.array([1, 0, 0, 1]), np.array([1, 0, 0, 1]), hist,
                                       params)
    assert out2.tolist() == [1, 0, 0, 0]  # counts 2,0,0,2; q masks channel 3
    out3, _ = golden.attention_step(q, np.zeros(4, np.int64), np.zeros(4, np.int64), hist,
                                    params)
    assert out3.tolist() == [0, 0, 0, 0]  # window of 2 forgets bin 1


def test_ssa_sums_popcount_scores_times_values_per_head():
    params = golden.AttentionParams("ssa", 2, 2, 1)
    hist = golden.history_init(2, 8)
    k0, v0 = np.array([1, 1, 0, 0]), np.array([1, 0, 1, 1])
    _, hist = golden.attention_step(np.zeros(4, np.int64), k0, v0, hist, params)
    q = np.array([1, 1, 1, 1])
    k1, v1 = np.array([1, 0, 0, 1]), np.array([0, 1, 1, 1])
    out, _ = golden.attention_step(q, k1, v1, hist, params)
    # head 0 (channels 0-1): scores bin1 popcount([1,0]&[1,1]) = 1, bin0 popcount([1,1]) = 2
    # head 1 (channels 2-3): scores bin1 popcount([0,1]) = 1, bin0 popcount([0,0]) = 0
    assert out.tolist() == [1 * 0 + 2 * 1, 1 * 1 + 2 * 0, 1 * 1 + 0 * 1, 1 * 1 + 0 * 1]


def test_sew_ops():
    out, skip = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
    assert golden.sew(out, skip, "add").tolist() == [0, 1, 1, 2]
    assert golden.sew(out, skip, "and").tolist() == [0, 0, 0, 1]
    assert golden.sew(out, skip, "iand").tolist() == [0, 0, 1, 0]
