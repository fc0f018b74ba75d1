"""Stream drivers for testing one component alone in amaranth.sim (tests only)."""

import random

from est.sim.amaranth_sim import run_bench, stream_get, stream_put


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
