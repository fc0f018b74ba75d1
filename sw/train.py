"""``est-train --config FILE``: train an EST on a recording (synthetic by default), evaluate the
float, integer and ANN forms, and write ``model.pt`` and ``metrics.json``.

Config (TOML or YAML), every key optional:

    [data]   synthetic population: n_neurons, bins, seed, ...  |  path = "counts.npz" (or .npy)
             |  spike_times = "spikes.npz", bin_width = 0.01 (seconds), n_neurons (optional)
             |  path = "session.nwb" (its Units table's spike times, through pynwb),
             bin_width = 0.01 (seconds), units = [ids] (optional: which units, in order)
    [model]  any ESTConfig field (d_model, blocks, attention, sew, cpg, tpu, rsm, ...);
             leak_shift = k gives the leak beta = 1 - 2**-k (k = 0..23) and leak_shift = "none"
             no leak at all (integrate and fire; TOML has no null, YAML may also write null);
             readout_leak_shift likewise
    [train]  steps, batch, seq_len, lr (the spiking layers'; the readouts' is scaled down by
             their gain, :func:`param_groups`), weight_decay, warmup, clip, loss (poisson | negbin),
             qat_steps, weight_bits, seed; glm_history and glm_l2 (lists: the grid the GLM
             baseline is tuned over, on the validation split), glm_slow_shifts (its slow
             means' windows, est.sw.glm.slow_means; [] for none); eval_every (steps between
             validation scores, 0: none), patience (scores without a gain before training
             stops, 0: never early), context_bins (bins before an evaluated split that the
             models run on first, their state carried in), burn_in (bins at the start of
             each training crop that the model runs on but the loss does not score);
             find_rhythms (how many rhythms est-train looks for in the training split's
             counts, est.sw.glm.find_rhythms; with the input path the start GLM, tuned with
             the k strongest for k = 0 .. find_rhythms, picks how many on the validation
             split, and the model gets those as model.rhythms; 0: none); find_oscillators
             (how many rhythms est-train looks for likewise, adding to model.readout_oscillators
             and train.glm_oscillators an oscillator readout tuned to each,
             est.sw.glm.tuned_oscillator; 0: none)

Flags override the file: ``--set model.d_model=16 --set train.steps=50``.

The whole config is checked when it is read, before any data is loaded or any step trained:
every key's type and range and the rules between keys (``model.heads`` divides
``model.d_model``, one ``model.kernels`` entry per block, ...); a problem is one line naming the
key, e.g. ``model.count_threshold must be at least 1, got 0``. The recording is then checked
too (the validation and test splits must hold spikes). ``model.pt`` is written as soon as
training ends, before the evaluation; if the evaluation fails, the model is kept and the error
is one line (and ``metrics.json`` holds it as ``evaluation_error``).

Bits per spike follow the Neural Latents Benchmark (:func:`est.sw.metrics.bits_per_spike`): the
null model is each neuron's mean over the evaluated split, and a neuron without spikes (in
training or in the evaluated split) is scored, not refused.
"""

import copy
import math
import time
import tomllib
import types
import typing
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from est import EstError
from est.sw import metrics
from est.sw.data import (
    MAX_LEAK_SHIFT,
    MAX_SEED,
    PopulationConfig,
    Recording,
    check_choice,
    check_number,
    check_population,
    check_whole,
    config_error,
    load_counts,
    load_nwb,
    load_spike_times,
    simulate_population,
    split_by_time,
)
from est.sw.est import (
    EST,
    ESTConfig,
    check_oscillators,
    config_dict,
    oscillator_integrals,
    slow_integrals,
    spike_tensors,
)
from est.sw.glm import (
    GLM,
    GLM_COUPLINGS,
    GLM_HISTORIES,
    GLM_L2S,
    RATE_FLOOR,
    SLOW_SHIFTS,
    as_oscillators,
    first_bin,
    rhythm_periods,
    true_rate_log_rates,
    tune_glm,
    tune_glm_rhythms,
    tuned_oscillator,
)
from est.sw.neuron import beta_from_shift


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 400
    batch: int = 16
    seq_len: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    warmup: float = 0.05
    clip: float = 1.0
    loss: str = "poisson"  # poisson | negbin
    qat_steps: int = 60
    weight_bits: int = 8
    seed: int = 0
    glm_history: tuple = GLM_HISTORIES
    glm_l2: tuple = GLM_L2S
    glm_slow_shifts: tuple = SLOW_SHIFTS
    glm_oscillators: tuple = ()
    find_rhythms: int = 0
    find_oscillators: int = 0
    eval_every: int = 50
    patience: int = 0
    context_bins: int = 1024
    burn_in: int = 128
    rate_floor: float = 0.0  # every spiking unit's firing rate is held above this (0: off)
    rate_weight: float = 1.0  # the weight of that penalty beside the loss

    def __post_init__(self):
        object.__setattr__(self, "glm_oscillators", as_oscillators(self.glm_oscillators))

    def validate(self, prefix: str = "train.") -> "TrainConfig":
        """Check every field; raise EstError naming the first one at fault."""
        k = prefix
        for name, low in (("steps", 1), ("qat_steps", 0), ("batch", 1), ("seq_len", 2),
                          ("eval_every", 0), ("patience", 0), ("context_bins", 0), ("burn_in", 0)):
            check_whole(k + name, getattr(self, name), low)
        check_number(k + "lr", self.lr, above=0)
        check_number(k + "weight_decay", self.weight_decay, at_least=0)
        check_number(k + "warmup", self.warmup, at_least=0, below=1,
                     what="in [0, 1) (a fraction of the steps)")
        check_number(k + "clip", self.clip, above=0)
        check_number(k + "rate_floor", self.rate_floor, at_least=0, below=1,
                     what="in [0, 1) (spikes per bin)")
        check_number(k + "rate_weight", self.rate_weight, at_least=0)
        check_choice(k + "loss", self.loss, ("poisson", "negbin"))
        check_whole(k + "weight_bits", self.weight_bits, 2, 16)
        check_whole(k + "seed", self.seed, 0, MAX_SEED)
        for name in ("glm_history", "glm_l2"):
            if not getattr(self, name):
                config_error(f"{k}{name} must list at least one value")
        for h in self.glm_history:
            check_whole(k + "glm_history", h, 1, 1000)
        for l2 in self.glm_l2:
            check_number(k + "glm_l2", l2, above=0)
        for i, shift in enumerate(self.glm_slow_shifts):
            check_whole(f"{k}glm_slow_shifts[{i}]", shift, 1, MAX_LEAK_SHIFT)
        check_oscillators(k + "glm_oscillators", self.glm_oscillators)
        check_whole(k + "find_rhythms", self.find_rhythms, 0, 16)
        check_whole(k + "find_oscillators", self.find_oscillators, 0, 16)
        return self


