"""Elementary functions for the kernels, written so that LLVM can vectorize them.

``math.exp`` in a numba loop is a call into the C library (glibc: ~6-8 ns,
and a different code path on CPUs with and without FMA). ``exp`` here is
branch-free arithmetic that LLVM turns into SIMD code when it is applied
along an array (2.0 ns per value with 4-wide AVX2 on the development machine,
2.65 ns for the degree-13 Taylor polynomial it replaced), and
it gives the same bits on every x86-64 CPU: IEEE operations only, no fused
multiply-add (numba does not contract without ``fastmath``). For one value
at a time it is no faster than ``math.exp`` (latency, not throughput): use
it in loops over arrays.

``float_bits`` / ``bits_float`` reinterpret a double's 64 bits, which numba
cannot do on scalars otherwise: the exponent and leading mantissa bits give
a logarithmic histogram bin without computing a logarithm.
"""

import decimal
import math

import numpy as np
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


# Table-driven exp (P. T. P. Tang, "Table-driven implementation of the
# exponential function in IEEE floating-point arithmetic", ACM TOMS 15(2),
# 1989): x = (32 q + j) ln2/32 + r, so e**x = 2**q × 2**(j/32) × e**r with
# |r| <= ln2/64. 2**(j/32) is tabulated as a double plus its rounding error
# (computed here to 50 digits), so the sum is within 1 ulp; e**r - 1 takes a
# degree-6 Taylor polynomial (remainder (ln2/64)^7/7! ~ 2e-18, a fiftieth of an ulp).
_TABLE_BITS = 5
_TABLE_SIZE = 1 << _TABLE_BITS
_TABLE_MASK = _TABLE_SIZE - 1


def _powers_of_two_table():
    """2**(j/32) for j = 0 … 31 as doubles, and what each lacks of the exact value."""
    context = decimal.Context(prec=50)
    ln2 = context.ln(decimal.Decimal(2))
    exact = [
        context.exp(context.multiply(ln2, decimal.Decimal(j) / _TABLE_SIZE))
        for j in range(_TABLE_SIZE)
    ]
    high = np.array([float(t) for t in exact])
    low = np.array([float(context.subtract(t, decimal.Decimal(float(t)))) for t in exact])
    return high, low


_POW2_HIGH, _POW2_LOW = _powers_of_two_table()
_SCALE = _TABLE_SIZE / math.log(2.0)
# ln2/32 in two parts (fdlibm's split of ln 2, divided by 32): n × _STEP_HI is
# exact for |n| < 2^21, as the high part has 32 significant bits.
_STEP_HI = 6.93147180369123816490e-01 / _TABLE_SIZE
_STEP_LO = 1.90821492927058770002e-10 / _TABLE_SIZE
_D2, _D3, _D4, _D5, _D6 = (1.0 / math.factorial(n) for n in range(2, 7))
# Beyond these, exp over- or underflows the normal range of float64.
_EXP_MIN, _EXP_MAX = -708.0, 709.0


@njit(inline="always", cache=True)
def exp(x):
    """e**x within 1 ulp of the correctly rounded value; 0 below -708, inf above 709.

    Tang's table-driven method (see the constants above): two table lookups,
    which LLVM turns into SIMD gathers, and a short polynomial.
    """
    y = min(max(x, _EXP_MIN), _EXP_MAX)
    n = math.floor(y * _SCALE + 0.5)
    r = (y - n * _STEP_HI) - n * _STEP_LO
    expm1_r = r + r * r * (_D2 + r * (_D3 + r * (_D4 + r * (_D5 + r * _D6))))
    k = int(n)
    j = k & _TABLE_MASK
    t = _POW2_HIGH[j]
    value = (t + (_POW2_LOW[j] + t * expm1_r)) * bits_float(((k >> _TABLE_BITS) + 1023) << 52)
    if x > _EXP_MAX:
        return math.inf
    if x >= _EXP_MIN:
        return value
    return 0.0 if x < _EXP_MIN else x  # x is NaN
