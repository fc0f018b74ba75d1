"""The pure parts of the cocotb testbench (sim/cocotb_tb.py), outside a simulator: which output
fields of a word hold X or Z bits, named ``tensor[channel]`` (the testbench itself runs in
tests/test_cosim.py)."""

from est.sim.cocotb_tb import unresolved_fields

FIELDS = [["a", 2, 2, False], ["b", 1, 3, True]]


def test_unresolved_fields_names_the_fields_with_x_or_z():
    # bits as cocotb prints them, MSB first: b[0] (3 bits), then a[1], then a[0]
    assert unresolved_fields(FIELDS, "101" + "1x" + "10") == ["a[1]"]
    assert unresolved_fields(FIELDS, "z01" + "11" + "x0") == ["a[0]", "b[0]"]
    assert unresolved_fields(FIELDS, "101" + "11" + "10") == []
