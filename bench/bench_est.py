"""Benchmark of the default small EST on the synthetic population: writes bench/results/est.json.

Trains, on the same data and budget, the default EST (all five parts on), the same architecture
in ANN mode, and the default with each part removed in turn (ablation), two runs at a time with
one thread each (2 CPU cores). Reports held-out (test split) bits/spike, Poisson NLL and R^2 for
the float EST, the integer EST (the golden-model semantics, weights 8 bits), the ANN, a fitted
coupled Poisson GLM and the true rates (upper bound), and the float-to-integer gap.

    .venv/bin/python bench/bench_est.py [--out bench/results/est.json] [--steps N]
"""

import argparse
import json
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from est.sw.est import ESTConfig
from est.sw.train import TrainConfig, run

VARIANTS = {
    "default": {},
    "ann": {"mode": "ann"},
    "no_attention": {"attention": "none"},
    "no_cpg": {"cpg": False},
    "no_tpu": {"tpu": False},
    "no_sew": {"sew": "none"},
    "no_rsm": {"rsm": 0.0},
}


def _job(name: str, steps: int) -> tuple[str, dict]:
    import torch

    torch.set_num_threads(1)
    tcfg = replace(TrainConfig(), steps=steps)
    _, result, _ = run({}, replace(ESTConfig(), **VARIANTS[name]), tcfg, progress=False,
                       baselines=name == "default")
    return name, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/est.json"))
    parser.add_argument("--steps", type=int, default=TrainConfig().steps)
    args = parser.parse_args()
    t0 = time.perf_counter()
    results = {}
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_job, name, args.steps) for name in VARIANTS]
        for future in futures:
            name, result = future.result()
            results[name] = result
            print(f"  {name:<13} float {result['float']['test']['bits_per_spike']:.4f} "
                  f"bits/spike ({result['seconds']} s)", flush=True)
    default = results["default"]
    f_bps = default["float"]["test"]["bits_per_spike"]
    i_bps = default["integer"]["test"]["bits_per_spike"]
    summary = {
        "float_est": default["float"]["test"],
        "integer_est": default["integer"]["test"],
        "ann": results["ann"]["float"]["test"],
        "glm": default["glm"]["test"],
        "true_rates": default["true_rates"]["test"],
        "integer_vs_float_relative_gap": abs(i_bps - f_bps) / abs(f_bps),
    }
    ablation = {name: {"float_bits_per_spike": r["float"]["test"]["bits_per_spike"],
                       "integer_bits_per_spike": r.get("integer", {}).get("test", {})
                       .get("bits_per_spike"),
                       "train_seconds": r["seconds"]}
                for name, r in results.items() if name != "ann"}
    out = {"summary": summary, "ablation": ablation, "runs": results,
           "wall_seconds": round(time.perf_counter() - t0, 1),
           "machine": {"cpus": 2, "python": platform.python_version()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{'model':<13} {'bits/spike':>10}")
    for name in ("float_est", "integer_est", "ann", "glm", "true_rates"):
        print(f"{name:<13} {summary[name]['bits_per_spike']:>10.4f}")
    print(f"integer vs float gap: {100 * summary['integer_vs_float_relative_gap']:.2f}% (relative)")
    print(f"\n{'ablation':<13} {'float':>8} {'integer':>8}")
    for name, row in ablation.items():
        print(f"{name:<13} {row['float_bits_per_spike']:>8.4f} "
              f"{row['integer_bits_per_spike']:>8.4f}")
    print(f"\nwrote {args.out} ({out['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
