"""Per-stage costs of a compiled EST: synaptic operations, cycles, lower bounds, memory, logic.

Each row is one hardware stage of :class:`~est.hw.est_top.ESTTop` in bin order. The cycle
figures come from the components' latencies (docs in hw/); the whole design's cycles per bin
are measured in simulation (``measure_cycles``), and the stages' sum is close to it. The
logic figures are an estimate from a per-component cost model (counted LUT4s and flip-flops
of the datapaths, memories and registers, see :func:`est_stages`), calibrated against yosys
on the example ESTs; ``est-synth`` reports the real ones.
"""

from dataclasses import asdict, dataclass

import numpy as np

from est import EstError
from est.boards.spec import (
    Board,
    bridge_logic,
    est_memory_plan,
    logic_verdict,
    memory_cost,
    most_lanes,
    mux_luts,
)
from est.compiler.est_ir import LIF, Conv, ESTNetwork
from est.hw.attention import ssa_bits
from est.hw.est_top import weight_bits
from est.hw.synapse import ceil_div
from est.sim.golden import conv_acc_bits, sew_bits, tpu_acc_bits


@dataclass
class Stage:
    """One stage. ``synaptic_ops``: multiply-accumulates per bin (dense: every synapse of
    every lag counts); ``cycles``: the component's latency per bin; ``dense_bound``:
    ``ceil(synaptic_ops / lanes)`` (the depthwise TPU has ``1 + K_t`` multipliers per lane,
    so ``ceil(d / lanes)``); ``memory_bound``: weight bits read per bin over the bits
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


LUT_CALIBRATION = 1.25
FF_CALIBRATION = 1.3
"""The counted LUT4s and flip-flops times these factors match yosys' synth_ice40 on the two
example ESTs at lanes 1 (est_tiny, membranes in block RAM: 2624 LUT4 / 1889 FF measured;
est_small, membranes in logic: 10231 / 10373) to within about 25%: what the count misses is
control logic, stream registers and yosys' own memory mapping."""


def _ram_port_bits(board: Board) -> int:
    return max(width for _, width in board.bram_configs)


