"""The benchmark's own yardsticks: the ceilings it sets beside the judged figures.

The volatile-path ceiling must time the run's customers; the machine's
share-nothing loops must do the work they are timed for.

``benchmarks/run.py`` bounds simulate()'s ratios with the kernel's volatile
path alone, run for customers whose lifetimes are drawn from the simulated
run's own. If their lifetimes followed another distribution, the ceiling
would time another mix of short and long customers (a customer's fixed
costs weigh more in a short life) than the run it bounds.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np

import ltvsim

from .conftest import BASE, Z, merge

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("ltvsim_benchmark_run", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_lifetimes_like_draws_the_runs_lifetime_distribution():
    bench = _benchmark_module()
    config = merge(
        BASE, simulation={"trials": 20, "customers": 1000, "horizon_months": 60, "seed": 11}
    )
    config["churn"] = {"model": "sbg", "alpha": 1.0, "beta": 20.0}
    ds = ltvsim.simulate(config)
    customers = 1000
    months = bench.lifetimes_like(ds, customers, 200_000, seed=3)
    assert months.min() >= 1 and months.max() <= 60
    # The run's survival is P(active in month t) = P(L > t), pooled over trials:
    # the draws' share with L > t matches it within the draws' binomial error.
    pooled = ds.survival.sel(segment="all").mean("trial").values
    for t in (0, 1, 6, 24, 59):
        share = (months > t).mean()
        se = np.sqrt(pooled[t] * (1 - pooled[t]) / months.size) or 1e-12
        assert abs(share - pooled[t]) <= Z * se + 1e-12, (t, share, pooled[t])
    # and so their mean is the run's mean lifetime, sum over t of P(L > t)
    mean_lifetime = pooled.sum()
    assert abs(months.mean() - mean_lifetime) <= Z * months.std() / np.sqrt(months.size)


def test_machine_loops_do_their_stated_work_whatever_the_threads():
    """The share-nothing loops that put a ceiling on parallel efficiency.

    If LLVM dropped their work, or a chunk read another's data, their
    timings would say nothing about the machine: each must equal a plain
    reference, the same on one and on two threads.
    """
    bench = _benchmark_module()
    loops = bench.machine_parallel_fns(divisor=1000)  # 3 passes, 2,000 steps
    simd, scalar = loops["simd"](1), loops["scalar"](1)
    np.testing.assert_array_equal(loops["simd"](2), simd)
    np.testing.assert_array_equal(loops["scalar"](2), scalar)

    x = np.arange(1024) * 1e-3
    for _ in range(3):
        x = np.exp(x * -0.5) + 0.25
    # _fastmath.exp is within 1 ulp of e**x; three passes keep the sum within 1e-13
    np.testing.assert_allclose(simd, np.full(64, x.sum()), rtol=1e-13)

    mask = (1 << 64) - 1
    for chunk in (0, 63):
        v = chunk + 1
        for _ in range(2000):
            v ^= (v << 13) & mask
            v ^= v >> 7
            v ^= (v << 17) & mask
        assert int(scalar[chunk]) == v


def test_trials_for_error_scales_as_one_over_root_trials():
    bench = _benchmark_module()
    # twice the target at 400 trials: four times the trials
    assert bench.trials_for_error(400, se=2.0, target=1.0) == 1600
    # 1.1x the target: 484 trials, rounded up to a multiple of the step
    assert bench.trials_for_error(400, se=1.1, target=1.0, step=100) == 500
    # far below the target: never fewer than one step
    assert bench.trials_for_error(400, se=0.01, target=1.0, step=100) == 100
    # exactly at the target: the same trials
    assert bench.trials_for_error(300, se=1.0, target=1.0, step=100) == 300
