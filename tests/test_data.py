"""The synthetic population, the time split and the loaders for a user's own data."""

from dataclasses import replace

import numpy as np
import pytest

from est import EstError
from est.sw.data import (
    PopulationConfig,
    Recording,
    load_counts,
    load_nwb,
    load_spike_times,
    simulate_population,
    softplus,
    split_by_time,
)
from netgen import write_nwb

SMALL = PopulationConfig(n_neurons=6, bins=1500)


@pytest.fixture(scope="module")
def population() -> Recording:
    return simulate_population(PopulationConfig())


def test_simulation_is_deterministic_for_a_seed_and_differs_across_seeds():
    a, b = simulate_population(SMALL), simulate_population(SMALL)
    assert np.array_equal(a.counts, b.counts) and np.array_equal(a.rates, b.rates)
    assert np.array_equal(a.meta["latents"], b.meta["latents"])
    c = simulate_population(PopulationConfig(n_neurons=6, bins=1500, seed=1))
    assert not np.array_equal(a.counts, c.counts)
    assert not np.allclose(a.rates, c.rates)


def test_default_population_shapes_and_dtypes(population):
    assert population.counts.shape == population.rates.shape == (24000, 24)
    assert population.counts.dtype == np.int64 and population.rates.dtype == np.float64
    assert population.counts.min() >= 0 and population.rates.min() > 0
    assert population.bin_width == 0.01
    assert population.meta["latents"].shape == (24000, 3)
    assert population.meta["coupling"].shape == (24, 24, 5)


def test_mean_rates_are_in_the_intended_range(population):
    per_neuron = population.counts.mean(axis=0)
    assert 0.05 <= per_neuron.mean() <= 0.3
    assert per_neuron.min() >= 0.03 and per_neuron.max() <= 0.35
    twos = np.mean(population.counts >= 2)
    assert 0.001 < twos < 0.05


def test_rates_are_the_intensities_the_counts_were_drawn_from(population):
    meta, y = population.meta, population.counts
    pre = meta["baselines"] + meta["latents"] @ meta["loadings"].T
    for lag in range(1, meta["coupling"].shape[2] + 1):
        pre[lag:] += y[:-lag] @ meta["coupling"][:, :, lag - 1].T
    assert np.allclose(population.rates, softplus(pre), rtol=1e-12, atol=0)
    # counts scatter around the rates as Poisson draws: total deviation within 4 s.d.
    z = (y.sum() - population.rates.sum()) / np.sqrt(population.rates.sum())
    assert abs(z) < 4


def test_coupling_has_refractory_self_terms_and_sparse_signed_cross_terms(population):
    h = population.meta["coupling"][:, :, 0]
    assert (np.diag(h) < 0).all()
    cross = h[~np.eye(24, dtype=bool)]
    assert 0.03 < np.mean(cross != 0) < 0.2
    assert (cross > 0).any() and (cross < 0).any()


def test_refractoriness_is_visible_in_the_counts(population):
    fired = population.counts > 0
    after_spike = (fired[1:] & fired[:-1]).sum(axis=0) / fired[:-1].sum(axis=0)
    marginal = fired.mean(axis=0)
    assert after_spike.mean() < 0.5 * marginal.mean()


def test_bad_config_is_rejected():
    with pytest.raises(EstError, match="self_coupling"):
        PopulationConfig(self_coupling=1.0)
    with pytest.raises(EstError, match="cross_density"):
        PopulationConfig(cross_density=1.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_neurons": 0}, "PopulationConfig.n_neurons must be at least 1, got 0"),
    ({"seed": -1}, "PopulationConfig.seed must be at least 0, got -1"),
    ({"bins": 2.5}, "PopulationConfig.bins must be a whole number, got 2.5"),
    ({"baseline_range": (1.0,)}, "PopulationConfig.baseline_range must be [low, high], got [1.0]"),
    ({"latent_noise": float("nan")}, "PopulationConfig.latent_noise must be a finite number, "
                                     "got nan"),
    ({"bin_width": 0.0}, "PopulationConfig.bin_width must be > 0, got 0.0"),
    ({"silent_fraction": 1.5}, "PopulationConfig.silent_fraction must be in [0, 1], got 1.5"),
    ({"drift": -1.0}, "PopulationConfig.drift must be >= 0, got -1.0"),
])
def test_bad_config_names_the_field_and_the_value(kwargs, message):
    with pytest.raises(EstError) as info:
        PopulationConfig(**kwargs)
    assert str(info.value) == message
    PopulationConfig(bin_width=None)  # unknown bin width is allowed


