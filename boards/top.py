"""A compiled network on a board: UART in, the network, UART out (raw bytes, little-endian).

Protocol of this first board top (a framed, checksummed protocol is planned): the host writes
``ceil(n_in / 8)`` bytes per bin (bit i of the input word = input i, byte 0 = bits 0-7); the
board answers with ``ceil(out_bits / 8)`` bytes, the output word of :class:`est.hw.top.NetworkTop`
(readout values, low bits first). The green LED toggles once per bin.
"""

from amaranth import Module, Signal, Value
from amaranth.lib import wiring

from est.boards.uart import UARTRx, UARTTx
from est.compiler.ir import Network
from est.hw.synapse import ceil_div
from est.hw.top import NetworkTop


class BoardTop(wiring.Component):
    """Byte deserializer -> :class:`NetworkTop` -> byte serializer, with UART pins.

    Hardware: the network, a UART receiver and transmitter, an input word register of
    ``8 * ceil(n_in/8)`` bits and an output shift register of ``8 * ceil(out_bits/8)`` bits.
    """

    def __init__(self, net: Network, baud: int = 115200, core=None):
        """``core``: the compiled network (default: :class:`NetworkTop` of ``net`` without
        trace); any component with an ``i`` stream of spike vectors and an ``o`` stream of
        output words (such as :class:`est.hw.est_top.ESTTop`)."""
        self.net, self.baud = net, baud
        self.core = core if core is not None else NetworkTop(net)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        divisor = round(platform.default_clk_frequency / self.baud)
        m.submodules.rx = rx = UARTRx(divisor)
        m.submodules.tx = tx = UARTTx(divisor)
        m.submodules.net = net = self.core
        uart = platform.request("uart", 0)
        m.d.comb += [rx.rx.eq(uart.rx.i), uart.tx.o.eq(tx.tx)]

        in_bytes = ceil_div(self.net.n_in, 8)
        in_word = Signal(8 * in_bytes)
        in_count = Signal(range(in_bytes + 1))
        m.d.comb += [rx.o.ready.eq(in_count != in_bytes), net.i.valid.eq(in_count == in_bytes),
                     net.i.payload.eq(in_word)]
        with m.If(rx.o.valid & rx.o.ready):
            m.d.sync += [in_word.eq((rx.o.payload << (8 * (in_bytes - 1))) | (in_word >> 8)),
                         in_count.eq(in_count + 1)]
        with m.If(net.i.valid & net.i.ready):
            m.d.sync += in_count.eq(0)

        out_bytes = ceil_div(len(Value.cast(net.o.payload)), 8)
        out_word = Signal(8 * out_bytes)
        out_count = Signal(range(out_bytes + 1))
        led = Signal()
        m.d.comb += [net.o.ready.eq(out_count == 0), tx.i.valid.eq(out_count != 0),
                     tx.i.payload.eq(out_word[:8])]
        with m.If(net.o.valid & net.o.ready):
            m.d.sync += [out_word.eq(net.o.payload), out_count.eq(out_bytes), led.eq(~led)]
        with m.If(tx.i.valid & tx.i.ready):
            m.d.sync += [out_word.eq(out_word >> 8), out_count.eq(out_count - 1)]
        if "led_g" in {res.name for res in platform.resources.values()}:
            m.d.comb += platform.request("led_g", 0).o.eq(led)
        return m
