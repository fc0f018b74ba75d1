"""``make demo``: model.pt -> est-compile -> Verilator co-simulation -> est-compare -> iCEBreaker.

Runs the whole flow on the embedded default (a seeded, untrained 16-32-24-8 spiking MLP) and
prints a short summary. Exit status 0 only if the RTL matched the golden model everywhere and the
bitstream met the board clock.
"""

import argparse
import json
import time
from pathlib import Path

from est import EstError
from est.boards.cli import main as synth_main
from est.cli import entry
from est.compiler.cli import main as compile_main
from est.sim.cli import compare_cmd, sim
from est.sim.trace import Trace, compare
from est.sw.spiking_mlp import make_model, save_checkpoint


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def demo(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m est.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/demo"))
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    model, build = args.out / "model.pt", args.out / "spine"

    step("1/4 model.pt: seeded spiking MLP 16-32-24-8 (untrained; training arrives with the EST)")
    save_checkpoint(make_model(), model)
    print(f"wrote {model}")
    step("2/4 est-compile (every layer traced for the comparison)")
    if compile_main([str(model), "-o", str(build), "--lanes", "4", "--bins", "256", "--trace"]):
        return 1
    step(f"3/4 est-sim --sim {args.sim}, then est-compare")
    sim([str(build), "--sim", args.sim])
    compare_cmd([str(build / "golden.npz"), str(build / f"rtl_{args.sim}.npz")])
    result = compare(Trace.load(build / "golden.npz"), Trace.load(build / f"rtl_{args.sim}.npz"))
    step("4/4 est-synth --board icebreaker (yosys + nextpnr through YoWASP)")
    synth_status = synth_main([str(build), "--board", "icebreaker"])
    report = json.loads((build / "report.json").read_text())
    synth = json.loads((build / "synth_icebreaker" / "synth.json").read_text())
    util = synth["utilisation"]
    cycles, bound = report["cycles_per_bin"], report["dense_bound_cycles_per_bin"]
    print("\n== summary")
    print(f"  bins compared   {result.bins} ({result.values_compared} values, every layer, "
          f"{args.sim})")
    print(f"  mismatches      {result.mismatches}")
    print(f"  iCEBreaker      {util['ICESTORM_LC']['used']}/{util['ICESTORM_LC']['available']} "
          f"LC, {util['ICESTORM_RAM']['used']}/{util['ICESTORM_RAM']['available']} EBR, "
          f"Fmax {synth['fmax_mhz']:.1f} MHz (board clock {synth['board_clock_mhz']:.0f} MHz "
          f"{'met' if synth['board_clock_met'] else 'NOT met'})")
    print(f"  cycles per bin  {cycles} (dense bound {bound}, {cycles / bound:.2f}x); "
          f"{synth['latency_us_at_board_clock']} us/bin at the board clock")
    print(f"  bitstream       {synth['bitstream']}")
    print(f"  reports         {build / 'report.json'}, {build / 'synth_icebreaker/synth.json'}")
    print(f"  total           {time.perf_counter() - t0:.0f} s")
    if result.mismatches or synth_status:
        raise EstError("the demo did not pass: see the mismatches or timing above")
    return 0


if __name__ == "__main__":
    raise SystemExit(entry("est-demo", demo, None))
