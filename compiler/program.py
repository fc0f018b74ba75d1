"""The core backend's compiler: a graph as a program for the shared, event-driven core.

The core (:class:`est.hw.core.Core`) is one engine time-multiplexed over every operation of a
graph. It runs a *program*, a list of instructions, once per bin, on five memories the host
loads at run time (so another model that fits the same core needs no new synthesis):

- ``program``: the instructions, one word each (:meth:`CoreSpec.layout`);
- ``weights``: words of ``lanes`` weights of ``weight_bits`` (SPRAM on the iCE40 UP5K). A
  convolution's row for one input channel and lag is ``groups = ceil(n_out / lanes)`` words,
  lane ``l`` of word ``g`` the weight of output ``g * lanes + l``; rows in order lag-major,
  then input channel;
- ``thresholds`` and ``biases``: one word per neuron (a neuron array's thresholds; the bias of
  the convolution that feeds it), index ``nbase + j``;
- the core's own state, not loaded: ``membranes`` (one word per neuron, same index),
  ``activations`` (every vector a node hands on: ``ACT_BITS``-bit words, fields of 1, 2, 4, 8
  or 16 bits, a ring of ``2**k`` bins per node for the history its readers need) and the
  accumulators (``lanes`` currents per word, one word per group of the convolution running).

Each operation says what it becomes in its own module (``Op.emit``, docs/adding_a_block.md);
this module allocates the memories, orders the nodes (a convolution runs just before the
neuron array that reads its current, the two sharing the accumulators) and appends the
``out`` instructions that send the output and, with ``trace``, every traced tensor. The
instruction set, the memory layout and the cycles of every instruction are in docs/core.md;
:mod:`est.sim.core_model` runs a program in Python, cycle for cycle as the gateware does.
"""

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from est import EstError
from est.compiler.graph import Graph, Spec, read_json
from est.hw.synapse import ceil_div
from est.sim import golden
from est.sim.words import pack

OPCODES = {"in": 1, "conv": 2, "lif": 3, "readout": 4, "out_act": 5, "out_neuron": 6, "end": 7,
           "table": 8, "vec": 9}
"""The instructions (docs/core.md): 0 is never written."""
MAX_VALUE_BITS = 15
"""The widest input value a ``conv`` multiplies: a lane's product is a signed 16 x 16 multiply
(an iCE40 SB_MAC16 with its adder), so values stay below 2**15."""
VEC_OPS = {"add": 0, "and": 1, "iand": 2, "mask": 3, "sdsa": 4, "max": 5, "score": 6, "ssa": 7}
"""The per-channel operations of ``vec`` (docs/core.md); ``score`` and ``ssa`` only on a core
built with its SSA unit (``CoreSpec.ssa``)."""
MAX_PERIOD = 512
"""The most rows a ``table`` instruction reads (its ``period`` field); its phase accumulator,
``rows << Table.FRAC`` at most, must also fit a neuron word (``state_bits``)."""


FIELD_GROUPS = (("common", None), ("conv", "common"), ("dst", "common"),
                ("neuron", "dst"), ("vec", "dst"), ("table", "dst"))
"""The instruction word's field groups, each placed after the one it names (docs/core.md)."""
OP_GROUPS = {"in": ("common", "dst"), "conv": ("common", "conv"),
             "lif": ("common", "dst", "neuron"), "readout": ("common", "dst", "neuron"),
             "out_act": ("common",), "out_neuron": ("common", "dst"), "end": ("common",),
             "table": ("common", "dst", "table"), "vec": ("common", "dst", "vec")}
"""The field groups each instruction reads (the others may share its bits)."""


def field_groups(act: int, weight: int, groups: int, neuron: int, count: int,
                 osc: bool = False, osc_mult: bool = False) -> dict:
    """The fields of each group, (name, bits), for addresses of ``act`` activation, ``weight``
    weight, ``groups`` accumulator and ``neuron`` neuron bits, and counts (``n``) of ``count``
    bits. A vector operand is its ring's
    base, log2 of its slots (``_ring``), log2 of its words per slot (``_stride``) and log2 of
    its field bits (``_log2b``). ``osc``: a core with the oscillator unit, whose readouts
    also have ``rotate`` (an oscillator readout) and ``rot`` (its rotation shift); ``osc_mult``:
    and ``rmul``, the rotation's multiplier."""
    def vector(name):
        return [(name, act), (f"{name}_ring", 4), (f"{name}_stride", 4), (f"{name}_log2b", 3)]
    return {"common": [("op", 4), ("n", count), *vector("src")],
            "conv": [("kernel", 8), ("lag0", 1), ("shift", 3), ("depthwise", 1),
                     ("wbase", weight), ("groups", groups), ("lag_stride", 24),
                     ("word_stride", 16)],
            "dst": [*vector("dst"), ("nbase", neuron)],
            # the flags first: there the core placed in 29-40 logic cells fewer than after
            # reset_zero (nextpnr, 2026-12-04; the bits decoded beside other groups' differ)
            "neuron": [("to_bias", 1), ("no_reset", 1), ("leak", 4), ("leak_on", 1),
                       ("vbits", 6), ("reset_zero", 1),
                       *([("rotate", 1), ("rot", 4)] if osc else []),
                       *([("rmul", golden.MAX_ROTATE_MULT.bit_length())] if osc_mult else [])],
            "vec": [("sub", 3), ("win", 9), ("thr", 9), *vector("src2")],
            "table": [("period", MAX_PERIOD.bit_length())]}


