"""The GLM baseline (sw/glm.py): on the default synthetic population, bounded by the true rates
and above the null, refractoriness recovered, causal; tuned on the validation split over a
grid of history lengths and L2 weights; the running mean, a causal constant-rate model that
tracks drift; slow means of the counts as covariates."""

import numpy as np
import pytest

from est import EstError
from est.sw.data import PopulationConfig, Recording, simulate_population, split_by_time
from est.sw.glm import (
    exponential_sums,
    find_rhythms,
    fit_glm,
    oscillator_means,
    running_mean_log_rates,
    slow_means,
    true_rate_log_rates,
    tune_glm,
    tune_running_mean,
)
from est.sw.metrics import bits_per_spike, poisson_nll, r2


@pytest.fixture(scope="module")
def evaluated():
    rec = simulate_population(PopulationConfig())
    train, _, test = split_by_time(rec)
    glm = fit_glm(train)
    return train, test, glm


def test_true_rates_bound_the_glm_and_the_glm_beats_the_null(evaluated):
    _, test, glm = evaluated
    true_bps = bits_per_spike(test.counts, true_rate_log_rates(test))
    glm_bps = bits_per_spike(test.counts, glm.predict_log_rates(test))
    assert glm.converged
    assert true_bps > 0 and glm_bps > 0.0
    assert true_bps >= glm_bps - 0.02
    assert poisson_nll(test.counts, true_rate_log_rates(test)) < poisson_nll(
        test.counts, glm.predict_log_rates(test))
    glm_r2 = r2(test.rates, np.exp(glm.predict_log_rates(test)))
    assert 0.0 < glm_r2 < 1.0 and r2(test.rates, test.rates) == 1.0


def test_glm_recovers_refractoriness(evaluated):
    _, _, glm = evaluated
    assert glm.weights.shape == (24, 24, 5)
    self_lag1 = np.diagonal(glm.weights[:, :, 0])
    cross_lag1 = glm.weights[:, :, 0][~np.eye(24, dtype=bool)]
    assert (self_lag1 < -0.5).all() and self_lag1.mean() < -1.0
    assert np.abs(cross_lag1).mean() < 0.3


def test_glm_prediction_is_causal(evaluated):
    _, test, glm = evaluated
    before = glm.predict_log_rates(test)
    counts = test.counts.copy()
    counts[1000:] = 0
    after = glm.predict_log_rates(Recording(counts))
    assert np.array_equal(before[:1001], after[:1001])
    assert not np.array_equal(before[1001:], after[1001:])
    # the first bins see zero history: bin 0 is the bias alone
    assert np.array_equal(before[0], glm.bias)


def test_true_rate_log_rates_needs_rates():
    with pytest.raises(EstError, match="no true rates"):
        true_rate_log_rates(Recording(np.zeros((3, 2), dtype=np.int64)))
    with pytest.raises(EstError, match="fitted on 24 neurons"):
        fit_glm(Recording(np.ones((30, 24), dtype=np.int64)), history=2).predict_log_rates(
            Recording(np.zeros((3, 2), dtype=np.int64)))


def test_tuning_keeps_the_candidate_best_on_validation():
    rec = simulate_population(PopulationConfig(n_neurons=6, bins=3000, seed=2))
    train, val, _ = split_by_time(rec)
    lines = []
    glm, grid = tune_glm(train, val, (1, 3), (1e-4, 1e-1), progress=lines.append)
    assert [(g["coupling"], g["history"], g["l2"]) for g in grid] == [
        (c, h, l2) for c in ("full", "self") for h in (1, 3) for l2 in (1e-4, 1e-1)]
    assert len(lines) == 8 and "val" in lines[0]
    best = max(grid, key=lambda g: g["val_bits_per_spike"])
    assert (glm.coupling, glm.history, glm.l2) == (best["coupling"], best["history"],
                                                   best["l2"])
    # each score is the candidate's own, fitted on the training split alone
    for g in grid:
        again = fit_glm(train, g["history"], g["l2"], coupling=g["coupling"])
        assert bits_per_spike(val.counts, again.predict_log_rates(val, train)) == pytest.approx(
            g["val_bits_per_spike"], abs=1e-7)  # a cold start meets the warm-started optimum
    assert len({g["val_bits_per_spike"] for g in grid}) == 8


