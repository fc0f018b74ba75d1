"""The EST IR (compiler/est_ir.py): a saved network loads back equal; a network whose tensors are
not integers, do not fit their widths, or would overflow an accumulator is refused, naming the
node and field."""

import dataclasses
import json

import numpy as np
import pytest

from est.compiler.est_ir import load_est
from est.compiler.ir import IRError
from netgen import random_est


def _reload(net, folder):
    net.save(folder)
    return load_est(folder, json.loads((folder / "ir.json").read_text()))


def test_round_trip_keeps_every_tensor_and_scalar(tmp_path):
    net = random_est(3, attention="ssa", sew="add", cpg=True, tpu=True)
    back = _reload(net, tmp_path)
    assert back.blocks[1].tpu.lif.v_bits == net.blocks[1].tpu.lif.v_bits
    np.testing.assert_array_equal(back.blocks[0].q.weight, net.blocks[0].q.weight)
    np.testing.assert_array_equal(back.cpg_weight, net.cpg_weight)


def _with_block(net, **changes):
    return dataclasses.replace(net, blocks=(dataclasses.replace(net.blocks[0], **changes),
                                            *net.blocks[1:]))


def _bad(net):
    """Each entry: a broken copy of ``net``, the node and field the error must name, and a
    piece of its message."""
    b0 = net.blocks[0]
    float_conv = dataclasses.replace(net.embed, weight=net.embed.weight.astype(np.float64))
    wide_lif = dataclasses.replace(net.embed_lif, v_bits=64)
    huge_bias = dataclasses.replace(b0.mlp1, bias=b0.mlp1.bias + (1 << 40))
    big_theta = dataclasses.replace(b0.q_lif, threshold=np.full_like(b0.q_lif.threshold, 1 << 20))
    return [
        (dataclasses.replace(net, embed=float_conv), "embed", "weight", "expected integers"),
        (dataclasses.replace(net, embed_lif=wide_lif), "embed_lif", "v_bits", "expected 2..32"),
        (_with_block(net, mlp1=huge_bias), "blocks.0.mlp1", "bias", "do not fit the signed 32-bit"),
        (_with_block(net, q_lif=big_theta), "blocks.0.q_lif", "threshold", "--max-v-bits"),
        (_with_block(net, heads=5), "blocks.0", "heads", "heads = 5 does not divide d_model = 8"),
        (dataclasses.replace(net, readout_bits=40), "readout", "readout_bits", "2..32"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_bad_networks_are_refused_naming_node_and_field(tmp_path, case):
    net = random_est(5, attention="sdsa", sew="add", cpg=True, tpu=True, d=8)
    bad, node, field, message = _bad(net)[case]
    with pytest.raises(IRError, match=message) as err:
        bad.validate()
    assert (err.value.node, err.value.field) == (node, field)
    bad.save(tmp_path)  # the loader refuses what validate refuses
    with pytest.raises(IRError):
        load_est(tmp_path, json.loads((tmp_path / "ir.json").read_text()))


def test_accumulator_wider_than_32_bits_is_refused():
    """Weights that each fit 16 bits, but a bias that leaves no room for their sum."""
    net = random_est(7, attention="none", sew="add", cpg=False, tpu=False)
    readout = dataclasses.replace(net.readout, bias=np.full_like(net.readout.bias, (1 << 31) - 1))
    with pytest.raises(IRError, match="accumulator needs 33 bits") as err:
        dataclasses.replace(net, readout=readout).validate()
    assert (err.value.node, err.value.field) == ("readout", "bias")


@pytest.mark.parametrize("edit, node, field", [
    (lambda doc: doc["blocks"][0].update(window="8"), "blocks.0", "window"),
    (lambda doc: doc["blocks"][0].update(q_lif=None), "blocks.0", "q_lif"),
    (lambda doc: doc["embed"].update(weight=[[1, 2]]), "embed", "weight"),
    (lambda doc: doc.update(version=1), "network", "version"),
])
def test_bad_ir_json_names_node_and_field(tmp_path, edit, node, field):
    random_est(9).save(tmp_path)
    doc = json.loads((tmp_path / "ir.json").read_text())
    edit(doc)
    with pytest.raises(IRError) as err:
        load_est(tmp_path, doc)
    assert (err.value.node, err.value.field) == (node, field)


def test_a_convolution_feeding_the_wrong_number_of_neurons_is_refused():
    net = random_est(11, d=8)
    narrow = dataclasses.replace(net.embed, weight=net.embed.weight[:, :7],
                                 bias=net.embed.bias[:7])
    with pytest.raises(IRError, match=r"expected \[kernel, 8, 6\]") as err:
        dataclasses.replace(net, embed=narrow).validate()
    assert (err.value.node, err.value.field) == ("embed", "weight")
