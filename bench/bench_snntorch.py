"""An snnTorch network on the iCEBreaker's core: writes bench/results/snntorch.json.

Network: 784 -> 128 ``snn.Leaky`` -> 10 ``snn.Leaky`` (beta 0.9375, snnTorch's default reset:
subtraction with ``reset_delay``, est's ``subtract_delayed``), seeded weights times 3
(untrained: they make the hidden layer fire at about a tenth of its neuron-bins), its state
dict and the description ``est.compiler.snntorch_frontend.describe`` writes; ``--bins`` bins of
random spikes at 15% density, the stimulus and the calibration. ``est-compile --board
icebreaker`` (``--backend auto``: the iCEBreaker's core, as the dataflow top's weights are
over that board's block RAM) gives, from the core's Python model (cycle for cycle the
gateware's): cycles per bin (mean and max), synaptic events, the event and memory bounds and
their ratio, the weight words used, and the hidden and output firing rates; ``--rtl``
(default on) runs the build on the core's Verilog in Icarus (``est-sim``, ``est-compare``):
every traced value (spikes and membranes of both layers) against the golden model.

    .venv/bin/python bench/bench_snntorch.py [--bins 100] [--no-rtl]
        [--out bench/results/snntorch.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from est.sim.trace import Trace, compare

BIN = Path(sys.executable).parent


def network(folder: Path) -> tuple[Path, Path]:
    """The snnTorch network's state dict and description in ``folder``."""
    import snntorch as snn
    import torch

    from est.compiler.snntorch_frontend import describe

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # snnTorch's notes on its defaults
        net = torch.nn.Sequential(
            torch.nn.Linear(784, 128), snn.Leaky(beta=0.9375, init_hidden=True),
            torch.nn.Linear(128, 10), snn.Leaky(beta=0.9375, init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
    torch.save(net.state_dict(), folder / "net.pt")
    (folder / "net.toml").write_text(describe(net, (784,)))
    return folder / "net.pt", folder / "net.toml"


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode:
        raise SystemExit(f"bench_snntorch: {Path(cmd[0]).name} failed: {res.stderr.strip()}")
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bins", type=int, default=100)
    parser.add_argument("--no-rtl", dest="rtl", action="store_false")
    parser.add_argument("--out", type=Path, default=Path("bench/results/snntorch.json"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        state, desc = network(tmp)
        x = (np.random.default_rng(0).random((args.bins, 784)) < 0.15).astype(np.int64)
        np.save(tmp / "x.npy", x)
        build = tmp / "build"
        run([BIN / "est-compile", state, "--snntorch", desc, "-o", build, "--board",
             "icebreaker", "--stimulus", tmp / "x.npy", "--calibration", tmp / "x.npy", "-q"])
        report = json.loads((build / "report.json").read_text())
        hw = report["hardware"]
        golden = np.load(build / "golden.npz")
        out = {"network": {"sizes": [784, 128, 10], "beta": 0.9375,
                           "reset": "subtract, reset_delay=True (subtract_delayed)",
                           "weights": "seeded (torch.manual_seed(0)) times 3, untrained",
                           "input_density": 0.15, "bins": args.bins},
               "backend": hw["backend"], "board": hw["board"], "core": hw["core"],
               "usage": hw["usage"], "bin": hw["bin"],
               "microseconds_per_bin_at_12mhz": round(hw["bin"]["cycles_mean"] / 12, 1),
               "hidden_firing": float(golden["leaky1/spikes"].mean()),
               "output_firing": float(golden["leaky3/spikes"].mean())}
        print(f"bench_snntorch: {hw['backend']} on {hw['board']}: "
              f"{hw['bin']['cycles_mean']:.1f} cycles/bin, {hw['bin']['ratio']:.2f} x the "
              f"larger bound", flush=True)
        if args.rtl:
            t1 = time.perf_counter()
            run([BIN / "est-sim", build, "--sim", "icarus", "-q"])
            got = compare(Trace.load(build / "golden.npz"), Trace.load(build / "rtl_icarus.npz"))
            out["rtl_icarus"] = {"tensors": len(got.tensors), "values": got.values_compared,
                                 "bins": got.bins, "mismatches": got.mismatches,
                                 "seconds": round(time.perf_counter() - t1, 1)}
            print(f"bench_snntorch: icarus: {got.mismatches} mismatches in "
                  f"{got.values_compared} values", flush=True)
    out["commit"] = os.environ.get("EST_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
