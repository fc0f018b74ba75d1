"""est: a trained spiking network in, open-FPGA gateware out, bit-exact with a numpy golden model.

Sub-packages (one import root, folders mapped in pyproject.toml):

- ``est.sw``: PyTorch models (float training side).
- ``est.compiler``: checkpoint front end, quantizer, integer IR, ``est-compile``.
- ``est.sim``: numpy golden model, traces, cocotb/Verilator/Icarus runners, ``est-sim``,
  ``est-compare``.
- ``est.hw``: Amaranth 0.5 components (synapses, LIF arrays, readout, network top).
- ``est.boards``: board tops and synthesis through amaranth-boards + YoWASP (``est-synth``).
"""

__version__ = "0.1.0"


class EstError(Exception):
    """A user-facing error: the message names the file, layer or parameter and what to do.

    Command-line entry points print it (without a traceback) and exit with status 2.
    """


def numpy_says(error: Exception) -> str:
    """Why numpy did not load a file, in a phrase for an :class:`EstError`, without numpy's
    advice to load pickled data unsafely (est never does; a text file reads to numpy as a
    pickle)."""
    text = str(error)
    if "pickle" in text:
        return "not a NumPy file of plain numbers (numpy.save and numpy.savez write one)"
    return text.split(". ")[0] or type(error).__name__
