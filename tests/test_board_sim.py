"""The simulated board behind a serial port (sim/board_sim.py): a read with nothing sent gives
up after its timeout with fewer bytes than asked, written bytes reach the board bit by bit and
its reply comes back whole, once per request, however it is read."""

from stream_drivers import spine_port

from est.boards import protocol as p


def test_reads_time_out_and_replies_come_back_whole():
    _, port = spine_port(read_timeout_cycles=600)
    assert port.read(3) == b""  # nothing asked: nothing comes within the timeout
    port.read_timeout_cycles = 3000  # counted from the start of a read: the whole reply fits
    frame = p.encode_frame(p.IDENTIFY)
    assert port.write(frame) == len(frame)
    reply = port.read(100)  # fewer than asked: the reply, then the timeout
    assert reply[:4] == bytes([p.SYNC, p.IDENT, p.IDENT_BYTES, 0])
    assert len(reply) == 4 + p.IDENT_BYTES + 1 and p.crc8(reply[1:]) == 0
    assert port.read(1) == b""  # one request, one reply
    port.write(frame)
    assert port.read(1) + port.read(len(reply) - 1) == reply  # the same reply, in two reads
