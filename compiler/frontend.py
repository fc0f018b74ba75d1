"""Checkpoint front end: a model.pt file -> a validated float network description.

Checkpoints are opened with ``torch.load(weights_only=True)`` only: a file that would need to
run code to unpickle is refused, never executed. The accepted formats are the ones
:func:`est.sw.spiking_mlp.save_checkpoint` (a spiking MLP) and :func:`est.sw.train.save_checkpoint`
(an EST: config + state dict) write (docs/ir.md, "Checkpoints").
"""

import math
import pickle
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from est import EstError
from est.cli import plural
from est.compiler.est_frontend import quantize_est
from est.compiler.passes import leak_shift_from_beta
from est.sim.golden import RESET_MODES
from est.sw.data import MAX_LEAK_SHIFT
from est.sw.est import EST, ESTConfig, config_dict, config_from_dict
from est.sw.neuron import beta_from_shift
from est.sw.spiking_mlp import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, NeuronSpec, SpikingMLP

SUPPORTED_LAYERS = ("linear", "lif", "integrator")
RESERVED_NAMES = frozenset({"input"} | set(dir(torch.nn.ModuleDict())))
"""Names a layer cannot take: 'input' keys the stimulus in traces; the rest are attributes of
the torch container that holds the layers."""


@dataclass(frozen=True)
class FloatLayer:
    """A linear layer and the neurons after it, in float: ``kind`` is 'lif' or 'integrator'."""

    name: str
    kind: str
    weight: np.ndarray  # [out, in] float64
    bias: np.ndarray  # [out] float64
    beta: float
    threshold: float = 1.0
    reset: str = "subtract"
    syn_beta: float | None = None  # a current-based layer's synaptic leak (NIR's CubaLIF)


@dataclass(frozen=True)
class FloatNetwork:
    """A front end's float network; ``notes``: where it is not exactly the source model."""

    n_in: int
    layers: tuple[FloatLayer, ...]
    notes: tuple[str, ...] = ()

    def to_torch(self) -> SpikingMLP:
        """The float model itself (float64), for measuring what quantization loses."""
        model = SpikingMLP([self.n_in] + [fl.weight.shape[0] for fl in self.layers],
                           [NeuronSpec(fl.kind, fl.beta, fl.threshold, fl.reset, fl.syn_beta)
                            for fl in self.layers],
                           [fl.name for fl in self.layers]).double()
        with torch.no_grad():
            for fl, lin in zip(self.layers, model.layers.values(), strict=True):
                lin.weight.copy_(torch.from_numpy(fl.weight))
                lin.bias.copy_(torch.from_numpy(fl.bias))
        return model


LEAK_TOLERANCE = 1e-3
"""Largest ``|beta - (1 - 2**-k)|`` a front end takes as the leak shift ``k`` (a stated
quantization: the compile report gives ``beta_float`` and ``beta_used``)."""


def shift_leak(where: str, field: str, betas: np.ndarray, hint: str) -> float:
    """The one ``beta`` of an array's neurons (``betas``, per neuron, from its ``field``) if a
    leak shift holds it within :data:`LEAK_TOLERANCE` (or it is 0 or 1); else a refusal naming
    ``where``: betas that differ, or the nearest shift; ``hint``: what the user can do."""
    betas = np.asarray(betas, np.float64).reshape(-1)
    if not np.allclose(betas, betas[0], rtol=1e-6, atol=0):
        raise EstError(f"{where}: {field} differs across neurons ({betas.min():g}.."
                       f"{betas.max():g}); est's neuron array has one leak for all its neurons")
    beta = float(betas[0])
    nearest = leak_shift_from_beta(beta, MAX_LEAK_SHIFT)
    if abs(beta_from_shift(nearest) - beta) > LEAK_TOLERANCE:
        raise EstError(f"{where}: beta = {beta:.6g} is not 1 - 2**-k for any k (nearest: "
                       f"k = {nearest}, {beta_from_shift(nearest):.6g}); est leaks by a "
                       f"shift: {hint}")
    return beta


def unit_threshold(name: str, w: np.ndarray, b: np.ndarray, beta: float, theta: np.ndarray,
                   reset: str, syn_beta: float | None = None) -> FloatLayer:
    """A spiking layer with each neuron's threshold ``theta`` divided into its synapses and
    bias, so every threshold is 1 (exact in floats: the membrane is linear in them and a spike
    is 0 or 1 at any scale; a subtraction of ``theta`` becomes one of 1)."""
    return FloatLayer(name, "lif", w / theta[:, None], b / theta, beta, 1.0, reset, syn_beta)


