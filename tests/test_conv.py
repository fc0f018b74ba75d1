"""``conv`` (compiler/ops/conv.py) and the gateware it lowers to. The operation module: its
parameter checks, currents by hand (a kernel with history, zero before bin 0, and a dense
kernel 1), the PyTorch path against the golden model, quantization by hand and the cost row.
The gateware: the dense synapses (hw/synapse.py, SynapticAccumulator) and the causal
convolution (hw/conv.py, CausalConv), each alone against the golden step in amaranth.sim,
random sizes and widths, random stalls."""

import random

import numpy as np
import pytest

from est.boards.spec import get_board
from est.compiler import costs
from est.compiler.costs import Context
from est.compiler.graph import GraphBuilder, IRError, Spec
from est.compiler.ops import LIF, Conv, Input, Readout
from est.compiler.ops.conv import weight_bits
from est.compiler.passes import Quantizer
from est.hw.conv import CausalConv
from est.hw.synapse import SynapticAccumulator
from est.sim import golden
from est.sim.amaranth_sim import run_bench, stream_get, stream_put
from est.sim.interpreter import run
from est.sim.words import pack, unpack
from netgen import check_integer_path, random_stimulus

ICEBREAKER = get_board("icebreaker")


def _currents(dut, x: np.ndarray, x_bits: int, n_out: int, lanes: int, acc_bits: int,
              seed: int):
    """Per bin of ``x`` (``x_bits`` per input): the currents ``dut`` sends group by group
    (the last flag checked)."""
    stall, got = random.Random(seed), []

    async def bench(ctx):
        for row in x:
            await stream_put(ctx, dut.i, pack(row, x_bits), stall)
            currents, groups = [], 0
            while True:
                word, _ = await stream_get(ctx, dut.o, stall)
                currents += unpack(word, lanes, acc_bits, signed=True).tolist()
                groups += 1
                if word >> (lanes * acc_bits):
                    break
            assert groups == -(-n_out // lanes)
            got.append(currents[:n_out])

    run_bench(dut, bench)
    return got


@pytest.mark.parametrize("seed", range(4))
def test_synaptic_accumulator_matches_dense_currents(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    lanes, wbits = int(rng.integers(1, 6)), int(rng.integers(2, 9))
    lo, hi = golden.signed_range(wbits)
    weight = rng.integers(lo, hi + 1, (n_out, n_in))
    bias = rng.integers(-300, 300, n_out)
    acc_bits = golden.conv_acc_bits(weight[None], bias, 1)
    dut = SynapticAccumulator(weight, bias, lanes, acc_bits, wbits)
    spikes = (rng.random((6, n_in)) < 0.5).astype(np.int64)
    got = _currents(dut, spikes, 1, n_out, lanes, acc_bits, seed)
    want = [(bias + weight @ x).tolist() for x in spikes]
    assert got == want


@pytest.mark.parametrize("case", range(8))
def test_causal_conv_matches_golden(case):
    rng = np.random.default_rng(200 + case)
    kernel, n_in, n_out = (int(rng.integers(1, hi)) for hi in (8, 10, 12))
    x_bits = [1, 1, 2, 3][case % 4]
    weight_bits = int(rng.integers(2, 9))
    lanes = int(rng.integers(1, 5))
    lo, hi = golden.signed_range(weight_bits)
    weight = rng.integers(lo, hi + 1, (kernel, n_out, n_in))
    bias = rng.integers(-30, 30, n_out)
    dut = CausalConv(weight, bias, lanes, weight_bits, x_bits)
    bins = 25
    x = rng.integers(0, 1 << x_bits, (bins, n_in)) * (rng.random((bins, n_in)) < 0.6)
    got = _currents(dut, x, x_bits, n_out, lanes, dut.acc_bits, case)
    hist, params = golden.history_init(kernel, n_in), golden.ConvParams(weight, bias)
    for t in range(bins):
        want, hist = golden.conv_step(x[t], hist, params)
        np.testing.assert_array_equal(got[t], want, err_msg=f"bin {t}")


# --- the operation (compiler/ops/conv.py) --------------------------------------------------


def _conv_graph(conv: Conv, n_in: int):
    """input -> ``conv`` ("syn") -> a readout of no memory, wide enough to copy the current."""
    g = GraphBuilder()
    g.add("readout", Readout(0, 16, np.ones(conv.weight.shape[1])),
          g.add("syn", conv, g.add("input", Input(n_in))))
    return g.build("conv", ("readout",))


def test_currents_by_hand_with_history():
    # lag 0 in units, lag 1 in tens, lag 2 in hundreds (channel 0); channel 1 mixed signs
    weight = np.array([[[1, 2], [-1, 0]],  # lag 0: weight[0] @ x_t
                       [[10, 20], [0, -10]],  # lag 1: weight[1] @ x_{t-1}
                       [[100, 200], [3, 0]]])  # lag 2: weight[2] @ x_{t-2}
    stim = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [0, 0]])
    trace, saturated = run(_conv_graph(Conv(weight, np.array([0, 5])), 2), stim)
    # channel 0: bin 0: 1 (nothing before bin 0); bin 1: 2 + 10 = 12; bin 2: 3 + 20 + 100 =
    # 123; bin 3: 30 + 200 = 230; bin 4: 300 (only lag 2 still sees bin 2)
    # channel 1 = 5 - x0_t - 10 x1_{t-1} + 3 x0_{t-2}: 4, 5, 5-1-10+3 = -3, 5-10 = -5, 5+3 = 8
    want = [[1, 4], [12, 5], [123, -3], [230, -5], [300, 8]]
    assert trace.arrays["syn/current"].tolist() == want
    assert trace.arrays["readout/v"].tolist() == want  # leak 0: r = sat(c), 16 bits hold it
    assert saturated == {"readout": 0}


