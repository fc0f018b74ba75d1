"""``concat`` (compiler/ops/concat.py) and the gateware it lowers to (hw/streams.py, Zip): its
inputs side by side, first input in the low channels, by hand and through the dataflow top with
stalls, the PyTorch path against the golden model, the input checks, save/load and its cost (no
row: the Zip has no register)."""

import numpy as np
import pytest

from est.boards.spec import get_board
from est.compiler import costs
from est.compiler import graph as graph_ir
from est.compiler.costs import Context
from est.compiler.graph import GraphBuilder, IRError, Spec
from est.compiler.ops import SEW, Concat, Conv, Input, Readout, Table
from est.hw.dataflow import DataflowTop
from est.sim.amaranth_sim import simulate_top
from est.sim.interpreter import run
from est.sw.integer import integer_forward
from netgen import check_integer_path, random_est_graph, random_stimulus

ICEBREAKER = get_board("icebreaker")
ROWS = np.array([[1, 0, 0], [0, 1, 1]])  # a table of 3 channels, row t mod 2
STIM = np.array([[0, 1], [1, 1], [1, 0]])  # the input's 2 channels


def _graph(table_first: bool = False, weight=(1, 2, 4, 8, 16)):
    """``cat = concat(input, table ROWS)`` (or the table first) into a kernel-1 conv whose
    weights tell the channels apart (1, 2, 4, ...: the current is the vector as a binary
    number, channel 0 lowest) and a readout."""
    g = GraphBuilder()
    x, tab = g.add("input", Input(2)), g.add("rows", Table(ROWS))
    cat = g.add("cat", Concat(), *((tab, x) if table_first else (x, tab)))
    g.add("readout", Readout(None, 16, np.ones(1)),
          g.add("readout.syn", Conv(np.array([[weight]]), np.zeros(1, np.int64)), cat))
    return g.build("cat", ("readout",))


@pytest.mark.parametrize("table_first, want, current", [
    # input 01 11 10 then table 100 011 100
    (False, [[0, 1, 1, 0, 0], [1, 1, 0, 1, 1], [1, 0, 1, 0, 0]], [2 + 4, 1 + 2 + 8 + 16, 1 + 4]),
    # table 100 011 100 then input 01 11 10
    (True, [[1, 0, 0, 0, 1], [0, 1, 1, 1, 1], [1, 0, 0, 1, 0]], [1 + 16, 2 + 4 + 8 + 16, 1 + 8]),
])
def test_values_by_hand(table_first, want, current):
    g = _graph(table_first)
    assert g.specs()["cat"] == Spec(5, 1)
    trace, _ = run(g, STIM)
    assert trace.arrays["cat/values"].tolist() == want
    assert trace.arrays["readout.syn/current"][:, 0].tolist() == current
    assert integer_forward(g, STIM)["cat/values"].tolist() == want


def test_multi_bit_values_side_by_side():
    g = GraphBuilder()
    x = g.add("input", Input(2))
    first = g.add("sum1", SEW("add"), g.add("tab1", Table(np.array([[1, 0]]))), x)
    second = g.add("sum2", SEW("add"), g.add("tab2", Table(np.array([[0, 1]]))), x)
    g.add("cat", Concat(), first, second)
    g.add("readout", Readout(None, 16, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, 4), np.int64), np.zeros(1, np.int64)), "cat"))
    g = g.build("wide", ("readout",))
    assert g.specs()["cat"] == Spec(4, 2)
    # [1, 0] + x then [0, 1] + x: x = 11 gives 2 1 | 1 2, x = 01 gives 1 1 | 0 2
    trace, _ = run(g, np.array([[1, 1], [0, 1]]))
    assert trace.arrays["cat/values"].tolist() == [[2, 1, 1, 2], [1, 1, 0, 2]]


