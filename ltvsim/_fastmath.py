"""Elementary functions for the kernels, written so that LLVM can vectorize them.

``math.exp`` in a numba loop is a call into the C library (glibc: ~6-8 ns,
and a different code path on CPUs with and without FMA). ``exp`` here is
branch-free arithmetic with no memory reads that LLVM turns into SIMD code
when it is applied along an array (2.1 ns per value with 4-wide AVX2 on an
AMD Zen 3, where glibc takes 5.7 ns), and
it gives the same bits on every CPU: IEEE operations only, its fused
multiply-adds explicit (``fma``, exactly rounded wherever it runs; numba
never fuses ``a * b + c`` by itself without ``fastmath``). For one value
at a time it is no faster than ``math.exp`` (latency, not throughput): use
it in loops over arrays.

``float_bits`` / ``bits_float`` reinterpret a double's 64 bits, which numba
cannot do on scalars otherwise: the exponent and leading mantissa bits give
a logarithmic histogram bin without computing a logarithm.
"""

import decimal
import math

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def float_bits(typingctx, x):
    """The IEEE-754 bits of a float64, as an int64."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


@intrinsic
def bits_float(typingctx, bits):
    """The float64 whose IEEE-754 bits are ``bits`` (an int64)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a × b + c`` rounded once (IEEE 754 fusedMultiplyAdd).

    Exactly rounded by definition, so the same bits on every CPU: one
    instruction where the CPU has FMA (x86-64 since Haswell and Zen, every
    arm64), a call to the C library's ``fma`` elsewhere. numba never fuses
    ``a * b + c`` by itself (it would only with ``fastmath``).
    """

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fused = builder.module.declare_intrinsic(
            "llvm.fma", [double], ir.FunctionType(double, [double, double, double])
        )
        return builder.call(fused, args)

    return types.float64(types.float64, types.float64, types.float64), codegen


# Table-driven exp (P. T. P. Tang, "Table-driven implementation of the
# exponential function in IEEE floating-point arithmetic", ACM TOMS 15(2),
# 1989) with a table of four: x = (4 q + j) ln2/4 + r, so
# e**x = 2**q × 2**(j/4) × e**r with |r| <= ln2/8. 2**(j/4) is a double plus
# its rounding error (computed here to 50 digits), so the sum is within 1 ulp;
# e**r - 1 takes a degree-9 Taylor polynomial (remainder (ln2/8)^10/10! ~ 7e-18,
# a thirtieth of an ulp). Four entries are picked by selects, not read from
# memory: a table read in a loop needs SIMD gathers, which LLVM does not emit
# for CPUs where they are slow (AMD Zen 1-3 with AVX2), and there the whole
# loop stayed scalar (6.9 ns a value on a Zen 3, against 2.1 ns for this).
_TABLE_BITS = 2
_TABLE_SIZE = 1 << _TABLE_BITS


def _powers_of_two_table():
    """2**(j/4) for j = 0 … 3 as doubles, and what each lacks of the exact value."""
    context = decimal.Context(prec=50)
    ln2 = context.ln(decimal.Decimal(2))
    exact = [
        context.exp(context.multiply(ln2, decimal.Decimal(j) / _TABLE_SIZE))
        for j in range(_TABLE_SIZE)
    ]
    high = [float(t) for t in exact]
    low = [float(context.subtract(t, decimal.Decimal(float(t)))) for t in exact]
    return high, low


(_H0, _H1, _H2, _H3), (_L0, _L1, _L2, _L3) = _powers_of_two_table()
_SCALE = _TABLE_SIZE / math.log(2.0)
# ln2/4 in two parts (fdlibm's split of ln 2, divided by 4): n × _STEP_HI is
# exact for |n| < 2^21, as the high part has 32 significant bits.
_STEP_HI = 6.93147180369123816490e-01 / _TABLE_SIZE
_STEP_LO = 1.90821492927058770002e-10 / _TABLE_SIZE
_D2, _D3, _D4, _D5, _D6, _D7, _D8, _D9 = (1.0 / math.factorial(n) for n in range(2, 10))
# Adding 1.5 × 2^52 rounds to a whole number n and leaves n + 2^51 in the
# low 52 bits: n as an integer without a float-to-int conversion, which AVX2
# lacks for 64-bit integers (LLVM would convert lane by lane).
_ROUNDER = 1.5 * 2.0**52
_LOW_52 = (1 << 52) - 1
# 2**q's exponent field from (n + 2^51) >> 2 = q + 2^49 (a logical shift: no
# arithmetic 64-bit shift in AVX2 either).
_EXPONENT_BIAS = 1023 - (1 << 49)
# Beyond these, exp over- or underflows the normal range of float64.
_EXP_MIN, _EXP_MAX = -708.0, 709.0


@njit(inline="always", cache=True)
def exp(x):
    """e**x within 1 ulp of the correctly rounded value; 0 below -708, inf above 709.

    Tang's table-driven method with four entries (see the constants above):
    selects and a polynomial, which LLVM turns into SIMD code on any x86-64
    CPU with AVX2 or AVX-512.
    """
    y = min(max(x, _EXP_MIN), _EXP_MAX)
    shifted = y * _SCALE + _ROUNDER  # n = round(y / (ln2/4)), ties to even
    n = shifted - _ROUNDER
    r = fma(-n, _STEP_LO, fma(-n, _STEP_HI, y))
    p = fma(r, _D9, _D8)
    p = fma(r, p, _D7)
    p = fma(r, p, _D6)
    p = fma(r, p, _D5)
    p = fma(r, p, _D4)
    p = fma(r, p, _D3)
    p = fma(r, p, _D2)
    expm1_r = fma(r * r, p, r)
    biased = float_bits(shifted) & _LOW_52  # n + 2^51: j = n mod 4 in the low two bits
    odd, upper = (biased & 1) != 0, (biased & 2) != 0
    # 2**(j/4) by plain selects (nested conditional expressions do not vectorise)
    high_01 = _H1 if odd else _H0
    high_23 = _H3 if odd else _H2
    low_01 = _L1 if odd else _L0
    low_23 = _L3 if odd else _L2
    t = high_23 if upper else high_01
    t_low = low_23 if upper else low_01
    scale = bits_float(((biased >> _TABLE_BITS) + _EXPONENT_BIAS) << 52)
    value = (t + fma(t, expm1_r, t_low)) * scale
    if x > _EXP_MAX:
        return math.inf
    if x >= _EXP_MIN:
        return value
    return 0.0 if x < _EXP_MIN else x  # x is NaN
