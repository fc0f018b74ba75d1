"""``est-regress``: randomized regression of the hardware against the golden model
(docs/commands.md lists what is drawn and what is written).

Each case is a random graph, EST-shaped or a spiking MLP, with parameters at the extremes of
their widths in one draw of seven (so saturation happens) and, for half the cases, random
valid/ready stalls; it is compiled, simulated with every tensor traced and compared value by
value. Half the cases take count inputs of 2-4 bits (Poisson counts up to the top), and half
the EST-shaped ones a readout that reads the input beside the last spikes over 1-4 bins. On
the core, the EST-shaped cases also get, each half of the time, 1-3 slow readouts (leaky
integrators of the input, leak shifts 1-7) and 1-2 oscillator readouts (rotation shift 0-5,
leak shift 1-8) beside the readout, their log-rates added to its (the dataflow top drives one
output). On both backends half the EST-shaped cases get 1-2 rhythm tables in the readout's
input (``table`` nodes of 1-40 rows of 1-4 values of 1-4 bits, a fractional advance and
start: docs/semantics.md 8.2). Case ``i`` of seed ``S`` is drawn from ``SeedSequence([S, i])`` (its
max-pools from ``[S, i, 1]``, its input width and readout path from ``[S, i, 2]``, its slow
and oscillator readouts from ``[S, i, 4]``, its rhythm tables from ``[S, i, 5]``) alone, so
``est-regress --seed S --case i --backend B`` replays exactly that case.

A failing case is shrunk (:func:`shrink`) and written as a reproducer (:func:`write_reproducer`)
with the simulator's logs; a case whose simulation fails outright (an X handshake, a timeout,
a simulator error) fails too, with the reason, and the run goes on to the next case.

With ``backend="core"`` each case is compiled into a program for one core of
:data:`CORE_SPEC` (every traced tensor on its output stream) and run on the core's gateware,
every case on one core's Verilog; a case the core cannot run (SSA heads of more than 16
channels, thresholds or values too wide, over its memories) is counted as unsupported, with
the reason, not run.
"""

import argparse
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from est import EstError, toolenv
from est.cli import EXIT_MISMATCH, EXIT_OK, Command, check_output
from est.compiler.cli import write_build
from est.compiler.graph import Graph, GraphBuilder
from est.compiler.ops import (
    LIF,
    Attention,
    Conv,
    Input,
    Mask,
    MaxPool,
    Readout,
    Recurrence,
    Table,
)
from est.sim.cli import SIMS
from est.sim.golden import SAME_BIN_RESETS, cpg_table, signed_range
from est.sim.interpreter import run
from est.sim.rtl import require_simulator
from est.sim.rtl import simulate as rtl_simulate
from est.sim.trace import Comparison, Trace, compare


@dataclass(frozen=True)
class Case:
    """One regression case: the graph, lanes, its stimulus and the stall seed (None: none)."""

    seed: int
    index: int
    graph: Graph
    lanes: int
    stimulus: np.ndarray
    stall_seed: int | None

    def describe(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in self.graph.kinds().items() if k != "input")
        return (f"{self.graph.meta['shape']}: {kinds}; lanes {self.lanes}, "
                f"{len(self.stimulus)} bins"
                + (f", stalls {self.stall_seed}" if self.stall_seed is not None else ""))


