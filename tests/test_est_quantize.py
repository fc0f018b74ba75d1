"""The EST quantizer (compiler/est_quantize.py): widths that the hardware accepts, and
parameters no integer of the hardware can hold refused by name."""

import numpy as np
import pytest
import torch

from est import EstError
from est.compiler.est_quantize import quantize_est
from est.sw.est import EST, ESTConfig


def _model(**changes) -> EST:
    torch.manual_seed(0)
    return EST(ESTConfig(n_in=6, n_out=6, d_model=8, blocks=1, heads=2, **changes))


def _calibration() -> np.ndarray:
    return (np.random.default_rng(1).random((200, 6)) < 0.2).astype(np.int64)


def test_readout_width_holds_its_leak_shift():
    """A slow readout leak (shift 20) with small readout values: the width must still exceed
    the shift, or the readout integrator cannot be built."""
    net, report = quantize_est(_model(readout_leak_shift=20), "q", _calibration())
    assert net.readout_leak_shift == 20 and report["readout_bits"] >= 21
    net.validate()


@pytest.mark.parametrize("parameter, message", [
    ("embed.bias", r"embed.bias\[0\]: quantizes to"),
    ("blocks.0.tpu_bias", r"blocks.0.tpu_bias\[0\]: quantizes to"),
    ("readout.bias", r"readout.bias\[0\]: quantizes to"),
])
def test_a_huge_finite_parameter_is_refused_by_name(parameter, message):
    model = _model(tpu=True)
    with torch.no_grad():
        model.get_parameter(parameter)[0] = 1e30
    with pytest.raises(EstError, match=message + r" .* outside the signed 32-bit range"):
        quantize_est(model, "q", _calibration())
