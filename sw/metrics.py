"""Evaluation metrics for spike-count prediction.

Notation: ``y[t, n]`` observed counts, ``l[t, n]`` predicted log-rates (log of the expected count
per bin), ``lambda = exp(l)``; means and sums run over every bin ``t`` and neuron ``n``. Inputs
are numpy arrays (anything ``np.asarray`` accepts); ``log_rates`` and the other parameters may be
any shape that broadcasts to the counts' shape; the last axis of the counts is the neurons (a 1-D
array is one neuron). Counts must be non-negative whole numbers (the bits-per-spike functions
also take NaN for a bin left out, as the Neural Latents Benchmark does).
"""

import numpy as np


def _counts(counts) -> np.ndarray:
    y = np.asarray(counts)
    if y.size == 0:
        raise ValueError("counts are empty")
    if y.dtype.kind not in "biuf" or y.min() < 0 or (y != np.round(y)).any():
        raise ValueError("counts must be non-negative whole numbers")
    return y.astype(np.int64)


def _like(values, y: np.ndarray, name: str) -> np.ndarray:
    """``values`` as float64 broadcast to the counts' shape (ValueError if it cannot be)."""
    try:
        return np.broadcast_to(np.asarray(values, dtype=np.float64), y.shape)
    except ValueError as exc:
        raise ValueError(f"{name} of shape {np.shape(values)} does not broadcast to the counts' "
                         f"shape {y.shape}") from exc


def _log_factorial(y: np.ndarray) -> np.ndarray:
    """``lgamma(y + 1) = log(y!)`` for non-negative integer ``y``, from a cumulative-log table."""
    table = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, y.max() + 1)))])
    return table[y]


def poisson_nll(counts, log_rates) -> float:
    """Mean Poisson negative log-likelihood per (bin, neuron), in nats::

        NLL = mean_{t,n} [ exp(l) - y l + lgamma(y + 1) ]

    (``-log P(y | lambda)`` with ``P = lambda^y e^-lambda / y!``; the ``lgamma`` term makes it an
    exact likelihood, not just the loss up to a constant.)
    """
    y = _counts(counts)
    lr = _like(log_rates, y, "log_rates")
    return float(np.mean(np.exp(lr) - y * lr + _log_factorial(y)))


ZERO_RATE = 1e-9
"""A predicted rate of exactly 0 (a null model's rate for a neuron silent in the data it is
taken from, or a log-rate of -inf) counts as this many spikes per bin, as in the Neural Latents
Benchmark (nlb-tools ``evaluation.neg_log_likelihood``): a likelihood stays finite."""


def _nan_counts(counts) -> np.ndarray:
    """Counts as float64 where NaN marks a bin left out (NLB's convention); the rest must be
    non-negative whole numbers."""
    y = np.asarray(counts)
    if y.size == 0:
        raise ValueError("counts are empty")
    if y.dtype.kind not in "biuf":
        raise ValueError("counts must be non-negative whole numbers")
    y = y.astype(np.float64)
    known = y[~np.isnan(y)]
    if (known < 0).any() or (known != np.round(known)).any() or np.isinf(known).any():
        raise ValueError("counts must be non-negative whole numbers (NaN marks a bin left out)")
    return y


def _spike_nll(y: np.ndarray, log_rates: np.ndarray) -> float:
    """``sum [ lambda - y log(lambda) ]`` over the bins where ``y`` is not NaN, with ``lambda =
    exp(log_rates)`` and a rate of 0 replaced by :data:`ZERO_RATE` (the Poisson NLL without
    its ``lgamma(y + 1)`` term, which cancels in a difference of two models)."""
    keep = ~np.isnan(y)
    y, lr = y[keep], log_rates[keep]
    if np.isnan(lr).any():
        raise ValueError("log_rates contain NaN")
    rate = np.exp(lr)
    zero = rate == 0
    rate = np.where(zero, ZERO_RATE, rate)
    lr = np.where(zero, np.log(ZERO_RATE), lr)
    return float(np.sum(rate - y * lr))


def _gain_per_spike(y: np.ndarray, log_rates: np.ndarray, null_log_rates: np.ndarray) -> float:
    n_spikes = float(np.nansum(y))
    if n_spikes == 0:
        raise ValueError("bits per spike is undefined without spikes in the evaluation data")
    gain = _spike_nll(y, null_log_rates) - _spike_nll(y, log_rates)
    return gain / n_spikes / np.log(2.0)


