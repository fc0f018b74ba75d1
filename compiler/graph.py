"""The integer IR: a graph of typed operations, one format for every network est compiles.

A :class:`Graph` is a list of :class:`Node` in topological order. A node has a name (trace
tensors are ``<name>/<tensor>``), an operation (an instance of one of the kinds in
:mod:`est.compiler.ops`: its parameters and, :class:`Op`, its methods), and the names of the
nodes it reads. Nothing here knows what a transformer block or an MLP layer is.

On disk: ``ir.json`` (``format`` "est-graph", ``version`` 3: nodes with their kind, inputs and
scalar parameters) and ``weights.npz`` (every array parameter as ``<node>.<field>``).
docs/ir.md describes the format field by field.
"""

import dataclasses
import json
import types
import typing
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from est import EstError, numpy_says
from est.sim.golden import signed_range

GRAPH_FORMAT = "est-graph"
GRAPH_VERSION = 3
MAX_BITS = 32
WEIGHT_MAX_BITS = 16


class IRError(EstError):
    """An IR that breaks the schema; the message names the node and the field."""

    def __init__(self, node: str, fld: str, message: str):
        super().__init__(f"IR node '{node}', field '{fld}': {message}")
        self.node = node
        self.field = fld


def check_integers(node: str, fld: str, arr: np.ndarray, bits: int,
                   shape: tuple | None = None) -> None:
    """Refuse ``arr`` unless it is an integer array whose values fit signed ``bits`` (anything
    else would make gateware that differs from the golden model) and, given, of ``shape``."""
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.integer):
        kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise IRError(node, fld, f"expected integers, got {kind}; compile the model again "
                                 f"with est-compile")
    lo, hi = signed_range(bits)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise IRError(node, fld, f"values {arr.min()}..{arr.max()} do not fit the signed "
                                 f"{bits}-bit range [{lo}, {hi}]; compile the model again with "
                                 f"est-compile, which checks every width")
    if shape is not None:
        check_shape(node, fld, arr, shape)


def check_shape(node: str, fld: str, arr: np.ndarray, shape: tuple) -> None:
    """Refuse ``arr`` unless its shape is ``shape`` (``None`` entries match any size >= 1)."""
    ok = arr.ndim == len(shape) and all(s == want if want is not None else s >= 1
                                        for s, want in zip(arr.shape, shape, strict=True))
    if not ok:
        want = ", ".join("n" if s is None else str(s) for s in shape)
        raise IRError(node, fld, f"expected shape ({want}), got {arr.shape}")


def check_acc(node: str, bits: int) -> None:
    if bits > MAX_BITS:
        raise IRError(node, "bias", f"the accumulator needs {bits} bits, more than {MAX_BITS}: "
                                    f"a bias or weight is far out of proportion to the others; "
                                    f"clip or retrain it, then compile again")


class Spec(NamedTuple):
    """What flows on an edge each bin: ``n`` channels of ``bits`` bits; ``signed``; ``form``
    'vector' (one word of ``n`` fields) or 'current' (a neuron array's input: lane groups of
    signed currents, the output of a convolution or recurrence)."""

    n: int
    bits: int
    signed: bool = False
    form: str = "vector"


def check_vector(node: str, x: Spec, reader: str) -> Spec:
    """``x``, refused unless it is an unsigned vector (``reader``: what reads it)."""
    if x.form != "vector" or x.signed:
        raise IRError(node, "inputs", f"{reader} reads unsigned vectors, got {x}")
    return x


class Field(NamedTuple):
    """A traced tensor: ``<node>/<tensor>``, ``n`` channels of ``bits``, and whether the
    gateware can expose it on the output word (``hw``)."""

    name: str
    n: int
    bits: int
    signed: bool
    hw: bool = True


