"""Run programs on the core's gateware (:class:`est.hw.core.Core`) in amaranth.sim, or on
Verilator or Icarus through cocotb: load them through the ``load`` port (or build the core
with one in its memories), stream the bins in, decode the output words into a trace, and
measure the cycles of every bin.
"""

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth import Shape
from amaranth.sim import Simulator

from est import EstError
from est.compiler.program import CoreSpec, Program, decode_trace
from est.hw.core import Core, load_words
from est.sim.trace import Trace


@dataclass
class CoreSimRun:
    """Per program: its trace, and the cycles from each bin's first input word to the next's
    (the last bin has none); ``seconds`` of simulation."""

    traces: list[Trace]
    cycles: list[list[int]]
    seconds: float


def simulate_core(spec: CoreSpec, runs: list[tuple[Program, np.ndarray]],
                  preload: bool = False, stall_seed: int | None = None) -> CoreSimRun:
    """Run each ``(program, stimulus)`` of ``runs`` in turn on one core of ``spec``: each is
    loaded through the ``load`` port, then its bins streamed; with ``preload`` the first is in
    the core's memories from the start instead (a build for one model). ``stall_seed``: the
    streams stall at random (then cycles include the stalls)."""
    core = Core(spec, runs[0][0] if preload else None)
    stall = random.Random(stall_seed) if stall_seed is not None else None
    traces, cycles = [], []
    clock = [0]

    async def tick(ctx):
        await ctx.tick()
        clock[0] += 1

    async def idle(ctx):
        while stall is not None and stall.random() < 0.3:
            await tick(ctx)

    async def put(ctx, port, payload) -> None:
        await idle(ctx)
        ctx.set(port.payload, payload)
        ctx.set(port.valid, 1)
        while True:
            ready = ctx.get(port.ready)
            await tick(ctx)
            if ready:
                break
        ctx.set(port.valid, 0)

    async def get(ctx) -> int:
        while True:
            ready = stall is None or stall.random() >= 0.3
            ctx.set(core.o.ready, ready)
            valid, word = ctx.get(core.o.valid), ctx.get(core.o.payload)
            await tick(ctx)
            if ready and valid:
                ctx.set(core.o.ready, 0)
                return word

    async def bench(ctx):
        for k, (prog, stimulus) in enumerate(runs):
            if k or not preload:
                for word in load_words(prog):
                    await put(ctx, core.load, word)
            n_words = prog.output_word_count
            starts, words = [], []
            for x in np.asarray(stimulus, np.int64):
                for w, word in enumerate(prog.input_words(x)):
                    await put(ctx, core.i, word)
                    if w == 0:
                        starts.append(clock[0])
                words.append([await get(ctx) for _ in range(n_words)])
            traces.append(decode_trace(prog, words, {"source": "amaranth-core"}))
            cycles.append(list(np.diff(starts)))

    sim = Simulator(core)
    sim.add_clock(1e-7)
    sim.add_testbench(bench)
    t0 = time.perf_counter()
    sim.run()
    return CoreSimRun(traces, cycles, time.perf_counter() - t0)


def simulate_core_rtl(spec: CoreSpec, runs: list[tuple[Program, np.ndarray]], simulator: str,
                      work: Path, stall_seed: int | None = None, source: Path | None = None,
                      label: str | None = None) -> CoreSimRun:
    """The same as :func:`simulate_core` on Verilator or Icarus through cocotb
    (:mod:`est.sim.cocotb_core_tb`): the core's Verilog (no model in it) in ``work`` (written
    once per spec and gateware: ``core.json`` names the spec and the hash of the sources
    ``core.v`` was made from), each program loaded through its
    ``load`` port in turn. ``source``: Verilog to simulate instead (a post-synthesis netlist of
    the core, same ports: :func:`write_core_netlist`); ``label`` (default ``simulator``) names
    its folder ``work/sim_<label>``."""
    from amaranth.back import verilog

    from est.hw.core import load_layout
    from est.sim.rtl import failure_reason, require_simulator, run_cocotb

    require_simulator(simulator)
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if source is None:
        source, stamp = work / "core.v", work / "core.json"
        spec_json = json.dumps({**spec.as_dict(), "gateware": gateware_hash()}, sort_keys=True)
        if not (source.is_file() and stamp.is_file() and stamp.read_text() == spec_json):
            source.write_text(verilog.convert(Core(spec), name="top", emit_src=False))
            stamp.write_text(spec_json)
    layout = load_layout(spec)
    offsets, pos = {}, 0
    for name, shape in layout.members.items():
        offsets[name] = pos
        pos += Shape.cast(shape).width
    job = {"stall_seed": stall_seed, "runs": [
        {"load": [str(sum(w[k] << offsets[k] for k in w)) for w in load_words(prog)],
         "inputs": [prog.input_words(x) for x in np.asarray(stimulus, np.int64)],
         "out_words": prog.output_word_count} for prog, stimulus in runs]}
    (work / "job.json").write_text(json.dumps(job))
    out = work / "words.npz"
    out.unlink(missing_ok=True)
    sim_dir = work / f"sim_{label or simulator}"
    logs = {"build": sim_dir / "build.log", "test": sim_dir / "test.log"}
    t0 = time.perf_counter()
    failed = run_cocotb(simulator, source, sim_dir, "est.sim.cocotb_core_tb",
                        {"EST_CORE_JOB": work / "job.json", "EST_OUT": out}, logs=logs)
    if failed or not out.is_file():
        raise EstError(f"the {simulator} simulation of the core failed"
                       f"{failure_reason(logs['test'])}; see {logs['test']}")
    traces, cycles = [], []
    with np.load(out, allow_pickle=False) as npz:
        for k, (prog, _) in enumerate(runs):
            traces.append(decode_trace(prog, npz[f"run{k}"],
                                       {"source": f"{label or simulator}-core"}))
            cycles.append(list(np.diff(npz[f"starts{k}"])))
    return CoreSimRun(traces, cycles, time.perf_counter() - t0)


def gateware_hash() -> str:
    """A hash of the sources the core's Verilog is made from (a cached ``core.v`` made by
    another version of est is made again)."""
    import hashlib

    from est.compiler import program
    from est.hw import core, spram
    digest = hashlib.sha256()
    for module in (core, spram, program):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def write_core_netlist(work: Path, spec: CoreSpec, board) -> Path:
    """The post-synthesis netlist of the core of ``spec`` as ``board``'s top has it (weights in
    SPRAM where the board has them), with the cell models: ``work/netlist_<board>.v``
    (:func:`est.sim.netlist.write_netlist`, the same yosys options as est-synth)."""
    from amaranth.back import verilog

    from est import toolenv
    from est.sim.netlist import write_netlist

    toolenv.apply()
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    name = f"core_{board.name}.v"
    (work / name).write_text(verilog.convert(Core(spec, spram=board.spram), name="top",
                                             emit_src=False))
    return write_netlist(work, board, name)
