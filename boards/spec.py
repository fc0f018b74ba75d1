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
    synth_opts: str = ""  # extra yosys synth_<family> options
    script_after_read: str = ""  # yosys commands run before synthesis


ICE40_EBR = ((256, 16), (512, 8), (1024, 4), (2048, 2))
ECP5_EBR = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))

# iCE40: ``-dsp`` maps the multipliers (convolutions over multi-bit SEW sums) to the UP5K's
# eight SB_MAC16 blocks instead of logic cells. ECP5: yosys 0.70's synth_ecp5 stops with
# "Assert 'wire' failed in abc_ops_reintegrate.cc" on the EST when internal wires keep names
# ending in "]" (Amaranth's names for array elements, such as ``current[0]``); giving them
# private names first (ports excepted) avoids it.
_ECP5_FIX = "rename -hide w:*] x:* %d"


def _ecp5(name: str, platform: str, luts: int, brams: int, clock_hz: float) -> Board:
    return Board(name, platform, "ecp5", luts, brams, ECP5_EBR, clock_hz,
                 script_after_read=_ECP5_FIX)


BOARDS = {
    "icebreaker": Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40",
                        5280, 30, ICE40_EBR, 12e6, synth_opts="-dsp"),
    "icesugar": Board("icesugar", "amaranth_boards.icesugar:ICESugarPlatform", "ice40",
                      5280, 30, ICE40_EBR, 12e6, synth_opts="-dsp"),
    "ice40-hx8k-evn": Board("ice40-hx8k-evn",
                            "amaranth_boards.ice40_hx8k_b_evn:ICE40HX8KBEVNPlatform", "ice40",
                            7680, 32, ICE40_EBR, 12e6),
    "ulx3s-12f": _ecp5("ulx3s-12f", "amaranth_boards.ulx3s:ULX3S_12F_Platform", 12288, 32, 25e6),
    "ulx3s-25f": _ecp5("ulx3s-25f", "amaranth_boards.ulx3s:ULX3S_25F_Platform", 24288, 56, 25e6),
    "ulx3s-45f": _ecp5("ulx3s-45f", "amaranth_boards.ulx3s:ULX3S_45F_Platform", 43848, 108, 25e6),
    "ulx3s-85f": _ecp5("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", 83640, 208, 25e6),
    "icesugar-pro": _ecp5("icesugar-pro", "amaranth_boards.icesugar_pro:ICESugarProPlatform",
                          24288, 56, 25e6),
    "colorlight-5a75b": _ecp5("colorlight-5a75b",
                              "amaranth_boards.colorlight_5a75b_r7_0:Colorlight_5A75B_R70Platform",
                              24288, 56, 25e6),
}
"""Boards with a UART in their amaranth-boards definition and an open flow. LUT and block RAM
counts are the devices' (nextpnr's figures where a synthesis confirmed them); README lists
which boards have had a bitstream built."""


def get_board(name: str) -> Board:
    if name not in BOARDS:
        raise EstError(f"unknown board {name!r}; supported: {', '.join(sorted(BOARDS))}")
    return BOARDS[name]


def bram_blocks(depth: int, width: int, board: Board) -> int:
    """Block RAMs for one memory of ``depth`` words of ``width`` bits (best single shape)."""
    return min(ceil_div(width, w) * ceil_div(depth, d) for d, w in board.bram_configs)


LOGIC_ROM_DEPTH = 64
LOGIC_RAM_DEPTH = 2
"""ROMs up to 64 words and RAMs up to 2 words are expected in logic, deeper ones in block RAM:
what yosys 0.70 chose for the spine on iCE40 (its choice is a cost heuristic, so this is an
estimate; est-synth reports the real mapping)."""


def memory_cost(depth: int, width: int, writable: bool, board: Board) -> tuple[int, int]:
    """(block RAMs, LUTs) of one memory, by the rule of :data:`LOGIC_RAM_DEPTH`."""
    if depth > (LOGIC_RAM_DEPTH if writable else LOGIC_ROM_DEPTH):
        return bram_blocks(depth, width, board), 0
    if writable:
        return 0, depth * width + width * ceil_div(depth, 4)  # flip-flops + read mux
    return 0, width * ceil_div(depth, 16)  # one LUT4 per 16 entries of a bit


def estimate(net: Network, board: Board) -> dict:
    """Per layer and in total: block RAMs and LUTs (logic cells), from the memory shapes and a
    per-lane cost of the datapath, plus the board top (:func:`bridge_logic`)."""
    lanes = net.lanes
    out_bits = net.layers[-1].n_out * net.layers[-1].v_bits
    layers, total_bram = [], 0
    total_lut = sum(bridge_logic(ceil_div(net.n_in, 8), ceil_div(out_bits, 8)))
    for layer in net.layers:
        groups = ceil_div(layer.n_out, lanes)
        lif = isinstance(layer, DenseLIF)
        sum_bits = signed_bits(-(1 << (layer.weight_bits - 1)) * layer.n_in,
                               (1 << (layer.weight_bits - 1)) * layer.n_in)
        mems = {"weights": (groups * layer.n_in, lanes * layer.weight_bits, False),
                "bias": (groups, lanes * layer.acc_bits, False),
                "state": (groups, lanes * layer.v_bits, True)}
        if lif:
            mems["threshold"] = (groups, lanes * layer.v_bits, False)
        costs = {k: memory_cost(d, w, wr, board) for k, (d, w, wr) in mems.items()}
        brams = {k: c[0] for k, c in costs.items()}
        datapath = lanes * (sum_bits + 2 * layer.acc_bits + (6 if lif else 4) * layer.v_bits)
        registers = layer.n_in + (layer.n_out if lif else layer.n_out * layer.v_bits)
        luts = datapath + registers + sum(c[1] for c in costs.values()) + 40
        layers.append({"name": layer.name, "bram": brams, "bram_total": sum(brams.values()),
                       "luts_estimate": luts,
                       "memory_bits": sum(d * w for d, w, _ in mems.values())})
        total_bram += sum(brams.values())
        total_lut += luts
    return {"board": board.name, "layers": layers, "bram": total_bram, "bram_available":
            board.brams, "luts_estimate": total_lut, "luts_available": board.luts}


