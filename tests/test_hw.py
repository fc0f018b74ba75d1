"""Each hardware component alone, and the dataflow top of a spiking MLP, against the golden model
in amaranth.sim, with random parameters, widths, lanes and random stalls on every stream."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from est.hw.dataflow import DataflowTop, measure_cycles
from est.hw.neurons import LIFArray, ReadoutIntegrator
from est.hw.synapse import SynapticAccumulator, ceil_div, pack_lanes
from est.sim import golden
from est.sim.amaranth_sim import simulate_top, stream_get, stream_put
from est.sim.interpreter import run
from est.sim.trace import compare
from netgen import random_mlp_graph, random_stimulus


def _signed(word: int, pos: int, bits: int) -> int:
    v = (word >> pos) & ((1 << bits) - 1)
    return v - (1 << bits) if v >> (bits - 1) else v


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-7)
    sim.add_testbench(bench)
    sim.run()


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
    stall = random.Random(seed)
    got = []

    async def bench(ctx):
        for x in spikes:
            await stream_put(ctx, dut.i, int(sum(int(b) << i for i, b in enumerate(x))), stall)
            currents = []
            for g in range(dut.groups):
                word, _ = await stream_get(ctx, dut.o, stall)
                assert (word >> (lanes * acc_bits)) & 1 == (g == dut.groups - 1)
                currents += [_signed(word, lane * acc_bits, acc_bits) for lane in range(lanes)]
            got.append(currents[:n_out])

    _run(dut, bench)
    want = [golden.synapse_step(x, golden.SynapseParams(weight, bias)).tolist() for x in spikes]
    assert got == want


def _feed_neurons(dut, currents: np.ndarray, acc_bits: int, stall, decode):
    """Send each bin's currents group by group; decode each bin's output word."""
    lanes, out = dut.lanes, []

    async def bench(ctx):
        for row in currents:
            words = pack_lanes(row, lanes, acc_bits)
            for g, word in enumerate(words):
                last = int(g == len(words) - 1) << (lanes * acc_bits)
                await stream_put(ctx, dut.i, word | last, stall)
            word, _ = await stream_get(ctx, dut.o, stall)
            out.append(decode(word))

    _run(dut, bench)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_lif_array_matches_lif_step(seed):
    rng = np.random.default_rng(100 + seed)
    n, lanes = int(rng.integers(1, 14)), int(rng.integers(1, 6))
    acc_bits, v_bits = int(rng.integers(4, 12)), int(rng.integers(4, 12))
    leak = [None, 0, 1, 2][rng.integers(4)] if v_bits > 2 else None
    reset = ["subtract", "zero"][seed % 2]
    theta = rng.integers(1, golden.signed_range(v_bits)[1] + 1, n)
    lo, hi = golden.signed_range(acc_bits)
    currents = rng.integers(lo, hi + 1, (25, n))
    dut = LIFArray(n, lanes, acc_bits, v_bits, leak, theta, reset, trace=True)

    def decode(word):
        return ([(word >> j) & 1 for j in range(n)],
                [_signed(word, n + j * v_bits, v_bits) for j in range(n)])

    got = _feed_neurons(dut, currents, acc_bits, random.Random(seed), decode)
    params, state = golden.LIFParams(theta, leak, v_bits, reset), golden.lif_init(n)
    for t, (spikes, v) in enumerate(got):
        out, state = golden.lif_step(currents[t], state, params)
        assert spikes == out.spikes.tolist(), f"bin {t}"
        assert v == state.v.tolist(), f"bin {t}"


@pytest.mark.parametrize("seed", range(3))
def test_readout_integrator_matches_integrator_step(seed):
    rng = np.random.default_rng(200 + seed)
    n, lanes = int(rng.integers(1, 10)), int(rng.integers(1, 5))
    acc_bits, v_bits = int(rng.integers(4, 10)), int(rng.integers(4, 10))
    leak = [None, 0, 1, 3][rng.integers(4)] if v_bits > 3 else 0
    lo, hi = golden.signed_range(acc_bits)
    currents = rng.integers(lo, hi + 1, (20, n))
    dut = ReadoutIntegrator(n, lanes, acc_bits, v_bits, leak)
    got = _feed_neurons(dut, currents, acc_bits, random.Random(seed),
                        lambda word: [_signed(word, j * v_bits, v_bits) for j in range(n)])
    params, state = golden.IntegratorParams(leak, v_bits), golden.lif_init(n)
    for t, values in enumerate(got):
        _, state = golden.integrator_step(currents[t], state, params)
        assert values == state.v.tolist(), f"bin {t}"


@pytest.mark.parametrize("seed, lanes", [(0, 1), (1, 2), (2, 3), (3, 7), (4, 16)])
def test_dataflow_top_of_an_mlp_is_bit_exact_with_stalls(seed, lanes):
    graph = random_mlp_graph(seed)
    stimulus = random_stimulus(seed, 24, graph.n_in)
    golden_trace, _ = run(graph, stimulus)
    dut = DataflowTop(graph, lanes, trace=True)
    result = compare(golden_trace, simulate_top(dut, dut.fields, stimulus, stall_seed=seed).trace)
    assert result.tensors == ("fc1/spikes", "fc1/v", "fc2/spikes", "fc2/v", "readout/v")
    assert result.mismatches == 0, result.first


def test_cycles_per_bin_meet_the_schedule():
    """Each dense layer takes (groups - 1) * max(n_in, 2) + n_in + 3 cycles, back to back."""
    graph = random_mlp_graph(9, n_in=16, hidden=(12,), n_out=4)
    dut = DataflowTop(graph, 4, trace=False)
    run_ = simulate_top(dut, dut.fields, random_stimulus(9, 4, 16))
    schedule = sum((ceil_div(n_out, 4) - 1) * max(n_in, 2) + n_in + 3
                   for n_out, n_in in ((12, 16), (4, 12)))
    assert schedule == measure_cycles(graph, 4)
    assert run_.latency_cycles[1:] == [schedule] * 3
