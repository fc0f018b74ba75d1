"""Evaluation metrics for spike-count prediction.

Notation: ``y[t, n]`` observed counts, ``l[t, n]`` predicted log-rates (log of the expected count
per bin), ``lambda = exp(l)``; means and sums run over every bin ``t`` and neuron ``n``. Inputs
are numpy arrays (anything ``np.asarray`` accepts); ``log_rates`` and the other parameters may be
any shape that broadcasts to the counts' shape. Counts must be non-negative whole numbers.
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


def bits_per_spike(counts, log_rates, mean_rates) -> float:
    """Information gain over a per-neuron constant-rate model, in bits per spike::

        LL(model) = sum_{t,n} [ y l - exp(l) - lgamma(y + 1) ]
        LL(null)  = sum_{t,n} [ y log(m_n) - m_n - lgamma(y + 1) ]
        bits/spike = (LL(model) - LL(null)) / (sum_{t,n} y  *  ln 2)

    the Neural Latents Benchmark definition, with the null model predicting ``m_n =
    mean_rates[n]`` (spikes per bin) in every bin. The caller takes ``mean_rates`` from the
    TRAINING split (NLB's own code uses the mean of the evaluated spikes; a training mean is a
    fair out-of-sample null). A model equal to the null scores exactly 0; > 0 is better than the
    null. ``mean_rates`` must be > 0 and the evaluation data must contain at least one spike.
    """
    y = _counts(counts)
    lr = _like(log_rates, y, "log_rates")
    m = _like(mean_rates, y, "mean_rates")
    if (m <= 0).any():
        raise ValueError("mean_rates must be > 0 (a neuron silent in training needs a small "
                         "floor, e.g. 1e-6 spikes per bin)")
    n_spikes = int(y.sum())
    if n_spikes == 0:
        raise ValueError("bits per spike is undefined without spikes in the evaluation data")
    ll_model = np.sum(y * lr - np.exp(lr))
    ll_null = np.sum(y * np.log(m) - m)
    return float((ll_model - ll_null) / (n_spikes * np.log(2.0)))


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
