"""``input``: the network's input vector of one bin: ``n`` spikes (``bits`` is 1; the golden
model and the PyTorch path would take wider counts, the stimulus encoders and the board protocol
do not yet).

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
        if self.bits != 1:  # the stimulus encoders, cocotb testbench and board protocol
            #                   carry one bit per input today
            raise IRError(node, "bits", f"expected 1 (spikes), got {self.bits}: multi-bit "
                                        f"count inputs are not supported yet; clip the counts "
                                        f"to spikes")
        return Spec(self.n, self.bits)

    def fields(self, node, ins):
        return [F(f"{node}/spikes", self.n, self.bits, False, hw=False)]

    def step(self, xs, state):
        return {"spikes": xs[0]}, state

    def seq(self, xs, bins):
        return {"spikes": xs[0]}

    def lower(self, b, node, ins):
        return b.lowered(ins[0])
