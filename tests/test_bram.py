"""hw/bram.py: a memory in power-of-two banks reads what was written, a cycle later, through
every read port, from its initial contents on, and holds a read port's word while its enable
is low; its banks are the largest powers of two."""

import random

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from est.hw.bram import BankedMemory, banks


@pytest.mark.parametrize("depth, expected", [
    (768, [(0, 512), (512, 256)]), (512, [(0, 512)]), (7, [(0, 4), (4, 2), (6, 1)])])
def test_banks_are_the_largest_powers_of_two_left(depth, expected):
    assert banks(depth) == expected


@pytest.mark.parametrize("depth", [768, 7, 32])
def test_two_read_ports_see_every_write_a_cycle_later_and_hold_while_disabled(depth):
    init = [(3 * a + 1) & 0xFFFF for a in range(depth // 2)]
    mem = BankedMemory(16, depth, init)
    rd1, rd2, wr = mem.read_port(), mem.read_port(), mem.write_port()
    m = Module()
    m.submodules.mem = mem
    model = init + [0] * (depth - len(init))
    rng = random.Random(depth)
    steps = []
    for _ in range(400):  # a word is never read in the cycle it is written (as in the core)
        a1, a2, aw = (rng.randrange(depth) for _ in range(3))
        write = rng.random() < 0.5 and aw not in (a1, a2)
        hold = bool(steps) and rng.random() < 0.3  # rd1's enable low: its word stays
        steps.append((a1, a2, aw, rng.randrange(1 << 16), write, hold))
    seen, expected = [], []

    async def bench(ctx):
        for a1, a2, aw, value, write, hold in steps:
            ctx.set(rd1.addr, a1)
            ctx.set(rd1.en, not hold)
            ctx.set(rd2.addr, a2)
            ctx.set(wr.addr, aw)
            ctx.set(wr.data, value)
            ctx.set(wr.en, write)
            expected.append((expected[-1][0] if hold else model[a1], model[a2]))
            if write:
                model[aw] = value
            await ctx.tick()
            seen.append((ctx.get(rd1.data), ctx.get(rd2.data)))

    sim = Simulator(m)
    sim.add_clock(1e-7)
    sim.add_testbench(bench)
    sim.run()
    assert seen == expected