def test_currents_by_hand_kernel_1_is_a_dense_layer():
    weight = np.array([[[2, -3], [0, 5], [-1, -1]]])
    stim = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    trace, _ = run(_conv_graph(Conv(weight, np.array([1, 0, 4])), 2), stim)
    # c = b + W x_t, no memory of earlier bins: [1+2, 0, 4-1], [1-3, 5, 4-1], [1+2-3, 5, 4-2],
    # [1, 0, 4]
    assert trace.arrays["syn/current"].tolist() == [[3, 0, 3], [-2, 5, 3], [0, 5, 2], [1, 0, 4]]


def _random_graph(seed: int):
    """input -> conv -> LIF -> conv -> readout; kernels 1..4 from the seed."""
    rng = np.random.default_rng(seed)
    n_in, hidden, n_out = (int(v) for v in rng.integers(2, 6, 3))
    k1, k2 = seed % 4 + 1, 4 - seed % 4
    g = GraphBuilder()
    x = g.add("input", Input(n_in))
    syn = g.add("a.syn", Conv(rng.integers(-8, 9, (k1, hidden, n_in)),
                              rng.integers(-3, 6, hidden)), x)
    s = g.add("a", LIF(rng.integers(1, 8, hidden), 1, 10, "subtract"), syn)
    g.add("readout", Readout(None, 16, np.ones(n_out)),
          g.add("readout.syn", Conv(rng.integers(-8, 9, (k2, n_out, hidden)),
                                    rng.integers(-5, 6, n_out)), s))
    return g.build(f"conv{seed}", ("readout",))


@pytest.mark.parametrize("seed", range(4))
def test_pytorch_path_equals_the_golden_model(seed):
    graph = _random_graph(seed)
    for bins in (30, 2):  # 2 bins: fewer than a kernel of 3 or 4 reaches back
        stim = random_stimulus(seed, bins, graph.n_in, 0.5)
        golden_trace, _ = check_integer_path(graph, stim, f"{bins} bins")
        assert bins == 2 or golden_trace.arrays["a/spikes"].any()  # the second conv has input


