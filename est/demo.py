"""``make demo`` (``est demo``): the whole flow on the example EST, from checkpoint to bitstream.

1. the model: ``examples/est_small.pt`` (d_model 16, two blocks, every EST part on, six slow
   readouts, two oscillator readouts and three fitted rhythms; on held-out data level with the
   tuned GLM with slow means, oscillators and rhythms it starts from, its attention almost
   silent), or with ``--train`` a
   fresh one trained from ``examples/est_small.toml`` (about 50 minutes on 2 cores);
2. a recording: the held-out test part of the seeded synthetic population it was trained on,
   with its true rates;
3. ``est-compile --board icebreaker --recording``: integer IR, golden traces of every layer,
   and the gateware ``--backend auto`` picks (for est_small the iCEBreaker's event-driven
   core: the dataflow top does not fit that board);
4. ``est-sim`` on Verilator and ``est-compare``: every spike and membrane of every layer, and
   the golden-vs-RTL view ``model/rtl_verilator_compare.html`` (and ``.png``);
5. ``est-synth --board icebreaker``: bitstream, utilisation, Fmax;
6. ``est-run --port sim``: a few bins through the board top's UART protocol, in simulation;

then a summary and the paths of the compare view and of ``report.html``. Exit 0 only if the
RTL and the simulated board matched the golden model everywhere and the bitstream met the board
clock.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from est import EstError, toolenv
from est.cli import Command, mismatches


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def write_test_recording(config: Path, bins: int, out: Path) -> int:
    """The test split of the ``[data]`` population in ``config``: counts and true rates.
    Returns the split's first bin in the recording (where a model's fitted rhythms are then)."""
    from est.sw.glm import first_bin
    from est.sw.train import get_data, load_config

    data, _, _ = load_config(config, [])
    test = get_data(data)[2]
    np.savez(out, counts=test.counts[:bins], rates=test.rates[:bins])
    return first_bin(test)


def has_rhythms(model: Path) -> bool:
    """Whether the checkpoint is an EST with fitted rhythms (their phase needs --first-bin)."""
    from est.compiler.frontend import checkpoint_arch, load_est_checkpoint

    return checkpoint_arch(model) == "est" and bool(load_est_checkpoint(model)[0].cfg.rhythms)


def configure(parser: argparse.ArgumentParser) -> None:
    examples = toolenv.est_home() / "examples"
    parser.add_argument("--out", type=Path, default=Path("build/demo"),
                        help="folder for everything the demo writes (default build/demo)")
    parser.add_argument("--model", type=Path, default=examples / "est_small.pt",
                        help="EST checkpoint (default: the example EST, which runs on the "
                             "iCEBreaker's core)")
    parser.add_argument("--config", type=Path, default=examples / "est_small.toml",
                        help="training config: its [data] gives the test recording")
    parser.add_argument("--train", action="store_true",
                        help="train the model from --config first instead of loading --model")
    parser.add_argument("--bins", type=int, default=40, help="bins simulated (default 40)")
    parser.add_argument("--board-bins", type=int, default=8,
                        help="bins sent through the simulated board's UART (default 8)")
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"),
                        help="simulator of step 4")
    parser.add_argument("--board", default="icebreaker",
                        help="board to compile for and synthesize (an est-synth --board name)")


def demo(args: argparse.Namespace) -> int:
    from est.boards.cli import host
    from est.boards.cli import main as synth_main
    from est.boards.synth import logic_used
    from est.compiler.cli import main as compile_main
    from est.report import find_metrics
    from est.sim.cli import compare_cmd, sim
    from est.sim.trace import Trace, compare
    from est.sw.cli import main as train_main

    t0 = time.perf_counter()
    for path in (args.config,) if args.train else (args.model, args.config):
        if not path.is_file():
            raise EstError(f"{path} not found: the demo needs the example files of a source "
                           f"checkout (examples/), or give --model and --config")
    args.out.mkdir(parents=True, exist_ok=True)
    build, recording = args.out / "model", args.out / "test_recording.npz"
    model = args.model
    if args.train:
        step(f"1/6 est-train --config {args.config}")
        train_main(["--config", str(args.config), "--out", str(args.out / "train")])
        model = args.out / "train" / "model.pt"
    else:
        step(f"1/6 model: {model} (--train to train it again)")
    step(f"2/6 recording: {args.bins} bins of the held-out synthetic test data, with true rates")
    first = write_test_recording(args.config, args.bins, recording)
    print(f"wrote {recording} (bins {first}.. of the recording)")
    step(f"3/6 est-compile --board {args.board} (--backend auto: what fits the board)")
    compile_main([str(model), "-o", str(build), "--board", args.board,
                  "--recording", str(recording), "--bins", str(args.bins),
                  *(["--first-bin", str(first)] if has_rhythms(model) else [])])
    step(f"4/6 est-sim --sim {args.sim}, then est-compare (every value of every layer)")
    sim([str(build), "--sim", args.sim])
    compare_cmd([str(build)])
    result = compare(Trace.load(build / "golden.npz"), Trace.load(build / f"rtl_{args.sim}.npz"))
    view = build / f"rtl_{args.sim}_compare.html"
    if not view.is_file() or not view.with_suffix(".png").is_file():
        raise EstError(f"est-compare wrote no view {view} (and .png)")
    step(f"5/6 est-synth --board {args.board} (yosys + nextpnr through YoWASP, a few minutes)")
    synth_main([str(build), "--board", args.board])
    step(f"6/6 est-run --port sim: {args.board_bins} bins through the board top's UART protocol "
         f"(RTL in simulation)")
    board_input = args.out / "board_input.npy"
    np.save(board_input, np.load(build / "stimulus.npy")[:args.board_bins])
    run_status = host([str(build), "--port", "sim", "--input", str(board_input)])

    report = json.loads((build / "report.json").read_text())
    synth = json.loads((build / f"synth_{args.board}" / "synth.json").read_text())
    rtl = json.loads((build / f"rtl_{args.sim}.json").read_text())
    run = json.loads((build / "run" / "run.json").read_text())
    cell, used, available = logic_used(synth)
    cycles = synth["cycles_per_bin"]
    core = report["backend"] == "core"
    print("\n== summary")
    print(f"  model           {model}: EST d_model {report['model_config']['d_model']}, "
          f"{report['model_config']['blocks']} block(s), "
          f"{'the event-driven core' if core else 'the dataflow top'}, lanes {report['lanes']}")
    metrics, where = find_metrics(str(model))
    if metrics is not None:
        scores = ", ".join(f"{label} {metrics[key]['test']['bits_per_spike']:.3f}"
                           for label, key in (("float", "float"), ("integer", "integer"),
                                              ("GLM", "glm"), ("true rates", "true_rates"))
                           if key in metrics)
        print(f"  model quality   held-out bits/spike {scores} ({where})")
    print(f"  RTL vs golden   {mismatches(result.mismatches)} in {result.values_compared} values "
          f"({result.bins} bins, {len(result.tensors)} tensors, {args.sim})")
    print(f"  board protocol  {run['golden_mismatches']} mismatches in {run['golden_values']} "
          f"readout values ({run['bins']} bins over the simulated UART)")
    print(f"  {args.board:<15} {cell} {used}/{available}, "
          f"Fmax {synth['fmax_mhz']:.1f} MHz (board clock {synth['board_clock_mhz']:g} MHz "
          f"{'met' if synth['board_clock_met'] else 'NOT met'})")
    if core:
        per_bin = report["hardware"]["bin"]
        bound = max(per_bin["event_bound_mean"], per_bin["memory_bound_mean"])
        what = (f"event bound {per_bin['event_bound_mean']:.0f}, memory bound "
                f"{per_bin['memory_bound_mean']:.0f}: {cycles / bound:.2f}x the larger")
    else:
        bound = report["hardware"]["total"]["dense_bound"]
        what = f"dense bound {bound}, {cycles / bound:.2f}x"
    print(f"  cycles per bin  {cycles} ({what}; {rtl['cycles_per_bin']} measured in "
          f"simulation); {synth['latency_us_at_board_clock']} us/bin at the board clock")
    uart = synth["uart"]
    print(f"  UART            {uart['baud']} baud: {uart['line_ms_per_bin']} ms of line time a "
          f"bin ({sum(uart['bytes_per_bin'].values())} bytes): at most "
          f"{uart['bins_per_second']:,.1f} bins/s over the UART (est-synth --baud)")
    print(f"  bitstream       {synth['bitstream']}")
    print(f"  compare view    {view} (and .png)")
    print(f"  report          {build / 'report.html'}")
    print(f"  total           {time.perf_counter() - t0:.0f} s")
    if result.mismatches or run_status or not synth["board_clock_met"]:
        raise EstError("the demo did not pass: see the mismatches or timing above")
    return 0


DEMO = Command("demo", "The whole flow on the example EST: compile, simulate, compare, "
               "synthesize, run over the simulated UART (make demo).", configure, demo,
               "  est demo\n  est demo --train --out build/demo_trained")
main = DEMO.main

if __name__ == "__main__":
    raise SystemExit(DEMO.script())