def test_vectors_of_different_widths_are_zero_extended_to_the_widest():
    """Spikes beside 3-bit counts: a 3-bit vector of 4 values, the spikes' values unchanged,
    in the golden model, the PyTorch path and the gateware (the widening is wiring)."""
    from est.compiler.ops import LIF

    g = GraphBuilder()
    x = g.add("input", Input(2, 3))
    s = g.add("spk", LIF(np.array([1, 1]), None, 6, "zero"),
              g.add("syn", Conv(np.array([[[1, 0], [0, 1]]]), np.zeros(2, np.int64)), x))
    g.add("cat", Concat(), s, x)
    g.add("readout", Readout(None, 16, np.ones(1)),
          g.add("readout.syn", Conv(np.array([[[1, 2, 4, 32]]]), np.zeros(1, np.int64)), "cat"))
    g = g.build("mixed", ("readout",))
    assert g.specs()["cat"] == Spec(4, 3)
    stim = np.array([[0, 5], [3, 0], [7, 7], [0, 0]])
    trace, _ = run(g, stim)
    assert trace.arrays["cat/values"].tolist() == [[0, 1, 0, 5], [1, 0, 3, 0], [1, 1, 7, 7],
                                                   [0, 0, 0, 0]]
    check_integer_path(g, stim)
    got = simulate_top(DataflowTop(g, 2, trace=True), stim, stall_seed=2).trace
    for name in got.arrays:
        np.testing.assert_array_equal(got.arrays[name], trace.arrays[name], err_msg=name)


def test_gateware_bit_exact_with_stalls():
    g = _graph(True)
    stim = random_stimulus(4, 12, 2, 0.5)
    golden_trace, _ = run(g, stim)
    dut = DataflowTop(g, 2, trace=True)
    got = simulate_top(dut, stim, stall_seed=3).trace
    # the concat's own values are not on the output word (hw=False): the readout, which
    # weighs every channel differently, shows them
    assert "readout/v" in got.arrays and golden_trace.arrays["readout/v"].any()
    for name in got.arrays:
        np.testing.assert_array_equal(got.arrays[name], golden_trace.arrays[name], err_msg=name)


@pytest.mark.parametrize("seed", [1, 2])
def test_pytorch_path_equals_the_golden_model(seed):
    graphs = [random_est_graph(seed, attention="sdsa", cpg=True, n_in=4, d=4, blocks=1,
                               hidden=5), _graph(seed == 2)]
    for g in graphs:
        assert "concat" in g.kinds()
        stim = random_stimulus(seed, 30, g.n_in, 0.5)
        golden_trace, _ = check_integer_path(g, stim, g.name)


@pytest.mark.parametrize("ins", [
    [Spec(2, 1), Spec(3, 4, True)],  # a signed vector
    [Spec(2, 12, True, "current"), Spec(2, 12, True, "current")],  # currents
])
def test_bad_inputs_refused(ins):
    with pytest.raises(IRError) as err:
        Concat().check("cat", ins)
    assert (err.value.node, err.value.field) == ("cat", "inputs")


def test_a_current_or_a_single_input_refused_in_a_graph():
    g = GraphBuilder()
    x = g.add("input", Input(2))
    syn = g.add("syn", Conv(np.ones((1, 2, 2), np.int64), np.zeros(2, np.int64)), x)
    g.add("cat", Concat(), x, syn)
    with pytest.raises(IRError) as err:
        g.build("bad", ("cat",))
    assert (err.value.node, err.value.field) == ("cat", "inputs")
    g = GraphBuilder()
    g.add("cat", Concat(), g.add("input", Input(2)))
    with pytest.raises(IRError, match="a concat takes 2..16 inputs, got 1") as err:
        g.build("bad", ("cat",))
    assert (err.value.node, err.value.field) == ("cat", "inputs")


def test_saved_and_loaded_keeps_the_order(tmp_path):
    _graph(table_first=True).save(tmp_path)
    node = graph_ir.load(tmp_path).node("cat")
    assert (node.op, node.inputs) == (Concat(), ("rows", "input"))


def test_cost_has_no_row():
    g = _graph()
    assert g.node("cat").op.cost("cat", [Spec(2, 1), Spec(3, 1)],
                                 Context(1, ICEBREAKER, False)) == []
    names = [r.name for r in costs.stages(g, 1, ICEBREAKER, False)]
    assert names == ["rows", "readout.syn", "readout", "board I/O"]
