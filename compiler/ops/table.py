"""``table``: a constant table of small non-negative integers read by a phase accumulator:
with the default step, row ``t mod P`` at bin ``t`` (the CPG-PE spikes, docs/semantics.md 8.1);
with a fractional step, a rhythm of any period (the fitted rhythms, 8.1); ``start``, the
accumulator at the stream's first bin (a rhythm's phase where the stream starts).

Hardware: :class:`~est.hw.sew.CPGTable`: a ``P``-word ROM and a phase accumulator; latency one
cycle. On the core: the ``table`` instruction (docs/core.md), its fractional advance in the
core's phase unit (``CoreSpec.phase``).
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from est.compiler.graph import IRError, Op, Spec


@dataclass(frozen=True)
class Table(Op):
    table: np.ndarray  # [positions, n] of integers 0..2^bits - 1
    advance: int = 1 << 15  # rows the accumulator moves a bin, FRAC fraction bits (1 row)
    start: int = 0  # the accumulator at bin 0, 0 .. (P << FRAC) - 1

    KIND = "table"
    ARITY = (0, 0)
    TENSOR, HW = "spikes", False
    FRAC: ClassVar[int] = 15
    MAX_BITS: ClassVar[int] = 8

    @property
    def bits(self) -> int:
        """Bits of one value: 1 for a 0/1 table (spikes), else the largest value's."""
        return max(1, int(self.table.max()).bit_length())

    def check(self, node, ins):
        t = self.table
        if (not isinstance(t, np.ndarray) or t.ndim != 2 or 0 in t.shape
                or not np.issubdtype(t.dtype, np.integer) or t.min() < 0
                or t.max() >= 1 << self.MAX_BITS):
            raise IRError(node, "table", f"expected a [positions, n] integer array of values "
                          f"0..{(1 << self.MAX_BITS) - 1}")
        top = min(0xFFFF, t.shape[0] << self.FRAC)
        a = self.advance
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not 1 <= a <= top:
            raise IRError(node, "advance", f"expected a whole number 1..{top} (rows a bin "
                          f"times 2^{self.FRAC}), got {a!r}")
        s, wrap = self.start, t.shape[0] << self.FRAC
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s < wrap:
            raise IRError(node, "start", f"expected a whole number 0..{wrap - 1} (the "
                          f"accumulator at bin 0: rows times 2^{self.FRAC}), got {s!r}")
        return Spec(t.shape[1], self.bits)

    @property
    def fractional(self) -> bool:
        """Whether the accumulator's fraction is ever nonzero (an advance or a start that is
        not whole rows): what needs the core's phase unit."""
        whole = (1 << self.FRAC) - 1
        return self.advance != 1 << self.FRAC or bool(self.start & whole)

    def init(self, ins):
        return int(self.start)

    def step(self, xs, acc):
        """Row ``acc >> FRAC``; then ``acc + advance``, less ``P << FRAC`` when it reaches it."""
        out = self.table[acc >> self.FRAC].astype(np.int64)
        acc += int(self.advance)
        wrap = self.table.shape[0] << self.FRAC
        return {"spikes": out}, acc - wrap if acc >= wrap else acc

    def seq(self, xs, bins):
        """All bins at once: ``acc(t) = (start + t advance) mod (P << FRAC)`` (``advance <= P
        << FRAC`` and ``start < P << FRAC``, so the step's one subtraction is that remainder)."""
        import torch

        acc = ((int(self.start) + torch.arange(bins) * int(self.advance))
               % (self.table.shape[0] << self.FRAC))
        return {"spikes": torch.as_tensor(self.table.astype(np.int64))[acc >> self.FRAC]}

    def cost(self, node, ins, ctx):
        from est.boards.spec import memory_cost

        p, n = self.table.shape
        width = n * self.bits  # a ROM word: the row
        # a fractional advance: the accumulator's FRAC fraction bits, a flip-flop and an adder
        # LUT each (one row a bin: a row counter)
        frac = self.FRAC if self.fractional else 0
        brams, luts = memory_cost(p, width, False, ctx.board)
        return [ctx.vector(node, "rom", n, self.bits, luts + 20 + frac, 8 + width + frac, 0,
                           p * width, brams)]

    def emit(self, b, node, ins):
        """Core: the table's rows loaded into the activation memory with the model (each in
        its output vector's words), turned by ``start``'s whole rows (row ``k`` holds row
        ``(k + start >> FRAC) mod P``, so the accumulator starts at ``start``'s fraction); a
        ``table`` instruction copies row ``acc >> FRAC`` into the node's ring, the phase
        accumulator ``acc`` in a neuron word, the advance in its threshold word (unsigned 16
        bits) and the starting fraction in its bias word. A fractional advance or start needs
        the core's phase unit (``CoreSpec.phase``); ``P << FRAC`` must fit a neuron word."""
        from est import EstError
        from est.compiler.program import MAX_PERIOD

        p, n = self.table.shape
        if self.fractional and not b.spec.phase:
            one = 1 << self.FRAC
            raise EstError(f"node '{node}': its table advances {self.advance / one:g} rows a "
                           f"bin (advance {self.advance}) from row {self.start / one:g} (start "
                           f"{self.start}), a fraction of a row, which needs a core with its "
                           f"phase unit: compile for a core with phase=True (CoreSpec.phase)")
        most = min(MAX_PERIOD, 1 << (b.spec.state_bits - self.FRAC))
        if p > most:
            raise EstError(f"node '{node}': its table has {p} rows, the core's table "
                           f"instruction reads at most {most} (at most {MAX_PERIOD}, and its "
                           f"phase accumulator, rows << {self.FRAC}, in a {b.spec.state_bits}-"
                           f"bit neuron word); compile with --backend dataflow")
        turned = np.roll(self.table.astype(np.int64), -(self.start >> self.FRAC), axis=0)
        rows = b.constant_rows(turned, self.bits)
        fraction = self.start & ((1 << self.FRAC) - 1)
        nbase = b.neuron_block(node, np.array([self.advance], np.int64),
                               np.array([fraction], np.int64),
                               ((p << self.FRAC) - 1).bit_length(), seed=True)
        out = b.vector(node, Spec(n, self.bits))
        b.add("table", n=out.words, src=rows.base, src_stride=rows.stride, period=p,
              nbase=nbase, **out.dst())

    def lower(self, b, node, ins):
        from est.hw.sew import CPGTable

        rom = b.add(node, CPGTable(self.table, int(self.advance), int(self.start)))
        return b.lowered(b.port(rom.o, Spec(self.table.shape[1], self.bits)))
