"""Bit-level packing between traces and stream words (sim/words.py): fields in two's complement,
the first in the lowest bits; input words of 1-bit spikes and of 3-bit counts; output words of
signed and unsigned fields, decoded back into the trace they were encoded from."""

import numpy as np

from est.sim.trace import Trace
from est.sim.words import decode_outputs, encode_inputs, encode_outputs, pack, unpack


def test_pack_and_unpack_by_hand():
    assert pack([1, 0, 1], 1) == 0b101
    assert pack([3, -1], 3) == 3 | 7 << 3
    assert unpack(3 | 7 << 3, 2, 3).tolist() == [3, 7]
    assert unpack(3 | 7 << 3, 2, 3, signed=True).tolist() == [3, -1]
    assert unpack(0b1011 << 5, 2, 2, signed=True, pos=5).tolist() == [-1, -2]


def test_encode_inputs_of_spikes_and_of_3_bit_counts():
    assert encode_inputs(np.array([[1, 0, 1], [0, 1, 1]]), 1) == [0b101, 0b110]
    assert encode_inputs(np.array([[3, 0, 7], [1, 2, 0]]), 3) == [3 | 7 << 6, 1 | 2 << 3]


def test_output_words_round_trip_signed_and_unsigned_fields():
    fields = [["a", 2, 3, True], ["b", 3, 1, False]]
    trace = Trace({"a": np.array([[-4, 3], [1, -1]]), "b": np.array([[1, 0, 1], [0, 0, 1]])})
    words = encode_outputs(fields, trace)
    assert words == [4 | 3 << 3 | 0b101 << 6, 1 | 7 << 3 | 0b100 << 6]
    back = decode_outputs(fields, words, {"source": "x"})
    assert back.meta == {"source": "x"} and list(back.arrays) == ["a", "b"]
    for name, value in trace.arrays.items():
        np.testing.assert_array_equal(back.arrays[name], value)
