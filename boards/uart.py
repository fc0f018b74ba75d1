"""8N1 UART receiver and transmitter with byte streams (no FIFO, no parity)."""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class UARTRx(wiring.Component):
    """Serial line in, bytes out.

    Hardware: a two-flop synchronizer, a baud counter (``divisor`` = clock / baud) and a 10-bit
    shift register. A byte is sampled at the middle of each bit and offered on ``o`` one cycle
    after its stop bit; a byte not taken before the next one completes is dropped (the host
    paces its writes). Latency: 9.5 bit times from the start edge.
    """

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"divisor must be at least 4 clocks per bit, got {divisor}")
        self.divisor = divisor
        super().__init__({"rx": In(1), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        rx_sync = Signal(2, init=0b11)
        m.d.sync += rx_sync.eq((rx_sync << 1) | self.rx)
        line = rx_sync[1]
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(range(9))
        shift = Signal(8)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += [timer.eq(self.divisor * 3 // 2 - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq((line << 7) | (shift >> 1)), bits.eq(bits + 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(line):
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
        return m


class UARTTx(wiring.Component):
    """Bytes in, serial line out: start bit, 8 data bits LSB first, stop bit.

    Hardware: a baud counter and a 10-bit shift register. ``i`` is ready while the line idles;
    a byte takes 10 bit times.
    """

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"divisor must be at least 4 clocks per bit, got {divisor}")
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shift = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        m.d.comb += [self.tx.eq(shift[0]), self.i.ready.eq(bits == 0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shift.eq((1 << 9) | (self.i.payload << 1)), bits.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(bits != 0):
            with m.If(timer == 0):
                m.d.sync += [shift.eq((1 << 9) | (shift >> 1)), bits.eq(bits - 1),
                             timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
