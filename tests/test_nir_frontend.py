"""compiler/nir_frontend.py: NIR graphs (written by the ``nir`` package and by snnTorch's
exporter) translated into est's float network, checked against NIR's own equations stepped by
Euler, then compiled and run bit-exact on Verilator and Icarus."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from est.compiler.nir_frontend import load_nir
from est.sim.rtl import simulate
from est.sim.trace import Trace, compare
from netgen import compile_bit_exact

BIN = Path(sys.executable).parent
DT = 1e-3


def nir_chain(seed: int = 0, last: str = "LI") -> nir.NIRGraph:
    """Input 12 -> Affine -> LIF (beta 0.875, thresholds 0.5..1.5) -> Linear -> Scale -> IF
    -> Affine -> Threshold -> Affine -> LI (beta 0.9375) or another ``last`` -> Output."""
    rng = np.random.default_rng(seed)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([12])}),
        "fc1": nir.Affine(weight=rng.normal(0, 1.5, (10, 12)), bias=rng.normal(0.1, 0.1, 10)),
        "lif1": nir.LIF(tau=np.full(10, DT / 0.125), r=np.full(10, 2.0),
                        v_leak=np.full(10, 0.2), v_threshold=rng.uniform(0.5, 1.5, 10),
                        v_reset=np.zeros(10)),
        "fc2": nir.Linear(weight=rng.normal(0, 1.0, (6, 10))),
        "scale": nir.Scale(scale=rng.uniform(0.5, 2, 6)),
        "if2": nir.IF(r=np.full(6, 1 / DT), v_threshold=np.ones(6), v_reset=np.zeros(6)),
        "fc3": nir.Affine(weight=rng.normal(0, 1.0, (5, 6)), bias=rng.normal(0, 0.2, 5)),
        "thr": nir.Threshold(threshold=np.full(5, 0.3)),
        "flat": nir.Flatten(input_type={"input": np.array([5])}, start_dim=0),
        "fc4": nir.Affine(weight=rng.normal(0, 1.0, (4, 5)), bias=np.zeros(4)),
    }
    if last == "LI":
        nodes["li"] = nir.LI(tau=np.full(4, DT / 0.0625), r=np.full(4, 1.0),
                             v_leak=np.zeros(4))
    else:
        nodes["lif"] = nir.LIF(tau=np.full(4, DT / 0.0625), r=np.ones(4), v_leak=np.zeros(4),
                               v_threshold=np.ones(4), v_reset=np.zeros(4))
    nodes["output"] = nir.Output(output_type={"output": np.array([4])})
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:], strict=False)))


def nir_reference(graph: nir.NIRGraph, x: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """NIR's equations (the node docstrings of the nir package) stepped by Euler over ``dt``:
    each neuron node's spikes ``[T, n]`` (an LI: its membrane)."""
    order = ["input"]
    nexts = dict(graph.edges)
    while order[-1] in nexts:
        order.append(nexts[order[-1]])
    state: dict[str, np.ndarray] = {}
    out: dict[str, list] = {}
    for t in range(len(x)):
        v = x[t].astype(np.float64)
        for name in order[1:-1]:
            node = graph.nodes[name]
            kind = type(node).__name__
            if kind == "Affine":
                v = node.weight @ v + node.bias
            elif kind == "Linear":
                v = node.weight @ v
            elif kind == "Conv1d":
                v = torch.nn.functional.conv1d(
                    torch.from_numpy(v.reshape(1, -1, int(node.input_shape))),
                    torch.from_numpy(node.weight), torch.from_numpy(node.bias), node.stride,
                    node.padding, node.dilation, node.groups).numpy()[0]
            elif kind == "Flatten":
                v = v.reshape(-1)
            elif kind == "Scale":
                v = v * node.scale
            elif kind == "Threshold":
                v = (v > node.threshold).astype(np.float64)
                out.setdefault(name, []).append(v)
            elif kind in ("LIF", "IF", "LI", "CubaLIF"):
                m = state.get(name, np.zeros_like(v))
                if kind == "IF":
                    m = m + dt * node.r * v
                elif kind == "CubaLIF":  # the synaptic current first, then the membrane
                    i = state.get(name + "/i", np.zeros_like(v))
                    i = i + dt / node.tau_syn * (-i + node.w_in * v)
                    state[name + "/i"] = i
                    m = m + dt / node.tau_mem * (node.v_leak - m + node.r * i)
                else:
                    m = m + dt / node.tau * (node.v_leak - m + node.r * v)
                if kind == "LI":
                    state[name] = m
                    out.setdefault(name, []).append(m)
                    v = m
                    continue
                z = (m > node.v_threshold).astype(np.float64)
                state[name] = np.where(z > 0, node.v_reset, m)
                out.setdefault(name, []).append(z)
                v = z
    return {k: np.array(v) for k, v in out.items()}


