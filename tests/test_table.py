"""``table`` (compiler/ops/table.py) and the gateware it lowers to (hw/sew.py, CPGTable): the
ROM plays the table's rows by its phase accumulator (one a bin, wrapping; 3-bit values at a
fractional advance; from a start) under random stalls; in a graph, the rows by hand (in order,
wrapping; a fractional advance; from a start), a CPG table by hand, the PyTorch path against
the golden model, the table's checks, save/load and the cost row."""

import random

import numpy as np
import pytest

from est.boards.spec import get_board
from est.compiler import graph as graph_ir
from est.compiler.costs import Context
from est.compiler.graph import GraphBuilder, IRError
from est.compiler.ops import Concat, Conv, Input, Readout, Table
from est.hw.dataflow import DataflowTop
from est.hw.sew import CPGTable
from est.sim import golden
from est.sim.amaranth_sim import run_bench, simulate_top, stream_get
from est.sim.interpreter import run
from est.sim.words import unpack
from est.sw.integer import integer_forward
from netgen import check_integer_path, random_est_graph, random_stimulus


@pytest.mark.parametrize("table, advance, start, bins", [
    (golden.cpg_table(13, 6), 1 << 15, 0, 30),  # one row a bin: row t mod 13
    (golden.cpg_table(13, 6), 1 << 15, 7 << 15, 30),  # from row 7
    # 3-bit values, 0.377 rows a bin: rows repeat, the accumulator wraps mid-row
    (np.random.default_rng(2).integers(0, 8, (5, 4)), 12345, 0, 60),
    (np.random.default_rng(2).integers(0, 8, (5, 4)), 12345, 150000, 60),  # from row 4.58
])
def test_cpg_table_rom_plays_the_table_by_its_accumulator(table, advance, start, bins):
    dut = CPGTable(table, advance, start)
    p, n = table.shape
    bits = max(1, int(table.max()).bit_length())
    assert bits == (1 if advance == 1 << 15 else 3)
    stall, got = random.Random(1), []

    async def bench(ctx):
        for _ in range(bins):
            payload, _ = await stream_get(ctx, dut.o, stall)
            got.append(payload)

    run_bench(dut, bench)
    acc = start  # 15 fraction bits: row acc >> 15, then acc + advance, wrapping at P << 15
    for t, word in enumerate(got):
        np.testing.assert_array_equal(unpack(word, n, bits), table[acc >> 15], err_msg=f"bin {t}")
        acc += advance
        if acc >= p << 15:
            acc -= p << 15


def test_a_fractional_table_in_the_dataflow_top_is_bit_exact():
    """3-bit values at 0.377 rows a bin from row 3.05, widened beside the input's spikes by the
    concat, into the readout: equal to the golden model's with random stalls."""
    table = np.random.default_rng(4).integers(0, 8, (5, 3))
    g = _graph(table, 12345, 100000)
    stim = random_stimulus(4, 40, 2, 0.4)
    gold, _ = run(g, stim)
    got = simulate_top(DataflowTop(g, 1), stim, stall_seed=3)
    np.testing.assert_array_equal(got.trace.arrays["readout/v"], gold.arrays["readout/v"])


# --- the operation in a graph: values by hand, the PyTorch path, checks, save/load, cost -----

ICEBREAKER = get_board("icebreaker")
ROWS = np.array([[1, 0], [0, 1], [1, 1]])  # P = 3 positions of 2 spikes


def _graph(table: np.ndarray, advance: int = 1 << 15, start: int = 0):
    """The table beside a 2-channel input (as the EST's CPG: ``concat(input, cpg)``) into a
    kernel-1 conv and a readout."""
    g = GraphBuilder()
    both = g.add("embed.in", Concat(), g.add("input", Input(2)),
                 g.add("cpg", Table(table, advance, start)))
    g.add("readout", Readout(None, 16, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, 2 + table.shape[1]), np.int64),
                                    np.zeros(1, np.int64)), both))
    return g.build("tabled", ("readout",))


