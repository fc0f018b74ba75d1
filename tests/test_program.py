"""The core backend's compiler (compiler/program.py): memory layout, instruction words, the
operations it refuses and the models over a core's sizes, each with its message."""

import numpy as np
import pytest

from est import EstError
from est.compiler.program import (
    OPCODES,
    VEC_OPS,
    CoreSpec,
    compile_program,
    decode_words,
    uses_ssa,
    vector_words,
)
from est.sim import core_model
from est.sim.interpreter import run
from netgen import (
    delayed_reset_graph,
    random_conv_graph,
    random_est_graph,
    random_mlp_graph,
    random_stimulus,
)


def test_weight_rows_hold_each_input_channel_and_lag():
    g = random_conv_graph(4, kernels=(3, 2), d=11)
    spec = CoreSpec(lanes=4)
    prog = compile_program(g, spec)
    conv = g.node("c0.syn").op.weight  # [3, 11, 9]
    groups = 3  # ceil(11 / 4)
    words = core_model.decode(prog)
    first = next(w for w in words if w["op"] == 2)
    assert (first["kernel"], first["groups"], first["lag_stride"]) == (3, groups, 9 * groups)
    # lag 2, input 5, group 1 holds outputs 4..7 of that input, low lane first
    word = prog.weights[first["wbase"] + 2 * 9 * groups + 5 * groups + 1]
    lanes = [(word >> (8 * k)) & 0xFF for k in range(4)]
    assert [v - 256 if v > 127 else v for v in lanes] == list(conv[2, 4:8, 5])


def test_vectors_pack_fields_of_a_power_of_two():
    g = random_conv_graph(1, n_in=9, bits=3)
    prog = compile_program(g)
    assert (prog.input.log2b, prog.input.words) == (2, 3)  # 3-bit counts in 4-bit fields
    assert vector_words(np.arange(9) % 8, prog.input) == [0x3210, 0x7654, 0x0000]
    x = np.array([3, 0, 7, 1, 0, 0, 0, 0, 5])
    assert prog.input_words(x) == [0x1703, 0x0000, 0x0005]


def test_instruction_words_round_trip():
    prog = compile_program(random_mlp_graph(3))
    fields = core_model.decode(prog)
    for written, read in zip(prog.instructions, fields, strict=True):
        assert all(read[k] == v for k, v in written.items())
    assert [f["op"] for f in fields] == [1, 2, 3, 2, 3, 2, 4, 6, 5, 6, 5, 6, 7]


def test_output_words_decode_to_the_tensors():
    prog = compile_program(random_mlp_graph(3), trace=False)
    assert [f.tensor for f in prog.outputs] == ["readout/v"]
    sb = prog.spec.state_bits  # a membrane: the low state_bits of its word, two's complement
    words = [5, (1 << sb) - 3, 0, 7, (1 << (sb - 1)) | (1 << sb)]
    np.testing.assert_array_equal(decode_words(prog, words)["readout/v"],
                                  [5, -3, 0, 7, -(1 << (sb - 1))])
    with pytest.raises(EstError, match="expected 5 output words a bin, got 4"):
        decode_words(prog, words[:4])


def test_ssa_needs_a_core_with_its_ssa_unit_and_heads_of_at_most_16_channels():
    g = random_est_graph(1, attention="ssa")
    with pytest.raises(EstError, match="node 'b0.scores': this core does not run SSA attention: "
                                       "it was built without its SSA unit .CoreSpec ssa.; "
                                       "est-compile builds a core with it for a model with SSA"):
        compile_program(g)
    assert uses_ssa(g) and not uses_ssa(random_est_graph(1))
    with pytest.raises(EstError, match="node 'b0.scores': the core does not run SSA heads of 20 "
                                       "channels: it takes heads of at most 16"):
        compile_program(random_est_graph(1, attention="ssa", d=40), CoreSpec(ssa=True))


