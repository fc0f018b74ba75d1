"""The core's gateware (hw/core.py) in amaranth.sim, Icarus and Verilator: models loaded at
run time through the ``load`` port, one after the other on one core, every traced tensor equal
to the golden interpreter's with random stalls, and cycles per bin equal to the Python
model's."""

import dataclasses

import numpy as np
import pytest

from est import EstError
from est.compiler.graph import GraphBuilder
from est.compiler.ops import LIF, Concat, Conv, Input, Readout, Table
from est.compiler.program import CoreSpec, compile_program
from est.sim import core_model
from est.sim.core_sim import simulate_core, simulate_core_rtl
from est.sim.interpreter import run
from netgen import (
    delayed_reset_graph,
    oscillator_graph,
    random_conv_graph,
    random_est_graph,
    random_mlp_graph,
    random_stimulus,
)

SPEC = CoreSpec(lanes=4, weight_bits=8, weight_words=1024, act_words=256, neuron_words=64,
                acc_words=8)


def _cases():
    g1 = random_conv_graph(1, kernels=(3, 4, 2))
    g2 = random_mlp_graph(2, n_in=20, hidden=(10, 7), n_out=5, weight_bits=8)
    return [(g1, random_stimulus(1, 14, 9, rate=1.2, bits=3)),
            (g2, random_stimulus(2, 10, 20))]


# per table: rows, values, advance and start (15 fraction bits): 0.377 rows a bin from row 3.05
# (rows repeat, the accumulator wraps mid-row) and 1.695 from row 2.0002 (rows are skipped, the
# wrap subtracts past the period)
TABLES = {"cpg": (5, 3, 12345, 100000), "cpg2": (3, 2, 55555, 65543)}


def _phase_graph(seed: int):
    """The tables of :data:`TABLES`, of values 0..7 (3 bits), beside a 2-channel input into a
    readout of one neuron a channel (bin ``t``'s values are ``readout/v[t] - readout/v[t -
    1]``); the first also into a LIF array (its spikes and membranes)."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.add("input", Input(2))
    tables = []
    for name, (p, n, advance, start) in TABLES.items():
        table = rng.integers(0, 8, (p, n))
        table[0, 0] = 7  # the values reach 3 bits
        tables.append(g.add(name, Table(table, advance, start)))
    both = g.add("embed.in", Concat(), x, *tables)
    n = 2 + sum(n for _, n, _, _ in TABLES.values())
    g.add("readout", Readout(None, 16, np.ones(n)),
          g.add("readout.syn", Conv(np.eye(n, dtype=np.int64)[None], np.zeros(n, np.int64)),
                both))
    g.add("fire", LIF(np.array([9, 12]), 2, 8),
          g.add("fire.syn", Conv(rng.integers(-2, 4, (1, 2, 3)), np.zeros(2, np.int64)),
                tables[0]))
    return g.build("phased", ("readout", "fire"))


def test_two_models_loaded_one_after_the_other_are_bit_exact_with_stalls():
    cases = _cases()
    runs = [(compile_program(g, SPEC), x) for g, x in cases]
    got = simulate_core(SPEC, runs, stall_seed=3)
    for (g, x), trace in zip(cases, got.traces, strict=True):
        gold, _ = run(g, x)
        assert len(trace.arrays) == 5
        for name, value in trace.arrays.items():
            np.testing.assert_array_equal(value, gold.arrays[name], err_msg=f"{g.name} {name}")


@pytest.mark.parametrize("lanes, fetch_words", [(4, 4), (8, 2), (16, 1)])
def test_cycles_per_bin_equal_the_model(lanes, fetch_words):
    """Instructions of 4, 2 and 1 weight words: an ``end`` seen a word before its last
    fetches the first instruction in its own cycle, one of a single word a cycle later."""
    spec = dataclasses.replace(SPEC, lanes=lanes)
    assert spec.fetch_words == fetch_words
    cases = _cases()
    runs = [(compile_program(g, spec), x) for g, x in cases]
    got = simulate_core(spec, runs)
    for (prog, x), cycles in zip(runs, got.cycles, strict=True):
        assert cycles == core_model.run(prog, x).cycles[:-1]


def test_a_core_built_with_a_model_runs_it_without_a_load():
    g, x = _cases()[1]
    prog = compile_program(g, SPEC, trace=False)
    got = simulate_core(SPEC, [(prog, x)], preload=True)
    gold, _ = run(g, x)
    np.testing.assert_array_equal(got.traces[0].arrays["readout/v"], gold.arrays["readout/v"])


def test_est_graphs_on_one_core_are_bit_exact_with_stalls():
    """Two random ESTs (every operation but SSA, tested below, between them: CPG table,
    masks, SDSA, SEW add and iand, the TPU, 3-bit counts and the input path into a readout
    of kernel 3) loaded one after the other; cycles equal to the model's without stalls."""
    spec = CoreSpec(lanes=4, weight_bits=8, weight_words=4096, act_words=1024,
                    neuron_words=256, acc_words=8)
    cases = [(random_est_graph(1, blocks=1), 6, 1),
             (random_est_graph(4, sew="iand", blocks=1, input_bits=3, input_to_readout=True,
                               readout_kernel=3), 6, 3)]
    runs = [(compile_program(g, spec), random_stimulus(s, 6, g.n_in, rate=0.4, bits=bits))
            for s, (g, _, bits) in enumerate(cases)]
    got = simulate_core(spec, runs, stall_seed=5)
    for (g, _, _), (_, x), trace in zip(cases, runs, got.traces, strict=True):
        gold, _ = run(g, x)
        for name, value in trace.arrays.items():
            np.testing.assert_array_equal(value, gold.arrays[name], err_msg=f"{g.name} {name}")
    for (prog, x), cycles in zip(runs, simulate_core(spec, runs).cycles, strict=True):
        assert cycles == core_model.run(prog, x).cycles[:-1]


