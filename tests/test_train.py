"""est-train: configs (TOML, YAML, --set), bad configs refused cleanly, determinism for a seed,
and its checkpoint compiled by est-compile into an EST graph whose golden traces equal the
integer PyTorch path on every tensor."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from est import EstError
from est.compiler import graph
from est.sim.trace import Trace
from est.sw.est import EST, ESTConfig
from est.sw.integer import integer_forward
from est.sw.train import TrainConfig, load_config
from netgen import write_nwb

BIN = Path(sys.executable).parent
TINY = ["--set", "data.n_neurons=6", "--set", "data.bins=1500", "--set", "model.d_model=8",
        "--set", "model.mlp_hidden=8", "--set", "train.steps=4", "--set", "train.qat_steps=2",
        "--set", "train.seq_len=16", "--set", "train.batch=4"]


def cli(tool: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / tool, *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "run"
    res = cli("est-train", "-q", "--out", out, *TINY)
    assert res.returncode == 0, res.stderr
    return out


def test_train_writes_checkpoint_and_metrics(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for part in ("float", "integer", "glm", "true_rates"):
        assert np.isfinite(metrics[part]["test"]["bits_per_spike"]), part
    assert metrics["true_rates"]["test"]["r2"] == pytest.approx(1.0)
    assert metrics["config"]["model"]["d_model"] == 8
    # the GLM baseline: the candidate of the grid best on the validation split
    glm = metrics["glm"]
    assert len(glm["grid"]) == 50 and {g["history"] for g in glm["grid"]} == {1, 2, 3, 5, 8}
    assert {g["coupling"] for g in glm["grid"]} == {"full", "self"}
    best = max(glm["grid"], key=lambda g: g["val_bits_per_spike"])
    assert (glm["coupling"], glm["history"], glm["l2"]) == (best["coupling"], best["history"],
                                                            best["l2"])
    # the input path started as that GLM, so the EST's coupling is the GLM's
    assert metrics["config"]["model"]["input_coupling"] == glm["coupling"]
    assert glm["val"]["bits_per_spike"] == pytest.approx(best["val_bits_per_spike"])
    ckpt = torch.load(tiny_run / "model.pt", weights_only=True)
    assert ckpt["arch"] == "est" and ckpt["config"]["n_in"] == 6
    assert metrics["below_null"] == [s for s in ("val", "test")
                                     if metrics["float"][s]["bits_per_spike"] < 0]


def test_a_model_below_the_null_model_is_reported(tmp_path):
    """Rates that drift far between the splits (baselines moving by 6 x N(0, 1) over the
    recording): the model loses to the NLB null on validation and test, and est-train says
    so in metrics.json and in a warning."""
    out = tmp_path / "run"
    res = cli("est-train", "--out", out, *TINY, "--set", "data.drift=6")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["below_null"] == ["val", "test"]
    assert metrics["float"]["test"]["bits_per_spike"] < 0
    assert ("est-train: warning: the model scores below the null model (each neuron's mean "
            "count over the split) on val and test" in res.stderr)


def test_train_is_deterministic_for_a_seed(tiny_run, tmp_path):
    res = cli("est-train", "-q", "--out", tmp_path / "again", *TINY)
    assert res.returncode == 0, res.stderr
    a = torch.load(tiny_run / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "again" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((p / "metrics.json").read_text())
              for p in (tiny_run, tmp_path / "again"))
    ma.pop("seconds"), mb.pop("seconds")
    assert ma == mb


def test_train_reads_yaml_and_a_different_seed_differs(tiny_run, tmp_path):
    """A YAML config, a seed of its own; ``--threads 1`` (one of several trainings side by
    side) is the thread count torch ran with, and metrics.json says so."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  seed: 7\nmodel:\n  sew: iand\n")
    res = cli("est-train", "-q", "--config", cfg, "--out", tmp_path / "y", "--threads", "1",
              *TINY)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "y" / "metrics.json").read_text())
    assert metrics["config"]["model"]["sew"] == "iand" and metrics["config"]["train"]["seed"] == 7
    assert metrics["threads"] == 1
    assert json.loads((tiny_run / "metrics.json").read_text())["threads"] >= 1


