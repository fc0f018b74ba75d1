"""The graph IR: save/load round trip, and every malformed file refused with node and field."""

import json

import numpy as np
import pytest

from est import EstError
from est.compiler import graph as graph_ir
from est.compiler.graph import GRAPH_VERSION, IRError
from netgen import random_est_graph, random_mlp_graph


@pytest.fixture
def saved(tmp_path):
    g = random_est_graph(3, attention="ssa", sew="add")
    g.save(tmp_path)
    return g, tmp_path


def test_round_trip_keeps_every_parameter(saved):
    g, folder = saved
    back = graph_ir.load(folder)
    assert [n.name for n in back.nodes] == [n.name for n in g.nodes]
    assert back.kinds() == g.kinds()
    for a, b in zip(g.nodes, back.nodes, strict=True):
        assert a.inputs == b.inputs and type(a.op) is type(b.op)
        for key, value in vars(a.op).items():
            other = getattr(b.op, key)
            assert (np.array_equal(value, other) if isinstance(value, np.ndarray)
                    else value == other), (a.name, key)
    assert back.output_fields() == g.output_fields()


def test_kinds_and_fields_come_from_the_operations():
    g = random_est_graph(1, attention="sdsa", sew="and", cpg=True, tpu=True)
    assert g.kinds() == {"input": 1, "concat": 1, "table": 1, "conv": 14, "lif": 13,
                         "mask": 2, "attention": 2, "sew": 6, "recurrence": 2, "readout": 1}
    names = [f[0] for f in g.output_fields(trace=True)]
    assert names[0] == "readout/v" and "b1.attn/spikes" in names and "b0.tpu/v" in names
    assert g.output_fields(trace=False) == [("readout/v", 6, 12, True)]
    mlp = random_mlp_graph(2)
    assert [f[0] for f in mlp.output_fields()] == ["readout/v", "fc1/spikes", "fc1/v",
                                                   "fc2/spikes", "fc2/v"]


def _edit(folder, change):
    doc = json.loads((folder / "ir.json").read_text())
    change(doc)
    (folder / "ir.json").write_text(json.dumps(doc))


def _node(doc, name):
    return next(n for n in doc["nodes"] if n["name"] == name)


@pytest.mark.parametrize("change, node, fld, words", [
    (lambda d: d.update(version=2), "network", "version", "recompile"),
    (lambda d: d.update(format="est-ir"), "network", "format", "recompile"),
    (lambda d: _node(d, "b0.attn").update(op="softmax"), "b0.attn", "op", "unknown operation"),
    (lambda d: _node(d, "b0.k").update(inputs=["b0.q.syn"]), "b0.q.syn", "inputs",
     "exactly one neuron array"),
    (lambda d: _node(d, "embed.syn").update(inputs=["readout"]), "embed.syn", "inputs",
     "not an earlier node"),
    (lambda d: _node(d, "b0.q")["params"].pop("reset"), "b0.q", "reset", "missing"),
    (lambda d: _node(d, "b0.q")["params"].update(v_bits="12"), "b0.q", "v_bits",
     "expected int"),
    (lambda d: _node(d, "b0.q")["params"].update(v_bits=40), "b0.q", "v_bits", "2..32"),
    (lambda d: _node(d, "b0.q")["params"].update(threshold=3), "b0.q", "threshold",
     "tensor"),
    (lambda d: _node(d, "b0.scores")["params"].update(heads=3), "b0.scores", "heads",
     "does not divide"),
    (lambda d: _node(d, "b0.mask")["params"].update(seed=0), "b0.mask", "seed", "nonzero"),
    (lambda d: _node(d, "b0.res1")["params"].update(op="or"), "b0.res1", "op", "one of"),
    (lambda d: d.update(outputs=["nowhere"]), "network", "outputs", "names of nodes"),
])
def test_malformed_ir_json_is_refused_naming_node_and_field(saved, change, node, fld, words):
    _, folder = saved
    _edit(folder, change)
    with pytest.raises(IRError) as err:
        graph_ir.load(folder)
    assert (err.value.node, err.value.field) == (node, fld)
    assert words in str(err.value)


