"""The passes (compiler/passes.py), each run alone: leak (beta to the nearest shift), quantize
(per-channel scales by hand), fit_widths (every neuron array one bit over what a wide
calibration run needs, at most --max-v-bits, wider than its leak shift; the narrowed graph's
loss counted against the wide one), and the pipeline that runs them in order."""

from dataclasses import replace

import numpy as np
import pytest

from est import EstError
from est.compiler.graph import GraphBuilder, IRError, Node
from est.compiler.ops import LIF, Conv, Input, Readout, Recurrence
from est.compiler.passes import (
    PIPELINE,
    compile_graph,
    fit_widths,
    integer_tensor,
    leak,
    leak_shift_from_beta,
    quantize,
)
from est.sim.golden import signed_bits
from est.sim.interpreter import run
from netgen import random_est_graph, random_mlp_graph, random_stimulus


def widened(graph, bits: int = 32):
    """``graph`` with every neuron array ``bits`` wide, as a front end hands it over."""
    return replace(graph, nodes=tuple(
        Node(n.name, replace(n.op, v_bits=bits) if hasattr(n.op, "v_bits") else n.op, n.inputs)
        for n in graph.nodes)).validate()


@pytest.mark.parametrize("graph", [
    random_mlp_graph(3), random_est_graph(2, attention="ssa", sew="add"),
    random_est_graph(5, attention="sdsa", sew="iand", cpg=False)], ids=["mlp", "ssa", "sdsa"])
def test_widths_are_one_bit_over_the_calibration_and_lose_nothing(graph):
    wide = widened(graph)
    calibration = random_stimulus(7, 60, graph.n_in)
    fitted, report = fit_widths(wide, calibration, max_v_bits=24)
    assert [n.name for n in fitted.nodes] == [n.name for n in graph.nodes]
    golden, saturated = run(wide, calibration)
    assert report["calibration_bins"] == 60
    neurons = [n for n in fitted.nodes if hasattr(n.op, "v_bits")]
    assert sorted(report["layers"]) == sorted(n.name for n in neurons)
    for n in neurons:
        entry = report["layers"][n.name]
        v = golden.arrays[f"{n.name}/v"]
        assert entry["needed_bits"] >= signed_bits(min(int(v.min()), 0), max(int(v.max()), 1))
        assert n.op.v_bits == entry["v_bits"] == max(entry["needed_bits"] + 1,
                                                     (n.op.leak_shift or 0) + 1), n.name
        assert entry["bins_differing_from_wide"] == 0
    assert sum(saturated.values()) == 0
    narrow, _ = run(fitted, calibration)
    for name, values in golden.arrays.items():  # every tensor as the wide graph's
        np.testing.assert_array_equal(narrow.arrays[name], values, err_msg=name)


def test_a_cap_below_the_need_is_kept_and_the_loss_counted():
    """Seed 1: the readout needs 14 bits, the LIF arrays at most 10; capped at 12, only the
    readout is cut, and the bins it then differs in (and its saturations) are counted."""
    graph = widened(random_mlp_graph(1))
    calibration = random_stimulus(7, 80, graph.n_in)
    free, free_report = fit_widths(graph, calibration, max_v_bits=32)
    assert free_report["layers"]["readout"]["v_bits"] == 15
    capped, report = fit_widths(graph, calibration, max_v_bits=12)
    readout = report["layers"]["readout"]
    assert readout["v_bits"] == 12 == capped.node("readout").op.v_bits
    assert readout["needed_bits"] == 14 and readout["bins_differing_from_wide"] > 0
    for name in ("fc1", "fc2"):
        assert report["layers"][name] == free_report["layers"][name]
    assert run(capped, calibration)[1]["readout"] > 0  # the narrower readout saturates
    assert run(free, calibration)[1]["readout"] == 0
    # a cap under a threshold is refused (naming the array), not silently kept
    with pytest.raises(IRError, match="does not fit v_bits=6") as err:
        fit_widths(graph, calibration, max_v_bits=6)
    assert err.value.field == "threshold"


def test_the_leak_shift_sets_the_width_of_a_quiet_array():
    graph = random_mlp_graph(3)
    ro = graph.node("readout")
    slow = replace(graph, nodes=tuple(
        Node(n.name, replace(n.op, leak_shift=20, v_bits=32), n.inputs) if n is ro else n
        for n in graph.nodes)).validate()
    fitted, report = fit_widths(slow, np.zeros((30, graph.n_in), np.int64), max_v_bits=24)
    assert report["layers"]["readout"]["needed_bits"] < 20
    assert fitted.node("readout").op.v_bits == 21


def test_the_pipeline_names_the_passes_in_order():
    assert PIPELINE == ("leak", "quantize", "fit_widths")


@pytest.mark.parametrize("beta, k", [(0.875, 3), (0.2, 0), (0.0, 0), (1.0, None), (0.999, 10),
                                     (0.7, 2)])
def test_leak_shift_is_the_nearest_beta(beta, k):
    assert leak_shift_from_beta(beta, 23) == k


@pytest.mark.parametrize("value, index", [(np.nan, "1"), (np.inf, "2"), (3e9, "0")])
def test_integer_tensor_refuses_what_no_signed_32_bit_integer_holds(value, index):
    scaled = np.array([1.0, 2.0, 3.0])
    scaled[int(index)] = value
    with pytest.raises(EstError, match=rf"^layers.fc1.bias\[{index}\]: quantizes to .* outside "
                                       r"the signed 32-bit range"):
        integer_tensor("layers.fc1.bias", scaled)
    assert integer_tensor("w", np.array([0.5, 1.5, -2.5, 2.4])).tolist() == [0, 2, -2, 2]
    assert integer_tensor("w", np.array([[1.2]])).dtype == np.int64


