"""Large randomized regression of the hardware against the golden model:
writes bench/results/regress.json.

Runs ``est-regress`` cases of seed 1 (:func:`est.sim.regress.regress`: random EST-shaped graphs
and spiking MLPs x random stimuli, lanes 1-8; every tensor traced and compared value by value)
through amaranth.sim (1000 cases by default; valid/ready stalls drawn per case, half of them)
and through cocotb on Verilator and on Icarus (50 cases each by default, every one with random
stalls: each case there is a fresh Verilog build, so they are few), one simulator at a time.

Per simulator: cases, bins and values compared, mismatches, simulations that failed outright,
seconds and simulated cycles per second (the per-case build and golden run included, which
dominate for small cases), the coverage (how many cases had each operation kind:
``summary.json``'s ``coverage``), each case's configuration, and the failing cases with the
command that replays each. Failing cases' reproducers are written under ``--keep`` (default: a
temporary folder, removed). The default budget takes hours on 2 cores (an EST-shaped case
takes seconds to tens of seconds on amaranth.sim, each RTL case a Verilog build).

    .venv/bin/python bench/bench_regress.py [--count-amaranth 1000] [--count-rtl 50]
        [--out bench/results/regress.json] [--keep DIR]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from est.sim.regress import regress

SEED = 1
RUNS = (("amaranth", "random"), ("verilator", "always"), ("icarus", "always"))  # sim, stalls


def run_one(sim: str, stalls: str, count: int, out: Path) -> dict:
    """``count`` cases of :data:`SEED` on ``sim``; the figures regress.json keeps."""
    s = regress(seed=SEED, indices=range(count), simulators=[sim], out=out, stalls=stalls)
    mine = s["per_simulator"][sim]
    failed = [r for r in s["runs"] if r["mismatches"] or r["simulation_error"] is not None]
    return {"cases": mine["cases"], "stalls": stalls, "bins_compared": s["bins_compared"],
            "values_compared": s["values_compared"], "mismatches": mine["mismatches"],
            "simulation_errors": mine["simulation_errors"], "seconds": mine["seconds"],
            "cycles": mine["cycles"],
            "cycles_per_second_incl_build": mine["cycles_per_second_incl_build"],
            "coverage": s["coverage"],
            "configs": [r["config"] for r in s["runs"]],
            "failures": [{"case": r["case"], "mismatches": r["mismatches"],
                          "simulation_error": r["simulation_error"],
                          "replay": f"est-regress --seed {SEED} --case {r['case']} --sim {sim} "
                                    f"--stalls {stalls}"} for r in failed]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/regress.json"))
    parser.add_argument("--count-amaranth", type=int, default=1000,
                        help="cases on amaranth.sim (0: none)")
    parser.add_argument("--count-rtl", type=int, default=50,
                        help="cases on Verilator and on Icarus each (0: none)")
    parser.add_argument("--keep", type=Path,
                        help="folder for summaries and failing cases' reproducers (default: "
                             "a temporary folder, removed)")
    args = parser.parse_args()
    if args.count_amaranth < 0 or args.count_rtl < 0:
        parser.error("counts must be >= 0")
    counts = {"amaranth": args.count_amaranth, "verilator": args.count_rtl,
              "icarus": args.count_rtl}
    t0 = time.perf_counter()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for sim, stalls in RUNS:
            if counts[sim]:
                runs[sim] = run_one(sim, stalls, counts[sim], work / sim)
    out = {"seed": SEED, "simulators": runs,
           "total_cases": sum(r["cases"] for r in runs.values()),
           "total_mismatches": sum(r["mismatches"] for r in runs.values()),
           "total_simulation_errors": sum(r["simulation_errors"] for r in runs.values()),
           "wall_seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for sim, r in runs.items():
        print(f"{sim:<10} {r['cases']:>4} cases (stalls {r['stalls']}), "
              f"{r['bins_compared']:>6} bins, {r['values_compared']:>8} values, "
              f"{r['mismatches']} mismatches, {r['simulation_errors']} failed simulations, "
              f"{r['seconds']} s, {r['cycles_per_second_incl_build']} cycles/s incl. build")
        print(f"{'':<10} coverage: "
              + ", ".join(f"{k} {v}" for k, v in sorted(r["coverage"].items())))
        for f in r["failures"]:
            print(f"{'':<10} FAILED case {f['case']}: {f['replay']}")
    print(f"wrote {args.out} ({out['wall_seconds']} s)")
    return 1 if out["total_mismatches"] or out["total_simulation_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
