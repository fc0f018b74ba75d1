"""``est-sim`` (run the RTL, write its trace) and ``est-compare`` (golden vs RTL, every value)."""

import argparse
import json
from pathlib import Path

import numpy as np

from est import EstError
from est.cli import EXIT_MISMATCH, EXIT_OK, Command, mismatches, plural
from est.compiler.graph import read_json
from est.sim.trace import Comparison, Trace, compare

SIMS = ("verilator", "icarus", "amaranth")


def build_stimulus(build: Path, path: Path | None, graph) -> tuple[np.ndarray, Path]:
    """The stimulus at ``path`` (default: the build's), checked against ``graph``'s input."""
    from est.compiler.cli import load_stimulus

    path = path or build / "stimulus.npy"
    return load_stimulus(path, graph.n_in, graph.input_bits), path


def check_build(build: Path, graph, stimulus: np.ndarray) -> Trace:
    """The build's golden trace, checked against its graph and ``stimulus`` (the build's own),
    and its report readable, before any work (:func:`est.report.read_report`): a build
    folder damaged or pieced together from two builds is refused by name."""
    from est.report import read_report

    golden = Trace.load(build / "golden.npz")
    wanted = [name for name, *_ in graph.output_fields(trace=False)]  # each output's first
    missing = [name for name in wanted if name not in golden.arrays]
    if missing or golden.bins != len(stimulus):
        what = (f"it lacks {missing}" if missing else
                f"it has {plural(golden.bins, 'bin')}, the stimulus {len(stimulus)}")
        raise EstError(f"{build / 'golden.npz'} is not this build's golden trace ({what}); "
                       f"compile the model again (est-compile MODEL -o {build})")
    read_report(build)
    return golden


def simulate_core_build(build: Path, simulator: str, stimulus: np.ndarray,
                        stall_seed: int | None, scoreboard: bool, netlist: str | None = None,
                        label: str | None = None):
    """A core build's program on the core's gateware (amaranth.sim, or Verilator / Icarus
    in ``build/core_rtl``, one Verilog file for both), loaded through its ``load`` port, as an
    :class:`~est.sim.rtl.RTLRun` (latencies: cycles from one bin's first input word to the
    next's); ``scoreboard``: count the bins that differ from
    ``golden.npz`` (the stimulus is the build's); ``netlist``: a board whose post-synthesis
    netlist of the core runs instead (Icarus; the build must be compiled for that board)."""
    from est.compiler.program import build_program
    from est.sim.core_sim import simulate_core, simulate_core_rtl
    from est.sim.rtl import RTLRun

    prog = build_program(build)
    runs = [(prog, stimulus)]
    if simulator == "amaranth":
        result = simulate_core(prog.spec, runs, stall_seed=stall_seed)
    elif netlist:
        from est.boards.spec import get_board
        from est.sim.core_sim import write_core_netlist

        board = get_board(netlist)
        if board.core_spec(ssa=prog.spec.ssa, osc=prog.spec.osc, phase=prog.spec.phase,
                           osc_mult=prog.spec.osc_mult) != prog.spec:
            raise EstError(f"{build} was compiled for another core than {board.name}'s: "
                           f"est-compile it with --board {board.name} for --netlist "
                           f"{board.name}")
        print(f"est-sim: synthesizing the netlist of {board.name}'s core (yosys) ...",
              flush=True)
        source = write_core_netlist(build / "core_rtl", prog.spec, board)
        result = simulate_core_rtl(prog.spec, runs, simulator, build / "core_rtl", stall_seed,
                                   source, label)
    else:
        result = simulate_core_rtl(prog.spec, runs, simulator, build / "core_rtl",
                                   stall_seed)
    trace = result.traces[0]
    trace.meta.update(source=f"{label or simulator}-core", network=prog.name)
    bad = 0
    if scoreboard:
        golden = Trace.load(build / "golden.npz")
        differs = np.zeros(trace.bins, bool)
        for name, values in trace.arrays.items():
            differs |= (values != golden.arrays[name]).any(axis=1)
        bad = int(differs.sum())
    cycles = [int(c) for c in result.cycles[0]]
    return RTLRun(trace, sum(cycles), cycles or [0], result.seconds, bad)


