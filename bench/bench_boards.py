"""Every supported board with the demo spine (16-32-24-8, lanes 4): bench/results/boards.json.

For each board in ``est.boards.spec.BOARDS``: est-synth's report (utilisation, post-route
Fmax, whether the board clock is met, cycles and latency per bin) or the error that stopped
it, and the UART's bound on bins per second at 115200 baud (frame bytes per bin: the BIN
request and the OUTPUT reply of :class:`est.boards.top.FrameBridge`, the readout alone).

    .venv/bin/python bench/bench_boards.py [--board NAME ...] [--out bench/results/boards.json]
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from est.boards.spec import BOARDS
from est.compiler.graph import load
from est.hw.synapse import ceil_div
from est.sw.spiking_mlp import make_model, save_checkpoint

BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--board", action="append", choices=sorted(BOARDS))
    parser.add_argument("--out", type=Path, default=Path("bench/results/boards.json"))
    args = parser.parse_args()
    boards = args.board or list(BOARDS)
    results = {"machine": {"python": platform.python_version(),
                           "cpus": __import__("os").cpu_count()},
               "network": "demo spine 16-32-24-8, lanes 4", "boards": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_checkpoint(make_model(), tmp / "model.pt")
        subprocess.run([BIN / "est-compile", tmp / "model.pt", "-o", tmp / "spine", "--lanes",
                        "4", "--bins", "8", "--no-trace"], check=True, capture_output=True)
        graph = load(tmp / "spine")
        # the board's core drives the readout alone (est.boards.top.build_core: trace off)
        out_bits = sum(n * bits for _, n, bits, _ in graph.output_fields(trace=False))
        frame_bytes = 5 + ceil_div(graph.n_in, 8) + 7 + ceil_div(out_bits, 8)
        for name in boards:
            print(f"bench_boards: {name} ...", flush=True)
            t0 = time.perf_counter()
            res = subprocess.run([BIN / "est-synth", tmp / "spine", "--board", name],
                                 capture_output=True, text=True)
            entry = {"seconds": round(time.perf_counter() - t0, 1)}
            report = tmp / "spine" / f"synth_{name}" / "synth.json"
            if report.is_file():
                r = json.loads(report.read_text())
                entry.update({k: r[k] for k in ("fmax_mhz", "board_clock_mhz", "board_clock_met",
                                                "cycles_per_bin", "latency_us_at_board_clock")})
                entry["utilisation"] = {k: v for k, v in r["utilisation"].items() if v["used"]}
                entry["status"] = "bitstream, clock met" if r["board_clock_met"] else \
                    "bitstream, clock NOT met"
            else:
                entry["status"] = "failed"
                entry["error"] = (res.stderr.strip().splitlines() or ["?"])[-1]
            entry["uart_bins_per_second_at_115200"] = round(115200 / 10 / frame_bytes, 1)
            results["boards"][name] = entry
            print(f"  {entry['status']} ({entry['seconds']} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"bench_boards: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