def mux_luts(inputs: int) -> int:
    """LUT4s of an ``inputs``:1 multiplexer of one bit (a LUT4 selects 2 of 4 inputs)."""
    return max(0, ceil_div(inputs - 1, 2))


LANE_CHOICES = (1, 2, 4, 8, 16)


def most_lanes(widest: int, check) -> int:
    """The largest of :data:`LANE_CHOICES`, no more than ``widest``, for which ``check(lanes)``
    raises no :class:`EstError`; the error of lanes 1 when none passes."""
    best, first_error = None, None
    for lanes in LANE_CHOICES:
        if lanes > widest:
            break
        try:
            check(lanes)
            best = lanes
        except EstError as e:
            first_error = first_error or e
    if best is None:
        raise first_error
    return best


def bridge_logic(in_bytes: int, out_bytes: int) -> tuple[int, int]:
    """Counted (LUT4s, flip-flops) of :class:`est.boards.top.FrameBridge`: UART, parser,
    executor, idle timer, the input word and the reply byte multiplexers."""
    return 100 + 8 * mux_luts(out_bytes + 7) + 8 * in_bytes, 140 + 8 * in_bytes


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


def est_neuron_arrays(net) -> dict[str, tuple[int, int]]:
    """Every neuron array of an EST, in bin order: name -> (neurons, membrane bits)."""
    arrays = {"embed": (net.d_model, net.embed_lif.v_bits)}
    for i, b in enumerate(net.blocks):
        names = ["q", "k", "v"] if b.attention != "none" else []
        if b.attention == "ssa":
            names.append("attn")
        if b.attention != "none":
            names.append("proj")
        for n in names:
            lif = getattr(b, f"{n}_lif")
            arrays[f"b{i}.{n}"] = (len(lif.threshold), lif.v_bits)
        if b.tpu is not None:
            arrays[f"b{i}.tpu"] = (len(b.tpu.lif.threshold), b.tpu.lif.v_bits)
        for n in ("mlp1", "mlp2"):
            lif = getattr(b, f"{n}_lif")
            arrays[f"b{i}.{n}"] = (len(lif.threshold), lif.v_bits)
    arrays["readout"] = (net.n_out, net.readout_bits)
    return arrays


def est_block_rams(net, lanes: int, board: Board, state_in_logic: bool = True
                   ) -> dict[str, int]:
    """Block RAMs of an :class:`~est.hw.est_top.ESTTop` by memory, by the rule of
    :func:`memory_cost`: every convolution's weight ROM, the CPG table, and unless
    ``state_in_logic`` every neuron array's membranes (``<array>.v``). Biases and thresholds
    are in logic."""
    from est.hw.est_top import weight_bits

    def conv(name: str, c, extra: int = 0) -> tuple[str, int]:
        k, n_out, n_in = c.weight.shape
        depth = ceil_div(n_out, lanes) * k * (n_in + extra)
        return name, memory_cost(depth, lanes * max(weight_bits(c.weight), 2), False, board)[0]

    cpg = 0 if net.cpg_table is None else net.cpg_table.shape[1]
    rams = dict([conv("embed", net.embed, cpg)])
    if net.cpg_table is not None:
        rams["cpg_table"] = memory_cost(*net.cpg_table.shape, False, board)[0]
    for i, b in enumerate(net.blocks):
        names = (["q", "k", "v", "proj"] if b.attention != "none" else []) + ["mlp1", "mlp2"]
        rams.update(conv(f"b{i}.{n}", getattr(b, n)) for n in names)
    rams.update([conv("readout", net.readout)])
    if not state_in_logic:
        for name, (n, v_bits) in est_neuron_arrays(net).items():
            rams[f"{name}.v"] = memory_cost(ceil_div(n, lanes), lanes * v_bits, True, board)[0]
    return rams


def est_memory_plan(net, lanes: int, board: Board) -> tuple[bool, dict[str, int]]:
    """Where :class:`~est.hw.est_top.ESTTop` keeps its membranes on ``board``: in block RAM
    when the weight ROMs and the membranes fit the board's block RAMs together (membranes in
    flip-flops cost about ``v_bits`` logic cells per neuron), else in logic. Returns
    ``(state_in_logic, block RAMs by memory)``; raises an :class:`EstError` when even the
    weight ROMs alone do not fit, naming the largest users and what would help."""
    in_ram = est_block_rams(net, lanes, board, state_in_logic=False)
    if sum(in_ram.values()) <= board.brams:
        return False, in_ram
    rams = est_block_rams(net, lanes, board)
    used = sum(rams.values())
    if used > board.brams:
        worst = sorted(rams.items(), key=lambda kv: -kv[1])[:3]
        raise EstError(
            f"the EST does not fit {board.name}: its weight ROMs need about {used} block RAMs "
            f"against {board.brams} ({used - board.brams} over); largest: "
            f"{', '.join(f'{n} {c}' for n, c in worst)}. Each convolution has its own ROM, so "
            f"a smaller d_model or fewer blocks helps, as does another board "
            f"(--board ulx3s-85f); fewer lanes narrow the ROMs but deepen them.")
    return True, rams