@dataclass(frozen=True)
class CoreSpec:
    """What a core is built with: the sizes of its memories and datapaths. A program runs on
    a core when every region it needs fits (:func:`compile_program` says what is over)."""

    lanes: int = 8  # weights read and accumulated per cycle
    weight_bits: int = 8  # the field of one weight in a weight word (2, 4, 8 or 16)
    acc_bits: int = 32  # one accumulator (a current without its bias)
    state_bits: int = 24  # one membrane (16..32)
    param_bits: int | None = None  # one threshold or bias, two's complement (16..state_bits;
    # None: state_bits)
    weight_words: int = 16384  # weight memory depth (UP5K: 4 SPRAMs side by side, 64-bit words)
    act_words: int = 2048  # activation memory depth (ACT_BITS-bit words)
    src2_words: int | None = None  # of those, the words a second operand is read from (a
    # copy of the first ones; None: all act_words)
    neuron_words: int = 1024  # neurons (membranes, thresholds, biases)
    acc_words: int = 64  # accumulator words: the widest convolution's groups
    ssa: bool = False  # the SSA unit: vec score and ssa (SSA attention), 168 UP5K logic cells
    osc: bool = False  # the oscillator unit: readout's rotate (oscillator readouts)
    osc_mult: bool = False  # its multiplier: a rotation r 2^-m with r other than 1
    phase: bool = False  # the phase unit: a table's fractional advance (its threshold word)

    ACT_BITS: ClassVar[int] = 16
    MAX_RING: ClassVar[int] = 256  # bins of history one node's ring may hold
    BIN_BITS: ClassVar[int] = 16  # the bin counter (rings wrap with it)

    def __post_init__(self):
        if self.weight_bits not in (2, 4, 8, 16):
            raise EstError(f"core weight_bits must be 2, 4, 8 or 16, got {self.weight_bits}")
        if self.lanes < 1 or self.lanes & (self.lanes - 1):
            raise EstError(f"core lanes must be a power of two, got {self.lanes}")
        if not 16 <= self.state_bits <= 32:
            raise EstError(f"core state_bits must be 16..32 (a mask's LFSR state is two 16-bit "
                           f"neuron words), got {self.state_bits}")
        if self.src2_words is None:
            object.__setattr__(self, "src2_words", self.act_words)
        if self.param_bits is None:
            object.__setattr__(self, "param_bits", self.state_bits)
        if not 0 < self.src2_words <= self.act_words:
            raise EstError(f"core src2_words must be 1..act_words ({self.act_words}), got "
                           f"{self.src2_words}")
        if not 16 <= self.param_bits <= self.state_bits:
            raise EstError(f"core param_bits must be 16..state_bits ({self.state_bits}): a "
                           f"mask's LFSR seed is two 16-bit threshold words, got "
                           f"{self.param_bits}")

    @property
    def weight_word_bits(self) -> int:
        return self.lanes * self.weight_bits

    def layout(self) -> dict[str, tuple[int, int]]:
        """The fields of an instruction word: name -> (bit offset, bits). Every instruction
        has ``op``, ``n`` and the ``src`` vector; then either a convolution's fields or the
        ``dst`` vector and ``nbase`` followed by the neuron, ``vec`` or ``table`` fields
        (:data:`FIELD_GROUPS`): no instruction reads two groups that share bits."""
        groups = self.field_groups()
        out, ends = {}, {}
        for name, after in FIELD_GROUPS:
            pos = ends[after] if after else 0
            for field_name, bits in groups[name]:
                out[field_name] = (pos, bits)
                pos += bits
            ends[name] = pos
        return out

    def field_groups(self) -> dict:
        """The fields of each group of :data:`FIELD_GROUPS`: (name, bits)."""
        return field_groups(bits_for(self.act_words), bits_for(self.weight_words),
                            bits_for(2 * self.acc_words + 1), bits_for(self.neuron_words),
                            self.count_bits, self.osc, self.osc_mult)

    def fields_of(self, op: str) -> set[str]:
        """The fields instruction ``op`` reads."""
        groups = self.field_groups()
        return {name for group in OP_GROUPS[op] for name, _ in groups[group]}

    @property
    def count_bits(self) -> int:
        """Bits of an instruction's ``n`` and of the counters that run to it: the most
        channels of a vector (16 a word, at 1 bit a field) or neurons of a node."""
        return max(self.ACT_BITS * self.act_words, self.neuron_words).bit_length()

    @property
    def addr_bits(self) -> int:
        """Bits of a ``load`` word's address: the deepest memory's."""
        return bits_for(max(self.weight_words, self.act_words, self.neuron_words))

    @property
    def program_bits(self) -> int:
        return max(pos + bits for pos, bits in self.layout().values())

    @property
    def fetch_words(self) -> int:
        """Weight-memory words per instruction (the program is stored there, first)."""
        return ceil_div(self.program_bits, self.weight_word_bits)

    def as_dict(self) -> dict:
        """The spec as plain types; ``osc``, ``osc_mult`` and ``phase`` only when set, so that a
        core without the oscillator unit, its multiplier or the phase unit keeps the
        :func:`~est.boards.protocol.core_id` it had before the unit existed."""
        out = {k: getattr(self, k) for k in ("lanes", "weight_bits", "acc_bits", "state_bits",
                                             "param_bits",
                                             "weight_words", "act_words", "src2_words",
                                             "neuron_words", "acc_words", "ssa")}
        return {**out, **{k: True for k in ("osc", "osc_mult", "phase") if getattr(self, k)}}


