"""Model quality of est-train's recipe, with the spread over seeds and an ablation: writes
bench/results/est.json.

For each data set (``DATASETS``: the standard synthetic population, and its first 800 bins as a
short recording), the GLM tuned on the validation split over est-train's whole grid (history
lengths x L2 weights x couplings, :func:`est.sw.glm.tune_glm`), the true rates and the training
split's mean rates are scored once, and the tuned GLM with slow covariates (``latent_glms``:
causal exponential means of the counts, and the true latents as an oracle); then every variant
(``VARIANTS``: the default EST, the same in ANN mode, the default with one part removed:
attention, CPG, TPU, SEW, RSM, the slow readouts, the input path into the readout (and the slow
readouts), the readout's leak; without both TPU and SEW, the two parts the short recording does
better without; with oscillator readouts, ``est.sw.glm.OSCILLATORS``; with three fitted
rhythms, est-train's ``train.find_rhythms = 3``; and with three oscillator readouts tuned to
the rhythms found, ``train.find_oscillators = 3``) is trained with seeds
0..N-1 (model and training seed; the data are the same). Per run: NLB bits per spike on the
test split for the float EST (as trained, before the quantization-aware fine-tuning) and the
integer EST (the fine-tuned model, 8-bit weights, the golden model's arithmetic), the
validation score the float weights were chosen on, the steps chosen in training and in the
fine-tuning (``chosen_step``, ``qat_step``; ``qat_ran`` false where rounding cost nothing
beyond the noise on validation and no fine-tuning ran), the attention's firing rate; per variant the
mean, min and max over seeds and the difference of the means from the default (a part whose
removal does not lower the score does not help on that data set). ``--jobs`` runs at a time,
one thread each; the JSON is written after every run (``complete`` false until the last), with
the commit of each run (``EST_COMMIT``, else git's HEAD); ``--resume`` keeps the baselines and
runs already in ``--out`` (of the same steps), of every data set in it, and does only the rest,
seed by seed (every variant asked for at seed 0 first).

    .venv/bin/python bench/bench_est.py [--seeds 3] [--dataset NAME ...] [--variant NAME ...]
        [--steps N] [--jobs 2] [--resume] [--out bench/results/est.json]
"""

import argparse
import json
import os
import platform
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from est.sw.glm import OSCILLATORS

DATASETS = {"standard": {"seed": 0}, "short": {"seed": 0, "bins": 800}}
VARIANTS = {
    "default": {},
    "ann": {"mode": "ann"},
    "no_attention": {"attention": "none"},
    "no_cpg": {"cpg": False},
    "no_tpu": {"tpu": False},
    "no_sew": {"sew": "none"},
    "no_rsm": {"rsm": 0.0},
    "no_slow": {"readout_slow_shifts": ()},
    "no_input_path": {"input_to_readout": False, "readout_kernel": 1, "readout_slow_shifts": ()},
    "no_readout_leak": {"readout_leak_shift": 0},
    "no_tpu_no_sew": {"tpu": False, "sew": "none"},
    "oscillators": {"readout_oscillators": OSCILLATORS},
    "rhythms": {"find_rhythms": 3},
    "tuned_oscillators": {"find_oscillators": 3},
}
TRAIN_KEYS = ("find_rhythms", "find_oscillators")
"""Variant keys that are est-train's ([train]), not the model's."""
FIGURES = ("float_test", "integer_test", "float_val")


def baselines(dataset: str) -> tuple[str, dict]:
    """The tuned GLM, the true rates and the training mean on one data set (test split)."""
    import torch

    from est.sw.glm import RATE_FLOOR, tune_glm
    from est.sw.train import TrainConfig, get_data, scores

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    train, val, test = get_data(DATASETS[dataset])
    glm, grid = tune_glm(train, val, TrainConfig().glm_history, TrainConfig().glm_l2)
    mean = np.broadcast_to(np.log(np.maximum(train.counts.mean(axis=0), RATE_FLOOR)),
                           test.counts.shape)
    return dataset, {
        "glm": {"test": scores(test, glm.predict_log_rates(test, val))["bits_per_spike"],
                "val": scores(val, glm.predict_log_rates(val, train))["bits_per_spike"],
                "coupling": glm.coupling, "history": glm.history, "l2": glm.l2,
                "grid": grid},
        **latent_glms(train, val, test),
        "true_rates": scores(test, np.log(test.rates))["bits_per_spike"],
        "train_mean": scores(test, mean)["bits_per_spike"],
        "bins": {"train": train.n_bins, "val": val.n_bins, "test": test.n_bins},
        "seconds": round(time.perf_counter() - t0, 1)}


LATENT_GLMS = ("glm_slow", "glm_given_latents", "glm_oscillators", "glm_rhythms",
               "glm_tuned_oscillators")


