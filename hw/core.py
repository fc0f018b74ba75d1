"""The shared, event-driven core: one engine that runs a compiled program once per bin.

:class:`Core` is the core backend's gateware. It holds no model: the program, the weights,
the thresholds and the biases are memories written through the ``load`` port (or given at
build time as initial contents), so one bitstream runs every model that fits its memories
(:class:`~est.compiler.program.CoreSpec`). The instruction set, memory layout and cycle
counts are in docs/core.md; :mod:`est.sim.core_model` is the same machine in Python.

Hardware:

- memories: weights (``lanes * weight_bits`` a word, the program's instructions first,
  ``fetch_words`` words each; with ``spram``, the iCE40 UP5K's SPRAMs:
  :class:`~est.hw.spram.SinglePortMemory`), thresholds and biases (``param_bits`` a word),
  membranes (``state_bits``), the activations (16-bit words: every vector a node hands on, in
  rings of past bins; the first ``src2_words`` of them twice, for the second operand of a
  ``vec``) and the accumulators (``lanes`` currents a word, no bypass: a word added
  into is read again two cycles later at the earliest); each in block RAM, a depth that is no
  power of two in power-of-two banks (:class:`~est.hw.bram.BankedMemory`: 768 words read
  through a two-way multiplexer, not a three-way one);
- a synapse datapath of ``lanes`` multiply-adds (accumulator plus ``weight_bits x 16``
  signed: on the UP5K each an SB_MAC16 with its adder; a high plane's values come shifted
  left by its ``shift``, one shifter for every lane), fed one weight word a cycle: a
  ``conv`` scans its input's words and, for every nonzero field (an event with a value), reads
  only that input's weight rows, ``groups`` words (with a ``shift``, the low plane's, then
  the high plane's into the same accumulator words);
- one neuron datapath (leak by a shift of up to 15 bits, saturating add, threshold, reset:
  to zero, by subtraction, or none, the membrane kept: a delayed reset's threshold comes
  through the accumulators in the next bin; a readout's values may also become the next
  block's biases: a synaptic current), one neuron a cycle in a three-stage pipeline (read;
  leak and add; saturate, fire, reset and write back); with ``spec.osc`` the oscillator unit
  besides (an oscillator readout: before each neuron a cycle that reads its partner's
  membrane, a register and a shifter that add it, shifted by ``rot``, to the update: two
  cycles a neuron; generated only for a model that has one; with ``spec.osc_mult`` its
  multiplier besides, the partner times ``rmul`` by shifts and adds before the register,
  generated only for a model with a rotation multiplier other than 1);
- one vector datapath (``vec``: two fields a cycle, one per activation read port, reduced over
  a window: SEW, masks with an 8-step LFSR, SDSA, max pooling); with ``spec.ssa`` the SSA unit
  besides (a 16-bit popcount and a second field index for a head's scores: SSA attention,
  168 logic cells on the UP5K, generated only for a model that has it);
- the table copy (a row's words read one cycle, written the next) and its phase accumulator,
  a neuron word: the row (a register) above ``FRAC`` fraction bits, moved on one row a bin
  and wrapped at ``period``; with ``spec.phase`` the phase unit besides (a table's fractional
  advance, its threshold word: a 15-bit adder and register for the fraction, a 2-bit one for
  the rows it carries, a comparator and a subtractor for the wrap; and its starting fraction,
  its bias word, read in the stream's first bin; generated only for a model that has one);
- the sequencer, a register-phase state machine over the instructions: the weight memory
  reads at the next instruction word's address whenever no load or ``conv`` uses it, so an
  instruction's last cycle is the first of the next one's fetch; an ``end`` is seen in its
  first word, the fetch address then goes back to 0, and ``end``'s decode cycle reads the
  first instruction (with instructions of one word it is seen too late: a cycle more);
- the output: a word read from the activations or the membranes every cycle while ``o`` takes
  them (their read ports hold the word on ``o`` while it waits: the block RAMs' read enable).

Latency per bin: the sum over the program of ``fetch_words`` cycles per instruction (its
words read from the weight memory, one a cycle, the first during the instruction before, the
last decoded as it arrives) plus its body (``end``: 0, 1 with one-word instructions; ``in``:
its words; ``conv``: 1, then per lag 1, and where the lag reaches back inside the stream one
per input word, ``groups`` per event and one per event that adds into the accumulator word of
the event just before it in the same input word (``groups`` 1, or depthwise);
``lif``/``readout``: neurons + 2, an oscillator readout 2 x neurons + 4; ``out_*``: 1 + 1
per word), with no stalls on ``i`` and ``o``.

Ports: ``load`` (stream of ``mem``, ``addr`` (``CoreSpec.addr_bits``), ``data``: write a
word of memory ``mem``, 1
weights (the program's words first), 2 thresholds, 3 biases, 4 activations; ``mem`` 7 starts
a stream: bin 0, every membrane
and history zero), taken only between bins or while halted; ``halt``: while high the core
stops wherever it is and takes ``load`` words (a model being replaced; ``mem`` 7 restarts it
once ``halt`` is low); ``i`` stream of 16-bit input words (``Program.input_words``); ``o``
stream of 32-bit output words; ``bin`` the bin counter.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from est.compiler.ops.table import Table
from est.compiler.program import MAX_PERIOD, OPCODES, VEC_OPS, CoreSpec, Program, bits_for
from est.hw.bram import BankedMemory
from est.hw.spram import SinglePortMemory
from est.sim.golden import LFSR_FEEDBACK, MAX_ROTATE_MULT

MEM_WEIGHTS, MEM_THRESHOLDS, MEM_BIASES, MEM_ACT, MEM_START = 1, 2, 3, 4, 7
FRAC = Table.FRAC  # a table's phase accumulator: fraction bits below its row


class _State(enum.Enum, shape=5):
    CLEAR = 0
    FETCH = 1
    DECODE = 2
    HALT = 3
    IN = 4
    LAG = 5
    SCAN = 6
    ACC = 7
    NEURON = 8
    NEURON_LAST = 9
    OUT_READ = 10
    OUT_SEND = 11
    TABLE_POS = 12
    TABLE_COPY = 13
    VEC_STATE = 14
    VEC_LOOP = 15
    VEC_LAST = 16
    TABLE_LAST = 17
    NEURON_DRAIN = 18
    VEC_STATE_HI = 19
    VEC_LAST_HI = 20


def load_layout(spec: CoreSpec) -> data.StructLayout:
    """A ``load`` word: which memory, the address, the data (the widest memory word)."""
    width = max(spec.weight_word_bits, spec.param_bits, CoreSpec.ACT_BITS)
    return data.StructLayout({"mem": unsigned(3), "addr": unsigned(spec.addr_bits),
                              "data": unsigned(width)})


def load_words(prog: Program) -> list[dict]:
    """The ``load`` words that put ``prog`` into a core, then start a stream."""
    out = [{"mem": MEM_WEIGHTS, "addr": a, "data": w} for a, w in enumerate(prog.weights)]
    mask = (1 << prog.spec.param_bits) - 1
    out += [{"mem": MEM_THRESHOLDS, "addr": a, "data": v & mask}
            for a, v in enumerate(prog.thresholds)]
    out += [{"mem": MEM_BIASES, "addr": a, "data": v & mask} for a, v in enumerate(prog.biases)]
    out += [{"mem": MEM_ACT, "addr": a, "data": w} for a, w in sorted(prog.constants.items())]
    return out + [{"mem": MEM_START, "addr": 0, "data": 0}]


class Core(wiring.Component):
    """The event-driven core of ``spec`` (see the module docstring). ``program``: initial
    contents of its memories, so the core runs that model from configuration on without a
    load; another can still be loaded."""

    def __init__(self, spec: CoreSpec, program: Program | None = None, spram: bool = False):
        if program is not None and program.spec != spec:
            raise ValueError("the program was compiled for another core")
        self.spec, self.program, self.spram = spec, program, spram
        super().__init__({"load": In(stream.Signature(load_layout(spec))),
                          "i": In(stream.Signature(unsigned(CoreSpec.ACT_BITS))),
                          "o": Out(stream.Signature(unsigned(32))),
                          "halt": In(1), "bin": Out(CoreSpec.BIN_BITS)})

    def elaborate(self, platform):
        m = Module()
        spec, prog = self.spec, self.program
        lanes, wb, ab, sb = spec.lanes, spec.weight_bits, spec.acc_bits, spec.state_bits
        lane_bits = (lanes - 1).bit_length()
        width = spec.weight_word_bits
        fields = spec.layout()
        layout = data.FlexibleLayout(spec.fetch_words * width, {
            name: data.Field(unsigned(bits), pos) for name, (pos, bits) in fields.items()})

        def mem(name, shape, depth, init):
            # no read of this core ever uses the word written in the same cycle (the
            # accumulators stall instead: ACC), so yosys need not emulate "read the old
            # word" on block RAM, which costs a register per written bit and a bypass: the
            # attribute says so to yosys reading Verilog; a board build, read as RTLIL, sets
            # its read ports' COLLISION_X_MASK instead (est.boards.synth.CORE_READ_PORTS)
            m.submodules[name] = store = BankedMemory(shape, depth, init, {"no_rw_check": 1})
            return store

        mask = (1 << spec.param_bits) - 1
        m.submodules.weights = weights = SinglePortMemory(
            lanes * wb, spec.weight_words, self.spram, prog.weights if prog else None)
        thresholds = mem("thresholds", unsigned(spec.param_bits), spec.neuron_words,
                         [v & mask for v in prog.thresholds] if prog else [])
        biases = mem("biases", unsigned(spec.param_bits), spec.neuron_words,
                     [v & mask for v in prog.biases] if prog else [])
        membranes = mem("membranes", unsigned(sb), spec.neuron_words, [])
        act_init = [0] * spec.act_words
        for addr, word in (prog.constants.items() if prog else ()):
            act_init[addr] = word
        act = mem("act", unsigned(CoreSpec.ACT_BITS), spec.act_words, act_init)
        # a copy of the first src2_words activation words, for a second operand's reads
        act2 = mem("act2", unsigned(CoreSpec.ACT_BITS), spec.src2_words,
                   act_init[:spec.src2_words])
        acc = mem("acc", unsigned(lanes * ab), spec.acc_words, [])
        b_wr = biases.write_port()
        loaders = {MEM_THRESHOLDS: thresholds.write_port(), MEM_BIASES: b_wr}
        t_rd, b_rd = thresholds.read_port(), biases.read_port()
        v_wr, a_wr, c_wr = membranes.write_port(), act.write_port(), acc.write_port()
        v_rd, a_rd, a_rd2 = membranes.read_port(), act.read_port(), act2.read_port()
        a_wr2 = act2.write_port()
        m.d.comb += [a_wr2.addr.eq(a_wr.addr), a_wr2.data.eq(a_wr.data),
                     a_wr2.en.eq(a_wr.en & (a_wr.addr < spec.src2_words))]
        c_rd = acc.read_port()

        # with no model in its memories (SPRAM powers up with any contents) the core waits,
        # halted, for a load and a start
        state = Signal(_State, init=_State.CLEAR if prog else _State.HALT)
        fetch = Signal(bits_for(spec.weight_words))  # the next instruction word's address
        part = Signal(range(max(spec.fetch_words, 2)))  # which word of the instruction
        t = Signal(CoreSpec.BIN_BITS)
        age = Signal(8)  # bins since the stream started, saturating: histories before it are 0
        ins = Signal(layout)  # the instruction, its words written as they are fetched
        j = Signal(spec.count_bits)  # word, neuron or clear counter
        lag = Signal(8)
        lag_base = Signal(len(ins.wbase) + 1)
        word_base = Signal(len(ins.wbase) + 1)
        g = Signal(len(ins.groups))
        pending = Signal(CoreSpec.ACT_BITS)
        m.d.comb += self.bin.eq(t)
        # a table's phase accumulator (a neuron word: the row above FRAC fraction bits): its
        # row, and the bin's step: with the phase unit the new fraction and the rows the
        # advance (the threshold word) adds with its carry, found as the first row word is
        # read; else one row a bin, constants yosys folds
        pos = Signal(range(MAX_PERIOD))
        if spec.phase:
            frac, rows = Signal(FRAC), Signal(2)
        else:
            frac, rows = Const(0, FRAC), Const(1, 2)
        tau = Signal(9)  # a vec instruction's bin back in its window
        lfsr = Signal(32)

        # --- load: between bins (waiting for the first input word) or halted -------------
        idle = (state == _State.HALT) | ((state == _State.IN) & (j == 0))
        m.d.comb += self.load.ready.eq(idle)
        loading = self.load.valid & self.load.ready
        for code, port in loaders.items():
            m.d.comb += [port.addr.eq(self.load.payload.addr), port.data.eq(self.load.payload.data),
                         port.en.eq(loading & (self.load.payload.mem == code))]
        # the weight memory reads the next instruction word unless a load or a conv uses it
        m.d.comb += weights.addr.eq(fetch)
        with m.If(loading & (self.load.payload.mem == MEM_WEIGHTS)):
            m.d.comb += [weights.addr.eq(self.load.payload.addr), weights.we.eq(1),
                         weights.wdata.eq(self.load.payload.data)]

        with m.If(loading & (self.load.payload.mem == MEM_ACT)):
            m.d.comb += [a_wr.addr.eq(self.load.payload.addr), a_wr.data.eq(self.load.payload.data),
                         a_wr.en.eq(1)]

        def ring(base, slots_log2, stride, back=0):
            """The word address of the ring slot of bin ``t - back``."""
            ring_mask = ((Const(1, 9) << slots_log2) - 1)[:8]
            return base + (((t - back)[:8] & ring_mask) << stride)

        # --- conv: event extraction from the pending word ------------------------------------
        log2b = ins.src_log2b
        nz = Signal(CoreSpec.ACT_BITS)
        with m.Switch(log2b):
            for k in range(5):
                b = 1 << k
                with m.Case(k):
                    m.d.comb += nz.eq(Cat(pending[f * b:(f + 1) * b].any()
                                          for f in range(CoreSpec.ACT_BITS // b)))
        field = Signal(4)
        for f in reversed(range(CoreSpec.ACT_BITS)):
            with m.If(nz[f]):
                m.d.comb += field.eq(f)
        fmask = Signal(CoreSpec.ACT_BITS)
        m.d.comb += fmask.eq((Const(1, 17) << (Const(1, 5) << log2b)) - 1)
        shift = Signal(4)  # the field's first bit (a field of b bits is one of the 16 / b)
        m.d.comb += shift.eq(field << log2b)
        value = Signal(CoreSpec.ACT_BITS)
        m.d.comb += value.eq((pending >> shift) & fmask)
        rest = Signal(CoreSpec.ACT_BITS)
        m.d.comb += rest.eq(pending & ~(fmask << shift))
        # the one address the src ring is read at: the slot ``src_back`` bins back (a conv's
        # lag, a max's bin in its window), word ``src_off`` of it
        src_back, src_off = Signal(8), Signal(bits_for(spec.act_words))
        src_addr = ring(ins.src, ins.src_ring, ins.src_stride, src_back) + src_off
        # the one address the dst ring is written at: word ``dst_off`` of this bin's slot
        dst_off = Signal(bits_for(spec.act_words))
        dst_addr = ring(ins.dst, ins.dst_ring, ins.dst_stride) + dst_off

        # synapse pipeline: address in one cycle, add and write back in the next
        s_valid, s_group, s_value = Signal(), Signal(len(g)), Signal(CoreSpec.ACT_BITS)
        m.d.sync += s_valid.eq(0)
        products = []
        for lane in range(lanes):
            # a signed multiply-add of at most 16 x 16 bits (values of at most
            # MAX_VALUE_BITS), which yosys puts whole into an iCE40 SB_MAC16, the add
            # included; the high plane's values come shifted (ACC), not its weights: one
            # shifter, not a multiplexer a lane
            weight = weights.rdata.word_select(lane, wb).as_signed()
            products.append(c_rd.data.word_select(lane, ab).as_signed()
                            + weight * s_value.as_signed())

        # neuron pipeline: read in one cycle; leak and add the current in the next (the
        # threshold read there); saturate, fire, reset and write back in the third
        n_valid, n_index = Signal(), Signal(range(spec.neuron_words))
        n_lif = Signal()
        m.d.sync += n_valid.eq(0)
        current = (c_rd.data.word_select(n_index[:lane_bits] if lanes > 1 else 0, ab).as_signed()
                   + b_rd.data.as_signed())
        v_old = Mux(age == 0, 0, v_rd.data.as_signed())
        shifted = Signal(signed(sb))
        m.d.comb += shifted.eq(v_old >> ins.leak)
        leaked = Mux(ins.leak_on, v_old - shifted, v_old)
        u_valid, u_index = Signal(), Signal(range(spec.neuron_words))
        total = Signal(signed(sb + 2))
        coupling = Const(0)
        if spec.osc:
            # the oscillator unit: before each neuron of a rotate readout, its partner's
            # membrane is read (a w's old value for a u, a u's new one for a w), with the
            # multiplier times ``rmul``, into ``partner``; the update adds -(partner >>> rot)
            # (a u) or +(partner >>> rot) (a w)
            rotating = ins.rotate == 1
            pre = Signal(init=1)  # the next NEURON cycle reads the partner
            gap = Signal(2)  # the cycles waited between the u half and the w half
            p_valid, p_upper = Signal(), Signal()
            partner = Signal(signed(sb + (MAX_ROTATE_MULT.bit_length() if spec.osc_mult else 0)))
            n_upper = Signal()
            m.d.sync += p_valid.eq(0)
            read = Mux((age == 0) & ~p_upper, 0, v_rd.data.as_signed())
            if spec.osc_mult:  # times rmul by shifts and adds (the lanes have every DSP)
                read = sum(Mux(ins.rmul[i], read << i, 0) for i in range(len(ins.rmul)))
            with m.If(p_valid):
                m.d.sync += partner.eq(read)
            rotated = Signal(signed(sb))
            m.d.comb += rotated.eq(partner >> ins.rot)
            coupling = Mux(rotating, Mux(n_upper, rotated, -rotated), 0)
        theta = t_rd.data.as_signed()  # read a cycle after the membrane: no register
        above = Signal(sb + 2)  # the bits at and above a membrane's sign bit (bit vbits - 1)
        m.d.sync += u_valid.eq(n_valid)
        with m.If(n_valid):
            m.d.comb += t_rd.addr.eq(ins.nbase + n_index)
            m.d.sync += [total.eq(leaked + current + coupling),
                         above.eq(Cat(ins.vbits <= k + 1 for k in range(sb + 2))),
                         u_index.eq(n_index)]
        # saturate at vbits: the sum fits when its bits from the sign bit of vbits up are all
        # equal; else the largest (0 there, 1 below) or the smallest value (the reverse)
        v1 = Signal(signed(sb))
        negative = total[-1]
        fits = ((total.as_unsigned() ^ negative.replicate(sb + 2)) & above) == 0
        m.d.comb += v1.eq(Mux(fits, total[:sb], Mux(negative, above[:sb], ~above[:sb])))
        spike = Signal()
        m.d.comb += spike.eq(n_lif & (v1 >= theta))
        resets = Signal()  # a spike that resets (no_reset: a delayed reset's array keeps it)
        m.d.comb += resets.eq(spike & ~ins.no_reset)
        v2 = Mux(resets, Mux(ins.reset_zero, 0, v1 - theta), v1)
        spikes = Signal(CoreSpec.ACT_BITS)
        word_of = u_index[4:]
        bit_of = u_index[:4]
        spikes_next = spikes | (spike.as_unsigned() << bit_of)

        m.d.comb += [v_wr.addr.eq(ins.nbase + u_index), v_wr.data.eq(v2.as_unsigned()[:sb]),
                     v_wr.en.eq(u_valid)]
        with m.If(u_valid):
            m.d.sync += spikes.eq(spikes_next)
            last = u_index == ins.n - 1
            with m.If(n_lif & ((bit_of == CoreSpec.ACT_BITS - 1) | last)):
                m.d.comb += [dst_off.eq(word_of), a_wr.addr.eq(dst_addr),
                             a_wr.data.eq(spikes_next), a_wr.en.eq(1)]
                m.d.sync += spikes.eq(0)
            with m.If((u_index[:lane_bits] == lanes - 1 if lanes > 1 else 1) | last):
                m.d.comb += [c_wr.addr.eq(u_index >> lane_bits), c_wr.data.eq(0), c_wr.en.eq(1)]
        with m.If(u_valid & ins.to_bias):
            # a synaptic current (a readout with to_bias) is also the bias of the membranes
            # that take it, the neuron block just after its own: the next instruction's
            m.d.comb += [b_wr.addr.eq(v_wr.addr + ins.n), b_wr.data.eq(v1), b_wr.en.eq(1)]
        with m.If(s_valid):
            m.d.comb += [c_wr.addr.eq(s_group), c_wr.en.eq(1),
                         c_wr.data.eq(Cat(p.as_unsigned()[:ab] for p in products))]


        # table copy pipeline: read a row word in one cycle, write it the next
        k_valid, k_index = Signal(), Signal(range(spec.act_words))
        m.d.sync += k_valid.eq(0)
        with m.If(k_valid):
            m.d.comb += [dst_off.eq(k_index), a_wr.addr.eq(dst_addr), a_wr.data.eq(a_rd.data),
                         a_wr.en.eq(1)]

        # vec pipeline: read the fields of channel j at bin t - tau in one cycle, reduce the
        # next; after the window's last bin the channel's output field is packed and written
        def extract(word, index, log2):
            """Field ``index`` of ``word`` of ``2**log2``-bit fields: a multiplexer per width."""
            out = Signal(CoreSpec.ACT_BITS)
            with m.Switch(log2):
                for k in range(5):
                    with m.Case(k):
                        m.d.comb += out.eq(word.word_select(index[:4 - k], 1 << k) if k < 4
                                           else word)
            return out

        e_valid, e_index, e_first, e_last = Signal(), Signal(spec.count_bits), Signal(), Signal()
        e_zero1, e_zero2 = Signal(), Signal()
        m.d.sync += e_valid.eq(0)
        sub = ins.sub
        # the SSA unit (spec.ssa): a second field index, ``sidx = sbase + tau``, for the scores
        # of a head: written one a step by ``score`` (``sbase`` steps by ``win`` a head), read
        # by ``ssa`` (``sbase`` steps by ``win`` after each head's ``2**thr`` channels)
        if spec.ssa:
            is_score, is_ssa = sub == VEC_OPS["score"], sub == VEC_OPS["ssa"]
            sbase = Signal(bits_for(spec.act_words) + 4)
            sidx = Signal(len(sbase))
            e_idx = Signal(len(sbase))
            m.d.comb += sidx.eq(sbase + tau)
        f1 = Signal(CoreSpec.ACT_BITS)
        f2 = Signal(CoreSpec.ACT_BITS)
        f1_index = Mux(is_ssa, e_idx, e_index) if spec.ssa else e_index
        m.d.comb += [f1.eq(Mux(e_zero1, 0, extract(a_rd.data, f1_index, ins.src_log2b))),
                     f2.eq(Mux(e_zero2, 0, extract(a_rd2.data, e_index, ins.src2_log2b)))]
        # sdsa, event-driven on the query: a channel whose query bit (its first bin's ``src``)
        # is 0 outputs 0 whatever its window holds, so after its second bin (issued when the
        # first bin's read shows the 0) the loop jumps to its last: 3 cycles, not ``win``
        skip = Signal()
        m.d.comb += skip.eq((sub == VEC_OPS["sdsa"]) & e_valid & e_first & ~f1[0])
        reduced, reduced_next = Signal(CoreSpec.ACT_BITS + 1), Signal(CoreSpec.ACT_BITS + 1)
        # ssa: the sum over the window of the head's scores where V (src2) spiked
        addend = Mux(is_ssa, Mux(f2[0], f1, 0), f2) if spec.ssa else f2
        with m.If(sub == VEC_OPS["max"]):
            m.d.comb += reduced_next.eq(Mux(e_first | (f1 > reduced), f1, reduced))
        with m.Else():
            m.d.comb += reduced_next.eq(Mux(e_first, 0, reduced) + addend)
        stepped = lfsr
        for _ in range(8):
            stepped = Mux(stepped[0], (stepped >> 1) ^ LFSR_FEEDBACK, stepped >> 1)
        lfsr_next = Signal(32)
        m.d.comb += lfsr_next.eq(Mux(ins.thr == 0, lfsr, stepped))
        # a mask's LFSR state: two neuron words, low half first (its seed in their threshold
        # words), read before the loop (VEC_STATE, VEC_STATE_HI) and written after it
        lfsr_half = Mux(age == 0, t_rd.data, v_rd.data)[:16]
        is_mask = sub == VEC_OPS["mask"]
        result = Signal(CoreSpec.ACT_BITS + 1)
        with m.Switch(sub):
            with m.Case(VEC_OPS["add"]):
                m.d.comb += result.eq(f1 + f2)
            with m.Case(VEC_OPS["and"]):
                m.d.comb += result.eq(f1 & f2)
            with m.Case(VEC_OPS["iand"]):
                m.d.comb += result.eq(~f1[0] & f2[0])
            with m.Case(VEC_OPS["mask"]):
                m.d.comb += result.eq(Mux((ins.thr == 0) | (lfsr_next[:8] >= ins.thr), f1, 0))
            with m.Case(VEC_OPS["sdsa"]):
                m.d.comb += result.eq(f1[0] & (reduced_next >= ins.thr))
            with m.Case(VEC_OPS["max"]):
                m.d.comb += result.eq(reduced_next)
            if spec.ssa:
                with m.Case(VEC_OPS["score"]):  # a head's popcount of Q AND K
                    both = f1 & f2
                    m.d.comb += result.eq(sum(both[k] for k in range(CoreSpec.ACT_BITS)))
                with m.Case(VEC_OPS["ssa"]):
                    m.d.comb += result.eq(reduced_next)
        packed = Signal(CoreSpec.ACT_BITS)
        out_mask = ((Const(CoreSpec.ACT_BITS, 6) >> ins.dst_log2b) - 1)[:5]
        # the output field: the channel's, or a score's (one each step of the window)
        out_index = Mux(is_score, e_idx, e_index) if spec.ssa else e_index
        at = (out_index[:4] & out_mask) << ins.dst_log2b
        packed_next = packed | (result << at)[:CoreSpec.ACT_BITS]
        with m.If(e_valid):
            m.d.sync += reduced.eq(reduced_next)
            with m.If((e_last | is_score) if spec.ssa else e_last):
                m.d.sync += packed.eq(packed_next)
                with m.If(is_mask):
                    m.d.sync += lfsr.eq(lfsr_next)
                last = (e_last & (e_index == ins.n - 1)) if spec.ssa else e_index == ins.n - 1
                with m.If(((out_index[:4] & out_mask) == out_mask) | last):
                    m.d.comb += [dst_off.eq(out_index >> (4 - ins.dst_log2b)[:3]),
                                 a_wr.addr.eq(dst_addr), a_wr.data.eq(packed_next),
                                 a_wr.en.eq(1)]
                    m.d.sync += packed.eq(0)

        back1 = Mux(sub == VEC_OPS["max"], tau, 0)  # a vec's src bin back: a max's window
        with m.Switch(state):
            with m.Case(_State.LAG, _State.SCAN, _State.ACC):
                m.d.comb += src_back.eq(lag)
            with m.Case(_State.VEC_LOOP):
                m.d.comb += src_back.eq(back1)

        def next_instruction():
            """The last cycle of an instruction is the first of the next one's fetch: the
            weight memory reads at ``fetch`` whenever no load or ``conv`` reads it."""
            m.d.sync += fetch.eq(fetch + 1)
            if spec.fetch_words > 1:
                m.d.sync += [part.eq(1), state.eq(_State.FETCH)]
            else:
                m.d.sync += state.eq(_State.DECODE)

        def next_word():
            """After a word of a conv's input: the next word, or the next lag."""
            with m.If(j == ins.n - 1):
                m.d.sync += [lag.eq(lag + 1), lag_base.eq(lag_base + ins.lag_stride),
                             state.eq(_State.LAG)]
            with m.Else():
                m.d.comb += [src_off.eq(j + 1), a_rd.addr.eq(src_addr)]
                m.d.sync += [j.eq(j + 1), word_base.eq(word_base + ins.word_stride),
                             state.eq(_State.SCAN)]

        with m.Switch(state):
            with m.Case(_State.CLEAR):
                m.d.comb += [c_wr.addr.eq(j), c_wr.data.eq(0), c_wr.en.eq(1)]
                m.d.sync += j.eq(j + 1)
                with m.If(j == spec.acc_words - 1):
                    m.d.sync += [j.eq(0), fetch.eq(0), part.eq(0), state.eq(_State.FETCH)]
            with m.Case(_State.FETCH):
                m.d.sync += [fetch.eq(fetch + 1), part.eq(part + 1)]
                if spec.fetch_words > 1:
                    with m.If(part != 0):
                        m.d.sync += ins.as_value().word_select((part - 1)[:len(part)],
                                                               width).eq(weights.rdata)
                with m.If(part == spec.fetch_words - 1):
                    m.d.sync += [part.eq(0), state.eq(_State.DECODE)]
                    if spec.fetch_words > 1:
                        # an end: its decode cycle reads the first instruction's first word
                        op = (weights.rdata if spec.fetch_words == 2 else ins.as_value())[:4]
                        with m.If(op == OPCODES["end"]):
                            m.d.sync += fetch.eq(0)
            with m.Case(_State.DECODE):
                last = (spec.fetch_words - 1) * width
                word = Cat(ins.as_value()[:last], weights.rdata)
                op = word[:4]
                m.d.sync += [ins.as_value()[last:].eq(weights.rdata), j.eq(0), g.eq(0),
                             lag.eq(word.bit_select(fields["lag0"][0], 1)),
                             lag_base.eq(word.bit_select(fields["wbase"][0], len(ins.wbase)))]
                with m.Switch(op):
                    with m.Case(OPCODES["in"]):
                        m.d.sync += state.eq(_State.IN)
                    with m.Case(OPCODES["conv"]):
                        m.d.sync += state.eq(_State.LAG)
                    with m.Case(OPCODES["lif"], OPCODES["readout"]):
                        m.d.sync += [state.eq(_State.NEURON), n_lif.eq(op == OPCODES["lif"])]
                    with m.Case(OPCODES["out_act"], OPCODES["out_neuron"]):
                        m.d.sync += state.eq(_State.OUT_READ)
                    with m.Case(OPCODES["table"]):
                        m.d.sync += state.eq(_State.TABLE_POS)
                    with m.Case(OPCODES["vec"]):
                        m.d.sync += state.eq(_State.VEC_STATE)
                    with m.Case(OPCODES["end"]):
                        m.d.sync += [t.eq(t + 1), age.eq(Mux(age == 255, 255, age + 1))]
                        if spec.fetch_words > 1:
                            # its one cycle is the first of the first instruction's fetch
                            next_instruction()
                        else:
                            m.d.sync += [fetch.eq(0), state.eq(_State.FETCH)]
                    with m.Default():
                        m.d.sync += state.eq(_State.HALT)
            with m.Case(_State.IN):
                m.d.comb += self.i.ready.eq(~self.load.valid)
                with m.If(self.i.valid & self.i.ready):
                    m.d.comb += [dst_off.eq(j), a_wr.addr.eq(dst_addr),
                                 a_wr.data.eq(self.i.payload), a_wr.en.eq(1)]
                    m.d.sync += j.eq(j + 1)
                    with m.If(j == ins.n - 1):
                        m.d.sync += j.eq(0)
                        next_instruction()
            with m.Case(_State.LAG):
                with m.If(lag == ins.lag0 + ins.kernel):
                    next_instruction()
                with m.Elif(age < lag):
                    m.d.sync += [lag.eq(lag + 1), lag_base.eq(lag_base + ins.lag_stride)]
                with m.Else():
                    m.d.comb += a_rd.addr.eq(src_addr)
                    m.d.sync += [j.eq(0), word_base.eq(lag_base), state.eq(_State.SCAN)]
            with m.Case(_State.SCAN):
                with m.If(a_rd.data == 0):
                    next_word()
                with m.Else():
                    m.d.sync += [pending.eq(a_rd.data), g.eq(0), state.eq(_State.ACC)]
            with m.Case(_State.ACC):
                channel = (j << (4 - ins.src_log2b)[:3]) + field
                # with a shift the rows' second half is the high plane: its values shifted,
                # into the same accumulator words as the first half
                half = ins.groups >> 1
                upper = (ins.shift != 0) & (g >= half)
                group = Signal(len(g))
                m.d.comb += group.eq(Mux(ins.depthwise, channel >> lane_bits,
                                         Mux(upper, g - half, g)))
                # field x groups as shifts and adds: a product of 11 bits or more would take
                # one of the UP5K's 8 SB_MAC16s, which the lanes use
                field_rows = sum(Mux(field[k], ins.groups << k, 0) for k in range(len(field)))
                m.d.comb += [weights.addr.eq(word_base + field_rows + g),
                             c_rd.addr.eq(group)]
                # the word the cycle before adds into is written at the end of this one: its
                # read waits a cycle (the accumulators have no bypass)
                with m.If(~(s_valid & (s_group == group))):
                    m.d.sync += [s_valid.eq(1), s_group.eq(group),
                                 s_value.eq((value << Mux(upper, ins.shift, 0))
                                            [:CoreSpec.ACT_BITS])]
                    with m.If(g == ins.groups - 1):
                        m.d.sync += [g.eq(0), pending.eq(rest)]
                        with m.If(rest == 0):
                            next_word()
                    with m.Else():
                        m.d.sync += g.eq(g + 1)
            with m.Case(_State.NEURON):
                def update():
                    m.d.comb += [c_rd.addr.eq(j >> lane_bits), v_rd.addr.eq(ins.nbase + j),
                                 b_rd.addr.eq(ins.nbase + j)]
                    m.d.sync += [n_valid.eq(1), n_index.eq(j), j.eq(j + 1)]
                    with m.If(j == ins.n - 1):
                        m.d.sync += state.eq(_State.NEURON_LAST)

                if spec.osc:
                    half = ins.n >> 1
                    upper = j >= half
                    with m.If(~rotating):
                        update()
                    with m.Elif(~pre):
                        update()
                        m.d.sync += [pre.eq(1), n_upper.eq(upper)]
                    with m.Elif((j == half) & (gap != 2)):
                        # the u half's last write lands before the w half reads it
                        m.d.sync += gap.eq(gap + 1)
                    with m.Else():
                        m.d.comb += v_rd.addr.eq(ins.nbase + Mux(upper, j - half, j + half))
                        m.d.sync += [pre.eq(0), p_valid.eq(1), p_upper.eq(upper)]
                else:
                    update()
            with m.Case(_State.NEURON_LAST):
                m.d.sync += state.eq(_State.NEURON_DRAIN)
            with m.Case(_State.NEURON_DRAIN):
                m.d.sync += [j.eq(0), spikes.eq(0)]
                if spec.osc:
                    m.d.sync += [pre.eq(1), gap.eq(0)]
                next_instruction()
            with m.Case(_State.OUT_READ, _State.OUT_SEND):
                # word j is read; in OUT_SEND word j - 1 is on o, and while o does not take
                # it the read ports hold it (their block RAMs' read enable low)
                is_act = ins.op == OPCODES["out_act"]
                m.d.comb += [src_off.eq(j), a_rd.addr.eq(src_addr), v_rd.addr.eq(ins.nbase + j)]
                with m.If(state == _State.OUT_READ):
                    m.d.sync += [j.eq(j + 1), state.eq(_State.OUT_SEND)]
                with m.Else():
                    m.d.comb += [self.o.valid.eq(1),
                                 self.o.payload.eq(Mux(is_act, a_rd.data, v_rd.data)),
                                 a_rd.en.eq(self.o.ready), v_rd.en.eq(self.o.ready)]
                    with m.If(self.o.ready):
                        m.d.sync += j.eq(j + 1)
                        with m.If(j == ins.n):
                            m.d.sync += j.eq(0)
                            next_instruction()
            with m.Case(_State.TABLE_POS):
                m.d.comb += v_rd.addr.eq(ins.nbase)
                if spec.phase:
                    m.d.comb += [t_rd.addr.eq(ins.nbase), b_rd.addr.eq(ins.nbase)]
                m.d.sync += state.eq(_State.TABLE_COPY)
            with m.Case(_State.TABLE_COPY):
                # the stream's first bin: the starting fraction (the bias word; the rows are
                # loaded turned by the start's whole rows), else the accumulator
                phase = Mux(age == 0, b_rd.data[:FRAC] if spec.phase else 0, v_rd.data)
                row = Mux(j == 0, phase[FRAC:], pos)
                m.d.comb += a_rd.addr.eq(ins.src + (row << ins.src_stride) + j)
                m.d.sync += [pos.eq(row), k_valid.eq(1), k_index.eq(j), j.eq(j + 1)]
                if spec.phase:
                    low = phase[:FRAC] + t_rd.data[:FRAC]
                    with m.If(j == 0):
                        m.d.sync += [frac.eq(low[:FRAC]), rows.eq(t_rd.data[FRAC] + low[FRAC])]
                with m.If(j == ins.n - 1):
                    m.d.sync += state.eq(_State.TABLE_LAST)
            with m.Case(_State.TABLE_LAST):
                # the wrap compares and subtracts the row part only; one row a bin reaches
                # the period exactly
                hi = pos + rows
                wrapped = (Mux(hi >= ins.period, hi - ins.period, hi) if spec.phase
                           else Mux(hi == ins.period, 0, hi))
                m.d.comb += [v_wr.addr.eq(ins.nbase), v_wr.en.eq(1),
                             v_wr.data.eq(Cat(frac, wrapped))]
                m.d.sync += j.eq(0)
                next_instruction()
            with m.Case(_State.VEC_STATE):
                m.d.comb += [v_rd.addr.eq(ins.nbase), t_rd.addr.eq(ins.nbase)]
                m.d.sync += [state.eq(Mux(is_mask, _State.VEC_STATE_HI, _State.VEC_LOOP)),
                             tau.eq(0), packed.eq(0)]
                if spec.ssa:
                    m.d.sync += sbase.eq(0)
            with m.Case(_State.VEC_STATE_HI):
                m.d.comb += [v_rd.addr.eq(ins.nbase + 1), t_rd.addr.eq(ins.nbase + 1)]
                m.d.sync += [lfsr[:16].eq(lfsr_half), state.eq(_State.VEC_LOOP)]
            with m.Case(_State.VEC_LOOP):
                with m.If(is_mask & (j == 0) & (tau == 0)):
                    m.d.sync += lfsr[16:].eq(lfsr_half)
                src_index = Mux(is_ssa, sidx, j) if spec.ssa else j
                m.d.comb += [
                    src_off.eq(src_index >> (4 - ins.src_log2b)[:3]), a_rd.addr.eq(src_addr),
                    a_rd2.addr.eq(ring(ins.src2, ins.src2_ring, ins.src2_stride, tau)
                                  + (j >> (4 - ins.src2_log2b)[:3]))]
                if spec.ssa:
                    m.d.sync += e_idx.eq(sidx)
                m.d.sync += [e_valid.eq(1), e_index.eq(j), e_first.eq(tau == 0),
                             e_last.eq(tau == ins.win - 1), e_zero1.eq(back1 > age),
                             e_zero2.eq(tau > age)]
                with m.If(tau == ins.win - 1):
                    m.d.sync += [tau.eq(0), j.eq(j + 1)]
                    if spec.ssa:  # after a head (2**thr channels; score: thr 0) its scores
                        head_mask = Cat(ins.thr > k for k in range(4))
                        with m.If(((j + 1)[:4] & head_mask) == 0):
                            m.d.sync += sbase.eq(sbase + ins.win)
                    with m.If(j == ins.n - 1):
                        m.d.sync += state.eq(_State.VEC_LAST)
                with m.Elif(skip):  # channel j's query bit is 0: on to its window's last bin
                    m.d.sync += tau.eq(ins.win - 1)
                with m.Else():
                    m.d.sync += tau.eq(tau + 1)
            with m.Case(_State.VEC_LAST):
                m.d.sync += j.eq(0)
                with m.If(is_mask):
                    m.d.comb += [v_wr.addr.eq(ins.nbase), v_wr.data.eq(lfsr_next[:16]),
                                 v_wr.en.eq(1)]
                    m.d.sync += state.eq(_State.VEC_LAST_HI)
                with m.Else():
                    next_instruction()
            with m.Case(_State.VEC_LAST_HI):
                m.d.comb += [v_wr.addr.eq(ins.nbase + 1), v_wr.data.eq(lfsr[16:]), v_wr.en.eq(1)]
                next_instruction()
            with m.Case(_State.HALT):
                pass

        with m.If(self.halt):
            m.d.sync += state.eq(_State.HALT)
        with m.Elif(loading & (self.load.payload.mem == MEM_START)):
            m.d.sync += [t.eq(0), age.eq(0), j.eq(0), fetch.eq(0), part.eq(0),
                         state.eq(_State.CLEAR)]
            if spec.osc:
                m.d.sync += [pre.eq(1), gap.eq(0)]
        return m

