"""EST hardware components, each alone against its golden step function in amaranth.sim: random
sizes, widths and parameters, random stalls on every stream."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from est.hw.lfsr import SpikeMask
from est.sim import golden
from est.sim.amaranth_sim import stream_get, stream_put


def _simulate(dut, bench) -> None:
    """Run testbench ``bench`` against ``dut`` on a 10 MHz clock until it returns."""
    sim = Simulator(dut)
    sim.add_clock(1e-7)
    sim.add_testbench(bench)
    sim.run()


def _run(dut, inputs: list[int], stall_seed: int, before_each=None) -> list[int]:
    """Feed ``inputs`` one word per bin on ``dut.i``, collect one word per bin from ``dut.o``."""
    stall = random.Random(stall_seed)
    out = []

    async def bench(ctx):
        for word in inputs:
            await stream_put(ctx, dut.i, word, stall)
            payload, _ = await stream_get(ctx, dut.o, stall)
            out.append(payload)

    _simulate(dut, bench)
    return out


def _bits(vec) -> int:
    return sum(int(b) << i for i, b in enumerate(vec))


def _pack(values, bits: int) -> int:
    return sum(int(v) << (i * bits) for i, v in enumerate(values))


def _unpack(word: int, n: int, bits: int) -> np.ndarray:
    return np.array([(word >> (i * bits)) & ((1 << bits) - 1) for i in range(n)], np.int64)


def _vec(word: int, n: int) -> np.ndarray:
    return np.array([(word >> i) & 1 for i in range(n)], dtype=np.int64)


@pytest.mark.parametrize("case", range(8))
def test_spike_mask_matches_golden(case):
    rng = np.random.default_rng(case)
    n = int(rng.integers(1, 40))
    lanes = int(rng.integers(1, 6))
    threshold = [0, 1, 128, 255, int(rng.integers(1, 256))][case % 5]
    seed = int(rng.integers(1, 1 << 32))
    bits = [1, 3][case % 2]
    spikes = rng.integers(0, 1 << bits, (30, n)) * (rng.random((30, n)) < 0.6)
    dut = SpikeMask(n, threshold, seed, lanes, bits)
    got = _run(dut, [_pack(s, bits) for s in spikes], stall_seed=case)
    state, params = seed, golden.MaskParams(n, threshold)
    for t, s in enumerate(spikes):
        want, state = golden.mask_step(s, state, params)
        np.testing.assert_array_equal(_unpack(got[t], n, bits), want, err_msg=f"bin {t}")
    if 64 <= threshold < 256:  # drops are then certain to show over 30 bins
        assert any(_unpack(g, n, bits).sum() < s.sum() for g, s in zip(got, spikes, strict=True))


@pytest.mark.parametrize("case", range(8))
def test_spike_attention_matches_golden(case):
    from est.hw.attention import SpikeAttention

    rng = np.random.default_rng(100 + case)
    mode = ["sdsa", "ssa"][case % 2]
    heads = int(rng.choice([1, 2, 4]))
    d = heads * int(rng.integers(1, 6))
    window = int(rng.integers(1, 9))
    threshold = int(rng.integers(1, window + 2)) if case % 4 == 0 else 1
    dut = SpikeAttention(d, window, mode, heads, threshold)
    bins = 40
    q, k, v = ((rng.random((bins, d)) < p).astype(np.int64) for p in (0.5, 0.4, 0.6))
    words = [_bits(q[t]) | _bits(k[t]) << d | _bits(v[t]) << 2 * d for t in range(bins)]
    got = _run(dut, words, stall_seed=case)
    params = golden.AttentionParams(mode, window, heads, threshold)
    hist = golden.history_init(window, 2 * d)
    for t in range(bins):
        want, hist = golden.attention_step(q[t], k[t], v[t], hist, params)
        if mode == "sdsa":
            have = _vec(got[t], d)
        else:
            b = dut.out_bits
            have = np.array([(got[t] >> (c * b)) & ((1 << b) - 1) for c in range(d)])
        np.testing.assert_array_equal(have, want, err_msg=f"{mode} bin {t}")


@pytest.mark.parametrize("case", range(8))
def test_causal_conv_matches_golden(case):
    from est.hw.conv import CausalConv

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
    words = [sum(int(v) << (i * x_bits) for i, v in enumerate(row)) for row in x]
    stall = random.Random(case)
    got = []

    async def bench(ctx):
        for word in words:
            await stream_put(ctx, dut.i, word, stall)
            currents = []
            while True:
                payload, _ = await stream_get(ctx, dut.o, stall)
                for lane in range(lanes):
                    v = (payload >> (lane * dut.acc_bits)) & ((1 << dut.acc_bits) - 1)
                    currents.append(v - (1 << dut.acc_bits) if v >> (dut.acc_bits - 1) else v)
                if payload >> (lanes * dut.acc_bits):
                    break
            got.append(currents[:n_out])

    _simulate(dut, bench)
    hist, params = golden.history_init(kernel, n_in), golden.ConvParams(weight, bias)
    for t in range(bins):
        want, hist = golden.conv_step(x[t], hist, params)
        np.testing.assert_array_equal(got[t], want, err_msg=f"bin {t}")


@pytest.mark.parametrize("case", range(6))
def test_temporal_unit_matches_golden(case):
    from est.hw.tpu import TemporalUnit

    rng = np.random.default_rng(300 + case)
    d, kernel, lanes = int(rng.integers(1, 12)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    x_bits = [1, 2, 3][case % 3]
    v_bits = int(rng.integers(6, 12))
    leak = [None, 0, 1, 3][case % 4]
    reset = ["subtract", "zero"][case % 2]
    w_in, bias = rng.integers(-4, 9, d), rng.integers(-3, 6, d)
    w_rec = rng.integers(-6, 7, (kernel, d))
    theta = rng.integers(1, 12, d)
    dut = TemporalUnit(w_in, w_rec, bias, lanes, x_bits, v_bits, leak, theta, reset, trace=True)
    bins = 40
    r = rng.integers(0, 1 << x_bits, (bins, d))
    words = [sum(int(v) << (i * x_bits) for i, v in enumerate(row)) for row in r]
    got = _run(dut, words, stall_seed=case)
    params = golden.LIFParams(theta, leak, v_bits, reset)
    state, hist = golden.lif_init(d), golden.history_init(kernel + 1, d)
    fired = 0
    for t in range(bins):
        current = bias + w_in * r[t] + (w_rec * hist.x).sum(axis=0)
        out, state = golden.lif_step(current, state, params)
        y = out.spikes.astype(np.int64)
        _, hist = golden.history_push(y, hist)
        fired += y.sum()
        word = got[t]
        np.testing.assert_array_equal(_vec(word, d), y, err_msg=f"spikes bin {t}")
        vs = [(word >> (d + c * v_bits)) & ((1 << v_bits) - 1) for c in range(d)]
        vs = [v - (1 << v_bits) if v >> (v_bits - 1) else v for v in vs]
        np.testing.assert_array_equal(vs, state.v, err_msg=f"v bin {t}")
    assert 0 < fired < bins * d


@pytest.mark.parametrize("op, skip_bits", [("add", 1), ("add", 3), ("and", 1), ("iand", 1),
                                           ("none", 2)])
def test_sew_join_matches_golden(op, skip_bits):
    from est.hw.sew import SEWJoin

    rng = np.random.default_rng(len(op) * 10 + skip_bits)
    n, bins = int(rng.integers(1, 20)), 30
    dut = SEWJoin(n, op, skip_bits)
    out = (rng.random((bins, n)) < 0.5).astype(np.int64)
    skip = rng.integers(0, 1 << skip_bits, (bins, n))
    stall = random.Random(skip_bits)
    got = []

    async def bench(ctx):  # one process drives both inputs: they are taken together
        for t in range(bins):
            while stall.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.out.payload, _bits(out[t]))
            ctx.set(dut.skip.payload, sum(int(v) << (i * skip_bits) for i, v in enumerate(skip[t])))
            ctx.set(dut.out.valid, 1)
            ctx.set(dut.skip.valid, 1)
            while True:
                taken = ctx.get(dut.out.ready)
                assert taken == ctx.get(dut.skip.ready)
                await ctx.tick()
                if taken:
                    break
            ctx.set(dut.out.valid, 0)
            ctx.set(dut.skip.valid, 0)
            payload, _ = await stream_get(ctx, dut.o, stall)
            got.append(payload)

    _simulate(dut, bench)
    b = dut.out_bits
    for t in range(bins):
        have = [(got[t] >> (c * b)) & ((1 << b) - 1) for c in range(n)]
        want = out[t] if op == "none" else golden.sew(out[t], skip[t], op)
        np.testing.assert_array_equal(have, want, err_msg=f"bin {t}")


def test_cpg_table_rom_plays_the_table_in_order():
    from est.hw.sew import CPGTable

    table = golden.cpg_table(13, 6)
    dut = CPGTable(table)
    stall, got = random.Random(1), []

    async def bench(ctx):
        for _ in range(30):
            payload, _ = await stream_get(ctx, dut.o, stall)
            got.append(payload)

    _simulate(dut, bench)
    for t, word in enumerate(got):
        np.testing.assert_array_equal(_vec(word, 6), table[t % 13], err_msg=f"bin {t}")


@pytest.mark.parametrize("cfg", [
    dict(attention="sdsa", sew="add", cpg=True, tpu=True, rsm=0.5),
    dict(attention="ssa", sew="and", cpg=False, tpu=True, rsm=0.0),
    dict(attention="sdsa", sew="iand", cpg=True, tpu=False, rsm=0.25),
    dict(attention="none", sew="none", cpg=False, tpu=True, rsm=0.5),
])
def test_est_top_matches_golden_in_every_layer(cfg):
    """The dataflow top of a random EST graph: every tensor it exposes equals the golden one."""
    from est.hw.dataflow import DataflowTop
    from est.sim.amaranth_sim import simulate_top
    from est.sim.interpreter import run
    from est.sim.trace import compare
    from netgen import random_est_graph

    graph = random_est_graph(7, **cfg, n_in=5, d=6, blocks=2, heads=2, hidden=7)
    stimulus = (np.random.default_rng(1).random((24, 5)) < 0.4).astype(np.int64)
    dut = DataflowTop(graph, lanes=3)
    rtl = simulate_top(dut, dut.fields, stimulus, stall_seed=2)
    result = compare(run(graph, stimulus)[0], rtl.trace)
    assert result.mismatches == 0, result.first
    assert len(result.tensors) == len(dut.fields) and result.bins == 24
