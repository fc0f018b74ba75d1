"""Integer evaluation of an EST in PyTorch, vectorised over time (the training-side path).

It computes, for a whole sequence at once, exactly what the streaming golden model
(:mod:`est.sim.est_network`) computes bin by bin: synaptic and convolution currents as int64
matrix products over all bins, LIF recurrences as a loop over bins, SDSA counts as a windowed
cumulative sum, SSA as a banded score matrix, masks from a matrix formulation of the LFSR.
Two implementations of one contract; the tests hold them equal on every tensor.
"""

import numpy as np
import torch

from est.compiler.est_ir import LIF, Conv, ESTNetwork
from est.sim.golden import LFSR_FEEDBACK


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.int64))


def conv_seq(x: torch.Tensor, conv: Conv) -> torch.Tensor:
    """``out[t] = bias + sum_lag W[lag] @ x[t - lag]`` for all t (zero before bin 0)."""
    w = _t(conv.weight)
    out = _t(conv.bias).expand(x.shape[0], -1).clone()
    for lag in range(w.shape[0]):
        if lag < x.shape[0]:
            out[lag:] += x[: x.shape[0] - lag] @ w[lag].T
    return out


def _lif_update(v: torch.Tensor, current: torch.Tensor, lif: LIF, theta: torch.Tensor):
    """One bin of an integer LIF array: leak, saturating add, fire, reset."""
    leaked = v if lif.leak_shift is None else v - (v >> lif.leak_shift)
    v1 = torch.clamp(leaked + current, -(1 << (lif.v_bits - 1)), (1 << (lif.v_bits - 1)) - 1)
    s = v1 >= theta
    return s.to(torch.int64), torch.where(
        s, v1 - theta if lif.reset == "subtract" else torch.zeros_like(v1), v1)


