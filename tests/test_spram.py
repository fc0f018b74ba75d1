"""hw/spram.py: the single-port memory reads what was written, a cycle later; on the UP5K it is
SB_SPRAM256KA blocks side by side (width) and banked (depth), with no initial contents."""

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from est.hw.spram import SinglePortMemory


def test_generic_memory_reads_a_word_a_cycle_after_its_address():
    dut = SinglePortMemory(24, 64, init=[5, 6, 7])
    seen = []

    async def bench(ctx):
        for addr, value in ((3, 0xABCDEF), (40, 0x123456)):
            ctx.set(dut.addr, addr)
            ctx.set(dut.wdata, value)
            ctx.set(dut.we, 1)
            await ctx.tick()
        ctx.set(dut.we, 0)
        for addr in (1, 3, 40, 2):
            ctx.set(dut.addr, addr)
            await ctx.tick()
            seen.append(ctx.get(dut.rdata))

    sim = Simulator(dut)
    sim.add_clock(1e-7)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [6, 0xABCDEF, 0x123456, 7]


def test_spram_blocks_cover_the_width_and_the_depth():
    text = rtlil.convert(SinglePortMemory(64, 32768, spram=True), name="top")
    assert text.count("cell \\SB_SPRAM256KA") == 8  # 4 columns of 16 bits x 2 banks


def test_spram_refuses_initial_contents():
    with pytest.raises(ValueError, match="SPRAM has no initial contents"):
        SinglePortMemory(16, 16384, spram=True, init=[1])
