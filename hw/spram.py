"""A single-port memory: the iCE40 UP5K's SPRAMs, or a generic memory elsewhere.

Hardware: with ``spram``, ``ceil(width / 16) x ceil(depth / 16384)`` SB_SPRAM256KA blocks
(16 bits x 16,384 words each, no initial contents: written at run time), side by side for the
width and selected by the high address bits for the depth; otherwise one Amaranth memory with
a read and a write port on the same address (block RAM, or what the platform infers).

Latency: ``rdata`` is the word at the address of the cycle before (as a synchronous read port);
a write cycle (``we``) stores ``wdata`` and reads nothing useful.
"""

from amaranth import Cat, ClockSignal, Instance, Module, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

SPRAM_WIDTH, SPRAM_DEPTH = 16, 16384


class SinglePortMemory(wiring.Component):
    """``depth`` words of ``width`` bits, one access a cycle (see the module docstring)."""

    def __init__(self, width: int, depth: int, spram: bool = False, init: list | None = None):
        if spram and init:
            raise ValueError("SPRAM has no initial contents: load the words at run time")
        self.width, self.depth, self.spram, self.init = width, depth, spram, init or []
        abits = max(1, (depth - 1).bit_length())
        super().__init__({"addr": In(abits), "wdata": In(width), "we": In(1),
                          "rdata": Out(width)})

    def elaborate(self, platform):
        m = Module()
        if not self.spram:
            m.submodules.mem = mem = memory.Memory(shape=unsigned(self.width), depth=self.depth,
                                                   init=self.init)
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [rd.addr.eq(self.addr), wr.addr.eq(self.addr), wr.data.eq(self.wdata),
                         wr.en.eq(self.we), self.rdata.eq(rd.data)]
            return m
        columns = -(-self.width // SPRAM_WIDTH)
        banks = -(-self.depth // SPRAM_DEPTH)
        bank = Signal(range(banks)) if banks > 1 else None
        low = self.addr[:14]
        outputs = []
        for b in range(banks):
            words = []
            select = (self.addr[14:] == b) if banks > 1 else 1
            for c in range(columns):
                out = Signal(SPRAM_WIDTH, name=f"spram_{b}_{c}_out")
                data = Signal(SPRAM_WIDTH, name=f"spram_{b}_{c}_in")
                m.d.comb += data.eq(self.wdata[c * SPRAM_WIDTH:(c + 1) * SPRAM_WIDTH])
                m.submodules[f"spram_{b}_{c}"] = Instance(
                    "SB_SPRAM256KA", i_ADDRESS=low, i_DATAIN=data, i_MASKWREN=0b1111,
                    i_WREN=self.we & select, i_CHIPSELECT=1, i_CLOCK=ClockSignal(),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=out)
                words.append(out)
            outputs.append(Cat(*words)[:self.width])
        if banks > 1:
            m.d.sync += bank.eq(self.addr[14:])
            with m.Switch(bank):
                for b in range(banks):
                    with m.Case(b):
                        m.d.comb += self.rdata.eq(outputs[b])
        else:
            m.d.comb += self.rdata.eq(outputs[0])
        return m
