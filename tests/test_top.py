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


def test_core_top_answers_load_and_model_and_refuses_what_is_not_a_whole_model():
    """A core top with no model: IDENT reports a zero IR hash and its core id; BIN, RESET and
    RESEND get NO_MODEL; a LOAD of a memory the core does not have, or of part of a word, gets
    BAD_LENGTH; a LOAD comes back LOADED with the next address; MODEL answers IDENT with the
    new hash. A dataflow top takes no LOAD (BAD_TYPE)."""
    from est.boards.top import CoreBridge
    from est.compiler.program import CoreSpec
    from est.hw.core import MEM_THRESHOLDS, Core, load_layout
    from est.sim.board_sim import SimulatedSerial

    spec = CoreSpec(lanes=2, weight_bits=4, weight_words=256, act_words=64, neuron_words=16,
                    acc_words=4)
    ident = p.Ident(p.PROTOCOL_VERSION, "0.1.0", bytes(8), 0, 0, p.core_id(spec))
    port = SimulatedSerial(lambda d, t: CoreBridge(Core(spec), d, ident, t),
                           read_timeout_cycles=3000)
    got = p.Ident.parse(request(port, p.encode_frame(p.IDENTIFY))[4:-1])
    assert (got.ir_hash, got.core) == (bytes(8), p.core_id(spec))
    for kind, payload in ((p.BIN, b""), (p.RESET, b""), (p.RESEND, b"")):
        assert request(port, p.encode_frame(kind, payload)) == error_frame(p.NO_MODEL)
    width = -(-load_layout(spec).members["data"].width // 8)
    word = bytes(range(1, width + 1))
    assert request(port, p.encode_frame(p.LOAD, b"\x07\x00\x00" + word)) == error_frame(
        p.BAD_LENGTH)
    assert request(port, p.encode_frame(p.LOAD, b"\x02\x00\x00" + word[:-1])) == error_frame(
        p.BAD_LENGTH)
    assert request(port, p.encode_frame(p.LOAD, bytes([MEM_THRESHOLDS, 5, 0]) + word * 3)) == \
        p.encode_frame(p.LOADED, bytes([MEM_THRESHOLDS, 8, 0]))
    model = p.Ident(p.PROTOCOL_VERSION, "0.1.0", b"\x5a" * 8, 32, 64, p.core_id(spec))
    reply = request(port, p.encode_frame(p.MODEL, model.model_payload()))
    assert p.Ident.parse(reply[4:-1]) == p.Ident(p.PROTOCOL_VERSION, got.version, b"\x5a" * 8,
                                                 32, 64, p.core_id(spec))
    assert request(port, p.encode_frame(p.RESET)) == p.encode_frame(p.RESET_DONE)
    assert request(port, p.encode_frame(p.LOAD, b"\x02\x00\x00" + word[:1])) == error_frame(
        p.BAD_LENGTH)  # begun: the model is no longer whole
    assert request(port, p.encode_frame(p.RESEND)) == error_frame(p.NO_MODEL)
    _, dataflow = spine_port()
    assert request(dataflow, p.encode_frame(p.LOAD)) == error_frame(p.BAD_TYPE)


def test_bitstream_baud_is_the_rate_est_synth_built_with(tmp_path):
    """No bitstream, or one from before --baud: 115200; one rate: that rate; two that
    differ: refused, naming both."""
    import json

    import pytest

    from est import EstError
    from est.boards.top import bitstream_baud

    assert bitstream_baud(tmp_path) == 115200
    for name, report in (("synth_icebreaker", {"uart": {"baud": 1000000}}),
                         ("synth_ulx3s-85f", {})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "synth.json").write_text(json.dumps(report))
        if name == "synth_icebreaker":
            assert bitstream_baud(tmp_path) == 1000000
    with pytest.raises(EstError, match=r"different rates \(synth_icebreaker 1000000, "
                                       r"synth_ulx3s-85f 115200\): give --baud"):
        bitstream_baud(tmp_path)