def test_self_coupling_fits_each_neuron_on_its_own_history_alone():
    """A "self" GLM has no weight between two neurons, and each neuron's fit is the full fit
    of that neuron's own counts alone: the other neurons change nothing."""
    rec = simulate_population(PopulationConfig(n_neurons=5, bins=3000, seed=4))
    glm = fit_glm(rec, 3, 1e-3, coupling="self")
    assert glm.converged and glm.coupling == "self"
    off = ~np.eye(5, dtype=bool)
    assert not glm.weights[off].any() and glm.weights[~off].all()
    for n in (0, 3):
        alone = fit_glm(Recording(rec.counts[:, [n]]), 3, 1e-3)
        np.testing.assert_allclose(glm.weights[n, n], alone.weights[0, 0], atol=1e-6)
        np.testing.assert_allclose(glm.bias[n], alone.bias[0], atol=1e-6)
    # a short recording: the "self" GLM wins on validation (too few spikes for N * H weights)
    train, val, _ = split_by_time(simulate_population(PopulationConfig(bins=800, seed=0)))
    assert tune_glm(train, val, (2,), (1e-3,))[0].coupling == "self"


def test_an_unknown_coupling_is_refused():
    with pytest.raises(EstError, match="coupling must be one of"):
        fit_glm(Recording(np.ones((30, 2), dtype=np.int64)), coupling="diagonal")


def test_tuning_skips_histories_too_long_for_the_recording():
    train = Recording(np.random.default_rng(0).poisson(0.3, (12, 3)))
    glm, grid = tune_glm(train, train, (2, 40), (1e-3,))
    assert [g["history"] for g in grid] == [2, 2] and glm.history == 2
    with pytest.raises(EstError, match="too few for every history"):
        tune_glm(train, train, (40,), (1e-3,))


def test_tuning_skips_fits_too_large_for_memory(monkeypatch):
    """A full coupling's Newton steps take neurons x (1 + neurons x history)^2 doubles three
    times over: above GLM_MAX_BYTES the fit is refused by name, and tuning goes on without
    it (the progress told), or fails with that reason when nothing is left."""
    from est.sw import glm as glm_module

    train = Recording(np.random.default_rng(0).poisson(0.3, (200, 5)))
    monkeypatch.setattr(glm_module, "GLM_MAX_BYTES", 5 * 11 ** 2 * 8 * 3)  # history 2, full
    told = []
    glm, grid = tune_glm(train, train, (2, 3), (1e-3,), progress=told.append)
    assert [(g["coupling"], g["history"]) for g in grid] == [("full", 2), ("self", 2),
                                                              ("self", 3)]
    assert any("full coupling, history 3: skipped (fit_glm: full coupling of 5 neurons with "
               "history 3 and 0 covariates needs 0.0 GiB" in line for line in told)
    with pytest.raises(EstError, match="full coupling of 5 neurons with history 3 .* use "
                                       "\"self\" coupling, a shorter history or fewer"):
        tune_glm(train, train, (3,), (1e-3,), couplings=("full",))


def test_the_recording_before_gives_the_first_bins_their_history(evaluated):
    """With the recording just before it, a split is predicted as in one run over both."""
    train, test, glm = evaluated
    both = Recording(np.vstack([train.counts, test.counts]))
    np.testing.assert_allclose(glm.predict_log_rates(test, train),
                               glm.predict_log_rates(both)[train.n_bins:], rtol=0, atol=1e-12)
    assert not np.allclose(glm.predict_log_rates(test)[:glm.history],
                           glm.predict_log_rates(test, train)[:glm.history])


def test_a_warm_start_reaches_the_same_fit_in_fewer_steps(evaluated):
    train, _, _ = evaluated
    small = Recording(train.counts[:3000, :6])
    cold = fit_glm(small, 3, 1e-4)
    warm = fit_glm(small, 3, 1e-4, start=fit_glm(small, 3, 1e-2))
    assert warm.converged and warm.iterations < cold.iterations
    np.testing.assert_allclose(warm.weights, cold.weights, atol=1e-6)
    np.testing.assert_allclose(warm.bias, cold.bias, atol=1e-6)


