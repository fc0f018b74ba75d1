"""A plain PyTorch spiking MLP (Linear -> LIF -> ... -> Linear -> readout integrator).

The float model whose forward pass follows docs/semantics.md with real numbers: leak
``v <- beta * v`` (``beta = 1 - 2**-k`` is exact in hardware), integrate ``+ W x + b``, fire
``v >= threshold`` (surrogate gradient in training), reset by subtraction or to zero in the same
bin. ``est-compile`` reads its checkpoint (:func:`save_checkpoint`), a dict of plain types and
tensors that ``torch.load(weights_only=True)`` opens without running code.
"""

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from est.sw.neuron import beta_from_shift, leaky_integral, lif_sequence

CHECKPOINT_FORMAT = "est-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class NeuronSpec:
    """The neurons after one Linear: 'lif' (threshold, reset) or the 'integrator' readout; a
    'lif' with ``syn_beta`` is current-based: its input first goes through a synaptic
    current ``i <- syn_beta i + I`` (a front end's: NIR's CubaLIF; est-train does not train
    it)."""

    type: str
    beta: float
    threshold: float = 1.0
    reset: str = "subtract"
    syn_beta: float | None = None


class SpikingMLP(nn.Module):
    """Binary spikes [bins, batch, n_in] in, readout values [bins, batch, n_out] out.

    ``sizes`` are the widths from input to output; ``neurons`` has one :class:`NeuronSpec` per
    Linear (the last one an integrator); ``names`` names the Linear layers.
    """

    def __init__(self, sizes: list[int], neurons: list[NeuronSpec], names: list[str]):
        super().__init__()
        if not len(sizes) - 1 == len(neurons) == len(names):
            raise ValueError("need one neuron spec and one name per linear layer")
        self.layers = nn.ModuleDict({name: nn.Linear(a, b)
                                     for name, a, b in zip(names, sizes, sizes[1:], strict=False)})
        self.neurons = list(neurons)

    @classmethod
    def uniform(cls, n_in: int, hidden: list[int], n_out: int, leak_shift: int | None = 3,
                threshold: float = 1.0, reset: str = "subtract",
                readout_leak_shift: int | None = 0) -> "SpikingMLP":
        """Every hidden layer with the same LIF parameters; names fc1, fc2, ..., readout."""
        lif = NeuronSpec("lif", beta_from_shift(leak_shift), threshold, reset)
        return cls([n_in, *hidden, n_out],
                   [lif] * len(hidden) + [NeuronSpec("integrator",
                                                     beta_from_shift(readout_leak_shift))],
                   [f"fc{k + 1}" for k in range(len(hidden))] + ["readout"])

    def spec(self) -> list[dict]:
        """The layer list stored in a checkpoint: linear layers, each followed by its neurons."""
        out = []
        for (name, lin), neuron in zip(self.layers.items(), self.neurons, strict=True):
            out.append({"type": "linear", "name": name, "in_features": lin.in_features,
                        "out_features": lin.out_features})
            entry = {k: v for k, v in asdict(neuron).items()
                     if k != "syn_beta" or v is not None}
            if neuron.type == "integrator":
                entry = {"type": "integrator", "beta": neuron.beta}
            out.append(entry)
        return out

    def forward(self, x: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        """Run all bins; with ``record`` a dict, store each LIF layer's spikes under its name."""
        spikes = x
        for (name, lin), neuron in zip(self.layers.items(), self.neurons, strict=True):
            current = lin(spikes)
            if neuron.type == "integrator":
                spikes = leaky_integral(current, neuron.beta)
            else:
                if neuron.syn_beta is not None:
                    current = leaky_integral(current, neuron.syn_beta)
                spikes = lif_sequence(current, neuron.beta, neuron.threshold, neuron.reset)
            if record is not None and neuron.type == "lif":
                record[name] = spikes.detach()
        return spikes


def save_checkpoint(model: SpikingMLP, path: Path) -> None:
    """Write ``model`` as an est checkpoint (plain dicts, lists, floats, strings and tensors)."""
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "arch": "spiking_mlp", "layers": model.spec(),
                "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}},
               path)


def make_model(n_in: int = 16, hidden: tuple[int, ...] = (32, 24), n_out: int = 8,
               seed: int = 0) -> SpikingMLP:
    """A seeded, untrained SpikingMLP whose weights make hidden neurons fire at useful rates
    on random input (about 20-40% per bin at input rate 0.2)."""
    torch.manual_seed(seed)
    model = SpikingMLP.uniform(n_in, list(hidden), n_out, leak_shift=3, threshold=1.0)
    with torch.no_grad():
        for lin in model.layers.values():
            lin.weight.normal_(0.05, 1.5 / lin.in_features ** 0.5)
            lin.bias.uniform_(0.0, 0.2)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m est.sw.spiking_mlp",
        description="Write a seeded (untrained) spiking-MLP checkpoint: the spine's demo model.")
    parser.add_argument("-o", "--out", type=Path, required=True, help="checkpoint path (.pt)")
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 24])
    parser.add_argument("--outputs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = make_model(args.inputs, tuple(args.hidden), args.outputs, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
