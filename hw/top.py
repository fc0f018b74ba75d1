"""The network top: input spike stream in, readout values (and optional traces) out."""

from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from est.compiler.ir import DenseLIF, Network
from est.hw.neurons import LIFArray, ReadoutIntegrator
from est.hw.synapse import SynapticAccumulator


def output_fields(net: Network, trace: bool) -> list[tuple[str, int, int, bool]]:
    """The top's output word, low bits first: ``(tensor, channels, bits, signed)`` per field.

    Always the readout values (``<readout>/v``); with ``trace``, for each LIF layer in order its
    spikes (``<name>/spikes``, 1 bit each) then its membranes (``<name>/v``).
    """
    readout = net.layers[-1]
    fields = [(f"{readout.name}/v", readout.n_out, readout.v_bits, True)]
    if trace:
        for layer in net.layers[:-1]:
            fields.append((f"{layer.name}/spikes", layer.n_out, 1, False))
            fields.append((f"{layer.name}/v", layer.n_out, layer.v_bits, True))
    return fields


def output_width(net: Network, trace: bool) -> int:
    return sum(n * bits for _, n, bits, _ in output_fields(net, trace))


class NetworkTop(wiring.Component):
    """A compiled network: one input spike vector per bin in, one output word per bin out.

    Hardware: per layer a :class:`SynapticAccumulator` feeding a :class:`LIFArray` (or, last, a
    :class:`ReadoutIntegrator`), chained by streams; ``lanes`` neurons update in parallel in
    every layer. One bin is in flight at a time: ``i`` is ready again once the bin's output has
    been taken, so the trace registers are stable while ``o`` is valid.

    Latency per bin: ``sum over layers of`` :func:`layer_cycles` cycles from accepting the
    input to offering the output, when ``o`` does not stall (:func:`cycles_per_bin`; the tests
    measure it). The first bin after reset also waits for the neuron state to be cleared.

    Ports: ``i`` stream of ``n_in``-bit spike vectors; ``o`` stream of the flat output word
    described by :func:`output_fields`.
    """

    def __init__(self, net: Network, trace: bool = False):
        self.net, self.trace = net, trace
        super().__init__({
            "i": In(stream.Signature(unsigned(net.n_in))),
            "o": Out(stream.Signature(unsigned(output_width(net, trace)))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.net.lanes
        busy = Signal()
        upstream = self.i
        traced = []
        for layer in self.net.layers:
            syn = SynapticAccumulator(layer.weight, layer.bias, lanes, layer.acc_bits,
                                      layer.weight_bits)
            if isinstance(layer, DenseLIF):
                neurons = LIFArray(layer.n_out, lanes, layer.acc_bits, layer.v_bits,
                                   layer.leak_shift, layer.threshold, layer.reset,
                                   trace=self.trace)
            else:
                neurons = ReadoutIntegrator(layer.n_out, lanes, layer.acc_bits, layer.v_bits,
                                            layer.leak_shift)
            m.submodules[f"{layer.name}_syn"] = syn
            m.submodules[f"{layer.name}_neurons"] = neurons
            if upstream is self.i:
                m.d.comb += [syn.i.valid.eq(self.i.valid & ~busy), syn.i.payload.eq(self.i.payload),
                             self.i.ready.eq(syn.i.ready & ~busy)]
            else:
                m.d.comb += [syn.i.valid.eq(upstream.valid),
                             syn.i.payload.eq(upstream.payload.spikes),
                             upstream.ready.eq(syn.i.ready)]
                if self.trace:
                    spikes = Signal(upstream.payload.spikes.shape(), name=f"{layer.name}_in_spikes")
                    values = Signal(len(upstream.payload.v.as_value()), name=f"{layer.name}_in_v")
                    with m.If(upstream.valid & upstream.ready):
                        m.d.sync += [spikes.eq(upstream.payload.spikes),
                                     values.eq(upstream.payload.v.as_value())]
                    traced += [spikes, values]
            wiring.connect(m, syn.o, neurons.i)
            upstream = neurons.o
        m.d.comb += [self.o.valid.eq(upstream.valid), upstream.ready.eq(self.o.ready),
                     self.o.payload.eq(Cat(upstream.payload.v.as_value(), *traced))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += busy.eq(1)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += busy.eq(0)
        return m


def layer_cycles(n_in: int, n_out: int, lanes: int) -> int:
    """Cycles one layer of :class:`NetworkTop` spends on a bin: ``n_in`` per group of ``lanes``
    neurons (at least 2: the neurons take a group in two cycles) for all groups but the last,
    ``n_in`` for the last, and 3 to fill the ROM pipeline and hand the result on."""
    return (-(-n_out // lanes) - 1) * max(n_in, 2) + n_in + 3


def cycles_per_bin(net: Network) -> int:
    """Cycles from accepting a bin to offering its output when ``o`` never stalls (exact)."""
    return sum(layer_cycles(layer.n_in, layer.n_out, net.lanes) for layer in net.layers)


def to_verilog(net: Network, trace: bool = False, name: str = "top") -> str:
    """Verilog of :class:`NetworkTop` through Amaranth's back end (yosys: see est.toolenv)."""
    from amaranth.back import verilog

    return verilog.convert(NetworkTop(net, trace), name=name, emit_src=False)
