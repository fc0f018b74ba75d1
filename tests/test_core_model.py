"""The core in Python (sim/core_model.py): every tensor it sends equal to the golden
interpreter's, and its cycles the formula of docs/core.md."""

import numpy as np
import pytest

from est.compiler.program import CoreSpec, compile_program
from est.sim import core_model
from est.sim.interpreter import run
from netgen import random_conv_graph, random_est_graph, random_mlp_graph, random_stimulus


@pytest.mark.parametrize("lanes, weight_bits", [(1, 16), (4, 8), (8, 8), (16, 16)])
def test_mlp_equals_the_golden_model(lanes, weight_bits):
    g = random_mlp_graph(lanes, n_in=40, hidden=(33, 9), n_out=5, weight_bits=6)
    x = random_stimulus(lanes, 40, 40)
    gold, _ = run(g, x)
    got = core_model.run(compile_program(g, CoreSpec(lanes=lanes, weight_bits=weight_bits)), x)
    assert set(got.trace.arrays) == {"fc1/spikes", "fc1/v", "fc2/spikes", "fc2/v", "readout/v"}
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)


@pytest.mark.parametrize("seed, resets", [(2, ("subtract", "zero")), (3, ("subtract_delayed",)),
                                          (5, ("subtract_delayed", "zero"))])
def test_synaptic_currents_equal_the_golden_model(seed, resets):
    """Current-based arrays (NIR's CubaLIF, snnTorch's Synaptic): the synaptic current a
    readout whose values are the membranes' biases, traced as ``<node>/i``."""
    g = random_mlp_graph(seed, n_in=20, hidden=(10, 7), n_out=5, resets=resets, syn_bits=10)
    x = random_stimulus(seed, 40, 20, rate=0.4)
    gold, _ = run(g, x)
    got = core_model.run(compile_program(g, CoreSpec(lanes=4)), x)
    assert {"fc1/i", "fc2/i"} <= set(got.trace.arrays) and gold.arrays["fc2/spikes"].any()
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)


@pytest.mark.parametrize("seed", [2, 4, 5])
def test_delayed_reset_equals_the_golden_model(seed):
    """snnTorch's delayed subtraction (``subtract_delayed``) beside resets in the same bin:
    the threshold subtracted a bin after the spike, the membrane stored unreset."""
    g = random_mlp_graph(seed, n_in=20, hidden=(10, 7), n_out=5,
                         resets=("subtract_delayed", "subtract", "zero"))
    assert "subtract_delayed" in {n.op.reset for n in g.nodes if n.op.KIND == "lif"}
    x = random_stimulus(seed, 60, 20, rate=0.4)
    gold, _ = run(g, x)
    assert gold.arrays["fc1/spikes"].any() and gold.arrays["fc2/spikes"].any()
    got = core_model.run(compile_program(g, CoreSpec(lanes=4)), x)
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)


@pytest.mark.parametrize("seed, bits", [(0, 1), (1, 3), (2, 8)])
def test_convolutions_over_counts_equal_the_golden_model(seed, bits):
    g = random_conv_graph(seed, bits=bits, kernels=(3, 5, 2))
    x = random_stimulus(seed, 50, g.n_in, rate=1.5, bits=bits)
    gold, _ = run(g, x)
    got = core_model.run(compile_program(g, CoreSpec(lanes=4)), x)
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)


def test_cycles_follow_the_formula():
    """A dense layer's conv: 1, then per lag 1 + a cycle per input word + groups per event, and
    a stall per event after the first of an input word when groups is 1 (the readout's 3
    outputs on 4 lanes: no bypass on the accumulators); every instruction fetch_words more
    (its words from the weight memory: 4 of 32 bits at 4 lanes of 8 bits); lif/readout n + 2;
    out 1 + 1 per word; in its words; end 0 (its cycle fetches the first
    instruction's first word)."""
    g = random_mlp_graph(5, n_in=20, hidden=(10,), n_out=3)
    x = random_stimulus(5, 6, 20)
    prog = compile_program(g, CoreSpec(lanes=4), trace=False)
    got = core_model.run(prog, x)
    gold, _ = run(g, x)
    for t in range(6):
        ev1 = int(np.count_nonzero(x[t]))
        ev2 = int(gold.arrays["fc1/spikes"][t].sum())
        stalls = max(ev2 - 1, 0)  # fc1's 10 spikes are one input word
        body = (2 + (1 + 1 + 2 + ev1 * 3) + 12 + (1 + 1 + 1 + ev2 * 1 + stalls) + 5 + 1 + 3 + 0)
        assert prog.spec.fetch_words == 4
        cycles = 7 * 4 + body
        assert got.cycles[t] == cycles
    assert got.events == int(np.count_nonzero(x)) + int(gold.arrays["fc1/spikes"].sum())