def test_the_translation_is_nirs_equations(tmp_path):
    """est's float network of the graph (LIF, IF over a Scale, Threshold, LI) gives NIR's
    spikes on every neuron and bin, and NIR's readout up to rounding."""
    nir.write(tmp_path / "g.nir", nir_chain())
    fnet = load_nir(tmp_path / "g.nir", DT)
    assert [(fl.kind, fl.beta, fl.reset) for fl in fnet.layers] == [
        ("lif", 0.875, "zero"), ("lif", 1.0, "zero"), ("lif", 0.0, "zero"),
        ("integrator", 0.9375, "subtract")]
    x = (np.random.default_rng(1).random((200, 12)) < 0.3).astype(np.int64)
    ref = nir_reference(nir_chain(), x, DT)
    record: dict = {}
    with torch.no_grad():
        readout = fnet.to_torch()(torch.from_numpy(x).double()[:, None, :], record)[:, 0]
    for ours, theirs in zip(fnet.layers[:3], ("lif1", "if2", "thr"), strict=True):
        spikes = record[ours.name][:, 0].numpy()
        assert spikes.sum() > 50 and (spikes == ref[theirs]).all(), theirs
    np.testing.assert_allclose(readout.numpy(), ref["li"], rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def nir_build(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("nir")
    nir.write(d / "g.nir", nir_chain(3))
    res = subprocess.run([BIN / "est-compile", d / "g.nir", "-o", d / "build", "--nir-dt",
                          str(DT), "--bins", "100", "--rate", "0.3"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    return d / "build"


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_a_compiled_nir_graph_is_bit_exact(nir_build, simulator):
    golden = Trace.load(nir_build / "golden.npz")
    rtl = simulate(nir_build, simulator, stall_seed=1, golden=nir_build / "golden.npz")
    result = compare(golden, rtl.trace)
    assert result.bins == 100 and result.mismatches == 0, result.first
    assert {t.split("/")[0] for t in result.tensors} >= {"l0_lif1", "l1_if2", "l2_thr", "l3_li"}


def conv_chain() -> nir.NIRGraph:
    """Input [2 channels, 8] -> Conv1d (3 channels, kernel 3, padding 1) -> LIF (its
    parameters [3, 8], beta 0.75) -> Flatten -> Affine 24 -> 4 -> LI -> Output."""
    rng = np.random.default_rng(5)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 8])}),
        "conv": nir.Conv1d(input_shape=8, weight=rng.normal(0, 1.2, (3, 2, 3)), stride=1,
                           padding=1, dilation=1, groups=1, bias=rng.normal(0, 0.2, 3)),
        "lif": nir.LIF(tau=np.full((3, 8), DT / 0.25), r=np.full((3, 8), 4.0),
                       v_leak=np.zeros((3, 8)), v_threshold=rng.uniform(0.5, 1.5, (3, 8)),
                       v_reset=np.zeros((3, 8))),
        "flat": nir.Flatten(input_type={"input": np.array([3, 8])}, start_dim=0),
        "fc": nir.Affine(weight=rng.normal(0, 1.0, (4, 24)), bias=np.zeros(4)),
        "li": nir.LI(tau=np.full(4, DT / 0.125), r=np.ones(4), v_leak=np.zeros(4)),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:], strict=False)),
                        type_check=False)


