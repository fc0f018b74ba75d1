"""A multiply-add, ``o = c + a * b``: one iCE40 UP5K SB_MAC16, or logic elsewhere.

Hardware: with ``dsp``, one SB_MAC16 used as a 16 x 16 multiplier (``a`` signed, ``b``
unsigned) whose 32-bit adder adds ``c`` on its C and D inputs, with none of its registers: the
multiply and the add cost no logic cells. Otherwise ``c + a * b`` in logic (yosys puts the
product into a DSP block where the part has one, the add into logic cells).

Latency: none (combinational).
"""

from amaranth import Instance, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

DSP_BITS = 16  # SB_MAC16's multiplier inputs
DSP_OUT = 32  # and its adder


class MultiplyAdd(wiring.Component):
    """``o`` (``o_bits``, two's complement, the low bits of the sum) ``= c + a * b`` for ``a``
    signed of ``a_bits``, ``b`` unsigned of ``b_bits``, ``c`` signed of ``c_bits``."""

    def __init__(self, a_bits: int, b_bits: int, c_bits: int, o_bits: int, dsp: bool = False):
        if dsp and (a_bits > DSP_BITS or b_bits > DSP_BITS or max(c_bits, o_bits) > DSP_OUT):
            raise ValueError(f"an SB_MAC16 multiplies 16 x 16 bits and adds 32, not {a_bits} x "
                             f"{b_bits} + {c_bits} into {o_bits}")
        self.dsp = dsp
        super().__init__({"a": In(signed(a_bits)), "b": In(unsigned(b_bits)),
                          "c": In(signed(c_bits)), "o": Out(o_bits)})

    def elaborate(self, platform):
        m = Module()
        if not self.dsp:
            m.d.comb += self.o.eq(self.c + self.a * self.b)
            return m
        a, b, c = Signal(signed(DSP_BITS)), Signal(DSP_BITS), Signal(signed(DSP_OUT))
        out = Signal(DSP_OUT)
        m.d.comb += [a.eq(self.a), b.eq(self.b), c.eq(self.c), self.o.eq(out)]
        m.submodules.mac = Instance(
            "SB_MAC16", i_CLK=0, i_CE=1, i_A=a, i_B=b, i_C=c[16:], i_D=c[:16],
            i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0, i_IRSTTOP=0, i_IRSTBOT=0,
            i_ORSTTOP=0, i_ORSTBOT=0, i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0,
            i_ADDSUBBOT=0, i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
            o_O=out,
            p_A_SIGNED=1, p_B_SIGNED=0, p_MODE_8x8=0,
            p_A_REG=0, p_B_REG=0, p_C_REG=0, p_D_REG=0, p_TOP_8x8_MULT_REG=0,
            p_BOT_8x8_MULT_REG=0, p_PIPELINE_16x16_MULT_REG1=0, p_PIPELINE_16x16_MULT_REG2=0,
            # the 32-bit sum of {C, D} and the 16 x 16 product: bottom half first, its carry
            # into the top half, neither registered
            p_BOTOUTPUT_SELECT=0, p_BOTADDSUB_LOWERINPUT=2, p_BOTADDSUB_UPPERINPUT=1,
            p_BOTADDSUB_CARRYSELECT=0, p_TOPOUTPUT_SELECT=0, p_TOPADDSUB_LOWERINPUT=2,
            p_TOPADDSUB_UPPERINPUT=1, p_TOPADDSUB_CARRYSELECT=2)
        return m

