"""cocotb 2.x testbench of the core (:class:`est.hw.core.Core`): load programs through the
``load`` port one after the other, stream each one's bins, record every output word.

Loaded by the simulator; :func:`est.sim.core_sim.simulate_core_rtl` starts it with
``EST_CORE_JOB`` (a JSON file: ``runs``, each with its ``load`` words, its ``inputs`` (the
input words of every bin) and ``out_words`` a bin; and ``stall_seed``, or null) and
``EST_OUT`` (.npz to write: ``run<k>`` the output words ``[bins, out_words]``, ``starts<k>``
the cycle each bin's first input word was taken). Inputs change at falling edges and
handshakes are read before the next rising edge, as in :mod:`est.sim.cocotb_tb`.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from est.sim.cocotb_tb import StreamDriver, StreamMonitor


@cocotb.test()
async def run_programs(dut):
    with open(os.environ["EST_CORE_JOB"]) as f:
        job = json.load(f)
    stall = random.Random(job["stall_seed"]) if job["stall_seed"] is not None else None
    Clock(dut.clk, 10, unit="ns").start()
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    for name in ("load__valid", "i__valid", "o__ready", "halt"):
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    results, cycle = {}, 0
    for k, run in enumerate(job["runs"]):
        load = StreamDriver(dut, "load", [int(w) for w in run["load"]], stall)
        while load.sent < len(load.words):
            await FallingEdge(dut.clk)
            load.drive()
            await ReadOnly()
            load.observe(cycle)
            cycle += 1
        await FallingEdge(dut.clk)
        dut.load__valid.value = 0
        words = [int(w) for b in run["inputs"] for w in b]
        per_bin = len(run["inputs"][0])
        driver = StreamDriver(dut, "i", words, stall)
        monitor = StreamMonitor(dut, "o", stall, [("o", 1, 32, False)])
        want = run["out_words"] * len(run["inputs"])
        budget = cycle + 200000 * (len(run["inputs"]) + 1)
        while len(monitor.words) < want:
            await FallingEdge(dut.clk)
            driver.drive()
            monitor.drive()
            await ReadOnly()
            driver.observe(cycle)
            monitor.observe(cycle)
            cycle += 1
            if cycle > budget:
                raise AssertionError(f"timeout: run {k}, {len(monitor.words)} of {want} output "
                                     f"words after {cycle} cycles")
        await FallingEdge(dut.clk)
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        results[f"run{k}"] = np.array(monitor.words, np.int64).reshape(-1, run["out_words"])
        results[f"starts{k}"] = np.array(driver.accept_cycles[::per_bin], np.int64)
    np.savez(os.environ["EST_OUT"], **results)