def test_ssa_heads_of_another_size_go_through_padded_copies():
    """Heads of 6 channels: Q, K and V copied (a conv of 0/1 weights, a LIF passing each bit
    on) with each head in a field of 8, K's and V's copies kept over the window; the counts
    stored spread out, gathered by the conv of the LIF that reads them."""
    g = random_est_graph(1, attention="ssa", d=12, heads=2, window=5, blocks=1)
    prog = compile_program(g, CoreSpec(ssa=True))
    vectors = prog.regions["vectors"]
    assert {x: (vectors[f"b0.scores#{x}"].n, vectors[f"b0.scores#{x}"].slots)
            for x in "qkv"} == {"q": (16, 1), "k": (16, 8), "v": (16, 8)}
    assert vectors["b0.k"].slots == vectors["b0.v"].slots == 1 and vectors["b0.scores"].n == 16
    code = core_model.decode(prog)
    score = next(f for f in code if f["op"] == OPCODES["vec"] and f["sub"] == VEC_OPS["score"])
    assert (score["src"], score["src_log2b"]) == (vectors["b0.scores#q"].base, 3)
    x = random_stimulus(1, 20, g.n_in, rate=0.5)
    gold, _ = run(g, x)
    got = core_model.run(prog, x)
    assert gold.arrays["b0.attn/v"].any()
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)


def test_ssa_is_a_score_and_a_sum_over_the_window():
    """Per block: ``vec score`` (n heads, a head's channels one field of Q and K, the scores
    in fields of their own), ``vec ssa`` (n channels, the heads' log2 channels in ``thr``),
    then the LIF that reads the counts through a depthwise conv of weights 1; K and V kept
    over the window."""
    g = random_est_graph(1, attention="ssa", d=8, heads=2, window=5, blocks=1)
    prog = compile_program(g, CoreSpec(ssa=True))
    subs = {v: k for k, v in VEC_OPS.items()}
    listed = [(node, subs[f["sub"]] if f["op"] == OPCODES["vec"] else f["op"], f)
              for f, (node, _) in zip(core_model.decode(prog), prog.owners, strict=True)]
    at = [i for i, (node, _, _) in enumerate(listed) if node == "b0.scores"]
    (_, score, fs), (_, ssa, fa) = (listed[i] for i in at)
    assert (score, fs["n"], fs["win"], fs["src_log2b"], fs["src2_log2b"]) == ("score", 2, 5, 2, 2)
    assert (ssa, fa["n"], fa["win"], fa["thr"], fa["src"]) == ("ssa", 8, 5, 2, fs["dst"])
    node, op, conv = listed[at[-1] + 1]
    assert (node, op, conv["depthwise"]) == ("b0.attn", OPCODES["conv"], 1)
    vectors = prog.regions["vectors"]
    assert vectors["b0.k"].slots == vectors["b0.v"].slots == 8
    assert vectors["b0.scores#scores"].n == 10


def test_a_core_needs_neuron_words_of_16_to_32_bits():
    with pytest.raises(EstError, match="core state_bits must be 16..32 .a mask's LFSR state is "
                                       "two 16-bit neuron words., got 12"):
        CoreSpec(state_bits=12)


def test_a_mask_keeps_its_lfsr_in_two_16_bit_neuron_words():
    # no CPG table: its phase accumulator (16 rows << 15) needs 19-bit neuron words
    g = random_est_graph(1, cpg=False)
    prog = compile_program(g, CoreSpec(state_bits=16))
    seed = g.node("b0.mask").op.seed
    nbase = prog.regions["neurons"]["b0.mask"][0]
    assert prog.thresholds[nbase:nbase + 2] == [seed & 0xFFFF, seed >> 16]


def test_second_operands_are_placed_in_the_low_words_the_copy_holds():
    """Every vector a ``vec`` reads as ``src2`` lies below ``usage()["src2_words"]``, every other
    vector above; a core whose copy is shorter than that is refused with the count."""
    g = random_est_graph(1, blocks=2)
    prog = compile_program(g)
    low = prog.usage()["src2_words"]
    vectors = prog.regions["vectors"]
    second = {ins["src2"] for ins in prog.instructions if "src2" in ins}
    assert second and 0 < low < prog.usage()["act_words"]
    for vec in vectors.values():
        end = vec.base + (vec.slots << vec.stride)
        assert end <= low if vec.base in second else vec.base >= low
    with pytest.raises(EstError, match=f"src2 words: needs {low}, the core has {low - 1}"):
        compile_program(g, CoreSpec(src2_words=low - 1))
    assert compile_program(g, CoreSpec(src2_words=low)).words() == prog.words()