@pytest.mark.parametrize("change, node, fld, words", [
    (lambda d: _node(d, "b0.q")["params"].update(reset="sometimes"), "b0.q", "reset",
     "expected one of"),
    (lambda d: _node(d, "b0.q")["params"].update(reset=None), "b0.q", "reset",
     "expected a value, got null"),
    (lambda d: _node(d, "b0.q")["params"].update(leak_shift=40), "b0.q", "leak_shift",
     "expected null (no leak) or 0..9, got 40"),
    (lambda d: _node(d, "readout")["params"].update(v_bits=40), "readout", "v_bits", "2..32"),
    (lambda d: _node(d, "embed.syn")["params"].update(weight=[[1, 2]]), "embed.syn", "weight",
     'expected {"tensor": NAME}'),
    (lambda d: _node(d, "b0.q").update(name="b0/q"), "b0/q", "name",
     "letters, digits, '_' and '.'"),
    (lambda d: _node(d, "b0.k").update(name="b0.q"), "b0.q", "name", "unique"),
])
def test_malformed_parameters_are_refused_naming_node_and_field(saved, change, node, fld,
                                                                 words):
    """Values of the wrong kind or out of range in ir.json (the checks the spine's and the
    EST's IR had, on the graph)."""
    _, folder = saved
    _edit(folder, change)
    with pytest.raises(IRError) as err:
        graph_ir.load(folder)
    assert (err.value.node, err.value.field) == (node, fld)
    assert words in str(err.value)


def _drop(_):
    return None


@pytest.mark.parametrize("edits, node, fld, words", [
    ({"b0.q.threshold": np.zeros_like}, "b0.q", "threshold", "expected integers >= 1, got 0"),
    ({"b0.q.threshold": lambda a: np.full_like(a, 1 << 20)}, "b0.q", "threshold",
     "does not fit v_bits=10 (at most 511); compile with a larger --max-v-bits"),
    ({"readout.scale": lambda a: -a}, "readout", "scale", "expected finite positive floats"),
    ({"readout.scale": lambda a: a.astype(np.int64)}, "readout", "scale", "expected floats"),
    ({"b0.mlp1.syn.bias": lambda a: a[:-1]}, "b0.mlp1.syn", "bias", "expected shape (12), got"),
    ({"b0.mlp1.syn.bias": lambda a: a + (1 << 40)}, "b0.mlp1.syn", "bias",
     "do not fit the signed 32-bit range"),
    ({"embed.syn.weight": lambda a: a[:, :, :-1]}, "embed.syn", "weight",
     "expected shape (n, n, 12), got (1, 8, 11)"),
    ({"b0.v.syn.weight": lambda a: a[:, :-1], "b0.v.syn.bias": lambda a: a[:-1]}, "b0.v",
     "threshold", "expected shape (7), got (8,)"),
    ({"b0.tpu.w_rec": lambda a: a.astype(np.float32)}, "b0.tpu", "w_rec", "expected integers"),
    ({"b0.q.threshold": _drop}, "b0.q", "threshold",
     "tensor 'b0.q.threshold' missing from weights.npz"),
])
def test_malformed_tensors_are_refused_naming_node_and_field(saved, edits, node, fld, words):
    """Tensors of weights.npz edited, cut short or missing: the node and field they belong to
    (for a convolution cut to fewer outputs, the neuron array it no longer fits)."""
    _, folder = saved
    npz = dict(np.load(folder / "weights.npz"))
    for tensor, edit in edits.items():
        npz[tensor] = edit(npz[tensor])
        if npz[tensor] is None:
            del npz[tensor]
    np.savez(folder / "weights.npz", **npz)
    with pytest.raises(IRError) as err:
        graph_ir.load(folder)
    assert (err.value.node, err.value.field) == (node, fld)
    assert words in str(err.value)


