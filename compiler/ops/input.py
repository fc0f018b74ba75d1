"""``input``: the network's input vector of one bin, ``n`` unsigned counts of ``bits`` bits
each (``bits`` 1: spikes). A count above ``2**bits - 1`` is not the network's to take: the
front end clips where a user asks for it and reports it (docs/semantics.md 1.1).

Hardware: the top's input stream itself (no component), ``n * bits`` wide; on the core, an
``in`` instruction writing the input words into the activation memory, one a cycle. Golden:
the stimulus row.
"""

from dataclasses import dataclass

from est.compiler.graph import IRError, Op, Spec

MAX_INPUT_BITS = 8
"""The widest input count (0..255 spikes in one bin), one byte per input on the wire."""


@dataclass(frozen=True)
class Input(Op):
    n: int
    bits: int = 1

    KIND = "input"
    ARITY = (0, 0)
    TENSOR, HW = "spikes", False

    def check(self, node: str, ins: list[Spec]) -> Spec:
        if self.n < 1:
            raise IRError(node, "n", f"expected >= 1, got {self.n}")
        if not isinstance(self.bits, int) or not 1 <= self.bits <= MAX_INPUT_BITS:
            raise IRError(node, "bits", f"expected 1..{MAX_INPUT_BITS} bits per input count, "
                                        f"got {self.bits}")
        return Spec(self.n, self.bits)

    def step(self, xs, state):
        return {"spikes": xs[0]}, state

    def seq(self, xs, bins):
        return {"spikes": xs[0]}

    def lower(self, b, node, ins):
        return b.lowered(ins[0])

    def emit(self, b, node, ins):
        """Core: ``in`` takes the bin's input words into the node's ring."""
        vec = b.vector(node, Spec(self.n, self.bits))
        b.add("in", n=vec.words, **vec.dst())
