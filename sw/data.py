"""Spike-count data: a seeded synthetic population with known true rates, and loaders.

A :class:`Recording` holds spike counts ``y[t, n]`` (``t`` a time bin, ``n`` a neuron) and, when
known, the true conditional intensity ``rates[t, n] = E[y[t, n] | past]``.

The synthetic population (:func:`simulate_population`) is a coupled Poisson GLM with a softplus
link::

    rate_n(t) = softplus(b_n + sum_k C[n, k] z_k(t) + sum_m sum_{lag=1..L} h[n, m, lag] y_m(t-lag))
    y_n(t) ~ Poisson(rate_n(t)),   independently across n given the past,

    softplus(x) = log(1 + e^x)   (no clamp: it grows only linearly, so rates stay finite)

with a low-dimensional rhythmic latent drive ``z`` (a sinusoid per latent plus slow noise),
negative self-coupling ``h[n, n, :]`` (refractoriness) and sparse signed cross-coupling. The
returned ``rates`` are exactly the intensities the counts were drawn from, so a model predicting
them attains the best possible expected likelihood (the upper bound for bits per spike).

Users bring their own data with :func:`load_counts` (``.npy`` / ``.npz`` of counts) and
:func:`load_spike_times` (spike times and unit indices, binned here). Files are always opened with
``allow_pickle=False``; every problem raises :class:`est.EstError` naming the file.
"""

import math
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from est import EstError

SPLIT_NAMES = ("train", "valid", "test")


# --- config checks, shared by the [data], [model] and [train] sections of est-train -----------
# Each raises EstError naming the key (``data.bins``, ``model.heads``, ...), the rule and the value.

MAX_LEAK_SHIFT = 23
"""Largest leak shift ``k`` (``v <- v - (v >> k)``, ``beta = 1 - 2**-k``): the quantizer sizes
membranes to at most 24 bits, where a larger shift leaves every positive membrane unchanged;
for no leak write ``"none"``."""

MAX_SEED = 2**63 - 1


def config_error(message: str):
    """Raise :class:`est.EstError` with ``message`` (one line naming the key at fault)."""
    raise EstError(message)


def check_whole(name: str, value, low: int, high: int | None = None) -> None:
    """``value`` must be an int (not a bool) in ``low..high`` (no upper bound if None)."""
    if isinstance(value, bool) or not isinstance(value, int):
        config_error(f"{name} must be a whole number, got {value!r}")
    if high is not None and not low <= value <= high:
        config_error(f"{name} must be {low}..{high}, got {value}")
    if value < low:
        config_error(f"{name} must be at least {low}, got {value}")


def check_number(name: str, value, *, above: float | None = None,
                 at_least: float | None = None, below: float | None = None,
                 at_most: float | None = None, what: str | None = None) -> None:
    """``value`` must be a finite int or float within the given bounds; ``what`` describes the
    allowed range in the message (default: the one bound given)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        config_error(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        config_error(f"{name} must be a finite number, got {value}")
    ok = ((above is None or value > above) and (at_least is None or value >= at_least)
          and (below is None or value < below) and (at_most is None or value <= at_most))
    if not ok:
        if what is None:
            what = " and ".join(f"{op} {bound}" for op, bound in (
                (">", above), (">=", at_least), ("<", below), ("<=", at_most)) if bound is not None)
        config_error(f"{name} must be {what}, got {value}")


def check_choice(name: str, value, options: tuple[str, ...]) -> None:
    if value not in options:
        config_error(f"{name} must be one of {' | '.join(options)}, got {value!r}")


def check_leak_shift(name: str, value) -> None:
    """A leak shift: None (no leak: integrate and fire) or a whole number 0..MAX_LEAK_SHIFT."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not (
            0 <= value <= MAX_LEAK_SHIFT):
        config_error(f'{name} must be 0..{MAX_LEAK_SHIFT} or "none" (no leak), got {value!r}')


