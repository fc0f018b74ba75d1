"""The randomized regression harness: zero mismatches on both simulators (with stalls), cases
that replay from their seed, and a deliberate fault shrunk and written as a reproducer."""

import dataclasses
import json

import numpy as np

from est.compiler.ops import LIF, SEW, Attention, Conv, Readout, Recurrence
from est.compiler.ops.conv import weight_bits
from est.sim import golden, regress
from est.sim.trace import Trace


def _params(node) -> dict:
    return {f.name: getattr(node.op, f.name) for f in dataclasses.fields(node.op)}


def test_cases_replay_from_their_seed():
    a, b = regress.random_case(5, 17), regress.random_case(5, 17)
    assert a.describe() == b.describe() and np.array_equal(a.stimulus, b.stimulus)
    assert (a.lanes, a.stall_seed) == (b.lanes, b.stall_seed)
    for na, nb in zip(a.graph.nodes, b.graph.nodes, strict=True):
        assert (na.name, na.op.KIND, na.inputs) == (nb.name, nb.op.KIND, nb.inputs)
        pa, pb = _params(na), _params(nb)
        assert pa.keys() == pb.keys()
        for key, value in pa.items():
            assert np.array_equal(value, pb[key]), f"{na.name}.{key}"
    assert regress.random_case(5, 18).describe() != a.describe()


def test_configs_cover_the_space():
    cases = [regress.random_case(0, i) for i in range(60)]
    ops = [n.op for c in cases for n in c.graph.nodes]
    neurons = [op for op in ops if isinstance(op, (LIF, Recurrence, Readout))]
    mlps = [c.graph for c in cases if c.graph.meta["shape"].startswith("mlp")]
    assert {c.lanes for c in cases} == set(range(1, 9))
    assert {sum(isinstance(n.op, (LIF, Readout)) for n in g.nodes) for g in mlps} == {1, 2, 3, 4}
    assert 0 < len(mlps) < len(cases)  # and EST-shaped graphs, with every operation kind:
    kinds = {k for c in cases for k in c.graph.kinds()}
    assert kinds >= {"input", "table", "concat", "conv", "lif", "mask", "attention", "sew",
                     "recurrence", "readout"}
    assert {op.mode for op in ops if isinstance(op, Attention)} == {"sdsa", "ssa"}
    assert {op.op for op in ops if isinstance(op, SEW)} == {"add", "and", "iand"}
    assert {getattr(op, "reset", None) for op in neurons} >= set(golden.RESET_MODES)
    assert any(getattr(op, "syn_bits", 0) for op in neurons)  # current-based arrays too
    assert None in {op.leak_shift for op in neurons}
    assert {weight_bits(op.weight) for op in ops if isinstance(op, Conv)} == set(range(2, 9))
    assert sum(c.stall_seed is not None for c in cases) > 15


def test_core_cases_add_slow_and_oscillator_readouts_to_the_same_draw():
    """On the core, EST-shaped cases also have slow and oscillator readouts, their outputs
    summed with the readout's; drawn from a stream of their own, so the rest of each case is
    the dataflow backend's (which drives one output and has no oscillators)."""
    core = [regress.random_case(0, i, backend="core") for i in range(60)]
    flow = [regress.random_case(0, i) for i in range(60)]
    extra = [[n for n in c.graph.nodes if n.name.startswith(("readout.slow", "readout.osc"))]
             for c in core]
    readouts = [n.op for nodes in extra for n in nodes if n.op.KIND == "readout"]
    assert {op.leak_shift for op in readouts if op.rotate_shift is None} >= {1, 7}
    oscillators = [op for op in readouts if op.rotate_shift is not None]
    assert {op.rotate_shift for op in oscillators} >= {0, 5} and len(oscillators) > 10
    assert sum(bool(nodes) for nodes in extra) > 15
    for c, f, nodes in zip(core, flow, extra, strict=True):
        assert len(f.graph.outputs) == 1 and np.array_equal(c.stimulus, f.stimulus)
        assert (c.lanes, c.stall_seed) == (f.lanes, f.stall_seed)
        assert [n.name for n in c.graph.nodes if n not in nodes] == [
            n.name for n in f.graph.nodes]
        assert c.graph.outputs == ("readout", *(n.name for n in nodes
                                                if n.op.KIND == "readout"))
        assert bool(nodes) == bool(c.graph.meta.get("sum_outputs"))


