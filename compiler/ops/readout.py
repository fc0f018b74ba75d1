"""``readout``: non-spiking integrators ``r = sat(r - (r >>> leak_shift) + current)``, the
network's output (docs/semantics.md 2.3); ``scale`` maps a value to a log-rate, ``value / scale``.
With ``rotate_shift`` ``m``, an oscillator readout: ``n`` damped oscillators of shifts and adds,
each a pair ``(u, w)`` fed by ``2n`` currents (``u``'s, then ``w``'s), ``u = sat(leak(u) + c_u -
(c w >>> m))`` then ``w = sat(leak(w) + c_w + (c u >>> m))``, ``c`` the ``rotate_mult`` (1 to
31, below ``2^m`` unless 1); its output is ``u`` (traced as ``v``, ``w`` as ``w``), a period of
about ``2 pi 2^m / c`` bins.

Hardware: :class:`~est.hw.neurons.ReadoutIntegrator`, ``lanes`` integrators per cycle (no
oscillators: the dataflow backend refuses them); on the core, a ``readout`` instruction, one
integrator a cycle, an oscillator's ``u`` and ``w`` two cycles each (the core's oscillator
unit, ``CoreSpec.osc``; a rotation multiplier other than 1, its multiplier, ``CoreSpec.osc_mult``).
"""

from dataclasses import dataclass, replace

import numpy as np

