"""The integer IR of an Enhanced Spiking Transformer (EST): typed, versioned, serialisable.

Structure (docs/semantics.md, "EST"): an embedding (dense synapses, optional CPG-PE table and its
projection, LIF), ``blocks`` of [random spike masking -> causal conv Q/K/V (LIF each) ->
spike attention (SDSA, or SSA + LIF) -> projection LIF -> SEW residual -> optional temporal
processing unit (TPU) and SEW residual -> MLP (two LIF layers) -> SEW residual], and a readout
integrator.

On disk: ``ir.json`` (format "est-ir", version 2, kind "est") holds scalars and the nesting;
every array lives in ``weights.npz`` under its dotted path (``blocks.0.q.weight``).
"""

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from est import EstError
from est.compiler.ir import MAX_BITS, IRError, check_integers
from est.sim.golden import (
    RESET_MODES,
    SEW_OPS,
    conv_acc_bits,
    sew_bits,
    signed_range,
    tpu_acc_bits,
)

EST_IR_VERSION = 2
ATTENTION_MODES = ("sdsa", "ssa", "none")
WEIGHT_MAX_BITS = 16  # the widest --weight-bits


def _check_acc(node: str, bits: int) -> None:
    if bits > MAX_BITS:
        raise IRError(node, "bias", f"the accumulator needs {bits} bits, more than {MAX_BITS}: "
                                    f"a bias or weight is far out of proportion to the others; "
                                    f"clip or retrain it, then compile again")


@dataclass(frozen=True)
class LIF:
    """Neuron array parameters: integer thresholds [n] (>= 1), leak shift (None: no leak),
    membrane width, reset mode."""

    threshold: np.ndarray
    leak_shift: int | None
    v_bits: int
    reset: str = "subtract"

    def check(self, node: str, n: int) -> None:
        if not 2 <= self.v_bits <= MAX_BITS:
            raise IRError(node, "v_bits", f"expected 2..{MAX_BITS}, got {self.v_bits}")
        if self.threshold.shape != (n,):
            raise IRError(node, "threshold", f"expected shape ({n},), got {self.threshold.shape}")
        check_integers(node, "threshold", self.threshold, MAX_BITS)
        hi = signed_range(self.v_bits)[1]
        if self.threshold.min() < 1:
            raise IRError(node, "threshold", f"expected integers >= 1, got {self.threshold.min()}")
        if self.threshold.max() > hi:
            raise IRError(node, "threshold", f"{self.threshold.max()} does not fit "
                                             f"v_bits={self.v_bits} (at most {hi}); compile "
                                             f"with a larger --max-v-bits (up to {MAX_BITS}), "
                                             f"or retrain with a threshold nearer the weights' "
                                             f"scale")
        if self.reset not in RESET_MODES:
            raise IRError(node, "reset", f"expected one of {RESET_MODES}, got {self.reset!r}")
        if self.leak_shift is not None and not 0 <= self.leak_shift < self.v_bits:
            raise IRError(node, "leak_shift", f"expected null or 0..{self.v_bits - 1}, got "
                                              f"{self.leak_shift}")


@dataclass(frozen=True)
class Conv:
    """Causal convolution over the input history: ``weight`` [kernel, n_out, n_in] (lag 0
    first; kernel 1 is a dense layer), ``bias`` [n_out]."""

    weight: np.ndarray
    bias: np.ndarray

    def check(self, node: str, n_in: int, x_bits: int, n_out: int | None = None,
              extra: np.ndarray | None = None) -> None:
        """Shapes (``n_out`` outputs when given), integer values that fit their widths, and an
        accumulator of at most ``MAX_BITS`` for inputs of ``x_bits`` (``extra``: more weights
        at lag 0, the CPG's)."""
        if (self.weight.ndim != 3 or self.weight.shape[2] != n_in or self.weight.shape[0] < 1
                or n_out is not None and self.weight.shape[1] != n_out):
            raise IRError(node, "weight", f"expected [kernel, {n_out or 'n_out'}, {n_in}], got "
                                          f"{self.weight.shape}")
        if self.bias.shape != (self.weight.shape[1],):
            raise IRError(node, "bias", f"expected ({self.weight.shape[1]},), got "
                                        f"{self.bias.shape}")
        check_integers(node, "weight", self.weight, WEIGHT_MAX_BITS)
        check_integers(node, "bias", self.bias, MAX_BITS)
        weight = self.weight
        if extra is not None:
            more = np.zeros((weight.shape[0], weight.shape[1], extra.shape[1]), np.int64)
            more[0] = extra
            weight = np.concatenate([weight, more], axis=2)
        _check_acc(node, conv_acc_bits(weight, self.bias, x_bits))


