"""Trace files: every node's integer tensors at every bin, from the golden model or the RTL.

A trace is one ``.npz`` file (no pickles) of int64 arrays shaped ``[bins, n]``, named
``<node>/<tensor>`` after the graph's nodes (docs/traces.md). An RTL trace holds the tensors its
top exposed (the readout always, the others unless compiled with ``--no-trace``).
``__meta__`` is a JSON string: source (golden|verilator|icarus|amaranth), network name, bins.
"""

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from est import EstError, numpy_says


@dataclass
class Trace:
    arrays: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)

    @property
    def bins(self) -> int:
        return next(iter(self.arrays.values())).shape[0]

    def save(self, path: Path) -> None:
        np.savez_compressed(path, __meta__=np.array(json.dumps(self.meta)), **self.arrays)

    @classmethod
    def load(cls, path: Path) -> "Trace":
        try:
            npz = np.load(path, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("a .npy array, not a .npz archive of named tensors")
            with npz:
                arrays = {k: npz[k].astype(np.int64) for k in npz.files if k != "__meta__"}
                meta = json.loads(str(npz["__meta__"])) if "__meta__" in npz.files else {}
        except FileNotFoundError:
            raise EstError(f"{path}: no such trace file (golden.npz comes from est-compile, "
                           f"rtl_<sim>.npz from est-sim)") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise EstError(f"{path}: not an est trace file (a .npz of int64 arrays written by "
                           f"est-compile or est-sim; numpy says: {numpy_says(e)})") from None
        shapes = {name: a.shape for name, a in arrays.items()}
        if not arrays or any(len(s) != 2 for s in shapes.values()) or len(
                {s[0] for s in shapes.values()}) != 1:
            raise EstError(f"{path}: not an est trace file (expected [bins, channels] int64 "
                           f"tensors of one length, got {shapes or 'none'}); write it again "
                           f"with est-compile or est-sim")
        return cls(arrays, meta)


class Mismatch(NamedTuple):
    """One differing value: tensor name, bin, channel, and both values."""

    tensor: str
    bin: int
    channel: int
    expected: int
    actual: int


class Comparison(NamedTuple):
    """Result of comparing two traces over the tensors both hold."""

    tensors: tuple[str, ...]
    values_compared: int
    bins: int
    mismatches: int
    per_tensor: dict
    first: Mismatch | None


def compare(golden: Trace, rtl: Trace) -> Comparison:
    """Compare every value of every tensor the RTL trace holds against the golden trace.

    The first divergence is the earliest bin; within a bin, the earliest tensor in network order
    (the golden trace's key order), then the lowest channel.
    """
    missing = [k for k in rtl.arrays if k not in golden.arrays]
    if missing:
        raise EstError(f"the RTL trace has tensors the golden trace lacks: {missing}")
    names = tuple(k for k in golden.arrays if k in rtl.arrays and k != "input/spikes")
    if not names:
        raise EstError("the two traces share no tensor to compare")
    per_tensor, first = {}, None
    for name in names:
        g, r = golden.arrays[name], rtl.arrays[name]
        if g.shape != r.shape:
            raise EstError(f"tensor {name}: golden shape {g.shape} but RTL shape {r.shape}")
        diff = np.argwhere(g != r)
        per_tensor[name] = int(len(diff))
        if len(diff):
            b, c = (int(v) for v in diff[0])
            cand = Mismatch(name, b, c, int(g[b, c]), int(r[b, c]))
            if first is None or cand.bin < first.bin:
                first = cand
    compared = sum(golden.arrays[name].size for name in names)
    return Comparison(names, compared, golden.bins, sum(per_tensor.values()), per_tensor, first)
