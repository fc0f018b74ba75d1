"""What each supported board offers, how its memories are counted, and the logic margin of
the fit check, learned from measured designs (the per-node estimates are in
:mod:`est.compiler.costs`; ``est-synth`` reports the real figures).
"""

from dataclasses import asdict, dataclass

from est import EstError
from est.hw.synapse import ceil_div


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
    core: tuple[tuple[str, int], ...] = ()  # the core backend's CoreSpec on this board
    spram: bool = False  # the core's weight memory in the iCE40 UP5K's SPRAMs

    def core_spec(self, ssa: bool = False, osc: bool = False, phase: bool = False,
                  osc_mult: bool = False):
        """The :class:`~est.compiler.program.CoreSpec` of the core built for this board; with
        ``ssa``, with its SSA unit (a model with SSA attention: est-compile asks for it), with
        ``osc`` its oscillator unit (a model with oscillator readouts), with ``osc_mult`` that
        unit's multiplier (an oscillator of a rotation multiplier other than 1), with ``phase``
        its phase unit (a model with a table of a fractional advance)."""
        from est.compiler.program import CoreSpec

        return CoreSpec(**dict(self.core), ssa=ssa, osc=osc, phase=phase, osc_mult=osc_mult)


ICE40_EBR = ((256, 16), (512, 8), (1024, 4), (2048, 2))
ECP5_EBR = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))

# iCE40: ``-dsp`` maps the multipliers (convolutions over multi-bit SEW sums) to the UP5K's
# eight SB_MAC16 blocks instead of logic cells. ECP5: yosys 0.70's synth_ecp5 stops with
# "Assert 'wire' failed in abc_ops_reintegrate.cc" on the EST when internal wires keep names
# ending in "]" (Amaranth's names for array elements, such as ``current[0]``); giving them
# private names first (ports excepted) avoids it.
_ECP5_FIX = "rename -hide w:*] x:* %d"


def _core(lanes: int, weight_words: int, act_words: int, neuron_words: int,
          acc_bits: int = 20, param_bits: int = 24,
          src2_words: int | None = None) -> tuple[tuple[str, int], ...]:
    """A core of 8-bit weights and 24-bit membranes (the memory sizes in words; docs/core.md)."""
    return (("lanes", lanes), ("weight_bits", 8), ("acc_bits", acc_bits), ("state_bits", 24),
            ("param_bits", param_bits), ("src2_words", src2_words or act_words),
            ("weight_words", weight_words), ("act_words", act_words),
            ("neuron_words", neuron_words), ("acc_words", 32))


# The UP5K's core: weights and program in the four SPRAMs (16,384 words of 64 bits); 28 of 30
# block RAMs (the board top's frame buffer takes the last two): 768 neurons (thresholds and biases
# 16 bits: 3 + 3 of 256 x 16; membranes 6 of 512 x 8), 768 activation words (3) and a copy of
# the first 512 for second operands (2), 8 lanes of 24-bit accumulators (12: the readout of a
# large EST sums 23 bits); bench/bench_core.py up5k_block_rams. The HX8K has no SPRAM: 32-bit
# weight words in 16 block RAMs.
UP5K_CORE = _core(8, 16384, 768, 768, acc_bits=24, param_bits=16, src2_words=512)
HX8K_CORE = _core(4, 2048, 512, 256, param_bits=16)


