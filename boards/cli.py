"""``est-synth BUILD_DIR --board NAME``: bitstream, utilisation, Fmax and latency of a build;
``est-run BUILD --port DEV``: stream a recording through the board and write its predictions.

The boards, the hardware and the simulators (amaranth) are imported inside the functions that
use them, so that ``--help`` and a bad option answer at once.
"""

import argparse
import json
import math
import time
from pathlib import Path

from est import EstError
from est.cli import EXIT_MISMATCH, Command, check_output, plural, staged_output
from est.compiler.graph import read_json


def board_name(name: str) -> str:
    """``est-synth --board``: one of :data:`~est.boards.spec.BOARDS` (the list is imported
    when an argument is parsed, not when the parser is built)."""
    from est.boards.spec import BOARDS

    if name not in BOARDS:
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from "
                                         f"{', '.join(map(repr, sorted(BOARDS)))})")
    return name


def format_report(r: dict) -> str:
    from est.boards.synth import KEY_CELLS

    lines = [f"{r['board']}: bitstream {r['bitstream']} ({r['seconds']} s)"]
    util = r["utilisation"]
    shown = [c for c in KEY_CELLS if c in util] + [c for c, u in util.items()
                                                   if u["used"] and c not in KEY_CELLS]
    for cell in shown:
        u = util[cell]
        lines.append(f"  {cell:<16}{u['used']:>7} / {u['available']:<7}"
                     f"{100 * u['used'] / u['available']:5.1f}%")
    lines.append(f"  Fmax {r['fmax_mhz']:.1f} MHz (board clock {r['board_clock_mhz']:.1f} MHz: "
                 f"{'met' if r['board_clock_met'] else 'NOT met'})")
    lines.append(f"  {r['cycles_per_bin']} cycles/bin: {r['latency_us_at_board_clock']} us/bin at "
                 f"the board clock ({r['bins_per_second_at_board_clock']:,.0f} bins/s), "
                 f"{r['latency_us_at_fmax']} us/bin at Fmax")
    if "uart" in r:
        u = r["uart"]
        lines.append(f"  UART {u['baud']} baud: {u['bytes_per_bin']['in']} bytes in and "
                     f"{u['bytes_per_bin']['out']} out a bin, {u['line_ms_per_bin']} ms of line "
                     f"time: at most {u['bins_per_second']:,.1f} bins/s over the UART")
    return "\n".join(lines)


