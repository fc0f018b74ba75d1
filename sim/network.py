"""Run the golden model over an integer IR network and record a full trace."""

import numpy as np

from est.compiler.ir import DenseLIF, Network
from est.sim import golden
from est.sim.trace import Trace


def run(net: Network, stimulus: np.ndarray) -> tuple[Trace, dict[str, int]]:
    """Feed ``stimulus`` ([bins, n_in] of 0/1) through ``net``; return the trace and, per layer,
    how many membrane/integrator values saturated over the run."""
    stimulus = np.asarray(stimulus)
    if stimulus.ndim != 2 or stimulus.shape[1] != net.n_in:
        raise ValueError(f"stimulus must be [bins, {net.n_in}], got {stimulus.shape}")
    if stimulus.size and (stimulus.min() < 0 or stimulus.max() > 1):
        raise ValueError("stimulus must hold binary spikes (0 or 1)")
    bins = stimulus.shape[0]
    arrays = {"input/spikes": stimulus.astype(np.int64)}
    saturated = {}
    x_all = stimulus.astype(np.int64)
    for layer in net.layers:
        syn = golden.SynapseParams(layer.weight.astype(np.int64), layer.bias.astype(np.int64))
        state = golden.lif_init(layer.n_out)
        v = np.zeros((bins, layer.n_out), np.int64)
        current = np.stack([golden.synapse_step(x, syn) for x in x_all]) if bins else v.copy()
        sat = 0
        if isinstance(layer, DenseLIF):
            params = golden.LIFParams(layer.threshold.astype(np.int64), layer.leak_shift,
                                      layer.v_bits, layer.reset)
            spikes = np.zeros((bins, layer.n_out), np.int64)
            for t in range(bins):
                out, state = golden.lif_step(current[t], state, params)
                spikes[t], v[t] = out.spikes, state.v
                sat += out.saturated
            arrays[f"{layer.name}/spikes"] = spikes
            x_all = spikes
        else:
            params = golden.IntegratorParams(layer.leak_shift, layer.v_bits)
            for t in range(bins):
                n_sat, state = golden.integrator_step(current[t], state, params)
                v[t] = state.v
                sat += n_sat
        arrays[f"{layer.name}/current"] = current
        arrays[f"{layer.name}/v"] = v
        saturated[layer.name] = sat
    return Trace(arrays, {"source": "golden", "network": net.name, "bins": bins}), saturated