def test_ssa_is_bit_exact_with_stalls():
    """SSA attention on a core with its SSA unit: two ESTs (heads of 6 channels over a window
    of 5, through copies padded to 8; one head of 16 channels over 3 bins) loaded one after
    the other; cycles equal to the model's without stalls."""
    spec = CoreSpec(lanes=4, weight_bits=8, weight_words=4096, act_words=1024,
                    neuron_words=256, acc_words=8, ssa=True)
    graphs = [random_est_graph(1, attention="ssa", d=12, heads=2, window=5, blocks=1),
              random_est_graph(5, attention="ssa", heads=1, d=16, window=3, blocks=1)]
    runs = [(compile_program(g, spec), random_stimulus(s, 6, g.n_in, rate=0.5))
            for s, g in enumerate(graphs)]
    got = simulate_core(spec, runs, stall_seed=5)
    for g, (_, x), trace in zip(graphs, runs, got.traces, strict=True):
        gold, _ = run(g, x)
        assert gold.arrays["b0.attn/v"].any()
        for name, value in trace.arrays.items():
            np.testing.assert_array_equal(value, gold.arrays[name], err_msg=f"{g.name} {name}")
    for (prog, x), cycles in zip(runs, simulate_core(spec, runs).cycles, strict=True):
        assert cycles == core_model.run(prog, x).cycles[:-1]


def test_delayed_reset_is_bit_exact_with_stalls():
    """snnTorch's delayed subtraction (``subtract_delayed``: fc2 of seed 5), after an array
    that resets in the same bin; cycles equal to the model's without stalls."""
    g = random_mlp_graph(5, n_in=20, hidden=(10, 7), n_out=5,
                         resets=("subtract_delayed", "subtract", "zero"))
    assert [n.op.reset for n in g.nodes if n.op.KIND == "lif"] == ["subtract", "subtract_delayed"]
    x = random_stimulus(5, 16, 20, rate=0.4)
    prog = compile_program(g, SPEC)
    got = simulate_core(SPEC, [(prog, x)], stall_seed=4)
    gold, _ = run(g, x)
    assert gold.arrays["fc2/spikes"].any()
    for name, value in got.traces[0].arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
    assert simulate_core(SPEC, [(prog, x)]).cycles[0] == core_model.run(prog, x).cycles[:-1]


def test_synaptic_currents_are_bit_exact_with_stalls():
    """Current-based arrays (a synaptic current a neuron), one with the delayed reset: the
    current a readout that writes the biases of the membranes it feeds."""
    g = random_mlp_graph(3, n_in=20, hidden=(10, 7), n_out=5,
                         resets=("subtract_delayed", "zero"), syn_bits=10)
    x = random_stimulus(3, 16, 20, rate=0.4)
    prog = compile_program(g, SPEC)
    got = simulate_core(SPEC, [(prog, x)], stall_seed=6)
    gold, _ = run(g, x)
    assert gold.arrays["fc1/i"].any() and gold.arrays["fc2/spikes"].any()
    for name, value in got.traces[0].arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
    assert simulate_core(SPEC, [(prog, x)]).cycles[0] == core_model.run(prog, x).cycles[:-1]


