"""The golden interpreter: runs the golden step of every node of a graph, bin by bin, and
records every tensor (docs/traces.md: ``<node>/<tensor>``; ``input/spikes`` is the stimulus).

This is the streaming reference the gateware and the integer PyTorch path are held against.
"""

import numpy as np

from est import EstError
from est.compiler.graph import Graph
from est.sim.trace import Trace


def check_stimulus(graph: Graph, stimulus: np.ndarray) -> np.ndarray:
    """``stimulus`` as int64 ``[bins, n_in]`` of values the input node's width holds."""
    x = np.asarray(stimulus)
    spec = graph.nodes[0].op
    if x.ndim != 2 or x.shape[1] != spec.n:
        raise EstError(f"stimulus must be [bins, {spec.n}], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer) and not np.array_equal(x, np.round(x)):
        raise EstError("stimulus must hold integers")
    hi = (1 << spec.bits) - 1
    if x.size and (x.min() < 0 or x.max() > hi):
        what = "binary spikes (0 or 1)" if spec.bits == 1 else f"counts 0..{hi}"
        raise EstError(f"stimulus must hold {what}; got values {x.min()}..{x.max()}")
    return x.astype(np.int64)


def run(graph: Graph, stimulus: np.ndarray) -> tuple[Trace, dict[str, int]]:
    """Feed ``stimulus`` through ``graph`` from zero state; return the trace of every tensor
    and, per neuron array, how many values saturated over the run."""
    x = check_stimulus(graph, stimulus)
    bins = x.shape[0]
    specs = graph.specs()
    ins = {n.name: [specs[i] for i in n.inputs] for n in graph.nodes}
    state = {n.name: n.op.init(ins[n.name]) for n in graph.nodes}
    fields = graph.fields()
    arrays = {f.name: np.zeros((bins, f.n), np.int64) for f in fields}
    saturated: dict[str, int] = {}
    first = graph.heads()
    for t in range(bins):
        out: dict[str, np.ndarray] = {}
        for n in graph.nodes:
            xs = [x[t]] if not n.inputs and n is graph.nodes[0] else [out[i] for i in n.inputs]
            tensors, state[n.name] = n.op.step(xs, state[n.name])
            if "saturated" in tensors:
                saturated[n.name] = saturated.get(n.name, 0) + tensors.pop("saturated")
            for key, value in tensors.items():
                arrays[f"{n.name}/{key}"][t] = value
            out[n.name] = tensors[first[n.name]]
    return Trace(arrays, {"source": "golden", "network": graph.name, "bins": bins}), saturated
