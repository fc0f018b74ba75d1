"""``sew`` (compiler/ops/sew.py) and the gateware it lowers to (hw/sew.py, SEWJoin): the join
alone against the golden SEW function in amaranth.sim, every function and skip width, random
stalls on the joined streams."""

import random

import numpy as np
import pytest

from est.hw.sew import SEWJoin
from est.sim import golden
from est.sim.amaranth_sim import run_bench, stream_get
from est.sim.words import pack, unpack


@pytest.mark.parametrize("op, skip_bits", [("add", 1), ("add", 3), ("and", 1), ("iand", 1),
                                           ("none", 2)])
def test_sew_join_matches_golden(op, skip_bits):
    rng = np.random.default_rng(len(op) * 10 + skip_bits)
    n, bins = int(rng.integers(1, 20)), 30
    dut = SEWJoin(n, op, skip_bits)
    out = (rng.random((bins, n)) < 0.5).astype(np.int64)
    skip = rng.integers(0, 1 << skip_bits, (bins, n))
    stall = random.Random(skip_bits)
    got = []

    async def bench(ctx):  # one process drives both inputs: they are taken together
        for t in range(bins):
            while stall.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.out.payload, pack(out[t], 1))
            ctx.set(dut.skip.payload, pack(skip[t], skip_bits))
            ctx.set(dut.out.valid, 1)
            ctx.set(dut.skip.valid, 1)
            while True:
                taken = ctx.get(dut.out.ready)
                assert taken == ctx.get(dut.skip.ready)
                await ctx.tick()
                if taken:
                    break
            ctx.set(dut.out.valid, 0)
            ctx.set(dut.skip.valid, 0)
            payload, _ = await stream_get(ctx, dut.o, stall)
            got.append(payload)

    run_bench(dut, bench)
    for t in range(bins):
        want = out[t] if op == "none" else golden.sew(out[t], skip[t], op)
        np.testing.assert_array_equal(unpack(got[t], n, dut.out_bits), want, err_msg=f"bin {t}")