@dataclass(frozen=True)
class PopulationConfig:
    """Knobs of the synthetic coupled Poisson GLM (all times in bins unless stated).

    - ``baseline_range``: per-neuron baseline pre-activation ``b_n ~ U(low, high)``;
      ``softplus(-2.5) = 0.079``, ``softplus(-1) = 0.31`` spikes per bin.
    - ``latent_gain``: standard deviation of each neuron's total latent drive ``C_n z(t)``
      (``C[n, k] ~ N(0, latent_gain^2 / n_latents)`` and each ``z_k`` has unit variance).
    - ``latent_period_range``: latent ``k`` oscillates with a period drawn log-uniformly here.
    - ``latent_noise``: fraction of each latent's variance that is slow noise:
      ``z_k = sqrt(1 - a) sqrt(2) sin(2 pi t / P_k + phi_k) + sqrt(a) xi_k(t)`` with
      ``a = latent_noise`` and ``xi_k`` unit-variance white noise filtered by ``exp(-j / tau)``,
      ``tau = latent_noise_timescale``.
    - ``coupling_lags`` (L): length of every coupling kernel; ``coupling_timescale`` (tau_h): its
      decay, ``h[n, m, lag] = w[n, m] exp(-(lag - 1) / tau_h)`` for ``lag = 1..L``.
    - ``self_coupling``: ``w[n, n]`` (<= 0: refractoriness).
    - ``cross_density``: probability that ``w[n, m]`` (``m != n``) is non-zero;
      ``cross_strength``: its magnitude is ``U(0.5, 1) * cross_strength``, its sign random.
      Strong positive coupling can run away (rates grow without bound); the defaults do not.
    - ``bin_width``: seconds per bin, metadata only (0.01 s: 0.1 spikes/bin is 10 Hz).
    - ``silent_fraction``: this fraction of the neurons (``round(fraction * n_neurons)``, drawn
      at random) has its baseline lowered by ``silent_depth`` (default 8: softplus(-10) is
      4.5e-5 spikes per bin), so that it fires rarely or never, as units that fall silent in a
      real recording.
    - ``drift``: each neuron's baseline moves linearly over the recording, from ``-drift / 2``
      to ``+drift / 2`` times a per-neuron factor drawn from N(0, 1) (slow non-stationarity:
      rates in the test split differ from those of the training split).

    The last three knobs draw from a generator of their own (``SeedSequence([seed, 1])``),
    only when they are not 0, so the population of a seed is the same with them at 0 as
    without them.

    The defaults give per-neuron mean rates of about 0.05-0.3 spikes per bin (mostly 0/1 counts,
    occasional 2s).
    """

    n_neurons: int = 24
    n_latents: int = 3
    bins: int = 24000
    seed: int = 0
    baseline_range: tuple[float, float] = (-2.5, -1.0)
    latent_gain: float = 0.8
    latent_period_range: tuple[float, float] = (20.0, 200.0)
    latent_noise: float = 0.3
    latent_noise_timescale: float = 100.0
    coupling_lags: int = 5
    coupling_timescale: float = 1.5
    self_coupling: float = -3.0
    cross_density: float = 0.1
    cross_strength: float = 0.6
    bin_width: float | None = 0.01
    silent_fraction: float = 0.0
    silent_depth: float = 8.0
    drift: float = 0.0

    def __post_init__(self):
        check_population({f.name: getattr(self, f.name) for f in fields(self)},
                         "PopulationConfig.")


