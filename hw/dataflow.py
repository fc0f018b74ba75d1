"""The dataflow backend: a graph's operations as gateware, one component (or a few) per node,
chained by streams, one bin in flight. Every node is lowered by its own operation (``Op.lower``);
this module only wires them into the output word (:class:`DataflowTop`).
"""

from typing import NamedTuple

import numpy as np
from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from est import EstError
from est.compiler.graph import Graph, Spec
from est.hw.streams import Fork, VectorGroups
from est.sim.amaranth_sim import simulate_top


class Port(NamedTuple):
    """A node's output: a stream (flat unsigned vectors, or current groups) and its spec."""

    stream: object
    spec: Spec


class Lowered(NamedTuple):
    """What a lowering returns: the output port and, per traced tensor name (without the node
    prefix), the stream whose handshake carries it and its value."""

    out: Port
    taps: dict


class Builder:
    """Passed to every ``Op.lower``: the module, the lanes, and the wiring helpers."""

    def __init__(self, m: Module, lanes: int, trace: bool, state_in_logic: bool):
        self.m, self.lanes, self.trace, self.state_in_logic = m, lanes, trace, state_in_logic

    def add(self, name: str, component):
        self.m.submodules[name.replace(".", "_")] = component
        return component

    def connect(self, src, dst) -> None:
        wiring.connect(self.m, src, dst)

    def port(self, src, spec: Spec) -> Port:
        return Port(src, spec)

    def lowered(self, out: Port, taps: dict | None = None) -> Lowered:
        return Lowered(out, taps or {})

    def flat(self, src, value, spec: Spec) -> Port:
        """A stream of ``value`` (flat bits) with ``src``'s handshake."""
        out = stream.Signature(unsigned(spec.n * spec.bits)).create()
        self.m.d.comb += [out.valid.eq(src.valid), out.payload.eq(value),
                          src.ready.eq(out.ready)]
        return Port(out, spec)

    def groups(self, name: str, src: Port):
        """A neuron array's input from ``src``: its current groups as they are, or a vector cut
        into groups (:class:`~est.hw.streams.VectorGroups`). Returns (stream, current bits)."""
        if src.spec.form == "current":
            return src.stream, src.spec.bits
        vg = self.add(f"{name}_groups", VectorGroups(src.spec.n, src.spec.bits, self.lanes))
        self.connect(src.stream, vg.i)
        return vg.o, vg.acc_bits

    def neuron_outputs(self, o, n: int, v_bits: int) -> Lowered:
        """A LIF array's output: a port of its spikes; taps of spikes and membranes."""
        taps = {"spikes": (o, o.payload.spikes)}
        if self.trace:
            taps["v"] = (o, o.payload.v.as_value())
            if "i" in o.payload.shape().members:  # a current-based array's synaptic currents
                taps["i"] = (o, o.payload.i.as_value())
        return Lowered(self.flat(o, o.payload.spikes, Spec(n, 1)), taps)


def unsupported(graph: Graph) -> str | None:
    """Why the dataflow top cannot build ``graph`` (None: it can): it drives one output node,
    and has no oscillator readout."""
    if len(graph.outputs) > 1:
        return (f"the dataflow top drives one output node, this network has "
                f"{len(graph.outputs)} ({', '.join(graph.outputs)})")
    for node in graph.nodes:
        if getattr(node.op, "rotate_shift", None) is not None:
            return f"node '{node.name}': the dataflow top has no oscillator readout"
    return None


