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
                if kind in (p.IDENTIFY, p.RESET, p.BIN, p.RESEND, p.LOAD, p.MODEL) else "")
        return EstError(f"unexpected reply type 0x{kind:02x} to {request}{hint}")

    def _simple(self, kind: int, reply_kind: int, name: str, payload: bytes = b"") -> bytes:
        """An idempotent request whose reply is ``reply_kind``; sent again when the reply is
        damaged, lost or an error."""
        for _ in range(self.retries):
            self._send(kind, payload)
            reply = self.read_frame()
            while reply is not None and reply[0] in (p.IDENT, p.RESET_DONE, p.OUTPUT, p.LOADED) \
                    and reply[0] != reply_kind:  # a stale reply to an earlier request
                reply = self.read_frame()
            if reply is None:
                self._drain()
                continue
            if reply[0] == reply_kind:
                return reply[1]
            if reply[0] == p.ERROR:
                if reply[1] == bytes([p.NO_MODEL]):
                    raise EstError(f"the board has no whole model (a load was interrupted): "
                                   f"load one (est-run BUILD --load) before {name}")
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
        if ident.ir_hash != ir_hash and ident.core != p.NO_CORE:
            held = ("holds no model" if ident.ir_hash == bytes(p.IR_HASH_BYTES) else
                    f"holds the model with IR hash {ident.ir_hash.hex()}")
            raise EstError(f"the board's core {held}, the build has {ir_hash.hex()}: load "
                           f"it with est-run BUILD --load (no synthesis needed)")
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
                if data[0] == p.NO_MODEL:
                    raise EstError(f"bin {self.bins}: the board has no whole model any more (a "
                                   f"damaged frame was taken for a LOAD): load it again "
                                   f"(est-run BUILD --load) and stream again")
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
        bits; 0/1 spikes for 1) through a dataflow top: the output words."""
        return self.stream(encode_inputs(stimulus, bits), progress)

    def stream(self, words: list[int], progress: Callable[[int], None] | None = None
               ) -> list[int]:
        """Reset, then apply one bin per input word (as :meth:`step` takes it): the output
        words."""
        self.reset()
        out = []
        for word in words:
            out.append(self.step(word))
            if progress is not None:
                progress(1)
        return out

    def load(self, prog, ir_hash: bytes, progress: Callable[[int], None] | None = None
             ) -> p.Ident:
        """Put ``prog`` (a :class:`~est.compiler.program.Program` compiled for the board's
        core, without trace) into a core top at run time: its memory images in LOAD frames of
        up to ``LOAD_WORDS`` words, then MODEL with ``ir_hash``; returns the new IDENT.

        A LOAD writes its words as they arrive, so a damaged header may have written some in
        the wrong place: any rejected, lost or damaged LOAD starts the whole load again (the
        board reports no model until the MODEL at its end), at most ``retries`` times.
        ``progress(n)``: n more words loaded."""
        from est.boards.top import core_ident
        from est.hw.core import MEM_START, load_layout, load_words

        ident = self.identify()
        want = core_ident(prog, ir_hash)
        if ident.core == p.NO_CORE:
            raise EstError("the board runs a dataflow top, which has its model in the "
                           "bitstream: --load needs a board programmed with a core build's "
                           "bitstream (est-compile --backend core, est-synth)")
        if ident.core != want.core:
            raise EstError(f"the board's core is {ident.core.hex()}, the build was compiled for "
                           f"core {want.core.hex()} ({prog.spec.as_dict()}): compile for the "
                           f"board's core (est-compile --backend core --board ...)")
        word_bytes = -(-load_layout(prog.spec).members["data"].width // 8)
        frames = []
        for w in load_words(prog):
            if w["mem"] == MEM_START:
                continue
            last = frames[-1] if frames else None
            if (last and last[0] == w["mem"] and last[1] + len(last[2]) == w["addr"]
                    and len(last[2]) < p.LOAD_WORDS):
                last[2].append(w["data"])
            else:
                frames.append((w["mem"], w["addr"], [w["data"]]))
        for _ in range(self.retries):
            if self._load_frames(frames, word_bytes, progress):
                break
        else:
            raise EstError(f"the load did not get through after {self.retries} attempts: "
                           f"check the line (baud rate, cable)")
        self.ident = p.Ident.parse(self._simple(p.MODEL, p.IDENT, "MODEL",
                                                want.model_payload()))
        self.bins = 0
        if self.ident.ir_hash != ir_hash:
            raise EstError(f"after MODEL the board reports IR hash {self.ident.ir_hash.hex()}, "
                           f"not {ir_hash.hex()}")
        return self.ident

    def _load_frames(self, frames: list, word_bytes: int, progress) -> bool:
        """Send every LOAD frame once; False at the first that does not come back LOADED."""
        for mem, addr, words in frames:
            payload = (bytes([mem]) + addr.to_bytes(2, "little")
                       + b"".join(w.to_bytes(word_bytes, "little") for w in words))
            self._send(p.LOAD, payload)
            reply = self.read_frame()
            if reply != (p.LOADED, bytes([mem]) + (addr + len(words)).to_bytes(2, "little")):
                self._drain()
                return False
            if progress is not None:
                progress(len(words))
        return True
