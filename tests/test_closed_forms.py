"""The simulation converges to every closed form of DOMAIN.md.

Tolerances: ``assert_mc_close`` (4 MC standard errors of the per-trial
values, see conftest). Deterministic cases (no churn) are compared to 1e-9
relative: floating-point sums only.
"""

import math

import numpy as np
import pytest

import ltvsim
from ltvsim import formulas
from ltvsim.model import discount_weights, kernel_inputs

from .conftest import BASE, assert_mc_close, merge


def all_segment(ds, name):
    return ds[name].sel(segment="all").values


def test_seed_worked_example_subscription():
    """$1,000/month, 80% margin, 2% churn, no discount, long horizon -> $40,000."""
    ds = ltvsim.simulate("configs/seed-formula.toml")
    horizon_factor = 1 - 0.98**1200  # 3e-11: the horizon is "forever"
    assert formulas.subscription_ltv(1000, 0.8, 0.02) == pytest.approx(40000, abs=1e-9)
    assert_mc_close(all_segment(ds, "ltv_gross_profit"), 40000 * horizon_factor)
    assert_mc_close(all_segment(ds, "ltv_revenue"), 50000 * horizon_factor)
    assert_mc_close(all_segment(ds, "ltv_cac"), 40000 / 12000 * horizon_factor)
    assert_mc_close(all_segment(ds, "lifetime_months"), 50 * horizon_factor)
    # no discount: the discounted tier equals the gross-profit tier exactly
    np.testing.assert_allclose(
        all_segment(ds, "ltv_discounted"), all_segment(ds, "ltv_gross_profit"), rtol=1e-12
    )


@pytest.mark.parametrize("cac, expected", [(12000, 15.0), (10000, 12.5), (500, 0.625)])
def test_churn_free_payback_is_the_simple_formula(cac, expected):
    cfg = merge(BASE, acquisition={"cac": cac}, churn={"monthly_rate": 0.0})
    ds = ltvsim.simulate(cfg, trials=3, customers=50)
    assert formulas.simple_payback_months(cac, 1000, 0.8) == pytest.approx(expected)
    np.testing.assert_allclose(all_segment(ds, "payback_months"), expected, rtol=1e-12)
    # every customer pays back in the month the cohort does
    paid = ds.paid_back_share.sel(segment="all").values
    month = math.ceil(expected) - 1
    assert (paid[:, month] == 1.0).all() and (paid[:, :month] == 0.0).all()


def test_payback_never_within_horizon_is_nan():
    cfg = merge(BASE, churn={"monthly_rate": 0.2}, acquisition={"cac": 50000})
    ds = ltvsim.simulate(cfg, trials=5, customers=100)
    assert np.isnan(all_segment(ds, "payback_months")).all()


