"""``est-compile MODEL.pt -o build/NAME``: checkpoint -> integer IR, golden traces, Verilog, report.

Everything goes to a staging folder first and appears under ``-o`` only when complete. The
compiler, the hardware and the golden models (torch, amaranth) are imported inside the
functions that use them, so that ``est-compile --help`` and a bad option answer at once.
"""

import argparse
import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

from est import EstError, __version__, numpy_says, toolenv
from est.cli import Command, check_output, plural, staged_output

DEFAULT_RATE = 0.2  # spike rate of the random stimulus when the checkpoint gives none
DEFAULT_LANES = 4  # of the dataflow top
OUT_HINT = "choose another -o"
MAX_BINS = 1_000_000  # of the stimulus (the golden run holds every value of every bin)

EXAMPLES = """  est-compile examples/est_tiny.pt -o build/tiny --lanes auto --board icebreaker
  est-compile model.pt -o build/spine --lanes 4 --bins 500 --no-trace
  est-compile model.pt -o build/spine --stimulus my_spikes.npy --board ulx3s-85f"""


def recording_stimulus(path: Path, n_in: int, bins: int, bits: int) -> tuple[np.ndarray, dict]:
    """The first ``bins`` bins of a recording as stimulus (counts clipped to the network's
    input width, ``2**bits - 1``; 1 for spikes), and the arrays kept in the build as
    ``recording.npz`` (counts, true rates when known, source)."""
    from est.sw.data import load_counts

    rec = load_counts(path)
    if rec.n_neurons != n_in:
        raise EstError(f"{path}: the recording has {plural(rec.n_neurons, 'neuron')} but the "
                       f"network takes {plural(n_in, 'input')}; record (or select) "
                       f"{plural(n_in, 'neuron')}")
    keep = {"counts": rec.counts[:bins], "source": np.array(str(path))}
    if rec.rates is not None:
        keep["rates"] = rec.rates[:bins]
    top = 2 ** bits - 1
    keep["clipped_bins"] = np.array(int((rec.counts[:bins] > top).sum()))
    if keep["clipped_bins"]:
        print(f"est-compile: {path}: {int(keep['clipped_bins'])} counts above {top} clipped to "
              f"{top}, the network's input width ({plural(bits, 'bit')})", flush=True)
    return np.minimum(rec.counts[:bins], top), keep


def load_stimulus(path: Path, n_in: int, bits: int = 1) -> np.ndarray:
    """A [bins, n_in] array of counts 0..2**bits - 1 (0/1 spikes for ``bits`` 1) from a .npy
    file, checked."""
    top = 2 ** bits - 1
    what = "0/1 spikes" if bits == 1 else f"counts 0..{top}"
    try:
        arr = np.load(path, allow_pickle=False)
    except EOFError:
        raise EstError(f"{path}: empty or truncated; expected a .npy [bins, {n_in}] array of "
                       f"{what} (numpy.save)") from None
    except (OSError, ValueError) as e:
        raise EstError(f"{path}: cannot read a .npy array ({numpy_says(e)}); expected a "
                       f"[bins, {n_in}] array of {what} (numpy.save)") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        arr.close()
        raise EstError(f"{path}: a .npz archive, not a .npy array; expected a .npy [bins, "
                       f"{n_in}] array of {what} (numpy.save)")
    if arr.ndim != 2 or arr.shape[1] != n_in or arr.shape[0] < 1:
        raise EstError(f"{path}: expected a [bins, {n_in}] array of spikes, got shape {arr.shape}")
    if not np.isin(arr, np.arange(top + 1)).all():
        raise EstError(f"{path}: spikes must be 0 or 1 (this network takes binary input)"
                       if bits == 1 else f"{path}: counts must be whole numbers 0..{top} (this "
                       f"network takes {bits}-bit counts); clip them (numpy.minimum)")
    return arr.astype(np.int64)


