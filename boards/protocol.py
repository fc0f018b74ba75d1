"""The host <-> board frame format over UART (docs/protocol.md), shared by the gateware
(:mod:`est.boards.top`) and the host library (:mod:`est.boards.host`).

A frame is ``SYNC type len_lo len_hi payload[len] crc``: ``crc`` is CRC-8 (polynomial 0x07,
initial value 0, no reflection: CRC-8/SMBUS) over ``type``, the two length bytes and the
payload. The host sends one request and waits for its reply; every request gets exactly one
reply frame (or none when its first byte was lost, which the host's timeout catches).

A board top built for the core backend (:class:`est.boards.top.CoreBridge`) also takes LOAD
and MODEL: a new model goes into its memories at run time, without synthesis.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from amaranth.lib.crc import catalog

from est import EstError
from est.hw.synapse import ceil_div

PROTOCOL_VERSION = 2
SYNC = 0xA5

# requests (host -> board)
IDENTIFY = 0x01  # len 0 -> IDENT
RESET = 0x02  # len 0 -> RESET_DONE: the network restarts from its reset state, bin index 0
BIN = 0x03  # len ceil(in_bits / 8): one bin's input word -> OUTPUT
RESEND = 0x04  # len 0 -> the last OUTPUT again (or ERROR NO_OUTPUT)
LOAD = 0x05  # core tops: mem (1), first address (u16), 1..LOAD_WORDS words -> LOADED
MODEL = 0x06  # core tops: IR hash (8), in_bits (u16), out_bits (u16): start it -> IDENT

# replies (board -> host)
IDENT = 0x81  # payload: see Ident
RESET_DONE = 0x82  # len 0
OUTPUT = 0x83  # payload: bins since reset, this one included (u16, wraps), the output word
LOADED = 0x85  # payload: mem (1), the address after the last word written (u16)
ERROR = 0xEE  # payload: one error code

BAD_CRC = 1  # the frame's checksum did not match: it was not executed
BAD_TYPE = 2  # unknown request type
BAD_LENGTH = 3  # length not the one its type needs (a long frame is skipped to its end)
TIMEOUT = 4  # the line went quiet in the middle of a frame (truncated frame)
NO_OUTPUT = 5  # RESEND before any bin since reset
NO_MODEL = 6  # BIN, RESET or RESEND on a core top between a LOAD and the MODEL that ends it

IR_HASH_BYTES = 8
CORE_ID_BYTES = 8
IDENT_BYTES = 1 + 3 + IR_HASH_BYTES + 2 + 2 + CORE_ID_BYTES
MODEL_BYTES = IR_HASH_BYTES + 2 + 2
LOAD_WORDS = 16  # the most words one LOAD frame carries
# A core top's frame buffer (1024 x 8: two iCE40 block RAMs): a BIN's input bytes, the MODEL
# payload (what IDENT reports), a bin's output words (224 of 32 bits: an EST of 32 neurons with
# six slow readouts).
CORE_FRAME_BYTES = 1024
CORE_IN_BYTES = 112
CORE_MODEL_BASE = CORE_IN_BYTES
CORE_OUT_BASE = 128
CORE_OUT_BYTES = CORE_FRAME_BYTES - CORE_OUT_BASE


def crc8(data: bytes) -> int:
    """CRC-8/SMBUS of ``data`` (``crc8(b"123456789") == 0xF4``)."""
    return catalog.CRC8_SMBUS().compute(data)


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    """The bytes of one frame."""
    body = bytes([kind]) + len(payload).to_bytes(2, "little") + payload
    return bytes([SYNC]) + body + bytes([crc8(body)])


def ir_hash(build: Path) -> bytes:
    """The first bytes of the SHA-256 of a build's ``ir.json``: names the compiled network."""
    path = build / "ir.json"
    if not path.is_file():
        raise EstError(f"{build}: not an est-compile build folder (no ir.json)")
    return hashlib.sha256(path.read_bytes()).digest()[:IR_HASH_BYTES]


