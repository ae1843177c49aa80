"""The numba kernel against its slow numpy twin, on the richest model.

Both use the same per-trial parameter draws and different random numbers for
the customers, so per-trial differences are paired: their mean must be zero
within 4 standard errors (conftest). Distributions of customers' LTVs are
compared with a two-sample Kolmogorov-Smirnov bound at level 1e-4.
"""

import math

import numpy as np
import pytest

import ltvsim
from ltvsim import _kernels
from ltvsim.dataset import build_dataset, histogram_quantiles
from ltvsim.model import draw_inputs, kernel_inputs
from ltvsim.reference import reference_runs, simulate_trial
from ltvsim.simulate import run_segments

from .conftest import BASE, RICH, assert_mc_close, merge

CURVE = merge(
    BASE,
    simulation={"trials": 30, "customers": 1500, "horizon_months": 48, "seed": 6},
    churn={"model": "curve", "monthly_rates": [0.2, 0.1, 0.05, 0.04, 0.03], "renewal_months": 2},
)
del CURVE["churn"]["monthly_rate"]


@pytest.fixture(scope="module", params=["rich", "curve"])
def runs(request):
    config = ltvsim.load_config({"rich": RICH, "curve": CURVE}[request.param])
    return config, run_segments(config), reference_runs(config)


@pytest.fixture(scope="module")
def pair(runs):
    config, fast, slow = runs
    return build_dataset(config, fast), build_dataset(config, slow)


@pytest.mark.parametrize(
    "name",
    ["ltv_revenue", "ltv_gross_profit", "ltv_discounted", "lifetime_months", "ltv_cac"],
)
def test_per_trial_values_agree(pair, name):
    fast, slow = pair
    assert_mc_close(fast[name].values - slow[name].values, 0.0)


@pytest.mark.parametrize(
    "name", ["survival", "revenue", "cumulative_gross_profit", "paid_back_share"]
)
def test_paths_agree(pair, name):
    fast, slow = pair
    horizon = fast.sizes["period"]
    for t in (1, 5, horizon // 2, horizon - 1):
        difference = fast[name].isel(period=t).values - slow[name].isel(period=t).values
        assert_mc_close(difference, 0.0)


@pytest.mark.parametrize("tier", ["revenue", "gross_profit", "discounted"])
def test_simulation_is_unbiased_for_the_exact_conditional_expectation(pair, tier):
    """Both the kernel and the numpy twin average to E[LTV | inputs], trial by trial."""
    for ds in pair:
        residual = ds[f"ltv_{tier}"].values - ds[f"expected_ltv_{tier}"].values
        assert_mc_close(residual, 0.0)


def test_payback_agrees(pair):
    fast, slow = pair
    a, b = fast.payback_months.values, slow.payback_months.values
    assert not np.isnan(a).any() and not np.isnan(b).any()
    assert_mc_close(a - b, 0.0)


def test_customer_ltv_distributions_agree(runs):
    """Two-sample Kolmogorov-Smirnov on the pooled histograms (same bins), level 1e-4."""
    config, fast, slow = runs
    n = config.trials * config.customers
    fast_cdf = np.cumsum(fast[0].customer_hist)
    slow_cdf = np.cumsum(slow[0].customer_hist)
    assert fast_cdf[-1] == slow_cdf[-1] == n
    distance = np.abs(fast_cdf - slow_cdf).max() / n
    assert distance < math.sqrt(-math.log(1e-4 / 2) / 2) * math.sqrt(2 / n)


def test_histogram_quantiles_match_exact_quantiles_within_a_bin():
    config = ltvsim.load_config(RICH)
    segment = config.segments[0]
    inputs = draw_inputs(config, segment, 0, config.trials)
    args = kernel_inputs(config, segment, inputs)
    rng = np.random.default_rng(0)
    ltv = np.concatenate([simulate_trial(rng, config, args, j)[3] for j in range(config.trials)])
    hist = np.histogram(ltv, _kernels.histogram_edges())[0]
    qs = np.array([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    approx = histogram_quantiles(hist / hist.sum(), qs)
    exact = np.quantile(ltv, qs, method="inverted_cdf")
    edges = _kernels.histogram_edges()
    width = np.diff(np.sign(edges) * np.log1p(np.abs(edges))).max()  # widest bin, in log1p(|x|)
    tolerance = np.expm1(width) * (np.abs(exact) + 1)  # one bin, relative
    assert (np.abs(approx - exact) <= tolerance).all(), (approx, exact)
