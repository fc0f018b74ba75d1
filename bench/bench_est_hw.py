"""The example EST in gateware: writes bench/results/est_hw.json.

For lanes 1, 2, 4, 8, 16: cycles per bin of ``ESTTop`` (measured in amaranth.sim, trace off)
against the dense lower bound of its schedule: stages run one after another except the Q, K
and V convolutions, which are three units working at once, so the bound is the sum over the
stages of ``ceil(synaptic ops / lanes)`` with the largest of Q/K/V standing for the three
(every convolution counted over its whole window, the TPU's depthwise terms, the readout).
With ``--synth``, also synthesizes for iCEBreaker and ULX3S-85F at ``--synth-lanes`` and
records utilisation and Fmax.

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


def _conv_ops(c, extra: int = 0) -> int:
    k, n_out, n_in = c.weight.shape
    return k * n_out * (n_in + extra)


def stage_ops(net: ESTNetwork) -> list[int]:
    """Multiply-accumulates per bin of each sequential stage (Q/K/V as one stage: the
    largest of the three, since they run in parallel)."""
    stages = [_conv_ops(net.embed, 0 if net.cpg_table is None else net.cpg_table.shape[1])]
    for b in net.blocks:
        if b.attention != "none":
            stages.append(max(_conv_ops(getattr(b, n)) for n in ("q", "k", "v")))
            stages.append(_conv_ops(b.proj))
        if b.tpu is not None:
            stages.append(b.tpu.w_rec.size + len(b.tpu.w_in))
        stages += [_conv_ops(b.mlp1), _conv_ops(b.mlp2)]
    return stages + [_conv_ops(net.readout)]


def total_ops(net: ESTNetwork) -> int:
    ops = stage_ops(net)
    for b in net.blocks:
        if b.attention != "none":
            ops.append(sum(_conv_ops(getattr(b, n)) for n in ("q", "k", "v"))
                       - max(_conv_ops(getattr(b, n)) for n in ("q", "k", "v")))
    return sum(ops)


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
        stages = stage_ops(net)
        result["synaptic_ops_per_bin"] = total_ops(net)
        result["stage_ops"] = stages
        for lanes in (1, 2, 4, 8, 16):
            cycles = measure_cycles(net, lanes)
            bound = sum(math.ceil(ops / lanes) for ops in stages)
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
