"""The checkpoint front end (compiler/frontend.py) called directly: a saved spiking MLP reads
back as the same float network (its rebuilt torch model gives the same readout), the
architecture of a checkpoint is told apart, and a layer list out of order is refused naming the
layer (every refusal through est-compile is in tests/test_compile.py)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from est import EstError
from est.compiler.frontend import checkpoint_arch, conv1d_as_dense, load_checkpoint, open_checkpoint
from est.sw.spiking_mlp import make_model, save_checkpoint

EXAMPLE = Path(__file__).parent.parent / "examples" / "est_tiny.pt"


def test_a_saved_spiking_mlp_reads_back_as_the_same_network(tmp_path):
    model = make_model(n_in=5, hidden=(4,), n_out=3, seed=1)
    save_checkpoint(model, tmp_path / "m.pt")
    fnet = load_checkpoint(tmp_path / "m.pt")
    assert fnet.n_in == 5 and checkpoint_arch(tmp_path / "m.pt") == "spiking_mlp"
    assert [(fl.name, fl.kind, fl.weight.shape) for fl in fnet.layers] == [
        ("fc1", "lif", (4, 5)), ("readout", "integrator", (3, 4))]
    for fl, lin in zip(fnet.layers, model.layers.values(), strict=True):
        np.testing.assert_array_equal(fl.weight, lin.weight.detach().double().numpy())
        np.testing.assert_array_equal(fl.bias, lin.bias.detach().double().numpy())
    x = (torch.rand(30, 2, 5, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    with torch.no_grad():
        torch.testing.assert_close(fnet.to_torch()(x), model.double()(x))
    front = open_checkpoint(tmp_path / "m.pt", 0.25)
    assert (front.n_in, front.input_bits, front.rates.tolist()) == (5, 1, [0.25] * 5)


def test_the_example_est_is_an_est_checkpoint():
    assert checkpoint_arch(EXAMPLE) == "est"


def test_two_linear_layers_in_a_row_are_refused(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(make_model(n_in=4, hidden=(3,), n_out=2), path)
    obj = torch.load(path, weights_only=True)
    del obj["layers"][1]  # fc1's neurons: readout's linear follows fc1's
    torch.save(obj, path)
    with pytest.raises(EstError, match=r"layer 1 \(readout\): two linear layers in a row"):
        load_checkpoint(path)


@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (2, 1, 2, 2), (1, "same", 1, 1), (1, "valid", 3, 1), (3, 0, 1, 4)])
def test_conv1d_as_dense_is_torchs_conv1d(stride, padding, dilation, groups):
    """The dense matrix of a spatial Conv1d times a flattened input is torch's conv1d of it,
    for strides, padding modes, dilation and groups."""
    rng = np.random.default_rng(stride + dilation + groups)
    weight, bias = rng.normal(size=(4, 4 // groups, 3)), rng.normal(size=4)
    w, b, l_out = conv1d_as_dense("conv", weight, bias, 11, stride, padding, dilation, groups)
    x = rng.normal(size=(4, 11))
    ref = torch.nn.functional.conv1d(torch.from_numpy(x)[None], torch.from_numpy(weight),
                                     torch.from_numpy(bias), stride, padding, dilation, groups)
    assert w.shape == (4 * l_out, 44) and ref.shape[2] == l_out
    np.testing.assert_allclose(w @ x.reshape(-1) + b, ref.numpy().reshape(-1), atol=1e-12)
