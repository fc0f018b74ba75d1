"""Benchmark of the spine network (16-32-24-8 spiking MLP): writes bench/results/spine.json.

Measures: est-compile wall time (``--no-trace``: the board's output word, the readout alone);
cycles per bin of the dataflow top (:func:`est.hw.dataflow.measure_cycles`, amaranth.sim) for
lanes 1, 2, 4, 8, 16 against the dense lower bound (the sum over the layers of
``ceil(synaptic ops / lanes)``) and the memory bound (weight bits read per bin over ``lanes``
weights per cycle); bins per second of the golden interpreter (:func:`est.sim.interpreter.run`);
Verilator cycles per second and its mismatches against the golden trace.

    .venv/bin/python bench/bench_spine.py [--out bench/results/spine.json]
"""

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from est import toolenv
from est.compiler.cli import main as compile_main
from est.compiler.graph import Graph, load
from est.compiler.ops import Conv
from est.compiler.ops.conv import weight_bits
from est.hw.dataflow import measure_cycles
from est.hw.synapse import ceil_div
from est.sim.interpreter import run
from est.sim.rtl import simulate as rtl_simulate
from est.sim.trace import compare
from est.sw.spiking_mlp import make_model, save_checkpoint


def bounds(graph: Graph, lanes: int) -> dict:
    """The spine's layers (its convolutions, kernel 1) one after another: synaptic operations
    and weight bits per bin, and the dense and memory lower bounds at ``lanes``."""
    convs = [n.op for n in graph.nodes if isinstance(n.op, Conv)]
    ops = [c.weight.size for c in convs]
    bits = [weight_bits(c.weight) for c in convs]
    return {"synaptic_ops_per_bin": sum(ops),
            "dense_bound": sum(ceil_div(o, lanes) for o in ops),
            "weight_bits_per_bin": sum(o * b for o, b in zip(ops, bits, strict=True)),
            "memory_bound": sum(ceil_div(o * b, lanes * b)
                                for o, b in zip(ops, bits, strict=True))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/spine.json"))
    args = parser.parse_args()
    toolenv.apply()
    results = {"machine": {"python": platform.python_version(), "cpus": __import__("os")
                           .cpu_count()}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_checkpoint(make_model(), tmp / "model.pt")
        t0 = time.perf_counter()
        assert compile_main([str(tmp / "model.pt"), "-o", str(tmp / "spine"), "--bins", "256",
                             "--no-trace"]) == 0
        results["compile_seconds"] = round(time.perf_counter() - t0, 2)
        graph = load(tmp / "spine")
        stimulus = np.load(tmp / "spine" / "stimulus.npy")

        rows = []
        for lanes in (1, 2, 4, 8, 16):
            measured = measure_cycles(graph, lanes)
            b = bounds(graph, lanes)
            rows.append({"lanes": lanes, "cycles_per_bin": measured, **b,
                         "ratio_to_dense_bound": round(measured / b["dense_bound"], 3)})
            print(f"lanes {lanes:>2}: {measured:.0f} cycles/bin, dense bound {b['dense_bound']}, "
                  f"ratio {measured / b['dense_bound']:.3f}", flush=True)
        results["lanes"] = rows

        long = (np.random.default_rng(1).random((5000, graph.n_in)) < 0.2).astype(np.int64)
        t0 = time.perf_counter()
        run(graph, long)
        results["golden_bins_per_second"] = round(5000 / (time.perf_counter() - t0), 1)

        rtl = rtl_simulate(tmp / "spine", "verilator")
        golden, _ = run(graph, stimulus)
        results["verilator"] = {"bins": rtl.trace.bins, "mismatches":
                                compare(golden, rtl.trace).mismatches,
                                "seconds_incl_build": round(rtl.seconds, 2),
                                "cycles_per_second_incl_build": round(rtl.cycles / rtl.seconds)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "lanes"}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
