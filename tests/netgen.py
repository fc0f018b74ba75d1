"""Random integer networks and stimuli for tests (seeded, so any failure reproduces)."""

from pathlib import Path

import numpy as np


def random_stimulus(seed: int, bins: int, n_in: int, rate: float = 0.3,
                    bits: int = 1) -> np.ndarray:
    """Spikes at ``rate``, or for ``bits`` > 1 Poisson counts of mean ``rate`` clipped to
    ``2**bits - 1``."""
    rng = np.random.default_rng(seed)
    if bits == 1:
        return (rng.random((bins, n_in)) < rate).astype(np.int64)
    return np.minimum(rng.poisson(rate, (bins, n_in)), 2 ** bits - 1)


def write_slow_est(path: Path, seed: int, shifts=(2, 7)) -> Path:
    """An untrained EST checkpoint (8 neurons, 1 block) with slow readouts of ``shifts``, their
    weights drawn (zero at init): a network of ``1 + len(shifts)`` outputs whose log-rates add
    up."""
    import torch

    from est.sw.est import EST, ESTConfig
    from est.sw.train import save_checkpoint

    torch.manual_seed(seed)
    model = EST(ESTConfig(n_in=8, n_out=8, blocks=1, readout_slow_shifts=shifts, seed=seed))
    with torch.no_grad():
        for conv in model.slow:
            conv.weight.normal_(0.0, 0.05)
    save_checkpoint(model, path, {})
    return path


def oscillator_graph(seed: int, n_in: int = 4):
    """3-bit counts into three oscillator readouts (random weights and biases): ``osc_a`` of 3
    pairs, 9 bits (it saturates), ``osc_b`` of 1 pair, whose w half reads the u just
    written, and ``osc_c`` of 2 pairs, a rotation of 27 / 32 (a multiplier)."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import Conv, Input, Readout

    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.add("input", Input(n_in, bits=3))
    for name, n, k, m, c, bits in (("osc_a", 3, 3, 1, 1, 9), ("osc_b", 1, 2, 0, 1, 12),
                                   ("osc_c", 2, 5, 5, 27, 14)):
        syn = g.add(f"{name}.syn", Conv(rng.integers(-20, 21, (1, 2 * n, n_in)),
                                        rng.integers(-5, 6, 2 * n)), x)
        g.add(name, Readout(k, bits, np.ones(n), rotate_shift=m, rotate_mult=c), syn)
    return g.build("osc", ("osc_a", "osc_b", "osc_c"))


def random_est_graph(seed: int, attention: str = "sdsa", sew: str = "add", cpg: bool = True,
                     tpu: bool = True, rsm: float = 0.5, n_in: int = 6, d: int = 8,
                     blocks: int = 2, heads: int = 2, hidden: int = 12, window: int = 4,
                     input_bits: int = 1, input_to_readout: bool = False,
                     readout_kernel: int = 1):
    """A random integer EST graph (no training): every switch set by the arguments."""
    from est.compiler.est_frontend import Block, est_graph
    from est.compiler.ops import LIF, Attention, Conv, Mask, Readout, Recurrence
    from est.sim.golden import cpg_table, mask_threshold

    rng = np.random.default_rng(seed)

    def conv(kernel, n_out, n_in_, lo=-6, hi=9):
        return Conv(rng.integers(lo, hi, (kernel, n_out, n_in_)), rng.integers(-4, 8, n_out))

    def lif(n, v_bits=10):
        return LIF(rng.integers(3, 14, n), [None, 0, 1, 2][rng.integers(4)], v_bits,
                   ["subtract", "zero"][rng.integers(2)])

    blks = []
    for i in range(blocks):
        kernel = 3 + 2 * i
        on = attention != "none"
        blks.append(Block(
            mask=Mask(mask_threshold(rsm), int(rng.integers(1, 1 << 32))) if on and rsm else None,
            q=(conv(kernel, d, d), lif(d)) if on else None,
            k=(conv(kernel, d, d), lif(d)) if on else None,
            v=(conv(kernel, d, d), lif(d)) if on else None,
            attention=Attention(attention, window, heads, 2) if on else None,
            attn_lif=lif(d) if attention == "ssa" else None,
            proj=(conv(1, d, d), lif(d)) if on else None, sew=sew,
            tpu=Recurrence(rng.integers(-3, 8, d), rng.integers(-4, 6, (3, d)),
                           rng.integers(-2, 5, d), *_lif_fields(lif(d))) if tpu else None,
            mlp1=(conv(1, hidden, d), lif(hidden)), mlp2=(conv(1, d, hidden), lif(d))))
    table = cpg_table(16, 6) if cpg else None
    embed = conv(1, d, n_in + (6 if cpg else 0), -3, 12)
    readout = conv(readout_kernel, n_in, d + n_in * input_to_readout)
    return est_graph(f"est{seed}", n_in, (embed, lif(d)), table, blks,
                     (readout, Readout(1, 12, np.ones(n_in))), input_bits=input_bits,
                     input_to_readout=input_to_readout)


def _lif_fields(lif):
    return lif.threshold, lif.leak_shift, lif.v_bits, lif.reset


def random_mlp_graph(seed: int, n_in: int = 12, hidden=(10, 7), n_out: int = 5,
                     weight_bits: int = 6, v_bits: int = 12, name: str = "rand",
                     resets=("subtract", "zero"), syn_bits: int = 0):
    """A random spiking MLP as a graph: dense layers (kernel-1 convolutions) into LIF arrays,
    each with a reset drawn from ``resets`` and, with ``syn_bits``, a synaptic current of
    that width (current-based, its leak shift drawn), a readout last."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import LIF, Conv, Input, Readout

    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    g = GraphBuilder()
    x = g.add("input", Input(n_in))
    prev = n_in
    for k, n in enumerate(hidden):
        syn = g.add(f"fc{k + 1}.syn", Conv(rng.integers(lo, hi + 1, (1, n, prev)),
                                           rng.integers(-20, 40, n)), x)
        syn_shift = [None, 1, 2][rng.integers(3)] if syn_bits else None
        x = g.add(f"fc{k + 1}", LIF(rng.integers(1, 120, n), [None, 0, 1, 3][rng.integers(4)],
                                    v_bits, resets[rng.integers(len(resets))], syn_shift,
                                    syn_bits), syn)
        prev = n
    syn = g.add("readout.syn", Conv(rng.integers(lo, hi + 1, (1, n_out, prev)),
                                    rng.integers(-50, 50, n_out)), x)
    g.add("readout", Readout([None, 0, 2][rng.integers(3)], v_bits, np.ones(n_out)), syn)
    return g.build(name, ("readout",))


