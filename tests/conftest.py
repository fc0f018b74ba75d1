import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from est import toolenv  # noqa: E402

toolenv.apply()


@pytest.fixture(scope="session")
def model_pt(tmp_path_factory) -> Path:
    """The spine's seeded demo model as a checkpoint."""
    from est.sw.spiking_mlp import make_model, save_checkpoint

    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(make_model(n_in=12, hidden=(20, 14), n_out=6, seed=3), path)
    return path


@pytest.fixture(scope="session")
def traced_build(tmp_path_factory, model_pt) -> Path:
    """The demo model compiled with every layer traced, 240 bins of random stimulus."""
    from est.compiler.cli import main

    out = tmp_path_factory.mktemp("builds") / "spine"
    assert main([str(model_pt), "-o", str(out), "--lanes", "4", "--bins", "240",
                 "--seed", "11"]) == 0
    return out