def test_rows_played_in_order_and_wrapping():
    # bin t reads row t mod 3, whatever the stimulus: rows 0 1 2 0 1 2 0
    want = [[1, 0], [0, 1], [1, 1], [1, 0], [0, 1], [1, 1], [1, 0]]
    for stim in (np.zeros((7, 2), np.int64), np.ones((7, 2), np.int64)):
        trace, _ = run(_graph(ROWS), stim)
        assert trace.arrays["cpg/spikes"].tolist() == want
        assert integer_forward(_graph(ROWS), stim)["cpg/spikes"].tolist() == want


def test_one_row_table_repeats():
    trace, _ = run(_graph(np.array([[0, 1, 1]])), np.zeros((3, 2), np.int64))
    assert trace.arrays["cpg/spikes"].tolist() == [[0, 1, 1]] * 3


def test_cpg_table_by_hand():
    # semantics 8.2 with C = 2: w_0 = 1; T[p, 0] = [sin p >= 0.8], T[p, 1] = [cos p >= 0.8]
    # sin 0, 1, 2, 3 = 0, .84, .91, .14; cos = 1, .54, -.42, -.99
    assert golden.cpg_table(4, 2).tolist() == [[0, 1], [1, 0], [1, 0], [0, 0]]


@pytest.mark.parametrize("seed", [1, 2])
def test_pytorch_path_equals_the_golden_model(seed):
    rng = np.random.default_rng(seed)
    graphs = [random_est_graph(seed, attention="none", sew="add", cpg=True, tpu=False, n_in=4,
                               d=4, blocks=1, hidden=5),
              _graph((rng.random((5, 3)) < 0.5).astype(np.int64)),
              _graph(golden.cpg_table(16, 6)),
              _graph(golden.rhythm_table(32, 7), 15768),  # a rhythm of 66.5 bins
              _graph(golden.rhythm_table(32, 7), 15768, 987654)]  # from row 30.14
    for g in graphs:
        assert "table" in g.kinds()
        stim = random_stimulus(seed, 40, g.n_in, 0.5)  # 40 bins: the tables wrap
        golden_trace, _ = check_integer_path(g, stim, g.name)


@pytest.mark.parametrize("table", [
    np.array([[0, 256]]),  # wider than 8 bits
    np.array([[0, -1]]),
    np.array([[0.0, 1.0]]),  # not integers
    np.array([[False, True]]),
    np.array([1, 0, 1]),  # not [positions, n]
    np.zeros((0, 2), np.int64),  # no positions
])
def test_bad_table_refused(table):
    with pytest.raises(IRError) as err:
        Table(table).check("t", [])
    assert (err.value.node, err.value.field) == ("t", "table")
    if table.ndim == 2:  # and in a graph, by its node's name
        with pytest.raises(IRError) as err:
            _graph(table)
        assert (err.value.node, err.value.field) == ("cpg", "table")


def test_fractional_advance_by_hand():
    # P = 3 rows, advance 0.75 rows a bin (24576 = 0.75 * 2^15): acc / 2^15 = 0, .75, 1.5, 2.25,
    # 3 - 3 = 0, .75, ...: rows 0 0 1 2 0 0 1; values of 2 bits (the output is 2 bits wide)
    rows = np.array([[3, 0], [1, 2], [0, 1]])
    want = [[3, 0], [3, 0], [1, 2], [0, 1], [3, 0], [3, 0], [1, 2]]
    g = _graph(rows, advance=24576)
    assert g.specs()["cpg"].bits == 2
    stim = np.zeros((7, 2), np.int64)
    trace, _ = run(g, stim)
    assert trace.arrays["cpg/spikes"].tolist() == want
    assert integer_forward(g, stim)["cpg/spikes"].tolist() == want


def test_advance_wraps_past_the_last_row():
    # P = 2, advance 1.5 rows: acc / 2^15 = 0, 1.5, 3 - 2 = 1, 2.5 - 2 = .5, 2 - 2 = 0: 0 1 1 0 0
    trace, _ = run(_graph(np.array([[1, 0], [0, 1]]), advance=3 << 14), np.zeros((5, 2), np.int64))
    assert trace.arrays["cpg/spikes"][:, 1].tolist() == [0, 1, 1, 0, 0]


