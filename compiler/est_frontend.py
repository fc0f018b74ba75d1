"""The EST front end: a float :class:`est.sw.est.EST` -> an integer graph.

The EST's structure (docs/semantics.md 8.3) is written here once, in :func:`est_graph`; a part
that is switched off is absent from the graph, SEW ``none`` joins nothing. The checkpoint
becomes a float graph (:func:`est_float_graph`, docs/semantics.md 8.4: SSA's ``ssa_scale``
folded into its LIF's threshold, the CPG projection as the embedding convolution's extra input
columns at lag 0), and :func:`quantize_est` runs the passes of :mod:`est.compiler.passes` on it.
"""

from dataclasses import dataclass

import numpy as np
import torch

from est import EstError
from est.compiler.graph import Graph, GraphBuilder
from est.compiler.ops import LIF, SEW, Attention, Concat, Conv, Input, Mask, Readout, Recurrence
from est.compiler.ops import Table as TableOp
from est.compiler.passes import compile_graph
from est.sim.golden import mask_threshold, rhythm_table
from est.sw.est import EST
from est.sw.glm import RHYTHM_AMPLITUDE, rhythm_accumulator
from est.sw.neuron import beta_from_shift

WIDE = 32


@dataclass(frozen=True)
class Block:
    """The parts of one EST block; ``None`` where a part is switched off."""

    mask: Mask | None
    q: tuple[Conv, LIF] | None
    k: tuple[Conv, LIF] | None
    v: tuple[Conv, LIF] | None
    attention: Attention | None
    attn_lif: LIF | None  # SSA only
    proj: tuple[Conv, LIF] | None
    sew: str  # add | and | iand | none
    tpu: Recurrence | None
    mlp1: tuple[Conv, LIF]
    mlp2: tuple[Conv, LIF]


def est_graph(name: str, n_in: int, embed: tuple[Conv, LIF], cpg: np.ndarray | None,
              blocks: list[Block], readout: tuple[Conv, Readout], meta: dict | None = None,
              integer: bool = True, input_bits: int = 1, input_to_readout: bool = False,
              slow: dict[int, tuple[Conv, Readout]] | None = None,
              osc: dict[tuple[int, int, int], tuple[Conv, Readout]] | None = None,
              rhythms: list[TableOp] | None = None) -> Graph:
    """The EST as a graph; trace names ``embed``, ``b<i>.<part>``, ``readout`` (docs/traces.md).
    The input holds counts of ``input_bits``. With ``cpg`` (the [positions, neurons] table) the
    embedding convolution reads the input and the table's row side by side; with
    ``input_to_readout`` the readout's convolution reads the last block's spikes and the input
    side by side (``readout.in``). ``slow``, per leak shift ``s``, a readout ``readout.slow<s>``
    of a convolution of the input: more outputs, whose log-rates add to the readout's
    (``meta["sum_outputs"]``); ``osc``, per (rotation shift ``m``, leak shift ``k``,
    multiplier ``c``), an oscillator readout ``readout.osc<m>_<k>`` of a convolution of the
    input, likewise (:func:`oscillator_node`: ``_<c>`` after it when ``c`` is not 1);
    ``rhythms``, tables ``rhythm<i>`` whose rows follow the last block's spikes (and the
    input) in the readout's input (``readout.in``).
    ``integer`` False: a float graph, checked for its wiring only."""
    g = GraphBuilder()
    x = inputs = g.add("input", Input(n_in, input_bits))
    if cpg is not None:
        x = g.add("embed.in", Concat(), x, g.add("cpg", TableOp(cpg)))

    def layer(name: str, parts: tuple[Conv, LIF], src: str) -> str:
        return g.add(name, parts[1], g.add(f"{name}.syn", parts[0], src))

    def join(name: str, op: str, out: str, skip: str) -> str:
        return out if op == "none" else g.add(name, SEW(op), out, skip)

    s = layer("embed", embed, x)
    for i, b in enumerate(blocks):
        p = f"b{i}"
        r = s
        if b.attention is not None:
            m = g.add(f"{p}.mask", b.mask, s) if b.mask is not None else s
            qkv = [layer(f"{p}.{n}", getattr(b, n), m) for n in "qkv"]
            if b.attn_lif is None:
                a = g.add(f"{p}.attn", b.attention, *qkv)
            else:
                a = g.add(f"{p}.attn", b.attn_lif, g.add(f"{p}.scores", b.attention, *qkv))
            r = join(f"{p}.res1", b.sew, layer(f"{p}.proj", b.proj, a), s)
        if b.tpu is not None:
            r = join(f"{p}.res2", b.sew, g.add(f"{p}.tpu", b.tpu, r), r)
        h = layer(f"{p}.mlp2", b.mlp2, layer(f"{p}.mlp1", b.mlp1, r))
        s = join(f"{p}.out", b.sew, h, r)
    beside = ([inputs] if input_to_readout else []) + [
        g.add(f"rhythm{i}", table) for i, table in enumerate(rhythms or [])]
    if beside:
        s = g.add("readout.in", Concat(), s, *beside)
    g.add("readout", readout[1], g.add("readout.syn", readout[0], s))
    outputs = ["readout"]
    for shift, (conv, integrator) in (slow or {}).items():
        node = f"readout.slow{shift}"
        outputs.append(g.add(node, integrator, g.add(f"{node}.syn", conv, inputs)))
    for (m, k, c), (conv, oscillator) in (osc or {}).items():
        node = oscillator_node(m, k, c)
        outputs.append(g.add(node, oscillator, g.add(f"{node}.syn", conv, inputs)))
    meta = dict(meta or {})
    if len(outputs) > 1:
        meta["sum_outputs"] = True
    return g.build(name, tuple(outputs), meta, integer)


