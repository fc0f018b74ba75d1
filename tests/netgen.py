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


def random_est(seed: int, attention: str = "sdsa", sew: str = "add", cpg: bool = True,
               tpu: bool = True, rsm: float = 0.5, n_in: int = 6, d: int = 8, blocks: int = 2,
               heads: int = 2, hidden: int = 12):
    """A random integer EST IR (no training): every switch set by the arguments."""
    from est.compiler.est_ir import LIF, TPU, Block, Conv, ESTNetwork
    from est.sim.golden import cpg_table, mask_threshold

    rng = np.random.default_rng(seed)

    def conv(kernel, n_out, n_in_, lo=-6, hi=9):
        return Conv(rng.integers(lo, hi, (kernel, n_out, n_in_)), rng.integers(-4, 8, n_out))

    def lif(n, v_bits=10):
        return LIF(rng.integers(3, 14, n), [None, 0, 1, 2][rng.integers(4)], v_bits,
                   ["subtract", "zero"][rng.integers(2)])

    blks = []
    for i in range(blocks):
        kernel = 3 + 2 * i
        blks.append(Block(
            mask_threshold=mask_threshold(rsm), mask_seed=int(rng.integers(1, 1 << 32)),
            q=conv(kernel, d, d), q_lif=lif(d), k=conv(kernel, d, d), k_lif=lif(d),
            v=conv(kernel, d, d), v_lif=lif(d), attention=attention, window=4, heads=heads,
            count_threshold=2, attn_lif=lif(d) if attention == "ssa" else None,
            proj=conv(1, d, d), proj_lif=lif(d), sew=sew,
            tpu=TPU(rng.integers(-3, 8, d), rng.integers(-4, 6, (3, d)), rng.integers(-2, 5, d),
                    lif(d)) if tpu else None,
            mlp1=conv(1, hidden, d), mlp1_lif=lif(hidden), mlp2=conv(1, d, hidden),
            mlp2_lif=lif(d)))
    return ESTNetwork(
        name=f"est{seed}", n_in=n_in, d_model=d, embed=conv(1, d, n_in, -3, 12),
        embed_lif=lif(d), cpg_table=cpg_table(16, 6) if cpg else None,
        cpg_weight=rng.integers(-4, 8, (d, 6)) if cpg else None, blocks=tuple(blks),
        readout=conv(1, n_in, d), readout_leak_shift=1, readout_bits=12,
        readout_scale=np.ones(n_in)).validate()
