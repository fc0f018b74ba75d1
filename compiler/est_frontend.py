"""The EST front end: a float :class:`est.sw.est.EST` -> an integer graph.

The EST's structure (docs/semantics.md 8) is written here once, in :func:`est_graph`: the
embedding (causal convolution over the input and, with CPG-PE, the CPG table's row, then a LIF
array), per block [random spike mask -> Q/K/V convolutions and LIFs -> spike attention (SDSA;
or SSA and its LIF) -> projection -> SEW residual -> temporal recurrence (TPU) -> SEW residual
-> two convolution+LIF layers -> SEW residual], and the readout (convolution into integrators).
A part that is switched off is absent from the graph; SEW ``none`` joins nothing.

Quantization (:func:`quantize_est`): each LIF's input current is a sum of weights times
integer activations (spikes, SEW sums, SSA scores), so a per-output-channel scale ``s_j = qmax
/ max|W_j|`` over every weight feeding channel j (all convolution lags; the CPG projection with
the embedding; ``w_in`` with ``w_rec`` in the TPU) turns weights, bias and threshold into
integers. SSA's ``ssa_scale`` folds into its threshold (``round(threshold / ssa_scale)``).
Membrane widths come from a calibration run at 32 bits (:func:`est.compiler.passes.fit_widths`).
"""

from dataclasses import dataclass

import numpy as np
import torch

from est import EstError
from est.compiler.graph import Graph, GraphBuilder
from est.compiler.ops import LIF, SEW, Attention, Concat, Conv, Input, Mask, Readout, Recurrence
from est.compiler.ops import Table as TableOp
from est.compiler.passes import fit_widths
from est.compiler.quantize import integer_tensor
from est.sim.golden import mask_threshold
from est.sw.est import EST

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
              blocks: list[Block], readout: tuple[Conv, Readout], meta: dict | None = None
              ) -> Graph:
    """The EST as a graph; trace names ``embed``, ``b<i>.<part>``, ``readout`` (docs/traces.md).
    With ``cpg`` (the [positions, neurons] table) the embedding convolution reads the input and
    the table's row side by side."""
    g = GraphBuilder()
    x = g.add("input", Input(n_in))
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
    g.add("readout", readout[1], g.add("readout.syn", readout[0], s))
    return g.build(name, ("readout",), meta)


def _np(p: torch.Tensor) -> np.ndarray:
    return p.detach().to(torch.float64).numpy()


class _Quantizer:
    def __init__(self, model: EST, weight_bits: int):
        self.cfg, self.qmax = model.cfg, (1 << (weight_bits - 1)) - 1

    def scales(self, *rows: np.ndarray) -> np.ndarray:
        """Per output channel: qmax over the largest |weight| feeding it (rows [n_out, ...])."""
        amax = np.max([np.abs(r.reshape(r.shape[0], -1)).max(axis=1) for r in rows], axis=0)
        return self.qmax / np.where(amax > 0, amax, 1.0)

    def ints(self, name: str, w: np.ndarray, scale: np.ndarray, axis_out: int) -> np.ndarray:
        """Weights ``w`` of checkpoint parameter ``name`` times their channel's scale, clipped
        to the weight width."""
        shape = [1] * w.ndim
        shape[axis_out] = -1
        return integer_tensor(name, np.clip(w * scale.reshape(shape), -self.qmax - 1, self.qmax))

    def lif(self, name: str, scale: np.ndarray, threshold: float | None = None) -> LIF:
        thr = self.cfg.threshold if threshold is None else threshold
        return LIF(np.maximum(1, integer_tensor(f"the threshold of {name}", thr * scale)),
                   self.cfg.leak_shift, WIDE, self.cfg.reset)

    def conv_lif(self, name: str, conv, extra: np.ndarray | None = None
                 ) -> tuple[tuple[Conv, LIF], np.ndarray]:
        """The checkpoint's convolution ``name`` (``extra``: more inputs at lag 0, the CPG
        projection) and the LIF after it; and the channel scales."""
        w, b = _np(conv.weight), _np(conv.bias)
        w_out = np.moveaxis(w, 1, 0)  # [n_out, kernel, n_in]
        scale = self.scales(w_out) if extra is None else self.scales(w_out, extra)
        weight = self.ints(f"{name}.weight", w, scale, 1)
        if extra is not None:
            more = np.zeros((weight.shape[0], weight.shape[1], extra.shape[1]), np.int64)
            more[0] = self.ints("cpg_weight", extra, scale, 0)
            weight = np.concatenate([weight, more], axis=2)
        return (Conv(weight, integer_tensor(f"{name}.bias", b * scale)),
                self.lif(name, scale)), scale


def quantize_est(model: EST, name: str, calibration: np.ndarray, weight_bits: int = 8,
                 max_v_bits: int = 24, mask_seed: int = 0x1234567) -> tuple[Graph, dict]:
    """Return the integer EST graph and a report (widths, their loss on ``calibration``)."""
    cfg = model.cfg
    if cfg.mode != "snn":
        raise EstError("only a spiking EST (mode 'snn') has an integer form; this one is 'ann'")
    q = _Quantizer(model, weight_bits)
    embed, _ = q.conv_lif("embed", model.embed, _np(model.cpg_weight) if cfg.cpg else None)
    blocks = []
    for i, blk in enumerate(model.blocks):
        p = f"blocks.{i}"
        attn = cfg.attention != "none"
        parts = {n: q.conv_lif(f"{p}.{n}", getattr(blk, n))[0] if attn else None
                 for n in ("q", "k", "v", "proj")}
        tpu = None
        if cfg.tpu:
            w_in, w_rec = _np(blk.tpu_in), _np(blk.tpu_rec)
            scale = q.scales(w_in[:, None], w_rec.T)
            lif = q.lif(f"{p}.tpu", scale)
            tpu = Recurrence(q.ints(f"{p}.tpu_in", w_in, scale, 0),
                             q.ints(f"{p}.tpu_rec", w_rec, scale, 1),
                             integer_tensor(f"{p}.tpu_bias", _np(blk.tpu_bias) * scale),
                             lif.threshold, lif.leak_shift, lif.v_bits, lif.reset)
        ratio = mask_threshold(cfg.rsm)
        seed = (mask_seed + 0x9E3779B9 * (i + 1)) & 0xFFFFFFFF or 1
        blocks.append(Block(
            mask=Mask(ratio, seed) if attn and ratio else None,
            attention=Attention(cfg.attention, cfg.window, cfg.heads, cfg.count_threshold)
            if attn else None,
            attn_lif=(q.lif(f"{p}.attn", np.ones(cfg.d_model), cfg.threshold / cfg.ssa_scale)
                      if cfg.attention == "ssa" else None),
            sew=cfg.sew, tpu=tpu, mlp1=q.conv_lif(f"{p}.mlp1", blk.mlp1)[0],
            mlp2=q.conv_lif(f"{p}.mlp2", blk.mlp2)[0], **parts))
    r_w, r_b = _np(model.readout.weight), _np(model.readout.bias)
    r_scale = q.scales(np.moveaxis(r_w, 1, 0))
    readout_leak = (None if model.readout_beta == 1.0 else
                    next(k for k in range(WIDE) if 1 - 2.0 ** -k == model.readout_beta))
    graph = est_graph(
        name, cfg.n_in, embed,
        model.cpg_table.numpy().astype(np.int64) if cfg.cpg else None, blocks,
        (Conv(q.ints("readout.weight", r_w, r_scale, 1),
              integer_tensor("readout.bias", r_b * r_scale)),
         Readout(readout_leak, WIDE, r_scale)))
    return fit_widths(graph, calibration, max_v_bits)
