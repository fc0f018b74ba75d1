"""Baselines for spike prediction: a fitted coupled Poisson GLM, a running mean and the
true-rate upper bound.

The GLM predicts the log-rate of neuron ``n`` in bin ``t`` from the counts of every neuron
(``coupling`` "full") or of ``n`` alone ("self": ``w[n, m] = 0`` for ``m != n``) in the
``history`` bins strictly before ``t`` (causal)::

    l[t, n] = bias_n + sum_m sum_{lag=1..H} w[n, m, lag] y[t - lag, m]

fitted per neuron by penalised maximum likelihood (exponential link, Newton's method with step
halving). The baseline est reports beside every EST is tuned as carefully as the EST:
:func:`tune_glm` fits every history length and L2 weight of a grid on the training split and
keeps the one that scores best on the validation split (NLB bits per spike), as the EST's model
selection does; the grid holds both couplings, since a short recording has too few spikes for
``N * H`` weights per neuron, and a long one gains from them. :class:`RunningMean` is the
baseline a drifting recording wants: each neuron's exponentially weighted mean count over the
bins before (window and prior weight chosen on validation), causal and adaptive.
``python -m est.sw.glm`` prints
the grid and bits per spike of the true rates, the tuned GLM and the null model on the held-out
test split of a synthetic population.
"""

import argparse
from dataclasses import dataclass

import numpy as np

from est import EstError
from est.compiler.ops.table import Table
from est.sw.data import PopulationConfig, Recording, simulate_population, split_by_time
from est.sw.metrics import bits_per_spike, poisson_nll


def history_design(counts: np.ndarray, history: int) -> np.ndarray:
    """The design matrix ``X`` [bins, 1 + neurons * history]: a column of ones, then for lag
    ``1..history`` (outer) and neuron ``m`` (inner) the column ``y[t - lag, m]``, zero where
    ``t - lag < 0``."""
    bins, n = counts.shape
    x = np.zeros((bins, 1 + n * history))
    x[:, 0] = 1.0
    for lag in range(1, history + 1):
        x[lag:, 1 + (lag - 1) * n:1 + lag * n] = counts[:bins - lag]
    return x


RHYTHM_ROWS = 32
"""Rows of a fitted rhythm's table (``model.rhythm_rows``): phase steps of 11.25 degrees."""
RHYTHM_AMPLITUDE = 7
"""A rhythm table's largest value (:func:`est.sim.golden.rhythm_table`): 3-bit values."""
RHYTHM_FRAC = Table.FRAC
"""Fraction bits of a table's accumulator (:class:`est.compiler.ops.Table`)."""


RATE_FLOOR = 1e-3
"""The rate (spikes per bin) of a neuron silent in training: its maximum-likelihood rate, 0,
has no finite log; the mean-rate model and the EST's readout use the same floor."""


