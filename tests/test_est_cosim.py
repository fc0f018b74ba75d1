"""The EST in gateware on Verilator and Icarus (cocotb 2.1): every spike, membrane and SEW value
of every layer equal to the golden model, for the trained example and for random configs that
switch every part on and off, over at least 100 bins each."""

import json
from pathlib import Path

import numpy as np
import pytest

from est.compiler.cli import main as compile_main
from est.compiler.cli import write_est_build
from est.sim.est_network import run_est
from est.sim.rtl import simulate
from est.sim.trace import Trace, compare
from netgen import random_est

EXAMPLE = Path(__file__).parent.parent / "examples" / "est_small.pt"
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


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_random_est_configs_are_bit_exact(tmp_path, simulator, index):
    net = random_est(20 + index, **CONFIGS[index], n_in=5, d=6, blocks=2, heads=2, hidden=7)
    stimulus = (np.random.default_rng(index).random((100, 5)) < 0.4).astype(np.int64)
    golden = run_est(net, stimulus)
    write_est_build(tmp_path, net, stimulus, golden, lanes=1 + index % 3)
    rtl = simulate(tmp_path, simulator, stall_seed=index, golden=tmp_path / "golden.npz")
    result = compare(golden, rtl.trace)
    assert result.bins == 100 and result.mismatches == 0, result.first


@pytest.mark.parametrize("lanes", [1, 2, 3, 4])
def test_handshakes_are_defined_from_reset_on_icarus(tmp_path, lanes):
    """29 outputs: the readout has ceil(29 / lanes) >= 8 groups to clear after reset, long enough
    that valid/ready from an FSM would still be X on Icarus (the testbench requires them defined
    in the first cycle after reset)."""
    net = random_est(40 + lanes, n_in=29, d=6, blocks=1, heads=2, hidden=7)
    stimulus = (np.random.default_rng(lanes).random((40, 29)) < 0.3).astype(np.int64)
    golden = run_est(net, stimulus)
    write_est_build(tmp_path, net, stimulus, golden, lanes=lanes)
    rtl = simulate(tmp_path, "icarus", stall_seed=lanes, golden=tmp_path / "golden.npz")
    result = compare(golden, rtl.trace)
    assert result.bins == 40 and result.mismatches == 0, result.first


def test_est_block_ram_fit_is_checked_before_synthesis(example_build):
    from est import EstError
    from est.boards.spec import est_block_rams, est_memory_plan, get_board
    from est.compiler.est_ir import load_est

    net = load_est(example_build, json.loads((example_build / "ir.json").read_text()))
    icebreaker, ulx3s = get_board("icebreaker"), get_board("ulx3s-85f")
    assert sum(est_block_rams(net, 4, icebreaker).values()) > icebreaker.brams
    with pytest.raises(EstError, match=r"does not fit icebreaker: .* block RAMs against 30"):
        est_memory_plan(net, 4, icebreaker)
    # Lanes 2: the weight ROMs fit, the membranes on top of them do not, so they go to logic.
    in_logic, rams = est_memory_plan(net, 2, icebreaker)
    assert in_logic and sum(rams.values()) <= icebreaker.brams
    assert sum(est_block_rams(net, 2, icebreaker, state_in_logic=False).values()) > 30
    in_logic, rams = est_memory_plan(net, 4, ulx3s)
    assert not in_logic and "b1.mlp1.v" in rams and sum(rams.values()) <= ulx3s.brams
