"""Stream plumbing between the blocks of a compiled network: fork, zip, and vectors to groups."""

from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from est.hw.synapse import ceil_div, current_group_layout


def send_groups(m: Module, i, o, x, groups: int, lanes: int, current) -> None:
    """Take a vector from ``i`` into register ``x``, then offer its ``groups`` groups on ``o``,
    one a cycle, lane ``j`` of group ``g`` carrying ``current(g, j)``, ``last`` on the final one."""
    group = Signal(range(groups))
    busy = Signal()
    m.d.comb += i.ready.eq(~busy)
    with m.If(i.valid & i.ready):
        m.d.sync += [x.eq(i.payload), busy.eq(1), group.eq(0)]
    with m.If(o.valid & o.ready):
        m.d.sync += o.valid.eq(0)
    with m.If(busy & (~o.valid | o.ready)):
        m.d.sync += [o.payload.current[lane].eq(current(group, lane)) for lane in range(lanes)]
        m.d.sync += [o.valid.eq(1), o.payload.last.eq(group == groups - 1), group.eq(group + 1)]
        with m.If(group == groups - 1):
            m.d.sync += busy.eq(0)


class Fork(wiring.Component):
    """One stream in, ``n`` copies out (``o0`` ... ``o<n-1>``), each held until its consumer
    takes it; the next input is taken once every copy has gone.

    Hardware: a payload register and ``n`` valid flags. Latency: one cycle.
    """

    def __init__(self, width: int, n: int):
        self.width, self.n = width, n
        members = {"i": In(stream.Signature(unsigned(width)))}
        members.update({f"o{j}": Out(stream.Signature(unsigned(width))) for j in range(n)})
        super().__init__(members)

    def outputs(self) -> list:
        return [getattr(self, f"o{j}") for j in range(self.n)]

    def elaborate(self, platform):
        m = Module()
        held = Signal(self.width)
        pending = Signal(self.n)
        m.d.comb += self.i.ready.eq(pending == 0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), pending.eq((1 << self.n) - 1)]
        for j, o in enumerate(self.outputs()):
            m.d.comb += [o.valid.eq(pending[j]), o.payload.eq(held)]
            with m.If(o.valid & o.ready):
                m.d.sync += pending[j].eq(0)
        return m


class Zip(wiring.Component):
    """Streams ``i0`` ... ``i<n-1>`` in, one stream of their concatenated payloads out
    (``i0`` in the low bits): a word leaves when every input has one, and takes all of them.

    Hardware: an AND of the valids; no register. Latency: none (combinational).
    """

    def __init__(self, widths: list[int]):
        self.widths = widths
        members = {f"i{j}": In(stream.Signature(unsigned(w))) for j, w in enumerate(widths)}
        members["o"] = Out(stream.Signature(unsigned(sum(widths))))
        super().__init__(members)

    def inputs(self) -> list:
        return [getattr(self, f"i{j}") for j in range(len(self.widths))]

    def elaborate(self, platform):
        m = Module()
        ins = self.inputs()
        all_valid = Cat(*(i.valid for i in ins)).all()
        m.d.comb += [self.o.valid.eq(all_valid), self.o.payload.eq(Cat(*(i.payload for i in ins)))]
        m.d.comb += [i.ready.eq(all_valid & self.o.ready) for i in ins]
        return m


class VectorGroups(wiring.Component):
    """A vector of ``n`` unsigned ``bits``-bit values in, the groups of ``lanes`` currents that
    a neuron array takes out (for neurons fed without synapses, such as SSA's LIF).

    Hardware: a vector register and a group counter. Latency: one cycle per group.
    """

    def __init__(self, n: int, bits: int, lanes: int):
        self.n, self.bits, self.lanes = n, bits, lanes
        self.groups = ceil_div(n, lanes)
        self.acc_bits = bits + 1  # signed, holds every unsigned input
        super().__init__({"i": In(stream.Signature(unsigned(n * bits))),
                          "o": Out(stream.Signature(current_group_layout(lanes,
                                                                         self.acc_bits)))})

    def elaborate(self, platform):
        m = Module()
        x = Signal(self.groups * self.lanes * self.bits)
        send_groups(m, self.i, self.o, x, self.groups, self.lanes, lambda group, lane:
                    x.word_select(group * self.lanes + lane, self.bits).as_unsigned())
        return m