@dataclass(frozen=True)
class Op:
    """The parameters of one operation; a subclass per kind (``KIND``) with its methods.

    Subclasses define ``check(node, ins) -> Spec`` (validate the input specs, return the output's),
    ``fields(node, ins)`` (traced tensors, the output first), ``init(ins)`` and ``step(xs, state) ->
    (tensors, state)`` (the golden model, one bin, numpy int64), ``seq(xs, bins)`` (the integer
    PyTorch path, a whole sequence), ``cost(node, ins, ctx)`` and ``lower(builder, node, ins)`` (the
    Amaranth components of the dataflow backend), ``history`` and ``emit(builder, node, ins)``
    (the instructions of the core backend). By default an operation traces one tensor, its
    output, named ``TENSOR`` (``hw``: ``HW``), has no state (``init`` None), no hardware of its
    own (``cost`` no row), reads one bin of each input and has no core instructions.
    """

    KIND: ClassVar[str] = ""
    ARITY: ClassVar[tuple[int, int]] = (1, 1)  # inputs: at least, at most
    TENSOR: ClassVar[str] = "values"
    HW: ClassVar[bool] = True

    def check(self, node: str, ins: list[Spec]) -> Spec:
        raise NotImplementedError

    def fields(self, node: str, ins: list[Spec]) -> list[Field]:
        out = self.check(node, ins)
        return [Field(f"{node}/{self.TENSOR}", out.n, out.bits, out.signed, self.HW)]

    def init(self, ins: list[Spec]):
        return None

    def cost(self, node: str, ins: list[Spec], ctx) -> list:
        return []

    def history(self, ins: list[Spec]) -> list[int]:
        """Per input, how many bins of it (the current one included) this operation reads:
        the core backend keeps that many in the input's ring (:mod:`est.compiler.program`)."""
        return [1] * len(ins)

    def own_history(self) -> int:
        """How many bins of its own output this operation reads (the recurrence: its past
        spikes); the core keeps at least that many in the node's ring."""
        return 1

    def top(self, out: Spec, tops: list[int]) -> int:
        """The largest value of this operation's output (``out``, an unsigned vector; ``tops``:
        its inputs' largest values): by default the largest its width holds. An operation
        whose values stay below that says so (SEW ADD: the sum of its inputs'), so that the
        core backend bounds a convolution's sums by the values its input can take
        (:meth:`Graph.tops`)."""
        return (1 << out.bits) - 1

    def emit(self, b, node: str, ins: list[Spec]) -> None:
        """This operation as instructions of the core backend (``b`` a
        :class:`~est.compiler.program.ProgramBuilder`); refused where the core lacks it."""
        raise EstError(f"node '{node}': the core backend does not run a '{self.KIND}' "
                       f"operation yet; compile with --backend dataflow")