def test_silent_units_and_drift_leave_the_rest_of_the_population_as_it_was():
    base = PopulationConfig(n_neurons=8, bins=3000, seed=4)
    plain = simulate_population(base)
    hard = simulate_population(replace(base, silent_fraction=0.25, drift=3.0))
    assert np.array_equal(plain.meta["latents"], hard.meta["latents"])  # same draws
    assert np.array_equal(plain.meta["coupling"], hard.meta["coupling"])
    # two of eight units silenced by 8 below their baseline: a few spikes at most
    quiet = np.flatnonzero(hard.rates.mean(axis=0) < 1e-2)
    assert len(quiet) == 2 and hard.counts[:, quiet].sum() <= 3
    assert plain.rates[:, quiet].mean() > 0.03
    # the drift: first and last fifth of the recording differ in rate, per neuron
    first, last = hard.rates[:600].mean(axis=0), hard.rates[-600:].mean(axis=0)
    loud = np.setdiff1d(np.arange(8), quiet)
    assert np.abs(np.log(last[loud] / first[loud])).mean() > 0.5
    drift_only = simulate_population(replace(base, drift=3.0))
    assert not np.array_equal(drift_only.counts, plain.counts)
    assert simulate_population(replace(base, silent_fraction=0.0, drift=0.0)).counts.tolist() \
        == plain.counts.tolist()


def test_split_sizes_and_contiguity(population):
    train, valid, test = split_by_time(population)
    assert (train.n_bins, valid.n_bins, test.n_bins) == (16800, 3600, 3600)
    assert np.array_equal(np.concatenate([train.counts, valid.counts, test.counts]),
                          population.counts)
    assert np.array_equal(test.rates, population.rates[20400:])
    assert [p.meta["split"] for p in (train, valid, test)] == ["train", "valid", "test"]
    assert [p.meta["bins"] for p in (train, valid, test)] == [(0, 16800), (16800, 20400),
                                                              (20400, 24000)]
    a, b, c = split_by_time(Recording(np.arange(20, dtype=np.int64).reshape(10, 2)),
                            (0.5, 0.3, 0.2))
    assert a.counts[:, 0].tolist() == [0, 2, 4, 6, 8] and c.counts[:, 0].tolist() == [16, 18]
    assert b.rates is None
    with pytest.raises(EstError, match="summing to 1"):
        split_by_time(population, (0.5, 0.2, 0.2))
    with pytest.raises(EstError, match="empty"):
        split_by_time(Recording(np.zeros((2, 1), dtype=np.int64)))


# --- loaders -----------------------------------------------------------------------------------