def test_thresholds_and_biases_over_the_param_words_are_refused_by_node():
    """16-bit threshold and bias words take a mask's seed (unsigned halves) and values within
    -32768..32767; a bias beyond is refused naming the node and the range."""
    g = random_mlp_graph(0, n_in=8, hidden=(6,), n_out=3)
    compile_program(g, CoreSpec(param_bits=16))
    compile_program(random_est_graph(1), CoreSpec(param_bits=16))  # its mask's seed halves
    g.node("fc1.syn").op.bias[2] = 40000
    with pytest.raises(EstError, match=r"node 'fc1': its biases \(.*40000\) do not fit the "
                                       r"core's 16-bit threshold and bias words "
                                       r"\(-32768..32767\)"):
        compile_program(g, CoreSpec(param_bits=16))
    with pytest.raises(EstError, match="core param_bits must be 16..state_bits .24."):
        CoreSpec(param_bits=28)


def test_a_table_is_loaded_with_the_model():
    g = random_est_graph(2)
    prog = compile_program(g)
    table = g.node("cpg").op.table  # [16, 6]
    rows = [prog.constants.get(a, 0) for a in sorted(prog.constants)]
    assert len(prog.constants) == table.shape[0]
    assert rows == [sum(int(v) << i for i, v in enumerate(row)) for row in table]


