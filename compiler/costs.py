"""Per-node costs of a graph on the dataflow backend: synaptic operations, cycles, lower
bounds, memory, block RAMs and logic, and the fit check built on them.

Each operation estimates its own components (``Op.cost``, one or more :class:`Stage` rows);
this module adds the board's I/O bridge, sums the rows, takes the lower bounds along the
graph's longest path, calibrates the counted logic against yosys, and decides where membranes
go and whether the design fits. The whole design's cycles per bin are measured in simulation
(:func:`est.hw.dataflow.measure_cycles`); ``est-synth`` reports the real resources.
"""

from dataclasses import asdict, dataclass

from est import EstError
from est.boards.spec import (
    Board,
    bridge_logic,
    logic_verdict,
    memory_cost,
    most_lanes,
    mux_luts,
)
from est.compiler.graph import Graph
from est.hw.synapse import ceil_div

ESTIMATOR = "dataflow"


@dataclass
class Stage:
    """One component. ``synaptic_ops``: multiply-accumulates per bin (dense: every synapse of
    every lag counts); ``cycles``: the component's latency per bin; ``dense_bound``:
    ``ceil(synaptic_ops / lanes)`` (the depthwise recurrence has ``1 + K`` multipliers per
    lane, so ``ceil(d / lanes)``); ``memory_bound``: weight bits read per bin over the bits
    per cycle of the block RAMs holding them (0 when the weights are in logic);
    ``memory_bits``: weights, biases, thresholds, membranes and histories."""

    name: str
    kind: str
    shape: str
    synaptic_ops: int
    cycles: int
    dense_bound: int
    memory_bound: int
    memory_bits: int
    block_rams: int
    luts: int
    ffs: int


@dataclass(frozen=True)
class Context:
    """What a cost depends on besides the operation: lanes, board, where membranes are."""

    lanes: int
    board: Board
    state_in_logic: bool

    def neurons(self, n: int, v_bits: int, spiking: bool) -> tuple[int, int, int]:
        """(LUTs, FFs, block RAMs) of a neuron array of ``n`` membranes of ``v_bits``."""
        groups = ceil_div(n, self.lanes)
        luts = self.lanes * (6 if spiking else 4) * v_bits + 30
        ffs = n + 2 * ceil_div(groups, 2) + 4
        brams = 0
        if spiking:
            luts += self.lanes * v_bits * ceil_div(groups, 16)  # thresholds in logic
        if self.state_in_logic:
            luts += self.lanes * v_bits * mux_luts(groups)
            ffs += n * v_bits
        else:
            brams, luts_ram = memory_cost(groups, self.lanes * v_bits, True, self.board)
            luts += luts_ram
            ffs += 0 if brams else n * v_bits
        return luts, ffs, brams

    def vector(self, name: str, kind: str, n: int, bits: int, luts: int, ffs: int,
               cycles: int = 1, memory_bits: int = 0, brams: int = 0) -> Stage:
        """A stage without synapses (neurons, mask, attention, join, table, ...)."""
        return Stage(name, kind, f"{n}x{bits}b", 0, cycles, 0, 0, memory_bits, brams, luts, ffs)


LUT_CALIBRATION = 1.25
FF_CALIBRATION = 1.3
"""The counted LUT4s and flip-flops times these factors match yosys' synth_ice40 on the two
example ESTs at lanes 1 (est_tiny, membranes in block RAM: 2624 LUT4 / 1889 FF measured;
est_small, membranes in logic: 10231 / 10373) to within about 25%: what the count misses is
control logic, stream registers and yosys' own memory mapping."""


def stages(graph: Graph, lanes: int, board: Board, state_in_logic: bool) -> list[Stage]:
    """Every node's rows in node order, then the board's I/O bridge (counted, not calibrated)."""
    ctx = Context(lanes, board, state_in_logic)
    specs = graph.specs()
    rows = [row for n in graph.nodes
            for row in n.op.cost(n.name, [specs[i] for i in n.inputs], ctx)]
    in_bytes = ceil_div(graph.n_in * specs[graph.nodes[0].name].bits, 8)
    out_bytes = ceil_div(sum(n * b for _, n, b, _ in graph.output_fields(trace=False)), 8)
    rows.append(Stage("board I/O", "uart frames", f"{in_bytes}B in, {out_bytes + 7}B out",
                      0, 0, 0, 0, 0, 0, *bridge_logic(in_bytes, out_bytes)))
    return rows


