"""``recurrence``: the temporal processing unit (TPU), a depthwise recurrence on the unit's own
past spikes feeding a LIF array (docs/semantics.md 8.2):
``current = bias + w_in * x_t + sum_j w_rec[j-1] * y_{t-j}`` (j = 1..kernel), ``y`` = spikes.

Hardware: :class:`~est.hw.tpu.TemporalUnit` (``1 + kernel`` multipliers per lane, the past
spikes in shift registers, its own LIF array); latency about ``groups + 2`` cycles. On the
core: two depthwise ``conv`` instructions and a ``lif``.
"""

from dataclasses import dataclass, replace

import numpy as np

from est import EstError
from est.compiler.graph import (
    MAX_BITS,
    WEIGHT_MAX_BITS,
    Op,
    Spec,
    check_acc,
    check_integers,
    check_shape,
    check_vector,
)
from est.compiler.graph import Field as F
from est.compiler.ops.conv import weight_bits
from est.compiler.ops.lif import check_neurons, lif_update, neuron_bits
from est.sim import golden


@dataclass(frozen=True)
class Recurrence(Op):
    w_in: np.ndarray  # [d]
    w_rec: np.ndarray  # [kernel, d]: lag 1 first
    bias: np.ndarray  # [d]
    threshold: np.ndarray  # [d]
    leak_shift: int | None
    v_bits: int
    reset: str = "subtract"

    KIND = "recurrence"

    def acc_bits(self, x_bits: int) -> int:
        return golden.tpu_acc_bits(self.w_in, self.w_rec, self.bias, x_bits)

    def check(self, node, ins):
        x = check_vector(node, ins[0], "a recurrence")
        for fld in ("w_in", "w_rec"):
            check_integers(node, fld, getattr(self, fld), WEIGHT_MAX_BITS)
        check_integers(node, "bias", self.bias, MAX_BITS)
        check_shape(node, "w_in", self.w_in, (x.n,))
        check_shape(node, "w_rec", self.w_rec, (None, x.n))
        check_shape(node, "bias", self.bias, (x.n,))
        check_acc(node, self.acc_bits(x.bits))
        check_neurons(node, self.threshold, self.leak_shift, self.v_bits, self.reset, x.n)
        return Spec(x.n, 1)

    def quantize(self, q, neurons):
        """Weights, bias and threshold in integers (the pass :func:`est.compiler.passes.quantize`):
        ``w_in`` and ``w_rec`` share one scale per channel; returns (op, scale)."""
        s = q.scale([self.w_in[:, None], self.w_rec.T], self.threshold)
        return replace(self, w_in=q.weights("w_in", self.w_in, s, 0),
                       w_rec=q.weights("w_rec", self.w_rec, s, 1),
                       bias=q.ints("bias", self.bias * s),
                       threshold=np.maximum(1, q.ints("threshold", self.threshold * s))), s

    def fields(self, node, ins):
        n = ins[0].n
        return [F(f"{node}/spikes", n, 1, False), F(f"{node}/v", n, self.v_bits, True),
                F(f"{node}/current", n, self.acc_bits(ins[0].bits), True, hw=False)]

    def init(self, ins):
        d = ins[0].n
        return golden.lif_init(d), golden.history_init(self.w_rec.shape[0] + 1, d)

    def step(self, xs, state):
        lif, hist = state
        current = (self.bias.astype(np.int64) + self.w_in.astype(np.int64) * xs[0]
                   + (self.w_rec.astype(np.int64) * hist.x).sum(axis=0))
        params = golden.LIFParams(self.threshold.astype(np.int64), self.leak_shift, self.v_bits,
                                  self.reset)
        out, lif = golden.lif_step(current, lif, params)
        y = out.spikes.astype(np.int64)
        _, hist = golden.history_push(y, hist)
        return {"spikes": y, "v": lif.v, "current": current,
                "saturated": out.saturated}, (lif, hist)

    def seq(self, xs, bins):
        import torch

        x = xs[0]
        w_in, w_rec, bias, theta = (torch.as_tensor(a.astype(np.int64)) for a in (
            self.w_in, self.w_rec, self.bias, self.threshold))
        d, kk = x.shape[1], w_rec.shape[0]
        y = torch.zeros((bins + kk, d), dtype=torch.int64)  # rows 0..k-1: before bin 0
        vs, cur = (torch.zeros((bins, d), dtype=torch.int64) for _ in range(2))
        v = torch.zeros(d, dtype=torch.int64)
        for i in range(bins):
            cur[i] = bias + w_in * x[i] + (w_rec * y[i: i + kk].flip(0)).sum(dim=0)
            y[i + kk], v = lif_update(v, cur[i], theta, self.leak_shift, self.v_bits, self.reset)
            vs[i] = v
        return {"spikes": y[kk:], "v": vs, "current": cur}

    def fit_width(self, node, trace, current, max_v_bits):
        bits, need = neuron_bits(trace[f"{node}/v"], trace[f"{node}/current"], self.threshold,
                                 self.leak_shift, max_v_bits, self.reset)
        return replace(self, v_bits=bits), need

    def cost(self, node, ins, ctx):
        """``1 + kernel`` multipliers per lane, the past spikes, and the LIF array."""
        from est.boards.spec import mux_luts
        from est.compiler.costs import Stage
        from est.compiler.ops.conv import weight_bits
        from est.hw.synapse import ceil_div

        d, x_bits, lanes = ins[0].n, ins[0].bits, ctx.lanes
        acc = self.acc_bits(x_bits)
        wb = weight_bits(np.concatenate([self.w_in[None], self.w_rec]))
        k = self.w_rec.shape[0]
        groups = ceil_div(d, lanes)
        n_luts, n_ffs, n_brams = ctx.neurons(d, self.v_bits, True)
        ops = d * (1 + k)
        return [Stage(node, "tpu", f"{d}x(1+{k})", ops, groups + 2, groups, 0,
                      ops * wb + d * (acc + 2 * self.v_bits) + k * d, n_brams,
                      lanes * (wb * x_bits + (k + 1) * acc + wb * (k + 1) * mux_luts(groups))
                      + n_luts + 30, k * d + d * x_bits + lanes * acc + n_ffs)]

    def own_history(self):
        return 1 + self.w_rec.shape[0]

    def emit(self, b, node, ins):
        """Core: two depthwise ``conv`` instructions into the accumulators (one weight word a
        row), the input through ``w_in`` and the node's own past spikes (lags 1..kernel)
        through ``w_rec``, then a ``lif`` writing the spikes into the node's ring. A delayed
        reset (``subtract_delayed``) is ``-threshold`` added to ``w_rec``'s lag-1 row (the
        spike of the bin before) and a ``lif`` that keeps the membrane (``no_reset``)."""
        from est.compiler.program import neuron_fields

        d = self.w_in.shape[0]
        own = b.vector(node, Spec(d, 1))
        eye = np.eye(d, dtype=np.int64)
        w_rec = self.w_rec.astype(np.int64).copy()
        if self.reset == "subtract_delayed":
            w_rec[0] -= self.threshold.astype(np.int64)
            need, most = weight_bits(w_rec), 2 * b.spec.weight_bits - 1
            if need > most:
                raise EstError(f"node '{node}': the core does not run this delayed reset "
                               f"(subtract_delayed): it subtracts the thresholds through the "
                               f"lag-1 recurrent weights, which then need {need} bits, the "
                               f"core takes at most {most}; quantize to fewer bits "
                               f"(--weight-bits) or compile with --backend dataflow")
        convs = b.convolution(node, (self.w_in.astype(np.int64) * eye)[None], b.source(node),
                              depthwise=True)
        convs += b.convolution(node, w_rec[:, None, :] * eye[None], [(own, 0)], lag0=1,
                               depthwise=True, adds_to=node)
        for fields in convs:
            b.add("conv", **fields)
        nbase = b.neuron_block(node, self.threshold, self.bias.astype(np.int64), self.v_bits)
        b.add("lif", n=d, nbase=nbase, **own.dst(),
              **neuron_fields(node, self.leak_shift, self.v_bits, self.reset))

    def lower(self, b, node, ins):
        from est.hw.tpu import TemporalUnit

        x = ins[0].spec
        unit = b.add(node, TemporalUnit(
            self.w_in.astype(np.int64), self.w_rec.astype(np.int64), self.bias.astype(np.int64),
            b.lanes, x.bits, self.v_bits, self.leak_shift, self.threshold.astype(np.int64),
            self.reset, trace=b.trace, state_in_logic=b.state_in_logic))
        b.connect(ins[0].stream, unit.i)
        return b.neuron_outputs(unit.o, x.n, self.v_bits)
