"""``sew``: the spike-element-wise residual of a branch's spikes and the skip values
(docs/semantics.md 8.2): ADD ``out + skip`` (one bit wider than the skip), AND ``out & skip``,
IAND ``(1 - out) & skip`` (spikes only).

Hardware: :class:`~est.hw.sew.SEWJoin`, a gate or adder per channel, a register; latency one
cycle. On the core: a ``vec`` instruction, one channel a cycle.
"""

from dataclasses import dataclass

from est.compiler.graph import IRError, Op, Spec
from est.sim import golden


@dataclass(frozen=True)
class SEW(Op):
    op: str

    KIND = "sew"
    ARITY = (2, 2)

    def check(self, node, ins):
        out, skip = ins
        if self.op not in golden.SEW_OPS:
            raise IRError(node, "op", f"expected one of {golden.SEW_OPS}, got {self.op!r}")
        if out != Spec(skip.n, 1) or skip.form != "vector" or skip.signed:
            raise IRError(node, "inputs", f"expected a spike vector and unsigned skip values of "
                                          f"one size, got {ins}")
        if self.op != "add" and skip.bits != 1:
            raise IRError(node, "op", f"{self.op.upper()} joins spikes; the skip input is "
                                      f"{skip.bits} bits wide (an ADD before it): use add")
        return Spec(skip.n, golden.sew_bits(self.op, skip.bits))

    def top(self, out, tops):
        """ADD: the sum of its inputs' largest values (1 more than the skip's, where its width
        grows by a bit); AND, IAND: spikes."""
        return tops[0] + tops[1] if self.op == "add" else 1

    def step(self, xs, state):
        return {"values": golden.sew(xs[0], xs[1], self.op)}, state

    def seq(self, xs, bins):
        return {"values": golden.sew(xs[0], xs[1], self.op)}

    def cost(self, node, ins, ctx):
        d, out = ins[1].n, golden.sew_bits(self.op, ins[1].bits)
        return [ctx.vector(node, f"sew {self.op}", d, out, d * out, 2 * d * out)]

    def emit(self, b, node, ins):
        """Core: a ``vec`` instruction, one channel a cycle."""
        from est.compiler.program import VEC_OPS

        out = b.vector(node, self.check(node, ins))
        b.add("vec", sub=VEC_OPS[self.op], n=out.n, win=1, **b.vectors[b.input_of(node)].src(),
              **b.vectors[b.input_of(node, 1)].src2(), **out.dst())

    def lower(self, b, node, ins):
        from est.hw.sew import SEWJoin

        out, skip = ins
        join = b.add(node, SEWJoin(skip.spec.n, self.op, skip.spec.bits))
        b.connect(out.stream, join.out)
        b.connect(skip.stream, join.skip)
        value = join.o.payload.as_value()
        return b.lowered(b.flat(join.o, value, Spec(skip.spec.n, join.out_bits)),
                         {"values": (join.o, value)})
