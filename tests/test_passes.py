"""The widths pass (compiler/passes.py, fit_widths): every neuron array one bit over what a wide
calibration run needs, at most --max-v-bits, wider than its leak shift; the narrowed graph's
loss counted against the wide one."""

from dataclasses import replace

import numpy as np
import pytest

from est.compiler.graph import IRError, Node
from est.compiler.passes import PIPELINE, fit_widths
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
    assert PIPELINE == ("quantize", "fit_widths")
