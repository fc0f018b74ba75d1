"""``est-train``: the command line of :mod:`est.sw.train` (which it imports only when it runs,
so ``est-train --help`` does not load torch)."""

import argparse
import json
import sys
import time
from pathlib import Path

from est import EstError
from est.cli import Command, staged_output

MAX_THREADS = 1024
"""The most CPU threads ``--threads`` may ask torch for."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML or YAML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--out", type=Path, default=Path("runs/est"), help="output folder")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads torch uses (default: torch's, one a core); give 1 to "
                             "run several trainings side by side without slowing each other")


def _evaluated(trained, evaluate) -> tuple[dict, Exception | None]:
    """``evaluate()`` once ``model.pt`` is written: its result, or on any failure the
    training's result with the error (the trained model is kept either way); with the CPU
    threads torch ran with (``threads``)."""
    import torch

    try:
        result, failure = evaluate(), None
    except Exception as e:
        result, failure = ({**trained.result, "evaluation_error": f"{type(e).__name__}: {e}",
                            "seconds": round(time.perf_counter() - trained.t0, 1)}, e)
    return {**result, "threads": torch.get_num_threads()}, failure


def _raise_failure(args: argparse.Namespace, failure: Exception | None) -> None:
    if failure is not None:
        what = " ".join(f"{type(failure).__name__}: {failure}".split())
        raise EstError(f"evaluation failed after training ({what}); the trained model is kept "
                       f"in {args.out / 'model.pt'} and the error in "
                       f"{args.out / 'metrics.json'}") from failure


def train_mlp(args: argparse.Namespace, doc: dict) -> int:
    """A spiking MLP classifier (``model.arch = 'mlp'``): ``model.pt`` (est-compile reads it),
    ``calibration.npy`` (encoded training images: ``est-compile --calibration``) and
    ``metrics.json``."""
    import numpy as np

    from est.sw.spiking_mlp import save_checkpoint
    from est.sw.train_mlp import evaluate_mlp, mlp_config
    from est.sw.train_mlp import train_mlp as train_classifier

    data, mcfg, tcfg = mlp_config(doc)  # the whole config, checked
    with staged_output(args.out, "metrics.json", "choose another --out") as tmp:
        trained = train_classifier(data, mcfg, tcfg, progress=not args.quiet)
        save_checkpoint(trained.model, tmp / "model.pt")
        kept: dict = {}

        def evaluate() -> dict:
            result, kept["calibration"] = evaluate_mlp(trained, tmp / "model.pt")
            return result

        result, failure = _evaluated(trained, evaluate)
        if "calibration" in kept:
            np.save(tmp / "calibration.npy", kept["calibration"])
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    _raise_failure(args, failure)
    print(f"est-train: wrote {args.out}/model.pt, calibration.npy and metrics.json "
          f"({result['seconds']} s); {data.dataset} test accuracy float "
          f"{result['float']['test_accuracy']:.4f}, integer "
          f"{result['integer']['test_accuracy']:.4f} (spike agreement "
          f"{result['integer']['spike_agreement']:.4f})")
    return 0


def train(args: argparse.Namespace) -> int:
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise EstError(f"--threads must be a whole number of threads, 1..{MAX_THREADS}, got "
                       f"{args.threads}")
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from est.sw.train import (
        evaluate,
        load_config,
        model_arch,
        read_config,
        save_checkpoint,
        train_model,
    )

    doc = read_config(args.config, args.overrides)
    if model_arch(doc) == "mlp":
        return train_mlp(args, doc)
    data, mcfg, tcfg = load_config(args.config, args.overrides)  # the whole config, checked
    # refuses a foreign --out up front
    with staged_output(args.out, "metrics.json", "choose another --out") as tmp:
        trained = train_model(data, mcfg, tcfg, progress=not args.quiet)
        save_checkpoint(trained.model, tmp / "model.pt",
                        {"train_mean_rates": trained.mean_rates.tolist()})
        result, failure = _evaluated(trained, lambda: evaluate(trained))
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    _raise_failure(args, failure)
    f, i = result["float"]["test"], result.get("integer", {}).get("test")
    print(f"est-train: wrote {args.out}/model.pt and metrics.json ({result['seconds']} s); "
          f"test bits/spike float {f['bits_per_spike']:.4f}"
          + (f", integer {i['bits_per_spike']:.4f}" if i else "")
          + (f", GLM {result['glm']['test']['bits_per_spike']:.4f} (history "
             f"{result['glm']['history']}, l2 {result['glm']['l2']:g}, chosen on validation)"
             if "glm" in result else ""))
    if result["below_null"]:
        print(f"est-train: warning: the model scores below the null model (each neuron's mean "
              f"count over the split) on {' and '.join(result['below_null'])}: the rates "
              f"there differ from the training split's (drift) or the split is too short; "
              f"compare with a constant-rate model fitted on the latest bins before using "
              f"it", file=sys.stderr)
    return 0


TRAIN = Command(
    "train", "Train an EST on a recording (the seeded synthetic population by default); write "
    "model.pt and metrics.json (est-train).", configure, train,
    "  est-train --out runs/est\n"
    "  est-train --config examples/est_tiny.toml --set train.steps=200 --out runs/tiny\n"
    "  est-train --config est.toml --set model.attention='ssa' --out runs/ssa\n"
    "  est-train --threads 1 --set train.seed=1 --out runs/seed1   (one of several side by side)\n"
    "  est-train --set model.leak_shift=none --out runs/if   (no leak: leak_shift = \"none\")")
main = TRAIN.main
run_main = TRAIN.script
