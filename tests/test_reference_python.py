"""The numba kernel against its plain-Python twin (``reference.python_reference_simulate``).

Both use the same per-trial parameter draws and independent random numbers for
the customers, so per-trial differences are paired: their mean must be zero
within 4 standard errors (conftest: a correct implementation fails one check
with probability 6e-5; seeds are fixed). Sizes are small because the Python
twin runs at well under a million customer-months per second; a power check
shows that at these sizes a 10% change in churn is caught.
"""

import numpy as np
import pytest

import ltvsim
from ltvsim.reference import python_reference_simulate

from .conftest import BASE, RICH, assert_mc_close, merge, standard_error

SBG_EVENTS = merge(
    RICH, simulation={"trials": 40, "customers": 800, "horizon_months": 60, "seed": 21}
)

CONSTANT_ANNUAL = merge(
    BASE,
    simulation={"trials": 40, "customers": 800, "horizon_months": 72, "seed": 22},
    revenue={"arpa_cv": 0.3},
    churn={"monthly_rate": {"dist": "beta", "mean": 0.03, "sd": 0.008}, "renewal_months": 12},
    discount={"annual_rate": 0.1, "timing": "end"},
)

CURVE = merge(
    BASE,
    simulation={"trials": 40, "customers": 800, "horizon_months": 48, "seed": 23},
    churn={"model": "curve", "monthly_rates": [0.2, 0.1, 0.05, 0.04, 0.03], "renewal_months": 2},
    discount={"annual_rate": 0.1, "timing": "continuous"},
)
del CURVE["churn"]["monthly_rate"]

CONFIGS = {"sbg-events": SBG_EVENTS, "constant-annual": CONSTANT_ANNUAL, "curve": CURVE}


@pytest.fixture(scope="module", params=[*CONFIGS, "segments"])
def pair(request):
    if request.param == "segments":
        config = ltvsim.load_config("configs/segments.toml").with_overrides(
            {"simulation.trials": 30, "simulation.customers": 500, "simulation.horizon_months": 60}
        )
    else:
        config = ltvsim.load_config(CONFIGS[request.param])
    return ltvsim.simulate(config), python_reference_simulate(config)


@pytest.mark.parametrize("name", ["ltv_discounted", "lifetime_months"])
def test_per_trial_values_agree(pair, name):
    fast, slow = pair
    for segment in fast.segment.values:
        difference = fast[name].sel(segment=segment).values - slow[name].sel(segment=segment).values
        assert_mc_close(difference, 0.0)


def test_survival_paths_agree(pair):
    fast, slow = pair
    for t in (1, 12, fast.sizes["period"] - 1):
        difference = fast.survival.isel(period=t).values - slow.survival.isel(period=t).values
        assert_mc_close(difference, 0.0)


def test_a_ten_percent_churn_change_is_detected():
    """Power: the paired comparison above would catch a 10% error in churn."""
    config = ltvsim.load_config(CONSTANT_ANNUAL)
    wrong = config.with_overrides(
        {"churn.monthly_rate": {"dist": "beta", "mean": 0.033, "sd": 0.008}}
    )
    difference = (
        ltvsim.simulate(config).lifetime_months.values
        - python_reference_simulate(wrong).lifetime_months.values
    )
    assert abs(difference.mean()) > 4 * standard_error(difference)


def test_deterministic_model_matches_exactly():
    """No randomness at all (no churn, no volatility, no size spread): equal to rounding."""
    config = ltvsim.load_config(
        merge(
            BASE,
            simulation={"trials": 3, "customers": 50, "horizon_months": 40, "seed": 1},
            churn={"monthly_rate": 0.0},
            revenue={"cost_to_serve_monthly": 25.0},
            expansion={"annual_growth": 0.06, "price_increase": 0.04},
            discount={"annual_rate": 0.1},
        )
    )
    fast, slow = ltvsim.simulate(config), python_reference_simulate(config)
    np.testing.assert_allclose(fast.ltv_discounted, slow.ltv_discounted, rtol=1e-12)
    np.testing.assert_array_equal(fast.lifetime_months, slow.lifetime_months)
    np.testing.assert_array_equal(fast.paid_back_share, slow.paid_back_share)


def test_same_seed_same_result():
    config = ltvsim.load_config(CURVE).with_overrides(
        {"simulation.trials": 3, "simulation.customers": 50}
    )
    a, b = python_reference_simulate(config), python_reference_simulate(config)
    np.testing.assert_array_equal(a.ltv_discounted, b.ltv_discounted)
