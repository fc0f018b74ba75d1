"""Per-node costs of a graph (compiler/costs.py): the table and its totals, lower bounds along
the longest path against the measured cycles, the memory plan, the fit check, and --lanes auto
(the margin it applies is tested in tests/test_spec.py)."""

import pytest

from est import EstError
from est.boards.spec import get_board
from est.compiler import costs
from est.compiler.costs import cost_report, format_table, memory_plan
from est.hw.dataflow import measure_cycles
from netgen import random_est_graph, random_mlp_graph

CONFIGS = [
    dict(attention="sdsa", sew="add", cpg=True, tpu=True, rsm=0.5),
    dict(attention="ssa", sew="and", cpg=False, tpu=True, rsm=0.0),
    dict(attention="none", sew="none", cpg=False, tpu=False, rsm=0.0),
]
ICEBREAKER = get_board("icebreaker")


def _graph(index: int):
    return random_est_graph(40 + index, **CONFIGS[index], n_in=5, d=6, blocks=2, heads=2,
                            hidden=7)


@pytest.mark.parametrize("index", range(len(CONFIGS)))
@pytest.mark.parametrize("lanes", [1, 3])
def test_stages_cover_the_network_and_bound_the_measured_cycles(index, lanes):
    g = _graph(index)
    cycles = measure_cycles(g, lanes)
    report = cost_report(g, lanes, ICEBREAKER, state_in_logic=True, measured_cycles=cycles)
    names = [s["name"] for s in report["stages"]]
    costed = [n.name for n in g.nodes if n.op.KIND not in ("input", "concat")]
    assert names == costed + ["board I/O"]  # one row per node, in node order
    attention, sew, tpu = (CONFIGS[index][k] for k in ("attention", "sew", "tpu"))
    for i in range(2):
        assert (f"b{i}.q.syn" in names) == (attention != "none")
        assert (f"b{i}.tpu" in names) == tpu
        assert f"b{i}.mlp1.syn" in names and (f"b{i}.out" in names) == (sew != "none")
    total = report["total"]
    for key in ("synaptic_ops", "memory_bits", "block_rams", "luts", "ffs"):
        assert total[key] == sum(s[key] for s in report["stages"]), key
    for s in report["stages"]:
        assert s["cycles"] >= s["dense_bound"] and s["cycles"] >= s["memory_bound"], s
        assert s["luts"] > 0 and s["ffs"] > 0, s
    # the bound is the longest path: Q, K and V (parallel branches) count once
    assert total["dense_bound"] == costs.longest_path(g, costs.stages(g, lanes, ICEBREAKER, True),
                                                      "dense_bound")
    if attention != "none":
        assert total["dense_bound"] < sum(s["dense_bound"] for s in report["stages"])
    assert 0 < total["dense_bound"] <= cycles == report["cycles_per_bin"]
    table = format_table(report)
    assert table.splitlines()[-3].startswith("total ") and f" {cycles} " in table.splitlines()[-3]
    assert all(name in table for name in names)
    assert table.splitlines()[-1].startswith("fit check: logic ~")


def test_longest_path_takes_the_slowest_branch_not_the_sum():
    g = _graph(0)
    rows = costs.stages(g, 2, ICEBREAKER, False)
    own = {r.name: r.dense_bound for r in rows}
    q, k, v = (own[f"b0.{x}.syn"] for x in "qkv")
    bound = costs.longest_path(g, rows, "dense_bound")
    assert bound < sum(own.values())
    # Q, K and V read the same spikes at once: the bound takes the slowest of them. Make K
    # 1000 slower than the slowest: the bound grows by exactly 1000, not by the others' sum.
    for r in rows:
        if r.name == "b0.k.syn":
            r.dense_bound = max(q, k, v) + 1000
    assert costs.longest_path(g, rows, "dense_bound") == bound + 1000


def test_membranes_in_block_ram_trade_flip_flops_for_block_rams():
    g = random_est_graph(7, attention="sdsa", sew="add", cpg=True, tpu=True, rsm=0.5, n_in=5,
                         d=6, blocks=1, heads=2, hidden=7)
    logic = cost_report(g, 1, ICEBREAKER, state_in_logic=True)
    ram = cost_report(g, 1, ICEBREAKER, state_in_logic=False)
    assert ram["total"]["block_rams"] > logic["total"]["block_rams"]
    assert ram["total"]["ffs"] < logic["total"]["ffs"]
    assert (logic["membranes"], ram["membranes"]) == ("logic", "block RAM")
    assert memory_plan(g, 1, ICEBREAKER)[0] is False  # small enough: membranes in RAM
    assert costs.block_rams(g, 1, ICEBREAKER, False) == memory_plan(g, 1, ICEBREAKER)[1]


