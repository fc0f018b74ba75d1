"""The integer path in PyTorch: a graph evaluated over a whole sequence at once, node by node
(each operation's ``seq``: convolutions as int64 matrix products over all bins, neuron
recurrences as loops over bins, SDSA as a windowed cumulative sum, SSA as a banded score
matrix, masks from a matrix form of the LFSR). It computes exactly what the golden interpreter
(:mod:`est.sim.interpreter`) computes bin by bin, by other means (a second implementation of
the contract, in the framework the models train in); the tests hold the two equal on every
tensor. ``est-train`` evaluates the integer model with it. It is not faster: its neuron
recurrences loop over bins on small tensors (est_small over 3000 bins: 15 s, the interpreter
7 s, measured on a loaded 2-core machine).
"""

import numpy as np
import torch

from est.compiler.graph import Graph
from est.sim.interpreter import check_stimulus


def integer_forward(graph: Graph, stimulus: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the golden trace (``<node>/<tensor>``) for ``stimulus`` [bins, n_in]."""
    x = torch.as_tensor(check_stimulus(graph, stimulus))
    bins = x.shape[0]
    out: dict[str, torch.Tensor] = {}
    main: dict[str, torch.Tensor] = {}
    heads = graph.heads()
    for n in graph.nodes:
        xs = [x] if n is graph.nodes[0] else [main[i] for i in n.inputs]
        tensors = n.op.seq(xs, bins)
        main[n.name] = tensors[heads[n.name]]
        out.update({f"{n.name}/{k}": v for k, v in tensors.items()})
    return {k: v.numpy() for k, v in out.items()}
