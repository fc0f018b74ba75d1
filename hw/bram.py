"""A block-RAM memory whose depth is split into power-of-two banks.

A 768-word memory of 16-bit words is three 256 x 16 block RAMs whichever way it is built; as
one Amaranth memory yosys reads it through a three-way multiplexer (two LUT4s a bit), as a
512-word bank and a 256-word bank through a two-way one (one LUT4 a bit), for the same block
RAMs. :class:`BankedMemory` builds the banks (each the largest power of two that is left) and
offers the ports of :class:`amaranth.lib.memory.Memory` that the core uses.

Hardware: one Amaranth memory per bank (block RAM); a read port reads every bank at the low
address bits and selects one with a register of the bank index (the address of the cycle
before); a write port enables the bank its address falls in.

Latency: as a synchronous read port: ``data`` is the word at the ``addr`` of the cycle before
(a write in that cycle is not seen), or, in a cycle whose ``en`` is low, the same ``data``
as the cycle before (the block RAMs' read clock enable). ``en`` of a write port stores
``data`` at ``addr``.
"""

from amaranth import Array, Elaboratable, Module, Shape, Signal
from amaranth.lib import memory


class ReadPort:
    """``addr`` in, ``data`` out a cycle later; ``en`` (high unless driven) low holds
    ``data``."""

    def __init__(self, addr_bits: int, width: int):
        self.addr, self.data, self.en = Signal(addr_bits), Signal(width), Signal(init=1)


class WritePort:
    """``data`` stored at ``addr`` where ``en``."""

    def __init__(self, addr_bits: int, width: int):
        self.addr, self.data, self.en = Signal(addr_bits), Signal(width), Signal()


def banks(depth: int) -> list[tuple[int, int]]:
    """(first address, words) of each bank of a memory of ``depth`` words, largest first."""
    out, base = [], 0
    while base < depth:
        size = 1 << ((depth - base).bit_length() - 1)
        out.append((base, size))
        base += size
    return out


class BankedMemory(Elaboratable):
    """``depth`` words of ``shape`` in power-of-two banks (see the module docstring);
    ``init``: initial contents (the rest zero); ``attrs``: given to each bank's memory."""

    def __init__(self, shape, depth: int, init=(), attrs: dict | None = None):
        self.width, self.depth = Shape.cast(shape).width, depth
        self.shape, self.attrs = shape, attrs or {}
        self.init = list(init) + [0] * (depth - len(init))
        self.addr_bits = max(1, (depth - 1).bit_length())
        self._reads, self._writes = [], []

    def read_port(self) -> ReadPort:
        port = ReadPort(self.addr_bits, self.width)
        self._reads.append(port)
        return port

    def write_port(self) -> WritePort:
        port = WritePort(self.addr_bits, self.width)
        self._writes.append(port)
        return port

    def elaborate(self, platform):
        m = Module()
        layout = banks(self.depth)
        stores = []
        for base, size in layout:
            m.submodules[f"bank{base}"] = store = memory.Memory(
                shape=self.shape, depth=size, init=self.init[base:base + size], attrs=self.attrs)
            stores.append(store)

        def low(addr, size):
            return addr[:max(1, (size - 1).bit_length())]

        for port in self._reads:
            outputs = []
            for (_, size), store in zip(layout, stores, strict=True):
                rd = store.read_port()
                m.d.comb += [rd.addr.eq(low(port.addr, size)), rd.en.eq(port.en)]
                outputs.append(rd.data)
            if len(layout) == 1:
                m.d.comb += port.data.eq(outputs[0])
                continue
            which = Signal(range(len(layout)))
            for k, (base, size) in enumerate(layout):
                with m.If(port.en & (port.addr >= base) & (port.addr < base + size)):
                    m.d.sync += which.eq(k)
            m.d.comb += port.data.eq(Array(outputs)[which])
        for port in self._writes:
            for (base, size), store in zip(layout, stores, strict=True):
                wr = store.write_port()
                inside = (port.addr >= base) & (port.addr < base + size)
                m.d.comb += [wr.addr.eq(low(port.addr, size)), wr.data.eq(port.data),
                             wr.en.eq(port.en & inside)]
        return m