def test_a_neuron_silent_in_training_gets_the_rate_floor_and_the_fit_converges():
    """Its maximum-likelihood rate is 0 (log: minus infinity), so it is not fitted: the floor
    rate, zero weights, and the other neurons' fit converges as it would without it."""
    from est.sw.glm import RATE_FLOOR

    rec = simulate_population(PopulationConfig(n_neurons=5, bins=3000, seed=1))
    counts = rec.counts.copy()
    counts[:, 2] = 0
    for coupling in ("full", "self"):
        glm = fit_glm(Recording(counts), 3, 1e-3, coupling=coupling)
        assert glm.converged and glm.iterations < 20
        assert glm.bias[2] == pytest.approx(np.log(RATE_FLOOR)) and not glm.weights[2].any()
        alone = fit_glm(Recording(np.delete(counts, 2, axis=1)), 3, 1e-3, coupling=coupling)
        np.testing.assert_allclose(np.delete(glm.bias, 2), alone.bias, atol=1e-6)


def test_running_mean_known_answer():
    """shift 1 (a bin back weighs 1, two back 1/2, ...), prior 0.5 with the weight of 1 bin:
    bin 0 is the prior; bin 1 (2 + 0.5) / (1 + 1); bin 2 (2 + 2/2 + 0.5) / (1 + 1/2 + 1)."""
    got = running_mean_log_rates(np.full((3, 1), 2), 1, np.array([0.5]), 1.0)
    np.testing.assert_allclose(np.exp(got[:, 0]), [0.5, 1.25, 3.5 / 2.5])


def test_running_mean_tracks_drift_that_the_training_mean_misses():
    """Rates drifting over the recording: the running mean chosen on validation beats the
    training split's mean rates on the test split."""
    rec = simulate_population(PopulationConfig(bins=6000, drift=3.0, seed=1))
    train, val, test = split_by_time(rec)
    model = tune_running_mean(train, val)
    ours = bits_per_spike(test.counts, model.predict_log_rates(test, val))
    fixed = bits_per_spike(test.counts, np.broadcast_to(np.log(model.prior), test.counts.shape))
    assert ours > fixed + 0.1, (ours, fixed)


def test_exponential_sums_and_slow_means_known_answer():
    """shift 1 (a = 1/2): row t sums the bins before t, a bin lag back weighing a^(lag - 1);
    the slow mean is that sum times 2^-shift, window-major over the shifts."""
    counts = np.array([[2, 0], [0, 4], [1, 0]])
    np.testing.assert_allclose(exponential_sums(counts, 1), [[0, 0], [2, 0], [1, 4]])
    means = slow_means(counts, (1, 2))
    assert means.shape == (3, 4)
    np.testing.assert_allclose(means[:, :2], [[0, 0], [1, 0], [0.5, 2]])
    np.testing.assert_allclose(means[2, 2:], [(0.75 * 2 + 0) / 4, 4 / 4])


def test_oscillator_means_known_answer_and_ring():
    """One spike in bin 0 through a pair (m 1, k 1): a = e = 1/2, u1 = 1, w1 = 1/2,
    u2 = 1/2 - 1/4 = 1/4, w2 = 1/4 + 1/8 = 3/8 (times 2^-k = 1/2; row 0 zeros). A slow pair
    rings: its ``u`` changes sign within about a period (2 pi 2^3 ~ 50 bins) and decays."""
    counts = np.zeros((3, 1))
    counts[0] = 1
    np.testing.assert_allclose(oscillator_means(counts, ((1, 1),)),
                               [[0, 0], [0.5, 0.25], [0.125, 0.1875]])
    # with a multiplier, e = 3 2^-2: u1 = 1, w1 = 3/4, u2 = 1/2 - 9/16, w2 = 3/8 - 3/64
    np.testing.assert_allclose(oscillator_means(counts, ((2, 1, 3),)),
                               [[0, 0], [0.5, 0.375], [-1 / 32, 21 / 128]])
    impulse = np.zeros((400, 1))
    impulse[0] = 1
    u = oscillator_means(impulse, ((3, 7),))[:, 0]
    assert u[1] > 0 and u[20:40].min() < 0 < u[40:70].max()
    assert abs(u[300:]).max() < 0.2 * abs(u[1:60]).max()


