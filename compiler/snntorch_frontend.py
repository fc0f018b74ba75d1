"""The snnTorch front end: an ``nn.Sequential`` of ``Linear``, ``Conv1d``, ``Flatten``,
``Dropout``, ``snntorch.Leaky`` and ``snntorch.Synaptic`` modules, given directly as its state dict
(``torch.save(model.state_dict(), path)``, read with ``weights_only=True``: nothing is
unpickled) and a description of its modules (TOML: what the state dict does not hold, written
by :func:`describe` or by hand) -> the spiking-MLP front end's :class:`FloatNetwork`.

Per module (docs/snntorch.md has the table), with ``I`` the synapses' output ``W x + b``:

- ``Leaky`` (snnTorch 1.0): ``v <- beta v + I``, spike ``v > threshold``; beta and threshold
  come from the state dict (learnable or fixed: a parameter or a buffer, both saved), beta
  clamped to [0, 1] as snnTorch clamps it. est's LIF of leak ``beta`` (a shift within
  :data:`est.compiler.frontend.LEAK_TOLERANCE`, else refused), each neuron's threshold
  divided into its synapses.
- Reset. ``reset_mechanism="zero"``: est's reset to zero, exact with ``reset_delay`` either
  way (the delayed reset zeroes the stored membrane at the start of the next step, before the
  leak: the spikes are the same). ``"subtract"`` with ``reset_delay=True`` (snnTorch's
  default): est's ``subtract_delayed``, exact: ``v <- beta v + I - theta s_prev``, the
  membrane stored unreset (the dataflow top runs it; the core does not). ``"subtract"`` with
  ``reset_delay=False``: est's same-bin subtraction, which is NOT exact, and est-compile says
  so (a note on the console and in report.json): the two differ while a membrane stays above
  its threshold after its reset (snnTorch then decides the next spike after a second
  subtraction and adds it back).
- ``Synaptic``: ``syn <- alpha syn + I``, ``v <- beta v + syn``: est's current-based LIF
  array (a synaptic current a neuron, leak ``alpha``), with the same
  resets, except ``"zero"`` with ``reset_delay=True``, which zeroes the synaptic current and
  the step's input too in the step after a spike: refused.
- ``Conv1d`` over the spatial axis: the dense synapses it equals
  (:func:`~est.compiler.frontend.conv1d_as_dense`); synapse modules in a row (a Conv1d, then
  a Flatten and a Linear) the one linear map they make; ``Flatten`` and ``Dropout`` (the
  identity at inference) hold no state.

Refused by module, each with why: ``Alpha``, recurrent neurons, ``reset_mechanism="none"``,
graded spikes, ``inhibition``, ``state_quant``, a last module that is not a ``Leaky`` or
``Synaptic``, anything else.
"""

import re
import tomllib
from pathlib import Path

import numpy as np
import torch

from est import EstError
from est.compiler.frontend import (
    FloatNetwork,
    compose,
    conv1d_as_dense,
    shift_leak,
    torch_load,
    unit_threshold,
)

MODULES = ("Linear", "Conv1d", "Flatten", "Dropout", "Leaky", "Synaptic")
NEURONS = ("Leaky", "Synaptic")
RESETS = {0: "subtract", 1: "zero", 2: "none"}
"""snnTorch's ``reset_mechanism_val`` buffer."""
LEAKY_FLAGS = ("reset_delay", "inhibition", "state_quant")
CONV_FIELDS = ("stride", "padding", "dilation", "groups")


def describe(net: torch.nn.Module, input_shape: tuple[int, ...]) -> str:
    """The TOML description of ``net`` (an ``nn.Sequential``) that ``est-compile STATE.pt
    --snntorch DESC`` reads beside its state dict: ``input_shape`` (one step's input without
    the batch axis: ``(features,)`` or ``(channels, length)``), then each module's type and
    the settings its state dict does not hold. Nothing else is checked here; the compiler
    checks."""
    if not isinstance(net, torch.nn.Sequential):
        raise EstError(f"describe: expected an nn.Sequential (its state dict's keys are the "
                       f"modules' indices), got {type(net).__name__}; put the modules in an "
                       f"nn.Sequential with init_hidden=True Leaky layers")
    lines = ["# an snnTorch nn.Sequential for est-compile STATE.pt --snntorch THIS.toml",
             f"input = {list(map(int, input_shape))}"]
    for idx, module in enumerate(net):
        lines += ["", f"[[module]]  # {idx}", f'type = "{type(module).__name__}"']
        if isinstance(module, torch.nn.Conv1d):
            padding = module.padding if isinstance(module.padding, str) else module.padding[0]
            lines += [f"stride = {module.stride[0]}", f"dilation = {module.dilation[0]}",
                      f"groups = {module.groups}", f'padding_mode = "{module.padding_mode}"',
                      f'padding = "{padding}"' if isinstance(padding, str)
                      else f"padding = {padding}"]
        for flag in LEAKY_FLAGS:
            if hasattr(module, "reset_mechanism_val") and hasattr(module, flag):
                lines.append(f"{flag} = {'true' if getattr(module, flag) else 'false'}")
    return "\n".join(lines) + "\n"