@dataclass(frozen=True, eq=False)
class GLM:
    """A fitted coupled Poisson GLM: ``bias`` [N], ``weights[n, m, lag - 1]`` [N, N, H] (zero
for ``m != n`` when ``coupling`` is "self").

    ``iterations`` is the number of Newton steps taken, ``converged`` whether every neuron met
    the tolerance. ``covariate_weights`` [N, E]: the weights of ``E`` covariates given beside
    the counts (see :func:`fit_glm`), None without them. With ``slow_shifts`` (and
    ``oscillators``) the covariates are the GLM's own: every neuron's exponential mean counts
    (:func:`slow_means`), then its oscillators (:func:`oscillator_means`), computed from the
    counts it is given (:func:`own_covariates`).
    """

    bias: np.ndarray
    weights: np.ndarray
    l2: float
    iterations: int
    converged: bool
    coupling: str = "full"
    covariate_weights: np.ndarray | None = None
    slow_shifts: tuple[int, ...] = ()
    oscillators: tuple[tuple[int, int, int], ...] = ()
    rhythms: tuple[int, ...] = ()  # the advances of fitted rhythms' tables (rhythm_covariates)
    rhythm_rows: int = RHYTHM_ROWS

    @property
    def history(self) -> int:
        return self.weights.shape[2]

    def predict_log_rates(self, rec: Recording, before: Recording | None = None,
                          covariates: np.ndarray | None = None) -> np.ndarray:
        """Log-rates [bins, neurons] for ``rec``; its first bins see the end of ``before``
        (the recording just before it) as history, or zeros without it. A GLM fitted with
        covariates needs them for ``rec``'s bins, ``[rec.n_bins, E]``; one with
        ``slow_shifts``, ``oscillators`` or ``rhythms`` computes them itself, over ``before``
        and ``rec`` (the rhythms' phase from their bin numbers in the recording they were split
        from: ``before`` is the split just before ``rec``)."""
        n = self.bias.shape[0]
        if rec.n_neurons != n:
            raise EstError(f"GLM: fitted on {n} neurons but the recording has {rec.n_neurons}")
        if self.slow_shifts or self.oscillators or self.rhythms:
            if covariates is not None:
                raise EstError("GLM: its covariates are its own (slow means, oscillators, "
                               "rhythms); give none")
            counts = rec.counts if before is None else np.vstack([before.counts, rec.counts])
            covariates = own_covariates(counts, self.slow_shifts, self.oscillators,
                                        self.rhythms, self.rhythm_rows,
                                        first_bin(rec) - len(counts) + rec.n_bins
                                        )[-rec.n_bins:]
        check_covariates(covariates, rec.n_bins)
        fitted = 0 if self.covariate_weights is None else self.covariate_weights.shape[1]
        if fitted != (0 if covariates is None else covariates.shape[1]):
            raise EstError(f"GLM: fitted with {fitted} covariates, given "
                           f"{0 if covariates is None else covariates.shape[1]}: give the "
                           "recording's bins the covariates it was fitted with")
        counts = rec.counts
        if before is not None:
            counts = np.vstack([before.counts[-self.history:], counts])
        x = history_design(counts, self.history)[-rec.n_bins:]
        if covariates is not None:
            x = np.hstack([x, covariates])
        return x @ self._theta()

    def _theta(self) -> np.ndarray:
        """Parameters as ``[1 + N * H + E, N]`` in the column order of :func:`history_design`,
        then the covariates'."""
        w = self.weights.transpose(2, 1, 0).reshape(-1, self.bias.shape[0])
        rows = [self.bias[None, :], w]
        if self.covariate_weights is not None:
            rows.append(self.covariate_weights.T)
        return np.vstack(rows)


def check_covariates(covariates: np.ndarray | None, bins: int) -> None:
    """Refuse covariates (when given) that are not a finite float array ``[bins, E]``."""
    if covariates is not None and not (
            isinstance(covariates, np.ndarray) and covariates.ndim == 2
            and covariates.shape[0] == bins and np.all(np.isfinite(covariates))):
        raise EstError(f"GLM: covariates must be a finite array [{bins} bins, E], got "
                       f"{getattr(covariates, 'shape', type(covariates).__name__)}")


def _gram(a: np.ndarray) -> np.ndarray:
    """``a^T a``, which numpy computes as one symmetric rank-k update (BLAS syrk: half the
    work of a general product); ``X^T diag(mu) X`` is ``_gram(sqrt(mu) X)``."""
    return a.T @ a


GLM_MAX_BYTES = 2 ** 31
"""The most memory :func:`fit_glm`'s Newton steps may take (a full coupling's grows as the
cube of the neurons): a fit that needs more raises :class:`GLMTooLarge`."""


class GLMTooLarge(EstError):
    """A GLM whose fit would need more than :data:`GLM_MAX_BYTES`."""