from est import EstError
from est.compiler.graph import MAX_BITS, WEIGHT_MAX_BITS, Field, IRError, Op, Spec, check_shape
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
    rotate_shift: int | None = None  # an oscillator readout's m; None: integrators
    rotate_mult: int = 1  # an oscillator readout's c: its rotation is c 2^-m

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
        n = x.n
        if self.rotate_shift is not None:
            if (not isinstance(self.rotate_shift, int) or isinstance(self.rotate_shift, bool)
                    or not 0 <= self.rotate_shift < self.v_bits):
                raise IRError(node, "rotate_shift", f"expected null (integrators) or "
                                                    f"0..{self.v_bits - 1}, got "
                                                    f"{self.rotate_shift}")
            c = self.rotate_mult
            if (not isinstance(c, int) or isinstance(c, bool)
                    or not 1 <= c <= golden.MAX_ROTATE_MULT
                    or c > 1 and c >= 2 ** self.rotate_shift):
                raise IRError(node, "rotate_mult", f"expected 1..{golden.MAX_ROTATE_MULT}, "
                                                   f"below 2^rotate_shift "
                                                   f"({2 ** self.rotate_shift}) unless 1, got "
                                                   f"{c!r}")
            if x.n % 2:
                raise IRError(node, "inputs", f"an oscillator readout reads two currents a "
                                              f"neuron (u's, then w's), got {x.n}")
            n = x.n // 2
        elif self.rotate_mult != 1:
            raise IRError(node, "rotate_mult", f"an integrator readout (no rotate_shift) has "
                                               f"rotate_mult 1, got {self.rotate_mult!r}")
        if not isinstance(self.scale, np.ndarray) or not np.issubdtype(self.scale.dtype,
                                                                        np.floating):
            raise IRError(node, "scale", "expected floats")
        check_shape(node, "scale", self.scale, (n,))
        if not (np.isfinite(self.scale).all() and (self.scale > 0).all()):
            raise IRError(node, "scale", "expected finite positive floats")
        return Spec(n, self.v_bits, True)

    def fields(self, node, ins):
        out = self.check(node, ins)
        w = [Field(f"{node}/w", out.n, out.bits, True)] if self.rotate_shift is not None else []
        return [Field(f"{node}/v", out.n, out.bits, True), *w]

    def tie_scales(self, scale: np.ndarray) -> np.ndarray:
        """The per-channel scales of the weights that feed it, an oscillator's ``u`` and ``w``
        made equal (the smaller of the two: the rotation couples them in one unit)."""
        if self.rotate_shift is None:
            return scale
        scale = np.broadcast_to(np.asarray(scale, np.float64), (len(self.scale) * 2,))
        n = len(scale) // 2
        return np.tile(np.minimum(scale[:n], scale[n:]), 2)
    def weight_bits(self, bits: int) -> int:
        """The width of the weights that feed it (:func:`leaky_weight_bits`)."""
        return leaky_weight_bits(bits, self.leak_shift)

    def rescale(self, q, scale):
        """Keeps the scale of the weights that feed it (:func:`est.compiler.passes.quantize`;
        an oscillator's ``u`` scale, which its ``w`` shares)."""
        scale = np.broadcast_to(np.asarray(scale, np.float64), (len(self.scale) * (
            1 if self.rotate_shift is None else 2),))
        return replace(self, scale=np.array(scale[:len(self.scale)]))

    def init(self, ins):
        return golden.lif_init(ins[0].n)

    def step(self, xs, state):
        params = golden.IntegratorParams(self.leak_shift, self.v_bits)
        if self.rotate_shift is None:
            saturated, state = golden.integrator_step(xs[0], state, params)
            return {"v": state.v, "saturated": saturated}, state
        saturated, state = golden.oscillator_step(xs[0], state, params, self.rotate_shift,
                                                  self.rotate_mult)
        n = len(state.v) // 2
        return {"v": state.v[:n], "w": state.v[n:], "saturated": saturated}, state

    def seq(self, xs, bins):
        import torch

        lo, hi = golden.signed_range(self.v_bits)
        current, k, m, c = xs[0], self.leak_shift, self.rotate_shift, self.rotate_mult
        if m is None:
            r = torch.zeros(current.shape[1], dtype=torch.int64)
            out = torch.zeros_like(current)
            for t in range(bins):
                r = torch.clamp(golden.leak(r, k) + current[t], lo, hi)
                out[t] = r
            return {"v": out}
        n = current.shape[1] // 2
        u, w = torch.zeros((2, n), dtype=torch.int64)
        us, ws = torch.zeros((2, bins, n), dtype=torch.int64)
        for t in range(bins):
            u = torch.clamp(golden.leak(u, k) + current[t, :n] - ((c * w) >> m), lo, hi)
            w = torch.clamp(golden.leak(w, k) + current[t, n:] + ((c * u) >> m), lo, hi)
            us[t], ws[t] = u, w
        return {"v": us, "w": ws}

    def fit_width(self, node, trace, current, max_v_bits):
        """One bit over the largest value of the calibration run (at most ``max_v_bits``,
        wider than the leak shift; an oscillator's ``u`` and ``w`` both); returns (op, bits
        needed)."""
        values = trace[f"{node}/v"]
        if self.rotate_shift is not None:
            values = np.concatenate([values, trace[f"{node}/w"]])
        bits, need = integrator_bits(values, self.leak_shift, max_v_bits)
        if self.rotate_shift is not None:
            bits = max(bits, self.rotate_shift + 1)
        return replace(self, v_bits=bits), need

    def cost(self, node, ins, ctx):
        n = ins[0].n
        luts, ffs, brams = ctx.neurons(n, self.v_bits, False)
        return [ctx.vector(node, "readout", n, self.v_bits, luts, ffs, 0, 2 * n * self.v_bits,
                           brams)]

    def emit(self, b, node, ins):
        """Core: the convolution's instruction, then ``readout``: one integrator a cycle, the
        values kept in the neuron memory (the ``out`` instructions send them). An oscillator
        readout's ``2n`` neurons are ``u`` then ``w`` (``<node>/w``: the block's second half),
        run by the core's oscillator unit (``rotate``)."""
        from est.compiler.program import neuron_fields

        bias = b.take_current(node)
        nbase = b.neuron_block(node, np.zeros(ins[0].n, np.int64), bias, self.v_bits)
        rotate = {}
        if self.rotate_shift is not None:
            if not b.spec.osc:
                raise EstError(f"node '{node}': an oscillator readout needs a core with its "
                               f"oscillator unit (CoreSpec.osc)")
            half = ins[0].n // 2
            b.neurons[f"{node}/w"] = (nbase + half, half)
            rotate = {"rotate": 1, "rot": self.rotate_shift}
            if b.spec.osc_mult:
                rotate["rmul"] = self.rotate_mult
            elif self.rotate_mult != 1:
                raise EstError(f"node '{node}': an oscillator readout of rotation "
                               f"{self.rotate_mult} / 2^{self.rotate_shift} needs a core with "
                               f"its oscillator unit's multiplier (CoreSpec.osc_mult)")
        b.add("readout", n=ins[0].n, nbase=nbase, **neuron_fields(node, self.leak_shift,
                                                               self.v_bits), **rotate)

    def lower(self, b, node, ins):
        from est.hw.neurons import ReadoutIntegrator

        x = ins[0].spec
        unit = b.add(node, ReadoutIntegrator(x.n, b.lanes, x.bits, self.v_bits, self.leak_shift,
                                             state_in_logic=b.state_in_logic))
        b.connect(ins[0].stream, unit.i)
        v = unit.o.payload.v.as_value()
        return b.lowered(b.flat(unit.o, v, Spec(x.n, self.v_bits, True)), {"v": (unit.o, v)})
