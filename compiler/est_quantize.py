"""Quantizer of the EST: a float :class:`est.sw.est.EST` -> the integer :class:`ESTNetwork`.

The rules of :mod:`est.compiler.quantize`, applied to every neuron array of the EST: each LIF's
input current is a sum of weights times integer activations (spikes, SEW sums, SSA scores), so a
per-output-channel scale ``s_j = qmax / max|W_j|`` over every weight feeding channel j (all
convolution lags; the CPG projection with the embedding; ``w_in`` with ``w_rec`` in the TPU)
turns weights, bias and threshold into integers. SSA's ``ssa_scale`` folds into its threshold
(``round(threshold / ssa_scale)``). Membrane widths come from a calibration run at 32 bits.
"""

from dataclasses import replace

import numpy as np
import torch

from est.compiler.est_ir import LIF, TPU, Block, Conv, ESTNetwork
from est.compiler.quantize import integer_tensor
from est.sim import golden
from est.sim.golden import mask_threshold
from est.sw.est import EST
from est.sw.est_integer import integer_forward

WIDE = 32


def _np(p: torch.Tensor) -> np.ndarray:
    return p.detach().to(torch.float64).numpy()


class _Quantizer:
    def __init__(self, model: EST, weight_bits: int):
        self.cfg, self.qmax = model.cfg, (1 << (weight_bits - 1)) - 1

    def scales(self, *rows: np.ndarray) -> np.ndarray:
        """Per output channel: qmax over the largest |weight| feeding it (rows are [n_out, ...])."""
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
                 ) -> tuple[Conv, LIF, np.ndarray]:
        """The checkpoint's convolution ``name`` and the LIF after it."""
        w, b = _np(conv.weight), _np(conv.bias)
        w_out = np.moveaxis(w, 1, 0)  # [n_out, kernel, n_in]
        scale = self.scales(w_out) if extra is None else self.scales(w_out, extra)
        return (Conv(self.ints(f"{name}.weight", w, scale, 1),
                     integer_tensor(f"{name}.bias", b * scale)),
                self.lif(name, scale), scale)


def quantize_est(model: EST, name: str, calibration: np.ndarray, weight_bits: int = 8,
                 max_v_bits: int = 24, mask_seed: int = 0x1234567) -> tuple[ESTNetwork, dict]:
    """Return the integer EST and a report (widths, saturation on ``calibration``)."""
    cfg = model.cfg
    if cfg.mode != "snn":
        from est import EstError

        raise EstError("only a spiking EST (mode 'snn') has an integer form; this one is 'ann'")
    q = _Quantizer(model, weight_bits)
    cpg_w = _np(model.cpg_weight) if cfg.cpg else None
    embed, embed_lif, e_scale = q.conv_lif("embed", model.embed, cpg_w)
    blocks = []
    for i, blk in enumerate(model.blocks):
        parts = {}
        if cfg.attention != "none":
            for n in ("q", "k", "v", "proj"):
                parts[n], parts[f"{n}_lif"], _ = q.conv_lif(f"blocks.{i}.{n}", getattr(blk, n))
        else:  # no attention: inert placeholders keep the IR's shape
            d = cfg.d_model
            for n, k in (("q", 1), ("k", 1), ("v", 1), ("proj", 1)):
                parts[n] = Conv(np.zeros((k, d, d), np.int64), np.zeros(d, np.int64))
                parts[f"{n}_lif"] = q.lif(f"blocks.{i}.{n}", np.ones(d))
        tpu = None
        if cfg.tpu:
            w_in, w_rec = _np(blk.tpu_in), _np(blk.tpu_rec)
            scale = q.scales(w_in[:, None], w_rec.T)
            tpu = TPU(q.ints(f"blocks.{i}.tpu_in", w_in, scale, 0),
                      q.ints(f"blocks.{i}.tpu_rec", w_rec, scale, 1),
                      integer_tensor(f"blocks.{i}.tpu_bias", _np(blk.tpu_bias) * scale),
                      q.lif(f"blocks.{i}.tpu", scale))
        m1, m1_lif, _ = q.conv_lif(f"blocks.{i}.mlp1", blk.mlp1)
        m2, m2_lif, _ = q.conv_lif(f"blocks.{i}.mlp2", blk.mlp2)
        attn_lif = (q.lif(f"blocks.{i}.attn", np.ones(cfg.d_model), cfg.threshold / cfg.ssa_scale)
                    if cfg.attention == "ssa" else None)
        seed = (mask_seed + 0x9E3779B9 * (i + 1)) & 0xFFFFFFFF or 1
        blocks.append(Block(
            mask_threshold=mask_threshold(cfg.rsm) if cfg.attention != "none" else 0,
            mask_seed=seed, attention=cfg.attention, window=cfg.window, heads=cfg.heads,
            count_threshold=cfg.count_threshold, attn_lif=attn_lif, sew=cfg.sew, tpu=tpu,
            mlp1=m1, mlp1_lif=m1_lif, mlp2=m2, mlp2_lif=m2_lif, **parts))
    r_w, r_b = _np(model.readout.weight), _np(model.readout.bias)
    r_scale = q.scales(np.moveaxis(r_w, 1, 0))
    readout_leak = (None if model.readout_beta == 1.0 else
                    next(k for k in range(WIDE) if 1 - 2.0 ** -k == model.readout_beta))
    net = ESTNetwork(
        name=name, n_in=cfg.n_in, d_model=cfg.d_model,
        embed=embed, embed_lif=embed_lif,
        cpg_table=(model.cpg_table.numpy().astype(np.int64) if cfg.cpg else None),
        cpg_weight=(q.ints("cpg_weight", cpg_w, e_scale, 0) if cfg.cpg else None),
        blocks=tuple(blocks),
        readout=Conv(q.ints("readout.weight", r_w, r_scale, 1),
                     integer_tensor("readout.bias", r_b * r_scale)),
        readout_leak_shift=readout_leak, readout_bits=WIDE, readout_scale=r_scale).validate()
    return _fit_widths(net, calibration, max_v_bits)


