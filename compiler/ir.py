"""The integer IR: a typed, versioned description of a compiled network.

On disk a network is two files in one folder: ``ir.json`` (structure, widths, scalar parameters,
metadata) and ``weights.npz`` (integer tensors, named ``<layer>.<field>``). :func:`load` checks
both against the schema below and raises :class:`IRError` naming the node and field at fault.
docs/ir.md describes the format; docs/semantics.md what every field means arithmetically.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from est import EstError
from est.sim.golden import RESET_MODES, signed_bits, signed_range

IR_FORMAT = "est-ir"
IR_VERSION = 1
MAX_BITS = 32


class IRError(EstError):
    """An IR that breaks the schema; the message names the node and the field."""

    def __init__(self, node: str, fld: str, message: str):
        super().__init__(f"IR node '{node}', field '{fld}': {message}")
        self.node = node
        self.field = fld


def check_integers(node: str, fld: str, arr: np.ndarray, bits: int) -> None:
    """Refuse ``arr`` unless it is an integer array whose values fit signed ``bits``: a float
    tensor, or a value the declared width cannot hold, would make gateware that differs from
    the golden model."""
    if not np.issubdtype(arr.dtype, np.integer):
        raise IRError(node, fld, f"expected integers, got {arr.dtype}; compile the model again "
                                 f"with est-compile")
    lo, hi = signed_range(bits)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise IRError(node, fld, f"values {arr.min()}..{arr.max()} do not fit the signed "
                                 f"{bits}-bit range [{lo}, {hi}]; compile the model again with "
                                 f"est-compile, which checks every width")


def acc_bits_for(weight: np.ndarray, bias: np.ndarray) -> int:
    """Signed width that holds ``bias + weight @ x`` for every binary ``x`` (exact bound)."""
    lo = bias + np.minimum(weight, 0).sum(axis=1)
    hi = bias + np.maximum(weight, 0).sum(axis=1)
    return signed_bits(int(lo.min()), int(hi.max()))


@dataclass(frozen=True)
class Dense:
    """Fields common to the dense layers: integer synapses, a membrane width, a leak."""

    name: str
    weight: np.ndarray  # [n_out, n_in] signed, weight_bits wide
    bias: np.ndarray  # [n_out] signed, acc_bits wide
    scale: np.ndarray  # [n_out] float: float value = integer value / scale
    weight_bits: int
    v_bits: int
    leak_shift: int | None

    kind: ClassVar[str] = ""
    TENSORS: ClassVar[tuple[str, ...]] = ("weight", "bias", "scale")

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]

    @property
    def acc_bits(self) -> int:
        return acc_bits_for(self.weight, self.bias)

    def scalars(self) -> dict:
        return {"kind": self.kind, "name": self.name, "n_in": self.n_in, "n_out": self.n_out,
                "weight_bits": self.weight_bits, "acc_bits": self.acc_bits, "v_bits": self.v_bits,
                "leak_shift": self.leak_shift}

    def validate(self, n_in: int) -> None:
        n = self.name
        if not n.isidentifier() or n == "input":
            raise IRError(n, "name", "layer names must be identifiers (letters, digits, '_') "
                                     "other than 'input': they key the tensors in weights.npz "
                                     "and the traces")
        if self.weight.ndim != 2 or not np.issubdtype(self.weight.dtype, np.integer):
            raise IRError(n, "weight", f"expected a 2-D integer array, got {self.weight.dtype} "
                                       f"with shape {self.weight.shape}")
        if self.n_in != n_in:
            raise IRError(n, "weight", f"expected {n_in} inputs (the previous layer's outputs), "
                                       f"got {self.n_in}")
        if not 2 <= self.weight_bits <= 16:
            raise IRError(n, "weight_bits", f"expected 2..16, got {self.weight_bits}")
        lo, hi = signed_range(self.weight_bits)
        if self.weight.size and (self.weight.min() < lo or self.weight.max() > hi):
            raise IRError(n, "weight", f"values outside the signed {self.weight_bits}-bit range "
                                       f"[{lo}, {hi}]")
        for fld in ("bias", "scale"):
            arr = getattr(self, fld)
            if arr.shape != (self.n_out,):
                raise IRError(n, fld, f"expected shape ({self.n_out},), got {arr.shape}")
        if not np.issubdtype(self.bias.dtype, np.integer):
            raise IRError(n, "bias", f"expected integers, got {self.bias.dtype}")
        if not (np.all(np.isfinite(self.scale)) and np.all(self.scale > 0)):
            raise IRError(n, "scale", "expected finite positive floats")
        if not 2 <= self.v_bits <= MAX_BITS:
            raise IRError(n, "v_bits", f"expected 2..{MAX_BITS}, got {self.v_bits}")
        if self.acc_bits > MAX_BITS:
            raise IRError(n, "bias", f"the accumulator needs {self.acc_bits} bits, "
                                     f"more than {MAX_BITS}")
        if self.leak_shift is not None and not 0 <= self.leak_shift < self.v_bits:
            raise IRError(n, "leak_shift", f"expected null (no leak) or 0..{self.v_bits - 1}, "
                                           f"got {self.leak_shift}")


@dataclass(frozen=True)
class DenseLIF(Dense):
    """Dense synapses into an array of LIF neurons; outputs one spike per neuron per bin."""

    threshold: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [n_out] >= 1
    reset: str = "subtract"

    kind: ClassVar[str] = "dense_lif"
    TENSORS: ClassVar[tuple[str, ...]] = ("weight", "bias", "scale", "threshold")

    def scalars(self) -> dict:
        return {**super().scalars(), "reset": self.reset}

    def validate(self, n_in: int) -> None:
        super().validate(n_in)
        n = self.name
        if self.threshold.shape != (self.n_out,) or not np.issubdtype(self.threshold.dtype,
                                                                       np.integer):
            raise IRError(n, "threshold", f"expected {self.n_out} integers, got "
                                          f"{self.threshold.dtype} {self.threshold.shape}")
        hi = signed_range(self.v_bits)[1]
        if self.threshold.min() < 1 or self.threshold.max() > hi:
            raise IRError(n, "threshold", f"expected 1..{hi} (fits v_bits={self.v_bits}), got "
                                          f"{self.threshold.min()}..{self.threshold.max()}")
        if self.reset not in RESET_MODES:
            raise IRError(n, "reset", f"expected one of {RESET_MODES}, got {self.reset!r}")


@dataclass(frozen=True)
class DenseReadout(Dense):
    """Dense synapses into non-spiking integrators; their values are the network's output."""

    kind: ClassVar[str] = "dense_readout"


