"""Reproducible random streams usable inside numba kernels.

Every random number is a pure function of (seed, stream, index, draw number):
a stream key is hashed from its parts with the SplitMix64 finaliser
(Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014), then SplitMix64 generates the draws. Nothing depends on which
thread runs a trial or how trials are split into blocks, and no global
generator state is touched.
"""

import hashlib

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
def next_uniform(state):
    """Advance a SplitMix64 state; return (new state, uniform in the open interval (0, 1))."""
    state = state + GOLDEN_GAMMA
    return state, ((mix64(state) >> _S11) + 0.5) * _INV_2_53


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