class _Draw:
    """Random parameters at the extremes of their widths as often as in between."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def values(self, lo: int, hi: int, shape) -> np.ndarray:
        out = self.rng.integers(lo, hi + 1, shape)
        edge = self.rng.random(shape) < 0.15
        return np.where(edge, self.rng.choice([lo, hi], shape), out).astype(np.int64)

    def conv(self, kernel: int, n_out: int, n_in: int) -> Conv:
        lo, hi = signed_range(self.int(2, 8))
        return Conv(self.values(lo, hi, (kernel, n_out, n_in)),
                    self.values(-4 * hi, 4 * hi, n_out))

    def lif(self, n: int, imported: np.random.Generator | None = None) -> LIF:
        """A LIF array resetting in the same bin; with ``imported`` (a stream of its own: the
        variants networks imported from snnTorch and NIR bring) one in five resets in the next
        bin instead (``subtract_delayed``, as from snnTorch), and one in five is current-based
        (a synaptic current of 3-12 bits, as NIR's CubaLIF)."""
        v_bits = self.int(3, 16)
        vhi = signed_range(v_bits)[1]
        leak = None if self.rng.random() < 0.25 else self.int(0, min(v_bits - 1, 5))
        reset = self.choice(SAME_BIN_RESETS)
        syn = ()
        if imported is not None:
            if imported.random() < 0.2:
                reset = "subtract_delayed"
            if imported.random() < 0.2:
                syn_bits = int(imported.integers(3, 13))
                syn = (None if imported.random() < 0.25
                       else int(imported.integers(0, min(syn_bits - 1, 5) + 1)), syn_bits)
        return LIF(self.values(1, vhi, n), leak, v_bits, reset, *syn)

    def readout(self, n: int) -> Readout:
        v_bits = self.int(3, 16)
        leak = None if self.rng.random() < 0.25 else self.int(0, min(v_bits - 1, 5))
        return Readout(leak, v_bits, np.ones(n))


def _mlp_graph(d: _Draw, name: str, pools: np.random.Generator, bits: int,
               imported: np.random.Generator) -> Graph:
    """A spiking MLP of ``bits``-bit inputs; ``pools`` (a stream of its own, so that adding
    kinds leaves the other draws of a case as they were) puts a max-pool over time after some
    hidden layers, ``imported`` (another) gives some LIF arrays snnTorch's delayed reset or a
    synaptic current."""
    g = GraphBuilder()
    x = g.add("input", Input(d.int(1, 16), bits))
    prev = g.nodes[0].op.n
    for k in range(d.int(0, 3)):
        n = d.int(1, 20)
        x = g.add(f"fc{k + 1}", d.lif(n, imported),
                  g.add(f"fc{k + 1}.syn", d.conv(1, n, prev), x))
        if pools.random() < 0.3:
            x = g.add(f"fc{k + 1}.pool", MaxPool(int(pools.integers(1, 9))), x)
        prev = n
    n_out = d.int(1, 8)
    g.add("readout", d.readout(n_out), g.add("readout.syn", d.conv(1, n_out, prev), x))
    return g.build(name, ("readout",), {"shape": f"mlp {prev}->{n_out}"})


def _more_readouts(d: _Draw, n: int) -> tuple[dict, dict]:
    """Slow and oscillator readouts of an input of ``n`` channels, each set drawn half of the
    time (:func:`est.compiler.est_frontend.est_graph`'s ``slow`` and ``osc``)."""
    slow, osc = {}, {}
    if d.rng.random() < 0.5:
        for shift in sorted(int(s) for s in d.rng.choice(np.arange(1, 8), d.int(1, 3),
                                                         replace=False)):
            slow[shift] = (d.conv(1, n, n), Readout(shift, d.int(shift + 1, 16), np.ones(n)))
    if d.rng.random() < 0.5:
        for _ in range(d.int(1, 2)):
            m, k = d.int(0, 5), d.int(1, 8)
            c = 1 if m < 2 or d.rng.random() < 0.5 else d.int(2, 2 ** m - 1)
            osc[(m, k, c)] = (d.conv(1, 2 * n, n),
                              Readout(k, d.int(max(m, k) + 1, 16), np.ones(n), rotate_shift=m,
                                      rotate_mult=c))
    return slow, osc


def _rhythms(d: _Draw) -> list[Table]:
    """Half of the time 1-2 tables for the readout's input: 1-40 rows of 1-4 values of 1-4
    bits, an advance from 1 to its largest (each end one time in seven), a start from 0 to its
    largest (each end one time in seven)."""
    if d.rng.random() < 0.5:
        return []
    tables = []
    for _ in range(d.int(1, 2)):
        rows = d.int(1, 40)
        table = d.values(0, (1 << d.int(1, 4)) - 1, (rows, d.int(1, 4)))
        top = min(0xFFFF, rows << Table.FRAC)
        tables.append(Table(table, int(d.values(1, top, 1)[0]),
                            int(d.values(0, (rows << Table.FRAC) - 1, 1)[0])))
    return tables


def _est_graph(d: _Draw, name: str, bits: int, counts: np.random.Generator,
               more: _Draw | None = None, rhythm: _Draw | None = None) -> Graph:
    """An EST-shaped graph of ``bits``-bit inputs; ``counts`` (a stream of its own) draws
    whether the readout also reads the input, and its kernel; ``more`` (another), if given,
    its slow and oscillator readouts (:func:`_more_readouts`); ``rhythm`` (another) its
    rhythm tables (:func:`_rhythms`) and the readout's weights on them."""
    from est.compiler.est_frontend import Block, est_graph  # torch: not for est-regress --help

    heads = d.int(1, 4)
    dm = heads * d.int(1, 20 // heads)
    n_in, hidden = d.int(1, 12), d.int(1, 24)
    attention = d.choice(("sdsa", "ssa", "none"))
    sew = d.choice(("add", "and", "iand", "none"))
    window, cpg = d.int(1, 16), d.rng.random() < 0.5
    table = cpg_table(d.int(1, 24), 2 * d.int(1, 4)) if cpg else None
    blocks = []
    for _ in range(d.int(1, 2)):
        on = attention != "none"
        kernel = d.int(1, 7)
        rsm = d.int(0, 256) if d.rng.random() < 0.7 else 0
        mask = Mask(rsm, d.int(1, (1 << 32) - 1)) if on and rsm else None
        qkv = {n: (d.conv(kernel, dm, dm), d.lif(dm)) if on else None for n in "qkv"}
        blocks.append(Block(
            mask=mask, **qkv,
            attention=Attention(attention, window, heads, d.int(1, window)) if on else None,
            attn_lif=d.lif(dm) if attention == "ssa" else None,
            proj=(d.conv(1, dm, dm), d.lif(dm)) if on else None, sew=sew,
            tpu=_tpu(d, dm) if d.rng.random() < 0.5 else None,
            mlp1=(d.conv(d.int(1, 3), hidden, dm), d.lif(hidden)),
            mlp2=(d.conv(1, dm, hidden), d.lif(dm))))
    n_cpg = 0 if table is None else table.shape[1]
    embed = (d.conv(d.int(1, 7), dm, n_in + n_cpg), d.lif(dm))
    readout = (d.conv(1, n_in, dm), d.readout(n_in))
    direct = bool(counts.random() < 0.5)
    if direct:  # the readout reads the last spikes and the input, over 1-4 bins
        readout = (d.conv(int(counts.integers(1, 5)), n_in, dm + n_in), readout[1])
    slow, osc = _more_readouts(more, n_in) if more is not None else ({}, {})
    tables = _rhythms(rhythm) if rhythm is not None else []
    if tables:
        conv = readout[0]
        extra = rhythm.conv(conv.weight.shape[0], n_in, sum(t.table.shape[1] for t in tables))
        readout = (Conv(np.concatenate([conv.weight, extra.weight], axis=2), conv.bias),
                   readout[1])
    return est_graph(name, n_in, embed, table, blocks, readout,
                     {"shape": f"est d{dm} {attention} sew {sew}"
                               + (" input->readout" if direct else "")
                               + (f" slow {list(slow)}" if slow else "")
                               + (f" osc {[list(p) for p in osc]}" if osc else "")
                               + (f" rhythms {[len(t.table) for t in tables]}" if tables
                                  else "")},
                     input_bits=bits, input_to_readout=direct, slow=slow, osc=osc,
                     rhythms=tables)


def _tpu(d: _Draw, n: int) -> Recurrence:
    lif = d.lif(n)
    lo, hi = signed_range(d.int(2, 6))
    return Recurrence(d.values(lo, hi, n), d.values(lo, hi, (d.int(1, 4), n)),
                      d.values(-8, 8, n), lif.threshold, lif.leak_shift, lif.v_bits, lif.reset)


def random_case(seed: int, index: int, stalls: str = "random", backend: str = "dataflow"
                ) -> Case:
    """Case ``index`` of regression seed ``seed`` for ``backend`` (see the module docstring);
    ``stalls`` 'always' or 'never' overrides the drawn choice of stalling the streams."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    d = _Draw(rng)
    name = f"regress_{seed}_{index}"
    pools = np.random.default_rng(np.random.SeedSequence([seed, index, 1]))
    counts = np.random.default_rng(np.random.SeedSequence([seed, index, 2]))
    bits = 1 if counts.random() < 0.5 else int(counts.integers(2, 5))
    imported = np.random.default_rng(np.random.SeedSequence([seed, index, 3]))
    more = (_Draw(np.random.default_rng(np.random.SeedSequence([seed, index, 4])))
            if backend == "core" else None)
    rhythm = _Draw(np.random.default_rng(np.random.SeedSequence([seed, index, 5])))
    graph = (_est_graph(d, name, bits, counts, more, rhythm) if rng.random() < 0.5
             else _mlp_graph(d, name, pools, bits, imported))
    lanes = d.int(1, 8)
    bins = d.int(8, 40)
    stimulus = (rng.random((bins, graph.n_in)) < rng.uniform(0.05, 0.6)).astype(np.int64)
    if bits > 1:  # counts up to the input's top, some at it
        top = 2 ** bits - 1
        stimulus = np.minimum(counts.poisson(counts.uniform(0.1, top), stimulus.shape), top)
    stall_seed = int(rng.integers(1 << 31))
    stall = {"always": True, "never": False}.get(stalls, rng.random() < 0.5)
    return Case(seed, index, graph, lanes, stimulus, stall_seed if stall else None)


# The core every case of ``--backend core`` runs on: the random graphs' widest layers (24
# neurons, 20 channels over kernels up to 7, 15-bit weights in two planes) fit it; with its
# SSA, oscillator and phase units.
MAX_CASES = 100_000
"""The most cases one ``est-regress --count`` runs."""
CORE_SPEC = dict(lanes=4, weight_bits=8, weight_words=8192, act_words=2048, neuron_words=512,
                 acc_words=8, ssa=True, osc=True, phase=True, osc_mult=True)


@dataclass(frozen=True)
class Outcome:
    """A simulated case: its comparison with the golden model, or the ``error`` that stopped it."""

    case: Case
    comparison: Comparison | None
    cycles: int
    seconds: float
    error: str | None = None
    unsupported: str | None = None  # why the backend does not run this case

    @property
    def failed(self) -> bool:
        return self.unsupported is None and (self.error is not None
                                             or self.comparison.mismatches > 0)

    def status(self) -> str:
        if self.unsupported is not None:
            return f"unsupported by the core ({self.unsupported})"
        if self.error is not None:
            return f"SIMULATION FAILED ({self.error})"
        return f"{self.comparison.mismatches} MISMATCHES" if self.failed else "ok"


def simulate_rtl(build: Path, case: Case, simulator: str) -> tuple[Trace, int]:
    """Simulate ``case``'s build folder: the RTL trace and the cycles after reset (with stalls)."""
    if simulator == "amaranth":
        from est.hw.dataflow import DataflowTop
        from est.sim.amaranth_sim import simulate_top

        dut = DataflowTop(case.graph, case.lanes, trace=True)
        result = simulate_top(dut, case.stimulus, case.stall_seed)
    else:
        result = rtl_simulate(build, simulator, None, case.stall_seed,
                              golden=build / "golden.npz")
    return result.trace, result.cycles


def simulate_core_case(build: Path, case: Case, simulator: str) -> tuple[Trace, int]:
    """Simulate ``case`` on the core of :data:`CORE_SPEC` (Verilator and Icarus: the core's
    Verilog in ``build``'s parent folder, written once for every case)."""
    from est.compiler.program import CoreSpec, check_fit, compile_program
    from est.sim.core_sim import simulate_core, simulate_core_rtl

    spec = CoreSpec(**CORE_SPEC)
    prog = compile_program(case.graph, spec)
    over = check_fit(prog)
    if over:
        raise _Unsupported("over the core's memories: " + "; ".join(over))
    runs = [(prog, case.stimulus)]
    if simulator == "amaranth":
        result = simulate_core(spec, runs, stall_seed=case.stall_seed)
    else:
        result = simulate_core_rtl(spec, runs, simulator, build.parent / "core_rtl",
                                   case.stall_seed)
    return result.traces[0], int(sum(result.cycles[0]))


class _Unsupported(Exception):
    """The backend does not run this case."""


def run_case(case: Case, simulator: str, build: Path, backend: str = "dataflow") -> Outcome:
    """Compile ``case`` into ``build`` (replaced), simulate it on ``backend``, compare every
    value."""
    t0 = time.perf_counter()
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    golden, _ = run(case.graph, case.stimulus)
    write_build(build, case.graph, case.stimulus, golden, case.lanes, True,
                verilog=simulator != "amaranth" and backend == "dataflow")
    try:
        if backend == "core":
            trace, cycles = simulate_core_case(build, case, simulator)
        else:
            trace, cycles = simulate_rtl(build, case, simulator)
    except _Unsupported as e:
        return Outcome(case, None, 0, time.perf_counter() - t0, unsupported=str(e))
    except EstError as e:
        if backend == "core" and "does not run" in str(e):
            return Outcome(case, None, 0, time.perf_counter() - t0, unsupported=str(e))
        return Outcome(case, None, 0, time.perf_counter() - t0, str(e))
    trace.save(build / f"rtl_{simulator}.npz")
    return Outcome(case, compare(golden, trace), cycles, time.perf_counter() - t0)


def shrink(outcome: Outcome, simulator: str, build: Path, backend: str = "dataflow"
           ) -> Outcome:
    """A shorter stimulus that still fails, simulated into ``build``: a mismatch is cut after
    its first diverging bin; a failed simulation is halved while the half still fails. The
    result is the last failing run (its build is the one left in ``build``)."""
    case = outcome.case
    if outcome.error is None:
        first = outcome.comparison.first
        if first is None or first.bin + 1 >= len(case.stimulus):
            return outcome
        shorter = run_case(replace(case, stimulus=case.stimulus[:first.bin + 1]), simulator,
                           build, backend)
        return shorter if shorter.failed else run_case(case, simulator, build, backend)
    failing = outcome
    while len(failing.case.stimulus) > 1:
        cut = failing.case.stimulus[:len(failing.case.stimulus) // 2]
        half = run_case(replace(failing.case, stimulus=cut), simulator, build, backend)
        if not half.failed:
            return run_case(failing.case, simulator, build, backend)
        failing = half
    return failing


def write_reproducer(outcome: Outcome, simulator: str, stalls: str, build: Path,
                     out: Path, backend: str = "dataflow") -> Path:
    """Move the failing build to ``out/fail-SIM-S-i`` with ``repro.json``; return its path."""
    case = outcome.case
    first = outcome.comparison.first if outcome.comparison is not None else None
    core = "-core" if backend == "core" else ""
    dest = out / f"fail{core}-{simulator}-{case.seed}-{case.index}"
    if dest.exists():
        shutil.rmtree(dest)
    if backend == "dataflow" and not (build / "top.v").is_file():  # a reproducer needs it
        golden = Trace.load(build / "golden.npz")
        write_build(build, case.graph, case.stimulus, golden, case.lanes, True)
    shutil.move(str(build), dest)
    (dest / "repro.json").write_text(json.dumps({
        "seed": case.seed, "case": case.index, "simulator": simulator,
        "stall_seed": case.stall_seed, "bins": int(len(case.stimulus)),
        "mismatches": outcome.comparison.mismatches if outcome.comparison is not None else None,
        "simulation_error": outcome.error,
        "first_divergence": first._asdict() if first else None,
        "replay": f"est-regress --seed {case.seed} --case {case.index} --sim {simulator} "
                  f"--stalls {stalls} --backend {backend}",
        "inspect": f"est-compare {dest / 'golden.npz'} {dest / f'rtl_{simulator}.npz'}",
    }, indent=2) + "\n")
    return dest


def regress(seed: int, indices: list[int], simulators: list[str], out: Path,
            stalls: str = "random", progress: bool = True, backend: str = "dataflow") -> dict:
    """Run every case on every simulator of ``backend``; return the summary, also
    ``out/summary.json``."""
    toolenv.apply()
    for sim in simulators:
        if sim != "amaranth":
            require_simulator(sim)
    out.mkdir(parents=True, exist_ok=True)
    rows, failures = [], []
    coverage = Counter(kind for index in indices
                       for kind in random_case(seed, index, stalls, backend).graph.kinds())
    t0 = time.perf_counter()
    for sim in simulators:
        for n, index in enumerate(indices):
            case = random_case(seed, index, stalls, backend)
            build = out / f"work-{sim}"
            outcome = run_case(case, sim, build, backend)
            cmp, status, dest = outcome.comparison, outcome.status(), None
            if outcome.failed:
                outcome = shrink(outcome, sim, build, backend)
                dest = str(write_reproducer(outcome, sim, stalls, build, out, backend))
                failures.append(dest)
                status += f" -> {dest}"
            rows.append({"simulator": sim, "case": index, "config": case.describe(),
                         "bins": int(len(case.stimulus)),
                         "values": cmp.values_compared if cmp is not None else 0,
                         "mismatches": cmp.mismatches if cmp is not None else 0,
                         "simulation_error": outcome.error if cmp is None else None,
                         "unsupported": outcome.unsupported,
                         "cycles": outcome.cycles, "seconds": round(outcome.seconds, 3),
                         "reproducer": dest})
            if progress:
                print(f"est-regress: [{sim} {n + 1}/{len(indices)}] case {index}: "
                      f"{case.describe()}: {status}", flush=True)
        shutil.rmtree(out / f"work-{sim}", ignore_errors=True)
    summary = {"seed": seed, "cases": len(indices), "simulators": simulators, "stalls": stalls,
               "backend": backend,
               "unsupported": sum(r["unsupported"] is not None for r in rows),
               "values_compared": sum(r["values"] for r in rows),
               "bins_compared": sum(r["bins"] for r in rows if r["values"]),
               "mismatches": sum(r["mismatches"] for r in rows),
               "simulation_errors": sum(r["simulation_error"] is not None for r in rows),
               "failures": failures, "coverage": dict(coverage),
               "seconds": round(time.perf_counter() - t0, 1), "per_simulator": {}, "runs": rows}
    for sim in simulators:
        mine = [r for r in rows if r["simulator"] == sim]
        secs, cycles = (sum(r[key] for r in mine) for key in ("seconds", "cycles"))
        summary["per_simulator"][sim] = {
            "cases": len(mine), "mismatches": sum(r["mismatches"] for r in mine),
            "simulation_errors": sum(r["simulation_error"] is not None for r in mine),
            "cycles": cycles, "seconds": round(secs, 2),
            "cycles_per_second_incl_build": round(cycles / secs, 1) if secs else None}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="regression seed")
    parser.add_argument("--count", type=int, default=10, help="cases 0..count-1")
    parser.add_argument("--case", type=int, action="append", help="run only this case (repeat)")
    parser.add_argument("--sim", action="append", choices=SIMS,
                        help="simulator (repeat for several; default verilator)")
    parser.add_argument("--stalls", choices=("random", "always", "never"), default="random",
                        help="random valid/ready stalls: drawn per case (half), or forced")
    parser.add_argument("--backend", choices=("dataflow", "core"), default="dataflow",
                        help="the dataflow top (a build per case) or the event-driven core (one "
                             "core, a program per case; cases it cannot run are counted as "
                             "unsupported)")
    parser.add_argument("--out", type=Path, default=Path("build/regress"),
                        help="summary.json and failing cases go here")


def run_regress(args: argparse.Namespace) -> int:
    if not 1 <= args.count <= MAX_CASES or any(i < 0 for i in args.case or []):
        raise EstError(f"--count must be 1..{MAX_CASES:,} and --case >= 0")
    if args.seed < 0:
        raise EstError(f"--seed must be at least 0, got {args.seed}")
    if not (args.out.is_dir() and not any(args.out.iterdir())):  # an empty folder will do
        check_output(args.out, "summary.json", "choose another --out")
    indices = args.case or list(range(args.count))
    summary = regress(args.seed, indices, args.sim or ["verilator"], args.out, args.stalls,
                      not args.quiet, args.backend)
    skipped = (f", {summary['unsupported']} unsupported by the core"
               if args.backend == "core" else "")
    print(f"est-regress: {len(indices)} cases x {len(summary['simulators'])} simulators "
          f"({args.backend}), {summary['values_compared']} values over "
          f"{summary['bins_compared']} bins, {summary['mismatches']} mismatches, "
          f"{summary['simulation_errors']} failed simulations{skipped} "
          f"({summary['seconds']} s); "
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
