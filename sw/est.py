"""The Enhanced Spiking Transformer (EST) in PyTorch: float training model and ANN baseline.

Streaming and causal: input counts [bins, batch, n_in] (clipped to ``2**input_bits - 1``,
spikes for ``input_bits`` 1), output the predicted log-rate of every neuron for the NEXT bin,
[bins, batch, n_out]. Each of the five
parts is a switch in :class:`ESTConfig` (ablation): convolutional spike attention
(``attention``: sdsa | ssa | none), CPG positional encoding (``cpg``), temporal processing unit
(``tpu``), SEW residuals (``sew``: add | and | iand | none), random spike masking (``rsm``).

The spiking forward pass follows docs/semantics.md with real numbers (leak ``beta = 1 - 2**-k``,
fire ``v >= threshold``, reset in the same bin, surrogate gradients), so quantization is the only
difference to the integer path (:mod:`est.sw.integer`). ``mode="ann"`` runs the same
architecture as a standard transformer (ReLU units, softmax attention over the same causal
window, plain residual adds): the baseline.
"""

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from est.compiler.ops.input import MAX_INPUT_BITS
from est.compiler.ops.readout import leaky_weight_bits
from est.sim.golden import MAX_ROTATE_MULT, SAME_BIN_RESETS, cpg_table
from est.sw.data import (
    MAX_LEAK_SHIFT,
    MAX_SEED,
    check_choice,
    check_leak_shift,
    check_number,
    check_whole,
    config_error,
)
from est.sw.glm import (
    RHYTHM_ROWS,
    as_oscillators,
    exponential_sums,
    oscillator_sums,
    rhythm_advance,
    rhythm_values,
    shortest_rhythm,
)
from est.sw.neuron import (
    SpikeFn,
    beta_from_shift,
    leaky_integral,
    lif_sequence,
    recurrent_lif_sequence,
)


