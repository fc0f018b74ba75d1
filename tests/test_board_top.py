"""The board top without pins (UARTBridge) in amaranth.sim: spike vectors in as UART bytes,
readout words back as UART bytes, equal to the golden model's, for the spine and an EST."""

import numpy as np
from amaranth.sim import Simulator

from est.boards.top import UARTBridge
from est.hw.est_top import ESTTop
from est.hw.synapse import ceil_div
from est.hw.top import NetworkTop, output_fields
from est.sim.est_network import run_est
from est.sim.network import run
from est.sim.trace import compare
from est.sim.words import decode_outputs, encode_inputs
from netgen import random_est, random_network, random_stimulus

DIVISOR = 4  # clocks per UART bit


def uart_roundtrip(core, n_in: int, stimulus: np.ndarray, out_bits: int) -> list[int]:
    """Send each bin's input word as bytes on ``rx`` (after the previous answer); return the
    output words read back on ``tx``."""
    dut = UARTBridge(core, n_in, DIVISOR)
    in_bytes, out_bytes = ceil_div(n_in, 8), ceil_div(out_bits, 8)
    words: list[int] = []

    async def send(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(4 * DIVISOR)
        for b, word in enumerate(encode_inputs(stimulus)):
            for byte in word.to_bytes(in_bytes, "little"):
                for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                    ctx.set(dut.rx, bit)
                    await ctx.tick().repeat(DIVISOR)
            while len(words) <= b:
                await ctx.tick()

    async def receive(ctx):
        data = bytearray()
        while True:
            await ctx.tick()
            if ctx.get(dut.tx) == 0:  # start bit: sample each data bit in its middle
                await ctx.tick().repeat(DIVISOR + DIVISOR // 2)
                byte = 0
                for i in range(8):
                    byte |= ctx.get(dut.tx) << i
                    await ctx.tick().repeat(DIVISOR)
                assert ctx.get(dut.tx) == 1, "stop bit"
                data.append(byte)
                if len(data) == out_bytes:
                    words.append(int.from_bytes(data, "little"))
                    data.clear()

    sim = Simulator(dut)
    sim.add_clock(1e-7)
    sim.add_testbench(send)
    sim.add_testbench(receive, background=True)
    sim.run()
    return words


def test_spine_readout_over_uart_equals_golden():
    net = random_network(3, n_in=11, hidden=(9,), n_out=3, lanes=2)
    stimulus = random_stimulus(3, 6, net.n_in)
    fields = output_fields(net, False)
    out_bits = sum(n * bits for _, n, bits, _ in fields)
    words = uart_roundtrip(NetworkTop(net), net.n_in, stimulus, out_bits)
    rtl = decode_outputs(fields, words, {"source": "uart"})
    golden, _ = run(net, stimulus)
    result = compare(golden, rtl)
    assert result.bins == 6 and result.tensors == ("readout/v",)
    assert result.mismatches == 0, result.first


def test_est_readout_over_uart_equals_golden():
    net = random_est(5, attention="sdsa", sew="add", cpg=True, tpu=True, rsm=0.5, n_in=9, d=4,
                     blocks=1, heads=2, hidden=5)
    stimulus = random_stimulus(5, 5, net.n_in, rate=0.4)
    core = ESTTop(net, 2, trace=False, state_in_logic=False)
    out_bits = sum(n * bits for _, n, bits, _ in core.fields)
    words = uart_roundtrip(core, net.n_in, stimulus, out_bits)
    rtl = decode_outputs(core.fields, words, {"source": "uart"})
    result = compare(run_est(net, stimulus), rtl)
    assert result.bins == 5 and result.tensors == ("readout/v",)
    assert result.mismatches == 0, result.first
