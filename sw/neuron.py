"""Spiking neurons for training: the surrogate spike and a LIF layer run over a whole sequence.

Forward passes follow docs/semantics.md with real numbers: ``v <- beta * v + I`` (``beta =
1 - 2**-k``, exact in hardware), fire ``s = [v >= threshold]``, then reset by subtraction
(``v - threshold * s``) or to zero (``v * (1 - s)``) in the same bin, or (``subtract_delayed``,
snnTorch's ``reset_delay``) by subtraction in the next bin, after the leak:
``v <- beta * v + I - threshold * s_prev``, the membrane kept unreset. The Heaviside step has a
fast-sigmoid surrogate derivative ``1 / (1 + 10 |v - threshold|)**2`` in the backward pass.

:class:`LIFSequence` is the same computation as a Python loop of autograd operations over the
bins, fused into one autograd node with a hand-written backward pass (back-propagation through
time, reset path included): about five times fewer graph nodes, which is what makes training on
two CPU cores take minutes instead of tens of minutes. ``tests/test_neuron.py`` checks that its
spikes and gradients equal the step-by-step autograd version.
"""

import torch


def surrogate(x: torch.Tensor) -> torch.Tensor:
    """d spike / d x of the fast-sigmoid surrogate at ``x = v - threshold``."""
    return 1.0 / (1.0 + 10.0 * x.abs()) ** 2


class SpikeFn(torch.autograd.Function):
    """Heaviside forward ``[x >= 0]``, fast-sigmoid surrogate backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * surrogate(x)


def beta_from_shift(shift: int | None) -> float:
    """The leak factor of ``v - (v >> shift)``: ``1 - 2**-shift``; ``None`` is no leak."""
    return 1.0 if shift is None else 1.0 - 2.0 ** -shift


class LIFSequence(torch.autograd.Function):
    """Spikes ``[T, ...]`` of a LIF layer driven by ``current [T, ...]``, state zero at ``t=0``."""

    @staticmethod
    def forward(ctx, current, beta: float, threshold: float, reset: str):
        v = torch.zeros_like(current[0])
        v_fire = torch.empty_like(current)  # membrane after integration, before reset
        s = torch.zeros_like(v)
        for t in range(current.shape[0]):
            v = beta * v + current[t]
            if reset == "subtract_delayed":  # last bin's spike, after the leak
                v = v - threshold * s
            v_fire[t] = v
            s = (v >= threshold).to(v.dtype)
            if reset == "subtract":
                v = v - threshold * s
            elif reset == "zero":
                v = v * (1 - s)
        ctx.save_for_backward(v_fire)
        ctx.beta, ctx.threshold, ctx.reset = beta, threshold, reset
        return (v_fire >= threshold).to(current.dtype)

    @staticmethod
    def backward(ctx, grad_spikes):
        (v_fire,) = ctx.saved_tensors
        beta, threshold = ctx.beta, ctx.threshold
        x = v_fire - threshold
        ds = surrogate(x)
        if ctx.reset == "subtract":
            dnext = beta * (1.0 - threshold * ds)  # d(beta (v - threshold s))/dv
        elif ctx.reset == "zero":
            dnext = beta * ((1.0 - (x >= 0).to(x.dtype)) - v_fire * ds)  # d(beta v (1 - s))/dv
        else:
            dnext = beta - threshold * ds  # d(beta v - threshold s)/dv
        grad_current = torch.empty_like(v_fire)
        g_next = torch.zeros_like(v_fire[0])  # dL / d(v_fire at t + 1)
        for t in range(v_fire.shape[0] - 1, -1, -1):
            g = grad_spikes[t] * ds[t] + g_next * dnext[t]
            grad_current[t] = g
            g_next = g
        return grad_current, None, None, None


def leaky_integral(current: torch.Tensor, beta: float,
                   v0: torch.Tensor | None = None) -> torch.Tensor:
    """``v_t = beta v_{t-1} + current_t`` from ``v = v0`` (default 0), over the bins of
    ``current`` ``[T, ...]``: the readout, and a current-based layer's synaptic current;
    ``beta`` 0: the current itself."""
    if beta == 0.0:
        return current
    v, outs = torch.zeros_like(current[0]) if v0 is None else v0, []
    for t in range(current.shape[0]):
        v = beta * v + current[t]
        outs.append(v)
    return torch.stack(outs)


def lif_sequence(current: torch.Tensor, beta: float, threshold: float,
                 reset: str = "subtract") -> torch.Tensor:
    """Spikes of a LIF layer over ``current [T, ...]`` (see :class:`LIFSequence`); ``reset``
    one of :data:`est.sim.golden.RESET_MODES`."""
    return LIFSequence.apply(current, beta, threshold, reset)


class RecurrentLIFSequence(torch.autograd.Function):
    """A LIF layer whose input adds its own past spikes, per channel: the temporal processing
    unit. ``v_t = beta v_{t-1} + drive_t + sum_j w_rec[j] y_{t-1-j}`` (``w_rec [k, n]``), fire
    and reset as :class:`LIFSequence`; ``drive [T, ..., n]``."""

    @staticmethod
    def forward(ctx, drive, w_rec, beta: float, threshold: float, subtract: bool):
        k = w_rec.shape[0]
        v = torch.zeros_like(drive[0])
        v_fire, y = torch.empty_like(drive), torch.zeros_like(drive)
        for t in range(drive.shape[0]):
            v = beta * v + drive[t]
            for j in range(min(k, t)):
                v = v + w_rec[j] * y[t - 1 - j]
            v_fire[t] = v
            y[t] = (v >= threshold).to(v.dtype)
            v = v - threshold * y[t] if subtract else v * (1 - y[t])
        ctx.save_for_backward(v_fire, y, w_rec)
        ctx.beta, ctx.threshold, ctx.subtract = beta, threshold, subtract
        return y

    @staticmethod
    def backward(ctx, grad_y):
        v_fire, y, w_rec = ctx.saved_tensors
        beta, threshold, k, n_bins = ctx.beta, ctx.threshold, w_rec.shape[0], v_fire.shape[0]
        x = v_fire - threshold
        ds = surrogate(x)
        dreset = 1.0 - threshold * ds if ctx.subtract else (1.0 - y) - v_fire * ds
        gv = torch.zeros_like(v_fire)
        for t in range(n_bins - 1, -1, -1):
            dy = grad_y[t]
            for j in range(min(k, n_bins - 1 - t)):
                dy = dy + w_rec[j] * gv[t + 1 + j]
            g = dy * ds[t]
            if t + 1 < n_bins:
                g = g + beta * gv[t + 1] * dreset[t]
            gv[t] = g
        grad_w = torch.stack([(gv[1 + j:] * y[:n_bins - 1 - j]).reshape(-1, y.shape[-1]).sum(0)
                              for j in range(k)])
        return gv, grad_w, None, None, None


def recurrent_lif_sequence(drive: torch.Tensor, w_rec: torch.Tensor, beta: float,
                           threshold: float, reset: str = "subtract") -> torch.Tensor:
    """Spikes of the temporal processing unit's LIF layer (see :class:`RecurrentLIFSequence`)."""
    return RecurrentLIFSequence.apply(drive, w_rec, beta, threshold, reset == "subtract")
