"""``conv`` (compiler/ops/conv.py) and the gateware it lowers to: the dense synapses
(hw/synapse.py, SynapticAccumulator) and the causal convolution (hw/conv.py, CausalConv), each
alone against the golden step in amaranth.sim, random sizes and widths, random stalls."""

import random

import numpy as np
import pytest

from est.hw.conv import CausalConv
from est.hw.synapse import SynapticAccumulator
from est.sim import golden
from est.sim.amaranth_sim import run_bench, stream_get, stream_put
from est.sim.words import pack, unpack


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
def test_synaptic_accumulator_matches_synapse_step(seed):
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
    want = [golden.synapse_step(x, golden.SynapseParams(weight, bias)).tolist() for x in spikes]
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
