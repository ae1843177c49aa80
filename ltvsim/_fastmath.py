"""Elementary functions for the kernels, written so that LLVM can vectorize them.

``math.exp`` in a numba loop is a call into the C library (glibc: ~6-8 ns,
and a different code path on CPUs with and without FMA). ``exp`` here is
branch-free arithmetic that LLVM turns into SIMD code when it is applied
along an array (2.5 ns per value with AVX2 on the development machine), and
it gives the same bits on every x86-64 CPU: IEEE operations only, no fused
multiply-add (numba does not contract without ``fastmath``). For one value
at a time its long polynomial makes it slower than ``math.exp`` (latency,
not throughput): use it in loops over arrays.

``float_bits`` / ``bits_float`` reinterpret a double's 64 bits, which numba
cannot do on scalars otherwise: the exponent and leading mantissa bits give
a logarithmic histogram bin without computing a logarithm.
"""

import math

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


_INV_LN2 = 1.0 / math.log(2.0)
# ln 2 split in two (fdlibm's constants): k * _LN2_HI is exact for |k| < 2^11.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Taylor coefficients 1/n! for n = 2 … 13: on |r| <= ln(2)/2 the remainder is
# below 0.35^14 / 14! ~ 5e-18, under a quarter of an ulp.
_C = tuple(1.0 / math.factorial(n) for n in range(14))
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _C[2:]
# Beyond these, exp over- or underflows the normal range of float64.
_EXP_MIN, _EXP_MAX = -708.0, 709.0


@njit(inline="always", cache=True)
def exp(x):
    """e**x within 1 ulp of the correctly rounded value; 0 below -708, inf above 709.

    Range reduction ``x = k ln 2 + r`` (|r| <= ln(2)/2), a degree-13 Taylor
    polynomial for e**r, and 2**k built from its exponent bits.
    """
    y = min(max(x, _EXP_MIN), _EXP_MAX)
    k = math.floor(y * _INV_LN2 + 0.5)
    r = (y - k * _LN2_HI) - k * _LN2_LO
    p = _C9 + r * (_C10 + r * (_C11 + r * (_C12 + r * _C13)))
    p = _C5 + r * (_C6 + r * (_C7 + r * (_C8 + r * p)))
    p = 1.0 + r * (1.0 + r * (_C2 + r * (_C3 + r * (_C4 + r * p))))
    value = p * bits_float((int(k) + 1023) << 52)
    if x > _EXP_MAX:
        return math.inf
    if x >= _EXP_MIN:
        return value
    return 0.0 if x < _EXP_MIN else x  # x is NaN