def test_synapses_in_a_row_are_the_linear_map_they_make(tmp_path):
    """Affine -> Linear -> Scale -> LIF, no neurons between the synapses: one layer whose
    float network gives NIR's spikes on every neuron and bin."""
    rng = np.random.default_rng(8)
    nodes = {"input": nir.Input(input_type={"input": np.array([12])}),
             "a": nir.Affine(weight=rng.normal(0, 1, (9, 12)), bias=rng.normal(0, 0.2, 9)),
             "b": nir.Linear(weight=rng.normal(0, 1, (6, 9))),
             "s": nir.Scale(scale=np.full(6, 0.7)),
             "lif": nir.LIF(tau=np.full(6, DT / 0.25), r=np.full(6, 4.0), v_leak=np.zeros(6),
                            v_threshold=np.ones(6), v_reset=np.zeros(6)),
             "output": nir.Output(output_type={"output": np.array([6])})}
    order = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:], strict=False)))
    nir.write(tmp_path / "row.nir", graph)
    fnet = load_nir(tmp_path / "row.nir", DT)
    assert len(fnet.layers) == 1 and fnet.layers[0].weight.shape == (6, 12)
    x = (np.random.default_rng(9).random((200, 12)) < 0.3).astype(np.int64)
    record: dict = {}
    with torch.no_grad():
        fnet.to_torch()(torch.from_numpy(x).double()[:, None, :], record)
    spikes = record[fnet.layers[0].name][:, 0].numpy()
    assert spikes.sum() > 50 and (spikes == nir_reference(graph, x, DT)["lif"]).all()


def test_a_conv1d_graph_is_nirs_equations_and_bit_exact(tmp_path):
    """A Conv1d over the spatial axis becomes the dense synapses it equals: est's float
    network gives NIR's spikes on all 24 neurons in every bin, and the compiled graph is
    bit-exact on Verilator and Icarus."""
    nir.write(tmp_path / "c.nir", conv_chain())
    fnet = load_nir(tmp_path / "c.nir", DT)
    assert fnet.n_in == 16 and fnet.layers[0].weight.shape == (24, 16)
    x = (np.random.default_rng(6).random((100, 16)) < 0.3).astype(np.int64)
    ref = nir_reference(conv_chain(), x, DT)
    record: dict = {}
    with torch.no_grad():
        readout = fnet.to_torch()(torch.from_numpy(x).double()[:, None, :], record)[:, 0]
    spikes = record[fnet.layers[0].name][:, 0].numpy()
    assert spikes.sum() > 50 and (spikes == ref["lif"].reshape(100, 24)).all()
    np.testing.assert_allclose(readout.numpy(), ref["li"], rtol=1e-9, atol=1e-9)
    compile_bit_exact(tmp_path / "c.nir", x, tmp_path, "--nir-dt", str(DT))


def snntorch_net(reset: str) -> torch.nn.Module:
    """12 -> 10 Leaky (beta 0.875, threshold 0.5) -> 5 Leaky (beta 0.75, the output)."""
    import snntorch as snn

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(12, 10),
        snn.Leaky(beta=torch.full((10,), 0.875), threshold=torch.full((10,), 0.5),
                  init_hidden=True, reset_mechanism=reset),
        torch.nn.Linear(10, 5),
        snn.Leaky(beta=torch.full((5,), 0.75), threshold=torch.ones(5), init_hidden=True,
                  output=True, reset_mechanism=reset))
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[2].weight.mul_(2.0)
    return net