@dataclass(frozen=True)
class ESTConfig:
    n_in: int = 24
    n_out: int = 24
    d_model: int = 16
    blocks: int = 2
    heads: int = 2
    mlp_hidden: int = 32
    attention: str = "sdsa"  # sdsa | ssa | none
    window: int = 8
    kernels: tuple[int, ...] = (3, 5)  # Q/K/V kernel per block (grows with depth)
    embed_kernel: int = 1  # input history seen by the embedding (1: a dense layer)
    count_threshold: int = 1  # SDSA: [windowed count >= this]
    ssa_scale: float = 0.125
    cpg: bool = True
    cpg_neurons: int = 10
    cpg_positions: int = 168
    tpu: bool = True
    tpu_kernel: int = 3
    sew: str = "add"  # add | and | iand | none
    rsm: float = 0.5  # spike drop ratio in front of Q/K/V; 0 = off
    mode: str = "snn"  # snn | ann
    leak_shift: int | None = 5  # beta = 1 - 2**-leak_shift; None: no leak ("none" in a config)
    threshold: float = 1.0
    reset: str = "subtract"  # subtract | zero
    readout_leak_shift: int | None = 4  # the readout integrator's; None: no leak
    readout_kernel: int = 6  # bins of the last block's spikes (and inputs) the readout sees
    input_to_readout: bool = True  # a linear path from the input counts into the readout
    # slow readouts of the input counts, one per leak shift, added to the readout's log-rate
    readout_slow_shifts: tuple[int, ...] = (2, 3, 4, 5, 6, 7)
    # oscillator readouts of the input counts, (rotation shift m, leak shift k, multiplier c)
    # each ([m, k]: c 1): damped oscillators of period about 2 pi 2^m / c bins, added to the
    # readout's log-rate; est-train tunes some to the rhythms it finds (train.find_oscillators)
    readout_oscillators: tuple[tuple[int, int, int], ...] = ()
    # fitted rhythms, a period (bins) each: a table read by a phase accumulator (semantics
    # 8.2), its row beside the input in the readout's input; est-train finds them with
    # train.find_rhythms
    rhythms: tuple[float, ...] = ()
    rhythm_rows: int = RHYTHM_ROWS
    input_coupling: str = "auto"  # full: every input count reaches every output | self: its own
    input_bits: int = 3  # input counts clipped to 2**input_bits - 1 (1: spikes)
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "readout_oscillators",
                           as_oscillators(self.readout_oscillators))
        if isinstance(self.rhythms, list):
            object.__setattr__(self, "rhythms", tuple(self.rhythms))

    @property
    def rhythm_advances(self) -> tuple[int, ...]:
        """Each rhythm's table advance (rows a bin times 2^15)."""
        return tuple(rhythm_advance(p, self.rhythm_rows) for p in self.rhythms)

    def validate(self, prefix: str = "model.") -> "ESTConfig":
        """Check every field (type, range) and the rules between fields; raise
        :class:`est.EstError` naming the first field at fault as ``{prefix}{field}``."""
        k = prefix
        for name in ("n_in", "n_out", "d_model", "blocks", "heads", "mlp_hidden", "window",
                     "embed_kernel", "count_threshold", "cpg_positions", "tpu_kernel",
                     "readout_kernel"):
            check_whole(k + name, getattr(self, name), 1)
        check_whole(k + "cpg_neurons", self.cpg_neurons, 2)
        check_whole(k + "input_bits", self.input_bits, 1, MAX_INPUT_BITS)
        if self.cpg_neurons % 2:
            config_error(f"{k}cpg_neurons must be even (a sine and a cosine per frequency), "
                         f"got {self.cpg_neurons}")
        if not isinstance(self.kernels, (tuple, list)):
            config_error(f"{k}kernels must be a list of kernel sizes, one per block, got "
                         f"{self.kernels!r}")
        for i, kernel in enumerate(self.kernels):
            check_whole(f"{k}kernels[{i}]", kernel, 1)
        check_choice(k + "attention", self.attention, ("sdsa", "ssa", "none"))
        check_choice(k + "sew", self.sew, ("add", "and", "iand", "none"))
        check_choice(k + "mode", self.mode, ("snn", "ann"))
        check_choice(k + "reset", self.reset, SAME_BIN_RESETS)
        check_choice(k + "input_coupling", self.input_coupling, ("auto", "full", "self"))
        if self.input_coupling == "self" and self.n_in != self.n_out:
            config_error(f"{k}input_coupling = \"self\" pairs input n with output n, but "
                         f"{k}n_in = {self.n_in} and {k}n_out = {self.n_out}; use \"full\"")
        for name in ("cpg", "tpu", "input_to_readout"):
            if not isinstance(getattr(self, name), bool):
                config_error(f"{k}{name} must be true or false, got {getattr(self, name)!r}")
        check_number(k + "ssa_scale", self.ssa_scale, above=0)
        check_number(k + "threshold", self.threshold, above=0)
        check_number(k + "rsm", self.rsm, at_least=0, below=1,
                     what="in [0, 1) (the fraction of spikes dropped)")
        for name in ("leak_shift", "readout_leak_shift"):
            check_leak_shift(k + name, getattr(self, name))
        if not isinstance(self.readout_slow_shifts, (tuple, list)):
            config_error(f"{k}readout_slow_shifts must be a list of leak shifts, got "
                         f"{self.readout_slow_shifts!r}")
        for i, shift in enumerate(self.readout_slow_shifts):
            check_whole(f"{k}readout_slow_shifts[{i}]", shift, 1, MAX_LEAK_SHIFT)
        if len(set(self.readout_slow_shifts)) != len(self.readout_slow_shifts):
            config_error(f"{k}readout_slow_shifts must not repeat a shift, got "
                         f"{list(self.readout_slow_shifts)}")
        check_oscillators(k + "readout_oscillators", self.readout_oscillators)
        check_whole(k + "rhythm_rows", self.rhythm_rows, 1, 512)
        if not isinstance(self.rhythms, tuple):
            config_error(f"{k}rhythms must be a list of periods (bins), got {self.rhythms!r}")
        shortest = shortest_rhythm(self.rhythm_rows)
        for i, period in enumerate(self.rhythms):
            check_number(f"{k}rhythms[{i}]", period, at_least=shortest,
                         what=f">= {shortest:.4f} bins (rhythm_rows / 2: a table moves at most "
                         f"about 2 rows a bin)")
        check_whole(k + "seed", self.seed, 0, MAX_SEED)
        if not isinstance(self.extra, dict):
            config_error(f"{k}extra must be a table (dict), got {self.extra!r}")
        if len(self.kernels) < self.blocks:
            n = len(self.kernels)
            config_error(f"{k}kernels has {n} entr{'y' if n == 1 else 'ies'} but {k}blocks = "
                         f"{self.blocks}; give one kernel size per block")
        if self.d_model % self.heads:
            divisors = ", ".join(str(h) for h in range(1, self.d_model + 1)
                                 if self.d_model % h == 0)
            config_error(f"{k}heads = {self.heads} does not divide {k}d_model = {self.d_model}; "
                         f"pick a divisor of {self.d_model} ({divisors})")
        return self


