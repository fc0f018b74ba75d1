"""``concat``: the input vectors of one bin side by side (first input in the low channels);
unsigned vectors of different widths (spikes beside counts) are zero-extended to the widest.

Hardware: :class:`~est.hw.streams.Zip`, an AND of the valids, and the zero-extension as
wiring; no register, no latency. On the core: nothing (its readers read its inputs).
"""

from dataclasses import dataclass

import numpy as np

from est import EstError
from est.compiler.graph import IRError, Op, Spec


@dataclass(frozen=True)
class Concat(Op):
    KIND = "concat"
    ARITY = (2, 16)
    HW = False

    def check(self, node, ins):
        if any(s.form != "vector" or s.signed for s in ins):
            raise IRError(node, "inputs", f"expected unsigned vectors, got {ins}")
        return Spec(sum(s.n for s in ins), max(s.bits for s in ins))

    def top(self, out, tops):
        return max(tops)

    def step(self, xs, state):
        return {"values": np.concatenate(xs)}, state

    def seq(self, xs, bins):
        import torch

        return {"values": torch.cat(xs, dim=1)}

    def emit(self, b, node, ins):
        """Core: no instruction: a convolution reading it reads its inputs' rings, one
        ``conv`` instruction each; any other reader is refused."""
        for user in b.graph.consumers()[node]:
            kind = b.graph.node(user).op.KIND
            if kind != "conv":
                raise EstError(f"node '{node}': on the core a concatenation feeds "
                               f"convolutions only, '{user}' is a {kind}")
        first, parts = 0, []
        for i, spec in zip(b.graph.node(node).inputs, ins, strict=True):
            parts.append((i, first))
            first += spec.n
        b.parts[node] = parts

    def lower(self, b, node, ins):
        from amaranth import C, Cat

        from est.hw.streams import Zip

        bits = max(p.spec.bits for p in ins)
        z = b.add(node, Zip([p.spec.n * bits for p in ins]))
        for src, dst in zip(ins, z.inputs(), strict=True):
            n, w = src.spec.n, src.spec.bits
            if w < bits:
                x = src.stream.payload
                src = b.flat(src.stream, Cat(*(Cat(x[i * w:(i + 1) * w], C(0, bits - w))
                                               for i in range(n))), Spec(n, bits))
            b.connect(src.stream, dst)
        return b.lowered(b.port(z.o, Spec(sum(p.spec.n for p in ins), bits)))
