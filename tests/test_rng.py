"""The in-kernel generators against their distributions.

Kolmogorov-Smirnov tests at a fixed seed; a correct generator fails one with
probability equal to the level, 1e-4 here. Moments are checked within 4
standard errors.
"""

import math

import numpy as np
import pytest
from scipy import stats

from ltvsim import _rng

LEVEL = 1e-4


def test_uniforms_are_uniform_and_open():
    u = _rng.stream_uniforms(_rng.stream_key(1, "test"), 0, 1_000_000)
    assert 0.0 < u.min() and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > LEVEL


def test_streams_differ_by_name_and_seed():
    a = _rng.stream_uniforms(_rng.stream_key(1, "a"), 0, 1000)
    b = _rng.stream_uniforms(_rng.stream_key(1, "b"), 0, 1000)
    c = _rng.stream_uniforms(_rng.stream_key(2, "a"), 0, 1000)
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / math.sqrt(1000)
    assert abs(np.corrcoef(a, c)[0, 1]) < 4 / math.sqrt(1000)
    # counter-based: index i of a stream does not depend on where the slice starts
    np.testing.assert_array_equal(
        _rng.stream_uniforms(_rng.stream_key(1, "a"), 500, 10), a[500:510]
    )


def test_stream_keys_are_stable_across_processes_and_machines():
    # BLAKE2b of the name, not Python's salted hash(): this value is fixed forever;
    # changing it changes every result ever published with a seed.
    assert int(_rng.stream_key(42, "customers", "all")) == 13285523214241548525
    assert _rng.stream_key(0, "x") != _rng.stream_key(0, "y")


@pytest.mark.parametrize(
    "draw",
    [
        _rng.normals,  # sequential: next_normal
        lambda key, n: _rng.counter_normals(key, 0, n),  # number t from counter t
    ],
    ids=["sequential", "counter"],
)
def test_ziggurat_normals(draw):
    z = draw(np.uint64(12345), 2_000_000)
    assert stats.kstest(z, "norm").pvalue > LEVEL
    n = z.size
    assert abs(z.mean()) < 4 / math.sqrt(n)
    assert abs(z.var() - 1) < 4 * math.sqrt(2 / n)
    # the tail beyond R = 3.4426 has its normal mass (the tail algorithm runs)
    tail = (np.abs(z) > 3.442619855899).mean()
    expected = 2 * stats.norm.sf(3.442619855899)
    assert abs(tail - expected) < 4 * math.sqrt(expected / n)


@pytest.mark.parametrize("shape", [0.3, 1.0, 4.5])
def test_gamma(shape):
    g = _rng.gammas(np.uint64(7), shape, 500_000)
    assert stats.kstest(g, stats.gamma(shape).cdf).pvalue > LEVEL


def _unmix64(z: int) -> int:
    """Inverse of the SplitMix64 finaliser (xor-shifts and odd multipliers invert)."""
    mask = 2**64 - 1

    def unshift(z, k):
        out = z
        for _ in range(64 // k + 1):
            out = z ^ (out >> k)
        return out & mask

    z = unshift(z, 31)
    z = (z * pow(0x94D049BB133111EB, -1, 2**64)) & mask
    z = unshift(z, 27)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 2**64)) & mask
    return unshift(z, 30)


def test_uniform_never_reaches_one_or_zero():
    """The largest and smallest 53-bit draws stay inside the open interval (0, 1)."""
    from ltvsim._rng import GOLDEN_GAMMA, mix64, next_uniform

    for top_bits in (2**64 - 1, 0):
        state = (_unmix64(top_bits) - int(GOLDEN_GAMMA)) % 2**64
        assert int(mix64(np.uint64((state + int(GOLDEN_GAMMA)) % 2**64))) == top_bits
        _, u = next_uniform(np.uint64(state))
        assert 0.0 < u < 1.0, u


def test_counter_normals_depend_on_their_counter_only():
    """Number t is the same whichever slice it is drawn in, edge cases included."""
    key = _rng.stream_key(3, "path")
    z = _rng.counter_normals(key, 0, 20_000)
    np.testing.assert_array_equal(_rng.counter_normals(key, 7_000, 50), z[7_000:7_050])
    # a draw leaves its layer's rectangle with probability 1 - ratio (2.76% on average)
    # and takes the edge route: that route runs, as often as it should
    edge = np.array([np.isnan(_rng.counter_normal(key, t)) for t in range(20_000)])
    expected = edge.size * (1 - _rng._ZIG_RATIO.mean())
    assert abs(edge.sum() - expected) < 4 * math.sqrt(expected)
    assert np.isfinite(z).all()
