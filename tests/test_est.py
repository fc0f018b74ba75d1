"""The float EST (est.sw.est): its configuration checks, the input clip and the readout that
sees the input counts and several bins."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from est import EstError
from est.sw.est import EST, ESTConfig, config_dict, config_from_dict

SMALL = ESTConfig(n_in=3, n_out=2, d_model=4, mlp_hidden=4, blocks=1, heads=1, kernels=(1,),
                  cpg=False, rsm=0.0)


@pytest.mark.parametrize("field, value, needle", [
    ("input_bits", 0, "model.input_bits must be"),
    ("input_bits", 9, "model.input_bits must be"),
    ("readout_kernel", 0, "model.readout_kernel must be"),
    ("input_to_readout", 1, "model.input_to_readout must be true or false"),
    ("input_coupling", "diagonal", "model.input_coupling must be one of"),
    ("input_coupling", "self", "pairs input n with output n, but model.n_in = 3 and model"),
])
def test_new_fields_are_checked(field, value, needle):
    with pytest.raises(EstError, match=needle):
        replace(SMALL, **{field: value}).validate()


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_inputs_are_clipped_to_the_declared_width(bits):
    """Counts above ``2**bits - 1`` give the outputs of counts at ``2**bits - 1``."""
    model = EST(replace(SMALL, input_bits=bits, input_to_readout=True)).eval()
    x = torch.tensor([[[0.0, 5.0, 9.0]], [[1.0, 2.0, 3.0]]])
    top = 2 ** bits - 1
    with torch.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), model(x.clamp(max=top)).numpy())
        if bits > 1:  # a wider input changes what the readout sees
            assert not torch.equal(model(x), model(x.clamp(max=top - 1)))


def test_readout_reads_the_last_spikes_and_inputs_over_its_kernel():
    """With ``input_to_readout`` and ``readout_kernel`` k (and only the input weights set), the
    output at bin t is ``b + sum_lag W[lag] x[t - lag]``: a GLM on the last k bins."""
    cfg = replace(SMALL, input_bits=3, input_to_readout=True, readout_kernel=3,
                  readout_leak_shift=0)
    model = EST(cfg).eval()
    assert model.readout.weight.shape == (3, 2, 4 + 3)
    w = torch.zeros_like(model.readout.weight)
    w[:, :, 4:] = torch.randn(3, 2, 3)
    with torch.no_grad():
        model.readout.weight.copy_(w)
        model.readout.bias.copy_(torch.tensor([0.5, -1.0]))
        x = torch.randint(0, 8, (6, 1, 3)).float()
        out = model(x)[:, 0]
    for t in range(6):
        expect = torch.tensor([0.5, -1.0]) + sum(
            w[lag, :, 4:] @ x[t - lag, 0] for lag in range(3) if t - lag >= 0)
        torch.testing.assert_close(out[t], expect)


def test_a_self_coupled_input_path_reads_each_neurons_own_counts():
    """With ``input_coupling`` "self", output n's input weights on every input but n are held
    at zero: in the forward pass, through training (no gradient reaches them), and in the graph
    the compiler builds; the spikes' weights are untouched."""
    from est.compiler.est_frontend import est_float_graph

    cfg = replace(SMALL, n_out=3, input_to_readout=True, readout_kernel=2, input_coupling="self")
    model = EST(cfg)
    with torch.no_grad():
        model.readout.weight.normal_()  # off-diagonal input weights too: they must not act
    x = torch.randint(0, 2, (5, 2, 3)).float()
    out = model(x)
    masked = EST(cfg)
    with torch.no_grad():
        masked.readout.weight.copy_(model.readout.weight)
        masked.readout.weight[:, :, 4:] *= torch.eye(3)
    torch.testing.assert_close(out, masked(x))
    out.sum().backward()
    grad = model.readout.weight.grad
    assert not grad[:, :, 4:][:, ~torch.eye(3, dtype=torch.bool)].any()
    assert grad[:, :, 4:].diagonal(dim1=1, dim2=2).any() and grad[:, :, :4].any()
    w = est_float_graph(model, "self").node("readout.syn").op.weight
    assert not w[:, :, 4:][:, ~np.eye(3, dtype=bool)].any()
    np.testing.assert_array_equal(w[:, :, :4], model.readout.weight[:, :, :4].detach().numpy())
    # "full" (and "auto", before est-train resolves it) keeps every weight
    full = EST(replace(cfg, input_coupling="auto"))
    assert full.readout.mask is None


