"""A compiled network on a board: framed requests in over UART, the network, framed replies out.

The frame format and the requests are in :mod:`est.boards.protocol` and docs/protocol.md.
"""

import functools
import json
import operator
from pathlib import Path

from amaranth import Cat, Const, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from est import __version__
from est.boards import protocol as p
from est.boards.spec import Board
from est.boards.uart import UARTRx, UARTTx
from est.compiler.costs import memory_plan
from est.compiler.graph import load
from est.hw.dataflow import DataflowTop
from est.hw.synapse import ceil_div


def crc8_step(crc: Value, byte: Value) -> Value:
    """CRC-8/SMBUS of one more byte (:func:`est.boards.protocol.crc8`) as logic: the CRC of a
    byte is linear over GF(2) in ``crc ^ byte``, so each output bit is the XOR of the input bits
    whose unit vectors set it (a few LUTs, no state)."""
    x = crc ^ byte
    columns = [p.crc8(bytes([1 << i])) for i in range(8)]
    return Cat(*[functools.reduce(operator.xor, [x[i] for i in range(8) if columns[i] >> j & 1])
                 for j in range(8)])


class FrameBridge(wiring.Component):
    """UART line -> frame parser -> ``core`` -> reply framer -> UART line (board top, no pins).

    Hardware: a UART receiver and transmitter; a parser (an FSM, a CRC-8 register, a payload
    counter, an idle timer for truncated frames) that shifts a BIN payload straight into the
    core's input word register; an executor FSM that feeds the core, pulses its synchronous
    reset for RESET (the neuron arrays then clear their state words), counts bins and sends
    replies through one byte multiplexer per reply type (constant bytes fold into the
    position decode) with a second CRC-8 register. The core's output word stays on its ``o``
    until the next BIN or RESET, so RESEND needs no copy of it. ``led_bin`` toggles per bin,
    ``led_err`` is lit while the last reply was an error.

    Latency: one bin is the BIN frame (``5 + ceil(in_bits/8)`` bytes of 10 bit times), the core's
    cycles per bin, then the OUTPUT frame (``7 + ceil(out_bits/8)`` bytes). Requests that
    arrive while a BIN is still being fed to the core are dropped (the host waits for replies).
    """

    def __init__(self, core, in_bits: int, divisor: int, ident: bytes, timeout_cycles: int):
        if timeout_cycles < 20 * divisor:
            raise ValueError(f"timeout_cycles must cover at least two bytes ({20 * divisor} "
                             f"cycles), got {timeout_cycles}")
        self.core, self.in_bits, self.divisor = core, in_bits, divisor
        self.ident, self.timeout_cycles = ident, timeout_cycles
        super().__init__({"rx": In(1), "tx": Out(1, init=1), "led_bin": Out(1),
                          "led_err": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        core_reset = Signal()
        m.submodules.net = ResetInserter(core_reset)(self.core)
        net = self.core
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        in_bytes = ceil_div(self.in_bits, 8)
        word = Value.cast(net.o.payload)
        out_bytes = ceil_div(len(word), 8)

        # parser: bytes -> one pending command (a request type, or ERROR with a code)
        pending = Signal()
        cmd = Signal(8)
        code = Signal(3)
        kind = Signal(8)
        length = Signal(8)
        count = Signal(range(in_bytes + 1))
        crc = Signal(8)
        in_word = Signal(8 * in_bytes)
        idle = Signal(range(self.timeout_cycles + 1))
        byte = rx.o.payload
        got = rx.o.valid & ~pending  # bytes that arrive while a command is pending are dropped
        m.d.comb += [rx.o.ready.eq(1), net.i.payload.eq(in_word)]

        def finish(cmd_value, code_value=0):
            m.d.sync += [pending.eq(1), cmd.eq(cmd_value), code.eq(code_value)]
            m.next = "HUNT"

        def parse(state):
            """One received byte of a frame, in parser state ``state``."""
            if state == "TYPE":
                m.d.sync += kind.eq(byte)
                m.next = "LEN0"
            elif state == "LEN0":
                m.d.sync += length.eq(byte)
                m.next = "LEN1"
            elif state == "LEN1":  # longer than any request: skip to the end, then BAD_LENGTH
                with m.If((byte != 0) | (length > in_bytes)):
                    m.next = "DRAIN"
                with m.Elif(length == 0):
                    m.next = "CRC"
                with m.Else():
                    m.next = "PAYLOAD"
            elif state == "PAYLOAD":
                m.d.sync += [count.eq(count + 1),
                             in_word.eq((byte << (8 * (in_bytes - 1))) | (in_word >> 8))]
                with m.If(count + 1 == length):
                    m.next = "CRC"
            elif state == "CRC":
                with m.If(byte != crc):
                    finish(p.ERROR, p.BAD_CRC)
                with m.Elif((kind < p.IDENTIFY) | (kind > p.RESEND)):
                    finish(p.ERROR, p.BAD_TYPE)
                with m.Elif(length != Mux(kind == p.BIN, in_bytes, 0)):
                    finish(p.ERROR, p.BAD_LENGTH)
                with m.Else():
                    finish(kind)

        with m.FSM(name="parser"):
            with m.State("HUNT"):
                m.d.sync += [idle.eq(0), crc.eq(0), count.eq(0)]
                with m.If(got & (byte == p.SYNC)):
                    m.next = "TYPE"
            for state in ("TYPE", "LEN0", "LEN1", "PAYLOAD", "CRC", "DRAIN"):
                with m.State(state):
                    with m.If(got):
                        m.d.sync += [idle.eq(0), crc.eq(crc8_step(crc, byte))]
                        parse(state)
                    with m.Elif(idle == self.timeout_cycles):
                        finish(p.ERROR, p.BAD_LENGTH if state == "DRAIN" else p.TIMEOUT)
                    with m.Else():
                        m.d.sync += idle.eq(idle + 1)

        # executor: commands -> core and replies
        bins = Signal(16)
        r_kind = Signal(8)
        r_code = Signal(3)
        pos = Signal(range(max(7 + out_bytes, 5 + len(self.ident)) + 1))
        tx_crc = Signal(8)

        def frame(kind_value, *payload):
            body = Cat(*payload) if payload else Const(0, 0)
            return Cat(Const(p.SYNC, 8), Const(kind_value, 8), Const(len(body) // 8, 16), body)

        ident = Const(int.from_bytes(self.ident, "little"), 8 * len(self.ident))
        frames = {p.IDENT: frame(p.IDENT, ident), p.RESET_DONE: frame(p.RESET_DONE),
                  p.OUTPUT: frame(p.OUTPUT, bins, word, Const(0, 8 * out_bytes - len(word))),
                  p.ERROR: frame(p.ERROR, r_code, Const(0, 5))}
        tx_byte = Signal(8)
        last = Signal()
        with m.Switch(r_kind):
            for k, value in frames.items():
                with m.Case(k):
                    n = len(value) // 8
                    m.d.comb += [tx_byte.eq(Mux(pos == n, tx_crc, value.word_select(pos, 8))),
                                 last.eq(pos == n)]

        def reply(kind_value, code_value=0):
            m.d.sync += [r_kind.eq(kind_value), r_code.eq(code_value), pos.eq(0),
                         tx_crc.eq(0), self.led_err.eq(kind_value == p.ERROR)]
            m.next = "SEND"

        with m.FSM(name="executor"):
            with m.State("IDLE"):
                with m.If(pending):
                    m.d.sync += pending.eq(cmd == p.BIN)  # a BIN is pending until FEED takes it
                    with m.Switch(cmd):
                        with m.Case(p.BIN):
                            m.next = "FEED"
                        with m.Case(p.IDENTIFY):
                            reply(p.IDENT)
                        with m.Case(p.RESET):
                            m.d.comb += core_reset.eq(1)
                            m.d.sync += bins.eq(0)
                            reply(p.RESET_DONE)
                        with m.Case(p.RESEND):
                            with m.If(net.o.valid):
                                reply(p.OUTPUT)
                            with m.Else():
                                reply(p.ERROR, p.NO_OUTPUT)
                        with m.Default():
                            reply(p.ERROR, code)
            with m.State("FEED"):
                # the previous bin's output, held for RESEND, is dropped as this bin goes in
                m.d.comb += [net.o.ready.eq(1), net.i.valid.eq(1)]
                with m.If(net.i.ready):
                    m.d.sync += pending.eq(0)
                    m.next = "COMPUTE"
            with m.State("COMPUTE"):
                with m.If(net.o.valid):
                    m.d.sync += [bins.eq(bins + 1), self.led_bin.eq(~self.led_bin)]
                    reply(p.OUTPUT)
            with m.State("SEND"):
                m.d.comb += [tx.i.valid.eq(1), tx.i.payload.eq(tx_byte)]
                with m.If(tx.i.ready):
                    m.d.sync += [pos.eq(pos + 1), tx_crc.eq(crc8_step(tx_crc, tx_byte))]
                    with m.If(pos == 0):
                        m.d.sync += tx_crc.eq(0)
                    with m.If(last):
                        m.next = "IDLE"
        return m


class BoardTop(wiring.Component):
    """:class:`FrameBridge` around the compiled network, wired to the board's UART pins, its
    green LED (one toggle per bin) and red LED (last reply an error), where the board has them."""

    def __init__(self, core, ident: bytes, baud: int = 115200, timeout_s: float = 0.02):
        """``core``: the compiled network, a component with an ``i`` stream of input vectors and
        an ``o`` stream of output words (:class:`est.hw.dataflow.DataflowTop` without trace).
        ``ident``: the IDENT payload. ``timeout_s``: a frame idle this long gets TIMEOUT."""
        self.core, self.baud, self.ident, self.timeout_s = core, baud, ident, timeout_s
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        clock = platform.default_clk_frequency
        divisor = round(clock / self.baud)
        m.submodules.bridge = bridge = FrameBridge(self.core, len(self.core.i.payload), divisor,
                                                   self.ident, round(clock * self.timeout_s))
        uart = platform.request("uart", 0)
        m.d.comb += [bridge.rx.eq(uart.rx.i), uart.tx.o.eq(bridge.tx)]
        names = {res.name for res in platform.resources.values()}
        for led, port in (("led_g", bridge.led_bin), ("led_r", bridge.led_err)):
            if led in names:
                m.d.comb += platform.request(led, 0).o.eq(port)
        return m


def board_ident(graph, core, ir_hash: bytes) -> bytes:
    """The IDENT payload of a board top: protocol, est version, IR hash, input and output bits."""
    return p.Ident(p.PROTOCOL_VERSION, __version__, ir_hash, graph.n_in * graph.input_bits,
                   len(Value.cast(core.o.payload))).payload()


def build_core(build: Path, board: Board | None = None):
    """``(graph, core, cycles per bin)`` of a build folder: the compiled network without trace
    ports, as it runs on a board (``board`` None: membranes in block RAM)."""
    top = json.loads((build / "top.json").read_text())
    graph = load(build)
    state_in_logic = board is not None and memory_plan(graph, top["lanes"], board)[0]
    return graph, DataflowTop(graph, top["lanes"], trace=False,
                              state_in_logic=state_in_logic), top["cycles_per_bin"]
