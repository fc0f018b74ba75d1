"""``est-compile MODEL.pt -o build/NAME``: checkpoint -> integer IR, golden traces, Verilog, report.

Everything goes to a staging folder first and appears under ``-o`` only when complete.
"""

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from est import EstError, __version__, toolenv
from est.boards.spec import check_fit, est_memory_plan, get_board, most_lanes
from est.cli import Command, staged_output
from est.compiler.est_quantize import quantize_est
from est.compiler.est_report import auto_lanes, est_report, fit_est, format_table
from est.compiler.frontend import checkpoint_arch, load_checkpoint, load_est_checkpoint
from est.compiler.quantize import QuantConfig, quantize
from est.hw.est_top import est_cycles_bound, est_output_fields, est_to_verilog, measure_cycles
from est.hw.synapse import ceil_div
from est.hw.top import cycles_per_bin, layer_cycles, output_fields, to_verilog
from est.report import write_report
from est.sim.est_network import run_est
from est.sim.network import run
from est.sw.est import config_dict

EXAMPLES = """  est-compile examples/est_tiny.pt -o build/tiny --lanes auto --board icebreaker
  est-compile model.pt -o build/spine --lanes 4 --bins 500 --trace
  est-compile model.pt -o build/spine --stimulus my_spikes.npy --board ulx3s-85f"""


def recording_stimulus(path: Path, n_in: int, bins: int) -> tuple[np.ndarray, dict]:
    """The first ``bins`` bins of a recording as binary stimulus, and the arrays kept in the
    build as ``recording.npz`` (counts, true rates when known, source)."""
    from est.sw.data import load_counts

    rec = load_counts(path)
    if rec.n_neurons != n_in:
        raise EstError(f"{path}: the recording has {rec.n_neurons} neurons but the network "
                       f"takes {n_in} inputs; record (or select) {n_in} neurons")
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
    except (OSError, ValueError) as e:
        raise EstError(f"{path}: cannot read a .npy array ({e})") from None
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
    net.save(folder)
    np.save(folder / "stimulus.npy", stimulus)
    golden.save(folder / "golden.npz")
    (folder / "top.json").write_text(json.dumps({
        "name": net.name, "arch": "est", "toplevel": "top", "trace": True, "n_in": net.n_in,
        "lanes": lanes, "output_fields": est_output_fields(net),
        "cycles_per_bin": measure_cycles(net, lanes),
        "cycles_budget": est_cycles_bound(net, lanes)}, indent=2) + "\n")
    (folder / "top.v").write_text(est_to_verilog(net, lanes))


def auto_spine_lanes(net, board):
    """``net`` with the most lanes (no more than its widest layer) that pass
    :func:`~est.boards.spec.check_fit` on ``board`` (:func:`~est.boards.spec.most_lanes`)."""
    def with_lanes(lanes):
        return type(net)(net.name, net.n_in, net.layers, lanes, net.meta)

    widest = max(layer.n_out for layer in net.layers)
    return with_lanes(most_lanes(widest, lambda lanes: check_fit(with_lanes(lanes), board)))


def layer_costs(net) -> list[dict]:
    """Synaptic operations, schedule cycles and the dense lower bound of every layer."""
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
                        help="neurons updated in parallel, or 'auto': the most that fit --board")
    parser.add_argument("--weight-bits", type=int, default=8, help="signed weight width")
    parser.add_argument("--max-v-bits", type=int, default=24, help="widest membrane allowed")
    parser.add_argument("--bins", type=int, default=256, help="bins of random stimulus")
    parser.add_argument("--rate", type=float, default=0.2, help="random stimulus spike rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random stimuli")
    stim = parser.add_mutually_exclusive_group()
    stim.add_argument("--stimulus", type=Path, help=".npy [bins, n_in] of 0/1 (else random)")
    stim.add_argument("--recording", type=Path,
                      help="spike counts (.npz with counts and optionally true rates, as for "
                           "est-train): its first --bins bins, clipped to 0/1, are the "
                           "stimulus; kept as recording.npz for the report's rate figure")
    parser.add_argument("--calibration", type=Path,
                        help=".npy [bins, n_in] used to choose widths (else random, seed+1)")
    parser.add_argument("--board", default="icebreaker", help="board to check the fit for")
    parser.add_argument("--trace", action="store_true",
                        help="expose every layer's spikes and membranes on the output stream")