def core_id(spec) -> bytes:
    """The first bytes of the SHA-256 of a :class:`~est.compiler.program.CoreSpec`: a program
    compiled for one core runs only on a core of the same spec."""
    text = json.dumps(spec.as_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).digest()[:CORE_ID_BYTES]


NO_CORE = bytes(CORE_ID_BYTES)  # the core id of a dataflow top: it takes no LOAD


@dataclass(frozen=True)
class Ident:
    """What a board answers to IDENTIFY (and a core top to MODEL)."""
    protocol: int
    version: str  # major.minor.patch: a byte each in the payload
    ir_hash: bytes  # all zero on a core top between a LOAD and its MODEL
    in_bits: int  # the input word: inputs x bits per input count (core: 16 x input words)
    out_bits: int  # the output word (core: 32 x output words)
    core: bytes = NO_CORE  # :func:`core_id` of a core top

    def payload(self) -> bytes:
        version = ([int(p) for p in self.version.split(".")[:3]] + [0, 0, 0])[:3]
        return bytes([self.protocol, *version]) + self.model_payload() + self.core

    def model_payload(self) -> bytes:
        """The MODEL payload that makes a core top report this: IR hash, in_bits, out_bits."""
        return (self.ir_hash + self.in_bits.to_bytes(2, "little")
                + self.out_bits.to_bytes(2, "little"))

    @classmethod
    def parse(cls, payload: bytes) -> "Ident":
        if len(payload) != IDENT_BYTES:
            raise EstError(f"IDENT reply of {len(payload)} bytes, expected {IDENT_BYTES}: the "
                           f"device does not speak est protocol {PROTOCOL_VERSION}")
        return cls(payload[0], ".".join(str(b) for b in payload[1:4]), bytes(payload[4:12]),
                   int.from_bytes(payload[12:14], "little"),
                   int.from_bytes(payload[14:16], "little"), bytes(payload[16:24]))

    @property
    def in_bytes(self) -> int:
        return ceil_div(self.in_bits, 8)

    @property
    def out_bytes(self) -> int:
        return ceil_div(self.out_bits, 8)

    def bytes_per_bin(self) -> tuple[int, int]:
        """The bytes a bin moves on the line: the BIN frame in (sync, type, length, payload,
        CRC) and the OUTPUT frame out (the same with the bin counter)."""
        return 5 + self.in_bytes, 7 + self.out_bytes


BAUD = 115200
"""The UART rate of a board top when est-synth is given no ``--baud``."""
MIN_DIVISOR = 4
"""The fewest clock cycles a UART bit may last (:class:`est.boards.uart.UARTRx` samples the
middle of each bit)."""
MAX_BAUD_ERROR = 0.02
"""How far the rate a board's clock divides down to may be from the one asked for."""


def uart_divisor(clock_hz: float, baud: int, board: str) -> int:
    """Clock cycles a UART bit at ``baud`` on a ``clock_hz`` board: refused
    (:class:`EstError`) when under :data:`MIN_DIVISOR` or off by more than
    :data:`MAX_BAUD_ERROR`."""
    if not isinstance(baud, int) or baud < 1:
        raise EstError(f"--baud must be a positive whole number, got {baud}")
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise EstError(f"--baud {baud}: {board}'s {clock_hz / 1e6:g} MHz clock gives a UART "
                       f"bit at least {MIN_DIVISOR} cycles, so at most "
                       f"{int(clock_hz // MIN_DIVISOR)} baud: choose a lower rate")
    error = abs(clock_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise EstError(f"--baud {baud}: {board}'s {clock_hz / 1e6:g} MHz clock divides to "
                       f"{clock_hz / divisor:.0f} baud at best ({100 * error:.1f}% off, over "
                       f"{100 * MAX_BAUD_ERROR:g}%): choose a rate near clock / whole number, "
                       f"such as {round(clock_hz / divisor)}")
    return divisor
