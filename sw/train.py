"""``est-train --config FILE``: train an EST on a recording (synthetic by default), evaluate the
float, integer and ANN forms, and write ``model.pt`` and ``metrics.json``.

Config (TOML or YAML), every key optional:

    [data]   synthetic population: n_neurons, bins, seed, ...  |  path = "counts.npz" (or .npy)
             |  spike_times = "spikes.npz", bin_width = 0.01 (seconds)
    [model]  any ESTConfig field (d_model, blocks, attention, sew, cpg, tpu, rsm, ...)
    [train]  steps, batch, seq_len, lr, weight_decay, warmup, clip, loss (poisson | negbin),
             qat_steps, weight_bits, seed

Flags override the file: ``--set model.d_model=16 --set train.steps=50``.
"""

import argparse
import json
import math
import time
import tomllib
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from est import EstError
from est.cli import Command, staged_output
from est.sw import metrics
from est.sw.data import (
    PopulationConfig,
    Recording,
    load_counts,
    load_spike_times,
    simulate_population,
    split_by_time,
)
from est.sw.est import EST, ESTConfig, config_dict
from est.sw.glm import fit_glm, true_rate_log_rates


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 400
    batch: int = 16
    seq_len: int = 64
    lr: float = 1e-2
    weight_decay: float = 1e-2
    warmup: float = 0.05
    clip: float = 1.0
    loss: str = "poisson"  # poisson | negbin
    qat_steps: int = 60
    weight_bits: int = 8
    seed: int = 0

    def validate(self) -> "TrainConfig":
        checks = [(self.loss in ("poisson", "negbin"), "loss: poisson | negbin"),
                  (self.steps >= 1 and self.qat_steps >= 0, "steps >= 1, qat_steps >= 0"),
                  (self.batch >= 1 and self.seq_len >= 2, "batch >= 1, seq_len >= 2"),
                  (self.lr > 0 and self.weight_decay >= 0 and self.clip > 0,
                   "lr > 0, weight_decay >= 0, clip > 0"),
                  (0 <= self.warmup < 1, "warmup: a fraction of the steps in [0, 1)"),
                  (2 <= self.weight_bits <= 16, "weight_bits: 2..16")]
        for ok, what in checks:
            if not ok:
                raise EstError(f"config [train]: {what}")
        return self


def _check_type(section: str, key: str, value, f) -> None:
    """Refuse a value whose type differs from the field's default (a float field takes an
    integer too; a field without a default or with None takes anything)."""
    default = f.default if f.default is not MISSING else (
        f.default_factory() if f.default_factory is not MISSING else None)
    if default is None:
        return
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,),
                tuple: (list, tuple), list: (list, tuple)}.get(type(default))
    if expected and (not isinstance(value, expected)
                     or (isinstance(value, bool) and type(default) is not bool)):
        raise EstError(f"config [{section}]: {key} = {value!r} has type "
                       f"{type(value).__name__}; expected {type(default).__name__} (like "
                       f"{default!r})")


def _typed(cls, values: dict, section: str):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise EstError(f"config [{section}]: unknown key(s) {unknown}; known: {sorted(known)}")
    out = {}
    for key, value in values.items():
        _check_type(section, key, value, known[key])
        out[key] = tuple(value) if isinstance(value, list) else value
    try:
        obj = cls(**out)
        return obj.validate() if hasattr(obj, "validate") else obj
    except (TypeError, ValueError) as e:
        raise EstError(f"config [{section}]: {e}") from None


def _parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path: Path | None, overrides: list[str]) -> tuple[dict, ESTConfig, TrainConfig]:
    """Read a TOML/YAML config and apply ``section.key=value`` overrides."""
    doc: dict = {}
    if path is not None:
        try:
            text = Path(path).read_text()
            doc = (yaml.safe_load(text) if Path(path).suffix in (".yaml", ".yml")
                   else tomllib.loads(text)) or {}
        except FileNotFoundError:
            raise EstError(f"{path}: no such config file") from None
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
            raise EstError(f"{path}: not valid TOML/YAML ({e})") from None
        if not isinstance(doc, dict):
            raise EstError(f"{path}: expected sections data, model, train")
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in ("data", "model", "train"):
            raise EstError(f"--set {item!r}: expected section.key=value with section one of "
                           f"data, model, train")
        doc.setdefault(section, {})[name] = _parse_value(value)
    unknown = sorted(set(doc) - {"data", "model", "train"})
    if unknown:
        raise EstError(f"config: unknown section(s) {unknown}; expected data, model, train")
    return (doc.get("data", {}), _typed(ESTConfig, doc.get("model", {}), "model"),
            _typed(TrainConfig, doc.get("train", {}), "train"))