def test_a_table_of_3_bit_values_is_loaded_in_4_bit_fields_with_its_advance():
    """Each row in the words of the table's output vector (3-bit values in 4-bit fields, 4 a
    word: 5 values in 2 words, a row 2 words apart); the advance in the table's threshold word;
    the fractional advance needs the phase unit, which the spec records only when set."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import Concat, Conv, Input, Readout, Table
    from est.compiler.program import uses_phase

    rows = np.array([[7, 0, 1, 2, 3], [4, 5, 6, 7, 0], [1, 1, 0, 0, 6]])
    g = GraphBuilder()
    x = g.add("input", Input(2))
    both = g.add("both", Concat(), x, g.add("cpg", Table(rows, 12345)))
    g.add("readout", Readout(None, 16, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, 7), np.int64), np.zeros(1, np.int64)), both))
    g = g.build("rows", ("readout",))
    assert uses_phase(g) and not uses_phase(random_est_graph(2))
    spec = CoreSpec(phase=True)
    assert spec.as_dict()["phase"] and "phase" not in CoreSpec().as_dict()
    prog = compile_program(g, spec)
    (table,) = [w for w in core_model.decode(prog) if w["op"] == OPCODES["table"]]
    assert (table["n"], table["period"], table["src_stride"], table["dst_log2b"]) == (2, 3, 1, 2)
    assert prog.thresholds[table["nbase"]] == 12345
    for p, row in enumerate(rows):
        words = [prog.constants[table["src"] + (p << 1) + w] for w in range(2)]
        assert words == [row[0] | row[1] << 4 | row[2] << 8 | row[3] << 12, row[4]]


def test_a_model_over_the_core_is_refused_with_what_is_over():
    g = random_mlp_graph(0, n_in=40, hidden=(30,), n_out=5)
    # 190 words of weights after 9 instructions of 2 words (110-117 bits in 64-bit words)
    with pytest.raises(EstError, match=r"does not fit the core \(weight words: needs 208, the "
                                       r"core has 64; neuron words: needs 35, the core has 32\)"):
        compile_program(g, CoreSpec(lanes=8, weight_words=64, neuron_words=32))


def test_weights_over_two_planes_are_refused():
    g = random_mlp_graph(0, weight_bits=8)
    with pytest.raises(EstError, match=r"node 'fc1.syn': its weights need 8 bits, the core "
                                       r"takes at most 7 \(two planes of its 4-bit fields\)"):
        compile_program(g, CoreSpec(weight_bits=4))



def test_the_high_plane_takes_values_that_fit_the_multiplier_when_shifted():
    """15-bit weights on a core of 8-bit fields: the high plane's values are shifted left by 7
    before the 16 x 16 multiply (hw/core.py: one shifter, not a multiplexer a lane), so they
    may have 15 - 7 bits: 8-bit counts run bit-exact; counts plus spikes (SEW ADD: up to 256)
    are refused."""
    spec = CoreSpec(lanes=4)
    weight = np.array([[[16000, -16000, 129, -7], [-1, 300, 5, 16383], [0, 1, -128, 127]]])
    g = counts_readout(weight)
    x = np.random.default_rng(0).integers(0, 256, (20, 4))
    prog = compile_program(g, spec)
    # the readout's conv (3 outputs: a word a plane) reads both planes in one scan
    assert [(f["shift"], f["groups"]) for f in core_model.decode(prog) if f["op"] == 2] == [(7, 2)]
    gold = run(g, x)[0]
    got = core_model.run(prog, x).trace
    for name, value in got.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
    with pytest.raises(EstError, match=r"node 'readout.syn': its input's values reach 256 "
                                       r"\(9 bits\), the core multiplies values of at most 8 "
                                       r"bits; its 15-bit weights take two planes of the core's "
                                       r"8-bit fields and the high plane's values are shifted "
                                       r"by 7 bits; quantize"):
        compile_program(counts_readout(weight, spikes_added=True), spec)


def counts_readout(weight: np.ndarray, spikes_added: bool = False):
    """8-bit counts of 4 inputs (with ``spikes_added``: plus a LIF's spikes of them, SEW ADD),
    a convolution (``weight`` [1, 3, 4]) into a readout."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import LIF, SEW, Conv, Input, Readout

    g = GraphBuilder()
    s = x = g.add("input", Input(4, 8))
    if spikes_added:
        syn = g.add("lif.syn", Conv(np.eye(4, dtype=np.int64)[None], np.zeros(4, np.int64)), x)
        s = g.add("add", SEW("add"), g.add("lif", LIF(np.full(4, 100), 1, 16), syn), x)
    syn = g.add("readout.syn", Conv(weight, np.zeros(3, np.int64)), s)
    g.add("readout", Readout(None, 24, np.ones(3)), syn)
    return g.build("counts", ("readout",))


def sew_chain(joins: int, weight: np.ndarray | None = None):
    """Spikes added onto themselves ``joins`` times by SEW ADD (1 + joins bits, values up to
    1 + joins), then a convolution (``weight`` [1, 3, 4], default ones) into a readout."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import SEW, Conv, Input, Readout

    g = GraphBuilder()
    x = s = g.add("input", Input(4, 1))
    for k in range(joins):
        s = g.add(f"add{k}", SEW("add"), x, s)
    weight = np.ones((1, 3, 4), np.int64) if weight is None else weight
    syn = g.add("readout.syn", Conv(weight, np.zeros(3, np.int64)), s)
    g.add("readout", Readout(None, 24, np.ones(3)), syn)
    return g.build("chain", ("readout",))


def test_sums_are_bounded_by_the_values_a_sew_chain_takes():
    """15 SEW ADDs of spikes: 16 bits wide, but values of at most 16, kept in 8-bit fields,
    so a readout of weights 2 over 4 inputs sums to at most 128: 9-bit accumulators hold it,
    8-bit ones do not (the width would ask for 20 bits); bit-exact."""
    g = sew_chain(15, np.full((1, 3, 4), 2))
    assert g.specs()["add14"].bits == 16 and g.tops()["add14"] == 16
    x = np.random.default_rng(1).integers(0, 2, (30, 4))
    prog = compile_program(g, CoreSpec(lanes=4, acc_bits=9))
    assert prog.regions["vectors"]["add14"].log2b == 3
    got = core_model.run(prog, x).trace
    gold = run(g, x)[0]
    for name, value in got.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
    with pytest.raises(EstError, match=r"node 'readout.syn': its sums need 9 bits"):
        compile_program(g, CoreSpec(lanes=4, acc_bits=8))


def test_a_core_spec_takes_powers_of_two():
    with pytest.raises(EstError, match="lanes must be a power of two, got 6"):
        CoreSpec(lanes=6)
    with pytest.raises(EstError, match="weight_bits must be 2, 4, 8 or 16, got 3"):
        CoreSpec(weight_bits=3)


def test_each_reset_has_its_neuron_fields():
    """A neuron instruction's reset: to zero, by subtraction in the same bin (neither flag),
    or none (``no_reset``: snnTorch's delayed subtraction, whose threshold comes through the
    accumulators); no leak is ``leak_on`` 0."""
    from est.compiler.program import neuron_fields

    common = {"leak": 3, "leak_on": 1, "vbits": 8}
    common = {**common, "to_bias": 0}
    assert neuron_fields("h", 3, 8, "zero") == {**common, "reset_zero": 1, "no_reset": 0}
    assert neuron_fields("h", 3, 8, "subtract") == {**common, "reset_zero": 0,
                                                    "no_reset": 0}
    assert neuron_fields("h", 3, 8, "subtract_delayed") == {**common, "reset_zero": 0,
                                                            "no_reset": 1}
    assert neuron_fields("h", None, 8)["leak_on"] == 0
    assert neuron_fields("h", 15, 20, to_bias=True)["to_bias"] == 1
    with pytest.raises(EstError, match="node 'h': the core leaks by shifts of at most 15 bits, "
                                       "not 16"):
        neuron_fields("h", 16, 20)


def _cuba_graph(syn_bits: int):
    """3 inputs -> 2 current-based LIF (synaptic leak shift 1) -> readout."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import LIF, Conv, Input, Readout

    g = GraphBuilder()
    x = g.add("input", Input(3))
    x = g.add("h", LIF(np.array([5, 5]), 2, 8, "zero", 1, syn_bits),
              g.add("h.syn", Conv(np.ones((1, 2, 3), np.int64), np.zeros(2, np.int64)), x))
    g.add("readout", Readout(None, 12, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, 2), np.int64), np.zeros(1, np.int64)), x))
    return g.build("cuba", ("readout",))