def est_stages(net: ESTNetwork, lanes: int, board: Board, state_in_logic: bool
               ) -> list[Stage]:
    """The stages of ``net`` compiled at ``lanes`` for ``board`` (membranes in logic or in
    block RAM as :func:`~est.boards.spec.est_memory_plan` chose), with the counted (not yet
    calibrated) LUT4s and flip-flops."""
    d, rows = net.d_model, []
    port = _ram_port_bits(board)

    def neurons(n: int, v_bits: int, spiking: bool) -> tuple[int, int, int]:
        """(LUTs, FFs, block RAMs) of a neuron array."""
        groups = ceil_div(n, lanes)
        luts = lanes * (6 if spiking else 4) * v_bits + 30
        ffs = n + 2 * ceil_div(groups, 2) + 4
        brams = 0
        if spiking:
            luts += lanes * v_bits * ceil_div(groups, 16)  # thresholds in logic
        if state_in_logic:
            luts += lanes * v_bits * mux_luts(groups)
            ffs += n * v_bits
        else:
            brams, luts_ram = memory_cost(groups, lanes * v_bits, True, board)
            luts += luts_ram
            ffs += 0 if brams else n * v_bits
        return luts, ffs, brams

    def conv(name: str, c: Conv, lif: LIF | None, x_bits: int, extra: int = 0,
             readout_bits: int = 0) -> None:
        k, n_out, n_in = c.weight.shape
        n_in += extra
        wb = max(weight_bits(c.weight), 2)
        acc = conv_acc_bits(c.weight, c.bias, x_bits)
        groups, inputs = ceil_div(n_out, lanes), k * n_in
        ops = inputs * n_out
        depth = groups * inputs
        w_brams, w_luts = memory_cost(depth, lanes * wb, False, board)
        product = wb if x_bits == 1 else wb * x_bits
        luts = (x_bits * mux_luts(inputs) + lanes * (product + 2 * acc) + w_luts
                + lanes * acc * ceil_div(groups, 16) + 40)
        ffs = (2 * k - 1) * n_in * x_bits + 2 * lanes * acc + 20
        v_bits = lif.v_bits if lif is not None else readout_bits
        n_luts, n_ffs, n_brams = neurons(n_out, v_bits, lif is not None)
        memory_bound = ceil_div(ops * wb, w_brams * port) if w_brams else 0
        rows.append(Stage(
            name, "conv+lif" if lif is not None else "conv+readout",
            f"{k}x{n_out}x{n_in}", ops, (groups - 1) * max(inputs, 2) + inputs + 4,
            ceil_div(ops, lanes),
            memory_bound,
            ops * wb + n_out * (acc + 2 * v_bits) + (k - 1) * n_in * x_bits,
            w_brams + n_brams, luts + n_luts, ffs + n_ffs))

    def vector(name: str, kind: str, n: int, bits: int, luts: int, ffs: int,
               cycles: int = 1, memory_bits: int = 0, brams: int = 0) -> None:
        rows.append(Stage(name, kind, f"{n}x{bits}b", 0, cycles, 0, 0, memory_bits, brams,
                          luts, ffs))

    cpg = 0
    if net.cpg_table is not None:
        p, cpg = net.cpg_table.shape
        brams, luts = memory_cost(p, cpg, False, board)
        vector("cpg", "rom", cpg, 1, luts + 20, 8 + cpg, 0, p * cpg, brams)
    conv("embed", net.embed, net.embed_lif, 1, cpg)
    s_bits = 1
    for i, b in enumerate(net.blocks):
        p = f"b{i}"
        if b.attention != "none":
            vector(f"{p}.mask", "lfsr", d, s_bits, lanes * 40 + d * s_bits,
                   32 + 2 * d * s_bits + 8, ceil_div(d, lanes) + 1)
            for n in "qkv":
                conv(f"{p}.{n}", getattr(b, n), getattr(b, f"{n}_lif"), s_bits)
            if b.attention == "sdsa":
                vector(f"{p}.attn", "sdsa", d, 1, d * ceil_div(b.window, 2) + d,
                       b.window * d + d)
            else:
                hd = d // b.heads
                out = ssa_bits(b.window, hd)
                a_luts, a_ffs, a_brams = neurons(d, b.attn_lif.v_bits, True)
                vector(f"{p}.attn", "ssa", d, out,
                       b.heads * b.window * 2 * hd + d * out * b.window // 2 + a_luts,
                       2 * b.window * d + d * out + a_ffs, 1 + ceil_div(d, lanes),
                       brams=a_brams)
            conv(f"{p}.proj", b.proj, b.proj_lif, 1)
            out = sew_bits(b.sew, s_bits) if b.sew != "none" else 1
            vector(f"{p}.res1", f"sew {b.sew}", d, out, d * out, 2 * d * out)
            s_bits = out
        if b.tpu is not None:
            t = b.tpu
            acc = tpu_acc_bits(t.w_in, t.w_rec, t.bias, s_bits)
            wb = max(weight_bits(np.concatenate([t.w_in[None], t.w_rec])), 2)
            k_t = t.w_rec.shape[0]
            groups = ceil_div(d, lanes)
            n_luts, n_ffs, n_brams = neurons(d, t.lif.v_bits, True)
            ops = d * (1 + k_t)
            rows.append(Stage(
                f"{p}.tpu", "tpu", f"{d}x(1+{k_t})", ops, groups + 2, groups, 0,
                ops * wb + d * (acc + 2 * t.lif.v_bits) + k_t * d, n_brams,
                lanes * (wb * s_bits + (k_t + 1) * acc + wb * (k_t + 1) * mux_luts(groups))
                + n_luts + 30, k_t * d + d * s_bits + lanes * acc + n_ffs))
            out = sew_bits(b.sew, s_bits) if b.sew != "none" else 1
            vector(f"{p}.res2", f"sew {b.sew}", d, out, d * out, 2 * d * out)
            s_bits = out
        conv(f"{p}.mlp1", b.mlp1, b.mlp1_lif, s_bits)
        conv(f"{p}.mlp2", b.mlp2, b.mlp2_lif, 1)
        out = sew_bits(b.sew, s_bits) if b.sew != "none" else 1
        vector(f"{p}.out", f"sew {b.sew}", d, out, d * out, 2 * d * out)
        s_bits = out
    conv("readout", net.readout, None, s_bits, readout_bits=net.readout_bits)
    in_bytes, out_bytes = ceil_div(net.n_in, 8), ceil_div(net.n_out * net.readout_bits, 8)
    rows.append(Stage("board I/O", "uart frames", f"{in_bytes}B in, {out_bytes + 7}B out",
                      0, 0, 0, 0, 0, 0, *bridge_logic(in_bytes, out_bytes)))
    return rows



def est_report(net: ESTNetwork, lanes: int, board: Board, state_in_logic: bool,
               measured_cycles: int | None = None) -> dict:
    """The per-stage table and totals (JSON-ready)."""
    stages = est_stages(net, lanes, board, state_in_logic)
    for s in stages:
        s.luts, s.ffs = round(s.luts * LUT_CALIBRATION), round(s.ffs * FF_CALIBRATION)
    total = {key: sum(getattr(s, key) for s in stages)
             for key in ("synaptic_ops", "dense_bound", "memory_bound", "memory_bits",
                         "block_rams", "luts", "ffs")}
    # Q, K and V run at once: the schedule's bound counts the largest of the three.
    for i, b in enumerate(net.blocks):
        if b.attention != "none":
            qkv = [s for s in stages if s.name in (f"b{i}.q", f"b{i}.k", f"b{i}.v")]
            for key in ("dense_bound", "memory_bound"):
                total[key] -= sum(getattr(s, key) for s in qkv) - max(getattr(s, key)
                                                                       for s in qkv)
    report = {"board": board.name, "lanes": lanes, "membranes": "logic" if state_in_logic
              else "block RAM", "stages": [asdict(s) for s in stages], "total": total,
              "cycles_per_bin": measured_cycles}
    report["logic_fit"] = logic_verdict_of(report, net, board)
    return report