def get_data(data: dict) -> tuple[Recording, Recording, Recording]:
    """The recording named by the ``[data]`` section, split 70/15/15 in time: ``path`` (binned
    counts), ``spike_times`` with ``bin_width`` (and optionally ``n_neurons``), or else the
    synthetic population (every other key a :class:`PopulationConfig` field)."""
    for key, allowed in (("path", {"path"}),
                         ("spike_times", {"spike_times", "bin_width", "n_neurons"})):
        if key in data:
            extra = sorted(set(data) - allowed)
            if extra:
                raise EstError(f"config [data]: with '{key}', only {sorted(allowed)} are "
                               f"allowed; remove {extra}")
            if key == "path":
                return split_by_time(load_counts(data["path"]))
            if "bin_width" not in data:
                raise EstError("config [data]: 'spike_times' needs 'bin_width' (seconds)")
            return split_by_time(load_spike_times(data["spike_times"], data["bin_width"],
                                                  data.get("n_neurons")))
    cfg = _typed(PopulationConfig, {k: v for k, v in data.items() if k != "synthetic"}, "data")
    return split_by_time(simulate_population(cfg))


def _lr(step: int, total: int, cfg: TrainConfig) -> float:
    warm = max(1, int(cfg.warmup * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _loss(log_rates, target, cfg: TrainConfig, log_disp):
    if cfg.loss == "poisson":
        return F.poisson_nll_loss(log_rates, target, log_input=True, full=False)
    mu, r = log_rates.exp(), log_disp.exp()
    return -(torch.lgamma(target + r) - torch.lgamma(r) + r * (r.log() - (r + mu).log())
             + target * (log_rates - (r + mu).log())).mean()


def fit(model: EST, train: Recording, cfg: TrainConfig, steps: int, desc: str,
        progress: bool = True) -> list[float]:
    """AdamW, warm-up then cosine decay, gradient clipping, on random crops of ``train``."""
    if len(train.counts) < cfg.seq_len + 2:
        raise EstError(f"training split has {len(train.counts)} bins, fewer than seq_len + 2 = "
                       f"{cfg.seq_len + 2}; use more data or a shorter [train] seq_len")
    rng = np.random.default_rng(cfg.seed)
    log_disp = torch.zeros(train.counts.shape[1], requires_grad=True)
    params = list(model.parameters()) + ([log_disp] if cfg.loss == "negbin" else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    counts = torch.as_tensor(train.counts, dtype=torch.float32)
    losses = []
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        starts = rng.integers(0, len(counts) - cfg.seq_len - 1, cfg.batch)
        idx = torch.as_tensor(starts)[None, :] + torch.arange(cfg.seq_len + 1)[:, None]
        seq = counts[idx]  # [L+1, B, N]
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, cfg)
        out = model(seq[:-1], torch.as_tensor(starts))
        loss = _loss(out, seq[1:], cfg, log_disp)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}")
    return losses


def scores(rec: Recording, log_rates: np.ndarray, mean_rates: np.ndarray) -> dict:
    """Metrics of ``log_rates[t]``, the prediction of ``counts[t]`` made from bins before t."""
    lr = np.clip(log_rates, -20, 20)
    out = {"bits_per_spike": metrics.bits_per_spike(rec.counts, lr, mean_rates),
           "poisson_nll": metrics.poisson_nll(rec.counts, lr)}
    if rec.rates is not None:
        out["r2"] = metrics.r2(rec.rates, np.exp(lr))
    return out


def next_bin(out: np.ndarray, mean_rates: np.ndarray) -> np.ndarray:
    """Align the EST's outputs (row t predicts bin t + 1) with the counts they predict; bin 0,
    which nothing precedes, gets the mean-rate prediction."""
    return np.vstack([np.log(np.maximum(mean_rates, 1e-3))[None, :], out[:-1]])


def float_log_rates(model: EST, rec: Recording) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        x = torch.as_tensor(rec.counts, dtype=torch.float32)[:, None, :]
        out = model(x)[:, 0].numpy().astype(np.float64)
    model.train()
    return out


def integer_log_rates(model: EST, train: Recording, rec: Recording, weight_bits: int):
    from est.compiler.est_quantize import quantize_est
    from est.sw.est_integer import integer_forward

    calib = np.minimum(train.counts[:2000], 1)
    net, report = quantize_est(model, "est", calib, weight_bits=weight_bits)
    values = integer_forward(net, np.minimum(rec.counts, 1))["readout/v"]
    return values / net.readout_scale, net, report


def save_checkpoint(model: EST, path: Path, extra: dict) -> None:
    torch.save({"format": "est-checkpoint", "version": 1, "arch": "est",
                "config": config_dict(model.cfg), "extra": extra,
                "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}},
               path)


def run(data: dict, mcfg: ESTConfig, tcfg: TrainConfig, progress: bool = True,
        baselines: bool = True) -> tuple[EST, dict, np.ndarray]:
    """Train and evaluate; return the model, the metrics and the training mean rates."""
    t0 = time.perf_counter()
    torch.manual_seed(tcfg.seed)
    train, val, test = get_data(data)
    mcfg = replace(mcfg, n_in=train.counts.shape[1], n_out=train.counts.shape[1])
    model = EST(mcfg)
    mean_rates = train.counts.mean(axis=0)
    with torch.no_grad():  # start from the mean-rate model rather than one spike per bin
        model.readout.bias.copy_(torch.as_tensor(np.log(np.maximum(mean_rates, 1e-3))))
    losses = fit(model, train, tcfg, tcfg.steps, "train", progress)
    result = {"config": {"model": config_dict(mcfg), "train": asdict(tcfg), "data": data},
              "final_loss": losses[-1] if losses else None}
    if mcfg.mode == "snn" and tcfg.qat_steps:
        model.set_fake_quant(tcfg.weight_bits)
        qcfg = replace(tcfg, lr=tcfg.lr * 0.1, warmup=0.0, seed=tcfg.seed + 1)
        fit(model, train, qcfg, tcfg.qat_steps, "quantization-aware", progress)
        model.set_fake_quant(None)
    result["float"] = {
        split: scores(rec, next_bin(float_log_rates(model, rec), mean_rates), mean_rates)
        for split, rec in (("val", val), ("test", test))}
    if mcfg.mode == "snn":
        ilr, _, qreport = integer_log_rates(model, train, test, tcfg.weight_bits)
        result["integer"] = {"test": scores(test, next_bin(ilr, mean_rates), mean_rates),
                             "quantization": qreport}
    if baselines:
        glm = fit_glm(train)
        result["glm"] = {"test": scores(test, glm.predict_log_rates(test), mean_rates)}
        if test.rates is not None:
            result["true_rates"] = {"test": scores(test, true_rate_log_rates(test), mean_rates)}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return model, result, mean_rates


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML or YAML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override a config value")
    parser.add_argument("--out", type=Path, default=Path("runs/est"), help="output folder")


def train(args: argparse.Namespace) -> int:
    data, mcfg, tcfg = load_config(args.config, args.overrides)
    model, result, mean_rates = run(data, mcfg, tcfg, progress=not args.quiet)
    with staged_output(args.out, "metrics.json") as tmp:
        save_checkpoint(model, tmp / "model.pt", {"train_mean_rates": mean_rates.tolist()})
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    f, i = result["float"]["test"], result.get("integer", {}).get("test")
    print(f"est-train: wrote {args.out}/model.pt and metrics.json ({result['seconds']} s); "
          f"test bits/spike float {f['bits_per_spike']:.4f}"
          + (f", integer {i['bits_per_spike']:.4f}" if i else "")
          + (f", GLM {result['glm']['test']['bits_per_spike']:.4f}" if "glm" in result else ""))
    return 0


TRAIN = Command(
    "train", "Train an EST on a recording (the seeded synthetic population by default); write "
    "model.pt and metrics.json (est-train).", configure, train,
    "  est-train --out runs/est\n"
    "  est-train --config examples/est_tiny.toml --set train.steps=200 --out runs/tiny\n"
    "  est-train --config est.toml --set model.attention='ssa' --out runs/ssa")
main = TRAIN.main
run_main = TRAIN.script