def compile_build(args: argparse.Namespace) -> int:
    if args.lanes != "auto":
        if not args.lanes.isdigit() or int(args.lanes) < 1:
            raise EstError(f"--lanes must be a whole number of at least 1 or 'auto', got "
                           f"{args.lanes!r}")
        args.lanes = int(args.lanes)
    if not 2 <= args.weight_bits <= 16:
        raise EstError(f"--weight-bits must be 2..16, got {args.weight_bits}")
    if not 2 <= args.max_v_bits <= 32:
        raise EstError(f"--max-v-bits must be 2..32, got {args.max_v_bits}")
    if not 0.0 <= args.rate <= 1.0 or args.bins < 1:
        raise EstError("--rate must be in [0, 1] and --bins at least 1")
    board = get_board(args.board)
    name = args.name or args.out.name
    toolenv.apply()
    t0 = time.perf_counter()

    if checkpoint_arch(args.model) == "est":
        return compile_est(args, name, board, t0)
    fnet = load_checkpoint(args.model)
    n_in = fnet.n_in
    rng = np.random.default_rng(args.seed)
    stimulus, recording = choose_stimulus(
        args, n_in, lambda: (rng.random((args.bins, n_in)) < args.rate).astype(np.int64))
    calib = (load_stimulus(args.calibration, n_in) if args.calibration else
             (np.random.default_rng(args.seed + 1).random((max(args.bins, 256), n_in))
              < args.rate).astype(np.int64))
    cfg = QuantConfig(args.weight_bits, args.max_v_bits, 1 if args.lanes == "auto" else args.lanes)
    net, qreport = quantize(fnet, name.replace(".", "_"), calib, cfg)
    if args.lanes == "auto":
        net = auto_spine_lanes(net, board)
        print(f"est-compile: --lanes auto: {net.lanes} lanes fit {board.name}", flush=True)
    fit = check_fit(net, board)
    print(f"est-compile: {len(net.layers)} layers, {n_in} inputs -> {net.n_out} outputs, "
          f"lanes {net.lanes}; fits {board.name}: {fit['bram']}/{board.brams} block RAMs, "
          f"~{fit['luts_estimate']}/{board.luts} LUTs (estimate)", flush=True)
    trace, saturated = run(net, stimulus)
    t_golden = time.perf_counter()
    net_meta = {"source": str(args.model), "source_sha256":
                hashlib.sha256(args.model.read_bytes()).hexdigest(), "est_version": __version__}
    net = type(net)(net.name, net.n_in, net.layers, net.lanes, net_meta)

    with staged_output(args.out, "ir.json") as tmp:
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
          f"{stimulus.shape[0]} stimulus bins, saturations {sat_total}, "
          f"{report['cycles_per_bin']} cycles/bin "
          f"(dense bound {report['dense_bound_cycles_per_bin']})")
    return 0


def compile_est(args, name: str, board, t0: float) -> int:
    """An EST checkpoint -> EST IR (version 2), golden traces of every layer, the Verilog of
    :class:`~est.hw.est_top.ESTTop` (every layer traced) and a report."""
    model, extra = load_est_checkpoint(args.model)
    n_in = model.cfg.n_in
    rates = np.asarray(extra.get("train_mean_rates", [args.rate] * n_in), dtype=np.float64)
    if rates.shape != (n_in,) or not np.all((rates >= 0) & (rates <= 1)):
        rates = np.full(n_in, args.rate)

    def spikes(seed: int, bins: int) -> np.ndarray:
        return (np.random.default_rng(seed).random((bins, n_in)) < rates).astype(np.int64)

    stimulus, recording = choose_stimulus(args, n_in, lambda: spikes(args.seed, args.bins))
    calib = (load_stimulus(args.calibration, n_in) if args.calibration else
             spikes(args.seed + 1, max(args.bins, 2000)))
    net, qreport = quantize_est(model, name.replace(".", "_"), calib,
                                weight_bits=args.weight_bits, max_v_bits=args.max_v_bits)
    if args.lanes == "auto":
        args.lanes = auto_lanes(net, board)
        print(f"est-compile: --lanes auto: {args.lanes} lanes fit {board.name} (estimate)",
              flush=True)
    print(f"est-compile: EST with {len(net.blocks)} blocks, d_model {net.d_model}, "
          f"{n_in} inputs -> {net.n_out} outputs; running the golden model over "
          f"{stimulus.shape[0]} bins ...", flush=True)
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
    with staged_output(args.out, "ir.json") as tmp:
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
