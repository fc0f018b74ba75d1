"""The randomized regression harness: zero mismatches on both simulators (with stalls), cases
that replay from their seed, and a deliberate fault shrunk and written as a reproducer."""

import json

import numpy as np

from est.sim import regress
from est.sim.trace import Trace


def test_cases_replay_from_their_seed():
    a, b = regress.random_case(5, 17), regress.random_case(5, 17)
    assert a.describe() == b.describe() and np.array_equal(a.stimulus, b.stimulus)
    for la, lb in zip(a.net.layers, b.net.layers, strict=True):
        assert np.array_equal(la.weight, lb.weight) and la.v_bits == lb.v_bits
    assert regress.random_case(5, 18).describe() != a.describe()


def test_configs_cover_the_space():
    cases = [regress.random_case(0, i) for i in range(60)]
    layers = [layer for c in cases for layer in c.net.layers]
    assert {c.net.lanes for c in cases} == set(range(1, 9))
    assert {len(c.net.layers) for c in cases} == {1, 2, 3, 4}
    assert {getattr(layer, "reset", None) for layer in layers} >= {"subtract", "zero"}
    assert None in {layer.leak_shift for layer in layers}
    assert {layer.weight_bits for layer in layers} == set(range(2, 9))
    assert sum(c.stall_seed is not None for c in cases) > 15


def test_regression_on_verilator_and_icarus_with_stalls(tmp_path):
    code = regress.main(["--seed", "1", "--count", "3", "--sim", "verilator", "--sim", "icarus",
                         "--stalls", "always", "--out", str(tmp_path), "-q"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0 and summary["mismatches"] == 0 and summary["failures"] == []
    assert summary["per_simulator"]["verilator"]["cases"] == 3
    assert summary["values_compared"] > 1000


def test_regression_on_amaranth(tmp_path):
    code = regress.main(["--seed", "2", "--count", "12", "--sim", "amaranth",
                         "--out", str(tmp_path), "-q"])
    assert code == 0
    assert json.loads((tmp_path / "summary.json").read_text())["mismatches"] == 0


def test_a_fault_is_shrunk_and_written_as_a_reproducer(tmp_path, monkeypatch):
    real = regress.simulate_rtl

    def faulty(build, case, simulator):
        trace, cycles = real(build, case, simulator)
        arrays = dict(trace.arrays)
        if len(case.stimulus) > 5:
            arrays["readout/v"] = arrays["readout/v"].copy()
            arrays["readout/v"][5, 0] ^= 1  # one bit, bin 5, channel 0
        return Trace(arrays, trace.meta), cycles

    monkeypatch.setattr(regress, "simulate_rtl", faulty)
    code = regress.main(["--seed", "0", "--case", "0", "--sim", "amaranth",
                         "--out", str(tmp_path), "-q"])
    assert code == 1
    repro_dir = tmp_path / "fail-amaranth-0-0"
    repro = json.loads((repro_dir / "repro.json").read_text())
    first = repro["first_divergence"]
    assert (first["tensor"], first["bin"], first["channel"]) == ("readout/v", 5, 0)
    assert abs(first["expected"] - first["actual"]) == 1
    assert repro["bins"] == 6 and np.load(repro_dir / "stimulus.npy").shape[0] == 6
    for f in ("ir.json", "weights.npz", "golden.npz", "top.v", "top.json", "rtl_amaranth.npz"):
        assert (repro_dir / f).is_file(), f
    assert "est-regress --seed 0 --case 0 --sim amaranth" in repro["replay"]


def test_case_that_found_the_icarus_clear_bug(tmp_path):
    """Seed 0 case 18 (18 neurons at 1 lane): the neuron arrays' clear phase read X on Icarus
    because its write data hung on an FSM state that Icarus never evaluated before it changed."""
    code = regress.main(["--seed", "0", "--case", "18", "--sim", "icarus", "--out",
                         str(tmp_path), "-q"])
    assert code == 0


def test_a_failed_simulation_is_a_failing_case_and_the_run_goes_on(tmp_path, monkeypatch):
    """Case 0's simulation fails outright while its stimulus has 3 bins or more: it is recorded
    with the reason, halved to the shortest stimulus that still fails, written as a
    reproducer, and case 1 still runs; summary.json is written and the exit status is 1."""
    real = regress.simulate_rtl

    def flaky(build, case, simulator):
        if case.index == 0 and len(case.stimulus) >= 3:
            raise regress.EstError("the amaranth simulation failed: o__valid undefined")
        return real(build, case, simulator)

    monkeypatch.setattr(regress, "simulate_rtl", flaky)
    code = regress.main(["--seed", "0", "--count", "2", "--sim", "amaranth", "--out",
                         str(tmp_path), "-q"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 1 and summary["simulation_errors"] == 1 and summary["mismatches"] == 0
    first, second = summary["runs"]
    assert "o__valid undefined" in first["simulation_error"] and first["reproducer"]
    assert second["simulation_error"] is None and second["values"] > 0
    repro = json.loads((tmp_path / "fail-amaranth-0-0" / "repro.json").read_text())
    assert "o__valid undefined" in repro["simulation_error"]
    assert 3 <= repro["bins"] < 6 and repro["first_divergence"] is None