def test_a_synaptic_current_is_a_readout_that_writes_the_next_biases():
    """A current-based array: its convolution, a ``readout`` of the synaptic current (its own
    neuron block, ``to_bias``) whose values become the biases of the membranes' block just
    after it, then the ``lif``; a current wider than the core's bias words is refused."""
    prog = compile_program(_cuba_graph(6), CoreSpec(lanes=2, param_bits=16))
    code = core_model.decode(prog)
    syn, lif = (next(f for f in code if f["op"] == OPCODES[op]) for op in ("readout", "lif"))
    assert code.index(syn) == code.index(lif) - 1 and syn["to_bias"] == 1
    assert (syn["vbits"], syn["leak"], syn["leak_on"]) == (6, 1, 1)
    assert lif["nbase"] == syn["nbase"] + 2 and lif["to_bias"] == 0
    with pytest.raises(EstError, match="node 'h': its synaptic current needs 20 bits, the core "
                                       "passes it on in its 16-bit bias words"):
        compile_program(_cuba_graph(20), CoreSpec(lanes=2, param_bits=16))


def test_a_delayed_reset_subtracts_the_threshold_through_the_accumulators():
    """The array's convolution, then a depthwise conv of its own spikes at lag 1 with weights
    -threshold (so its ring keeps 2 bins), then a ``lif`` that keeps the membrane; the
    accumulators must hold the convolution's sums and the threshold below them: 2047 fits 12
    bits, 2049 does not, and is refused naming the node. (-2000 takes two planes of 8-bit
    weights: a row of two words a channel, into the channel's accumulator word; bit-exact
    with -300 and spikes most bins.)"""
    prog = compile_program(delayed_reset_graph(2000), CoreSpec(lanes=2, acc_bits=12))
    code = core_model.decode(prog)
    lif = next(i for i, f in enumerate(code) if f["op"] == OPCODES["lif"])
    assert code[lif]["no_reset"] == 1 and code[lif - 2]["op"] == OPCODES["conv"]
    assert code[lif - 2]["lag0"] == 0  # h.syn
    delayed = code[lif - 1]
    assert delayed["op"] == OPCODES["conv"]
    assert (delayed["depthwise"], delayed["lag0"], delayed["kernel"]) == (1, 1, 1)
    assert (delayed["groups"], delayed["shift"]) == (2, 12 - 8)
    assert (delayed["src"], delayed["src_ring"]) == (code[lif]["dst"], code[lif]["dst_ring"])
    assert code[lif]["dst_ring"] >= 1  # 2 slots or more: the bin before is kept
    wide = delayed_reset_graph(300, weight=100)
    x = np.random.default_rng(1).integers(0, 2, (12, 4))
    gold, _ = run(wide, x)
    assert 3 < gold.arrays["h/spikes"].sum() < 24
    got = core_model.run(compile_program(wide, CoreSpec(lanes=2)), x)
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
    x = np.ones((6, 4), np.int64)  # threshold 2, a current of 4: a spike every bin
    small = delayed_reset_graph(2)
    gold, _ = run(small, x)
    assert gold.arrays["h/spikes"][:, 0].tolist() == [1, 1, 1, 1, 1, 1]
    got = core_model.run(compile_program(small, CoreSpec(lanes=2, acc_bits=12)), x)
    for name, value in got.trace.arrays.items():
        np.testing.assert_array_equal(value, gold.arrays[name], err_msg=name)
    with pytest.raises(EstError, match=r"node 'h': its sums need 13 bits \(every input at its "
                                       r"largest value\), the core's accumulators hold 12; use "):
        compile_program(delayed_reset_graph(2049), CoreSpec(lanes=2, acc_bits=12))
    # -20000 needs 16 bits, two planes of 8-bit fields hold 15
    with pytest.raises(EstError, match="node 'h': the core does not run a delayed reset "
                                       r"\(subtract_delayed\) whose thresholds need 16 bits"):
        compile_program(delayed_reset_graph(20000), CoreSpec(lanes=2, weight_bits=8))