def check_population(values: dict, prefix: str = "data.") -> None:
    """Check every :class:`PopulationConfig` field in ``values`` (all of them: defaults filled
    in); raise EstError naming the first one at fault as ``{prefix}{field}``."""
    k = prefix
    for name, low in (("n_neurons", 1), ("n_latents", 0), ("bins", 1), ("seed", 0),
                      ("coupling_lags", 1)):
        check_whole(k + name, values[name], low)
    for name in ("baseline_range", "latent_period_range"):
        pair = values[name]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            config_error(f"{k}{name} must be [low, high], got "
                         f"{list(pair) if isinstance(pair, (tuple, list)) else pair!r}")
        for i, bound in enumerate(pair):
            check_number(f"{k}{name}[{i}]", bound)
    low, high = values["baseline_range"]
    if low > high:
        config_error(f"{k}baseline_range must be [low, high] with low <= high, got "
                     f"{[low, high]}")
    low, high = values["latent_period_range"]
    if not 0 < low <= high:
        config_error(f"{k}latent_period_range must be [low, high] with 0 < low <= high, got "
                     f"{[low, high]}")
    check_number(k + "latent_gain", values["latent_gain"], at_least=0)
    check_number(k + "latent_noise", values["latent_noise"], at_least=0, at_most=1,
                 what="in [0, 1]")
    check_number(k + "latent_noise_timescale", values["latent_noise_timescale"], above=0)
    check_number(k + "coupling_timescale", values["coupling_timescale"], above=0)
    check_number(k + "self_coupling", values["self_coupling"], at_most=0,
                 what="<= 0 (refractoriness)")
    check_number(k + "cross_density", values["cross_density"], at_least=0, at_most=1,
                 what="in [0, 1]")
    check_number(k + "cross_strength", values["cross_strength"], at_least=0)
    check_number(k + "silent_fraction", values["silent_fraction"], at_least=0, at_most=1,
                 what="in [0, 1]")
    check_number(k + "silent_depth", values["silent_depth"], at_least=0)
    check_number(k + "drift", values["drift"], at_least=0)
    if values["bin_width"] is not None:
        check_number(k + "bin_width", values["bin_width"], above=0)


@dataclass(frozen=True, eq=False)
class Recording:
    """Spike counts of a population, time-binned.

    - ``counts``: int64 ``[bins, neurons]``, all >= 0.
    - ``rates``: float64 ``[bins, neurons]``, the true conditional intensity (expected count per
      bin given the past) when known, else None. All > 0 (a zero rate makes a spike impossible).
    - ``bin_width``: seconds per bin, or None when unknown.
    - ``meta``: free-form provenance (source file, simulation parameters, split position).

    Compared by identity (``eq=False``): element-wise array equality has no single truth value.
    """

    counts: np.ndarray
    rates: np.ndarray | None = None
    bin_width: float | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        c = self.counts
        if not (isinstance(c, np.ndarray) and c.dtype == np.int64 and c.ndim == 2):
            raise EstError("Recording: counts must be an int64 array [bins, neurons], got "
                           f"{type(c).__name__} {getattr(c, 'dtype', '')} "
                           f"{getattr(c, 'shape', '')}")
        if c.size and c.min() < 0:
            raise EstError("Recording: counts must be >= 0")
        r = self.rates
        if r is not None:
            if not (isinstance(r, np.ndarray) and r.dtype == np.float64 and r.shape == c.shape):
                raise EstError(f"Recording: rates must be float64 with the shape of counts "
                               f"{c.shape}, got {getattr(r, 'dtype', type(r).__name__)} "
                               f"{getattr(r, 'shape', '')}")
            if r.size and not (np.all(np.isfinite(r)) and r.min() > 0):
                raise EstError("Recording: rates must be finite and > 0")
        if self.bin_width is not None and not self.bin_width > 0:
            raise EstError(f"Recording: bin_width must be > 0 seconds or None, "
                           f"got {self.bin_width}")

    @property
    def n_bins(self) -> int:
        return self.counts.shape[0]

    @property
    def n_neurons(self) -> int:
        return self.counts.shape[1]


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + e^x)``, computed without overflow."""
    return np.logaddexp(0.0, x)


def _latents(cfg: PopulationConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The latent drive ``z`` [bins, n_latents], each column of unit variance (see the config),
    and the periods of its sinusoids [n_latents]."""
    k, t = cfg.n_latents, np.arange(cfg.bins)
    lo, hi = cfg.latent_period_range
    periods = np.exp(rng.uniform(np.log(lo), np.log(hi), size=k))
    phases = rng.uniform(0.0, 2 * np.pi, size=k)
    rhythm = np.sqrt(2.0) * np.sin(2 * np.pi * t[:, None] / periods + phases)
    tau = cfg.latent_noise_timescale
    kernel = np.exp(-np.arange(int(np.ceil(6 * tau)) + 1) / tau)
    kernel /= np.sqrt(np.sum(kernel ** 2))
    white = rng.standard_normal((cfg.bins + kernel.size - 1, k))
    slow = np.stack([np.convolve(white[:, j], kernel, mode="valid") for j in range(k)], axis=1)
    a = cfg.latent_noise
    return np.sqrt(1.0 - a) * rhythm + np.sqrt(a) * slow.reshape(cfg.bins, k), periods