def test_config_round_trips_through_a_dict():
    cfg = replace(SMALL, input_bits=2, input_to_readout=True, readout_kernel=4)
    assert config_from_dict(config_dict(cfg)) == cfg


def test_a_checkpoint_from_before_a_field_loads_as_it_was_trained():
    """A config saved before readout_kernel, input_to_readout and input_bits existed gets the
    values it was trained with (a one-bin readout of the spikes, spike inputs), not today's
    defaults; the fields it holds are kept."""
    old = {k: v for k, v in config_dict(ESTConfig(d_model=8, leak_shift=3)).items()
           if k not in ("readout_kernel", "input_to_readout", "input_bits")}
    cfg = config_from_dict(old)
    assert (cfg.readout_kernel, cfg.input_to_readout, cfg.input_bits) == (1, False, 1)
    assert cfg.d_model == 8 and cfg.leak_shift == 3
    assert ESTConfig().input_to_readout and ESTConfig().input_bits == 3


def test_slow_readouts_add_leaky_integrals_of_the_inputs():
    """Each slow readout integrates its convolution of the (clipped) inputs with leak
    ``1 - 2^-shift`` and adds to the readout's log-rate; they start at zero weight; their
    shifts are checked; a checkpoint from before them has none."""
    from est.sw.neuron import beta_from_shift

    cfg = replace(SMALL, n_out=3, input_to_readout=True, readout_slow_shifts=(1, 3))
    model = EST(cfg).eval()
    x = torch.poisson(torch.full((12, 1, 3), 0.8))
    with torch.no_grad():
        base = model(x)
        assert all(conv.weight.abs().sum() == 0 for conv in model.slow)
        for conv in model.slow:
            conv.weight.normal_()
        want = base.clone()
        for conv, shift in zip(model.slow, (1, 3), strict=True):
            r = torch.zeros(1, 3)
            for t in range(12):
                r = beta_from_shift(shift) * r + x[t].clamp(max=7) @ conv.weights()[0].T
                want[t] += r[0]
        torch.testing.assert_close(model(x), want)
    for shifts, needle in (((0,), r"readout_slow_shifts\[0\] must be"),
                           ((2, 2), "must not repeat a shift"), (3, "must be a list")):
        with pytest.raises(EstError, match=needle):
            replace(SMALL, readout_slow_shifts=shifts).validate()
    old = {k: v for k, v in config_dict(cfg).items() if k != "readout_slow_shifts"}
    assert config_from_dict(old).readout_slow_shifts == ()
    assert config_from_dict(config_dict(cfg)) == cfg