def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(EstError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_load_counts_round_trips_npy_and_npz(tmp_path):
    counts = np.array([[0, 1, 2], [1, 0, 0], [3, 0, 1], [0, 0, 0]])
    np.save(tmp_path / "c.npy", counts.astype(np.int16))
    rec = load_counts(tmp_path / "c.npy")
    assert rec.counts.dtype == np.int64 and np.array_equal(rec.counts, counts)
    assert rec.rates is None and rec.bin_width is None
    assert rec.meta["source"] == str(tmp_path / "c.npy")

    rates = np.full(counts.shape, 0.5)
    np.savez(tmp_path / "c.npz", counts=counts.astype(np.float32), rates=rates, bin_width=0.02)
    rec = load_counts(str(tmp_path / "c.npz"))
    assert np.array_equal(rec.counts, counts) and rec.counts.dtype == np.int64
    assert np.array_equal(rec.rates, rates) and rec.bin_width == 0.02

    (tmp_path / "c.npz").rename(tmp_path / "misnamed.npy")  # recognised by content
    assert np.array_equal(load_counts(tmp_path / "misnamed.npy").rates, rates)

    np.save(tmp_path / "b.npy", counts > 0)
    assert load_counts(tmp_path / "b.npy").counts.tolist() == (counts > 0).astype(int).tolist()


@pytest.mark.parametrize("name, content, problem", [
    ("one_d.npy", np.array([0, 1, 0]), "ndim 1"),
    ("three_d.npy", np.zeros((2, 3, 4), dtype=int), "ndim 3"),
    ("negative.npy", np.array([[0, 1], [-1, 0]]), "negative"),
    ("fraction.npy", np.array([[0.0, 0.5], [1.0, 0.0]]), "not whole numbers"),
    ("nan.npy", np.array([[0.0, np.nan], [1.0, 0.0]]), "NaN"),
    ("no_bins.npy", np.zeros((0, 4), dtype=int), "empty"),
    ("no_neurons.npy", np.zeros((4, 0), dtype=int), "empty"),
    ("text.npy", np.array([["a", "b"]]), "expected numbers"),
    ("huge.npy", np.full((4, 2), 1e20), "counts reach 1e+20 at [bin, neuron] = [0, 0]; expected "
     "spike counts per bin (at most 1,000,000), not times or sample indices."),
])
def test_load_counts_rejects_bad_arrays(tmp_path, name, content, problem):
    path = tmp_path / name
    np.save(path, content)
    message = _error(load_counts, path)
    assert str(path) in message and problem in message


@pytest.mark.parametrize("arrays, problem", [
    ({"spikes": np.zeros((3, 2), dtype=int)}, "missing key"),
    ({"counts": np.zeros((3, 2), dtype=int), "bin_width": 0.0}, "bin_width is 0.0"),
    ({"counts": np.zeros((3, 2), dtype=int), "bin_width": -0.01}, "positive number of seconds"),
    ({"counts": np.zeros((3, 2), dtype=int), "bin_width": [0.1, 0.2]}, "expected a scalar"),
    ({"counts": np.zeros((3, 2), dtype=int), "rates": np.ones((2, 3))}, "rates have shape"),
    ({"counts": np.zeros((3, 2), dtype=int), "rates": np.zeros((3, 2))}, "rates must be > 0"),
])
def test_load_counts_rejects_bad_npz(tmp_path, arrays, problem):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    message = _error(load_counts, path)
    assert str(path) in message and problem in message


def test_load_counts_rejects_missing_unreadable_and_unsupported_files(tmp_path):
    missing = tmp_path / "nowhere.npy"
    message = _error(load_counts, missing)
    assert str(missing) in message and "no such file" in message

    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"this is not numpy")
    message = _error(load_counts, garbage)
    assert str(garbage) in message and "not a NumPy .npy or .npz file" in message

    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    message = _error(load_counts, pickled)
    assert str(pickled) in message and "Python objects" in message

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 truncated")
    message = _error(load_counts, broken)
    assert str(broken) in message and "damaged or truncated" in message

    pickled_npz = tmp_path / "objects.npz"
    np.savez(pickled_npz, counts=np.array([[1]], dtype=object))
    message = _error(load_counts, pickled_npz)
    assert str(pickled_npz) in message and "Python objects" in message

    csv = tmp_path / "counts.csv"
    csv.write_text("0,1\n1,0\n")
    message = _error(load_counts, csv)
    assert str(csv) in message and "not a NumPy .npy or .npz file" in message

    folder = tmp_path / "folder.npy"
    folder.mkdir()
    message = _error(load_counts, folder)
    assert str(folder) in message and "could not read" in message


def test_spike_times_are_binned(tmp_path):
    # bin 0: unit 0 twice; bin 2: unit 0; bin 3: unit 1 twice (0.03 sits on a bin edge); bin 4:
    # unit 2
    times = np.array([0.0, 0.005, 0.03, 0.031, 0.049, 0.02])
    units = np.array([0, 0, 1, 1, 2, 0])
    expected = [[2, 0, 0], [0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 1]]
    np.savez(tmp_path / "spikes.npz", times=times, units=units)
    rec = load_spike_times(tmp_path / "spikes.npz", bin_width=0.01)
    assert rec.counts.tolist() == expected
    assert rec.counts.dtype == np.int64 and rec.bin_width == 0.01 and rec.rates is None

    np.save(tmp_path / "spikes.npy", np.stack([times, units], axis=1))
    padded = load_spike_times(tmp_path / "spikes.npy", 0.01, n_neurons=4, duration=0.1)
    assert padded.counts.shape == (10, 4)
    assert padded.counts[:5, :3].tolist() == expected and padded.counts[5:].sum() == 0
    assert padded.counts[:, 3].sum() == 0


