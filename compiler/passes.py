"""Passes over the graph IR (docs/semantics.md 5): a front end's float graph in, the integer graph
the backends build out. Each pass is a function graph -> (graph, report) that a test can run alone;
:func:`compile_graph` runs them in the order of :data:`PIPELINE`, which report.json lists.

A float graph is a :class:`~est.compiler.graph.Graph` whose arrays are floats and whose
``meta["float"]`` holds, per neuron array, its ``beta`` (until :func:`leak`) and, per node,
the checkpoint parameter its arrays come from (named in errors: a prefix, ``layers.fc1``, or
per field a name, ``{"bias": "blocks.0.tpu_bias"}``). Lanes are not a pass: the backend takes
them (``est-compile --lanes``); the dataflow backend has no schedule to choose (each node a stage).
"""

from dataclasses import replace

import numpy as np

from est import EstError
from est.compiler.graph import MAX_BITS, Graph, Node
from est.sim.golden import signed_range
from est.sim.interpreter import run
from est.sw.neuron import beta_from_shift

PIPELINE = ("leak", "quantize", "fit_widths")


def leak_shift_from_beta(beta: float, max_shift: int) -> int | None:
    """The leak whose ``beta`` (``1 - 2**-k`` for k in 0..max_shift, or 1 for no leak) is
    nearest to ``beta``; ties go to the smaller k."""
    return min([*range(max_shift + 1), None], key=lambda k: abs(beta_from_shift(k) - beta))


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


def _float_meta(graph: Graph, key: str) -> dict:
    if key not in graph.meta.get("float", {}):
        raise EstError(f"graph '{graph.name}': expected a float graph from a front end with "
                       f"'{key}' in meta['float'] (passes run in the order {PIPELINE})")
    return graph.meta["float"][key]


def _with(graph: Graph, ops: dict, meta: dict) -> Graph:
    return replace(graph, nodes=tuple(Node(n.name, ops.get(n.name, n.op), n.inputs)
                                      for n in graph.nodes), meta=meta)


def leak(graph: Graph, max_shift: int) -> tuple[Graph, dict]:
    """Every neuron array's ``beta`` (``meta["float"]["betas"]``) to its nearest leak shift
    in 0..``max_shift`` or none; the report gives per array ``beta_float``, ``leak_shift`` and
    ``beta_used`` (``1 - 2**-k``, or 1)."""
    betas = _float_meta(graph, "betas")
    ops, layers = {}, {}
    for name, beta in betas.items():
        k = leak_shift_from_beta(beta, max_shift)
        ops[name] = replace(graph.node(name).op, leak_shift=k)
        layers[name] = {"beta_float": beta, "leak_shift": k, "beta_used": beta_from_shift(k)}
    # a current-based LIF array's synaptic current leaks by a shift of its own
    for name, beta in (graph.meta["float"].get("syn_betas") or {}).items():
        k = leak_shift_from_beta(beta, max_shift)
        ops[name] = replace(ops[name], syn_shift=k)
        layers[name].update(syn_beta_float=beta, syn_shift=k, syn_beta_used=beta_from_shift(k))
    rest = {k: v for k, v in graph.meta["float"].items() if k not in ("betas", "syn_betas")}
    return _with(graph, ops, {**graph.meta, "float": rest}), {"layers": layers}