def _coupling(cfg: PopulationConfig, rng: np.random.Generator) -> np.ndarray:
    """The coupling kernels ``h[n, m, lag - 1]`` [neurons, neurons, coupling_lags]."""
    n = cfg.n_neurons
    present = rng.random((n, n)) < cfg.cross_density
    sign = rng.choice(np.array([-1.0, 1.0]), size=(n, n))
    w = present * sign * rng.uniform(0.5, 1.0, size=(n, n)) * cfg.cross_strength
    np.fill_diagonal(w, cfg.self_coupling)
    decay = np.exp(-np.arange(cfg.coupling_lags) / cfg.coupling_timescale)
    return w[:, :, None] * decay


def _nonstationary(cfg: PopulationConfig) -> np.ndarray | float:
    """The silent units' lowered baselines and the slow drift, ``[bins, neurons]`` (0 when
    both knobs are 0), from a generator of their own."""
    if not (cfg.silent_fraction or cfg.drift):
        return 0.0
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1]))
    n = cfg.n_neurons
    offset = np.zeros((cfg.bins, n))
    silent = rng.permutation(n)[:round(cfg.silent_fraction * n)]
    offset[:, silent] -= cfg.silent_depth
    ramp = np.linspace(-0.5, 0.5, cfg.bins)[:, None] if cfg.bins > 1 else np.zeros((1, 1))
    return offset + cfg.drift * ramp * rng.standard_normal(n)


def simulate_population(cfg: PopulationConfig | None = None) -> Recording:
    """Draw a :class:`Recording` from the coupled Poisson GLM described in the module docstring.

    Deterministic for ``cfg.seed`` (one ``np.random.default_rng(seed)``, fixed draw order:
    baselines, loadings, latents, coupling, then the counts bin by bin). ``rates`` holds the
    exact intensities the counts were drawn from; ``meta`` holds the config and the true
    parameters (``baselines`` [N], ``loadings`` [N, K], ``latents`` [bins, K],
    ``latent_periods`` [K] (bins), ``coupling`` [N, N, L] with ``coupling[n, m, lag - 1] =
    h[n, m, lag]``).
    """
    cfg = cfg or PopulationConfig()
    rng = np.random.default_rng(cfg.seed)
    n, k, lags = cfg.n_neurons, cfg.n_latents, cfg.coupling_lags
    baselines = rng.uniform(*cfg.baseline_range, size=n)
    loadings = rng.standard_normal((n, k)) * cfg.latent_gain / np.sqrt(max(k, 1))
    latents, periods = _latents(cfg, rng)
    coupling = _coupling(cfg, rng)
    drive = baselines + latents @ loadings.T + _nonstationary(cfg)
    # history[j] holds y(t - 1 - j); flattened lag-major it meets kernel[:, j * n + m].
    kernel = coupling.transpose(0, 2, 1).reshape(n, lags * n)
    history = np.zeros((lags, n))
    counts = np.empty((cfg.bins, n), dtype=np.int64)
    rates = np.empty((cfg.bins, n))
    for t in range(cfg.bins):
        rate = softplus(drive[t] + kernel @ history.ravel())
        y = rng.poisson(rate)
        rates[t], counts[t] = rate, y
        history[1:] = history[:-1]
        history[0] = y
    meta = {"source": "simulate_population", "config": asdict(cfg), "baselines": baselines,
            "loadings": loadings, "latents": latents, "latent_periods": periods,
            "coupling": coupling}
    return Recording(counts, rates, cfg.bin_width, meta)