def latent_glms(train, val, test, which=LATENT_GLMS) -> dict:
    """How far the slow latents are within reach. ``glm_slow``: a GLM tuned over est-train's
    whole grid with every neuron's exponential mean count over about 4-128 bins as more inputs
    (``est.sw.glm.slow_means``, causal: what a model that integrates the counts linearly over
    the latents' periods can know of them; the baseline est-train reports);
    ``glm_given_latents``: a GLM with the simulation's true latents as inputs, tuned over
    est-train's whole grid like the others (an oracle: what a model that knew the latents
    exactly would score); ``glm_oscillators``: ``glm_slow`` with the oscillator means of
    ``est.sw.glm.OSCILLATORS`` as more inputs, over the whole grid (the GLM the
    ``oscillators`` variant starts from: that variant's baseline at equal inputs);
    ``glm_rhythms``: ``glm_slow`` with the rhythms est-train finds in the training split
    (``est.sw.glm.find_rhythms``, as ``train.find_rhythms = 3``: the strongest 0 to 3 of them,
    as many as score most on the validation split) as more inputs, over the whole grid (the
    ``rhythms`` variant's start and baseline); ``glm_tuned_oscillators``: ``glm_slow`` with an
    oscillator tuned to each of the three rhythms found (``est.sw.glm.tuned_oscillator``, as
    ``train.find_oscillators = 3``) as more inputs, over the whole grid (the
    ``tuned_oscillators`` variant's start and baseline). Only the entries named in
    ``which``."""
    from est.sw.est import ESTConfig
    from est.sw.glm import (
        OSCILLATORS,
        SLOW_SHIFTS,
        rhythm_periods,
        tune_glm,
        tune_glm_rhythms,
        tuned_oscillator,
    )
    from est.sw.train import TrainConfig, scores

    tcfg = TrainConfig()
    rows = ESTConfig().rhythm_rows
    found = tuple(rhythm_periods(train.counts, 3, rows))
    out = {}
    tuned = tuple(tuned_oscillator(p) for p in found)
    for name, pairs, periods in (("glm_slow", (), ()), ("glm_oscillators", OSCILLATORS, ()),
                                 ("glm_rhythms", (), found),
                                 ("glm_tuned_oscillators", tuned, ())):
        if name in which:
            periods, slow, _, _, val_by_k = tune_glm_rhythms(
                train, val, periods, rows, histories=tcfg.glm_history, l2s=tcfg.glm_l2,
                slow_shifts=SLOW_SHIFTS, oscillators=pairs)
            out[name] = {
                "test": scores(test, slow.predict_log_rates(test, val))["bits_per_spike"],
                "val": scores(val, slow.predict_log_rates(val, train))["bits_per_spike"],
                "coupling": slow.coupling, "history": slow.history, "l2": slow.l2,
                "slow_shifts": list(slow.slow_shifts),
                "oscillators": [list(p) for p in slow.oscillators],
                "rhythm_periods": list(periods),
                **({"rhythms_found": list(found), "val_by_rhythms": val_by_k}
                   if name == "glm_rhythms" else {})}
    if "glm_given_latents" in which:
        latents = [rec.meta["latents"][slice(*rec.meta["bins"])] for rec in (train, val, test)]
        oracle, _ = tune_glm(train, val, tcfg.glm_history, tcfg.glm_l2,
                             covariates=(latents[0], latents[1]))
        out["glm_given_latents"] = {
            "test": scores(test, oracle.predict_log_rates(test, val, latents[2]))[
                "bits_per_spike"],
            "val": scores(val, oracle.predict_log_rates(val, train, latents[1]))[
                "bits_per_spike"],
            "coupling": oracle.coupling, "history": oracle.history, "l2": oracle.l2}
    return out


def added_latent_glms(dataset: str, base: dict) -> dict:
    """The :func:`latent_glms` that baselines written before them lack (``--resume``)."""
    import torch

    from est.sw.train import get_data

    torch.set_num_threads(1)
    train, val, test = get_data(DATASETS[dataset])
    return latent_glms(train, val, test, set(LATENT_GLMS) - set(base))


def job(dataset: str, variant: str, seed: int, steps: int | None) -> tuple[str, str, int, dict]:
    """One training and evaluation of a variant with a seed."""
    import torch

    from est.sw.est import ESTConfig
    from est.sw.train import TrainConfig, run

    torch.set_num_threads(1)
    keys = VARIANTS[variant]
    mcfg = replace(ESTConfig(), seed=seed, **{k: v for k, v in keys.items()
                                              if k not in TRAIN_KEYS})
    tcfg = replace(TrainConfig(), seed=seed, **({} if steps is None else {"steps": steps}),
                   **{k: v for k, v in keys.items() if k in TRAIN_KEYS})
    _, result, _ = run(DATASETS[dataset], mcfg, tcfg, progress=False, baselines=False)
    firing = result.get("integer", {}).get("firing_rates", {})
    return dataset, variant, seed, {
        "float_test": result["float"]["test"]["bits_per_spike"],
        "float_val": result["float"]["val"]["bits_per_spike"],
        "integer_test": result.get("integer", {}).get("test", {}).get("bits_per_spike"),
        "attention_firing": {k: v for k, v in firing.items() if ".attn/" in k},
        "chosen_step": result["selection"]["chosen_step"],
        "qat_step": result["selection"].get("qat", {}).get("chosen_step"),
        "qat_ran": result["selection"].get("qat", {}).get("ran"),
        "seconds": result["seconds"]}


