"""The EST in gateware on Verilator and Icarus (cocotb 2.1): every spike, membrane and SEW value
of every layer equal to the golden model, for a trained EST (est_small as trained before the
slow readouts, tests/data/est_small_dataflow.pt: the dataflow top drives one output) and for
random configs that switch every part on and off, over at least 100 bins each."""

import json
from pathlib import Path

import numpy as np
import pytest

from est.compiler.cli import main as compile_main
from est.compiler.cli import write_build
from est.sim.interpreter import run
from est.sim.rtl import simulate
from est.sim.trace import Trace, compare
from netgen import random_est_graph

EXAMPLE = Path(__file__).parent / "data" / "est_small_dataflow.pt"
SIMULATORS = ["verilator", "icarus"]
CONFIGS = [
    dict(attention="sdsa", sew="add", cpg=True, tpu=True, rsm=0.5),
    dict(attention="ssa", sew="and", cpg=False, tpu=True, rsm=0.0),
    dict(attention="sdsa", sew="iand", cpg=True, tpu=False, rsm=0.25),
    dict(attention="none", sew="none", cpg=False, tpu=True, rsm=0.5),
]


@pytest.fixture(scope="module")
def example_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("est") / "example"
    assert compile_main([str(EXAMPLE), "-o", str(out), "--bins", "100", "--lanes", "8"]) == 0
    return out


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_example_est_is_bit_exact_in_every_layer(example_build, simulator):
    golden = Trace.load(example_build / "golden.npz")
    rtl = simulate(example_build, simulator, stall_seed=3, golden=example_build / "golden.npz")
    result = compare(golden, rtl.trace)
    assert result.bins == 100 and rtl.scoreboard_mismatches == 0
    assert result.mismatches == 0, result.first
    fields = json.loads((example_build / "top.json").read_text())["output_fields"]
    assert len(result.tensors) == len(fields) == 39


# Every config on Icarus, the first two on Verilator too (Verilator's build of a random EST
# takes about a minute; bench/bench_regress.py runs random graphs on both at scale).
PAIRS = [(0, "verilator"), (0, "icarus"), (1, "verilator"), (1, "icarus"), (2, "icarus"),
         (3, "icarus")]


@pytest.fixture(scope="module")
def config_build(tmp_path_factory):
    """Config ``index`` as a build folder (Verilog written once, simulated by each
    simulator)."""
    builds = {}

    def build(index: int) -> Path:
        if index not in builds:
            graph = random_est_graph(20 + index, **CONFIGS[index], n_in=5, d=6, blocks=2,
                                     heads=2, hidden=7)
            stimulus = (np.random.default_rng(index).random((100, 5)) < 0.4).astype(np.int64)
            golden, _ = run(graph, stimulus)
            out = tmp_path_factory.mktemp(f"config{index}")
            write_build(out, graph, stimulus, golden, 1 + index % 3, trace=True)
            builds[index] = out
        return builds[index]

    return build


@pytest.mark.parametrize("index, simulator", PAIRS)
def test_random_est_configs_are_bit_exact(config_build, index, simulator):
    build = config_build(index)
    golden = Trace.load(build / "golden.npz")
    rtl = simulate(build, simulator, stall_seed=index, golden=build / "golden.npz")
    result = compare(golden, rtl.trace)
    assert result.bins == 100 and result.mismatches == 0, result.first
    assert len(result.tensors) == len(json.loads((build / "top.json").read_text())[
        "output_fields"])


@pytest.mark.parametrize("lanes", [1, 2, 3, 4])
def test_handshakes_are_defined_from_reset_on_icarus(tmp_path, lanes):
    """29 outputs: the readout has ceil(29 / lanes) >= 8 groups to clear after reset, long enough
    that valid/ready from an FSM would still be X on Icarus (the testbench requires them defined
    in the first cycle after reset)."""
    graph = random_est_graph(40 + lanes, n_in=29, d=6, blocks=1, heads=2, hidden=7)
    stimulus = (np.random.default_rng(lanes).random((40, 29)) < 0.3).astype(np.int64)
    golden, _ = run(graph, stimulus)
    write_build(tmp_path, graph, stimulus, golden, lanes, trace=True)
    rtl = simulate(tmp_path, "icarus", stall_seed=lanes, golden=tmp_path / "golden.npz")
    result = compare(golden, rtl.trace)
    assert result.bins == 40 and result.mismatches == 0, result.first


def test_est_block_ram_fit_is_checked_before_synthesis(example_build):
    from est import EstError
    from est.boards.spec import get_board
    from est.compiler.costs import block_rams, memory_plan
    from est.compiler.graph import load

    graph = load(example_build)
    icebreaker, ulx3s = get_board("icebreaker"), get_board("ulx3s-85f")
    small = get_board("ulx3s-12f")  # 32 block RAMs
    assert sum(block_rams(graph, 4, icebreaker, state_in_logic=True).values()) > icebreaker.brams
    with pytest.raises(EstError, match=r"does not fit icebreaker: .* block RAMs against 30"):
        memory_plan(graph, 4, icebreaker)
    # the ULX3S-12F: the weight ROMs fit, the membranes on top of them do not, so they go to logic
    in_logic, rams = memory_plan(graph, 4, small)
    assert in_logic and sum(rams.values()) <= small.brams
    assert sum(block_rams(graph, 4, small, state_in_logic=False).values()) > small.brams
    in_logic, rams = memory_plan(graph, 4, ulx3s)
    assert not in_logic and "b1.mlp1" in rams and sum(rams.values()) <= ulx3s.brams
