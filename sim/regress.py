"""``est-regress``: randomized regression of the hardware against the golden model.

Each case is a random spiking network (sizes, weight and membrane widths, thresholds, leaks,
reset modes, lanes) with a random stimulus and, for half the cases, random valid/ready stalls.
It is compiled to a build folder (IR, golden trace, Verilog), simulated with every layer traced,
and compared value by value. Case ``i`` of seed ``S`` is drawn from ``SeedSequence([S, i])``
alone, so ``est-regress --seed S --case i`` replays exactly that case.

A failing case is shrunk (the stimulus cut after the first diverging bin, and replayed to
confirm it still fails) and written to ``OUT/fail-SIM-S-i/``: a build folder that ``est-sim`` and
``est-compare`` run as it is, plus ``repro.json`` (seed, case, simulator, first divergence, the
command that replays it). A case whose simulation fails outright (an X handshake, a timeout,
a simulator error) fails too, with the reason: its stimulus is halved while it still fails,
the reproducer keeps the simulator's logs, and the run goes on to the next case.
"""

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from est import EstError, toolenv
from est.cli import EXIT_MISMATCH, EXIT_OK, Command
from est.compiler.cli import write_build
from est.compiler.ir import DenseLIF, DenseReadout, Network
from est.sim.golden import signed_range
from est.sim.network import run
from est.sim.rtl import require_simulator
from est.sim.rtl import simulate as rtl_simulate
from est.sim.trace import Comparison, Trace, compare

SIMULATORS = ("verilator", "icarus", "amaranth")


@dataclass(frozen=True)
class Case:
    """One regression case: the network, its stimulus and the stall seed (None: no stalls)."""

    seed: int
    index: int
    net: Network
    stimulus: np.ndarray
    stall_seed: int | None

    def describe(self) -> str:
        sizes = [self.net.n_in] + [layer.n_out for layer in self.net.layers]
        return (f"sizes {'-'.join(map(str, sizes))}, lanes {self.net.lanes}, "
                f"{len(self.stimulus)} bins"
                + (f", stalls {self.stall_seed}" if self.stall_seed is not None else ""))


