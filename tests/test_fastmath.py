"""The kernels' own functions and helpers: exp, histogram bins, survival guides, borrowed views.

All are exact statements, not Monte Carlo ones: exp within 1 ulp of numpy's
(itself within 1 ulp of the true value, so within 2 of the truth) on values
covering the whole range, and the bit-read histogram bin equal to where
``histogram_edges`` puts a value.
"""

import hashlib
import os
import platform
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from ltvsim import _kernels, _purchase_kernel
from ltvsim._fastmath import exp, fma


@njit
def _exp_all(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = exp(x[i])
    return out


@njit
def _bins(x):
    out = np.empty(x.shape[0], np.int64)
    for i in range(x.shape[0]):
        out[i] = _kernels._hist_bin(x[i])
    return out


def test_exp_within_one_ulp_over_its_range():
    rng = np.random.default_rng(3)
    x = np.concatenate(
        [
            rng.normal(0.0, 0.1, 200_000),  # a month's volatility
            rng.normal(0.0, 5.0, 200_000),
            rng.uniform(-708.0, 709.0, 200_000),
            # around the edges of the range reduction, (n + 1/2) ln2/4, and on its grid
            np.arange(-65400, 65500) * np.log(2.0) / 64,
            np.arange(-65400, 65500) * np.log(2.0) / 64 * (1 + 2e-16),
        ]
    )
    x = x[(x >= -708.0) & (x <= 709.0)]
    got, want = _exp_all(x), np.exp(x)
    assert (np.abs(got - want) <= np.spacing(want)).all()


def test_exp_limits():
    x = np.array([0.0, -0.0, -708.5, -1e300, -np.inf, 709.5, 1e300, np.inf, np.nan])
    got = _exp_all(x)
    np.testing.assert_array_equal(got[:8], [1.0, 1.0, 0.0, 0.0, 0.0, np.inf, np.inf, np.inf])
    assert np.isnan(got[8])


@njit
def _fma_all(a, b, c):
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = fma(a[i], b[i], c[i])
    return out


def test_fma_rounds_once():
    """a × b + c, exactly, then rounded to the nearest double (ties to even)."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(2, 20_000))
    c = -a * b * (1 + rng.normal(0.0, 1e-8, 20_000))  # cancellation: a separate product loses it
    exact = [
        float(Fraction(x) * Fraction(y) + Fraction(z)) for x, y, z in zip(a, b, c, strict=True)
    ]
    np.testing.assert_array_equal(_fma_all(a, b, c), exact)
    assert (_fma_all(a, b, c) != a * b + c).mean() > 0.5


x86_only = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="names x86-64 CPUs"
)

# Compiled in a fresh process for a named CPU (numba reads NUMBA_CPU_NAME at start-up).
_ASM_OF_EXP_LOOP = textwrap.dedent(
    """
    from numba import njit
    from ltvsim._fastmath import exp

    @njit
    def exps(a, out):
        for i in range(a.size):
            out[i] = exp(a[i])

    exps.compile("void(float64[::1], float64[::1])")
    print(next(iter(exps.inspect_asm().values())))
    """
)


def _numba_process(script: str, cache, cpu: str | None = None, features: str = "") -> str:
    """The output of ``script`` run by a fresh Python, numba compiling for ``cpu`` (or the host)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    if cpu is not None:
        env.update(NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES=features)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@x86_only
@pytest.mark.parametrize("cpu", ["haswell", "znver3"])
def test_exp_over_an_array_is_simd_code_without_gathers(cpu, tmp_path):
    """On AVX2 CPUs without fast gathers, a table read kept the loop scalar (2.4x slower)."""
    avx2 = "+sse4.2,+popcnt,+avx,+avx2,+fma,+f16c,+bmi,+bmi2"  # whatever the host has
    asm = _numba_process(_ASM_OF_EXP_LOOP, tmp_path, cpu, avx2)
    assert asm.count("ymm") > 50, "the loop is not 4-wide SIMD code"
    assert "gather" not in asm


_BITS_OF_EXP = textwrap.dedent(
    """
    import sys
    import numpy as np
    from numba import njit
    from ltvsim._fastmath import exp

    @njit
    def exps(a):
        out = np.empty_like(a)
        for i in range(a.size):
            out[i] = exp(a[i])
        return out

    x = np.random.default_rng(8).uniform(-700.0, 700.0, 50_000)
    sys.stdout.write(exps(x).tobytes().hex())
    """
)


@x86_only
@pytest.mark.parametrize(
    "cpu, features", [("x86-64", ""), ("sandybridge", "+sse4.2,+popcnt,+avx")], ids=["sse2", "avx"]
)
def test_exp_gives_the_same_bits_on_cpus_without_fma(cpu, features, tmp_path):
    """Without FMA hardware, fma is the C library's call: slower, the same bits."""
    here = _numba_process(_BITS_OF_EXP, tmp_path / "host")
    assert len(here) == 50_000 * 16
    assert _numba_process(_BITS_OF_EXP, tmp_path / cpu, cpu, features) == here


@pytest.mark.parametrize(
    "module, compiled_in",
    [
        (_kernels, ["_fastmath.py", "_rng.py"]),
        (_purchase_kernel, ["_fastmath.py", "_rng.py", "_kernels.py"]),
    ],
    ids=["_kernels", "_purchase_kernel"],
)
def test_kernel_files_change_with_what_they_compile_in(module, compiled_in):
    """A stale numba cache would keep, say, last release's exp under this release's name."""
    package = Path(module.__file__).parent
    digest = hashlib.sha256()
    for name in compiled_in:
        digest.update((package / name).read_bytes())
    expected = digest.hexdigest()
    assert module.COMPILED_IN_SHA256 == expected, (
        f"{module.__name__}.py: set COMPILED_IN_SHA256 = {expected!r}"
    )


def test_histogram_bins_match_the_edges():
    edges = _kernels.histogram_edges()
    assert edges.shape == (_kernels.HIST_BINS + 1,)
    assert (np.diff(edges) > 0).all() and edges[_kernels.HIST_BINS // 2] == 0.0
    rng = np.random.default_rng(4)
    magnitude = np.exp(rng.uniform(-12.0, 27.0, 300_000))
    x = np.concatenate([magnitude, -magnitude, [0.0, 1e13, -1e13, 0.5, -0.49, 1.0]])
    # np.histogram's bins are [a, b): the same, except exactly on a negative edge
    # (this side of zero the kernel's bins are (a, b]), which these values avoid.
    expected = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, _kernels.HIST_BINS - 1)
    np.testing.assert_array_equal(_bins(x), expected)
    width = np.diff(np.log1p(np.abs(edges[_kernels.HIST_BINS // 2 :])))
    assert width.max() == pytest.approx(np.log1p(2.0**-7), rel=1e-9)  # 0.78% of 1 + |x| at most


@njit
def _lifetimes(survival, guide, u):
    out = np.empty(u.shape[0], np.int64)
    for i in range(u.shape[0]):
        out[i] = _kernels._inverse_survival(u[i], survival, guide)
    return out


@njit
def _guide(survival, size):
    guide = np.zeros(size, np.int64)
    _kernels._survival_guide(survival, guide)
    return guide


@pytest.mark.parametrize(
    "survival",
    [
        np.concatenate(([1.0], np.cumprod(40.0 / 41.0 * np.ones(120)))),  # geometric
        np.concatenate(([1.0], np.cumprod((40.0 + np.arange(120)) / (41.0 + np.arange(120))))),
        np.array([1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.0]),  # plateaus and a certain end
        np.array([1.0, 0.999999, 0.999998, 0.2]),  # several renewals in one cell
    ],
    ids=["geometric", "sbg", "plateaus", "crowded"],
)
def test_survival_guide_gives_the_inverse_transform(survival):
    """N = max{n : u <= S[n]}, exactly as a search of the table would give it."""
    rng = np.random.default_rng(5)
    u = np.concatenate([rng.uniform(0.0, 1.0, 100_000), survival[survival < 1], [1 - 2**-53]])
    size = 1
    while size < 4 * len(survival):
        size *= 2
    expected = len(survival) - 1 - np.searchsorted(survival[::-1], u, side="left")
    np.testing.assert_array_equal(_lifetimes(survival, _guide(survival, size), u), expected)


@njit
def _gaps(p, horizon, u):
    no_event = np.empty(horizon + 1)
    guide = np.empty(_kernels._guide_size(horizon + 1), np.int64)
    _kernels._no_event_table(p, no_event, guide)
    return _lifetimes(no_event, guide, u)


@pytest.mark.parametrize("p", [1e-4, 0.015, 0.3, 0.999, 1.0])
def test_plan_change_gaps_are_geometric(p):
    """Months without a plan change: floor(log u / log(1 - p)), capped at the horizon.

    The table's inverse transform gives the closed form's inverse except where
    log u / log(1 - p) rounds across a whole number (none in these draws);
    p = 1 means a change every month (a gap of 0).
    """
    horizon = 120
    rng = np.random.default_rng(6)
    u = np.concatenate([rng.uniform(0.0, 1.0, 100_000), [1 - 2**-53, 2**-53]])
    with np.errstate(divide="ignore"):
        ratio = np.log(u) / np.log1p(-p)
    expected = np.minimum(np.floor(ratio), horizon).astype(np.int64)
    near = (np.abs(ratio - np.round(ratio)) < 1e-9) & (ratio != np.round(ratio))
    got = _gaps(p, horizon, u)
    np.testing.assert_array_equal(got[~near], expected[~near])
    assert near.sum() <= 2


@njit
def _write_through(view, pair):
    view[0] = pair[0][1] + pair[1][2]
    return view.shape[0] + pair[0].shape[0]


@njit
def _borrowing(a, b):
    size = _write_through(_kernels._borrowed(a), _kernels._borrowed((a, b)))
    return size, a[0]


def test_borrowed_views_alias_their_arrays():
    """A borrowed view (no reference count) reads and writes the owner's memory."""
    a, b = np.arange(5.0), np.arange(10, 20)
    size, first = _borrowing(a, b)
    assert size == 10 and first == 1.0 + 12 and a[0] == first
