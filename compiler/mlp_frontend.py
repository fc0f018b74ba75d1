"""The spiking-MLP front end: a float network -> a float graph, then the passes of
:mod:`est.compiler.passes` (leak, quantize, widths) and a loss report.

Per layer of the checkpoint a dense synapse node (``<layer>.syn``, a kernel-1 convolution)
into a LIF array or, last, the readout (``<layer>``). The report measures what quantization
loses against the float model itself, run on the calibration stimulus: per LIF layer the
spike rates and the spike agreement, for the readout the RMS error and correlation;
saturation that still happens is counted and reported, never hidden.
"""

import numpy as np
import torch

from est.compiler.frontend import FloatNetwork
from est.compiler.graph import MAX_BITS, Graph, GraphBuilder
from est.compiler.ops import LIF, Conv, Input, Readout
from est.compiler.passes import compile_graph
from est.sim import golden
from est.sim.interpreter import run


def spiking_mlp_graph(fnet: FloatNetwork, name: str) -> Graph:
    """The spiking MLP as a float graph (the passes' input)."""
    g = GraphBuilder()
    x = g.add("input", Input(fnet.n_in))
    betas, syn_betas, sources = {}, {}, {}
    for fl in fnet.layers:
        n = fl.weight.shape[0]
        syn = () if fl.syn_beta is None else (None, MAX_BITS)
        neurons = (LIF(np.full(n, fl.threshold), None, MAX_BITS, fl.reset, *syn)
                   if fl.kind == "lif" else Readout(None, MAX_BITS, np.ones(n)))
        if fl.syn_beta is not None:
            syn_betas[fl.name] = fl.syn_beta
        syn = g.add(f"{fl.name}.syn", Conv(fl.weight[None], fl.bias), x)
        x = g.add(fl.name, neurons, syn)
        betas[fl.name] = fl.beta
        sources[syn] = sources[fl.name] = f"layers.{fl.name}"
    return g.build(name, (fnet.layers[-1].name,),
                   {"float": {"betas": betas, "syn_betas": syn_betas, "sources": sources}},
                   integer=False)


def quantize(fnet: FloatNetwork, name: str, calibration: np.ndarray, weight_bits: int = 8,
             max_v_bits: int = 24) -> tuple[Graph, dict]:
    """Return the integer graph and a report: per layer the passes' entries (widths, leak,
    scales, thresholds), the saturation count and the quantization loss on ``calibration``."""
    graph, report = compile_graph(spiking_mlp_graph(fnet, name), calibration, weight_bits,
                                  max_v_bits)
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
                 "saturated_calibration": saturated[fl.name]}
        if fl.kind == "lif":
            ours = trace.arrays[f"{fl.name}/spikes"]
            ref = record[fl.name][:, 0].numpy()
            entry.update(spike_rate_float=float(ref.mean()), spike_rate_int=float(ours.mean()),
                         spike_agreement=float((ours == ref).mean()))
        else:
            ours = trace.arrays[f"{fl.name}/v"] / neurons.scale
            err = ours - readout
            entry.update(rms_error=float(np.sqrt((err ** 2).mean())),
                         rms_float=float(np.sqrt((readout ** 2).mean())),
                         correlation=float(np.corrcoef(ours.ravel(), readout.ravel())[0, 1])
                         if ours.std() > 0 and readout.std() > 0 else None)
        report["layers"][fl.name].update(entry)
    return graph, report
