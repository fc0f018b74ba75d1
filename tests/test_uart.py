"""The 8N1 UART of boards/uart.py in amaranth.sim: bytes sent by the transmitter come out of the
receiver listening to its line, the line idles high between them, and a divisor under 4 clocks
per bit is refused."""

import pytest
from amaranth import Module

from est.boards.uart import UARTRx, UARTTx
from est.sim.amaranth_sim import run_bench, stream_get, stream_put


@pytest.mark.parametrize("divisor", [4, 7])
def test_transmitter_to_receiver_loopback(divisor):
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    sent = [0x00, 0xA5, 0xFF, 0x3C, 0x81]
    got, idle = [], []

    async def bench(ctx):
        idle.append(ctx.get(tx.tx))
        for byte in sent:
            await stream_put(ctx, tx.i, byte, None)
            payload, waited = await stream_get(ctx, rx.o, None)
            got.append(payload)
            assert waited >= 9 * divisor  # start bit and 8 data bits at least
        await ctx.tick().repeat(2 * divisor)
        idle.append(ctx.get(tx.tx))

    run_bench(m, bench)
    assert got == sent and idle == [1, 1]


def test_divisor_under_4_is_refused():
    for cls in (UARTRx, UARTTx):
        with pytest.raises(ValueError, match="divisor must be at least 4"):
            cls(3)