def _float_graph():
    """A float graph by hand: input 3 -> conv (kernel 2) -> LIF (beta 0.75) -> recurrence ->
    readout (beta 1)."""
    g = GraphBuilder()
    x = g.add("input", Input(3))
    w = np.array([[[0.5, -1.0, 0.25], [0.0, 0.0, 0.0]], [[0.1, 0.2, 0.0], [0.0, 0.0, 0.0]]])
    x = g.add("a", LIF(np.array([1.0, 0.5]), None, 32), g.add("a.syn", Conv(w, np.array(
        [0.3, 0.2])), x))
    x = g.add("t", Recurrence(np.array([2.0, -0.5]), np.array([[1.0, 0.0]]), np.zeros(2),
                              np.ones(2), None, 32), x)
    g.add("out", Readout(None, 32, np.ones(2)), g.add("out.syn", Conv(
        np.array([[[4.0, 0.0], [0.0, -0.001]]]), np.zeros(2)), x))
    return g.build("f", ("out",), {"float": {"betas": {"a": 0.75, "t": 0.5, "out": 1.0},
                                             "sources": {"a.syn": "layers.a"}}}, integer=False)


def test_leak_then_quantize_by_hand(tmp_path):
    graph = _float_graph()
    with pytest.raises(EstError, match="is a float graph: run the passes"):
        graph.save(tmp_path)
    with pytest.raises(EstError, match="run the leak pass before quantize"):
        quantize(graph, 8)
    leaky, leaks = leak(graph, 23)
    assert [leaky.node(n).op.leak_shift for n in ("a", "t", "out")] == [2, 1, None]
    assert leaks["layers"]["a"] == {"beta_float": 0.75, "leak_shift": 2, "beta_used": 0.75}
    q, report = quantize(leaky, 8)
    # channel 0 of a.syn: max |w| 1.0 over both lags -> scale 127; channel 1 has no weight:
    # the scale 127 / its threshold 0.5 makes the threshold qmax
    a_syn = q.node("a.syn").op
    assert a_syn.weight[:, 0].tolist() == [[64, -127, 32], [13, 25, 0]]  # 63.5 and 12.7 round
    assert a_syn.weight[:, 1].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert a_syn.bias.tolist() == [38, 51]  # 0.3 * 127, 0.2 * 254
    assert q.node("a").op.threshold.tolist() == [127, 127]
    t = q.node("t").op  # w_in and w_rec share a scale per channel: 127/2 and 127/0.5
    assert t.w_in.tolist() == [127, -127] and t.w_rec.tolist() == [[64, 0]]
    assert t.threshold.tolist() == [64, 254]
    out = q.node("out").op
    assert q.node("out.syn").op.weight[0].tolist() == [[127, 0], [0, -127]]
    np.testing.assert_allclose(out.scale, [127 / 4, 127 / 0.001])
    assert report["layers"]["a"]["threshold_max"] == 127 and "float" not in q.meta
    # errors name the checkpoint parameter the front end recorded
    huge = replace(leaky, nodes=tuple(
        Node(n.name, replace(n.op, bias=np.array([1e30, 0.0])), n.inputs)
        if n.name == "a.syn" else n for n in leaky.nodes))
    with pytest.raises(EstError, match=r"^layers.a.bias\[0\]: quantizes to"):
        quantize(huge, 8)


def test_a_leaky_readout_takes_leak_shift_more_weight_bits():
    """A readout with leak shift k settles within 2**k units: the conv feeding it is quantized
    at weight_bits + k (capped at 16); the other arrays keep weight_bits."""
    graph = _float_graph()
    betas = {**graph.meta["float"]["betas"], "out": 1 - 2 ** -3}
    leaky, _ = leak(replace(graph, meta={"float": {**graph.meta["float"], "betas": betas}}), 23)
    assert leaky.node("out").op.leak_shift == 3
    q, report = quantize(leaky, 8)
    assert q.node("out.syn").op.weight[0].tolist() == [[1023, 0], [0, -1023]]  # 2**(11-1) - 1
    np.testing.assert_allclose(q.node("out").op.scale, [1023 / 4, 1023 / 0.001])
    assert report["layers"]["out"]["weight_bits"] == 11
    assert report["layers"]["a"]["weight_bits"] == 8
    assert q.node("a.syn").op.weight[0, 0].tolist() == [64, -127, 32]
    q14, report14 = quantize(leaky, 14)
    assert report14["layers"]["out"]["weight_bits"] == 16
    assert q14.node("out.syn").op.weight[0].max() == 2 ** 15 - 1


def test_compile_graph_runs_the_pipeline_and_merges_the_reports():
    graph, report = compile_graph(_float_graph(), random_stimulus(3, 40, 3, 0.5), 8, 24)
    assert report["calibration_bins"] == 40 and report["weight_bits"] == 8
    entry = report["layers"]["a"]
    assert {"beta_float", "leak_shift", "scale_min", "threshold_max", "v_bits",
            "needed_bits", "bins_differing_from_wide"} <= set(entry)
    assert graph.node("a").op.v_bits == entry["v_bits"] < 32