def uses_ssa(graph: Graph) -> bool:
    """Whether ``graph`` has SSA attention, which only a core built with its SSA unit runs."""
    return any(n.op.KIND == "attention" and n.op.mode == "ssa" for n in graph.nodes)


def uses_osc(graph: Graph) -> bool:
    """Whether ``graph`` has an oscillator readout, which only a core built with its oscillator
    unit runs."""
    return any(n.op.KIND == "readout" and n.op.rotate_shift is not None for n in graph.nodes)


def uses_osc_mult(graph: Graph) -> bool:
    """Whether ``graph`` has an oscillator readout of a rotation ``r 2^-m`` with ``r`` other
    than 1, which only a core built with its oscillator unit's multiplier runs."""
    return any(n.op.KIND == "readout" and n.op.rotate_mult != 1 for n in graph.nodes)


def uses_phase(graph: Graph) -> bool:
    """Whether ``graph`` has a table of a fractional advance (not one row a bin) or start
    (not whole rows), which only a core built with its phase unit runs."""
    return any(n.op.KIND == "table" and n.op.fractional for n in graph.nodes)


def bits_for(depth: int) -> int:
    """Address bits of a memory of ``depth`` words."""
    return max(1, (depth - 1).bit_length())


def pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class Vector:
    """A node's output in the activation memory: a ring of ``slots`` bins (a power of two),
    each ``2**stride`` words from ``base``; ``n`` fields of ``2**log2b`` bits, values up to
    ``top``."""

    base: int
    slots: int
    stride: int
    log2b: int
    n: int
    top: int

    @property
    def words(self) -> int:
        return ceil_div(self.n, CoreSpec.ACT_BITS >> self.log2b)

    def operand(self, name: str) -> dict:
        """The instruction fields naming this vector as operand ``name`` (src, dst, src2)."""
        return {name: self.base, f"{name}_ring": self.slots.bit_length() - 1,
                f"{name}_stride": self.stride, f"{name}_log2b": self.log2b}

    def src(self) -> dict:
        return self.operand("src")

    def dst(self) -> dict:
        return self.operand("dst")

    def src2(self) -> dict:
        return self.operand("src2")


@dataclass(frozen=True)
class OutField:
    """One tensor the ``out`` instructions send each bin: ``words`` stream words from the
    activation memory (``act``: fields of ``2**log2b`` bits, ``n`` used) or from the membranes
    (``neuron``: one value of ``bits`` per word)."""

    tensor: str
    n: int
    bits: int
    signed: bool
    source: str  # "act" | "neuron"
    log2b: int = 0

    @property
    def words(self) -> int:
        return self.n if self.source == "neuron" else ceil_div(self.n, CoreSpec.ACT_BITS >>
                                                               self.log2b)


@dataclass
class Program:
    """A graph compiled for a core: the instructions, the loaded memories' images (``weights``:
    the weight memory, the program's words first, ``spec.fetch_words`` an instruction, then
    the weight rows), what the input words and the output words hold, and the regions of
    every node."""

    name: str
    spec: CoreSpec
    instructions: list[dict]
    weights: list[int]
    thresholds: list[int]
    biases: list[int]
    input: Vector
    outputs: list[OutField]
    n_out_fields: int  # the first ones are the network's output, the rest the trace
    constants: dict = field(default_factory=dict)  # activation word address -> loaded word
    regions: dict = field(default_factory=dict)
    owners: list = field(default_factory=list)  # per instruction: (graph node, fan-out)

    def words(self) -> list[int]:
        """The instruction words (``spec.layout()``)."""
        layout = self.spec.layout()
        names = {code: name for name, code in OPCODES.items()}
        out = []
        for ins in self.instructions:
            op = names[ins["op"]]
            allowed = self.spec.fields_of(op)
            word = 0
            for name, value in ins.items():
                if name not in allowed:
                    raise EstError(f"instruction {op} has no field {name}")
                pos, bits = layout[name]
                if not 0 <= value < (1 << bits):
                    raise EstError(f"instruction field {name} = {value} does not fit {bits} bits")
                word |= value << pos
            out.append(word)
        return out

    def input_words(self, x: np.ndarray) -> list[int]:
        """One bin's input vector as the words the core's ``i`` stream takes."""
        return vector_words(x, self.input)

    @property
    def output_word_count(self) -> int:
        """The 32-bit words the core sends a bin."""
        return sum(f.words for f in self.outputs)

    def input_word(self, x: np.ndarray) -> int:
        """One bin's input words as one integer, the first word lowest: what a BIN frame to a
        core top carries (16 bits a word)."""
        return sum(w << (CoreSpec.ACT_BITS * k) for k, w in enumerate(self.input_words(x)))

    def output_words(self, word: int) -> list[int]:
        """An OUTPUT frame's integer from a core top split into the core's 32-bit words."""
        return [(word >> (32 * k)) & 0xFFFFFFFF for k in range(self.output_word_count)]

    def listing(self) -> str:
        """The program as text: per instruction its address in the weight memory, the graph
        node it runs for, its opcode and its nonzero fields (docs/core.md names them)."""
        names = {code: name for name, code in OPCODES.items()}
        subs = {code: name for name, code in VEC_OPS.items()}
        lines = [f"# {self.name}: {len(self.instructions)} instructions of "
                 f"{self.spec.fetch_words} weight words, core {self.spec.as_dict()}"]
        for k, (ins, (node, _)) in enumerate(zip(self.instructions, self.owners, strict=True)):
            op = names[ins["op"]]
            if op == "vec":
                op = f"vec.{subs[ins['sub']]}"
            fields = " ".join(f"{key}={value}" for key, value in ins.items()
                              if key not in ("op", "sub") and value)
            lines.append(f"{k * self.spec.fetch_words:6d}  {node:<16} {op:<11} {fields}")
        return "\n".join(lines) + "\n"

    def usage(self) -> dict:
        """Words used of each loaded or allocated memory, against the core's sizes."""
        return {"weight_words": len(self.weights),
                "neuron_words": len(self.thresholds),
                "act_words": self.regions.get("act_words", 0),
                "src2_words": self.regions.get("src2_words", 0),
                "acc_words": self.regions.get("acc_words", 0)}


