"""The spiking-MLP front end: a float network -> an integer graph, widths and a loss report.

Per output channel j of every layer, one scale ``s_j = (2**(weight_bits-1) - 1) / max|W_j|``
turns weights, bias and threshold into integers (``round(x * s_j)``, half to even), so no
multiplier is needed in hardware. ``beta`` becomes a leak shift ``k`` with ``beta = 1 - 2**-k``
(the nearest such beta; ``beta = 1``: no leak; ``beta = 0``: no memory). Membrane widths are
the fewest bits that hold every value the calibration stimulus produces, plus one bit of
headroom (at most ``max_v_bits``); saturation that still happens is counted and reported,
never hidden.
"""

import numpy as np
import torch

from est import EstError
from est.compiler.frontend import FloatLayer, FloatNetwork
from est.compiler.graph import MAX_BITS, Graph, GraphBuilder
from est.compiler.ops import LIF, Conv, Input, Readout
from est.compiler.passes import fit_widths
from est.sim import golden
from est.sim.golden import signed_range
from est.sim.interpreter import run
from est.sw.neuron import beta_from_shift


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


def _integer_layer(fl: FloatLayer, weight_bits: int, max_v_bits: int):
    """(Conv, LIF or Readout) of one float layer, membranes 32 bits wide (until
    :func:`~est.compiler.passes.fit_widths`)."""
    qmax = (1 << (weight_bits - 1)) - 1
    amax = np.abs(fl.weight).max(axis=1)
    fallback = fl.threshold if fl.kind == "lif" else 1.0
    scale = qmax / np.where(amax > 0, amax, fallback)
    weight = integer_tensor(f"layers.{fl.name}.weight",
                            np.clip(fl.weight * scale[:, None], -qmax - 1, qmax))
    conv = Conv(weight[None], integer_tensor(f"layers.{fl.name}.bias", fl.bias * scale))
    leak = leak_shift_from_beta(fl.beta, max_v_bits - 1)
    if fl.kind == "lif":
        threshold = np.maximum(1, integer_tensor(f"the threshold of {fl.name}",
                                                 fl.threshold * scale))
        return conv, LIF(threshold, leak, MAX_BITS, fl.reset)
    return conv, Readout(leak, MAX_BITS, scale)


def spiking_mlp_graph(fnet: FloatNetwork, name: str, weight_bits: int, max_v_bits: int,
                      meta: dict | None = None) -> Graph:
    """The spiking MLP as a graph: per layer a dense synapse node (``<layer>.syn``, a kernel-1
    convolution) into a LIF array (``<layer>``), the last into the readout."""
    g = GraphBuilder()
    x = g.add("input", Input(fnet.n_in))
    for fl in fnet.layers:
        conv, neurons = _integer_layer(fl, weight_bits, max_v_bits)
        x = g.add(fl.name, neurons, g.add(f"{fl.name}.syn", conv, x))
    return g.build(name, (fnet.layers[-1].name,), meta)


def quantize(fnet: FloatNetwork, name: str, calibration: np.ndarray, weight_bits: int = 8,
             max_v_bits: int = 24) -> tuple[Graph, dict]:
    """Return the integer graph and a report: per layer the widths chosen, the leak used, the
    saturation count and the quantization loss on ``calibration`` ([bins, n_in] spikes)."""
    graph, widths = fit_widths(spiking_mlp_graph(fnet, name, weight_bits, max_v_bits),
                               calibration, max_v_bits)
    trace, saturated = run(graph, calibration)
    model = fnet.to_torch()
    record: dict = {}
    with torch.no_grad():
        readout = model(torch.from_numpy(calibration).double()[:, None, :], record)[:, 0].numpy()
    for fl in fnet.layers:
        syn, neurons = graph.node(f"{fl.name}.syn").op, graph.node(fl.name).op
        _, n_out, n_in = syn.weight.shape
        entry = {"name": fl.name, "kind": neurons.KIND, "n_in": n_in, "n_out": n_out,
                 "weight_bits": weight_bits,
                 "acc_bits": golden.conv_acc_bits(syn.weight, syn.bias, 1),
                 "v_bits": neurons.v_bits,
                 "beta_float": fl.beta, "leak_shift": neurons.leak_shift,
                 "beta_used": beta_from_shift(neurons.leak_shift),
                 "saturated_calibration": saturated[fl.name]}
        if fl.kind == "lif":
            ours = trace.arrays[f"{fl.name}/spikes"]
            ref = record[fl.name][:, 0].numpy()
            entry.update(threshold_min=int(neurons.threshold.min()),
                         threshold_max=int(neurons.threshold.max()),
                         spike_rate_float=float(ref.mean()), spike_rate_int=float(ours.mean()),
                         spike_agreement=float((ours == ref).mean()))
        else:
            ours = trace.arrays[f"{fl.name}/v"] / neurons.scale
            err = ours - readout
            entry.update(rms_error=float(np.sqrt((err ** 2).mean())),
                         rms_float=float(np.sqrt((readout ** 2).mean())),
                         correlation=float(np.corrcoef(ours.ravel(), readout.ravel())[0, 1])
                         if ours.std() > 0 and readout.std() > 0 else None)
        widths["layers"][fl.name].update(entry)
    return graph, widths