def test_a_graph_built_in_memory_is_checked_as_a_loaded_one():
    """GraphBuilder.build and Graph.validate refuse what the loader refuses."""
    from dataclasses import replace

    from est.compiler.graph import Graph, GraphBuilder
    from est.compiler.ops import LIF, Conv, Input

    g = GraphBuilder()
    x = g.add("input", Input(4))
    g.add("fc1", LIF(np.zeros(3, np.int64), None, 8), g.add("fc1.syn",
                                                            Conv(np.ones((1, 3, 4), np.int64),
                                                                 np.zeros(3, np.int64)), x))
    with pytest.raises(IRError) as err:
        g.build("m", ("fc1",))
    assert (err.value.node, err.value.field) == ("fc1", "threshold")
    mlp = random_mlp_graph(5)
    syn = mlp.node("fc1.syn")
    bad = replace(syn, op=replace(syn.op, weight=syn.op.weight.astype(np.float64)))
    nodes = tuple(bad if n.name == "fc1.syn" else n for n in mlp.nodes)
    with pytest.raises(IRError, match="expected integers, got float64") as err:
        Graph(mlp.name, nodes, mlp.outputs).validate()
    assert (err.value.node, err.value.field) == ("fc1.syn", "weight")
    with pytest.raises(IRError) as err:
        Graph("my net", mlp.nodes, mlp.outputs).validate()
    assert (err.value.node, err.value.field) == ("network", "name")
    with pytest.raises(IRError) as err:
        Graph(mlp.name, mlp.nodes[1:], mlp.outputs).validate()
    assert (err.value.node, err.value.field) == ("network", "nodes")


def test_float_and_oversized_tensors_are_refused(saved):
    g, folder = saved
    npz = dict(np.load(folder / "weights.npz"))
    npz["b0.q.syn.weight"] = npz["b0.q.syn.weight"].astype(np.float64)
    np.savez(folder / "weights.npz", **npz)
    with pytest.raises(IRError, match="expected integers, got float64"):
        graph_ir.load(folder)
    npz["b0.q.syn.weight"] = npz["b0.q.syn.weight"].astype(np.int64) * 10 ** 5
    np.savez(folder / "weights.npz", **npz)
    with pytest.raises(IRError, match="do not fit the signed 16-bit range"):
        graph_ir.load(folder)
    npz["b0.q.syn.weight"] = np.ones((1, 8, 8), np.int64)
    npz["b0.q.syn.bias"] = np.full(8, 1 << 31, np.int64) - 1
    np.savez(folder / "weights.npz", **npz)
    with pytest.raises(IRError, match="accumulator needs 33 bits"):
        graph_ir.load(folder)


def test_missing_files_name_the_file(tmp_path):
    with pytest.raises(EstError, match="ir.json: no such file"):
        graph_ir.load(tmp_path)
    (tmp_path / "ir.json").write_text("{")
    with pytest.raises(EstError, match="not valid JSON"):
        graph_ir.load(tmp_path)


def test_version_is_the_one_written(saved):
    _, folder = saved
    assert json.loads((folder / "ir.json").read_text())["version"] == GRAPH_VERSION