def test_weight_roms_over_the_block_rams_are_refused_naming_the_largest():
    g = random_mlp_graph(1, n_in=100, hidden=(128,), n_out=32, weight_bits=8)
    with pytest.raises(EstError) as err:
        memory_plan(g, 4, ICEBREAKER)
    msg = str(err.value)
    assert msg.startswith("the model does not fit icebreaker: its weight ROMs need about ")
    assert "block RAMs against 30" in msg and "largest: fc1.syn" in msg
    assert "--board ulx3s-85f" in msg and "\n" not in msg
    with pytest.raises(EstError, match="weight ROMs"):
        costs.fit(g, 4, ICEBREAKER)
    assert costs.logic_fit(g, 4, ICEBREAKER)["verdict"] == "over"  # membranes in logic
    state_in_logic, rams = memory_plan(g, 4, get_board("ulx3s-85f"))
    assert sum(rams.values()) <= 208


def _mid():
    """An EST whose logic estimate on the iCEBreaker fits at lanes 1, is tight (placement
    uncertain) at lanes 2 and over the margin at lanes 4."""
    return random_est_graph(3, d=6, hidden=7, n_in=8, blocks=1)


def test_fit_refuses_over_the_margin_and_strict_refuses_tight():
    g = _mid()
    assert [costs.logic_fit(g, lanes, ICEBREAKER)["verdict"] for lanes in (1, 2, 4)] == [
        "fits", "tight", "over"]
    state_in_logic, report = costs.fit(g, 1, ICEBREAKER)
    assert report["logic_fit"]["verdict"] == "fits" and state_in_logic is False
    assert costs.fit(g, 2, ICEBREAKER)[1]["logic_fit"]["verdict"] == "tight"
    with pytest.raises(EstError, match="at lanes 2: its logic estimate .* designs of this size "
                                       "have failed to place"):
        costs.fit(g, 2, ICEBREAKER, strict=True)
    with pytest.raises(EstError) as err:
        costs.fit(g, 4, ICEBREAKER)
    msg = str(err.value)
    assert msg.startswith("the model does not fit icebreaker at lanes 4: its logic estimate is")
    assert "(largest nodes, LUT4s + flip-flops: " in msg and "fewer lanes (--lanes)" in msg
    assert "\n" not in msg
    verdict = costs.logic_fit(g, 4, ICEBREAKER)
    assert verdict["estimator"] == costs.ESTIMATOR == "dataflow"
    assert verdict["estimate"] == costs.logic_use(
        cost_report(g, 4, ICEBREAKER, memory_plan(g, 4, ICEBREAKER)[0])["total"], ICEBREAKER)


def test_logic_use_counts_cells_on_ice40_and_luts_on_ecp5():
    total = {"luts": 300, "ffs": 500}
    assert costs.logic_use(total, ICEBREAKER) == 800
    assert costs.logic_use(total, get_board("ulx3s-85f")) == 500


def test_auto_lanes_is_the_most_that_fit_and_never_more_than_the_widest_array():
    g = _graph(2)  # d 6, hidden 7, 5 outputs: 7 neurons at most
    assert costs.widest(g) == 7
    assert costs.auto_lanes(g, get_board("ulx3s-85f")) == 4  # 8 lanes would update 7 at most
    assert costs.auto_lanes(_mid(), ICEBREAKER) == 1  # lanes 2 is tight: not chosen
    # nothing within the warning line: the most lanes under the refusal line
    tight = random_est_graph(3, d=16, hidden=16, n_in=8, blocks=1)
    assert costs.logic_fit(tight, 1, ICEBREAKER)["verdict"] == "tight"
    assert costs.auto_lanes(tight, ICEBREAKER) == 1
    with pytest.raises(EstError, match="does not fit icebreaker at lanes 1"):  # nothing at all
        costs.auto_lanes(random_est_graph(3, d=24, hidden=24, n_in=8, blocks=1), ICEBREAKER)
