"""Stream drivers for testing one component alone in amaranth.sim, and a simulated board behind
its serial port (tests only)."""

import random

from est.boards.top import board_ident, dataflow_bridge
from est.hw.dataflow import DataflowTop
from est.sim.amaranth_sim import run_bench, stream_get, stream_put
from est.sim.board_sim import SimulatedSerial
from netgen import random_mlp_graph

HASH = bytes(range(1, 9))
"""The IR hash the simulated boards of the tests report."""


def run_stream(dut, words: list[int], stall_seed: int | None) -> list[int]:
    """Feed ``words`` one per bin on stream ``dut.i`` and take one word per bin from
    ``dut.o``, with random stalls on both (``stall_seed`` None: none); return the words."""
    stall = random.Random(stall_seed) if stall_seed is not None else None
    out = []

    async def bench(ctx):
        for word in words:
            await stream_put(ctx, dut.i, word, stall)
            out.append((await stream_get(ctx, dut.o, stall))[0])

    run_bench(dut, bench)
    return out


def run_groups(dut, currents, acc_bits: int, stall_seed: int | None) -> list[int]:
    """Feed a neuron array (``dut.i`` takes ``lanes`` currents of ``acc_bits`` and a last flag
    per word) each bin's ``currents`` group by group; return its output word per bin."""
    from est.hw.synapse import pack_lanes

    stall = random.Random(stall_seed) if stall_seed is not None else None
    out = []

    async def bench(ctx):
        for row in currents:
            words = pack_lanes(row, dut.lanes, acc_bits)
            for g, word in enumerate(words):
                last = int(g == len(words) - 1) << (dut.lanes * acc_bits)
                await stream_put(ctx, dut.i, word | last, stall)
            out.append((await stream_get(ctx, dut.o, stall))[0])

    run_bench(dut, bench)
    return out


def spine_port(read_timeout_cycles: int = 3000):
    """A spiking MLP's dataflow top without trace (as on a board) behind the simulated UART."""
    graph = random_mlp_graph(3, n_in=11, hidden=(9,), n_out=3)
    core = DataflowTop(graph, 2, trace=False)
    port = SimulatedSerial(dataflow_bridge(core, graph.n_in, board_ident(graph, core, HASH)),
                           read_timeout_cycles=read_timeout_cycles)
    return graph, port


def request(port, frame: bytes) -> bytes:
    """Write ``frame``, return the reply frame's bytes."""
    port.write(frame)
    header = port.read(4)
    return header + port.read(int.from_bytes(header[2:4], "little") + 1)
