"""Does training hold its GLM start? A diagnostic for issue 17: writes
bench/results/warmup.json.

est-train trains on random crops of ``burn_in + seq_len`` bins, the loss over the last
``seq_len`` (64), and validates with ``context_bins`` of warm-up before the split. The EST
starts as the GLM with slow means, fitted on fully warm means. Until 2026-12-06 the crops'
slow readouts started cold, so a burn-in of 128 bins left the slowest (leak shift 7, forgetting
over 128 bins) about 63% warm, and any training pulled validation down at once; since then
each crop starts them with the integral of every training bin before it
(:func:`est.sw.est.slow_integrals`), and ``context_bins`` is 1024. This bench asks whether
training now holds or improves on its start. On the standard population (data seed 0), the
EST of est-train's defaults (model seed 0) started as that GLM (the tuning
bench/results/est.json chose: history 2, L2 1e-5, full coupling; no grid here), trained 400
steps with validation every 50, for each of:

- ``burn_in`` 128 (the default: the blocks and the main readout warm up) and 640 (five time
  constants of the slowest readout: no different, if the slow readouts start warm);
- ``trained``: every weight trains (est-train's recipe); ``frozen``: the GLM start (readout
  bias, the readout's input-history weights, the slow readouts) is held, only the spiking
  blocks and their readout weights train, without weight decay.

Per run: the validation score every 50 steps, the step model selection chose and the float
test score (NLB bits per spike). One model seed: a diagnostic, not a figure with a spread.
About 4 minutes a run at burn-in 128 and 10 at 640 on one core.

    .venv/bin/python bench/bench_warmup.py [--jobs 2] [--out bench/results/warmup.json]
"""

import argparse
import json
import os
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

WARMUPS = ((128, 1024), (640, 1024))
"""(burn_in, context_bins) pairs: est-train's defaults, and five time constants of leak shift 7."""
STARTS = ("trained", "frozen")
STEPS = 400
GLM = {"history": 2, "l2": 1e-5, "coupling": "full"}


def run(job: tuple[int, int, str]) -> dict:
    """One training run: (burn_in, context_bins, start) -> its validation curve and scores."""
    import torch

    from est.sw import train as T
    from est.sw.est import EST, ESTConfig
    from est.sw.glm import fit_glm

    burn_in, context, start = job
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    train, val, test = T.get_data({"seed": 0})
    cfg = T.TrainConfig(steps=STEPS, burn_in=burn_in, context_bins=context)
    if start == "frozen":
        cfg = replace(cfg, weight_decay=0.0)
    torch.manual_seed(cfg.seed)
    model = EST(ESTConfig(n_in=train.counts.shape[1], n_out=train.counts.shape[1],
                          input_coupling=GLM["coupling"]))
    mean_rates = train.counts.mean(axis=0)
    T.start_readout(model, mean_rates, fit_glm(
        train, **GLM, slow_shifts=tuple(model.cfg.readout_slow_shifts)))
    if start == "frozen":
        model.readout.bias.requires_grad_(False)
        for conv in model.slow:
            conv.weight.requires_grad_(False)
        blocks = torch.zeros_like(model.readout.weight)
        blocks[:, :, :model.cfg.d_model] = 1.0  # the spikes' columns train, the inputs' do not
        model.readout.weight.register_hook(lambda grad: grad * blocks)
    result = T.fit(model, train, cfg, STEPS, "warmup", progress=False,
                   validate=T._validator(model, train, val, cfg, mean_rates))
    out = T.float_log_rates(model, T.with_context(test, val, context))
    test_score = T.scores(test, T.next_bin(out, test.n_bins, mean_rates))["bits_per_spike"]
    return {"burn_in": burn_in, "context_bins": context, "start": start,
            "validation": result["validation"], "chosen_step": result["chosen_step"],
            "val_at_start": result["validation"][0]["val_bits_per_spike"],
            "val_best_after_start": max(v["val_bits_per_spike"]
                                        for v in result["validation"][1:]),
            "float_test": test_score, "seconds": round(time.perf_counter() - t0, 1),
            "note": "frozen: readout bias, input-history and slow weights held, no weight decay"
                    if start == "frozen" else "est-train's recipe"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/warmup.json"))
    args = parser.parse_args()
    commit = os.environ.get("EST_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    jobs = [(b, c, s) for b, c in WARMUPS for s in STARTS]
    runs = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for r in pool.map(run, jobs):
            key = f"burn_in_{r['burn_in']}/{r['start']}"
            runs[key] = r
            print(f"bench_warmup: {key}: validation {r['val_at_start']:.4f} at the start, at "
                  f"best {r['val_best_after_start']:.4f} after it; chosen step "
                  f"{r['chosen_step']}; test {r['float_test']:.4f} ({r['seconds']} s)",
                  flush=True)
    result = {"bench": "warmup", "commit": commit, "date": time.strftime("%Y-%m-%d"),
              "data": "standard population, data seed 0; model and training seed 0",
              "steps": STEPS, "glm_start": GLM,
              "metric": "NLB bits/spike (null: each neuron's mean over the scored split)",
              "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench_warmup: wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
