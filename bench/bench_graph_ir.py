"""The graph IR (issue 16) against the commit before it, in one run: bench/results/graph_ir.json.

The commit before the change (``--before``, default 20b8d56) is unpacked with ``git archive`` and
imported through ``PYTHONPATH`` (its package layout rebuilt with symlinks), so both versions run
on this machine, on the same checkpoints and stimuli:

- golden traces of est_tiny, est_small and the demo spine (16-32-24-8): every tensor the old
  model traced, equal value by value in the new one (the MLP's ``<layer>/current`` is now
  ``<layer>.syn/current``; an EST's SEW-none joins are no longer nodes);
- widths chosen by the calibration (every neuron array's ``v_bits``);
- cycles per bin of the compiled top at lanes 1, 2, 4, 8, 16 (measured in amaranth.sim);
- the fit check's logic estimate and block RAMs (iCEBreaker at lanes 1; est_small on the
  ULX3S-85F at lanes 4);
- ``est-compile`` wall time (the median of three);
- with ``--rtl``: the new builds on amaranth.sim, Verilator and Icarus, compared with est-compare
  (mismatches); with ``--synth``: est_tiny on the iCEBreaker, nextpnr's logic cells, both
  versions.

    .venv/bin/python bench/bench_graph_ir.py [--rtl] [--synth] [--before REV]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
EXAMPLES = {"est_tiny_dataflow": ("tests/data/est_tiny_dataflow.pt", "icebreaker", 1),
            "est_small": ("tests/data/est_small_dataflow.pt", "ulx3s-85f", 4)}
"""name -> (checkpoint, board, lanes); est_tiny_dataflow is examples/est_tiny.pt as it was when
this bench ran (the recipe before 2026-12-02); est_small is the example as retrained on 2026-12-03
(tests/data/est_small_dataflow.pt since the example has slow readouts, 2026-12-06)."""
LANES = (1, 2, 4, 8, 16)

MEASURE = r'''
import json, sys, time
import numpy as np
from pathlib import Path
side, model, board_name, lanes0, out = sys.argv[1:6]
lanes0 = int(lanes0)
stim = np.load(Path(out).with_suffix(".stim.npy"))
calib = np.load(Path(out).with_suffix(".calib.npy"))
from est.boards.spec import get_board
board = get_board(board_name)
res = {}
if side == "after":
    from est.compiler.frontend import open_checkpoint
    from est.compiler import costs
    from est.sim.interpreter import run
    from est.hw.dataflow import measure_cycles
    fe = open_checkpoint(Path(model), 0.2)
    g, q = fe.quantize("m", calib, 8, 24)
    trace = run(g, stim)[0].arrays
    widths = {n.name: n.op.v_bits for n in g.nodes if hasattr(n.op, "v_bits")}
    widest = costs.widest(g)
    cyc = {l: measure_cycles(g, l) for l in (1, 2, 4, 8, 16) if l <= max(widest, 1) or l == 1}
    sil = costs.memory_plan(g, lanes0, board)[0]
    rep = costs.cost_report(g, lanes0, board, sil)
    res["estimate"] = costs.logic_use(rep["total"], board)
    res["block_rams"] = rep["total"]["block_rams"]
else:
    from est.compiler.frontend import checkpoint_arch
    if checkpoint_arch(Path(model)) == "est":
        from est.compiler.frontend import load_est_checkpoint
        from est.compiler.est_quantize import quantize_est
        from est.sim.est_network import run_est
        from est.hw.est_top import measure_cycles
        from est.compiler.est_report import est_report, logic_use
        from est.boards.spec import est_memory_plan
        m, _ = load_est_checkpoint(Path(model))
        net, q = quantize_est(m, "m", calib)
        trace = run_est(net, stim).arrays
        widths = {k: v["v_bits"] for k, v in q["layers"].items()}
        widths["readout"] = net.readout_bits
        widest = max(net.d_model, net.n_out, *(b.mlp1.weight.shape[1] for b in net.blocks))
        cyc = {l: measure_cycles(net, l) for l in (1, 2, 4, 8, 16) if l <= widest or l == 1}
        sil = est_memory_plan(net, lanes0, board)[0]
        rep = est_report(net, lanes0, board, sil)
        res["estimate"] = logic_use(rep["total"], board)
        res["block_rams"] = rep["total"]["block_rams"]
    else:
        from dataclasses import replace
        from est.compiler.frontend import load_checkpoint
        from est.compiler.quantize import QuantConfig, quantize
        from est.sim.network import run
        from est.hw.top import cycles_per_bin
        from est.boards.spec import estimate
        f = load_checkpoint(Path(model))
        net, q = quantize(f, "m", calib, QuantConfig(8, 24, 1))
        trace = run(net, stim)[0].arrays
        trace = {k.replace("/current", ".syn/current"): v for k, v in trace.items()}
        widths = {l.name: l.v_bits for l in net.layers}
        widest = max(l.n_out for l in net.layers)
        cyc = {l: cycles_per_bin(replace(net, lanes=l)) for l in (1, 2, 4, 8, 16)
               if l <= widest or l == 1}
        e = estimate(replace(net, lanes=lanes0), board)
        res["estimate"], res["block_rams"] = e["luts_estimate"], e["bram"]
np.savez(Path(out).with_suffix(".trace.npz"), **{k.replace("/", "|"): v for k, v in trace.items()})
res.update(widths=widths, cycles={str(k): int(v) for k, v in cyc.items()})
Path(out).write_text(json.dumps(res))
'''


def unpack(rev: str, where: Path) -> Path:
    """The package of ``rev`` importable with PYTHONPATH=<returned path>."""
    src, pkg = where / "src", where / "pkg"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    pkg.mkdir()
    subprocess.run(["cp", "-r", src / "est", pkg / "est"], check=True)
    for d in ("hw", "compiler", "sim", "sw", "boards"):
        (pkg / "est" / d).symlink_to(src / d)
    return pkg


def env_for(pkg: Path | None) -> dict:
    env = dict(os.environ)
    if pkg is not None:
        env["PYTHONPATH"] = str(pkg)
    return env


def measure(side: str, pkg: Path | None, model: Path, board: str, lanes: int,
            tmp: Path) -> tuple[dict, dict]:
    out = tmp / f"{side}-{model.stem}.json"
    rng = np.random.default_rng(5)
    n_in = json.loads((tmp / f"{model.stem}.n_in").read_text())
    np.save(out.with_suffix(".stim.npy"), (rng.random((120, n_in)) < 0.15).astype(np.int64))
    np.save(out.with_suffix(".calib.npy"), (rng.random((600, n_in)) < 0.15).astype(np.int64))
    subprocess.run([PY, "-c", MEASURE, side, model, board, str(lanes), out], check=True,
                   env=env_for(pkg), cwd=tmp)
    with np.load(out.with_suffix(".trace.npz")) as npz:
        trace = {k.replace("|", "/"): npz[k] for k in npz.files}
    return json.loads(out.read_text()), trace


def compile_seconds(pkg: Path | None, model: Path, build: Path, lanes: int) -> float:
    times = []
    for i in range(3):
        code = ("import sys; from est.compiler.cli import run_main; "
                f"sys.argv = ['est-compile', {str(model)!r}, '-o', {f'{build}{i}'!r}, "
                f"'--lanes', '{lanes}', '--bins', '64']; run_main()")
        t0 = time.perf_counter()
        subprocess.run([PY, "-c", code], check=True, env=env_for(pkg), capture_output=True)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 2)


def rtl_mismatches(model: Path, build: Path, lanes: int) -> dict:
    subprocess.run([BIN / "est-compile", model, "-o", build, "--lanes", str(lanes), "--bins",
                    "40"], check=True, capture_output=True)
    found = {}
    for sim in ("amaranth", "verilator", "icarus"):
        subprocess.run([BIN / "est-sim", build, "--sim", sim], check=True, capture_output=True)
        from est.sim.trace import Trace, compare

        result = compare(Trace.load(build / "golden.npz"), Trace.load(build / f"rtl_{sim}.npz"))
        found[sim] = {"values": result.values_compared, "mismatches": result.mismatches}
    return found


def synth_cells(pkg: Path | None, model: Path, build: Path) -> int:
    code = ("import sys; from est.compiler.cli import run_main; "
            f"sys.argv = ['est-compile', {str(model)!r}, '-o', {str(build)!r}, '--lanes', '1', "
            f"'--bins', '8']; run_main()")
    subprocess.run([PY, "-c", code], check=True, env=env_for(pkg), capture_output=True)
    code = ("import sys; from est.boards.cli import run_main; "
            f"sys.argv = ['est-synth', {str(build)!r}, '--board', 'icebreaker', '--force']; "
            f"run_main()")
    subprocess.run([PY, "-c", code], check=True, env=env_for(pkg), capture_output=True)
    synth = json.loads((build / "synth_icebreaker" / "synth.json").read_text())
    return synth["utilisation"]["ICESTORM_LC"]["used"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="20b8d56", help="the commit before the graph IR")
    parser.add_argument("--rtl", action="store_true", help="also simulate the new builds")
    parser.add_argument("--synth", action="store_true", help="also synthesize est_tiny, both")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/graph_ir.json")
    args = parser.parse_args()
    from est.sw.spiking_mlp import make_model, save_checkpoint

    result = {"before": args.before, "models": {}}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        pkg = unpack(args.before, tmp / "before")
        save_checkpoint(make_model(), tmp / "spine.pt")
        models = {k: (ROOT / path, board, lanes) for k, (path, board, lanes) in EXAMPLES.items()}
        models["spine"] = (tmp / "spine.pt", "icebreaker", 4)
        for key, (model, board, lanes) in models.items():
            from est.compiler.frontend import open_checkpoint

            (tmp / f"{model.stem}.n_in").write_text(str(open_checkpoint(model, 0.2).n_in))
            old, old_trace = measure("before", pkg, model, board, lanes, tmp)
            new, new_trace = measure("after", None, model, board, lanes, tmp)
            shared = sorted(set(old_trace) & set(new_trace))
            differing = [k for k in shared if not np.array_equal(old_trace[k], new_trace[k])]
            row = {
                "board": board, "lanes": lanes,
                "golden": {"tensors_old": len(old_trace), "tensors_compared": len(shared),
                           "values_compared": int(sum(old_trace[k].size for k in shared)),
                           "tensors_differing": differing,
                           "old_tensors_not_in_new": sorted(set(old_trace) - set(new_trace))},
                "widths_equal": {k: v for k, v in old["widths"].items()
                                 if new["widths"].get(k) != v} == {},
                "cycles_per_bin": {"before": old["cycles"], "after": new["cycles"]},
                "estimate": {"before": old["estimate"], "after": new["estimate"]},
                "block_rams": {"before": old["block_rams"], "after": new["block_rams"]},
                "compile_seconds": {
                    "before": compile_seconds(pkg, model, tmp / f"cb-{key}", lanes),
                    "after": compile_seconds(None, model, tmp / f"ca-{key}", lanes)},
            }
            if args.rtl:
                row["rtl_after"] = rtl_mismatches(model, tmp / f"rtl-{key}", lanes)
            if args.synth and key == "est_tiny_dataflow":
                row["icebreaker_logic_cells"] = {
                    "before": synth_cells(pkg, model, tmp / "sb"),
                    "after": synth_cells(None, model, tmp / "sa")}
            result["models"][key] = row
            print(f"bench_graph_ir: {key}: {json.dumps(row)}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench_graph_ir: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