NO_LEAK = "none"
"""How a config spells None (no leak) for an optional field such as ``model.leak_shift``: TOML
has no null. YAML's ``null`` is taken too."""


def _optional(f) -> bool:
    """Whether the dataclass field's annotation admits None (``int | None``)."""
    hint = f.type
    if isinstance(hint, str):
        return hint.replace(" ", "").endswith("|None")
    return (isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union) \
        and type(None) in typing.get_args(hint)


def _check_type(section: str, key: str, value, f) -> None:
    """Refuse a value whose type differs from the field's default (a float field takes an
    integer too; a field without a default, or one that may be None, is left to the section's
    validation)."""
    default = f.default if f.default is not MISSING else (
        f.default_factory() if f.default_factory is not MISSING else None)
    if default is None or _optional(f):  # checked by the section's validation
        return
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,),
                tuple: (list, tuple), list: (list, tuple), dict: (dict,)}.get(type(default))
    if expected and (not isinstance(value, expected)
                     or (isinstance(value, bool) and type(default) is not bool)):
        raise EstError(f"config [{section}]: {key} = {value!r} has type "
                       f"{type(value).__name__}; expected {type(default).__name__} (like "
                       f"{default!r})")


def typed_section(cls, values: dict, section: str):
    """``cls(**values)`` for one config section, every key checked: known, of the right type,
    in range (``validate``, or :func:`check_population` for the synthetic population)."""
    if not isinstance(values, dict):
        raise EstError(f"config [{section}]: expected a table of keys, got {values!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise EstError(f"config [{section}]: unknown key(s) {unknown}; known: {sorted(known)}")
    out = {}
    for key, value in values.items():
        if _optional(known[key]) and isinstance(value, str) and value.lower() == NO_LEAK:
            value = None
        _check_type(section, key, value, known[key])
        out[key] = tuple(value) if isinstance(value, list) else value
    try:
        if cls is PopulationConfig:
            defaults = {f.name: getattr(cls(), f.name) for f in fields(cls)}
            check_population({**defaults, **out}, f"{section}.")
        obj = cls(**out)
        return obj.validate(f"{section}.") if hasattr(obj, "validate") else obj
    except (TypeError, ValueError) as e:
        raise EstError(f"config [{section}]: {e}") from None


def _parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def read_config(path: Path | None, overrides: list[str]) -> dict:
    """Read a TOML/YAML config and apply ``section.key=value`` overrides: the sections as
    dicts, not yet typed (``model.arch`` picks the model: :func:`model_arch`)."""
    doc: dict = {}
    if path is not None:
        try:
            text = Path(path).read_text()
            doc = (yaml.safe_load(text) if Path(path).suffix in (".yaml", ".yml")
                   else tomllib.loads(text)) or {}
        except FileNotFoundError:
            raise EstError(f"{path}: no such config file") from None
        except IsADirectoryError:
            raise EstError(f"{path}: a folder, not a config file (TOML or YAML)") from None
        except OSError as e:
            raise EstError(f"{path}: cannot read the config file ({e.strerror})") from None
        except UnicodeDecodeError:
            raise EstError(f"{path}: not a text file; expected a TOML or YAML config") from None
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
            raise EstError(f"{path}: not valid TOML/YAML ({' '.join(str(e).split())})"
                           ) from None
        if not isinstance(doc, dict):
            raise EstError(f"{path}: expected sections data, model, train")
        for section, keys in doc.items():
            if section in ("data", "model", "train") and not isinstance(keys, dict):
                raise EstError(f"config [{section}]: expected a table of keys, got {keys!r}")
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
    for section in ("data", "model", "train"):
        if not isinstance(doc.setdefault(section, {}), dict):
            raise EstError(f"config [{section}]: expected a table of keys, got "
                           f"{doc[section]!r}")
    return doc


def model_arch(doc: dict) -> str:
    """``model.arch`` of a config read by :func:`read_config`: 'est' (the default) or 'mlp'
    (a spiking MLP classifier: :mod:`est.sw.train_mlp`)."""
    arch = doc["model"].get("arch", "est")
    check_choice("model.arch", arch, ("est", "mlp"))
    return arch


def load_config(path: Path | None, overrides: list[str]) -> tuple[dict, ESTConfig, TrainConfig]:
    """Read a TOML/YAML config for an EST, apply ``section.key=value`` overrides, check it."""
    doc = read_config(path, overrides)
    if model_arch(doc) != "est":
        raise EstError("config: model.arch = 'mlp' is a spiking MLP classifier; est-train "
                       "trains it (est.sw.train_mlp), not this EST loader")
    data = doc["data"]
    check_data(data)
    model = {k: v for k, v in doc["model"].items() if k != "arch"}
    return (data, typed_section(ESTConfig, model, "model"),
            typed_section(TrainConfig, doc["train"], "train"))


def check_data(data: dict) -> PopulationConfig | None:
    """Check the ``[data]`` section without reading any file: ``path`` (counts; an NWB file,
    named ``.nwb``, with ``bin_width`` and optionally ``units``), or ``spike_times`` with
    ``bin_width`` (and optionally ``n_neurons``), or the synthetic population's keys (then its
    :class:`PopulationConfig` is returned)."""
    if not isinstance(data, dict):
        raise EstError(f"config [data]: expected a table of keys, got {data!r}")
    nwb = isinstance(data.get("path"), str) and data["path"].lower().endswith(".nwb")
    for key, allowed in (("path", {"path", "bin_width", "units"} if nwb else {"path"}),
                         ("spike_times", {"spike_times", "bin_width", "n_neurons"})):
        if key in data:
            extra = sorted(set(data) - allowed)
            if extra:
                raise EstError(f"config [data]: with '{key}', only {sorted(allowed)} are "
                               f"allowed; remove {extra}")
            if not isinstance(data[key], str) or not data[key]:
                config_error(f"data.{key} must be a file name (a string), got {data[key]!r}")
            if key == "spike_times" or nwb:
                if "bin_width" not in data:
                    config_error(f"data.{'path (an NWB file)' if nwb else key} needs "
                                 f"data.bin_width (seconds per bin)")
                check_number("data.bin_width", data["bin_width"], above=0)
                if "n_neurons" in data:
                    check_whole("data.n_neurons", data["n_neurons"], 1)
                units = data.get("units", [0])
                if not isinstance(units, list) or not units:
                    config_error(f"data.units must be a non-empty list of unit ids, got "
                                 f"{units!r}")
                for k, unit in enumerate(units):
                    check_whole(f"data.units[{k}]", unit, 0)
                if len(set(units)) != len(units):
                    config_error(f"data.units lists a unit twice: {units}")
            return None
    synthetic = data.get("synthetic", True)
    if not isinstance(synthetic, bool):
        config_error(f"data.synthetic must be true or false, got {synthetic!r}")
    if not synthetic:
        config_error("data.synthetic = false needs data.path (binned counts) or "
                     "data.spike_times (with data.bin_width)")
    return typed_section(PopulationConfig, {k: v for k, v in data.items() if k != "synthetic"},
                         "data")


def get_data(data: dict) -> tuple[Recording, Recording, Recording]:
    """The recording named by the ``[data]`` section (see :func:`check_data`), split 70/15/15
    in time."""
    population = check_data(data)
    if population is not None:
        return split_by_time(simulate_population(population))
    if "path" in data and "bin_width" in data:  # an NWB file (check_data)
        return split_by_time(load_nwb(data["path"], data["bin_width"], data.get("units")))
    if "path" in data:
        rec = load_counts(data["path"])
        if rec.n_bins < rec.n_neurons:  # too short to train on: most likely [neurons, bins]
            raise EstError(f"{data['path']}: counts have shape {rec.counts.shape}: fewer bins "
                           f"({rec.n_bins}) than neurons ({rec.n_neurons}); expected [bins, "
                           f"neurons]: if the array is [neurons, bins], save its transpose "
                           f"(counts.T).")
        return split_by_time(rec)
    return split_by_time(load_spike_times(data["spike_times"], data["bin_width"],
                                          data.get("n_neurons")))


def check_evaluated_splits(val: Recording, test: Recording) -> None:
    """Bits per spike needs spikes: refuse (before training) a validation or test split without
    any."""
    total = test.meta.get("bins", (0, test.n_bins))[1]
    for name, rec in (("validation", val), ("test", test)):
        if rec.counts.sum() == 0:
            start, stop = rec.meta.get("bins", (0, rec.n_bins))
            raise EstError(f"the {name} split (bins {start} to {stop - 1} of {total}) holds no "
                           "spikes, so bits per spike is undefined there; the recording is split "
                           "70/15/15 in time: record longer or use a recording with spikes "
                           "throughout")


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


def param_groups(model: EST) -> list[dict]:
    """AdamW's parameter groups, each with the factor ``lr_scale`` on the learning rate: an
    integrator of leak ``beta = 1 - 2**-k`` (the readout, each slow readout; an oscillator
    readout near resonance) holds ``2**k`` times its weights once warm, so its weights learn
    ``2**-k`` as fast. Adam moves every weight by about the learning rate a step whatever its
    gradient; without the factor, a readout of leak shift 7 moves its log-rates 128 times as
    far as a weight of the spiking layers does, and the first steps wreck the tuned GLM the
    readout starts at. A readout without leak (an integrator without end) keeps factor 1."""
    def scale(shift: int | None) -> float:
        return 1.0 if shift is None else 2.0 ** -shift

    cfg = model.cfg
    own = [(model.readout, scale(cfg.readout_leak_shift))]
    own += [(conv, scale(shift)) for conv, shift in zip(model.slow, cfg.readout_slow_shifts,
                                                          strict=True)]
    own += [(conv, scale(k)) for conv, (_, k, _) in zip(model.osc, cfg.readout_oscillators,
                                                         strict=True)]
    taken = {id(p) for module, _ in own for p in module.parameters()}
    rest = [p for p in model.parameters() if id(p) not in taken]
    return [{"params": rest, "lr_scale": 1.0}] + [
        {"params": list(module.parameters()), "lr_scale": factor} for module, factor in own]


def _rate_penalty(spikes: list[torch.Tensor], burn_in: int, floor: float) -> torch.Tensor:
    """Mean over spike tensors of the mean over their units of ``(1 - rate / floor)**2`` where
    a unit's rate (over the scored bins and the batch) is below ``floor``: 1 for a silent
    layer, 0 once every unit fires at least that often."""
    terms = [(F.relu(floor - s[burn_in:].mean(dim=(0, 1))) / floor).square().mean()
             for s in spikes]
    return torch.stack(terms).mean()


def fit(model: EST, train: Recording, cfg: TrainConfig, steps: int, desc: str,
        progress: bool = True, validate=None, start: tuple | None = None) -> dict:
    """AdamW, warm-up then cosine decay, gradient clipping, on random crops of ``train``
    (``cfg.burn_in + cfg.seq_len`` bins, the loss over the last ``seq_len``: the spiking
    blocks' and the readout's state warms up first, as it does at evaluation on
    ``cfg.context_bins``). The slow readouts start each crop warm, with the leaky integral of
    every bin of ``train`` before it (:func:`est.sw.est.slow_integrals`), as the GLM start's
    slow means were fitted; a burn-in long enough for the slowest (five time constants: 640
    bins for leak shift 7) would make every step several times slower.

    ``validate`` (a function returning the model's validation score, higher is better) is
    called every ``cfg.eval_every`` steps and after the last; the model ends with the weights
    of the best score (model selection), and training stops early after ``cfg.patience``
    scores without a gain (0: never). ``validate`` may also return ``(score, nll)`` with
    ``nll`` the validation NLL of every bin: a later score then replaces the best only when its
    per-bin gain over the best's is more than one standard error (the starting point, e.g. the
    tuned GLM, is not given up for a gain that is noise on a short validation split);
    ``start``, the ``(score, nll)`` of the model as given when the caller has it, saves
    scoring it again. Returns the losses, the scores, the step chosen and its ``(score,
    nll)`` (``best``; None without validation)."""
    crop = cfg.burn_in + cfg.seq_len
    if len(train.counts) < crop + 2:
        raise EstError(f"training split has {len(train.counts)} bins, fewer than burn_in + "
                       f"seq_len + 2 = {crop + 2}; use more data or a shorter [train] seq_len "
                       f"or burn_in")
    rng = np.random.default_rng(cfg.seed)
    log_disp = torch.zeros(train.counts.shape[1], requires_grad=True)
    groups = param_groups(model) + ([{"params": [log_disp], "lr_scale": 1.0}]
                                    if cfg.loss == "negbin" else [])
    params = [p for group in groups for p in group["params"]]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    counts = torch.as_tensor(train.counts, dtype=torch.float32)
    # row s: each slow readout's integral of the inputs before bin s (row 0: none)
    slow = [torch.as_tensor(np.vstack([np.zeros((1, rows.shape[1]), np.float32), rows]))
            for rows in slow_integrals(train.counts, model.cfg)]
    osc = [torch.as_tensor(np.concatenate([np.zeros((1, *rows.shape[1:]), np.float32), rows]))
           for rows in oscillator_integrals(train.counts, model.cfg)]
    losses, scored, best, stale = [], [], None, 0
    spikes: list[torch.Tensor] = []
    hooks = spike_tensors(model, spikes) if cfg.rate_floor > 0 else []

    def measure():
        got = validate()
        return got if isinstance(got, tuple) else (got, None)

    if validate is not None and cfg.eval_every:  # the starting point is a candidate too
        score, nll = start or measure()
        best = (score, 0, copy.deepcopy(model.state_dict()), nll)
        scored.append({"step": 0, "val_bits_per_spike": best[0]})
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        starts = rng.integers(0, len(counts) - crop - 1, cfg.batch)
        idx = torch.as_tensor(starts)[None, :] + torch.arange(crop + 1)[:, None]
        seq = counts[idx]  # [L+1, B, N]
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, cfg) * group["lr_scale"]
        spikes.clear()
        at = torch.as_tensor(starts)
        out = model(seq[:-1], at, [rows[at] for rows in slow] or None,
                    [rows[at] for rows in osc] or None)
        loss = _loss(out[cfg.burn_in:], seq[1 + cfg.burn_in:], cfg, log_disp)
        if spikes:
            loss = loss + cfg.rate_weight * _rate_penalty(spikes, cfg.burn_in, cfg.rate_floor)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if validate is None or not cfg.eval_every or (
                (step + 1) % cfg.eval_every and step + 1 < steps):
            continue
        score, nll = measure()
        scored.append({"step": step + 1, "val_bits_per_spike": score})
        if best is None or (score > best[0] and _real_gain(best[3], nll)):
            best = (score, step + 1, copy.deepcopy(model.state_dict()), nll)
            stale = 0
        else:
            stale += 1
            if cfg.patience and stale >= cfg.patience:
                break
    for hook in hooks:
        hook.remove()
    if best is not None:
        model.load_state_dict(best[2])
    return {"losses": losses, "validation": scored, "chosen_step": best and best[1],
            "steps_run": len(losses), "best": best and (best[0], best[3])}


