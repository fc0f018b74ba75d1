"""``est-synth BUILD_DIR --board NAME``: bitstream, utilisation, Fmax and latency of a build."""

import argparse
import json
from pathlib import Path

from est import EstError, __version__
from est.boards.spec import BOARDS, get_board
from est.boards.synth import synthesize
from est.cli import entry, staged_output


def format_report(r: dict) -> str:
    lines = [f"{r['board']}: bitstream {r['bitstream']} ({r['seconds']} s)"]
    for cell, u in r["utilisation"].items():
        if u["used"]:
            lines.append(f"  {cell:<16}{u['used']:>7} / {u['available']:<7}"
                         f"{100 * u['used'] / u['available']:5.1f}%")
    lines.append(f"  Fmax {r['fmax_mhz']:.1f} MHz (board clock {r['board_clock_mhz']:.1f} MHz: "
                 f"{'met' if r['board_clock_met'] else 'NOT met'})")
    lines.append(f"  {r['cycles_per_bin']} cycles/bin: {r['latency_us_at_board_clock']} us/bin at "
                 f"the board clock, {r['latency_us_at_fmax']} us/bin at Fmax")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="est-synth", description="Synthesize a compiled build for a board with yosys and "
                                      "nextpnr (YoWASP): bitstream and report.",
        epilog="example:\n  est-synth build/spine --board icebreaker",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build", type=Path, help="folder written by est-compile")
    parser.add_argument("--board", default="icebreaker", choices=sorted(BOARDS))
    parser.add_argument("--version", action="version", version=f"est {__version__}")
    args = parser.parse_args(argv)
    if not (args.build / "ir.json").is_file():
        raise EstError(f"{args.build}: not an est-compile build folder (no ir.json)")
    board = get_board(args.board)
    out = args.build / f"synth_{board.name}"
    print(f"est-synth: synthesizing {args.build} for {board.name} (yosys, nextpnr, pack; "
          f"a minute for a small design, several for an EST on the ECP5) ...", flush=True)
    with staged_output(out, "synth.json") as tmp:
        report = synthesize(args.build, board, tmp)
        report["bitstream"] = str(out / Path(report["bitstream"]).name)
        (tmp / "synth.json").write_text(json.dumps(report, indent=2) + "\n")
    if not report["board_clock_met"]:
        print(format_report(report))
        raise EstError(f"timing not met on {board.name}: Fmax {report['fmax_mhz']} MHz is below "
                       f"the {report['board_clock_mhz']} MHz board clock")
    print(format_report(report))
    return 0


def run_main() -> int:
    return entry("est-synth", main, None)


