"""Synthesis, place and route and packing through amaranth-boards and YoWASP; report parsing."""

import contextlib
import importlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from est import EstError, toolenv
from est.boards.spec import Board
from est.boards.top import board_top as board_top_of

_UTIL = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)")
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL)")


def parse_nextpnr_log(text: str) -> dict:
    """Utilisation (cell type -> used, available) and the post-route Fmax from a nextpnr log.

    nextpnr prints "Max frequency" once before routing (an estimate) and once after; the last
    one is the post-route figure.
    """
    util = {}
    block = text.rsplit("Device utilisation:", 1)
    if len(block) == 2:
        for line in block[1].splitlines()[1:]:
            found = _UTIL.search(line)
            if not found:
                break
            util[found.group(1)] = {"used": int(found.group(2)), "available": int(found.group(3))}
    fmax = _FMAX.findall(text)
    if not util or not fmax:
        raise EstError("could not read utilisation and Fmax from the nextpnr log")
    clock, mhz, verdict = fmax[-1]
    return {"utilisation": util, "clock": clock, "fmax_mhz": float(mhz),
            "timing_pass": verdict == "PASS"}


LOGIC_CELLS = ("ICESTORM_LC", "TRELLIS_COMB")  # the logic cell of each family in nextpnr
# The rows of a synthesis report a reader looks for first, shown even when unused: logic,
# flip-flops, block RAM, single-port RAM and DSP of each family.
KEY_CELLS = ("ICESTORM_LC", "SB_DFF", "ICESTORM_RAM", "ICESTORM_SPRAM", "ICESTORM_DSP",
             "TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D")


def ice40_flip_flops(netlist: dict) -> int:
    """Flip-flops (every ``SB_DFF*`` variant) in the top module of yosys' JSON netlist: nextpnr
    counts iCE40 logic cells, each a LUT4 with an optional flip-flop, not the flip-flops."""
    cells = netlist["modules"]["top"]["cells"].values()
    return sum(cell["type"].startswith("SB_DFF") for cell in cells)


def logic_used(report: dict) -> tuple[str, int, int]:
    """``(cell name, used, available)`` of the logic cells in a synthesis report."""
    cell = next(c for c in LOGIC_CELLS if c in report["utilisation"])
    return cell, report["utilisation"][cell]["used"], report["utilisation"][cell]["available"]


def _platform(board: Board):
    module, cls = board.platform.split(":")
    return getattr(importlib.import_module(module), cls)()


PHASES = (  # (file whose appearance ends the phase, the phase, its log)
    ("top.json", "yosys: synthesis", "top.rpt"),
    (("top.asc", "top.config"), "nextpnr: place and route", "top.tim"),
    (("top.bin", "top.bit"), "pack: bitstream", None),
)
HEARTBEAT_S = 30


def _last_log_line(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 400))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()
                     if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:90] if lines else ""


@contextlib.contextmanager
def progress(out: Path, interval: float = 2.0) -> Iterator[None]:
    """Print a line when synthesis moves to its next phase (files appearing in ``out``) and,
    every ``HEARTBEAT_S`` seconds, the elapsed time with the last line of the running tool's
    log, so a run of several minutes shows it is alive."""
    stop = threading.Event()
    t0 = time.perf_counter()

    def watch() -> None:
        phase, beat = -1, t0
        while not stop.wait(interval):
            done = 0
            for ends, _, _ in PHASES:
                ends = (ends,) if isinstance(ends, str) else ends
                if any((out / name).exists() for name in ends):
                    done += 1
                else:
                    break
            now = time.perf_counter()
            if done >= len(PHASES):
                return
            if done != phase:
                phase, beat = done, now
                print(f"est-synth: [{now - t0:5.0f} s] {PHASES[done][1]} ...", flush=True)
            elif now - beat >= HEARTBEAT_S and PHASES[done][2]:
                beat = now
                print(f"est-synth: [{now - t0:5.0f} s]   "
                      f"{_last_log_line(out / PHASES[done][2])}", flush=True)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def synthesize(build: Path, board: Board, out: Path) -> dict:
    """Build the bitstream of ``build``'s network for ``board`` into ``out``; return the report."""
    toolenv.apply()
    board_top, cycles = board_top_of(build, board)
    t0 = time.perf_counter()
    platform = _platform(board)
    try:
        with progress(out):
            platform.build(board_top, name="top", build_dir=str(out), do_program=False,
                           synth_opts=board.synth_opts,
                           script_after_read=board.script_after_read)
    except subprocess.CalledProcessError as e:
        raise EstError(f"synthesis for {board.name} failed (exit {e.returncode}); the tool "
                       f"output above names the cause ('no BELs remaining' means the design "
                       f"needs more of that resource than the board has)") from None
    seconds = time.perf_counter() - t0
    bitstream = next((p for p in (out / "top.bin", out / "top.bit") if p.is_file()), None)
    if bitstream is None:
        raise EstError(f"synthesis for {board.name} produced no bitstream in {out}")
    result = parse_nextpnr_log((out / "top.tim").read_text())
    if board.family == "ice40":
        result["utilisation"]["SB_DFF"] = {
            "used": ice40_flip_flops(json.loads((out / "top.json").read_text())),
            "available": result["utilisation"]["ICESTORM_LC"]["available"]}
    clock_mhz = board.clock_hz / 1e6
    result.update({
        "board": board.name, "bitstream": str(bitstream), "seconds": round(seconds, 1),
        "board_clock_mhz": clock_mhz, "board_clock_met": result["fmax_mhz"] >= clock_mhz,
        "cycles_per_bin": cycles,
        "latency_us_at_board_clock": round(cycles / clock_mhz, 3),
        "latency_us_at_fmax": round(cycles / result["fmax_mhz"], 3),
        "bins_per_second_at_board_clock": round(board.clock_hz / cycles, 1),
    })
    return result