def test_a_crop_given_the_slow_integrals_continues_the_whole_run():
    """``slow_integrals`` is each slow readout's leaky integral of the clipped inputs
    (known answer), and a crop started at bin ``s`` with row ``s - 1`` of them (and of
    ``oscillator_integrals``) as its states gives the slow and oscillator readouts' log-rates
    of a run over every bin from 0: training crops see them warm."""
    from est.sw.est import oscillator_integrals, slow_integrals

    cfg = replace(SMALL, n_out=3, input_to_readout=True, readout_slow_shifts=(1, 4),
                  readout_oscillators=((2, 5),))
    counts = np.array([[1, 0, 9], [0, 2, 0], [3, 0, 1]])
    rows = slow_integrals(counts, cfg)
    np.testing.assert_allclose(rows[0], [[1, 0, 7], [0.5, 2, 3.5], [3.25, 1, 2.75]])
    np.testing.assert_allclose(rows[1][1], [15 / 16, 2, 7 * 15 / 16])
    # driven through u: u = 1, then w = 1/4; driven through w: w = 1, u = 0
    np.testing.assert_allclose(oscillator_integrals(counts, cfg)[0][0][:, 0],
                               [1, 0.25, 0, 1])
    model = EST(cfg).eval()
    x = torch.poisson(torch.full((300, 1, 3), 0.8), torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.readout.weight.zero_()  # the readout of the spikes and inputs: its bias only
        for conv in (*model.slow, *model.osc):
            conv.weight.normal_(0.0, 0.3)
        whole = model(x)
        start = 217
        counts = x[:, 0].numpy()
        slow = [torch.as_tensor(r[start - 1])[None] for r in slow_integrals(counts, cfg)]
        osc = [torch.as_tensor(r[start - 1])[None] for r in oscillator_integrals(counts, cfg)]
        crop = model(x[start:], start, slow, osc)
        cold = model(x[start:], start)
    torch.testing.assert_close(crop, whole[start:], rtol=1e-5, atol=1e-4)
    assert (cold - whole[start:]).abs().max() > 0.1  # without them, it starts cold


def test_rhythms_are_checked_kept_in_checkpoints_and_read_by_bin_number():
    """Periods of at least rhythm_rows / 2 bins; the config round-trips, a checkpoint from
    before them has none; the readout reads each rhythm's table row at the bin number of
    ``start`` on (a crop starting at bin s continues the run from bin 0)."""
    cfg = replace(SMALL, rhythms=[40.0, 77.7])
    assert cfg.rhythms == (40.0, 77.7) and cfg.rhythm_advances == (26214, 13495)
    for rhythms, needle in (([15.0], r"rhythms\[0\] must be >= 16.0002 bins"),
                            ([40, "x"], r"rhythms\[1\] must be a number"),
                            (3.0, "must be a list of periods")):
        with pytest.raises(EstError, match=needle):
            replace(SMALL, rhythms=rhythms).validate()
    assert config_from_dict(config_dict(cfg)) == cfg
    old = {k: v for k, v in config_dict(cfg).items() if k != "rhythms"}
    assert config_from_dict(old).rhythms == ()
    model = EST(replace(cfg, readout_leak_shift=1))  # the readout forgets in a few bins
    first = cfg.d_model + cfg.n_in
    assert model.readout.weight.shape[2] == first + 8
    x = (torch.rand(160, 1, cfg.n_in) < 0.3).float()
    with torch.no_grad():
        model.readout.weight.zero_()
        model.readout.weight[:, :, first:] = torch.randn(model.readout.weight[:, :, first:].shape)
        whole = model(x)
        crop = model(x[70:], 70)
        other = model(x[70:], 0)
    np.testing.assert_allclose(crop[40:].numpy(), whole[110:].numpy(), atol=1e-5)
    assert not torch.allclose(crop[40:], other[40:], atol=1e-2)


def test_oscillator_readouts_are_checked_and_kept_in_checkpoints():
    """[m, k] or [m, k, c] (a config's lists become triples, c 1 where not given), k a leak
    shift, m at most k, c 1..31 and below 2^m unless 1, no repeats; the config round-trips;
    a checkpoint from before them has none."""
    cfg = replace(SMALL, readout_oscillators=[[2, 6], [3, 7], [6, 7, 13]])
    assert cfg.readout_oscillators == ((2, 6, 1), (3, 7, 1), (6, 7, 13))
    for pairs, needle in (([[2]], r"readout_oscillators\[0\] must be \[m, k\] or"),
                          ([[2, 6, 1, 1]], r"readout_oscillators\[0\] must be \[m, k\] or"),
                          ([[7, 6]], r"readout_oscillators\[0\]\[0\] must be"),
                          ([[2, 0]], r"readout_oscillators\[0\]\[1\] must be"),
                          ([[2, 6, 4]], r"readout_oscillators\[0\]\[2\] must be 1..3, got 4"),
                          ([[6, 7, 32]], r"readout_oscillators\[0\]\[2\] must be 1..31"),
                          ([[1, 7, 0]], r"readout_oscillators\[0\]\[2\] must be 1..1"),
                          ([[2, 6], [2, 6, 1]], "must not repeat an oscillator"),
                          (3, "must be a list of")):
        with pytest.raises(EstError, match=needle):
            replace(SMALL, readout_oscillators=pairs).validate()
    assert config_from_dict(config_dict(cfg)) == cfg
    old = {k: v for k, v in config_dict(cfg).items() if k != "readout_oscillators"}
    assert config_from_dict(old).readout_oscillators == ()