def _ecp5(name: str, platform: str, luts: int, brams: int, clock_hz: float) -> Board:
    """An ECP5 board; its core's weights (128-bit words: 4 DP16KD per 512) in the block RAMs
    its neurons, activations and accumulators leave (about 21, or 16 with the halved memories
    of a board under 64 block RAMs)."""
    small = brams < 64
    weight_words = min(16384, 512 * ((brams - (20 if small else 24)) // 4))
    return Board(name, platform, "ecp5", luts, brams, ECP5_EBR, clock_hz,
                 script_after_read=_ECP5_FIX,
                 core=_core(16, weight_words, 1024 if small else 2048, 512 if small else 1024,
                            acc_bits=24))


BOARDS = {b.name: b for b in (
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", 5280, 30,
          ICE40_EBR, 12e6, synth_opts="-dsp", core=UP5K_CORE, spram=True),
    Board("icesugar", "amaranth_boards.icesugar:ICESugarPlatform", "ice40", 5280, 30, ICE40_EBR,
          12e6, synth_opts="-dsp", core=UP5K_CORE, spram=True),
    Board("ice40-hx8k-evn", "amaranth_boards.ice40_hx8k_b_evn:ICE40HX8KBEVNPlatform", "ice40",
          7680, 32, ICE40_EBR, 12e6, core=HX8K_CORE),
    _ecp5("ulx3s-12f", "amaranth_boards.ulx3s:ULX3S_12F_Platform", 12288, 32, 25e6),
    _ecp5("ulx3s-25f", "amaranth_boards.ulx3s:ULX3S_25F_Platform", 24288, 56, 25e6),
    _ecp5("ulx3s-45f", "amaranth_boards.ulx3s:ULX3S_45F_Platform", 43848, 108, 25e6),
    _ecp5("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", 83640, 208, 25e6),
    _ecp5("icesugar-pro", "amaranth_boards.icesugar_pro:ICESugarProPlatform", 24288, 56, 25e6),
    _ecp5("colorlight-5a75b", "amaranth_boards.colorlight_5a75b_r7_0:Colorlight_5A75B_R70Platform",
          24288, 56, 25e6),
)}
"""Boards with a UART in their amaranth-boards definition and an open flow. LUT and block RAM
counts are the devices' (nextpnr's figures where a synthesis confirmed them); README lists
which boards have had a bitstream built."""


def get_board(name: str) -> Board:
    if name not in BOARDS:
        raise EstError(f"unknown board {name!r}; supported: {', '.join(sorted(BOARDS))}")
    return BOARDS[name]


LOGIC_ROM_DEPTH = 64
LOGIC_RAM_DEPTH = 2
"""ROMs up to 64 words and RAMs up to 2 words are expected in logic, deeper ones in block RAM:
what yosys 0.70 chose for the spine on iCE40 (its choice is a cost heuristic, so this is an
estimate; est-synth reports the real mapping)."""


def memory_cost(depth: int, width: int, writable: bool, board: Board) -> tuple[int, int]:
    """(block RAMs, LUTs) of one memory of ``depth`` words of ``width`` bits, by the rule of
    :data:`LOGIC_RAM_DEPTH` (block RAMs: the best single shape)."""
    if depth > (LOGIC_RAM_DEPTH if writable else LOGIC_ROM_DEPTH):
        return min(ceil_div(width, w) * ceil_div(depth, d) for d, w in board.bram_configs), 0
    if writable:
        return 0, depth * width + width * ceil_div(depth, 4)  # flip-flops + read mux
    return 0, width * ceil_div(depth, 16)  # one LUT4 per 16 entries of a bit


def mux_luts(inputs: int) -> int:
    """LUT4s of an ``inputs``:1 multiplexer of one bit (a LUT4 selects 2 of 4 inputs)."""
    return max(0, ceil_div(inputs - 1, 2))


LANE_CHOICES = (1, 2, 4, 8, 16)


def most_lanes(widest: int, check) -> int:
    """The largest of :data:`LANE_CHOICES`, no more than ``widest``, for which ``check(lanes)``
    raises no :class:`EstError`; the error of lanes 1 when none passes."""
    for lanes in sorted((c for c in LANE_CHOICES if c <= widest), reverse=True):
        try:
            check(lanes)
            return lanes
        except EstError as e:
            error = e
    raise error


def bridge_logic(in_bytes: int, out_bytes: int) -> tuple[int, int]:
    """Counted (LUT4s, flip-flops) of :class:`est.boards.top.FrameBridge`: UART, parser,
    executor, idle timer, the input word and the reply byte multiplexers."""
    return 100 + 8 * mux_luts(out_bytes + 7) + 8 * in_bytes, 140 + 8 * in_bytes


@dataclass(frozen=True)
class Measured:
    """One synthesized design: the fit check's logic estimate (``estimator`` ``dataflow``:
    :mod:`est.compiler.costs`, iCE40 LUT4s + flip-flops, ECP5 the larger of the two) beside
    nextpnr's logic cells (``ICESTORM_LC`` / ``TRELLIS_COMB``) and whether nextpnr placed it."""

    design: str
    board: str
    estimator: str
    estimate: int
    measured: int
    placed: bool


MARGIN_SOURCE = "bench/results/fit.json"
MEASURED = (
    # bench/bench_est_hw.py --synth: trained ESTs (tests/data/est_tiny_dataflow.pt,
    # examples/est_small.pt)
    Measured("est_tiny_dataflow L1", "icebreaker", "dataflow", 4877, 4626, True),
    Measured("est_small L4", "ulx3s-85f", "dataflow", 17334, 17741, True),
    # bench/bench_boards.py: the demo spine 16-32-24-8 on every board
    Measured("spine L4", "icebreaker", "dataflow", 3560, 2842, True),
    Measured("spine L4", "icesugar", "dataflow", 3560, 2842, True),
    Measured("spine L4", "ice40-hx8k-evn", "dataflow", 3560, 2838, True),
    Measured("spine L4", "ulx3s-12f", "dataflow", 2588, 2788, True),
    Measured("spine L4", "ulx3s-25f", "dataflow", 2588, 2788, True),
    Measured("spine L4", "ulx3s-45f", "dataflow", 2588, 2788, True),
    Measured("spine L4", "ulx3s-85f", "dataflow", 2588, 2788, True),
    Measured("spine L4", "icesugar-pro", "dataflow", 2588, 2811, True),
    Measured("spine L4", "colorlight-5a75b", "dataflow", 2588, 2811, True),
    # bench/bench_fit.py --synth: ESTs of other shapes, the tutorial's model, its first model
    # (compiled as the tutorial did, and as "-o build": only the IR's name differs); "tutorial"
    # re-measured on the dataflow top (docs/tutorial.md), the others on the tops before it
    Measured("est-none L1", "icebreaker", "dataflow", 2791, 2837, True),
    Measured("est-sdsa-and L1", "icebreaker", "dataflow", 4223, 3881, True),
    Measured("est-d12-notpu L1", "icebreaker", "dataflow", 4489, 4236, True),
    Measured("est-ssa-and L1", "icebreaker", "dataflow", 4510, 4273, True),
    Measured("est-ssa-and-12f L4", "ulx3s-12f", "dataflow", 8853, 7992, True),
    Measured("tutorial L1", "icebreaker", "dataflow", 4203, 4306, True),
    Measured("tutorial-v1 L1", "icebreaker", "dataflow", 4902, 4866, False),
    Measured("tutorial-v1-plain L1", "icebreaker", "dataflow", 4902, 4843, True),
)
"""Every synthesized design of the benchmarks, the data the logic margin is learned from
(:func:`learn_margin`). ``bench/bench_fit.py`` recomputes the estimates, re-reads (or
re-measures) nextpnr's figures, writes them to :data:`MARGIN_SOURCE` and says when this table
is out of date."""


@dataclass(frozen=True)
class LogicMargin:
    """How much of a board's logic an estimate may claim, learned from measured designs.

    ``ceiling``: the largest share of a board's logic cells that nextpnr has placed on this
    family below the smallest share at which it failed (for a family where no placement
    failure has been measured the iCE40's ceiling is assumed, ``ceiling_measured`` False).
    ``ratio_low``/``ratio_high``: the smallest and largest measured/estimate ratio of this
    estimator on this family. A design is refused above ``refuse = ceiling / ratio_low`` (even
    the most favourable error seen puts it above anything placed; at most the whole board) and
    warned above ``warn = ceiling / ratio_high`` (the least favourable error seen does)."""

    family: str
    estimator: str
    ceiling: float
    ceiling_measured: bool
    ratio_low: float
    ratio_high: float
    designs: int

    @property
    def warn(self) -> float:
        return min(self.ceiling / self.ratio_high, self.refuse)

    @property
    def refuse(self) -> float:
        return min(self.ceiling / self.ratio_low, 1.0)  # never more than the whole board

    def describe(self) -> str:
        ceiling = (f"the largest placed {self.family} design used {self.ceiling:.1%}"
                   if self.ceiling_measured else
                   f"no {self.family} placement failure measured, the iCE40's "
                   f"{self.ceiling:.1%} assumed")
        return (f"margin from {self.designs} synthesized designs ({MARGIN_SOURCE}): {ceiling}; "
                f"nextpnr/estimate {self.ratio_low:.3f}..{self.ratio_high:.3f}")


def _share(m: Measured) -> float:
    return m.measured / BOARDS[m.board].luts


def learn_margin(points, family: str, estimator: str) -> LogicMargin:
    """The :class:`LogicMargin` of ``estimator`` on ``family`` from measured designs (with no
    placement failure measured on any family, the ceiling is the largest share that placed)."""
    points = [m for m in points if m.board in BOARDS]

    def ceiling_of(mine: list) -> float | None:
        failed = [_share(m) for m in mine if not m.placed]
        placed = [_share(m) for m in mine if m.placed and (not failed or
                                                           _share(m) < min(failed))]
        return max(placed) if failed and placed else None

    ceiling = ceiling_of([m for m in points if BOARDS[m.board].family == family])
    measured = ceiling is not None
    if not measured:
        ceiling = ceiling_of([m for m in points if BOARDS[m.board].family == "ice40"])
    if ceiling is None:
        ceiling = max(_share(m) for m in points if m.placed)
    ratios = [m.measured / m.estimate for m in points
              if BOARDS[m.board].family == family and m.estimator == estimator]
    if not ratios:  # no design of this estimator on this family: every family's
        ratios = [m.measured / m.estimate for m in points if m.estimator == estimator]
    return LogicMargin(family, estimator, ceiling, measured, min(ratios), max(ratios),
                       len(ratios))


def logic_margin(board: Board, estimator: str) -> LogicMargin:
    """The margin the fit check uses for ``board`` (learned from :data:`MEASURED`)."""
    return learn_margin(MEASURED, board.family, estimator)


def logic_verdict(used: int, board: Board, estimator: str, subject: str, advice: str) -> dict:
    """The fit check's verdict on a logic estimate of ``used`` cells on ``board``: ``fits``
    (at or under the margin's ``warn``), ``tight`` (up to ``refuse``: placement uncertain, a
    warning) or ``over`` (refused), with a one-line ``message`` ending in ``advice``."""
    margin = logic_margin(board, estimator)
    unit = "logic cells" if board.family == "ice40" else "LUT4s"
    # (a hair added so that a measured design's own estimate is not lost to rounding)
    warn, refuse = (int(margin.warn * board.luts + 1e-6),
                    int(margin.refuse * board.luts + 1e-6))
    verdict = "fits" if used <= warn else "tight" if used <= refuse else "over"
    who = subject.replace(" on ", " does not fit ", 1) if verdict == "over" else subject
    head = f"{who}: its logic estimate is {used} of {board.luts} {unit} ({used / board.luts:.1%})"
    if verdict == "over":
        message = (f"{head}, over the {refuse} ({margin.refuse:.1%}) the fit check allows "
                   f"({used - refuse} over; {margin.describe()}); {advice}")
    elif verdict == "tight":
        message = (f"{head}, above {warn} ({margin.warn:.1%}) and under {refuse} "
                   f"({margin.refuse:.1%}): designs of this size have failed to place, so "
                   f"nextpnr may stop after several minutes ({margin.describe()}); {advice}")
    else:
        message = f"{head}, within the margin (fits below {warn}, {margin.warn:.1%})"
    return {"board": board.name, "estimator": estimator, "verdict": verdict, "estimate": used,
            "available": board.luts, "unit": unit, "warn_above": warn, "refuse_above": refuse,
            "margin": asdict(margin) | {"warn": round(margin.warn, 4),
                                        "refuse": round(margin.refuse, 4),
                                        "source": MARGIN_SOURCE},
            "message": message}
