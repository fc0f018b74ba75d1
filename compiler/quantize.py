"""Quantizer: a float network -> the integer IR, with widths from calibration and a loss report.

Per output channel j of every layer, one scale ``s_j = (2**(weight_bits-1) - 1) / max|W_j|``
turns weights, bias and threshold into integers (``round(x * s_j)``, half to even), so no
multiplier is needed in hardware. ``beta`` becomes a leak shift ``k`` with ``beta = 1 - 2**-k``
(the nearest such beta; ``beta = 1``: no leak; ``beta = 0``: no memory). Membrane widths are
the fewest bits that hold every value the calibration stimulus produces, plus one bit of
headroom (at most ``max_v_bits``); saturation that still happens is counted and reported,
never hidden.
"""

from dataclasses import dataclass, replace

import numpy as np
import torch

from est import EstError
from est.compiler.frontend import FloatLayer, FloatNetwork
from est.compiler.ir import MAX_BITS, DenseLIF, DenseReadout, Network
from est.sim import golden
from est.sim.golden import signed_range
from est.sim.network import run
from est.sw.neuron import beta_from_shift


@dataclass(frozen=True)
class QuantConfig:
    weight_bits: int = 8
    max_v_bits: int = 24
    lanes: int = 1


def leak_shift_from_beta(beta: float, max_shift: int) -> int | None:
    """The leak whose ``beta`` (``1 - 2**-k`` for k in 0..max_shift, or 1 for no leak) is
    nearest to ``beta``; ties go to the smaller k."""
    candidates = [*range(max_shift + 1), None]
    return min(candidates, key=lambda k: abs(beta_from_shift(k) - beta))


def integer_tensor(name: str, scaled: np.ndarray, bits: int = MAX_BITS) -> np.ndarray:
    """``round(scaled)`` (half to even) as int64, refused with :class:`EstError` unless every
    value is finite and fits signed ``bits``: a float beyond int64 would otherwise wrap to a
    wrong integer (1e30 becomes -2**63) and the gateware would silently differ.

    ``name`` is the checkpoint parameter the values come from (``embed.bias``)."""
    rounded = np.rint(np.asarray(scaled, dtype=np.float64))
    lo, hi = signed_range(bits)
    bad = ~np.isfinite(rounded) | (rounded < lo) | (rounded > hi)
    if bad.any():
        index = np.unravel_index(int(np.flatnonzero(bad)[0]), rounded.shape)
        where = ", ".join(str(int(i)) for i in index)
        raise EstError(f"{name}[{where}]: quantizes to {rounded[index]:.4g}, outside the signed "
                       f"{bits}-bit range [{lo}, {hi}] of the hardware; the checkpoint's value is "
                       f"out of proportion to the weights beside it: clip or retrain it (weight "
                       f"decay), then compile again")
    return rounded.astype(np.int64)


def _integer_layer(fl: FloatLayer, cfg: QuantConfig, v_bits: int) -> DenseLIF | DenseReadout:
    qmax = (1 << (cfg.weight_bits - 1)) - 1
    amax = np.abs(fl.weight).max(axis=1)
    fallback = fl.threshold if fl.kind == "lif" else 1.0
    scale = qmax / np.where(amax > 0, amax, fallback)
    weight = integer_tensor(f"layers.{fl.name}.weight",
                            np.clip(fl.weight * scale[:, None], -qmax - 1, qmax))
    bias = integer_tensor(f"layers.{fl.name}.bias", fl.bias * scale)
    common = {"name": fl.name, "weight": weight, "bias": bias, "scale": scale,
              "weight_bits": cfg.weight_bits, "v_bits": v_bits,
              "leak_shift": leak_shift_from_beta(fl.beta, cfg.max_v_bits - 1)}
    if fl.kind == "lif":
        threshold = np.maximum(1, integer_tensor(f"the threshold of {fl.name}",
                                                 fl.threshold * scale))
        return DenseLIF(threshold=threshold, reset=fl.reset, **common)
    return DenseReadout(**common)


def _needed_bits(layer, trace) -> int:
    """Signed bits that hold every pre-reset membrane value of ``layer`` in ``trace``."""
    v = trace.arrays[f"{layer.name}/v"]
    prev = np.vstack([np.zeros((1, v.shape[1]), np.int64), v[:-1]])
    v1 = golden.leak(prev, layer.leak_shift) + trace.arrays[f"{layer.name}/current"]
    hi = max(int(v1.max(initial=0)), int(getattr(layer, "threshold", np.zeros(1)).max()))
    return golden.signed_bits(min(int(v1.min(initial=0)), 0), hi)


def quantize(fnet: FloatNetwork, name: str, calibration: np.ndarray,
             cfg: QuantConfig) -> tuple[Network, dict]:
    """Return the integer network and a report: per layer the widths chosen, the leak used, the
    saturation count and the quantization loss on ``calibration`` ([bins, n_in] spikes)."""
    wide = Network(name, fnet.n_in, tuple(_integer_layer(fl, cfg, MAX_BITS)
                                          for fl in fnet.layers), cfg.lanes).validate()
    wide_trace, _ = run(wide, calibration)
    layers = []
    for layer in wide.layers:
        v_bits = min(_needed_bits(layer, wide_trace) + 1, cfg.max_v_bits)
        if layer.leak_shift is not None:
            v_bits = max(v_bits, layer.leak_shift + 1)  # <= max_v_bits by leak_shift_from_beta
        layers.append(replace(layer, v_bits=v_bits))
    net = Network(name, fnet.n_in, tuple(layers), cfg.lanes).validate()
    trace, saturated = run(net, calibration)

    model = fnet.to_torch()
    record: dict = {}
    with torch.no_grad():
        readout = model(torch.from_numpy(calibration).double()[:, None, :], record)[:, 0].numpy()
    report_layers = []
    for fl, layer in zip(fnet.layers, net.layers, strict=True):
        entry = {"name": layer.name, "kind": layer.kind, "n_in": layer.n_in,
                 "n_out": layer.n_out, "weight_bits": layer.weight_bits,
                 "acc_bits": layer.acc_bits, "v_bits": layer.v_bits,
                 "beta_float": fl.beta, "leak_shift": layer.leak_shift,
                 "beta_used": beta_from_shift(layer.leak_shift),
                 "saturated_calibration": saturated[layer.name]}
        if isinstance(layer, DenseLIF):
            ours = trace.arrays[f"{layer.name}/spikes"]
            ref = record[layer.name][:, 0].numpy()
            entry.update(threshold_min=int(layer.threshold.min()),
                         threshold_max=int(layer.threshold.max()),
                         spike_rate_float=float(ref.mean()), spike_rate_int=float(ours.mean()),
                         spike_agreement=float((ours == ref).mean()))
        else:
            ours = trace.arrays[f"{layer.name}/v"] / layer.scale
            err = ours - readout
            entry.update(rms_error=float(np.sqrt((err ** 2).mean())),
                         rms_float=float(np.sqrt((readout ** 2).mean())),
                         correlation=float(np.corrcoef(ours.ravel(), readout.ravel())[0, 1])
                         if ours.std() > 0 and readout.std() > 0 else None)
        report_layers.append(entry)
    return net, {"calibration_bins": int(calibration.shape[0]), "layers": report_layers}
