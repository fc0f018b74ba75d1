"""A plain PyTorch spiking MLP (Linear -> LIF -> ... -> Linear -> readout integrator).

The float model whose forward pass follows docs/semantics.md with real numbers: leak
``v <- beta * v`` with ``beta = 1 - 2**-k``, integrate ``+ W x + b``, fire ``v >= threshold``
(surrogate gradient in training), reset by subtraction or to zero in the same bin. ``est-compile``
reads its checkpoint (:func:`save_checkpoint`), a dict of plain types and tensors that
``torch.load(weights_only=True)`` opens without running code.
"""

import argparse
from pathlib import Path

import torch
from torch import nn

CHECKPOINT_FORMAT = "est-checkpoint"
CHECKPOINT_VERSION = 1


class _SpikeFn(torch.autograd.Function):
    """Heaviside forward, fast-sigmoid surrogate backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + 10 * x.abs()) ** 2


def beta_from_shift(shift: int | None) -> float:
    return 1.0 if shift is None else 1.0 - 2.0 ** -shift


class SpikingMLP(nn.Module):
    """Binary spikes [bins, batch, n_in] in, readout values [bins, batch, n_out] out."""

    def __init__(self, n_in: int, hidden: list[int], n_out: int, leak_shift: int | None = 3,
                 threshold: float = 1.0, reset: str = "subtract",
                 readout_leak_shift: int | None = 0):
        super().__init__()
        sizes = [n_in, *hidden, n_out]
        names = [f"fc{k + 1}" for k in range(len(hidden))] + ["readout"]
        self.layers = nn.ModuleDict({name: nn.Linear(a, b)
                                     for name, a, b in zip(names, sizes, sizes[1:])})
        self.beta = beta_from_shift(leak_shift)
        self.threshold, self.reset = threshold, reset
        self.readout_beta = beta_from_shift(readout_leak_shift)

    def spec(self) -> list[dict]:
        """The layer list stored in a checkpoint: linear layers, each followed by its neurons."""
        out = []
        for name, lin in self.layers.items():
            out.append({"type": "linear", "name": name, "in_features": lin.in_features,
                        "out_features": lin.out_features})
            if name == "readout":
                out.append({"type": "integrator", "beta": self.readout_beta})
            else:
                out.append({"type": "lif", "beta": self.beta, "threshold": self.threshold,
                            "reset": self.reset})
        return out

    def forward(self, x: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        """Run all bins; with ``record`` a dict, store each LIF layer's spikes under its name."""
        spikes = x
        for name, lin in self.layers.items():
            current = lin(spikes)
            v = torch.zeros_like(current[0])
            outs = []
            for t in range(current.shape[0]):
                if name == "readout":
                    v = self.readout_beta * v + current[t]
                    outs.append(v)
                    continue
                v = self.beta * v + current[t]
                s = _SpikeFn.apply(v - self.threshold)
                v = v - s * self.threshold if self.reset == "subtract" else v * (1 - s)
                outs.append(s)
            spikes = torch.stack(outs)
            if record is not None and name != "readout":
                record[name] = spikes.detach()
        return spikes

    @classmethod
    def from_checkpoint(cls, spec: list[dict], state_dict: dict) -> "SpikingMLP":
        linears = [d for d in spec if d["type"] == "linear"]
        lif = next((d for d in spec if d["type"] == "lif"), {"beta": 1.0, "threshold": 1.0,
                                                             "reset": "subtract"})
        model = cls(linears[0]["in_features"], [d["out_features"] for d in linears[:-1]],
                    linears[-1]["out_features"], None, lif["threshold"], lif["reset"], None)
        model.beta = lif["beta"]
        model.readout_beta = spec[-1]["beta"]
        model.load_state_dict(state_dict)
        return model


def save_checkpoint(model: SpikingMLP, path: Path) -> None:
    """Write ``model`` as an est checkpoint (plain dicts, lists, floats, strings and tensors)."""
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "arch": "spiking_mlp", "layers": model.spec(),
                "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}},
               path)


def make_model(n_in: int = 16, hidden: tuple[int, ...] = (32, 24), n_out: int = 8,
               seed: int = 0) -> SpikingMLP:
    """A seeded, untrained SpikingMLP whose weights make hidden neurons fire at useful rates
    on random input (about 10-40% per bin at input rate 0.2)."""
    torch.manual_seed(seed)
    model = SpikingMLP(n_in, list(hidden), n_out, leak_shift=3, threshold=1.0)
    with torch.no_grad():
        for name, lin in model.layers.items():
            lin.weight.normal_(0.05, 1.5 / lin.in_features ** 0.5)
            lin.bias.uniform_(0.0, 0.2)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m est.sw.spiking_mlp",
        description="Write a seeded spiking-MLP checkpoint (the spine's demo model).")
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
