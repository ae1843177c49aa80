"""Same seed -> bit-identical results, whatever the threads or the block size."""

import numba
import numpy as np
import pytest
import xarray as xr

import ltvsim

from .conftest import BASE, CONFIGS, merge

RICH = merge(
    BASE,
    simulation={"trials": 24, "customers": 5000, "seed": 99},
    revenue={"arpa_cv": 0.5, "gross_margin": {"dist": "beta", "mean": 0.8, "sd": 0.05}},
    churn={"model": "sbg", "alpha": {"dist": "gamma", "mean": 1.0, "sd": 0.2}, "beta": 3.0},
    expansion={
        "annual_volatility": 0.3,
        "upsell_monthly_probability": 0.02,
        "upsell_size": 0.2,
        "downgrade_monthly_probability": 0.01,
        "downgrade_size": 0.1,
    },
)
del RICH["churn"]["monthly_rate"]


@pytest.fixture(scope="module")
def reference():
    return ltvsim.simulate(RICH)


@pytest.mark.parametrize("threads", [1, numba.config.NUMBA_NUM_THREADS])
def test_thread_count_does_not_change_a_bit(reference, threads):
    xr.testing.assert_identical(ltvsim.simulate(RICH, threads=threads), reference)


@pytest.mark.parametrize("block_trials", [1, 5, 24])
def test_block_size_does_not_change_a_bit(reference, block_trials):
    xr.testing.assert_identical(ltvsim.simulate(RICH, block_trials=block_trials), reference)


def test_more_customers_than_one_chunk_is_still_reproducible():
    cfg = merge(RICH, simulation={"trials": 3, "customers": 10_000})
    one = ltvsim.simulate(cfg, threads=1, block_trials=1)
    two = ltvsim.simulate(cfg, threads=numba.config.NUMBA_NUM_THREADS)
    xr.testing.assert_identical(one, two)


def test_trials_are_a_prefix_of_a_longer_run(reference):
    """Trial i depends only on (seed, i): a shorter run is the start of a longer one."""
    short = ltvsim.simulate(RICH, trials=10)
    for name in ("ltv_discounted", "payback_months", "input_revenue_gross_margin"):
        np.testing.assert_array_equal(short[name].values, reference[name].values[:10])


def test_another_seed_gives_other_numbers(reference):
    other = ltvsim.simulate(RICH, seed=100)
    assert not np.array_equal(other.ltv_discounted.values, reference.ltv_discounted.values)


def test_seed_is_stored(reference):
    assert reference.attrs["seed"] == 99
    assert ltvsim.load_config(RICH).to_json() == reference.attrs["config"]


def test_progress_counts_every_trial_of_every_segment_once(tmp_path):
    """Run here, blocks write into the whole run's arrays; progress still counts to the end.

    The same counts as a checkpointed run, whose blocks are kept one by one.
    """
    segments = CONFIGS / "segments.toml"
    kwargs = {"trials": 10, "customers": 200, "block_trials": 4}
    here, kept = [], []
    ds = ltvsim.simulate(
        segments, progress=lambda done, total: here.append((done, total)), **kwargs
    )
    checkpointed = ltvsim.simulate(
        segments,
        progress=lambda done, total: kept.append((done, total)),
        checkpoint=tmp_path / "run.partial",
        **kwargs,
    )
    xr.testing.assert_identical(ds, checkpointed)
    total = 10 * 3  # trial-segments: 3 segments
    for calls in (here, kept):
        done = [d for d, _ in calls]
        assert done == sorted(done) and done[-1] == total
        assert {t for _, t in calls} == {total}
