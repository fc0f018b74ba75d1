"""``table`` (compiler/ops/table.py) and the gateware it lowers to (hw/sew.py, CPGTable): the
ROM plays the table's rows in order, one per bin, wrapping, under random stalls."""

import random

import numpy as np

from est.hw.sew import CPGTable
from est.sim import golden
from est.sim.amaranth_sim import run_bench, stream_get
from est.sim.words import unpack


def test_cpg_table_rom_plays_the_table_in_order():
    table = golden.cpg_table(13, 6)
    dut = CPGTable(table)
    stall, got = random.Random(1), []

    async def bench(ctx):
        for _ in range(30):
            payload, _ = await stream_get(ctx, dut.o, stall)
            got.append(payload)

    run_bench(dut, bench)
    for t, word in enumerate(got):
        np.testing.assert_array_equal(unpack(word, 6, 1), table[t % 13], err_msg=f"bin {t}")