def configure_sim(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("build", type=Path, help="folder written by est-compile")
    parser.add_argument("--sim", choices=SIMS, default="verilator",
                        help="simulator: Verilator or Icarus (cocotb testbench on top.v), or "
                             "amaranth (amaranth.sim on the network elaborated from ir.json)")
    parser.add_argument("--stimulus", type=Path,
                        help=".npy [bins, n_in] of counts within the input width, 0/1 for "
                             "spikes (default: the build's stimulus.npy)")
    parser.add_argument("--stall-seed", type=int, help="random valid/ready stalls, this seed")
    parser.add_argument("--waves", action="store_true", help="write waves (FST or VCD)")
    parser.add_argument("--netlist", metavar="BOARD",
                        help="simulate the post-synthesis netlist for BOARD (iCE40 boards; "
                             "Icarus with yosys' cell models) instead of the RTL")


def run_sim(args: argparse.Namespace) -> int:
    from est.compiler.graph import load

    net = load(args.build)
    top = read_json(args.build, "top.json")
    stimulus, stim_path = build_stimulus(args.build, args.stimulus, net)
    if args.stimulus is None:
        check_build(args.build, net, stimulus)
    label = args.sim
    if args.netlist:
        if args.sim != "icarus":
            raise EstError("--netlist simulates with Icarus: add --sim icarus")
        label = f"icarus_netlist_{args.netlist}"
    print(f"est-sim: {plural(stimulus.shape[0], 'bin')} on {label} ...", flush=True)
    vcd = args.build / "amaranth.vcd" if args.waves else None
    if top.get("backend") == "core":
        if args.waves:
            raise EstError(f"{args.build}: a core build; --waves is not supported for the "
                           f"core backend yet (docs/core.md)")
        run = simulate_core_build(args.build, args.sim, stimulus, args.stall_seed,
                                  args.stimulus is None, args.netlist, label)
    elif args.sim == "amaranth":
        from est.hw.dataflow import DataflowTop
        from est.sim.amaranth_sim import simulate_top

        dut = DataflowTop(net, top["lanes"], top["trace"])
        run = simulate_top(dut, stimulus, args.stall_seed, vcd)
    else:
        from est.sim.rtl import simulate as rtl_simulate

        golden = args.build / "golden.npz" if args.stimulus is None else None
        source = None
        if args.netlist:
            from est.boards.spec import get_board
            from est.sim.netlist import write_netlist

            print(f"est-sim: synthesizing the netlist for {args.netlist} (yosys) ...",
                  flush=True)
            source = write_netlist(args.build, get_board(args.netlist))
        run = rtl_simulate(args.build, args.sim, stim_path, args.stall_seed, args.waves,
                           verbose=args.verbose, golden=golden, source=source, label=label)
    out = args.build / f"rtl_{label}.npz"
    run.trace.meta["stimulus"] = str(stim_path)
    run.trace.save(out)
    stats = {"simulator": label, "bins": run.trace.bins,
             "scoreboard_mismatches": run.scoreboard_mismatches,
             "cycles_per_bin": round(run.cycles_per_bin, 2), "seconds": round(run.seconds, 2),
             "stall_seed": args.stall_seed}
    (args.build / f"rtl_{label}.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(f"est-sim: wrote {out}: {plural(run.trace.bins, 'bin')}, {run.cycles_per_bin:.1f} "
          f"cycles/bin, {run.seconds:.1f} s")
    if run.scoreboard_mismatches:
        print(f"est-sim: the testbench scoreboard saw "
              f"{plural(run.scoreboard_mismatches, 'bin')} differ from golden.npz; run "
              f"est-compare {args.build} for the first divergence")
        return EXIT_MISMATCH
    return EXIT_OK


def format_comparison(c: Comparison, golden: Trace) -> str:
    from est.sim.compare_view import layer_summary

    lines = [f"compared {plural(c.values_compared, 'value')} over {plural(c.bins, 'bin')} in "
             f"{plural(len(c.tensors), 'tensor')}: {mismatches(c.mismatches)}"]
    for layer, tensors in layer_summary(c).items():
        total = sum(tensors.values())
        detail = ", ".join(f"{t} {n}" for t, n in tensors.items())
        count, noun = mismatches(total).split()
        lines.append(f"  {layer:<16}{count:>8} {noun} ({detail})")
    if (f := c.first) is not None:
        layer, tensor = f.tensor.split("/")
        lines.append(f"first divergence: layer {layer}, tensor {tensor}, channel {f.channel}, "
                     f"bin {f.bin}: golden {f.expected}, RTL {f.actual}")
        if "input/spikes" in golden.arrays:
            spikes = np.flatnonzero(golden.arrays["input/spikes"][f.bin]).tolist()
            lines.append(f"  inputs of bin {f.bin}: spikes on inputs {spikes}")
    return "\n".join(lines)


def configure_compare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", type=Path, nargs="+", help="BUILD_DIR, or GOLDEN.npz RTL.npz")
    parser.add_argument("--no-view", action="store_true",
                        help="do not write the PNG/HTML view (<rtl trace>_compare.png/.html)")


def run_compare(args: argparse.Namespace) -> int:
    if len(args.paths) == 1 and args.paths[0].is_dir():
        build = args.paths[0]
        golden_path = build / "golden.npz"
        rtl_paths = sorted(build.glob("rtl_*.npz"))
        if not rtl_paths:
            raise EstError(f"{build}: no rtl_*.npz trace; run est-sim {build} first")
    elif len(args.paths) == 2:
        golden_path, rtl_paths = args.paths[0], [args.paths[1]]
    else:
        raise EstError("give a build folder, or a golden trace and an RTL trace")
    golden = Trace.load(golden_path)
    if len(args.paths) == 1:  # the report is refreshed at the end: readable before any view
        from est.report import read_report

        read_report(args.paths[0])
    worst = EXIT_OK
    for rtl_path in rtl_paths:
        rtl = Trace.load(rtl_path)
        if rtl.bins != golden.bins:
            raise EstError(f"{rtl_path} has {plural(rtl.bins, 'bin')} but {golden_path} has "
                           f"{golden.bins}; were they made from the same stimulus?")
        result = compare(golden, rtl)
        text = format_comparison(result, golden)
        print(f"{rtl_path.name} ({rtl.meta.get('source', '?')}) vs {golden_path.name}:\n{text}")
        if not args.no_view:
            from est.sim import compare_view

            _, page = compare_view.write(golden, rtl, result, text,
                                         rtl_path.parent / f"{rtl_path.stem}_compare")
            print(f"  view: {page} (and .png)")
        if result.mismatches:
            worst = EXIT_MISMATCH
    if len(args.paths) == 1:
        from est.report import write_report

        print(f"report: {write_report(args.paths[0])}")
    return worst


SIM = Command(
    "sim", "Simulate a compiled build's RTL (or its post-synthesis netlist) and write its trace "
    "(est-sim).", configure_sim, run_sim,
    "  est-sim build/tiny --sim verilator\n  est-sim build/tiny --sim icarus --stall-seed 7 --waves"
    "\n  est-sim build/spine --sim icarus --netlist icebreaker")
COMPARE = Command(
    "compare", "Compare golden and RTL traces value by value; exit 0 only if all match "
    "(est-compare).", configure_compare, run_compare,
    "  est-compare build/tiny                  (golden.npz vs every rtl_*.npz)\n"
    "  est-compare golden.npz rtl_icarus.npz")
sim = SIM.main
compare_cmd = COMPARE.main
sim_main = SIM.script
compare_main = COMPARE.script