def test_spike_times_errors_name_the_file_and_the_problem(tmp_path):
    path = tmp_path / "spikes.npz"
    np.savez(path, times=np.array([0.0, 0.01]), units=np.array([0, 3]))
    for kwargs, problem in [({"bin_width": 0.0}, "bin_width is 0.0"),
                            ({"bin_width": -1.0}, "bin_width is -1.0"),
                            ({"bin_width": 0.01, "n_neurons": 3}, "unit index 3 is out of range"),
                            ({"bin_width": 0.01, "duration": 0.01}, "past duration"),
                            ({"bin_width": 1e-10},
                             "100,000,001 bins of 1e-10 s x 4 neurons is over 200,000,000 "
                             "counts; check bin_width (seconds per bin, such as 0.01 for 10 "
                             "ms) and that the spike times are in seconds.")]:
        message = _error(load_spike_times, path, **kwargs)
        assert str(path) in message and problem in message

    cases = {
        "negative_unit.npz": ({"times": np.array([0.0]), "units": np.array([-1])},
                              "unit index -1 is out of range"),
        "nan_time.npz": ({"times": np.array([np.nan]), "units": np.array([0])}, "NaN"),
        "fraction_unit.npz": ({"times": np.array([0.0]), "units": np.array([0.5])},
                              "whole numbers"),
        "lengths.npz": ({"times": np.array([0.0, 1.0]), "units": np.array([0])},
                        "same length"),
        "no_units.npz": ({"times": np.array([0.0])}, "missing key"),
        "empty.npz": ({"times": np.zeros(0), "units": np.zeros(0, dtype=int)},
                      "nothing to bin"),
    }
    for name, (arrays, problem) in cases.items():
        np.savez(tmp_path / name, **arrays)
        message = _error(load_spike_times, tmp_path / name, 0.01)
        assert str(tmp_path / name) in message and problem in message

    table = tmp_path / "table.npy"
    np.save(table, np.zeros((4, 3)))
    message = _error(load_spike_times, table, 0.01)
    assert str(table) in message and "[n_spikes, 2]" in message
    missing = tmp_path / "missing.npz"
    message = _error(load_spike_times, missing, 0.01)
    assert str(missing) in message and "no such file" in message


def test_spike_times_without_spikes_need_a_size(tmp_path):
    path = tmp_path / "silent.npz"
    np.savez(path, times=np.zeros(0), units=np.zeros(0, dtype=int))
    rec = load_spike_times(path, 0.01, n_neurons=2, duration=0.05)
    assert rec.counts.shape == (5, 2) and rec.counts.sum() == 0


def test_an_nwb_units_table_is_binned_like_spike_times(tmp_path):
    """pynwb writes a Units table; load_nwb bins it as load_spike_times bins the same spikes,
    keeps a silent unit as a zero column, and selects and orders units by id."""
    rng = np.random.default_rng(0)
    spikes = {11: np.sort(rng.uniform(0, 3, 40)), 4: np.sort(rng.uniform(0, 3, 25)), 8: [],
              2: [0.03, 0.0299999, 2.995]}
    write_nwb(tmp_path / "s.nwb", spikes)
    rec = load_nwb(tmp_path / "s.nwb", 0.01)
    times = np.concatenate([np.asarray(t, float) for t in spikes.values()])
    units = np.concatenate([np.full(len(t), k) for k, t in enumerate(spikes.values())])
    np.savez(tmp_path / "s.npz", times=times, units=units)
    same = load_spike_times(tmp_path / "s.npz", 0.01, n_neurons=4)
    np.testing.assert_array_equal(rec.counts, same.counts)
    assert rec.meta["units"] == [11, 4, 8, 2] and rec.bin_width == 0.01
    assert rec.counts[:, 2].sum() == 0 and rec.counts[:, 0].sum() == 40
    assert rec.counts[3, 3] == 1 and rec.counts[2, 3] == 1  # 0.03 s opens bin 3
    picked = load_nwb(tmp_path / "s.nwb", 0.01, units=[2, 11])
    np.testing.assert_array_equal(picked.counts, rec.counts[:, [3, 0]])
    assert picked.meta["units"] == [2, 11]


def test_nwb_errors_name_the_file_and_the_problem(tmp_path):
    write_nwb(tmp_path / "none.nwb", None)
    (tmp_path / "text.nwb").write_text("x")
    write_nwb(tmp_path / "u.nwb", {1: [0.5]})
    cases = [(tmp_path / "missing.nwb", {}, "no such file"),
             (tmp_path / "text.nwb", {}, "not an HDF5 file, so not NWB 2"),
             (tmp_path / "none.nwb", {}, "has no Units table"),
             (tmp_path / "u.nwb", {"units": [1, 5]}, r"unit id\(s\) \[5\] are not in the "
                                                     r"Units table \(its ids: \[1\]\)")]
    for path, kwargs, message in cases:
        with pytest.raises(EstError, match=message):
            load_nwb(path, 0.01, **kwargs)
    with pytest.raises(EstError, match="bin_width is 0.0"):
        load_nwb(tmp_path / "u.nwb", 0)
