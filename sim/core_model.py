"""The core backend in Python: a program (:mod:`est.compiler.program`) run instruction by
instruction on the core's memories, with the cycles the gateware (:class:`est.hw.core.Core`)
takes for each, when its streams never stall.

This is the core's reference at the level of its memories and cycles: its tensors equal the
golden interpreter's (the integer contract is docs/semantics.md, not this file), and its cycle
counts equal the gateware's in simulation (tests/test_core_model.py, tests/test_core.py). It
runs models too large to simulate as gateware (a 784-128-10 network over 100 steps) for the
benchmarks. The instruction set and the cycle formulas are in docs/core.md.
"""

from dataclasses import dataclass

import numpy as np

from est.compiler.ops.table import Table
from est.compiler.program import OPCODES, VEC_OPS, CoreSpec, Program, decode_trace
from est.sim.golden import leak, lfsr_step, signed_range
from est.sim.trace import Trace
from est.sim.words import unpack

NAMES = {code: name for name, code in OPCODES.items()}
VEC_NAMES = {code: name for name, code in VEC_OPS.items()}
FRAC = Table.FRAC  # a table's phase accumulator: fraction bits below its row


def fetch_cycles(spec: CoreSpec) -> int:
    """Cycles of every instruction before its body: read its words from the weight memory,
    one a cycle (the first presented in the last cycle of the instruction before), the last
    one decoded as it arrives."""
    return spec.fetch_words


@dataclass
class CoreRun:
    """The tensors sent by the ``out`` instructions (``[bins, n]`` each), the output words of
    every bin, the cycles of every bin, the cycles per instruction kind summed over the run,
    the input events (nonzero input values a ``conv`` reads), the weight words read, and per
    graph node and bin (:data:`PER_NODE` counters, ``[bins]`` arrays): cycles, events,
    synaptic events (events times their fan-out) and weight words read."""

    trace: Trace
    words: list[list[int]]
    cycles: list[int]
    by_op: dict
    per_node: dict

    @property
    def events(self) -> int:
        return int(sum(c["events"].sum() for c in self.per_node.values()))

    @property
    def weight_reads(self) -> int:
        return int(sum(c["weight_reads"].sum() for c in self.per_node.values()))


PER_NODE = ("cycles", "events", "synaptic_events", "weight_reads")


def decode(prog: Program) -> list[dict]:
    """The instruction words back as fields (the core reads the words, so the model does)."""
    out = []
    for word in prog.words():
        out.append({name: (word >> pos) & ((1 << bits) - 1)
                    for name, (pos, bits) in prog.spec.layout().items()})
    return out


