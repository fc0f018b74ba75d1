"""The example ESTs in gateware: writes bench/results/est_hw.json.

For each model and lanes 1, 2, 4, 8, 16: cycles per bin of the dataflow top
(:func:`est.hw.dataflow.measure_cycles`: amaranth.sim, trace off) against the lower bounds of
its schedule from the per-node cost report (:func:`est.compiler.costs.cost_report`, membranes
where :func:`est.compiler.costs.memory_plan` puts them on the model's board): nodes run one
after another except parallel branches (Q, K and V), so each bound is the sum along the
graph's longest path; the dense bound of a node is ``ceil(synaptic ops / lanes)``, the memory
bound its weight bits over the block-RAM bits per cycle. With ``--synth``, also
synthesizes est_tiny_dataflow for the iCEBreaker (lanes 1) and est_small for the ULX3S-85F
(lanes 4) and records utilisation, Fmax, latency and the logic estimate next to the measured
figures (without ``--synth``, the synthesis entries already in ``--out`` of the same checkpoint
are kept). Models: examples/est_tiny.pt, est_small as the example was trained on 2026-12-03
(``tests/data/est_small_dataflow.pt``: today's example has slow readouts, several outputs the
dataflow top does not drive), and ``tests/data/est_tiny_dataflow.pt``, est_tiny's shape as it
was trained before 2026-12-02 (spike inputs, a one-bin readout), the trained EST that fits an
iCEBreaker as a dataflow top (examples/est_tiny.pt, trained with est-train's recipe, does
not: its input path into a leaky readout is over the logic).

    .venv/bin/python bench/bench_est_hw.py [--synth]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from est import EstError
from est.boards.spec import get_board
from est.compiler.cli import main as compile_main
from est.compiler.costs import cost_report, memory_plan
from est.compiler.graph import load
from est.hw.dataflow import measure_cycles

MODELS = {"est_tiny_dataflow": ("tests/data/est_tiny_dataflow.pt", "icebreaker", 1),
          "est_tiny": ("examples/est_tiny.pt", "ulx3s-85f", None),
          "est_small": ("tests/data/est_small_dataflow.pt", "ulx3s-85f", 4)}
"""name -> (checkpoint, board, lanes of the synthesized design: None is not synthesized)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/est_hw.json"))
    parser.add_argument("--synth", action="store_true")
    args = parser.parse_args()
    before = json.loads(args.out.read_text()) if args.out.exists() else {}
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, board_name, synth_lanes) in MODELS.items():
            board = get_board(board_name)
            build = Path(tmp) / name
            t0 = time.perf_counter()
            assert compile_main([path, "-o", str(build), "--bins", "4", "--backend", "dataflow",
                                 "--lanes", str(synth_lanes or 1), "--board", board_name]) == 0
            entry = {"model": path, "board": board_name,
                     "compile_seconds": round(time.perf_counter() - t0, 2), "lanes": {}}
            graph = load(build)
            for lanes in (1, 2, 4, 8, 16):
                cycles = measure_cycles(graph, lanes)
                try:
                    in_logic = memory_plan(graph, lanes, board)[0]
                except EstError:  # no fit on this board: the bounds are still defined
                    in_logic = True
                total = cost_report(graph, lanes, board, in_logic, cycles)["total"]
                bound = max(total["dense_bound"], total["memory_bound"])
                entry["lanes"][lanes] = {
                    "cycles_per_bin": cycles, "dense_bound": total["dense_bound"],
                    "memory_bound": total["memory_bound"], "ratio": round(cycles / bound, 3),
                    "luts_estimate": total["luts"], "ffs_estimate": total["ffs"],
                    "block_rams_estimate": total["block_rams"]}
                print(f"{name} lanes {lanes:>2}: {cycles:>6} cycles/bin, dense bound "
                      f"{total['dense_bound']:>6}, memory bound {total['memory_bound']:>5} "
                      f"({cycles / bound:.2f}x)", flush=True)
            entry["synaptic_ops_per_bin"] = total["synaptic_ops"]
            if args.synth and synth_lanes:
                from est.boards.synth import synthesize

                out = Path(tmp) / f"synth_{name}"
                out.mkdir()
                report = synthesize(build, board, out)
                report["estimate"] = entry["lanes"][synth_lanes]
                entry["synth"] = report
                print(f"{name} on {board_name}: {report['utilisation']}, "
                      f"{report['fmax_mhz']} MHz", flush=True)
            elif "synth" in before.get(name, {}) and before[name]["model"] == path:
                entry["synth"] = before[name]["synth"]  # without --synth, the last one's kept
            result[name] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