def split_by_time(rec: Recording, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
                  ) -> tuple[Recording, Recording, Recording]:
    """Cut ``rec`` into three contiguous blocks in time (train, valid, test), no shuffling.

    Block sizes are ``round(f_0 * bins)``, ``round(f_1 * bins)`` and the rest; each block's
    ``meta`` gains ``split`` (its name) and ``bins`` (``(start, stop)`` in the parent).
    """
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise EstError(f"split_by_time: fractions must be three positive numbers summing to 1, "
                       f"got {fractions}")
    n_train = round(fractions[0] * rec.n_bins)
    n_valid = round(fractions[1] * rec.n_bins)
    edges = [0, n_train, n_train + n_valid, rec.n_bins]
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise EstError(f"split_by_time: {rec.n_bins} bins are too few for fractions {fractions}: "
                       "a block would be empty")
    parts = []
    for name, start, stop in zip(SPLIT_NAMES, edges, edges[1:], strict=False):
        rates = None if rec.rates is None else rec.rates[start:stop].copy()
        parts.append(Recording(rec.counts[start:stop].copy(), rates, rec.bin_width,
                               {**rec.meta, "split": name, "bins": (start, stop)}))
    return parts[0], parts[1], parts[2]


# --- loaders -----------------------------------------------------------------------------------

_COUNTS_FORMAT = ("expected a .npy file holding a [bins, neurons] array of spike counts, or a "
                  ".npz file with key 'counts' (and optionally 'rates' and a scalar 'bin_width')")
_TIMES_FORMAT = ("expected a .npz file with 1-D arrays 'times' (seconds) and 'units' (integer "
                 "neuron index), or a .npy array of shape [n_spikes, 2] holding (time, unit) rows")
_MAGIC = (b"\x93NUMPY", b"PK\x03\x04")  # .npy header, zip archive (.npz)