def fit_glm(train: Recording, history: int = 5, l2: float = 1e-3, seed: int = 0,
            max_iter: int = 50, tol: float = 1e-8, start: GLM | None = None,
            coupling: str = "full", covariates: np.ndarray | None = None,
            slow_shifts: tuple[int, ...] = (),
            oscillators: tuple[tuple[int, int, int], ...] = (), rhythms: tuple[int, ...] = (),
            rhythm_rows: int = None) -> GLM:
    """Fit :class:`GLM` to ``train`` by penalised maximum likelihood; ``coupling`` "self"
    fits each neuron's weights on its own counts only (the others held at zero).
    ``covariates`` ``[train.n_bins, E]``, if given, are inputs beside the counts (every
    neuron has a weight on each, penalised like the others): row ``t`` enters bin ``t``'s
    log-rate, so a causal model needs rows known before bin ``t``. ``slow_shifts``: the
    covariates are :func:`slow_means` of ``train``'s counts at these windows (with "self"
    coupling each neuron reads its own only). A neuron
    without spikes in the fitted bins is not fitted (its bias would head for minus infinity and
    Newton's method never converge): its rate is :data:`RATE_FLOOR`, its weights zero.

    Each neuron ``n`` minimises, over the bins ``t >= history`` (those with a full history)::

        J(theta_n) = (1 / T) sum_t [ exp(x_t . theta_n) - y[t, n] (x_t . theta_n) ]
                     + l2 * ||w_n||^2          (the bias is not penalised)

    with Newton's method: gradient ``X^T (mu - y) / T + 2 l2 w``, Hessian
    ``X^T diag(mu) X / T + 2 l2 I_w`` (``I_w``: identity on the weights, zero on the bias;
    strictly convex for ``l2 > 0``), starting from
    ``bias = log(mean count)``, ``w = 0`` (or from ``start``, a GLM of the same history: a
    warm start of the same coupling), halving a neuron's step until ``J`` does not increase;
    done when every step's largest change is below ``tol``. The fit is deterministic: ``seed``
    exists for a uniform trainer interface and draws nothing.
    """
    if history < 1 or l2 < 0:
        raise EstError(f"fit_glm: history must be >= 1 and l2 >= 0, got {history}, {l2}")
    if coupling not in GLM_COUPLINGS:
        raise EstError(f"fit_glm: coupling must be one of {list(GLM_COUPLINGS)}, got "
                       f"{coupling!r}")
    if train.n_bins <= history:
        raise EstError(f"fit_glm: {train.n_bins} training bins are too few for history "
                       f"{history}")
    slow_shifts, oscillators = tuple(slow_shifts), as_oscillators(oscillators)
    rhythms, rhythm_rows = tuple(int(a) for a in rhythms), rhythm_rows or RHYTHM_ROWS
    own = len(slow_shifts) + 2 * len(oscillators)  # covariate blocks of N: a neuron's each
    if own or rhythms:
        if covariates is not None:
            raise EstError("fit_glm: give covariates or slow_shifts/oscillators/rhythms, not "
                           "both")
        covariates = own_covariates(train.counts, slow_shifts, oscillators, rhythms,
                                    rhythm_rows, first_bin(train))
    check_covariates(covariates, train.n_bins)
    y = train.counts[history:].astype(np.float64)
    x = history_design(train.counts, history)[history:]
    t, n = y.shape
    extra = np.zeros((t, 0)) if covariates is None else covariates[history:]
    n_extra = extra.shape[1]
    blocks = own
    own = np.arange(n)[None, :] + n * np.arange(history)[:, None]  # [lag - 1, n]: own columns
    # [n, covariates a neuron reads]: all of them, or with "self" its own slow means
    cov_cols = np.broadcast_to(np.arange(n_extra), (n, n_extra))
    if coupling == "self" and blocks:  # its own slow means and oscillators, every rhythm
        cov_cols = np.hstack([np.arange(n)[:, None] + n * np.arange(blocks)[None, :],
                              np.broadcast_to(np.arange(n * blocks, n_extra),
                                              (n, n_extra - n * blocks))])
    if coupling == "self":  # a design per neuron, [n, t, 1 + H + E_n]: bias, own counts, ...
        x = np.concatenate([np.ones((n, t, 1)), x[:, 1 + own].transpose(2, 0, 1),
                            extra[:, cov_cols].transpose(1, 0, 2)], axis=2)
    else:
        x = np.hstack([x, extra])
    p = x.shape[-1]
    need = n * p * p * 8 * (1 if coupling == "self" else 3)  # the Hessians, solve's copies
    if need > GLM_MAX_BYTES:
        raise GLMTooLarge(f"fit_glm: {coupling} coupling of {n} neurons with history {history} "
                          f"and {n_extra} covariates needs {need / 2 ** 30:.1f} GiB for its "
                          f"Newton steps (at most {GLM_MAX_BYTES / 2 ** 30:.0f}); use \"self\" "
                          f"coupling, a shorter history or fewer neurons")
    ridge = np.full(p, 2.0 * l2)
    ridge[0] = 0.0
    silent = y.sum(axis=0) == 0
    theta = np.zeros((p, n))
    theta[0] = np.log(np.maximum(y.mean(axis=0), 1.0 / t))
    n_cov = cov_cols.shape[1]
    if start is not None and (start.history, start.coupling, start.slow_shifts,
                              start.oscillators, start.rhythms) == (
            history, coupling, slow_shifts, oscillators, rhythms) and n_extra == (
            0 if start.covariate_weights is None else start.covariate_weights.shape[1]):
        theta = start._theta()
        if coupling == "self":
            theta = np.vstack([theta[:1], np.take_along_axis(theta[1:1 + n * history], own,
                                                             axis=0),
                               np.take_along_axis(theta[1 + n * history:], cov_cols.T, axis=0)])
    theta[:, silent] = 0.0
    theta[0, silent] = np.log(RATE_FLOOR)

    def eta(th: np.ndarray) -> np.ndarray:
        return x @ th if x.ndim == 2 else np.einsum("ntq,qn->tn", x, th)

    def objective(th: np.ndarray) -> np.ndarray:
        e = eta(th)
        with np.errstate(over="ignore"):
            return np.mean(np.exp(e) - y * e, axis=0) + 0.5 * ridge @ th ** 2

    current = objective(theta)
    converged = False
    iterations = 0
    while iterations < max_iter and not converged:
        iterations += 1
        mu = np.exp(eta(theta))
        if x.ndim == 2:
            grad = x.T @ (mu - y) / t
            hess = np.stack([_gram(x * np.sqrt(mu[:, j, None])) for j in range(n)]) / t
        else:
            grad = np.einsum("ntq,tn->qn", x, mu - y) / t
            hess = np.einsum("ntq,tn,ntr->nqr", x, mu, x) / t
        grad = grad + ridge[:, None] * theta
        step = -np.linalg.solve(hess + np.diag(ridge), grad.T[:, :, None])[:, :, 0].T
        step[:, silent] = 0.0
        scale = np.ones(n)
        for _ in range(30):
            trial = objective(theta + scale * step)
            worse = ~(trial <= current)
            if not worse.any():
                break
            scale[worse] *= 0.5
        theta = theta + scale * step
        current = objective(theta)
        converged = bool(np.max(np.abs(scale * step)) < tol)
    bias = theta[0].copy()
    counts_part, cov_part = theta[1:p - n_cov], theta[p - n_cov:]
    cov_weights = None if covariates is None else np.zeros((n, n_extra))
    if coupling == "self":
        weights = np.zeros((n, n, history))
        weights[np.arange(n), np.arange(n)] = counts_part.T
        if cov_weights is not None:
            cov_weights[np.arange(n)[:, None], cov_cols] = cov_part.T
    else:
        weights = counts_part.reshape(history, n, n).transpose(2, 1, 0).copy()
        if cov_weights is not None:
            cov_weights[:] = cov_part.T
    return GLM(bias, weights, l2, iterations, converged, coupling, cov_weights, slow_shifts,
               oscillators, rhythms, rhythm_rows)