@dataclass(frozen=True)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Graph:
    """A network: nodes in topological order, the one ``input`` node first, and the names of
    the nodes whose first tensor is the network's output (the readout). ``meta["sum_outputs"]``
    true: the outputs are readouts of the same neurons whose log-rates add up (an EST's main
    readout and its slow readouts of the inputs, :meth:`log_rates`)."""

    name: str
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    meta: dict = field(default_factory=dict)

    def node(self, name: str) -> Node:
        return {n.name: n for n in self.nodes}[name]

    @property
    def n_in(self) -> int:
        return self.nodes[0].op.n

    @property
    def input_bits(self) -> int:
        """The width of each input count (1: spikes)."""
        return self.nodes[0].op.bits

    @property
    def n_out(self) -> int:
        return sum(self.specs()[o].n for o in self.outputs)

    def specs(self) -> dict[str, Spec]:
        """The output spec of every node (checked: see :meth:`validate`)."""
        specs: dict[str, Spec] = {}
        for n in self.nodes:
            specs[n.name] = n.op.check(n.name, [specs[i] for i in n.inputs])
        return specs

    def tops(self) -> dict[str, int]:
        """The largest value of every unsigned vector a node outputs (:meth:`Op.top`)."""
        specs, tops = self.specs(), {}
        for n in self.nodes:
            out = specs[n.name]
            if out.form == "vector" and not out.signed:
                tops[n.name] = n.op.top(out, [tops.get(i, 0) for i in n.inputs])
        return tops

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.name)
        return out

    def fields(self) -> list[Field]:
        """Every traced tensor, in node order (the golden trace holds all of them)."""
        specs = self.specs()
        return [f for n in self.nodes for f in n.op.fields(n.name, [specs[i] for i in n.inputs])]

    def heads(self) -> dict[str, str]:
        """Per node, the tensor its consumers read: its first field (a LIF's ``spikes``, ...)."""
        specs = self.specs()
        return {n.name: n.op.fields(n.name, [specs[i] for i in n.inputs])[0].name.split("/")[1]
                for n in self.nodes}

    def output_fields(self, trace: bool = True) -> list[tuple[str, int, int, bool]]:
        """The dataflow top's output word, low bits first, as ``(tensor, channels, bits, signed)``:
        the outputs' first tensors, then with ``trace`` every other exposed tensor in node order."""
        fields = self.fields()
        heads = [next(f for f in fields if f.name.startswith(f"{o}/")) for o in self.outputs]
        rest = [f for f in fields if trace and f.hw and f not in heads]
        return [(f.name, f.n, f.bits, f.signed) for f in heads + rest]

    def log_rates(self, arrays) -> np.ndarray:
        """The network's log-rates ``[bins, n]`` from its outputs' values (``arrays``: tensor
        name -> ``[bins, channels]``, as a trace holds them): each readout's values over its
        scale, the outputs side by side, or with ``meta["sum_outputs"]`` added up neuron by
        neuron. Float arithmetic on the host, after the integer network."""
        parts = [arrays[f"{o}/{self.node(o).op.TENSOR}"] / np.asarray(self.node(o).op.scale,
                                                                     np.float64)
                 for o in self.outputs]
        return np.sum(parts, axis=0) if self.meta.get("sum_outputs") else np.hstack(parts)

    def kinds(self) -> dict[str, int]:
        """How many nodes of each operation kind the graph has."""
        return dict(Counter(n.op.KIND for n in self.nodes))

    def validate(self) -> "Graph":
        """Check names, wiring, every operation's parameters and widths; else :class:`IRError`."""
        return self.check_wiring(integer=True)

    def check_wiring(self, integer: bool = False) -> "Graph":
        """The checks a front end's float graph takes: names, the input first, arities,
        topological order, every node read or an output, readout outputs. ``integer``: also
        every operation's parameters and widths, one neuron array per current (:meth:`validate`)."""
        from est.compiler.ops import Input

        if not self.name or not all(c.isalnum() or c in "_-." for c in self.name):
            raise IRError("network", "name", f"expected letters, digits, '_', '-' or '.', "
                                             f"got {self.name!r}")
        if not self.nodes or not isinstance(self.nodes[0].op, Input):
            raise IRError("network", "nodes", "the first node must be the network input")
        seen: set[str] = set()
        for n in self.nodes:
            if not n.name or not all(c.isalnum() or c in "_." for c in n.name):
                raise IRError(n.name, "name", "node names are letters, digits, '_' and '.': "
                                              "they key the tensors and the traces")
            if n.name in seen:
                raise IRError(n.name, "name", "node names must be unique")
            if isinstance(n.op, Input) and n is not self.nodes[0]:
                raise IRError(n.name, "op", "only the first node may be the network input")
            lo, hi = n.op.ARITY
            if not lo <= len(n.inputs) <= hi:
                raise IRError(n.name, "inputs", f"a {n.op.KIND} takes {lo}..{hi} inputs, got "
                                                f"{len(n.inputs)}")
            for i in n.inputs:
                if i not in seen:
                    raise IRError(n.name, "inputs", f"{i!r} is not an earlier node (nodes are "
                                                    f"in topological order)")
            seen.add(n.name)
        if not self.outputs or any(o not in seen for o in self.outputs):
            raise IRError("network", "outputs", f"expected names of nodes, got "
                                                f"{list(self.outputs)}")
        consumers = self.consumers()
        specs = self.specs() if integer else {}
        for n in self.nodes:
            if integer and specs[n.name].form == "current" and len(consumers[n.name]) != 1:
                raise IRError(n.name, "inputs", f"a current feeds exactly one neuron array, "
                                                f"this one feeds {consumers[n.name]}")
            if not consumers[n.name] and n.name not in self.outputs:
                raise IRError(n.name, "inputs", "no node reads this one and it is not an "
                                                "output: its stream would stall the network")
        for o in self.outputs:
            if self.node(o).op.KIND not in ("readout", "lif"):
                raise IRError(o, "op", f"a network's outputs are readouts (their scale maps "
                                       f"values to log-rates) or spiking neuron arrays (lif: a "
                                       f"classifier's spikes), this is a {self.node(o).op.KIND}")
            if self.meta.get("sum_outputs") and self.node(o).op.KIND != "readout":
                raise IRError(o, "op", "summed outputs (meta sum_outputs) are readouts, this is "
                                       f"a {self.node(o).op.KIND}")
        if integer and self.meta.get("sum_outputs") and len(
                {specs[o].n for o in self.outputs}) != 1:
            raise IRError("network", "outputs", "summed outputs (meta sum_outputs) are readouts "
                                                "of the same number of neurons, got "
                          f"{[specs[o].n for o in self.outputs]}")
        return self

    def save(self, folder: Path) -> None:
        """Write ``ir.json`` and ``weights.npz`` into ``folder`` (an integer graph only)."""
        if "float" in self.meta:
            raise EstError(f"graph '{self.name}' is a float graph: run the passes "
                           f"(est.compiler.passes.compile_graph) before saving it")
        tensors: dict[str, np.ndarray] = {}
        nodes = []
        for n in self.nodes:
            params = {}
            for f in dataclasses.fields(n.op):
                value = getattr(n.op, f.name)
                if isinstance(value, np.ndarray):
                    tensors[f"{n.name}.{f.name}"] = value
                    params[f.name] = {"tensor": f"{n.name}.{f.name}"}
                else:
                    params[f.name] = value
            nodes.append({"name": n.name, "op": n.op.KIND, "inputs": list(n.inputs),
                          "params": params})
        doc = {"format": GRAPH_FORMAT, "version": GRAPH_VERSION, "name": self.name,
               "outputs": list(self.outputs), "meta": self.meta, "nodes": nodes}
        (Path(folder) / "ir.json").write_text(json.dumps(doc, indent=2) + "\n")
        np.savez(Path(folder) / "weights.npz", **tensors)


