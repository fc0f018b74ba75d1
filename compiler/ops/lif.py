"""``lif``: an array of integer leaky integrate-and-fire neurons (docs/semantics.md 1.2):
``v1 = sat(v - (v >>> leak_shift) + current)``, spike where ``v1 >= threshold``, reset by
subtraction or to zero. Input: a convolution's current, or an unsigned vector (SSA counts).
Current-based (``syn_bits`` > 0, NIR's CubaLIF): the current first goes through a synaptic
current per neuron, ``i = sat(i - (i >>> syn_shift) + current, syn_bits)``, which the
membrane then takes (a second state word a neuron; on the core a readout before the array).

Hardware: :class:`~est.hw.neurons.LIFArray` (``lanes`` neurons per cycle, membranes in block
RAM or flip-flops, thresholds in logic), fed through :class:`~est.hw.streams.VectorGroups`
when its input is a vector; two cycles per group of ``lanes`` neurons. On the core: a ``lif``
instruction, one neuron a cycle.
"""

from dataclasses import dataclass, replace

import numpy as np

from est import EstError
from est.compiler.graph import MAX_BITS, IRError, Op, Spec, check_integers
from est.compiler.graph import Field as F
from est.sim import golden


def check_neurons(node: str, threshold: np.ndarray, leak_shift, v_bits, reset, n: int) -> None:
    """The checks every LIF array takes (here and inside the recurrence)."""
    if not isinstance(v_bits, int) or not 2 <= v_bits <= MAX_BITS:
        raise IRError(node, "v_bits", f"expected 2..{MAX_BITS}, got {v_bits}")
    check_integers(node, "threshold", threshold, MAX_BITS, (n,))
    hi = golden.signed_range(v_bits)[1]
    if threshold.min() < 1:
        raise IRError(node, "threshold", f"expected integers >= 1, got {threshold.min()}")
    if threshold.max() > hi:
        raise IRError(node, "threshold", f"{threshold.max()} does not fit v_bits={v_bits} (at "
                                         f"most {hi}); compile with a larger --max-v-bits (up "
                                         f"to {MAX_BITS}), or retrain with a threshold nearer "
                                         f"the weights' scale")
    if reset not in golden.RESET_MODES:
        raise IRError(node, "reset", f"expected one of {golden.RESET_MODES}, got {reset!r}")
    if leak_shift is not None and (not isinstance(leak_shift, int) or isinstance(
            leak_shift, bool) or not 0 <= leak_shift < v_bits):
        raise IRError(node, "leak_shift", f"expected null (no leak) or 0..{v_bits - 1}, got "
                                          f"{leak_shift}")


def neuron_bits(v: np.ndarray, current: np.ndarray, threshold: np.ndarray, leak_shift,
                max_v_bits: int, reset: str) -> tuple[int, int]:
    """(width, width needed) of a LIF array from a wide run: ``v`` its membranes after reset,
    ``current`` its input, both ``[bins, n]``. Needed: every value before reset and every
    threshold; chosen: one bit more, at most ``max_v_bits``, wide enough for the leak."""
    prev = np.vstack([np.zeros((1, v.shape[1]), np.int64), v[:-1]])
    v1 = golden.leak(prev, leak_shift) + current
    if reset == "subtract_delayed":
        v1 = v1 - np.where(prev >= threshold, threshold, 0)
    need = golden.signed_bits(min(int(v1.min()), 0), max(int(v1.max()), int(threshold.max())))
    return max(min(need + 1, max_v_bits), (leak_shift or 0) + 1), need


def lif_update(v, current, theta, leak_shift, v_bits: int, reset: str):
    """One bin of an integer LIF array in PyTorch: (spikes as int64, membranes after reset)."""
    import torch

    delayed = (torch.where(v >= theta, theta, 0) if reset == "subtract_delayed" else 0)
    v1 = torch.clamp(golden.leak(v, leak_shift) + current - delayed,
                     *golden.signed_range(v_bits))
    s = v1 >= theta
    if reset == "subtract_delayed":
        return s.to(torch.int64), v1
    return s.to(torch.int64), torch.where(
        s, v1 - theta if reset == "subtract" else torch.zeros_like(v1), v1)


