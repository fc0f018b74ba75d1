"""The numpy golden model: the integer semantics of docs/semantics.md, as pure step functions.

Each block is ``step(x, state, params) -> (out, state)`` on numpy int64 arrays, with immutable
named tuples for parameters and state (the norse shape). Nothing here knows about hardware; the
RTL and the integer PyTorch path are held against these functions bit for bit.
"""

from typing import NamedTuple

import numpy as np

SAME_BIN_RESETS = ("subtract", "zero")
"""Resets in the bin that fired: subtract the threshold, or zero the membrane (the EST's, and
the only ones the core runs)."""
RESET_MODES = (*SAME_BIN_RESETS, "subtract_delayed")
"""How a LIF array resets where it fired (docs/semantics.md 2.2): in the same bin, or
(``subtract_delayed``, snnTorch's default ``reset_delay``) by subtracting the threshold in the
next bin, after the leak, the membrane stored unreset."""


def signed_range(bits: int) -> tuple[int, int]:
    """The range of a two's-complement integer of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def signed_bits(lo: int, hi: int) -> int:
    """The fewest two's-complement bits that hold every integer in ``[lo, hi]`` (at least 2)."""
    return max(2, max(hi, ~lo, 0).bit_length() + 1)


def conv_acc_bits(weight: np.ndarray, bias: np.ndarray, x_bits: int) -> int:
    """Accumulator width that holds every current of ``bias + sum W x`` for inputs in
    ``0 .. 2**x_bits - 1`` (``weight`` [kernel, n_out, n_in])."""
    x_max = (1 << x_bits) - 1
    lo = bias + np.minimum(weight, 0).sum(axis=(0, 2)) * x_max
    hi = bias + np.maximum(weight, 0).sum(axis=(0, 2)) * x_max
    return signed_bits(int(min(lo.min(), 0)), int(max(hi.max(), 0)))


def tpu_acc_bits(w_in: np.ndarray, w_rec: np.ndarray, bias: np.ndarray, x_bits: int) -> int:
    """Width that holds every ``bias + w_in x + sum_j w_rec[j] y_j`` (``x < 2**x_bits``)."""
    x_max = (1 << x_bits) - 1
    w_in, w_rec, bias = (np.asarray(a, np.int64) for a in (w_in, w_rec, bias))  # no wrap-around
    lo = bias + np.minimum(w_in, 0) * x_max + np.minimum(w_rec, 0).sum(axis=0)
    hi = bias + np.maximum(w_in, 0) * x_max + np.maximum(w_rec, 0).sum(axis=0)
    return signed_bits(int(min(lo.min(), 0)), int(max(hi.max(), 0)))


def ssa_bits(window: int, head_dim: int) -> int:
    """Width of an SSA output: at most ``window * head_dim`` (every score full, every v set)."""
    return signed_bits(0, window * head_dim) - 1


def sew_bits(op: str, skip_bits: int) -> int:
    """Width of a SEW result: ADD of a spike and a ``skip_bits`` value needs one more bit."""
    return skip_bits + 1 if op == "add" else 1


