"""What each supported board offers, and a resource estimate of a network before synthesis.

The estimate counts block RAMs exactly as the memory shapes demand (the widest/deepest mapping
yosys can pick for each memory) and logic with a per-lane cost model; it is a fit check, not a
synthesis result. ``est-synth`` reports the real figures.
"""

from dataclasses import dataclass

from est import EstError
from est.compiler.ir import DenseLIF, Network
from est.hw.synapse import ceil_div
from est.sim.golden import signed_bits


@dataclass(frozen=True)
class Board:
    name: str
    platform: str  # amaranth_boards module:class
    family: str  # ice40 | ecp5
    luts: int
    brams: int
    bram_configs: tuple[tuple[int, int], ...]  # (depth, width) shapes of one block RAM
    clock_hz: float


ICE40_EBR = ((256, 16), (512, 8), (1024, 4), (2048, 2))
ECP5_EBR = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))

BOARDS = {
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40",
                        5280, 30, ICE40_EBR, 12e6),
    "ulx3s-85f": Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5",
                       83640, 208, ECP5_EBR, 25e6),
}


def get_board(name: str) -> Board:
    if name not in BOARDS:
        raise EstError(f"unknown board {name!r}; supported: {', '.join(sorted(BOARDS))}")
    return BOARDS[name]


def bram_blocks(depth: int, width: int, board: Board) -> int:
    """Block RAMs for one memory of ``depth`` words of ``width`` bits (best single shape)."""
    return min(ceil_div(width, w) * ceil_div(depth, d) for d, w in board.bram_configs)


def estimate(net: Network, board: Board) -> dict:
    """Per layer and in total: block RAMs and an estimate of LUTs (logic cells)."""
    lanes = net.lanes
    layers, total_bram, total_lut = [], 0, 60
    for layer in net.layers:
        groups = ceil_div(layer.n_out, lanes)
        sum_bits = signed_bits(-(1 << (layer.weight_bits - 1)) * layer.n_in,
                               (1 << (layer.weight_bits - 1)) * layer.n_in)
        mems = {"weights": (groups * layer.n_in, lanes * layer.weight_bits),
                "bias": (groups, lanes * layer.acc_bits),
                "state": (groups, lanes * layer.v_bits)}
        if isinstance(layer, DenseLIF):
            mems["threshold"] = (groups, lanes * layer.v_bits)
        brams = {k: bram_blocks(d, w, board) for k, (d, w) in mems.items()}
        per_lane = sum_bits + layer.acc_bits + 3 * layer.v_bits
        if isinstance(layer, DenseLIF):
            per_lane += 2 * layer.v_bits
        luts = lanes * per_lane + layer.n_in + 2 * layer.n_out + 40
        layers.append({"name": layer.name, "bram": brams, "bram_total": sum(brams.values()),
                       "luts_estimate": luts,
                       "memory_bits": sum(d * w for d, w in mems.values())})
        total_bram += sum(brams.values())
        total_lut += luts
    return {"board": board.name, "layers": layers, "bram": total_bram, "bram_available":
            board.brams, "luts_estimate": total_lut, "luts_available": board.luts}


def check_fit(net: Network, board: Board) -> dict:
    """Return :func:`estimate`, or raise an :class:`EstError` naming the layer and resource that
    do not fit, by how much, and what would help."""
    est = estimate(net, board)
    for resource, used, avail, key in (("block RAM", est["bram"], board.brams, "bram_total"),
                                       ("logic (LUTs, estimated)", est["luts_estimate"],
                                        board.luts, "luts_estimate")):
        if used > avail:
            worst = max(est["layers"], key=lambda entry: entry[key])
            raise EstError(
                f"the model does not fit {board.name}: it needs {used} {resource} against "
                f"{avail} available ({used - avail} over); the largest user is layer "
                f"'{worst['name']}' with {worst[key]}. Try fewer hidden neurons, fewer weight "
                f"bits (--weight-bits), fewer lanes (--lanes), or a larger board "
                f"(--board {'ulx3s-85f' if board.name != 'ulx3s-85f' else '...'}).")
    return est