GLM_HISTORIES = (1, 2, 3, 5, 8)
"""The history lengths (bins) :func:`tune_glm` tries by default (``train.glm_history``)."""
GLM_L2S = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
"""The L2 weights :func:`tune_glm` tries by default (``train.glm_l2``); all above 0, so that
the fit of a neuron silent in training stays well posed."""

GLM_COUPLINGS = ("full", "self")
"""The couplings :func:`tune_glm` tries by default."""


def tune_glm(train: Recording, val: Recording, histories=GLM_HISTORIES, l2s=GLM_L2S,
             couplings=GLM_COUPLINGS, progress=None,
             covariates: tuple[np.ndarray, np.ndarray] | None = None,
             slow_shifts: tuple[int, ...] = (), fitted: list | None = None,
             oscillators: tuple[tuple[int, int, int], ...] = (), rhythms: tuple[int, ...] = (),
             rhythm_rows: int | None = None) -> tuple[GLM, list[dict]]:
    """The :class:`GLM` of the grid ``couplings x histories x l2s`` that scores the most NLB
    bits per spike on ``val`` (ties: "self" coupling, then the shorter history, then the larger
    L2), each candidate fitted on ``train`` alone (for one coupling and history, from large L2
    to small, each fit starting from the last). Returns it and the grid: per candidate
    ``coupling``, ``history``, ``l2`` and ``val_bits_per_spike``. A history too long for
    ``train`` is skipped, and so is a (coupling, history) whose fit would need more memory
    than :data:`GLM_MAX_BYTES` (:class:`GLMTooLarge`: a full coupling of many neurons; the grid
    holds no row of it, ``progress`` is told); ``progress`` (if given) is called with a line
    per candidate.
    ``covariates``: ``(for train's bins, for val's bins)``, given to every candidate, or
    ``slow_shifts``, ``oscillators`` and ``rhythms`` (:func:`fit_glm`). ``fitted`` (a list, if
    given) gains ``(key, glm)`` for every candidate, ``max`` of its keys the choice (a subset's
    best: its ``max``)."""
    on_train, on_val = (None, None) if covariates is None else covariates
    grid, best, best_key, too_large = [], None, None, []
    for coupling in couplings:
        for history in histories:
            if train.n_bins <= history:
                continue
            row, glm = {}, None
            for l2 in sorted(l2s, reverse=True):  # each fit starts from the more penalised one
                try:
                    glm = fit_glm(train, history, l2, start=glm, coupling=coupling,
                                  covariates=on_train, slow_shifts=slow_shifts,
                                  oscillators=oscillators, rhythms=rhythms,
                                  rhythm_rows=rhythm_rows)
                except GLMTooLarge as exc:  # so is every l2 of it: the grid goes without
                    too_large.append(str(exc))
                    if progress is not None:
                        progress(f"GLM {coupling} coupling, history {history}: skipped ({exc})")
                    break
                score = bits_per_spike(val.counts, glm.predict_log_rates(val, train, on_val))
                row[l2] = {"coupling": coupling, "history": history, "l2": l2,
                           "val_bits_per_spike": score}
                if progress is not None:
                    progress(f"GLM {coupling} coupling, history {history}, l2 {l2:g}: "
                             f"{score:.4f} bits/spike (val)")
                key = (score, coupling == "self", -history, l2)
                if fitted is not None:
                    fitted.append((key, glm))
                if best_key is None or key > best_key:
                    best, best_key = glm, key
            grid += [row[l2] for l2 in l2s if l2 in row]
    if best is None and too_large:
        raise EstError(too_large[0])
    if best is None:
        raise EstError(f"tune_glm: {train.n_bins} training bins are too few for every history "
                       f"of {list(histories)}")
    return best, grid