def write_build(folder: Path, graph, stimulus: np.ndarray, golden, lanes: int, trace: bool,
                verilog: bool = True) -> int:
    """The simulation inputs of a build folder: ``ir.json``, ``weights.npz``, ``stimulus.npy``,
    ``golden.npz``, ``top.json`` (stream fields, lanes, cycles per bin measured in amaranth.sim)
    and ``top.v`` (through yosys). Without ``verilog`` (a run on amaranth.sim alone) there is
    no ``top.v`` and no cycle count (None). Returns the cycles per bin."""
    from est.hw.dataflow import measure_cycles, to_verilog

    graph.save(folder)
    np.save(folder / "stimulus.npy", stimulus)
    golden.save(folder / "golden.npz")
    cycles = measure_cycles(graph, lanes) if verilog else None
    (folder / "top.json").write_text(json.dumps({
        "name": graph.name, "toplevel": "top", "trace": trace, "n_in": graph.n_in,
        "input_bits": graph.input_bits,
        "lanes": lanes, "output_fields": graph.output_fields(trace),
        "cycles_per_bin": cycles}, indent=2) + "\n")
    if verilog:
        (folder / "top.v").write_text(to_verilog(graph, lanes, trace))
    return cycles


def write_core_build(folder: Path, graph, stimulus: np.ndarray, golden, board, board_prog,
                     trace: bool):
    """A build for the core backend: ``ir.json``, ``weights.npz``, ``stimulus.npy``,
    ``golden.npz``, ``program.txt`` (the program's listing) and ``top.json`` (the core it
    needs, the output fields, cycles per bin of the core model on the stimulus, as the board
    runs it: ``board_prog``, without trace). Returns the board program's cost report
    (:func:`est.sim.core_model.cost_report`)."""
    from est.compiler.program import compile_program
    from est.sim import core_model

    spec = board_prog.spec
    prog = compile_program(graph, spec, trace) if trace else board_prog
    graph.save(folder)
    np.save(folder / "stimulus.npy", stimulus)
    golden.save(folder / "golden.npz")
    result = core_model.run(board_prog, stimulus)
    cost = core_model.cost_report(board_prog, result)
    (folder / "program.txt").write_text(prog.listing())
    core = {"board": board.name, "core": spec.as_dict(), "usage": prog.usage(),
            "cycles_per_bin": round(float(np.mean(result.cycles)), 1)}
    (folder / "top.json").write_text(json.dumps({
        "backend": "core", "name": graph.name, "trace": trace, "n_in": graph.n_in,
        "input_bits": graph.input_bits, **core, "spram": board.spram,
        "output_fields": graph.output_fields(trace),
        "cycles_per_bin_max": int(max(result.cycles))}, indent=2) + "\n")
    return {"backend": "core", **core, "instructions": len(prog.instructions), **cost}