def spread(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)),
            "max": float(np.max(values)), "n": len(values)}


def summarize(runs: dict, base: dict) -> dict:
    """Per data set and variant: the spread of every figure, and the difference of its mean
    from the default's; the GLM and the other baselines beside them."""
    out = {}
    for dataset, by_variant in runs.items():
        rows = {}
        for variant, by_seed in by_variant.items():
            if not by_seed:  # none run yet on this data set (--resume of another one)
                continue
            rows[variant] = {f: spread([r[f] for r in by_seed.values()]) for f in FIGURES
                             if all(r[f] is not None for r in by_seed.values())}
        default = rows.get("default", {}).get("float_test", {}).get("mean")
        for row in rows.values():
            if default is not None and "float_test" in row:
                row["float_test_minus_default"] = row["float_test"]["mean"] - default
        out[dataset] = {"baselines": base.get(dataset), "variants": rows}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per variant")
    parser.add_argument("--dataset", action="append", choices=sorted(DATASETS))
    parser.add_argument("--variant", action="append", choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, help="training steps (default: est-train's)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--resume", action="store_true",
                        help="keep the baselines and runs already in --out")
    parser.add_argument("--out", type=Path, default=Path("bench/results/est.json"))
    args = parser.parse_args()
    datasets, variants = args.dataset or list(DATASETS), args.variant or list(VARIANTS)
    commit = os.environ.get("EST_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    t0 = time.perf_counter()
    base: dict = {}
    runs: dict = {d: {v: {} for v in variants} for d in datasets}
    if args.resume and args.out.exists():
        before = json.loads(args.out.read_text())
        if before.get("steps") != args.steps:
            raise SystemExit(f"bench_est: {args.out} was run with --steps {before.get('steps')}, "
                             f"not {args.steps}; resume with the same steps or start afresh")
        for d in before["runs"]:  # every data set of the file is kept, run or not
            if before["summary"].get(d, {}).get("baselines"):
                base[d] = before["summary"][d]["baselines"]
                if not set(LATENT_GLMS) <= set(base[d]):  # added since
                    base[d].update(added_latent_glms(d, base[d]))
            runs.setdefault(d, {})
            for v, by_seed in before["runs"][d].items():
                runs[d][v] = {int(s): r for s, r in by_seed.items() if int(s) < args.seeds}
    # seed by seed: a run stopped part-way has every variant at the lower seeds
    todo = [(d, v, s) for s in range(args.seeds) for d in datasets for v in variants
            if s not in runs[d].get(v, {})]
    total = sum(d not in base for d in datasets) + len(todo)

    def write(complete: bool) -> None:
        out = {"complete": complete, "summary": summarize(runs, base), "runs": runs,
               "datasets": {d: DATASETS[d] for d in runs},
               "variants": {v: VARIANTS[v] for v in VARIANTS
                            if any(v in by_variant for by_variant in runs.values())},
               "seeds": args.seeds,
               "steps": args.steps, "wall_seconds": round(time.perf_counter() - t0, 1),
               "machine": {"cpus": os.cpu_count(), "jobs": args.jobs,
                           "python": platform.python_version()}}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")

    done = 0
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(baselines, d) for d in datasets if d not in base]
        futures += [pool.submit(job, d, v, s, args.steps) for d, v, s in todo]
        for future in futures:
            result = future.result()
            done += 1
            if len(result) == 2:
                base[result[0]] = result[1]
                print(f"bench_est [{done}/{total}] {result[0]}: GLM "
                      f"{result[1]['glm']['test']:.4f} (history {result[1]['glm']['history']}, "
                      f"l2 {result[1]['glm']['l2']:g}), true rates "
                      f"{result[1]['true_rates']:.4f} bits/spike", flush=True)
            else:
                dataset, variant, seed, row = result
                runs[dataset][variant][seed] = {**row, "commit": commit}
                integer = row["integer_test"]
                print(f"bench_est [{done}/{total}] {dataset} {variant} seed {seed}: float "
                      f"{row['float_test']:.4f}, integer "
                      f"{'-' if integer is None else f'{integer:.4f}'} bits/spike "
                      f"({row['seconds']} s)", flush=True)
            write(False)
    write(True)
    print(f"\n{'data set':<10} {'variant':<16} {'float test':>22} {'integer test':>12}")
    for dataset, entry in summarize(runs, base).items():
        b = entry["baselines"]
        print(f"{dataset:<10} {'GLM (tuned)':<16} {b['glm']['test']:>22.4f}")
        for variant, row in entry["variants"].items():
            f = row["float_test"]
            i = row.get("integer_test", {}).get("mean")
            print(f"{dataset:<10} {variant:<16} {f['mean']:>8.4f} [{f['min']:.4f}, "
                  f"{f['max']:.4f}] {'-' if i is None else f'{i:.4f}':>12}")
    print(f"wrote {args.out} ({round(time.perf_counter() - t0)} s); NLB bits/spike on the test "
          f"split, mean [min, max] over {args.seeds} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