LAYER_KINDS = {cls.kind: cls for cls in (DenseLIF, DenseReadout)}


@dataclass(frozen=True)
class Network:
    """A feed-forward stack: binary input spikes, DenseLIF layers, one DenseReadout last."""

    name: str
    n_in: int
    layers: tuple[Dense, ...]
    lanes: int = 1
    meta: dict = field(default_factory=dict)

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    def validate(self) -> "Network":
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise IRError("network", "name", f"expected letters, digits, '_' or '-', "
                                             f"got {self.name!r}")
        if self.n_in < 1:
            raise IRError("network", "n_in", f"expected >= 1, got {self.n_in}")
        if self.lanes < 1:
            raise IRError("network", "lanes", f"expected >= 1, got {self.lanes}")
        if not self.layers or not isinstance(self.layers[-1], DenseReadout):
            raise IRError("network", "layers", "expected DenseLIF layers then one DenseReadout")
        names = set()
        n_in = self.n_in
        for i, layer in enumerate(self.layers):
            if isinstance(layer, DenseReadout) and i != len(self.layers) - 1:
                raise IRError(layer.name, "kind", "a dense_readout must be the last layer")
            if layer.name in names:
                raise IRError(layer.name, "name", "layer names must be unique")
            names.add(layer.name)
            layer.validate(n_in)
            n_in = layer.n_out
        return self

    def save(self, folder: Path) -> None:
        """Write ``ir.json`` and ``weights.npz`` into ``folder``."""
        folder = Path(folder)
        doc = {"format": IR_FORMAT, "version": IR_VERSION, "name": self.name, "n_in": self.n_in,
               "lanes": self.lanes, "meta": self.meta,
               "layers": [layer.scalars() for layer in self.layers]}
        (folder / "ir.json").write_text(json.dumps(doc, indent=2) + "\n")
        tensors = {f"{layer.name}.{t}": getattr(layer, t)
                   for layer in self.layers for t in layer.TENSORS}
        np.savez(folder / "weights.npz", **tensors)


