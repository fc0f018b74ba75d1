"""Model quality in the regimes of real recordings: writes bench/results/regimes.json.

Each regime is a seeded synthetic population (:class:`est.sw.data.PopulationConfig`) that
looks like a hard case of real data; ``standard`` is the default population:

- ``short``: 800 bins (a few minutes of a recording at 20 ms bins, or less);
- ``low_rate``: baselines -3.6..-2.8, about 0.03-0.06 spikes per bin;
- ``silent``: a quarter of the units nearly silent (baseline 8 lower);
- ``drift``: every baseline drifts over the recording (``drift`` 3: the test split's rates
  differ from the training split's);
- ``counts``: baselines -0.5..1, 0.5-1.3 spikes per bin, counts of 2-5 common;
- ``recording_like``: short, low rate, 20% silent units and drift at once.

For every regime and seed, est-train's recipe (``est.sw.train.run``: the default EST and
training config, ``--steps`` to change the budget) gives NLB bits per spike on the test split
for the float EST, the integer EST, the GLM tuned on the validation split, the true rates, and
the training split's mean rates and the validation split's (constant-rate models fitted out of
sample, the second on the bins just before the test split: below 0 when the rates drift, and
on a short test split because the NLB null, each neuron's mean over the test split itself, is
fitted in sample; it is 0 by definition), and the running mean (``est.sw.glm.RunningMean``:
each neuron's exponentially weighted mean count over the bins before, its window and prior
weight chosen on validation: a causal model that follows a drifting rate; it needs the data
alone, so ``--resume`` adds it to runs made before it existed without training again). And
``true_mean_rates``, an oracle of the null's form: each neuron's constant rate is the mean of
its true rates over the test bins (what the NLB null estimates from the test counts). It is
below 0 by what the null gains from fitting its rates to the test counts themselves: on a
short, low-rate test split, the bits per spike a model must take from the dynamics (latents,
coupling) beyond knowing every neuron's rate exactly (data only, added by ``--resume`` too).
Each run also records the training step chosen on validation (``chosen_step``) and whether
quantization-aware fine-tuning ran and the step it chose (``qat``). Per regime: every seed's
figures, and the mean, min and max over seeds. Runs ``--jobs``
trainings at a time, one thread each; the JSON is written after every run (``complete`` false
until every regime in it has every seed), with the commit of each run (``EST_COMMIT``, else
git's HEAD); ``--resume`` keeps the runs already in ``--out`` (of the same steps) and does only
the rest.

    .venv/bin/python bench/bench_regimes.py [--seeds 3] [--steps N] [--regime NAME ...]
        [--jobs 2] [--resume] [--out bench/results/regimes.json]
"""

import argparse
import json
import os
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

import numpy as np

REGIMES = {
    "standard": {},
    "short": {"bins": 800},
    "low_rate": {"baseline_range": [-3.6, -2.8]},
    "silent": {"silent_fraction": 0.25},
    "drift": {"drift": 3.0},
    "counts": {"baseline_range": [-0.5, 1.0]},
    "recording_like": {"bins": 800, "baseline_range": [-3.6, -2.6], "silent_fraction": 0.2,
                       "drift": 2.0},
}
DATA_ONLY = ("running_mean", "true_mean_rates")
MODELS = ("float_est", "integer_est", "glm", "train_mean", "val_mean", *DATA_ONLY,
          "true_rates")


def data_only(regime: str, seed: int) -> dict:
    """The test bits per spike of the models that need the data alone on ``regime`` and
    ``seed``: the running mean (run on from the start of the recording; its window and prior
    weight chosen on validation, returned as ``running_mean_choice``) and the true mean
    rates."""
    from est.sw.data import Recording
    from est.sw.glm import tune_running_mean
    from est.sw.metrics import bits_per_spike
    from est.sw.train import get_data

    train, val, test = get_data({**REGIMES[regime], "seed": seed})
    model = tune_running_mean(train, val)
    before = Recording(np.vstack([train.counts, val.counts]))
    bits = {"running_mean": bits_per_spike(test.counts, model.predict_log_rates(test, before))}
    oracle = np.log(test.rates.mean(axis=0))
    bits["true_mean_rates"] = bits_per_spike(test.counts,
                                             np.broadcast_to(oracle, test.counts.shape))
    return {"bits_per_spike": bits,
            "running_mean_choice": {"shift": model.shift, "prior_bins": model.prior_bins}}