def test_start_by_hand():
    # P = 3 rows, advance 0.75 rows, start 2.5 rows (81920): acc / 2^15 = 2.5, 3.25 - 3 = .25,
    # 1, 1.75, 2.5, ...: rows 2 0 1 1 2
    rows = np.array([[3, 0], [1, 2], [0, 1]])
    want = [[0, 1], [3, 0], [1, 2], [1, 2], [0, 1]]
    g = _graph(rows, advance=24576, start=81920)
    stim = np.zeros((5, 2), np.int64)
    trace, _ = run(g, stim)
    assert trace.arrays["cpg/spikes"].tolist() == want
    assert integer_forward(g, stim)["cpg/spikes"].tolist() == want
    # the table's rows from bin 0 of the stream: bin t is bin t + 5 of a stream started at 0
    late = run(_graph(rows, advance=24576, start=(5 * 24576) % (3 << 15)), stim)[0]
    np.testing.assert_array_equal(late.arrays["cpg/spikes"],
                                  run(_graph(rows, advance=24576),
                                      np.zeros((10, 2), np.int64))[0].arrays["cpg/spikes"][5:])


@pytest.mark.parametrize("start", [-1, 3 << 15, 1.5, True])
def test_bad_start_refused(start):
    # P = 3 rows: 0 .. (3 << 15) - 1
    with pytest.raises(IRError) as err:
        _graph(ROWS, start=start)
    assert (err.value.node, err.value.field) == ("cpg", "start")


@pytest.mark.parametrize("advance", [0, -1, 3 << 15, 1.5, True])
def test_bad_advance_refused(advance):
    # P = 2 rows: at most 2 << 15 = 65536, and at most 0xFFFF (a 16-bit word) - so 65535 here
    with pytest.raises(IRError) as err:
        _graph(np.array([[1, 0], [0, 1]]), advance=advance)
    assert (err.value.node, err.value.field) == ("cpg", "advance")


def test_rhythm_table_quadrants():
    # 8 rows of amplitude 7: row p at phase 2 pi (p + 1/2) / 8; the 4 columns are the positive
    # and negative parts of round(7 sin) and round(7 cos)
    t = golden.rhythm_table(8, 7)
    assert t.shape == (8, 4) and t.min() == 0 and t.max() <= 7
    phase = 2 * np.pi * (np.arange(8) + 0.5) / 8
    np.testing.assert_array_equal(t[:, 0] - t[:, 1], np.round(7 * np.sin(phase)))
    np.testing.assert_array_equal(t[:, 2] - t[:, 3], np.round(7 * np.cos(phase)))
    assert (np.minimum(t[:, 0], t[:, 1]) == 0).all() and (np.minimum(t[:, 2], t[:, 3]) == 0).all()
    assert t[0].tolist() == [3, 0, 6, 0]  # 7 sin(pi/8) = 2.68, 7 cos(pi/8) = 6.47


def test_saved_and_loaded(tmp_path):
    table = golden.cpg_table(13, 6)
    _graph(table, 12345, 54321).save(tmp_path)
    loaded = graph_ir.load(tmp_path).node("cpg").op
    assert isinstance(loaded, Table) and np.issubdtype(loaded.table.dtype, np.integer)
    np.testing.assert_array_equal(loaded.table, table)
    assert (loaded.advance, loaded.start) == (12345, 54321)


@pytest.mark.parametrize("positions, n, luts, brams", [
    (3, 2, 2 + 20, 0),  # 3 words in logic: a LUT4 per 16 entries of each of 2 bits, + 20
    (100, 6, 20, 1),  # deeper than 64 words: one 256x16 block RAM, no ROM LUTs
])
def test_cost_by_hand(positions, n, luts, brams):
    g = _graph(np.ones((positions, n), np.int64))
    (row,) = g.node("cpg").op.cost("cpg", [], Context(1, ICEBREAKER, False))
    assert (row.kind, row.shape, row.luts, row.ffs) == ("rom", f"{n}x1b", luts, 8 + n)
    assert (row.memory_bits, row.block_rams) == (positions * n, brams)
    assert (row.synaptic_ops, row.cycles, row.dense_bound, row.memory_bound) == (0, 0, 0, 0)
