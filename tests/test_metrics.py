"""Metrics against hand-computed values, and the baselines on the synthetic population."""

import math

import numpy as np
import pytest

from est.sw.metrics import (
    bits_per_spike,
    bits_per_spike_vs_train_mean,
    negative_binomial_nll,
    poisson_nll,
    r2,
)

LN2 = math.log(2.0)


def test_poisson_nll_hand_computed():
    counts = np.array([[0, 1], [2, 0]])
    log_rates = np.array([[0.0, LN2], [0.0, -1.0]])
    # terms: 1 ; 2 - ln2 ; 1 + ln 2! ; e^-1
    expected = (1.0 + (2.0 - LN2) + (1.0 + LN2) + math.exp(-1.0)) / 4
    assert poisson_nll(counts, log_rates) == pytest.approx(expected, rel=1e-12)
    # a per-neuron log-rate broadcasts over bins
    assert poisson_nll(counts, [0.0, 0.0]) == pytest.approx((1 + 0 + 1 + LN2 + 1 + 1) / 4)


def test_poisson_nll_is_a_normalised_likelihood():
    ys = np.arange(60)
    total = sum(math.exp(-poisson_nll([y], [math.log(3.5)])) for y in ys)
    assert total == pytest.approx(1.0, abs=1e-12)


def test_bits_per_spike_hand_computed():
    counts = np.array([[1], [0], [2], [1]])
    log_rates = np.log([[2.0], [0.5], [2.0], [1.0]])
    # null: the neuron's mean over these counts, 1 spike per bin
    # LL_model - LL_null = (3 ln2 - 5.5) - (0 - 4) ; 4 spikes
    expected = (3 * LN2 - 1.5) / (4 * LN2)
    assert bits_per_spike(counts, log_rates) == pytest.approx(expected, rel=1e-12)


def test_bits_per_spike_of_the_null_model_is_zero():
    rng = np.random.default_rng(5)
    counts = rng.poisson(0.2, size=(500, 7))
    null = np.broadcast_to(np.log(counts.mean(axis=0)), counts.shape)
    assert bits_per_spike(counts, null) == pytest.approx(0.0, abs=1e-12)
    assert bits_per_spike(counts, null - 0.3) < 0


def test_bits_per_spike_with_a_silent_neuron_hand_computed():
    """NLB: a neuron without spikes in the evaluated data has a null rate of 0, which
    ``neg_log_likelihood`` replaces with 1e-9; the model pays for the rate it predicts there."""
    counts = np.array([[1, 0], [0, 0], [2, 0], [1, 0]])
    log_rates = np.log([[2.0, 0.1], [0.5, 0.1], [2.0, 0.1], [1.0, 0.1]])
    # neuron 0 as in the test above; neuron 1: NLL_null = 4 * 1e-9, NLL_model = 4 * 0.1
    expected = (3 * LN2 - 1.5 + 4e-9 - 0.4) / (4 * LN2)
    assert bits_per_spike(counts, log_rates) == pytest.approx(expected, rel=1e-12)


def test_bits_per_spike_replaces_zero_rate_predictions_with_1e_9():
    # a predicted rate of exactly 0 (log-rate -inf) counts as 1e-9, where it was right ...
    assert bits_per_spike([[0], [1]], [[-np.inf], [0.0]]) == pytest.approx(
        (1 + LN2 - 1 - 1e-9) / LN2, rel=1e-12)
    # ... and where a spike came: finite, -log(1e-9) nats
    assert bits_per_spike([[1]], [[-np.inf]]) == pytest.approx(
        (1 - 1e-9 - 9 * math.log(10)) / LN2, rel=1e-12)


def _nlb_bits_per_spike(rates: np.ndarray, spikes: np.ndarray) -> float:
    """nlb-tools' evaluation.bits_per_spike, written out: NaN bins are dropped, zero rates
    become 1e-9, the null is each neuron's nanmean over the evaluated spikes."""
    def nll(r, y):
        keep = ~np.isnan(y)
        r, y = np.where(r[keep] == 0, 1e-9, r[keep]), y[keep]
        return sum(ri - yi * math.log(ri) + math.lgamma(yi + 1)
                   for ri, yi in zip(r, y, strict=True))

    null = np.broadcast_to(np.nanmean(spikes, axis=0), spikes.shape)
    return (nll(null, spikes) - nll(rates, spikes)) / np.nansum(spikes) / LN2


