"""Large randomized regression of the hardware against the golden model:
writes bench/results/regress.json.

Runs ``est-regress`` cases of seed 1 (:func:`est.sim.regress.regress`: random EST-shaped graphs
and spiking MLPs x random stimuli, lanes 1-8; every tensor traced and compared value by value)
through amaranth.sim (1000 cases by default; valid/ready stalls drawn per case, half of them)
and through cocotb on Verilator and on Icarus (50 cases each by default, every one with random
stalls: each case there is a fresh Verilog build, so they are few).

The cases run in chunks of ``--chunk`` on ``--jobs`` worker processes. Each finished chunk
leaves its ``summary.json`` under ``--work`` (default ``build/bench_regress``), and a rerun with
the same counts skips the chunks already done, so a run that is stopped loses at most the
chunks in flight (``--fresh`` starts over); every chunk records the commit it ran at
(``commits`` in the JSON lists them all). Failing cases' reproducers stay in their chunk's
folder.

Per simulator: cases, bins and values compared, mismatches, simulations that failed outright,
CPU seconds summed over cases and simulated cycles per second (the per-case build and golden
run included, which dominate for small cases), the coverage (how many cases had each operation
kind), each case's configuration, and the failing cases with the command that replays each.
The default budget takes hours on 2 cores (an EST-shaped case takes seconds to tens of seconds
on amaranth.sim, each RTL case a Verilog build).

    .venv/bin/python bench/bench_regress.py [--count-amaranth 1000] [--count-rtl 50]
        [--jobs 2] [--chunk 20] [--work build/bench_regress] [--fresh]
        [--out bench/results/regress.json]
"""

import argparse
import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from est.sim.regress import regress

SEED = 1
COMMIT = os.environ.get("EST_COMMIT") or subprocess.run(
    ["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
    capture_output=True, text=True).stdout.strip() or "unknown"
"""The commit the cases run at (``EST_COMMIT`` when the code is a copy outside git); each
chunk records it, so a run resumed after a change says which cases ran at which commit."""
RUNS = (("amaranth", "random"), ("verilator", "always"), ("icarus", "always"))  # sim, stalls


def run_chunk(sim: str, stalls: str, start: int, stop: int, folder: Path) -> dict:
    """Cases ``start..stop-1`` on ``sim`` into ``folder``, or the summary a previous run left
    there."""
    done = folder / "summary.json"
    if done.is_file():
        summary = json.loads(done.read_text())
        if [r["case"] for r in summary["runs"]] == list(range(start, stop)):
            print(f"bench_regress: {sim} cases {start}-{stop - 1}: done before, kept", flush=True)
            return summary
    summary = regress(seed=SEED, indices=list(range(start, stop)), simulators=[sim],
                      out=folder, stalls=stalls)
    summary["commit"] = COMMIT
    done.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def merge(sim: str, stalls: str, summaries: list[dict]) -> dict:
    """The figures regress.json keeps for one simulator, over its chunks."""
    rows = [r for s in summaries for r in s["runs"]]
    coverage: dict[str, int] = {}
    for s in summaries:
        for kind, n in s["coverage"].items():
            coverage[kind] = coverage.get(kind, 0) + n
    seconds = sum(r["seconds"] for r in rows)
    cycles = sum(r["cycles"] for r in rows)
    failed = [r for r in rows if r["mismatches"] or r["simulation_error"] is not None]
    return {"cases": len(rows), "stalls": stalls, "bins_compared": sum(r["bins"] for r in rows),
            "values_compared": sum(r["values"] for r in rows),
            "mismatches": sum(r["mismatches"] for r in rows),
            "simulation_errors": sum(r["simulation_error"] is not None for r in rows),
            "cpu_seconds": round(seconds, 1), "cycles": cycles,
            "cycles_per_second_incl_build": round(cycles / seconds, 1) if seconds else None,
            "coverage": coverage,
            "commits": sorted({s.get("commit", "unknown") for s in summaries}),
            "configs": [r["config"] for r in rows],
            "failures": [{"case": r["case"], "mismatches": r["mismatches"],
                          "simulation_error": r["simulation_error"],
                          "reproducer": r["reproducer"],
                          "replay": f"est-regress --seed {SEED} --case {r['case']} --sim {sim} "
                                    f"--stalls {stalls}"} for r in failed]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/regress.json"))
    parser.add_argument("--count-amaranth", type=int, default=1000,
                        help="cases on amaranth.sim (0: none)")
    parser.add_argument("--count-rtl", type=int, default=50,
                        help="cases on Verilator and on Icarus each (0: none)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--chunk", type=int, default=20, help="cases per chunk")
    parser.add_argument("--work", type=Path, default=Path("build/bench_regress"),
                        help="chunk summaries and failing cases' reproducers")
    parser.add_argument("--fresh", action="store_true",
                        help="discard the chunks a previous run left in --work")
    args = parser.parse_args()
    if min(args.count_amaranth, args.count_rtl) < 0 or args.jobs < 1 or args.chunk < 1:
        parser.error("counts must be >= 0, --jobs and --chunk >= 1")
    if args.fresh:
        shutil.rmtree(args.work, ignore_errors=True)
    counts = {"amaranth": args.count_amaranth, "verilator": args.count_rtl,
              "icarus": args.count_rtl}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {sim: [pool.submit(run_chunk, sim, stalls, a, min(a + args.chunk, counts[sim]),
                                     args.work / f"{sim}-{a:04d}")
                         for a in range(0, counts[sim], args.chunk)]
                   for sim, stalls in RUNS if counts[sim]}
        runs = {sim: merge(sim, dict(RUNS)[sim], [f.result() for f in fs])
                for sim, fs in futures.items()}
    out = {"seed": SEED, "jobs": args.jobs, "simulators": runs,
           "total_cases": sum(r["cases"] for r in runs.values()),
           "total_values_compared": sum(r["values_compared"] for r in runs.values()),
           "total_mismatches": sum(r["mismatches"] for r in runs.values()),
           "total_simulation_errors": sum(r["simulation_errors"] for r in runs.values()),
           "wall_seconds_this_run": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for sim, r in runs.items():
        print(f"{sim:<10} {r['cases']:>4} cases (stalls {r['stalls']}), "
              f"{r['bins_compared']:>6} bins, {r['values_compared']:>8} values, "
              f"{r['mismatches']} mismatches, {r['simulation_errors']} failed simulations, "
              f"{r['cpu_seconds']} CPU s, {r['cycles_per_second_incl_build']} cycles/s incl. build")
        print(f"{'':<10} coverage: "
              + ", ".join(f"{k} {v}" for k, v in sorted(r["coverage"].items())))
        for f in r["failures"]:
            print(f"{'':<10} FAILED case {f['case']}: {f['replay']} ({f['reproducer']})")
    print(f"wrote {args.out} ({out['wall_seconds_this_run']} s)")
    return 1 if out["total_mismatches"] or out["total_simulation_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
