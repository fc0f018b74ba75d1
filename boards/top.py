"""A compiled network on a board: framed requests in over UART, the network, framed replies out.

The frame format and the requests are in :mod:`est.boards.protocol` and docs/protocol.md.
"""

import functools
import json
import operator
from pathlib import Path

from amaranth import Cat, Const, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from est import EstError, __version__
from est.boards import protocol as p
from est.boards.spec import Board
from est.boards.uart import UARTRx, UARTTx
from est.compiler.costs import memory_plan
from est.compiler.graph import load, read_json
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


class _Frames:
    """What both bridges share: the UART, the frame parser and the reply sender, built into a
    module by :meth:`receive` and :meth:`send`; a bridge supplies what differs per request.

    Hardware: a UART receiver and transmitter; a parser (an FSM, a CRC-8 register, a payload
    counter, an idle timer for truncated frames) that ends each frame in one pending command
    (a request type, or ERROR with a code); a sender that walks a reply's bytes (``pos``) into
    the transmitter with a second CRC-8 register.
    """

    def __init__(self, m: Module, bridge, divisor: int, timeout_cycles: int, max_payload: int,
                 reply_bytes: int):
        if timeout_cycles < 20 * divisor:
            raise ValueError(f"timeout_cycles must cover at least two bytes ({20 * divisor} "
                             f"cycles), got {timeout_cycles}")
        self.m, self.timeout_cycles, self.max_payload = m, timeout_cycles, max_payload
        m.submodules.rx = self.rx = UARTRx(divisor)
        m.submodules.tx = self.tx = UARTTx(divisor)
        m.d.comb += [self.rx.rx.eq(bridge.rx), bridge.tx.eq(self.tx.tx), self.rx.o.ready.eq(1)]
        self.pending = Signal()  # a parsed command waits for the executor
        self.cmd = Signal(8)
        self.code = Signal(3)
        self.kind = Signal(8)
        self.length = Signal(8)
        self.count = Signal(range(max_payload + 1))
        self.byte = self.rx.o.payload
        self.r_kind = Signal(8)  # the reply being sent
        self.r_code = Signal(3)
        self.pos = Signal(range(reply_bytes + 1))
        self.tx_crc = Signal(8)
        self.fresh = Signal()  # pos has not moved since the last cycle
        self.led_err = bridge.led_err

    def receive(self, busy: Value, too_long, on_byte, bad_type: Value, bad_length: Value) -> Value:
        """The parser; bytes that arrive while ``busy`` are dropped. ``too_long(length)``: a
        payload longer than the request type can take (the frame is skipped to its end);
        ``on_byte(got)``: the payload byte at ``count`` (logic added under ``got``);
        ``bad_type`` / ``bad_length``: checked with the CRC. Returns the strobe of a byte taken."""
        m, byte, crc = self.m, self.byte, Signal(8)
        idle = Signal(range(self.timeout_cycles + 1))
        got = self.rx.o.valid & ~busy

        def finish(cmd_value, code_value=0):
            m.d.sync += [self.pending.eq(1), self.cmd.eq(cmd_value), self.code.eq(code_value)]
            m.next = "HUNT"

        def parse(state):
            """One received byte of a frame, in parser state ``state``."""
            if state == "TYPE":
                m.d.sync += self.kind.eq(byte)
                m.next = "LEN0"
            elif state == "LEN0":
                m.d.sync += self.length.eq(byte)
                m.next = "LEN1"
            elif state == "LEN1":  # longer than the request takes: skip to the end, BAD_LENGTH
                with m.If((byte != 0) | too_long(self.length)):
                    m.next = "DRAIN"
                with m.Elif(self.length == 0):
                    m.next = "CRC"
                with m.Else():
                    m.next = "PAYLOAD"
            elif state == "PAYLOAD":
                m.d.sync += self.count.eq(self.count + 1)
                on_byte()
                with m.If(self.count + 1 == self.length):
                    m.next = "CRC"
            elif state == "CRC":
                with m.If(byte != crc):
                    finish(p.ERROR, p.BAD_CRC)
                with m.Elif(bad_type):
                    finish(p.ERROR, p.BAD_TYPE)
                with m.Elif(bad_length):
                    finish(p.ERROR, p.BAD_LENGTH)
                with m.Else():
                    finish(self.kind)

        with m.FSM(name="parser"):
            with m.State("HUNT"):
                m.d.sync += [idle.eq(0), crc.eq(0), self.count.eq(0)]
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
        return got

    def reply(self, kind_value, code_value=0) -> None:
        """Start sending a reply (in an executor state): the executor goes to SEND."""
        self.m.d.sync += [self.r_kind.eq(kind_value), self.r_code.eq(code_value),
                          self.pos.eq(0), self.tx_crc.eq(0), self.fresh.eq(0),
                          self.led_err.eq(kind_value == p.ERROR)]
        self.m.next = "SEND"

    def send(self, tx_byte: Value, last: Value, *also) -> None:
        """The executor's SEND state: byte ``pos`` of the reply is ``tx_byte`` (which may come
        from a memory read port addressed by ``pos``: a byte goes out one cycle after ``pos``
        moves); after the ``last`` (the CRC) the executor is IDLE again. ``also``: more
        combinational statements of the state."""
        m, tx = self.m, self.tx
        with m.State("SEND"):
            m.d.comb += [*also, tx.i.valid.eq(self.fresh),
                         tx.i.payload.eq(Mux(last, self.tx_crc, tx_byte))]
            m.d.sync += self.fresh.eq(1)
            with m.If(tx.i.valid & tx.i.ready):
                m.d.sync += [self.pos.eq(self.pos + 1), self.fresh.eq(0),
                             self.tx_crc.eq(Mux(self.pos == 0, 0,  # the CRC starts after SYNC
                                                crc8_step(self.tx_crc, tx.i.payload)))]
                with m.If(last):
                    m.next = "IDLE"