def test_weights_in_two_planes_are_bit_exact_with_stalls():
    """12-bit weights on a core of 8-bit fields, over 3-bit counts and spikes: each event reads
    its low plane's rows, then its high plane's, whose values are shifted by 4 before the
    multiply; and a delayed reset whose -300 thresholds take two planes (depthwise: both rows
    into the channel's accumulator word, the second waiting a cycle for the first)."""
    g = random_conv_graph(3, kernels=(3, 2), weight_bits=12)
    x = random_stimulus(3, 14, 9, rate=1.2, bits=3)
    prog = compile_program(g, SPEC)
    assert {(f["shift"], f["src_log2b"]) for f in core_model.decode(prog) if f["op"] == 2} == {
        (4, 0), (4, 2)}
    wide = delayed_reset_graph(300, weight=100)
    x_wide = random_stimulus(1, 12, 4)
    prog_wide = compile_program(wide, SPEC)
    assert (1, 2, 2) in {(f["depthwise"], f["shift"], f["groups"])
                         for f in core_model.decode(prog_wide) if f["op"] == 2}
    runs = [(prog, x), (prog_wide, x_wide)]
    got = simulate_core(SPEC, runs, stall_seed=2)
    for graph, stimulus, trace in ((g, x, got.traces[0]), (wide, x_wide, got.traces[1])):
        gold, _ = run(graph, stimulus)
        assert len(trace.arrays) >= 3
        for name, value in trace.arrays.items():
            np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
    assert run(wide, x_wide)[0].arrays["h/spikes"].sum() > 3
    cycles = simulate_core(SPEC, runs).cycles
    assert cycles == [core_model.run(p, s).cycles[:-1] for p, s in runs]


@pytest.fixture(scope="module")
def rtl_work(tmp_path_factory):
    """One folder for both simulators: the core's Verilog is written once."""
    return tmp_path_factory.mktemp("core_rtl")


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_an_est_and_an_mlp_on_one_core_in_rtl_simulators(simulator, rtl_work):
    """The core's Verilog with no model in it, with its SSA, oscillator and phase units: an EST
    (CPG, mask, SDSA, SEW add, TPU), an MLP of 12-bit weights (two planes; its hidden layer
    current-based and resetting by snnTorch's delayed subtraction), an EST with SSA attention,
    two oscillator readouts and two tables of 3-bit values at fractional advances, loaded one
    after the other through the load port, with random stalls
    (Icarus) or none (Verilator: cycles equal to the model's). The core is built as the
    UP5K's is: 16-bit thresholds and biases, and the second copy of the activations only as
    long as the ESTs' second operands need."""
    tmp_path = rtl_work
    graphs = [random_est_graph(1, blocks=1),
              random_mlp_graph(2, n_in=20, hidden=(10,), n_out=5, weight_bits=12,
                               resets=("subtract_delayed",), syn_bits=10),
              random_est_graph(3, attention="ssa", heads=2, window=5, blocks=1, tpu=False,
                               cpg=False),
              oscillator_graph(4, n_in=5),
              _phase_graph(3)]
    spec = CoreSpec(lanes=4, weight_bits=8, weight_words=2048, act_words=512,
                    neuron_words=128, acc_words=4, param_bits=16, ssa=True, osc=True, phase=True,
                    osc_mult=True)
    low = max(compile_program(g, spec).usage()["src2_words"] for g in graphs)
    assert 0 < low < 512
    spec = dataclasses.replace(spec, src2_words=low)
    runs = [(compile_program(g, spec), random_stimulus(s, 6, g.n_in, rate=0.4, bits=g.input_bits))
            for s, g in enumerate(graphs)]
    stall = 7 if simulator == "icarus" else None
    got = simulate_core_rtl(spec, runs, simulator, tmp_path, stall_seed=stall)
    for g, (prog, x), trace, cycles in zip(graphs, runs, got.traces, got.cycles, strict=True):
        gold, _ = run(g, x)
        assert len(trace.arrays) == len(prog.outputs) >= 3
        for name, value in trace.arrays.items():
            np.testing.assert_array_equal(value, gold.arrays[name], err_msg=f"{g.name} {name}")
        if stall is None:
            assert cycles == core_model.run(prog, x).cycles[:-1]


def test_oscillator_readouts_are_bit_exact_with_stalls():
    """The oscillator unit: readouts of 3 pairs, of 1 (its w half reads the u just written)
    and of 2 with a multiplier (27 / 32, on the unit's multiplier), fed by 3-bit counts, each
    u and w traced; cycles equal to the model's; a core without the unit refuses them, one
    without its multiplier the third."""
    graph = oscillator_graph(5)
    spec = dataclasses.replace(SPEC, osc=True, osc_mult=True)
    stim = random_stimulus(4, 24, 4, rate=1.5, bits=3)
    prog = compile_program(graph, spec)
    gold, saturated = run(graph, stim)
    assert saturated["osc_a"] > 0 and gold.arrays["osc_b/w"].any()
    assert (gold.arrays["osc_c/w"] < -64).any() and (gold.arrays["osc_c/v"] > 64).any()
    got = simulate_core(spec, [(prog, stim)], stall_seed=4)
    assert set(got.traces[0].arrays) == {f"osc_{x}/{y}" for x in "abc" for y in "vw"}
    for name, value in got.traces[0].arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
    assert simulate_core(spec, [(prog, stim)]).cycles[0] == core_model.run(prog, stim).cycles[:-1]
    with pytest.raises(Exception, match="oscillator unit"):
        compile_program(graph, SPEC)
    with pytest.raises(Exception, match="node 'osc_c': an oscillator readout of rotation 27 / "
                                        "2\\^5 needs a core with its oscillator unit's "
                                        "multiplier"):
        compile_program(graph, dataclasses.replace(SPEC, osc=True))


