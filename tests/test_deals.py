"""One-time and B2B deals: a first deal, then follow-on deals while the account stays.

The degenerate case (every opportunity won, no size spread, fixed retention)
is the seeds' four-factor formula and must be reproduced exactly; the
stochastic cases are held to the exact conditional expectation within Z = 4
Monte Carlo standard errors (conftest), seeds fixed.
"""

import math

import numba
import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import ltvsim
from ltvsim import formulas
from ltvsim.cli import app
from ltvsim.config import ConfigError, key_spec, load_config
from ltvsim.reference import purchase_reference_simulate

from .conftest import Z, assert_mc_close, merge, run_example, standard_error

# The seeds: ¥40,000 order × 50% margin × 6 per year × 5 years = ¥600,000.
SEED_CASE = {
    "simulation": {"trials": 3, "customers": 500, "horizon_months": 120, "currency": "JPY"},
    "business": {"model": "deals"},
    "acquisition": {"cac": 150000},
    "revenue": {"gross_margin": 0.5},
    "deals": {"first_deal_value": 40000, "per_year": 6, "retention_years": 5},
    "discount": {"annual_rate": 0.0},
}
STOCHASTIC = merge(
    SEED_CASE,
    simulation={"trials": 40, "customers": 1500, "seed": 4},
    deals={
        "follow_on_value": 25000,
        "value_cv": 0.6,
        "per_year": 5,  # an opportunity every 2.4 months
        "follow_on_probability": 0.7,
        "retention": "exponential",
        "retention_years": 3.0,
    },
)
UNCERTAIN = merge(
    STOCHASTIC,
    simulation={"trials": 60, "customers": 500},
    deals={
        "follow_on_probability": {"dist": "beta", "mean": 0.7, "sd": 0.1},
        "retention_years": {"dist": "gamma", "mean": 3.0, "sd": 0.8},
    },
    discount={"annual_rate": 0.08, "timing": "end"},
)


def _all(ds, name):
    return ds[name].sel(segment="all").values


@pytest.fixture(scope="module")
def stochastic():
    return ltvsim.simulate(STOCHASTIC)


def test_seed_four_factor_formula_is_reproduced_exactly():
    ds = ltvsim.simulate(SEED_CASE)
    formula = formulas.one_time_ltv(40000, 0.5, 6, 5)
    assert formula == 600000
    assert formulas.one_time_ltv(40000, 1.0, 6, 5) == 1200000  # the revenue basis
    for name, value in [
        ("ltv_gross_profit", 600000.0),
        ("expected_ltv_gross_profit", 600000.0),
        ("ltv_revenue", 1200000.0),
        ("expected_ltv_revenue", 1200000.0),
        ("ltv_cac", 4.0),
        ("orders_per_customer", 30.0),
        ("lifetime_months", 60.0),
        ("ltv_net_of_cac", 450000.0),
    ]:
        assert (_all(ds, name) == value).all(), name
    # a deal of ¥20,000 gross profit every 2 months: CAC ¥150,000 is reached with
    # the 8th deal (month 14), whose profit accrues evenly within that month
    assert (_all(ds, "payback_months") == 14 + 10000 / 20000).all()
    assert (_all(ds, "paid_back_share")[:, 14] == 1).all()
    assert (_all(ds, "paid_back_share")[:, 13] == 0).all()


@pytest.mark.parametrize("per_year, years", [(12, 2), (4, 3), (1, 7), (5, 4), (3.5, 2)])
def test_four_factor_formula_for_other_frequencies(per_year, years):
    """Opportunities at 12k / per_year months, k = 0, 1, … while < 12 × years."""
    config = merge(SEED_CASE, deals={"per_year": per_year, "retention_years": years})
    ds = ltvsim.simulate(config, trials=1, customers=10)
    deals = math.ceil(per_year * years)  # 3.5 a year for 2 years: 7 deals
    assert _all(ds, "orders_per_customer")[0] == deals
    assert _all(ds, "ltv_gross_profit")[0] == pytest.approx(20000 * deals, rel=1e-15)
    if float(per_year * years).is_integer():
        assert _all(ds, "ltv_gross_profit")[0] == formulas.one_time_ltv(40000, 0.5, per_year, years)


