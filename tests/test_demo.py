"""The demo (est/demo.py) without running the flow: its defaults point at the example model and
config that exist in the checkout, and the test recording it writes holds the first bins of the
held-out split, counts and true rates alike."""

import argparse

import numpy as np

from est.demo import configure, write_test_recording


def test_defaults_name_the_example_files():
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args([])
    assert args.model.name == "est_small.pt" and args.model.is_file()
    assert args.config.name == "est_small.toml" and args.config.is_file()
    assert (args.sim, args.board, args.train) == ("verilator", "icebreaker", False)


def test_test_recording_holds_counts_and_rates(tmp_path):
    parser = argparse.ArgumentParser()
    configure(parser)
    config = parser.parse_args([]).config
    write_test_recording(config, 12, tmp_path / "rec.npz")
    with np.load(tmp_path / "rec.npz") as z:
        counts, rates = z["counts"], z["rates"]
    assert counts.shape[0] == rates.shape[0] == 12 and counts.shape == rates.shape
    assert counts.dtype.kind in "iu" and counts.min() >= 0 and (rates >= 0).all()
    write_test_recording(config, 12, tmp_path / "again.npz")  # seeded: the same recording
    with np.load(tmp_path / "again.npz") as z:
        np.testing.assert_array_equal(z["counts"], counts)
