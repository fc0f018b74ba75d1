"""The operation kinds of the graph IR, one :class:`~est.compiler.graph.Op` subclass per module
(docs/adding_a_block.md); :data:`KINDS` is the registry the loader reads ``"op"`` names from.
"""

from est.compiler.ops.attention import Attention
from est.compiler.ops.concat import Concat
from est.compiler.ops.conv import Conv
from est.compiler.ops.input import Input
from est.compiler.ops.lif import LIF
from est.compiler.ops.mask import Mask
from est.compiler.ops.maxpool import MaxPool
from est.compiler.ops.readout import Readout
from est.compiler.ops.recurrence import Recurrence
from est.compiler.ops.sew import SEW
from est.compiler.ops.table import Table

KINDS = {cls.KIND: cls for cls in (Input, Table, Concat, Conv, LIF, Readout, Mask, Attention,
                                   SEW, Recurrence, MaxPool)}

__all__ = ["KINDS", "Attention", "Concat", "Conv", "Input", "LIF", "Mask", "MaxPool", "Readout",
           "Recurrence", "SEW", "Table"]
