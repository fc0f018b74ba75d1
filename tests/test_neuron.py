"""The fused LIF autograd node equals the step-by-step autograd loop: spikes and gradients."""

import pytest
import torch

from est.sw.neuron import SpikeFn, lif_sequence, recurrent_lif_sequence


def _reference(current, beta, threshold, reset):
    v, out, s = torch.zeros_like(current[0]), [], torch.zeros_like(current[0])
    for t in range(current.shape[0]):
        v = beta * v + current[t]
        if reset == "subtract_delayed":
            v = v - s * threshold
        s = SpikeFn.apply(v - threshold)
        if reset != "subtract_delayed":
            v = v - s * threshold if reset == "subtract" else v * (1 - s)
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("reset", ["subtract", "zero", "subtract_delayed"])
@pytest.mark.parametrize("beta", [1.0, 0.75, 0.5, 0.0])
def test_lif_sequence_matches_autograd_loop(reset, beta):
    torch.manual_seed(3)
    current = (torch.randn(40, 5, 7, dtype=torch.float64) * 0.8 + 0.3).requires_grad_()
    weight = torch.randn(40, 5, 7, dtype=torch.float64)
    ref = _reference(current, beta, 1.0, reset)
    (g_ref,) = torch.autograd.grad((ref * weight).sum(), current)
    fused = lif_sequence(current, beta, 1.0, reset)
    (g_fused,) = torch.autograd.grad((fused * weight).sum(), current)
    assert 0.05 < ref.mean() < 0.95  # the neurons do fire, and not always
    assert torch.equal(fused, ref)
    torch.testing.assert_close(g_fused, g_ref, rtol=1e-12, atol=1e-12)


def _recurrent_reference(drive, w_rec, beta, threshold, reset):
    k = w_rec.shape[0]
    past = [torch.zeros_like(drive[0]) for _ in range(k)]
    v, out = torch.zeros_like(drive[0]), []
    for t in range(drive.shape[0]):
        v = beta * v + drive[t] + sum(w_rec[j] * past[j] for j in range(k))
        y = SpikeFn.apply(v - threshold)
        v = v - y * threshold if reset == "subtract" else v * (1 - y)
        past = [y, *past[:-1]]
        out.append(y)
    return torch.stack(out)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("k", [1, 3])
def test_recurrent_lif_sequence_matches_autograd_loop(reset, k):
    torch.manual_seed(4)
    drive = (torch.randn(30, 4, 6, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
    w_rec = (torch.randn(k, 6, dtype=torch.float64) * 0.5).requires_grad_()
    weight = torch.randn(30, 4, 6, dtype=torch.float64)
    ref = _recurrent_reference(drive, w_rec, 0.75, 1.0, reset)
    g_ref = torch.autograd.grad((ref * weight).sum(), (drive, w_rec))
    fused = recurrent_lif_sequence(drive, w_rec, 0.75, 1.0, reset)
    g_fused = torch.autograd.grad((fused * weight).sum(), (drive, w_rec))
    assert 0.05 < ref.mean() < 0.95
    assert torch.equal(fused, ref)
    for a, b in zip(g_fused, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