def _fail(path: Path, message: str) -> EstError:
    return EstError(f"{path}: {message}")


def _description(path: Path) -> tuple[tuple[int, ...], list[dict]]:
    if not path.is_file():
        raise _fail(path, "no such file (expected the TOML description of the nn.Sequential: "
                          "write it with est.compiler.snntorch_frontend.describe)")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise _fail(path, f"not TOML ({e})") from None
    shape, modules = doc.get("input"), doc.get("module")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                       for n in shape)):
        raise _fail(path, f"'input' must be one step's input shape without the batch axis, "
                          f"[features] or [channels, length], got {shape!r}")
    if not isinstance(modules, list) or not modules or not all(
            isinstance(m, dict) and isinstance(m.get("type"), str) for m in modules):
        raise _fail(path, "expected one [[module]] table with a 'type' per module of the "
                          "nn.Sequential, in order")
    return tuple(shape), modules


class _State:
    """The state dict, each tensor taken once, so what no module explains is reported."""

    def __init__(self, path: Path, obj):
        if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(
                v, torch.Tensor) for k, v in obj.items()):
            raise _fail(path, "expected a state dict (torch.save(model.state_dict(), path)): "
                              "a dict of tensors")
        self.path, self.tensors, self.used = path, obj, set()

    def get(self, key: str, where: str, optional: bool = False) -> np.ndarray | None:
        t = self.tensors.get(key)
        if t is None:
            if optional:
                return None
            raise _fail(self.path, f"{where}: tensor '{key}' is missing from the state dict; "
                                   f"does the description list the modules in the order of "
                                   f"the nn.Sequential?")
        self.used.add(key)
        arr = t.detach().to(torch.float64).numpy()
        if not np.all(np.isfinite(arr)):
            raise _fail(self.path, f"{where}: tensor '{key}' holds NaN or infinite values")
        return arr

    def per_neuron(self, key: str, where: str, n: int) -> np.ndarray:
        arr = self.get(key, where)
        if arr.size not in (1, n):
            raise _fail(self.path, f"{where}: '{key}' has shape {arr.shape}, expected one "
                                   f"value or one per neuron ({n})")
        return np.broadcast_to(arr.reshape(-1), (n,)).astype(np.float64)


def load_snntorch(path: Path, description: Path) -> FloatNetwork:
    """The network whose state dict is at ``path`` and whose modules ``description`` lists
    (see the module docstring)."""
    path, description = Path(path), Path(description)
    shape, modules = _description(description)
    state = _State(path, torch_load(path, "a state dict saved with torch.save(model."
                                          "state_dict(), path)"))
    n_in = int(np.prod(shape))
    layers, pending, notes = [], None, []
    for idx, m in enumerate(modules):
        kind, where = m["type"], f"module {idx} ({m['type']})"
        if kind not in MODULES:
            raise _fail(description, f"{where}: not supported; est compiles "
                                     f"{', '.join(MODULES)}; {_why(kind)}")
        if kind in ("Flatten", "Dropout"):
            shape = (int(np.prod(shape)),) if kind == "Flatten" else shape
            continue
        if kind in NEURONS:
            if pending is None:
                raise _fail(description, f"{where}: a {kind} must follow a Linear or Conv1d")
            layer, layer_notes = _leaky(description, state, idx, where, m, pending)
            layers.append(layer)
            notes += layer_notes
            pending = None
            continue
        if kind == "Linear":
            if len(shape) != 1:
                raise _fail(description, f"{where}: its input has shape {list(shape)}; put a "
                                         f"Flatten before it (a Linear on [channels, length] "
                                         f"acts on the last axis only)")
            w = state.get(f"{idx}.weight", where)
            if w.ndim != 2 or w.shape[1] != shape[0]:
                raise _fail(path, f"{where}: weight has shape {w.shape}, expected [out, "
                                  f"{shape[0]}]")
            b = state.get(f"{idx}.bias", where, optional=True)
            shape = (w.shape[0],)
        else:
            w, b, shape = _conv1d(description, state, idx, where, m, shape)
        b = np.zeros(w.shape[0]) if b is None else b.reshape(-1)
        # synapses on synapses (no Leaky between): the one linear map they make
        pending = (w, b) if pending is None else compose(pending, (w, b))
    unexplained = sorted(set(state.tensors) - state.used)
    if unexplained:
        raise _fail(path, f"the state dict holds tensors the description does not explain: "
                          f"{unexplained[:4]}; is a module missing from {description.name}?")
    if pending is not None or not layers:
        raise _fail(description, "the last module must be a Leaky or Synaptic (est's output is "
                                 "a layer of neurons: their spikes)")
    return FloatNetwork(n_in, tuple(layers), tuple(notes))