@dataclass(frozen=True)
class TPU:
    """Temporal processing unit: ``current = bias + w_in * x_t + sum_j w_rec[j-1] * y_{t-j}``
    per channel (depthwise, j = 1..kernel), then a LIF; y is its own output spikes."""

    w_in: np.ndarray
    w_rec: np.ndarray
    bias: np.ndarray
    lif: LIF

    def check(self, node: str, d: int, x_bits: int) -> None:
        if self.w_in.shape != (d,) or self.bias.shape != (d,):
            raise IRError(node, "w_in", f"expected w_in and bias of shape ({d},), got "
                                        f"{self.w_in.shape} and {self.bias.shape}")
        if self.w_rec.ndim != 2 or self.w_rec.shape[1] != d or self.w_rec.shape[0] < 1:
            raise IRError(node, "w_rec", f"expected [kernel, {d}], got {self.w_rec.shape}")
        for fld in ("w_in", "w_rec"):
            check_integers(node, fld, getattr(self, fld), WEIGHT_MAX_BITS)
        check_integers(node, "bias", self.bias, MAX_BITS)
        _check_acc(node, tpu_acc_bits(self.w_in, self.w_rec, self.bias, x_bits))
        self.lif.check(f"{node}.lif", d)


@dataclass(frozen=True)
class Block:
    mask_threshold: int  # keep a spike when its 8-bit LFSR draw >= this; 0 = no masking
    mask_seed: int  # LFSR state at the start of every stream (nonzero)
    q: Conv
    q_lif: LIF
    k: Conv
    k_lif: LIF
    v: Conv
    v_lif: LIF
    attention: str
    window: int
    heads: int
    count_threshold: int  # SDSA: [windowed count of k AND v >= this]
    attn_lif: LIF | None  # SSA only
    proj: Conv
    proj_lif: LIF
    sew: str  # add | and | iand | none
    tpu: TPU | None
    mlp1: Conv
    mlp1_lif: LIF
    mlp2: Conv
    mlp2_lif: LIF


@dataclass(frozen=True)
class ESTNetwork:
    name: str
    n_in: int
    d_model: int
    embed: Conv
    embed_lif: LIF
    cpg_table: np.ndarray | None  # [positions, neurons] 0/1; position of bin t is t % positions
    cpg_weight: np.ndarray | None  # [d_model, neurons]
    blocks: tuple[Block, ...]
    readout: Conv
    readout_leak_shift: int | None
    readout_bits: int
    readout_scale: np.ndarray  # [n_out] float: log-rate = integer value / scale
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def n_out(self) -> int:
        return self.readout.weight.shape[1]

    def validate(self) -> "ESTNetwork":
        """Check every field: shapes, modes, integer tensors within their widths, and every
        accumulator within ``MAX_BITS`` for the values its inputs can take (SEW ADD sums grow
        by one bit per join); raises :class:`IRError` naming the node and field."""
        d = self.d_model
        if (self.cpg_table is None) != (self.cpg_weight is None):
            raise IRError("cpg", "cpg_weight", "table and weight come together")
        if self.cpg_table is not None:
            if self.cpg_table.ndim != 2 or not np.isin(self.cpg_table, (0, 1)).all():
                raise IRError("cpg", "cpg_table", "expected a [positions, neurons] array of 0/1")
            if self.cpg_weight.shape != (d, self.cpg_table.shape[1]):
                raise IRError("cpg", "cpg_weight", f"expected ({d}, {self.cpg_table.shape[1]}), "
                                                   f"got {self.cpg_weight.shape}")
            check_integers("cpg", "cpg_weight", self.cpg_weight, WEIGHT_MAX_BITS)
        self.embed.check("embed", self.n_in, 1, d, self.cpg_weight)
        self.embed_lif.check("embed_lif", d)
        s_bits = 1  # width of the values between blocks: spikes, or SEW ADD sums

        def joined(op: str, bits: int) -> int:
            return sew_bits(op, bits) if op != "none" else 1

        for i, b in enumerate(self.blocks):
            node = f"blocks.{i}"
            if b.attention not in ATTENTION_MODES:
                raise IRError(node, "attention", f"expected one of {ATTENTION_MODES}, got "
                                                 f"{b.attention!r}")
            if b.sew not in (*SEW_OPS, "none"):
                raise IRError(node, "sew", f"expected one of {(*SEW_OPS, 'none')}, got {b.sew!r}")
            if b.heads < 1 or d % b.heads:
                raise IRError(node, "heads", f"heads = {b.heads} does not divide d_model = {d}")
            if b.window < 1:
                raise IRError(node, "window", f"expected >= 1, got {b.window}")
            if b.count_threshold < 1:
                raise IRError(node, "count_threshold", f"expected >= 1, got {b.count_threshold}")
            if not 0 <= b.mask_threshold <= 256:
                raise IRError(node, "mask_threshold", f"expected 0..256, got {b.mask_threshold}")
            if not 0 < b.mask_seed < 1 << 32:
                raise IRError(node, "mask_seed", f"expected a nonzero 32-bit seed, got "
                                                 f"{b.mask_seed}")
            for name in ("q", "k", "v"):
                getattr(b, name).check(f"{node}.{name}", d, s_bits, d)
                getattr(b, f"{name}_lif").check(f"{node}.{name}_lif", d)
            if b.attention == "ssa":
                if b.attn_lif is None:
                    raise IRError(node, "attn_lif", "SSA needs its LIF")
                b.attn_lif.check(f"{node}.attn_lif", d)
            b.proj.check(f"{node}.proj", d, 1, d)
            b.proj_lif.check(f"{node}.proj_lif", d)
            if b.attention != "none":
                s_bits = joined(b.sew, s_bits)
            if b.tpu is not None:
                b.tpu.check(f"{node}.tpu", d, s_bits)
                s_bits = joined(b.sew, s_bits)
            b.mlp1.check(f"{node}.mlp1", d, s_bits)
            b.mlp1_lif.check(f"{node}.mlp1_lif", b.mlp1.weight.shape[1])
            b.mlp2.check(f"{node}.mlp2", b.mlp1.weight.shape[1], 1, d)
            b.mlp2_lif.check(f"{node}.mlp2_lif", d)
            s_bits = joined(b.sew, s_bits)
        self.readout.check("readout", d, s_bits)
        if not 2 <= self.readout_bits <= MAX_BITS:
            raise IRError("readout", "readout_bits", f"expected 2..{MAX_BITS}, got "
                                                     f"{self.readout_bits}")
        if self.readout_leak_shift is not None and not (
                0 <= self.readout_leak_shift < self.readout_bits):
            raise IRError("readout", "readout_leak_shift", f"expected null or "
                                                           f"0..{self.readout_bits - 1}")
        scale = np.asarray(self.readout_scale)
        if scale.shape != (self.n_out,) or not (np.isfinite(scale).all() and (scale > 0).all()):
            raise IRError("readout", "readout_scale", f"expected {self.n_out} finite positive "
                                                      f"floats")
        return self

    def save(self, folder: Path) -> None:
        tensors: dict[str, np.ndarray] = {}
        doc = {"format": "est-ir", "version": EST_IR_VERSION, "kind": "est",
               **_to_doc(self, "", tensors)}
        (Path(folder) / "ir.json").write_text(json.dumps(doc, indent=2) + "\n")
        np.savez(Path(folder) / "weights.npz", **tensors)