def choose_backend(args, graph, board):
    """``(backend, why, program)`` for ``--backend`` (``program``: the board's program, without
    trace, when the backend is the core). auto: with ``--lanes`` a number, the dataflow top
    (lanes are its option); else the dataflow top when it fits ``board`` (at 4 lanes, or
    with ``--lanes auto`` the most that fit), else the core when the program fits the board's
    core, else the dataflow top (est-compile then warns that it does not fit). Resolves
    ``args.lanes`` for the dataflow top."""
    from est.compiler import costs
    from est.compiler.program import (
        compile_program,
        uses_osc,
        uses_osc_mult,
        uses_phase,
        uses_ssa,
    )
    from est.hw.dataflow import unsupported

    # the board's core, with its SSA, oscillator or phase unit if the model needs it
    spec = board.core_spec(ssa=uses_ssa(graph), osc=uses_osc(graph), phase=uses_phase(graph),
                           osc_mult=uses_osc_mult(graph))

    def core_only(why: str, refusal: str):
        try:
            return "core", why, compile_program(graph, spec, trace=False)
        except EstError as e:
            raise EstError(f"{refusal}{e}") from None

    if args.backend == "core":
        if args.lanes is not None:
            raise EstError(f"--lanes is an option of the dataflow top; the core's lanes are "
                           f"{board.name}'s ({spec.lanes}): drop --lanes, or use "
                           f"--backend dataflow")
        return core_only(f"{board.name}'s core", f"{board.name}'s core: ")
    one = unsupported(graph)
    if one:
        if args.backend == "dataflow" or isinstance(args.lanes, int):
            raise EstError(f"{one}: use --backend core (and drop --lanes)")
        return core_only(f"{one}; the program fits {board.name}'s core",
                         f"{one}, and {board.name}'s core: ")
    if args.backend == "dataflow" or isinstance(args.lanes, int):
        if args.lanes == "auto":
            args.lanes = costs.auto_lanes(graph, board)
        args.lanes = args.lanes or DEFAULT_LANES
        return "dataflow", f"--lanes {args.lanes}" if args.backend == "auto" else "", None
    try:
        if args.lanes == "auto":
            args.lanes = costs.auto_lanes(graph, board)
        costs.fit(graph, args.lanes or DEFAULT_LANES, board)
        args.lanes = args.lanes or DEFAULT_LANES
        return "dataflow", f"the dataflow top fits {board.name} (estimate)", None
    except EstError as e:
        dataflow = str(e)
    try:
        prog = compile_program(graph, spec, trace=False)
        args.lanes = None
        return ("core", f"the dataflow top does not fit {board.name}, the program fits its "
                f"core", prog)
    except EstError as e:
        core = str(e)
    if args.lanes == "auto":
        raise EstError(f"{dataflow}; nor does it fit {board.name}'s core ({core})")
    args.lanes = args.lanes or DEFAULT_LANES
    return "dataflow", f"it fits neither; {board.name}'s core: {core}", None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="checkpoint (.pt) written by est")
    parser.add_argument("-o", "--out", type=Path, required=True, help="build folder to write")
    parser.add_argument("--name", help="design name (default: the build folder's name)")
    parser.add_argument("--lanes",
                        help="dataflow top: neurons updated in parallel (at most the widest "
                             f"layer's; default {DEFAULT_LANES}), or 'auto': the most that fit "
                             "--board. Giving a number chooses the dataflow top")
    parser.add_argument("--weight-bits", type=int, default=8, help="signed weight width, 2..16")
    parser.add_argument("--max-v-bits", type=int, default=24,
                        help="widest membrane allowed, 2..32")
    parser.add_argument("--bins", type=int, default=256, help="bins of random stimulus, >= 1")
    parser.add_argument("--rate", type=float,
                        help="spike rate in [0, 1] of every input of the random stimulus and "
                             "calibration (default: the checkpoint's training rates for an "
                             f"EST, {DEFAULT_RATE} for a spiking MLP)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random stimulus; the random calibration uses seed+1")
    stim = parser.add_mutually_exclusive_group()
    stim.add_argument("--stimulus", type=Path, help=".npy [bins, n_in] of counts within the "
                      "input width, 0/1 for spikes (default: random, see --rate)")
    stim.add_argument("--recording", type=Path,
                      help="spike counts (.npz with counts and optionally true rates, as for "
                           "est-train): its first --bins bins, clipped to the input width, are "
                           "the stimulus; kept as recording.npz for the report's rate figure")
    parser.add_argument("--first-bin", type=int, default=0,
                        help="an EST with fitted rhythms (est-train's train.find_rhythms): the "
                             "stimulus starts at this bin of the recording it was trained on "
                             "(its rhythms' phase counts from that recording's bin 0; the test "
                             "split of the synthetic population starts at bin 20,400); default 0")
    parser.add_argument("--nir-dt", type=float,
                        help="for a NIR graph (model.nir): the time step in seconds its exporter "
                             "stepped its neurons with (snnTorch's export_to_nir: 1e-4)")
    parser.add_argument("--snntorch", type=Path, metavar="DESC.toml",
                        help="MODEL is the state dict of an snnTorch nn.Sequential (torch.save("
                             "model.state_dict(), path)); DESC.toml lists its modules (write it "
                             "with est.compiler.snntorch_frontend.describe; docs/snntorch.md)")
    parser.add_argument("--calibration", type=Path,
                        help=".npy [bins, n_in] used to choose widths (default: random, "
                             "--seed + 1)")
    parser.add_argument("--backend", choices=("auto", "dataflow", "core"), default="auto",
                        help="dataflow: a datapath per layer, the model in the gateware; core: "
                             "the shared event-driven core of --board, the model a program "
                             "loaded at run time (docs/core.md); auto (default): the dataflow "
                             "top if it fits --board, else the core if the model fits it")
    parser.add_argument("--board", default="icebreaker",
                        help="board to check the fit for; any est-synth --board name")
    parser.add_argument("--no-trace", action="store_true",
                        help="expose only the readout on the output stream (default: every "
                             "layer's spikes and membranes too, for est-compare)")