def test_history_before_the_stream_is_zero_and_rings_wrap():
    """Kernel 5 over 40 bins: the rings (8 slots) wrap five times; bins 0-3 read no history."""
    g = random_conv_graph(3, kernels=(5, 5), d=7)
    x = random_stimulus(3, 40, g.n_in, rate=2.0, bits=3)
    gold, _ = run(g, x)
    got = core_model.run(compile_program(g), x)
    np.testing.assert_array_equal(got.trace.arrays["readout/v"], gold.arrays["readout/v"])


EST_CASES = [(1, dict(attention="sdsa", sew="add")), (2, dict(attention="none", sew="and",
                                                               cpg=False)),
             (3, dict(sew="iand", rsm=0.25)), (4, dict(sew="none", d=12, heads=3, blocks=1)),
             (5, dict(tpu=False, rsm=0.0, window=7)),
             (6, dict(input_bits=3, input_to_readout=True, readout_kernel=3))]


@pytest.mark.parametrize("seed, kw", EST_CASES)
def test_est_graphs_equal_the_golden_model(seed, kw):
    """Every EST operation but SSA (below): CPG table, masks, SDSA attention, SEW joins, the TPU,
    count inputs and the input path into a multi-lag readout."""
    g = random_est_graph(seed, **kw)
    x = random_stimulus(seed, 40, g.n_in, rate=0.4, bits=kw.get("input_bits", 1))
    gold, _ = run(g, x)
    got = core_model.run(compile_program(g, CoreSpec(lanes=4)), x)
    assert len(got.trace.arrays) > 10
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)


@pytest.mark.parametrize("seed, kw", [(1, {}), (2, dict(heads=1, d=16, window=3)),
                                      (3, dict(heads=8, d=8, window=6)),
                                      (4, dict(d=32, window=9, sew="and")),
                                      (5, dict(heads=4, d=16, window=7, tpu=False)),
                                      (6, dict(heads=3, d=9)), (7, dict(heads=1, d=15, window=3)),
                                      (8, dict(heads=4, d=20, window=7))])
def test_ssa_equals_the_golden_model(seed, kw):
    """SSA attention (a core with its SSA unit): heads of 1 to 16 channels (3, 5 and 15 of
    them through copies padded to a power of two), windows of 3 to 9 bins, the LIF that
    takes its counts."""
    g = random_est_graph(seed, attention="ssa", **kw)
    x = random_stimulus(seed, 40, g.n_in, rate=0.5)
    gold, _ = run(g, x)
    got = core_model.run(compile_program(g, CoreSpec(lanes=4, ssa=True)), x)
    assert gold.arrays["b0.attn/spikes"].any() or gold.arrays["b1.attn/spikes"].any()
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)


@pytest.mark.parametrize("bits, core_bits", [(12, 8), (15, 8), (7, 4)])
def test_weights_wider_than_the_core_run_as_two_planes(bits, core_bits):
    """A leaky readout's weights (8 + 4 bits) on a core of 8-bit fields; the widest weights
    two planes hold (2 x field - 1 bits: the low plane's unsigned field - 1 bits then fit a
    field); the high plane's values shifted by the bits over the field, its rows after the
    low plane's in one instruction (one scan of the input)."""
    g = random_mlp_graph(8, n_in=16, hidden=(12,), n_out=4, weight_bits=bits)
    x = random_stimulus(8, 30, 16)
    gold, _ = run(g, x)
    prog = compile_program(g, CoreSpec(lanes=4, weight_bits=core_bits))
    convs = [f for f in core_model.decode(prog) if f["op"] == 2]
    assert bits - core_bits in {f["shift"] for f in convs} <= {0, bits - core_bits}
    # fc1's 12 outputs on 4 lanes: 3 words a plane; the readout's 4: 1 word a plane, whose
    # high plane's word waits a cycle for the low plane's (no bypass)
    assert {f["groups"] for f in convs if f["shift"]} == {6, 2}
    got = core_model.run(prog, x)
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)


def test_a_tpu_with_a_delayed_reset_equals_the_golden_model():
    """A recurrence (the TPU) resetting by snnTorch's delayed subtraction: ``-threshold`` goes
    into its lag-1 recurrent weights, its membrane is kept where it spikes."""
    from dataclasses import replace

    g = random_est_graph(2, blocks=1)
    g = replace(g, nodes=tuple(replace(n, op=replace(n.op, reset="subtract_delayed"))
                               if n.op.KIND == "recurrence" else n for n in g.nodes))
    x = random_stimulus(2, 40, g.n_in, rate=0.5)
    gold, _ = run(g, x)
    assert gold.arrays["b0.tpu/spikes"].sum(axis=0).max() >= 2  # a neuron spikes again
    got = core_model.run(compile_program(g, CoreSpec(lanes=4, weight_words=4096,
                                                     act_words=1024, neuron_words=256)), x)
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
