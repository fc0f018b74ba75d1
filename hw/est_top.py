"""The compiled Enhanced Spiking Transformer: every block of the EST IR as gateware, one bin in
flight, and every tensor of the golden trace on the output word (docs/semantics.md 8.3)."""

import numpy as np
from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from est.compiler.est_ir import LIF, Conv, ESTNetwork
from est.hw.attention import SpikeAttention
from est.hw.conv import CausalConv
from est.hw.lfsr import SpikeMask
from est.hw.neurons import LIFArray, ReadoutIntegrator
from est.hw.sew import CPGTable, SEWJoin
from est.hw.streams import Fork, VectorGroups, Zip
from est.hw.tpu import TemporalUnit
from est.sim.golden import sew_bits, signed_bits


def weight_bits(w: np.ndarray) -> int:
    return signed_bits(min(int(w.min()), 0), max(int(w.max()), 0)) if w.size else 2


def est_output_fields(net: ESTNetwork, trace: bool = True) -> list[tuple[str, int, int, bool]]:
    """The output word of :class:`ESTTop`, low bits first: ``(tensor, channels, bits, signed)``;
    ``readout/v`` first, then with ``trace`` every tensor of the golden trace in bin order."""
    d = net.d_model
    fields = [("readout/v", net.n_out, net.readout_bits, True)]
    if not trace:
        return fields

    def lif(name: str, v_bits: int) -> None:
        fields.extend([(f"{name}/spikes", d, 1, False), (f"{name}/v", d, v_bits, True)])

    lif("embed", net.embed_lif.v_bits)
    s_bits = 1
    for i, blk in enumerate(net.blocks):
        p = f"b{i}"

        def sew(name: str, bits: int, op: str = blk.sew, p: str = p) -> int:
            out = sew_bits(op, bits) if op != "none" else 1
            fields.append((f"{p}.{name}/values", d, out, False))
            return out

        if blk.attention != "none":
            for n in "qkv":
                lif(f"{p}.{n}", getattr(blk, f"{n}_lif").v_bits)
            if blk.attention == "sdsa":
                fields.append((f"{p}.attn/spikes", d, 1, False))
            else:
                lif(f"{p}.attn", blk.attn_lif.v_bits)
            lif(f"{p}.proj", blk.proj_lif.v_bits)
            s_bits = sew("res1", s_bits)
        if blk.tpu is not None:
            lif(f"{p}.tpu", blk.tpu.lif.v_bits)
            s_bits = sew("res2", s_bits)
        fields.extend([(f"{p}.mlp1/spikes", blk.mlp1.weight.shape[1], 1, False),
                       (f"{p}.mlp1/v", blk.mlp1.weight.shape[1], blk.mlp1_lif.v_bits, True)])
        lif(f"{p}.mlp2", blk.mlp2_lif.v_bits)
        s_bits = sew("out", s_bits)
    return fields