@pytest.mark.parametrize("coupling", ["full", "self"])
def test_a_glm_with_slow_means_reads_the_latents_better(coupling):
    """On a population driven by slow latents the GLM with slow means scores above the same
    GLM without them on held-out data; with "self" coupling each neuron weighs its own slow
    means only; predicting a split after ``before`` is predicting the two together."""
    rec = simulate_population(PopulationConfig(bins=6000, n_neurons=12, seed=2))
    train, val, test = split_by_time(rec)
    plain = fit_glm(train, 3, 1e-3, coupling=coupling)
    slow = fit_glm(train, 3, 1e-3, coupling=coupling, slow_shifts=(3, 5, 7))
    assert slow.converged and slow.covariate_weights.shape == (12, 36)
    assert bits_per_spike(test.counts, slow.predict_log_rates(test, val)) > bits_per_spike(
        test.counts, plain.predict_log_rates(test, val)) + 0.01
    if coupling == "self":
        own = np.zeros((12, 36), bool)
        own[np.arange(12)[:, None], np.arange(12)[:, None] + 12 * np.arange(3)] = True
        assert not slow.covariate_weights[~own].any() and slow.covariate_weights[own].all()
    both = Recording(np.vstack([val.counts, test.counts]))
    np.testing.assert_allclose(slow.predict_log_rates(test, val),
                               slow.predict_log_rates(both)[val.n_bins:], atol=1e-12)
    chosen, grid = tune_glm(train, val, (3,), (1e-3, 1e-1), (coupling,), slow_shifts=(3, 5, 7))
    assert chosen.slow_shifts == (3, 5, 7) and len(grid) == 2


def test_covariates_are_checked():
    """Covariates of the wrong shape, a GLM fitted with covariates asked without them, or
    covariates beside slow means: one line each."""
    rec = Recording(np.random.default_rng(0).poisson(0.3, (200, 3)))
    with pytest.raises(EstError, match=r"covariates must be a finite array \[200 bins, E\]"):
        fit_glm(rec, 2, 1e-2, covariates=np.zeros((199, 2)))
    glm = fit_glm(rec, 2, 1e-2, covariates=np.ones((200, 2)))
    with pytest.raises(EstError, match="fitted with 2 covariates, given 0"):
        glm.predict_log_rates(rec)
    with pytest.raises(EstError, match="give covariates or slow_shifts/oscillators/rhythms, "
                                       "not both"):
        fit_glm(rec, 2, 1e-2, covariates=np.ones((200, 2)), slow_shifts=(3,))
    with pytest.raises(EstError, match=r"its covariates are its own \(slow means"):
        fit_glm(rec, 2, 1e-2, slow_shifts=(3,)).predict_log_rates(rec, covariates=np.ones((200,
                                                                                           3)))


def test_rhythm_covariates_are_the_tables_rows_at_the_bin_before():
    from est.sim.golden import rhythm_table
    from est.sw.glm import rhythm_advance, rhythm_covariates, rhythm_values

    # period 64 bins in a 32-row table: advance 2^14, half a row a bin: bin b reads row b // 2
    assert rhythm_advance(64.0) == 1 << 14
    table = rhythm_table(32, 7)
    got = rhythm_values(np.array([0, 1, 2, 3, 63, 64, 65]), (1 << 14,))
    np.testing.assert_array_equal(got, table[[0, 0, 1, 1, 31, 0, 0]])
    both = rhythm_values(np.array([5]), (1 << 14, 1 << 15))  # the second: a row a bin
    np.testing.assert_array_equal(both[0], np.concatenate([table[2], table[5]]))
    # covariates of bins 10..13: the rows of bins 9..12; bin 0's reads bin -1 (the last row)
    np.testing.assert_array_equal(rhythm_covariates(10, 4, (1 << 14,)), table[[4, 5, 5, 6]])
    np.testing.assert_array_equal(rhythm_covariates(0, 1, (1 << 14,)), table[[31]])