def _param(typ, value, tensors: dict, node: str, fld: str):
    """The parameter of type ``typ`` from its JSON ``value``; a value of the wrong kind (a
    string for an integer, a number for a tensor, null where a value must be) is refused."""
    args = typing.get_args(typ)
    options = args if typing.get_origin(typ) in (typing.Union, types.UnionType) else (typ,)
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
    wanted = tuple(t for t in options if t is not type(None))
    if not isinstance(value, wanted) or isinstance(value, bool) and bool not in wanted:
        names = " or ".join(t.__name__ for t in wanted)
        raise IRError(node, fld, f"expected {names}, got {type(value).__name__} {value!r}")
    return value


ADDED_PARAMS = {("readout", "rotate_shift"), ("readout", "rotate_mult"), ("table", "start")}
"""(kind, parameter) pairs added to the format since version 3: an ``ir.json`` written before
one lacks it and loads with its default (what it was built as); every other parameter must be
there."""


def from_doc(doc, tensors: dict) -> Graph:
    """A validated :class:`Graph` from a parsed ``ir.json`` and its tensors."""
    from est.compiler.ops import KINDS

    if not isinstance(doc, dict) or doc.get("format") != GRAPH_FORMAT:
        fmt = doc.get("format") if isinstance(doc, dict) else None
        if fmt == "est-ir":
            raise IRError("network", "format", "a build from an est before the graph IR "
                                               "(format 'est-ir'); recompile the model with "
                                               "est-compile")
        raise IRError("network", "format", f"expected {GRAPH_FORMAT!r}, got {fmt!r}")
    if doc.get("version") != GRAPH_VERSION:
        raise IRError("network", "version", f"this est reads version {GRAPH_VERSION}, the file "
                                            f"is version {doc.get('version')!r}; recompile the "
                                            f"model with est-compile")
    for key, typ in (("name", str), ("outputs", list), ("nodes", list)):
        if not isinstance(doc.get(key), typ):
            raise IRError("network", key, f"expected a {typ.__name__}, got {doc.get(key)!r}")
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        raise IRError("network", "meta", "expected an object")
    nodes = []
    for i, nd in enumerate(doc["nodes"]):
        name = nd.get("name") if isinstance(nd, dict) else None
        if not isinstance(name, str):
            raise IRError(f"nodes[{i}]", "name", "expected an object with a string 'name'")
        kind = nd.get("op")
        if kind not in KINDS:
            raise IRError(name, "op", f"unknown operation {kind!r}; known: {sorted(KINDS)}")
        inputs = nd.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
            raise IRError(name, "inputs", f"expected a list of node names, got {inputs!r}")
        params = nd.get("params")
        if not isinstance(params, dict):
            raise IRError(name, "params", f"expected an object, got {params!r}")
        cls = KINDS[kind]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in params and (kind, f.name) in ADDED_PARAMS:
                continue  # a build from before it: its default, what it was built as
            if f.name not in params:
                raise IRError(name, f.name, "missing")
            kwargs[f.name] = _param(hints[f.name], params[f.name], tensors, name, f.name)
        nodes.append(Node(name, cls(**kwargs), tuple(inputs)))
    if not all(isinstance(o, str) for o in doc["outputs"]):
        raise IRError("network", "outputs", "expected node names")
    return Graph(doc["name"], tuple(nodes), tuple(doc["outputs"]), meta).validate()


