"""The float spiking MLP (sw/spiking_mlp.py): the layer list a checkpoint stores, a one-neuron
network's spikes and readout worked by hand, a checkpoint that holds plain data only, and
refused mismatched layer lists."""

import pytest
import torch

from est.sw.spiking_mlp import NeuronSpec, SpikingMLP, make_model, save_checkpoint


def test_uniform_layer_list():
    model = SpikingMLP.uniform(3, [2], 1, leak_shift=1, threshold=0.5, reset="zero",
                               readout_leak_shift=None)
    assert model.spec() == [
        {"type": "linear", "name": "fc1", "in_features": 3, "out_features": 2},
        {"type": "lif", "beta": 0.5, "threshold": 0.5, "reset": "zero"},
        {"type": "linear", "name": "readout", "in_features": 2, "out_features": 1},
        {"type": "integrator", "beta": 1.0}]
    with pytest.raises(ValueError, match="one neuron spec and one name per linear layer"):
        SpikingMLP([3, 2, 1], [NeuronSpec("integrator", 1.0)], ["a", "b"])


def test_one_neuron_by_hand():
    model = SpikingMLP([1, 1, 1], [NeuronSpec("lif", 1.0), NeuronSpec("integrator", 0.5)],
                       ["fc1", "readout"]).double()
    with torch.no_grad():
        model.layers["fc1"].weight.fill_(0.6)
        model.layers["fc1"].bias.zero_()
        model.layers["readout"].weight.fill_(4.0)
        model.layers["readout"].bias.zero_()
        record = {}
        out = model(torch.ones(4, 1, 1, dtype=torch.float64), record)
    # v: 0.6, 1.2 -> spike, 0.2 + 0.6 = 0.8, 1.4 -> spike (reset by subtraction)
    assert record["fc1"].flatten().tolist() == [0, 1, 0, 1]
    # readout r = r / 2 + 4 * spike
    assert out.flatten().tolist() == [0, 4, 2, 5]


def test_checkpoint_holds_plain_data(tmp_path):
    model = make_model(n_in=4, hidden=(3,), n_out=2, seed=7)
    save_checkpoint(model, tmp_path / "m.pt")
    obj = torch.load(tmp_path / "m.pt", weights_only=True)
    assert obj["arch"] == "spiking_mlp" and obj["layers"] == model.spec()
    assert obj["state_dict"].keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(obj["state_dict"][key], value)
