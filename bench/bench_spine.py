"""Benchmark of the spine network (16-32-24-8 spiking MLP): writes bench/results/spine.json.

Measures: est-compile wall time; cycles per bin in amaranth.sim for lanes 1, 2, 4, 8, 16 against
the dense lower bound (synaptic ops per bin / lanes) and the memory bound (weight bits read per
bin / weight-RAM bits per cycle); golden-model bins per second; Verilator cycles per second.

    .venv/bin/python bench/bench_spine.py [--out bench/results/spine.json]
"""

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from est import toolenv
from est.compiler import ir
from est.compiler.cli import main as compile_main
from est.hw.synapse import ceil_div
from est.sim.amaranth_sim import simulate as amaranth_simulate
from est.sim.network import run
from est.sim.rtl import simulate as rtl_simulate
from est.sim.trace import compare
from est.sw.spiking_mlp import make_model, save_checkpoint


def bounds(net: ir.Network) -> dict:
    ops = sum(layer.n_in * layer.n_out for layer in net.layers)
    dense = sum(ceil_div(layer.n_in * layer.n_out, net.lanes) for layer in net.layers)
    weight_bits = sum(layer.n_in * layer.n_out * layer.weight_bits for layer in net.layers)
    ram_bits_per_cycle = [net.lanes * layer.weight_bits for layer in net.layers]
    memory = sum(ceil_div(layer.n_in * layer.n_out * layer.weight_bits, bits)
                 for layer, bits in zip(net.layers, ram_bits_per_cycle, strict=True))
    return {"synaptic_ops_per_bin": ops, "dense_bound": dense, "weight_bits_per_bin": weight_bits,
            "memory_bound": memory}


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
        compile_main([str(tmp / "model.pt"), "-o", str(tmp / "spine"), "--bins", "256"])
        results["compile_seconds"] = round(time.perf_counter() - t0, 2)
        net = ir.load(tmp / "spine")
        stimulus = np.load(tmp / "spine" / "stimulus.npy")

        rows = []
        for lanes in (1, 2, 4, 8, 16):
            lnet = replace(net, lanes=lanes)
            sim = amaranth_simulate(lnet, stimulus[:6], trace=False)
            measured = float(np.mean(sim.latency_cycles[1:]))
            b = bounds(lnet)
            rows.append({"lanes": lanes, "cycles_per_bin": measured, **b,
                         "ratio_to_dense_bound": round(measured / b["dense_bound"], 3)})
            print(f"lanes {lanes:>2}: {measured:.0f} cycles/bin, dense bound {b['dense_bound']}, "
                  f"ratio {measured / b['dense_bound']:.3f}", flush=True)
        results["lanes"] = rows

        long = (np.random.default_rng(1).random((5000, net.n_in)) < 0.2).astype(np.int64)
        t0 = time.perf_counter()
        run(net, long)
        results["golden_bins_per_second"] = round(5000 / (time.perf_counter() - t0), 1)

        rtl = rtl_simulate(tmp / "spine", "verilator")
        golden, _ = run(net, stimulus)
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
