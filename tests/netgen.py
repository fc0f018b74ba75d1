"""Random integer networks and stimuli for tests (seeded, so any failure reproduces)."""

import numpy as np

from est.compiler.ir import DenseLIF, DenseReadout, Network


def random_network(seed: int, n_in: int = 12, hidden=(10, 7), n_out: int = 5, lanes: int = 3,
                   weight_bits: int = 6, v_bits: int = 12, name: str = "rand") -> Network:
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    layers = []
    prev = n_in
    for k, n in enumerate(hidden):
        layers.append(DenseLIF(
            name=f"fc{k + 1}", weight=rng.integers(lo, hi + 1, (n, prev)),
            bias=rng.integers(-20, 40, n), scale=np.ones(n), weight_bits=weight_bits,
            v_bits=v_bits, leak_shift=[None, 0, 1, 3][rng.integers(4)],
            threshold=rng.integers(1, 120, n), reset=["subtract", "zero"][rng.integers(2)]))
        prev = n
    layers.append(DenseReadout(
        name="readout", weight=rng.integers(lo, hi + 1, (n_out, prev)),
        bias=rng.integers(-50, 50, n_out), scale=np.ones(n_out), weight_bits=weight_bits,
        v_bits=v_bits, leak_shift=[None, 0, 2][rng.integers(3)]))
    return Network(name=name, n_in=n_in, layers=tuple(layers), lanes=lanes).validate()


def random_stimulus(seed: int, bins: int, n_in: int, rate: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).random((bins, n_in)) < rate).astype(np.int64)