def vector_words(x: np.ndarray, vec: Vector) -> list[int]:
    """``x`` [n] in the activation memory's format: fields of ``2**log2b`` bits, field ``i``
    of word ``i // fields`` at bit ``(i % fields) << log2b``."""
    per = CoreSpec.ACT_BITS >> vec.log2b
    return [pack(x[w * per:(w + 1) * per], 1 << vec.log2b) for w in range(vec.words)]


class ProgramBuilder:
    """Passed to every ``Op.emit``: allocates the memories and collects the instructions."""

    def __init__(self, spec: CoreSpec, graph: Graph, low: dict[str, int] | None = None):
        self.spec, self.graph = spec, graph
        self.specs, self.tops = graph.specs(), graph.tops()
        self.instructions: list[dict] = []
        self.weights: list[int] = []
        self.thresholds: list[int] = []
        self.biases: list[int] = []
        self.constants: dict[int, int] = {}
        self.vectors: dict[str, Vector] = {}
        self.parts: dict[str, list[tuple[str, int]]] = {}  # a concat: (input, first channel)
        self.neurons: dict[str, tuple[int, int]] = {}  # node -> (nbase, n)
        # a vector stored with its channels spread out (SSA heads padded to a power of two):
        # node -> the stored channel of each of the node's channels
        self.spread: dict[str, np.ndarray] = {}
        self.pending: dict[str, tuple[list[dict], np.ndarray]] = {}
        # per convolution, the bounds of its outputs' partial sums (lowest, highest)
        self.sums: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # the vectors read as a second operand (``src2``), which must lie in the first
        # ``src2_words`` words (the copy the core reads them from), each with its ring's words:
        # the first pass finds them, the second allocates them first
        self.low = low or {}
        self.low_words = 0  # the low vectors allocated so far
        self.act_words = sum(self.low.values())  # the others follow them
        self.read_as_src2: dict[str, int] = {}
        self.acc_words = 0
        self.history = self._history()
        self.node = ""  # the node being emitted: it owns the instructions added
        self.owners: list[tuple[str, int]] = []

    def _history(self) -> dict[str, int]:
        """Per node, the bins of its output that it and its readers look back over (at least
        1); a concatenation passes its readers' needs on to its inputs."""
        need = {n.name: n.op.own_history() for n in self.graph.nodes}
        for n in self.graph.nodes:
            ins = [self.specs[i] for i in n.inputs]
            for i, bins in zip(n.inputs, n.op.history(ins), strict=True):
                need[i] = max(need[i], bins)
        for n in reversed(self.graph.nodes):
            if n.op.KIND == "concat":
                for i in n.inputs:
                    need[i] = max(need[i], need[n.name])
        return need

    def add(self, op: str, node: str | None = None, fan_out: int = 0, **fields) -> None:
        """Append an instruction, owned by ``node`` (default: the node being emitted);
        ``fan_out``: the outputs each input event of a ``conv`` reaches (for the report's
        synaptic events)."""
        self.instructions.append({"op": OPCODES[op], **fields})
        self.owners.append((node or self.node, fan_out))
        if "src2" in fields:
            name = next(n for n, v in self.vectors.items() if v.base == fields["src2"])
            vec = self.vectors[name]
            self.read_as_src2[name] = vec.slots << vec.stride

    def input_of(self, node: str, k: int = 0) -> str:
        return self.graph.node(node).inputs[k]

    def vector(self, name: str, spec: Spec, bins: int | None = None) -> Vector:
        """Allocate a ring in the activation memory for node ``name``'s output (``bins``: for
        a node's internal vector, its ring's bins; else what its readers need). A node's
        output is stored in fields as wide as its largest value needs (``Graph.tops``: SEW
        ADD sums of at most 7 in 4-bit fields, not in the 8 their 7-bit width would take)."""
        top = self.tops[name] if self.specs.get(name) == spec else (1 << spec.bits) - 1
        bits = max(1, top.bit_length())
        if spec.form != "vector" or spec.signed or bits > CoreSpec.ACT_BITS:
            raise EstError(f"node '{name}': the core keeps unsigned vectors of up to 16 bits in "
                           f"its activation memory, this one is {spec}")
        need = self.history[name] if bins is None else bins
        slots = pow2(need)
        if slots > CoreSpec.MAX_RING:
            raise EstError(f"node '{name}': its readers look back {need} bins, the core's "
                           f"rings hold at most {CoreSpec.MAX_RING}")
        log2b = (bits - 1).bit_length()
        words = ceil_div(spec.n, CoreSpec.ACT_BITS >> log2b)
        size = slots << (words - 1).bit_length()
        if name in self.low:  # read as a second operand: in the words below the others
            base, self.low_words = self.low_words, self.low_words + size
        else:
            base, self.act_words = self.act_words, self.act_words + size
        vec = Vector(base, slots, (words - 1).bit_length(), log2b, spec.n, top)
        self.vectors[name] = vec
        return vec

    def source(self, node: str) -> list[tuple[Vector, int]]:
        """The vectors a node's (first) input is stored as, each with its first channel: one,
        or a concatenation's inputs side by side."""
        name = self.input_of(node)
        if name in self.parts:
            return [(self.vectors[i], first) for i, first in self.parts[name]]
        if name not in self.vectors:
            raise EstError(f"node '{node}': the core keeps no vector of its input '{name}'")
        return [(self.vectors[name], 0)]

    def constant_rows(self, rows: np.ndarray, bits: int) -> Vector:
        """Store a constant table [P, n] of ``bits``-bit values in the activation memory
        (loaded with the model), each row in the words of a vector of ``Spec(n, bits)``
        (:meth:`vector`); returns its region as a ring of P slots (read by row, not by bin)."""
        log2b = (bits - 1).bit_length()
        words = ceil_div(rows.shape[1], CoreSpec.ACT_BITS >> log2b)
        stride = (words - 1).bit_length()
        vec = Vector(self.act_words, rows.shape[0], stride, log2b, rows.shape[1],
                     int(rows.max(initial=0)))
        for p, row in enumerate(rows):
            for w, word in enumerate(vector_words(row, vec)):
                self.constants[self.act_words + (p << stride) + w] = word
        self.act_words += rows.shape[0] << stride
        return vec

    def neuron_block(self, node: str, thresholds: np.ndarray, biases: np.ndarray,
                     v_bits: int, seed: bool = False) -> int:
        """Allocate ``node``'s neurons (membranes of ``v_bits``); returns their first index
        (``nbase``). With ``seed`` the thresholds are unsigned 16-bit words (a mask's LFSR
        seed, a table's advance), not values a membrane is compared with."""
        spec = self.spec
        if v_bits > spec.state_bits:
            raise EstError(f"node '{node}': its membranes ({v_bits} bits) do not fit the core's "
                           f"{spec.state_bits}-bit neuron words; compile for a core with "
                           f"state_bits >= {v_bits}")
        lo, hi = golden.signed_range(spec.param_bits)
        for name, values, low, high in (("thresholds", thresholds, *((0, 0xFFFF) if seed else
                                                                      (lo, hi))),
                                        ("biases", biases, lo, hi)):
            if values.size and not low <= values.min() <= values.max() <= high:
                raise EstError(f"node '{node}': its {name} ({values.min()}..{values.max()}) do "
                               f"not fit the core's {spec.param_bits}-bit threshold and bias "
                               f"words ({low}..{high}); compile for a board whose core has "
                               f"wider ones (the ECP5 boards' take 24 bits)")
        base = len(self.thresholds)
        self.thresholds += [int(v) for v in thresholds]
        self.biases += [int(v) for v in biases]
        self.neurons[node] = (base, len(thresholds))
        return base

    def weight_rows(self, planes: list[np.ndarray]) -> tuple[int, int]:
        """Store the weight ``planes`` (each [kernel, n_out, n_in]) as rows (lag-major, then
        input channel) of ``groups`` words each, a channel's rows of every plane one after the
        other; returns (first word, the rows of a channel: groups x planes)."""
        lanes, wb = self.spec.lanes, self.spec.weight_bits
        k, n_out, n_in = planes[0].shape
        groups = ceil_div(n_out, lanes)
        base = len(self.weights)
        padded = np.zeros((len(planes), k, groups * lanes, n_in), np.int64)
        padded[:, :, :n_out] = planes
        lo, hi = golden.signed_range(wb)
        if padded.size and not lo <= padded.min() <= padded.max() <= hi:
            raise EstError(f"weights {padded.min()}..{padded.max()} do not fit the core's "
                           f"{wb}-bit fields")
        for lag in range(k):
            for i in range(n_in):
                for plane in padded:
                    for g in range(groups):
                        self.weights.append(pack(plane[lag, g * lanes:(g + 1) * lanes, i], wb))
        self.acc_words = max(self.acc_words, groups)
        return base, groups * len(planes)

    def diagonal_rows(self, planes: list[np.ndarray]) -> int:
        """Store the diagonals of the weight ``planes`` (each [kernel, d, d]) as one word per
        lag, channel and plane, channel ``i``'s weight in lane ``i mod lanes``; returns the first
        word."""
        lanes, wb = self.spec.lanes, self.spec.weight_bits
        base = len(self.weights)
        for lag in range(planes[0].shape[0]):
            for i in range(planes[0].shape[1]):
                for plane in planes:
                    word = np.zeros(lanes, np.int64)
                    word[i % lanes] = plane[lag, i, i]
                    self.weights.append(pack(word, wb))
        self.acc_words = max(self.acc_words, ceil_div(planes[0].shape[1], lanes))
        return base

    def convolution(self, node: str, weight: np.ndarray, parts: list[tuple[Vector, int]],
                    lag0: int = 0, depthwise: bool = False, adds_to: str | None = None
                    ) -> list[dict]:
        """The ``conv`` instructions of ``weight`` [kernel, n_out, n_in] over the input vectors
        ``parts`` (each with its first channel), lags ``lag0`` up: one per part. A weight of
        ``need`` bits, wider than the core's ``weight_bits`` fields, is split in two planes
        ``w = lo + hi * 2**s``, ``s = need - weight_bits``: ``lo`` the unsigned low ``s`` bits,
        ``hi`` the signed rest (``weight_bits`` bits); an input channel's rows are its low
        plane's, then its high plane's, whose values are shifted left by ``s`` (the ``shift``
        field) before the multiply, so they may have ``MAX_VALUE_BITS - s`` bits: one scan of
        the input reads both. The input's values are bounded by what they can be
        (:meth:`~est.compiler.graph.Graph.tops`: a sum of SEW ADDs grows by one a join, not by
        a bit), and so are the sums the accumulators must hold. ``depthwise``: ``weight`` is
        diagonal (input i feeds output i only) and each row is one word, added into input i's
        accumulator word. ``adds_to``: the convolution whose sums these are added to in the
        accumulators (its bounds are the start of these, and the accumulators must hold
        both)."""
        from est.compiler.ops.conv import weight_bits

        wb = self.spec.weight_bits
        need = weight_bits(weight)
        if need > 2 * wb - 1:
            raise EstError(f"node '{node}': its weights need {need} bits, the core takes at "
                           f"most {2 * wb - 1} (two planes of its {wb}-bit fields); use a core "
                           f"with wider weights or quantize to fewer bits (--weight-bits)")
        planes, shift = [weight], max(0, need - wb)
        if shift:  # lo < 2**shift fits a signed field: shift <= wb - 1
            lo = weight % (1 << shift)
            planes = [lo, (weight - lo) >> shift]
        # each output's partial sums lie between the sums of its negative and of its positive
        # products, whatever order the events come in
        low = high = np.zeros(weight.shape[1], np.int64)
        if adds_to is not None:
            low, high = self.sums[adds_to]
        out = []
        for vec, first in parts:
            if vec.top.bit_length() > MAX_VALUE_BITS - shift:
                planes = (f"; its {need}-bit weights take two planes of the core's {wb}-bit "
                          f"fields and the high plane's values are shifted by {shift} bits"
                          if shift else "")
                raise EstError(f"node '{node}': its input's values reach {vec.top} "
                               f"({vec.top.bit_length()} bits), the core multiplies values of "
                               f"at most {MAX_VALUE_BITS - shift} bits{planes}; quantize to "
                               f"fewer weight bits (--weight-bits) or compile with "
                               f"--backend dataflow")
            x_max = vec.top  # the largest value the input takes (Graph.tops)
            per = CoreSpec.ACT_BITS >> vec.log2b
            ws = [plane[:, :, first:first + vec.n] for plane in planes]
            for p, w in enumerate(ws):
                low = low + (np.minimum(w, 0).sum(axis=(0, 2)) * x_max << (p * shift))
                high = high + (np.maximum(w, 0).sum(axis=(0, 2)) * x_max << (p * shift))
            if depthwise:
                assert len(parts) == 1 and ws[0].shape[1] == ws[0].shape[2]
                wbase, groups = self.diagonal_rows(ws), len(ws)
            else:
                wbase, groups = self.weight_rows(ws)
            out.append({"fan_out": 1 if depthwise else ws[0].shape[1],
                        "n": vec.words, "kernel": ws[0].shape[0], "lag0": lag0, "shift": shift,
                        "depthwise": int(depthwise), "wbase": wbase, "groups": groups,
                        "lag_stride": vec.n * groups, "word_stride": per * groups,
                        **vec.src()})
        self.sums[node] = low, high
        acc = golden.signed_bits(int(low.min()), int(high.max()))
        if acc > self.spec.acc_bits:
            raise EstError(f"node '{node}': its sums need {acc} bits (every input at its "
                           f"largest value), the core's accumulators hold "
                           f"{self.spec.acc_bits}; use a core with wider accumulators "
                           f"(est-compile: another --board), fewer weight bits (--weight-bits) "
                           f"or --backend dataflow")
        return out

    def current(self, node: str, instructions: list[dict], bias: np.ndarray) -> None:
        """A convolution's instructions and bias, held until the neuron array that reads its
        current is emitted (:meth:`take_current`)."""
        self.pending[node] = (instructions, bias)

    def delayed_reset(self, node: str, thresholds: np.ndarray, spikes: Vector) -> None:
        """A ``subtract_delayed`` array's reset: ``-threshold[j]`` added into neuron ``j``'s
        current where it spiked the bin before (a depthwise ``conv`` of its own spikes at lag
        1), so the neuron instruction keeps the membrane (``no_reset``) and the threshold is
        subtracted after the leak, as semantics.md 2.2 says. Emitted after the convolution
        the array reads (:meth:`take_current`), whose sums it extends. A threshold wider than
        the core's weights (two planes) is refused by node."""
        from est.compiler.ops.conv import weight_bits

        n = len(thresholds)
        weight = -np.asarray(thresholds, np.int64)[None, :, None] * np.eye(n, dtype=np.int64)
        need, most = weight_bits(weight), 2 * self.spec.weight_bits - 1
        if need > most:
            raise EstError(f"node '{node}': the core does not run a delayed reset "
                           f"(subtract_delayed) whose thresholds need {need} bits: it subtracts "
                           f"them through its weights, at most {most} bits; quantize to fewer "
                           f"bits (--weight-bits) or compile with --backend dataflow")
        for fields in self.convolution(node, weight, [(spikes, 0)], lag0=1, depthwise=True,
                                       adds_to=self.input_of(node)):
            self.add("conv", **fields)

    def vector_current(self, node: str) -> np.ndarray:
        """Emit the current of a neuron array ``node`` that reads a vector (SSA's counts): a
        depthwise ``conv`` of the vector with weights 1 (the values themselves into the
        accumulators), or, for a vector stored spread out (:meth:`spread_copy`), a ``conv``
        that gathers its channels; returns its bias, zero."""
        name = self.input_of(node)
        n = self.specs[name].n
        stored = self.spread.get(name)
        if stored is None:
            weight = np.eye(n, dtype=np.int64)[None]
        else:
            weight = np.zeros((1, n, self.vectors[name].n), np.int64)
            weight[0, np.arange(n), stored] = 1
        for fields in self.convolution(name, weight, self.source(node),
                                       depthwise=stored is None):
            self.add("conv", **fields)
        return np.zeros(n, np.int64)

    def spread_copy(self, name: str, vec: Vector, stored: np.ndarray, n: int,
                    bins: int) -> Vector:
        """A copy of the spike vector ``vec`` whose channel ``c`` is channel ``stored[c]`` of a
        vector of ``n`` (the others 0), kept ``bins`` bins: a ``conv`` of 0/1 weights and a
        ``lif`` that passes each current on as its spike (threshold 1, leak shift 0, reset to
        zero, 2-bit membranes). Its neurons are a block of their own, not traced."""
        weight = np.zeros((1, n, vec.n), np.int64)
        weight[0, stored, np.arange(vec.n)] = 1
        for fields in self.convolution(name, weight, [(vec, 0)]):
            self.add("conv", **fields)
        out = self.vector(name, Spec(n, 1), bins=bins)
        nbase = self.neuron_block(name, np.ones(n, np.int64), np.zeros(n, np.int64), 2)
        self.add("lif", n=n, nbase=nbase, **out.dst(), **neuron_fields(name, 0, 2, "zero"))
        return out

    def take_current(self, node: str) -> np.ndarray:
        """Emit the instructions of the convolution ``node`` reads (they run just before
        ``node``, into the accumulators); returns the convolution's bias."""
        conv = self.input_of(node)
        instructions, bias = self.pending.pop(conv)
        for fields in instructions:
            self.add("conv", conv, **fields)
        return bias