def test_discounted_degenerate_case_is_a_sum_of_discounted_deals():
    config = merge(SEED_CASE, discount={"annual_rate": 0.1, "timing": "start"})
    ds = ltvsim.simulate(config)
    months = 2 * np.arange(30)
    exact = (20000 * 1.1 ** (-months / 12)).sum()
    np.testing.assert_allclose(_all(ds, "ltv_discounted"), exact, rtol=1e-12)
    np.testing.assert_allclose(_all(ds, "expected_ltv_discounted"), exact, rtol=1e-12)


def test_stochastic_deals_match_their_expectation(stochastic):
    """Orders, revenue and accounts retained against the exact expectation.

    Exponential retention with mean R years: P(retained at t) = exp(−t / 12R),
    a follow-on won with probability 0.7, size mean ¥25,000.
    """
    t = 12.0 * np.arange(1, 100) / 5
    t = t[t < 120]
    retained = np.exp(-t / 36.0)
    expected_orders = 1 + 0.7 * retained.sum()
    expected_revenue = 40000 + 0.7 * 25000 * retained.sum()
    assert_mc_close(_all(stochastic, "orders_per_customer"), expected_orders)
    assert_mc_close(_all(stochastic, "ltv_revenue"), expected_revenue)
    np.testing.assert_allclose(
        _all(stochastic, "expected_ltv_revenue"), expected_revenue, rtol=1e-12
    )
    for month in (1, 24, 100):
        assert_mc_close(_all(stochastic, "survival")[:, month], math.exp(-month / 36.0))


def test_deal_sizes_have_the_configured_spread():
    """With one deal per account, an account's LTV is one deal's gross profit."""
    from scipy import stats

    n = 20000
    config = merge(
        STOCHASTIC,
        simulation={"trials": 1, "customers": n},
        deals={"retention": "fixed", "retention_years": 0.1},  # 1.2 months: the first deal only
    )
    ds = ltvsim.simulate(config)
    assert _all(ds, "orders_per_customer")[0] == 1
    # Quartiles of the pooled customer-LTV histogram against Gamma(mean 40,000, cv 0.6)
    # × margin. A sample quantile's relative SE is sqrt(q(1−q)/n) / (f(x_q) x_q)
    # (≤ 0.7% here); the histogram adds at most one bin (0.67%).
    shape, q = 1 / 0.6**2, np.array([0.25, 0.5, 0.75])
    gamma = stats.gamma(shape, scale=40000 / shape)
    x = gamma.ppf(q)
    relative_se = np.sqrt(q * (1 - q) / n) / (gamma.pdf(x) * x)
    band = ds.customer_ltv_band.sel(segment="all", quantile=q).values
    assert (np.abs(band / (0.5 * x) - 1) <= Z * relative_se + 0.0067).all(), band / (0.5 * x)


def test_uncertain_inputs_follow_the_exact_expectation():
    ds = ltvsim.simulate(UNCERTAIN)
    for tier in ("revenue", "gross_profit", "discounted"):
        difference = _all(ds, f"ltv_{tier}") - _all(ds, f"expected_ltv_{tier}")
        assert abs(difference.mean()) <= Z * standard_error(difference), tier
    assert np.ptp(_all(ds, "input_deals_retention_years")) > 1.0


def test_follow_on_value_defaults_to_the_first_deals_draw():
    config = merge(
        SEED_CASE,
        simulation={"trials": 8},
        deals={"first_deal_value": {"dist": "lognormal", "mean": 40000, "sd": 8000}},
    )
    ds = ltvsim.simulate(config, customers=5)
    first = _all(ds, "input_deals_first_deal_value")
    np.testing.assert_array_equal(_all(ds, "input_deals_follow_on_value"), first)
    np.testing.assert_allclose(_all(ds, "ltv_revenue"), 30 * first, rtol=1e-12)


