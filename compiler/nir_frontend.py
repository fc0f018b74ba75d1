"""The NIR front end: a NIR graph (the ``nir`` package; the file is HDF5, nothing in it is
unpickled) -> the spiking-MLP front end's float network (:class:`FloatNetwork`), its
continuous-time neurons translated into est's discrete ones for a time step ``dt`` (which a
NIR file does not hold: the exporter's, given by the user).

Supported: a chain from ``Input`` to ``Output`` of synapses (``Affine``, ``Linear``,
``Conv1d`` over the spatial axis as the dense matrix it equals; synapses in a row as the one
linear map they make, with any
``Scale`` after them and ``Flatten`` anywhere) each followed by neurons (``LIF``, ``IF``,
``Threshold``; the last ones may be ``LI``, a readout, or spiking: the output is then their
spikes). Per node (docs/nir.md has the table and
the equations), with ``I`` the synapses' output ``W x + b``, stepped by Euler over ``dt``:

- ``LIF`` ``tau dv/dt = (v_leak - v) + r I``, fire ``v > v_threshold``, then ``v = v_reset``:
  ``v <- beta v + g I + (1 - beta) v_leak`` with ``beta = 1 - dt / tau``, ``g = r dt / tau``:
  est's LIF of leak ``beta`` (a shift: ``beta = 1 - 2**-k`` within
  :data:`est.compiler.frontend.LEAK_TOLERANCE`, else refused) over synapses ``g W`` and
  bias ``g b + (1 - beta) v_leak``, reset to zero (``v_reset`` must be 0); each neuron's
  threshold divided into its synapses, so every threshold is 1.
- ``IF`` ``dv/dt = r I``: the same with ``beta = 1``, ``g = r dt``.
- ``Threshold`` ``z = [I > theta]``, no state: a LIF of leak shift 0 (``v - (v >> 0) = 0``:
  the membrane holds one bin's input) and threshold ``theta``.
- ``LI`` (last only) ``tau dv/dt = (v_leak - v) + r I``: the readout of leak ``beta``.

NIR fires where ``v > threshold``; est where ``v >= threshold``. In floats they differ only
where the membrane lands exactly on the threshold; est's integer model is a quantization of
the float one either way, and the compile report gives the spike agreement.
"""

import re
from pathlib import Path

import numpy as np

from est import EstError
from est.compiler.frontend import (
    FloatLayer,
    FloatNetwork,
    compose,
    conv1d_as_dense,
    shift_leak,
    unit_threshold,
)
from est.sw.data import HDF5_MAGIC

SYNAPSES = ("Affine", "Linear", "Conv1d")
NEURONS = ("LIF", "IF", "Threshold", "LI", "CubaLIF")


def is_nir(path: Path) -> bool:
    """A NIR file: HDF5 named ``.nir``."""
    return Path(path).suffix.lower() == ".nir"


def _fail(path: Path, message: str) -> EstError:
    return EstError(f"{path}: {message}")