def delayed_reset_graph(threshold: int, weight: int = 1):
    """4 inputs -> 2 LIF (weights ``weight``, snnTorch's delayed subtraction) -> readout."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import LIF, Conv, Input, Readout

    g = GraphBuilder()
    x = g.add("input", Input(4))
    x = g.add("h.syn", Conv(np.full((1, 2, 4), weight, np.int64), np.zeros(2, np.int64)), x)
    v_bits = max(13, threshold.bit_length() + 1)
    x = g.add("h", LIF(np.full(2, threshold), 2, v_bits, "subtract_delayed"), x)
    x = g.add("readout.syn", Conv(np.ones((1, 1, 2), np.int64), np.zeros(1, np.int64)), x)
    g.add("readout", Readout(None, v_bits, np.ones(1)), x)
    return g.build("delayed", ("readout",))


def check_integer_path(graph, stimulus, label: str = ""):
    """Assert the integer PyTorch path (est.sw.integer) equal to the golden interpreter on
    every tensor of ``graph`` over ``stimulus``; return the golden run (trace, saturations)."""
    from est.sim.interpreter import run
    from est.sw.integer import integer_forward

    golden, saturated = run(graph, stimulus)
    ours = integer_forward(graph, stimulus)
    assert set(ours) == set(golden.arrays)
    for name, value in golden.arrays.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=f"{label} {name}")
    return golden, saturated


def random_conv_graph(seed: int, n_in: int = 9, bits: int = 3, kernels=(3, 2), d: int = 11,
                      n_out: int = 6, name: str = "convs", weight_bits: int | None = None):
    """A random graph of causal convolutions over count inputs: ``input`` of ``bits``, then per
    kernel a ``conv`` into a LIF array (the last into a readout); weights of -20..23, or of
    ``weight_bits`` signed bits (thresholds scaled with them)."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import LIF, Conv, Input, Readout

    rng = np.random.default_rng(seed)
    scale = 1 if weight_bits is None else 1 << max(0, weight_bits - 6)

    def weights(shape):
        if weight_bits is None:
            return rng.integers(-20, 24, shape)
        return rng.integers(-(1 << (weight_bits - 1)), 1 << (weight_bits - 1), shape)

    g = GraphBuilder()
    x = g.add("input", Input(n_in, bits))
    prev = n_in
    for k, kernel in enumerate(kernels[:-1]):
        syn = g.add(f"c{k}.syn", Conv(weights((kernel, d, prev)),
                                      rng.integers(-30, 30, d) * scale), x)
        x = g.add(f"c{k}", LIF(rng.integers(20, 200, d) * scale, [None, 0, 2][rng.integers(3)],
                               14 if weight_bits is None else 24,
                               ["subtract", "zero"][rng.integers(2)]), syn)
        prev = d
    syn = g.add("readout.syn", Conv(weights((kernels[-1], n_out, prev)),
                                    rng.integers(-50, 50, n_out) * scale), x)
    g.add("readout", Readout([None, 0, 2][rng.integers(3)], 16 if weight_bits is None else 24,
                             np.ones(n_out)), syn)
    return g.build(name, ("readout",))


