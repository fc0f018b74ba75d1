"""Run a network top in amaranth.sim (no Verilog, no external simulator) and record its trace."""

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


def run_bench(dut, bench) -> None:
    """Run testbench ``bench`` (an ``async def bench(ctx)``) against ``dut`` on a 10 MHz
    clock until it returns."""
    sim = Simulator(dut)
    sim.add_clock(1e-7)
    sim.add_testbench(bench)
    sim.run()


def run_stream(dut, words: list[int], stall_seed: int | None) -> list[int]:
    """Feed ``words`` one per bin on stream ``dut.i`` and take one word per bin from
    ``dut.o``, with random stalls on both (``stall_seed`` None: none); return the words."""
    stall = random.Random(stall_seed) if stall_seed is not None else None
    out = []

    async def bench(ctx):
        for word in words:
            await stream_put(ctx, dut.i, word, stall)
            out.append((await stream_get(ctx, dut.o, stall))[0])

    run_bench(dut, bench)
    return out


def run_groups(dut, currents, acc_bits: int, stall_seed: int | None) -> list[int]:
    """Feed a neuron array (``dut.i`` takes ``lanes`` currents of ``acc_bits`` and a last flag
    per word) each bin's ``currents`` group by group; return its output word per bin."""
    from est.hw.synapse import pack_lanes

    stall = random.Random(stall_seed) if stall_seed is not None else None
    out = []

    async def bench(ctx):
        for row in currents:
            words = pack_lanes(row, dut.lanes, acc_bits)
            for g, word in enumerate(words):
                last = int(g == len(words) - 1) << (dut.lanes * acc_bits)
                await stream_put(ctx, dut.i, word | last, stall)
            out.append((await stream_get(ctx, dut.o, stall))[0])

    run_bench(dut, bench)
    return out


def simulate_top(dut, fields: list, stimulus, stall_seed: int | None = None,
                 vcd: Path | None = None, source: str = "amaranth") -> RTLRun:
    """Simulate a top (``i`` stream of spike vectors, ``o`` stream of output words described
    by ``fields``) on ``stimulus`` ([bins, n_in] spikes), one bin at a time."""
    stall = random.Random(stall_seed) if stall_seed is not None else None
    words, latency = [], []
    inputs = encode_inputs(stimulus)

    async def bench(ctx):
        for word in inputs:
            await stream_put(ctx, dut.i, word, stall)
            payload, waited = await stream_get(ctx, dut.o, stall)
            words.append(payload)
            latency.append(waited)

    sim = Simulator(dut)
    sim.add_clock(1e-7)
    sim.add_testbench(bench)
    t0 = time.perf_counter()
    if vcd is not None:
        with sim.write_vcd(str(vcd)):
            sim.run()
    else:
        sim.run()
    out = decode_outputs(fields, words, {"source": source, "bins": len(words)})
    return RTLRun(out, sum(latency), latency, time.perf_counter() - t0)
