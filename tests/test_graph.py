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
