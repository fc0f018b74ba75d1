"""Synthesis, place and route and packing through amaranth-boards and YoWASP; report parsing."""

import importlib
import json
import re
import subprocess
import threading
import time
from pathlib import Path

from est import EstError, toolenv
from est.boards import protocol as p
from est.boards.spec import Board
from est.boards.top import BoardTop, board_bridge
from est.compiler.costs import logic_fit
from est.compiler.graph import load, read_json
from est.sim.rtl import in_background

CORE_READ_PORTS = "setparam -set COLLISION_X_MASK 1'1 top.bridge.net*/t:$memrd_v2"
"""yosys, after reading a core build's board top (RTLIL): the read ports of the core and of
its weight memory (where it is block RAM) may return anything when their word is written in
the same cycle (no read uses it: hw/core.py). Amaranth
writes every read port as read-old-word, which yosys emulates on iCE40 block RAM with a
register per written bit and a bypass (measured on est_small's top for the iCEBreaker: 5,310
logic cells, not placeable, against 4,702 with this); the ``no_rw_check`` attribute the core
sets on its memories does the same for Verilog only."""

_UTIL = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)")
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL)")


def parse_utilisation(text: str) -> dict:
    """Cell type -> {used, available} from the last "Device utilisation" block of a nextpnr log
    (printed after packing, before placement: present even when placement then fails)."""
    util = {}
    block = text.rsplit("Device utilisation:", 1)
    if len(block) == 2:
        for line in block[1].splitlines()[1:]:
            found = _UTIL.search(line)
            if not found:
                break
            util[found.group(1)] = {"used": int(found.group(2)), "available": int(found.group(3))}
    return util


def parse_nextpnr_log(text: str) -> dict:
    """Utilisation (cell type -> used, available) and the post-route Fmax from a nextpnr log
    (the last of its "Max frequency" lines: the first, before routing, is an estimate)."""
    util = parse_utilisation(text)
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


def logic_used(report: dict) -> tuple[str, int, int]:
    """``(cell name, used, available)`` of the logic cells in a synthesis report."""
    cell = next(c for c in LOGIC_CELLS if c in report["utilisation"])
    return cell, report["utilisation"][cell]["used"], report["utilisation"][cell]["available"]


