"""Passes over the graph IR, each a function graph -> graph that a test can run alone.

The front ends run them in this order (the report lists which ran, :data:`PIPELINE`):
``quantize`` (in the front end: float parameters to integers, leaks to shifts), then
:func:`fit_widths` (membrane and readout widths from a calibration run). Lanes and the
schedule are chosen by the backend (``est-compile --lanes``).
"""

from dataclasses import replace

import numpy as np

from est.compiler.graph import Graph, Node
from est.sim.interpreter import run

PIPELINE = ("quantize", "fit_widths")


def fit_widths(graph: Graph, calibration: np.ndarray, max_v_bits: int) -> tuple[Graph, dict]:
    """Every neuron array's width from a run of ``graph`` (its widths as wide as the front end
    made them) on ``calibration``: one bit over the largest value seen, at most
    ``max_v_bits``, and wide enough for the leak shift. Returns the graph and, per array, the
    width chosen, the width needed, and in how many calibration bins the narrower array's
    output differs from the wide one (quantization loss from the width; 0 = none)."""
    wide = run(graph, calibration)[0].arrays
    heads = graph.heads()
    nodes, layers = [], {}
    for n in graph.nodes:
        op = n.op
        if hasattr(op, "fit_width"):
            current = wide[f"{n.inputs[0]}/{heads[n.inputs[0]]}"] if n.inputs else None
            op, need = op.fit_width(n.name, wide, current, max_v_bits)
            layers[n.name] = {"v_bits": op.v_bits, "needed_bits": need}
        nodes.append(Node(n.name, op, n.inputs))
    fitted = replace(graph, nodes=tuple(nodes)).validate()
    final = run(fitted, calibration)[0].arrays
    for name, entry in layers.items():
        key = f"{name}/v"
        entry["bins_differing_from_wide"] = int((final[key] != wide[key]).any(axis=1).sum())
    return fitted, {"calibration_bins": int(calibration.shape[0]), "layers": layers}