def snntorch_spikes(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """The output layer's spikes ``[T, 5]`` of snnTorch's own float model."""
    from snntorch import utils

    utils.reset(net)
    out = []
    with torch.no_grad():
        for t in range(len(x)):
            spikes = net(torch.from_numpy(x[t]).float())
            out.append((spikes[0] if isinstance(spikes, tuple) else spikes).numpy().copy())
    return np.array(out)


@pytest.mark.parametrize("reset, agreement", [("zero", 0.99), ("subtract", 0.9)])
def test_an_snntorch_export_compiles_bit_exact_beside_snntorchs_own_spikes(
        tmp_path, reset, agreement):
    """snnTorch's export_to_nir writes each Leaky as a LIF (tau = dt / (1 - beta), r = tau /
    dt, v_reset 0: a reset by subtraction is not in the export); compiled with dt 1e-4, the
    integer model is bit-exact on Verilator and Icarus, and its output spikes agree with
    snnTorch's float model on 99.8% of (neuron, bin) with reset to zero, 96.6% with reset by
    subtraction, which NIR turns into a reset to zero."""
    from snntorch.export_nir import export_to_nir

    net = snntorch_net(reset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nir.write(tmp_path / "s.nir", export_to_nir(net, torch.zeros(12)))
    x = (np.random.default_rng(0).random((100, 12)) < 0.3).astype(np.int64)
    golden = compile_bit_exact(tmp_path / "s.nir", x, tmp_path, "--nir-dt", "1e-4")
    ours = golden.arrays["l1_3/spikes"]
    theirs = snntorch_spikes(net, x)
    assert ours.sum() > 10 and (ours == theirs).mean() >= agreement


def test_a_rockpool_export_compiles_bit_exact(tmp_path):
    """A graph written by another framework's exporter: Rockpool's ``to_nir`` (LinearTorch ->
    Affine/Linear, LIFNeuronTorch -> LIF with r = tau exp(-dt/tau) / dt, its Input with a
    batch axis that nir's own type check refuses). est's float network gives NIR's spikes on
    every neuron and bin; the compiled graph is bit-exact on Verilator and Icarus."""
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFNeuronTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    torch.manual_seed(0)
    net = Sequential(LinearTorch((12, 10), has_bias=True),
                     LIFNeuronTorch(10, tau_mem=16 * DT, threshold=1.0, dt=DT),
                     LinearTorch((10, 5)), LIFNeuronTorch(5, tau_mem=8 * DT, dt=DT))
    with torch.no_grad():
        for p in (net[0].weight, net[0].bias, net[2].weight):
            p.mul_(4.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nir.write(tmp_path / "r.nir", to_nir(net))
    graph = nir.read(tmp_path / "r.nir", type_check=False)
    assert {type(n).__name__ for n in graph.nodes.values()} == {
        "Input", "Affine", "LIF", "Linear", "Output"}
    fnet = load_nir(tmp_path / "r.nir", DT)
    assert [fl.reset for fl in fnet.layers] == ["zero", "zero"]
    assert [fl.beta for fl in fnet.layers] == pytest.approx([0.9375, 0.875])  # float32 tau
    x = (np.random.default_rng(2).random((100, 12)) < 0.3).astype(np.int64)
    ref = nir_reference(graph, x, DT)
    record: dict = {}
    with torch.no_grad():
        fnet.to_torch()(torch.from_numpy(x).double()[:, None, :], record)
    for ours, theirs in zip(fnet.layers, ("1_LIFNeuronTorch", "3_LIFNeuronTorch"), strict=True):
        spikes = record[ours.name][:, 0].numpy()
        assert spikes.sum() > 20 and (spikes == ref[theirs]).all(), theirs
    golden = compile_bit_exact(tmp_path / "r.nir", x, tmp_path, "--nir-dt", str(DT))
    assert golden.arrays["l1_3_LIFNeuronTorch/spikes"].sum() > 10


def cuba_chain() -> nir.NIRGraph:
    """Input 12 -> Affine -> CubaLIF (tau_syn 4 dt, tau_mem 8 dt, w_in 1.5) -> Affine -> LI."""
    rng = np.random.default_rng(11)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([12])}),
        "fc1": nir.Affine(weight=rng.normal(0, 1.5, (10, 12)), bias=rng.normal(0.1, 0.1, 10)),
        "cuba": nir.CubaLIF(tau_syn=np.full(10, 4 * DT), tau_mem=np.full(10, 8 * DT),
                            r=np.full(10, 8.0), v_leak=np.zeros(10),
                            v_threshold=rng.uniform(0.5, 1.5, 10), w_in=1.5),
        "fc2": nir.Affine(weight=rng.normal(0, 1.0, (4, 10)), bias=np.zeros(4)),
        "li": nir.LI(tau=np.full(4, 16 * DT), r=np.ones(4), v_leak=np.zeros(4)),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:], strict=False)))


