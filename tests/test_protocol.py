"""The board protocol's framing (boards/protocol.py): the CRC is CRC-8/SMBUS and an encoded
frame is SYNC, type, little-endian length, payload and a CRC over all but SYNC; the IDENT
payload parses back to what was encoded; a build is named by the hash of its ir.json."""

import hashlib

import pytest

from est import EstError
from est.boards import protocol as p


def test_crc8_is_crc8_smbus():
    assert p.crc8(b"123456789") == 0xF4  # the catalogued check value of CRC-8/SMBUS
    frame = p.encode_frame(p.BIN, b"\x12\x34")
    assert frame[:4] == bytes([p.SYNC, p.BIN, 2, 0]) and p.crc8(frame[1:]) == 0


def test_ident_round_trip_and_ir_hash(tmp_path):
    ident = p.Ident(1, "2.10.3", bytes(range(8)), 17, 64)
    payload = ident.payload()
    assert len(payload) == p.IDENT_BYTES and p.Ident.parse(payload) == ident
    assert (ident.in_bytes, ident.out_bytes) == (3, 8)
    with pytest.raises(EstError, match="IDENT reply of 15 bytes, expected 16"):
        p.Ident.parse(payload[:-1])
    with pytest.raises(EstError, match="not an est-compile build folder"):
        p.ir_hash(tmp_path)
    (tmp_path / "ir.json").write_text("{}")
    assert p.ir_hash(tmp_path) == hashlib.sha256(b"{}").digest()[:8]
