"""``readout``: non-spiking integrators ``r = sat(r - (r >>> leak_shift) + current)``, the
network's output (docs/semantics.md 1.3); ``scale`` maps a value to a log-rate, ``value / scale``.

Hardware: :class:`~est.hw.neurons.ReadoutIntegrator`, ``lanes`` integrators per cycle; on the
core, a ``readout`` instruction, one integrator a cycle.
"""

from dataclasses import dataclass, replace

import numpy as np

from est.compiler.graph import MAX_BITS, WEIGHT_MAX_BITS, IRError, Op, Spec, check_shape
from est.sim import golden


def leaky_weight_bits(bits: int, leak_shift: int | None) -> int:
    """The width of the weights that feed a readout of ``leak_shift``: ``bits``, plus
    ``leak_shift`` for a leaky one (at most 16). Its leak ``r >>> k`` drops the low ``k`` bits,
    so it settles anywhere in a band ``2**k`` units wide: ``k`` more bits on the weights keep
    that band as narrow, against the weights, as one unit is for a readout without leak."""
    return min(bits + (leak_shift or 0), WEIGHT_MAX_BITS)


def integrator_bits(values: np.ndarray, leak_shift: int | None,
                    max_bits: int) -> tuple[int, int]:
    """(width, width needed) of a leaky integrator from a wide run of its ``values`` (there
    unsaturated, so they are its sums): one bit over the largest, at most ``max_bits``, wider
    than the leak shift. The readout's, and a current-based LIF array's synaptic current's."""
    need = golden.signed_bits(min(int(values.min()), 0), max(int(values.max()), 1))
    return max(min(need + 1, max_bits), (leak_shift or 0) + 1), need


@dataclass(frozen=True)
class Readout(Op):
    leak_shift: int | None
    v_bits: int
    scale: np.ndarray  # [n] float

    KIND = "readout"
    TENSOR = "v"

    def check(self, node, ins):
        x = ins[0]
        if x.form != "current":
            raise IRError(node, "inputs", f"a readout reads a convolution's current, got {x}")
        if not isinstance(self.v_bits, int) or not 2 <= self.v_bits <= MAX_BITS:
            raise IRError(node, "v_bits", f"expected 2..{MAX_BITS}, got {self.v_bits}")
        if self.leak_shift is not None and (not isinstance(self.leak_shift, int) or isinstance(
                self.leak_shift, bool) or not 0 <= self.leak_shift < self.v_bits):
            raise IRError(node, "leak_shift", f"expected null (no leak) or "
                                              f"0..{self.v_bits - 1}, got {self.leak_shift}")
        if not isinstance(self.scale, np.ndarray) or not np.issubdtype(self.scale.dtype,
                                                                        np.floating):
            raise IRError(node, "scale", "expected floats")
        check_shape(node, "scale", self.scale, (x.n,))
        if not (np.isfinite(self.scale).all() and (self.scale > 0).all()):
            raise IRError(node, "scale", "expected finite positive floats")
        return Spec(x.n, self.v_bits, True)

    def weight_bits(self, bits: int) -> int:
        """The width of the weights that feed it (:func:`leaky_weight_bits`)."""
        return leaky_weight_bits(bits, self.leak_shift)

    def rescale(self, q, scale):
        """Keeps the scale of the weights that feed it (:func:`est.compiler.passes.quantize`)."""
        return replace(self, scale=np.asarray(scale, np.float64))

    def init(self, ins):
        return golden.lif_init(ins[0].n)

    def step(self, xs, state):
        saturated, state = golden.integrator_step(
            xs[0], state, golden.IntegratorParams(self.leak_shift, self.v_bits))
        return {"v": state.v, "saturated": saturated}, state

    def seq(self, xs, bins):
        import torch

        lo, hi = golden.signed_range(self.v_bits)
        current = xs[0]
        r = torch.zeros(current.shape[1], dtype=torch.int64)
        out = torch.zeros_like(current)
        for t in range(bins):
            r = torch.clamp(golden.leak(r, self.leak_shift) + current[t], lo, hi)
            out[t] = r
        return {"v": out}

    def fit_width(self, node, trace, current, max_v_bits):
        """One bit over the largest value of the calibration run (at most ``max_v_bits``,
        wider than the leak shift); returns (op, bits needed)."""
        bits, need = integrator_bits(trace[f"{node}/v"], self.leak_shift, max_v_bits)
        return replace(self, v_bits=bits), need

    def cost(self, node, ins, ctx):
        n = ins[0].n
        luts, ffs, brams = ctx.neurons(n, self.v_bits, False)
        return [ctx.vector(node, "readout", n, self.v_bits, luts, ffs, 0, 2 * n * self.v_bits,
                           brams)]

    def emit(self, b, node, ins):
        """Core: the convolution's instruction, then ``readout``: one integrator a cycle, the
        values kept in the neuron memory (the ``out`` instructions send them)."""
        from est.compiler.program import neuron_fields

        bias = b.take_current(node)
        nbase = b.neuron_block(node, np.zeros(ins[0].n, np.int64), bias, self.v_bits)
        b.add("readout", n=ins[0].n, nbase=nbase, **neuron_fields(node, self.leak_shift,
                                                               self.v_bits))

    def lower(self, b, node, ins):
        from est.hw.neurons import ReadoutIntegrator

        x = ins[0].spec
        unit = b.add(node, ReadoutIntegrator(x.n, b.lanes, x.bits, self.v_bits, self.leak_shift,
                                             state_in_logic=b.state_in_logic))
        b.connect(ins[0].stream, unit.i)
        v = unit.o.payload.v.as_value()
        return b.lowered(b.flat(unit.o, v, Spec(x.n, self.v_bits, True)), {"v": (unit.o, v)})
