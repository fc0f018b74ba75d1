"""The golden interpreter: runs the golden step of every node of a graph, bin by bin, and
records every tensor (docs/traces.md: ``<node>/<tensor>``; ``input/spikes`` is the stimulus).

This is the streaming reference the gateware and the integer PyTorch path are held against.
A graph has no cycle between nodes (a recurrence keeps its own state), so each node runs over
every bin before the next node starts: the same steps, in an order with less bookkeeping.
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
    heads = graph.heads()
    arrays: dict[str, np.ndarray] = {}
    saturated: dict[str, int] = {}
    for n in graph.nodes:
        ins = [specs[i] for i in n.inputs]
        mine = {f.name.split("/")[1]: np.zeros((bins, f.n), np.int64)
                for f in n.op.fields(n.name, ins)}
        sources = [x] if n is graph.nodes[0] else [arrays[f"{i}/{heads[i]}"] for i in n.inputs]
        state = n.op.init(ins)
        for t in range(bins):
            tensors, state = n.op.step([s[t] for s in sources], state)
            if "saturated" in tensors:
                saturated[n.name] = saturated.get(n.name, 0) + tensors.pop("saturated")
            for key, value in tensors.items():
                mine[key][t] = value
        arrays.update({f"{n.name}/{key}": value for key, value in mine.items()})
    return Trace(arrays, {"source": "golden", "network": graph.name, "bins": bins}), saturated
