"""``est-compile MODEL.pt -o build/NAME``: checkpoint -> integer IR, golden traces, Verilog, report.

Everything goes to a staging folder first and appears under ``-o`` only when complete.

The compiler, the hardware and the golden models (torch, amaranth) are imported inside the
functions that use them, so that ``est-compile --help`` and a bad option answer at once.
"""

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

from est import EstError, __version__, toolenv
from est.cli import Command, check_output, plural, staged_output

DEFAULT_RATE = 0.2  # spike rate of the random stimulus of a spiking MLP (and of an EST
#                     checkpoint that records no training rates)
OUT_HINT = "choose another -o"

EXAMPLES = """  est-compile examples/est_tiny.pt -o build/tiny --lanes auto --board icebreaker
  est-compile model.pt -o build/spine --lanes 4 --bins 500 --trace
  est-compile model.pt -o build/spine --stimulus my_spikes.npy --board ulx3s-85f"""


def recording_stimulus(path: Path, n_in: int, bins: int) -> tuple[np.ndarray, dict]:
    """The first ``bins`` bins of a recording as binary stimulus, and the arrays kept in the
    build as ``recording.npz`` (counts, true rates when known, source)."""
    from est.sw.data import load_counts

    rec = load_counts(path)
    if rec.n_neurons != n_in:
        raise EstError(f"{path}: the recording has {plural(rec.n_neurons, 'neuron')} but the "
                       f"network takes {plural(n_in, 'input')}; record (or select) "
                       f"{plural(n_in, 'neuron')}")
    keep = {"counts": rec.counts[:bins], "source": np.array(str(path))}
    if rec.rates is not None:
        keep["rates"] = rec.rates[:bins]
    return np.minimum(rec.counts[:bins], 1), keep


def choose_stimulus(args, n_in: int, random_stimulus) -> tuple[np.ndarray, dict | None]:
    """``--stimulus``, ``--recording`` or ``random_stimulus()``; and the recording to keep."""
    if args.recording:
        return recording_stimulus(args.recording, n_in, args.bins)
    if args.stimulus:
        return load_stimulus(args.stimulus, n_in), None
    return random_stimulus(), None