def _real_gain(best_nll: np.ndarray | None, nll: np.ndarray | None) -> bool:
    """Whether the per-bin validation NLL ``nll`` beats ``best_nll`` by more than one standard
    error of the paired per-bin difference (True when either is unknown)."""
    if best_nll is None or nll is None or len(nll) < 2:
        return True
    gain = best_nll - nll
    return bool(gain.mean() > gain.std(ddof=1) / np.sqrt(len(gain)))


def scores(rec: Recording, log_rates: np.ndarray) -> dict:
    """Metrics of ``log_rates[t]``, the prediction of ``counts[t]`` made from bins before t;
    bits per spike against each neuron's mean over ``rec`` (the NLB null)."""
    lr = np.clip(log_rates, -20, 20)
    out = {"bits_per_spike": metrics.bits_per_spike(rec.counts, lr),
           "poisson_nll": metrics.poisson_nll(rec.counts, lr)}
    if rec.rates is not None:
        out["r2"] = metrics.r2(rec.rates, np.exp(lr))
    return out


def with_context(rec: Recording, before: Recording | None, bins: int) -> np.ndarray:
    """The counts of ``rec`` after the last ``bins`` bins of ``before`` (the recording just
    before it), on which a model warms up its state."""
    if before is None or bins == 0:
        return rec.counts
    return np.vstack([before.counts[-bins:], rec.counts])