def format_table(report: dict) -> str:
    """A readable table of :func:`est_report`."""
    head = (f"{'stage':<10} {'kind':<12} {'shape':<10} {'syn ops':>8} {'cycles':>7} "
            f"{'dense lb':>8} {'mem lb':>7} {'mem bits':>9} {'BRAM':>4} {'LUT~':>6} {'FF~':>6}")
    lines = [head, "-" * len(head)]
    for s in report["stages"] + [dict(report["total"], name="total", kind="", shape="",
                                      cycles=report["cycles_per_bin"] or 0)]:
        lines.append(f"{s['name']:<10} {s['kind']:<12} {s['shape']:<10} "
                     f"{s['synaptic_ops']:>8} {s['cycles']:>7} {s['dense_bound']:>8} "
                     f"{s['memory_bound']:>7} {s['memory_bits']:>9} {s['block_rams']:>4} "
                     f"{s['luts']:>6} {s['ffs']:>6}")
    lines.append(f"stage cycles: component latencies; total cycles: measured in simulation "
                 f"(Q, K and V run at once; lb = lower bound); LUT~/FF~: estimates for "
                 f"{report['board']}, membranes in {report['membranes']}")
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


def _advice(net: ESTNetwork, lanes: int, board: Board) -> str:
    tpu = any(b.tpu is not None for b in net.blocks)
    return ("use " + ("fewer lanes (--lanes), " if lanes > 1 else "")
            + f"a smaller d_model or mlp_hidden{' (or tpu = false)' if tpu else ''}, "
            + ("fewer blocks, " if len(net.blocks) > 1 else "") + "or a larger board"
            + (" (--board ulx3s-85f)" if board.name != "ulx3s-85f" else ""))


def logic_verdict_of(report: dict, net: ESTNetwork, board: Board) -> dict:
    """:func:`~est.boards.spec.logic_verdict` of an :func:`est_report` (its totals)."""
    lanes = report["lanes"]
    verdict = logic_verdict(logic_use(report["total"], board), board, "est",
                            f"the EST on {board.name} at lanes {lanes}",
                            _advice(net, lanes, board))
    if verdict["verdict"] == "over":
        worst = sorted(report["stages"], key=lambda s: -(s["luts"] + s["ffs"]))[:3]
        verdict["message"] += (" (largest stages, LUT4s + flip-flops: "
                               + ", ".join(f"{s['name']} {s['luts'] + s['ffs']}" for s in worst)
                               + ")")
    return verdict


def est_logic_verdict(net: ESTNetwork, lanes: int, board: Board) -> dict:
    """The fit check's logic verdict for ``net`` at ``lanes`` on ``board`` (membranes where
    :func:`~est.boards.spec.est_memory_plan` puts them; in logic when the weight ROMs alone do
    not fit the block RAMs)."""
    try:
        state_in_logic = est_memory_plan(net, lanes, board)[0]
    except EstError:
        state_in_logic = True
    return est_report(net, lanes, board, state_in_logic)["logic_fit"]


def fit_est(net: ESTNetwork, lanes: int, board: Board, strict: bool = False
            ) -> tuple[bool, dict]:
    """``(state_in_logic, report)`` of ``net`` at ``lanes`` on ``board``, or an
    :class:`EstError` naming the resource that is over, by how much, the largest stages and
    what would help. Logic is checked against the margin learned from measured designs
    (:func:`~est.boards.spec.logic_margin`): over ``refuse`` is an error, between ``warn`` and
    ``refuse`` (placement uncertain) only with ``strict``."""
    state_in_logic, _ = est_memory_plan(net, lanes, board)
    report = est_report(net, lanes, board, state_in_logic)
    verdict = report["logic_fit"]
    if verdict["verdict"] == "over" or (strict and verdict["verdict"] == "tight"):
        raise EstError(verdict["message"])
    return state_in_logic, report


def auto_lanes(net: ESTNetwork, board: Board) -> int:
    """The most lanes (no more than the widest stage needs) at which ``net`` fits ``board``
    (:func:`~est.boards.spec.most_lanes`): within the margin's ``warn`` when any lanes are,
    else within ``refuse`` (the compile table then says placement is uncertain)."""
    widest = max(net.d_model, net.n_out, *(b.mlp1.weight.shape[1] for b in net.blocks))
    try:
        return most_lanes(widest, lambda lanes: fit_est(net, lanes, board, strict=True))
    except EstError:
        return most_lanes(widest, lambda lanes: fit_est(net, lanes, board))