def lif_seq(current: torch.Tensor, lif: LIF) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and post-reset membranes [T, n] of an integer LIF array driven by ``current``."""
    theta = _t(lif.threshold)
    v = torch.zeros(current.shape[1], dtype=torch.int64)
    spikes, vs = torch.zeros_like(current), torch.zeros_like(current)
    for t in range(current.shape[0]):
        spikes[t], v = _lif_update(v, current[t], lif, theta)
        vs[t] = v
    return spikes, vs


def integrator_seq(current: torch.Tensor, leak_shift: int | None, bits: int) -> torch.Tensor:
    """Values [T, n] of the readout integrators ``r = sat(leak(r) + current)``."""
    r = torch.zeros(current.shape[1], dtype=torch.int64)
    out = torch.zeros_like(current)
    for t in range(current.shape[0]):
        leaked = r if leak_shift is None else r - (r >> leak_shift)
        r = torch.clamp(leaked + current[t], -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        out[t] = r
    return out


def _lfsr_leap(steps: int) -> list[int]:
    """Columns of the GF(2) matrix that advances the LFSR ``steps`` steps: column i is the
    state reached from the unit state ``1 << i``."""
    cols = []
    for i in range(32):
        s = 1 << i
        for _ in range(steps):
            s = (s >> 1) ^ (LFSR_FEEDBACK if s & 1 else 0)
        cols.append(s)
    return cols


_LEAP8 = _lfsr_leap(8)


def mask_seq(x: torch.Tensor, threshold: int, seed: int) -> torch.Tensor:
    """Random spike masking over all bins: draws in (bin, channel) order, keep ``u >= th``."""
    if threshold == 0:
        return x
    draws = np.zeros(x.shape, dtype=np.int64)
    state = seed
    for t in range(x.shape[0]):
        for c in range(x.shape[1]):
            nxt = 0
            for i in range(32):
                if state >> i & 1:
                    nxt ^= _LEAP8[i]
            state = nxt
            draws[t, c] = state & 0xFF
    return torch.where(_t(draws) >= threshold, x, torch.zeros_like(x))


def sdsa_seq(q, k, v, window: int, count_threshold: int) -> torch.Tensor:
    c = torch.cumsum(k & v, dim=0)
    before = torch.cat([torch.zeros((window, c.shape[1]), dtype=torch.int64), c])[: c.shape[0]]
    return q & ((c - before) >= count_threshold).to(torch.int64)


def ssa_seq(q, k, v, window: int, heads: int) -> torch.Tensor:
    n_bins, n = q.shape
    d = n // heads
    lag = torch.arange(n_bins)[:, None] - torch.arange(n_bins)[None, :]
    band = ((lag >= 0) & (lag < window)).to(torch.int64)
    out = torch.zeros_like(q)
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        scores = (q[:, sl] @ k[:, sl].T) * band
        out[:, sl] = scores @ v[:, sl]
    return out


def sew_seq(out, skip, op: str):
    if op == "none":
        return out
    if op == "add":
        return out + skip
    if op == "and":
        return out & skip
    return (1 - out) & skip


def integer_forward(net: ESTNetwork, stimulus: np.ndarray,
                    currents: bool = False) -> dict[str, np.ndarray]:
    """Every tensor the golden trace holds, named the same, for ``stimulus`` [bins, n_in]; with
    ``currents``, also every LIF layer's input current (``<layer>/current``, for calibration)."""
    x = _t(stimulus)
    n_bins = x.shape[0]
    out: dict[str, torch.Tensor] = {"input/spikes": x}

    def layer(name: str, current: torch.Tensor, lif: LIF) -> torch.Tensor:
        if currents:
            out[f"{name}/current"] = current
        s, v = lif_seq(current, lif)
        out[f"{name}/spikes"], out[f"{name}/v"] = s, v
        return s

    current = conv_seq(x, net.embed)
    if net.cpg_table is not None:
        pos = torch.arange(n_bins) % net.cpg_table.shape[0]
        current = current + _t(net.cpg_table)[pos] @ _t(net.cpg_weight).T
    s = layer("embed", current, net.embed_lif)
    for i, b in enumerate(net.blocks):
        p = f"b{i}"
        r = s
        if b.attention != "none":
            masked = mask_seq(s, b.mask_threshold, b.mask_seed)
            q, k, v = (layer(f"{p}.{n}", conv_seq(masked, getattr(b, n)), getattr(b, f"{n}_lif"))
                       for n in ("q", "k", "v"))
            if b.attention == "sdsa":
                a = sdsa_seq(q, k, v, b.window, b.count_threshold)
                out[f"{p}.attn/spikes"] = a
            else:
                a = layer(f"{p}.attn", ssa_seq(q, k, v, b.window, b.heads), b.attn_lif)
            o = layer(f"{p}.proj", conv_seq(a, b.proj), b.proj_lif)
            r = sew_seq(o, s, b.sew)
            out[f"{p}.res1/values"] = r
        if b.tpu is not None:
            r = sew_seq(_tpu_seq(r, b, out, p, currents), r, b.sew)
            out[f"{p}.res2/values"] = r
        h = layer(f"{p}.mlp1", conv_seq(r, b.mlp1), b.mlp1_lif)
        m = layer(f"{p}.mlp2", conv_seq(h, b.mlp2), b.mlp2_lif)
        s = sew_seq(m, r, b.sew)
        out[f"{p}.out/values"] = s
    current = conv_seq(s, net.readout)
    if currents:
        out["readout/current"] = current
    out["readout/v"] = integrator_seq(current, net.readout_leak_shift, net.readout_bits)
    return {k: v.numpy() for k, v in out.items()}


def _tpu_seq(r: torch.Tensor, b, out: dict, p: str, currents: bool) -> torch.Tensor:
    """The TPU's recurrence on its own past spikes is sequential: one bin at a time."""
    tpu = b.tpu
    w_in, w_rec, bias, theta = _t(tpu.w_in), _t(tpu.w_rec), _t(tpu.bias), _t(tpu.lif.threshold)
    n_bins, d = r.shape
    kk = w_rec.shape[0]
    y = torch.zeros((n_bins + kk, d), dtype=torch.int64)  # rows 0..k-1: before bin 0
    vs = torch.zeros((n_bins, d), dtype=torch.int64)
    cur = torch.zeros((n_bins, d), dtype=torch.int64)
    v = torch.zeros(d, dtype=torch.int64)
    for t in range(n_bins):
        past = y[t: t + kk].flip(0)  # y_{t-1}, ..., y_{t-k}
        cur[t] = bias + w_in * r[t] + (w_rec * past).sum(dim=0)
        y[t + kk], v = _lif_update(v, cur[t], tpu.lif, theta)
        vs[t] = v
    out[f"{p}.tpu/spikes"], out[f"{p}.tpu/v"] = y[kk:], vs
    if currents:
        out[f"{p}.tpu/current"] = cur
    return y[kk:]