def _get_lif(net: ESTNetwork, i: int | None, part: str) -> LIF | None:
    if i is None:
        return net.embed_lif
    b = net.blocks[i]
    if part == "tpu":
        return b.tpu.lif if b.tpu is not None else None
    return getattr(b, f"{part}_lif")


def _put_lif(net: ESTNetwork, i: int | None, part: str, lif: LIF) -> ESTNetwork:
    if i is None:
        return replace(net, embed_lif=lif)
    b = net.blocks[i]
    nb = replace(b, tpu=replace(b.tpu, lif=lif)) if part == "tpu" else replace(
        b, **{f"{part}_lif": lif})
    return replace(net, blocks=net.blocks[:i] + (nb,) + net.blocks[i + 1:])


def _lif_names(net: ESTNetwork):
    """(trace name, block index or None, part) of every neuron array."""
    yield "embed", None, "embed"
    for i in range(len(net.blocks)):
        for part in ("q", "k", "v", "attn", "proj", "tpu", "mlp1", "mlp2"):
            yield f"b{i}.{part}", i, part


def _fit_widths(net: ESTNetwork, calibration: np.ndarray, max_v_bits: int):
    wide = integer_forward(net, calibration, currents=True)
    layers = {}
    for name, i, part in _lif_names(net):
        lif = _get_lif(net, i, part)
        if lif is None or f"{name}/current" not in wide:
            continue
        v = wide[f"{name}/v"]
        prev = np.vstack([np.zeros((1, v.shape[1]), np.int64), v[:-1]])
        v1 = golden.leak(prev, lif.leak_shift) + wide[f"{name}/current"]
        need = golden.signed_bits(min(int(v1.min()), 0), max(int(v1.max()),
                                                              int(lif.threshold.max())))
        bits = max(min(need + 1, max_v_bits), (lif.leak_shift or 0) + 1)
        net = _put_lif(net, i, part, replace(lif, v_bits=bits))
        layers[name] = {"v_bits": bits, "needed_bits": need}
    r = wide["readout/v"]
    r_bits = max(min(golden.signed_bits(min(int(r.min()), 0), max(int(r.max()), 1)) + 1,
                     max_v_bits), (net.readout_leak_shift or 0) + 1)
    net = replace(net, readout_bits=r_bits).validate()
    final = integer_forward(net, calibration)
    saturated = {name: int((final[f"{name}/v"] != wide[f"{name}/v"]).any(axis=1).sum())
                 for name in layers}
    for name, entry in layers.items():
        entry["bins_differing_from_wide"] = saturated[name]
    return net, {"calibration_bins": int(calibration.shape[0]), "layers": layers,
                 "readout_bits": r_bits}