def _load(path: Path, expected: str) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a .npy file or every array of a .npz archive (told apart by their first
    bytes, not by the suffix), read with ``allow_pickle=False``; every failure is an EstError."""
    if not path.exists():
        raise EstError(f"{path}: no such file; {expected}. Check the path.")
    try:
        with open(path, "rb") as file:
            head = file.read(6)
    except OSError as exc:
        raise EstError(f"{path}: could not read the file ({exc.strerror}); {expected}.") from exc
    if not head.startswith(_MAGIC):
        raise EstError(f"{path}: not a NumPy .npy or .npz file; {expected}. Save your data with "
                       "numpy.save or numpy.savez.")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except ValueError as exc:
        if "pickle" not in str(exc):
            raise EstError(f"{path}: could not read the file ({exc}); {expected}.") from exc
        raise EstError(f"{path}: holds Python objects (pickled data), which est never loads; "
                       f"{expected}. Re-save plain numeric arrays with numpy.save / numpy.savez.") \
            from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise EstError(f"{path}: could not read the file ({exc}); it looks damaged or "
                       f"truncated; {expected}.") from exc


def _keys(arrays: dict[str, np.ndarray], required: tuple[str, ...], path: Path,
          expected: str) -> None:
    missing = [key for key in required if key not in arrays]
    if missing:
        raise EstError(f"{path}: missing key(s) {missing} (found {sorted(arrays)}); {expected}.")


def _numeric(arr: np.ndarray, what: str, path: Path) -> np.ndarray:
    """``arr`` as float64, rejecting non-numeric dtypes and NaN or infinite values."""
    if arr.dtype.kind not in "biuf":
        raise EstError(f"{path}: {what} has dtype {arr.dtype}; expected numbers.")
    values = arr.astype(np.float64)
    if np.isnan(values).any():
        where = np.argwhere(np.isnan(values))[0].tolist()
        raise EstError(f"{path}: {what} contains NaN at index {where}; remove or fill the "
                       "missing values first.")
    if np.isinf(values).any():
        raise EstError(f"{path}: {what} contains infinite values; expected finite numbers.")
    return values


MAX_COUNT = 1_000_000
"""The most spikes a neuron may have in one bin of a recording (more is not a count)."""
MAX_CELLS = 200_000_000
"""The most bins x neurons a recording may bin spike times into (1.6 GB of counts)."""


def _counts(arr: np.ndarray, path: Path) -> np.ndarray:
    """Validate spike counts ``[bins, neurons]`` and return them as int64."""
    if arr.ndim != 2:
        hint = " (for a single neuron use shape [bins, 1])" if arr.ndim == 1 else ""
        raise EstError(f"{path}: counts have shape {arr.shape} (ndim {arr.ndim}); expected a "
                       f"2-D array [bins, neurons]{hint}.")
    if 0 in arr.shape:
        raise EstError(f"{path}: counts are empty (shape {arr.shape}: {arr.shape[0]} bins, "
                       f"{arr.shape[1]} neurons); expected at least one bin and one neuron.")
    values = _numeric(arr, "counts", path)
    if (values > MAX_COUNT).any():
        bad = np.argwhere(values > MAX_COUNT)[0]
        raise EstError(f"{path}: counts reach {values[tuple(bad)]:g} at [bin, neuron] = "
                       f"{bad.tolist()}; expected spike counts per bin (at most {MAX_COUNT:,}), "
                       f"not times or sample indices.")
    if (values < 0).any():
        bad = np.argwhere(values < 0)[0]
        raise EstError(f"{path}: counts are negative at [bin, neuron] = {bad.tolist()} "
                       f"(value {values[tuple(bad)]}); spike counts must be >= 0.")
    if (values != np.round(values)).any():
        bad = np.argwhere(values != np.round(values))[0]
        raise EstError(f"{path}: counts are not whole numbers at [bin, neuron] = {bad.tolist()} "
                       f"(value {values[tuple(bad)]}); expected integer spike counts, not rates "
                       "or smoothed signals.")
    return values.astype(np.int64)


def _check_bin_width(bin_width: float, path: Path) -> float:
    if not (np.isfinite(bin_width) and bin_width > 0):
        raise EstError(f"{path}: bin_width is {bin_width}; expected a positive number of seconds "
                       "per bin.")
    return bin_width


def load_counts(path: str | Path) -> Recording:
    """Load spike counts ``[bins, neurons]`` from a ``.npy`` array or a ``.npz`` archive
    (recognised by content, whatever the suffix).

    The ``.npz`` form has key ``counts`` and optionally ``rates`` (true intensities, float,
    same shape, > 0) and ``bin_width`` (a scalar, seconds, > 0). Counts may be stored as any
    integer, boolean or float dtype holding whole numbers; they are returned as int64.
    """
    path = Path(path)
    loaded = _load(path, _COUNTS_FORMAT)
    arrays = {"counts": loaded} if isinstance(loaded, np.ndarray) else loaded
    _keys(arrays, ("counts",), path, _COUNTS_FORMAT)
    counts = _counts(arrays["counts"], path)
    rates = None
    if "rates" in arrays:
        rates = _numeric(arrays["rates"], "rates", path)
        if rates.shape != counts.shape:
            raise EstError(f"{path}: rates have shape {rates.shape} but counts have shape "
                           f"{counts.shape}; expected the same [bins, neurons] shape.")
        if (rates <= 0).any():
            raise EstError(f"{path}: rates must be > 0 (expected spikes per bin); found "
                           f"{int((rates <= 0).sum())} values <= 0.")
    bin_width = None
    if "bin_width" in arrays:
        bw = arrays["bin_width"]
        if bw.shape != ():
            raise EstError(f"{path}: bin_width has shape {bw.shape}; expected a scalar "
                           "(seconds per bin).")
        bin_width = _check_bin_width(float(_numeric(bw, "bin_width", path)), path)
    return Recording(counts, rates, bin_width, {"source": str(path), "format": "counts"})


def _bin_spikes(times: np.ndarray, units: np.ndarray, n_neurons: int, bin_width: float,
                duration: float | None, path: Path) -> np.ndarray:
    """Counts ``[bins, n_neurons]`` of spikes at ``times`` (seconds, >= 0) of ``units``
    (0..n_neurons-1): bin ``floor(s / bin_width + 1e-9)``; ``duration`` (seconds) or just past
    the last spike."""
    index = np.floor(times / bin_width + 1e-9).astype(np.int64)
    if duration is None:
        n_bins = int(index.max()) + 1 if index.size else 0
    else:
        n_bins = int(np.ceil(duration / bin_width - 1e-9))
        if index.size and index.max() >= n_bins:
            raise EstError(f"{path}: a spike at {times.max()} s lies past duration={duration} s "
                           f"({n_bins} bins of {bin_width} s); pass a longer duration.")
    if n_bins * n_neurons > MAX_CELLS:
        raise EstError(f"{path}: {n_bins:,} bins of {bin_width} s x {n_neurons} neurons is over "
                       f"{MAX_CELLS:,} counts; check bin_width (seconds per bin, such as 0.01 "
                       f"for 10 ms) and that the spike times are in seconds.")
    if n_bins <= 0 or n_neurons <= 0:
        raise EstError(f"{path}: nothing to bin ({times.size} spikes, {n_neurons} neurons, "
                       f"{n_bins} bins); expected at least one neuron and one bin. Pass "
                       "n_neurons and duration for a recording without spikes.")
    counts = np.bincount(index * n_neurons + units, minlength=n_bins * n_neurons)
    return counts.reshape(n_bins, n_neurons).astype(np.int64)


def load_spike_times(path: str | Path, bin_width: float, n_neurons: int | None = None,
                     duration: float | None = None) -> Recording:
    """Load spike times and bin them into counts ``[bins, neurons]``.

    The file is a ``.npz`` with 1-D arrays ``times`` (seconds, >= 0) and ``units`` (integer
    neuron index in ``0..n_neurons-1``), or a ``.npy`` array ``[n_spikes, 2]`` of (time, unit)
    rows. A spike at time ``s`` falls in bin ``floor(s / bin_width + 1e-9)`` (bins are
    ``[t * bin_width, (t + 1) * bin_width)``; the 1e-9 bins of slack keeps spikes stored at a
    bin edge such as 0.03 s with 0.01 s bins in the bin that starts there). ``n_neurons``
    defaults to ``max(units) + 1``; ``duration`` (seconds) defaults to just past the last spike,
    giving ``ceil(duration / bin_width)`` bins.
    """
    path = Path(path)
    bin_width = _check_bin_width(float(bin_width), path)
    loaded = _load(path, _TIMES_FORMAT)
    if isinstance(loaded, np.ndarray):
        if loaded.ndim != 2 or loaded.shape[1] != 2:
            raise EstError(f"{path}: array has shape {loaded.shape}; {_TIMES_FORMAT}.")
        times, units = loaded[:, 0], loaded[:, 1]
    else:
        _keys(loaded, ("times", "units"), path, _TIMES_FORMAT)
        times, units = loaded["times"], loaded["units"]
        if times.ndim != 1 or units.shape != times.shape:
            raise EstError(f"{path}: 'times' has shape {times.shape} and 'units' has shape "
                           f"{units.shape}; expected two 1-D arrays of the same length.")
    times = _numeric(times, "times", path)
    units_f = _numeric(units, "units", path)
    if (units_f != np.round(units_f)).any():
        raise EstError(f"{path}: units must be whole numbers (neuron indices); found "
                       f"{units_f[units_f != np.round(units_f)][0]}.")
    units = units_f.astype(np.int64)
    if (times < 0).any():
        raise EstError(f"{path}: spike times must be >= 0 seconds; found {times.min()}.")
    if n_neurons is None:
        n_neurons = int(units.max()) + 1 if units.size else 0
    if units.size and (units.min() < 0 or units.max() >= n_neurons):
        bad = units[(units < 0) | (units >= n_neurons)][0]
        raise EstError(f"{path}: unit index {bad} is out of range; expected 0..{n_neurons - 1} "
                       f"for n_neurons={n_neurons}. Pass a larger n_neurons or fix the units.")
    counts = _bin_spikes(times, units, n_neurons, bin_width, duration, path)
    return Recording(counts, None, bin_width,
                     {"source": str(path), "format": "spike_times"})


_NWB_FORMAT = ("expected an NWB 2 file (HDF5) whose Units table holds each unit's spike_times, "
               "as pynwb writes it (nwbfile.add_unit(spike_times=...))")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
"""The first bytes of an HDF5 file (NWB 2, NIR)."""


def load_nwb(path: str | Path, bin_width: float, units: list[int] | None = None) -> Recording:
    """Load the spike times of an NWB file's Units table (through pynwb, which reads HDF5 and
    never unpickles) and bin them into counts ``[bins, neurons]`` as :func:`load_spike_times`
    does: bins of ``bin_width`` seconds from the session's time 0 to just past the last spike.

    ``units``: the ids (the Units table's ``id`` column) to keep, in that order; default every
    unit in table order. A unit without spikes is kept as a silent neuron. ``meta['units']``
    holds the ids of the columns.
    """
    import warnings

    path = Path(path)
    bin_width = _check_bin_width(float(bin_width), path)
    if not path.exists():
        raise EstError(f"{path}: no such file; {_NWB_FORMAT}. Check the path.")
    with open(path, "rb") as file:
        if file.read(8) != HDF5_MAGIC:
            raise EstError(f"{path}: not an HDF5 file, so not NWB 2; {_NWB_FORMAT}.")
    from pynwb import NWBHDF5IO

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pynwb warns about cached namespaces it loads
            with NWBHDF5IO(str(path), "r") as io:
                nwb = io.read()
                table = nwb.units
                if table is None:
                    raise EstError(f"{path}: the NWB file has no Units table (nwbfile.units); "
                                   f"{_NWB_FORMAT}.")
                if "spike_times" not in table.colnames:
                    raise EstError(f"{path}: the Units table has no spike_times column "
                                   f"(columns: {list(table.colnames)}); {_NWB_FORMAT}.")
                ids = np.asarray(table.id[:], np.int64)
                column = table["spike_times"]
                flat = np.asarray(column.target.data[:])
                ends = np.asarray(column.data[:], np.int64)
    except EstError:
        raise
    except Exception as exc:  # h5py, hdmf and pynwb raise many kinds on a damaged file
        raise EstError(f"{path}: could not read the NWB file ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}); {_NWB_FORMAT}.") \
            from exc
    if units is None:
        keep = list(range(len(ids)))
    else:
        where = {int(u): k for k, u in enumerate(ids)}
        missing = [u for u in units if u not in where]
        if missing:
            raise EstError(f"{path}: unit id(s) {missing} are not in the Units table (its ids: "
                           f"{ids[:20].tolist()}{' ...' if len(ids) > 20 else ''}); fix "
                           f"data.units.")
        keep = [where[u] for u in units]
    if not keep:
        raise EstError(f"{path}: the Units table has no units; {_NWB_FORMAT}.")
    starts = np.concatenate([[0], ends[:-1]])
    times = [flat[starts[k]:ends[k]] for k in keep]
    neuron = np.concatenate([np.full(len(t), n, np.int64) for n, t in enumerate(times)])
    times = _numeric(np.concatenate(times) if times else np.zeros(0), "spike_times", path)
    if (times < 0).any():
        raise EstError(f"{path}: spike times must be >= 0 seconds from the session start; "
                       f"found {times.min()}.")
    counts = _bin_spikes(times, neuron, len(keep), bin_width, None, path)
    return Recording(counts, None, bin_width, {"source": str(path), "format": "nwb",
                                               "units": [int(ids[k]) for k in keep]})