def bits_per_spike(counts, log_rates) -> float:
    """Information gain over a per-neuron constant-rate model, in bits per spike, exactly as the
    Neural Latents Benchmark computes it (nlb-tools ``evaluation.bits_per_spike``)::

        NLL(r)     = sum_{t,n} [ r[t, n] - y[t, n] log r[t, n] + lgamma(y[t, n] + 1) ]
        m_n        = nanmean_t y[t, n]          (the null: each neuron's mean over THESE counts)
        bits/spike = (NLL(m) - NLL(lambda)) / (nansum_{t,n} y  *  ln 2)

    with ``lambda = exp(l)``. Bins where ``counts`` is NaN are left out of every sum. A rate of
    exactly 0 counts as :data:`ZERO_RATE` (1e-9): a neuron silent in the evaluated counts has a
    null rate of 1e-9 and is scored, not refused (a model predicting rate ``r`` there loses about
    ``r`` nats per bin). A model equal to the null scores exactly 0; > 0 is better than the
    null. The evaluated counts must hold at least one spike (ValueError otherwise).
    """
    y = _nan_counts(counts)
    lr = _like(log_rates, y, "log_rates")
    bins = tuple(range(y.ndim - 1)) if y.ndim > 1 else tuple(range(y.ndim))  # all but neurons
    seen = (~np.isnan(y)).sum(axis=bins, keepdims=True)
    mean = np.nansum(y, axis=bins, keepdims=True) / np.maximum(seen, 1)  # nanmean, 0 if all NaN
    with np.errstate(divide="ignore"):
        null = np.broadcast_to(np.log(mean), y.shape)
    return _gain_per_spike(y, lr, null)


def bits_per_spike_vs_train_mean(counts, log_rates, train_mean_rates) -> float:
    """:func:`bits_per_spike` with another null: the constant rate ``train_mean_rates[n]``
    (spikes per bin, e.g. each neuron's mean over the TRAINING split, an out-of-sample null)
    instead of the evaluated counts' own mean. A rate of 0 (a neuron silent in training)
    counts as :data:`ZERO_RATE`, as in :func:`bits_per_spike`. Not the NLB number: a model
    equal to the evaluated mean scores > 0 here whenever the training mean differs."""
    y = _nan_counts(counts)
    lr = _like(log_rates, y, "log_rates")
    m = _like(train_mean_rates, y, "train_mean_rates")
    if not (m >= 0).all() or np.isinf(m).any():
        raise ValueError("train_mean_rates must be >= 0 and finite (spikes per bin)")
    with np.errstate(divide="ignore"):
        return _gain_per_spike(y, lr, np.log(m))


def r2(true_rates, pred_rates) -> float:
    """Coefficient of determination of predicted against true rates, averaged over neurons::

        R^2_n = 1 - sum_t (r[t, n] - p[t, n])^2 / sum_t (r[t, n] - mean_t r[t, n])^2
        R^2   = (1 / N) sum_n R^2_n       (uniform average over neurons)

    Arrays are ``[bins, neurons]`` (a 1-D array is one neuron). Compare rates with rates
    (e.g. ``np.exp(log_rates)``), not log-rates. Perfect prediction gives 1, predicting each
    neuron's true mean gives 0, worse predictions are negative. A neuron whose true rate is
    constant has no defined R^2: ValueError.
    """
    r = np.asarray(true_rates, dtype=np.float64)
    p = np.asarray(pred_rates, dtype=np.float64)
    if r.shape != p.shape or r.size == 0:
        raise ValueError(f"true_rates {r.shape} and pred_rates {p.shape} must have the same "
                         "non-empty shape")
    if r.ndim == 1:
        r, p = r[:, None], p[:, None]
    total = np.sum((r - r.mean(axis=0)) ** 2, axis=0)
    if (total == 0).any():
        raise ValueError(f"true rates are constant for neurons {np.flatnonzero(total == 0)}; "
                         "R^2 is undefined there")
    return float(np.mean(1.0 - np.sum((r - p) ** 2, axis=0) / total))


def negative_binomial_nll(counts, log_rates, log_dispersion) -> float:
    """Mean negative-binomial negative log-likelihood per (bin, neuron), in nats.

    Parameterisation: mean ``mu = exp(l)``, dispersion (shape, "number of failures")
    ``r = exp(log_dispersion)``, variance ``mu + mu^2 / r``; ``r -> inf`` is Poisson(mu)::

        log P(y) = lgamma(y + r) - lgamma(r) - lgamma(y + 1)
                   + r log(r / (r + mu)) + y log(mu / (r + mu))

    computed in the equivalent form, stable for large ``r``::

        NLL = mean_{t,n} [ (r + y) softplus(l - log r) - y l
                           - sum_{k=0}^{y-1} log1p(k / r) + lgamma(y + 1) ]

    (``softplus(l - log r) = log1p(mu / r)``). ``log_dispersion`` may be a scalar, one value per
    neuron, or one per (bin, neuron).
    """
    y = _counts(counts)
    lr = _like(log_rates, y, "log_rates")
    ld = _like(log_dispersion, y, "log_dispersion")
    r = np.exp(ld)
    rising = np.zeros(y.shape)
    for k in range(1, int(y.max())):
        rising += np.where(y > k, np.log1p(k / r), 0.0)
    nll = (r + y) * np.logaddexp(0.0, lr - ld) - y * lr - rising + _log_factorial(y)
    return float(np.mean(nll))
