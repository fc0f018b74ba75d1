"""The command family (`est SUBCOMMAND` = `est-SUBCOMMAND`: help, version, quiet, verbose) and
the per-build HTML report."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from est import __version__
from est.cli import SUBCOMMANDS, commands, load, plural, shown_default
from est.report import write_report
from est.sim.trace import Trace

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).parent.parent / "examples" / "est_tiny.pt"


def est(*args) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "est", *map(str, args)], capture_output=True, text=True)


def test_est_lists_every_subcommand_and_has_a_version():
    res = est("--help")
    assert res.returncode == 0
    for name in ("train", "compile", "sim", "compare", "synth", "run", "report", "regress",
                 "demo"):
        assert re.search(rf"^\s+{name}\s", res.stdout, re.M), name
    assert est("--version").stdout.strip() == f"est {__version__}"


@pytest.mark.parametrize("command", [c.name for c in commands()])
def test_every_subcommand_has_examples_exit_codes_and_the_common_flags(command):
    for argv in ([BIN / "est", command, "--help"],
                 [BIN / f"est-{command}", "--help"] if command != "demo" else None):
        if argv is None:
            continue
        res = subprocess.run(argv, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        for needle in ("examples:", "exit status:", "--quiet", "--verbose", "--version"):
            assert needle in res.stdout, (argv, needle)
    res = est(command, "--version")
    assert res.stdout.strip() == f"est {__version__}"


def test_quiet_prints_nothing_but_errors_and_verbose_adds_a_traceback(tmp_path, model_pt):
    res = est("compile", model_pt, "-o", tmp_path / "b", "--bins", "2", "-q")
    assert res.returncode == 0 and res.stdout == "" and res.stderr == "", res
    assert (tmp_path / "b" / "report.html").is_file()
    res = est("compile", tmp_path / "missing.pt", "-o", tmp_path / "c", "-q")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("est compile: error:") and "Traceback" not in res.stderr
    res = est("compile", tmp_path / "missing.pt", "-o", tmp_path / "c", "-v")
    assert res.returncode == 2 and "Traceback" in res.stderr and "est compile: error:" in res.stderr
    res = est("compile", model_pt, "-o", tmp_path / "c", "-q", "-v")
    assert res.returncode == 2 and "not allowed with" in res.stderr


def test_report_shows_layers_comparisons_and_mismatches(tmp_path, traced_build):
    build = tmp_path / "spine"
    shutil.copytree(traced_build, build)
    golden = Trace.load(build / "golden.npz")
    golden.meta["source"] = "copy"
    golden.save(build / "rtl_same.npz")
    name = next(n for n in golden.arrays if n.endswith("/v") and not n.startswith("input"))
    golden.arrays[name][7, 1] += 1
    golden.save(build / "rtl_broken.npz")
    page = write_report(build).read_text()
    for layer in ("fc1", "fc2", "readout"):
        assert f"<td>{layer}</td>" in page
    assert re.search(r"same: <span class='ok'>0 mismatches in \d+ values", page)
    assert re.search(r"broken: <span class='bad'>1 mismatch in \d+ values", page)
    assert f"first divergence: {name} channel 1 bin 7: golden" in page
    assert page.count("data:image/png;base64,") == 2  # one raster figure per comparison
    assert "Not synthesized yet" in page


def test_est_report_draws_predicted_against_true_rates(tmp_path):
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.05, 0.5, size=(40, 24))
    counts = rng.poisson(rates)
    np.savez(tmp_path / "rec.npz", counts=counts, rates=rates)
    res = est("compile", EXAMPLE, "-o", tmp_path / "tiny", "--lanes", "1", "--bins", "30",
              "--recording", tmp_path / "rec.npz")
    assert res.returncode == 0, res.stderr
    kept = np.load(tmp_path / "tiny" / "recording.npz")
    assert np.array_equal(kept["counts"], counts[:30]) and np.array_equal(kept["rates"], rates[:30])
    # est_tiny takes 3-bit counts: the recording's counts, clipped at 7 (a reported choice)
    assert np.array_equal(np.load(tmp_path / "tiny" / "stimulus.npy"), np.minimum(counts[:30], 7))
    page = (tmp_path / "tiny" / "report.html").read_text()
    assert "Predicted vs true rates" in page and "correlation of predicted and true rates" in page
    for stage in ("embed", "b0.attn", "b0.tpu", "readout", "total"):
        assert f"<td>{stage}</td>" in page
    assert "model.d_model</td><td>8</td>" in page


def test_recording_with_the_wrong_neuron_count_is_refused(tmp_path):
    np.savez(tmp_path / "rec.npz", counts=np.zeros((10, 5), dtype=np.int64))
    res = est("compile", EXAMPLE, "-o", tmp_path / "tiny", "--recording", tmp_path / "rec.npz")
    assert res.returncode == 2 and "5 neurons but the network takes 24 inputs" in res.stderr
    assert not (tmp_path / "tiny").exists()


def test_report_of_a_folder_that_is_not_a_build(tmp_path):
    res = est("report", tmp_path)
    assert res.returncode == 2 and "no readable report.json" in res.stderr
    assert not (tmp_path / "report.html").exists()


HEAVY = ("torch", "amaranth")  # seconds to import; numpy and the golden model are cheap


def loaded_after(code: str) -> list[str]:
    """The HEAVY modules imported by ``code`` in a fresh interpreter."""
    res = subprocess.run([sys.executable, "-c", f"import contextlib, io, sys\n{code}\n"
                          f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_est_help_imports_no_subcommand():
    code = ("from est.cli import est_main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    est_main(['--help'])\n"
            "assert not [m for m in sys.modules if m.startswith('est.') and m != 'est.cli'], "
            "sorted(sys.modules)")
    assert loaded_after(code) == []


@pytest.mark.parametrize("command", [name for name, _, _ in SUBCOMMANDS])
def test_help_of_a_subcommand_imports_neither_torch_nor_amaranth(command):
    """``est NAME --help`` and ``est-NAME --help`` build this parser: it must answer at once,
    not after seconds of importing torch, amaranth and the compiler."""
    code = ("from est.cli import est_main, load\n"
            f"load({command!r}).build_parser().format_help()\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            f"    est_main([{command!r}, '--help'])")
    assert loaded_after(code) == []


def test_the_listed_summaries_are_the_commands_own():
    for name, _, summary in SUBCOMMANDS:
        assert load(name).summary == summary, name


@pytest.mark.parametrize("command", [c.name for c in commands()])
def test_every_option_has_a_help_text_that_states_its_default(command):
    parser = load(command).build_parser()
    formatter = parser._get_formatter()
    for action in parser._actions:
        assert action.help and action.help.strip(), (command, action.dest)
        text = formatter._expand_help(action)
        if shown_default(action):
            assert re.search(r"\bdefault\b", text), (command, action.dest, text)
    assert re.search(r"--bins BINS\s+bins of random stimulus, >= 1 \(default: 256\)",
                     load("compile").build_parser().format_help())


def test_synth_help_names_every_board():
    from est.boards.spec import BOARDS

    text = " ".join(load("synth").build_parser().format_help().split())
    for board in BOARDS:
        assert re.search(rf"[ :]{board}[,; )]", text), board


def test_plural():
    assert plural(1, "lane") == "1 lane" and plural(4, "lane") == "4 lanes"
    assert plural(0, "block") == "0 blocks" and plural(1, "stimulus bin") == "1 stimulus bin"


def test_rate_is_applied_to_an_est_and_one_is_singular(tmp_path):
    """--rate 1 on an EST checkpoint (it was ignored for the training rates, about 0.13 a bin):
    est_tiny takes 3-bit counts, so every input draws Poisson counts of mean 1, clipped at 7;
    est_tiny has one block, and no message says "1 blocks" or "1 lanes"."""
    res = est("compile", EXAMPLE, "-o", tmp_path / "tiny", "--rate", "1", "--bins", "5",
              "--lanes", "1")
    assert res.returncode == 0, res.stderr
    stimulus = np.load(tmp_path / "tiny" / "stimulus.npy")
    assert stimulus.shape == (5, 24) and 0 <= stimulus.min() and stimulus.max() <= 7
    assert 0.6 < stimulus.mean() < 1.4  # 120 draws of Poisson(1): standard error 0.09
    assert "EST with 1 block, d_model 8, 24 inputs -> 24 outputs" in res.stdout
    assert "cycles/bin at lanes 1" in res.stdout
    assert not re.search(r"(?<![\d.,])1 (lanes|blocks|layers|bins|inputs|outputs)\b",
                         res.stdout + res.stderr)


def test_lanes_auto_says_1_lane_fits(tmp_path):
    """Spiking MLPs whose widest layer has 1 and 8 neurons: --lanes auto takes all of them."""
    from est.sw.spiking_mlp import make_model, save_checkpoint

    for width, said in ((1, "1 lane fits"), (8, "8 lanes fit")):
        model = tmp_path / f"w{width}.pt"
        save_checkpoint(make_model(n_in=4, hidden=(width,), n_out=width), model)
        res = est("compile", model, "-o", tmp_path / f"w{width}", "--bins", "2", "--lanes",
                  "auto")
        assert res.returncode == 0, res.stderr
        assert f"est-compile: --lanes auto: {said} icebreaker (estimate)\n" in res.stdout


def test_a_reader_that_goes_away_stops_the_command_without_a_traceback():
    """stdout piped into a reader that closes it (``| head``): exit 141, nothing on stderr."""
    code = ("import argparse, sys\n"
            "from est.cli import execute\n"
            "class Printing:\n"
            "    def run(self, args):\n"
            "        for i in range(100000):\n"
            "            print(f'line {i}', flush=True)\n"
            "        return 0\n"
            "sys.exit(execute('est-x', argparse.Namespace(command=Printing())))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and err == "", err