def build_program(build) -> Program:
    """The program of an ``est-compile --backend core`` build folder: its graph (``ir.json``)
    compiled again for the core its ``top.json`` names (the compiler is deterministic)."""

    from est.compiler.graph import load

    top = read_json(build, "top.json")
    if top.get("backend") != "core":
        raise EstError(f"{build}: a dataflow build; compile it with --backend core to run it "
                       f"on the core")
    return compile_program(load(build), CoreSpec(**top["core"]), top["trace"])


def check_fit(prog: Program) -> list[str]:
    """What of ``prog`` is over its core's sizes, one line each (empty: it fits)."""
    spec, use = prog.spec, prog.usage()
    over = [f"{key.replace('_', ' ')}: needs {use[key]}, the core has {getattr(spec, key)}"
            for key in ("weight_words", "neuron_words", "act_words", "src2_words",
                        "acc_words") if use[key] > getattr(spec, key)]
    return over


def compile_program(graph: Graph, spec: CoreSpec | None = None, trace: bool = True) -> Program:
    """``graph`` as a program for a core of ``spec`` (default :class:`CoreSpec`). With
    ``trace``, the output words carry every tensor the core keeps, after the output. An
    operation the core does not run, or a model over the core's sizes, raises
    :class:`~est.EstError` naming the node or the memory."""
    spec = spec or CoreSpec()
    b = _emit(ProgramBuilder(spec, graph))
    if b.read_as_src2:  # again, with the vectors read as second operands first
        b = _emit(ProgramBuilder(spec, graph, b.read_as_src2))
    b.node = "out"
    out_fields = _out_fields(graph, b, trace)
    for f in out_fields:
        node = f.tensor.split("/")[0]
        if f.source == "act":
            b.add("out_act", n=f.words, **b.vectors[node].src())
        else:
            b.add("out_neuron", n=f.n,
                  nbase=b.neurons[f.tensor if f.tensor in b.neurons else node][0])
    b.add("end")
    # the program goes first in the weight memory, fetch_words words an instruction
    offset = len(b.instructions) * spec.fetch_words
    for ins in b.instructions:
        if ins["op"] == OPCODES["conv"]:
            ins["wbase"] += offset
    input_vec = b.vectors[graph.nodes[0].name]
    prog = Program(graph.name, spec, b.instructions, [], b.thresholds, b.biases,
                   input_vec, out_fields, len(graph.outputs), b.constants,
                   {"act_words": b.act_words, "src2_words": b.low_words,
                    "acc_words": b.acc_words,
                    "vectors": b.vectors, "neurons": b.neurons}, b.owners)
    prog.weights = [0] * offset + b.weights
    over = check_fit(prog)
    if over:
        raise EstError(f"the model does not fit the core ({'; '.join(over)}): use a core "
                       f"with larger memories (est-compile: another --board), or a smaller "
                       f"model")
    mask = (1 << spec.weight_word_bits) - 1
    prog.weights[:offset] = [(word >> (k * spec.weight_word_bits)) & mask
                             for word in prog.words() for k in range(spec.fetch_words)]
    return prog


