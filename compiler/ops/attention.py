"""``attention``: spike attention of Q over the keys and values of the last ``window`` bins
(docs/semantics.md 8.2). SDSA: ``q[c] AND (sum_tau k[c] AND v[c] >= count_threshold)``, spikes
out. SSA: per head, ``sum_tau popcount(q AND k_tau) * v_tau``, unsigned (a LIF's current).

Hardware: :class:`~est.hw.attention.SpikeAttention` behind a :class:`~est.hw.streams.Zip` of
Q, K and V: AND gates, window shift registers and popcount trees; latency one cycle.
"""

from dataclasses import dataclass

import numpy as np

from est import EstError
from est.compiler.graph import Field as F
from est.compiler.graph import IRError, Op, Spec
from est.sim import golden

MODES = ("sdsa", "ssa")


@dataclass(frozen=True)
class Attention(Op):
    mode: str
    window: int
    heads: int = 1
    count_threshold: int = 1

    KIND = "attention"
    ARITY = (3, 3)

    def out_spec(self, d: int) -> Spec:
        return Spec(d, 1 if self.mode == "sdsa" else golden.ssa_bits(self.window, d // self.heads))

    def check(self, node, ins):
        if any(s != Spec(ins[0].n, 1) for s in ins):
            raise IRError(node, "inputs", f"expected Q, K and V spike vectors of one size, "
                                          f"got {ins}")
        d = ins[0].n
        if self.mode not in MODES:
            raise IRError(node, "mode", f"expected one of {MODES}, got {self.mode!r}")
        if self.window < 1:
            raise IRError(node, "window", f"expected >= 1, got {self.window}")
        if self.heads < 1 or d % self.heads:
            raise IRError(node, "heads", f"heads = {self.heads} does not divide the {d} "
                                         f"channels")
        if self.count_threshold < 1:
            raise IRError(node, "count_threshold", f"expected >= 1, got {self.count_threshold}")
        return self.out_spec(d)

    def fields(self, node, ins):
        s = self.out_spec(ins[0].n)
        if self.mode == "sdsa":
            return [F(f"{node}/spikes", s.n, 1, False)]
        return [F(f"{node}/counts", s.n, s.bits, False, hw=False)]

    def init(self, ins):
        return golden.history_init(self.window, 2 * ins[0].n)

    def step(self, xs, state):
        params = golden.AttentionParams(self.mode, self.window, self.heads, self.count_threshold)
        out, state = golden.attention_step(*xs, state, params)
        return {"spikes" if self.mode == "sdsa" else "counts": out}, state

    def seq(self, xs, bins):
        import torch

        q, k, v = xs
        if self.mode == "sdsa":
            c = torch.cumsum(k & v, dim=0)
            before = torch.cat([torch.zeros((self.window, c.shape[1]), dtype=torch.int64),
                                c])[:bins]
            return {"spikes": q & ((c - before) >= self.count_threshold).to(torch.int64)}
        d = q.shape[1] // self.heads
        lag = torch.arange(bins)[:, None] - torch.arange(bins)[None, :]
        band = ((lag >= 0) & (lag < self.window)).to(torch.int64)
        out = torch.zeros_like(q)
        for h in range(self.heads):
            sl = slice(h * d, (h + 1) * d)
            out[:, sl] = ((q[:, sl] @ k[:, sl].T) * band) @ v[:, sl]
        return {"counts": out}

    def cost(self, node, ins, ctx):
        d = ins[0].n
        history = 2 * d * (self.window - 1)  # K and V of the window's earlier bins
        if self.mode == "sdsa":
            return [ctx.vector(node, "sdsa", d, 1, d * -(-self.window // 2) + d,
                               self.window * d + d, memory_bits=history)]
        hd, out = d // self.heads, self.out_spec(d).bits
        return [ctx.vector(node, "ssa", d, out, self.heads * self.window * 2 * hd
                           + d * out * self.window // 2, 2 * self.window * d + d * out,
                           memory_bits=history)]

    def history(self, ins):
        """On the core SDSA keeps K AND V in a ring of its own; SSA reads K and V over the
        window in their own rings, or in copies of its own where its heads are not a power of
        two."""
        hd = ins[0].n // self.heads
        own = self.mode == "sdsa" or hd & (hd - 1)
        return [1, 1, 1] if own else [1, self.window, self.window]

    def emit(self, b, node, ins):
        """Core. SDSA: ``vec and`` of K and V into a ring of ``window`` bins, then ``vec
        sdsa``, ``window`` cycles a channel: Q AND (the ring's count >= the threshold). SSA
        (a core with its SSA unit, heads of up to 16 channels): ``vec score``, the popcount of
        Q AND K per head and bin of the window (``heads * window`` values, one a cycle), then
        ``vec ssa``: per channel, the sum over the window of those scores where V spiked
        (``window`` cycles a channel). A head is read as one field of Q and K, so heads of a
        size that is not a power of two go through copies of Q, K and V with each head padded
        to a power of two (:meth:`~est.compiler.program.ProgramBuilder.spread_copy`); the
        counts are then stored spread out too, and the LIF that reads them gathers them."""
        from est.compiler.program import VEC_OPS, CoreSpec

        d = ins[0].n
        q, k, v = (b.vectors[b.input_of(node, i)] for i in range(3))
        if self.mode == "sdsa":
            kv = b.vector(f"{node}#kv", Spec(d, 1), bins=self.window)
            b.add("vec", sub=VEC_OPS["and"], n=d, win=1, **k.src(), **v.src2(), **kv.dst())
            out = b.vector(node, Spec(d, 1))
            b.add("vec", sub=VEC_OPS["sdsa"], n=d, win=self.window, thr=self.count_threshold,
                  **q.src(), **kv.src2(), **out.dst())
            return
        if not b.spec.ssa:
            raise EstError(f"node '{node}': this core does not run SSA attention: it was built "
                           f"without its SSA unit (CoreSpec ssa); est-compile builds a core "
                           f"with it for a model with SSA")
        hd = d // self.heads
        if hd > CoreSpec.ACT_BITS:
            raise EstError(f"node '{node}': the core does not run SSA heads of {hd} channels: "
                           f"it takes heads of at most {CoreSpec.ACT_BITS} (one field of an "
                           f"activation word); change model.heads or compile with --backend "
                           f"dataflow")
        pad = 1 << (hd - 1).bit_length()  # a head's field: a power of two
        if pad != hd:
            # heads of another size: Q, K and V copied with each head in a field of its own
            readers = b.graph.consumers()[node]
            if any(b.graph.node(r).op.KIND != "lif" for r in readers):
                raise EstError(f"node '{node}': the core runs SSA heads of {hd} channels only "
                               f"into LIF arrays, not into {readers}; compile with --backend "
                               f"dataflow")
            stored = (np.arange(d) // hd) * pad + np.arange(d) % hd
            q, k, v = (b.spread_copy(f"{node}#{x}", vec, stored, self.heads * pad, bins)
                       for x, vec, bins in (("q", q, 1), ("k", k, self.window),
                                            ("v", v, self.window)))
            b.spread[node] = stored
        log2 = pad.bit_length() - 1
        scores = b.vector(f"{node}#scores", Spec(self.heads * self.window,
                                                 hd.bit_length()), bins=1)
        # a head's channels as one field of Q and of K
        b.add("vec", sub=VEC_OPS["score"], n=self.heads, win=self.window,
              **{**q.src(), "src_log2b": log2}, **{**k.src2(), "src2_log2b": log2},
              **scores.dst())
        out = b.vector(node, Spec(v.n, self.out_spec(d).bits))
        b.add("vec", sub=VEC_OPS["ssa"], n=v.n, win=self.window, thr=log2, **scores.src(),
              **v.src2(), **out.dst())

    def lower(self, b, node, ins):
        from est.hw.attention import SpikeAttention
        from est.hw.streams import Zip

        d = ins[0].spec.n
        attn = b.add(node, SpikeAttention(d, self.window, self.mode, self.heads,
                                          self.count_threshold))
        zipped = b.add(f"{node}_qkv", Zip([d, d, d]))
        for src, dst in zip(ins, zipped.inputs(), strict=True):
            b.connect(src.stream, dst)
        b.m.d.comb += [attn.i.valid.eq(zipped.o.valid),
                       attn.i.payload.as_value().eq(zipped.o.payload),
                       zipped.o.ready.eq(attn.i.ready)]
        value = attn.o.payload if self.mode == "sdsa" else attn.o.payload.as_value()
        out = b.flat(attn.o, value, self.out_spec(d))
        return b.lowered(out, {"spikes": (attn.o, value)} if self.mode == "sdsa" else {})