def tune_glm_rhythms(train: Recording, val: Recording, periods, rows: int = RHYTHM_ROWS,
                     choose: bool = True, usable=None,
                     **tune) -> tuple[tuple, GLM, list[dict], GLM, list[float]]:
    """:func:`tune_glm` (``tune``: its other arguments) with rhythms of ``periods`` as more
    inputs. ``choose``: the ``k`` strongest (``periods`` strongest first, as
    :func:`find_rhythms` gives them) for ``k = 0 .. len(periods)``, and the ``k`` whose best GLM
    of those ``usable`` (a predicate; all by default) scores most on ``val`` (ties: fewer), since
    periods found in a short split may be noise; else all of them. Returns the periods chosen,
    :func:`tune_glm`'s best GLM and grid with them, the best usable GLM with them, and the
    validation score of each ``k`` tried."""
    chosen, scores = None, []
    for k in range(len(periods) + 1) if choose else [len(periods)]:
        fitted: list = []
        best, grid = tune_glm(train, val, fitted=fitted, rhythm_rows=rows,
                              rhythms=tuple(rhythm_advance(p, rows) for p in periods[:k]), **tune)
        key, start = max((f for f in fitted if usable is None or usable(f[1])),
                         key=lambda f: f[0])
        scores.append(float(key[0]))
        if chosen is None or key[0] > chosen[0]:
            chosen = (key[0], tuple(periods[:k]), best, grid, start)
    return (*chosen[1:], scores)


RUNNING_SHIFTS = (2, 3, 4, 5, 6, 7, 8)
"""The windows :func:`tune_running_mean` tries: a bin ``lag`` bins back weighs
``(1 - 2^-shift)^(lag - 1)``, so about ``2^shift`` bins count."""
RUNNING_PRIOR_BINS = (0.5, 2.0, 8.0, 32.0)
"""The weights (in bins) of the prior rate that :func:`tune_running_mean` tries."""


def exponential_sums(counts: np.ndarray, shift: int) -> np.ndarray:
    """Causal exponentially weighted sums of ``counts`` [bins, neurons]: row ``t`` is
    ``sum_{lag >= 1} a^(lag - 1) y[t - lag]`` with ``a = 1 - 2^-shift`` (row 0 is zeros);
    times ``2^-shift``, each neuron's exponential mean count over about ``2^shift`` bins."""
    a = 1.0 - 2.0 ** -shift
    out = np.zeros(counts.shape)
    for t in range(1, counts.shape[0]):
        out[t] = a * out[t - 1] + counts[t - 1]
    return out


def running_mean_log_rates(counts: np.ndarray, shift: int, prior: np.ndarray,
                           prior_bins: float) -> np.ndarray:
    """A causal, adaptive constant-rate model: the log-rate of neuron ``n`` in bin ``t`` is
    the log of its exponentially weighted mean count over the bins before ``t`` (a bin ``lag``
    back weighs ``a^(lag - 1)``, ``a = 1 - 2^-shift``), shrunk towards ``prior[n]`` by
    ``prior_bins`` bins of weight: ``log((S_t + k prior) / (W_t + k))`` with ``S_t`` the
    weighted counts (:func:`exponential_sums`), ``W_t`` the weights and ``k = prior_bins``.
    ``counts`` [bins, neurons]; bin 0 is the prior alone. It tracks a rate that drifts, which
    no fixed model does."""
    a = 1.0 - 2.0 ** -shift
    weights = (1.0 - a ** np.arange(counts.shape[0]))[:, None] / (1.0 - a)
    return np.log((exponential_sums(counts, shift) + prior_bins * prior)
                  / (weights + prior_bins))