def _emit(b: ProgramBuilder) -> ProgramBuilder:
    """Every node's instructions, in graph order."""
    for node in b.graph.nodes:
        b.node = node.name
        node.op.emit(b, node.name, [b.specs[i] for i in node.inputs])
    return b


def _out_fields(graph: Graph, b: ProgramBuilder, trace: bool) -> list[OutField]:
    """The tensors the ``out`` instructions send: the outputs' values, then with ``trace``
    every other tensor the core keeps (not the input, not a convolution's current)."""
    fields = graph.fields()
    heads = [next(f for f in fields if f.name.startswith(f"{o}/")) for o in graph.outputs]
    rest = [f for f in fields if trace and f.hw and f not in heads]
    out = []
    for f in heads + rest:
        node, tensor = f.name.split("/")
        if f.name in b.neurons or node in b.neurons and (f.bits > 1 or f.signed):
            out.append(OutField(f.name, f.n, f.bits, f.signed, "neuron"))
        elif node in b.vectors:
            out.append(OutField(f.name, f.n, f.bits, f.signed, "act", b.vectors[node].log2b))
        else:
            raise EstError(f"tensor {f.name}: the core keeps no copy of it to trace")
    return out


def decode_words(prog: Program, words: list[int]) -> dict[str, np.ndarray]:
    """One bin's output words as its tensors (``prog.outputs``)."""
    from est.sim.words import unpack

    out, pos = {}, 0
    for f in prog.outputs:
        chunk = words[pos:pos + f.words]
        pos += f.words
        if f.source == "neuron":
            out[f.tensor] = np.array([unpack(w, 1, prog.spec.state_bits, True)[0]
                                      for w in chunk], np.int64)
        else:
            per = CoreSpec.ACT_BITS >> f.log2b
            vals = np.concatenate([unpack(w, per, 1 << f.log2b) for w in chunk])
            out[f.tensor] = vals[:f.n]
    if pos != len(words):
        raise EstError(f"expected {pos} output words a bin, got {len(words)}")
    return out


