"""Do rhythmic covariates pay? A lead for issue 17: writes bench/results/oscillators.json.

The EST's slow readouts (leaky integrators of the input counts over about 4-128 bins) take it
to the GLM with the same slow means, 0.3835 bits/spike on the standard population
(bench/results/est.json), short of issue 17's aim (about 0.42, what a GLM given the true
latents scores). The population's latents are rhythms of 20-200 bins plus slow noise; an
exponential window cannot hold their phase. This bench asks whether damped oscillators of the
input counts made of shifts and adds only (:func:`est.sw.glm.oscillator_means`, the magic-circle
rotation, which a core readout could run exactly in integers) carry more of them: for each
data seed of the standard population (:class:`est.sw.data.PopulationConfig`, 24 neurons,
24,000 bins, split 70/15/15 in time), two GLMs of full coupling and 2 bins of history (the
choice of est-train's whole-grid tuning for ``glm_slow`` on seed 0):

- ``glm_slow``: every neuron's slow means (:data:`est.sw.glm.SLOW_SHIFTS`), est-train's baseline;
- ``glm_slow_oscillators``: the same plus every neuron's oscillator pairs
  (:data:`est.sw.glm.OSCILLATORS`: periods of about 25-201 bins);
- ``glm_slow_oscillators_board``: the slow means plus the two oscillators of periods about 50
  and 101 bins, both with leak shift 7 (``BOARD_OSCILLATORS``): est_small with its six slow
  readouts and these two sends 9 x 24 = 216 output words a bin, within the iCEBreaker board
  top's 224 (four send 264), and a readout's weights take 8 + leak shift bits, at most the
  core's 15;
- ``glm_slow_rhythms``: the slow means plus the ``RHYTHMS`` fitted rhythms
  (:func:`est.sw.glm.rhythm_covariates`: each a sinusoid of a period found in the training
  split's counts, :func:`est.sw.glm.find_rhythms`, through a table of 32 phases of 3-bit
  values read by a phase accumulator, exactly as the hardware's ``table`` node), est-train's
  ``train.find_rhythms = 3``;
- ``glm_slow_oscillators_board_rhythms``: the board's two oscillators and the rhythms too
  (examples/est_small's inputs);
- ``glm_slow_oscillators_tuned``: the slow means plus an oscillator tuned to each of the
  ``RHYTHMS`` rhythms found (:func:`est.sw.glm.tuned_oscillator`: leak shift 7, a rotation
  ``c 2^-m`` near the rhythm's, on the core's oscillator multiplier), est-train's
  ``train.find_oscillators = 3``: causal, so it follows a rhythm whose phase drifts, which a
  fitted rhythm's table does not;
- ``glm_slow_oscillators_tuned_board``: those and the board's two.

Each has its L2 chosen on the validation split (``L2S``, warm-started from the largest), and
is scored on the test split (NLB bits per spike; the models warm up on every bin before the
split: the covariates run over the whole recording, causally). Per seed: the grid, the choice,
the test score; over seeds: mean, min and max. The data alone, no training: about 2 minutes a
seed on an idle core, 15 on a loaded 2-core machine.

    .venv/bin/python bench/bench_oscillators.py [--seeds 3] [--jobs 2]
        [--out bench/results/oscillators.json]
"""

import argparse
import json
import os
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from est.sw.glm import OSCILLATORS

L2S = (1e-3, 1e-4, 1e-5, 1e-6)
"""The L2 weights tried, largest first (each fit warm-starts the next)."""
HISTORY = 2
BOARD_OSCILLATORS = ((3, 7), (4, 7))
RHYTHMS = 3
MODELS = {"glm_slow": ((), 0), "glm_slow_oscillators": (OSCILLATORS, 0),
          "glm_slow_oscillators_board": (BOARD_OSCILLATORS, 0),
          "glm_slow_rhythms": ((), RHYTHMS),
          "glm_slow_oscillators_board_rhythms": (BOARD_OSCILLATORS, RHYTHMS),
          "glm_slow_oscillators_tuned": ("tuned", 0),
          "glm_slow_oscillators_tuned_board": ("tuned", 0)}
"""Each model's oscillators ("tuned": one tuned to each rhythm found, with the board's two
for ``..._board``) and number of fitted rhythms (all have the slow means)."""


def covariates(model: str, counts: np.ndarray, periods: list[float]) -> np.ndarray:
    """Over the whole recording from its first bin; ``periods``: the rhythms found."""
    from est.sw.glm import SLOW_SHIFTS, own_covariates, rhythm_advance, tuned_oscillator

    pairs, rhythms = MODELS[model]
    if pairs == "tuned":
        pairs = tuple(tuned_oscillator(p) for p in periods) + (
            BOARD_OSCILLATORS if model.endswith("_board") else ())
    advances = tuple(rhythm_advance(p) for p in periods)
    return own_covariates(counts, SLOW_SHIFTS, pairs, advances if rhythms else ())