def saturate(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Clamp ``x`` to a signed ``bits``-bit range; return the result and how many values clamped."""
    lo, hi = signed_range(bits)
    clamped = np.minimum(np.maximum(x, lo), hi)  # np.clip, without its wrapper's overhead
    return clamped, int(np.count_nonzero(clamped != x))


def leak(v: np.ndarray, shift: int | None) -> np.ndarray:
    """``v - (v >>> shift)`` with an arithmetic (flooring) shift; ``shift=None`` is no leak (IF)."""
    return v if shift is None else v - (v >> shift)


class LIFParams(NamedTuple):
    """LIF array parameters: integer ``threshold`` [n] (>= 1), leak shift, width, reset mode;
    a current-based array (``syn_bits`` > 0) also filters its input through a synaptic
    current of that width and leak shift ``syn_shift``."""

    threshold: np.ndarray
    leak_shift: int | None
    v_bits: int
    reset: str
    syn_shift: int | None = None
    syn_bits: int = 0


class LIFState(NamedTuple):
    """Membrane potentials [n], signed ``v_bits`` wide; synaptic currents [n] (zero unless the
    array is current-based)."""

    v: np.ndarray
    i: np.ndarray | None = None


class LIFOut(NamedTuple):
    """Spikes [n] (0/1) and the number of membranes that saturated in this bin."""

    spikes: np.ndarray
    saturated: int


def lif_init(n: int) -> LIFState:
    return LIFState(np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64))


def lif_step(current: np.ndarray, state: LIFState, params: LIFParams) -> tuple[LIFOut, LIFState]:
    """One bin of LIF: ``v1 = sat(leak(v) + current)``, ``spike = v1 >= theta``, reset by
    subtraction (``v1 - theta``) or to zero where a spike fired; ``subtract_delayed``:
    ``v1 = sat(leak(v) + current - theta [v >= theta])``, stored unreset. Current-based
    (``syn_bits``): first ``i = sat(leak(i, syn_shift) + current, syn_bits)``, and ``i`` is the
    current the membrane takes."""
    i1, saturated_i = state.i, 0
    if params.syn_bits:
        i1, saturated_i = saturate(leak(state.i, params.syn_shift) + current, params.syn_bits)
        current = i1
    delayed = (np.where(state.v >= params.threshold, params.threshold, 0)
               if params.reset == "subtract_delayed" else 0)
    v1, saturated = saturate(leak(state.v, params.leak_shift) + current - delayed,
                             params.v_bits)
    spikes = v1 >= params.threshold
    v2 = (v1 if params.reset == "subtract_delayed" else
          np.where(spikes, v1 - params.threshold if params.reset == "subtract" else 0, v1))
    return LIFOut(spikes.astype(np.uint8), saturated + saturated_i), LIFState(v2, i1)


class IntegratorParams(NamedTuple):
    """A non-spiking readout integrator: leak shift (0 = no memory, None = no leak) and width."""

    leak_shift: int | None
    v_bits: int


def integrator_step(current: np.ndarray, state: LIFState,
                    params: IntegratorParams) -> tuple[int, LIFState]:
    """One bin of the readout: ``r = sat(leak(r) + current)``; returns (saturations, state)."""
    r, saturated = saturate(leak(state.v, params.leak_shift) + current, params.v_bits)
    return saturated, LIFState(r)


MAX_ROTATE_MULT = 31
"""The largest multiplier ``c`` of an oscillator readout's rotation ``c 2^-m`` (5 bits)."""


def oscillator_step(current: np.ndarray, state: LIFState, params: IntegratorParams,
                    rotate_shift: int, rotate_mult: int = 1) -> tuple[int, LIFState]:
    """One bin of an oscillator readout (docs/semantics.md 2.3): ``n`` pairs ``(u, w)``, the
    state ``v = [u, w]`` and ``current = [c_u, c_w]`` (``2n`` each); ``u`` first, then ``w``
    from the new ``u`` (the "magic circle" rotation, a damped oscillator of shifts and adds):
    ``u = sat(leak(u) + c_u - (c w >>> m))``, ``w = sat(leak(w) + c_w + (c u >>> m))``, ``m``
    the ``rotate_shift``, ``c`` the ``rotate_mult``; returns (saturations, state)."""
    n = len(state.v) // 2
    u, w = state.v[:n], state.v[n:]
    u, s_u = saturate(leak(u, params.leak_shift) + current[:n]
                      - ((rotate_mult * w) >> rotate_shift), params.v_bits)
    w, s_w = saturate(leak(w, params.leak_shift) + current[n:]
                      + ((rotate_mult * u) >> rotate_shift), params.v_bits)
    return s_u + s_w, LIFState(np.concatenate([u, w]))


# --- Enhanced Spiking Transformer blocks -------------------------------------------------------

LFSR_FEEDBACK = 0x80200003
"""32-bit Galois LFSR, right shift, feedback mask of x^32 + x^22 + x^2 + x + 1."""


def lfsr_step(state: int) -> int:
    """One step of the Galois LFSR: shift right; if the bit shifted out was 1, XOR the mask."""
    out = state & 1
    state >>= 1
    return state ^ LFSR_FEEDBACK if out else state


def lfsr_draws(state: int, n: int) -> tuple[np.ndarray, int]:
    """``n`` 8-bit draws: each advances the LFSR 8 steps (fresh bits) and takes its low byte."""
    draws = np.zeros(n, dtype=np.int64)
    for i in range(n):
        for _ in range(8):
            state = lfsr_step(state)
        draws[i] = state & 0xFF
    return draws, state


def mask_threshold(ratio: float) -> int:
    """Random spike masking keeps a spike when its draw ``u >= round(ratio * 256)``."""
    return int(round(ratio * 256))


class MaskParams(NamedTuple):
    """Random spike masking of ``n`` channels: drop ratio (as its 8-bit threshold)."""

    n: int
    threshold: int


def mask_step(x: np.ndarray, state: int, params: MaskParams) -> tuple[np.ndarray, int]:
    """Drop spikes at random: one draw per channel in channel order, ``keep = u >= threshold``.

    The LFSR ``state`` is the block's own (seeded per layer in the IR, reset per stream); every
    bin consumes exactly ``n`` draws whether or not a channel spiked.
    """
    if params.threshold == 0:
        return x, state
    draws, state = lfsr_draws(state, params.n)
    return np.where(draws >= params.threshold, x, 0), state


def cpg_table(positions: int, neurons: int, w_max: float = 10000.0) -> np.ndarray:
    """The CPG-PE spike table [positions, neurons] (0/1), computed once in float64 and stored.

    ``s[p, 2k] = [sin(p * w_k) >= 0.8]``, ``s[p, 2k+1] = [cos(p * w_k) >= 0.8]``,
    ``w_k = w_max ** (-2k / neurons)``. The integer semantics use the stored table, never sin.
    """
    p = np.arange(positions, dtype=np.float64)[:, None]
    w = np.exp(np.arange(0, neurons, 2, dtype=np.float64) * (-np.log(w_max) / neurons))
    table = np.zeros((positions, neurons), dtype=np.int64)
    table[:, 0::2] = np.sin(p * w) >= 0.8
    table[:, 1::2] = np.cos(p * w[: neurons // 2]) >= 0.8
    return table


def rhythm_table(positions: int, amplitude: int) -> np.ndarray:
    """A fitted rhythm's table [positions, 4] (values 0..amplitude), read by a ``table``
    node whose accumulator advances ``positions / period`` rows a bin: row ``p`` holds, at
    the phase ``phi = 2 pi (p + 1/2) / positions``, the positive and the negative part of
    ``round(amplitude sin phi)``, then of ``round(amplitude cos phi)`` (a readout's weights on
    the four give any sinusoid of the rhythm's period; computed once in float64 and stored)."""
    phase = 2 * np.pi * (np.arange(positions, dtype=np.float64) + 0.5) / positions
    s, c = np.round(amplitude * np.sin(phase)), np.round(amplitude * np.cos(phase))
    return np.stack([np.maximum(s, 0), np.maximum(-s, 0), np.maximum(c, 0), np.maximum(-c, 0)],
                    axis=1).astype(np.int64)


class ConvParams(NamedTuple):
    """Causal convolution: ``weight`` [kernel, n_out, n_in] (lag 0 first), ``bias`` [n_out]."""

    weight: np.ndarray
    bias: np.ndarray


class History(NamedTuple):
    """The last ``kernel - 1`` input vectors, most recent first ([kernel - 1, n])."""

    x: np.ndarray


def history_init(kernel: int, n: int) -> History:
    return History(np.zeros((kernel - 1, n), dtype=np.int64))


def history_push(x: np.ndarray, hist: History) -> tuple[np.ndarray, History]:
    """Return the window ``[x_t, x_{t-1}, ..., x_{t-k+1}]`` and the updated history."""
    window = np.concatenate([x[None, :].astype(np.int64), hist.x])
    return window, History(window[:-1])


def conv_step(x: np.ndarray, hist: History, params: ConvParams) -> tuple[np.ndarray, History]:
    """``current = bias + sum_lag weight[lag] @ x_{t-lag}`` (exact); zero history before bin 0."""
    window, hist = history_push(x, hist)
    return params.bias + np.einsum("koi,ki->o", params.weight, window), hist


class AttentionParams(NamedTuple):
    """Spike attention over a causal window of ``window`` bins: mode 'sdsa' or 'ssa', ``heads``,
    and for SDSA the integer count threshold (>= 1)."""

    mode: str
    window: int
    heads: int
    count_threshold: int


def attention_step(q: np.ndarray, k: np.ndarray, v: np.ndarray, kv_hist: History,
                   params: AttentionParams) -> tuple[np.ndarray, History]:
    """Spike-driven attention of bin t over the keys and values of bins t-window+1..t.

    SDSA: ``out[c] = q[c] AND (sum_tau k_tau[c] AND v_tau[c] >= count_threshold)`` (0/1 out).
    SSA: per head h, ``score(tau) = popcount(q[h] AND k_tau[h])`` and
    ``out[c] = sum_tau score(tau) * v_tau[c]`` for c in h (an integer current for a LIF).
    Bins before the stream start count as zero spikes.
    """
    kv = np.concatenate([k, v]).astype(np.int64)
    window, kv_hist = history_push(kv, kv_hist)
    n = len(q)
    keys, values = window[:, :n], window[:, n:]
    if params.mode == "sdsa":
        count = (keys & values).sum(axis=0)
        return q & (count >= params.count_threshold).astype(np.int64), kv_hist
    d = n // params.heads
    out = np.zeros(n, dtype=np.int64)
    for h in range(params.heads):
        sl = slice(h * d, (h + 1) * d)
        scores = (keys[:, sl] & q[sl]).sum(axis=1)
        out[sl] = scores @ values[:, sl]
    return out, kv_hist


SEW_OPS = ("add", "and", "iand")


def sew(out: np.ndarray, skip: np.ndarray, op: str) -> np.ndarray:
    """SEW residual: ADD ``out + skip`` (integers), AND ``out & skip``, IAND ``(1 - out) & skip``
    (AND and IAND of binary ``out``)."""
    if op == "add":
        return out + skip
    if op == "and":
        return out & skip
    return (1 - out) & skip