PHASES = (  # (files whose appearance ends the phase, the phase, its log)
    (("top.json",), "yosys: synthesis", "top.rpt"),
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


def progress(out: Path, interval: float = 2.0):
    """Print a line when synthesis moves to its next phase (files appearing in ``out``) and,
    every ``HEARTBEAT_S`` seconds, the elapsed time with the last line of the running tool's
    log, so a run of several minutes shows it is alive."""
    t0 = time.perf_counter()

    def watch(stop: threading.Event) -> None:
        phase, beat = -1, t0
        while not stop.wait(interval):
            done = next((k for k, (ends, _, _) in enumerate(PHASES)
                         if not any((out / name).exists() for name in ends)), len(PHASES))
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

    return in_background(watch)


_ERROR_LINE = re.compile(r"^\s*ERROR:\s*(.+?)\s*$", re.MULTILINE)


class SynthesisFailed(EstError):
    """A tool of the flow stopped. ``tool``: which (yosys, nextpnr-ice40, ...); ``errors``: its
    own ERROR lines; ``utilisation``: nextpnr's cell counts when it got as far as packing."""

    def __init__(self, message: str, tool: str, errors: list[str], utilisation: dict):
        super().__init__(message)
        self.tool, self.errors, self.utilisation = tool, errors, utilisation


def failure(out: Path, board: Board, returncode: int) -> SynthesisFailed:
    """Why a synthesis run in ``out`` stopped, in the failing tool's own words: the tool (the
    first whose output file is missing), its ``ERROR:`` lines from its log (yosys ``top.rpt``,
    nextpnr ``top.tim``) and, for nextpnr, the logic cells it had packed. A hint is added only
    when an error says what it means: no BELs remaining (more cells of a type than the board
    has) or no legal placement (logic too full to place)."""
    if not (out / "top.json").is_file():
        tool, log = "yosys", out / "top.rpt"
    elif not any((out / n).is_file() for n in ("top.asc", "top.config")):
        tool, log = f"nextpnr-{board.family}", out / "top.tim"
    else:
        tool, log = "icepack" if board.family == "ice40" else "ecppack", None
    text = log.read_text(errors="replace") if log is not None and log.is_file() else ""
    errors, util = list(dict.fromkeys(_ERROR_LINE.findall(text))), parse_utilisation(text)
    if not errors:
        where = f"no ERROR line in its log {log.name}; " if log is not None else ""
        return SynthesisFailed(f"{tool} failed for {board.name} (exit {returncode}); {where}its "
                               f"output above names the cause", tool, errors, util)
    message = f"{tool} failed for {board.name}: " + " ".join(f"ERROR: {e}" for e in errors[:3])
    cell = next((c for c in LOGIC_CELLS if c in util), None)
    fill = ""
    if cell:
        used, avail = util[cell]["used"], util[cell]["available"]
        fill = f"{cell} {used}/{avail} ({100 * used / avail:.1f}%)"
    if any("no BELs remaining" in e for e in errors):
        message += (" (the design needs more cells of that type than the board has; "
                    "fewer lanes, a smaller model or a larger board)")
    elif any("Failed to expand region" in e for e in errors):  # more cells than the device
        message += (" (the design needs more logic cells than the board has; a smaller model "
                    "or fewer lanes, or a larger board)")
    elif any("legal placement" in e or "utilisation limit" in e for e in errors):
        message += (f" ({fill + ': ' if fill else ''}the logic is too full to place; fewer "
                    f"lanes, a smaller d_model or mlp_hidden, or a larger board)")
    return SynthesisFailed(message, tool, errors, util)


def pre_synthesis_check(build: Path, board: Board, force: bool = False) -> dict:
    """The fit check's logic verdict (:func:`est.boards.spec.logic_verdict`) for ``build`` on
    ``board``, before any tool runs: an :class:`EstError` when the estimate is above the margin
    (unless ``force``), a printed warning when it is in the band where placement is uncertain.
    A core build has no logic estimate (the core's size does not depend on the model: see
    bench/results/core.json): None."""
    top = read_json(build, "top.json")
    if top.get("backend") == "core":
        if top["board"] != board.name:
            raise EstError(f"{build} was compiled for {top['board']}'s core; est-compile it "
                           f"again with --board {board.name}")
        return None
    verdict = logic_fit(load(build), top["lanes"], board)
    if verdict["verdict"] == "over":
        if not force:
            raise EstError(f"refused before synthesis: {verdict['message']}; --force runs "
                           f"yosys and nextpnr anyway")
        print(f"est-synth: warning (--force): {verdict['message']}", flush=True)
    elif verdict["verdict"] == "tight":
        print(f"est-synth: warning: {verdict['message']}", flush=True)
    return verdict


def synthesize(build: Path, board: Board, out: Path, force: bool = False,
               baud: int = p.BAUD) -> dict:
    """Build the bitstream of ``build``'s network for ``board`` into ``out`` (after
    :func:`pre_synthesis_check`), its UART at ``baud``; return the report, or raise
    :class:`SynthesisFailed`."""
    divisor = p.uart_divisor(board.clock_hz, baud, board.name)
    toolenv.apply()
    fit = pre_synthesis_check(build, board, force)
    make_bridge, cycles, ident = board_bridge(build, board)
    backend = read_json(build, "top.json").get("backend", "dataflow")
    board_top = BoardTop(make_bridge, baud)
    t0 = time.perf_counter()
    module, cls = board.platform.split(":")
    platform = getattr(importlib.import_module(module), cls)()
    try:
        with progress(out):
            platform.build(board_top, name="top", build_dir=str(out), do_program=False,
                           synth_opts=board.synth_opts,
                           script_after_read="\n".join(c for c in (
                               board.script_after_read,
                               CORE_READ_PORTS if backend == "core" else "") if c))
    except subprocess.CalledProcessError as e:
        raise failure(out, board, e.returncode) from None
    seconds = time.perf_counter() - t0
    bitstream = next((p for p in (out / "top.bin", out / "top.bit") if p.is_file()), None)
    if bitstream is None:
        raise EstError(f"synthesis for {board.name} produced no bitstream in {out}")
    result = parse_nextpnr_log((out / "top.tim").read_text())
    if board.family == "ice40":  # nextpnr counts logic cells (a LUT4 and an optional
        # flip-flop each), not flip-flops: count every SB_DFF* variant in yosys' JSON netlist
        cells = json.loads((out / "top.json").read_text())["modules"]["top"]["cells"].values()
        result["utilisation"]["SB_DFF"] = {
            "used": sum(cell["type"].startswith("SB_DFF") for cell in cells),
            "available": result["utilisation"]["ICESTORM_LC"]["available"]}
    clock_mhz = board.clock_hz / 1e6
    result.update({
        "board": board.name, "bitstream": str(bitstream), "seconds": round(seconds, 1),
        "board_clock_mhz": clock_mhz, "board_clock_met": result["fmax_mhz"] >= clock_mhz,
        "cycles_per_bin": cycles,
        "latency_us_at_board_clock": round(cycles / clock_mhz, 3),
        "latency_us_at_fmax": round(cycles / result["fmax_mhz"], 3),
        "bins_per_second_at_board_clock": round(board.clock_hz / cycles, 1),
        "fit_check": fit and {k: fit[k] for k in ("verdict", "estimate", "available",
                                                   "warn_above", "refuse_above")},
        "uart": uart_report(ident, board.clock_hz, baud, divisor, cycles),
    })
    return result


def uart_report(ident: p.Ident, clock_hz: float, baud: int, divisor: int,
                cycles: float) -> dict:
    """The UART of a board top and what it costs a bin: the bytes in and out (BIN and
    OUTPUT frames), their line time (10 bit times a byte) and, with the network's cycles,
    the most bins a second the host can stream (before USB and host latency)."""
    line_baud = clock_hz / divisor
    bytes_in, bytes_out = ident.bytes_per_bin()
    line_ms = 1e3 * 10 * (bytes_in + bytes_out) / line_baud
    return {"baud": baud, "divisor": divisor, "line_baud": round(line_baud),
            "bytes_per_bin": {"in": bytes_in, "out": bytes_out},
            "line_ms_per_bin": round(line_ms, 3),
            "bins_per_second": round(1e3 / (line_ms + 1e3 * cycles / clock_hz), 1)}