def longest_path(graph: Graph, rows: list[Stage], key: str) -> int:
    """The largest sum of ``key`` over the rows of the nodes on one path through the graph:
    the bound of a schedule in which parallel branches run at once."""
    own: dict[str, int] = {}
    for r in rows:
        own[r.name] = own.get(r.name, 0) + getattr(r, key)
    best: dict[str, int] = {}
    for n in graph.nodes:
        best[n.name] = own.get(n.name, 0) + max((best[i] for i in n.inputs), default=0)
    return max(best.values())


def cost_report(graph: Graph, lanes: int, board: Board, state_in_logic: bool,
                measured_cycles: int | None = None) -> dict:
    """The per-node table and totals (JSON-ready), with the logic fit check's verdict
    (:func:`~est.boards.spec.logic_verdict` of the totals; when over, it names the largest nodes
    and what would help)."""
    rows = stages(graph, lanes, board, state_in_logic)
    for s in rows:
        s.luts, s.ffs = round(s.luts * LUT_CALIBRATION), round(s.ffs * FF_CALIBRATION)
    total = {key: sum(getattr(s, key) for s in rows)
             for key in ("synaptic_ops", "memory_bits", "block_rams", "luts", "ffs")}
    for key in ("dense_bound", "memory_bound"):
        total[key] = longest_path(graph, rows, key)
    advice = ("use " + ("fewer lanes (--lanes), " if lanes > 1 else "")
              + "a smaller model (fewer or narrower layers: the largest nodes are named above), "
              + "or a larger board" + ("" if board.name == "ulx3s-85f" else " (--board ulx3s-85f)"))
    verdict = logic_verdict(logic_use(total, board), board, ESTIMATOR,
                            f"the model on {board.name} at lanes {lanes}", advice)
    if verdict["verdict"] == "over":
        worst = sorted(rows, key=lambda s: -(s.luts + s.ffs))[:3]
        verdict["message"] += (" (largest nodes, LUT4s + flip-flops: "
                               + ", ".join(f"{s.name} {s.luts + s.ffs}" for s in worst) + ")")
    return {"board": board.name, "lanes": lanes, "membranes": "logic" if state_in_logic
            else "block RAM", "stages": [asdict(s) for s in rows], "total": total,
            "cycles_per_bin": measured_cycles, "logic_fit": verdict}


def format_table(report: dict) -> str:
    """A readable table of :func:`cost_report`."""
    width = max(10, *(len(s["name"]) for s in report["stages"]))
    head = (f"{'node':<{width}} {'kind':<12} {'shape':<10} {'syn ops':>8} {'cycles':>7} "
            f"{'dense lb':>8} {'mem lb':>7} {'mem bits':>9} {'BRAM':>4} {'LUT~':>6} {'FF~':>6}")
    lines = [head, "-" * len(head)]
    for s in report["stages"] + [dict(report["total"], name="total", kind="", shape="",
                                      cycles=report["cycles_per_bin"] or 0)]:
        lines.append(f"{s['name']:<{width}} {s['kind']:<12} {s['shape']:<10} "
                     f"{s['synaptic_ops']:>8} {s['cycles']:>7} {s['dense_bound']:>8} "
                     f"{s['memory_bound']:>7} {s['memory_bits']:>9} {s['block_rams']:>4} "
                     f"{s['luts']:>6} {s['ffs']:>6}")
    lines.append(f"node cycles: component latencies; total cycles: measured in simulation; "
                 f"lb = lower bound along the longest path (parallel branches run at once); "
                 f"LUT~/FF~: estimates for {report['board']}, membranes in "
                 f"{report['membranes']}")
    if "logic_fit" in report:
        lines.append(format_fit(report["logic_fit"]))
    return "\n".join(lines)


def format_fit(fit: dict) -> str:
    """One line: the logic estimate against the margin, and where the margin comes from; a
    warning when placement is uncertain or the design is over the margin."""
    m = fit["margin"]
    verdict = {"fits": "fits", "tight": "WARNING: placement uncertain",
               "over": "OVER THE MARGIN: est-synth refuses it without --force"}[fit["verdict"]]
    return (f"fit check: logic ~{fit['estimate']} of {fit['available']} {fit['unit']} "
            f"({fit['estimate'] / fit['available']:.1%}) {verdict}; warned above "
            f"{fit['warn_above']} ({m['warn']:.1%}), refused above {fit['refuse_above']} "
            f"({m['refuse']:.1%}): largest placed {m['ceiling']:.1%}"
            f"{'' if m['ceiling_measured'] else ' (assumed)'}, nextpnr/estimate "
            f"{m['ratio_low']:.3f}..{m['ratio_high']:.3f} over {m['designs']} designs "
            f"({m['source']})")