SLOW_SHIFTS = (2, 3, 4, 5, 6, 7)
"""The windows of :func:`slow_means`: about 4 to 128 bins, the latents' periods (20-200)."""


def slow_means(counts: np.ndarray, shifts=SLOW_SHIFTS) -> np.ndarray:
    """Covariates for a GLM that may carry slow latents: every neuron's exponential mean
    count over the bins before, at every window of ``shifts`` (:func:`exponential_sums`),
    ``[bins, neurons * len(shifts)]``, window-major; causal (row ``t`` reads bins before
    ``t``)."""
    return np.hstack([exponential_sums(counts, s) * 2.0 ** -s for s in shifts])


def own_covariates(counts: np.ndarray, slow_shifts=(), oscillators=(), rhythms=(),
                   rhythm_rows: int = None, start: int = 0) -> np.ndarray:
    """A GLM's own covariates: :func:`slow_means` at ``slow_shifts``, then
    :func:`oscillator_means` of ``oscillators`` (blocks of one column a neuron), then
    :func:`rhythm_covariates` of ``rhythms`` (``counts[0]`` is bin ``start`` of its
    recording)."""
    parts = [slow_means(counts, slow_shifts)] if slow_shifts else []
    if oscillators:
        parts.append(oscillator_means(counts, oscillators))
    if rhythms:
        parts.append(rhythm_covariates(start, len(counts), rhythms, rhythm_rows or RHYTHM_ROWS))
    return np.hstack(parts)


def first_bin(rec: Recording) -> int:
    """The bin number of ``rec``'s first bin in the recording it was split from (0 if whole)."""
    return int(rec.meta.get("bins", (0, rec.n_bins))[0])


def rhythm_advance(period: float, rows: int = RHYTHM_ROWS) -> int:
    """The table advance of a rhythm of ``period`` bins: ``round(rows 2^15 / period)``."""
    return int(round(rows * 2 ** RHYTHM_FRAC / period))


def shortest_rhythm(rows: int = RHYTHM_ROWS) -> float:
    """The shortest period (bins) a table of ``rows`` can run: its advance is at most 0xFFFF
    (about 2 rows a bin)."""
    return rows * 2 ** RHYTHM_FRAC / 0xFFFF


def rhythm_periods(counts: np.ndarray, k: int, rows: int = RHYTHM_ROWS) -> list[float]:
    """est-train's ``train.find_rhythms``: :func:`find_rhythms` of the training ``counts``
    between just above :func:`shortest_rhythm` (at least 4 bins) and a quarter of the bins (at
    least 8)."""
    return find_rhythms(counts, k, max(shortest_rhythm(rows) * 1.001, 4.0),
                        max(len(counts) / 4, 8.0))


def rhythm_accumulator(bins, advance: int, rows: int = RHYTHM_ROWS):
    """A rhythm table's phase accumulator at bin numbers ``bins`` of the recording (an int
    or an integer array), counted from its bin 0: ``bin * advance mod rows 2^15``
    (docs/semantics.md 8.2; a stream that starts at bin B starts the table there)."""
    return bins * int(advance) % (rows << RHYTHM_FRAC)


def rhythm_values(bins: np.ndarray, advances, rows: int = RHYTHM_ROWS) -> np.ndarray:
    """The rhythm tables' rows at bin numbers ``bins`` (any shape ``S``, counted from the
    recording's first bin, 0): ``[*S, 4 * len(advances)]``, table ``i``'s row ``acc >> 15``,
    ``acc`` its :func:`rhythm_accumulator`, as integers."""
    from est.sim.golden import rhythm_table

    table = rhythm_table(rows, RHYTHM_AMPLITUDE)
    bins = np.asarray(bins, dtype=np.int64)
    return np.concatenate([table[rhythm_accumulator(bins, a, rows) >> RHYTHM_FRAC]
                           for a in advances], axis=-1)


def rhythm_covariates(start: int, bins: int, advances, rows: int = RHYTHM_ROWS) -> np.ndarray:
    """A GLM's rhythm covariates for bins ``start .. start + bins - 1``: row ``t`` is the
    tables' row at the bin before (:func:`rhythm_values` of ``start + t - 1``), which the
    readout reads when it predicts bin ``t``; ``[bins, 4 * len(advances)]`` (float64)."""
    return rhythm_values(np.arange(start - 1, start + bins - 1), advances, rows).astype(
        np.float64)