def check_options(args: argparse.Namespace) -> None:
    """The option values, each refused with a message that names it."""
    if args.lanes not in (None, "auto"):
        if not args.lanes.isdigit() or int(args.lanes) < 1:
            raise EstError(f"--lanes must be a whole number of at least 1 or 'auto', got "
                           f"{args.lanes!r}")
        args.lanes = int(args.lanes)
    if not 2 <= args.weight_bits <= 16:
        raise EstError(f"--weight-bits must be 2..16, got {args.weight_bits}")
    if not 2 <= args.max_v_bits <= 32:
        raise EstError(f"--max-v-bits must be 2..32, got {args.max_v_bits}")
    if not 1 <= args.bins <= MAX_BINS:
        raise EstError(f"--bins must be 1..{MAX_BINS:,}, got {args.bins}")
    if args.seed < 0:
        raise EstError(f"--seed must be at least 0, got {args.seed}")
    if args.first_bin < 0:
        raise EstError(f"--first-bin must be at least 0, got {args.first_bin}")
    if args.rate is not None and not (math.isfinite(args.rate) and 0.0 <= args.rate <= 1.0):
        raise EstError(f"--rate must be a number in [0, 1], got {args.rate}")


def compile_build(args: argparse.Namespace) -> int:
    """A checkpoint -> its integer graph (through the front end of its kind), golden traces of
    every tensor, the Verilog of the dataflow top and a report.

    The random stimulus and calibration spike at ``--rate`` when given, else at the rates the
    front end gives (an EST's training mean rate per input, when its checkpoint records them),
    else at :data:`DEFAULT_RATE`."""
    check_options(args)  # before the imports and the golden model: a mistake is told at once
    check_output(args.out, "ir.json", OUT_HINT)
    from est.boards.spec import get_board
    from est.compiler import costs
    from est.compiler.frontend import open_checkpoint
    from est.compiler.passes import PIPELINE
    from est.report import write_report
    from est.sim.interpreter import run

    board = get_board(args.board)
    name = (args.name or args.out.name).replace(".", "_")
    toolenv.apply()
    t0 = time.perf_counter()
    front = open_checkpoint(args.model, DEFAULT_RATE, args.nir_dt, args.snntorch,
                            args.first_bin)
    n_in, bits = front.n_in, front.input_bits
    rates = np.full(n_in, args.rate) if args.rate is not None else front.rates

    def spikes(seed: int, bins: int) -> np.ndarray:
        """Random input: spikes at ``rates``, or (counts) Poisson counts of mean ``rates``
        clipped to the input width."""
        rng = np.random.default_rng(seed)
        if bits == 1:
            return (rng.random((bins, n_in)) < rates).astype(np.int64)
        return np.minimum(rng.poisson(rates, (bins, n_in)), 2 ** bits - 1)

    recording = None
    if args.recording:
        stimulus, recording = recording_stimulus(args.recording, n_in, args.bins, bits)
    elif args.stimulus:
        stimulus = load_stimulus(args.stimulus, n_in, bits)
    else:
        stimulus = spikes(args.seed, args.bins)
    calib = (load_stimulus(args.calibration, n_in, bits) if args.calibration else
             spikes(args.seed + 1, max(args.bins, front.calibration_bins)))
    graph, qreport = front.quantize(name, calib, args.weight_bits, args.max_v_bits)
    graph = dataclasses.replace(graph, meta={
        **graph.meta, "source": str(args.model), "source_sha256":
        hashlib.sha256(args.model.read_bytes()).hexdigest(), "est_version": __version__})
    if isinstance(args.lanes, int) and args.lanes > (most := costs.widest(graph)):
        raise EstError(f"--lanes {args.lanes} is more than this network can use: its widest "
                       f"layer has {plural(most, 'neuron')}; use --lanes {most} or fewer")
    lanes_auto = args.lanes == "auto"
    backend, why, board_prog = choose_backend(args, graph, board)
    if args.backend == "auto":
        print(f"est-compile: --backend auto: {backend} ({why})", flush=True)
    if backend == "dataflow" and lanes_auto:
        print(f"est-compile: --lanes auto: {plural(args.lanes, 'lane')} "
              f"fit{'s' if args.lanes == 1 else ''} {board.name} (estimate)", flush=True)
    for note in front.extra.get("notes", []):
        print(f"est-compile: note: {note}", flush=True)
    outputs = plural(graph.n_out, 'output')
    if graph.meta.get("sum_outputs"):
        outputs = (f"{plural(graph.n_out // len(graph.outputs), 'log-rate')} (the sum of "
                   f"{len(graph.outputs)} readouts)")
    print(f"est-compile: {front.describe}, {plural(n_in, 'input')} -> {outputs}, "
          f"{plural(len(graph.nodes), 'node')}; running the golden model over "
          f"{plural(stimulus.shape[0], 'bin')} ...", flush=True)
    trace, saturated = run(graph, stimulus)
    report = {"name": graph.name, "model": str(args.model),
              "model_sha256": graph.meta["source_sha256"], **front.extra,
              "operations": graph.kinds(), "passes": list(PIPELINE), "backend": backend,
              "stimulus_bins": int(stimulus.shape[0]), "trace": not args.no_trace,
              "saturated_stimulus": saturated, "quantization": qreport}
    traced = "every tensor is traced" if not args.no_trace else "only the readout is"
    if backend == "core":
        with staged_output(args.out, "ir.json", OUT_HINT) as tmp:
            unit = " with its SSA unit (the model has SSA attention)" if board_prog.spec.ssa else ""
            if board_prog.spec.osc:
                unit += " with its oscillator unit (the model has oscillator readouts)"
            if board_prog.spec.osc_mult:
                unit += " and its multiplier (a rotation multiplier other than 1)"
            if board_prog.spec.phase:
                unit += " with its phase unit (the model has a table of a fractional advance)"
            print(f"est-compile: compiling the program for {board.name}'s core{unit} and "
                  f"running the core model ...", flush=True)
            hardware = write_core_build(tmp, graph, stimulus, trace, board, board_prog,
                                        not args.no_trace)
            if recording:
                np.savez(tmp / "recording.npz", **recording)
            report.update(lanes=hardware["lanes"], fit={"board": board.name, "fits": True},
                          hardware=hardware,
                          compile_seconds=round(time.perf_counter() - t0, 3))
            (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
            write_report(tmp, args.out)
        from est.sim.core_model import format_cost_report

        print(format_cost_report(hardware))
        use = ", ".join(f"{k.replace('_', ' ')} {v}/{hardware['core'][k]}"
                        for k, v in hardware["usage"].items())
        print(f"est-compile: wrote {args.out} (ir.json, weights.npz, golden.npz, program.txt, "
              f"top.json, report.json, report.html); {traced} on the output stream; "
              f"saturations {sum(saturated.values())}; {hardware['cycles_per_bin']} cycles/bin "
              f"on {board.name}'s core ({use})")
        return 0
    state_in_logic = costs.memory_plan(graph, args.lanes, board, strict=False)[0]
    fit = {"board": board.name, "fits": True}
    try:
        costs.fit(graph, args.lanes, board)
    except EstError as e:
        fit.update(fits=False, reason=str(e))
    with staged_output(args.out, "ir.json", OUT_HINT) as tmp:
        print("est-compile: writing Verilog through yosys ...", flush=True)
        cycles = write_build(tmp, graph, stimulus, trace, args.lanes, not args.no_trace)
        if recording:
            np.savez(tmp / "recording.npz", **recording)
        stages = costs.cost_report(graph, args.lanes, board, state_in_logic, cycles)
        report.update(lanes=args.lanes, fit=fit, hardware=stages,
                      compile_seconds=round(time.perf_counter() - t0, 3))
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        write_report(tmp, args.out)
    print(costs.format_table(stages))
    if not fit["fits"]:
        print(f"est-compile: warning: {fit['reason']}")
    print(f"est-compile: wrote {args.out} (ir.json, weights.npz, golden.npz, top.v, top.json, "
          f"report.json, report.html); {traced} on the output stream; saturations "
          f"{sum(saturated.values())}; {cycles} cycles/bin at lanes {args.lanes}; per-node "
          f"estimates for {board.name} above")
    return 0


COMPILE = Command(
    "compile", "Compile a trained checkpoint into an integer IR, golden traces of every layer, "
    "Verilog and a report (est-compile).", configure, compile_build, EXAMPLES)
main = COMPILE.main
run_main = COMPILE.script
