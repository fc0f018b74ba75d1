"""The EST front end (compiler/est_frontend.py): the EST's structure as a graph (a part switched
off is absent), a float checkpoint quantized into it (per-channel scales, widths the hardware
accepts), and parameters no integer of the hardware can hold refused by name."""

import itertools

import numpy as np
import pytest
import torch

from est import EstError
from est.compiler.est_frontend import quantize_est
from est.sw.est import EST, ESTConfig
from netgen import random_est_graph


def _model(**changes) -> EST:
    torch.manual_seed(0)
    return EST(ESTConfig(n_in=6, n_out=6, d_model=8, blocks=1, heads=2, **changes))


def _calibration(bins: int = 200) -> np.ndarray:
    return (np.random.default_rng(1).random((bins, 6)) < 0.2).astype(np.int64)


@pytest.mark.parametrize("attention, sew, cpg, tpu", list(itertools.product(
    ("sdsa", "ssa", "none"), ("add", "and", "iand", "none"), (True, False), (True, False))))
def test_every_switch_combination_is_a_valid_graph_with_only_its_parts(attention, sew, cpg, tpu):
    g = random_est_graph(1, attention=attention, sew=sew, cpg=cpg, tpu=tpu, blocks=1)
    names = {n.name for n in g.nodes}
    on = attention != "none"
    assert g.nodes[0].name == "input" and g.outputs == ("readout",)
    assert {"embed.syn", "embed", "b0.mlp1", "b0.mlp2", "readout.syn", "readout"} <= names
    assert ({"cpg", "embed.in"} <= names) == cpg and ("cpg" in names) == cpg
    for part in ("b0.mask", "b0.q", "b0.k.syn", "b0.v", "b0.attn", "b0.proj"):
        assert (part in names) == on, part
    assert ("b0.scores" in names) == (attention == "ssa")
    assert ("b0.tpu" in names) == tpu
    assert ("b0.res1" in names) == (on and sew != "none")
    assert ("b0.res2" in names) == (tpu and sew != "none")
    assert ("b0.out" in names) == (sew != "none")
    kinds = g.kinds()
    assert kinds.get("sew", 0) == (sew != "none") * (1 + on + tpu)
    assert kinds["conv"] == 1 + 3 + 4 * on  # embed, mlp1, mlp2, readout; q, k, v, proj
    if attention == "sdsa":
        assert g.node("b0.attn").op.KIND == "attention"
    elif attention == "ssa":
        assert g.node("b0.attn").op.KIND == "lif" and g.node("b0.attn").inputs == ("b0.scores",)


def test_a_checkpoint_becomes_the_graph_of_its_config_with_fitted_widths():
    model = _model(attention="ssa", sew="and", tpu=True, cpg=True, rsm=0.5)
    graph, report = quantize_est(model, "q", _calibration(), weight_bits=6, max_v_bits=20)
    names = [n.name for n in graph.nodes]
    assert names[:5] == ["input", "cpg", "embed.in", "embed.syn", "embed"]
    for part in ("b0.mask", "b0.q", "b0.scores", "b0.attn", "b0.res1", "b0.tpu", "b0.res2",
                 "b0.out", "readout"):
        assert part in names, part
    assert graph.n_in == 6 and graph.name == "q"
    assert graph.outputs == ("readout", *(f"readout.slow{s}" for s in range(2, 8)))
    assert graph.n_out == 6 * 7 and graph.meta["sum_outputs"]  # 7 readouts of 6, summed
    assert report["calibration_bins"] == 200
    widths = report["layers"]
    neurons = [n.name for n in graph.nodes if hasattr(n.op, "v_bits")]
    assert sorted(widths) == sorted(neurons)
    for name, entry in widths.items():
        op = graph.node(name).op
        assert op.v_bits == entry["v_bits"] <= 20, name
        assert entry["v_bits"] == max(min(entry["needed_bits"] + 1, 20), (op.leak_shift or 0) + 1)
    # per output channel, the largest weight is the full 6-bit range (every lag, and the CPG
    # projection beside the input, share one scale); the leaky readout's, 6 + its shift
    for name in ("embed.syn", "b0.q.syn", "b0.mlp1.syn", "readout.syn"):
        w = graph.node(name).op.weight
        bits = 6 + (graph.node("readout").op.leak_shift if name == "readout.syn" else 0)
        assert np.abs(w).max(axis=(0, 2)).tolist() == [2 ** (bits - 1) - 1] * w.shape[1], name
    tpu = graph.node("b0.tpu").op
    assert np.maximum(np.abs(tpu.w_in), np.abs(tpu.w_rec).max(axis=0)).tolist() == [31] * 8
    cfg = model.cfg
    assert (graph.node("b0.attn").op.threshold
            == max(1, round(cfg.threshold / cfg.ssa_scale))).all()  # SSA's scale folded in
    assert graph.node("b0.q").op.leak_shift == cfg.leak_shift
    assert graph.node("b0.mask").op.seed != 0