@dataclass(frozen=True)
class LIF(Op):
    threshold: np.ndarray  # [n] >= 1
    leak_shift: int | None
    v_bits: int
    reset: str = "subtract"
    syn_shift: int | None = None
    syn_bits: int = 0

    KIND = "lif"

    def check(self, node, ins):
        x = ins[0]
        if x.form == "vector" and x.signed:
            raise IRError(node, "inputs", f"a neuron array reads a current or an unsigned "
                                          f"vector, got {x}")
        check_neurons(node, self.threshold, self.leak_shift, self.v_bits, self.reset, x.n)
        if self.syn_bits:
            if not isinstance(self.syn_bits, int) or not 2 <= self.syn_bits <= MAX_BITS:
                raise IRError(node, "syn_bits", f"expected 0 (no synaptic current) or "
                                                f"2..{MAX_BITS}, got {self.syn_bits}")
            if x.form != "current":
                raise IRError(node, "inputs", f"a current-based array reads a convolution's "
                                              f"current, got {x}")
            if self.syn_shift is not None and not 0 <= self.syn_shift < self.syn_bits:
                raise IRError(node, "syn_shift", f"expected null (no leak) or "
                                                 f"0..{self.syn_bits - 1}, got {self.syn_shift}")
        return Spec(x.n, 1)

    def fields(self, node, ins):
        n = ins[0].n
        syn = [F(f"{node}/i", n, self.syn_bits, True)] if self.syn_bits else []
        return [F(f"{node}/spikes", n, 1, False), F(f"{node}/v", n, self.v_bits, True), *syn]

    def init(self, ins):
        return (golden.LIFParams(self.threshold.astype(np.int64), self.leak_shift, self.v_bits,
                                 self.reset, self.syn_shift, self.syn_bits),
                golden.lif_init(ins[0].n))

    def step(self, xs, state):
        params, lif = state
        out, lif = golden.lif_step(xs[0], lif, params)
        syn = {"i": lif.i} if self.syn_bits else {}
        return {"spikes": out.spikes.astype(np.int64), "v": lif.v, **syn,
                "saturated": out.saturated}, (params, lif)

    def seq(self, xs, bins):
        import torch

        current = xs[0]
        theta = torch.as_tensor(self.threshold.astype(np.int64))
        v = torch.zeros(current.shape[1], dtype=torch.int64)
        spikes, vs = torch.zeros_like(current), torch.zeros_like(current)
        i, syn = torch.zeros_like(v), torch.zeros_like(current)
        for t in range(bins):
            c = current[t]
            if self.syn_bits:  # the synaptic current first; it is what the membrane takes
                i = c = torch.clamp(golden.leak(i, self.syn_shift) + c,
                                    *golden.signed_range(self.syn_bits))
                syn[t] = i
            spikes[t], v = lif_update(v, c, theta, self.leak_shift, self.v_bits, self.reset)
            vs[t] = v
        return {"spikes": spikes, "v": vs, **({"i": syn} if self.syn_bits else {})}

    def rescale(self, q, scale):
        """The thresholds times the scale of the weights that feed them, in integers >= 1."""
        return replace(self, threshold=np.maximum(1, q.ints("threshold", self.threshold * scale)))

    def fit_width(self, node, trace, current, max_v_bits):
        """This array at the width its calibration run needs; returns (op, bits needed). A
        current-based array's synaptic currents get their own width by the readout's rule
        (:func:`~est.compiler.ops.readout.integrator_bits`), and the membrane takes them as
        its current."""
        from est.compiler.ops.readout import integrator_bits

        syn = {}
        if self.syn_bits:
            current = trace[f"{node}/i"]
            syn = {"syn_bits": integrator_bits(current, self.syn_shift, max_v_bits)[0]}
        bits, need = neuron_bits(trace[f"{node}/v"], current, self.threshold, self.leak_shift,
                                 max_v_bits, self.reset)
        return replace(self, v_bits=bits, **syn), need

    def cost(self, node, ins, ctx):
        """The neuron array (and its input cut into groups when it reads a vector)."""
        from est.hw.synapse import ceil_div

        n = ins[0].n
        luts, ffs, brams = ctx.neurons(n, self.v_bits + self.syn_bits, True)
        cycles = 0 if ins[0].form == "current" else ceil_div(n, ctx.lanes)
        return [ctx.vector(node, "lif", n, self.v_bits, luts, ffs, cycles, 2 * n * self.v_bits,
                           brams)]

    def own_history(self):
        """A delayed reset reads the array's spikes of the bin before (on the core)."""
        return 2 if self.reset == "subtract_delayed" else 1

    def emit(self, b, node, ins):
        """Core: the convolution's instruction, then ``lif``: one neuron a cycle, its spikes
        into the node's ring, its accumulators cleared for the next convolution. A delayed
        reset (``subtract_delayed``) is a depthwise ``conv`` between them, which adds
        ``-threshold`` into the current of each neuron that spiked the bin before, and a
        ``lif`` that keeps the membrane of a neuron that spikes (``no_reset``). A current-based
        array first runs its synaptic current as a ``readout`` (its own neuron block, traced
        as ``<node>/i``) that writes each value as the bias of the membrane it feeds
        (``to_bias``: the block just after), the accumulators cleared, so the ``lif`` takes
        the synaptic current as its current. An array that reads a vector (SSA's counts) takes
        it through a depthwise ``conv`` of weights 1."""
        from est.compiler.program import neuron_fields

        n = ins[0].n
        if self.syn_bits > b.spec.param_bits:
            raise EstError(f"node '{node}': its synaptic current needs {self.syn_bits} bits, the "
                           f"core passes it on in its {b.spec.param_bits}-bit bias words; "
                           f"compile with --backend dataflow")
        bias = b.take_current(node) if ins[0].form == "current" else b.vector_current(node)
        out = b.vector(node, Spec(n, 1))
        if self.syn_bits:  # the synaptic current: a readout whose values are the next biases
            syn = b.neuron_block(f"{node}/i", np.zeros(n, np.int64), bias, self.syn_bits)
            b.add("readout", n=n, nbase=syn,
                  **neuron_fields(node, self.syn_shift, self.syn_bits, to_bias=True))
            bias = np.zeros(n, np.int64)
        if self.reset == "subtract_delayed":
            b.delayed_reset(node, self.threshold, out)
        nbase = b.neuron_block(node, self.threshold, bias, self.v_bits)
        assert not self.syn_bits or nbase == syn + n  # where the readout writes the biases
        b.add("lif", n=ins[0].n, nbase=nbase, **out.dst(),
              **neuron_fields(node, self.leak_shift, self.v_bits, self.reset))

    def lower(self, b, node, ins):
        from est.hw.neurons import LIFArray

        n = ins[0].spec.n
        groups, acc = b.groups(node, ins[0])
        neurons = b.add(node, LIFArray(n, b.lanes, acc, self.v_bits, self.leak_shift,
                                       self.threshold.astype(np.int64), self.reset,
                                       trace=b.trace, state_in_logic=b.state_in_logic,
                                       syn_shift=self.syn_shift, syn_bits=self.syn_bits))
        b.connect(groups, neurons.i)
        return b.neuron_outputs(neurons.o, n, self.v_bits)