def test_bits_per_spike_equals_the_nlb_reference():
    rng = np.random.default_rng(11)
    spikes = rng.poisson(rng.uniform(0.05, 0.6, size=6), size=(300, 6)).astype(float)
    spikes[:, 2] = 0  # silent
    spikes[rng.random(spikes.shape) < 0.05] = np.nan  # bins NLB leaves out
    rates = rng.uniform(0.01, 1.0, size=spikes.shape)
    rates[:10, 4] = 0.0  # zero predictions
    with np.errstate(divide="ignore"):
        log_rates = np.log(rates)
    assert bits_per_spike(spikes, log_rates) == pytest.approx(
        _nlb_bits_per_spike(rates, spikes), rel=1e-10)


def test_bits_per_spike_vs_train_mean():
    counts = np.array([[1, 0], [0, 0], [2, 1], [1, 0]])
    log_rates = np.log([[2.0, 0.2], [0.5, 0.2], [2.0, 0.2], [1.0, 0.2]])
    # neuron 0: null 1.0 (as above); neuron 1: null 0.5 from training, one spike here
    ll_gain_1 = (math.log(0.2) - 0.8) - (math.log(0.5) - 2.0)
    expected = (3 * LN2 - 1.5 + ll_gain_1) / (5 * LN2)
    assert bits_per_spike_vs_train_mean(counts, log_rates, [1.0, 0.5]) == pytest.approx(
        expected, rel=1e-12)
    # a neuron silent in training: its null rate 0 counts as 1e-9, as in bits_per_spike
    got = bits_per_spike_vs_train_mean(counts, log_rates, [1.0, 0.0])
    ll_gain_1 = (math.log(0.2) - 0.8) - (math.log(1e-9) - 4e-9)
    assert got == pytest.approx((3 * LN2 - 1.5 + ll_gain_1) / (5 * LN2), rel=1e-12)
    with pytest.raises(ValueError, match="train_mean_rates must be >= 0"):
        bits_per_spike_vs_train_mean(counts, log_rates, [1.0, -0.1])


def test_bits_per_spike_rejects_undefined_cases():
    with pytest.raises(ValueError, match="without spikes"):
        bits_per_spike(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="without spikes"):
        bits_per_spike(np.full((3, 2), np.nan), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="does not broadcast"):
        bits_per_spike(np.ones((3, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        bits_per_spike(np.ones((3, 2)), np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="whole numbers"):
        bits_per_spike([[0.5]], [[0.0]])
    with pytest.raises(ValueError, match="whole numbers"):
        poisson_nll([[0.5]], [[0.0]])


def test_r2_hand_computed():
    true = np.array([[1.0, 1.0], [2.0, 3.0], [3.0, 5.0]])
    assert r2(true, true) == 1.0
    pred = np.array([[1.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    # neuron 0: SS_res 1, SS_tot 2 -> 0.5; neuron 1 perfect; uniform average
    assert r2(true, pred) == pytest.approx(0.75)
    assert r2(true[:, 0], np.full(3, 2.0)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="constant"):
        r2(np.ones((4, 2)), np.ones((4, 2)))


def test_negative_binomial_nll_matches_the_textbook_formula():
    counts = np.array([[0, 1, 2], [5, 3, 0]])
    log_rates = np.log([[0.3, 1.2, 2.0], [4.0, 0.7, 0.1]])
    log_dispersion = np.log([0.7, 2.0, 5.0])  # one dispersion per neuron
    expected = []
    for (t, n), y in np.ndenumerate(counts):
        mu, r = math.exp(log_rates[t, n]), math.exp(log_dispersion[n])
        expected.append(-(math.lgamma(y + r) - math.lgamma(r) - math.lgamma(y + 1)
                          + r * math.log(r / (r + mu)) + y * math.log(mu / (r + mu))))
    got = negative_binomial_nll(counts, log_rates, log_dispersion)
    assert got == pytest.approx(np.mean(expected), rel=1e-12)


def test_negative_binomial_is_normalised_and_tends_to_poisson():
    total = sum(math.exp(-negative_binomial_nll([y], [math.log(3.0)], math.log(0.5)))
                for y in range(300))
    assert total == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(2)
    counts = rng.poisson(0.4, size=(300, 5))
    log_rates = rng.normal(-1.0, 0.5, size=(300, 5))
    poisson = poisson_nll(counts, log_rates)
    gaps = [abs(negative_binomial_nll(counts, log_rates, d) - poisson) for d in (0, 4, 8, 16, 30)]
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > 1e-3 and gaps[-1] < 1e-9
