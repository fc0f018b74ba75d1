"""``input``: the network's input vector of one bin (spikes, or unsigned counts of ``bits``).

Hardware: the top's input stream itself (no component). Golden: the stimulus row.
"""

from dataclasses import dataclass

from est.compiler.graph import Field as F
from est.compiler.graph import IRError, Op, Spec


@dataclass(frozen=True)
class Input(Op):
    n: int
    bits: int = 1

    KIND = "input"
    ARITY = (0, 0)

    def check(self, node: str, ins: list[Spec]) -> Spec:
        if self.n < 1:
            raise IRError(node, "n", f"expected >= 1, got {self.n}")
        if not 1 <= self.bits <= 16:
            raise IRError(node, "bits", f"expected 1..16, got {self.bits}")
        return Spec(self.n, self.bits)

    def fields(self, node, ins):
        return [F(f"{node}/spikes", self.n, self.bits, False, hw=False)]

    def init(self, ins):
        return None

    def step(self, xs, state):
        return {"spikes": xs[0]}, state

    def seq(self, xs, bins):
        return {"spikes": xs[0]}

    def cost(self, node, ins, ctx):
        return []

    def lower(self, b, node, ins):
        return b.lowered(ins[0])
