"""``mask``: random spike masking (RSM), one 8-bit LFSR draw per channel per bin, a value kept
where ``draw >= threshold`` (docs/semantics.md 8.2); ``threshold`` 0 keeps everything.

Hardware: :class:`~est.hw.lfsr.SpikeMask`, a 32-bit Galois LFSR unrolled ``lanes`` draws per
cycle; latency ``ceil(n / lanes) + 1`` cycles.
"""

from dataclasses import dataclass

import numpy as np

from est.compiler.graph import IRError, Op, check_vector
from est.sim import golden


@dataclass(frozen=True)
class Mask(Op):
    threshold: int  # 0..256
    seed: int  # nonzero 32-bit LFSR state at the start of every stream

    KIND = "mask"
    HW = False

    def check(self, node, ins):
        x = check_vector(node, ins[0], "a mask")
        if not 0 <= self.threshold <= 256:
            raise IRError(node, "threshold", f"expected 0..256, got {self.threshold}")
        if not 0 < self.seed < 1 << 32:
            raise IRError(node, "seed", f"expected a nonzero 32-bit seed, got {self.seed}")
        return x

    def top(self, out, tops):
        """Its input's values, some of them zeroed."""
        return tops[0]

    def init(self, ins):
        return self.seed

    def step(self, xs, state):
        out, state = golden.mask_step(xs[0], state, golden.MaskParams(len(xs[0]),
                                                                       self.threshold))
        return {"values": out}, state

    def seq(self, xs, bins):
        import torch

        x = xs[0]
        if self.threshold == 0:
            return {"values": x}
        draws = golden.lfsr_draws(self.seed, x.numel())[0].reshape(x.shape)  # n draws a bin
        return {"values": torch.where(torch.as_tensor(draws) >= self.threshold, x,
                                      torch.zeros_like(x))}

    def cost(self, node, ins, ctx):
        from est.hw.synapse import ceil_div

        n, bits = ins[0].n, ins[0].bits
        lanes = min(ctx.lanes, n)  # SpikeMask draws for at most n channels a cycle
        return [ctx.vector(node, "lfsr", n, bits, lanes * 40 + n * bits, 32 + 2 * n * bits + 8,
                           ceil_div(n, lanes) + 1, memory_bits=32)]  # the LFSR state

    def emit(self, b, node, ins):
        """Core: a ``vec`` instruction, one channel a cycle (its draw: the 8 LFSR steps
        unrolled); the LFSR state in two neuron words (low 16 bits, then high), the seed in
        their threshold words."""
        from est.compiler.program import VEC_OPS

        halves = np.array([self.seed & 0xFFFF, self.seed >> 16])
        nbase = b.neuron_block(node, halves, np.zeros(2, np.int64), 16, seed=True)
        out = b.vector(node, ins[0])
        b.add("vec", sub=VEC_OPS["mask"], n=out.n, win=1, thr=self.threshold, nbase=nbase,
              **b.vectors[b.input_of(node)].src(), **out.dst())

    def lower(self, b, node, ins):
        from est.hw.lfsr import SpikeMask

        x = ins[0].spec
        mask = b.add(node, SpikeMask(x.n, self.threshold, self.seed, b.lanes, x.bits))
        b.connect(ins[0].stream, mask.i)
        return b.lowered(b.port(mask.o, x))