def find_rhythms(counts: np.ndarray, k: int, shortest: float, longest: float,
                 components: int = 5) -> list[float]:
    """The periods (bins) of the ``k`` strongest rhythms in ``counts`` [bins, neurons]: the
    highest local peaks, between periods ``shortest`` and ``longest``, of the summed power
    spectrum of the z-scored counts' first ``components`` principal components, computed on
    a grid 2^21 points fine (zero-padded FFT: a period to about 1e-4 of itself over 10,000
    bins, which keeps a table's phase over the recordings est scores); peaks closer than 3 /
    bins in frequency count as one. Fewer if the spectrum has fewer peaks in range."""
    y = counts.astype(np.float64)
    y = (y - y.mean(axis=0)) / np.maximum(y.std(axis=0), 1e-9)
    u, s, _ = np.linalg.svd(y, full_matrices=False)
    pcs = u[:, :components] * s[:components]
    size = max(1 << 21, 1 << (4 * len(y) - 1).bit_length())
    freq = np.fft.rfftfreq(size)
    power = (np.abs(np.fft.rfft(pcs, n=size, axis=0)) ** 2).sum(axis=1)
    inside = np.flatnonzero((freq >= 1 / longest) & (freq <= 1 / shortest))
    inside = inside[(inside > 0) & (inside < len(power) - 1)]
    peaks = inside[(power[inside] >= power[inside - 1]) & (power[inside] >= power[inside + 1])]
    chosen: list[int] = []
    for i in peaks[np.argsort(power[peaks])[::-1]]:
        if all(abs(freq[i] - freq[j]) > 3 / len(y) for j in chosen):
            chosen.append(i)
        if len(chosen) == k:
            break
    return [float(1 / freq[i]) for i in chosen]


OSCILLATORS = ((2, 6, 1), (3, 7, 1), (4, 8, 1), (5, 9, 1))
"""The (rotation shift ``m``, leak shift ``k``, multiplier ``c``) of :func:`oscillator_means`:
periods of about 25, 50, 101 and 201 bins (``2 pi 2^m / c``), each ringing for about ``2^k``
bins (2-3 periods)."""

OSCILLATOR_LEAK_SHIFT = 7
"""The leak shift of the oscillators est-train tunes to the rhythms it finds
(``train.find_oscillators``): they ring for about 128 bins, and their weights take 8 + 7 bits,
within the core's 15."""


def as_oscillators(value):
    """A list of oscillators ``[m, k]`` or ``[m, k, c]`` (lists, from TOML or JSON) as a tuple
    of triples ``(m, k, c)``, ``c`` 1 where not given; a value that is not a list, or an entry
    that is not a list of two or three, unchanged (for the config's check to name)."""
    if not isinstance(value, (tuple, list)):
        return value
    return tuple((*p, 1) if isinstance(p, (tuple, list)) and len(p) == 2 else
                 tuple(p) if isinstance(p, (tuple, list)) else p for p in value)


def tuned_oscillator(period: float, k: int = OSCILLATOR_LEAK_SHIFT) -> tuple[int, int, int]:
    """The oscillator ``(m, k, c)`` of leak shift ``k`` whose rotation ``e = c 2^-m`` is
    nearest ``2 sin(pi / period)``, the rotation of the magic circle of that period (``m <=
    k``, ``c`` up to ``MAX_ROTATE_MULT`` and below ``2^m``; the smaller ``m`` on a tie): at
    most ``2^-(k + 1)`` off for periods above about 26 bins, half its bandwidth (it rings for
    about ``2^k`` bins)."""
    from est.sim.golden import MAX_ROTATE_MULT

    e = 2 * np.sin(np.pi / period)
    best = min((abs(c * 2.0 ** -m - e), m, c)
               for m in range(1, k + 1)
               for c in range(1, min(MAX_ROTATE_MULT, 2 ** m - 1) + 1))
    return best[1], k, best[2]


def oscillator_means(counts: np.ndarray, oscillators=OSCILLATORS) -> np.ndarray:
    """Covariates that may carry rhythmic latents: every neuron's counts through damped
    oscillators made of shifts, adds and a small multiplier (the "magic circle" rotation, exact
    in integers as a readout's leak is): ``u <- u - (u >> k) - (c w >> m) + y`` then
    ``w <- w - (w >> k) + (c u >> m)`` (``u`` updated first), here in real numbers, times
    ``2^-k``; row ``t`` reads bins before ``t``. ``[bins, neurons * 2 * len(oscillators)]``:
    ``u`` then ``w`` of each."""
    out = []
    for m, k, c in as_oscillators(oscillators):
        states = oscillator_sums(counts, m, k, c=c) * 2.0 ** -k
        out += [states[:, 0], states[:, 1]]
    return np.hstack(out)