def logic_use(total: dict, board: Board) -> int:
    """Logic cells (iCE40: a LUT4 and a flip-flop each, counted apart as few pair up) or
    LUT4s (ECP5: a flip-flop beside every LUT) of a report's totals."""
    return total["luts"] + total["ffs"] if board.family == "ice40" else max(total["luts"],
                                                                           total["ffs"])


def block_rams(graph: Graph, lanes: int, board: Board, state_in_logic: bool) -> dict[str, int]:
    """Block RAMs by node (nodes with none left out)."""
    rams: dict[str, int] = {}
    for s in stages(graph, lanes, board, state_in_logic):
        if s.block_rams:
            rams[s.name] = rams.get(s.name, 0) + s.block_rams
    return rams


def memory_plan(graph: Graph, lanes: int, board: Board,
                strict: bool = True) -> tuple[bool, dict[str, int]]:
    """Where the dataflow top keeps its membranes on ``board``: in block RAM when the weight
    ROMs and the membranes fit the board's block RAMs together (in flip-flops a membrane costs
    about ``v_bits`` logic cells), else in logic. Returns ``(state_in_logic, block RAMs by
    node)``; when even the weight ROMs alone do not fit, an :class:`EstError` (without
    ``strict``: membranes in logic)."""
    in_ram = block_rams(graph, lanes, board, state_in_logic=False)
    if sum(in_ram.values()) <= board.brams:
        return False, in_ram
    rams = block_rams(graph, lanes, board, state_in_logic=True)
    used = sum(rams.values())
    if strict and used > board.brams:
        worst = sorted(rams.items(), key=lambda kv: -kv[1])[:3]
        raise EstError(
            f"the model does not fit {board.name}: its weight ROMs need about {used} block "
            f"RAMs against {board.brams} ({used - board.brams} over); largest: "
            f"{', '.join(f'{n} {c}' for n, c in worst)}. Each convolution has its own ROM, so "
            f"fewer or narrower layers help (or fewer --weight-bits), as does another board "
            f"(--board ulx3s-85f); fewer lanes narrow the ROMs but deepen them.")
    return True, rams


def logic_fit(graph: Graph, lanes: int, board: Board) -> dict:
    """The fit check's logic verdict for ``graph`` at ``lanes`` on ``board`` (membranes where
    :func:`memory_plan` puts them; in logic when the weight ROMs alone do not fit)."""
    state_in_logic = memory_plan(graph, lanes, board, strict=False)[0]
    return cost_report(graph, lanes, board, state_in_logic)["logic_fit"]


def fit(graph: Graph, lanes: int, board: Board, strict: bool = False) -> tuple[bool, dict]:
    """``(state_in_logic, report)`` of ``graph`` at ``lanes`` on ``board``, or an
    :class:`EstError` saying what is over and what would help. Logic is checked against the
    margin of :func:`~est.boards.spec.logic_margin`: over ``refuse`` is an error, between
    ``warn`` and ``refuse`` (placement uncertain) only with ``strict``."""
    state_in_logic, _ = memory_plan(graph, lanes, board)
    report = cost_report(graph, lanes, board, state_in_logic)
    verdict = report["logic_fit"]
    if verdict["verdict"] == "over" or (strict and verdict["verdict"] == "tight"):
        raise EstError(verdict["message"])
    return state_in_logic, report


def widest(graph: Graph) -> int:
    """The most neurons of any neuron array (a node with ``v_bits``): more lanes do not help."""
    specs = graph.specs()
    return max(specs[n.name].n for n in graph.nodes if hasattr(n.op, "v_bits"))


def auto_lanes(graph: Graph, board: Board) -> int:
    """The most lanes (no more than :func:`widest`) at which ``graph`` fits ``board``
    (:func:`~est.boards.spec.most_lanes`): within the margin's ``warn`` when any lanes are,
    else within ``refuse`` (the compile table then says placement is uncertain)."""
    try:
        return most_lanes(widest(graph), lambda lanes: fit(graph, lanes, board, strict=True))
    except EstError:
        return most_lanes(widest(graph), lambda lanes: fit(graph, lanes, board))
