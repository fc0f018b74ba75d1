"""Bit-level packing between traces and the top's stream words (``top.json`` describes them)."""

import numpy as np

from est.sim.trace import Trace


def pack(values, bits: int) -> int:
    """``values`` as one word, ``bits`` each (two's complement), the first in the lowest bits."""
    mask = (1 << bits) - 1
    return sum((int(v) & mask) << (i * bits) for i, v in enumerate(values))


def unpack(word: int, n: int, bits: int, signed: bool = False, pos: int = 0) -> np.ndarray:
    """The ``n`` fields of ``bits`` of ``word`` from bit ``pos`` (the inverse of :func:`pack`)."""
    mask = (1 << bits) - 1
    v = np.array([(word >> (pos + i * bits)) & mask for i in range(n)], np.int64)
    return np.where(v >> (bits - 1), v - (1 << bits), v) if signed else v


def encode_inputs(stimulus: np.ndarray, bits: int) -> list[int]:
    """One integer per bin: bits ``i * bits`` up of it hold input i's count (its spike for
    ``bits`` 1)."""
    return [pack(row, bits) for row in stimulus]


def decode_outputs(fields: list, words: list[int], meta: dict) -> Trace:
    """Unpack output words into a trace with one ``[bins, n]`` array per field of ``fields``
    (``[tensor, channels, bits, signed]`` rows, low bits first, as in ``top.json``)."""
    arrays = {name: np.zeros((len(words), n), np.int64) for name, n, _, _ in fields}
    for t, word in enumerate(words):
        pos = 0
        for name, n, bits, is_signed in fields:
            arrays[name][t] = unpack(word, n, bits, is_signed, pos)
            pos += n * bits
    return Trace(arrays, meta)


def encode_outputs(fields: list, trace: Trace) -> list[int]:
    """The words a top must output for ``trace``, one a bin (inverse of :func:`decode_outputs`)."""
    words = []
    for t in range(trace.bins):
        word, pos = 0, 0
        for name, n, bits, _ in fields:
            word |= pack(trace.arrays[name][t], bits) << pos
            pos += n * bits
        words.append(word)
    return words
