"""The stream plumbing of hw/streams.py in amaranth.sim: a fork hands every word to each of its
outputs, a zip passes a word only when all its inputs hold one, and a vector leaves as groups of
lanes with ``last`` on the final group (values worked by hand)."""

import random

import pytest
from amaranth.sim import Simulator

from est.hw.streams import Fork, VectorGroups, Zip
from est.sim.amaranth_sim import run_bench, stream_get, stream_put
from est.sim.words import pack


@pytest.mark.parametrize("stall_seed", [None, 2])
def test_fork_gives_every_word_to_every_output(stall_seed):
    dut = Fork(8, 3)
    stall = random.Random(stall_seed) if stall_seed is not None else None
    got = []

    async def bench(ctx):
        for word in (0x5A, 0x00, 0xFF):
            await stream_put(ctx, dut.i, word, stall)
            got.append([(await stream_get(ctx, o, stall))[0] for o in reversed(dut.outputs())])

    run_bench(dut, bench)
    assert got == [[0x5A] * 3, [0x00] * 3, [0xFF] * 3]


def test_zip_waits_for_every_input():
    dut = Zip([3, 5])
    seen = []

    async def bench(ctx):
        ctx.set(dut.i0.payload, 0b101)
        ctx.set(dut.i1.payload, 0b10011)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i0.valid, 1)
        seen.append((ctx.get(dut.o.valid), ctx.get(dut.i0.ready)))
        ctx.set(dut.i1.valid, 1)
        seen.append((ctx.get(dut.o.valid), ctx.get(dut.i0.ready), ctx.get(dut.i1.ready),
                     ctx.get(dut.o.payload)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(0, 0), (1, 1, 1, 0b101 | 0b10011 << 3)]


def test_vector_groups_sends_lanes_and_last():
    dut = VectorGroups(5, 2, 2)  # 3 groups of 2 lanes of 3-bit currents
    got = []

    async def bench(ctx):
        await stream_put(ctx, dut.i, pack([3, 1, 2, 0, 3], 2), None)
        for _ in range(dut.groups):
            got.append((await stream_get(ctx, dut.o, None))[0])

    run_bench(dut, bench)
    assert got == [pack([3, 1], 3), pack([2, 0], 3), pack([3, 0], 3) | 1 << 6]
