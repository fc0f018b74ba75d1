"""``sew`` (compiler/ops/sew.py) and the gateware it lowers to (hw/sew.py, SEWJoin): the join
alone against the golden SEW function in amaranth.sim, every function and skip width, random
stalls on the joined streams; in a graph, ADD, AND and IAND by hand, the PyTorch path against
the golden model, the checks of the function and the inputs, save/load and the cost row."""

import random

import numpy as np
import pytest

from est.boards.spec import get_board
from est.compiler import graph as graph_ir
from est.compiler.costs import Context
from est.compiler.graph import GraphBuilder, IRError, Spec
from est.compiler.ops import SEW, Conv, Input, Readout, Table
from est.hw.sew import SEWJoin
from est.sim import golden
from est.sim.amaranth_sim import run_bench, stream_get
from est.sim.interpreter import run
from est.sim.words import pack, unpack
from est.sw.integer import integer_forward
from netgen import check_integer_path, random_est_graph, random_stimulus


@pytest.mark.parametrize("op, skip_bits", [("add", 1), ("add", 3), ("and", 1), ("iand", 1),
                                           ("none", 2)])
def test_sew_join_matches_golden(op, skip_bits):
    rng = np.random.default_rng(len(op) * 10 + skip_bits)
    n, bins = int(rng.integers(1, 20)), 30
    dut = SEWJoin(n, op, skip_bits)
    out = (rng.random((bins, n)) < 0.5).astype(np.int64)
    skip = rng.integers(0, 1 << skip_bits, (bins, n))
    stall = random.Random(skip_bits)
    got = []

    async def bench(ctx):  # one process drives both inputs: they are taken together
        for t in range(bins):
            while stall.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.out.payload, pack(out[t], 1))
            ctx.set(dut.skip.payload, pack(skip[t], skip_bits))
            ctx.set(dut.out.valid, 1)
            ctx.set(dut.skip.valid, 1)
            while True:
                taken = ctx.get(dut.out.ready)
                assert taken == ctx.get(dut.skip.ready)
                await ctx.tick()
                if taken:
                    break
            ctx.set(dut.out.valid, 0)
            ctx.set(dut.skip.valid, 0)
            payload, _ = await stream_get(ctx, dut.o, stall)
            got.append(payload)

    run_bench(dut, bench)
    for t in range(bins):
        want = out[t] if op == "none" else golden.sew(out[t], skip[t], op)
        np.testing.assert_array_equal(unpack(got[t], n, dut.out_bits), want, err_msg=f"bin {t}")


# --- the operation in a graph: values by hand, the PyTorch path, checks, save/load, cost -----

ICEBREAKER = get_board("icebreaker")
BRANCH = np.array([[1, 0, 1], [0, 1, 1]])  # the branch's spikes: a table, row t mod 2
SKIP = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1]])  # the skip values: the stimulus


def _graph(op: str, twice: bool = False, n_in: int = 3):
    """``join = SEW(op)(table BRANCH, input)``; ``twice``: then ``join2 = SEW(op)(table BRANCH,
    join)``; into a kernel-1 conv and a readout."""
    g = GraphBuilder()
    x = g.add("input", Input(n_in))
    out = g.add("join", SEW(op), g.add("branch", Table(BRANCH)), x)
    if twice:
        out = g.add("join2", SEW(op), "branch", out)
    g.add("readout", Readout(None, 16, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, 3), np.int64), np.zeros(1, np.int64)), out))
    return g.build("joined", ("readout",))


@pytest.mark.parametrize("op, bits, want", [
    # branch rows 101 011 101 (the table wraps), skip 110 100 011
    ("add", 2, [[2, 1, 1], [1, 1, 1], [1, 1, 2]]),  # 101 + 110, 011 + 100, 101 + 011
    ("and", 1, [[1, 0, 0], [0, 0, 0], [0, 0, 1]]),  # 101 & 110, 011 & 100, 101 & 011
    ("iand", 1, [[0, 1, 0], [1, 0, 0], [0, 1, 0]]),  # 010 & 110, 100 & 100, 010 & 011
])
def test_values_by_hand(op, bits, want):
    g = _graph(op)
    assert g.specs()["join"] == Spec(3, bits)
    trace, _ = run(g, SKIP)
    assert trace.arrays["join/values"].tolist() == want
    assert integer_forward(g, SKIP)["join/values"].tolist() == want


def test_add_of_a_wide_skip_is_one_bit_wider():
    g = _graph("add", twice=True)
    assert (g.specs()["join"], g.specs()["join2"]) == (Spec(3, 2), Spec(3, 3))
    trace, _ = run(g, SKIP)
    # [2,1,1] + 101, [1,1,1] + 011, [1,1,2] + 101
    assert trace.arrays["join2/values"].tolist() == [[3, 1, 2], [1, 2, 2], [2, 1, 3]]


@pytest.mark.parametrize("seed", [1, 2])
def test_pytorch_path_equals_the_golden_model(seed):
    graphs = [random_est_graph(seed, attention="sdsa", sew=op, n_in=4, d=4, blocks=2, hidden=5)
              for op in ("add", "and", "iand")]
    graphs += [_graph(op) for op in ("and", "iand")] + [_graph("add", twice=True)]
    for g in graphs:
        assert "sew" in g.kinds()
        stim = random_stimulus(seed, 30, g.n_in, 0.5)
        golden_trace, _ = check_integer_path(g, stim, g.name)


@pytest.mark.parametrize("op, n_in, field", [
    ("or", 3, "op"),
    ("none", 3, "op"),  # SEW none writes no node, never a 'none' one
    ("iand", 4, "inputs"),  # a skip of 4 channels against a branch of 3
])
def test_bad_op_or_inputs_refused(op, n_in, field):
    with pytest.raises(IRError) as err:
        _graph(op, n_in=n_in)
    assert (err.value.node, err.value.field) == ("join", field)


@pytest.mark.parametrize("op", ["and", "iand"])
def test_and_of_a_wide_skip_refused(op):
    with pytest.raises(IRError) as err:
        SEW(op).check("res", [Spec(3, 1), Spec(3, 2)])
    assert (err.value.node, err.value.field) == ("res", "op")
    with pytest.raises(IRError) as err:  # the branch must be spikes
        SEW("add").check("res", [Spec(3, 2), Spec(3, 1)])
    assert (err.value.node, err.value.field) == ("res", "inputs")


def test_saved_and_loaded(tmp_path):
    _graph("iand").save(tmp_path)
    loaded = graph_ir.load(tmp_path).node("join")
    assert (loaded.op, loaded.inputs) == (SEW("iand"), ("branch", "input"))


@pytest.mark.parametrize("op, bits, twice, luts, ffs", [
    ("add", 2, False, 6, 12),  # d = 3, 2-bit sums: LUTs d * 2, FFs 2 * d * 2
    ("add", 3, True, 9, 18),  # join2 over 2-bit skips: 3-bit sums
    ("iand", 1, False, 3, 6),
])
def test_cost_by_hand(op, bits, twice, luts, ffs):
    g = _graph(op, twice)
    node = "join2" if twice else "join"
    specs = g.specs()
    ins = [specs[i] for i in g.node(node).inputs]
    (row,) = g.node(node).op.cost(node, ins, Context(1, ICEBREAKER, True))
    assert (row.kind, row.shape, row.cycles, row.luts, row.ffs) == (f"sew {op}", f"3x{bits}b",
                                                                     1, luts, ffs)
    assert (row.synaptic_ops, row.dense_bound, row.memory_bits, row.block_rams) == (0, 0, 0, 0)
