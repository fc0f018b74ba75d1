"""``est-train``: the command line of :mod:`est.sw.train` (which it imports only when it runs,
so ``est-train --help`` does not load torch)."""

import argparse
import json
import time
from pathlib import Path

from est import EstError
from est.cli import Command, staged_output


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML or YAML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--out", type=Path, default=Path("runs/est"), help="output folder")


def train(args: argparse.Namespace) -> int:
    from est.sw.train import evaluate, load_config, save_checkpoint, train_model

    data, mcfg, tcfg = load_config(args.config, args.overrides)  # the whole config, checked
    failure = None
    with staged_output(args.out, "metrics.json") as tmp:  # refuses a foreign --out up front
        trained = train_model(data, mcfg, tcfg, progress=not args.quiet)
        save_checkpoint(trained.model, tmp / "model.pt",
                        {"train_mean_rates": trained.mean_rates.tolist()})
        try:
            result = evaluate(trained)
        except Exception as e:  # any failure: keep the trained model, report the error
            failure = e
            result = {**trained.result, "evaluation_error": f"{type(e).__name__}: {e}",
                      "seconds": round(time.perf_counter() - trained.t0, 1)}
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    if failure is not None:
        what = " ".join(f"{type(failure).__name__}: {failure}".split())
        raise EstError(f"evaluation failed after training ({what}); the trained model is kept "
                       f"in {args.out / 'model.pt'} and the error in "
                       f"{args.out / 'metrics.json'}") from failure
    f, i = result["float"]["test"], result.get("integer", {}).get("test")
    print(f"est-train: wrote {args.out}/model.pt and metrics.json ({result['seconds']} s); "
          f"test bits/spike float {f['bits_per_spike']:.4f}"
          + (f", integer {i['bits_per_spike']:.4f}" if i else "")
          + (f", GLM {result['glm']['test']['bits_per_spike']:.4f} (history "
             f"{result['glm']['history']}, l2 {result['glm']['l2']:g}, chosen on validation)"
             if "glm" in result else ""))
    return 0


TRAIN = Command(
    "train", "Train an EST on a recording (the seeded synthetic population by default); write "
    "model.pt and metrics.json (est-train).", configure, train,
    "  est-train --out runs/est\n"
    "  est-train --config examples/est_tiny.toml --set train.steps=200 --out runs/tiny\n"
    "  est-train --config est.toml --set model.attention='ssa' --out runs/ssa\n"
    "  est-train --set model.leak_shift=none --out runs/if   (no leak: leak_shift = \"none\")")
main = TRAIN.main
run_main = TRAIN.script