class DataflowTop(wiring.Component):
    """A graph as a dataflow design: input vector in, the output word out, once per bin.

    Hardware: the components of every node (see each operation's module) in node order, a
    :class:`~est.hw.streams.Fork` wherever a vector has several consumers, and with ``trace``
    one register per exposed tensor, loaded as its stream hands the bin on. Every convolution
    and neuron array takes ``lanes`` neurons per cycle; membranes in block RAM, or with
    ``state_in_logic`` in flip-flops. One bin is in flight: ``i`` is ready again once the
    output word has been taken, so the trace registers are stable while ``o`` is valid.

    Latency: the stages' latencies in sequence along the longest path (:func:`measure_cycles`).

    Ports: ``i`` stream of ``n_in * bits`` input vectors; ``o`` stream of the output word,
    fields as :attr:`fields` (``(tensor, channels, bits, signed)``, low bits first).
    """

    def __init__(self, graph: Graph, lanes: int, trace: bool = True,
                 state_in_logic: bool = False):
        why = unsupported(graph)
        if why:
            raise EstError(f"{why}: use --backend core")
        self.graph, self.lanes, self.trace = graph, lanes, trace
        self.state_in_logic = state_in_logic
        self.fields = graph.output_fields(trace)
        spec = graph.nodes[0].op
        width = sum(n * bits for _, n, bits, _ in self.fields)
        super().__init__({"i": In(stream.Signature(unsigned(spec.n * spec.bits))),
                          "o": Out(stream.Signature(unsigned(width)))})

    def elaborate(self, platform):
        m = Module()
        graph = self.graph
        b = Builder(m, self.lanes, self.trace, self.state_in_logic)
        busy = Signal()
        specs = graph.specs()
        source = stream.Signature(self.i.payload.shape()).create()
        m.d.comb += [source.valid.eq(self.i.valid & ~busy), source.payload.eq(self.i.payload),
                     self.i.ready.eq(source.ready & ~busy)]
        consumers = graph.consumers()
        copies: dict[str, list] = {}
        taps: dict[str, tuple] = {}
        for node in graph.nodes:
            ins = [Port(copies[i].pop(0), specs[i]) for i in node.inputs]
            if node is graph.nodes[0]:  # the input node
                ins = [Port(source, specs[node.name])]
            low = node.op.lower(b, node.name, ins)
            taps.update({f"{node.name}/{key}": tap for key, tap in low.taps.items()})
            users = len(consumers[node.name])
            if users > 1:
                fork = b.add(f"{node.name}_fork", Fork(low.out.spec.n * low.out.spec.bits, users))
                b.connect(low.out.stream, fork.i)
                copies[node.name] = fork.outputs()
            else:
                copies[node.name] = [low.out.stream]
        sink = copies[graph.outputs[0]][0]
        head, *rest = self.fields
        words = [taps[head[0]][1]]
        for name, n, bits, _ in rest:
            src, value = taps[name]
            if src is taps[head[0]][0]:  # the output node's own tensor (a spiking output's
                # membranes): handed on with the output word itself, held while it stalls
                words.append(value)
                continue
            reg = Signal(n * bits, name=name.replace(".", "_").replace("/", "__"))
            # a tap loads only while no output word is offered (in a run, every tensor of a bin
            # has passed before its word is): the word then holds while the sink stalls, in
            # every state, which is what makes the formal stream check inductive
            with m.If(src.valid & src.ready & ~sink.valid):
                m.d.sync += reg.eq(value)
            words.append(reg)
        m.d.comb += [self.o.valid.eq(sink.valid), sink.ready.eq(self.o.ready),
                     self.o.payload.eq(Cat(*words))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += busy.eq(1)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += busy.eq(0)
        return m


def to_verilog(graph: Graph, lanes: int, trace: bool = True) -> str:
    """Verilog of :class:`DataflowTop` through Amaranth's back end (yosys: see est.toolenv)."""
    from amaranth.back import verilog

    return verilog.convert(DataflowTop(graph, lanes, trace), name="top", emit_src=False)


def measure_cycles(graph: Graph, lanes: int, bins: int = 2) -> int:
    """Cycles per bin of :class:`DataflowTop` (``trace`` off, no stalls) measured in
    amaranth.sim: the schedule is dense, so every bin takes the same number of cycles."""
    dut = DataflowTop(graph, lanes, trace=False)
    return int(max(simulate_top(dut, np.zeros((bins, graph.n_in), np.int64)).latency_cycles))
