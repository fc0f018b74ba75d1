"""Every class of bad input, through the real command-line tools: a one-line message on stderr
that names the file, layer or parameter and what to do; a non-zero exit; and nothing
half-written left behind (no output folder, no ``.NAME.partial-*`` staging folder).

docs/bad_input.md is the table of these cases (and of those tested elsewhere) with the messages.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from est.sim.trace import Trace
from netgen import write_nir_cases, write_nwb, write_snntorch_cases

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).parent.parent / "examples" / "est_tiny.pt"


@pytest.fixture(scope="module")
def files(tmp_path_factory, model_pt) -> Path:
    """A folder of bad inputs, a good build (``good``) of the 12-input spine model, and the
    model itself (``m.pt``)."""
    d = tmp_path_factory.mktemp("bad")
    (d / "m.pt").write_bytes(model_pt.read_bytes())
    (d / "text.pt").write_text("not a checkpoint")
    data = model_pt.read_bytes()
    (d / "half.pt").write_bytes(data[: len(data) // 2])
    np.save(d / "wide.npy", np.zeros((5, 7), dtype=np.int64))
    np.save(d / "twos.npy", np.full((5, 12), 2))
    np.savez(d / "rec5.npz", counts=np.zeros((10, 5), dtype=np.int64))
    np.savez(d / "negative.npz", counts=-np.ones((10, 12), dtype=np.int64))
    np.savez(d / "nan.npz", counts=np.full((100, 4), np.nan))
    (d / "syntax.toml").write_text("[data\nseed = 0\n")
    (d / "section.toml").write_text("[bogus]\nx = 1\n")
    (d / "key.toml").write_text("[model]\nd_modle = 8\n")
    (d / "type.toml").write_text('[train]\nsteps = "many"\n')
    (d / "section5.yaml").write_text("model: 5\n")
    (d / "nodata.toml").write_text(f'[data]\npath = "{d / "nowhere.npz"}"\n')
    (d / "nan.toml").write_text(f'[data]\npath = "{d / "nan.npz"}"\n')
    np.save(d / "transposed.npy", np.ones((12, 300), dtype=np.int64))  # [neurons, bins]
    (d / "transposed.toml").write_text(f'[data]\npath = "{d / "transposed.npy"}"\n')
    (d / "fake.nwb").write_text("not HDF5")
    write_nir_cases(d)
    write_snntorch_cases(d)
    write_nwb(d / "units.nwb", {3: [0.1, 0.5], 7: [0.2]})
    write_nwb(d / "nounits.nwb", None)
    for name, extra in (("fakenwb", ""), ("nounits", ""), ("units", "\nunits = [3, 4]")):
        file = "fake" if name == "fakenwb" else name
        (d / f"{name}.toml").write_text(
            f'[data]\npath = "{d / f"{file}.nwb"}"\nbin_width = 0.01{extra}\n')
    (d / "notbuild").mkdir()
    (d / "notbuild" / "keep.txt").write_text("mine")
    (d / "notnpz.npz").write_text("not a trace")
    huge = torch.load(EXAMPLE, weights_only=True)
    huge["state_dict"]["embed.bias"][0] = 1e30  # finite, but no 32-bit integer holds it
    torch.save(huge, d / "huge.pt")
    (d / "empty.npy").write_bytes(b"")
    res = subprocess.run([BIN / "est-compile", model_pt, "-o", d / "good", "--bins", "4"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (d / "badir").mkdir()
    for name in ("weights.npz", "top.json", "stimulus.npy", "golden.npz"):
        (d / "badir" / name).write_bytes((d / "good" / name).read_bytes())
    (d / "badir" / "ir.json").write_text('{"format": "est-ir", "version": 1, "name"')
    old_build(d / "good", d / "oldbuild")
    shutil.copytree(d / "good", d / "truncw")
    weights = (d / "good" / "weights.npz").read_bytes()
    (d / "truncw" / "weights.npz").write_bytes(weights[: len(weights) // 2])
    np.savez(d / "notensors.npz", __meta__=np.array("{}"))
    for name, file, text in (("topempty", "top.json", ""), ("reportobj", "report.json", "{}")):
        shutil.copytree(d / "good", d / name)
        (d / name / file).write_text(text)
    shutil.copytree(d / "good", d / "golddrop")
    gold = Trace.load(d / "good" / "golden.npz")
    dropped = [k for k in gold.arrays if k.startswith("readout/")][0]
    Trace({k: v for k, v in gold.arrays.items() if k != dropped}, gold.meta).save(
        d / "golddrop" / "golden.npz")
    rates = torch.load(EXAMPLE, weights_only=True)
    rates["extra"]["train_mean_rates"] = "abc"
    torch.save(rates, d / "rates.pt")
    short = Trace.load(d / "good" / "golden.npz")
    Trace({k: v[:2] for k, v in short.arrays.items()}, short.meta).save(d / "short.npz")
    return d


def old_build(good: Path, folder: Path) -> None:
    """``folder``: the build ``good`` as an est from before the graph IR wrote it (ir.json of
    format "est-ir", version 1: the spiking MLP as a list of dense layers)."""
    folder.mkdir()
    for name in ("weights.npz", "top.json", "top.v", "stimulus.npy", "golden.npz",
                 "report.json"):
        (folder / name).write_bytes((good / name).read_bytes())
    layer = {"weight_bits": 8, "acc_bits": 11, "v_bits": 13, "leak_shift": 3}
    (folder / "ir.json").write_text(json.dumps({
        "format": "est-ir", "version": 1, "name": "good", "n_in": 12, "lanes": 4, "meta": {},
        "layers": [{"kind": "dense_lif", "name": "fc1", "n_in": 12, "n_out": 20, **layer},
                   {"kind": "dense_lif", "name": "fc2", "n_in": 20, "n_out": 14, **layer},
                   {"kind": "dense_readout", "name": "readout", "n_in": 14, "n_out": 6,
                    **layer}]}, indent=2))


def _sn(name: str) -> str:
    """est-compile on the snnTorch case ``name`` of netgen.write_snntorch_cases."""
    return f"est-compile {{d}}/sn_{name}.pt --snntorch {{d}}/sn_{name}.toml -o {{d}}/n"


# (id, tool and arguments ({d}: the files folder), message on stderr, outputs that must not exist)
CASES = [
    # files given to est-compile
    ("checkpoint-missing", "est-compile {d}/nowhere.pt -o {d}/o", "nowhere.pt: no such file", "o"),
    ("checkpoint-is-a-folder", "est-compile {d}/notbuild -o {d}/o",
     "is a folder; expected a checkpoint file", "o"),
    ("checkpoint-is-text", "est-compile {d}/text.pt -o {d}/o",
     "text.pt: not a PyTorch checkpoint, or a damaged one", "o"),
    ("checkpoint-truncated", "est-compile {d}/half.pt -o {d}/o",
     "half.pt: not a PyTorch checkpoint, or a damaged one", "o"),
    ("output-is-not-a-build", "est-compile {d}/m.pt -o {d}/notbuild",
     "notbuild exists and is not an est output folder (no ir.json)", None),
    # -o that cannot be written (refused before any work: test_unwritable_output_folder...)
    ("output-parent-is-a-file", "est-compile {d}/m.pt -o {d}/text.pt/o",
     "text.pt is a file, not a folder; choose another -o", "text.pt/o"),
    ("output-name-too-long", "est-compile {d}/m.pt -o {d}/" + "a" * 300,
     "a name is too long for the file system", None),  # no such name can exist
    ("output-name-too-long-for-staging", "est-compile {d}/m.pt -o {d}/" + "b" * 240,
     "a name is too long for the file system", "b" * 240),  # 240 fits, .NAME.partial-* not
    ("run-output-parent-is-a-file", "est-run {d}/good --port sim -o {d}/text.pt/run",
     "text.pt is a file, not a folder; choose another -o", "text.pt/run"),
    ("checkpoint-huge-bias", "est-compile {d}/huge.pt -o {d}/o",
     "embed.bias[0]: quantizes to 3.131e+32, outside the signed 32-bit range", "o"),
    # options
    ("lanes-zero", "est-compile {d}/m.pt -o {d}/o --lanes 0",
     "--lanes must be a whole number of at least 1 or 'auto', got '0'", "o"),
    ("weight-bits-1", "est-compile {d}/m.pt -o {d}/o --weight-bits 1",
     "--weight-bits must be 2..16, got 1", "o"),
    ("bins-zero", "est-compile {d}/m.pt -o {d}/o --bins 0", "--bins must be 1..1,000,000, got 0",
     "o"),
    ("rate-nan", "est-compile {d}/m.pt -o {d}/o --rate nan",
     "--rate must be a number in [0, 1], got nan", "o"),
    ("bins-huge", "est-compile {d}/m.pt -o {d}/o --bins 99999999999",
     "--bins must be 1..1,000,000, got 99999999999", "o"),
    ("seed-negative", "est-compile {d}/m.pt -o {d}/o --seed -1",
     "--seed must be at least 0, got -1", "o"),
    ("regress-seed-negative", "est-regress --seed -1 --count 1 --sim amaranth --out {d}/r",
     "--seed must be at least 0, got -1", "r"),
    ("regress-count-huge", "est-regress --count 99999999999999 --sim amaranth --out {d}/r",
     "--count must be 1..100,000 and --case >= 0", "r"),
    ("regress-out-not-ours", "est-regress --count 1 --sim amaranth --out {d}/notbuild",
     "notbuild exists and is not an est output folder (no summary.json)", None),
    ("regress-out-is-a-file", "est-regress --count 1 --sim amaranth --out {d}/text.pt",
     "text.pt exists and is not an est output folder (no summary.json)", None),
    ("first-bin-negative", "est-compile {d}/m.pt -o {d}/o --first-bin -1",
     "--first-bin must be at least 0, got -1", "o"),
    ("first-bin-no-rhythms", "est-compile {d}/m.pt -o {d}/o --first-bin 5",
     "m.pt: --first-bin 5 sets the phase of an EST's fitted rhythms, and this spiking MLP has "
     "none; leave --first-bin out", "o"),
    ("lanes-too-many", "est-compile {d}/m.pt -o {d}/o --lanes 1000",
     "--lanes 1000 is more than this network can use: its widest layer has 20 neurons; use "
     "--lanes 20 or fewer", "o"),
    ("est-lanes-too-many", f"est-compile {EXAMPLE} -o {{d}}/o --lanes 1000",
     "--lanes 1000 is more than this network can use: its widest layer has 24 neurons; use "
     "--lanes 24 or fewer", "o"),
    ("run-timeout-negative", "est-run {d}/good --port sim --timeout -1",
     "--timeout must be a positive number of seconds, got -1.0", "good/run"),
    ("quiet-and-verbose", "est-compile {d}/m.pt -o {d}/o -q -v", "not allowed with", "o"),
    # boards
    ("compile-unknown-board", "est-compile {d}/m.pt -o {d}/o --board nosuch",
     "unknown board 'nosuch'; supported: colorlight-5a75b", "o"),
    ("synth-unknown-board", "est-synth {d}/good --board nosuch",
     "argument --board: invalid choice: 'nosuch'", "good/synth_nosuch"),
    ("netlist-on-ecp5", "est-sim {d}/good --sim icarus --netlist ulx3s-85f",
     "netlist simulation is available for iCE40 boards only",
     "good/rtl_icarus_netlist_ulx3s-85f.npz"),
    ("netlist-without-icarus", "est-sim {d}/good --netlist icebreaker",
     "--netlist simulates with Icarus: add --sim icarus", "good/rtl_verilator.npz"),
    # shapes and values of stimuli and recordings
    ("stimulus-wrong-width", "est-compile {d}/m.pt -o {d}/o --stimulus {d}/wide.npy",
     "wide.npy: expected a [bins, 12] array of spikes, got shape (5, 7)", "o"),
    ("stimulus-not-binary", "est-compile {d}/m.pt -o {d}/o --stimulus {d}/twos.npy",
     "twos.npy: spikes must be 0 or 1", "o"),
    ("recording-wrong-neurons", "est-compile {d}/m.pt -o {d}/o --recording {d}/rec5.npz",
     "rec5.npz: the recording has 5 neurons but the network takes 12 inputs", "o"),
    ("recording-negative", "est-compile {d}/m.pt -o {d}/o --recording {d}/negative.npz",
     "negative.npz: counts are negative at [bin, neuron] = [0, 0]", "o"),
    ("sim-stimulus-wrong-width", "est-sim {d}/good --sim icarus --stimulus {d}/wide.npy",
     "wide.npy: expected a [bins, 12] array of spikes", "good/rtl_icarus.npz"),
    ("run-input-wrong-width", "est-run {d}/good --port sim --input {d}/wide.npy",
     "wide.npy: expected a [bins, 12] array of spikes", "good/run"),
    ("sim-stimulus-empty", "est-sim {d}/good --sim icarus --stimulus {d}/empty.npy",
     "empty.npy: empty or truncated; expected a .npy [bins, 12] array", "good/rtl_icarus.npz"),
    ("run-input-npz", "est-run {d}/good --port sim --input {d}/rec5.npz",
     "rec5.npz: a .npz archive, not a .npy array", "good/run"),
    # training configs
    ("config-missing", "est-train --config {d}/nowhere.toml --out {d}/t",
     "nowhere.toml: no such config file", "t"),
    ("config-syntax", "est-train --config {d}/syntax.toml --out {d}/t",
     "syntax.toml: not valid TOML/YAML", "t"),
    ("config-unknown-section", "est-train --config {d}/section.toml --out {d}/t",
     "unknown section(s) ['bogus']; expected data, model, train", "t"),
    ("config-unknown-key", "est-train --config {d}/key.toml --out {d}/t",
     "config [model]: unknown key(s) ['d_modle']", "t"),
    ("config-wrong-type", "est-train --config {d}/type.toml --out {d}/t",
     "config [train]: steps = 'many' has type str; expected int (like 400)", "t"),
    ("train-threads-zero", "est-train --threads 0 --out {d}/t",
     "--threads must be a whole number of threads, 1..1024, got 0", "t"),
    ("train-threads-huge", "est-train --threads 100000 --out {d}/t",
     "--threads must be a whole number of threads, 1..1024, got 100000", "t"),
    ("config-section-not-a-table", "est-train --config {d}/section5.yaml --set model.d_model=8 "
     "--out {d}/t", "config [model]: expected a table of keys, got 5", "t"),
    ("config-binary", "est-train --config {d}/half.pt --out {d}/t",
     "half.pt: not a text file; expected a TOML or YAML config", "t"),
    ("config-folder", "est-train --config {d}/notbuild --out {d}/t",
     "notbuild: a folder, not a config file (TOML or YAML)", "t"),
    ("set-wrong-type", "est-train --set model.cpg=1 --out {d}/t",
     "config [model]: cpg = 1 has type int; expected bool (like True)", "t"),
    ("data-file-missing", "est-train --config {d}/nodata.toml --out {d}/t",
     "nowhere.npz: no such file", "t"),
    ("data-with-nan", "est-train --config {d}/nan.toml --out {d}/t",
     "nan.npz: counts contains NaN at index [0, 0]", "t"),
    ("data-transposed", "est-train --config {d}/transposed.toml --out {d}/t",
     "transposed.npy: counts have shape (12, 300): fewer bins (12) than neurons (300); "
     "expected [bins, neurons]", "t"),
    # damaged build folders
    ("build-weights-truncated", "est-sim {d}/truncw --sim amaranth",
     "truncw/weights.npz: cannot read integer tensors", "truncw/rtl_amaranth.npz"),
    ("build-is-a-file", "est-sim {d}/m.pt --sim amaranth",
     "m.pt: not an est-compile build folder (a folder holding the file ir.json)", None),
    ("build-top-json-empty", "est-sim {d}/topempty --sim amaranth",
     "topempty/top.json: not valid JSON; compile the model again", "topempty/rtl_amaranth.npz"),
    ("build-report-not-ours", "est-report {d}/reportobj",
     "reportobj/report.json: not as est-compile writes it (no name, hardware or "
     "quantization.layers)", None),
    ("run-report-not-ours", "est-run {d}/reportobj --port sim",
     "reportobj/report.json: not as est-compile writes it", "reportobj/run"),
    ("build-golden-of-another", "est-sim {d}/golddrop --sim amaranth",
     "golddrop/golden.npz is not this build's golden trace (it lacks ['readout/",
     "golddrop/rtl_amaranth.npz"),
    ("stimulus-is-text", "est-compile {d}/m.pt -o {d}/o --stimulus {d}/text.pt",
     "text.pt: cannot read a .npy array (not a NumPy file of plain numbers (numpy.save and "
     "numpy.savez write one)); expected a [bins, 12] array of 0/1 spikes (numpy.save)", "o"),
    ("trace-is-npy", "est-compare {d}/good/golden.npz {d}/good/stimulus.npy",
     "stimulus.npy: not an est trace file (a .npz of int64 arrays written by est-compile or "
     "est-sim; numpy says: a .npy array, not a .npz archive of named tensors)", None),
    ("checkpoint-rates-not-numbers", "est-compile {d}/rates.pt -o {d}/o",
     "rates.pt: extra.train_mean_rates must be 24 numbers in 0..7", "o"),
    ("trace-without-tensors", "est-compare {d}/good/golden.npz {d}/notensors.npz",
     "notensors.npz: not an est trace file (expected [bins, channels] int64 tensors of one "
     "length, got none)", None),
    # NIR graphs (est-compile model.nir --nir-dt SECONDS)
    ("nir-no-dt", "est-compile {d}/good.nir -o {d}/n",
     "good.nir: a NIR graph holds time constants (tau) but not the time step its exporter "
     "used: pass --nir-dt SECONDS", "n"),
    ("nir-cubalif-v-leak", "est-compile {d}/cuba.nir -o {d}/n --nir-dt 1e-3",
     "node 'lif1' (CubaLIF): v_leak must be 0 (a constant drive of the membrane would need a "
     "second bias after the synaptic current)", "n"),
    ("nir-cubali", "est-compile {d}/cubali.nir -o {d}/n --nir-dt 1e-3",
     "node 'lif2' (CubaLI): not supported; est compiles Affine, Linear, Conv1d, Scale, "
     "Flatten, LIF, CubaLIF, IF, Threshold and (last) LI; a current-based leaky integrator "
     "is not mapped (est's current-based arrays spike)", "n"),
    ("nir-leak-not-a-shift", "est-compile {d}/good.nir -o {d}/n --nir-dt 8e-4",
     "node 'lif1' (LIF): beta = 0.9 is not 1 - 2**-k for any k (nearest: k = 3, 0.875); est "
     "leaks by a shift: train with beta = 1 - dt/tau = 1 - 2**-k, or check --nir-dt", "n"),
    ("nir-v-reset", "est-compile {d}/vreset.nir -o {d}/n --nir-dt 1e-3",
     "node 'lif1' (LIF): v_reset must be 0 (est resets to zero or by subtraction)", "n"),
    ("nir-branch", "est-compile {d}/branch.nir -o {d}/n --nir-dt 1e-3",
     "node 'fc1' (Affine) feeds ['lif1', 'out2']: est compiles a chain", "n"),
    *[(f"nir-{case}", f"est-compile {{d}}/{case}.nir -o {{d}}/n --nir-dt 1e-3",
       f"node 'lif1' ({kind}): not supported; est compiles Affine, Linear, Conv1d, Scale, "
       f"Flatten, LIF, CubaLIF, IF, Threshold and (last) LI; {why}", "n")
      for case, kind, why in [
          ("delay", "Delay", "delays are not mapped"),
          ("integrator", "I", "an integrator without leak or threshold is not mapped"),
          ("conv2d", "Conv2d", "2-D convolutions are not mapped"),
          ("sumpool", "SumPool2d", "pooling is not mapped"),
          ("avgpool", "AvgPool2d", "pooling is not mapped")]],
    ("nir-conv-too-short", "est-compile {d}/convshort.nir -o {d}/n --nir-dt 1e-3",
     "node 'fc1' (Conv1d): torch.nn.functional.conv1d refuses this geometry on an input of 1 "
     "x 2", "n"),
    # snnTorch nn.Sequentials given directly (est-compile STATE.pt --snntorch DESC.toml)
    ("snntorch-slow-leak-on-the-core", _sn("slowleak") + " --backend core",
     "node 'leaky1': the core leaks by shifts of at most 15 bits, not 16 (a time constant of "
     "2**16 bins); compile with --backend dataflow", "n"),
    ("snntorch-synaptic-zero-delayed", _sn("synaptic"),
     "module 1 (Synaptic): reset_mechanism 'zero' with reset_delay=True zeroes the synaptic "
     "current too, and the step's input with it, in the step after a spike; est's arrays reset "
     "the membrane only: train with reset_delay=False or reset by subtraction", "n"),
    ("snntorch-alpha", _sn("alpha"),
     "module 1 (Alpha): not supported; est compiles Linear, Conv1d, Flatten, Dropout, Leaky, "
     "Synaptic; its two synaptic currents are states est's neuron arrays do not hold", "n"),
    ("snntorch-beta-not-a-shift", _sn("beta"),
     "module 1 (Leaky): beta = 0.9 is not 1 - 2**-k for any k (nearest: k = 3, 0.875); est "
     "leaks by a shift: train with a fixed beta = 1 - 2**-k", "n"),
    ("snntorch-reset-none", _sn("none"),
     "module 1 (Leaky): reset_mechanism 'none'; est resets by subtraction or to zero", "n"),
    ("snntorch-graded-spikes", _sn("graded"),
     "module 1 (Leaky): graded_spikes_factor [2.]; est's spikes are 0 or 1", "n"),
    ("snntorch-inhibition", _sn("inhibition"),
     "module 1 (Leaky): inhibition is set; est's neurons fire on their own membranes", "n"),
    ("snntorch-ends-with-linear", _sn("endslinear"),
     "the last module must be a Leaky or Synaptic (est's output is a layer of neurons", "n"),
    ("snntorch-pickled-module", "est-compile {d}/sn_pickled.pt --snntorch {d}/sn_good.toml "
     "-o {d}/n", "sn_pickled.pt: refused: unpickling it would need objects other than "
     "tensors", "n"),
    ("snntorch-description-short", "est-compile {d}/sn_good.pt --snntorch {d}/sn_short.toml "
     "-o {d}/n", "the state dict holds tensors the description does not explain: "
     "['3.beta', '3.graded_spikes_factor', '3.reset_mechanism_val', '3.threshold']; is a module "
     "missing from sn_short.toml?", "n"),
    ("snntorch-no-flatten", "est-compile {d}/sn_good.pt --snntorch {d}/sn_noflat.toml "
     "-o {d}/n", "module 0 (Linear): its input has shape [2, 3]; put a Flatten before it", "n"),
    *[(f"snntorch-{kind.lower()}", f"est-compile {{d}}/sn_good.pt --snntorch "
       f"{{d}}/sn_{kind}.toml -o {{d}}/n", f"module 1 ({kind}): not supported; est compiles "
       f"Linear, Conv1d, Flatten, Dropout, Leaky, Synaptic; {why}", "n")
      for kind, why in [
          ("RLeaky", "recurrent connections are not mapped"),
          ("RSynaptic", "recurrent connections are not mapped"),
          ("Lapicque", "use Leaky (the same neuron, parametrised by beta)"),
          ("Conv2d", "2-D convolutions are not mapped"),
          ("MaxPool1d", "pooling is not mapped"),
          ("BatchNorm1d", "no translation for it")]],
    ("snntorch-state-quant", "est-compile {d}/sn_good.pt --snntorch {d}/sn_statequant.toml "
     "-o {d}/n", "module 1 (Leaky): state_quant is set; est's neurons fire on their own "
     "membranes, unquantized in floats: train without it", "n"),
    ("snntorch-leaky-first", "est-compile {d}/sn_good.pt --snntorch {d}/sn_leakyfirst.toml "
     "-o {d}/n", "module 0 (Leaky): a Leaky must follow a Linear or Conv1d", "n"),
    ("snntorch-no-description", "est-compile {d}/sn_good.pt --snntorch {d}/nowhere.toml "
     "-o {d}/n", "nowhere.toml: no such file (expected the TOML description", "n"),
    ("nwb-not-hdf5", "est-train --config {d}/fakenwb.toml --out {d}/t",
     "fake.nwb: not an HDF5 file, so not NWB 2", "t"),
    ("nwb-no-units", "est-train --config {d}/nounits.toml --out {d}/t",
     "nounits.nwb: the NWB file has no Units table (nwbfile.units)", "t"),
    ("nwb-unknown-unit", "est-train --config {d}/units.toml --out {d}/t",
     "units.nwb: unit id(s) [4] are not in the Units table (its ids: [3, 7]); fix data.units",
     "t"),
    ("nwb-no-bin-width", "est-train --set data.path='x.nwb' --out {d}/t",
     "data.path (an NWB file) needs data.bin_width (seconds per bin)", "t"),
    # training configs: every key checked before the first training step
    ("config-count-threshold-zero", "est-train --set model.count_threshold=0 --out {d}/t",
     "model.count_threshold must be at least 1, got 0", "t"),
    ("config-kernel-zero", "est-train --set model.kernels=[0] --out {d}/t",
     "model.kernels[0] must be at least 1, got 0", "t"),
    ("config-window-zero", "est-train --set model.window=0 --out {d}/t",
     "model.window must be at least 1, got 0", "t"),
    ("config-heads-not-a-divisor", "est-train --set model.heads=3 --set model.d_model=8 "
     "--out {d}/t", "model.heads = 3 does not divide model.d_model = 8; pick a divisor of 8", "t"),
    ("config-leak-shift-negative", "est-train --set model.leak_shift=-1 --out {d}/t",
     'model.leak_shift must be 0..23 or "none" (no leak), got -1', "t"),
    ("config-warmup-one", "est-train --set train.warmup=1.0 --out {d}/t",
     "train.warmup must be in [0, 1) (a fraction of the steps), got 1.0", "t"),
    ("data-no-spikes-to-evaluate", "est-train --set data.path={d}/rec5.npz --out {d}/t",
     "the validation split (bins 7 to 8 of 10) holds no spikes", "t"),
    # build folders and traces
    ("sim-not-a-build", "est-sim {d}/notbuild", "notbuild/ir.json: no such file; is",
     "notbuild/rtl_verilator.npz"),
    ("sim-corrupt-ir", "est-sim {d}/badir --sim icarus", "badir/ir.json: not valid JSON",
     "badir/rtl_icarus.npz"),
    ("compare-no-rtl-trace", "est-compare {d}/good", "no rtl_*.npz trace; run est-sim",
     "good/rtl_verilator_compare.png"),
    ("compare-different-bins", "est-compare {d}/good/golden.npz {d}/short.npz",
     "short.npz has 2 bins but", "short_compare.png"),
    ("compare-not-a-trace", "est-compare {d}/good/golden.npz {d}/notnpz.npz",
     "notnpz.npz: not an est trace file", "notnpz_compare.png"),
    ("compare-missing-trace", "est-compare {d}/good/golden.npz {d}/nothere.npz",
     "nothere.npz: no such trace file", "nothere_compare.png"),
    ("synth-not-a-build", "est-synth {d}/notbuild", "not an est-compile build folder (no ir.json)",
     "notbuild/synth_icebreaker"),
    ("report-not-a-build", "est-report {d}/notbuild", "no readable report.json",
     "notbuild/report.html"),
    ("run-not-a-build", "est-run {d}/notbuild --port sim",
     "not an est-compile build folder (no ir.json)", "notbuild/run"),
    ("run-two-builds-without-load", "est-run {d}/good {d}/notbuild --port sim",
     "2 builds on one board: only core builds loaded at run time can share one", "good/run"),
    ("run-two-builds-one-output", "est-run {d}/good {d}/notbuild --port sim --load -o {d}/o",
     "-o names one output folder, but 2 builds were given", "o"),
    ("run-one-build-twice", "est-run {d}/good {d}/good --port sim --load",
     "a build folder is given twice", "good/run"),
    # serial port
    ("serial-port-missing", "est-run {d}/good --port {d}/ttyNOPE",
     "cannot open serial port", "good/run"),
    # the command family
    ("no-subcommand", "est", "the following arguments are required: SUBCOMMAND", None),
    ("unknown-subcommand", "est frobnicate", "invalid choice: 'frobnicate'", None),
]


def _left_behind(d: Path, output: str | None) -> list[str]:
    left = []
    if output:
        target = d / output
        if target.exists():
            left.append(str(target))
        left += [str(p) for p in target.parent.glob(f".{target.name}.partial-*")]
    return left


@pytest.mark.parametrize("command, needle, output", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(files, command, needle, output):
    tool, *args = command.format(d=files).split()
    res = subprocess.run([BIN / tool, *args], capture_output=True, text=True, cwd=files)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert needle in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(
        (f"{tool}: error:", f"{tool} ", "usage:")), res.stderr
    assert not _left_behind(files, output)
    assert (files / "notbuild" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("command, output", [
    ("est-sim {d}/oldbuild", "oldbuild/rtl_verilator.npz"),
    ("est-synth {d}/oldbuild --board icebreaker", "oldbuild/synth_icebreaker"),
    ("est-run {d}/oldbuild --port sim", "oldbuild/run"),
], ids=["sim", "synth", "run"])
def test_a_build_from_before_the_graph_ir_is_refused_with_one_line_saying_recompile(
        files, command, output):
    """A build folder an older est wrote (ir.json format "est-ir") is refused by every tool
    that reads its IR: exit 2, one line on stderr naming the file's format and saying to
    recompile, before any simulator, yosys or board runs; nothing written."""
    tool, *args = command.format(d=files).split()
    before = sorted(p.name for p in (files / "oldbuild").iterdir())
    res = subprocess.run([BIN / tool, *args], capture_output=True, text=True, cwd=files)
    assert res.returncode == 2, (res.stdout, res.stderr)
    (line,) = res.stderr.splitlines()
    assert line.startswith(f"{tool}: error: "), line
    assert "format 'est-ir'" in line and "recompile the model with est-compile" in line, line
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in (files / "oldbuild").iterdir()) == before
    assert not _left_behind(files, output)


def test_missing_simulator_is_named_with_how_to_install_it(files, tmp_path):
    """Icarus out of reach: PATH holds only the Python environment's folder."""
    assert subprocess.run(["/bin/sh", "-c", "command -v iverilog"], capture_output=True,
                          env={"PATH": str(BIN)}).returncode != 0
    res = subprocess.run([BIN / "est-sim", files / "good", "--sim", "icarus"],
                         capture_output=True, text=True, env={**os.environ, "PATH": str(BIN)})
    assert res.returncode == 2, res.stderr
    assert "required tool 'iverilog' was not found on PATH" in res.stderr
    assert "apt-get install iverilog" in res.stderr
    assert not (files / "good" / "rtl_icarus.npz").exists()


