"""The host side of the board protocol (docs/protocol.md): identify, reset, stream bins.

:class:`BoardLink` works over anything with pyserial's ``write`` / ``read`` (with a timeout) /
``reset_input_buffer``: a ``serial.Serial`` on a real board, or
:class:`est.sim.board_sim.SimulatedSerial` with the RTL in simulation. It recovers from
damaged frames in both directions, and no bin is applied twice (:meth:`BoardLink.step`).
"""

from collections.abc import Callable

import numpy as np

from est import EstError
from est.boards import protocol as p
from est.sim.words import encode_inputs

MAX_REPLY = 1 << 14  # longer "lengths" in a reply header are damage, not data


class BoardLink:
    """One board on one port; ``retries`` attempts per request before giving up."""

    def __init__(self, port, retries: int = 8):
        self.port, self.retries = port, retries
        self.ident: p.Ident | None = None
        self.bins = 0  # bins the board has applied since the last reset
        self.recoveries = 0  # damaged or lost frames recovered from

    def _send(self, kind: int, payload: bytes = b"") -> None:
        self.port.write(p.encode_frame(kind, payload))

    def _drain(self) -> None:
        """Count a damaged or lost reply and discard what remains of it (one read timeout)."""
        self.recoveries += 1
        while self.port.read(256):
            pass
        self.port.reset_input_buffer()

    def read_frame(self) -> tuple[int, bytes] | None:
        """The next reply ``(type, payload)``; None when none comes within the port's timeout
        or it arrives damaged (bad checksum, truncated, impossible length)."""
        while True:
            first = self.port.read(1)
            if not first:
                return None
            if first[0] == p.SYNC:
                break
        header = self.port.read(3)
        if len(header) < 3:
            return None
        length = int.from_bytes(header[1:3], "little")
        if length > MAX_REPLY:
            return None
        rest = self.port.read(length + 1)
        if len(rest) < length + 1 or p.crc8(header + rest[:-1]) != rest[-1]:
            return None
        return header[0], bytes(rest[:-1])

    def _unexpected(self, kind: int, request: str) -> EstError:
        hint = (" (the port echoes what we send: a loopback, or not an est board)"
                if kind in (p.IDENTIFY, p.RESET, p.BIN, p.RESEND) else "")
        return EstError(f"unexpected reply type 0x{kind:02x} to {request}{hint}")

    def _simple(self, kind: int, reply_kind: int, name: str) -> bytes:
        """A request without payload (idempotent) whose reply is ``reply_kind``; sent again
        when the reply is damaged, lost or an error."""
        for _ in range(self.retries):
            self._send(kind)
            reply = self.read_frame()
            while reply is not None and reply[0] in (p.IDENT, p.RESET_DONE, p.OUTPUT) \
                    and reply[0] != reply_kind:  # a stale reply to an earlier request
                reply = self.read_frame()
            if reply is None:
                self._drain()
                continue
            if reply[0] == reply_kind:
                return reply[1]
            if reply[0] == p.ERROR:
                self.recoveries += 1
                continue
            raise self._unexpected(reply[0], name)
        raise EstError(f"no valid reply to {name} after {self.retries} attempts: check the port, "
                       f"the baud rate and that the board is programmed with est-synth's "
                       f"bitstream")

    def identify(self) -> p.Ident:
        """Ask the board what it runs."""
        self.ident = p.Ident.parse(self._simple(p.IDENTIFY, p.IDENT, "IDENTIFY"))
        if self.ident.protocol != p.PROTOCOL_VERSION:
            raise EstError(f"the board speaks est protocol {self.ident.protocol}, this host "
                           f"{p.PROTOCOL_VERSION}: rebuild the bitstream with this est")
        return self.ident

    def check(self, ir_hash: bytes, in_bits: int) -> p.Ident:
        """:meth:`identify`, then fail unless the board runs the build with ``ir_hash``."""
        ident = self.identify()
        if ident.ir_hash != ir_hash:
            raise EstError(f"the board runs the network with IR hash {ident.ir_hash.hex()}, the "
                           f"build has {ir_hash.hex()}: program the board with this build's "
                           f"bitstream (est-synth BUILD, then your programmer)")
        if ident.in_bits != in_bits:
            raise EstError(f"the board takes {ident.in_bits} input bits a bin, the build "
                           f"{in_bits}")
        return ident

    def reset(self) -> None:
        """Restart the network from its reset state (membranes, histories, masks, bin 0)."""
        self._simple(p.RESET, p.RESET_DONE, "RESET")
        self.bins = 0

    def step(self, word: int) -> int:
        """Apply one bin (input word: bits ``i * b`` up hold input i's count of b bits) and
        return the output word.

        After a lost or damaged reply the host asks RESEND: an OUTPUT with this bin's index
        means it was applied, the previous index (or NO_OUTPUT) that it was not, so the BIN
        is sent again. An error reply means the last request was rejected: it is sent again.
        """
        if self.ident is None:
            raise EstError("identify() the board before streaming bins")
        payload = word.to_bytes(self.ident.in_bytes, "little")
        index = (self.bins + 1) & 0xFFFF  # the count OUTPUT carries once this bin is in
        last = p.BIN
        self._send(p.BIN, payload)
        for _ in range(self.retries):
            reply = self.read_frame()
            if reply is None:
                self._drain()
                last = p.RESEND
                self._send(p.RESEND)
                continue
            kind, data = reply
            if kind == p.OUTPUT and len(data) == 2 + self.ident.out_bytes:
                got = int.from_bytes(data[:2], "little")
                if got == index:
                    self.bins += 1
                    return int.from_bytes(data[2:], "little")
                if got != (index - 1) & 0xFFFF:
                    raise EstError(f"the board has applied {got} bins, the host {index}: the "
                                   f"link lost step; reset and stream again")
                not_applied = last == p.RESEND  # else a stale copy: keep reading
            elif kind == p.ERROR and data:
                self.recoveries += data[0] != p.NO_OUTPUT
                not_applied = data[0] != p.NO_OUTPUT or last == p.RESEND
                if data[0] != p.NO_OUTPUT:  # the last request was rejected: send it again
                    self._send(last, payload if last == p.BIN else b"")
                    continue
            else:
                raise self._unexpected(kind, "BIN")
            if not_applied:
                last = p.BIN
                self._send(p.BIN, payload)
        raise EstError(f"bin {self.bins}: no valid reply after {self.retries} attempts")

    def run(self, stimulus: np.ndarray, bits: int = 1,
            progress: Callable[[int], None] | None = None) -> list[int]:
        """Reset, then stream every bin of ``stimulus`` ([bins, n_in] of counts of ``bits``
        bits; 0/1 spikes for 1): the output words."""
        self.reset()
        words = []
        for word in encode_inputs(stimulus, bits):
            words.append(self.step(word))
            if progress is not None:
                progress(1)
        return words