def test_rhythm_tables_are_drawn_into_the_readout_on_both_backends():
    """Half the EST-shaped cases read 1-2 rhythm tables in the readout's input: multi-bit
    values, advances from 1 to the largest a table allows, the readout's weights on them;
    the same tables on both backends."""
    core = [regress.random_case(0, i, backend="core") for i in range(60)]
    flow = [regress.random_case(0, i) for i in range(60)]
    tables = [[n for n in c.graph.nodes if n.name.startswith("rhythm")] for c in flow]
    assert sum(bool(t) for t in tables) > 10 and {len(t) for t in tables} == {0, 1, 2}
    ops = [n.op for t in tables for n in t]
    assert {op.advance for op in ops} >= {1} and max(op.table.max() for op in ops) == 15
    assert any(op.advance > 1 << 15 for op in ops) and any(op.advance < 1 << 15 for op in ops)
    for c, f, nodes in zip(core, flow, tables, strict=True):
        for n in nodes:
            assert n.name in c.graph.node("readout.in").inputs
            assert n.name in f.graph.node("readout.in").inputs
            assert np.array_equal(c.graph.node(n.name).op.table, n.op.table)


def test_regression_on_verilator_and_icarus_with_stalls(tmp_path):
    """Seed 104: two spiking MLPs and an EST-shaped graph (CPG table, SEW AND, TPU), small
    enough to keep the Verilator builds short."""
    code = regress.main(["--seed", "104", "--count", "3", "--sim", "verilator", "--sim", "icarus",
                         "--stalls", "always", "--out", str(tmp_path), "-q"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0 and summary["mismatches"] == 0 and summary["failures"] == []
    assert summary["per_simulator"]["verilator"]["cases"] == 3
    assert summary["values_compared"] > 1000


def test_regression_on_amaranth(tmp_path):
    """Seed 62: every operation kind, SDSA and SSA attention, in six small cases."""
    code = regress.main(["--seed", "62", "--count", "6", "--sim", "amaranth",
                         "--out", str(tmp_path), "-q"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0 and summary["mismatches"] == 0
    assert set(summary["coverage"]) >= {"input", "table", "concat", "conv", "lif", "mask",
                                        "attention", "sew", "recurrence", "readout", "maxpool"}


def test_regression_on_the_core(tmp_path):
    """Seed 0, cases 2, 5, 7 and 17 on the core's gateware (amaranth.sim, the core with its SSA,
    oscillator and phase units): an EST with a CPG table, SEW ADD, a TPU and a rhythm table of
    35 rows, one with SDSA attention, a mask and an oscillator readout, one with SSA attention
    of two blocks (heads of 16 channels), a slow readout, two oscillators and two rhythm
    tables, and one whose SSA heads have 6 channels (Q, K and V copied with the heads padded
    to 8), all bit-exact."""
    for case in (5, 7):
        assert "osc" in regress.random_case(0, case, backend="core").graph.meta["shape"]
    for case in (2, 7):
        assert "rhythms" in regress.random_case(0, case, backend="core").graph.meta["shape"]
    code = regress.main(["--seed", "0", "--case", "2", "--case", "5", "--case", "7", "--case",
                         "17", "--sim", "amaranth", "--backend", "core", "--out", str(tmp_path),
                         "-q"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0 and summary["backend"] == "core" and summary["failures"] == []
    assert summary["mismatches"] == 0 and summary["unsupported"] == 0
    runs = {r["case"]: r for r in summary["runs"]}
    assert all(runs[c]["values"] > 0 for c in (2, 5, 7, 17))
    assert summary["bins_compared"] == sum(runs[c]["bins"] for c in (2, 5, 7, 17))


def test_regression_on_the_core_runs_delayed_resets(tmp_path):
    """Seed 7, cases 40 and 43: spiking MLPs with a LIF array of snnTorch's delayed subtraction
    (subtract_delayed), bit-exact on the core's gateware (amaranth.sim). Case 20's delayed
    reset has thresholds of 16 bits, which the core does not run: counted as unsupported,
    with the reason, not as a failure."""
    for case in (20, 40, 43):
        graph = regress.random_case(7, case).graph
        assert "subtract_delayed" in {n.op.reset for n in graph.nodes if n.op.KIND == "lif"}
    code = regress.main(["--seed", "7", "--case", "20", "--case", "40", "--case", "43",
                         "--sim", "amaranth", "--backend", "core", "--out", str(tmp_path), "-q"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0 and summary["failures"] == [] and summary["unsupported"] == 1
    assert summary["mismatches"] == 0 and summary["values_compared"] > 1000
    runs = {r["case"]: r for r in summary["runs"]}
    assert "does not run a delayed reset (subtract_delayed) whose thresholds need 16 bits" in (
        runs[20]["unsupported"])
    assert runs[20]["values"] == 0 and runs[40]["values"] > 0 and runs[43]["values"] > 0


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
    """18 neurons at 1 lane (seed 0 case 18 before the graph IR; seed 0 case 36 now): the
    neuron arrays' clear phase read X on Icarus because its write data hung on an FSM state
    that Icarus never evaluated before it changed."""
    case = regress.random_case(0, 36)
    assert case.lanes == 1 and case.graph.specs()["fc2"].n == 18
    code = regress.main(["--seed", "0", "--case", "36", "--sim", "icarus", "--out",
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
