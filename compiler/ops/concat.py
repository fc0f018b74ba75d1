"""``concat``: the input vectors of one bin side by side (first input in the low channels).

Hardware: :class:`~est.hw.streams.Zip`, an AND of the valids; no register, no latency.
"""

from dataclasses import dataclass

import numpy as np

from est.compiler.graph import Field as F
from est.compiler.graph import IRError, Op, Spec


@dataclass(frozen=True)
class Concat(Op):
    KIND = "concat"
    ARITY = (2, 16)

    def check(self, node, ins):
        if any(s.form != "vector" or s.signed or s.bits != ins[0].bits for s in ins):
            raise IRError(node, "inputs", f"expected unsigned vectors of one width, got {ins}")
        return Spec(sum(s.n for s in ins), ins[0].bits)

    def fields(self, node, ins):
        return [F(f"{node}/values", sum(s.n for s in ins), ins[0].bits, False, hw=False)]

    def step(self, xs, state):
        return {"values": np.concatenate(xs)}, state

    def seq(self, xs, bins):
        import torch

        return {"values": torch.cat(xs, dim=1)}

    def lower(self, b, node, ins):
        from est.hw.streams import Zip

        z = b.add(node, Zip([p.spec.n * p.spec.bits for p in ins]))
        for src, dst in zip(ins, z.inputs(), strict=True):
            b.connect(src.stream, dst)
        return b.lowered(b.port(z.o, Spec(sum(p.spec.n for p in ins), ins[0].spec.bits)))
