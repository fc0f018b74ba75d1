"""The fit check's logic estimate against nextpnr for every synthesized design of the
benchmarks: bench/results/fit.json.

Designs: est_tiny_dataflow (iCEBreaker, lanes 1) and est_small (ULX3S-85F, lanes 4) from
``bench_est_hw.py --synth`` (``est_hw.json``); the demo spine on every board from
``bench_boards.py`` (``boards.json``); and this script's own sweep (``SWEEP``): the tutorial's
model as the tutorial trains and compiles it, its first model (which nextpnr could not place;
also compiled under another build name, which placed) and ESTs of other shapes on the
iCEBreaker and an ECP5 board, so that the margin rests on more than two iCE40 designs (the full
sweep takes about 50 minutes on 2 cores). Every design, EST or spine, has the one estimator of
the dataflow backend (``est.compiler.costs.ESTIMATOR``, "dataflow"): the logic use
(``est.compiler.costs.logic_use``: iCE40 LUT4s + flip-flops, ECP5 the larger of the two) of
the per-node cost report, membranes where ``est.compiler.costs.memory_plan`` puts them. Every
estimate is recomputed with the current code (the design is compiled again; without --synth, a
trained sweep design's estimate is reused from ``--previous`` when that one was made by the
same estimator, as training takes minutes, and recomputed otherwise); the measured figures are
nextpnr's logic cells (``ICESTORM_LC`` / ``TRELLIS_COMB``), from the benchmark's JSON or, for
the sweep, from synthesis (``--synth``; without it the previous ``fit.json``'s measurements are
reused, and the sweep designs never measured are listed as such). A measurement is only as
recent as the synthesis it came from: after a change to the gateware, run the synthesizing
benchmarks again.

For each design: estimate, measured, the ratio, the verdict of the fit check at the margin
it uses (``est.boards.spec.logic_margin``), whether nextpnr placed it, and whether the two
agree (``fits`` and placed, ``over`` and not placed; ``tight`` is a warning either way). Then
the margin learned from these designs (``est.boards.spec.learn_margin``, per family) beside
the one in the code, and whether ``est.boards.spec.MEASURED`` (the code's table) is up to
date: the same designs with the same estimator, estimates, measurements and placements.

    .venv/bin/python bench/bench_fit.py [--synth] [--only NAME ...] [--out bench/results/fit.json]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from est.boards.spec import (
    BOARDS,
    MEASURED,
    Measured,
    get_board,
    learn_margin,
    logic_margin,
    logic_verdict,
)
from est.boards.synth import LOGIC_CELLS
from est.compiler.costs import ESTIMATOR, logic_fit

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent

RECIPE_V1 = {"input_bits": 1, "input_to_readout": False, "readout_kernel": 1,
             "readout_leak_shift": 0, "leak_shift": 2}
"""The model fields of est-train's recipe before 2026-12-02 (spike inputs, a one-bin readout),
which every sweep design was measured with: est-train's defaults have changed since, and a
design must stay the one measured."""
TUTORIAL_V1 = {"d_model": 8, "mlp_hidden": 16, "blocks": 1, **RECIPE_V1}  # until issue 15
TUTORIAL = {"d_model": 8, "mlp_hidden": 16, "blocks": 1, "tpu": False,
            **RECIPE_V1}  # docs/tutorial.md before 2026-12-02
SWEEP = {  # name: (board, lanes, model config, trained?, compiled as the tutorial does?)
    "est-none": ("icebreaker", 1, {"d_model": 8, "mlp_hidden": 16, "blocks": 1,
                                   "attention": "none", **RECIPE_V1}, False, False),
    "est-sdsa-and": ("icebreaker", 1, {"d_model": 8, "mlp_hidden": 16, "blocks": 1,
                                       "sew": "and", **RECIPE_V1}, False, False),
    "est-d12-notpu": ("icebreaker", 1, {"d_model": 12, "mlp_hidden": 16, "blocks": 1,
                                        "tpu": False, **RECIPE_V1}, False, False),
    "est-ssa-and": ("icebreaker", 1, {"d_model": 8, "mlp_hidden": 16, "blocks": 1,
                                      "attention": "ssa", "sew": "and", "window": 4,
                                      "kernels": [3], **RECIPE_V1}, False, False),
    "est-ssa-and-12f": ("ulx3s-12f", 4, {"d_model": 8, "mlp_hidden": 16, "blocks": 1,
                                         "attention": "ssa", "sew": "and", "window": 4,
                                         "kernels": [3], **RECIPE_V1}, False, False),
    "tutorial": ("icebreaker", 1, TUTORIAL, True, True),
    "tutorial-v1": ("icebreaker", 1, TUTORIAL_V1, True, True),
    # the same trained model as tutorial-v1, compiled as `-o build --bins 4`: its IR (named
    # after the build folder) differs only in its name, so the board top's identification
    # constant (a hash of ir.json) does too
    "tutorial-v1-plain": ("icebreaker", 1, TUTORIAL_V1, True, False),
}


def _toml(config: dict, steps: int) -> str:
    def value(v):
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    model = "\n".join(f"{k} = {value(v)}" for k, v in config.items())
    # the training fields of the recipe before 2026-12-02 beside RECIPE_V1's model fields
    return (f'[data]\npath = "counts.npz"\n\n[model]\n{model}\n\n'
            f"[train]\nsteps = {steps}\nqat_steps = 30\nlr = 0.01\nburn_in = 0\n"
            f"context_bins = 64\n")


def sweep_checkpoint(name: str, folder: Path, cache: dict) -> Path:
    """The checkpoint of a sweep design in ``folder`` (relative to it): trained exactly as
    docs/tutorial.md trains it (make_counts.py's population, mine.toml, 200 steps; once per
    config, ``cache``) or untrained (its config's seed)."""
    _, _, config, trained, _ = SWEEP[name]
    folder.mkdir(parents=True, exist_ok=True)
    if trained:
        key = json.dumps(config, sort_keys=True)
        if key in cache:
            shutil.copytree(cache[key], folder, dirs_exist_ok=True)
            return Path("runs/mine/model.pt")
        subprocess.run([sys.executable, "-c", (
            "import numpy as np\n"
            "from est.sw.data import PopulationConfig, simulate_population\n"
            "rec = simulate_population(PopulationConfig(seed=3))\n"
            "np.savez('counts.npz', counts=rec.counts, bin_width=0.01)\n")],
            cwd=folder, check=True)
        (folder / "mine.toml").write_text(_toml(config, 200))
        subprocess.run([BIN / "est-train", "--config", "mine.toml", "--out", "runs/mine", "-q"],
                       cwd=folder, check=True)
        cache[key] = folder.parent / f"{name}.trained"
        shutil.copytree(folder, cache[key])
        return Path("runs/mine/model.pt")
    from est.sw.est import EST, ESTConfig
    from est.sw.train import save_checkpoint

    cfg = dict(config)
    if "kernels" in cfg:
        cfg["kernels"] = tuple(cfg["kernels"])
    save_checkpoint(EST(ESTConfig(**cfg)), folder / "model.pt", {})
    return Path("model.pt")


def compile_estimate(model: Path, build: Path, board: str, lanes: int | str = 1,
                     cwd: Path | None = None, extra: tuple = ("--bins", "4")) -> dict:
    """Compile ``model`` into ``build`` as a dataflow top (est-compile in ``cwd``, relative
    paths keep the build the same from run to run; ``--backend auto`` would take the core
    where the dataflow top does not fit, and this bench measures the dataflow estimator) and
    return its report's logic verdict."""
    res = subprocess.run([BIN / "est-compile", model, "-o", build, "--lanes", str(lanes),
                          "--board", board, "--backend", "dataflow", *extra],
                         capture_output=True, text=True, cwd=cwd)
    if res.returncode:
        raise RuntimeError(f"est-compile {model} failed: {res.stderr.strip()[-500:]}")
    return json.loads(((cwd or Path()) / build / "report.json").read_text())["hardware"][
        "logic_fit"]


def compile_sweep(name: str, folder: Path, cache: dict) -> tuple[dict, Path]:
    """Compile a sweep design: as the tutorial does (``est compile runs/mine/model.pt -o
    build/mine --lanes auto --board icebreaker --recording counts.npz --bins 100``) or as
    ``-o build --bins 4``; return the logic verdict and the build folder."""
    board, lanes, _, _, as_tutorial = SWEEP[name]
    model = sweep_checkpoint(name, folder, cache)
    if as_tutorial:
        fit = compile_estimate(model, Path("build/mine"), board, "auto", folder,
                               ("--recording", "counts.npz", "--bins", "100"))
        return fit, folder / "build" / "mine"
    return compile_estimate(model, Path("build"), board, lanes, folder), folder / "build"


def measure(build: Path, board: str) -> dict:
    """Synthesize ``build`` (the fit check forced off) and return nextpnr's logic cells and
    whether it placed the design (or the error that stopped it)."""
    from est.boards.synth import SynthesisFailed, logic_used, synthesize

    out = build / f"synth_{board}"
    out.mkdir()
    t0 = time.perf_counter()
    try:
        report = synthesize(build, get_board(board), out, force=True)
    except SynthesisFailed as e:
        cell = next((c for c in LOGIC_CELLS if c in e.utilisation), None)
        return {"placed": False, "error": str(e), "seconds": round(time.perf_counter() - t0, 1),
                "measured": e.utilisation[cell]["used"] if cell else None}
    _, used, _ = logic_used(report)
    return {"placed": True, "measured": used, "seconds": report["seconds"],
            "fmax_mhz": report["fmax_mhz"]}


def spine_estimates(tmp: Path) -> dict[str, int]:
    """The spine of bench_boards.py (demo spine, lanes 4) compiled again: its logic estimate
    (:func:`est.compiler.costs.logic_fit`, membranes as est-synth places them on the board) per
    board."""
    from est.compiler.graph import load
    from est.sw.spiking_mlp import make_model, save_checkpoint

    save_checkpoint(make_model(), tmp / "spine.pt")
    subprocess.run([BIN / "est-compile", tmp / "spine.pt", "-o", tmp / "spine", "--lanes", "4",
                    "--bins", "8", "--no-trace"], check=True, capture_output=True)
    graph = load(tmp / "spine")
    lanes = json.loads((tmp / "spine" / "top.json").read_text())["lanes"]
    return {name: logic_fit(graph, lanes, board)["estimate"] for name, board in BOARDS.items()}


def example_estimate(name: str, model: str, board: str, lanes: int, tmp: Path) -> int:
    return compile_estimate(ROOT / model, tmp / name, board, lanes)["estimate"]


def entry(design: str, source: str, board: str, lanes: int, estimator: str, estimate: int,
          measured: int | None, placed: bool | None, **extra) -> dict:
    b = get_board(board)
    row = {"design": design, "source": source, "board": board, "family": b.family,
           "lanes": lanes, "estimator": estimator, "estimate": estimate, "measured": measured,
           "available": b.luts, "estimate_share": round(estimate / b.luts, 4),
           "measured_share": None if measured is None else round(measured / b.luts, 4),
           "ratio": None if measured is None else round(measured / estimate, 4),
           "placed": placed} | extra
    return row


def judge(row: dict) -> dict:
    """The fit check's verdict at the code's margin, and whether nextpnr agreed."""
    v = logic_verdict(row["estimate"], get_board(row["board"]), row["estimator"], "design", "")
    row["verdict"] = v["verdict"]
    row["warn_above"], row["refuse_above"] = v["warn_above"], v["refuse_above"]
    if row["placed"] is None:
        row["agrees"] = None
    elif v["verdict"] == "tight":
        row["agrees"] = "warned"
    else:
        row["agrees"] = (v["verdict"] == "fits") == row["placed"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/fit.json"))
    parser.add_argument("--results", type=Path,
                        help="folder with est_hw.json and boards.json (default: --out's)")
    parser.add_argument("--previous", type=Path, default=Path("bench/results/fit.json"),
                        help="earlier fit.json whose sweep measurements are reused without "
                             "--synth")
    parser.add_argument("--synth", action="store_true",
                        help="synthesize the sweep designs (several minutes each)")
    parser.add_argument("--only", action="append", choices=sorted(SWEEP),
                        help="with --synth: synthesize only these sweep designs, reuse the rest")
    args = parser.parse_args()
    results = args.results or args.out.parent
    previous = {}
    if args.previous.is_file():
        previous = {(r["design"], r["board"]): r for r in
                    json.loads(args.previous.read_text())["designs"]
                    if r["source"].startswith("bench/bench_fit.py")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        est_hw = json.loads((results / "est_hw.json").read_text())
        for name, m in est_hw.items():
            if "synth" not in m:
                continue
            lanes = next(int(k) for k, v in m["lanes"].items() if v == m["synth"]["estimate"])
            cell = next(c for c in LOGIC_CELLS if c in m["synth"]["utilisation"])
            rows.append(entry(f"{name} L{lanes}", "bench/bench_est_hw.py --synth", m["board"],
                              lanes, ESTIMATOR,
                              example_estimate(name, m["model"], m["board"], lanes, tmp),
                              m["synth"]["utilisation"][cell]["used"], True))
            print(f"bench_fit: {rows[-1]['design']} on {m['board']}", flush=True)
        boards = json.loads((results / "boards.json").read_text())
        spine = spine_estimates(tmp)
        for board, b in boards["boards"].items():
            util = b.get("utilisation", {})
            cell = next((c for c in LOGIC_CELLS if c in util), None)
            rows.append(entry("spine L4", "bench/bench_boards.py", board, 4, ESTIMATOR,
                              spine[board], util[cell]["used"] if cell else None,
                              b["status"].startswith("bitstream") if cell else None))
        print(f"bench_fit: spine on {len(boards['boards'])} boards", flush=True)
        cache = {}
        for name, (board, lanes, config, trained, as_tutorial) in SWEEP.items():
            folder = tmp / name
            t0 = time.perf_counter()
            design = f"{name} L{lanes}"
            old = previous.get((design, board), {})
            synth = args.synth and (not args.only or name in args.only)
            if trained and not synth and old.get("estimator") == ESTIMATOR:
                # training takes minutes: the earlier estimate, made by the same estimator
                estimate, estimated = old["estimate"], "reused from --previous"
            else:
                fit, build = compile_sweep(name, folder, cache)
                estimate, estimated = fit["estimate"], "this run"
            if synth:
                print(f"bench_fit: {name}: estimate {estimate} ({fit['verdict']}); "
                      f"synthesizing for {board} ...", flush=True)
                got = measure(build, board)
                source = "bench/bench_fit.py --synth"
            elif old.get("measured") is not None:
                got = {k: old[k] for k in ("measured", "placed", "seconds", "fmax_mhz", "error")
                       if k in old}
                source = old["source"]
            else:
                got, source = {"measured": None, "placed": None}, "bench/bench_fit.py (not run)"
            rows.append(entry(design, source, board, lanes, ESTIMATOR, estimate,
                              got.pop("measured"), got.pop("placed"), config=config,
                              trained=trained, compiled_as_the_tutorial=as_tutorial,
                              estimated=estimated, **got))
            print(f"bench_fit: {name} on {board}: estimate {estimate}, measured "
                  f"{rows[-1]['measured']}, placed {rows[-1]['placed']} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            shutil.rmtree(folder, ignore_errors=True)
    rows = [judge(r) for r in rows]
    measured = [Measured(r["design"], r["board"], r["estimator"], r["estimate"], r["measured"],
                         r["placed"]) for r in rows if r["measured"] is not None]
    margins = {}
    for family in sorted({b.family for b in BOARDS.values()}):
        board = next(b for b in BOARDS.values() if b.family == family)
        learned, used = learn_margin(measured, family, ESTIMATOR), logic_margin(board, ESTIMATOR)
        margins[f"{family}/{ESTIMATOR}"] = {
            "used_by_the_check": {"warn": round(used.warn, 4), "refuse": round(used.refuse, 4),
                                  "ceiling": round(used.ceiling, 4),
                                  "ceiling_measured": used.ceiling_measured,
                                  "ratio_low": round(used.ratio_low, 4),
                                  "ratio_high": round(used.ratio_high, 4),
                                  "designs": used.designs},
            "learned_here": {"warn": round(learned.warn, 4),
                             "refuse": round(learned.refuse, 4)}}
    up_to_date = sorted(measured, key=str) == sorted(MEASURED, key=str)
    result = {"designs": rows, "margins": margins,
              "code_table_up_to_date": up_to_date,
              "rule": "refuse above ceiling / ratio_low, warn above ceiling / ratio_high "
                      "(shares of the board's logic; est.boards.spec.LogicMargin)",
              "disagreements": [f"{r['design']} on {r['board']}: {r['verdict']}, placed "
                                f"{r['placed']}" for r in rows if r["agrees"] is False]}
    for r in rows:
        print(f"  {r['design']:<16} {r['board']:<17} est {r['estimate']:>6} "
              f"({r['estimate_share']:.1%})  nextpnr {r['measured'] or '-':>6}  "
              f"ratio {r['ratio'] or '-':>6}  {r['verdict']:<5} placed {r['placed']}")
    for key, m in margins.items():
        u = m["used_by_the_check"]
        print(f"  margin {key}: warn {u['warn']:.1%}, refuse {u['refuse']:.1%} "
              f"(ceiling {u['ceiling']:.1%}, ratio {u['ratio_low']}..{u['ratio_high']}, "
              f"{u['designs']} designs)")
    if not up_to_date:
        print("bench_fit: these measurements differ from est.boards.spec.MEASURED (expected with "
              "--results bench/results/quick, whose boards and est_hw runs are not the full "
              "ones); as a table:")
        for m in measured:
            print(f"    {m!r},")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench_fit: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