def next_bin(out: np.ndarray, n_bins: int, mean_rates: np.ndarray) -> np.ndarray:
    """The predictions of the last ``n_bins`` bins from the EST's outputs over context +
    recording (row t predicts bin t + 1); without context, bin 0 (which nothing precedes) gets
    the mean-rate prediction."""
    context = len(out) - n_bins
    if context:
        return out[context - 1:-1]
    return np.vstack([np.log(np.maximum(mean_rates, RATE_FLOOR))[None, :], out[:-1]])


def float_log_rates(model: EST, counts: np.ndarray, start: int = 0) -> np.ndarray:
    """The float EST's outputs [bins, neurons] over ``counts``, state starting at zero;
    ``counts[0]`` is bin ``start`` of the recording (the CPG's and the rhythms' phase)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        x = torch.as_tensor(counts, dtype=torch.float32)[:, None, :]
        out = model(x, start)[:, 0].numpy().astype(np.float64)
    model.train(was_training)
    return out


def integer_log_rates(model: EST, train: Recording, counts: np.ndarray, weight_bits: int,
                      scored: int | None = None):
    """The integer EST's outputs over ``counts`` (readout values / scale), the firing rate of
    every spike tensor of its graph (a 1-bit trace field: spikes per neuron per bin) over the
    last ``scored`` bins (default all), and the quantization report; calibrated on the
    training split."""
    from est.compiler.est_frontend import quantize_est
    from est.sw.integer import integer_forward

    top = 2 ** model.cfg.input_bits - 1
    calib = np.minimum(train.counts[:2000], top)
    graph, report = quantize_est(model, "est", calib, weight_bits=weight_bits)
    tensors = integer_forward(graph, np.minimum(counts, top))
    last = slice(-(scored or len(counts)), None)
    firing = {f.name: round(float(tensors[f.name][last].mean()), 6) for f in graph.fields()
              if f.bits == 1 and not f.signed and not f.name.startswith("input/")}
    return graph.log_rates(tensors), firing, report


def save_checkpoint(model: EST, path: Path, extra: dict) -> None:
    torch.save({"format": "est-checkpoint", "version": 1, "arch": "est",
                "config": config_dict(model.cfg), "extra": extra,
                "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}},
               path)


@dataclass
class Trained:
    """A trained EST with what its evaluation needs: the three splits, the training split's
    per-neuron mean rates, and the start of ``metrics.json`` (config, final loss).
    ``float_model``: the model as trained in float, before the quantization-aware fine-tuning
    that made ``model`` (the one saved and compiled); the float scores are its."""

    model: EST
    tcfg: TrainConfig
    train: Recording
    val: Recording
    test: Recording
    mean_rates: np.ndarray
    result: dict
    t0: float
    baseline: tuple[GLM, list[dict]] | None = None  # the tuned GLM and its grid, when known
    float_model: EST | None = None  # before fine-tuning; None: ``model`` is it


def _validator(model: EST, trained_before: Recording, val: Recording, cfg: TrainConfig,
               mean_rates: np.ndarray):
    """The validation score of the float model: NLB bits per spike on ``val`` (warmed up on
    the training split's last ``cfg.context_bins``)."""
    counts = with_context(val, trained_before, cfg.context_bins)
    start = first_bin(val) - (len(counts) - val.n_bins)

    def validate() -> tuple[float, np.ndarray]:
        out = float_log_rates(model, counts, start)
        log_rates = np.clip(next_bin(out, val.n_bins, mean_rates), -20, 20)
        nll = (np.exp(log_rates) - val.counts * log_rates).sum(axis=1)  # per bin, nats
        return scores(val, log_rates)["bits_per_spike"], nll
    return validate


def start_readout(model: EST, mean_rates: np.ndarray, glm: GLM | None) -> None:
    """Start the readout at the mean-rate model, or (with ``glm``, for an EST whose readout
    reads the input counts) at that GLM: bias and input-history weights from it, the weights
    of the spikes at zero, so that training starts from the tuned baseline. A leaky readout
    ``r <- beta r + c`` settles at ``c / (1 - beta)``: its bias is scaled by ``1 - beta``, and
    its input weights are the GLM's through ``1 - beta z^-1`` (``W'[l] = W[l] - beta W[l - 1]``,
    one lag longer than the GLM's history), so that ``r`` equals the GLM's log-rate once warm.
    The slow readouts start at the GLM's slow-mean weights: a readout of leak shift ``s``
    holds ``sum_j a^j W x[t - j]``, ``a = 1 - 2^-s``, the GLM's slow mean times ``2^s``, so
    ``W = 2^-s c`` for the GLM's weight ``c`` (the GLM's ``slow_shifts`` are the model's).
    A neuron silent in training starts at the mean-rate floor, ``log(RATE_FLOOR)``, with no
    weights (its GLM bias has no finite optimum, and the quantizer could not scale it)."""
    beta = model.readout_beta
    with torch.no_grad():
        if glm is None:
            model.readout.bias.copy_(torch.as_tensor(np.log(np.maximum(mean_rates, RATE_FLOOR))
                                                     * (1.0 - beta)))
            return
        d = model.cfg.d_model
        silent = mean_rates == 0  # the GLM's bias heads for -inf: the mean-rate model's floor
        bias = np.where(silent, np.log(RATE_FLOOR), glm.bias)
        model.readout.bias.copy_(torch.as_tensor(bias * (1.0 - beta)))
        model.readout.weight.zero_()
        # GLM weights[n, m, lag - 1] act on y[t - lag]; readout row t predicts bin t + 1 from
        # x[t - l], l = lag - 1
        w = torch.as_tensor(np.where(silent[:, None, None], 0.0, glm.weights).transpose(2, 0, 1),
                            dtype=torch.float32)
        n_in = model.cfg.n_in
        model.readout.weight[:glm.history, :, d:d + n_in] = w
        if beta:
            model.readout.weight[1:glm.history + 1, :, d:d + n_in] -= beta * w
        shifts = tuple(model.cfg.readout_slow_shifts)
        pairs = tuple(model.cfg.readout_oscillators)
        advances = model.cfg.rhythm_advances
        if (shifts or pairs or advances) and (glm.slow_shifts, glm.oscillators, glm.rhythms) != (
                shifts, pairs, advances):
            raise EstError(f"start_readout: the GLM's slow means {list(glm.slow_shifts)}, "
                           f"oscillators {list(glm.oscillators)} and rhythms "
                           f"{list(glm.rhythms)} are not the model's slow readouts "
                           f"{list(shifts)}, oscillators {list(pairs)} and rhythms "
                           f"{list(advances)}")

        def block(i):  # the GLM's weights of its covariate block i, [N, n_in]
            return np.where(silent[:, None], 0.0, glm.covariate_weights[:, i * n_in:(i + 1)
                                                                        * n_in])
        for i, (conv, shift) in enumerate(zip(model.slow, shifts, strict=True)):
            conv.weight[0] = torch.as_tensor(block(i) * 2.0 ** -shift, dtype=torch.float32)
        # the GLM weighs an oscillator's u and w driven through u (2^-k of them, its
        # covariates): alpha Uu + beta Wu; the readout's u is A Uu + B Uw for weights A into u
        # and B into w, and Wu = e Uu - a Uw (the rotation's), so A = 2^-k (alpha + e beta)
        # and B = -2^-k a beta
        for i, (conv, (m, k, c)) in enumerate(zip(model.osc, pairs, strict=True)):
            alpha, beta = block(len(shifts) + 2 * i), block(len(shifts) + 2 * i + 1)
            a, e = beta_from_shift(k), c * 2.0 ** -m
            conv.weight[0] = torch.as_tensor(np.vstack([alpha + e * beta, -a * beta])
                                             * 2.0 ** -k, dtype=torch.float32)
        if advances:  # the GLM's rhythm covariates are the rows the readout reads at lag 0
            own = (len(shifts) + 2 * len(pairs)) * n_in
            c = torch.as_tensor(np.where(silent[:, None], 0.0, glm.covariate_weights[:, own:]),
                                dtype=torch.float32)
            first = d + n_in * model.cfg.input_to_readout
            model.readout.weight[0, :, first:] = c
            if model.readout_beta:  # (``beta`` is an oscillator's weights by now)
                model.readout.weight[1, :, first:] -= model.readout_beta * c


def clipped_counts(rec: Recording, input_bits: int) -> dict:
    """How many counts of ``rec`` the model's inputs clip (to ``2**input_bits - 1``)."""
    top = 2 ** input_bits - 1
    over = rec.counts > top
    return {"input_bits": input_bits, "max_count": int(rec.counts.max(initial=0)),
            "clipped_bins": int(over.sum()),
            "clipped_spikes": int((rec.counts - top)[over].sum())}


def train_model(data: dict, mcfg: ESTConfig, tcfg: TrainConfig,
                progress: bool = True) -> Trained:
    """Load the recording, check it, build and train the EST (then quantization-aware
    fine-tuning for a spiking one), choosing the weights on the validation split."""
    t0 = time.perf_counter()
    torch.manual_seed(tcfg.seed)
    train, val, test = get_data(data)
    check_evaluated_splits(val, test)
    mcfg = replace(mcfg, n_in=train.counts.shape[1], n_out=train.counts.shape[1])
    mean_rates = train.counts.mean(axis=0)
    found = None
    if tcfg.find_rhythms:
        if mcfg.rhythms:
            config_error(f"give model.rhythms {list(mcfg.rhythms)} or train.find_rhythms = "
                         f"{tcfg.find_rhythms}, not both")
        found = tuple(rhythm_periods(train.counts, tcfg.find_rhythms, mcfg.rhythm_rows))
        mcfg = replace(mcfg, rhythms=found)
    tuned = None
    if tcfg.find_oscillators:
        # an oscillator readout tuned to each rhythm found, for the model and its baseline
        periods = rhythm_periods(train.counts, tcfg.find_oscillators, mcfg.rhythm_rows)
        oscillators = tuple(tuned_oscillator(p) for p in periods)
        tuned = {"periods": list(periods), "oscillators": [list(o) for o in oscillators]}
        mcfg = replace(mcfg, readout_oscillators=tuple(dict.fromkeys(
            (*mcfg.readout_oscillators, *oscillators))))
        tcfg = replace(tcfg, glm_oscillators=tuple(dict.fromkeys(
            (*tcfg.glm_oscillators, *oscillators))))
    glm, couplings, baseline = None, GLM_COUPLINGS, None
    rhythm_scores: list[float] = []
    if mcfg.input_to_readout:
        leaky = beta_from_shift(mcfg.readout_leak_shift) > 0
        longest = mcfg.readout_kernel - leaky  # a leaky readout: one lag more
        histories = [h for h in tcfg.glm_history if h <= longest]
        if not histories:
            config_error(f"model.readout_kernel = {mcfg.readout_kernel}"
                         f"{' (less the lag a leaky readout needs)' if leaky else ''} is "
                         f"shorter than every train.glm_history {list(tcfg.glm_history)}; the "
                         f"input path starts as the GLM, so give a history it can hold")
        if mcfg.input_coupling != "auto":
            couplings = (mcfg.input_coupling,)
        # one tuning gives the start and the baseline when the baseline's grid holds the
        # start's: the start is then the best fit of a history the readout can hold
        slow, pairs = tuple(mcfg.readout_slow_shifts), tuple(mcfg.readout_oscillators)
        whole = (couplings == GLM_COUPLINGS and slow == tuple(tcfg.glm_slow_shifts)
                 and pairs == tuple(tcfg.glm_oscillators))
        # with train.find_rhythms the start GLM picks how many of the rhythms found (the
        # strongest first) on the validation split
        periods, best, grid, glm, rhythm_scores = tune_glm_rhythms(
            train, val, mcfg.rhythms, mcfg.rhythm_rows, choose=found is not None,
            usable=lambda g: g.history <= longest,
            histories=tcfg.glm_history if whole else histories, l2s=tcfg.glm_l2,
            couplings=couplings, progress=tqdm.write if progress else None,
            slow_shifts=slow, oscillators=pairs)
        baseline = (best, grid) if whole else None
        # the rhythms kept, and "auto" coupling made the GLM's choice
        mcfg = replace(mcfg, rhythms=periods, input_coupling=glm.coupling)
    model = EST(mcfg)
    start_readout(model, mean_rates, glm)
    validate = _validator(model, train, val, tcfg, mean_rates)
    fitted = fit(model, train, tcfg, tcfg.steps, "train", progress, validate)
    silent = {name: np.flatnonzero(rec.counts.sum(axis=0) == 0).tolist()
              for name, rec in (("train", train), ("val", val), ("test", test))}
    result = {"config": {"model": config_dict(mcfg), "train": asdict(tcfg), "data": data},
              "final_loss": fitted["losses"][-1] if fitted["losses"] else None,
              "silent_neurons": silent, "input_clipping": clipped_counts(train, mcfg.input_bits),
              "selection": {k: fitted[k] for k in ("validation", "chosen_step", "steps_run")}}
    if found is not None:
        # the periods found, and the start GLM's validation score with the k strongest of
        # them, k = 0, 1, ... (with the input path; the model has the best's)
        result["selection"]["rhythms"] = {"found": list(found),
                                          "val_bits_per_spike": rhythm_scores,
                                          "chosen": list(mcfg.rhythms)}
    if tuned is not None:  # the periods found and the oscillators tuned to them
        result["selection"]["oscillators"] = tuned
    float_model = None
    if mcfg.mode == "snn" and tcfg.qat_steps:
        # fine-tuning recovers what rounding the weights costs: it runs only when the rounded
        # forward pass scores below the float model on validation by more than the noise;
        # else it would be more training, chosen on the validation split the float model's
        # own choice already used (on a short drifting recording such a choice lost 0.41
        # bits/spike on test)
        float_model = copy.deepcopy(model)
        float_score, float_nll = fitted["best"] or validate()
        model.set_fake_quant(tcfg.weight_bits)
        rounded_score, rounded_nll = validate()
        costs = _real_gain(rounded_nll, float_nll)
        qat = {"validation": [{"step": 0, "val_bits_per_spike": float(rounded_score)}],
               "chosen_step": 0}
        if costs:
            qcfg = replace(tcfg, lr=tcfg.lr * 0.1, warmup=0.0, seed=tcfg.seed + 1)
            qat = fit(model, train, qcfg, tcfg.qat_steps, "quantization-aware", progress,
                      validate, start=(rounded_score, rounded_nll))
        result["selection"]["qat"] = {"float_val_bits_per_spike": float(float_score),
                                      "ran": costs,
                                      **{k: qat[k] for k in ("validation", "chosen_step")}}
        model.set_fake_quant(None)
    return Trained(model, tcfg, train, val, test, mean_rates, result, t0, baseline, float_model)


def evaluate(trained: Trained, baselines: bool = True) -> dict:
    """The metrics of a trained EST: float (the model as trained, before quantization-aware
    fine-tuning) on the validation and test splits, integer (the fine-tuned model, quantized:
    what est-compile builds) on the test split (spiking EST), and optionally the GLM and
    true-rate baselines. Every model warms up on the ``context_bins`` before the split it is
    scored on (``context_bins`` in the result)."""
    model, train, val, test = trained.model, trained.train, trained.val, trained.test
    mean_rates, result, bins = trained.mean_rates, dict(trained.result), trained.tcfg.context_bins
    before = {"val": train, "test": val}
    result["context_bins"] = bins
    result["float"] = {}
    for split, rec in (("val", val), ("test", test)):
        counts = with_context(rec, before[split], bins)
        out = float_log_rates(trained.float_model or model, counts,
                              first_bin(rec) - len(counts) + rec.n_bins)
        result["float"][split] = scores(rec, next_bin(out, rec.n_bins, mean_rates))
    # the splits where the float model loses to the NLB null (each neuron's mean over the
    # split): the rates there differ from the training split's (drift), or it is too short
    result["below_null"] = [split for split in ("val", "test")
                            if result["float"][split]["bits_per_spike"] < 0]
    if model.cfg.mode == "snn":
        # the integer graph's streams start at bin 0: with rhythms, at the recording's
        counts = (np.vstack([train.counts, val.counts, test.counts]) if model.cfg.rhythms
                  else with_context(test, val, bins))
        ilr, firing, qreport = integer_log_rates(model, train, counts,
                                                 trained.tcfg.weight_bits, test.n_bins)
        result["integer"] = {"test": scores(test, next_bin(ilr, test.n_bins, mean_rates)),
                             "firing_rates": firing, "quantization": qreport}
    if baselines:
        tcfg = trained.tcfg
        glm, grid = trained.baseline or tune_glm(train, val, tcfg.glm_history, tcfg.glm_l2,
                                                 slow_shifts=tuple(tcfg.glm_slow_shifts),
                                                 oscillators=tuple(tcfg.glm_oscillators),
                                                 rhythms=model.cfg.rhythm_advances,
                                                 rhythm_rows=model.cfg.rhythm_rows)
        result["glm"] = {"test": scores(test, glm.predict_log_rates(test, val)),
                         "val": scores(val, glm.predict_log_rates(val, train)),
                         "coupling": glm.coupling, "history": glm.history, "l2": glm.l2,
                         "slow_shifts": list(glm.slow_shifts),
                         "rhythm_advances": list(glm.rhythms),
                         "oscillators": [list(p) for p in glm.oscillators], "grid": grid}
        if test.rates is not None:
            result["true_rates"] = {"test": scores(test, true_rate_log_rates(test))}
    result["seconds"] = round(time.perf_counter() - trained.t0, 1)
    return result


def run(data: dict, mcfg: ESTConfig, tcfg: TrainConfig, progress: bool = True,
        baselines: bool = True) -> tuple[EST, dict, np.ndarray]:
    """Train and evaluate; return the model, the metrics and the training mean rates."""
    trained = train_model(data, mcfg, tcfg, progress)
    return trained.model, evaluate(trained, baselines), trained.mean_rates
