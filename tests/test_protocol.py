"""The board protocol's framing (boards/protocol.py): the CRC is CRC-8/SMBUS and an encoded
frame is SYNC, type, little-endian length, payload and a CRC over all but SYNC; the IDENT
payload parses back to what was encoded; a build is named by the hash of its ir.json and a
core by the hash of its spec."""

import hashlib

import pytest

from est import EstError
from est.boards import protocol as p
from est.compiler.program import CoreSpec


def test_crc8_is_crc8_smbus():
    assert p.crc8(b"123456789") == 0xF4  # the catalogued check value of CRC-8/SMBUS
    frame = p.encode_frame(p.BIN, b"\x12\x34")
    assert frame[:4] == bytes([p.SYNC, p.BIN, 2, 0]) and p.crc8(frame[1:]) == 0


def test_ident_round_trip_and_ir_hash(tmp_path):
    ident = p.Ident(2, "2.10.3", bytes(range(8)), 17, 64, bytes(range(10, 18)))
    payload = ident.payload()
    assert len(payload) == p.IDENT_BYTES and p.Ident.parse(payload) == ident
    assert payload[4:4 + p.MODEL_BYTES] == ident.model_payload() == (
        bytes(range(8)) + b"\x11\x00\x40\x00")
    assert (ident.in_bytes, ident.out_bytes) == (3, 8)
    assert p.Ident(2, "1.0.0", bytes(8), 1, 1).core == p.NO_CORE == bytes(8)
    with pytest.raises(EstError, match="IDENT reply of 23 bytes, expected 24"):
        p.Ident.parse(payload[:-1])
    with pytest.raises(EstError, match="not an est-compile build folder"):
        p.ir_hash(tmp_path)
    (tmp_path / "ir.json").write_text("{}")
    assert p.ir_hash(tmp_path) == hashlib.sha256(b"{}").digest()[:8]


def test_core_id_names_the_spec():
    a = CoreSpec(lanes=4, weight_bits=8, weight_words=1024, act_words=256, neuron_words=64)
    b = CoreSpec(lanes=4, weight_bits=8, weight_words=2048, act_words=256, neuron_words=64)
    assert p.core_id(a) == p.core_id(CoreSpec(**a.as_dict())) != p.core_id(b)
    assert len(p.core_id(a)) == p.CORE_ID_BYTES and p.core_id(a) != p.NO_CORE
    with_ssa = CoreSpec(**{**a.as_dict(), "ssa": True})  # the same memories, the SSA unit
    assert p.core_id(with_ssa) not in (p.core_id(a), p.core_id(b))
