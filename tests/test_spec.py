"""Board descriptions and the fit margin (boards/spec.py): boards by name, memory and
multiplexer costs worked by hand, the most lanes that pass a check, and the logic margin learned
from measured designs with the verdict messages it gives."""

import pytest

from est import EstError
from est.boards.spec import (
    MEASURED,
    Measured,
    get_board,
    learn_margin,
    logic_margin,
    logic_verdict,
    memory_cost,
    most_lanes,
    mux_luts,
)
from est.compiler import costs

ICEBREAKER = get_board("icebreaker")


def test_unknown_board_names_the_supported_ones():
    with pytest.raises(EstError, match="unknown board 'nope'; supported: .*icebreaker"):
        get_board("nope")


def test_memory_and_mux_costs_by_hand():
    assert [mux_luts(n) for n in (1, 2, 3, 4, 5)] == [0, 1, 1, 2, 2]
    assert memory_cost(2, 8, True, ICEBREAKER) == (0, 2 * 8 + 8)  # flip-flops + read mux
    assert memory_cost(64, 3, False, ICEBREAKER) == (0, 3 * 4)  # a LUT4 per 16 entries a bit
    brams, luts = memory_cost(65, 3, False, ICEBREAKER)
    assert brams >= 1 and luts == 0


def test_most_lanes_takes_the_largest_that_passes():
    def check(limit):
        def run(lanes):
            if lanes > limit:
                raise EstError(f"{lanes} lanes do not fit")
        return run

    assert most_lanes(16, check(5)) == 4
    assert most_lanes(3, check(16)) == 2  # never more than the widest array
    with pytest.raises(EstError, match="^1 lanes do not fit$"):
        most_lanes(16, check(0))


def test_the_margin_is_learned_from_placed_and_failed_designs():
    """refuse = ceiling / lowest ratio, warn = ceiling / highest ratio, the ceiling being the
    largest placed share of a family where a failure has been measured (else the iCE40's)."""
    points = [Measured("a", "icebreaker", "dataflow", 4000, 4400, True),   # 83.3%, ratio 1.1
              Measured("b", "icebreaker", "dataflow", 4500, 4500, False),  # ratio 1.0
              Measured("c", "ulx3s-85f", "dataflow", 10000, 10500, True)]
    m = learn_margin(points, "ice40", "dataflow")
    assert m.ceiling == pytest.approx(4400 / 5280) and m.ceiling_measured
    assert (m.ratio_low, m.ratio_high, m.designs) == (1.0, pytest.approx(1.1), 2)
    assert m.refuse == pytest.approx(4400 / 5280) and m.warn == pytest.approx(4000 / 5280)
    e = learn_margin(points, "ecp5", "dataflow")  # no ECP5 failure: the iCE40's, assumed
    assert not e.ceiling_measured and e.ceiling == pytest.approx(4400 / 5280)
    assert e.ratio_low == e.ratio_high == pytest.approx(1.05)
    # a failure below a placed design: the ceiling is the largest placed share under it
    points.append(Measured("d", "icebreaker", "dataflow", 4000, 4200, False))  # 79.5%
    points.append(Measured("e", "icebreaker", "dataflow", 4000, 4000, True))   # 75.8%
    assert learn_margin(points, "ice40", "dataflow").ceiling == pytest.approx(4000 / 5280)


def test_the_check_agrees_with_every_measured_design():
    """No design nextpnr placed is refused, none it could not place is passed as fitting."""
    assert any(not m.placed for m in MEASURED)
    assert {m.estimator for m in MEASURED} == {costs.ESTIMATOR}
    for m in MEASURED:
        board = get_board(m.board)
        v = logic_verdict(m.estimate, board, m.estimator, "x", "y")
        assert v["verdict"] != ("over" if m.placed else "fits"), (m, v)
        margin = logic_margin(board, m.estimator)
        assert margin.warn <= margin.refuse and v["margin"]["source"] == "bench/results/fit.json"


def test_verdict_messages_name_estimate_capacity_margin_and_advice():
    margin = logic_margin(ICEBREAKER, "dataflow")
    over = logic_verdict(int(margin.refuse * 5280) + 50, ICEBREAKER, "dataflow",
                         "the model on icebreaker at lanes 2", "use fewer lanes")
    assert over["verdict"] == "over" and "\n" not in over["message"]
    assert over["message"].startswith("the model does not fit icebreaker at lanes 2: its logic "
                                      "estimate is ")
    for part in ("of 5280 logic cells", f"({margin.refuse:.1%}) the fit check allows",
                 "bench/results/fit.json", "use fewer lanes"):
        assert part in over["message"]
    fits = logic_verdict(int(margin.warn * 5280) - 1, ICEBREAKER, "dataflow", "s", "a")
    assert fits["verdict"] == "fits"
    if over["refuse_above"] > over["warn_above"]:
        tight = logic_verdict(over["refuse_above"], ICEBREAKER, "dataflow", "s", "a")
        assert tight["verdict"] == "tight" and "failed to place" in tight["message"]
        line = costs.format_fit(tight)
        assert "WARNING: placement uncertain" in line and "\n" not in line
    assert "OVER THE MARGIN" in costs.format_fit(over)