@pytest.mark.parametrize("args, needle", [
    (["--set", "train.stepz=3"], "unknown key(s) ['stepz']"),
    (["--set", "optim.lr=3"], "section one of data, model, train"),
    (["--set", "train.steps"], "expected section.key=value"),
    (["--set", "model.attention='dot'"], "model.attention must be one of sdsa | ssa | none"),
    (["--set", "model.d_model='wide'"], "config [model]"),
    (["--set", "train.loss='gauss'"], "train.loss must be one of poisson | negbin"),
    (["--set", "data.n_neurons=0"], "data.n_neurons must be at least 1, got 0"),
    (["--set", "model.count_threshold=0"], "model.count_threshold must be at least 1, got 0"),
    (["--set", "model.kernels=[0]"], "model.kernels[0] must be at least 1, got 0"),
    (["--set", "model.heads=3"], "model.heads = 3 does not divide model.d_model = 8"),
    (["--set", "train.seq_len=5000"], "fewer than burn_in + seq_len + 2"),
    (["--config", "missing.toml"], "no such config file"),
])
def test_bad_configs_are_refused(tmp_path, args, needle):
    res = cli("est-train", "-q", "--out", tmp_path / "out", *TINY, *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not any(p.name.startswith((".out", "out")) for p in tmp_path.iterdir())


def test_invalid_toml_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 3\n")
    res = cli("est-train", "-q", "--config", bad, "--out", tmp_path / "out")
    assert res.returncode == 2 and "not valid TOML/YAML" in res.stderr


EXAMPLE = Path(__file__).parent.parent / "examples" / "est_small.pt"


@pytest.mark.parametrize("which", ["tiny", "example"])
def test_compile_est_checkpoint_golden_equals_integer_path(tiny_run, tmp_path, which):
    build = tmp_path / "b"
    model = tiny_run / "model.pt" if which == "tiny" else EXAMPLE
    res = cli("est-compile", model, "-o", build, "--bins", "120")
    assert res.returncode == 0, res.stderr
    g = graph.load(build)
    stimulus = np.load(build / "stimulus.npy")
    golden = Trace.load(build / "golden.npz")
    ref = integer_forward(g, stimulus)
    assert set(golden.arrays) == set(ref)
    for name, values in ref.items():
        np.testing.assert_array_equal(golden.arrays[name], values, err_msg=name)
    report = json.loads((build / "report.json").read_text())
    cfg = report["model_config"]  # an EST: its config is in the report, its blocks in the graph
    assert cfg["n_in"] == g.n_in and f"b{cfg['blocks'] - 1}.mlp2" in {n.name for n in g.nodes}
    assert report["operations"] == g.kinds()
    if report["backend"] == "dataflow":
        assert "module top(" in (build / "top.v").read_text()
    else:  # too large for the iCEBreaker as a dataflow top
        assert (build / "program.txt").read_text().startswith("# b:")


def _edited_checkpoint(src: Path, dst: Path, edit) -> Path:
    ckpt = torch.load(src, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize("edit, needle", [
    (lambda c: c["state_dict"]["embed.weight"].view(-1).__setitem__(0, float("nan")),
     "'embed.weight' holds 1 NaN"),
    (lambda c: c["config"].__setitem__("heads_per_layer", 3),
     "unknown field(s) ['heads_per_layer']"),
    (lambda c: c["config"].__setitem__("sew", "xor"),
     "model.sew must be one of add | and | iand | none, got 'xor'"),
    (lambda c: c["state_dict"].pop("readout.bias"), "'readout.bias' is missing"),
    (lambda c: c["state_dict"].__setitem__("readout.bias", torch.zeros(3)),
     "'readout.bias' has shape (3,)"),
])
def test_compile_refuses_bad_est_checkpoints(tiny_run, tmp_path, edit, needle):
    bad = _edited_checkpoint(tiny_run / "model.pt", tmp_path / "bad.pt", edit)
    res = cli("est-compile", bad, "-o", tmp_path / "out")
    assert res.returncode == 2, res.stdout + res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not any(p.name.startswith((".out", "out")) for p in tmp_path.iterdir())


def test_train_on_a_users_recordings(tmp_path):
    from est.sw.data import PopulationConfig, simulate_population

    rec = simulate_population(PopulationConfig(n_neurons=6, bins=1500, seed=3))
    np.savez(tmp_path / "counts.npz", counts=rec.counts)
    t, u = np.nonzero(rec.counts)
    np.savez(tmp_path / "spikes.npz", times=(t + 0.5) * 0.01, units=u)
    write_nwb(tmp_path / "session.nwb", {10 + n: (t[u == n] + 0.5) * 0.01 for n in range(6)})
    for data in (["--set", f"data.path='{tmp_path / 'counts.npz'}'"],
                 ["--set", f"data.spike_times='{tmp_path / 'spikes.npz'}'",
                  "--set", "data.bin_width=0.01"],
                 ["--set", f"data.path='{tmp_path / 'session.nwb'}'", "--set",
                  "data.bin_width=0.01", "--set", "data.units=[10, 11, 12, 13, 14, 15]"]):
        out = tmp_path / f"run{len(data)}"
        res = cli("est-train", "-q", "--out", out, *TINY[4:], *data)
        assert res.returncode == 0, res.stderr
        metrics = json.loads((out / "metrics.json").read_text())
        assert "true_rates" not in metrics and np.isfinite(
            metrics["integer"]["test"]["bits_per_spike"])
    # the NWB file holds the spike-time file's spikes: the same counts, the same training
    nwb, times = (json.loads((tmp_path / f"run{k}" / "metrics.json").read_text())
                  for k in (6, 4))
    assert nwb["integer"] == times["integer"] and nwb["float"] == times["float"]
    res = cli("est-train", "-q", "--out", tmp_path / "x", *TINY[4:],
              "--set", f"data.path='{tmp_path / 'counts.npz'}'", "--set", "data.seed=1")
    assert res.returncode == 2 and "only ['path'] are allowed" in res.stderr


# --- the whole config is checked before the first training step ----------------------------------

@pytest.mark.parametrize("overrides, message", [
    # [model]
    (["model.count_threshold=0"], "model.count_threshold must be at least 1, got 0"),
    (["model.kernels=[0]"], "model.kernels[0] must be at least 1, got 0"),
    (["model.kernels=[3, 'x']"], "model.kernels[1] must be a whole number, got 'x'"),
    (["model.kernels=[3]"], "model.kernels has 1 entry but model.blocks = 2; give one kernel "
                            "size per block"),
    (["model.heads=3", "model.d_model=8"],
     "model.heads = 3 does not divide model.d_model = 8; pick a divisor of 8 (1, 2, 4, 8)"),
    (["model.heads=0"], "model.heads must be at least 1, got 0"),
    (["model.window=0"], "model.window must be at least 1, got 0"),
    (["model.blocks=0"], "model.blocks must be at least 1, got 0"),
    (["model.d_model=0"], "model.d_model must be at least 1, got 0"),
    (["model.mlp_hidden=0"], "model.mlp_hidden must be at least 1, got 0"),
    (["model.embed_kernel=0"], "model.embed_kernel must be at least 1, got 0"),
    (["model.tpu_kernel=0"], "model.tpu_kernel must be at least 1, got 0"),
    (["model.cpg_neurons=7"], "model.cpg_neurons must be even (a sine and a cosine per "
                              "frequency), got 7"),
    (["model.cpg_neurons=0"], "model.cpg_neurons must be at least 2, got 0"),
    (["model.cpg_positions=0"], "model.cpg_positions must be at least 1, got 0"),
    (["model.ssa_scale=0.0"], "model.ssa_scale must be > 0, got 0.0"),
    (["model.threshold=-1.0"], "model.threshold must be > 0, got -1.0"),
    (["model.threshold=nan"], "model.threshold must be a finite number, got nan"),
    (["model.rsm=1.0"], "model.rsm must be in [0, 1) (the fraction of spikes dropped), got 1.0"),
    (["model.sew='xor'"], "model.sew must be one of add | and | iand | none, got 'xor'"),
    (["model.mode='cnn'"], "model.mode must be one of snn | ann, got 'cnn'"),
    (["model.reset='hold'"], "model.reset must be one of subtract | zero, got 'hold'"),
    (["model.leak_shift=-1"], "model.leak_shift must be 0..23 or \"none\" (no leak), got -1"),
    (["model.leak_shift=24"], "model.leak_shift must be 0..23 or \"none\" (no leak), got 24"),
    (["model.leak_shift='never'"], "model.leak_shift must be 0..23 or \"none\" (no leak), got "
                                   "'never'"),
    (["model.readout_leak_shift=99"],
     "model.readout_leak_shift must be 0..23 or \"none\" (no leak), got 99"),
    (["model.seed=-1"], "model.seed must be 0..9223372036854775807, got -1"),
    # [train]
    (["train.steps=0"], "train.steps must be at least 1, got 0"),
    (["train.qat_steps=-1"], "train.qat_steps must be at least 0, got -1"),
    (["train.batch=0"], "train.batch must be at least 1, got 0"),
    (["train.seq_len=1"], "train.seq_len must be at least 2, got 1"),
    (["train.lr=0"], "train.lr must be > 0, got 0"),
    (["train.lr=inf"], "train.lr must be a finite number, got inf"),
    (["train.weight_decay=-0.1"], "train.weight_decay must be >= 0, got -0.1"),
    (["train.clip=0.0"], "train.clip must be > 0, got 0.0"),
    (["train.rate_floor=1.0"], "train.rate_floor must be in [0, 1) (spikes per bin), got 1.0"),
    (["train.rate_weight=-1.0"], "train.rate_weight must be >= 0, got -1.0"),
    (["train.warmup=1.0"], "train.warmup must be in [0, 1) (a fraction of the steps), got 1.0"),
    (["train.weight_bits=1"], "train.weight_bits must be 2..16, got 1"),
    (["train.seed=-3"], "train.seed must be 0..9223372036854775807, got -3"),
    (["train.loss='gauss'"], "train.loss must be one of poisson | negbin, got 'gauss'"),
    (["train.glm_history=[]"], "train.glm_history must list at least one value"),
    (["train.glm_history=[3, 0]"], "train.glm_history must be 1..1000, got 0"),
    (["train.glm_l2=[0.0]"], "train.glm_l2 must be > 0, got 0.0"),
    (["train.glm_oscillators=[[2]]"],
     "train.glm_oscillators[0] must be [m, k] or [m, k, c] (rotation shift, leak shift, "
     "multiplier), got [2]"),
    (["train.glm_oscillators=[[2, 6], [2, 6, 1]]"],
     "train.glm_oscillators must not repeat an oscillator, got [[2, 6, 1], [2, 6, 1]]"),
    (["train.glm_oscillators=[[7, 6]]"], "train.glm_oscillators[0][0] must be 0..6, got 7"),
    (["train.glm_oscillators=[[3, 6, 8]]"], "train.glm_oscillators[0][2] must be 1..7, got 8"),
    (["train.find_oscillators=17"], "train.find_oscillators must be 0..16, got 17"),
    # [data]: the synthetic population
    (["data.n_neurons=0"], "data.n_neurons must be at least 1, got 0"),
    (["data.bins=0"], "data.bins must be at least 1, got 0"),
    (["data.seed=-1"], "data.seed must be at least 0, got -1"),
    (["data.n_latents=-1"], "data.n_latents must be at least 0, got -1"),
    (["data.cross_density=1.5"], "data.cross_density must be in [0, 1], got 1.5"),
    (["data.self_coupling=1.0"], "data.self_coupling must be <= 0 (refractoriness), got 1.0"),
    (["data.baseline_range=[1.0]"], "data.baseline_range must be [low, high], got [1.0]"),
    (["data.baseline_range=[1.0, 'x']"], "data.baseline_range[1] must be a number, got 'x'"),
    (["data.baseline_range=[0.0, -1.0]"],
     "data.baseline_range must be [low, high] with low <= high, got [0.0, -1.0]"),
    (["data.latent_period_range=[0.0, 5.0]"],
     "data.latent_period_range must be [low, high] with 0 < low <= high, got [0.0, 5.0]"),
    # [data]: a user's recording
    (["data.path=3"], "data.path must be a file name (a string), got 3"),
    (["data.spike_times='s.npz'"], "data.spike_times needs data.bin_width (seconds per bin)"),
    (["data.spike_times='s.npz'", "data.bin_width=0"], "data.bin_width must be > 0, got 0"),
    (["data.spike_times='s.npz'", "data.bin_width='1ms'"],
     "data.bin_width must be a number, got '1ms'"),
    (["data.spike_times='s.npz'", "data.bin_width=0.01", "data.n_neurons=0"],
     "data.n_neurons must be at least 1, got 0"),
])
def test_every_config_key_is_checked_when_the_config_is_read(overrides, message):
    """load_config (run before any data is read or any step trained) names the key at fault."""
    with pytest.raises(EstError) as info:
        load_config(None, overrides)
    assert str(info.value) == message


def test_no_leak_is_spelled_none_in_toml_and_null_in_yaml(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[model]\nleak_shift = "none"\nreadout_leak_shift = "none"\n')
    _, mcfg, _ = load_config(toml, [])
    assert mcfg.leak_shift is None and mcfg.readout_leak_shift is None
    yml = tmp_path / "c.yaml"
    yml.write_text("model:\n  leak_shift: null\n")
    assert load_config(yml, [])[1].leak_shift is None
    assert load_config(None, ["model.leak_shift=none"])[1].leak_shift is None
    assert load_config(None, ["model.leak_shift=0"])[1].leak_shift == 0
    model = EST(replace(load_config(None, ["model.leak_shift='none'"])[1], d_model=8))
    assert model.embed_lif.beta == 1.0  # integrate and fire, no leak


def test_bad_config_exits_2_before_training_and_leaves_no_folder(tmp_path):
    """count_threshold = 0 with the default (400-step) budget: refused at once, naming the
    right key (it used to train first and then blame 'heads')."""
    res = cli("est-train", "--out", tmp_path / "out", "--set", "model.count_threshold=0")
    assert res.returncode == 2, res.stderr
    assert res.stderr == "est-train: error: model.count_threshold must be at least 1, got 0\n"
    assert res.stdout == "" and list(tmp_path.iterdir()) == []


def test_help_still_works():
    res = cli("est-train", "--help")
    assert res.returncode == 0 and "--config" in res.stdout and "exit status" in res.stdout


# --- real recordings: silent neurons, and a finished training is never lost ----------------------

def _silent_recording(tmp_path: Path) -> Path:
    from est.sw.data import PopulationConfig, simulate_population

    counts = simulate_population(PopulationConfig(n_neurons=6, bins=1500, seed=3)).counts.copy()
    counts[:, 2] = 0  # silent throughout (training split and evaluated splits)
    counts[1200:, 4] = 0  # silent in the validation and test splits only
    path = tmp_path / "silent.npz"
    np.savez(path, counts=counts)
    return path


def test_a_recording_with_silent_neurons_trains_end_to_end(tmp_path):
    data = _silent_recording(tmp_path)
    out = tmp_path / "run"
    res = cli("est-train", "-q", "--out", out, *TINY[4:], "--set", f"data.path='{data}'")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for part, split in (("float", "val"), ("float", "test"), ("integer", "test"),
                        ("glm", "test")):
        assert np.isfinite(metrics[part][split]["bits_per_spike"]), (part, split)
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["config"]["n_in"] == 6 and ckpt["extra"]["train_mean_rates"][2] == 0.0


def test_an_evaluation_error_keeps_the_trained_model(tmp_path, monkeypatch, capsys):
    """Evaluation fails after training: exit 2 with one line, and model.pt is kept."""
    from est.cli import execute
    from est.sw import cli as train_cli
    from est.sw import train as train_module

    def broken(*args, **kwargs):
        raise ValueError("something\nwent wrong")

    monkeypatch.setattr(train_module, "evaluate", broken)
    out = tmp_path / "run"
    args = train_cli.TRAIN.build_parser().parse_args(["-q", "--out", str(out), *TINY])
    assert execute("est-train", args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "est-train: error: evaluation failed after training (ValueError: something went wrong)")
    assert f"the trained model is kept in {out / 'model.pt'}" in err
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["arch"] == "est" and ckpt["config"]["n_in"] == 6
    metrics = json.loads((out / "metrics.json").read_text())
    assert "ValueError: something" in metrics["evaluation_error"] and "float" not in metrics
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left


def test_evaluated_splits_without_spikes_are_refused_before_training(tmp_path):
    counts = np.zeros((600, 3), dtype=np.int64)
    counts[:400:7] = 1  # spikes in the training split only
    np.savez(tmp_path / "c.npz", counts=counts)
    res = cli("est-train", "-q", "--out", tmp_path / "out", *TINY[4:],
              "--set", f"data.path='{tmp_path / 'c.npz'}'")
    assert res.returncode == 2, res.stderr
    assert "the validation split (bins 420 to 509 of 600) holds no spikes" in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shift, beta", [(0, 0.0), (1, 0.5), (3, 0.875)])
def test_a_leaky_readout_starts_at_the_mean_log_rate(shift, beta):
    """The readout integrates ``r <- beta r + c``: its bias starts at ``log(mean) (1 - beta)``,
    so that the untrained model's output settles at each neuron's mean log-rate."""
    from est.sw.train import train_model

    data = {"n_neurons": 4, "bins": 600, "seed": 1}
    mcfg = ESTConfig(d_model=8, mlp_hidden=8, readout_leak_shift=shift, input_to_readout=False,
                     readout_kernel=1)
    trained = train_model(data, mcfg, TrainConfig(steps=1, lr=1e-12, qat_steps=0), False)
    log_mean = np.log(np.maximum(trained.mean_rates, 1e-3))
    bias = trained.model.readout.bias.detach().numpy()
    assert trained.model.readout_beta == beta
    np.testing.assert_allclose(bias, log_mean * (1 - beta), rtol=1e-4)
    np.testing.assert_allclose(bias / (1 - beta), log_mean, rtol=1e-4)


def _tiny_model() -> EST:
    return EST(ESTConfig(n_in=3, n_out=3, d_model=4, mlp_hidden=4, blocks=1, heads=1,
                         kernels=(1,), cpg=False))


def test_fit_keeps_the_weights_of_the_best_validation_score_and_stops_on_patience():
    """Scores 0.0 at the start, then 0.1, 0.3, 0.2, 0.1 every 2 steps with patience 2:
    training stops after the 4th (step 8 of 20) and the model ends with the weights it had at
    step 4."""
    from est.sw.data import Recording
    from est.sw.train import fit

    model = _tiny_model()
    rec = Recording(np.random.default_rng(0).poisson(0.3, (200, 3)))
    script, states = iter([0.0, 0.1, 0.3, 0.2, 0.1]), []

    def validate() -> float:
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(script)

    cfg = TrainConfig(steps=20, batch=2, seq_len=8, eval_every=2, patience=2)
    fitted = fit(model, rec, cfg, cfg.steps, "t", progress=False, validate=validate)
    assert fitted["steps_run"] == 8 and fitted["chosen_step"] == 4
    assert [s["step"] for s in fitted["validation"]] == [0, 2, 4, 6, 8]
    for k, v in model.state_dict().items():
        assert torch.equal(v, states[2][k]), k
    assert not torch.equal(model.readout.weight, states[4]["readout.weight"])


def test_integrators_learn_as_much_slower_as_they_hold_more():
    """Adam's first step moves every weight by the learning rate (the sign of its gradient):
    a spiking layer's by ``lr``, the readout's (leak shift 4) by ``lr / 16`` and a slow
    readout's of leak shift s by ``lr * 2**-s``, so that each moves its log-rate alike."""
    from est.sw.data import Recording
    from est.sw.train import fit, param_groups

    model = EST(ESTConfig(n_in=3, n_out=3, d_model=4, mlp_hidden=4, blocks=1, heads=1,
                          kernels=(1,), cpg=False, readout_leak_shift=4,
                          readout_slow_shifts=(2, 7)))
    groups = param_groups(model)
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(
        id(p) for p in model.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rec = Recording(np.random.default_rng(0).poisson(0.5, (200, 3)))
    lr = 1e-2
    cfg = TrainConfig(steps=1, batch=2, seq_len=8, burn_in=0, lr=lr, warmup=0.0,
                      weight_decay=0.0)
    fit(model, rec, cfg, cfg.steps, "t", progress=False)
    after = model.state_dict()

    def moved(name: str) -> float:
        return float((after[name] - before[name]).abs().max())

    assert moved("embed.weight") == pytest.approx(lr, rel=1e-3)
    assert moved("readout.weight") == pytest.approx(lr / 16, rel=1e-3)
    assert moved("slow.0.weight") == pytest.approx(lr / 4, rel=1e-3)
    assert moved("slow.1.weight") == pytest.approx(lr / 128, rel=1e-3)


def test_fit_keeps_the_start_against_a_gain_within_the_noise():
    """With per-bin NLLs, a higher score replaces the best only when its per-bin gain is more
    than one standard error: a noisy gain (short validation split) keeps the starting point,
    a steady one is taken."""
    from est.sw.data import Recording
    from est.sw.train import fit

    rng = np.random.default_rng(1)
    base = rng.normal(1.0, 0.5, 120)
    noisy = base - rng.normal(0.01, 0.5, 120)  # mean gain 0.01, standard error about 0.05
    steady = base - 0.02  # a gain of 0.02 on every bin
    rec = Recording(rng.poisson(0.3, (200, 3)))
    cfg = TrainConfig(steps=4, batch=2, seq_len=8, eval_every=2)
    for script, chosen in (([(0.0, base), (0.2, noisy), (0.1, base)], 0),
                           ([(0.0, base), (0.05, steady), (0.1, base)], 2)):
        it = iter(script)
        fitted = fit(_tiny_model(), rec, cfg, cfg.steps, "t", progress=False,
                     validate=lambda it=it: next(it))
        assert fitted["chosen_step"] == chosen


def test_the_rate_penalty_is_one_for_a_silent_layer_and_zero_above_the_floor():
    from est.sw.train import _rate_penalty

    silent = torch.zeros(10, 2, 4)
    busy = torch.zeros(10, 2, 4)
    busy[::2] = 1.0  # every unit at 0.5 spikes a bin
    half = busy.clone()
    half[:, :, :2] = 0.0  # two units silent, two at 0.5
    assert _rate_penalty([silent], 0, 0.1).item() == 1.0
    assert _rate_penalty([busy], 0, 0.1).item() == 0.0
    assert _rate_penalty([half, busy], 0, 0.1).item() == pytest.approx(0.25)
    # after a burn-in of 5 bins: bins 6 and 8 of 5..9 spike, a rate of 0.4
    assert _rate_penalty([busy], 5, 0.6).item() == pytest.approx((1 - 0.4 / 0.6) ** 2)


def test_a_rate_floor_makes_a_silent_est_fire_and_leaves_no_hooks():
    """An EST whose units start silent (threshold 8) stays nearly silent over 30 steps without a
    rate floor and fires with one; SDSA's and the TPU's spikes are among the tensors the floor
    holds; the hooks are gone after training."""
    from est.sw.data import Recording
    from est.sw.est import spike_tensors
    from est.sw.train import fit

    rec = Recording(np.random.default_rng(0).poisson(0.3, (300, 3)))
    rates = {}
    for floor in (0.0, 0.2):
        torch.manual_seed(0)
        model = EST(ESTConfig(n_in=3, n_out=3, d_model=4, mlp_hidden=4, blocks=1, heads=1,
                              kernels=(1,), cpg=False, threshold=8.0))
        cfg = TrainConfig(steps=30, batch=4, seq_len=16, burn_in=0, lr=0.05,
                          rate_floor=floor, eval_every=0)
        fit(model, rec, cfg, cfg.steps, "t", progress=False)
        assert not any(m._forward_hooks for m in model.modules())
        store = []
        hooks = spike_tensors(model, store)
        with torch.no_grad():
            model(torch.as_tensor(rec.counts[:100, None, :], dtype=torch.float32))
        for h in hooks:
            h.remove()
        assert len(store) == 9  # embed, q, k, v, SDSA, proj, TPU, mlp1, mlp2
        rates[floor] = float(torch.stack([s.mean() for s in store]).mean())
    assert rates[0.0] < 0.005 < 0.02 < rates[0.2]


def test_fit_scores_the_last_step_too():
    from est.sw.data import Recording
    from est.sw.train import fit

    rec = Recording(np.random.default_rng(0).poisson(0.3, (200, 3)))
    cfg = TrainConfig(steps=5, batch=2, seq_len=8, eval_every=2)
    fitted = fit(_tiny_model(), rec, cfg, cfg.steps, "t", progress=False,
                 validate=lambda: 0.0)
    assert [s["step"] for s in fitted["validation"]] == [0, 2, 4, 5]
    assert fitted["chosen_step"] == 0  # ties keep the first: the starting point


def test_warm_up_context_gives_the_predictions_of_one_run_over_both_splits():
    """A model run on the last bins of the split before, then on the evaluated split, predicts
    each evaluated bin as a run over the two splits together does (state carried in)."""
    from est.sw.data import Recording
    from est.sw.train import float_log_rates, next_bin, with_context

    model = _tiny_model()
    counts = np.random.default_rng(1).poisson(0.4, (90, 3))
    before, rec = Recording(counts[:60]), Recording(counts[60:])
    whole = float_log_rates(model, counts)
    warm = next_bin(float_log_rates(model, with_context(rec, before, 60)), 30, np.ones(3))
    np.testing.assert_allclose(warm, whole[59:89], rtol=1e-6)
    cold = next_bin(float_log_rates(model, with_context(rec, before, 0)), 30, np.full(3, 0.5))
    np.testing.assert_allclose(cold[0], np.log(0.5))  # no context: bin 0 gets the mean rate
    np.testing.assert_allclose(cold[1:], float_log_rates(model, counts[60:])[:-1], rtol=1e-6)


def test_clipped_counts_are_reported():
    from est.sw.data import Recording
    from est.sw.train import clipped_counts

    rec = Recording(np.array([[0, 1], [2, 5], [9, 0]]))
    assert clipped_counts(rec, 1) == {"input_bits": 1, "max_count": 9, "clipped_bins": 3,
                                      "clipped_spikes": 1 + 4 + 8}
    assert clipped_counts(rec, 3) == {"input_bits": 3, "max_count": 9, "clipped_bins": 1,
                                      "clipped_spikes": 2}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_reports_its_model_selection():
    from est.sw.train import evaluate, train_model

    data = {"n_neurons": 4, "bins": 600, "seed": 1}
    trained = train_model(data, ESTConfig(d_model=8, mlp_hidden=8),
                          TrainConfig(steps=6, eval_every=3, qat_steps=2, seq_len=16,
                                      batch=2), False)
    sel = trained.result["selection"]
    assert [s["step"] for s in sel["validation"]] == [0, 3, 6] and sel["steps_run"] == 6
    # the chosen step's score (a later one replaces the start only for a gain beyond the noise)
    best = next(s for s in sel["validation"] if s["step"] == sel["chosen_step"])
    assert best["val_bits_per_spike"] >= sel["validation"][0]["val_bits_per_spike"]
    # rounding to 8 bits costs nothing beyond the noise on validation: no fine-tuning, the
    # integer EST is the float model's
    assert not sel["qat"]["ran"] and [s["step"] for s in sel["qat"]["validation"]] == [0]
    assert same_weights(trained.model, trained.float_model)
    assert trained.result["input_clipping"]["input_bits"] == 3  # the default
    # the float scores are the model chosen in training, before the fine-tuning
    assert trained.float_model is not trained.model
    result = evaluate(trained, baselines=False)
    assert result["float"]["val"]["bits_per_spike"] == pytest.approx(best["val_bits_per_spike"],
                                                                      abs=1e-9)


def test_fine_tuning_runs_where_rounding_costs_on_validation():
    """Quantization-aware fine-tuning runs when the rounded forward pass scores below the float
    model on validation by more than one standard error (here 2-bit weights and no GLM start)
    and is chosen like training; the float model stays as trained."""
    from est.sw.train import train_model

    trained = train_model({"n_neurons": 4, "bins": 600, "seed": 1},
                          ESTConfig(d_model=8, mlp_hidden=8, input_to_readout=False,
                                    readout_slow_shifts=()),
                          TrainConfig(steps=30, eval_every=3, qat_steps=2, seq_len=16, batch=2,
                                      weight_bits=2), False)
    sel = trained.result["selection"]
    qat = sel["qat"]
    chosen = next(s for s in sel["validation"] if s["step"] == sel["chosen_step"])
    assert qat["float_val_bits_per_spike"] == pytest.approx(chosen["val_bits_per_spike"])
    assert qat["ran"] and [s["step"] for s in qat["validation"]] == [0, 2]
    assert qat["validation"][0]["val_bits_per_spike"] < qat["float_val_bits_per_spike"] - 1
    assert not same_weights(trained.model, trained.float_model)


def test_the_input_path_starts_as_the_tuned_glm():
    """With ``input_to_readout`` the readout starts as the GLM tuned on validation (histories
    up to the readout kernel): the untrained EST's validation score (step 0) is the GLM's."""
    from est.sw.glm import tune_glm
    from est.sw.train import get_data, train_model

    data = {"n_neurons": 5, "bins": 1500, "seed": 3}
    tcfg = TrainConfig(steps=3, eval_every=3, qat_steps=0, seq_len=16, batch=2,
                       glm_history=(1, 2, 5), glm_l2=(1e-3,), context_bins=8)
    mcfg = ESTConfig(d_model=8, mlp_hidden=8, input_bits=3, input_to_readout=True,
                     readout_kernel=2, readout_leak_shift=0, readout_slow_shifts=())
    trained = train_model(data, mcfg, tcfg, False)
    train, val, _ = get_data(data)
    glm, _ = tune_glm(train, val, (1, 2), (1e-3,))
    step0 = trained.result["selection"]["validation"][0]
    assert step0["step"] == 0
    assert step0["val_bits_per_spike"] == pytest.approx(
        bits_per_spike_of(glm, val, train), abs=1e-4)
    with pytest.raises(EstError, match="model.readout_kernel = 1 is shorter than every"):
        train_model(data, replace(mcfg, readout_kernel=1), replace(tcfg, glm_history=(2, 5)),
                    False)


def test_a_leaky_input_path_starts_as_the_glm_once_warm():
    """A leaky readout (shift 3) reading the input counts starts at the GLM through
    ``1 - beta z^-1``: after the warm-up its log-rates are the GLM's, bin for bin, and the
    readout kernel must hold one lag more than the GLM's history."""
    from est.sw.glm import fit_glm
    from est.sw.train import float_log_rates, get_data, start_readout, train_model

    data = {"n_neurons": 5, "bins": 1500, "seed": 3}
    train, val, _ = get_data(data)
    glm = fit_glm(train, 3, 1e-3)
    model = EST(ESTConfig(n_in=5, n_out=5, d_model=8, mlp_hidden=8, input_bits=3,
                          input_to_readout=True, readout_kernel=4, readout_leak_shift=3,
                          readout_slow_shifts=()))
    start_readout(model, train.counts.mean(axis=0), glm)
    assert model.readout.weight[3, :, 8:].abs().sum() > 0  # the extra lag is used
    counts = np.vstack([train.counts[-200:], val.counts])
    out = float_log_rates(model, counts)[200 - 1:-1]  # row t predicts bin t + 1
    np.testing.assert_allclose(out, glm.predict_log_rates(val, train), atol=1e-4)
    tcfg = TrainConfig(steps=1, qat_steps=0, glm_history=(3, 5), glm_l2=(1e-3,))
    with pytest.raises(EstError, match=r"model.readout_kernel = 3 \(less the lag a leaky "
                                       r"readout needs\) is shorter than every"):
        train_model(data, replace(model.cfg, readout_kernel=3), tcfg, False)


@pytest.mark.parametrize("coupling", ["full", "self"])
def test_slow_readouts_start_as_the_glm_with_slow_means(coupling):
    """An EST with slow readouts (leak shifts 2 and 5) starts at a GLM with the slow means
    of those windows: once warm its log-rates are the GLM's, bin for bin; a GLM of other
    windows is refused; train_model tunes the start GLM with the model's windows."""
    from est.sw.glm import fit_glm
    from est.sw.train import float_log_rates, get_data, start_readout, train_model

    data = {"n_neurons": 5, "bins": 1500, "seed": 3}
    train, val, _ = get_data(data)
    glm = fit_glm(train, 3, 1e-3, coupling=coupling, slow_shifts=(2, 5))
    assert np.abs(glm.covariate_weights).sum() > 0
    model = EST(ESTConfig(n_in=5, n_out=5, d_model=8, mlp_hidden=8, input_bits=3,
                          input_to_readout=True, readout_kernel=4, readout_leak_shift=3,
                          readout_slow_shifts=(2, 5), input_coupling=coupling))
    start_readout(model, train.counts.mean(axis=0), glm)
    assert all(conv.weight.abs().sum() > 0 for conv in model.slow)
    counts = np.vstack([train.counts, val.counts])
    out = float_log_rates(model, counts)[train.n_bins - 1:-1]  # row t predicts bin t + 1
    np.testing.assert_allclose(out, glm.predict_log_rates(val, train), atol=1e-4)
    with pytest.raises(EstError, match=r"slow means \[2\], oscillators \[\] and rhythms \[\] "
                                       r"are not the model's slow readouts \[2, 5\]"):
        start_readout(model, train.counts.mean(axis=0),
                      fit_glm(train, 3, 1e-3, coupling=coupling, slow_shifts=(2,)))
    tcfg = TrainConfig(steps=1, qat_steps=0, glm_history=(1, 3), glm_l2=(1e-3,), seq_len=16,
                       batch=2, context_bins=8, glm_slow_shifts=(2, 5))
    trained = train_model(data, replace(model.cfg, input_coupling="auto"), tcfg, False)
    assert trained.baseline[0].slow_shifts == (2, 5)


@pytest.mark.parametrize("coupling", ["full", "self"])
def test_oscillator_readouts_start_as_the_glm_with_oscillators(coupling):
    """An EST with a slow readout and two oscillator readouts starts at a GLM with the same
    slow mean and oscillators (each driven through u, its u and w as covariates): once warm
    its log-rates are the GLM's, bin for bin, the readout reading only u (one oscillator's
    rotation with a multiplier, 27 / 32); train_model tunes the start GLM with the model's
    oscillators, and the baseline with train.glm_oscillators."""
    from est.sw.glm import fit_glm
    from est.sw.train import float_log_rates, get_data, start_readout, train_model

    data = {"n_neurons": 4, "bins": 1500, "seed": 4}
    train, val, _ = get_data(data)
    pairs = ((2, 5, 1), (5, 6, 27))
    glm = fit_glm(train, 2, 1e-3, coupling=coupling, slow_shifts=(3,), oscillators=pairs)
    assert glm.covariate_weights.shape == (4, 4 * 5)
    model = EST(ESTConfig(n_in=4, n_out=4, d_model=8, mlp_hidden=8, input_bits=3,
                          input_to_readout=True, readout_kernel=3, readout_leak_shift=3,
                          readout_slow_shifts=(3,), readout_oscillators=pairs,
                          input_coupling=coupling))
    start_readout(model, train.counts.mean(axis=0), glm)
    assert all(conv.weight.abs().sum() > 0 for conv in model.osc)
    counts = np.vstack([train.counts, val.counts])
    out = float_log_rates(model, counts)[train.n_bins - 1:-1]  # row t predicts bin t + 1
    np.testing.assert_allclose(out, glm.predict_log_rates(val, train), atol=1e-4)
    with pytest.raises(EstError, match=r"oscillators \[\] and rhythms \[\] are not the model's"):
        start_readout(model, train.counts.mean(axis=0),
                      fit_glm(train, 2, 1e-3, coupling=coupling, slow_shifts=(3,)))
    tcfg = TrainConfig(steps=1, qat_steps=0, glm_history=(2,), glm_l2=(1e-3,), seq_len=16,
                       batch=2, context_bins=8, glm_slow_shifts=(3,), glm_oscillators=pairs)
    trained = train_model(data, replace(model.cfg, input_coupling="auto"), tcfg, False)
    assert trained.baseline[0].oscillators == pairs


def test_find_oscillators_tunes_an_oscillator_to_each_rhythm_found():
    """train.find_oscillators: the rhythms found in the training split's counts (as
    find_rhythms finds them), an oscillator readout of leak shift 7 tuned to each (its
    rotation c 2^-m within half its bandwidth, 2^-8, of the magic circle's of the rhythm's
    period), added to the model's and the baseline GLM's
    oscillators (after any given, none twice); metrics record the periods and the
    oscillators."""
    from est.sw.glm import rhythm_periods, tuned_oscillator
    from est.sw.train import get_data, train_model

    data = {"seed": 0, "bins": 8000}
    train, _, _ = get_data(data)
    cfg = ESTConfig(d_model=8, mlp_hidden=8, input_bits=3, input_to_readout=True,
                    readout_kernel=3, readout_leak_shift=3, readout_slow_shifts=(3,),
                    readout_oscillators=((3, 7),))
    periods = rhythm_periods(train.counts, 2)
    tuned = tuple(tuned_oscillator(p) for p in periods)
    for (m, k, c), period in zip(tuned, periods, strict=True):
        assert k == 7 and 1 <= c <= 31 and c < 2 ** m
        assert abs(c * 2.0 ** -m - 2 * np.sin(np.pi / period)) <= 2.0 ** -8
    tcfg = TrainConfig(steps=1, qat_steps=0, glm_history=(2,), glm_l2=(1e-3,), seq_len=16,
                       batch=2, context_bins=8, glm_slow_shifts=(3,),
                       glm_oscillators=((3, 7),), find_oscillators=2)
    trained = train_model(data, cfg, tcfg, False)
    assert trained.model.cfg.readout_oscillators == ((3, 7, 1), *tuned)
    assert trained.baseline[0].oscillators == ((3, 7, 1), *tuned)
    assert trained.result["selection"]["oscillators"] == {
        "periods": list(periods), "oscillators": [list(o) for o in tuned]}
    assert trained.result["config"]["train"]["glm_oscillators"] == ((3, 7, 1), *tuned)
    again = train_model(data, trained.model.cfg, tcfg, False)  # the same ones are not added
    assert again.model.cfg.readout_oscillators == ((3, 7, 1), *tuned)


@pytest.mark.parametrize("coupling", ["full", "self"])
def test_rhythms_start_as_the_glm_with_rhythms(coupling):
    """An EST with two rhythms (and a slow and an oscillator readout) starts at a GLM with the
    same rhythm covariates: once warm its log-rates are the GLM's, bin for bin, on the
    validation split (the rhythms' phase counted from the recording's first bin); train_model with
    train.find_rhythms finds the population's rhythms, gives them to the model and to both
    GLMs, and refuses model.rhythms given as well; how many it keeps, the strongest first, is
    the start GLM's choice on the validation split: all on 8,000 bins, fewer on 800, where
    the third period found is noise."""
    from est.sw.glm import fit_glm, rhythm_advance
    from est.sw.train import float_log_rates, get_data, start_readout, train_model

    data = {"n_neurons": 5, "bins": 1500, "seed": 3}
    train, val, _ = get_data(data)
    periods = (37.5, 101.25)
    advances = tuple(rhythm_advance(p) for p in periods)
    glm = fit_glm(train, 2, 1e-3, coupling=coupling, slow_shifts=(3,), oscillators=((3, 6),),
                  rhythms=advances)
    assert glm.covariate_weights.shape == (5, 3 * 5 + 8) and np.abs(
        glm.covariate_weights[:, 15:]).min() > 0  # every neuron reads every rhythm
    model = EST(ESTConfig(n_in=5, n_out=5, d_model=8, mlp_hidden=8, input_bits=3,
                          input_to_readout=True, readout_kernel=3, readout_leak_shift=3,
                          readout_slow_shifts=(3,), readout_oscillators=((3, 6),),
                          rhythms=periods, input_coupling=coupling))
    start_readout(model, train.counts.mean(axis=0), glm)
    counts = np.vstack([train.counts, val.counts])
    out = float_log_rates(model, counts)[train.n_bins - 1:-1]  # row t predicts bin t + 1
    np.testing.assert_allclose(out, glm.predict_log_rates(val, train), atol=1e-4)
    with pytest.raises(EstError, match=r"rhythms \[\] are not the model's"):
        start_readout(model, train.counts.mean(axis=0),
                      fit_glm(train, 2, 1e-3, coupling=coupling, slow_shifts=(3,),
                              oscillators=((3, 6),)))
    if coupling == "full":
        return  # what follows does not depend on the coupling
    tcfg = TrainConfig(steps=1, qat_steps=0, glm_history=(2,), glm_l2=(1e-3,), seq_len=16,
                       batch=2, context_bins=8, glm_slow_shifts=(3,), find_rhythms=2)
    cfg = replace(model.cfg, input_coupling="auto", rhythms=(), readout_oscillators=())
    trained = train_model({"seed": 0, "bins": 8000}, cfg, tcfg, False)
    found = trained.model.cfg.rhythms
    assert len(found) == 2 and trained.baseline[0].rhythms == trained.model.cfg.rhythm_advances
    truth = [60.4, 132.9, 155.2]  # data seed 0's latent periods (tests/test_glm.py)
    assert all(min(abs(p - q) for q in truth) < 0.5 for p in found)
    chosen = trained.result["selection"]["rhythms"]
    assert chosen["found"] == chosen["chosen"] == list(found)
    assert np.all(np.diff(chosen["val_bits_per_spike"]) > 0)  # with 0, 1, 2 rhythms
    short = train_model({"seed": 0, "bins": 800}, cfg, replace(tcfg, find_rhythms=3), False)
    chosen = short.result["selection"]["rhythms"]
    k = int(np.argmax(chosen["val_bits_per_spike"]))
    assert len(chosen["found"]) == 3 and k < 3
    assert chosen["chosen"] == chosen["found"][:k] == list(short.model.cfg.rhythms)
    with pytest.raises(EstError, match=r"give model.rhythms \[37.5, 101.25\] or "
                                       r"train.find_rhythms = 2, not both"):
        train_model(data, replace(cfg, rhythms=periods), tcfg, False)


def test_burn_in_bins_run_but_are_not_scored():
    """Training crops are burn_in + seq_len bins, their slow readouts started with the
    integral of every training bin before the crop; a split too short for them is refused
    with both named."""
    from est.sw.est import slow_integrals
    from est.sw.train import fit, get_data

    train, _, _ = get_data({"n_neurons": 4, "bins": 600, "seed": 1})
    model = EST(ESTConfig(n_in=4, n_out=4, d_model=8, mlp_hidden=8))
    seen = []
    model.register_forward_hook(lambda m, args, out: seen.append(args))
    fit(model, train, TrainConfig(steps=2, seq_len=16, burn_in=32, batch=2), 2, "t", False)
    assert [args[0].shape[0] for args in seen] == [48, 48]
    rows = slow_integrals(train.counts, model.cfg)
    for _, starts, state, _ in seen:
        assert len(state) == len(rows) == 6 and starts.min() > 0
        for got, want in zip(state, rows, strict=True):
            np.testing.assert_array_equal(got.numpy(), want[starts.numpy() - 1])
    with pytest.raises(EstError, match=r"fewer than burn_in \+ seq_len \+ 2 = 421"):
        fit(model, train, TrainConfig(seq_len=18, burn_in=401), 1, "t", False)


def bits_per_spike_of(glm, rec, before):
    from est.sw.metrics import bits_per_spike

    return bits_per_spike(rec.counts, glm.predict_log_rates(rec, before))


def test_est_train_with_count_inputs_end_to_end(tmp_path):
    """3-bit count inputs and the input path: trained, selected, the integer EST evaluated on
    counts, the clipping reported; the checkpoint compiles to a graph of 3-bit inputs."""
    out = tmp_path / "run"
    res = cli("est-train", "-q", "--out", out, *TINY, "--set", "model.input_bits=3",
              "--set", "model.input_to_readout=true", "--set", "model.readout_kernel=3",
              "--set", "data.baseline_range=[0.0, 1.0]")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    clip = metrics["input_clipping"]
    assert clip["input_bits"] == 3 and clip["max_count"] >= 2
    assert np.isfinite(metrics["integer"]["test"]["bits_per_spike"])
    assert metrics["context_bins"] == 1024 and metrics["selection"]["chosen_step"] is not None
    firing = metrics["integer"]["firing_rates"]  # every 1-bit tensor, over the test split
    assert {"embed/spikes", "b0.attn/spikes", "b1.q/spikes"} <= set(firing)
    assert all(0 <= r <= 1 for r in firing.values()) and "readout/v" not in firing
    assert not any(name.startswith("input/") for name in firing)
    build = tmp_path / "build"
    res = cli("est-compile", out / "model.pt", "-o", build, "--bins", "20")
    assert res.returncode == 0, res.stderr
    g = graph.load(build)
    assert g.input_bits == 3 and "readout.in" in {n.name for n in g.nodes}
    assert np.load(build / "stimulus.npy").max() > 1  # Poisson counts at the training means
    top = json.loads((build / "top.json").read_text())
    assert top["input_bits"] == 3