def _get(doc: dict, node: str, key: str, typ: type, nullable: bool = False):
    if key not in doc:
        raise IRError(node, key, "missing")
    value = doc[key]
    if value is None and nullable:
        return None
    if not isinstance(value, typ) or isinstance(value, bool):
        raise IRError(node, key, f"expected {'null or ' if nullable else ''}{typ.__name__}, "
                                 f"got {type(value).__name__} {value!r}")
    return value


def load(folder: Path) -> Network:
    """Read and validate a network from ``folder/ir.json`` and ``folder/weights.npz``."""
    folder = Path(folder)
    try:
        doc = json.loads((folder / "ir.json").read_text())
    except FileNotFoundError:
        raise EstError(f"{folder / 'ir.json'}: no such file; is {folder} an est-compile "
                       f"build folder?") from None
    except json.JSONDecodeError as e:
        raise EstError(f"{folder / 'ir.json'}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != IR_FORMAT:
        raise IRError("network", "format", f"expected {IR_FORMAT!r}")
    if doc.get("kind") == "est":
        raise EstError(f"{folder}: an EST build (IR version {doc.get('version')}); read it with "
                       f"est.compiler.est_ir.load_est")
    if doc.get("version") != IR_VERSION:
        raise IRError("network", "version", f"this est reads version {IR_VERSION}, the file is "
                                            f"version {doc.get('version')!r}; recompile the model")
    try:
        npz = np.load(folder / "weights.npz", allow_pickle=False)
        tensors = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as e:
        raise EstError(f"{folder / 'weights.npz'}: cannot read integer tensors ({e})") from None
    layers = []
    for i, ldoc in enumerate(_get(doc, "network", "layers", list)):
        node = ldoc.get("name", f"layers[{i}]") if isinstance(ldoc, dict) else f"layers[{i}]"
        if not isinstance(ldoc, dict):
            raise IRError(node, "layers", "expected an object")
        kind = _get(ldoc, node, "kind", str)
        if kind not in LAYER_KINDS:
            raise IRError(node, "kind", f"unknown layer kind {kind!r}; known: "
                                        f"{sorted(LAYER_KINDS)}")
        cls = LAYER_KINDS[kind]
        kwargs = {"name": _get(ldoc, node, "name", str),
                  "weight_bits": _get(ldoc, node, "weight_bits", int),
                  "v_bits": _get(ldoc, node, "v_bits", int),
                  "leak_shift": _get(ldoc, node, "leak_shift", int, nullable=True)}
        for t in cls.TENSORS:
            key = f"{node}.{t}"
            if key not in tensors:
                raise IRError(node, t, f"tensor {key!r} missing from weights.npz")
            kwargs[t] = tensors[key]
        if cls is DenseLIF:
            kwargs["reset"] = _get(ldoc, node, "reset", str)
        layer = cls(**kwargs)
        if layer.weight.ndim != 2:
            raise IRError(node, "weight", f"expected a 2-D array, got shape {layer.weight.shape}")
        if layer.bias.shape != (layer.n_out,):
            raise IRError(node, "bias", f"expected shape ({layer.n_out},), got {layer.bias.shape}")
        for key in ("n_in", "n_out", "acc_bits"):
            if _get(ldoc, node, key, int) != getattr(layer, key):
                raise IRError(node, key, f"ir.json says {ldoc[key]}, the tensors give "
                                         f"{getattr(layer, key)}")
        layers.append(layer)
    net = Network(name=_get(doc, "network", "name", str), n_in=_get(doc, "network", "n_in", int),
                  layers=tuple(layers), lanes=_get(doc, "network", "lanes", int),
                  meta=doc.get("meta", {}))
    return net.validate()