def test_readout_width_holds_its_leak_shift():
    """A slow readout leak (shift 20) with small readout values: the width must still exceed
    the shift, or the readout integrator cannot be built."""
    graph, report = quantize_est(_model(readout_leak_shift=20), "q", _calibration())
    op = graph.node("readout").op
    entry = report["layers"]["readout"]
    assert op.leak_shift == 20 and op.v_bits == entry["v_bits"] >= 21
    assert entry["v_bits"] == max(min(entry["needed_bits"] + 1, 24), 21)
    graph.validate()


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


def test_an_ann_est_has_no_integer_form():
    with pytest.raises(EstError, match="only a spiking EST"):
        quantize_est(_model(mode="ann"), "q", _calibration())


@pytest.mark.parametrize("bits, direct, kernel", [(3, True, 4), (2, False, 1), (1, True, 2)])
def test_count_inputs_and_the_readout_that_reads_them(bits, direct, kernel):
    """``input_bits`` becomes the input node's width; ``input_to_readout`` a concat of the last
    spikes and the input in front of the readout's convolution (its weights the checkpoint's
    [kernel, n_out, d_model + n_in]); the integer path equals the golden model on every
    tensor."""
    from netgen import check_integer_path

    model = _model(input_bits=bits, input_to_readout=direct, readout_kernel=kernel,
                   cpg=False)
    counts = np.minimum(np.random.default_rng(2).poisson(1.0, (200, 6)), 2 ** bits - 1)
    graph, _ = quantize_est(model, "counts", counts, weight_bits=8, max_v_bits=20)
    assert graph.input_bits == bits and graph.specs()["input"].bits == bits
    names = [n.name for n in graph.nodes]
    assert ("readout.in" in names) == direct
    syn = graph.node("readout.syn")
    assert syn.inputs == (("readout.in",) if direct else (names[names.index("readout.syn") - 1],))
    assert syn.op.weight.shape == (kernel, 6, 8 + 6 * direct)
    if direct:
        assert graph.node("readout.in").inputs[1] == "input"
    check_integer_path(graph, counts[:40])


def test_slow_readouts_are_leaky_readouts_of_the_input_whose_log_rates_add_up():
    """Each slow readout becomes ``readout.slow<s>``: a readout of leak shift ``s`` over a
    one-lag convolution of the input, weights of ``bits + s``; the graph's log-rates are the
    sum of its readouts'; the integer PyTorch path equals the golden model on every tensor,
    and the slow readouts' log-rates are the float ones within the rounding."""
    from est.sim.interpreter import run
    from est.sw.integer import integer_forward
    from est.sw.neuron import beta_from_shift, leaky_integral

    model = _model(readout_slow_shifts=(2, 6), input_bits=3)
    with torch.no_grad():
        for conv in model.slow:
            conv.weight.normal_(0.0, 0.1)
    counts = np.random.default_rng(2).poisson(0.6, (300, 6))
    graph, _ = quantize_est(model, "s", np.minimum(counts, 7), weight_bits=6)
    assert graph.outputs == ("readout", "readout.slow2", "readout.slow6")
    x = torch.as_tensor(np.minimum(counts, 7), dtype=torch.float32)[:, None]
    for shift in (2, 6):
        node = f"readout.slow{shift}"
        assert graph.node(node).op.leak_shift == shift
        assert graph.node(f"{node}.syn").op.weight.shape == (1, 6, 6)
        assert np.abs(graph.node(f"{node}.syn").op.weight).max() == 2 ** (5 + shift) - 1
    tensors = integer_forward(graph, np.minimum(counts, 7))
    golden = run(graph, np.minimum(counts, 7))[0]
    for name, values in golden.arrays.items():
        np.testing.assert_array_equal(tensors[name], values, err_msg=name)
    parts = [tensors[f"{o}/v"] / graph.node(o).op.scale for o in graph.outputs]
    np.testing.assert_allclose(graph.log_rates(tensors), np.sum(parts, axis=0))
    with torch.no_grad():
        for shift, conv in zip((2, 6), model.slow, strict=True):
            want = leaky_integral(conv(x), beta_from_shift(shift))[:, 0].numpy()
            got = tensors[f"readout.slow{shift}/v"] / graph.node(f"readout.slow{shift}").op.scale
            assert np.abs(got - want).max() < 0.01 * np.abs(want).max()