def frame(kind_value, *payload) -> Value:
    """A reply frame without its CRC: sync, type, length, payload."""
    body = Cat(*payload) if payload else Const(0, 0)
    return Cat(Const(p.SYNC, 8), Const(kind_value, 8), Const(len(body) // 8, 16), body)


class FrameBridge(wiring.Component):
    """UART line -> frame parser -> ``core`` -> reply framer -> UART line, for a dataflow top
    (board top, no pins).

    Hardware: :class:`_Frames`, the parser shifting a BIN payload straight into the network's
    input word register; an executor FSM that feeds the network, pulses its synchronous reset
    for RESET (the neuron arrays then clear their state words), counts bins and sends replies
    through one byte multiplexer per reply type (constant bytes fold into the position
    decode). The network's output word stays on its ``o`` until the next BIN or RESET, so
    RESEND needs no copy of it. ``led_bin`` toggles per bin, ``led_err`` is lit while the last
    reply was an error.

    Latency: one bin is the BIN frame (``5 + ceil(in_bits/8)`` bytes of 10 bit times), the core's
    cycles per bin, then the OUTPUT frame (``7 + ceil(out_bits/8)`` bytes). Requests that
    arrive while a BIN is still being fed to the core are dropped (the host waits for replies).
    """

    def __init__(self, core, in_bits: int, divisor: int, ident: bytes, timeout_cycles: int):
        self.core, self.in_bits, self.divisor = core, in_bits, divisor
        self.ident, self.timeout_cycles = ident, timeout_cycles
        super().__init__({"rx": In(1), "tx": Out(1, init=1), "led_bin": Out(1),
                          "led_err": Out(1)})

    def elaborate(self, platform):
        m = Module()
        core_reset = Signal()
        m.submodules.net = ResetInserter(core_reset)(self.core)
        net = self.core
        in_bytes = ceil_div(self.in_bits, 8)
        word = Value.cast(net.o.payload)
        out_bytes = ceil_div(len(word), 8)
        f = _Frames(m, self, self.divisor, self.timeout_cycles, in_bytes,
                    max(7 + out_bytes, 5 + len(self.ident)))
        in_word = Signal(8 * in_bytes)
        m.d.comb += net.i.payload.eq(in_word)

        def on_byte():
            m.d.sync += in_word.eq((f.byte << (8 * (in_bytes - 1))) | (in_word >> 8))

        f.receive(f.pending, lambda length: length > in_bytes, on_byte,
                  (f.kind < p.IDENTIFY) | (f.kind > p.RESEND),
                  f.length != Mux(f.kind == p.BIN, in_bytes, 0))

        bins = Signal(16)
        ident = Const(int.from_bytes(self.ident, "little"), 8 * len(self.ident))
        frames = {p.IDENT: frame(p.IDENT, ident), p.RESET_DONE: frame(p.RESET_DONE),
                  p.OUTPUT: frame(p.OUTPUT, bins, word, Const(0, 8 * out_bytes - len(word))),
                  p.ERROR: frame(p.ERROR, f.r_code, Const(0, 5))}
        tx_byte = Signal(8)
        last = Signal()
        with m.Switch(f.r_kind):
            for k, value in frames.items():
                with m.Case(k):
                    n = len(value) // 8
                    m.d.comb += [tx_byte.eq(value.word_select(f.pos, 8)), last.eq(f.pos == n)]

        with m.FSM(name="executor"):
            with m.State("IDLE"):
                with m.If(f.pending):
                    m.d.sync += f.pending.eq(f.cmd == p.BIN)  # pending until FEED takes it
                    with m.Switch(f.cmd):
                        with m.Case(p.BIN):
                            m.next = "FEED"
                        with m.Case(p.IDENTIFY):
                            f.reply(p.IDENT)
                        with m.Case(p.RESET):
                            m.d.comb += core_reset.eq(1)
                            m.d.sync += bins.eq(0)
                            f.reply(p.RESET_DONE)
                        with m.Case(p.RESEND):
                            with m.If(net.o.valid):
                                f.reply(p.OUTPUT)
                            with m.Else():
                                f.reply(p.ERROR, p.NO_OUTPUT)
                        with m.Default():
                            f.reply(p.ERROR, f.code)
            with m.State("FEED"):
                # the previous bin's output, held for RESEND, is dropped as this bin goes in
                m.d.comb += [net.o.ready.eq(1), net.i.valid.eq(1)]
                with m.If(net.i.ready):
                    m.d.sync += f.pending.eq(0)
                    m.next = "COMPUTE"
            with m.State("COMPUTE"):
                with m.If(net.o.valid):
                    m.d.sync += [bins.eq(bins + 1), self.led_bin.eq(~self.led_bin)]
                    f.reply(p.OUTPUT)
            f.send(tx_byte, last)
        return m


class CoreBridge(wiring.Component):
    """UART line -> frame parser -> the event-driven core (:class:`est.hw.core.Core`) -> reply
    framer -> UART line (board top of a core build, no pins): BIN, OUTPUT, RESET, RESEND and
    IDENTIFY as on a dataflow top, and LOAD and MODEL, which put another model into the core
    at run time (docs/protocol.md).

    Hardware: :class:`_Frames`; a 1024 x 8 frame buffer (two iCE40 block RAMs) holding a BIN's input
    bytes, the MODEL payload (IR hash, input and output bits: what IDENT reports) and a bin's
    output words (kept for RESEND); a LOAD word assembler that writes each word into the
    core's ``load`` port as its last byte arrives; the ``loaded`` flag (cleared by the type
    byte of a LOAD or MODEL, set when a MODEL is executed: the core is halted while it is
    clear, and BIN, RESET and RESEND get NO_MODEL); an executor FSM that feeds the input
    words from the buffer to the core, stores its output words back, counts bins and sends
    replies, each byte from a constant, a register or the buffer (read one cycle ahead).

    Latency: a bin is the BIN frame, 3 cycles per input word, the core's cycles per bin plus 4
    per output word, then the OUTPUT frame (``7 + 4 x output words`` bytes). A LOAD frame
    (``8 + word bytes x words`` bytes) is written as it arrives.
    """

    def __init__(self, core, divisor: int, ident: p.Ident, timeout_cycles: int):
        """``core``: a :class:`~est.hw.core.Core`, with a model in its memories (which
        ``ident`` describes: what IDENT reports until a MODEL replaces it) or none (the board
        then answers NO_MODEL until one is loaded)."""
        from est.hw.core import load_layout

        self.core, self.divisor, self.ident = core, divisor, ident
        self.timeout_cycles = timeout_cycles
        self.word_bits = load_layout(core.spec).members["data"].width
        self.word_bytes = ceil_div(self.word_bits, 8)
        for bits, most, what in ((ident.in_bits, 8 * p.CORE_IN_BYTES, "input"),
                                 (ident.out_bits, 8 * p.CORE_OUT_BYTES, "output")):
            if bits > most:
                raise ValueError(f"{bits} {what} bits a bin: the frame buffer holds {most}")
        super().__init__({"rx": In(1), "tx": Out(1, init=1), "led_bin": Out(1),
                          "led_err": Out(1)})

    def elaborate(self, platform):
        from est.hw.core import MEM_ACT, MEM_START, MEM_WEIGHTS

        m = Module()
        m.submodules.net = net = self.core
        wb = self.word_bytes
        load_max = 3 + p.LOAD_WORDS * wb
        f = _Frames(m, self, self.divisor, self.timeout_cycles,
                    max(p.CORE_IN_BYTES, load_max, p.MODEL_BYTES),
                    max(7 + p.CORE_OUT_BYTES, 5 + p.IDENT_BYTES, 8))
        init = bytearray(p.CORE_FRAME_BYTES)
        init[p.CORE_MODEL_BASE:p.CORE_MODEL_BASE + p.MODEL_BYTES] = self.ident.model_payload()
        m.submodules.buf = buf = memory.Memory(shape=8, depth=p.CORE_FRAME_BYTES, init=list(init))
        w, r = buf.write_port(), buf.read_port()

        # the core holds a whole model: the one built into it, or the last MODEL's
        loaded = Signal(init=self.core.program is not None)
        in_bits = Signal(16, init=self.ident.in_bits)
        out_bits = Signal(16, init=self.ident.out_bits)
        in_bytes, out_bytes = in_bits[3:], out_bits[3:]
        m.d.comb += net.halt.eq(~loaded)

        # LOAD: mem, address, then words of wb bytes, each written into the core's load port
        ld_mem = Signal(8)
        ld_addr = Signal(16)
        ld_shift = Signal(8 * wb)
        ld_b = Signal(range(wb))
        ld_valid = Signal()
        ld_ok = (ld_mem >= MEM_WEIGHTS) & (ld_mem <= MEM_ACT)
        start = Signal()  # the executor restarts the core (load word MEM_START)
        m.d.comb += [net.load.valid.eq(ld_valid | start),
                     net.load.payload.mem.eq(Mux(start, MEM_START, ld_mem)),
                     net.load.payload.addr.eq(ld_addr),
                     net.load.payload.data.eq(ld_shift[:self.word_bits])]
        with m.If(ld_valid & net.load.ready):
            m.d.sync += [ld_valid.eq(0), ld_addr.eq(ld_addr + 1)]

        executing = Signal()
        count, byte, kind = f.count, f.byte, f.kind

        def on_byte():
            with m.If(((kind == p.LOAD) | (kind == p.MODEL)) & (count == 0)):
                m.d.sync += loaded.eq(0)  # a model is being replaced: halt the core
            with m.Switch(kind):
                with m.Case(p.BIN):
                    m.d.comb += [w.addr.eq(count), w.data.eq(byte), w.en.eq(1)]
                with m.Case(p.MODEL):
                    m.d.comb += [w.addr.eq(p.CORE_MODEL_BASE + count), w.data.eq(byte),
                                 w.en.eq(1)]
                    for k, (reg, lo) in enumerate(((in_bits, 0), (in_bits, 8), (out_bits, 0),
                                                   (out_bits, 8))):
                        with m.If(count == p.IR_HASH_BYTES + k):
                            m.d.sync += reg[lo:lo + 8].eq(byte)
                with m.Case(p.LOAD):
                    with m.If(count == 0):
                        m.d.sync += [ld_mem.eq(byte), ld_b.eq(0)]
                    with m.Elif(count == 1):
                        m.d.sync += ld_addr[:8].eq(byte)
                    with m.Elif(count == 2):
                        m.d.sync += ld_addr[8:].eq(byte)
                    with m.Else():
                        m.d.sync += [ld_shift.eq((byte << (8 * (wb - 1))) | (ld_shift >> 8)),
                                     ld_b.eq(Mux(ld_b == wb - 1, 0, ld_b + 1))]
                        with m.If((ld_b == wb - 1) & ld_ok):
                            m.d.sync += ld_valid.eq(1)

        length_for = Mux(kind == p.BIN, in_bytes, Mux(kind == p.MODEL, p.MODEL_BYTES, 0))
        too_long = {p.BIN: p.CORE_IN_BYTES, p.LOAD: load_max, p.MODEL: p.MODEL_BYTES}
        f.receive(
            f.pending | executing,
            lambda length: Mux(kind == p.BIN, length > p.CORE_IN_BYTES,
                               Mux(kind == p.LOAD, length > too_long[p.LOAD],
                                   length > p.MODEL_BYTES)),
            on_byte, (kind < p.IDENTIFY) | (kind > p.MODEL),
            Mux(kind == p.LOAD, (f.length < 3 + wb) | (ld_b != 0) | ~ld_ok,
                f.length != length_for))

        bins = Signal(16)
        have_out = Signal()
        word = Signal(32)
        k = Signal(range(max(p.CORE_IN_BYTES, p.CORE_OUT_BYTES) + 1))
        lo = Signal(8)

        # the reply bytes: constants, registers, or the buffer (read one cycle ahead)
        pos = f.pos
        version = Const(int.from_bytes(self.ident.payload()[1:4], "little"), 24)
        core_id = Const(int.from_bytes(self.ident.core, "little"), 8 * p.CORE_ID_BYTES)
        ident_head = Cat(Const(p.SYNC, 8), Const(p.IDENT, 8), Const(p.IDENT_BYTES, 16),
                         Const(p.PROTOCOL_VERSION, 8), version)  # the MODEL bytes, the core id
        n_head = len(ident_head) // 8
        model_end = n_head + p.MODEL_BYTES
        out_len = Signal(16)
        m.d.comb += out_len.eq(out_bytes + 2)
        output_head = Cat(Const(p.SYNC, 8), Const(p.OUTPUT, 8), out_len, bins)
        small = {p.RESET_DONE: frame(p.RESET_DONE),
                 p.ERROR: frame(p.ERROR, f.r_code, Const(0, 5)),
                 p.LOADED: frame(p.LOADED, ld_mem, ld_addr)}
        tx_byte = Signal(8)
        last = Signal()
        send_addr = Signal(range(p.CORE_FRAME_BYTES))
        with m.Switch(f.r_kind):
            for kind_value, value in small.items():
                with m.Case(kind_value):
                    m.d.comb += [tx_byte.eq(value.word_select(pos, 8)),
                                 last.eq(pos == len(value) // 8)]
            with m.Case(p.IDENT):
                m.d.comb += [send_addr.eq(p.CORE_MODEL_BASE - n_head + pos),
                             last.eq(pos == model_end + p.CORE_ID_BYTES)]
                with m.If(pos < n_head):
                    m.d.comb += tx_byte.eq(ident_head.word_select(pos, 8))
                with m.Elif(pos < model_end):
                    hidden = ~loaded & (pos < n_head + p.IR_HASH_BYTES)
                    m.d.comb += tx_byte.eq(Mux(hidden, 0, r.data))
                with m.Else():
                    m.d.comb += tx_byte.eq(core_id.word_select((pos - model_end)[:len(pos)], 8))
            with m.Case(p.OUTPUT):
                m.d.comb += [send_addr.eq(p.CORE_OUT_BASE - 6 + pos),
                             last.eq(pos == out_bytes + 6)]
                with m.If(pos < 6):
                    m.d.comb += tx_byte.eq(output_head.word_select(pos, 8))
                with m.Else():
                    m.d.comb += tx_byte.eq(r.data)

        with m.FSM(name="executor") as executor:
            with m.State("IDLE"):
                with m.If(f.pending):
                    m.d.sync += [f.pending.eq(0), k.eq(0)]
                    with m.Switch(f.cmd):
                        with m.Case(p.IDENTIFY):
                            f.reply(p.IDENT)
                        with m.Case(p.LOAD):
                            f.reply(p.LOADED)
                        with m.Case(p.MODEL):
                            m.d.sync += [loaded.eq(1), bins.eq(0), have_out.eq(0)]
                            m.next = "START"
                        with m.Case(p.BIN, p.RESET, p.RESEND):
                            with m.If(~loaded):
                                f.reply(p.ERROR, p.NO_MODEL)
                            with m.Elif(f.cmd == p.BIN):
                                m.next = "FEED_LO"
                            with m.Elif(f.cmd == p.RESET):
                                m.d.sync += [bins.eq(0), have_out.eq(0)]
                                m.next = "START"
                            with m.Elif(have_out):
                                f.reply(p.OUTPUT)
                            with m.Else():
                                f.reply(p.ERROR, p.NO_OUTPUT)
                        with m.Default():
                            f.reply(p.ERROR, f.code)
            with m.State("START"):
                m.d.comb += start.eq(1)
                with m.If(net.load.ready):
                    with m.If(f.cmd == p.MODEL):
                        f.reply(p.IDENT)
                    with m.Else():
                        f.reply(p.RESET_DONE)
            with m.State("FEED_LO"):  # an input word: its low byte, then its high byte
                m.d.comb += r.addr.eq(k)
                m.d.sync += k.eq(k + 1)
                m.next = "FEED_HI"
            with m.State("FEED_HI"):
                m.d.comb += r.addr.eq(k)
                m.d.sync += lo.eq(r.data)
                m.next = "FEED"
            with m.State("FEED"):
                m.d.comb += [r.addr.eq(k), net.i.valid.eq(1), net.i.payload.eq(Cat(lo, r.data))]
                with m.If(net.i.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k + 1 >= in_bytes):
                        m.d.sync += k.eq(0)
                        m.next = "COLLECT"
                    with m.Else():
                        m.next = "FEED_LO"
            with m.State("COLLECT"):  # output words into the buffer, a byte a cycle
                m.d.comb += net.o.ready.eq(k[:2] == 0)
                with m.If(k[:2] != 0):
                    m.d.comb += [w.addr.eq(p.CORE_OUT_BASE + k), w.en.eq(1),
                                 w.data.eq(word.word_select(k[:2], 8))]
                    m.d.sync += k.eq(k + 1)
                with m.Elif(net.o.valid):
                    m.d.comb += [w.addr.eq(p.CORE_OUT_BASE + k), w.en.eq(1),
                                 w.data.eq(net.o.payload[:8])]
                    m.d.sync += [word.eq(net.o.payload), k.eq(k + 1)]
                with m.If((k[:2] == 3) & (k + 1 >= out_bytes)):
                    m.d.sync += [bins.eq(bins + 1), have_out.eq(1),
                                 self.led_bin.eq(~self.led_bin)]
                    f.reply(p.OUTPUT)
            f.send(tx_byte, last, r.addr.eq(send_addr))
        m.d.comb += executing.eq(~executor.ongoing("IDLE"))
        return m


class BoardTop(wiring.Component):
    """A bridge (:class:`FrameBridge` or :class:`CoreBridge`) wired to the board's UART pins,
    its green LED (one toggle per bin) and red LED (last reply an error), where the board has
    them."""

    def __init__(self, make_bridge, baud: int = p.BAUD, timeout_s: float = 0.02):
        """``make_bridge(divisor, timeout_cycles)``: the bridge (:func:`board_bridge`) for
        ``divisor`` clock cycles a UART bit; ``timeout_s``: a frame idle this long gets
        TIMEOUT."""
        self.make_bridge, self.baud, self.timeout_s = make_bridge, baud, timeout_s
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        clock = platform.default_clk_frequency
        m.submodules.bridge = bridge = self.make_bridge(round(clock / self.baud),
                                                        round(clock * self.timeout_s))
        uart = platform.request("uart", 0)
        m.d.comb += [bridge.rx.eq(uart.rx.i), uart.tx.o.eq(bridge.tx)]
        names = {res.name for res in platform.resources.values()}
        for led, port in (("led_g", bridge.led_bin), ("led_r", bridge.led_err)):
            if led in names:
                m.d.comb += platform.request(led, 0).o.eq(port)
        return m


def board_ident(graph, core, ir_hash: bytes) -> bytes:
    """The IDENT payload of a dataflow top: protocol, est version, IR hash, input and output
    bits, no core."""
    return p.Ident(p.PROTOCOL_VERSION, __version__, ir_hash, graph.n_in * graph.input_bits,
                   len(Value.cast(core.o.payload))).payload()


def core_ident(prog, ir_hash: bytes, where: str = "the model") -> p.Ident:
    """What a core top running ``prog`` (a board program: no trace) reports: its input and
    output words in bits, the core's id. Refuses (:class:`~est.EstError`, naming ``where``)
    a bin whose input or output words are over what :class:`CoreBridge`'s frame buffer
    holds."""
    in_bits, out_bits = 16 * prog.input.words, 32 * prog.output_word_count
    for bits, most, what, width in ((in_bits, p.CORE_IN_BYTES, "input", 16),
                                    (out_bits, p.CORE_OUT_BYTES, "output", 32)):
        if bits > 8 * most:
            raise EstError(
                f"{where}: {bits // width} {what} words of {width} bits a bin, over the "
                f"{8 * most // width} a core board top's frame buffer holds "
                f"({most} bytes): run it in simulation (est-sim), or give the model fewer "
                f"{what}s (an EST's slow readouts are outputs: model.readout_slow_shifts = [])")
    return p.Ident(p.PROTOCOL_VERSION, __version__, ir_hash, in_bits, out_bits,
                   p.core_id(prog.spec))


def dataflow_bridge(core, in_bits: int, ident: bytes):
    """``make(divisor, timeout_cycles)`` -> :class:`FrameBridge` around ``core``."""
    return lambda divisor, timeout: FrameBridge(core, in_bits, divisor, ident, timeout)


def board_program(build: Path):
    """The program a core build's board runs (no trace), compiled from its ``ir.json``."""
    from est.compiler.program import CoreSpec, compile_program

    top = read_json(build, "top.json")
    return compile_program(load(build), CoreSpec(**top["core"]), trace=False)


def bare_core_bridge(build: Path, spram: bool = False):
    """``make_bridge`` of a board top with the core of a core build but no model in it (its
    weights in SPRAM with ``spram``): a core top on the UP5K, whose SPRAMs have no initial
    contents, starts this way and takes its model from ``est-run --load``."""
    from est.compiler.program import CoreSpec
    from est.hw.core import Core

    top = read_json(build, "top.json")
    if top.get("backend") != "core":
        raise EstError(f"{build}: a dataflow build has no core to load a model into")
    spec = CoreSpec(**top["core"])
    ident = p.Ident(p.PROTOCOL_VERSION, __version__, bytes(p.IR_HASH_BYTES), 0, 0,
                    p.core_id(spec))
    return lambda divisor, timeout: CoreBridge(Core(spec, spram=spram), divisor, ident, timeout)


def bitstream_baud(build: Path) -> int:
    """The UART rate of the bitstreams est-synth wrote into ``build`` (``synth_*/synth.json``;
    :data:`~est.boards.protocol.BAUD` when there are none, or they predate ``--baud``);
    refused when two differ."""
    rates = {}
    for path in sorted(build.glob("synth_*/synth.json")):
        rates[path.parent.name] = json.loads(path.read_text()).get("uart", {}).get("baud", p.BAUD)
    if len(set(rates.values())) > 1:
        raise EstError(f"{build}: its bitstreams run their UARTs at different rates "
                       f"({', '.join(f'{k} {v}' for k, v in rates.items())}): give --baud")
    return next(iter(rates.values()), p.BAUD)


def board_bridge(build: Path, board: Board | None = None):
    """``(make_bridge, cycles per bin, ident)`` of a build folder's board top, its model in the
    gateware: ``make_bridge(divisor, timeout_cycles)`` builds a :class:`FrameBridge` around
    the dataflow top without trace ports (``board`` None: membranes in block RAM), or a
    :class:`CoreBridge` around the core of a core build with the build's program in its
    memories; where the build puts the weights in SPRAM and ``board`` is given, the core
    starts with no model (:func:`bare_core_bridge`). ``ident`` is what the board reports once
    it runs the build's model (its input and output bits: what a bin moves over the UART)."""
    from est.hw.core import Core

    top = read_json(build, "top.json")
    if top.get("backend") == "core":
        prog = board_program(build)
        ident = core_ident(prog, p.ir_hash(build), str(build))
        if board is not None and top["spram"]:  # SPRAM has no initial contents
            return bare_core_bridge(build, spram=True), top["cycles_per_bin"], ident
        core = Core(prog.spec, prog)
        return (lambda divisor, timeout: CoreBridge(core, divisor, ident, timeout),
                top["cycles_per_bin"], ident)
    graph = load(build)
    state_in_logic = board is not None and memory_plan(graph, top["lanes"], board)[0]
    core = DataflowTop(graph, top["lanes"], trace=False, state_in_logic=state_in_logic)
    ident = board_ident(graph, core, p.ir_hash(build))
    return (dataflow_bridge(core, graph.n_in * graph.input_bits, ident), top["cycles_per_bin"],
            p.Ident.parse(ident))
