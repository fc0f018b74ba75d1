"""A compiled network on a board: UART in, the network, UART out (raw bytes, little-endian).

Protocol of this first board top (a framed, checksummed protocol is planned): the host writes
``ceil(n_in / 8)`` bytes per bin (bit i of the input word = input i, byte 0 = bits 0-7); the
board answers with ``ceil(out_bits / 8)`` bytes, the output word of :class:`est.hw.top.NetworkTop`
(readout values, low bits first). The green LED toggles once per bin.
"""

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from est.boards.uart import UARTRx, UARTTx
from est.compiler.ir import Network
from est.hw.synapse import ceil_div
from est.hw.top import NetworkTop


class UARTBridge(wiring.Component):
    """Bytes from a UART line -> ``core`` -> bytes to a UART line (the board top without pins).

    Hardware: a UART receiver and transmitter, an input word register of ``8 * ceil(n_in/8)``
    bits, and a byte multiplexer over the core's output word: the word stays on the core's
    ``o`` (stream rule: held until taken) while its bytes go out, and is taken with the last
    one, so no copy of it is kept. ``led`` toggles once per output word.
    Latency: the UART's (10 bit times per byte) dominates the core's cycles per bin.
    """

    def __init__(self, core, n_in: int, divisor: int):
        self.core, self.n_in, self.divisor = core, n_in, divisor
        super().__init__({"rx": In(1), "tx": Out(1, init=1), "led": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.submodules.net = net = self.core
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        in_bytes = ceil_div(self.n_in, 8)
        in_word = Signal(8 * in_bytes)
        in_count = Signal(range(in_bytes + 1))
        m.d.comb += [rx.o.ready.eq(in_count != in_bytes), net.i.valid.eq(in_count == in_bytes),
                     net.i.payload.eq(in_word)]
        with m.If(rx.o.valid & rx.o.ready):
            m.d.sync += [in_word.eq((rx.o.payload << (8 * (in_bytes - 1))) | (in_word >> 8)),
                         in_count.eq(in_count + 1)]
        with m.If(net.i.valid & net.i.ready):
            m.d.sync += in_count.eq(0)

        word = Value.cast(net.o.payload)
        out_bytes = ceil_div(len(word), 8)
        padded = Cat(word, Const(0, 8 * out_bytes - len(word)))
        index = Signal(range(out_bytes))
        last = index == out_bytes - 1
        m.d.comb += [tx.i.valid.eq(net.o.valid), tx.i.payload.eq(padded.word_select(index, 8)),
                     net.o.ready.eq(tx.i.ready & last)]
        with m.If(tx.i.valid & tx.i.ready):
            m.d.sync += index.eq(Mux(last, 0, index + 1))
            with m.If(last):
                m.d.sync += self.led.eq(~self.led)
        return m


class BoardTop(wiring.Component):
    """:class:`UARTBridge` around the compiled network, wired to the board's UART pins and
    green LED (when the board has one)."""

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
        m.submodules.bridge = bridge = UARTBridge(self.core, self.net.n_in, divisor)
        uart = platform.request("uart", 0)
        m.d.comb += [bridge.rx.eq(uart.rx.i), uart.tx.o.eq(bridge.tx)]
        if "led_g" in {res.name for res in platform.resources.values()}:
            m.d.comb += platform.request("led_g", 0).o.eq(bridge.led)
        return m