def test_a_tpu_delayed_reset_too_wide_for_the_weights_is_refused_by_its_reset():
    """The TPU's delayed reset goes into its lag-1 recurrent weights: when the difference
    needs more than two planes, the message names the reset, not weights the user wrote."""
    from dataclasses import replace

    g = random_est_graph(2, blocks=1)
    g = replace(g, nodes=tuple(
        replace(n, op=replace(n.op, reset="subtract_delayed", v_bits=20,
                              threshold=np.full(n.op.threshold.shape, 20000)))
        if n.op.KIND == "recurrence" else n for n in g.nodes))
    with pytest.raises(EstError, match=r"node 'b0.tpu': the core does not run this delayed "
                                       r"reset \(subtract_delayed\): it subtracts the thresholds "
                                       r"through the lag-1 recurrent weights, which then need "
                                       r"16 bits, the core takes at most 15"):
        compile_program(g, CoreSpec(lanes=4, weight_bits=8))


def test_ssa_counts_of_padded_heads_are_refused_into_anything_but_a_lif():
    """Counts stored spread out (heads of 3 channels padded to 4) are gathered only by the
    LIF that reads them; a convolution reading them is refused by node."""
    from est.compiler.graph import GraphBuilder
    from est.compiler.ops import Attention, Conv, Input, Readout

    g = GraphBuilder()
    x = g.add("input", Input(6))
    a = g.add("attn", Attention("ssa", 2, 2), x, x, x)
    g.add("readout", Readout(None, 12, np.ones(1)),
          g.add("readout.syn", Conv(np.ones((1, 1, 6), np.int64), np.zeros(1, np.int64)), a))
    with pytest.raises(EstError, match=r"node 'attn': the core runs SSA heads of 3 channels "
                                       r"only into LIF arrays, not into \['readout.syn'\]"):
        compile_program(g.build("ssa_conv", ("readout",)), CoreSpec(lanes=2, ssa=True))


def test_a_rotation_multiplier_needs_the_oscillator_units_multiplier():
    """A readout of rotation r 2^-m with r other than 1 asks for CoreSpec.osc_mult (its
    ``rmul`` field, 5 bits, in the instruction only then); a core with the multiplier runs the
    others with r 1 written."""
    from est.compiler.program import uses_osc, uses_osc_mult
    from netgen import oscillator_graph

    g = oscillator_graph(1)
    assert uses_osc(g) and uses_osc_mult(g) and not uses_osc_mult(random_est_graph(2))
    assert "rmul" not in CoreSpec(osc=True).layout()
    spec = CoreSpec(osc=True, osc_mult=True, acc_words=16)
    assert spec.layout()["rmul"][1] == 5
    rmul = [w["rmul"] for w in core_model.decode(compile_program(g, spec))
            if w["op"] == OPCODES["readout"]]
    assert rmul == [1, 1, 27]