def _conv1d(description: Path, state: _State, idx: int, where: str, m: dict,
            shape: tuple) -> tuple:
    if len(shape) != 2:
        raise _fail(description, f"{where}: its input has shape {list(shape)}, expected "
                                 f"[channels, length] (set 'input' so)")
    geometry = {k: m.get(k, 1 if k != "padding" else 0) for k in CONV_FIELDS}
    if m.get("padding_mode", "zeros") != "zeros":
        raise _fail(description, f"{where}: padding_mode {m['padding_mode']!r}; est lays out "
                                 f"zero padding only")
    w = state.get(f"{idx}.weight", where)
    b = state.get(f"{idx}.bias", where, optional=True)
    if w.ndim != 3 or w.shape[1] * int(geometry["groups"]) != shape[0]:
        raise _fail(description, f"{where}: weight has shape {w.shape}, expected [C_out, "
                                 f"{shape[0]} / groups, kernel]")
    dense, bias, l_out = conv1d_as_dense(f"{description}: {where}", w,
                                         np.zeros(w.shape[0]) if b is None else b, shape[1],
                                         geometry["stride"], geometry["padding"],
                                         geometry["dilation"], geometry["groups"])
    return dense, bias, (w.shape[0], l_out)


def _leaky(description: Path, state: _State, idx: int, where: str, m: dict, pending: tuple):
    w, b = pending
    n = w.shape[0]
    for flag in ("inhibition", "state_quant"):
        if m.get(flag, False):
            raise _fail(description, f"{where}: {flag} is set; est's neurons fire on their "
                                     f"own membranes, unquantized in floats: train without it")
    reset_val = int(state.get(f"{idx}.reset_mechanism_val", where).reshape(-1)[0])
    reset = RESETS.get(reset_val)
    if reset not in ("subtract", "zero"):
        raise _fail(description, f"{where}: reset_mechanism {reset or reset_val!r}; est resets "
                                 f"by subtraction or to zero")
    notes, delay, synaptic = [], m.get("reset_delay", True), m["type"] == "Synaptic"
    if synaptic and reset == "zero" and delay:
        raise _fail(description, f"{where}: reset_mechanism 'zero' with reset_delay=True zeroes "
                                 f"the synaptic current too, and the step's input with it, in "
                                 f"the step after a spike; est's arrays reset the membrane "
                                 f"only: train with reset_delay=False or reset by subtraction")
    if reset == "subtract" and delay:
        reset = "subtract_delayed"
    elif reset == "subtract":
        notes.append(f"{where}: reset by subtraction with reset_delay=False is not exact: "
                     f"snnTorch decides a spike after a second subtraction while a membrane "
                     f"stays above its threshold after its reset, est does not; "
                     f"reset_delay=True or reset_mechanism='zero' translate exactly")
    gain = state.get(f"{idx}.graded_spikes_factor", where)
    if not np.all(gain == 1.0):
        raise _fail(description, f"{where}: graded_spikes_factor {gain.reshape(-1)[:2]}; est's "
                                 f"spikes are 0 or 1")
    beta = _decay(description, state, idx, where, "beta", n)
    alpha = _decay(description, state, idx, where, "alpha", n) if synaptic else None
    theta = state.per_neuron(f"{idx}.threshold", where, n)
    if np.any(theta <= 0):
        raise _fail(description, f"{where}: thresholds must be > 0, got {theta.min():g}")
    name = f"{'synaptic' if synaptic else 'leaky'}{idx}"
    return unit_threshold(name, w, b, beta, theta, reset, alpha), notes


def _decay(description: Path, state: _State, idx: int, where: str, field: str, n: int) -> float:
    """A decay rate (``beta``, a Synaptic's ``alpha``), clamped to [0, 1] as snnTorch clamps
    it, one for the layer, held by a leak shift."""
    rate = np.clip(state.per_neuron(f"{idx}.{field}", where, n), 0.0, 1.0)
    return shift_leak(f"{description}: {where}" + ("" if field == "beta" else f" {field}"),
                      field, rate, f"train with a fixed {field} = 1 - 2**-k (0.5, 0.75, "
                                   f"0.875, ...)")


def _why(kind: str) -> str:
    return {"Alpha": "its two synaptic currents are states est's neuron arrays do not hold",
            "RLeaky": "recurrent connections are not mapped",
            "RSynaptic": "recurrent connections are not mapped",
            "Lapicque": "use Leaky (the same neuron, parametrised by beta)",
            "Conv2d": "2-D convolutions are not mapped",
            "MaxPool1d": "pooling is not mapped",
            }.get(kind, "no translation for it" if re.fullmatch(r"\w+", kind)
                  else "is it a module type at all?")
