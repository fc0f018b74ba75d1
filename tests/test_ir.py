"""IR round trip and validation: every error names the node and the field."""

import json
from dataclasses import replace

import numpy as np
import pytest

from est.compiler import ir
from netgen import random_network


def test_round_trip_keeps_every_tensor_and_scalar(tmp_path):
    net = random_network(5)
    net.save(tmp_path)
    back = ir.load(tmp_path)
    assert back.name == net.name and back.lanes == net.lanes and back.n_in == net.n_in
    for a, b in zip(net.layers, back.layers, strict=True):
        assert type(a) is type(b) and a.scalars() == b.scalars()
        for t in a.TENSORS:
            np.testing.assert_array_equal(getattr(a, t), getattr(b, t))


def _edit(tmp_path, fn):
    random_network(5).save(tmp_path)
    doc = json.loads((tmp_path / "ir.json").read_text())
    fn(doc)
    (tmp_path / "ir.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("edit, node, field", [
    (lambda d: d.update(version=99), "network", "version"),
    (lambda d: d["layers"][0].update(kind="conv2d"), "fc1", "kind"),
    (lambda d: d["layers"][1].pop("leak_shift"), "fc2", "leak_shift"),
    (lambda d: d["layers"][1].update(v_bits="wide"), "fc2", "v_bits"),
    (lambda d: d["layers"][0].update(acc_bits=3), "fc1", "acc_bits"),
    (lambda d: d["layers"][2].update(n_in=99), "readout", "n_in"),
    (lambda d: d["layers"][0].update(reset="sometimes"), "fc1", "reset"),
    (lambda d: d["layers"][0].update(leak_shift=40), "fc1", "leak_shift"),
])
def test_bad_ir_json_names_node_and_field(tmp_path, edit, node, field):
    _edit(tmp_path, edit)
    with pytest.raises(ir.IRError) as err:
        ir.load(tmp_path)
    assert (err.value.node, err.value.field) == (node, field)
    assert f"IR node '{node}', field '{field}'" in str(err.value)


def test_bad_tensors_name_node_and_field():
    net = random_network(5)
    fc1 = net.layers[0]
    cases = [
        (replace(fc1, threshold=np.zeros(fc1.n_out, np.int64)), "threshold"),
        (replace(fc1, weight=fc1.weight * 4), "weight"),
        (replace(fc1, scale=-fc1.scale), "scale"),
        (replace(fc1, bias=fc1.bias[:-1]), "bias"),
        (replace(fc1, name="fc.1"), "name"),
    ]
    for layer, field in cases:
        bad = replace(net, layers=(layer,) + net.layers[1:])
        with pytest.raises(ir.IRError) as err:
            bad.validate()
        assert err.value.field == field


def test_missing_tensor_and_missing_files(tmp_path):
    net = random_network(5)
    net.save(tmp_path)
    with np.load(tmp_path / "weights.npz") as npz:
        kept = {k: npz[k] for k in npz.files if k != "fc2.threshold"}
    np.savez(tmp_path / "weights.npz", **kept)
    with pytest.raises(ir.IRError, match="fc2.threshold"):
        ir.load(tmp_path)
    with pytest.raises(ir.EstError, match="no such file"):
        ir.load(tmp_path / "nowhere")