class _Builder:
    """Creates the submodules of :class:`ESTTop` in bin order and records the trace fields."""

    def __init__(self, m: Module, lanes: int, trace: bool, state_in_logic: bool):
        self.m, self.lanes, self.trace, self.state_in_logic = m, lanes, trace, state_in_logic
        self.fields: list[tuple[str, int, int, bool]] = []
        self.taps: list[Signal] = []
        self.count = 0

    def add(self, name: str, component):
        self.count += 1
        self.m.submodules[f"{name.replace('.', '_').replace('/', '_')}_{self.count}"] = component
        return component

    def tap(self, name: str, port, value, n: int, bits: int, is_signed: bool) -> None:
        """Record ``value`` (``n`` fields of ``bits``) as trace tensor ``name`` whenever a word
        passes on stream ``port`` (nothing without ``trace``)."""
        if not self.trace:
            return
        reg = Signal(n * bits, name=name.replace(".", "_").replace("/", "__"))
        with self.m.If(port.valid & port.ready):
            self.m.d.sync += reg.eq(value)
        self.fields.append((name, n, bits, is_signed))
        self.taps.append(reg)

    def conv_lif(self, name: str, src, conv: Conv, lif: LIF, x_bits: int, extra=None):
        """``src`` (a stream of ``x_bits`` fields) through a causal conv and a LIF array;
        returns the LIF's output stream (spikes, membranes) after tapping both."""
        weight, bias = conv.weight.astype(np.int64), conv.bias.astype(np.int64)
        if extra is not None:  # CPG: more inputs at lag 0 only
            more = np.zeros((weight.shape[0], weight.shape[1], extra.shape[1]), np.int64)
            more[0] = extra
            weight = np.concatenate([weight, more], axis=2)
        wb = max(weight_bits(weight), 2)
        c = self.add(f"{name}_conv", CausalConv(weight, bias, self.lanes, wb, x_bits))
        n = weight.shape[1]
        neurons = self.add(f"{name}_lif", LIFArray(n, self.lanes, c.acc_bits, lif.v_bits,
                                                   lif.leak_shift, lif.threshold.astype(np.int64),
                                                   lif.reset, trace=True,
                                                   state_in_logic=self.state_in_logic))
        wiring.connect(self.m, src, c.i)
        wiring.connect(self.m, c.o, neurons.i)
        return self.neuron_out(name, neurons, n, lif.v_bits)

    def neuron_out(self, name: str, neurons, n: int, v_bits: int):
        """Tap a LIF array's spikes and membranes; return a stream of its spikes."""
        out = neurons.o
        self.tap(f"{name}/spikes", out, out.payload.spikes, n, 1, False)
        self.tap(f"{name}/v", out, out.payload.v.as_value(), n, v_bits, True)
        spikes = stream.Signature(unsigned(n)).create()
        self.m.d.comb += [spikes.valid.eq(out.valid), spikes.payload.eq(out.payload.spikes),
                          out.ready.eq(spikes.ready)]
        return spikes

    def fork(self, name: str, src, width: int, n: int) -> list:
        f = self.add(f"{name}_fork", Fork(width, n))
        wiring.connect(self.m, src, f.i)
        return f.outputs()

    def sew(self, name: str, out, skip, n: int, op: str, skip_bits: int):
        """SEW of spikes ``out`` with ``skip``; returns (stream, bits) of the result, tapped as
        ``name/values``."""
        join = self.add(f"{name}_sew", SEWJoin(n, op, skip_bits if op == "add" else 1))
        wiring.connect(self.m, out, join.out)
        if op == "none":  # the skip copy is taken with the branch output and dropped
            self.m.d.comb += [join.skip.valid.eq(skip.valid), skip.ready.eq(join.skip.ready)]
        else:
            wiring.connect(self.m, skip, join.skip)
        bits = join.out_bits
        self.tap(f"{name}/values", join.o, join.o.payload.as_value(), n, bits, False)
        result = stream.Signature(unsigned(n * bits)).create()
        self.m.d.comb += [result.valid.eq(join.o.valid),
                          result.payload.eq(join.o.payload.as_value()),
                          join.o.ready.eq(result.ready)]
        return result, bits