def oscillator_sums(counts: np.ndarray, m: int, k: int, drive: str = "u",
                    c: int = 1) -> np.ndarray:
    """The states ``[bins, 2, neurons]`` (``u``, ``w``) of the damped rotation of
    :func:`oscillator_means` (``a = 1 - 2^-k``, ``e = c 2^-m``) that ``counts`` [bins, neurons]
    drive, through ``u`` (``drive`` "u") or through ``w`` ("w"), from zero; row ``t`` reads the
    bins before ``t`` (row 0 is zeros)."""
    a, e = 1.0 - 2.0 ** -k, c * 2.0 ** -m
    into_u, into_w = (1.0, 0.0) if drive == "u" else (0.0, 1.0)
    u, w = np.zeros((2, counts.shape[1]))
    out = np.zeros((counts.shape[0], 2, counts.shape[1]))
    for t in range(1, counts.shape[0]):
        u = a * u - e * w + into_u * counts[t - 1]
        w = a * w + e * u + into_w * counts[t - 1]
        out[t] = u, w
    return out


@dataclass(frozen=True)
class RunningMean:
    """:func:`running_mean_log_rates` with a window and a prior weight chosen on validation
    and the training split's mean rates (floored at :data:`RATE_FLOOR`) as the prior."""

    shift: int
    prior_bins: float
    prior: np.ndarray

    def predict_log_rates(self, rec: Recording, before: Recording | None = None) -> np.ndarray:
        """Log-rates [bins, neurons] for ``rec``, the running mean started on ``before`` (the
        recording just before it) when given."""
        counts = rec.counts if before is None else np.vstack([before.counts, rec.counts])
        return running_mean_log_rates(counts, self.shift, self.prior,
                                      self.prior_bins)[-rec.n_bins:]


def tune_running_mean(train: Recording, val: Recording, shifts=RUNNING_SHIFTS,
                      prior_bins=RUNNING_PRIOR_BINS) -> RunningMean:
    """The :class:`RunningMean` of the grid ``shifts x prior_bins`` that scores the most NLB
    bits per spike on ``val`` (run on from the start of ``train``; ties: the first in grid
    order)."""
    prior = np.maximum(train.counts.mean(axis=0), RATE_FLOOR)
    best, best_score = None, -np.inf
    for shift in shifts:
        for k in prior_bins:
            model = RunningMean(shift, k, prior)
            score = bits_per_spike(val.counts, model.predict_log_rates(val, train))
            if score > best_score:
                best, best_score = model, score
    return best


def true_rate_log_rates(rec: Recording) -> np.ndarray:
    """``log(rec.rates)``: the true model's log-rates, the upper bound on achievable likelihood."""
    if rec.rates is None:
        raise EstError(f"{rec.meta.get('source', 'recording')}: no true rates are known for "
                       "this recording (only simulated data has them)")
    return np.log(rec.rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m est.sw.glm",
        description="NLB bits per spike of the true rates, the GLM tuned on the validation "
                    "split and the training split's mean rates on the test split (70/15/15 in "
                    "time) of a synthetic population.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history", type=int, nargs="+", default=list(GLM_HISTORIES))
    parser.add_argument("--l2", type=float, nargs="+", default=list(GLM_L2S))
    args = parser.parse_args(argv)
    rec = simulate_population(PopulationConfig(seed=args.seed))
    train, val, test = split_by_time(rec)
    print(f"population seed {args.seed}: {rec.n_bins} bins x {rec.n_neurons} neurons, "
          f"mean rate {rec.counts.mean():.4f} spikes/bin")
    glm, _ = tune_glm(train, val, args.history, args.l2, progress=print)
    print(f"GLM chosen on validation: {glm.coupling} coupling, history {glm.history}, "
          f"l2 {glm.l2:g} "
          f"({glm.iterations} Newton steps, converged={glm.converged})")
    mean_rates = train.counts.mean(axis=0)
    null = np.broadcast_to(np.log(mean_rates), test.counts.shape)
    for name, lr in (("true rates", true_rate_log_rates(test)),
                     ("GLM", glm.predict_log_rates(test, val)), ("train mean", null)):
        print(f"{name:>10}: {bits_per_spike(test.counts, lr):.4f} bits/spike, "
              f"Poisson NLL {poisson_nll(test.counts, lr):.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
