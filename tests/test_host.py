"""The host library (boards/host.py) and est-run: BoardLink talks through a bit-level
simulated UART to the board top (FrameBridge + compiled network, or CoreBridge + the core,
models loaded at run time) in amaranth.sim; predictions
equal the golden model's, and damaged, truncated or lost frames in either direction get an
error reply or a retry, after which the link goes on with no bin applied twice or skipped."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import serial
from stream_drivers import HASH, spine_port

from est import EstError
from est.boards import protocol as p
from est.boards.host import BoardLink
from est.boards.top import CoreBridge, board_ident, dataflow_bridge
from est.compiler.program import CoreSpec, compile_program, decode_trace
from est.hw.core import Core
from est.hw.dataflow import DataflowTop
from est.sim.board_sim import SimulatedSerial
from est.sim.interpreter import run
from est.sim.trace import Trace, compare
from est.sim.words import decode_outputs
from est.sw.spiking_mlp import make_model, save_checkpoint
from netgen import random_est_graph, random_mlp_graph, random_stimulus, write_slow_est

BIN = Path(sys.executable).parent


class FaultyLine:
    """A port that damages chosen frames. ``writes`` maps ``(request type, occurrence)`` to a
    fault: "flip" (one bit of the length), "truncate" (first half only) or "drop" (nothing
    sent); ``replies`` lists BIN occurrences whose reply gets one bit flipped on the way back."""

    def __init__(self, port, writes: dict[tuple[int, int], str], replies: set[int]):
        self.port, self.writes, self.replies = port, writes, replies
        self.counts: dict[int, int] = {}
        self.read_count, self.damage_at = 0, -1
        self.applied: list = []

    def write(self, data: bytes) -> int:
        n = self.counts.get(data[1], 0)
        self.counts[data[1]] = n + 1
        if data[1] == p.BIN and n in self.replies:
            self.damage_at = self.read_count + 5
        fault = self.writes.get((data[1], n))
        if fault:
            self.applied.append((data[1], n))
        if fault == "flip":
            data = data[:3] + bytes([data[3] ^ 0x04]) + data[4:]
        elif fault == "truncate":
            data = data[: len(data) // 2]
        elif fault == "drop":
            data = b""
        return self.port.write(data) if data else len(data)

    def read(self, size: int = 1) -> bytes:
        data = bytearray(self.port.read(size))
        if self.read_count <= self.damage_at < self.read_count + len(data):
            data[self.damage_at - self.read_count] ^= 0x20
            self.applied.append(("reply", self.damage_at))
        self.read_count += len(data)
        return bytes(data)

    def reset_input_buffer(self) -> None:
        self.port.reset_input_buffer()


def test_host_library_over_a_damaged_line_equals_golden():
    graph, port = spine_port()
    stimulus = random_stimulus(4, 40, graph.n_in)
    B, R = p.BIN, p.RESEND
    # occurrences count every frame sent, retries included (BIN 1 is bin 0 sent again)
    writes = {
        (B, 0): "drop",  # the first bin never arrives: RESEND 0 -> NO_OUTPUT -> BIN again
        (B, 4): "flip",  # BAD_CRC -> BIN again
        (B, 8): "truncate",  # TIMEOUT -> BIN again
        (B, 12): "drop",  # RESEND 1 -> the previous bin's OUTPUT -> BIN again
        (R, 3): "flip",  # RESEND 3, after BIN 21's damaged reply: BAD_CRC -> RESEND again
        (R, 5): "truncate",  # RESEND 5, after BIN 26's damaged reply: TIMEOUT -> RESEND
    }
    replies = {16, 21, 26, 31}  # BINs whose reply is damaged: RESEND -> the same OUTPUT
    line = FaultyLine(port, writes, replies)
    link = BoardLink(line)
    ident = link.check(HASH, graph.n_in)
    words = link.run(stimulus)
    assert len(line.applied) == len(writes) + len(replies)
    assert link.recoveries == len(writes) + len(replies)
    rtl = decode_outputs(graph.output_fields(False), words, {"source": "host"})
    golden, _ = run(graph, stimulus)
    result = compare(golden, rtl)
    assert ident.out_bits == sum(n * b for _, n, b, _ in graph.output_fields(False))
    assert result.bins == 40 and result.mismatches == 0, result.first


def test_host_library_runs_an_est_bit_exact():
    graph = random_est_graph(5, attention="ssa", sew="iand", cpg=True, tpu=True, rsm=0.5, n_in=9,
                             d=4, blocks=1, heads=2, hidden=5)
    stimulus = random_stimulus(5, 20, graph.n_in, rate=0.4)
    core = DataflowTop(graph, 2, trace=False, state_in_logic=False)
    port = SimulatedSerial(dataflow_bridge(core, graph.n_in, board_ident(graph, core, HASH)),
                           read_timeout_cycles=20_000)
    link = BoardLink(port)
    link.check(HASH, graph.n_in)
    first = link.run(stimulus)
    again = link.run(stimulus)  # after RESET the LFSR masks and all state start over
    result = compare(run(graph, stimulus)[0], decode_outputs(core.fields, first, {}))
    assert result.bins == 20 and result.mismatches == 0, result.first
    assert again == first and link.recoveries == 0


def test_host_refuses_a_board_with_another_network():
    graph, port = spine_port()
    with pytest.raises(EstError, match="IR hash 0102030405060708"):
        BoardLink(port).check(b"\xff" * 8, graph.n_in)


def test_host_reports_an_echoing_port():
    loop = serial.serial_for_url("loop://", timeout=0.05)
    with pytest.raises(EstError, match="echoes what we send"):
        BoardLink(loop).identify()


@pytest.fixture(scope="module")
def run_build(tmp_path_factory, model_pt) -> Path:
    """The demo model compiled with 24 bins of stimulus (no trace: as on a board)."""
    out = tmp_path_factory.mktemp("builds") / "spine"
    res = subprocess.run([BIN / "est-compile", model_pt, "-o", out, "--lanes", "4", "--bins",
                          "24", "--seed", "5", "--no-trace"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


def test_est_run_on_the_simulated_board_writes_golden_predictions(run_build):
    res = subprocess.run([BIN / "est-run", run_build, "--port", "sim"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "all 144 readout values equal the golden model's" in res.stdout
    assert "report: " in res.stdout and (run_build / "report.html").is_file()
    summary = json.loads((run_build / "run" / "run.json").read_text())
    assert summary["bins"] == 24 and summary["golden_mismatches"] == 0
    with np.load(run_build / "run" / "predictions.npz") as z:
        readout, rate = z["readout"], z["rate"]
    golden = Trace.load(run_build / "golden.npz").arrays["readout/v"]
    assert np.array_equal(readout, golden) and rate.shape == readout.shape
    assert np.all(rate > 0)


@pytest.mark.parametrize("port, message", [
    ("/dev/ttyNOPE0", "cannot open serial port /dev/ttyNOPE0"),
    ("loop://", "echoes what we send"),
])
def test_est_run_explains_a_bad_port_and_writes_nothing(run_build, port, message):
    res = subprocess.run([BIN / "est-run", run_build, "--port", port, "--timeout", "0.05",
                          "-o", run_build / "bad_run"], capture_output=True, text=True)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not (run_build / "bad_run").exists()
    assert not list(run_build.glob(".bad_run*"))


def test_host_library_streams_count_inputs_bit_exact():
    """A network of 3-bit count inputs: the BIN frame carries 3 bits per input (IDENT says
    how many), and the board's readout equals the golden model's on every bin."""
    graph = random_est_graph(6, attention="sdsa", cpg=False, n_in=5, d=4, blocks=1, heads=1,
                             hidden=5, input_bits=3, input_to_readout=True, readout_kernel=2)
    stimulus = random_stimulus(6, 15, graph.n_in, rate=3.0, bits=3)
    assert stimulus.max() == 7 and graph.input_bits == 3
    core = DataflowTop(graph, 2, trace=False, state_in_logic=False)
    port = SimulatedSerial(dataflow_bridge(core, 15, board_ident(graph, core, HASH)),
                           read_timeout_cycles=20_000)
    link = BoardLink(port)
    ident = link.check(HASH, 15)
    assert (ident.in_bits, ident.in_bytes) == (15, 2)
    words = link.run(stimulus, 3)
    result = compare(run(graph, stimulus)[0], decode_outputs(core.fields, words, {}))
    assert result.bins == 15 and result.mismatches == 0, result.first
    with pytest.raises(EstError, match="the board takes 15 input bits a bin, the build 5"):
        BoardLink(port).check(HASH, 5)


SPEC = CoreSpec(lanes=4, weight_bits=8, weight_words=1024, act_words=256, neuron_words=64,
                acc_words=8)


def bare_core_port() -> SimulatedSerial:
    """A core top with no model in it (as a core bitstream built without one) behind the
    simulated UART."""
    ident = p.Ident(p.PROTOCOL_VERSION, "0.1.0", bytes(8), 0, 0, p.core_id(SPEC))
    return SimulatedSerial(lambda d, t: CoreBridge(Core(SPEC), d, ident, t),
                           read_timeout_cycles=20_000)


def test_two_models_run_one_after_the_other_on_one_core_top():
    """One core top, no synthesis in between: model A loaded and streamed, then B, each
    bit-exact; a LOAD damaged on the line starts the load over; the board
    reports no model (NO_MODEL, IR hash zero) until a load ends with MODEL."""
    graphs = [random_mlp_graph(2, n_in=20, hidden=(10, 7), n_out=5, weight_bits=8),
              random_mlp_graph(3, n_in=9, hidden=(6,), n_out=4, weight_bits=4)]
    progs = [compile_program(g, SPEC, trace=False) for g in graphs]
    hashes = [b"\xa1" * 8, b"\xb2" * 8]
    line = FaultyLine(bare_core_port(), {(p.LOAD, 3): "flip"}, set())
    link = BoardLink(line)
    assert link.identify().ir_hash == bytes(8)
    with pytest.raises(EstError, match="no whole model"):
        link.reset()
    for k in (0, 1):
        g, prog = graphs[k], progs[k]
        x = random_stimulus(k, 6, g.n_in)
        ident = link.load(prog, hashes[k])
        assert (ident.ir_hash, ident.in_bits, ident.out_bits) == (
            hashes[k], 16 * prog.input.words, 32 * prog.output_word_count)
        words = link.stream([prog.input_word(row) for row in x])
        board = decode_trace(prog, [prog.output_words(w) for w in words], {})
        result = compare(run(g, x)[0], board)
        assert result.bins == 6 and result.mismatches == 0, result.first
    assert line.applied == [(p.LOAD, 3)] and link.recoveries == 1
    assert line.counts[p.LOAD] > sum(1 for _ in progs[0].weights) // p.LOAD_WORDS


def test_load_refuses_a_board_of_another_core_or_a_dataflow_top():
    other = CoreSpec(lanes=4, weight_bits=8, weight_words=2048, act_words=256,
                     neuron_words=64, acc_words=8)
    prog = compile_program(random_mlp_graph(2, n_in=6, hidden=(4,), n_out=3), other,
                           trace=False)
    with pytest.raises(EstError, match="the board's core is .* compile for the board's core"):
        BoardLink(bare_core_port()).load(prog, HASH)
    with pytest.raises(EstError, match="the board's core holds no model.* --load"):
        BoardLink(bare_core_port()).check(HASH, 32)
    _, port = spine_port()
    with pytest.raises(EstError, match="runs a dataflow top"):
        BoardLink(port).load(prog, HASH)


def test_est_run_runs_two_models_one_after_the_other_on_one_simulated_core(tmp_path, model_pt):
    """``est-run A B --port sim --load``: one simulated core top with no model in it, A
    loaded and streamed, then B, each bit-exact against its golden model, no synthesis."""
    other = tmp_path / "other.pt"
    save_checkpoint(make_model(n_in=9, hidden=(16,), n_out=4, seed=5), other)
    builds = [tmp_path / "a", tmp_path / "b"]
    for model, build in zip((model_pt, other), builds, strict=True):
        res = subprocess.run([BIN / "est-compile", model, "-o", build, "--backend", "core",
                              "--bins", "5", "--no-trace"], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    res = subprocess.run([BIN / "est-run", *builds, "--port", "sim", "--load"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    for n in (30, 20):
        assert f"all {n} readout values equal the golden model's" in res.stdout
    summaries = [json.loads((b / "run" / "run.json").read_text()) for b in builds]
    assert [s["ir_hash"] for s in summaries] == [p.ir_hash(b).hex() for b in builds]
    assert summaries[0]["ir_hash"] != summaries[1]["ir_hash"]
    for s in summaries:
        assert s["loaded"] and s["backend"] == "core" and s["golden_mismatches"] == 0


def test_est_run_writes_the_spikes_of_a_spiking_output(tmp_path):
    """A network whose output is a LIF array (an snnTorch classifier given directly) on the
    simulated board: predictions.npz holds its spikes, equal to the golden model's, and
    est-run says it compared output spikes."""
    from netgen import write_snntorch_cases

    write_snntorch_cases(tmp_path)
    build = tmp_path / "build"
    res = subprocess.run([BIN / "est-compile", tmp_path / "sn_good.pt", "--snntorch",
                          tmp_path / "sn_good.toml", "-o", build, "--bins", "20", "--rate",
                          "0.5", "--no-trace"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([BIN / "est-run", build, "--port", "sim"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert "all 60 output spikes equal the golden model's" in res.stdout
    with np.load(build / "run" / "predictions.npz") as z:
        spikes = z["spikes"]
    golden = Trace.load(build / "golden.npz").arrays["leaky3/spikes"]
    assert np.array_equal(spikes, golden) and golden.any()


def test_est_run_loads_an_est_with_slow_readouts_and_sums_its_log_rates(tmp_path):
    """An EST with two slow readouts (three outputs whose log-rates add up) loaded into a
    simulated core top at run time: every value of the three readouts equals the golden
    model's, and predictions.npz holds the three side by side and their summed log-rates,
    each readout over its scale, as the golden model's give them."""
    from est.compiler import graph

    write_slow_est(tmp_path / "slow.pt", seed=4)
    build = tmp_path / "slow"
    res = subprocess.run([BIN / "est-compile", tmp_path / "slow.pt", "-o", build, "--bins", "6",
                          "--rate", "0.6"], capture_output=True, text=True)
    assert res.returncode == 0 and "core" in res.stdout, res.stderr
    res = subprocess.run([BIN / "est-run", build, "--port", "sim", "--load"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "all 144 readout values equal the golden model's" in res.stdout  # 3 x 8 x 6 bins
    net = graph.load(build)
    golden = Trace.load(build / "golden.npz").arrays
    assert golden["readout.slow7/v"].any() and net.meta["sum_outputs"]
    with np.load(build / "run" / "predictions.npz") as z:
        readout, log_rate = z["readout"], z["log_rate"]
    assert readout.shape == (6, 24)
    np.testing.assert_array_equal(log_rate, net.log_rates(golden))
    scaled = [golden[f"{o}/v"] / net.node(o).op.scale for o in net.outputs]
    np.testing.assert_allclose(log_rate, sum(scaled))