class Quantizer:
    """What an operation's ``quantize`` (weights: returns the integer op and its per-channel
    scale) or ``rescale`` (neurons: thresholds and scales times the scale of the weights that
    feed them) is handed: ``qmax``, and rounding that names the checkpoint parameter."""

    def __init__(self, weight_bits: int, node: str, sources: dict):
        self.qmax = (1 << (weight_bits - 1)) - 1
        self.node, self.source = node, sources.get(node, node)

    def ints(self, fld: str, values: np.ndarray) -> np.ndarray:
        src = self.source
        return integer_tensor(src[fld] if isinstance(src, dict) else f"{src}.{fld}", values)

    def scale(self, rows: list[np.ndarray], fallback) -> np.ndarray:
        """Per output channel (rows ``[n_out, ...]``): ``qmax`` over the largest |weight|
        feeding it; a channel with none takes ``qmax / fallback``."""
        amax = np.max([np.abs(r.reshape(r.shape[0], -1)).max(axis=1) for r in rows], axis=0)
        return self.qmax / np.where(amax > 0, amax, fallback)

    def weights(self, fld: str, w: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray:
        """``w`` times its channel's scale (``axis``: the channel axis), clipped, rounded."""
        shape = [1] * w.ndim
        shape[axis] = -1
        return self.ints(fld, np.clip(w * scale.reshape(shape), -self.qmax - 1, self.qmax))


def quantize(graph: Graph, weight_bits: int) -> tuple[Graph, dict]:
    """The integer graph (validated): in node order, every operation with weights
    (``quantize``: a convolution, a recurrence; per output channel ``j``, ``s_j = qmax /
    max|W_j|`` over every weight feeding it, ``qmax = 2**(weight_bits - 1) - 1``, or the width
    a leaky readout asks for, its ``weight_bits``) and the neuron array they feed (``rescale``)
    with their scale; a neuron array that no weights feed (SSA's LIF) is rescaled by 1. The
    report gives per neuron array the scale range, the weight width and the thresholds."""
    if "betas" in graph.meta.get("float", {}):
        raise EstError(f"graph '{graph.name}': run the leak pass before quantize")
    sources = _float_meta(graph, "sources")
    consumers = graph.consumers()
    ops, scales, layers, wbits = {}, {}, {}, {}
    for n in graph.nodes:
        op = n.op
        if hasattr(op, "quantize"):  # a recurrence's weights feed its own neurons
            target = n.name if hasattr(op, "v_bits") else consumers[n.name][0]
            fed = graph.node(target).op
            bits = weight_bits
            if hasattr(fed, "weight_bits"):  # a leaky readout: wider weights
                bits = wbits[target] = fed.weight_bits(weight_bits)
            op, scales[target] = op.quantize(Quantizer(bits, n.name, sources), fed)
        elif hasattr(op, "rescale"):
            op = op.rescale(Quantizer(weight_bits, n.name, sources), scales.get(n.name, 1.0))
        if hasattr(op, "v_bits"):
            s = scales.get(n.name, 1.0)
            layers[n.name] = {"scale_min": float(np.min(s)), "scale_max": float(np.max(s)),
                              "weight_bits": wbits.get(n.name, weight_bits)}
            if hasattr(op, "threshold"):
                layers[n.name].update(threshold_min=int(op.threshold.min()),
                                      threshold_max=int(op.threshold.max()))
        ops[n.name] = op
    meta = {k: v for k, v in graph.meta.items() if k != "float"}
    return _with(graph, ops, meta).validate(), {"weight_bits": weight_bits, "layers": layers}


def fit_widths(graph: Graph, calibration: np.ndarray, max_v_bits: int) -> tuple[Graph, dict]:
    """Every neuron array's width (its ``fit_width``) from a run of ``graph``, as wide as the
    front end made it, on ``calibration``. Returns the graph and, per array, the width chosen,
    the width needed, and in how many calibration bins the narrower array's output differs
    from the wide one (quantization loss from the width; 0 = none)."""
    wide = run(graph, calibration)[0].arrays
    heads = graph.heads()
    ops, layers = {}, {}
    for n in graph.nodes:
        if hasattr(n.op, "fit_width"):
            current = wide[f"{n.inputs[0]}/{heads[n.inputs[0]]}"] if n.inputs else None
            ops[n.name], need = n.op.fit_width(n.name, wide, current, max_v_bits)
            layers[n.name] = {"v_bits": ops[n.name].v_bits, "needed_bits": need}
    fitted = _with(graph, ops, graph.meta).validate()
    final = run(fitted, calibration)[0].arrays
    for name, entry in layers.items():
        key = f"{name}/v"
        entry["bins_differing_from_wide"] = int((final[key] != wide[key]).any(axis=1).sum())
    return fitted, {"calibration_bins": int(calibration.shape[0]), "layers": layers}


def compile_graph(graph: Graph, calibration: np.ndarray, weight_bits: int = 8,
                  max_v_bits: int = 24) -> tuple[Graph, dict]:
    """Run :data:`PIPELINE` on a front end's float graph; return the integer graph and the
    report: ``calibration_bins``, ``weight_bits`` and, per neuron array, every pass's entry."""
    graph, leaks = leak(graph, max_v_bits - 1)
    graph, quant = quantize(graph, weight_bits)
    graph, widths = fit_widths(graph, calibration, max_v_bits)
    layers = {name: {**leaks["layers"].get(name, {}), **quant["layers"].get(name, {}), **entry}
              for name, entry in widths["layers"].items()}
    return graph, {"calibration_bins": widths["calibration_bins"], "weight_bits": weight_bits,
                   "layers": layers}