def oscillator_node(m: int, k: int, c: int = 1) -> str:
    """The node of the oscillator readout of rotation ``c 2^-m`` and leak shift ``k``:
    ``readout.osc<m>_<k>``, with ``_<c>`` after it when ``c`` is not 1."""
    return f"readout.osc{m}_{k}" + (f"_{c}" if c != 1 else "")


def _np(p: torch.Tensor) -> np.ndarray:
    return p.detach().to(torch.float64).numpy()


def est_float_graph(model: EST, name: str, mask_seed: int = 0x1234567,
                    first_bin: int = 0) -> Graph:
    """The float graph of ``model`` (the passes' input); each node's arrays named after the
    checkpoint parameters they come from (``blocks.0.q``). ``first_bin``: the stream's first
    bin is this bin of the recording the model's fitted rhythms were found in (their phase
    counts from its bin 0): the rhythm tables start where their accumulators are then
    (:func:`~est.sw.glm.rhythm_accumulator`)."""
    cfg = model.cfg
    if cfg.mode != "snn":
        raise EstError("only a spiking EST (mode 'snn') has an integer form; this one is 'ann'")
    betas, sources = {}, {}
    beta = beta_from_shift(cfg.leak_shift)

    def lif(node: str, threshold: float = cfg.threshold, n: int = cfg.d_model) -> LIF:
        betas[node] = beta
        return LIF(np.full(n, threshold), None, WIDE, cfg.reset)

    def conv_lif(node: str, source: str, conv, extra: np.ndarray | None = None
                 ) -> tuple[Conv, LIF]:
        weight = _np(conv.weight)  # [kernel, n_out, n_in]
        if extra is not None:
            more = np.zeros((*weight.shape[:2], extra.shape[1]))
            more[0] = extra
            weight = np.concatenate([weight, more], axis=2)
        sources[f"{node}.syn"] = sources[node] = source
        return Conv(weight, _np(conv.bias)), lif(node, n=weight.shape[1])

    embed = conv_lif("embed", "embed", model.embed, _np(model.cpg_weight) if cfg.cpg else None)
    blocks = []
    for i, blk in enumerate(model.blocks):
        p, src = f"b{i}", f"blocks.{i}"
        attn = cfg.attention != "none"
        parts = {n: conv_lif(f"{p}.{n}", f"{src}.{n}", getattr(blk, n)) if attn else None
                 for n in ("q", "k", "v", "proj")}
        tpu = None
        if cfg.tpu:
            sources[f"{p}.tpu"] = {"w_in": f"{src}.tpu_in", "w_rec": f"{src}.tpu_rec",
                                   "bias": f"{src}.tpu_bias",
                                   "threshold": f"the threshold of {src}.tpu"}
            betas[f"{p}.tpu"] = beta
            tpu = Recurrence(_np(blk.tpu_in), _np(blk.tpu_rec), _np(blk.tpu_bias),
                             np.full(cfg.d_model, cfg.threshold), None, WIDE, cfg.reset)
        ratio = mask_threshold(cfg.rsm)
        seed = (mask_seed + 0x9E3779B9 * (i + 1)) & 0xFFFFFFFF or 1
        if cfg.attention == "ssa":
            sources[f"{p}.attn"] = f"{src}.attn"
        blocks.append(Block(
            mask=Mask(ratio, seed) if attn and ratio else None,
            attention=Attention(cfg.attention, cfg.window, cfg.heads, cfg.count_threshold)
            if attn else None,
            attn_lif=(lif(f"{p}.attn", cfg.threshold / cfg.ssa_scale)
                      if cfg.attention == "ssa" else None),
            sew=cfg.sew, tpu=tpu,
            mlp1=conv_lif(f"{p}.mlp1", f"{src}.mlp1", blk.mlp1),
            mlp2=conv_lif(f"{p}.mlp2", f"{src}.mlp2", blk.mlp2), **parts))
    sources["readout.syn"] = sources["readout"] = "readout"
    betas["readout"] = model.readout_beta
    readout = (Conv(_np(model.readout.weights()), _np(model.readout.bias)),
               Readout(None, WIDE, np.ones(cfg.n_out)))
    slow = {}
    for i, (conv, shift) in enumerate(zip(model.slow, cfg.readout_slow_shifts, strict=True)):
        node = f"readout.slow{shift}"
        sources[f"{node}.syn"] = sources[node] = f"slow.{i}"
        betas[node] = beta_from_shift(shift)
        slow[shift] = (Conv(_np(conv.weights()), _np(conv.bias)),
                       Readout(None, WIDE, np.ones(cfg.n_out)))
    osc = {}
    for i, (conv, (m, k, c)) in enumerate(zip(model.osc, cfg.readout_oscillators,
                                              strict=True)):
        node = oscillator_node(m, k, c)
        sources[f"{node}.syn"] = sources[node] = f"osc.{i}"
        betas[node] = beta_from_shift(k)
        osc[(m, k, c)] = (Conv(_np(conv.weights()), _np(conv.bias)),
                          Readout(None, WIDE, np.ones(cfg.n_out), rotate_shift=m,
                                  rotate_mult=c))
    return est_graph(name, cfg.n_in, embed,
                     model.cpg_table.numpy().astype(np.int64) if cfg.cpg else None, blocks,
                     readout, {"float": {"betas": betas, "sources": sources}}, integer=False,
                     input_bits=cfg.input_bits, input_to_readout=cfg.input_to_readout,
                     slow=slow, osc=osc,
                     rhythms=[TableOp(rhythm_table(cfg.rhythm_rows, RHYTHM_AMPLITUDE), a,
                                      rhythm_accumulator(first_bin, a, cfg.rhythm_rows))
                              for a in cfg.rhythm_advances])


def quantize_est(model: EST, name: str, calibration: np.ndarray, weight_bits: int = 8,
                 max_v_bits: int = 24, first_bin: int = 0) -> tuple[Graph, dict]:
    """The integer EST graph and the passes' report (leaks, scales, widths, calibration loss);
    ``first_bin`` as in :func:`est_float_graph`."""
    return compile_graph(est_float_graph(model, name, first_bin=first_bin), calibration,
                         weight_bits, max_v_bits)