def test_check_gives_the_current_spec_with_its_accumulator_width():
    # docs/semantics.md 1.1: W = [[3, -5, 7], [-2, -2, 1]], b = [4, -1]: lo = min(4-5, -1-4)
    # = -5, hi = max(4+10, -1+1) = 14: 5 bits
    conv = Conv(np.array([[[3, -5, 7], [-2, -2, 1]]]), np.array([4, -1]))
    assert conv.check("syn", [Spec(3, 1)]) == Spec(2, 5, True, "current")
    # on 2-bit inputs (0..3) every weight sum triples: lo = min(4-15, -1-12) = -13, hi = 46
    assert conv.check("syn", [Spec(3, 2)]) == Spec(2, 7, True, "current")
    # the extremes are taken: 16-bit weights, a 32-bit accumulator
    edge = Conv(np.array([[[-32768, 0], [1, 0]]]), np.array([0, (1 << 31) - 2]))
    assert edge.check("syn", [Spec(2, 1)]) == Spec(2, 32, True, "current")


_W = np.ones((1, 2, 3), np.int64)
_B = np.zeros(2, np.int64)


@pytest.mark.parametrize("conv, spec, field", [
    (Conv(_W.astype(np.float64), _B), Spec(3, 1), "weight"),  # floats
    (Conv(np.ones((1, 2, 4), np.int64), _B), Spec(3, 1), "weight"),  # 4 inputs, 3 given
    (Conv(np.ones((2, 3), np.int64), _B), Spec(3, 1), "weight"),  # no kernel axis
    (Conv(np.ones((0, 2, 3), np.int64), _B), Spec(3, 1), "weight"),  # kernel 0
    (Conv(_W * 32768, _B), Spec(3, 1), "weight"),  # beyond 16 bits
    (Conv(_W, np.zeros(3, np.int64)), Spec(3, 1), "bias"),  # 3 biases for 2 outputs
    (Conv(_W, np.zeros(2)), Spec(3, 1), "bias"),  # floats
    (Conv(_W, np.array([0, (1 << 31) - 1])), Spec(3, 1), "bias"),  # 33-bit accumulator
    (Conv(_W, _B), Spec(3, 4, True), "inputs"),  # signed vector
    (Conv(_W, _B), Spec(3, 4, True, "current"), "inputs"),  # another convolution's current
], ids=["float-weight", "weight-n_in", "weight-2d", "kernel-0", "weight-17-bits", "bias-shape",
        "float-bias", "acc-33-bits", "signed-input", "current-input"])
def test_bad_parameters_are_refused_naming_node_and_field(conv, spec, field):
    with pytest.raises(IRError) as err:
        conv.check("syn", [spec])
    assert (err.value.node, err.value.field) == ("syn", field)


def test_a_bad_bias_is_refused_when_the_graph_is_built():
    g = GraphBuilder()
    g.add("readout", Readout(0, 8, np.ones(2)),
          g.add("layer.syn", Conv(_W, np.zeros(3, np.int64)), g.add("input", Input(3))))
    with pytest.raises(IRError, match=r"'layer.syn', field 'bias': expected shape \(2\)") as err:
        g.build("bad", ("readout",))
    assert (err.value.node, err.value.field) == ("layer.syn", "bias")


