"""cocotb 2.x testbench of a compiled top: drive the stimulus, record every output word.

Loaded by the simulator; :mod:`est.sim.rtl` starts it with its arguments in the environment:
``EST_TOP_JSON`` (top.json of the build), ``EST_STIMULUS`` (.npy of [bins, n_in] input counts),
``EST_OUT`` (.npz to write: output words and handshake cycles) and, optional, ``EST_STALL_SEED``
(random valid/ready stalls with that seed), ``EST_RESET_AT`` (pulse ``rst`` once that many bins have
come out; a new stream starts there), ``EST_GOLDEN`` (the golden trace of this stimulus; the
scoreboard then checks every output word as it arrives and the test fails if any differs).

Race-free on every simulator: inputs change only at falling clock edges, handshakes are read
in the read-only phase before the next rising edge (where they take effect).
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from est.sim.trace import Trace
from est.sim.words import decode_outputs, encode_inputs, encode_outputs


class StreamDriver:
    """Offers words on ``<name>__valid/__payload``; holds each until ``__ready`` takes it."""

    def __init__(self, dut, name: str, words: list[int], stall: random.Random | None):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.words, self.stall, self.sent = words, stall, 0
        self.accept_cycles: list[int] = []
        self.offering = False

    def drive(self) -> None:
        if not self.offering and self.sent < len(self.words):
            if self.stall is None or self.stall.random() >= 0.3:
                self.payload.value = self.words[self.sent]
                self.offering = True
        self.valid.value = int(self.offering)

    def observe(self, cycle: int) -> None:
        if self.offering and int(self.ready.value):
            self.accept_cycles.append(cycle)
            self.sent += 1
            self.offering = False


def unresolved_fields(fields: list, bits: str) -> list[str]:
    """The output fields (``top.json`` rows) whose bits in ``bits`` (MSB first, as cocotb
    prints a value) are not all 0/1, as ``tensor[channel]``."""
    lsb_first, pos, bad = bits[::-1], 0, []
    for name, n, width, _ in fields:
        for c in range(n):
            if set(lsb_first[pos:pos + width]) - {"0", "1"}:
                bad.append(f"{name}[{c}]")
            pos += width
    return bad


class StreamMonitor:
    """Takes words from ``<name>__valid/__payload``, asserting ``__ready`` (or not, at random);
    a taken word with X or Z bits fails the test naming the fields that hold them."""

    def __init__(self, dut, name: str, stall: random.Random | None, fields: list):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.stall, self.fields = stall, fields
        self.words: list[int] = []
        self.cycles: list[int] = []

    def drive(self) -> None:
        self.ready.value = int(self.stall is None or self.stall.random() >= 0.3)

    def observe(self, cycle: int) -> bool:
        """Record the word if one was taken this cycle; return whether one was."""
        if int(self.valid.value) and int(self.ready.value):
            value = self.payload.value
            if not value.is_resolvable:
                bad = unresolved_fields(self.fields, str(value))
                raise AssertionError(f"output word {len(self.words)} (cycle {cycle}) has X/Z "
                                     f"bits in {', '.join(bad[:8])}"
                                     + (f" and {len(bad) - 8} more" if len(bad) > 8 else ""))
            self.words.append(value.to_unsigned())
            self.cycles.append(cycle)
            return True
        return False


class Scoreboard:
    """Holds each output word against the golden model's word for its bin; logs the first
    differing value (tensor, channel, bin, both values) and counts differing bins."""

    def __init__(self, log, fields: list, golden: Trace | None):
        self.log, self.fields = log, fields
        self.expected = encode_outputs(fields, golden) if golden is not None else None
        self.mismatches = 0

    def check(self, bin_: int, word: int, cycle: int) -> None:
        if self.expected is None or word == self.expected[bin_]:
            return
        self.mismatches += 1
        if self.mismatches > 1:
            return
        got, want = (decode_outputs(self.fields, [w], {}).arrays
                     for w in (word, self.expected[bin_]))
        for name, _, _, _ in self.fields:
            diff = np.flatnonzero(got[name][0] != want[name][0])
            if len(diff):
                c = int(diff[0])
                self.log.error("scoreboard: bin %d (cycle %d): %s channel %d is %d, golden %d",
                               bin_, cycle, name, c, got[name][0, c], want[name][0, c])
                return


async def reset(dut) -> None:
    """Hold ``rst`` for 3 cycles; from the first cycle after it, every handshake output must be
    0 or 1 (a design whose valid or ready is X there is wrong on a 4-state simulator)."""
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    await ReadOnly()
    undefined = [name for name, signal in (("o__valid", dut.o__valid), ("i__ready", dut.i__ready))
                 if not signal.value.is_resolvable]
    if undefined:
        raise AssertionError(f"{' and '.join(undefined)} undefined in the first cycle after reset")


@cocotb.test()
async def run_stimulus(dut):
    with open(os.environ["EST_TOP_JSON"]) as f:
        top = json.load(f)
    seed = os.environ.get("EST_STALL_SEED")
    stall = random.Random(int(seed)) if seed else None
    reset_at = int(os.environ.get("EST_RESET_AT", "-1"))
    words = encode_inputs(np.load(os.environ["EST_STIMULUS"], allow_pickle=False),
                          top.get("input_bits", 1))  # 1: a build from before counts
    bins = len(words)
    budget = (top["cycles_per_bin"] * 4 + 50) * (bins + 1)

    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut)
    driver = StreamDriver(dut, "i", words, stall)
    monitor = StreamMonitor(dut, "o", stall, top["output_fields"])
    golden = os.environ.get("EST_GOLDEN")
    scoreboard = Scoreboard(dut._log, top["output_fields"], Trace.load(golden) if golden else None)
    cycle = 0
    while len(monitor.words) < bins:
        if len(monitor.words) == reset_at and driver.sent == reset_at:
            reset_at = -1
            await reset(dut)
        await FallingEdge(dut.clk)
        driver.drive()
        monitor.drive()
        await ReadOnly()
        driver.observe(cycle)
        if monitor.observe(cycle):
            scoreboard.check(len(monitor.words) - 1, monitor.words[-1], cycle)
        cycle += 1
        if cycle > budget:
            raise AssertionError(f"timeout: {len(monitor.words)} of {bins} outputs after "
                                 f"{cycle} cycles")
        if cycle % 20000 == 0:
            dut._log.info("cycle %d: %d/%d bins out", cycle, len(monitor.words), bins)
    np.savez(os.environ["EST_OUT"],
             words=np.array([str(w) for w in monitor.words]),
             accept_cycles=np.array(driver.accept_cycles, np.int64),
             output_cycles=np.array(monitor.cycles, np.int64), total_cycles=np.int64(cycle),
             scoreboard_mismatches=np.int64(
                 scoreboard.mismatches if scoreboard.expected is not None else -1))
    assert scoreboard.mismatches == 0, (f"scoreboard: {scoreboard.mismatches} of {bins} output "
                                        f"words differ from the golden model")
