"""The host <-> board frame format over UART (docs/protocol.md), shared by the gateware
(:mod:`est.boards.top`) and the host library (:mod:`est.boards.host`).

A frame is ``SYNC type len_lo len_hi payload[len] crc``: ``crc`` is CRC-8 (polynomial 0x07,
initial value 0, no reflection: CRC-8/SMBUS) over ``type``, the two length bytes and the
payload. The host sends one request and waits for its reply; every request gets exactly one
reply frame (or none when its first byte was lost, which the host's timeout catches).
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from amaranth.lib.crc import catalog

from est import EstError
from est.hw.synapse import ceil_div

PROTOCOL_VERSION = 1
SYNC = 0xA5

# requests (host -> board)
IDENTIFY = 0x01  # len 0 -> IDENT
RESET = 0x02  # len 0 -> RESET_DONE: the network restarts from its reset state, bin index 0
BIN = 0x03  # len ceil(in_bits / 8): one bin's input word -> OUTPUT
RESEND = 0x04  # len 0 -> the last OUTPUT again (or ERROR NO_OUTPUT)

# replies (board -> host)
IDENT = 0x81  # payload: see Ident
RESET_DONE = 0x82  # len 0
OUTPUT = 0x83  # payload: bins since reset, this one included (u16, wraps), the output word
ERROR = 0xEE  # payload: one error code

BAD_CRC = 1  # the frame's checksum did not match: it was not executed
BAD_TYPE = 2  # unknown request type
BAD_LENGTH = 3  # length not the one its type needs (a long frame is skipped to its end)
TIMEOUT = 4  # the line went quiet in the middle of a frame (truncated frame)
NO_OUTPUT = 5  # RESEND before any bin since reset

IR_HASH_BYTES = 8
IDENT_BYTES = 1 + 3 + IR_HASH_BYTES + 2 + 2


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


@dataclass(frozen=True)
class Ident:
    """What a board answers to IDENTIFY."""
    protocol: int
    version: str  # major.minor.patch: a byte each in the payload
    ir_hash: bytes
    in_bits: int  # the input word: inputs x bits per input count
    out_bits: int

    def payload(self) -> bytes:
        version = ([int(p) for p in self.version.split(".")[:3]] + [0, 0, 0])[:3]
        return (bytes([self.protocol, *version]) + self.ir_hash
                + self.in_bits.to_bytes(2, "little") + self.out_bits.to_bytes(2, "little"))

    @classmethod
    def parse(cls, payload: bytes) -> "Ident":
        if len(payload) != IDENT_BYTES:
            raise EstError(f"IDENT reply of {len(payload)} bytes, expected {IDENT_BYTES}: the "
                           f"device does not speak est protocol {PROTOCOL_VERSION}")
        return cls(payload[0], ".".join(str(b) for b in payload[1:4]), bytes(payload[4:12]),
                   int.from_bytes(payload[12:14], "little"),
                   int.from_bytes(payload[14:16], "little"))

    @property
    def in_bytes(self) -> int:
        return ceil_div(self.in_bits, 8)

    @property
    def out_bytes(self) -> int:
        return ceil_div(self.out_bits, 8)
