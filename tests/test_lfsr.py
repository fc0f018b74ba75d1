"""The LFSR of hw/lfsr.py: the unrolled Galois steps as logic equal the golden model's
``lfsr_step`` from any state, and the spike mask refuses a threshold or seed out of range (the
mask's gateware against the golden model is in tests/test_mask.py)."""

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from est.hw.lfsr import SpikeMask, lfsr_steps
from est.sim.golden import lfsr_step


@pytest.mark.parametrize("steps", [1, 8])
def test_unrolled_steps_equal_the_golden_lfsr(steps):
    m = Module()
    state = Signal(32)
    out = lfsr_steps(m, state, steps, "t")
    starts = [1, 0x80000000, 0xDEADBEEF, 0x12345678, 0xFFFFFFFF]
    got = []

    async def bench(ctx):
        for s in starts:
            ctx.set(state, s)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    want = []
    for s in starts:
        for _ in range(steps):
            s = lfsr_step(s)
        want.append(s)
    assert got == want and len(set(got)) == len(starts)


def test_mask_refuses_a_bad_threshold_or_seed():
    with pytest.raises(ValueError, match="threshold must be 0..256"):
        SpikeMask(4, 257, 1)
    with pytest.raises(ValueError, match="seed must be a nonzero 32-bit value"):
        SpikeMask(4, 128, 0)
