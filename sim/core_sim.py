"""Run programs on the core's gateware (:class:`est.hw.core.Core`) in amaranth.sim: load them
through the ``load`` port (or build the core with one in its memories), stream the bins in,
decode the output words into a trace, and measure the cycles of every bin.
"""

import random
import time
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from est.compiler.program import CoreSpec, Program, decode_words
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
            n_words = sum(f.words for f in prog.outputs)
            starts, words = [], []
            for x in np.asarray(stimulus, np.int64):
                for w, word in enumerate(prog.input_words(x)):
                    await put(ctx, core.i, word)
                    if w == 0:
                        starts.append(clock[0])
                words.append([await get(ctx) for _ in range(n_words)])
            arrays = {f.tensor: np.zeros((len(words), f.n), np.int64) for f in prog.outputs}
            for t, bin_words in enumerate(words):
                for name, value in decode_words(prog, bin_words).items():
                    arrays[name][t] = value
            traces.append(Trace(arrays, {"source": "amaranth-core", "network": prog.name,
                                         "bins": len(words)}))
            cycles.append(list(np.diff(starts)))

    sim = Simulator(core)
    sim.add_clock(1e-7)
    sim.add_testbench(bench)
    t0 = time.perf_counter()
    sim.run()
    return CoreSimRun(traces, cycles, time.perf_counter() - t0)