@pytest.mark.parametrize(
    "growth, volatility, discount, horizon",
    [(0.0, 0.0, 0.10, 120), (0.12, 0.0, 0.08, 60), (0.12, 0.40, 0.08, 36), (-0.2, 0.3, 0.0, 240)],
)
def test_constant_churn_with_growth_discount_and_horizon(growth, volatility, discount, horizon):
    cfg = merge(
        BASE,
        simulation={"horizon_months": horizon},
        expansion={"annual_growth": growth, "annual_volatility": volatility},
        discount={"annual_rate": discount},
    )
    ds = ltvsim.simulate(cfg)
    g = float(formulas.monthly_growth_rate(growth))
    d = float(formulas.monthly_discount_rate(discount))
    assert_mc_close(
        all_segment(ds, "ltv_discounted"),
        formulas.constant_churn_ltv(1000, 0.8, 0.02, g, d, horizon),
    )
    assert_mc_close(
        all_segment(ds, "ltv_gross_profit"),
        formulas.constant_churn_ltv(1000, 0.8, 0.02, g, 0.0, horizon),
    )
    survival = ds.survival.sel(segment="all").values
    for t in (1, horizon // 2, horizon - 1):
        assert_mc_close(survival[:, t], 0.98**t)


def test_each_discount_timing_shifts_cash_by_its_fraction_of_a_month():
    r = 0.25
    v = 1 / (1 + float(formulas.monthly_discount_rate(r)))
    delta = -math.log(v)
    factor = {"start": 1.0, "middle": v**0.5, "end": v, "continuous": (1 - v) / delta}
    results = {}
    for timing in factor:
        cfg = merge(BASE, discount={"annual_rate": r, "timing": timing})
        results[timing] = ltvsim.simulate(cfg)
        assert results[timing].attrs["discount_timing"] == timing
    start = all_segment(results["start"], "ltv_discounted")
    d = 1 / v - 1
    assert_mc_close(start, formulas.constant_churn_ltv(1000, 0.8, 0.02, 0, d, 120))
    for timing, f in factor.items():
        # same seed, same customers: the timing only rescales the discounted tier
        np.testing.assert_allclose(
            all_segment(results[timing], "ltv_discounted"), f * start, rtol=1e-12
        )


def test_continuous_timing_weight_is_the_month_average():
    w = discount_weights(np.array([0.1]), 3, "continuous")[0]
    v = 1.1 ** (-1 / 12)
    for t in range(3):
        # midpoint rule on v^s over [t, t+1] with many points
        s = np.linspace(t, t + 1, 200001)
        assert w[t] == pytest.approx(np.trapezoid(v**s, s), rel=1e-9)


def test_annual_rates_convert_by_compounding_not_division():
    cfg = ltvsim.load_config(
        {
            **BASE,
            "churn": {"model": "constant", "annual_rate": 0.22},
            "discount": {"annual_rate": 0.22},
        }
    )
    segment = cfg.segments[0]
    inputs = {
        p: np.array([float(v)])
        for p, v in segment.values.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    args = kernel_inputs(cfg, segment, inputs)
    monthly_churn = args["churn_per_renewal"][0]
    assert monthly_churn == pytest.approx(1 - 0.78 ** (1 / 12), rel=1e-12)
    assert abs(monthly_churn - 0.22 / 12) > 1e-3
    d = 1 / args["weights"][0, 1] - 1
    assert d == pytest.approx(1.22 ** (1 / 12) - 1, rel=1e-12)
    # and in the simulation: 78% survive a year, not (1 - 0.22/12)^12 = 80.1%
    ds = ltvsim.simulate(cfg, trials=40, customers=5000)
    s12 = ds.survival.sel(segment="all", period=12).values
    assert_mc_close(s12, 0.78)
    assert abs(s12.mean() - (1 - 0.22 / 12) ** 12) > 20 * s12.std() / math.sqrt(s12.size)


def test_sbg_survival_and_rising_retention():
    alpha, beta = 0.7, 2.5
    cfg = merge(BASE, churn={"model": "sbg", "alpha": alpha, "beta": beta})
    del cfg["churn"]["monthly_rate"]
    ds = ltvsim.simulate(cfg, trials=60, customers=3000)
    survival = ds.survival.sel(segment="all").values
    t = np.array([1, 2, 5, 12, 40, 119])
    expected = formulas.sbg_survival(alpha, beta, t)
    for ti, ei in zip(t, expected, strict=True):
        assert_mc_close(survival[:, ti], ei)
    retention = formulas.sbg_retention_rate(alpha, beta, np.arange(1, 120))
    assert (np.diff(retention) > 0).all()
    # simulated cohort retention rises too: month 1 vs months 30-40 (far apart in MC error)
    pooled = survival.mean(axis=0)
    assert pooled[1] / pooled[0] < pooled[40] / pooled[39] - 0.05
    # LTV: margin x ARPA x sum of survival (finite horizon, no discount)
    expected_ltv = 800 * formulas.sbg_survival(alpha, beta, np.arange(120)).sum()
    assert_mc_close(all_segment(ds, "ltv_gross_profit"), expected_ltv)


def test_sbg_discounted_lifetime_matches_hypergeometric_form():
    """Annual renewals, annual discounting: LTV = 12 × monthly GP × DEL (Fader & Hardie)."""
    alpha, beta, r = 1.2, 3.0, 0.15
    cfg = merge(
        BASE,
        simulation={"horizon_months": 1200},
        churn={"model": "sbg", "alpha": alpha, "beta": beta, "renewal_months": 12},
        discount={"annual_rate": r},
    )
    del cfg["churn"]["monthly_rate"]
    ds = ltvsim.simulate(cfg, trials=60, customers=3000)
    # within a contract year: 12 payments, discounted monthly from the renewal date
    v = 1 / (1 + float(formulas.monthly_discount_rate(r)))
    year = sum(v**m for m in range(12))
    expected = 800 * year * formulas.sbg_discounted_expected_lifetime(alpha, beta, r)
    # truncation at 100 years: S(100) (1.15)^-100 < 1e-7 relative; far below MC error
    assert_mc_close(all_segment(ds, "ltv_discounted"), expected)


def test_renewal_every_twelve_months_is_a_step_survival():
    cfg = merge(BASE, churn={"monthly_rate": 0.02, "renewal_months": 12})
    ds = ltvsim.simulate(cfg)
    survival = ds.survival.sel(segment="all").values
    # nobody leaves within a contract year
    assert (survival[:, :12] == 1.0).all()
    assert (survival[:, 12:24] == survival[:, [12]]).all()
    for t in (12, 36, 119):
        assert_mc_close(survival[:, t], 0.98 ** (12 * (t // 12)))
    expected = 800 * sum(0.98 ** (12 * (t // 12)) for t in range(120))
    assert_mc_close(all_segment(ds, "ltv_gross_profit"), expected)


def test_curve_churn_by_tenure():
    rates = [0.10, 0.05, 0.03, 0.02]
    cfg = merge(BASE, churn={"model": "curve", "monthly_rates": rates})
    del cfg["churn"]["monthly_rate"]
    ds = ltvsim.simulate(cfg)
    hazard = np.array([rates[min(t, 3)] for t in range(120)])
    expected_survival = np.concatenate([[1.0], np.cumprod(1 - hazard)[:-1]])
    survival = ds.survival.sel(segment="all").values
    for t in (1, 2, 3, 4, 50):
        assert_mc_close(survival[:, t], expected_survival[t])
    assert_mc_close(all_segment(ds, "ltv_gross_profit"), 800 * expected_survival.sum())


def test_expansion_events_and_price_increases_in_expectation():
    up_p, up, dn_p, dn, g, inc = 0.05, 0.3, 0.03, 0.2, 0.06, 0.07
    cfg = merge(
        BASE,
        churn={"monthly_rate": 0.0},
        revenue={"arpa_cv": 0.8},
        expansion={
            "annual_growth": g,
            "annual_volatility": 0.25,
            "upsell_monthly_probability": up_p,
            "upsell_size": up,
            "downgrade_monthly_probability": dn_p,
            "downgrade_size": dn,
            "price_increase": inc,
            "price_increase_every_months": 12,
        },
    )
    ds = ltvsim.simulate(cfg, trials=60)
    step = (1 + g) ** (1 / 12) * (1 + up_p * up - dn_p * dn)  # at most one plan change a month
    revenue = ds.revenue.sel(segment="all").values
    for t in (0, 1, 11, 12, 60, 119):
        assert_mc_close(revenue[:, t], 1000 * step**t * (1 + inc) ** (t // 12))


def test_starting_mrr_spread_keeps_the_mean():
    cfg = merge(BASE, revenue={"arpa_cv": 1.5}, churn={"monthly_rate": 0.0})
    ds = ltvsim.simulate(cfg, trials=60)
    assert_mc_close(ds.revenue.sel(segment="all", period=0).values, 1000.0)
    # spread shows in the customers' LTV quantiles, not in the mean
    band = ds.customer_ltv_band.sel(segment="all").values
    assert band[-1] > 3 * band[0]


@pytest.mark.parametrize(
    "growth, volatility, discount, horizon",
    [(0.0, 0.0, 0.10, 120), (0.12, 0.4, 0.08, 36), (-0.2, 0.3, 0.0, 240)],
)
def test_conditional_expectation_is_the_closed_form(growth, volatility, discount, horizon):
    """expected_ltv_* is exact given the trial's inputs: equal to the formula to 1e-9."""
    cfg = merge(
        BASE,
        simulation={"horizon_months": horizon, "trials": 5, "customers": 10},
        expansion={"annual_growth": growth, "annual_volatility": volatility},
        discount={"annual_rate": discount},
    )
    ds = ltvsim.simulate(cfg)
    g = float(formulas.monthly_growth_rate(growth))
    d = float(formulas.monthly_discount_rate(discount))
    np.testing.assert_allclose(
        all_segment(ds, "expected_ltv_discounted"),
        formulas.constant_churn_ltv(1000, 0.8, 0.02, g, d, horizon),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        all_segment(ds, "expected_ltv_revenue"),
        formulas.constant_churn_ltv(1000, 1.0, 0.02, g, 0.0, horizon),
        rtol=1e-9,
    )


def test_conditional_expectation_sbg_matches_fader_hardie():
    alpha, beta, r = 1.2, 3.0, 0.15
    cfg = merge(
        BASE,
        simulation={"horizon_months": 1200, "trials": 2, "customers": 10},
        churn={"model": "sbg", "alpha": alpha, "beta": beta, "renewal_months": 12},
        discount={"annual_rate": r},
    )
    del cfg["churn"]["monthly_rate"]
    ds = ltvsim.simulate(cfg)
    v = 1 / (1 + float(formulas.monthly_discount_rate(r)))
    expected = (
        800
        * sum(v**m for m in range(12))
        * formulas.sbg_discounted_expected_lifetime(alpha, beta, r)
    )
    # the 100-year horizon truncates the infinite sum by less than 1e-6 relative
    np.testing.assert_allclose(all_segment(ds, "expected_ltv_discounted"), expected, rtol=1e-6)