def _chain(path: Path, graph) -> list[str]:
    """The node names from the input to the output, or a refusal naming what is not a
    chain."""
    nexts: dict[str, list[str]] = {}
    for a, b in graph.edges:
        nexts.setdefault(a, []).append(b)
    inputs = [k for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
    if len(inputs) != 1:
        raise _fail(path, f"the NIR graph has {len(inputs)} Input nodes; est compiles a chain "
                          f"from one Input to one Output")
    order, node = [], inputs[0]
    while True:
        order.append(node)
        after = nexts.get(node, [])
        if not after:
            break
        if len(after) > 1 or after[0] in order:
            raise _fail(path, f"node '{node}' ({type(graph.nodes[node]).__name__}) feeds "
                              f"{sorted(after)}: est compiles a chain from Input to Output "
                              f"(no branches, no recurrence)")
        node = after[0]
    if type(graph.nodes[order[-1]]).__name__ != "Output":
        raise _fail(path, f"the chain from Input ends at node '{order[-1]}' "
                          f"({type(graph.nodes[order[-1]]).__name__}), not at an Output")
    return order


def _vector(node: str, kind: str, field: str, value, n: int, path: Path) -> np.ndarray:
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    elif arr.size == n:  # after a Conv1d: [C, L], flattened channel-major as the synapses are
        arr = arr.reshape(n)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise _fail(path, f"node '{node}' ({kind}): {field} has shape {arr.shape}, expected "
                          f"[{n}] finite numbers")
    return arr


def load_nir(path: Path, dt: float | None) -> FloatNetwork:
    """Read the NIR graph at ``path`` and translate it (see the module docstring); ``dt``: the
    time step in seconds its exporter stepped with."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file (expected a NIR graph written by nir.write)")
    with path.open("rb") as f:
        if f.read(8) != HDF5_MAGIC:
            raise _fail(path, "not an HDF5 file, so not a NIR graph (nir.write writes HDF5)")
    import nir

    try:
        # est checks every shape itself; nir's type check refuses graphs that exporters write
        # with a batch axis on Input (Rockpool: [1, n] into an Affine of [n])
        graph = nir.read(str(path), type_check=False)
    except Exception as e:  # h5py and nir raise many kinds on a file that is not NIR
        raise _fail(path, f"could not read it as a NIR graph ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if dt is None or not dt > 0:
        raise _fail(path, "a NIR graph holds time constants (tau) but not the time step its "
                          "exporter used: pass --nir-dt SECONDS (snnTorch's export_to_nir "
                          "steps with 1e-4)")
    order = _chain(path, graph)
    layers, pending, n_in = [], None, None
    for name in order[1:-1]:
        node = graph.nodes[name]
        kind = type(node).__name__
        if kind in SYNAPSES:
            if kind == "Conv1d":
                w, b = _conv1d(path, name, node)
            else:
                w = np.asarray(node.weight, np.float64)
                if w.ndim != 2:
                    raise _fail(path, f"node '{name}' ({kind}): weight has shape {w.shape}, "
                                      f"expected [out, in]")
                b = (np.asarray(node.bias, np.float64) if kind == "Affine"
                     else np.zeros(w.shape[0]))
            n = (pending[1].shape[0] if pending is not None
                 else layers[-1].weight.shape[0] if layers else None)
            if n is not None and w.shape[1] != n:
                raise _fail(path, f"node '{name}' ({kind}): {w.shape[1]} inputs, but the "
                                  f"node before has {n} outputs")
            b = _vector(name, kind, "bias", b, w.shape[0], path)
            if pending is not None:  # synapses on synapses: the one linear map they make
                w, b = compose(pending[1:], (w, b))
            n_in = w.shape[1] if n_in is None else n_in
            pending = [name, w, b]
        elif kind == "Flatten":
            continue
        elif kind == "Scale":
            if pending is None:
                raise _fail(path, f"node '{name}' (Scale): est folds a Scale into the synapses "
                                  f"before it, and there are none")
            s = _vector(name, kind, "scale", node.scale, pending[1].shape[0], path)
            pending[1], pending[2] = pending[1] * s[:, None], pending[2] * s
        elif kind in NEURONS:
            if pending is None:
                raise _fail(path, f"node '{name}' ({kind}): neurons must follow synapses "
                                  f"(Affine, Linear or Conv1d)")
            ident = f"l{len(layers)}_{re.sub(r'[^0-9A-Za-z_]', '_', name)}"
            layers.append(_neurons(path, name, ident, kind, node, pending, dt,
                                   name == order[-2]))
            pending = None
        else:
            raise _fail(path, f"node '{name}' ({kind}): not supported; est compiles Affine, "
                              f"Linear, Conv1d, Scale, Flatten, LIF, CubaLIF, IF, Threshold and "
                              f"(last) LI; {_why(kind)}")
    if pending is not None or not layers:
        raise _fail(path, "the graph must end with synapses followed by neurons (LIF, IF, "
                          "Threshold or LI) before its Output")
    return FloatNetwork(n_in, tuple(layers))


def _conv1d(path: Path, name: str, node) -> tuple[np.ndarray, np.ndarray]:
    """A Conv1d over NIR's spatial axis as its dense matrix (input ``[C_in, input_shape]``
    flattened channel-major, as NIR's Flatten and torch flatten)."""
    length = int(np.asarray(node.input_shape).reshape(-1)[0])
    w, b, _ = conv1d_as_dense(f"{path}: node '{name}' (Conv1d)", node.weight,
                              np.broadcast_to(np.asarray(node.bias, np.float64),
                                              (node.weight.shape[0],)),
                              length, int(node.stride), _padding(node.padding),
                              int(node.dilation), int(node.groups))
    return w, b


def _padding(padding):
    """NIR writes padding as an int, a one-element array, 'same' or 'valid'."""
    if isinstance(padding, (str, bytes)):
        return padding.decode() if isinstance(padding, bytes) else padding
    return int(np.asarray(padding).reshape(-1)[0])


def _why(kind: str) -> str:
    return {"CubaLI": "a current-based leaky integrator is not mapped (est's current-based "
                      "arrays spike)",
            "Conv2d": "2-D convolutions are not mapped", "Delay": "delays are not mapped",
            "I": "an integrator without leak or threshold is not mapped",
            "SumPool2d": "pooling is not mapped", "AvgPool2d": "pooling is not mapped",
            }.get(kind, "no translation for it")


def _beta(path: Path, name: str, kind: str, field: str, tau: np.ndarray, dt: float) -> float:
    """``1 - dt / tau``, one for the array, held by a leak shift (else refused)."""
    if np.any(tau <= 0):
        raise _fail(path, f"node '{name}' ({kind}): {field} must be > 0")
    return shift_leak(f"{path}: node '{name}' ({kind})" + ("" if field == "tau" else f" {field}"),
                      field, 1.0 - dt / tau,
                      "train with beta = 1 - dt/tau = 1 - 2**-k, or check --nir-dt")


def _cuba(path: Path, name: str, ident: str, node, w: np.ndarray, b: np.ndarray,
          leak_v: np.ndarray, beta: float, dt: float) -> FloatLayer:
    """A CubaLIF (synapses ``w``, ``b`` already times ``r dt / tau_mem``): Euler gives ``I <-
    alpha I + (1 - alpha) w_in u`` and ``v <- beta v + (r dt / tau_mem) I``, ``alpha = 1 -
    dt / tau_syn``; so the synaptic current of est's current-based array, ``J = (r dt /
    tau_mem) I``, is ``J <- alpha J + (1 - alpha) w_in (r dt / tau_mem) u``: synapses times
    ``(1 - alpha) w_in``, synaptic leak ``alpha``, membrane leak ``beta``."""
    n = w.shape[0]
    if np.any(leak_v != 0):
        raise _fail(path, f"node '{name}' (CubaLIF): v_leak must be 0 (a constant drive of the "
                          f"membrane would need a second bias after the synaptic current), got "
                          f"{leak_v[:4]}")
    tau_syn = _vector(name, "CubaLIF", "tau_syn", node.tau_syn, n, path)
    alpha = _beta(path, name, "CubaLIF", "tau_syn", tau_syn, dt)
    w_in = _vector(name, "CubaLIF", "w_in", node.w_in, n, path)
    theta = _vector(name, "CubaLIF", "v_threshold", node.v_threshold, n, path)
    if node.v_reset is not None and np.any(np.asarray(node.v_reset, np.float64) != 0):
        raise _fail(path, f"node '{name}' (CubaLIF): v_reset must be 0 (est resets to zero or "
                          f"by subtraction), got {np.asarray(node.v_reset).ravel()[:4]}")
    if np.any(theta <= 0):
        raise _fail(path, f"node '{name}' (CubaLIF): thresholds must be > 0, got "
                          f"{theta.min():g}")
    scale = (1.0 - alpha) * w_in
    return unit_threshold(ident, w * scale[:, None], b * scale, beta, theta, "zero", alpha)


def _neurons(path: Path, name: str, ident: str, kind: str, node, pending: list, dt: float,
             last: bool) -> FloatLayer:
    """Layer ``ident``: the synapses of ``pending`` and the neurons ``node`` (NIR node
    ``name``), translated."""
    _, w, b = pending
    n = w.shape[0]
    if kind == "Threshold":
        theta = _vector(name, kind, "threshold", node.threshold, n, path)
        beta, gain, offset, reset = 0.0, np.ones(n), np.zeros(n), "zero"
    else:
        r = _vector(name, kind, "r", node.r, n, path)
        if kind == "IF":
            beta, gain, offset = 1.0, r * dt, np.zeros(n)
        else:
            field = "tau_mem" if kind == "CubaLIF" else "tau"
            tau = _vector(name, kind, field, getattr(node, field), n, path)
            beta = _beta(path, name, kind, field, tau, dt)
            leak_v = _vector(name, kind, "v_leak", node.v_leak, n, path)
            gain, offset = r * dt / tau, (1.0 - beta) * leak_v
        if kind == "CubaLIF":
            return _cuba(path, name, ident, node, w * gain[:, None], b * gain, leak_v, beta, dt)
        if kind == "LI":
            if not last:
                raise _fail(path, f"node '{name}' (LI): a leaky integrator does not spike; "
                                  f"est takes it as the readout, the last layer only")
            return FloatLayer(ident, "integrator", w * gain[:, None], b * gain + offset, beta)
        theta = _vector(name, kind, "v_threshold", node.v_threshold, n, path)
        v_reset = node.v_reset
        if v_reset is not None and np.any(np.asarray(v_reset, np.float64) != 0):
            raise _fail(path, f"node '{name}' ({kind}): v_reset must be 0 (est resets to zero "
                              f"or by subtraction), got {np.asarray(v_reset).ravel()[:4]}")
        reset = "zero"
    if np.any(theta <= 0):
        raise _fail(path, f"node '{name}' ({kind}): thresholds must be > 0, got "
                          f"{theta.min():g}")
    return unit_threshold(ident, w * gain[:, None], b * gain + offset, beta, theta, reset)
