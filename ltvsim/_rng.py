"""Reproducible random streams usable inside numba kernels.

Every random number is a pure function of (seed, stream, index, draw number):
a stream key is hashed from its parts with the SplitMix64 finaliser
(Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014), then SplitMix64 generates the draws. Nothing depends on which
thread runs a trial or how trials are split into blocks, and no global
generator state is touched.
"""

import hashlib
import math

import numpy as np
from numba import njit

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0
_BELOW_ONE = 1.0 - 2.0**-53  # the largest double below 1


@njit(inline="always", cache=True)
def mix64(z):
    """SplitMix64 finaliser: a bijective avalanche of 64 bits."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always", cache=True)
def derive(key, index):
    """Key of sub-stream ``index`` of stream ``key``."""
    return mix64(np.uint64(key) ^ mix64(np.uint64(index) + GOLDEN_GAMMA))


@njit(inline="always", cache=True)
def next_u64(state):
    state = state + GOLDEN_GAMMA
    return state, mix64(state)


@njit(inline="always", cache=True)
def next_uniform(state):
    """Advance a SplitMix64 state; return (new state, uniform in the open interval (0, 1))."""
    state, z = next_u64(state)
    # via int64: the top 53 bits fit, and a signed conversion is one instruction.
    # The top value, 1 - 2^-54, rounds to 1.0: clamp it to the largest double below 1.
    return state, min((np.int64(z >> _S11) + 0.5) * _INV_2_53, _BELOW_ONE)


@njit(cache=True)
def stream_keys(key, first, count):
    """Keys of sub-streams ``first … first+count-1`` of stream ``key``."""
    out = np.empty(count, np.uint64)
    key = np.uint64(key)
    for i in range(count):
        out[i] = derive(key, first + i)
    return out


@njit(cache=True)
def stream_uniforms(key, first, count):
    """One uniform for each index ``first … first+count-1`` of stream ``key``."""
    out = np.empty(count)
    key = np.uint64(key)
    for i in range(count):
        _, out[i] = next_uniform(derive(key, first + i))
    return out


def stream_key(seed: int, *names: str) -> np.uint64:
    """Stable 64-bit key of a named stream under ``seed``.

    Names are hashed with BLAKE2b (not Python's salted ``hash``) so keys are the
    same in every process and on every machine.
    """
    key = np.uint64(seed)
    for name in names:
        digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
        key = np.uint64(derive(key, np.uint64(int.from_bytes(digest, "little"))))
    return key


# --- Variates -------------------------------------------------------------
# Standard normals by the ziggurat method, 128 layers, in Doornik's ZIGNOR
# form ("An Improved Ziggurat Method to Generate Normal Random Samples", 2005;
# Marsaglia & Tsang, J. Stat. Software 5(8), 2000).
_ZIG_LAYERS = 128
_ZIG_R = 3.442619855899
_ZIG_V = 9.91256303526217e-3


def _ziggurat_tables():
    x = np.zeros(_ZIG_LAYERS + 1)
    f = np.exp(-0.5 * _ZIG_R * _ZIG_R)
    x[0] = _ZIG_V / f
    x[1] = _ZIG_R
    for i in range(2, _ZIG_LAYERS):
        x[i] = np.sqrt(-2.0 * np.log(_ZIG_V / x[i - 1] + f))
        f = np.exp(-0.5 * x[i] * x[i])
    ratio = x[1:] / x[:-1]
    return x, ratio, np.exp(-0.5 * x * x)


# Layer edges x[i] (falling; x[128] = 0), rectangle ratios x[i+1] / x[i] and
# the density (without its constant) at the edges, f[i] = exp(-x[i]^2 / 2).
_ZIG_X, _ZIG_RATIO, _ZIG_F = _ziggurat_tables()
_LOW7 = np.uint64(127)


@njit(inline="always", cache=True)
def _layer_and_uniform(z):
    """A ziggurat draw's layer (low 7 bits of ``z``) and signed uniform in (-1, 1) (top 53)."""
    return np.int64(z & _LOW7), 2.0 * ((np.int64(z >> _S11) + 0.5) * _INV_2_53) - 1.0


@njit(inline="always", cache=True)
def next_normal(state):
    """Advance ``state``; return (new state, a standard normal draw).

    The common case (97.2% of draws: inside a rectangle of the ziggurat)
    is inlined; wedges and the tail go to ``_normal_edge``.
    """
    state, z = next_u64(state)
    i, u = _layer_and_uniform(z)
    if abs(u) < _ZIG_RATIO[i]:
        return state, u * _ZIG_X[i]
    return _normal_edge(state, u, i)


@njit(cache=True)
def _normal_edge(state, u, i):
    """Finish a ziggurat draw that fell outside its layer's rectangle."""
    while True:
        if i == 0:  # the tail beyond R, by Marsaglia's exponential method
            while True:
                state, a = next_uniform(state)
                state, b = next_uniform(state)
                x = np.log(a) / _ZIG_R
                if -2.0 * np.log(b) >= x * x:
                    return state, (x - _ZIG_R) if u < 0.0 else (_ZIG_R - x)
        # the wedge: accept x if a uniform height between f at the layer's two
        # edges falls below the density at x (one exponential: Doornik's form)
        x = u * _ZIG_X[i]
        state, w = next_uniform(state)
        if _ZIG_F[i + 1] + w * (_ZIG_F[i] - _ZIG_F[i + 1]) < math.exp(-0.5 * x * x):
            return state, x
        # rejected: a fresh draw, from the top
        state, z = next_u64(state)
        i, u = _layer_and_uniform(z)
        if abs(u) < _ZIG_RATIO[i]:
            return state, u * _ZIG_X[i]


@njit(inline="always", cache=True)
def _counter_draw(key, t):
    """Layer and signed uniform of counter ``t`` of stream ``key`` (draw t+1 of next_u64)."""
    return _layer_and_uniform(mix64(key + np.uint64(t + 1) * GOLDEN_GAMMA))


@njit(inline="always", cache=True)
def counter_normal(key, t):
    """Normal number ``t`` of stream ``key``, or NaN when the ziggurat needs more (2.8%).

    A pure function of (key, t) without a branch, so a loop over t runs as SIMD
    code, where ``next_normal``'s state carries from one draw to the next. Where
    it returns NaN, ``finish_counter_normal`` gives the number.
    """
    i, u = _counter_draw(key, t)
    return u * _ZIG_X[i] if abs(u) < _ZIG_RATIO[i] else math.nan


@njit(cache=True)
def counter_normal_edge(key, t):
    """Normal number ``t`` of stream ``key`` where ``counter_normal`` gave NaN.

    The ziggurat's wedge and tail tests, with their further uniforms from
    sub-stream t, so that every number stays a function of (key, t) alone.
    """
    i, u = _counter_draw(key, t)
    return _normal_edge(derive(key, t), u, i)[1]


@njit(inline="always", cache=True)
def finish_counter_normal(key, t, z):
    """Normal number ``t`` of stream ``key``, given ``z = counter_normal(key, t)``.

    ``z`` itself, or, where it is NaN, the edge draw. A separate step so that
    a loop of ``counter_normal`` alone can run as SIMD code first.
    """
    return z if z == z else counter_normal_edge(key, t)


@njit(cache=True)
def counter_normals(key, first, count):
    """Normal numbers ``first … first+count-1`` of stream ``key`` (for tests)."""
    out = np.empty(count)
    for k in range(count):
        out[k] = counter_normal(key, first + k)
    for k in range(count):
        out[k] = finish_counter_normal(key, first + k, out[k])
    return out


@njit(cache=True)
def next_gamma(state, shape):
    """Advance ``state``; return (new state, a Gamma(shape, 1) draw).

    Marsaglia & Tsang (2000), with the ``U^(1/shape)`` boost for shape < 1 and
    their squeeze, which accepts ~98% of draws without computing a logarithm.
    """
    boost = 1.0
    if shape < 1.0:
        state, u = next_uniform(state)
        boost = u ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    while True:
        state, z = next_normal(state)
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        state, u = next_uniform(state)
        z2 = z * z
        if u < 1.0 - 0.0331 * z2 * z2 or np.log(u) < 0.5 * z2 + d - d * v + d * np.log(v):
            return state, d * v * boost


@njit(cache=True)
def normals(key, count):
    """``count`` standard normals from stream ``key`` (for tests of the generator)."""
    out = np.empty(count)
    state = np.uint64(key)
    for i in range(count):
        state, out[i] = next_normal(state)
    return out


@njit(cache=True)
def gammas(key, shape, count):
    """``count`` Gamma(shape) draws from stream ``key`` (for tests of the generator)."""
    out = np.empty(count)
    state = np.uint64(key)
    for i in range(count):
        state, out[i] = next_gamma(state, shape)
    return out