def _to_doc(obj, path: str, tensors: dict):
    if isinstance(obj, np.ndarray):
        tensors[path] = obj
        return {"tensor": path}
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_doc(getattr(obj, f.name), f"{path}{'.' if path else ''}{f.name}",
                                tensors) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_doc(x, f"{path}.{i}", tensors) for i, x in enumerate(obj)]
    return obj


def _from_doc(cls, doc, tensors: dict, path: str):
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in doc:
            raise IRError(path or "network", f.name, "missing")
        kwargs[f.name] = _value(f.type, doc[f.name], tensors, f"{path}.{f.name}".lstrip("."))
    return cls(**kwargs)


def _value(typ, value, tensors: dict, path: str):
    """The field of type ``typ`` from its JSON ``value``; a value of the wrong kind (a string
    for an integer, a number for a tensor, null for a part that must be there) is refused."""
    args = typing.get_args(typ)
    options = args if typing.get_origin(typ) in (typing.Union, types.UnionType) else (typ,)
    node, fld = path.rpartition(".")[0] or "network", path.rpartition(".")[2]
    if value is None:
        if type(None) not in options:
            raise IRError(node, fld, "expected a value, got null")
        return None
    if np.ndarray in options:
        if not (isinstance(value, dict) and set(value) == {"tensor"}):
            raise IRError(node, fld, f"expected {{\"tensor\": NAME}}, got {value!r}")
        if value["tensor"] not in tensors:
            raise IRError(node, fld, f"tensor {value['tensor']!r} missing from weights.npz")
        return tensors[value["tensor"]]
    if typing.get_origin(typ) is tuple:
        if not isinstance(value, list):
            raise IRError(node, fld, f"expected a list, got {type(value).__name__}")
        return tuple(_value(args[0], v, tensors, f"{path}.{i}") for i, v in enumerate(value))
    for cls in options:
        if dataclasses.is_dataclass(cls):
            if not isinstance(value, dict):
                raise IRError(node, fld, f"expected an object, got {type(value).__name__}")
            return _from_doc(cls, value, tensors, path)
    wanted = tuple(t for t in options if t is not type(None))
    if not isinstance(value, wanted) or isinstance(value, bool):
        names = " or ".join(t.__name__ for t in wanted)
        raise IRError(node, fld, f"expected {names}, got {type(value).__name__} {value!r}")
    return value


def load_est(folder: Path, doc: dict) -> ESTNetwork:
    """Read an EST IR whose ``ir.json`` was already parsed into ``doc``."""
    if doc.get("format") != "est-ir":
        raise IRError("network", "format", f"expected 'est-ir', got {doc.get('format')!r}")
    if doc.get("version") != EST_IR_VERSION:
        raise IRError("network", "version", f"this est reads version {EST_IR_VERSION}, the file "
                                            f"is version {doc.get('version')!r}; recompile the "
                                            f"model")
    try:
        with np.load(Path(folder) / "weights.npz", allow_pickle=False) as npz:
            tensors = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as e:
        raise EstError(f"{Path(folder) / 'weights.npz'}: cannot read integer tensors "
                       f"({e})") from None
    return _from_doc(ESTNetwork, doc, tensors, "").validate()
