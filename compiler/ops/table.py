"""``table``: a constant 0/1 table read by position, row ``t mod P`` at bin ``t`` (the CPG-PE
spikes, docs/semantics.md 8.1).

Hardware: :class:`~est.hw.sew.CPGTable`: a ``P``-word ROM and a position counter; latency one cycle.
"""

from dataclasses import dataclass

import numpy as np

from est.compiler.graph import IRError, Op, Spec


@dataclass(frozen=True)
class Table(Op):
    table: np.ndarray  # [positions, n] of 0/1

    KIND = "table"
    ARITY = (0, 0)
    TENSOR, HW = "spikes", False

    def check(self, node, ins):
        t = self.table
        if (not isinstance(t, np.ndarray) or t.ndim != 2 or 0 in t.shape
                or not np.issubdtype(t.dtype, np.integer) or not np.isin(t, (0, 1)).all()):
            raise IRError(node, "table", "expected a [positions, n] integer array of 0/1")
        return Spec(t.shape[1], 1)

    def init(self, ins):
        return 0

    def step(self, xs, t):
        return {"spikes": self.table[t % len(self.table)].astype(np.int64)}, t + 1

    def seq(self, xs, bins):
        import torch

        pos = torch.arange(bins) % self.table.shape[0]
        return {"spikes": torch.as_tensor(self.table.astype(np.int64))[pos]}

    def cost(self, node, ins, ctx):
        from est.boards.spec import memory_cost

        p, n = self.table.shape
        brams, luts = memory_cost(p, n, False, ctx.board)
        return [ctx.vector(node, "rom", n, 1, luts + 20, 8 + n, 0, p * n, brams)]

    def emit(self, b, node, ins):
        """Core: the table's rows loaded into the activation memory with the model; a
        ``table`` instruction copies row ``t mod P`` into the node's ring (the position in a
        neuron word)."""
        rows = b.constant_rows(self.table.astype(np.int64))
        nbase = b.neuron_block(node, np.zeros(1, np.int64), np.zeros(1, np.int64), 2)
        out = b.vector(node, Spec(self.table.shape[1], 1))
        b.add("table", n=out.words, src=rows.base, src_stride=rows.stride,
              period=self.table.shape[0], nbase=nbase, **out.dst())

    def lower(self, b, node, ins):
        from est.hw.sew import CPGTable

        rom = b.add(node, CPGTable(self.table))
        return b.lowered(b.port(rom.o, Spec(self.table.shape[1], 1)))