def decode_trace(prog: Program, words: list[list[int]], meta: dict):
    """Every bin's output words (a list a bin) as a trace of the tensors they hold."""
    from est.sim.trace import Trace

    arrays = {f.tensor: np.zeros((len(words), f.n), np.int64) for f in prog.outputs}
    for t, bin_words in enumerate(words):
        for name, value in decode_words(prog, [int(w) for w in bin_words]).items():
            arrays[name][t] = value
    return Trace(arrays, {"network": prog.name, "bins": len(words), **meta})


MAX_LEAK = 15
"""The largest leak shift the core's neuron datapath takes (a 4-bit field)."""


def neuron_fields(node: str, leak_shift: int | None, v_bits: int,
                  reset: str = "subtract", to_bias: bool = False) -> dict:
    """The fields of a neuron instruction (``lif`` or ``readout``) of ``node``: ``reset_zero``
    for a reset to zero, ``no_reset`` for ``subtract_delayed`` (the membrane stored unreset;
    the threshold is subtracted in the next bin through the accumulators:
    :meth:`ProgramBuilder.delayed_reset`), neither for a subtraction in the same bin;
    ``to_bias``: a readout whose values are also written as the biases of the next neuron
    block (a synaptic current). A leak shift over :data:`MAX_LEAK` is refused by node."""
    if leak_shift is not None and leak_shift > MAX_LEAK:
        raise EstError(f"node '{node}': the core leaks by shifts of at most {MAX_LEAK} bits, "
                       f"not {leak_shift} (a time constant of 2**{leak_shift} bins); compile "
                       f"with --backend dataflow")
    return {"leak": leak_shift or 0, "leak_on": int(leak_shift is not None), "vbits": v_bits,
            "reset_zero": int(reset == "zero"), "no_reset": int(reset == "subtract_delayed"),
            "to_bias": int(to_bias)}
