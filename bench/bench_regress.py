"""Large randomized regression: writes bench/results/regress.json.

Runs ``est-regress`` cases (random spiking networks x random stimuli, half of them with random
valid/ready stalls) through amaranth.sim (500 by default) and through cocotb on Verilator and on
Icarus (30 each by default: each case there is a fresh Verilog build), and records configs, bins
and values compared, mismatches, and simulated cycles per second (including the per-case build
and golden run, which dominate for small cases).

    .venv/bin/python bench/bench_regress.py [--amaranth 500] [--cocotb 30] [--seed 0]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from est.sim.regress import regress


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/regress.json"))
    parser.add_argument("--amaranth", type=int, default=500, help="cases on amaranth.sim")
    parser.add_argument("--cocotb", type=int, default=30, help="cases on Verilator and Icarus")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for sims, count in ((["amaranth"], args.amaranth),
                            (["verilator", "icarus"], args.cocotb)):
            if count:
                s = regress(args.seed, list(range(count)), sims, Path(tmp) / sims[0])
                for sim in sims:
                    mine = [r for r in s["runs"] if r["simulator"] == sim]
                    runs[sim] = {**s["per_simulator"][sim],
                                 "bins_compared": sum(r["bins"] for r in mine),
                                 "values_compared": sum(r["values"] for r in mine),
                                 "configs": [r["config"] for r in mine],
                                 "failures": [r["reproducer"] for r in mine if r["reproducer"]]}
    out = {"seed": args.seed, "simulators": runs,
           "total_cases": sum(r["cases"] for r in runs.values()),
           "total_mismatches": sum(r["mismatches"] for r in runs.values()),
           "wall_seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for sim, r in runs.items():
        print(f"{sim:<10} {r['cases']:>4} cases, {r['bins_compared']:>6} bins, "
              f"{r['values_compared']:>8} values, {r['mismatches']} mismatches, "
              f"{r['cycles_per_second_incl_build']} cycles/s incl. build")
    print(f"wrote {args.out} ({out['wall_seconds']} s)")
    return 1 if out["total_mismatches"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