def test_a_cubalif_is_nirs_equations_and_bit_exact_on_the_dataflow_top(tmp_path):
    """CubaLIF: est's current-based LIF array (a synaptic current a neuron, leak 1 - dt /
    tau_syn, taken by the membrane): NIR's spikes on every neuron and bin in floats; the
    compiled graph bit-exact on Verilator and Icarus, synaptic currents traced too. The core
    has no synaptic current, so --backend auto picks the dataflow top."""
    nir.write(tmp_path / "c.nir", cuba_chain())
    fnet = load_nir(tmp_path / "c.nir", DT)
    assert (fnet.layers[0].beta, fnet.layers[0].syn_beta) == (0.875, 0.75)
    x = (np.random.default_rng(12).random((100, 12)) < 0.3).astype(np.int64)
    record: dict = {}
    with torch.no_grad():
        readout = fnet.to_torch()(torch.from_numpy(x).double()[:, None, :], record)[:, 0]
    ref = nir_reference(cuba_chain(), x, DT)
    spikes = record[fnet.layers[0].name][:, 0].numpy()
    assert spikes.sum() > 50 and (spikes == ref["cuba"]).all()
    np.testing.assert_allclose(readout.numpy(), ref["li"], rtol=1e-9, atol=1e-9)
    golden = compile_bit_exact(tmp_path / "c.nir", x, tmp_path, "--nir-dt", str(DT))
    assert golden.arrays["l0_cuba/i"].any()
    assert json.loads((tmp_path / "build" / "top.json").read_text()).get(
        "backend", "dataflow") == "dataflow"


def test_a_rockpool_lif_with_synapses_compiles_bit_exact(tmp_path):
    """Rockpool's LIFTorch (a synaptic and a membrane time constant) exports as a CubaLIF."""
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    torch.manual_seed(1)
    net = Sequential(LinearTorch((12, 10), has_bias=False),
                     LIFTorch(10, tau_syn=8 * DT, tau_mem=16 * DT, dt=DT),
                     LinearTorch((10, 5), has_bias=False),
                     LIFTorch(5, tau_syn=4 * DT, tau_mem=8 * DT, dt=DT))
    with torch.no_grad():
        for p in (net[0].weight, net[2].weight):
            p.mul_(8.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nir.write(tmp_path / "r.nir", to_nir(net))
    graph = nir.read(tmp_path / "r.nir", type_check=False)
    assert [type(graph.nodes[k]).__name__ for k in ("1_LIFTorch", "3_LIFTorch")] == [
        "CubaLIF", "CubaLIF"]
    fnet = load_nir(tmp_path / "r.nir", DT)
    x = (np.random.default_rng(13).random((100, 12)) < 0.3).astype(np.int64)
    ref = nir_reference(graph, x, DT)
    record: dict = {}
    with torch.no_grad():
        fnet.to_torch()(torch.from_numpy(x).double()[:, None, :], record)
    for ours, theirs in zip(fnet.layers, ("1_LIFTorch", "3_LIFTorch"), strict=True):
        spikes = record[ours.name][:, 0].numpy()
        assert spikes.sum() > 10 and (spikes == ref[theirs]).all(), theirs
    compile_bit_exact(tmp_path / "r.nir", x, tmp_path, "--nir-dt", str(DT))