class _Conv(nn.Module):
    """Causal convolution over time: ``out[t] = b + sum_lag W[lag] x[t - lag]``; ``mask``
    ([n_out, n_in], or None) holds the weights where it is 0 at zero."""

    def __init__(self, n_in: int, n_out: int, kernel: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(kernel, n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.register_buffer("mask", None, persistent=False)
        nn.init.normal_(self.weight, 0.0, 1.0 / math.sqrt(n_in * kernel))

    fake_quant_bits: int | None = None

    def weights(self) -> torch.Tensor:
        """The weights it applies: ``weight``, zero where ``mask`` is 0."""
        return self.weight if self.mask is None else self.weight * self.mask

    def effective_weight(self) -> torch.Tensor:
        """The weights the forward pass applies: :meth:`weights`, fake-quantized when on."""
        w = self.weights()
        return w if self.fake_quant_bits is None else fake_quantize(w, self.fake_quant_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, n_in]
        w = self.effective_weight()
        out = self.bias + x @ w[0].T
        for lag in range(1, w.shape[0]):
            if lag < x.shape[0]:
                out = out + F.pad(x[:-lag] @ w[lag].T, (0, 0, 0, 0, lag, 0))
        return out


def fake_quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel rounding of a [kernel, n_out, n_in] weight to ``bits`` signed bits,
    as the quantizer does, with a straight-through gradient (quantization-aware training)."""
    qmax = (1 << (bits - 1)) - 1
    scale = qmax / w.detach().abs().amax(dim=(0, 2), keepdim=True).clamp_min(1e-12)
    return w + (torch.round(w * scale) / scale - w).detach()


class _Neurons(nn.Module):
    """A LIF array (snn) or a ReLU (ann) over a current sequence [T, B, n]."""

    def __init__(self, cfg: ESTConfig, threshold: float | None = None):
        super().__init__()
        self.snn, self.reset = cfg.mode == "snn", cfg.reset
        self.beta = beta_from_shift(cfg.leak_shift)
        self.threshold = cfg.threshold if threshold is None else threshold

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        if not self.snn:
            return F.relu(current)
        return lif_sequence(current, self.beta, self.threshold, self.reset)


class _Spikes(nn.Module):
    """The identity: marks a spike tensor that no :class:`_Neurons` returns (SDSA's output, the
    TPU's), so that :func:`spike_tensors` finds it."""

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return s


def spike_tensors(model: nn.Module, store: list) -> list:
    """Forward hooks that append every spike tensor a spiking ``model`` makes in a training
    forward pass (each neuron array's output, SDSA's and the TPU's) to ``store``; remove them
    with ``handle.remove()``."""
    def keep(module, _inputs, out):
        if module.training:
            store.append(out)

    return [m.register_forward_hook(keep)
            for m in model.modules() if isinstance(m, _Spikes) or
            isinstance(m, _Neurons) and m.snn]


def _sew(out: torch.Tensor, skip: torch.Tensor, op: str, snn: bool) -> torch.Tensor:
    if op == "none":
        return out
    if op == "add" or not snn:
        return out + skip
    if op == "and":
        return out * skip
    return (1 - out) * skip


class _Block(nn.Module):
    def __init__(self, cfg: ESTConfig, kernel: int):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        if cfg.attention != "none":
            self.q, self.k, self.v = (_Conv(d, d, kernel) for _ in range(3))
            self.q_lif, self.k_lif, self.v_lif = (_Neurons(cfg) for _ in range(3))
            if cfg.attention == "ssa":
                self.attn_lif = _Neurons(cfg)
            self.proj, self.proj_lif = _Conv(d, d, 1), _Neurons(cfg)
            self.attn_spikes = _Spikes()
        if cfg.tpu:
            self.tpu_in = nn.Parameter(torch.full((d,), 0.5))
            self.tpu_rec = nn.Parameter(torch.full((cfg.tpu_kernel, d), 0.5 / cfg.tpu_kernel))
            self.tpu_bias = nn.Parameter(torch.zeros(d))
            self.tpu_lif = _Neurons(cfg)
            self.tpu_spikes = _Spikes()
        self.mlp1, self.mlp1_lif = _Conv(d, cfg.mlp_hidden, 1), _Neurons(cfg)
        self.mlp2, self.mlp2_lif = _Conv(cfg.mlp_hidden, d, 1), _Neurons(cfg)

    def _attention(self, q, k, v):
        cfg, n_bins = self.cfg, q.shape[0]
        lag = torch.arange(n_bins)[:, None] - torch.arange(n_bins)[None, :]
        band = ((lag >= 0) & (lag < cfg.window)).to(q.dtype)  # [t, tau]
        if cfg.mode == "snn" and cfg.attention == "sdsa":
            count = torch.einsum("tu,ubd->tbd", band, k * v)
            return q * SpikeFn.apply(count - cfg.count_threshold)
        d = cfg.d_model // cfg.heads
        qh, kh, vh = (x.reshape(n_bins, -1, cfg.heads, d) for x in (q, k, v))
        scores = torch.einsum("tbhd,ubhd->bhtu", qh, kh)
        if cfg.mode == "ann":
            scores = scores / math.sqrt(d) + torch.log(band)  # -inf outside the window
            weights = torch.softmax(scores, dim=-1)
            return torch.einsum("bhtu,ubhd->tbhd", weights, vh).reshape(n_bins, -1, cfg.d_model)
        out = torch.einsum("bhtu,ubhd->tbhd", scores * band, vh).reshape(n_bins, -1, cfg.d_model)
        return self.attn_lif(out * cfg.ssa_scale)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        cfg, snn = self.cfg, self.cfg.mode == "snn"
        r = s
        if cfg.attention != "none":
            masked = s
            if snn and cfg.rsm > 0:
                keep = (torch.rand_like(s) * 256 >= round(cfg.rsm * 256)).to(s.dtype)
                masked = s * keep
            q = self.q_lif(self.q(masked))
            k = self.k_lif(self.k(masked))
            v = self.v_lif(self.v(masked))
            a = self._attention(q, k, v)
            if snn and cfg.attention == "sdsa":
                a = self.attn_spikes(a)
            o = self.proj_lif(self.proj(a))
            r = _sew(o, s, cfg.sew, snn)
        if cfg.tpu:
            r = _sew(self._tpu(r), r, cfg.sew, snn)
        m = self.mlp2_lif(self.mlp2(self.mlp1_lif(self.mlp1(r))))
        return _sew(m, r, cfg.sew, snn)

    def _tpu(self, r: torch.Tensor) -> torch.Tensor:
        """``y_t = N(b + w_in r_t + sum_j w_rec[j-1] y_{t-j})``: mixing across bins."""
        drive = self.tpu_bias + self.tpu_in * r
        lif = self.tpu_lif
        if lif.snn:
            return self.tpu_spikes(recurrent_lif_sequence(drive, self.tpu_rec, lif.beta,
                                                          lif.threshold, lif.reset))
        kk = self.tpu_rec.shape[0]
        past = [torch.zeros_like(r[0]) for _ in range(kk)]  # y_{t-1}, ..., y_{t-k}
        out = []
        for t in range(r.shape[0]):
            y = F.relu(drive[t] + sum(self.tpu_rec[j] * past[j] for j in range(kk)))
            past = [y, *past[:-1]]
            out.append(y)
        return torch.stack(out)


class EST(nn.Module):
    """Input [bins, batch, n_in] spikes -> log-rates for the next bin [bins, batch, n_out]."""

    def __init__(self, cfg: ESTConfig):
        super().__init__()
        self.cfg = cfg.validate()
        d = cfg.d_model
        torch.manual_seed(cfg.seed)
        self.embed, self.embed_lif = _Conv(cfg.n_in, d, cfg.embed_kernel), _Neurons(cfg)
        if cfg.cpg:
            self.register_buffer("cpg_table", torch.as_tensor(
                cpg_table(cfg.cpg_positions, cfg.cpg_neurons), dtype=torch.float32))
            self.cpg_weight = nn.Parameter(torch.zeros(d, cfg.cpg_neurons))  # learnt if useful
        self.blocks = nn.ModuleList(_Block(cfg, cfg.kernels[i]) for i in range(cfg.blocks))
        extra = 4 * len(cfg.rhythms)  # each rhythm's table row: 4 values (rhythm_values)
        self.readout = _Conv(d + cfg.n_in * cfg.input_to_readout + extra, cfg.n_out,
                             cfg.readout_kernel)
        if cfg.input_to_readout and cfg.input_coupling == "self":
            mask = torch.ones(cfg.n_out, d + cfg.n_in + extra)
            mask[:, d:d + cfg.n_in] = torch.eye(cfg.n_in)
            self.readout.mask = mask
        self.readout_beta = beta_from_shift(cfg.readout_leak_shift)
        self.slow = nn.ModuleList(_Conv(cfg.n_in, cfg.n_out, 1) for _ in cfg.readout_slow_shifts)
        # an oscillator's u's currents, then its w's
        self.osc = nn.ModuleList(_Conv(cfg.n_in, 2 * cfg.n_out, 1)
                                 for _ in cfg.readout_oscillators)
        for conv in (*self.slow, *self.osc):
            nn.init.zeros_(conv.weight)
            conv.bias.requires_grad_(False)  # the readout's bias is the one bias
            if cfg.input_coupling == "self":
                conv.mask = torch.eye(cfg.n_in).repeat(conv.weight.shape[1] // cfg.n_in, 1)

    def set_fake_quant(self, bits: int | None) -> None:
        """Round every convolution weight to ``bits`` in the forward pass (None: off); the
        readout's to ``bits + readout_leak_shift`` (at most 16), as the compiler quantizes it."""
        for module in self.modules():
            if isinstance(module, _Conv):
                module.fake_quant_bits = bits
        if bits is not None:
            self.readout.fake_quant_bits = leaky_weight_bits(bits, self.cfg.readout_leak_shift)
            for conv, shift in zip(self.slow, self.cfg.readout_slow_shifts, strict=True):
                conv.fake_quant_bits = leaky_weight_bits(bits, shift)
            for conv, (_, shift, _) in zip(self.osc, self.cfg.readout_oscillators,
                                           strict=True):
                conv.fake_quant_bits = leaky_weight_bits(bits, shift)

    def forward(self, x: torch.Tensor, start: int | torch.Tensor = 0,
                slow_state: list[torch.Tensor] | None = None,
                osc_state: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``start``: the bin index of ``x[0]`` in its stream (the CPG's and the rhythms'
        position), one per batch element or shared. ``slow_state``: per slow readout, the
        leaky integral of the (clipped) inputs up to the bin before ``x[0]``
        (:func:`slow_integrals`), ``[batch, n_in]``: the slow readouts then start warm, as
        they are after that history (their convolutions have no bias, so a readout's state is
        its weights times that integral);
        None: every state starts at zero. ``osc_state`` likewise for the oscillator readouts,
        ``[batch, 4, n_in]`` each (:func:`oscillator_integrals`)."""
        x = x.clamp(max=float(2 ** self.cfg.input_bits - 1))
        current = self.embed(x)
        if self.cfg.cpg:
            start = torch.as_tensor(start).reshape(1, -1)  # one start per sequence, or shared
            pos = (torch.arange(x.shape[0])[:, None] + start) % self.cpg_table.shape[0]
            current = current + self.cpg_table[pos] @ self.cpg_weight.T
        s = self.embed_lif(current)
        for block in self.blocks:
            s = block(s)
        parts = [s, x] if self.cfg.input_to_readout else [s]
        if self.cfg.rhythms:
            start = torch.as_tensor(start).reshape(1, -1)
            bins = (torch.arange(x.shape[0])[:, None] + start).expand(-1, x.shape[1])
            parts.append(torch.as_tensor(rhythm_values(
                bins.numpy(), self.cfg.rhythm_advances, self.cfg.rhythm_rows),
                dtype=x.dtype))
        current = self.readout(torch.cat(parts, dim=-1))
        out = leaky_integral(current, self.readout_beta)
        for i, (conv, shift) in enumerate(zip(self.slow, self.cfg.readout_slow_shifts,
                                              strict=True)):
            v0 = None if slow_state is None else conv(slow_state[i][None])[0]
            out = out + leaky_integral(conv(x), beta_from_shift(shift), v0)
        for i, (conv, (m, k, c)) in enumerate(zip(self.osc, self.cfg.readout_oscillators,
                                                  strict=True)):
            state = None if osc_state is None else osc_state[i]
            out = out + _oscillate(conv, x, m, k, c, state)
        return out


def _oscillate(conv: "_Conv", x: torch.Tensor, m: int, k: int, mult: int,
               state: torch.Tensor | None) -> torch.Tensor:
    """An oscillator readout's ``u`` over ``x`` (docs/semantics.md 2.3, in real numbers):
    ``u = a u - e w + c_u``, then ``w = a w + e u + c_w``, ``a = 1 - 2^-k``,
    ``e = mult 2^-m``;
    ``state`` [batch, 4, n_in] the input's integrals before ``x[0]`` (the state is then
    ``u = A Uu + B Uw``, ``w = A Wu + B Ww`` for the weights ``A`` into u and ``B`` into w)."""
    a, e = beta_from_shift(k), mult * 2.0 ** -m
    c = conv(x)
    n = c.shape[-1] // 2
    if state is None:
        u = w = torch.zeros_like(c[0, ..., :n])
    else:
        wts = conv.effective_weight()[0]  # [2n, n_in]
        u = state[:, 0] @ wts[:n].T + state[:, 2] @ wts[n:].T
        w = state[:, 1] @ wts[:n].T + state[:, 3] @ wts[n:].T
    outs = []
    for t in range(c.shape[0]):
        u = a * u - e * w + c[t, ..., :n]
        w = a * w + e * u + c[t, ..., n:]
        outs.append(u)
    return torch.stack(outs)


def oscillator_integrals(counts: np.ndarray, cfg: ESTConfig) -> list[np.ndarray]:
    """Per oscillator readout of ``cfg``, the states the (clipped) input counts ``x``
    [bins, n_in] drive it to, each input alone with weight 1: row ``t`` (after bin ``t``) is
    ``[Uu, Wu, Uw, Ww]`` [4, n_in], ``u`` and ``w`` driven through ``u``, then through ``w``
    (float32; ``EST.forward``'s ``osc_state`` for a crop starting at ``t + 1``): the GLM's
    :func:`~est.sw.glm.oscillator_sums` one bin on."""
    x = np.minimum(counts, 2 ** cfg.input_bits - 1).astype(np.float64)
    x = np.vstack([x, np.zeros((1, x.shape[1]))])  # a row after the last, for its states
    return [np.concatenate([oscillator_sums(x, m, k, drive, c)[1:] for drive in ("u", "w")],
                           axis=1).astype(np.float32)
            for m, k, c in cfg.readout_oscillators]


def slow_integrals(counts: np.ndarray, cfg: ESTConfig) -> list[np.ndarray]:
    """Per slow readout of ``cfg``, the leaky integral ``L_t = a L_{t-1} + x_t`` (``a`` its
    beta) of the clipped input counts ``x`` [bins, n_in] from zero at bin 0: row ``t`` is the
    history a slow readout has integrated after bin ``t`` (float32; ``EST.forward``'s
    ``slow_state`` for a crop starting at ``t + 1``): the GLM's
    :func:`~est.sw.glm.exponential_sums` one bin on."""
    x = np.minimum(counts, 2 ** cfg.input_bits - 1).astype(np.float64)
    x = np.vstack([x, np.zeros((1, x.shape[1]))])  # a row after the last, for its sum
    return [exponential_sums(x, shift)[1:].astype(np.float32)
            for shift in cfg.readout_slow_shifts]


def check_oscillators(name: str, oscillators) -> None:
    """Raise EstError naming ``name`` unless ``oscillators`` (after :func:`as_oscillators`) is
    a list of distinct ``[m, k, c]`` (rotation shift, leak shift, multiplier: a rotation of
    ``c 2^-m``) with ``1 <= k <= MAX_LEAK_SHIFT``, ``0 <= m <= k`` and ``1 <= c <=
    MAX_ROTATE_MULT``, ``c`` below ``2^m`` unless 1."""
    if not isinstance(oscillators, (tuple, list)):
        config_error(f"{name} must be a list of [m, k] or [m, k, c], got {oscillators!r}")
    for i, osc in enumerate(oscillators):
        if not isinstance(osc, (tuple, list)) or len(osc) != 3:
            config_error(f"{name}[{i}] must be [m, k] or [m, k, c] (rotation shift, leak "
                         f"shift, multiplier), got "
                         f"{list(osc) if isinstance(osc, tuple) else osc!r}")
        check_whole(f"{name}[{i}][1]", osc[1], 1, MAX_LEAK_SHIFT)
        check_whole(f"{name}[{i}][0]", osc[0], 0, osc[1])
        check_whole(f"{name}[{i}][2]", osc[2], 1,
                    1 if osc[0] == 0 else min(MAX_ROTATE_MULT, 2 ** osc[0] - 1))
    if len({tuple(p) for p in oscillators}) != len(oscillators):
        config_error(f"{name} must not repeat an oscillator, got "
                     f"{[list(p) for p in oscillators]}")


def config_dict(cfg: ESTConfig) -> dict:
    """The config as plain types, for checkpoints (weights_only-loadable)."""
    d = asdict(cfg)
    d["kernels"] = list(cfg.kernels)
    d["readout_slow_shifts"] = list(cfg.readout_slow_shifts)
    d["readout_oscillators"] = [list(p) for p in cfg.readout_oscillators]
    d["rhythms"] = list(cfg.rhythms)
    return d


BEFORE_FIELD = {"readout_kernel": 1, "input_to_readout": False, "input_bits": 1,
                "input_coupling": "full", "readout_slow_shifts": ()}
"""What a checkpoint written before these fields existed was trained with (their defaults are
now other values): a one-bin readout of the spikes alone, spike inputs, no slow readouts."""


def config_from_dict(d: dict) -> ESTConfig:
    """The config of a checkpoint; a field it does not hold takes :data:`BEFORE_FIELD`'s value,
    else the default."""
    d = {**BEFORE_FIELD, **d}
    d["kernels"] = tuple(d.get("kernels", (3, 5)))
    d["readout_slow_shifts"] = tuple(d["readout_slow_shifts"])
    d["readout_oscillators"] = as_oscillators(d.get("readout_oscillators", ()))
    d["rhythms"] = tuple(d.get("rhythms", ()))
    return ESTConfig(**d)