class ESTTop(wiring.Component):
    """The EST of an IR: input spike vector in, the readout values (and, with ``trace``, every
    tensor of the golden trace) out.

    Hardware, in bin order: the embedding (causal conv over ``[x, CPG row]``, the CPG table as a
    ROM), per block the spike mask (LFSR), Q/K/V convolutions and LIF arrays, spike attention
    (SDSA, or SSA with its LIF array), the projection, SEW joins, the TPU, the two MLP layers,
    and the readout integrator; forks copy a vector to every consumer. Every convolution and
    neuron array takes ``lanes`` neurons per cycle; weights are in block RAM, thresholds in
    logic, membranes in block RAM or, with ``state_in_logic``, in flip-flops (for boards with
    fewer block RAMs than the EST has neuron arrays; ``est-synth`` chooses by the board's
    budget, :func:`est.boards.spec.est_memory_plan`). One bin is in flight: ``i`` is ready
    again once the output word has been taken.

    Latency: the sum of the stages' latencies (each convolution ``groups * K n_in`` cycles
    and a few more, see :mod:`est.compiler.est_report`; the mask ``ceil(n / lanes)``,
    attention and SEW one cycle each); measured by the tests and the bench.

    Ports: ``i`` stream of ``n_in``-bit spike vectors; ``o`` stream of the output word, fields
    as :attr:`fields` (``(tensor, channels, bits, signed)``, low bits first), the readout's
    ``readout/v`` first.
    """

    def __init__(self, net: ESTNetwork, lanes: int, trace: bool = True,
                 state_in_logic: bool = True):
        self.net, self.lanes, self.trace = net, lanes, trace
        self.state_in_logic = state_in_logic
        self.fields = est_output_fields(net, trace)
        width = sum(n * bits for _, n, bits, _ in self.fields)
        super().__init__({"i": In(stream.Signature(unsigned(net.n_in))),
                          "o": Out(stream.Signature(unsigned(width)))})

    def _build(self, m: Module, source, sink) -> None:
        net, lanes, d = self.net, self.lanes, self.net.d_model
        b = _Builder(m, lanes, self.trace, self.state_in_logic)
        x = source
        if net.cpg_table is not None:
            cpg = b.add("cpg", CPGTable(net.cpg_table))
            zipped = b.add("embed_in", Zip([net.n_in, net.cpg_table.shape[1]]))
            wiring.connect(m, x, zipped.i0)
            wiring.connect(m, cpg.o, zipped.i1)
            x = zipped.o
        s = b.conv_lif("embed", x, net.embed, net.embed_lif, 1,
                       None if net.cpg_table is None else net.cpg_weight.astype(np.int64))
        s_bits = 1
        for i, blk in enumerate(net.blocks):
            p = f"b{i}"
            if blk.attention != "none":
                to_mask, skip = b.fork(f"{p}.in", s, d * s_bits, 2)
                mask = b.add(f"{p}_mask", SpikeMask(d, blk.mask_threshold, blk.mask_seed,
                                                    lanes, s_bits))
                wiring.connect(m, to_mask, mask.i)
                qkv_in = b.fork(f"{p}.masked", mask.o, d * s_bits, 3)
                qkv = [b.conv_lif(f"{p}.{n}", src, getattr(blk, n), getattr(blk, f"{n}_lif"),
                                  s_bits) for n, src in zip("qkv", qkv_in, strict=True)]
                attn = b.add(f"{p}_attn", SpikeAttention(d, blk.window, blk.attention, blk.heads,
                                                         blk.count_threshold))
                zipped = b.add(f"{p}_qkv", Zip([d, d, d]))
                for src, dst in zip(qkv, zipped.inputs(), strict=True):
                    wiring.connect(m, src, dst)
                m.d.comb += [attn.i.valid.eq(zipped.o.valid),
                             attn.i.payload.as_value().eq(zipped.o.payload),
                             zipped.o.ready.eq(attn.i.ready)]
                if blk.attention == "sdsa":
                    b.tap(f"{p}.attn/spikes", attn.o, attn.o.payload, d, 1, False)
                    a = attn.o
                else:
                    groups = b.add(f"{p}_attn_groups", VectorGroups(d, attn.out_bits, lanes))
                    m.d.comb += [groups.i.valid.eq(attn.o.valid),
                                 groups.i.payload.eq(attn.o.payload.as_value()),
                                 attn.o.ready.eq(groups.i.ready)]
                    lif = blk.attn_lif
                    neurons = b.add(f"{p}_attn_lif", LIFArray(
                        d, lanes, groups.acc_bits, lif.v_bits, lif.leak_shift,
                        lif.threshold.astype(np.int64), lif.reset, trace=True,
                        state_in_logic=b.state_in_logic))
                    wiring.connect(m, groups.o, neurons.i)
                    a = b.neuron_out(f"{p}.attn", neurons, d, lif.v_bits)
                o = b.conv_lif(f"{p}.proj", a, blk.proj, blk.proj_lif, 1)
                s, s_bits = b.sew(f"{p}.res1", o, skip, d, blk.sew, s_bits)
            if blk.tpu is not None:
                to_tpu, skip = b.fork(f"{p}.r1", s, d * s_bits, 2)
                t = blk.tpu
                unit = b.add(f"{p}_tpu", TemporalUnit(
                    t.w_in.astype(np.int64), t.w_rec.astype(np.int64), t.bias.astype(np.int64),
                    lanes, s_bits, t.lif.v_bits, t.lif.leak_shift,
                    t.lif.threshold.astype(np.int64), t.lif.reset, trace=True,
                    state_in_logic=b.state_in_logic))
                wiring.connect(m, to_tpu, unit.i)
                y = b.neuron_out(f"{p}.tpu", unit, d, t.lif.v_bits)
                s, s_bits = b.sew(f"{p}.res2", y, skip, d, blk.sew, s_bits)
            to_mlp, skip = b.fork(f"{p}.r2", s, d * s_bits, 2)
            h = b.conv_lif(f"{p}.mlp1", to_mlp, blk.mlp1, blk.mlp1_lif, s_bits)
            u = b.conv_lif(f"{p}.mlp2", h, blk.mlp2, blk.mlp2_lif, 1)
            s, s_bits = b.sew(f"{p}.out", u, skip, d, blk.sew, s_bits)
        w = net.readout.weight.astype(np.int64)
        conv = b.add("readout_conv", CausalConv(w, net.readout.bias.astype(np.int64), lanes,
                                                max(weight_bits(w), 2), s_bits))
        readout = b.add("readout", ReadoutIntegrator(net.n_out, lanes, conv.acc_bits,
                                                     net.readout_bits, net.readout_leak_shift,
                                                     state_in_logic=b.state_in_logic))
        wiring.connect(m, s, conv.i)
        wiring.connect(m, conv.o, readout.i)
        fields = [("readout/v", net.n_out, net.readout_bits, True)] + b.fields
        if fields != self.fields:
            raise AssertionError(f"ESTTop built {fields}, est_output_fields says {self.fields}")
        m.d.comb += [sink.valid.eq(readout.o.valid), readout.o.ready.eq(sink.ready),
                     sink.payload.eq(Cat(readout.o.payload.v.as_value(), *b.taps))]

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        source = stream.Signature(unsigned(self.net.n_in)).create()
        m.d.comb += [source.valid.eq(self.i.valid & ~busy), source.payload.eq(self.i.payload),
                     self.i.ready.eq(source.ready & ~busy)]
        sink = stream.Signature(self.o.payload.shape()).flip().create()
        self._build(m, source, sink)
        m.d.comb += [self.o.valid.eq(sink.valid), self.o.payload.eq(sink.payload),
                     sink.ready.eq(self.o.ready)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += busy.eq(1)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += busy.eq(0)
        return m


def est_to_verilog(net: ESTNetwork, lanes: int, trace: bool = True, name: str = "top") -> str:
    """Verilog of :class:`ESTTop` through Amaranth's back end (yosys: see est.toolenv)."""
    from amaranth.back import verilog

    return verilog.convert(ESTTop(net, lanes, trace), name=name, emit_src=False)


def measure_cycles(net: ESTNetwork, lanes: int, bins: int = 2) -> int:
    """Cycles per bin of :class:`ESTTop` (``trace`` off, no stalls) measured in amaranth.sim:
    the schedule is dense, so every bin takes the same number of cycles."""
    from est.sim.amaranth_sim import simulate_top

    dut = ESTTop(net, lanes, trace=False)
    run = simulate_top(dut, dut.fields, np.zeros((bins, net.n_in), np.int64))
    return int(max(run.latency_cycles))


def est_cycles_bound(net: ESTNetwork, lanes: int) -> int:
    """An upper bound on the cycles of one bin in :class:`ESTTop` when ``o`` never stalls: every
    convolution ``groups * (K * n_in + 2) + 4``, every other stage ``ceil(n / lanes) + 4``
    (the stages of a bin run one after another). The simulation measures the real figure."""
    d = net.d_model

    def conv(c: Conv, extra: int = 0) -> int:
        k, n_out, n_in = c.weight.shape
        return -(-n_out // lanes) * (k * (n_in + extra) + 2) + 4

    other = -(-max(d, net.n_out) // lanes) + 4
    total = conv(net.embed, 0 if net.cpg_table is None else net.cpg_table.shape[1]) + other
    for blk in net.blocks:
        total += conv(blk.mlp1) + conv(blk.mlp2) + 4 * other
        if blk.attention != "none":
            total += sum(conv(getattr(blk, n)) for n in ("q", "k", "v", "proj")) + 6 * other
        if blk.tpu is not None:
            total += 3 * other
    return total + conv(net.readout) + other