def configure_synth(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("build", type=Path, help="folder written by est-compile")
    parser.add_argument("--board", default="icebreaker", type=board_name, metavar="BOARD",
                        help="board to synthesize for: icebreaker, icesugar, ice40-hx8k-evn "
                             "(iCE40); ulx3s-12f, ulx3s-25f, ulx3s-45f, ulx3s-85f, icesugar-pro, "
                             "colorlight-5a75b (ECP5)")
    parser.add_argument("--force", action="store_true",
                        help="synthesize even when the fit check's logic estimate is over its "
                             "margin (refused otherwise, before yosys runs)")
    parser.add_argument("--baud", type=int, default=115200,
                        help="the board top's UART rate (default 115200); est-run takes it "
                             "from the build; a bin's line time is in the report")


def run_synth(args: argparse.Namespace) -> int:
    from est.boards.spec import get_board
    from est.boards.synth import synthesize
    from est.report import write_report

    if not (args.build / "ir.json").is_file():
        raise EstError(f"{args.build}: not an est-compile build folder (no ir.json)")
    board = get_board(args.board)
    out = args.build / f"synth_{board.name}"
    hint = "est-synth writes synth_BOARD into the build folder: copy it somewhere writable"
    check_output(out, "synth.json", hint)
    print(f"est-synth: synthesizing {args.build} for {board.name} (yosys, nextpnr, pack; "
          f"a minute for a small design, several for an EST on the ECP5) ...", flush=True)
    with staged_output(out, "synth.json", hint) as tmp:
        report = synthesize(args.build, board, tmp, force=args.force, baud=args.baud)
        report["bitstream"] = str(out / Path(report["bitstream"]).name)
        (tmp / "synth.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    if not report["board_clock_met"]:
        raise EstError(f"timing not met on {board.name}: Fmax {report['fmax_mhz']} MHz is below "
                       f"the {report['board_clock_mhz']} MHz board clock")
    print(f"report: {write_report(args.build)}")
    return 0


RUN_EXAMPLES = """  est-run build/tiny --port /dev/ttyUSB1      # an iCEBreaker (FTDI channel B)
  est-run build/tiny --port sim               # the RTL in simulation, no board
  est-run build/tiny --port /dev/ttyUSB0 --input recording.npy -o build/tiny/run
  est-run build/small --port /dev/ttyUSB1 --load   # a core build: load it, then stream
  est-run build/a build/b --port sim --load   # two models, one after the other, one core"""


def _open_port(args, build: Path):
    """The serial port, or with ``--port sim`` the build's board top in amaranth.sim: its
    model in the gateware, or for ``--load`` the bare core of its spec (no model yet)."""
    if args.port == "sim":
        from est.boards.top import bare_core_bridge, board_bridge
        from est.sim.board_sim import SimulatedSerial

        make = bare_core_bridge(build) if args.load else board_bridge(build)[0]
        return SimulatedSerial(make)
    import serial

    try:
        return serial.serial_for_url(args.port, baudrate=args.baud, timeout=args.timeout)
    except (serial.SerialException, ValueError) as e:
        raise EstError(f"cannot open serial port {args.port}: {e}. Check the device name "
                       f"(ls /dev/ttyUSB* /dev/ttyACM*), that the board is plugged in and that "
                       f"you may use it (the dialout group)") from None


def configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("build", type=Path, nargs="+",
                        help="folder written by est-compile; several core builds with --load "
                             "run one after the other on one board (one simulated board with "
                             "--port sim)")
    parser.add_argument("--port", required=True,
                        help="serial device or pyserial URL, or 'sim' for the simulated RTL")
    parser.add_argument("--baud", type=int,
                        help="serial baud rate (default: the rate est-synth built the build's "
                             "bitstream with, else 115200)")
    parser.add_argument("--timeout", type=float, default=0.5,
                        help="seconds (> 0) to wait for a reply before asking again")
    parser.add_argument("--input", type=Path,
                        help="[bins, n_in] .npy of 0/1 spikes, or counts for a network of "
                             "count inputs (default: each build's stimulus)")
    parser.add_argument("--load", action="store_true",
                        help="a core build: load its program, weights and thresholds into the "
                             "board's core first (no synthesis: the board runs a core build's "
                             "bitstream of the same core)")
    parser.add_argument("-o", "--out", type=Path,
                        help="output folder, one build only (default: BUILD/run)")


class _Job:
    """One build of an ``est-run``: its graph, stimulus, input words and (a core build) board
    program, all checked before the port opens."""

    def __init__(self, args: argparse.Namespace, build: Path):
        import numpy as np

        from est.boards.protocol import ir_hash
        from est.compiler.graph import load
        from est.sim.cli import build_stimulus, check_build
        from est.sim.words import encode_inputs

        if not (build / "ir.json").is_file():
            raise EstError(f"{build}: not an est-compile build folder (no ir.json)")
        self.build, self.out = build, args.out or build / "run"
        check_output(self.out, "run.json", "choose another -o")
        self.net = load(build)
        self.hash = ir_hash(build)
        self.backend = read_json(build, "top.json").get("backend", "dataflow")
        self.stimulus, self.source = build_stimulus(build, args.input, self.net)
        if args.input is None:  # the report, refreshed at the end, readable now
            check_build(build, self.net, self.stimulus)
        else:
            from est.report import read_report
            from est.sim.trace import Trace

            read_report(build)
            Trace.load(build / "golden.npz")
        if self.backend == "core":
            from est.boards.top import board_program, core_ident

            self.prog = board_program(build)
            self.in_bits = core_ident(self.prog, self.hash, str(build)).in_bits
            self.words_in = [self.prog.input_word(x)
                             for x in np.asarray(self.stimulus, np.int64)]
        elif args.load:
            raise EstError(f"--load: {build} is a dataflow build, whose model is in its "
                           f"bitstream; compile with --backend core to load a model at run "
                           f"time")
        else:
            self.prog, self.in_bits = None, self.net.n_in * self.net.input_bits
            self.words_in = encode_inputs(self.stimulus, self.net.input_bits)

    def run(self, args: argparse.Namespace, link) -> int:
        """Load (``--load``), stream, write ``run.json`` and ``predictions.npz``, check
        against the golden model: 0, or :data:`EXIT_MISMATCH`."""
        import numpy as np
        from tqdm import tqdm

        from est.report import write_report
        from est.sim.interpreter import run
        from est.sim.trace import compare
        from est.sim.words import decode_outputs

        net, stimulus = self.net, self.stimulus
        if args.load:
            from est.hw.core import load_words

            print(f"est-run: loading {self.build} into the core on {args.port} "
                  f"({plural(len(self.prog.weights), 'weight word')}) ...", flush=True)
            with tqdm(total=len(load_words(self.prog)) - 1, unit="word", disable=args.quiet,
                      leave=False) as bar:  # every load word but the start
                link.load(self.prog, self.hash, bar.update)
        ident = link.check(self.hash, self.in_bits)
        line = "" if args.port == "sim" else f" at {args.baud} baud"
        print(f"est-run: board on {args.port}{line}: est {ident.version}, network "
              f"{ident.ir_hash.hex()}, {plural(net.n_in, 'input')} of "
              f"{plural(net.input_bits, 'bit')}; streaming "
              f"{plural(len(stimulus), 'bin')} of {self.source}", flush=True)
        recovered = link.recoveries
        t0 = time.perf_counter()
        with tqdm(total=len(stimulus), unit="bin", disable=args.quiet, leave=False) as bar:
            words = link.stream(self.words_in, bar.update)
        seconds = time.perf_counter() - t0
        recovered = link.recoveries - recovered
        if self.prog is not None:
            from est.compiler.program import decode_trace

            board = decode_trace(self.prog, [self.prog.output_words(w) for w in words],
                                 {"source": f"board:{args.port}"})
            head = self.prog.outputs[0].tensor
        else:
            fields = net.output_fields(trace=False)
            board = decode_outputs(fields, words, {"source": f"board:{args.port}"})
            head = fields[0][0]
        readout = board.arrays[head]
        check = compare(run(net, stimulus)[0], board)
        summary = {"build": str(self.build), "port": args.port, "input": str(self.source),
                   "bins": len(stimulus), "seconds": round(seconds, 3),
                   "bins_per_second": round(len(stimulus) / seconds, 1),
                   "recoveries": recovered, "ir_hash": ident.ir_hash.hex(),
                   "loaded": args.load, "backend": self.backend,
                   "golden_mismatches": check.mismatches,
                   "golden_values": check.values_compared}
        spiking = net.node(net.outputs[0]).op.KIND != "readout"
        what = "output spikes" if spiking else "readout values"
        with staged_output(self.out, "run.json", "choose another -o") as tmp:
            if not spiking:  # every readout's values, and the log-rates they give
                log_rate = net.log_rates(board.arrays)
                readout = np.hstack([board.arrays[f"{o}/v"] for o in net.outputs])
                np.savez(tmp / "predictions.npz", readout=readout, log_rate=log_rate,
                         rate=np.exp(log_rate))
            else:  # a spiking output (a classifier's): its spikes
                np.savez(tmp / "predictions.npz", spikes=readout)
            (tmp / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"est-run: {plural(len(stimulus), 'bin')} in {seconds:.1f} s "
              f"({summary['bins_per_second']} bins/s, "
              f"{plural(recovered, 'damaged frame')} recovered); predictions in "
              f"{self.out / 'predictions.npz'}")
        print(f"report: {write_report(self.build)}")
        if check.mismatches:
            print(f"est-run: MISMATCH with the golden model: {check.mismatches} of "
                  f"{check.values_compared} {what} differ, first at {check.first}")
            return EXIT_MISMATCH
        print(f"est-run: all {check.values_compared} {what} equal the golden model's")
        return 0


def run_host(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise EstError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.baud is None and args.port != "sim":
        from est.boards.top import bitstream_baud

        args.baud = bitstream_baud(args.build[0])
    if args.baud is not None and args.baud < 1:
        raise EstError(f"--baud must be a positive whole number, got {args.baud}")
    builds = args.build
    if len(builds) > 1 and not args.load:
        raise EstError(f"{len(builds)} builds on one board: only core builds loaded at run "
                       f"time can share one (add --load), or run est-run once per build")
    if len(builds) > 1 and args.out:
        raise EstError(f"-o names one output folder, but {len(builds)} builds were given: "
                       f"drop -o (each build writes BUILD/run)")
    if len({b.resolve() for b in builds}) < len(builds):
        raise EstError("a build folder is given twice: each build writes BUILD/run")
    jobs = [_Job(args, b) for b in builds]
    from est.boards.host import BoardLink

    port = _open_port(args, builds[0])
    status = 0
    try:
        link = BoardLink(port)
        for job in jobs:
            status = job.run(args, link) or status
    finally:
        port.close()
    return status


SYNTH = Command(
    "synth", "Synthesize a compiled build for a board with yosys and nextpnr (YoWASP): "
    "bitstream, utilisation, Fmax, latency per bin (est-synth).", configure_synth, run_synth,
    "  est-synth build/tiny --board icebreaker\n  est-synth build/small --board ulx3s-85f")
RUN = Command(
    "run", "Stream a recording through a board programmed with a build (or its RTL in "
    "simulation), write the predictions and check them against the golden model (est-run).",
    configure_run, run_host, RUN_EXAMPLES)
main = SYNTH.main
host = RUN.main
run_main = SYNTH.script
host_main = RUN.script