def run_seed(seed: int) -> dict:
    """Both GLMs on the standard population of data seed ``seed``."""
    import torch

    from est.sw import metrics
    from est.sw.data import PopulationConfig, simulate_population, split_by_time
    from est.sw.glm import fit_glm, rhythm_periods, tuned_oscillator

    torch.set_num_threads(1)
    train, val, test = split_by_time(simulate_population(PopulationConfig(seed=seed)))
    counts = np.vstack([train.counts, val.counts, test.counts]).astype(np.float64)
    n_train, n_val = train.n_bins, val.n_bins
    periods = rhythm_periods(train.counts, RHYTHMS)  # as est-train's train.find_rhythms
    out = {"rhythm_periods": periods,
           "tuned_oscillators": [list(tuned_oscillator(p)) for p in periods]}
    for model in MODELS:
        t0 = time.perf_counter()
        cov = covariates(model, counts, periods)
        parts = {"train": cov[:n_train], "val": cov[n_train:n_train + n_val],
                 "test": cov[n_train + n_val:]}
        grid, best, start = [], None, None
        for l2 in L2S:
            glm = fit_glm(train, HISTORY, l2, coupling="full", covariates=parts["train"],
                          start=start)
            start = glm
            scored = {}
            for split, rec, before in (("val", val, train), ("test", test, val)):
                log_rates = glm.predict_log_rates(rec, before, covariates=parts[split])
                scored[split] = metrics.bits_per_spike(rec.counts, np.clip(log_rates, -20, 20))
            grid.append({"l2": l2, "val_bits_per_spike": scored["val"],
                         "test_bits_per_spike": scored["test"], "converged": glm.converged})
            if best is None or scored["val"] > best["val_bits_per_spike"]:
                best = grid[-1]
        out[model] = {"covariates": cov.shape[1], "history": HISTORY, "coupling": "full",
                      "l2": best["l2"], "val_bits_per_spike": best["val_bits_per_spike"],
                      "test_bits_per_spike": best["test_bits_per_spike"], "grid": grid,
                      "seconds": round(time.perf_counter() - t0, 1)}
        print(f"bench_oscillators seed {seed} {model}: l2 {best['l2']:g}, test "
              f"{best['test_bits_per_spike']:.4f} bits/spike", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/oscillators.json"))
    args = parser.parse_args()
    from est.sw.glm import SLOW_SHIFTS

    commit = os.environ.get("EST_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = dict(zip(range(args.seeds), pool.map(run_seed, range(args.seeds)), strict=True))
    summary = {}
    for model in MODELS:
        test = [r[model]["test_bits_per_spike"] for r in runs.values()]
        summary[model] = {"mean": float(np.mean(test)), "min": min(test), "max": max(test)}
    for model, name in (("glm_slow_oscillators", "gain"),
                        ("glm_slow_oscillators_board", "gain_board"),
                        ("glm_slow_rhythms", "gain_rhythms"),
                        ("glm_slow_oscillators_tuned", "gain_tuned"),
                        ("glm_slow_oscillators_tuned_board", "gain_tuned_board"),
                        ("glm_slow_oscillators_board_rhythms", "gain_board_rhythms")):
        gain = [r[model]["test_bits_per_spike"] - r["glm_slow"]["test_bits_per_spike"]
                for r in runs.values()]
        summary[name] = {"mean": float(np.mean(gain)), "min": min(gain), "max": max(gain)}
    result = {"bench": "oscillators", "commit": commit, "date": time.strftime("%Y-%m-%d"),
              "data": "standard population (PopulationConfig defaults), data seed = seed",
              "slow_shifts": list(SLOW_SHIFTS),
              "oscillators": {m: pairs if pairs == "tuned" else [list(p) for p in pairs]
                              for m, (pairs, _) in MODELS.items()},
              "rhythms": {m: r for m, (_, r) in MODELS.items()},
              "metric": "NLB bits/spike on the test split (null: each neuron's mean there)",
              "runs": {str(k): v for k, v in runs.items()}, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench_oscillators: wrote {args.out}: glm_slow {summary['glm_slow']['mean']:.4f}, "
          f"with oscillators {summary['glm_slow_oscillators']['mean']:.4f} (mean over "
          f"{args.seeds} seeds; gain {summary['gain']['min']:+.4f}..{summary['gain']['max']:+.4f});"
          f" with the board's two {summary['glm_slow_oscillators_board']['mean']:.4f} (gain "
          f"{summary['gain_board']['min']:+.4f}..{summary['gain_board']['max']:+.4f}); with "
          f"{RHYTHMS} fitted rhythms {summary['glm_slow_rhythms']['mean']:.4f}, with the "
          f"board's two and the rhythms {summary['glm_slow_oscillators_board_rhythms']['mean']:.4f}"
          f" (gain {summary['gain_board_rhythms']['min']:+.4f}.."
          f"{summary['gain_board_rhythms']['max']:+.4f}); with oscillators tuned to the rhythms "
          f"{summary['glm_slow_oscillators_tuned']['mean']:.4f} (gain "
          f"{summary['gain_tuned']['min']:+.4f}..{summary['gain_tuned']['max']:+.4f}), and the "
          f"board's two {summary['glm_slow_oscillators_tuned_board']['mean']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
