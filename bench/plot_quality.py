"""Model quality as a picture: bench/results/est.json and regimes.json -> quality.png.

Left: the ablation on each data set of ``est.json`` (float EST, test bits/spike, the mean over
seeds with the min-max range as a bar), beside the tuned GLM and the true rates as lines.
Right: every regime of ``regimes.json`` (float and integer EST, tuned GLM, the running mean,
the training and validation splits' mean rates, the true mean rates, true rates; mean and
min-max over seeds), with the NLB null model at 0. Runs that are not in the JSON yet
(``complete`` false) are simply not drawn; the title gives the seeds each point averages.

    .venv/bin/python bench/plot_quality.py [--est bench/results/est.json]
        [--regimes bench/results/regimes.json] [--out bench/results/quality.png]
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REGIME_MODELS = (("float_est", "float EST"), ("integer_est", "integer EST"), ("glm", "tuned GLM"),
                 ("running_mean", "running mean"), ("val_mean", "validation mean"),
                 ("train_mean", "training mean"), ("true_mean_rates", "true mean rates"),
                 ("true_rates", "true rates"))


def spread(values: list[float]) -> tuple[float, float, float]:
    """Mean, and the distances down to the min and up to the max."""
    mean = sum(values) / len(values)
    return mean, max(mean - min(values), 0.0), max(max(values) - mean, 0.0)


def ablation(ax, est: dict) -> None:
    """One group of bars per data set: the float EST of every variant run so far."""
    x = 0
    ticks, labels = [], []
    for dataset, entry in est["summary"].items():
        variants = {v: row for v, row in entry["variants"].items() if "float_test" in row}
        if not variants:
            continue
        start = x
        for variant, row in variants.items():
            f = row["float_test"]
            ax.bar(x, f["mean"], yerr=[[max(f["mean"] - f["min"], 0.0)],  # equal seeds: the
                                       [max(f["max"] - f["mean"], 0.0)]],  # mean's rounding
                   color="tab:blue" if variant == "default" else "tab:gray", capsize=2)
            ticks.append(x)
            labels.append(f"{variant} ({row['float_test'].get('n', '?')})")
            x += 1
        base = entry["baselines"]
        if base:
            ax.hlines(base["glm"]["test"], start - 0.5, x - 0.5, colors="tab:orange",
                      label="GLM, issue 17's grid" if start == 0 else None)
            if "glm_slow" in base:  # the baseline est-train reports: the GLM with slow means
                ax.hlines(base["glm_slow"]["test"], start - 0.5, x - 0.5, colors="tab:red",
                          label="GLM with slow means (tuned)" if start == 0 else None)
            ax.hlines(base["true_rates"], start - 0.5, x - 0.5, colors="tab:green",
                      linestyles="dashed", label="true rates" if start == 0 else None)
        ax.text((start + x - 1) / 2, 0.98, dataset, ha="center", va="top",
                transform=ax.get_xaxis_transform())
        x += 1
    ax.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("test bits/spike (NLB)")
    ax.set_title("EST ablation (float, mean and range over seeds; (n) seeds)", fontsize=9)
    ax.legend(fontsize=8, loc="lower left")


def regimes(ax, reg: dict) -> None:
    """Grouped bars: per regime, every model's mean with its range over seeds."""
    names = list(reg["regimes"])
    width = 0.8 / len(REGIME_MODELS)
    for i, (key, label) in enumerate(REGIME_MODELS):
        xs, means, lo, hi = [], [], [], []
        for j, regime in enumerate(names):
            runs = reg["regimes"][regime]["runs"].values()
            m, d, u = spread([r["bits_per_spike"][key] for r in runs])
            xs.append(j + (i - len(REGIME_MODELS) / 2 + 0.5) * width)
            means.append(m)
            lo.append(d)
            hi.append(u)
        ax.bar(xs, means, width, yerr=[lo, hi], label=label, capsize=1)
    seeds = {regime: len(reg["regimes"][regime]["runs"]) for regime in names}
    ax.set_xticks(range(len(names)), [f"{n} ({seeds[n]})" for n in names], rotation=30,
                  ha="right", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("test bits/spike (NLB; the null model is 0)")
    ax.set_title("hard regimes (mean and range over (n) seeds)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--est", type=Path, default=Path("bench/results/est.json"))
    parser.add_argument("--regimes", type=Path, default=Path("bench/results/regimes.json"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/quality.png"))
    args = parser.parse_args()
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    ablation(left, json.loads(args.est.read_text()))
    regimes(right, json.loads(args.regimes.read_text()))
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
