"""Spike-driven attention over a causal window, as gateware (docs/semantics.md section 8.2)."""

from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from est.sim.golden import ssa_bits


def popcount(m: Module, bits, name: str):
    """The number of ones in ``bits`` as an adder tree (each level its own signals)."""
    level, depth = list(bits), 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            s = Signal(range(len(bits) + 1), name=f"{name}_l{depth}_{i}")
            m.d.comb += s.eq(level[i] + level[i + 1])
            nxt.append(s)
        if len(level) % 2:
            nxt.append(level[-1])
        level, depth = nxt, depth + 1
    return level[0] if level else 0


class SpikeAttention(wiring.Component):
    """Attention of bin ``t`` over the keys and values of bins ``t - window + 1 .. t``.

    - ``mode="sdsa"`` (adder-free): ``out[c] = q[c] AND (count_c >= count_threshold)`` with
      ``count_c = sum_tau k_tau[c] AND v_tau[c]``: AND gates, a ``window``-input popcount per
      channel and a comparator (with ``count_threshold == 1`` an OR of the window). Output: a
      ``d``-bit spike vector.
    - ``mode="ssa"``: per head ``h`` (``d / heads`` channels) ``score_tau = popcount(q[h] AND
      k_tau[h])`` and ``out[c] = sum_tau score_tau * v_tau[c]`` (AND gates, popcounts and adder
      trees). Output: ``d`` unsigned integers of :func:`ssa_bits` bits, the current of a LIF.

    Hardware: a shift register of the last ``window - 1`` (k, v) pairs (``2 d (window - 1)``
    flip-flops), the combinational attention, and an output register. Bins before the stream
    start count as zero spikes (reset clears the window).

    Latency: one cycle from accepting (q, k, v) to offering the result, held on ``o`` until
    taken; ``i`` is ready whenever ``o`` is empty.

    Ports: ``i`` stream of ``{q, k, v}`` (``d`` bits each, bit c = channel c); ``o`` stream of
    the result (SDSA: ``d`` bits; SSA: an array of ``d`` counts).
    """

    def __init__(self, d: int, window: int, mode: str, heads: int = 1, count_threshold: int = 1):
        if mode not in ("sdsa", "ssa"):
            raise ValueError(f"mode must be 'sdsa' or 'ssa', got {mode!r}")
        if d % heads or window < 1 or count_threshold < 1:
            raise ValueError("heads must divide d; window and count_threshold must be >= 1")
        self.d, self.window, self.mode = d, window, mode
        self.heads, self.count_threshold = heads, count_threshold
        self.out_bits = 1 if mode == "sdsa" else ssa_bits(window, d // heads)
        out_shape = unsigned(d) if mode == "sdsa" else data.ArrayLayout(unsigned(self.out_bits),
                                                                        d)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(
                {"q": unsigned(d), "k": unsigned(d), "v": unsigned(d)}))),
            "o": Out(stream.Signature(out_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        d, w = self.d, self.window
        past_k = [Signal(d, name=f"past_k{j}") for j in range(w - 1)]  # bin t-1-j
        past_v = [Signal(d, name=f"past_v{j}") for j in range(w - 1)]
        q, k, v = self.i.payload.q, self.i.payload.k, self.i.payload.v
        keys, values = [k, *past_k], [v, *past_v]

        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.o.valid.eq(1)
            m.d.sync += [p.eq(newer) for p, newer in zip(past_k + past_v, keys[:-1] + values[:-1],
                                                          strict=True)]
            if self.mode == "sdsa":
                out = []
                for c in range(d):
                    hits = [kt[c] & vt[c] for kt, vt in zip(keys, values, strict=True)]
                    if self.count_threshold == 1:
                        out.append(q[c] & Cat(*hits).any())
                    else:
                        count = popcount(m, hits, f"count{c}")
                        out.append(q[c] & (count >= self.count_threshold))
                m.d.sync += self.o.payload.eq(Cat(*out))
            else:
                dh = d // self.heads
                for h in range(self.heads):
                    lo = h * dh
                    scores = [popcount(m, [q[lo + c] & kt[lo + c] for c in range(dh)],
                                       f"score_h{h}_t{tau}") for tau, kt in enumerate(keys)]
                    for c in range(lo, lo + dh):
                        terms = []
                        for tau, vt in enumerate(values):
                            term = Signal(range(dh + 1), name=f"term_c{c}_t{tau}")
                            m.d.comb += term.eq(vt[c].replicate(term.shape().width) & scores[tau])
                            terms.append(term)
                        total = Signal(self.out_bits, name=f"ssa_c{c}")
                        m.d.comb += total.eq(sum(terms))
                        m.d.sync += self.o.payload[c].eq(total)
        return m
