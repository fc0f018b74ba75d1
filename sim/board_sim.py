"""A board in simulation behind a serial-port interface: the host library talks to the RTL.

:class:`SimulatedSerial` has the part of pyserial's ``Serial`` that :mod:`est.boards.host`
uses (``write``, ``read`` with a timeout, ``reset_input_buffer``, ``close``). Behind it,
a board top's bridge (:class:`est.boards.top.FrameBridge` around a compiled network, or
:class:`est.boards.top.CoreBridge` around the core) runs in amaranth.sim: written
bytes go onto its ``rx`` line bit by bit (8N1) and its ``tx`` line is decoded back into bytes,
so the UART, the frame parser, the core and the reply framer are all exercised.
"""

from collections import deque

from amaranth.sim import Simulator

PERIOD = 1e-6  # simulated seconds per clock cycle (any value: only cycles matter)


class SimulatedSerial:
    """A pyserial-like port whose far end is a board top's bridge in amaranth.sim."""

    def __init__(self, make_bridge, divisor: int = 4, frame_timeout_bits: int = 40,
                 read_timeout_cycles: int | None = None):
        """``make_bridge(divisor, timeout_cycles)``: the bridge
        (:func:`est.boards.top.board_bridge`); ``divisor``: clock cycles per UART bit;
        ``frame_timeout_bits``: the bridge's idle time (in bit times) before it answers a
        truncated frame; ``read_timeout_cycles``: how long ``read`` waits (default: the frame
        timeout plus a generous bin time)."""
        self.divisor = divisor
        self.dut = make_bridge(divisor, frame_timeout_bits * divisor)
        self.read_timeout_cycles = read_timeout_cycles or (
            4 * frame_timeout_bits * divisor + 200_000)
        self._to_board: deque[int] = deque()
        self._from_board = bytearray()
        self._cycle = 0
        self.sim = Simulator(self.dut)
        self.sim.add_clock(PERIOD)
        self.sim.add_testbench(self._drive, background=True)
        self.sim.add_testbench(self._listen, background=True)

    async def _drive(self, ctx):
        ctx.set(self.dut.rx, 1)
        while True:
            if not self._to_board:
                await ctx.tick()
                continue
            byte = self._to_board.popleft()
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                ctx.set(self.dut.rx, bit)
                await ctx.tick().repeat(self.divisor)

    async def _listen(self, ctx):
        while True:
            await ctx.tick()
            if ctx.get(self.dut.tx) == 0:  # start bit: sample each data bit in its middle
                await ctx.tick().repeat(self.divisor + self.divisor // 2)
                byte = 0
                for i in range(8):
                    byte |= ctx.get(self.dut.tx) << i
                    await ctx.tick().repeat(self.divisor)
                self._from_board.append(byte)

    def write(self, data: bytes) -> int:
        self._to_board.extend(data)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes: fewer if the board sends nothing more within the timeout."""
        deadline = self._cycle + self.read_timeout_cycles
        while len(self._from_board) < size and self._cycle < deadline:
            self._cycle += 10 * self.divisor  # a byte time
            self.sim.run_until(self._cycle * PERIOD)
        data = bytes(self._from_board[:size])
        del self._from_board[:size]
        return data

    def reset_input_buffer(self) -> None:
        self._from_board.clear()

    def close(self) -> None:
        self._to_board.clear()