def _chain(*extra):
    """input 3 -> a.syn -> a -> readout.syn -> readout, plus ``extra`` (name, op, inputs)."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import LIF, Conv, Input, Readout

    g = GraphBuilder()
    g.add("input", Input(3))
    g.add("a", LIF(np.array([2, 2]), None, 8),
          g.add("a.syn", Conv(np.ones((1, 2, 3), np.int64), np.zeros(2, np.int64)), "input"))
    for name, op, inputs in extra:
        g.add(name, op, *inputs)
    g.add("readout", Readout(None, 8, np.ones(2)),
          g.add("readout.syn", Conv(np.ones((1, 2, 2), np.int64), np.zeros(2, np.int64)), "a"))
    return g


def test_wiring_rules():
    from est.compiler.ops import LIF, Concat, Conv, Input, MaxPool

    with pytest.raises(IRError, match="'spare', field 'inputs': no node reads this one"):
        _chain(("spare", MaxPool(2), ("a",))).build("g", ("readout",))
    with pytest.raises(IRError, match="'m', field 'op': a network's outputs are readouts .* "
                                      "or spiking neuron arrays"):
        _chain(("m", MaxPool(2), ("a",))).build("g", ("readout", "m"))
    _chain().build("g", ("readout", "a"))  # a LIF array's spikes may be an output too
    g = _chain()
    g.add("both", Concat(), "readout", "readout")
    g.add("x", LIF(np.ones(4, np.int64), None, 8),
          g.add("x.syn", Conv(np.ones((1, 4, 4), np.int64), np.zeros(4, np.int64)), "both"))
    with pytest.raises(IRError, match="'both', field 'inputs': expected unsigned vectors"):
        g.build("g", ("readout", "x"))
    with pytest.raises(IRError, match="'input', field 'bits': expected 1..8 bits per input"):
        Input(3, 9).check("input", [])


def test_log_rates_side_by_side_or_summed():
    """Each output's values over its readout's scale, outputs side by side; with meta
    sum_outputs added up neuron by neuron, and only readouts of one size may be summed."""
    from est.compiler.ops import Conv, Readout

    def chain():
        g = _chain()
        g.add("slow", Readout(2, 8, np.array([2.0, 4.0])),
              g.add("slow.syn", Conv(np.ones((1, 2, 3), np.int64), np.zeros(2, np.int64)),
                    "input"))
        return g

    arrays = {"readout/v": np.array([[2, 4], [6, 8]]), "slow/v": np.array([[2, 4], [8, 8]]),
              "a/spikes": np.array([[1, 0], [0, 1]])}
    apart = chain().build("g", ("readout", "slow"))
    np.testing.assert_allclose(apart.log_rates(arrays), [[2, 4, 1, 1], [6, 8, 4, 2]])
    summed = chain().build("g", ("readout", "slow"), {"sum_outputs": True})
    np.testing.assert_allclose(summed.log_rates(arrays), [[3, 5], [10, 10]])
    with pytest.raises(IRError, match="'a', field 'op': summed outputs .* are readouts"):
        _chain().build("g", ("readout", "a"), {"sum_outputs": True})
    g = _chain()
    g.add("wide", Readout(None, 8, np.ones(3)),
          g.add("wide.syn", Conv(np.ones((1, 3, 3), np.int64), np.zeros(3, np.int64)), "input"))
    with pytest.raises(IRError, match=r"readouts of the same number of neurons, got \[2, 3\]"):
        g.build("g", ("readout", "wide"), {"sum_outputs": True})


def test_a_build_from_before_oscillator_readouts_loads_as_it_was(saved):
    """An ``ir.json`` written before ``readout.rotate_shift`` existed lacks it: it loads as
    integrators (its default), the one parameter so admitted; the saved graph has it."""
    g, folder = saved
    doc = json.loads((folder / "ir.json").read_text())
    assert "rotate_shift" in _node(doc, "readout")["params"]
    _edit(folder, lambda d: _node(d, "readout")["params"].pop("rotate_shift"))
    assert graph_ir.load(folder).node("readout").op.rotate_shift is None


def test_tops_bound_every_value_the_golden_model_gives():
    """Graph.tops, the largest value of every unsigned vector: SEW ADD adds its inputs' (a
    chain of joins grows by one a join while its width grows by a bit), a mask, a max-pool and
    a concatenation keep their inputs'; no value of the golden model exceeds them."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import LIF, SEW, Concat, Conv, Input, Mask, MaxPool, Readout
    from est.sim.interpreter import run

    g = GraphBuilder()
    x = g.add("input", Input(4, 3))
    syn = g.add("lif.syn", Conv(np.eye(4, dtype=np.int64)[None], np.zeros(4, np.int64)), x)
    spikes = g.add("lif", LIF(np.full(4, 2), 1, 8), syn)
    a = g.add("a", SEW("add"), spikes, x)
    b = g.add("b", SEW("add"), spikes, a)
    pool = g.add("pool", MaxPool(3), g.add("mask", Mask(64, 1), b))
    both = g.add("both", Concat(), pool, spikes)
    g.add("readout", Readout(None, 16, np.ones(2)),
          g.add("readout.syn", Conv(np.ones((1, 2, 8), np.int64), np.zeros(2, np.int64)), both))
    graph = g.build("tops", ("readout",))
    specs = graph.specs()
    assert (specs["a"].bits, specs["b"].bits) == (4, 5)
    assert graph.tops() == {"input": 7, "lif": 1, "a": 8, "b": 9, "mask": 9, "pool": 9,
                            "both": 9}
    for net in [graph, *(random_est_graph(s, input_bits=3) for s in range(3))]:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 1 << net.input_bits, (40, net.n_in))
        arrays = run(net, x)[0].arrays
        for node, top in net.tops().items():
            out = next(v for k, v in arrays.items() if k.split("/")[0] == node)
            assert out.max() <= top, node