def test_oscillator_readouts_are_the_float_oscillators_in_integers():
    """Each oscillator readout becomes ``readout.osc<m>_<k>`` (``_<c>`` after it for a
    multiplier ``c`` other than 1): an oscillator readout of leak shift ``k`` and rotation
    ``c 2^-m`` over a one-lag convolution of the input into ``u`` and ``w`` (one scale a pair);
    the integer PyTorch path equals the golden model on every tensor; the integer ``u``
    follows the float model's within the rounding; it compiles for a core with the oscillator
    unit, whose model matches the golden trace."""
    from est.compiler.program import CoreSpec, compile_program, uses_osc
    from est.sim import core_model
    from est.sim.interpreter import run
    from est.sw.est import _oscillate
    from est.sw.integer import integer_forward

    oscillators = ((2, 6, 1), (3, 7, 1), (6, 7, 13))
    model = _model(readout_oscillators=((2, 6), (3, 7), (6, 7, 13)), input_bits=3)
    assert model.cfg.readout_oscillators == oscillators
    with torch.no_grad():
        for conv in model.osc:
            conv.weight.normal_(0.0, 0.05)
    counts = np.minimum(np.random.default_rng(3).poisson(0.6, (300, 6)), 7)
    graph, _ = quantize_est(model, "o", counts, weight_bits=8)
    nodes = ("readout.osc2_6", "readout.osc3_7", "readout.osc6_7_13")
    assert graph.outputs[-3:] == nodes
    for node, (m, k, c) in zip(nodes, oscillators, strict=True):
        op = graph.node(node).op
        assert (op.leak_shift, op.rotate_shift, op.rotate_mult) == (k, m, c)
        assert graph.node(f"{node}.syn").op.weight.shape == (1, 12, 6)
    tensors = integer_forward(graph, counts)
    golden = run(graph, counts)[0]
    for name, values in golden.arrays.items():
        np.testing.assert_array_equal(tensors[name], values, err_msg=name)
    x = torch.as_tensor(counts, dtype=torch.float32)[:, None]
    with torch.no_grad():
        for node, (m, k, c), conv in zip(nodes, oscillators, model.osc, strict=True):
            want = _oscillate(conv, x, m, k, c, None)[:, 0].numpy()
            got = tensors[f"{node}/v"] / graph.node(node).op.scale
            assert np.abs(got - want).max() < 0.02 * np.abs(want).max(), node
    assert uses_osc(graph)
    spec = CoreSpec(weight_words=4096, act_words=512, neuron_words=512, acc_words=16,
                    osc=True, osc_mult=True)
    prog = compile_program(graph, spec)
    got = core_model.run(prog, counts[:30])
    for name, values in got.trace.arrays.items():
        np.testing.assert_array_equal(values, golden.arrays[name][:30], err_msg=name)


def test_first_bin_starts_the_rhythms_where_the_recording_is():
    """``first_bin`` B: each rhythm table's rows at stream bin t are the rows the model reads at
    bin B + t of its recording (``rhythm_values``, whose phase counts from bin 0); a model
    without fitted rhythms refuses a first bin."""
    from pathlib import Path

    from est.compiler.est_frontend import est_float_graph
    from est.compiler.frontend import load_est_checkpoint, open_checkpoint
    from est.sw.glm import rhythm_values

    path = Path(__file__).parents[1] / "examples" / "est_small.pt"
    model, _ = load_est_checkpoint(path)
    advances = model.cfg.rhythm_advances
    assert advances
    for first in (0, 20400, 123457):
        graph = est_float_graph(model, "s", first_bin=first)
        for i, a in enumerate(advances):
            rows = graph.node(f"rhythm{i}").op.seq([], 300)["spikes"].numpy()
            np.testing.assert_array_equal(rows, rhythm_values(first + np.arange(300), [a],
                                                              model.cfg.rhythm_rows))
    tiny = path.with_name("est_tiny.pt")
    with pytest.raises(EstError, match="est_tiny.pt: --first-bin 3 sets the phase of an EST's "
                                       "fitted rhythms, and this EST has none"):
        open_checkpoint(tiny, 0.2, first_bin=3)
