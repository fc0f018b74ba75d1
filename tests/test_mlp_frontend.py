"""The spiking-MLP front end (compiler/mlp_frontend.py): a float MLP -> a float graph of dense
synapse nodes (``<layer>.syn``) into LIF arrays and a readout, per-channel integer scales, leaks as
shifts, widths from calibration, and a report of what quantization loses."""

import numpy as np
import pytest

from est.compiler.frontend import load_checkpoint
from est.compiler.graph import IRError
from est.compiler.mlp_frontend import quantize, spiking_mlp_graph
from est.compiler.passes import leak, leak_shift_from_beta
from est.compiler.passes import quantize as quantize_pass
from est.sim.interpreter import run
from netgen import random_stimulus


@pytest.fixture(scope="module")
def fnet(model_pt):
    return load_checkpoint(model_pt)


def test_the_float_graph_has_a_synapse_node_and_a_neuron_array_per_layer(fnet):
    g = spiking_mlp_graph(fnet, "spine")
    assert [(n.name, n.op.KIND, n.inputs) for n in g.nodes] == [
        ("input", "input", ()), ("fc1.syn", "conv", ("input",)), ("fc1", "lif", ("fc1.syn",)),
        ("fc2.syn", "conv", ("fc1",)), ("fc2", "lif", ("fc2.syn",)),
        ("readout.syn", "conv", ("fc2",)), ("readout", "readout", ("readout.syn",))]
    assert g.outputs == ("readout",) and g.n_in == 12
    assert g.meta["float"]["betas"] == {fl.name: fl.beta for fl in fnet.layers}
    for fl in fnet.layers:  # the checkpoint's floats, unchanged, until the passes
        np.testing.assert_array_equal(g.node(f"{fl.name}.syn").op.weight, fl.weight[None])
        if fl.kind == "lif":
            assert g.node(fl.name).op.threshold.tolist() == [fl.threshold] * len(fl.bias)
    # the passes alone: leak, then quantize
    leaky, _ = leak(g, 23)
    q, _ = quantize_pass(leaky, 6)
    assert "float" not in q.meta
    for fl in fnet.layers:
        conv, neurons = q.node(f"{fl.name}.syn").op, q.node(fl.name).op
        assert conv.weight.shape == (1, *fl.weight.shape)  # a dense layer: kernel 1
        # one scale per output channel: its largest weight is the full 6-bit range
        assert np.abs(conv.weight[0]).max(axis=1).tolist() == [31] * fl.weight.shape[0]
        scale = 31 / np.abs(fl.weight).max(axis=1)
        np.testing.assert_array_equal(conv.bias, np.rint(fl.bias * scale).astype(np.int64))
        assert neurons.v_bits == 32  # wide until fit_widths
        if fl.kind == "lif":
            np.testing.assert_array_equal(
                neurons.threshold, np.maximum(1, np.rint(fl.threshold * scale)).astype(np.int64))
            assert neurons.reset == fl.reset
        else:
            np.testing.assert_allclose(neurons.scale, scale)
        assert neurons.leak_shift == leak_shift_from_beta(fl.beta, 23)


def test_quantize_fits_widths_and_reports_the_loss(fnet):
    calibration = random_stimulus(1, 256, 12, 0.2)
    g, report = quantize(fnet, "spine", calibration, weight_bits=8, max_v_bits=24)
    assert report["calibration_bins"] == 256 and list(report["layers"]) == ["fc1", "fc2",
                                                                            "readout"]
    trace, saturated = run(g, calibration)
    bits = {f.name: f.bits for f in g.fields()}
    for name, entry in report["layers"].items():
        op = g.node(name).op
        assert entry["v_bits"] == op.v_bits == entry["needed_bits"] + 1 <= 24, name
        assert entry["saturated_calibration"] == saturated[name] == 0
        assert entry["bins_differing_from_wide"] == 0
        assert entry["leak_shift"] == op.leak_shift and entry["beta_used"] == entry["beta_float"]
        assert entry["acc_bits"] == bits[f"{name}.syn/current"]
    for name in ("fc1", "fc2"):
        entry = report["layers"][name]
        assert entry["kind"] == "lif" and entry["spike_agreement"] > 0.85
        assert entry["spike_rate_int"] == pytest.approx(trace.arrays[f"{name}/spikes"].mean())
    readout = report["layers"]["readout"]
    assert readout["kind"] == "readout" and readout["correlation"] > 0.5
    assert readout["rms_error"] < readout["rms_float"]
    # the dense synapses are traced as '<layer>.syn/current'
    assert {"fc1.syn/current", "fc2.syn/current", "readout.syn/current"} <= set(trace.arrays)


def test_narrow_membranes_are_cut_to_max_v_bits_and_the_loss_is_counted(fnet):
    calibration = random_stimulus(1, 256, 12, 0.2)
    g, report = quantize(fnet, "spine", calibration, weight_bits=8, max_v_bits=10)
    entries = report["layers"]
    assert all(g.node(n).op.v_bits <= 10 for n in entries)
    assert any(e["needed_bits"] > 10 and e["bins_differing_from_wide"] > 0
               for e in entries.values())
    # a threshold the width cannot hold is refused, naming the layer and what to do
    with pytest.raises(IRError, match="does not fit v_bits=8 .* larger --max-v-bits") as err:
        quantize(fnet, "spine", calibration, weight_bits=8, max_v_bits=8)
    assert err.value.field == "threshold" and err.value.node in ("fc1", "fc2")