def load(folder: Path) -> Graph:
    """Read and validate the graph in ``folder/ir.json`` and ``folder/weights.npz``."""
    folder = Path(folder)
    try:
        doc = json.loads((folder / "ir.json").read_text())
    except FileNotFoundError:
        raise EstError(f"{folder / 'ir.json'}: no such file; is {folder} an est-compile "
                       f"build folder?") from None
    except (NotADirectoryError, IsADirectoryError):
        raise EstError(f"{folder}: not an est-compile build folder (a folder holding the file "
                       f"ir.json); give the folder est-compile wrote") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EstError(f"{folder / 'ir.json'}: not valid JSON ({e})") from None
    try:
        with np.load(folder / "weights.npz", allow_pickle=False) as npz:
            tensors = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise EstError(f"{folder / 'weights.npz'}: cannot read integer tensors "
                       f"({numpy_says(e)}); compile the model again") from None
    return from_doc(doc, tensors)


def read_json(folder: Path, name: str) -> dict:
    """The JSON object in the build file ``folder/name`` (``top.json``, ``report.json``), or
    an :class:`EstError` naming the file and saying to compile again."""
    path = Path(folder) / name
    again = f"compile the model again (est-compile MODEL -o {folder})"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise EstError(f"{path}: no such file; {again}") from None
    except OSError as e:
        raise EstError(f"{path}: cannot read it ({e.strerror}); {again}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EstError(f"{path}: not valid JSON; {again}") from None
    if not isinstance(doc, dict):
        raise EstError(f"{path}: expected a JSON object, got {type(doc).__name__}; {again}")
    return doc


class GraphBuilder:
    """Collects nodes in order for a front end: ``add(name, op, *inputs)`` returns the name."""

    def __init__(self):
        self.nodes: list[Node] = []

    def add(self, name: str, op: Op, *inputs: str) -> str:
        self.nodes.append(Node(name, op, tuple(inputs)))
        return name

    def build(self, name: str, outputs: tuple[str, ...], meta: dict | None = None,
              integer: bool = True) -> Graph:
        """The graph, validated (a front end's float graph, ``integer`` False: its wiring only)."""
        graph = Graph(name, tuple(self.nodes), tuple(outputs), dict(meta or {}))
        return graph.validate() if integer else graph.check_wiring()
