"""Term contracts: billing in advance, the first-renewal spike, revenue retention.

Also the kernel's per-plan-change walk (on the trial's multiplier, or on a
volatile customer's own) against its plain month-by-month walk: they consume
the same random numbers, so they agree customer by customer, up to the
rounding of sums.

Tolerances: ``assert_mc_close`` (4 MC standard errors, see conftest);
deterministic cases to 1e-12 relative (floating-point sums only).
"""

import numpy as np
import pytest
from scipy.special import betaln
from typer.testing import CliRunner

import ltvsim
from ltvsim.cli import app
from ltvsim.model import kernel_inputs, long_run_nrr
from ltvsim.simulate import run_segments

from .conftest import BASE, RICH, assert_mc_close, merge

SEATS = {
    "initial": 8.0,
    "price_monthly": {"dist": "uniform", "low": 40, "high": 60},
    "added_per_seat_monthly": 0.03,
    "removed_per_seat_monthly": 0.02,
}


def seats_only(raw: dict) -> dict:
    """``raw`` without the per-account MRR keys the seats model rejects."""
    out = merge(raw)
    out["revenue"] = {
        k: v for k, v in out["revenue"].items() if k not in ("arpa_monthly", "arpa_cv")
    }
    out["expansion"] = {
        k: v
        for k, v in out.get("expansion", {}).items()
        if not k.startswith(("upsell", "downgrade"))
    }
    return out