def _dense(rng: np.random.Generator, kind, name: str, n_in: int, n_out: int, spiking: bool):
    weight_bits = int(rng.integers(2, 9))
    v_bits = int(rng.integers(3, 17))
    wlo, whi = signed_range(weight_bits)
    leak = None if rng.random() < 0.25 else int(rng.integers(0, min(v_bits, 6)))
    _, vhi = signed_range(v_bits)
    span = max(1, vhi // 4)
    common = dict(name=name, weight=rng.integers(wlo, whi + 1, (n_out, n_in)),
                  bias=rng.integers(-span, span + 1, n_out), scale=np.ones(n_out),
                  weight_bits=weight_bits, v_bits=v_bits, leak_shift=leak)
    if not spiking:
        return kind(**common)
    return kind(**common, threshold=rng.integers(1, vhi + 1, n_out),
                reset=["subtract", "zero"][int(rng.integers(2))])


def random_case(seed: int, index: int, stalls: str = "random") -> Case:
    """Case ``index`` of regression seed ``seed`` (see the module docstring); ``stalls``
    'always' or 'never' overrides the drawn choice of stalling the streams."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    n_in = int(rng.integers(1, 17))
    sizes = [int(rng.integers(1, 21)) for _ in range(int(rng.integers(0, 4)))]
    n_out = int(rng.integers(1, 9))
    layers, prev = [], n_in
    for k, n in enumerate(sizes):
        layers.append(_dense(rng, DenseLIF, f"fc{k + 1}", prev, n, True))
        prev = n
    layers.append(_dense(rng, DenseReadout, "readout", prev, n_out, False))
    lanes = int(rng.integers(1, 9))
    net = Network(name=f"regress_{seed}_{index}", n_in=n_in, layers=tuple(layers),
                  lanes=lanes).validate()
    bins = int(rng.integers(8, 41))
    stimulus = (rng.random((bins, n_in)) < rng.uniform(0.05, 0.6)).astype(np.int64)
    stall_seed = int(rng.integers(1 << 31))
    stall = {"always": True, "never": False}.get(stalls, rng.random() < 0.5)
    return Case(seed, index, net, stimulus, stall_seed if stall else None)


@dataclass(frozen=True)
class Outcome:
    """A simulated case: its comparison with the golden model, or the ``error`` that stopped
    the simulation (``comparison`` None)."""

    case: Case
    comparison: Comparison | None
    cycles: int
    seconds: float
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.comparison.mismatches > 0

    def status(self) -> str:
        if self.error is not None:
            return f"SIMULATION FAILED ({self.error})"
        return f"{self.comparison.mismatches} MISMATCHES" if self.failed else "ok"


def simulate_rtl(build: Path, case: Case, simulator: str) -> tuple[Trace, int]:
    """Simulate the build folder of ``case``; return the RTL trace and the cycles simulated
    (after reset, stalls included)."""
    if simulator == "amaranth":
        from est.sim.amaranth_sim import simulate as amaranth_simulate

        result = amaranth_simulate(case.net, case.stimulus, True, case.stall_seed)
    else:
        result = rtl_simulate(build, simulator, None, case.stall_seed,
                              golden=build / "golden.npz")
    return result.trace, result.cycles


def run_case(case: Case, simulator: str, build: Path) -> Outcome:
    """Compile ``case`` into ``build`` (replaced), simulate it, compare every value."""
    t0 = time.perf_counter()
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    golden, _ = run(case.net, case.stimulus)
    write_build(build, case.net, case.stimulus, golden, True, verilog=simulator != "amaranth")
    try:
        trace, cycles = simulate_rtl(build, case, simulator)
    except EstError as e:
        return Outcome(case, None, 0, time.perf_counter() - t0, str(e))
    trace.save(build / f"rtl_{simulator}.npz")
    return Outcome(case, compare(golden, trace), cycles, time.perf_counter() - t0)


def _cut(case: Case, bins: int) -> Case:
    return Case(case.seed, case.index, case.net, case.stimulus[:bins], case.stall_seed)


def shrink(outcome: Outcome, simulator: str, build: Path) -> Outcome:
    """A shorter stimulus that still fails, simulated into ``build``: a mismatch is cut after
    its first diverging bin; a failed simulation is halved while the half still fails. The
    result is the last failing run (its build is the one left in ``build``)."""
    case = outcome.case
    if outcome.error is None:
        first = outcome.comparison.first
        if first is None or first.bin + 1 >= len(case.stimulus):
            return outcome
        shorter = run_case(_cut(case, first.bin + 1), simulator, build)
        return shorter if shorter.failed else run_case(case, simulator, build)
    failing = outcome
    while len(failing.case.stimulus) > 1:
        half = run_case(_cut(failing.case, len(failing.case.stimulus) // 2), simulator, build)
        if not half.failed:
            return run_case(failing.case, simulator, build)
        failing = half
    return failing


def write_reproducer(outcome: Outcome, simulator: str, stalls: str, build: Path,
                     out: Path) -> Path:
    """Move the failing build to ``out/fail-SIM-S-i`` with ``repro.json``; return its path."""
    case = outcome.case
    first = outcome.comparison.first if outcome.comparison is not None else None
    dest = out / f"fail-{simulator}-{case.seed}-{case.index}"
    if dest.exists():
        shutil.rmtree(dest)
    if not (build / "top.v").is_file():  # amaranth.sim runs need no Verilog; a reproducer does
        from est.hw.top import to_verilog  # amaranth: only when needed (est-regress --help)

        (build / "top.v").write_text(to_verilog(case.net, True))
    shutil.move(str(build), dest)
    (dest / "repro.json").write_text(json.dumps({
        "seed": case.seed, "case": case.index, "simulator": simulator,
        "stall_seed": case.stall_seed, "bins": int(len(case.stimulus)),
        "mismatches": outcome.comparison.mismatches if outcome.comparison is not None else None,
        "simulation_error": outcome.error,
        "first_divergence": first._asdict() if first else None,
        "replay": f"est-regress --seed {case.seed} --case {case.index} --sim {simulator} "
                  f"--stalls {stalls}",
        "inspect": f"est-compare {dest / 'golden.npz'} {dest / f'rtl_{simulator}.npz'}",
    }, indent=2) + "\n")
    return dest


def regress(seed: int, indices: list[int], simulators: list[str], out: Path,
            stalls: str = "random", progress: bool = True) -> dict:
    """Run every case on every simulator; return the summary (also written to
    ``out/summary.json``)."""
    toolenv.apply()
    for sim in simulators:
        if sim != "amaranth":
            require_simulator(sim)
    out.mkdir(parents=True, exist_ok=True)
    rows, failures = [], []
    t0 = time.perf_counter()
    for sim in simulators:
        for n, index in enumerate(indices):
            case = random_case(seed, index, stalls)
            build = out / f"work-{sim}"
            outcome = run_case(case, sim, build)
            cmp = outcome.comparison
            status = outcome.status()
            dest = None
            if outcome.failed:
                outcome = shrink(outcome, sim, build)
                dest = write_reproducer(outcome, sim, stalls, build, out)
                failures.append(str(dest))
                status += f" -> {dest}"
                dest = str(dest)
            rows.append({"simulator": sim, "case": index, "config": case.describe(),
                         "bins": int(len(case.stimulus)),
                         "values": cmp.values_compared if cmp is not None else 0,
                         "mismatches": cmp.mismatches if cmp is not None else 0,
                         "simulation_error": outcome.error if cmp is None else None,
                         "cycles": outcome.cycles, "seconds": round(outcome.seconds, 3),
                         "reproducer": dest})
            if progress:
                print(f"est-regress: [{sim} {n + 1}/{len(indices)}] case {index}: "
                      f"{case.describe()}: {status}", flush=True)
        shutil.rmtree(out / f"work-{sim}", ignore_errors=True)
    summary = {"seed": seed, "cases": len(indices), "simulators": simulators, "stalls": stalls,
               "values_compared": sum(r["values"] for r in rows),
               "bins_compared": sum(r["bins"] for r in rows),
               "mismatches": sum(r["mismatches"] for r in rows),
               "simulation_errors": sum(r["simulation_error"] is not None for r in rows),
               "failures": failures,
               "seconds": round(time.perf_counter() - t0, 1), "per_simulator": {}, "runs": rows}
    for sim in simulators:
        mine = [r for r in rows if r["simulator"] == sim]
        secs = sum(r["seconds"] for r in mine)
        summary["per_simulator"][sim] = {
            "cases": len(mine), "mismatches": sum(r["mismatches"] for r in mine),
            "simulation_errors": sum(r["simulation_error"] is not None for r in mine),
            "cycles": sum(r["cycles"] for r in mine), "seconds": round(secs, 2),
            "cycles_per_second_incl_build": round(sum(r["cycles"] for r in mine) / secs, 1)
            if secs else None}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="regression seed")
    parser.add_argument("--count", type=int, default=10, help="cases 0..count-1")
    parser.add_argument("--case", type=int, action="append", help="run only this case (repeat)")
    parser.add_argument("--sim", action="append", choices=SIMULATORS,
                        help="simulator (repeat for several; default verilator)")
    parser.add_argument("--stalls", choices=("random", "always", "never"), default="random",
                        help="random valid/ready stalls: drawn per case (half), or forced")
    parser.add_argument("--out", type=Path, default=Path("build/regress"),
                        help="summary.json and failing cases go here")


def run_regress(args: argparse.Namespace) -> int:
    if args.count < 1 or any(i < 0 for i in args.case or []):
        raise EstError("--count must be >= 1 and --case >= 0")
    indices = args.case or list(range(args.count))
    summary = regress(args.seed, indices, args.sim or ["verilator"], args.out, args.stalls,
                      not args.quiet)
    print(f"est-regress: {len(indices)} cases x {len(summary['simulators'])} simulators, "
          f"{summary['values_compared']} values over {summary['bins_compared']} bins, "
          f"{summary['mismatches']} mismatches, {summary['simulation_errors']} failed "
          f"simulations ({summary['seconds']} s); "
          f"summary in {args.out / 'summary.json'}")
    for path in summary["failures"]:
        print(f"est-regress: failing case written to {path} (see repro.json)")
    return EXIT_MISMATCH if summary["failures"] else EXIT_OK


REGRESS = Command(
    "regress", "Randomized regression of the hardware against the golden model "
    "(est-regress).", configure, run_regress,
    "  est-regress --count 20 --sim verilator --sim icarus\n"
    "  est-regress --seed 3 --case 17 --sim icarus   # replay one case")
main = REGRESS.main
run_main = REGRESS.script
