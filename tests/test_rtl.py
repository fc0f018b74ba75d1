"""The external-simulator runner (sim/rtl.py): a failed simulation is explained by the
testbench's last assertion message in its log, or by nothing when the log holds none (the
compiled models it runs are checked in tests/test_cosim.py)."""


def test_a_failed_simulation_quotes_the_testbench(tmp_path):
    from est.sim.rtl import failure_reason

    log = tmp_path / "test.log"
    log.write_text("   105.00ns WARNING  run_stimulus failed\n  Traceback ...\n"
                   "  AssertionError: o__valid undefined in the first cycle after reset\n")
    assert failure_reason(log) == ": o__valid undefined in the first cycle after reset"
    log.write_text("nothing useful\n")
    assert failure_reason(log) == "" and failure_reason(None) == ""
