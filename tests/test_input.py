"""``input`` (compiler/ops/input.py), no gateware component of its own (the dataflow top's
input stream): the stimulus passes through unchanged in the golden model and the PyTorch path,
the checks of ``n`` and ``bits`` and of the input's place in a graph, save/load and its cost
(no row; the board I/O row sized by it)."""

import numpy as np
import pytest

from est import EstError
from est.boards.spec import get_board
from est.compiler import costs
from est.compiler import graph as graph_ir
from est.compiler.costs import Context
from est.compiler.graph import GraphBuilder, IRError, Spec
from est.compiler.ops import Conv, Input, Readout
from est.sim.interpreter import run
from est.sw.integer import integer_forward
from netgen import check_integer_path, random_mlp_graph, random_stimulus

ICEBREAKER = get_board("icebreaker")


def _graph(n: int = 3, bits: int = 1):
    """input(n) straight into a kernel-1 conv (weights 1, 2, 4, ... 2048, 1, 2, ...) and a
    readout."""
    g = GraphBuilder()
    x = g.add("input", Input(n, bits))
    g.add("readout", Readout(None, 20, np.ones(1)),
          g.add("readout.syn", Conv(np.array([[[1 << (i % 12) for i in range(n)]]]),
                                    np.zeros(1, np.int64)), x))
    return g.build("direct", ("readout",))


def test_stimulus_passes_through_unchanged():
    stim = [[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]]
    trace, _ = run(_graph(), np.array(stim))
    assert trace.arrays["input/spikes"].tolist() == stim
    # what the conv reads is the stimulus: 1 + 4, 0, 1 + 2 + 4, 2
    assert trace.arrays["readout.syn/current"][:, 0].tolist() == [5, 0, 7, 2]
    assert integer_forward(_graph(), np.array(stim))["input/spikes"].tolist() == stim


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pytorch_path_equals_the_golden_model(seed):
    g = random_mlp_graph(seed, n_in=7, hidden=(5,), n_out=2)
    stim = random_stimulus(seed, 40, 7, 0.4)
    golden_trace, _ = check_integer_path(g, stim)
    np.testing.assert_array_equal(golden_trace.arrays["input/spikes"], stim)


@pytest.mark.parametrize("n, bits, field", [(0, 1, "n"), (-2, 1, "n"), (3, 9, "bits"),
                                            (3, 0, "bits"), (3, 2.0, "bits")])
def test_bad_parameters_refused(n, bits, field):
    with pytest.raises(IRError) as err:
        _graph(n, bits)
    assert (err.value.node, err.value.field) == ("input", field)


def test_only_the_first_node_is_the_input():
    g = GraphBuilder()
    x = g.add("input", Input(2))
    g.add("readout", Readout(None, 8, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, 2), np.int64), np.zeros(1, np.int64)), x))
    g.add("again", Input(2))
    with pytest.raises(IRError) as err:
        g.build("two", ("readout",))
    assert (err.value.node, err.value.field) == ("again", "op")
    g = GraphBuilder()
    g.add("syn", Conv(np.ones((1, 1, 2), np.int64), np.zeros(1, np.int64)))
    with pytest.raises(IRError) as err:
        g.build("none", ("syn",))
    assert (err.value.node, err.value.field) == ("network", "nodes")


def test_count_inputs_pass_through_and_are_weighed_by_their_value():
    """A 3-bit input: counts 0..7 reach the conv as numbers (current = sum of w_i x_i), and the
    gateware, fed 3 bits per input, agrees on every value."""
    from est.hw.dataflow import DataflowTop
    from est.sim.amaranth_sim import simulate_top

    g = _graph(3, bits=3)
    assert g.specs()["input"] == Spec(3, 3) and g.input_bits == 3
    stim = np.array([[7, 0, 1], [2, 3, 4], [0, 0, 0], [5, 7, 7]])
    trace, _ = run(g, stim)
    assert trace.arrays["input/spikes"].tolist() == stim.tolist()
    assert trace.arrays["readout.syn/current"][:, 0].tolist() == [7 + 4, 2 + 6 + 16, 0,
                                                                   5 + 14 + 28]
    check_integer_path(g, stim)
    got = simulate_top(DataflowTop(g, 2, trace=True), stim, stall_seed=1).trace
    for name in got.arrays:
        np.testing.assert_array_equal(got.arrays[name], trace.arrays[name], err_msg=name)
    with pytest.raises(EstError, match="counts 0..7"):
        run(g, np.array([[8, 0, 0]]))


def test_stimulus_of_the_wrong_shape_or_values_refused():
    with pytest.raises(EstError, match=r"stimulus must be \[bins, 3\]"):
        run(_graph(), np.zeros((4, 2), np.int64))
    with pytest.raises(EstError, match="binary spikes"):
        run(_graph(), np.array([[0, 2, 0]]))


def test_saved_and_loaded(tmp_path):
    _graph(5).save(tmp_path)
    loaded = graph_ir.load(tmp_path)
    assert (loaded.nodes[0].op, loaded.n_in) == (Input(5, 1), 5)


@pytest.mark.parametrize("n, in_bytes", [(3, 1), (8, 1), (9, 2), (17, 3)])
def test_cost_no_row_and_the_board_input_frame(n, in_bytes):
    g = _graph(n)
    assert g.node("input").op.cost("input", [], Context(1, ICEBREAKER, False)) == []
    rows = costs.stages(g, 1, ICEBREAKER, False)
    assert [r.name for r in rows] == ["readout.syn", "readout", "board I/O"]
    # ceil(n / 8) bytes in; out: the 20-bit readout in 3 bytes + 7; LUTs 100 + 8 *
    # mux_luts(10) + 8 * in bytes = 140 + 8 * in bytes, FFs 140 + 8 * in bytes
    assert rows[-1].shape == f"{in_bytes}B in, 10B out"
    assert (rows[-1].luts, rows[-1].ffs) == (140 + 8 * in_bytes, 140 + 8 * in_bytes)
    assert Input(n).check("input", []) == Spec(n, 1)
    # 3-bit counts: 3 bits an input on the wire
    rows = costs.stages(_graph(n, bits=3), 1, ICEBREAKER, False)
    assert rows[-1].shape.startswith(f"{-(-3 * n // 8)}B in")