def write_nwb(path, units: dict | None) -> None:
    """An NWB file written by pynwb: a Units table of ``units`` (id -> spike times in
    seconds), or none at all (``units`` None)."""
    from datetime import UTC, datetime

    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="est test", identifier=str(path),
                  session_start_time=datetime(2026, 1, 1, tzinfo=UTC))
    for unit, times in (units or {}).items():
        nwb.add_unit(spike_times=list(times), id=unit)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def write_nir_cases(folder) -> None:
    """NIR graphs for the bad-input table: ``good.nir`` (Affine, LIF of tau 8 ms, Affine, LI;
    fine with a 1 ms step), and variants with a CubaLIF driven by a v_leak, a CubaLI, a
    non-zero v_reset, a branch and a
    Conv1d whose kernel is longer than its input, and one per other unsupported node kind
    (``delay``, ``integrator``, ``conv2d``, ``sumpool``, ``avgpool``)."""
    import nir

    def chain(type_check=True, **over):
        nodes = {"input": nir.Input(input_type={"input": np.array([3])}),
                 "fc1": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)),
                 "lif1": nir.LIF(tau=np.full(2, 8e-3), r=np.ones(2), v_leak=np.zeros(2),
                                 v_threshold=np.ones(2), v_reset=np.zeros(2)),
                 "fc2": nir.Affine(weight=np.ones((2, 2)), bias=np.zeros(2)),
                 "lif2": nir.LI(tau=np.full(2, 16e-3), r=np.ones(2), v_leak=np.zeros(2)),
                 "output": nir.Output(output_type={"output": np.array([2])})}
        nodes.update(over)
        order = list(nodes)
        return nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:], strict=False)),
                            type_check=type_check)

    lif = dict(tau=np.full(2, 8e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    nir.write(folder / "good.nir", chain())
    nir.write(folder / "cuba.nir", chain(lif1=nir.CubaLIF(tau_syn=np.full(2, 4e-3),
                                                          tau_mem=lif["tau"], r=lif["r"],
                                                          v_leak=np.full(2, 0.1),
                                                          v_threshold=lif["v_threshold"])))
    li = nir.CubaLI(tau_syn=np.full(2, 4e-3), tau_mem=np.full(2, 16e-3), r=np.ones(2),
                    v_leak=np.zeros(2))
    nir.write(folder / "cubali.nir", chain(lif2=li))
    nir.write(folder / "vreset.nir", chain(lif1=nir.LIF(**lif, v_reset=np.full(2, -0.5))))
    branch = chain()
    branch.nodes["out2"] = nir.Output(output_type={"output": np.array([2])})
    branch.edges.append(("fc1", "out2"))
    nir.write(folder / "branch.nir", branch)
    conv = dict(weight=np.ones((2, 1, 3)), stride=1, padding=0, dilation=1, groups=1,
                bias=np.zeros(2))
    others = {"delay": nir.Delay(delay=np.ones(2)), "integrator": nir.I(r=np.ones(2)),
              "conv2d": nir.Conv2d(input_shape=(1, 2), weight=np.ones((2, 1, 1, 1)), stride=1,
                                   padding=0, dilation=1, groups=1, bias=np.zeros(2)),
              "sumpool": nir.SumPool2d(kernel_size=np.array([1, 1]), stride=np.array([1, 1]),
                                       padding=np.array([0, 0])),
              "avgpool": nir.AvgPool2d(kernel_size=np.array([1, 1]), stride=np.array([1, 1]),
                                       padding=np.array([0, 0]))}
    for case, node in others.items():  # each where the first LIF was
        nir.write(folder / f"{case}.nir", chain(False, lif1=node))
    short = chain(False, input=nir.Input(input_type={"input": np.array([1, 2])}),
                  fc1=nir.Conv1d(input_shape=2, **conv))
    nir.write(folder / "convshort.nir", short)


def compile_bit_exact(model: Path, x: np.ndarray, folder: Path, *args):
    """``est-compile model`` (with ``args``) on the stimulus ``x`` ``[bins, n]`` (also its
    calibration) into ``folder/build``; run it on Verilator and Icarus (the dataflow top, or
    a core build's program on the core's Verilog) and assert 0 mismatches on every traced
    tensor in every bin. Returns the golden trace."""
    import json
    import subprocess
    import sys

    from est.sim.cli import simulate_core_build
    from est.sim.rtl import simulate
    from est.sim.trace import Trace, compare

    np.save(folder / "x.npy", x)
    build = folder / "build"
    res = subprocess.run([Path(sys.executable).parent / "est-compile", model, "-o", build,
                          "--stimulus", folder / "x.npy", "--calibration", folder / "x.npy",
                          *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    golden = Trace.load(build / "golden.npz")
    core = json.loads((build / "top.json").read_text()).get("backend") == "core"
    for simulator in ("verilator", "icarus"):
        run = (simulate_core_build(build, simulator, x, None, False) if core
               else simulate(build, simulator, golden=build / "golden.npz"))
        result = compare(golden, run.trace)
        assert result.bins == len(x) and result.mismatches == 0, (simulator, result.first)
    return golden


def write_snntorch_cases(folder: Path) -> None:
    """snnTorch nn.Sequentials for the bad-input table, each as ``sn_NAME.pt`` (its state
    dict) and ``sn_NAME.toml`` (its description): ``good`` (6 -> 4 Leaky -> 3 Leaky, reset to
    zero), ``subdelay`` (snnTorch's delayed subtraction), ``slowleak`` (beta ``1 - 2**-16``, a
    leak the core's 4-bit shift field does not hold), one
    variant per refused option, a whole Linear module pickled (``sn_pickled.pt``), a
    description one module short (``sn_short.toml``) and one whose input is 2-D
    (``sn_noflat.toml``)."""
    import warnings

    import snntorch as snn
    import torch

    from est.compiler.snntorch_frontend import describe

    def net(**first):
        torch.manual_seed(0)
        module = torch.nn.Sequential(
            torch.nn.Linear(6, 4),
            snn.Leaky(**{"beta": 0.875, "init_hidden": True, "reset_mechanism": "zero",
                         **first}),
            torch.nn.Linear(4, 3),
            snn.Leaky(beta=0.75, init_hidden=True, output=True, reset_mechanism="zero"))
        with torch.no_grad():  # weights that make both layers fire on random input
            module[0].weight.mul_(4.0)
            module[2].weight.mul_(4.0)
        return module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # snnTorch warns about inhibition
        nets = {"good": net(), "subdelay": net(reset_mechanism="subtract"),
                "beta": net(beta=0.9), "none": net(reset_mechanism="none"),
                "graded": net(graded_spikes_factor=2.0), "inhibition": net(inhibition=True),
                "synaptic": torch.nn.Sequential(
                    torch.nn.Linear(6, 4),
                    snn.Synaptic(alpha=0.5, beta=0.5, init_hidden=True, output=True,
                                 reset_mechanism="zero")),
                "slowleak": net(beta=1 - 2 ** -16),
                "alpha": torch.nn.Sequential(
                    torch.nn.Linear(6, 4),
                    snn.Alpha(alpha=0.75, beta=0.5, init_hidden=True, output=True)),
                "endslinear": torch.nn.Sequential(*list(net())[:3])}
    for name, module in nets.items():
        torch.save(module.state_dict(), folder / f"sn_{name}.pt")
        (folder / f"sn_{name}.toml").write_text(describe(module, (6,)))
    torch.save(nets["good"][0], folder / "sn_pickled.pt")  # a whole module: pickled code
    good = (folder / "sn_good.toml").read_text()
    (folder / "sn_short.toml").write_text(good[:good.rindex("[[module]]")])
    (folder / "sn_noflat.toml").write_text(good.replace("input = [6]", "input = [2, 3]"))
    (folder / "sn_statequant.toml").write_text(good.replace("state_quant = false",
                                                            "state_quant = true", 1))
    for kind in ("RLeaky", "RSynaptic", "Lapicque", "Conv2d", "MaxPool1d", "BatchNorm1d"):
        (folder / f"sn_{kind}.toml").write_text(good.replace('type = "Leaky"',
                                                             f'type = "{kind}"', 1))
    (folder / "sn_leakyfirst.toml").write_text(good.replace('type = "Linear"', 'type = "X"', 1)
                                               .replace('type = "Leaky"', 'type = "Linear"', 1)
                                               .replace('type = "X"', 'type = "Leaky"', 1))
