"""Run a network top in amaranth.sim (no Verilog, no external simulator) and record its trace."""

import contextlib
import random
import time
from pathlib import Path

from amaranth import Value
from amaranth.sim import Simulator

from est.sim.rtl import RTLRun
from est.sim.words import decode_outputs, encode_inputs


async def stream_put(ctx, port, payload: int, stall: random.Random | None) -> int:
    """Offer ``payload`` (the payload's raw bits as an int) on stream ``port``, after random idle
    cycles, until taken; return the number of cycles waited."""
    waited = 0
    while stall is not None and stall.random() < 0.3:
        await ctx.tick()
        waited += 1
    ctx.set(Value.cast(port.payload), payload)
    ctx.set(port.valid, 1)
    while True:
        ready = ctx.get(port.ready)  # sampled before the edge, where the handshake happens
        await ctx.tick()
        waited += 1
        if ready:
            break
    ctx.set(port.valid, 0)
    return waited


async def stream_get(ctx, port, stall: random.Random | None) -> tuple[int, int]:
    """Take one payload from stream ``port``, with ``ready`` low at random; return its raw bits
    as an int and the number of cycles waited."""
    waited = 0
    while True:
        ready = stall is None or stall.random() >= 0.3
        ctx.set(port.ready, ready)
        valid, payload = ctx.get(port.valid), ctx.get(Value.cast(port.payload))
        await ctx.tick()
        waited += 1
        if ready and valid:
            ctx.set(port.ready, 0)
            return payload, waited


def run_bench(dut, bench, vcd: Path | None = None) -> None:
    """Run testbench ``bench`` (an ``async def bench(ctx)``) against ``dut`` on a 10 MHz
    clock until it returns; with ``vcd``, write the waves there."""
    sim = Simulator(dut)
    sim.add_clock(1e-7)
    sim.add_testbench(bench)
    with sim.write_vcd(str(vcd)) if vcd is not None else contextlib.nullcontext():
        sim.run()


def simulate_top(dut, stimulus, stall_seed: int | None = None, vcd: Path | None = None) -> RTLRun:
    """Simulate a top (``i`` stream of input vectors, ``o`` stream of output words described
    by ``dut.fields``) on ``stimulus`` ([bins, n_in] counts of the graph's input width), one
    bin at a time."""
    stall = random.Random(stall_seed) if stall_seed is not None else None
    words, latency = [], []

    async def bench(ctx):
        for word in encode_inputs(stimulus, dut.graph.input_bits):
            await stream_put(ctx, dut.i, word, stall)
            payload, waited = await stream_get(ctx, dut.o, stall)
            words.append(payload)
            latency.append(waited)

    t0 = time.perf_counter()
    run_bench(dut, bench, vcd)
    out = decode_outputs(dut.fields, words, {"source": "amaranth", "bins": len(words)})
    return RTLRun(out, sum(latency), latency, time.perf_counter() - t0)