def test_reproducible_across_threads_and_blocks():
    config = merge(UNCERTAIN, simulation={"trials": 10, "customers": 4500})
    reference = ltvsim.simulate(config)
    for options in (
        {"threads": 1},
        {"threads": numba.config.NUMBA_NUM_THREADS},
        {"block_trials": 3},
    ):
        xr.testing.assert_identical(ltvsim.simulate(config, **options), reference)


def test_kernel_agrees_with_the_numpy_reference():
    small = merge(STOCHASTIC, simulation={"trials": 16, "customers": 600})
    fast, slow = ltvsim.simulate(small), purchase_reference_simulate(small)
    for name, month in [
        ("ltv_gross_profit", None),
        ("ltv_discounted", None),
        ("orders_per_customer", None),
        ("lifetime_months", None),
        ("paid_back_share", 40),
    ]:
        a, b = _all(fast, name), _all(slow, name)
        if month is not None:
            a, b = a[:, month], b[:, month]
        se = math.hypot(standard_error(a), standard_error(b))
        assert abs(a.mean() - b.mean()) <= Z * se, (name, a.mean(), b.mean(), se)


def test_reference_twin_reproduces_the_degenerate_case_exactly():
    slow = purchase_reference_simulate(SEED_CASE, customers=50)
    assert (_all(slow, "ltv_gross_profit") == 600000).all()
    assert (_all(slow, "payback_months") == 14.5).all()


# -------------------------------------------------------------------- bad input

BAD = {
    "deals.first_deal_value": 0,
    "deals.follow_on_value": -1,
    "deals.value_cv": 11,
    "deals.per_year": 0,
    "deals.follow_on_probability": 1.5,
    "deals.retention_years": 0,
}


@pytest.mark.parametrize("path", BAD)
def test_out_of_range_key_is_named_with_its_range(path):
    key = path.split(".")[1]
    with pytest.raises(ConfigError) as caught:
        load_config(merge(SEED_CASE, deals={key: BAD[path]}))
    assert caught.value.key == path
    assert key_spec(path).range_text() in str(caught.value)


@pytest.mark.parametrize(
    "raw, key, fragment",
    [
        (merge(SEED_CASE, deals={"retention": "forever"}), "deals.retention", '"exponential"'),
        (merge(SEED_CASE, churn={"model": "sbg"}), "churn.model", "'subscription'"),
        (merge(SEED_CASE, expansion={"upsell_size": 0.1}), "expansion.upsell_size", "subscr"),
        (merge(SEED_CASE, purchase={"r": 1}), "purchase.r", "'repeat_purchase'"),
        (merge(SEED_CASE, spend={"p": 2}), "spend.p", "'repeat_purchase'"),
        ({"deals": {"per_year": 2}}, "deals.per_year", "model here is 'subscription'"),
    ],
)
def test_keys_that_do_not_apply_are_errors(raw, key, fragment):
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    assert caught.value.key == key
    assert fragment in str(caught.value)


def test_cli_rejects_every_bad_key_with_exit_2(tmp_path):
    runner = CliRunner()
    for path, value in BAD.items():
        key = path.split(".")[1]
        text = f'[business]\nmodel = "deals"\n[deals]\n{key} = {value}\n'
        (tmp_path / "bad.toml").write_text(text)
        result = runner.invoke(app, ["run", str(tmp_path / "bad.toml")])
        assert result.exit_code == 2, (path, result.output)
        assert path in result.output and key_spec(path).range_text() in result.output


def test_cli_runs_the_b2b_example(tmp_path):
    output = tmp_path / "b2b.nc"
    result = run_example("configs/b2b-deals.toml", output)
    assert result.exit_code == 0, result.output
    for label in ("ltv_gross_profit", "money in JPY", "payback > 18 months (slow)"):
        assert label in result.output


def test_sensitivity_swings_the_deal_levers():
    tornado = ltvsim.sensitivity(STOCHASTIC, trials=4, customers=200)
    keys = dict(zip(tornado.lever.values, tornado.config_key.values, strict=True))
    assert keys["deal value"] == "deals.follow_on_value"
    assert keys["retention (years)"] == "deals.retention_years"
    ltv = tornado.mean_ltv_discounted.sel(lever="purchase frequency (deals per year)")
    assert ltv.sel(side="high") > ltv.sel(side="low")
