"""The example EST in gateware: writes bench/results/est_hw.json.

For lanes 1, 2, 4, 8, 16: cycles per bin of ``ESTTop`` (measured in amaranth.sim, trace off)
against the dense lower bound (synaptic operations per bin / lanes, counting every convolution
over its whole window, the TPU's depthwise terms and the readout). With ``--synth``, also
synthesizes for iCEBreaker and ULX3S-85F at ``--synth-lanes`` and records utilisation and Fmax.

    .venv/bin/python bench/bench_est_hw.py [--model examples/est_small.pt] [--synth]
"""

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from est.compiler.cli import main as compile_main
from est.compiler.est_ir import ESTNetwork, load_est
from est.hw.est_top import measure_cycles


def synaptic_ops(net: ESTNetwork) -> int:
    """Multiply-accumulates per bin of the dense schedule (what one lane does per cycle)."""
    def conv(c, extra: int = 0) -> int:
        k, n_out, n_in = c.weight.shape
        return k * n_out * (n_in + extra)

    ops = conv(net.embed, 0 if net.cpg_table is None else net.cpg_table.shape[1])
    for b in net.blocks:
        ops += conv(b.mlp1) + conv(b.mlp2)
        if b.attention != "none":
            ops += sum(conv(getattr(b, n)) for n in ("q", "k", "v", "proj"))
        if b.tpu is not None:
            ops += b.tpu.w_rec.size + len(b.tpu.w_in)
    return ops + conv(net.readout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("examples/est_small.pt"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/est_hw.json"))
    parser.add_argument("--synth", action="store_true")
    parser.add_argument("--synth-lanes", type=int, default=4)
    args = parser.parse_args()
    result = {"model": str(args.model), "lanes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        build = Path(tmp) / "est"
        t0 = time.perf_counter()
        assert compile_main([str(args.model), "-o", str(build), "--bins", "4",
                             "--lanes", str(args.synth_lanes)]) == 0
        result["compile_seconds"] = round(time.perf_counter() - t0, 2)
        net = load_est(build, json.loads((build / "ir.json").read_text()))
        ops = synaptic_ops(net)
        result["synaptic_ops_per_bin"] = ops
        for lanes in (1, 2, 4, 8, 16):
            cycles = measure_cycles(net, lanes)
            bound = math.ceil(ops / lanes)
            result["lanes"][lanes] = {"cycles_per_bin": cycles, "dense_bound": bound,
                                      "ratio": round(cycles / bound, 3)}
            print(f"lanes {lanes:>2}: {cycles:>6} cycles/bin, dense bound {bound:>6} "
                  f"({cycles / bound:.2f}x)", flush=True)
        if args.synth:
            from est.boards.spec import get_board
            from est.boards.synth import synthesize

            result["boards"] = {}
            for board in ("icebreaker", "ulx3s-85f"):
                out = Path(tmp) / f"synth_{board}"
                out.mkdir()
                report = synthesize(build, get_board(board), out)
                result["boards"][board] = report
                print(f"{board}: {report}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