def run(prog: Program, stimulus: np.ndarray) -> CoreRun:
    """Run ``prog`` on ``stimulus`` ([bins, n_in] counts) from a start of stream."""
    spec: CoreSpec = prog.spec
    code = decode(prog)
    lanes, wb, sb = spec.lanes, spec.weight_bits, spec.state_bits
    fetch = fetch_cycles(spec)
    weights = np.array([unpack(w, lanes, wb, signed=True) for w in prog.weights],
                       np.int64).reshape(-1, lanes)
    thresholds = np.array(prog.thresholds, np.int64)
    biases = np.array(prog.biases, np.int64)
    act = np.zeros(spec.act_words, np.int64)
    for addr, word in prog.constants.items():
        act[addr] = word
    membranes = np.zeros(spec.neuron_words, np.int64)
    acc = np.zeros((spec.acc_words, lanes), np.int64)
    t = age = 0
    words, cycles = [], []
    by_op = {name: 0 for name in OPCODES}
    act_bits = CoreSpec.ACT_BITS

    def slot(base, ring, stride, back=0):
        return base + ((((t - back) % (1 << CoreSpec.BIN_BITS)) & ((1 << ring) - 1)) << stride)

    def field(ins, which, c, back=0):
        """Field ``c`` of vector ``which`` ("src", "src2") at bin ``t - back``; 0 before the
        stream."""
        if back > age:
            return 0
        b = 1 << ins[f"{which}_log2b"]
        per = act_bits // b
        word = int(act[slot(ins[which], ins[f"{which}_ring"], ins[f"{which}_stride"], back)
                       + c // per])
        return (word >> ((c % per) * b)) & ((1 << b) - 1)

    stimulus = np.asarray(stimulus, np.int64)
    per_node = {node: {k: np.zeros(len(stimulus), np.int64) for k in PER_NODE}
                for node, _ in prog.owners}
    for bin_, x in enumerate(stimulus):
        out: list[int] = []
        clock = 0
        for ins, (owner, fan_out) in zip(code, prog.owners, strict=True):
            op = NAMES[ins["op"]]
            body = 0
            counts = per_node[owner]
            if op == "in":
                base = slot(ins["dst"], ins["dst_ring"], ins["dst_stride"])
                act[base:base + ins["n"]] = prog.input_words(x)
                body = ins["n"]
            elif op == "conv":
                b, groups = 1 << ins["src_log2b"], ins["groups"]
                per, fmask = act_bits // b, (1 << b) - 1
                body = 1
                # with a shift, a channel's rows are its low plane's, then its high plane's
                # (the values shifted), into the same accumulator words
                half = groups >> 1 if ins["shift"] else groups
                for k in range(ins["kernel"]):
                    lag = ins["lag0"] + k
                    body += 1
                    if age < lag:
                        continue
                    base = slot(ins["src"], ins["src_ring"], ins["src_stride"], lag)
                    for w in range(ins["n"]):
                        body += 1
                        word = int(act[base + w])
                        prev = None  # the accumulator word added into the cycle before
                        for f in range(per):
                            value = (word >> (f * b)) & fmask
                            if value:
                                row = (ins["wbase"] + k * ins["lag_stride"]
                                       + w * ins["word_stride"] + f * groups)
                                high = value << ins["shift"]
                                if ins["depthwise"]:  # every row into the channel's word
                                    into = (w * per + f) // lanes
                                    acc[into] += (value * weights[row:row + half].sum(0)
                                                  + high * weights[row + half:row + groups].sum(0))
                                    stalls = (into == prev) + groups - 1
                                    prev = into
                                else:
                                    acc[:half] += value * weights[row:row + half]
                                    acc[:groups - half] += high * weights[row + half:row + groups]
                                    # a stall: a row into the word the row before added into
                                    # (no bypass): between events, and between the planes,
                                    # when a plane is one word
                                    stalls = (prev == 0) + (half == 1 and groups == 2)
                                    prev = half - 1
                                body += groups + stalls
                                counts["events"][bin_] += 1
                                counts["synaptic_events"][bin_] += fan_out
                                counts["weight_reads"][bin_] += groups
            elif op in ("lif", "readout"):
                n, nb = ins["n"], ins["nbase"]
                current = acc.reshape(-1)[:n] + biases[nb:nb + n]
                v = membranes[nb:nb + n] if age else np.zeros(n, np.int64)
                k = ins["leak"] if ins["leak_on"] else None
                lo, hi = signed_range(ins["vbits"])
                if ins.get("rotate"):  # the oscillator unit: u, then w from the new u
                    h, m, c = n // 2, ins["rot"], ins.get("rmul", 1)
                    u = np.clip(leak(v[:h], k) + current[:h] - ((c * v[h:]) >> m), lo, hi)
                    w = np.clip(leak(v[h:], k) + current[h:] + ((c * u) >> m), lo, hi)
                    v1 = np.concatenate([u, w])
                else:
                    v1 = np.clip(leak(v, k) + current, lo, hi)
                if op == "lif":
                    theta = thresholds[nb:nb + n]
                    spikes = v1 >= theta
                    if not ins["no_reset"]:
                        v1 = np.where(spikes, 0 if ins["reset_zero"] else v1 - theta, v1)
                    base = slot(ins["dst"], ins["dst_ring"], ins["dst_stride"])
                    for w in range(-(-n // act_bits)):
                        bits = spikes[w * act_bits:(w + 1) * act_bits]
                        act[base + w] = sum(int(s) << i for i, s in enumerate(bits))
                membranes[nb:nb + n] = v1
                if ins["to_bias"]:  # a synaptic current: the next block's biases
                    biases[nb + n:nb + 2 * n] = v1
                acc[:-(-n // lanes)] = 0
                body = 2 * n + 4 if ins.get("rotate") else n + 2
            elif op == "table":  # the phase accumulator: row phase >> FRAC, then + advance
                nb = ins["nbase"]
                # the first bin: the starting fraction (the bias word; the rows are loaded
                # turned by the start's whole rows)
                start = int(biases[nb]) & ((1 << FRAC) - 1) if spec.phase else 0
                phase = int(membranes[nb]) if age else start
                src = ins["src"] + ((phase >> FRAC) << ins["src_stride"])
                dst = slot(ins["dst"], ins["dst_ring"], ins["dst_stride"])
                act[dst:dst + ins["n"]] = act[src:src + ins["n"]]
                total = phase + (int(thresholds[nb]) & 0xFFFF if spec.phase else 1 << FRAC)
                row = total >> FRAC
                if row >= ins["period"]:  # the wrap compares and subtracts the row part only
                    row -= ins["period"]
                membranes[nb] = row << FRAC | total & ((1 << FRAC) - 1)
                body = ins["n"] + 2
            elif op == "vec":
                sub, n, win = VEC_NAMES[ins["sub"]], ins["n"], ins["win"]
                nb = ins["nbase"]
                halves = membranes if age else thresholds  # the LFSR: low half, high half
                lfsr = (int(halves[nb]) & 0xFFFF | (int(halves[nb + 1]) & 0xFFFF) << 16
                        if sub == "mask" else 0)
                res = np.zeros(n * win if sub == "score" else n, np.int64)
                quiet = 0  # sdsa: channels without a query spike (their first two bins, then
                # their last: 3 cycles, not win)
                for c in range(n):
                    if sub == "score":  # per head c and bin back: popcount(Q AND K)
                        for tau in range(win):
                            both = field(ins, "src", c) & field(ins, "src2", c, tau)
                            res[c * win + tau] = bin(both).count("1")
                    elif sub == "ssa":  # the scores of channel c's head where V spiked
                        head = (c >> ins["thr"]) * win
                        res[c] = sum(field(ins, "src", head + tau)
                                     for tau in range(win) if field(ins, "src2", c, tau))
                    elif sub == "max":
                        res[c] = max(field(ins, "src", c, tau) for tau in range(win))
                    elif sub == "sdsa":
                        query = field(ins, "src", c)
                        quiet += query == 0
                        count = sum(field(ins, "src2", c, tau) for tau in range(win))
                        res[c] = query & int(count >= ins["thr"])
                    elif sub == "mask":
                        x_c = field(ins, "src", c)
                        if ins["thr"]:
                            for _ in range(8):
                                lfsr = lfsr_step(lfsr)
                            x_c = x_c if (lfsr & 0xFF) >= ins["thr"] else 0
                        res[c] = x_c
                    else:
                        a, b_ = field(ins, "src", c), field(ins, "src2", c)
                        res[c] = {"add": a + b_, "and": a & b_, "iand": (1 - a) & b_}[sub]
                if sub == "mask":
                    membranes[nb:nb + 2] = lfsr & 0xFFFF, lfsr >> 16
                dst = slot(ins["dst"], ins["dst_ring"], ins["dst_stride"])
                per = act_bits >> ins["dst_log2b"]
                width = 1 << ins["dst_log2b"]
                for w in range(-(-len(res) // per)):
                    act[dst + w] = sum(int(v) << (i * width)
                                       for i, v in enumerate(res[w * per:(w + 1) * per]))
                body = n * win + 2 + 2 * (sub == "mask")  # a mask reads and writes 2 halves
                body -= (win - min(win, 3)) * quiet
            elif op == "out_act":
                base = slot(ins["src"], ins["src_ring"], ins["src_stride"])
                out += [int(w) for w in act[base:base + ins["n"]]]
                body = ins["n"] + 1
            elif op == "out_neuron":
                nb = ins["nbase"]
                out += [int(v) & ((1 << sb) - 1) for v in membranes[nb:nb + ins["n"]]]
                body = ins["n"] + 1
            elif op == "end":  # back to word 0, whose fetch starts in its decode cycle
                # when the end is seen a word before it (words of an instruction: 2 or more)
                t, age = (t + 1) % (1 << CoreSpec.BIN_BITS), min(age + 1, 255)
                body = int(spec.fetch_words == 1)
            clock += fetch + body
            by_op[op] += fetch + body
            counts["cycles"][bin_] += fetch + body
        words.append(out)
        cycles.append(clock)
    return CoreRun(decode_trace(prog, words, {"source": "core_model"}), words, cycles, by_op,
                   per_node)


def cost_report(prog: Program, result: CoreRun) -> dict:
    """Per graph node (in program order) and for the whole bin, the mean and the largest
    over the run's bins of: cycles, input events, synaptic events, and the two lower bounds
    on the cycles of the synaptic work, the event bound (synaptic events / ``lanes`` weights
    read a cycle) and the memory bound (weight bits read / the weight memory's bits a cycle,
    one word a cycle). ``ratio``: cycles / the larger bound, over the whole run.
    ``by_instruction``: the mean cycles a bin of each kind of instruction (its fetch
    included), which says where the cycles above the bounds go."""
    lanes = prog.spec.lanes

    def row(counts: dict) -> dict:
        event_bound = -(-counts["synaptic_events"] // lanes)
        bound = np.maximum(event_bound, counts["weight_reads"])
        r = {}
        for key, values in (("cycles", counts["cycles"]), ("events", counts["events"]),
                            ("synaptic_events", counts["synaptic_events"]),
                            ("event_bound", event_bound),
                            ("memory_bound", counts["weight_reads"])):
            r[f"{key}_mean"] = float(np.mean(values))
            r[f"{key}_max"] = int(np.max(values))
        r["ratio"] = (float(counts["cycles"].sum() / bound.sum()) if bound.sum() else None)
        return r

    nodes = {node: row(counts) for node, counts in result.per_node.items()}
    total = {k: sum(c[k] for c in result.per_node.values()) for k in PER_NODE}
    bins = len(result.cycles)
    return {"lanes": lanes, "bins": bins, "nodes": nodes, "bin": row(total),
            "by_instruction": {op: cycles / bins for op, cycles in result.by_op.items()
                               if cycles}}


def format_cost_report(report: dict) -> str:
    """:func:`cost_report` as a table: one line per node, then the bin, then the bin's cycles
    by kind of instruction, the most first."""
    lines = [f"{'node':<18}{'cycles/bin':>12}{'max':>8}{'events':>9}{'synapses':>10}"
             f"{'event bnd':>11}{'mem bnd':>9}{'ratio':>7}"]
    for name, r in [*report["nodes"].items(), ("bin (total)", report["bin"])]:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        lines.append(f"{name:<18}{r['cycles_mean']:>12.1f}{r['cycles_max']:>8}"
                     f"{r['events_mean']:>9.1f}{r['synaptic_events_mean']:>10.1f}"
                     f"{r['event_bound_mean']:>11.1f}{r['memory_bound_mean']:>9.1f}{ratio:>7}")
    kinds = sorted(report["by_instruction"].items(), key=lambda kv: -kv[1])
    lines.append("cycles/bin by instruction (fetch included): "
                 + ", ".join(f"{op} {cycles:.1f}" for op, cycles in kinds))
    return "\n".join(lines)