def test_quantize_by_hand():
    q = Quantizer(8, "a.syn", {"a.syn": "layers.a"})  # qmax 127
    w = np.zeros((2, 3, 2))  # [kernel, n_out, n_in]
    w[:, 0] = np.array([[127, -2.5], [3.5, 0]]) / 64  # channel 0, lag 0 then lag 1
    w[:, 1] = [[0, 0.5], [-1, 0.25]]  # channel 1: its largest weight at lag 1
    bias = np.array([2.5 / 64, -0.5, 0.25])  # channel 2 has no weight
    op, s = Conv(w, bias).quantize(q, LIF(np.array([1.0, 2.0, 0.5]), None, 32))
    # s = 127 / max|w| over every lag and input: 127 / (127/64) = 64, 127 / 1 = 127; channel
    # 2 falls back to 127 / its threshold 0.5 = 254
    assert s.tolist() == [64.0, 127.0, 254.0]
    # x s, rounded half to even: 127, -2.5 -> -2, 3.5 -> 4 ...
    assert op.weight[:, 0].tolist() == [[127, -2], [4, 0]]
    assert op.weight[:, 1].tolist() == [[0, 64], [-127, 32]]  # 63.5 -> 64, 31.75 -> 32
    assert op.weight[:, 2].tolist() == [[0, 0], [0, 0]]
    assert op.bias.tolist() == [2, -64, 64]  # 2.5 -> 2, -63.5 -> -64, 0.25 * 254 = 63.5 -> 64
    assert op.weight.dtype == op.bias.dtype == np.int64
    # before a readout (no threshold) an all-zero channel takes 127 / 1.0
    op, s = Conv(np.zeros((1, 1, 2)), np.array([0.5])).quantize(q, Readout(None, 32,
                                                                           np.ones(1)))
    assert s.tolist() == [127.0] and op.bias.tolist() == [64]  # 63.5 -> 64
    # 4-bit weights: qmax 7, channel 0's 1.0 -> 7 and 0.5 -> 3.5 -> 4, channel 1's -0.75 -> -7
    op, s = Conv(np.array([[[1.0, 0.5], [-0.75, 0.25]]]), np.zeros(2)).quantize(
        Quantizer(4, "syn", {}), LIF(np.ones(2), None, 32))
    assert op.weight.tolist() == [[[7, 4], [-7, 2]]]  # 0.25 * 7 / 0.75 = 2.33 -> 2
    np.testing.assert_allclose(s, [7.0, 7 / 0.75])


def test_weight_bits_by_hand():
    assert weight_bits(np.array([-3, 1])) == 3  # -4..3
    assert weight_bits(np.array([4, 0])) == 4  # -8..7
    assert weight_bits(np.array([-4, 3])) == 3
    assert weight_bits(np.array([0, 0])) == 2
    assert weight_bits(np.zeros(0, np.int64)) == 2


def _ones(kernel: int, n_out: int, n_in: int) -> Conv:
    """All weights 1 but one -3: 3-bit weights; no bias."""
    weight = np.ones((kernel, n_out, n_in), np.int64)
    weight[0, 0, 0] = -3
    return Conv(weight, np.zeros(n_out, np.int64))


@pytest.mark.parametrize("kernel, n_in, lanes, want", [
    # ops 3*4*5 = 60; lanes 1: 5 groups of 12 inputs: (5-1)*12 + 12 + 3 + 1 = 64 cycles; ROM of
    # 60 words in logic (<= 64); memory 60*3 + 5 outputs * acc 5 + history 2*4 = 213;
    # LUTs mux 6 + (3 + 2*5) + ROM 3*ceil(60/16) + 5 + 40 = 76; FFs 5*4 + 2*5 + 20 = 50
    (3, 4, 1, (60, 64, 60, 0, 213, 0, 76, 50)),
    # lanes 3: 2 groups: 12 + 12 + 3 + 1 = 28 cycles, ceil(60/3) = 20; ROM 24 words of 9 bits:
    # 9*2 LUTs; LUTs 6 + 3*13 + 18 + 3*5 + 40 = 118; FFs 20 + 2*3*5 + 20 = 70
    (3, 4, 3, (60, 28, 20, 0, 213, 0, 118, 70)),
    # kernel 1, 20 inputs: 100 ops, (5-1)*20 + 20 + 3 = 103 cycles; a ROM of 100 words goes
    # to one block RAM (256x16): ceil(100*3 / 16) = 19; acc: -3..20, 6 bits: 300 + 5*6 = 330
    # bits, no history; LUTs mux 10 + (3 + 12) + 6 + 40 = 71; FFs 20 + 12 + 20 = 52
    (1, 20, 1, (100, 103, 100, 19, 330, 1, 71, 52)),
])
def test_cost_by_hand(kernel, n_in, lanes, want):
    conv = _ones(kernel, 5, n_in)
    (row,) = conv.cost("syn", [Spec(n_in, 1)], Context(lanes, ICEBREAKER, True))
    assert (row.name, row.kind, row.shape) == ("syn", "conv", f"{kernel}x5x{n_in}")
    assert (row.synaptic_ops, row.cycles, row.dense_bound, row.memory_bound, row.memory_bits,
            row.block_rams, row.luts, row.ffs) == want
    assert row in costs.stages(_conv_graph(conv, n_in), lanes, ICEBREAKER, True)