def test_est_run_refuses_outputs_over_the_core_tops_frame_buffer(tmp_path):
    """An EST of 33 neurons with six slow readouts has 7 x 33 = 231 output words a bin; a core
    board top's frame buffer holds 224: est-run says so in one line, exit 2, before any bin
    (no run folder), and est-sim still runs the build."""
    from est.sw.est import EST, ESTConfig
    from est.sw.train import save_checkpoint

    save_checkpoint(EST(ESTConfig(n_in=33, n_out=33, d_model=8, blocks=1, seed=1,
                                  readout_slow_shifts=(2, 3, 4, 5, 6, 7))), tmp_path / "w.pt", {})
    build = tmp_path / "wide"
    res = subprocess.run([BIN / "est-compile", tmp_path / "w.pt", "-o", build, "--bins", "3"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "core" in res.stdout, res.stderr
    res = subprocess.run([BIN / "est-run", build, "--port", "sim"], capture_output=True,
                         text=True)
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert (f"est-run: error: {build}: 231 output words of 32 bits a bin, over the 224 a core "
            "board top's frame buffer holds (896 bytes): run it in simulation (est-sim)"
            ) in res.stderr
    assert "model.readout_slow_shifts = []" in res.stderr
    assert not (build / "run").exists()


def test_interrupted_compile_leaves_nothing(tmp_path):
    """Ctrl-C while the build folder is being staged: exit 130 and no folder, partial or not."""
    # A job started with '&' by a non-interactive shell inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: give the compile Ctrl-C's default disposition.
    proc = subprocess.Popen([BIN / "est-compile", EXAMPLE, "-o", tmp_path / "out" / "tiny",
                             "--bins", "50", "--backend", "dataflow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:
        if "writing Verilog" in line:
            break
    staged = list((tmp_path / "out").glob(".tiny.partial-*"))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert staged, "the interrupt came before the staging folder existed"
    assert proc.returncode == 130, err
    assert "est-compile: interrupted; nothing half-written was kept" in err
    assert list((tmp_path / "out").iterdir()) == []


@pytest.fixture
def open_folder():
    """A folder every user can enter (pytest's own are 0700 under root), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="est_open_"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _can_mount_read_only(folder: Path) -> bool:
    probe = 'mount --bind -o ro "$0" "$0" && ! mkdir "$0/probe" 2>/dev/null'
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--mount", "sh", "-c", probe, folder], capture_output=True).returncode == 0


@pytest.mark.parametrize("where, command, needle", [
    ("mount", "est-compile {d}/m.pt -o {ro}/o", "{ro}/o: Read-only file system; choose another -o"),
    ("mount", "est-synth {ro}", "{ro}/synth_icebreaker: Read-only file system; est-synth writes "
     "synth_BOARD into the build folder"),
    ("mount", "est-run {d}/good --port sim -o {ro}/run", "{ro}/run: Read-only file system"),
    ("proc", "est-compile {d}/m.pt -o /proc/est_out",
     "cannot write the output folder /proc/est_out: No such file or directory"),
    ("chmod", "est-compile {d}/m.pt -o {ro}/o", "{ro}/o: Permission denied; choose another -o"),
], ids=["compile-read-only-fs", "synth-read-only-build", "run-read-only-fs", "compile-in-proc",
        "compile-no-permission"])
def test_unwritable_output_folder_is_refused_before_any_work(files, tmp_path, open_folder, where,
                                                             command, needle):
    """An output folder that cannot be written is refused at once: before the golden model,
    yosys or the board (nothing on stdout, where each tool reports its progress), one line on
    stderr, nothing left. Tests run as root, which ignores folder permissions, so the cases
    that must also fail for root are a read-only file system (the folder bind-mounted
    read-only in a mount namespace of the command's own, with unshare; skipped where mounts
    are not allowed) and /proc, where no folder can be made; the permission case runs as
    another user (as root: the command as ``nobody`` through ``setpriv``, in a folder that user
    can read)."""
    if where == "chmod" and os.geteuid() == 0:  # nobody cannot enter pytest's 0700 folders
        tmp_path = open_folder
        shutil.copy(files / "m.pt", tmp_path / "m.pt")
        (tmp_path / "m.pt").chmod(0o644)
        files = tmp_path
    ro = tmp_path / "ro"
    if "synth" in command:
        shutil.copytree(files / "good", ro)
    else:
        ro.mkdir()
    before = sorted(ro.iterdir())
    argv = command.format(d=files, ro=ro).split()
    if where == "mount":
        if not _can_mount_read_only(ro):
            pytest.skip("no read-only bind mount here (needs unshare and mount privileges)")
        argv = ["unshare", "--mount", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"',
                ro, BIN / argv[0], *argv[1:]]
    elif where == "chmod":
        ro.chmod(0o555)
        argv[0] = BIN / argv[0]
        if os.geteuid() == 0:  # root ignores folder permissions: run it as nobody
            assert shutil.which("setpriv"), "setpriv (util-linux) is needed to drop root"
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    else:
        argv[0] = BIN / argv[0]
    res = subprocess.run(argv, capture_output=True, text=True, cwd=files)
    ro.chmod(0o755)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == "", res.stdout
    assert len(res.stderr.splitlines()) == 1, res.stderr
    tool = command.split()[0]
    assert res.stderr.startswith(f"{tool}: error: cannot write the output folder "), res.stderr
    assert needle.format(ro=ro) in res.stderr, res.stderr
    assert sorted(ro.iterdir()) == before
    assert not list(Path("/proc").glob(".est_out.partial-*"))
