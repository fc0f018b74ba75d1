"""The numpy golden model: the integer semantics of docs/semantics.md, as pure step functions.

Each block is ``step(x, state, params) -> (out, state)`` on numpy int64 arrays, with immutable
named tuples for parameters and state (the norse shape). Nothing here knows about hardware; the
RTL and the integer PyTorch path are held against these functions bit for bit.
"""

from typing import NamedTuple

import numpy as np

RESET_MODES = ("subtract", "zero")


def signed_range(bits: int) -> tuple[int, int]:
    """The range of a two's-complement integer of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def signed_bits(lo: int, hi: int) -> int:
    """The fewest two's-complement bits that hold every integer in ``[lo, hi]`` (at least 2)."""
    bits = 2
    while not (signed_range(bits)[0] <= lo and hi <= signed_range(bits)[1]):
        bits += 1
    return bits


def saturate(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Clamp ``x`` to a signed ``bits``-bit range; return the result and how many values clamped."""
    lo, hi = signed_range(bits)
    clamped = np.clip(x, lo, hi)
    return clamped, int(np.count_nonzero(clamped != x))


def leak(v: np.ndarray, shift: int | None) -> np.ndarray:
    """``v - (v >>> shift)`` with an arithmetic (flooring) shift; ``shift=None`` is no leak (IF)."""
    if shift is None:
        return v
    return v - (v >> shift)


class SynapseParams(NamedTuple):
    """Dense synapses: ``weight`` [n_out, n_in] signed, ``bias`` [n_out] signed."""

    weight: np.ndarray
    bias: np.ndarray


def synapse_step(x: np.ndarray, params: SynapseParams) -> np.ndarray:
    """Synaptic current of one bin: ``acc[j] = bias[j] + sum_i weight[j, i] * x[i]`` for spikes x.

    Exact (no rounding, no saturation): the IR's ``acc_bits`` is wide enough by construction.
    """
    return params.bias + params.weight @ x.astype(np.int64)


class LIFParams(NamedTuple):
    """LIF array parameters: integer ``threshold`` [n] (>= 1), leak shift, width, reset mode."""

    threshold: np.ndarray
    leak_shift: int | None
    v_bits: int
    reset: str


class LIFState(NamedTuple):
    """Membrane potentials [n], signed ``v_bits`` wide."""

    v: np.ndarray


class LIFOut(NamedTuple):
    """Spikes [n] (0/1) and the number of membranes that saturated in this bin."""

    spikes: np.ndarray
    saturated: int


def lif_init(n: int) -> LIFState:
    return LIFState(np.zeros(n, dtype=np.int64))


def lif_step(current: np.ndarray, state: LIFState, params: LIFParams) -> tuple[LIFOut, LIFState]:
    """One bin of LIF: leak, integrate (saturating), fire (``v >= theta``), reset.

    ``v1 = sat(leak(v) + current)``; ``spike = v1 >= theta``; reset by subtraction
    (``v1 - theta``) or to zero where a spike fired.
    """
    v1, saturated = saturate(leak(state.v, params.leak_shift) + current, params.v_bits)
    spikes = v1 >= params.threshold
    if params.reset == "subtract":
        v2 = np.where(spikes, v1 - params.threshold, v1)
    else:
        v2 = np.where(spikes, 0, v1)
    return LIFOut(spikes.astype(np.uint8), saturated), LIFState(v2)


class IntegratorParams(NamedTuple):
    """A non-spiking readout integrator: leak shift (0 = no memory, None = no leak) and width."""

    leak_shift: int | None
    v_bits: int


def integrator_step(current: np.ndarray, state: LIFState,
                    params: IntegratorParams) -> tuple[int, LIFState]:
    """One bin of the readout: ``r = sat(leak(r) + current)``; returns (saturations, state)."""
    r, saturated = saturate(leak(state.v, params.leak_shift) + current, params.v_bits)
    return saturated, LIFState(r)