def compose(first: tuple, then: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Synapses ``then`` applied to the output of synapses ``first`` (each ``(W, b)``), as the
    one linear map they make: ``(W2 W1, W2 b1 + b2)``; exact in floats. A front end uses it
    where a network has no neurons between two synapse layers."""
    (w1, b1), (w2, b2) = first, then
    return w2 @ w1, w2 @ b1 + b2


def conv1d_as_dense(where: str, weight: np.ndarray, bias: np.ndarray, length: int,
                    stride: int, padding, dilation: int, groups: int) -> tuple:
    """A 1-D convolution over a spatial axis (input ``[C_in, length]`` flattened channel-major,
    as torch flattens) as the dense matrix it equals: ``(W [C_out L_out, C_in length],
    b [C_out L_out], L_out)``, built by torch's own ``conv1d`` on the unit inputs, so stride,
    zero padding (an int, 'same' or 'valid'), dilation and groups mean what they mean there.
    est's synapses are dense over their inputs, so this is exact; it stores the zeros too."""
    import torch.nn.functional as F

    w = torch.as_tensor(np.asarray(weight, np.float64))
    if w.ndim != 3 or groups < 1 or w.shape[0] % groups:
        raise EstError(f"{where}: weight has shape {tuple(w.shape)}, expected [C_out, C_in / "
                       f"groups, kernel] with C_out a multiple of groups={groups}")
    c_in = w.shape[1] * groups
    eye = torch.eye(c_in * length, dtype=torch.float64).reshape(-1, c_in, length)
    try:
        out = F.conv1d(eye, w, None, stride, padding, dilation, groups)
    except (RuntimeError, ValueError) as e:
        raise EstError(f"{where}: torch.nn.functional.conv1d refuses this geometry on an "
                       f"input of {c_in} x {length} ({str(e).splitlines()[0]})") from None
    l_out = out.shape[2]
    b = np.repeat(np.asarray(bias, np.float64).reshape(-1), l_out)
    return out.reshape(c_in * length, -1).T.numpy().copy(), b, l_out


def _fail(path: Path, message: str) -> EstError:
    return EstError(f"{path}: {message}")


def torch_load(path: Path, what: str) -> object:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never code;
    any failure is one line naming the file and ``what`` was expected there."""
    if path.is_dir():
        raise _fail(path, f"is a folder; expected {what}")
    if not path.is_file():
        raise _fail(path, f"no such file (expected {what})")
    with path.open("rb") as f:
        magic = f.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic.startswith(b"\x80")):
        raise _fail(path, f"not a PyTorch checkpoint, or a damaged one (it is neither a zip "
                          f"archive, as torch.save writes, nor a pickle); expected {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e) and "invalid load key" not in str(e):
            raise _fail(path, "refused: unpickling it would need objects other than tensors "
                              "and plain containers, which could run code. Save the state "
                              "dict (torch.save(model.state_dict(), path)) or re-save the model "
                              "with est.sw.spiking_mlp.save_checkpoint") from None
        raise _fail(path, "not a PyTorch checkpoint (cannot unpickle it)") from None
    except Exception as e:  # torch raises many types (IndexError, RuntimeError, ...) on garbage
        first = str(e).splitlines()[0].split(". ")[0] if str(e) else type(e).__name__
        raise _fail(path, f"not a PyTorch checkpoint, or a damaged one (torch.load: "
                          f"{type(e).__name__}: {first}); expected {what}") from None


def _read(path: Path) -> dict:
    obj = torch_load(path, "a checkpoint file written by est (model.pt from est-train, or "
                           "est.sw.spiking_mlp.save_checkpoint)")
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise _fail(path, f"a PyTorch file, but not an est checkpoint: expected a dict with "
                          f"format={CHECKPOINT_FORMAT!r}, 'layers' and 'state_dict' (write it "
                          f"with est.sw.spiking_mlp.save_checkpoint)")
    if obj.get("version") != CHECKPOINT_VERSION:
        raise _fail(path, f"checkpoint version {obj.get('version')!r}; this est reads "
                          f"version {CHECKPOINT_VERSION}")
    required = (("config", dict), ("state_dict", dict)) if obj.get("arch") == "est" else (
        ("layers", list), ("state_dict", dict))
    for key, typ in required:
        if not isinstance(obj.get(key), typ):
            raise _fail(path, f"field '{key}' missing or not a {typ.__name__}")
    return obj


def checkpoint_arch(path: Path) -> str:
    """'est' for an EST checkpoint (est-train), 'spiking_mlp' for a spiking MLP."""
    return "est" if _read(Path(path)).get("arch") == "est" else "spiking_mlp"


def load_est_checkpoint(path: Path) -> tuple[EST, dict]:
    """Rebuild the float EST of an ``est-train`` checkpoint (config + state dict), checked:
    every config field known and valid, every tensor present with its shape and finite.
    Returns the model (eval mode) and the checkpoint's ``extra`` dict."""
    path = Path(path)
    obj = _read(path)
    config = dict(obj["config"])
    known = {f.name for f in fields(ESTConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise _fail(path, f"config: unknown field(s) {unknown}; this est knows {sorted(known)}")
    try:
        model = EST(config_from_dict(config))
    except (TypeError, ValueError) as e:
        raise _fail(path, f"config: {e}") from None
    except EstError as e:
        raise _fail(path, str(e)) from None
    state = obj["state_dict"]
    for key, ref in model.state_dict().items():
        _tensor(path, state, key, tuple(ref.shape))
    extra_keys = sorted(set(state) - set(model.state_dict()))
    if extra_keys:
        raise _fail(path, f"state dict holds tensors the config does not explain: {extra_keys[:4]}"
                          f"; was the config edited after training?")
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    model.eval()
    return model, obj.get("extra") if isinstance(obj.get("extra"), dict) else {}


def _tensor(path: Path, state: dict, key: str, shape: tuple) -> np.ndarray:
    t = state.get(key)
    if not isinstance(t, torch.Tensor):
        raise _fail(path, f"tensor '{key}' is missing from the state dict")
    if tuple(t.shape) != shape:
        raise _fail(path, f"tensor '{key}' has shape {tuple(t.shape)}, the model's layers "
                          f"need {shape}")
    arr = t.detach().to(torch.float64).numpy()
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise _fail(path, f"tensor '{key}' holds {bad} NaN or infinite values; the model "
                          f"diverged in training: retrain or restore an earlier checkpoint")
    return arr


def _number(path: Path, where: str, d: dict, key: str, lo: float, hi: float) -> float:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value) or not lo <= value <= hi:
        raise _fail(path, f"{where}: '{key}' must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def _count(path: Path, where: str, d: dict, key: str) -> int:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 20:
        raise _fail(path, f"{where}: '{key}' must be a whole number in [1, {1 << 20}], "
                          f"got {value!r}")
    return value


def load_checkpoint(path: Path) -> FloatNetwork:
    """Read ``path`` safely and check the layer list: Linear, then its neurons, repeated, with
    a non-spiking ``integrator`` after the last Linear."""
    path = Path(path)
    obj = _read(path)
    spec, state = obj["layers"], obj["state_dict"]
    layers, prev_out, pending = [], None, None
    for idx, d in enumerate(spec):
        if not isinstance(d, dict) or not isinstance(d.get("type"), str):
            raise _fail(path, f"layer {idx}: expected a dict with a 'type'")
        where = f"layer {idx} ({d.get('name', d['type'])})"
        kind = d["type"]
        if kind not in SUPPORTED_LAYERS:
            raise _fail(path, f"{where}: layer type '{kind}' is not supported; this version "
                              f"compiles {', '.join(SUPPORTED_LAYERS)} (spiking MLPs)")
        if kind == "linear":
            if pending is not None:
                raise _fail(path, f"{where}: two linear layers in a row; put a 'lif' between")
            name = d.get("name")
            if not isinstance(name, str) or not name.isidentifier() or name in RESERVED_NAMES:
                raise _fail(path, f"{where}: 'name' must be an identifier other than "
                                  f"{sorted(RESERVED_NAMES)[:3]}..., got {name!r}")
            n_i, n_o = (_count(path, where, d, k) for k in ("in_features", "out_features"))
            if prev_out is not None and n_i != prev_out:
                raise _fail(path, f"{where}: in_features={n_i} but the previous layer has "
                                  f"{prev_out} outputs")
            w = _tensor(path, state, f"layers.{name}.weight", (n_o, n_i))
            b = _tensor(path, state, f"layers.{name}.bias", (n_o,))
            pending, prev_out = (name, w, b), n_o
            continue
        if pending is None:
            raise _fail(path, f"{where}: '{kind}' must follow a linear layer")
        name, w, b = pending
        beta = _number(path, where, d, "beta", 0.0, 1.0)
        if kind == "lif":
            reset = d.get("reset")
            if reset not in RESET_MODES:
                raise _fail(path, f"{where}: 'reset' must be one of {RESET_MODES}, got {reset!r}")
            layers.append(FloatLayer(name, "lif", w, b, beta,
                                     _number(path, where, d, "threshold", 1e-9, 1e9), reset))
        else:
            if idx != len(spec) - 1:
                raise _fail(path, f"{where}: the integrator readout must be the last layer")
            layers.append(FloatLayer(name, "integrator", w, b, beta))
        pending = None
    if not layers or layers[-1].kind != "integrator":
        raise _fail(path, "the layer list must end with linear + integrator (the readout)")
    return FloatNetwork(layers[0].weight.shape[1], tuple(layers))


@dataclass(frozen=True)
class FrontEnd:
    """An opened checkpoint: its inputs and their width (``input_bits``, 1: spikes), the mean
    count per bin of its random stimulus (``rates``), how many calibration bins it wants, and
    ``quantize(name, calibration, weight_bits, max_v_bits) -> (graph, report)``; ``describe``
    and ``extra`` go to the console and report.json."""

    n_in: int
    input_bits: int
    rates: np.ndarray
    calibration_bins: int
    quantize: object
    describe: str
    extra: dict


def open_checkpoint(path: Path, default_rate: float, nir_dt: float | None = None,
                    snntorch: Path | None = None, first_bin: int = 0) -> FrontEnd:
    """The front end of the checkpoint at ``path``: an EST (est-train), a spiking MLP, a NIR
    graph (``.nir``: stepped with ``nir_dt`` seconds), or the state dict of an snnTorch
    ``nn.Sequential`` whose modules the TOML file ``snntorch`` describes. Everything
    downstream sees only the graph its ``quantize`` returns. ``first_bin``: for an EST with
    fitted rhythms, the bin of its recording the stream starts at (their phase there,
    :func:`~est.compiler.est_frontend.est_float_graph`); a model without them refuses one."""

    def no_rhythms(what: str) -> None:
        if first_bin:
            raise EstError(f"{path}: --first-bin {first_bin} sets the phase of an EST's fitted "
                           f"rhythms, and this {what} has none; leave --first-bin out")
    from est.compiler.mlp_frontend import quantize  # it imports this module
    from est.compiler.nir_frontend import is_nir, load_nir
    from est.compiler.snntorch_frontend import load_snntorch

    if is_nir(path) or snntorch is not None:
        no_rhythms("NIR graph" if snntorch is None else "snnTorch network")
        fnet = load_nir(path, nir_dt) if snntorch is None else load_snntorch(path, snntorch)
        what, extra = ((f"NIR graph of {plural(len(fnet.layers), 'layer')} (dt {nir_dt:g} s)",
                        {"nir_dt": nir_dt}) if snntorch is None else
                       (f"snnTorch nn.Sequential of {plural(len(fnet.layers), 'Leaky layer')}",
                        {"snntorch": str(snntorch), "notes": list(fnet.notes)}))
        return FrontEnd(fnet.n_in, 1, np.full(fnet.n_in, default_rate), 256,
                        lambda name, calib, wb, vb: quantize(fnet, name, calib, wb, vb), what,
                        extra)
    if checkpoint_arch(path) == "est":
        model, extra = load_est_checkpoint(path)
        cfg = model.cfg
        if not cfg.rhythms:
            no_rhythms("EST")
        n_in = cfg.n_in
        top = 2 ** cfg.input_bits - 1
        try:
            rates = np.asarray(extra.get("train_mean_rates", [default_rate] * n_in), np.float64)
        except (TypeError, ValueError):
            rates = np.full(1, np.nan)
        if rates.shape != (n_in,) or not np.all((rates >= 0) & (rates <= top)):
            raise EstError(f"{path}: extra.train_mean_rates must be {n_in} numbers in 0..{top} "
                           f"(each input's mean count in training); est-train writes them: "
                           f"train the model again, or remove the entry to use {default_rate}")
        return FrontEnd(
            n_in, cfg.input_bits, rates, 2000,
            lambda name, calib, wb, vb: quantize_est(model, name, calib, wb, vb, first_bin),
            f"EST with {plural(cfg.blocks, 'block')}, d_model {cfg.d_model}",
            {"model_config": config_dict(cfg)})
    no_rhythms("spiking MLP")
    fnet = load_checkpoint(path)
    return FrontEnd(
        fnet.n_in, 1, np.full(fnet.n_in, default_rate), 256,
        lambda name, calib, wb, vb: quantize(fnet, name, calib, wb, vb),
        f"spiking MLP with {plural(len(fnet.layers), 'layer')}", {})