def job(regime: str, seed: int, steps: int | None) -> tuple[str, int, dict]:
    """One training and evaluation: the figures of one regime and seed."""
    import torch

    from est.sw.est import ESTConfig
    from est.sw.glm import RATE_FLOOR
    from est.sw.train import TrainConfig, get_data, run, scores

    torch.set_num_threads(1)
    data = {**REGIMES[regime], "seed": seed}
    tcfg = TrainConfig() if steps is None else replace(TrainConfig(), steps=steps)
    t0 = time.perf_counter()
    _, result, mean_rates = run(data, ESTConfig(), tcfg, progress=False)
    _, val, test = get_data(data)

    def constant(rates):
        return np.broadcast_to(np.log(np.maximum(rates, RATE_FLOOR)), test.counts.shape)

    bits = {"float_est": result["float"]["test"]["bits_per_spike"],
            "integer_est": result["integer"]["test"]["bits_per_spike"],
            "glm": result["glm"]["test"]["bits_per_spike"],
            "train_mean": scores(test, constant(mean_rates))["bits_per_spike"],
            "val_mean": scores(test, constant(val.counts.mean(axis=0)))["bits_per_spike"],
            "true_rates": result["true_rates"]["test"]["bits_per_spike"]}
    extra = data_only(regime, seed)
    return regime, seed, {
        "bits_per_spike": {**bits, **extra["bits_per_spike"]},
        "glm_choice": {k: result["glm"][k] for k in ("coupling", "history", "l2",
                                                      "slow_shifts")},
        "running_mean_choice": extra["running_mean_choice"],
        "chosen_step": result["selection"]["chosen_step"],
        "qat": {k: result["selection"]["qat"][k] for k in ("ran", "chosen_step")},
        "test_mean_rate": float(test.counts.mean()),
        "silent_in_training": len(result["silent_neurons"]["train"]),
        "seconds": round(time.perf_counter() - t0, 1)}


def every_seed(runs: dict, seeds: int) -> bool:
    """Whether every regime of the file has run seeds 0..seeds-1 (``complete`` in the JSON)."""
    return all(set(range(seeds)) <= set(by_seed) for by_seed in runs.values())


def summary(runs: dict, args, complete: bool, seconds: float) -> dict:
    """The JSON: every run so far, and per regime the mean, min and max over its seeds."""
    out = {"complete": complete, "regimes": {}, "definitions": {r: REGIMES[r] for r in runs},
           "seeds": args.seeds, "steps": args.steps, "wall_seconds": round(seconds, 1)}
    for regime, by_seed in runs.items():
        if not by_seed:
            continue
        spread = {}
        for m in MODELS:
            values = [row["bits_per_spike"][m] for row in by_seed.values()]
            spread[m] = {"mean": float(np.mean(values)), "min": min(values), "max": max(values)}
        out["regimes"][regime] = {"bits_per_spike": spread,
                                  "runs": dict(sorted(by_seed.items()))}
    return out


def write(out: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per regime")
    parser.add_argument("--steps", type=int, help="training steps (default: est-train's)")
    parser.add_argument("--regime", action="append", choices=sorted(REGIMES),
                        help="only this regime (repeat; default: all)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in --out and do only the rest")
    parser.add_argument("--out", type=Path, default=Path("bench/results/regimes.json"))
    args = parser.parse_args()
    regimes = args.regime or list(REGIMES)
    t0 = time.perf_counter()
    runs: dict[str, dict] = {r: {} for r in regimes}
    if args.resume and args.out.exists():
        before = json.loads(args.out.read_text())
        if before.get("steps") != args.steps:
            raise SystemExit(f"bench_regimes: {args.out} was run with --steps "
                             f"{before.get('steps')}, not {args.steps}; resume with the same "
                             f"steps or start afresh")
        for r, entry in before["regimes"].items():  # every regime of the file is kept
            runs[r] = {int(s): row for s, row in entry["runs"].items() if int(s) < args.seeds}
            for s, row in runs[r].items():  # the models of the data alone, added since
                if not set(DATA_ONLY) <= set(row["bits_per_spike"]):
                    extra = data_only(r, s)
                    row["bits_per_spike"].update(extra["bits_per_spike"])
                    row["running_mean_choice"] = extra["running_mean_choice"]
    commit = os.environ.get("EST_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    # seed-major: a partial JSON covers every regime
    todo = [(r, s) for s in range(args.seeds) for r in regimes if s not in runs[r]]
    total = len(todo)
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(job, r, s, args.steps) for r, s in todo]
        for done, future in enumerate(as_completed(futures), 1):
            regime, seed, row = future.result()
            runs[regime][seed] = {**row, "commit": commit}
            print(f"bench_regimes [{done}/{total}] {regime} seed {seed}: " + ", ".join(
                f"{m} {v:.4f}" for m, v in row["bits_per_spike"].items())
                + f" ({row['seconds']} s)", flush=True)
            write(summary(runs, args, every_seed(runs, args.seeds), time.perf_counter() - t0),
                  args.out)
    out = summary(runs, args, every_seed(runs, args.seeds), time.perf_counter() - t0)
    write(out, args.out)  # also when --resume had only the data-only models to add
    print(f"\n{'regime':<15}" + "".join(f"{m:>16}" for m in MODELS))
    for regime, row in out["regimes"].items():
        print(f"{regime:<15}" + "".join(
            f"{row['bits_per_spike'][m]['mean']:>16.4f}" for m in MODELS))
    print(f"wrote {args.out} ({out['wall_seconds']} s); bits/spike on the test split, mean over "
          f"{args.seeds} seeds (min and max in the JSON)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
