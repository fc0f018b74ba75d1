"""The post-synthesis iCE40 netlist (yosys synth_ice40, the cells est-synth places) simulated
with yosys' cell models in Icarus: every layer bit-exact with golden, for a dataflow top and
for the core."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent


def test_ice40_netlist_of_a_small_network_is_bit_exact(tmp_path, model_pt):
    build = tmp_path / "spine"
    res = subprocess.run([BIN / "est-compile", model_pt, "-o", build, "--bins", "12",
                          "--lanes", "2"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([BIN / "est-sim", build, "--sim", "icarus", "--netlist", "icebreaker"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    netlist = (build / "netlist_icebreaker.v").read_text()
    assert "SB_LUT4" in netlist and "SB_RAM40_4K" in netlist  # gates, not the RTL
    res = subprocess.run([BIN / "est-compare", build, "--no-view"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "rtl_icarus_netlist_icebreaker.npz" in res.stdout
    assert "values over 12 bins in 5 tensors: 0 mismatches" in res.stdout
    stats = json.loads((build / "rtl_icarus_netlist_icebreaker.json").read_text())
    assert stats["bins"] == 12 and stats["scoreboard_mismatches"] == 0


def test_netlist_needs_icarus_and_an_ice40_board(tmp_path, model_pt):
    build = tmp_path / "spine"
    assert subprocess.run([BIN / "est-compile", model_pt, "-o", build, "--bins", "2"],
                          capture_output=True).returncode == 0
    res = subprocess.run([BIN / "est-sim", build, "--netlist", "icebreaker"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--sim icarus" in res.stderr
    res = subprocess.run([BIN / "est-sim", build, "--sim", "icarus", "--netlist", "ulx3s-85f"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "iCE40 boards only" in res.stderr
    assert not list(build.glob("rtl_*"))


def test_ice40_netlist_of_the_core_runs_two_models_bit_exact(tmp_path):
    """The core (a small spec, its weights in the UP5K's SPRAM cells) through yosys
    synth_ice40 as est-synth runs it, simulated at gate level on Icarus: an MLP then a
    convolution network loaded through the load port, every traced tensor equal to the golden
    interpreter's. A core built without a model starts halted: SPRAM cells read X until
    written, so running before the load would show X here."""
    from est.boards.spec import get_board
    from est.compiler.program import CoreSpec, compile_program
    from est.sim.core_sim import simulate_core_rtl, write_core_netlist
    from est.sim.interpreter import run
    from netgen import random_conv_graph, random_mlp_graph, random_stimulus

    spec = CoreSpec(lanes=2, weight_bits=8, weight_words=16384, act_words=256,
                    neuron_words=64, acc_words=16)
    graphs = [random_mlp_graph(2, n_in=12, hidden=(6,), n_out=4, weight_bits=8),
              random_conv_graph(1, kernels=(3, 2))]
    runs = [(compile_program(graphs[0], spec), random_stimulus(3, 4, 12)),
            (compile_program(graphs[1], spec), random_stimulus(1, 4, 9, rate=1.2, bits=3))]
    netlist = write_core_netlist(tmp_path, spec, get_board("icebreaker"))
    assert "SB_SPRAM256KA" in netlist.read_text()
    got = simulate_core_rtl(spec, runs, "icarus", tmp_path, stall_seed=2, source=netlist,
                            label="icarus_netlist")
    for g, (_, x), trace in zip(graphs, runs, got.traces, strict=True):
        gold, _ = run(g, x)
        assert trace.meta["source"] == "icarus_netlist-core"
        for name, value in trace.arrays.items():
            np.testing.assert_array_equal(value, gold.arrays[name], err_msg=f"{g.name} {name}")


def test_ice40_netlist_of_the_core_with_its_ssa_unit_is_bit_exact(tmp_path):
    """The core generated with its SSA unit, at gate level on Icarus: an EST with SSA
    attention (two heads of 4 channels over 5 bins), every traced tensor equal to the golden
    interpreter's."""
    from est.boards.spec import get_board
    from est.compiler.program import CoreSpec, compile_program
    from est.sim.core_sim import simulate_core_rtl, write_core_netlist
    from est.sim.interpreter import run
    from netgen import random_est_graph, random_stimulus

    spec = CoreSpec(lanes=2, weight_bits=8, weight_words=16384, act_words=256,
                    neuron_words=128, acc_words=8, ssa=True)
    graph = random_est_graph(1, attention="ssa", heads=2, window=5, blocks=1, tpu=False,
                             cpg=False)
    x = random_stimulus(0, 5, graph.n_in, rate=0.5)
    netlist = write_core_netlist(tmp_path, spec, get_board("icebreaker"))
    got = simulate_core_rtl(spec, [(compile_program(graph, spec), x)], "icarus", tmp_path,
                            source=netlist, label="icarus_netlist")
    gold, _ = run(graph, x)
    assert gold.arrays["b0.attn/v"].any()
    for name, value in got.traces[0].arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