def test_find_rhythms_recovers_the_latent_periods():
    """The synthetic population of data seed 0 has latent sinusoids of periods 60.4, 132.9 and
    155.2 bins: the training split's spectrum finds all three to within 0.05%, which keeps a
    table's phase to within 1/10 of a cycle over the 24,000 bins."""
    rec = simulate_population(PopulationConfig(seed=0))
    truth = np.sort(rec.meta["latent_periods"])
    np.testing.assert_allclose(truth, [60.4, 132.9, 155.2], atol=0.05)
    train = split_by_time(rec)[0]
    found = np.sort(find_rhythms(train.counts, 3, 16.0, train.n_bins / 4))
    np.testing.assert_allclose(found, truth, rtol=5e-4)
    assert len(find_rhythms(train.counts, 3, 16.0, 40.0)) <= 3  # none need be in range


@pytest.mark.parametrize("coupling", ["full", "self"])
def test_a_glm_with_the_found_rhythms_predicts_the_latents_better(coupling):
    """On data seed 0, the GLM with a slow mean and the three rhythms found in the training
    split, fitted on its last 6,000 bins, scores well above the one with the slow mean alone
    on the test split, and its predictions carry the phase from the recording's first bin
    (the split's bin numbers)."""
    from est.sw.glm import rhythm_advance

    train, val, test = split_by_time(simulate_population(PopulationConfig(seed=0)))
    advances = tuple(rhythm_advance(p) for p in find_rhythms(train.counts, 3, 16.0, 4000.0))
    train = Recording(train.counts[-6000:], None, train.bin_width,
                      {**train.meta, "bins": (train.n_bins - 6000, train.n_bins)})
    plain = fit_glm(train, 1, 1e-4, coupling=coupling, slow_shifts=(6,))
    rhythmic = fit_glm(train, 1, 1e-4, coupling=coupling, slow_shifts=(6,), rhythms=advances)
    before = bits_per_spike(test.counts, plain.predict_log_rates(test, val))
    after = bits_per_spike(test.counts, rhythmic.predict_log_rates(test, val))
    assert after > before + 0.03, (before, after)
    shifted = Recording(test.counts, None, test.bin_width, {**test.meta, "bins": (0, 0)})
    assert bits_per_spike(test.counts, rhythmic.predict_log_rates(shifted)) < after - 0.02


def test_tuning_with_rhythms_keeps_as_many_as_validation_prefers():
    """tune_glm_rhythms on 800 bins of data seed 0 (560 training bins): the three periods
    found are tried strongest first, 0 to 3 of them, and the count with the best validation
    score is kept (fewer on a tie), its GLM the one returned; ``choose=False`` tries only all
    of them; ``usable`` limits the GLMs that can be chosen."""
    from est.sw.glm import rhythm_periods, tune_glm_rhythms

    train, val, _ = split_by_time(simulate_population(PopulationConfig(seed=0, bins=800)))
    found = rhythm_periods(train.counts, 3)
    assert len(found) == 3
    periods, best, grid, start, scores = tune_glm_rhythms(
        train, val, found, histories=(1, 2), l2s=(1e-3, 1e-1), slow_shifts=(3,))
    k = int(np.argmax(scores))
    assert len(scores) == 4 and periods == tuple(found[:k]) and k < 3
    assert len(best.rhythms) == len(start.rhythms) == k and len(grid) == 2 * 2 * 2
    assert bits_per_spike(val.counts, start.predict_log_rates(val, train)) == pytest.approx(
        scores[k])
    periods, best, _, start, scores = tune_glm_rhythms(
        train, val, found, choose=False, usable=lambda g: g.history == 1, histories=(1, 2),
        l2s=(1e-3,), slow_shifts=(3,))
    assert periods == tuple(found) and len(scores) == 1 and start.history == 1
    assert len(best.rhythms) == 3