NO_VOLATILITY = merge(
    RICH,
    simulation={"trials": 12, "customers": 3000, "horizon_months": 100, "seed": 8},
    expansion={
        "annual_volatility": 0.0,
        "annual_growth": {"dist": "uniform", "low": -0.3, "high": 0.3},
    },
    churn={"first_renewal_churn": 0.2, "renewal_months": 6},
)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"revenue": {"billing_months": 3}},
        {"revenue": {"billing_months": 6, "cost_to_serve_monthly": 0.0}},
        # Costs above some customers' gross profit: cumulative profit can fall.
        {"revenue": {"cost_to_serve_monthly": 700.0}},
        {"churn": {"model": "curve", "monthly_rates": [0.2, 0.05, 0.01], "renewal_months": 1}},
        {"revenue": {"mrr_model": "seats"}, "seats": SEATS},
        # No cost to serve: payback from the guide table of cumulative M.
        {"revenue": {"cost_to_serve_monthly": 0.0}},
        # No plan changes: every level constant, revenue retention added per unit.
        {
            "expansion": {"upsell_monthly_probability": 0.0, "downgrade_monthly_probability": 0.0},
            "revenue": {"cost_to_serve_monthly": 0.0},
        },
        # Volatile: each customer's own multiplier, computed in array passes.
        {"expansion": {"annual_volatility": 0.4}},
        {
            "expansion": {"annual_volatility": 0.4},
            "revenue": {"billing_months": 3, "cost_to_serve_monthly": 700.0},
        },
        {
            "expansion": {"annual_volatility": 0.4},
            "revenue": {"mrr_model": "seats"},
            "seats": SEATS,
        },
    ],
    ids=[
        "monthly",
        "quarterly-billing",
        "semiannual-billing",
        "loss-making",
        "curve",
        "seats",
        "no-cost",
        "constant-levels-no-cost",
        "volatile",
        "volatile-quarterly-loss-making",
        "volatile-seats",
    ],
)
def test_plan_change_walk_equals_month_by_month(changes):
    raw = merge(NO_VOLATILITY, **changes)
    if "seats" in changes:
        raw = seats_only(raw)
    if "curve" in str(changes):
        raw["churn"] = {k: v for k, v in raw["churn"].items() if k not in ("alpha", "beta")}
    config = ltvsim.load_config(raw)
    fast, slow = run_segments(config)[0], run_segments(config, month_by_month=True)[0]
    np.testing.assert_array_equal(fast.alive, slow.alive)
    np.testing.assert_array_equal(fast.paid_first, slow.paid_first)
    np.testing.assert_array_equal(fast.customer_hist, slow.customer_hist)
    np.testing.assert_allclose(fast.revenue, slow.revenue, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(fast.retained, slow.retained, rtol=1e-12)
    assert fast.paid_first.sum() > 0


def test_first_renewal_churn_survival():
    """S(t) = (1 - x)(1 - c)^t after the first renewal; sBG: (1 - x) B(a, b+n)/B(a, b)."""
    x, c = 0.25, 0.03
    raw = merge(
        BASE,
        simulation={"trials": 4, "customers": 20000, "horizon_months": 36},
        churn={"monthly_rate": c, "first_renewal_churn": x},
    )
    ds = ltvsim.simulate(raw)
    t = np.arange(36)
    survival = np.where(t >= 1, 1 - x, 1.0) * (1 - c) ** t
    simulated = ds.survival.sel(segment="all").values  # trial, period
    for month in (1, 2, 12, 35):
        assert_mc_close(simulated[:, month], survival[month])
    # The exact conditional expectation is the closed form itself.
    np.testing.assert_allclose(
        ds.expected_ltv_gross_profit, 1000 * 0.8 * survival.sum(), rtol=1e-12
    )

    a, b = 0.8, 2.0
    sbg = merge(raw, churn={"model": "sbg", "alpha": a, "beta": b, "renewal_months": 3})
    del sbg["churn"]["monthly_rate"]
    ds = ltvsim.simulate(sbg)
    n = t // 3
    expected = np.where(n >= 1, 1 - x, 1.0) * np.exp(betaln(a, b + n) - betaln(a, b))
    for month in (3, 6, 18, 35):
        assert_mc_close(ds.survival.sel(segment="all").values[:, month], expected[month])


ANNUAL = merge(
    BASE,
    simulation={"trials": 2, "customers": 50, "horizon_months": 36},
    churn={"monthly_rate": 0.0, "renewal_months": 12},
    revenue={"billing_months": 12},
    discount={"annual_rate": 0.1},
)


def test_annual_billing_in_advance_moves_cash_not_revenue():
    """No churn: a year's gross profit ($9,600) arrives at months 0, 12 and 24."""
    annual = ltvsim.simulate(ANNUAL).sel(segment="all")
    monthly = ltvsim.simulate(merge(ANNUAL, revenue={"billing_months": 1})).sel(segment="all")
    np.testing.assert_allclose(annual.ltv_gross_profit, 36 * 800, rtol=1e-12)
    np.testing.assert_allclose(annual.ltv_revenue, monthly.ltv_revenue, rtol=1e-12)
    npv = 9600 * (1 + 1 / 1.1 + 1 / 1.1**2)
    np.testing.assert_allclose(annual.ltv_discounted, npv, rtol=1e-12)
    np.testing.assert_allclose(annual.expected_ltv_discounted, npv, rtol=1e-12)
    assert (monthly.ltv_discounted < annual.ltv_discounted).all()
    # CAC $12,000: paid back when the second year's invoice arrives, at month 12
    # (monthly billing: CAC / (ARPA x margin) = 15 months).
    np.testing.assert_array_equal(annual.payback_months, 12.0)
    np.testing.assert_allclose(monthly.payback_months, 15.0)
    np.testing.assert_array_equal(annual.paid_back_share.sel(period=[11, 12]), [[0, 1]] * 2)


def test_billing_with_churn_is_unbiased():
    """Churn at renewals: E[discounted LTV] = sum over years of S(year) x the year's cash."""
    q = 0.3
    raw = merge(
        ANNUAL,
        simulation={"trials": 20, "customers": 2000},
        churn={"monthly_rate": 1 - (1 - q) ** (1 / 12)},
    )
    ds = ltvsim.simulate(raw).sel(segment="all")
    npv = sum(9600 * (1 - q) ** y / 1.1**y for y in range(3))
    np.testing.assert_allclose(ds.expected_ltv_discounted, npv, rtol=1e-12)
    assert_mc_close(ds.ltv_discounted.values, npv)


def test_revenue_retention_closed_forms():
    """Constant churn c and growth g: NRR = (1-c)^12 (1+g), GRR = (1-c)^12."""
    c, g = 0.02, 0.1
    raw = merge(BASE, churn={"monthly_rate": c}, expansion={"annual_growth": g})
    ds = ltvsim.simulate(raw).sel(segment="all")
    for year in (1, 2, 5):
        assert_mc_close(ds.nrr.sel(cohort_year=year).values, (1 - c) ** 12 * (1 + g))
        assert_mc_close(ds.grr.sel(cohort_year=year).values, (1 - c) ** 12)
    # Only downgrades, no churn: every customer's MRR only falls, GRR = NRR = E[MRR(12)]/MRR(0).
    down = merge(
        raw,
        churn={"monthly_rate": 0.0},
        expansion={
            "annual_growth": 0.0,
            "downgrade_monthly_probability": 0.05,
            "downgrade_size": 0.2,
        },
    )
    ds = ltvsim.simulate(down).sel(segment="all")
    np.testing.assert_allclose(ds.nrr.values, ds.grr.values, rtol=1e-12)
    assert_mc_close(ds.nrr.sel(cohort_year=1).values, (1 - 0.05 * 0.2) ** 12)


def test_long_run_nrr_and_unbounded_ltv():
    """sBG survivors stop churning: any net expansion at or above the discount rate
    makes LTV over an unbounded horizon infinite, and the result says so."""
    raw = merge(
        BASE,
        simulation={"trials": 4, "customers": 200},
        expansion={"annual_growth": 0.1},
        discount={"annual_rate": 0.05},
    )
    config = ltvsim.load_config(raw)
    segment = config.segments[0]
    from ltvsim.model import draw_inputs

    args = kernel_inputs(config, segment, draw_inputs(config, segment, 0, 1))
    np.testing.assert_allclose(long_run_nrr(args), 0.98**12 * 1.1, rtol=1e-12)
    assert float(ltvsim.simulate(raw).ltv_unbounded.max()) == 0.0

    sbg = merge(raw, churn={"model": "sbg", "alpha": 1.0, "beta": 3.0})
    del sbg["churn"]["monthly_rate"]
    ds = ltvsim.simulate(sbg)
    np.testing.assert_allclose(ds.long_run_nrr, 1.1, rtol=1e-12)
    np.testing.assert_array_equal(ds.ltv_unbounded, 1.0)
    assert "no finite limit" in ltvsim.analysis.unbounded_warning(ds)
    bounded = ltvsim.simulate(merge(sbg, discount={"annual_rate": 0.2}))
    assert float(bounded.ltv_unbounded.max()) == 0.0
    assert ltvsim.analysis.unbounded_warning(bounded) is None


def test_billing_must_divide_the_term(tmp_path):
    bad = merge(ANNUAL, revenue={"billing_months": 5})
    with pytest.raises(ltvsim.ConfigError, match=r"revenue\.billing_months: must divide"):
        ltvsim.load_config(bad)
    path = tmp_path / "bad.toml"
    path.write_text("[churn]\nrenewal_months = 12\n[revenue]\nbilling_months = 5\n")
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "revenue.billing_months" in result.output and "Traceback" not in result.output
    spike = tmp_path / "spike.toml"
    spike.write_text("[churn]\nfirst_renewal_churn = 1.5\n")
    result = CliRunner().invoke(app, ["run", str(spike)])
    assert result.exit_code == 2 and "churn.first_renewal_churn" in result.output


def expected_seats(m, add, remove, t):
    """E[seats(t)], the first seat never removed (see model.expected_level)."""
    r = add - remove
    return m + remove * t if r == 0 else (m + remove / r) * np.exp(r * t) - remove / r


@pytest.mark.parametrize(("add", "remove"), [(0.03, 0.02), (0.0, 0.05), (0.02, 0.02)])
def test_seat_count_mean_follows_the_closed_form(add, remove):
    """Seats x price with no churn: E[MRR(t)] = price E[seats(t)] (1 + price increase)^(t // 12)."""
    raw = merge(
        BASE,
        simulation={"trials": 10, "customers": 4000, "horizon_months": 60},
        churn={"monthly_rate": 0.0},
        revenue={"mrr_model": "seats"},
        seats={
            "initial": 8.0,
            "price_monthly": 50.0,
            "added_per_seat_monthly": add,
            "removed_per_seat_monthly": remove,
        },
        expansion={"price_increase": 0.05},
    )
    ds = ltvsim.simulate(seats_only(raw)).sel(segment="all")
    for t in (0, 12, 35, 59):
        expected = 50.0 * expected_seats(8.0, add, remove, t) * 1.05 ** (t // 12)
        assert_mc_close(ds.revenue.sel(period=t).values, expected)
    months = np.arange(60)
    exact = (50.0 * expected_seats(8.0, add, remove, months) * 1.05 ** (months // 12)).sum()
    np.testing.assert_allclose(ds.expected_ltv_revenue, exact, rtol=1e-12)
    assert_mc_close(ds.ltv_revenue.values, exact)


def test_seats_long_run_nrr_and_key_checks():
    raw = seats_only(
        merge(BASE, revenue={"mrr_model": "seats"}, seats={"added_per_seat_monthly": 0.02})
    )
    config = ltvsim.load_config(raw)
    from ltvsim.model import draw_inputs

    args = kernel_inputs(config, config.segments[0], draw_inputs(config, config.segments[0], 0, 1))
    np.testing.assert_allclose(long_run_nrr(args), 0.98**12 * np.exp(12 * 0.02), rtol=1e-12)
    with pytest.raises(ltvsim.ConfigError, match=r"^revenue\.arpa_monthly: seats set MRR"):
        ltvsim.load_config(merge(raw, revenue={"arpa_monthly": 900}))
    with pytest.raises(ltvsim.ConfigError, match=r"^seats\.initial: only used when"):
        ltvsim.load_config(merge(BASE, seats={"initial": 5}))
    with pytest.raises(ltvsim.ConfigError, match=r"seats\.initial"):
        ltvsim.load_config(merge(raw, seats={"initial": 0.5}))


def test_multi_year_term_billed_annually():
    """24-month terms invoiced yearly: churn only every second invoice; each year's cash
    arrives at its start, so E[discounted LTV] = sum_y S(renewals before year y) 9,600 / 1.1^y."""
    q = 0.4  # per 24-month renewal
    raw = merge(
        ANNUAL,
        simulation={"trials": 20, "customers": 2000, "horizon_months": 72},
        churn={"monthly_rate": 1 - (1 - q) ** (1 / 24), "renewal_months": 24},
    )
    ds = ltvsim.simulate(raw).sel(segment="all")
    npv = sum(9600 * (1 - q) ** (y // 2) / 1.1**y for y in range(6))
    np.testing.assert_allclose(ds.expected_ltv_discounted, npv, rtol=1e-12)
    assert_mc_close(ds.ltv_discounted.values, npv)
    # Customers leave only at months 24 and 48.
    survival = ds.survival.mean("trial").values
    assert np.all(survival[:24] == 1) and np.all(np.diff(survival[24:48]) == 0)


def test_fixed_payment_fee_is_per_payment():
    """Billed annually, a $10 fee per payment is charged three times in 36 months, not 36."""
    raw = merge(ANNUAL, costs={"payment_fee_fixed": 10.0})
    annual = ltvsim.simulate(raw).sel(segment="all")
    monthly = ltvsim.simulate(merge(raw, revenue={"billing_months": 1})).sel(segment="all")
    np.testing.assert_allclose(annual.cost_payment_fees, 30.0, rtol=1e-12)
    np.testing.assert_allclose(monthly.cost_payment_fees, 360.0, rtol=1e-12)
    np.testing.assert_allclose(annual.ltv_gross_profit, 36 * 800 - 30.0, rtol=1e-12)
    np.testing.assert_allclose(annual.expected_ltv_gross_profit, 36 * 800 - 30.0, rtol=1e-12)


def test_revenue_is_exactly_zero_once_everyone_has_left():
    """The per-plan-change walk sums +/- level changes; when no customer is left the
    revenue is exactly 0, not a rounding residue (NRR then is NaN, not noise)."""
    raw = merge(
        BASE,
        simulation={"trials": 4, "customers": 5000, "horizon_months": 30},
        revenue={"arpa_cv": 0.7},
        churn={"model": "curve", "monthly_rates": [0.3, 0.3, 1.0]},
        expansion={"upsell_monthly_probability": 0.2, "upsell_size": 0.137},
    )
    del raw["churn"]["monthly_rate"]
    ds = ltvsim.simulate(raw).sel(segment="all")
    assert np.all(ds.survival.values[:, 3:] == 0)
    assert np.all(ds.revenue.values[:, 3:] == 0.0)
    assert np.all(ds.revenue.values[:, :3] > 0)
