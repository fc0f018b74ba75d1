"""Run the golden model over an EST IR, one bin at a time, and record every tensor.

This is the streaming reference: per bin it calls the step functions of
:mod:`est.sim.golden` in the order docs/semantics.md fixes. Trace names: ``embed/...``,
``b<i>.<part>/...`` for block i (parts q, k, v, attn, proj, res1, tpu, res2, mlp1, mlp2, out), and
``readout/v``; tensors ``spikes`` (0/1), ``v`` (membrane after reset), ``values`` (SEW outputs).
"""

import numpy as np

from est.compiler.est_ir import LIF, Conv, ESTNetwork
from est.sim import golden
from est.sim.trace import Trace


class _Recorder:
    def __init__(self, bins: int):
        self.bins, self.arrays = bins, {}

    def put(self, name: str, t: int, value: np.ndarray) -> None:
        if name not in self.arrays:
            self.arrays[name] = np.zeros((self.bins, len(value)), dtype=np.int64)
        self.arrays[name][t] = value


class _ConvLIF:
    """A causal conv (or dense) layer feeding a LIF array, with its streaming state."""

    def __init__(self, conv: Conv, lif: LIF, n_in: int):
        self.conv = golden.ConvParams(conv.weight.astype(np.int64), conv.bias.astype(np.int64))
        self.hist = golden.history_init(conv.weight.shape[0], n_in)
        self.params = _lif_params(lif)
        self.state = golden.lif_init(conv.weight.shape[1])

    def step(self, x: np.ndarray, extra: np.ndarray | int = 0) -> np.ndarray:
        current, self.hist = golden.conv_step(x, self.hist, self.conv)
        out, self.state = golden.lif_step(current + extra, self.state, self.params)
        return out.spikes.astype(np.int64)


def _lif_params(lif: LIF) -> golden.LIFParams:
    return golden.LIFParams(lif.threshold.astype(np.int64), lif.leak_shift, lif.v_bits,
                            lif.reset)


def run_est(net: ESTNetwork, stimulus: np.ndarray) -> Trace:
    """Feed ``stimulus`` ([bins, n_in] non-negative integers) through ``net`` from zero state."""
    stimulus = np.asarray(stimulus, dtype=np.int64)
    bins, d = stimulus.shape[0], net.d_model
    rec = _Recorder(bins)
    embed = _ConvLIF(net.embed, net.embed_lif, net.n_in)
    blocks = []
    for b in net.blocks:
        st = {name: _ConvLIF(getattr(b, name), getattr(b, f"{name}_lif"), d)
              for name in ("q", "k", "v")}
        st["mask_state"] = b.mask_seed
        st["kv"] = golden.history_init(b.window, 2 * d)
        st["attn_params"] = golden.AttentionParams(b.attention, b.window, b.heads,
                                                   b.count_threshold)
        if b.attention == "ssa":
            st["attn_lif"] = (_lif_params(b.attn_lif), golden.lif_init(d))
        st["proj"] = _ConvLIF(b.proj, b.proj_lif, d)
        if b.tpu is not None:
            st["tpu"] = (_lif_params(b.tpu.lif), golden.lif_init(d),
                         golden.history_init(b.tpu.w_rec.shape[0] + 1, d))
        st["mlp1"] = _ConvLIF(b.mlp1, b.mlp1_lif, d)
        st["mlp2"] = _ConvLIF(b.mlp2, b.mlp2_lif, b.mlp1.weight.shape[1])
        blocks.append(st)
    readout = golden.ConvParams(net.readout.weight.astype(np.int64),
                                net.readout.bias.astype(np.int64))
    r_hist = golden.history_init(net.readout.weight.shape[0], d)
    r_params = golden.IntegratorParams(net.readout_leak_shift, net.readout_bits)
    r_state = golden.lif_init(net.n_out)

    for t in range(bins):
        rec.put("input/spikes", t, stimulus[t])
        cpg = 0
        if net.cpg_table is not None:
            cpg = net.cpg_weight.astype(np.int64) @ net.cpg_table[t % len(net.cpg_table)]
        s = embed.step(stimulus[t], cpg)
        rec.put("embed/spikes", t, s)
        rec.put("embed/v", t, embed.state.v)
        for i, (b, st) in enumerate(zip(net.blocks, blocks, strict=True)):
            p = f"b{i}"
            r = s
            if b.attention != "none":
                masked, st["mask_state"] = golden.mask_step(
                    s, st["mask_state"], golden.MaskParams(d, b.mask_threshold))
                qkv = {}
                for name in ("q", "k", "v"):
                    qkv[name] = st[name].step(masked)
                    rec.put(f"{p}.{name}/spikes", t, qkv[name])
                    rec.put(f"{p}.{name}/v", t, st[name].state.v)
                a, st["kv"] = golden.attention_step(qkv["q"], qkv["k"], qkv["v"], st["kv"],
                                                    st["attn_params"])
                if b.attention == "ssa":
                    params, state = st["attn_lif"]
                    out, state = golden.lif_step(a, state, params)
                    st["attn_lif"] = (params, state)
                    a = out.spikes.astype(np.int64)
                    rec.put(f"{p}.attn/v", t, state.v)
                rec.put(f"{p}.attn/spikes", t, a)
                o = st["proj"].step(a)
                rec.put(f"{p}.proj/spikes", t, o)
                rec.put(f"{p}.proj/v", t, st["proj"].state.v)
                r = o if b.sew == "none" else golden.sew(o, s, b.sew)
                rec.put(f"{p}.res1/values", t, r)
            if b.tpu is not None:
                params, state, hist = st["tpu"]
                current = b.tpu.bias + b.tpu.w_in * r + (b.tpu.w_rec * hist.x).sum(axis=0)
                out, state = golden.lif_step(current, state, params)
                y = out.spikes.astype(np.int64)
                _, hist = golden.history_push(y, hist)
                st["tpu"] = (params, state, hist)
                rec.put(f"{p}.tpu/spikes", t, y)
                rec.put(f"{p}.tpu/v", t, state.v)
                r = y if b.sew == "none" else golden.sew(y, r, b.sew)
                rec.put(f"{p}.res2/values", t, r)
            h = st["mlp1"].step(r)
            rec.put(f"{p}.mlp1/spikes", t, h)
            rec.put(f"{p}.mlp1/v", t, st["mlp1"].state.v)
            m = st["mlp2"].step(h)
            rec.put(f"{p}.mlp2/spikes", t, m)
            rec.put(f"{p}.mlp2/v", t, st["mlp2"].state.v)
            s = m if b.sew == "none" else golden.sew(m, r, b.sew)
            rec.put(f"{p}.out/values", t, s)
        current, r_hist = golden.conv_step(s, r_hist, readout)
        _, r_state = golden.integrator_step(current, r_state, r_params)
        rec.put("readout/v", t, r_state.v)
    return Trace(rec.arrays, {"source": "golden", "network": net.name, "bins": bins})
