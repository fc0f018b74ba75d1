"""The board top (boards/top.py): the FrameBridge around a compiled network, behind a
bit-level simulated UART, answers every request and every damaged, truncated or unknown frame
with the right reply or error, never applying a rejected bin, and restarts on RESET."""

from stream_drivers import HASH, request, spine_port

from est.boards import protocol as p


def error_frame(code: int) -> bytes:
    return p.encode_frame(p.ERROR, bytes([code]))


def test_board_answers_every_request_and_every_damaged_frame():
    graph, port = spine_port()
    ident = p.Ident.parse(request(port, p.encode_frame(p.IDENTIFY))[4:-1])
    assert (ident.protocol, ident.ir_hash, ident.in_bits, ident.out_bits) == (
        p.PROTOCOL_VERSION, HASH, 11, sum(n * b for _, n, b, _ in graph.output_fields(False)))
    assert request(port, p.encode_frame(p.RESEND)) == error_frame(p.NO_OUTPUT)
    good = p.encode_frame(p.BIN, b"\x05\x01")
    first = request(port, good)
    assert first[:6] == bytes([p.SYNC, p.OUTPUT, 2 + ident.out_bytes, 0, 1, 0])
    flipped = bytearray(good)
    flipped[4] ^= 0x10
    assert request(port, bytes(flipped)) == error_frame(p.BAD_CRC)
    assert request(port, good[:5]) == error_frame(p.TIMEOUT)  # truncated, then silence
    assert request(port, p.encode_frame(0x09)) == error_frame(p.BAD_TYPE)
    assert request(port, p.encode_frame(p.BIN, b"\x05")) == error_frame(p.BAD_LENGTH)
    port.read_timeout_cycles = 20_000  # 306 bytes on the line before the reply
    assert request(port, p.encode_frame(p.BIN, bytes(300))) == error_frame(p.BAD_LENGTH)
    assert request(port, b"\x00\x17garbage" + p.encode_frame(p.RESEND)) == first  # no re-apply
    second = request(port, good)
    assert second[4:6] == b"\x02\x00"  # 2 bins applied: the rejected frames were not
    assert request(port, p.encode_frame(p.RESET)) == p.encode_frame(p.RESET_DONE)
    assert request(port, good) == first  # reset restarts the network: the same first output
