"""Extreme but valid parameters give finite, correct results.

Each case has a closed form (formulas.constant_churn_ltv, cash at the start of
the month). With no churn or certain churn every customer's path is
deterministic, so the result must match to floating-point accuracy
(relative 1e-12: sums of up to 1200 terms); with random churn the mean of
per-trial values must match within Z = 4 Monte Carlo standard errors.
"""

import numpy as np
import pytest

import ltvsim
from ltvsim.formulas import constant_churn_ltv, monthly_discount_rate
from ltvsim.simulate import _check_finite, _empty_run

from .conftest import BASE, assert_mc_close, merge

EXACT = 1e-12
# NaN means "never" (payback), "not used" (inputs), "not defined" (retention, no one left)
NAN_ALLOWED = ("payback_months", "input_", "nrr", "grr", "long_run_nrr")


def run(**sections):
    ds = ltvsim.simulate(merge(BASE, **sections))
    for name, var in ds.data_vars.items():
        assert not np.isinf(var.values).any(), name
        if not name.startswith(NAN_ALLOWED):
            assert not np.isnan(var.values).any(), name
    return ds.sel(segment="all")


def ltv(arpa=1000.0, margin=0.8, churn=0.02, horizon=120, annual_discount=0.0):
    d = float(monthly_discount_rate(annual_discount))
    return constant_churn_ltv(arpa, margin, churn, 0.0, d, horizon)


def test_no_churn_pays_every_month_of_the_horizon():
    ds = run(churn={"monthly_rate": 0.0}, discount={"annual_rate": 0.1})
    np.testing.assert_array_equal(ds.survival.values, 1.0)
    np.testing.assert_allclose(ds.ltv_gross_profit, 800.0 * 120, rtol=EXACT)
    np.testing.assert_allclose(ds.ltv_discounted, ltv(churn=0.0, annual_discount=0.1), rtol=EXACT)
    np.testing.assert_allclose(ds.payback_months, 12000 / 800, rtol=EXACT)
    np.testing.assert_array_equal(ds.lifetime_months, 120.0)


def test_certain_churn_pays_month_zero_only():
    ds = run(churn={"monthly_rate": 1.0})
    np.testing.assert_array_equal(ds.survival.isel(period=0), 1.0)
    np.testing.assert_array_equal(ds.survival.isel(period=slice(1, None)), 0.0)
    np.testing.assert_allclose(ds.ltv_gross_profit, 800.0, rtol=EXACT)
    assert np.isnan(ds.payback_months).all()  # CAC 12000 is never recovered
    assert np.isnan(ds.payback_months_band).all()


@pytest.mark.parametrize("scale", [1e-6, 1e9], ids=["tiny", "huge"])
def test_money_scale_does_not_matter(scale):
    base = run(churn={"monthly_rate": 0.0})
    scaled = run(
        churn={"monthly_rate": 0.0},
        acquisition={"cac": 12000 * scale},
        revenue={"arpa_monthly": 1000 * scale},
    )
    np.testing.assert_allclose(scaled.ltv_gross_profit, base.ltv_gross_profit * scale, rtol=EXACT)
    np.testing.assert_allclose(scaled.ltv_cac, base.ltv_cac, rtol=EXACT)
    np.testing.assert_allclose(scaled.payback_months, base.payback_months, rtol=EXACT)


def test_one_month_horizon():
    ds = run(simulation={"horizon_months": 1}, discount={"annual_rate": 0.2})
    assert ds.sizes["period"] == 1
    np.testing.assert_allclose(ds.ltv_gross_profit, 800.0, rtol=EXACT)
    np.testing.assert_allclose(ds.ltv_discounted, 800.0, rtol=EXACT)  # month 0 is undiscounted
    np.testing.assert_array_equal(ds.lifetime_months, 1.0)


def test_hundred_year_horizon_matches_the_closed_form():
    sim = {"horizon_months": 1200, "trials": 20, "customers": 2000}
    ds = run(simulation=sim, discount={"annual_rate": 0.08})
    assert_mc_close(ds.ltv_gross_profit, ltv(horizon=1200))
    assert_mc_close(ds.ltv_discounted, ltv(horizon=1200, annual_discount=0.08))
    # after 100 years at 2% a month nobody is left (0.98^1199 ~ 3e-11 per customer)
    assert float(ds.survival.isel(period=-1).max()) == 0.0


def test_one_customer_one_trial():
    ds = run(simulation={"trials": 1, "customers": 1})
    lifetime = float(ds.lifetime_months[0])
    assert lifetime.is_integer() and 1 <= lifetime <= 120
    np.testing.assert_allclose(ds.ltv_gross_profit, 800.0 * lifetime, rtol=EXACT)
    survival = ds.survival.values[0]
    assert set(np.unique(survival)) <= {0.0, 1.0}  # one customer: alive or not
    # one trial: every quantile of the band is that trial's value
    np.testing.assert_array_equal(
        ds.ltv_gross_profit_band.values, np.full(ds.sizes["quantile"], ds.ltv_gross_profit[0])
    )


def test_one_trial_with_uncertain_inputs():
    ds = run(
        simulation={"trials": 1},
        acquisition={"cac": {"dist": "lognormal", "mean": 12000, "sd": 3000}},
        churn={"monthly_rate": {"dist": "beta", "mean": 0.02, "sd": 0.005}},
    )
    assert ds.sizes["trial"] == 1
    assert np.isfinite(ds.ltv_cac_band).all()


def test_unbounded_money_distribution_over_a_century():
    # the magnitude check uses the largest possible draw, which must stay finite
    arpa = {"dist": "lognormal", "mean": 1000, "sd": 3000}
    ds = run(simulation={"horizon_months": 1200, "trials": 8}, revenue={"arpa_monthly": arpa})
    assert np.isfinite(ds.ltv_discounted).all()


@pytest.mark.parametrize(
    "sections",
    [
        {"churn": {"model": "sbg", "alpha": 1e-320, "beta": 2.5}},  # NaN closed form
        {"acquisition": {"cac": 5e-324}},  # LTV:CAC beyond float64
        {"costs": {"retention_monthly": 9e306}},  # sums beyond float64
        {
            "expansion": {"price_increase": 10, "price_increase_every_months": 1},
            "simulation": {"horizon_months": 1200},  # 11^1199
        },
    ],
    ids=["subnormal alpha", "subnormal cac", "huge cost", "11x a month"],
)
def test_values_beyond_floating_point_are_config_errors(sections):
    # found by tests/test_fuzz.py: each once produced NaN or inf instead of an error
    raw = merge(BASE, **sections)
    if "churn" in sections:
        del raw["churn"]["monthly_rate"]
    with pytest.raises(ltvsim.ConfigError) as err:
        ltvsim.load_config(raw)
    assert next(iter(sections)) in str(err.value)


def test_overflow_safety_net_names_the_first_trial_that_overflowed():
    # Behind the magnitude check above (no valid config reaches it): the
    # kernel's sums are checked once per run, so the error must still say
    # which trial overflowed, counted from the runs' first trial.
    config = ltvsim.load_config(merge(BASE, simulation={"trials": 10}))
    run = _empty_run(config, config.segments[0])
    run.revenue[7, 3] = np.inf
    run.revenue[9, 0] = np.nan
    with pytest.raises(ltvsim.ConfigError, match=r"first in trial 107\)") as err:
        _check_finite([run], first=100)
    assert err.value.key == "expansion"
    run.revenue[:] = 0.0
    _check_finite([run], first=100)  # finite: no error