def load_stimulus(path: Path, n_in: int) -> np.ndarray:
    """A [bins, n_in] array of 0/1 spikes from a .npy file, checked."""
    try:
        arr = np.load(path, allow_pickle=False)
    except EOFError:
        raise EstError(f"{path}: empty or truncated; expected a .npy [bins, {n_in}] array of "
                       f"0/1 spikes (numpy.save)") from None
    except (OSError, ValueError) as e:
        raise EstError(f"{path}: cannot read a .npy array ({e})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        arr.close()
        raise EstError(f"{path}: a .npz archive, not a .npy array; expected a .npy [bins, "
                       f"{n_in}] array of 0/1 spikes (numpy.save)")
    if arr.ndim != 2 or arr.shape[1] != n_in or arr.shape[0] < 1:
        raise EstError(f"{path}: expected a [bins, {n_in}] array of spikes, got shape {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise EstError(f"{path}: spikes must be 0 or 1 (this network takes binary input)")
    return arr.astype(np.int64)


def write_build(folder: Path, net, stimulus: np.ndarray, golden, trace: bool,
                verilog: bool = True) -> None:
    """The simulation inputs of a build folder: ``ir.json``, ``weights.npz``,
    ``stimulus.npy``, ``golden.npz``, ``top.json`` (stream fields) and, with ``verilog``,
    ``top.v`` (through yosys)."""
    from est.hw.top import cycles_per_bin, output_fields, to_verilog

    net.save(folder)
    np.save(folder / "stimulus.npy", stimulus)
    golden.save(folder / "golden.npz")
    (folder / "top.json").write_text(json.dumps({
        "name": net.name, "toplevel": "top", "trace": trace, "n_in": net.n_in,
        "output_fields": output_fields(net, trace), "cycles_per_bin": cycles_per_bin(net)},
        indent=2) + "\n")
    if verilog:
        (folder / "top.v").write_text(to_verilog(net, trace))


def write_est_build(folder: Path, net, stimulus: np.ndarray, golden, lanes: int) -> None:
    """The simulation inputs of an EST build folder: ``ir.json``, ``weights.npz``,
    ``stimulus.npy``, ``golden.npz``, ``top.json`` and ``top.v`` (every layer traced)."""
    from est.hw.est_top import est_cycles_bound, est_output_fields, est_to_verilog, measure_cycles

    net.save(folder)
    np.save(folder / "stimulus.npy", stimulus)
    golden.save(folder / "golden.npz")
    (folder / "top.json").write_text(json.dumps({
        "name": net.name, "arch": "est", "toplevel": "top", "trace": True, "n_in": net.n_in,
        "lanes": lanes, "output_fields": est_output_fields(net),
        "cycles_per_bin": measure_cycles(net, lanes),
        "cycles_budget": est_cycles_bound(net, lanes)}, indent=2) + "\n")
    (folder / "top.v").write_text(est_to_verilog(net, lanes))


def widest_layer(net) -> int:
    """The most neurons of any layer of ``net`` (a spiking MLP's
    :class:`~est.compiler.ir.Network` or an :class:`~est.compiler.est_ir.ESTNetwork`: the
    channels of its widest stage, as :func:`~est.compiler.est_report.auto_lanes` counts them):
    more lanes than this would update no more neurons per cycle."""
    from est.compiler.est_ir import ESTNetwork

    if isinstance(net, ESTNetwork):
        return max(net.d_model, net.n_out, *(b.mlp1.weight.shape[1] for b in net.blocks))
    return max(layer.n_out for layer in net.layers)


def check_lanes(lanes: int, net) -> None:
    """Refuse a ``--lanes`` the network cannot use (it would only make the Verilog, and yosys'
    work on it, larger)."""
    widest = widest_layer(net)
    if lanes > widest:
        raise EstError(f"--lanes {lanes} is more than this network can use: its widest layer "
                       f"has {plural(widest, 'neuron')}; use --lanes {widest} or fewer")


def auto_spine_lanes(net, board):
    """``net`` with the most lanes (no more than its widest layer) that pass
    :func:`~est.boards.spec.check_fit` on ``board`` (:func:`~est.boards.spec.most_lanes`)."""
    from est.boards.spec import check_fit, most_lanes

    def with_lanes(lanes):
        return type(net)(net.name, net.n_in, net.layers, lanes, net.meta)

    return with_lanes(most_lanes(widest_layer(net),
                                 lambda lanes: check_fit(with_lanes(lanes), board)))


def auto_lanes_message(lanes: int, board) -> str:
    fit = "fits" if lanes == 1 else "fit"
    return f"est-compile: --lanes auto: {plural(lanes, 'lane')} {fit} {board.name}"


def layer_costs(net) -> list[dict]:
    """Synaptic operations, schedule cycles and the dense lower bound of every layer."""
    from est.hw.synapse import ceil_div
    from est.hw.top import layer_cycles

    rows = []
    for layer in net.layers:
        ops = layer.n_in * layer.n_out
        rows.append({"name": layer.name, "synaptic_ops_per_bin": ops,
                     "dense_bound_cycles": ceil_div(ops, net.lanes),
                     "cycles": layer_cycles(layer.n_in, layer.n_out, net.lanes)})
    return rows


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="checkpoint (.pt) written by est")
    parser.add_argument("-o", "--out", type=Path, required=True, help="build folder to write")
    parser.add_argument("--name", help="design name (default: the build folder's name)")
    parser.add_argument("--lanes", default="4",
                        help="neurons updated in parallel (at most the widest layer's), or "
                             "'auto': the most that fit --board")
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
    stim.add_argument("--stimulus", type=Path,
                      help=".npy [bins, n_in] of 0/1 (default: random, see --rate)")
    stim.add_argument("--recording", type=Path,
                      help="spike counts (.npz with counts and optionally true rates, as for "
                           "est-train): its first --bins bins, clipped to 0/1, are the "
                           "stimulus; kept as recording.npz for the report's rate figure")
    parser.add_argument("--calibration", type=Path,
                        help=".npy [bins, n_in] used to choose widths (default: random, "
                             "--seed + 1)")
    parser.add_argument("--board", default="icebreaker",
                        help="board to check the fit for; any est-synth --board name")
    parser.add_argument("--trace", action="store_true",
                        help="expose every layer's spikes and membranes on the output stream")


def check_options(args: argparse.Namespace) -> None:
    """The option values, each refused with a message that names it."""
    if args.lanes != "auto":
        if not args.lanes.isdigit() or int(args.lanes) < 1:
            raise EstError(f"--lanes must be a whole number of at least 1 or 'auto', got "
                           f"{args.lanes!r}")
        args.lanes = int(args.lanes)
    if not 2 <= args.weight_bits <= 16:
        raise EstError(f"--weight-bits must be 2..16, got {args.weight_bits}")
    if not 2 <= args.max_v_bits <= 32:
        raise EstError(f"--max-v-bits must be 2..32, got {args.max_v_bits}")
    if args.bins < 1:
        raise EstError(f"--bins must be at least 1, got {args.bins}")
    if args.rate is not None and not (math.isfinite(args.rate) and 0.0 <= args.rate <= 1.0):
        raise EstError(f"--rate must be a number in [0, 1], got {args.rate}")


def compile_build(args: argparse.Namespace) -> int:
    # options and -o first: a mistake is reported at once, not after the imports (seconds)
    # and the golden model (more)
    check_options(args)
    check_output(args.out, "ir.json", OUT_HINT)
    from est.boards.spec import check_fit, get_board
    from est.compiler.frontend import checkpoint_arch, load_checkpoint
    from est.compiler.quantize import QuantConfig, quantize
    from est.hw.top import cycles_per_bin
    from est.report import write_report
    from est.sim.network import run

    board = get_board(args.board)
    name = args.name or args.out.name
    toolenv.apply()
    t0 = time.perf_counter()

    if checkpoint_arch(args.model) == "est":
        return compile_est(args, name, board, t0)
    fnet = load_checkpoint(args.model)
    n_in = fnet.n_in
    rate = DEFAULT_RATE if args.rate is None else args.rate
    rng = np.random.default_rng(args.seed)
    stimulus, recording = choose_stimulus(
        args, n_in, lambda: (rng.random((args.bins, n_in)) < rate).astype(np.int64))
    calib = (load_stimulus(args.calibration, n_in) if args.calibration else
             (np.random.default_rng(args.seed + 1).random((max(args.bins, 256), n_in))
              < rate).astype(np.int64))
    cfg = QuantConfig(args.weight_bits, args.max_v_bits, 1 if args.lanes == "auto" else args.lanes)
    net, qreport = quantize(fnet, name.replace(".", "_"), calib, cfg)
    if args.lanes == "auto":
        net = auto_spine_lanes(net, board)
        print(auto_lanes_message(net.lanes, board), flush=True)
    else:
        check_lanes(net.lanes, net)
    fit = check_fit(net, board)
    print(f"est-compile: {plural(len(net.layers), 'layer')}, {plural(n_in, 'input')} -> "
          f"{plural(net.n_out, 'output')}, lanes {net.lanes}; fits {board.name}: "
          f"{fit['bram']}/{board.brams} block RAMs, ~{fit['luts_estimate']}/{board.luts} LUTs "
          f"(estimate)", flush=True)
    trace, saturated = run(net, stimulus)
    t_golden = time.perf_counter()
    net_meta = {"source": str(args.model), "source_sha256":
                hashlib.sha256(args.model.read_bytes()).hexdigest(), "est_version": __version__}
    net = type(net)(net.name, net.n_in, net.layers, net.lanes, net_meta)

    with staged_output(args.out, "ir.json", OUT_HINT) as tmp:
        print("est-compile: writing Verilog through yosys ...", flush=True)
        write_build(tmp, net, stimulus, trace, args.trace)
        if recording:
            np.savez(tmp / "recording.npz", **recording)
        costs = layer_costs(net)
        for row, q in zip(costs, qreport["layers"], strict=True):
            q.update(row, saturated_stimulus=saturated[q["name"]])
        report = {
            "name": net.name, "model": str(args.model), "lanes": net.lanes,
            "stimulus_bins": int(stimulus.shape[0]), "trace": args.trace,
            "calibration_bins": qreport["calibration_bins"], "layers": qreport["layers"],
            "fit": fit,
            "synaptic_ops_per_bin": sum(r["synaptic_ops_per_bin"] for r in costs),
            "dense_bound_cycles_per_bin": sum(r["dense_bound_cycles"] for r in costs),
            "cycles_per_bin": cycles_per_bin(net),
            "golden_seconds": round(t_golden - t0, 3),
            "compile_seconds": round(time.perf_counter() - t0, 3),
        }
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        write_report(tmp, args.out)
    sat_total = sum(saturated.values())
    print(f"est-compile: wrote {args.out} (ir.json, weights.npz, golden.npz, top.v, report.json, "
          f"report.html); "
          f"{plural(stimulus.shape[0], 'stimulus bin')}, saturations {sat_total}, "
          f"{report['cycles_per_bin']} cycles/bin "
          f"(dense bound {report['dense_bound_cycles_per_bin']})")
    return 0


def compile_est(args, name: str, board, t0: float) -> int:
    """An EST checkpoint -> EST IR (version 2), golden traces of every layer, the Verilog of
    :class:`~est.hw.est_top.ESTTop` (every layer traced) and a report.

    The random stimulus and calibration spike at ``--rate`` when given, else at the training
    mean rate of each input that the checkpoint records (``train_mean_rates``, written by
    est-train), else at :data:`DEFAULT_RATE`."""
    from est.boards.spec import est_memory_plan
    from est.compiler.est_quantize import quantize_est
    from est.compiler.est_report import auto_lanes, est_report, fit_est, format_table
    from est.compiler.frontend import load_est_checkpoint
    from est.report import write_report
    from est.sim.est_network import run_est
    from est.sw.est import config_dict

    model, extra = load_est_checkpoint(args.model)
    n_in = model.cfg.n_in
    if args.rate is not None:
        rates = np.full(n_in, args.rate)
    else:
        rates = np.asarray(extra.get("train_mean_rates", [DEFAULT_RATE] * n_in),
                           dtype=np.float64)
        if rates.shape != (n_in,) or not np.all((rates >= 0) & (rates <= 1)):
            rates = np.full(n_in, DEFAULT_RATE)

    def spikes(seed: int, bins: int) -> np.ndarray:
        return (np.random.default_rng(seed).random((bins, n_in)) < rates).astype(np.int64)

    stimulus, recording = choose_stimulus(args, n_in, lambda: spikes(args.seed, args.bins))
    calib = (load_stimulus(args.calibration, n_in) if args.calibration else
             spikes(args.seed + 1, max(args.bins, 2000)))
    net, qreport = quantize_est(model, name.replace(".", "_"), calib,
                                weight_bits=args.weight_bits, max_v_bits=args.max_v_bits)
    if args.lanes == "auto":
        args.lanes = auto_lanes(net, board)
        print(f"{auto_lanes_message(args.lanes, board)} (estimate)", flush=True)
    else:
        check_lanes(args.lanes, net)
    print(f"est-compile: EST with {plural(len(net.blocks), 'block')}, d_model {net.d_model}, "
          f"{plural(n_in, 'input')} -> {plural(net.n_out, 'output')}; running the golden model "
          f"over {plural(stimulus.shape[0], 'bin')} ...", flush=True)
    trace = run_est(net, stimulus)
    try:
        state_in_logic, _ = fit_est(net, args.lanes, board)
        fit = {"board": board.name, "fits": True}
    except EstError as e:
        try:
            state_in_logic = est_memory_plan(net, args.lanes, board)[0]
        except EstError:
            state_in_logic = True
        fit = {"board": board.name, "fits": False, "reason": str(e)}
    with staged_output(args.out, "ir.json", OUT_HINT) as tmp:
        print("est-compile: writing Verilog through yosys ...", flush=True)
        write_est_build(tmp, net, stimulus, trace, args.lanes)
        if recording:
            np.savez(tmp / "recording.npz", **recording)
        cycles = json.loads((tmp / "top.json").read_text())["cycles_per_bin"]
        stages = est_report(net, args.lanes, board, state_in_logic, cycles)
        report = {
            "name": net.name, "arch": "est", "model": str(args.model),
            "model_sha256": hashlib.sha256(args.model.read_bytes()).hexdigest(),
            "model_config": config_dict(model.cfg),
            "lanes": args.lanes, "stimulus_bins": int(stimulus.shape[0]),
            "quantization": qreport, "fit": fit, "hardware": stages,
            "compile_seconds": round(time.perf_counter() - t0, 3),
        }
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        write_report(tmp, args.out)
    print(format_table(stages))
    if not fit["fits"]:
        print(f"est-compile: warning: {fit['reason']}")
    print(f"est-compile: wrote {args.out} (ir.json, weights.npz, golden.npz, top.v, top.json, "
          f"report.json, report.html); every layer is traced on the output stream; {cycles} "
          f"cycles/bin at lanes {args.lanes}; per-stage estimates for {board.name} above")
    return 0


COMPILE = Command(
    "compile", "Compile a trained checkpoint into an integer IR, golden traces of every layer, "
    "Verilog and a report (est-compile).", configure, compile_build, EXAMPLES)
main = COMPILE.main
run_main = COMPILE.script