def test_tables_of_a_fractional_advance_are_bit_exact_with_stalls():
    """The phase unit: the tables' rows by hand (an accumulator of 15 fraction bits moved on by
    the advance from its start, wrapping at ``P << 15``), their 3-bit values through the model
    and the gateware with stalls, every traced tensor equal to the golden interpreter's; cycles
    equal to the model's."""
    graph = _phase_graph(3)
    spec = dataclasses.replace(SPEC, phase=True)
    x = random_stimulus(6, 60, 2, rate=0.4)
    gold, _ = run(graph, x)
    values = [x]
    for name, (p, _, advance, start) in TABLES.items():
        acc, rows = start, []
        for _ in range(60):
            rows.append(acc >> 15)
            acc += advance
            acc -= (p << 15) if acc >= p << 15 else 0
        assert sorted(set(rows)) == list(range(p))
        values.append(graph.node(name).op.table[rows])
        np.testing.assert_array_equal(gold.arrays[f"{name}/spikes"], values[-1])
    np.testing.assert_array_equal(np.diff(gold.arrays["readout/v"], axis=0, prepend=0),
                                  np.concatenate(values, axis=1))
    assert gold.arrays["fire/spikes"].any()
    prog = compile_program(graph, spec)
    model = core_model.run(prog, x)
    got = simulate_core(spec, [(prog, x)], stall_seed=8)
    for trace in (model.trace, got.traces[0]):
        assert set(trace.arrays) == {"readout/v", "fire/spikes", "fire/v"}
        for name, value in trace.arrays.items():
            np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
    assert simulate_core(spec, [(prog, x)]).cycles[0] == model.cycles[:-1]


def test_a_fractional_advance_needs_the_phase_unit():
    """A core without the phase unit refuses a table of a fractional advance, naming the node;
    a table whose accumulator (rows << 15) does not fit a neuron word is refused."""
    with pytest.raises(EstError, match=r"node 'cpg': its table advances 0.37674 rows a bin "
                                       r"\(advance 12345\) from row 3.05176 \(start 100000\), a "
                                       r"fraction of a row, which needs a core with its phase "
                                       r"unit: compile for a core with phase=True"):
        compile_program(_phase_graph(3), SPEC)
    rows = np.eye(3, dtype=np.int64)
    with pytest.raises(EstError, match=r"node 't': .* from row 1.5 \(start 49152\), a fraction"):
        compile_program(_start_graph(rows, 3 << 14), SPEC)


def _start_graph(rows: np.ndarray, start: int):
    """A table of one row a bin from ``start`` into a LIF array that fires on its value."""
    g = GraphBuilder()
    n = rows.shape[1]
    both = g.add("both", Concat(), g.add("input", Input(1)),
                 g.add("t", Table(rows, 1 << 15, start)))
    weight = np.hstack([np.zeros((n, 1), np.int64), np.eye(n, dtype=np.int64)])[None]
    g.add("fire", LIF(np.ones(n, np.int64), None, 4),
          g.add("fire.syn", Conv(weight, np.zeros(n, np.int64)), both))
    return g.build("started", ("fire",))


def test_a_start_of_whole_rows_needs_no_phase_unit():
    """A table of one row a bin from row 2 runs on a core without the phase unit (its rows
    loaded turned): rows 2, 3, 0, 1, 2, ... by hand, the model and the gateware equal to the
    golden interpreter's."""
    rows = np.eye(4, dtype=np.int64)
    graph = _start_graph(rows, 2 << 15)
    x = np.zeros((9, 1), np.int64)
    gold, _ = run(graph, x)
    np.testing.assert_array_equal(gold.arrays["fire/spikes"], rows[(2 + np.arange(9)) % 4])
    prog = compile_program(graph, SPEC)
    for trace in (core_model.run(prog, x).trace, simulate_core(SPEC, [(prog, x)]).traces[0]):
        for name, value in trace.arrays.items():
            np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
    with pytest.raises(EstError, match=r"node 'cpg': its table has 5 rows, the core's table "
                                       r"instruction reads at most 2 .*16-bit neuron word"):
        compile_program(_phase_graph(3), CoreSpec(state_bits=16, phase=True))
