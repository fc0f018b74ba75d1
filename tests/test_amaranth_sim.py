"""The amaranth.sim drivers of sim/amaranth_sim.py on a one-word stream register: words put on
its input come out in order with and without random stalls, stalls cost cycles, and a VCD file
is written when asked for."""

import random

import pytest
from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from est.sim.amaranth_sim import run_bench, stream_get, stream_put


class PlusOne(wiring.Component):
    """Takes a byte, offers it plus one (a register: one cycle of latency)."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.o.payload.eq(self.i.payload + 1), self.o.valid.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


def run(words, stall_seed, vcd=None):
    dut = PlusOne()
    stall = random.Random(stall_seed) if stall_seed is not None else None
    out, cycles = [], []

    async def bench(ctx):
        for word in words:
            cycles.append(await stream_put(ctx, dut.i, word, stall))
            payload, waited = await stream_get(ctx, dut.o, stall)
            out.append(payload)
            cycles.append(waited)

    run_bench(dut, bench, vcd)
    return out, sum(cycles)


@pytest.mark.parametrize("stall_seed", [None, 0, 5])
def test_words_come_through_in_order(stall_seed):
    words = [0, 7, 254, 255, 31]
    out, _ = run(words, stall_seed)
    assert out == [(w + 1) % 256 for w in words]


def test_stalls_cost_cycles_and_vcd_is_written(tmp_path):
    words = list(range(20))
    _, plain = run(words, None)
    _, stalled = run(words, 4, tmp_path / "waves.vcd")
    assert plain == 2 * len(words) and stalled > plain
    assert "$var" in (tmp_path / "waves.vcd").read_text()
