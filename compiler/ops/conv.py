"""``conv``: causal convolution over the input history, ``current_t = bias + sum_lag
weight[lag] @ x_{t-lag}`` (zero history before bin 0; kernel 1 is a dense layer;
docs/semantics.md 8.2), the current of the one neuron array that reads it.

Hardware: a :class:`~est.hw.synapse.SynapticAccumulator` over the window of a
:class:`~est.hw.conv.HistoryWindow` (kernel 1: the accumulator alone), weights in a block-RAM
ROM of ``ceil(n_out / lanes) * kernel * n_in`` words. Latency ``(groups - 1) * max(kernel *
n_in, 2) + kernel * n_in + 3`` cycles (docs/semantics.md 7), one more when ``kernel > 1``.
On the core: event-driven, ``groups`` cycles per nonzero input value and lag (docs/core.md).
"""

from dataclasses import dataclass

import numpy as np

from est.compiler.graph import (
    MAX_BITS,
    WEIGHT_MAX_BITS,
    Op,
    Spec,
    check_acc,
    check_integers,
    check_vector,
)
from est.sim import golden


def weight_bits(w: np.ndarray) -> int:
    """The narrowest signed width (at least 2) that holds every value of ``w``."""
    return golden.signed_bits(min(int(w.min()), 0), max(int(w.max()), 0)) if w.size else 2


@dataclass(frozen=True)
class Conv(Op):
    weight: np.ndarray  # [kernel, n_out, n_in], lag 0 first
    bias: np.ndarray  # [n_out]

    KIND = "conv"
    TENSOR, HW = "current", False

    def check(self, node, ins):
        x = check_vector(node, ins[0], "a convolution")
        check_integers(node, "weight", self.weight, WEIGHT_MAX_BITS, (None, None, x.n))
        check_integers(node, "bias", self.bias, MAX_BITS, (self.weight.shape[1],))
        acc = golden.conv_acc_bits(self.weight, self.bias, x.bits)
        check_acc(node, acc)
        return Spec(self.weight.shape[1], acc, True, "current")

    def quantize(self, q, neurons):
        """This convolution in integers (the pass :func:`est.compiler.passes.quantize`): one
        scale per output channel over every lag and input; returns (op, scale)."""
        s = q.scale([np.moveaxis(self.weight, 1, 0)],
                    neurons.threshold if hasattr(neurons, "threshold") else 1.0)
        if hasattr(neurons, "tie_scales"):  # an oscillator readout's pairs share a scale
            s = neurons.tie_scales(s)
        return Conv(q.weights("weight", self.weight, s, 1), q.ints("bias", self.bias * s)), s

    def init(self, ins):
        return (golden.ConvParams(self.weight.astype(np.int64), self.bias.astype(np.int64)),
                golden.history_init(self.weight.shape[0], ins[0].n))

    def step(self, xs, state):
        params, hist = state
        if hist.x.shape[0] == 0:  # kernel 1: a dense layer, no history to keep
            return {"current": params.bias + params.weight[0] @ xs[0]}, state
        current, hist = golden.conv_step(xs[0], hist, params)
        return {"current": current}, (params, hist)

    def seq(self, xs, bins):
        import torch

        x = xs[0]
        w = torch.as_tensor(self.weight.astype(np.int64))
        out = torch.as_tensor(self.bias.astype(np.int64)).expand(bins, -1).clone()
        for lag in range(min(w.shape[0], bins)):
            out[lag:] += x[: bins - lag] @ w[lag].T
        return {"current": out}

    def cost(self, node, ins, ctx):
        """The synapses: weight ROM (block RAM when deep), ``lanes`` multiply-adders, the
        input register and, for ``kernel > 1``, the history window."""
        from est.boards.spec import memory_cost, mux_luts
        from est.compiler.costs import Stage
        from est.hw.synapse import ceil_div

        x_bits, lanes = ins[0].bits, ctx.lanes
        k, n_out, n_in = self.weight.shape
        wb = weight_bits(self.weight)
        acc = golden.conv_acc_bits(self.weight, self.bias, x_bits)
        groups, inputs = ceil_div(n_out, lanes), k * n_in
        ops = inputs * n_out
        w_brams, w_luts = memory_cost(groups * inputs, lanes * wb, False, ctx.board)
        luts = (x_bits * mux_luts(inputs) + lanes * (wb * x_bits + 2 * acc) + w_luts
                + lanes * acc * ceil_div(groups, 16) + 40)
        ffs = (2 * k - 1) * n_in * x_bits + 2 * lanes * acc + 20
        port_bits = max(width for _, width in ctx.board.bram_configs)  # widest block RAM port
        memory_bound = ceil_div(ops * wb, w_brams * port_bits) if w_brams else 0
        return [Stage(node, "conv", f"{k}x{n_out}x{n_in}", ops,
                      (groups - 1) * max(inputs, 2) + inputs + 3 + (k > 1), ceil_div(ops, lanes),
                      memory_bound, ops * wb + n_out * acc + (k - 1) * n_in * x_bits, w_brams,
                      luts, ffs)]

    def history(self, ins):
        return [self.weight.shape[0]]

    def emit(self, b, node, ins):
        """Core: ``conv`` instructions (one per input vector and weight plane), run just
        before the neuron array that reads the current: per lag, the input's words scanned for
        nonzero values (events), and each event's weight row added into the accumulators,
        ``lanes`` weights a cycle."""
        b.current(node, b.convolution(node, self.weight, b.source(node)), self.bias)

    def lower(self, b, node, ins):
        from est.hw.conv import CausalConv
        from est.hw.synapse import SynapticAccumulator

        x = ins[0].spec
        weight, bias = self.weight.astype(np.int64), self.bias.astype(np.int64)
        acc = golden.conv_acc_bits(weight, bias, x.bits)
        wb = weight_bits(weight)
        comp = (SynapticAccumulator(weight[0], bias, b.lanes, acc, wb, x.bits)
                if weight.shape[0] == 1 else CausalConv(weight, bias, b.lanes, wb, x.bits))
        b.add(node, comp)
        b.connect(ins[0].stream, comp.i)
        return b.lowered(b.port(comp.o, Spec(weight.shape[1], acc, True, "current")))
