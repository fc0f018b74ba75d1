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
    with_osc = CoreSpec(**{**a.as_dict(), "osc": True})  # the oscillator unit
    assert p.core_id(CoreSpec(**with_osc.as_dict())) == p.core_id(with_osc)
    assert p.core_id(with_osc) not in (p.core_id(a), p.core_id(with_ssa))
    assert "osc" not in a.as_dict()  # a core without it keeps the id it had before the unit
    with_mult = CoreSpec(**{**with_osc.as_dict(), "osc_mult": True})  # and its multiplier
    assert p.core_id(with_mult) not in (p.core_id(a), p.core_id(with_osc))
    assert "osc_mult" not in with_osc.as_dict()


@pytest.mark.parametrize("clock_hz,baud,divisor", [(12e6, 115200, 104), (12e6, 1_000_000, 12),
                                                   (12e6, 3_000_000, 4), (12e6, 921600, 13),
                                                   (25e6, 115200, 217)])
def test_uart_divisor_is_the_nearest_whole_number_of_cycles(clock_hz, baud, divisor):
    assert p.uart_divisor(clock_hz, baud, "b") == divisor


@pytest.mark.parametrize("baud,message", [
    (4_000_000, "--baud 4000000: b's 12 MHz clock gives a UART bit at least 4 cycles, so at "
                "most 3000000 baud: choose a lower rate"),
    (2_500_000, "--baud 2500000: b's 12 MHz clock divides to 2400000 baud at best (4.0% off, "
                "over 2%): choose a rate near clock / whole number, such as 2400000"),
    (0, "--baud must be a positive whole number, got 0")])
def test_uart_divisor_refuses_what_the_clock_cannot_make(baud, message):
    with pytest.raises(EstError) as e:
        p.uart_divisor(12e6, baud, "b")
    assert str(e.value) == message


def test_bytes_per_bin_are_the_bin_and_output_frames():
    """BIN: sync, type, 2 length bytes, the payload, CRC; OUTPUT: the same and the bin
    counter. 24 inputs of 3 bits are 9 bytes; 168 words of 32 bits 672."""
    ident = p.Ident(p.PROTOCOL_VERSION, "0.1.0", bytes(8), 72, 32 * 168)
    assert ident.bytes_per_bin() == (14, 679)
