"""Scenarios, sensitivity and goal seek: common random numbers make them precise."""

import math

import numpy as np
import pytest
import xarray as xr

import ltvsim
from ltvsim import formulas
from ltvsim.scenarios import (
    GoalSeekError,
    adjust,
    compare,
    goal_seek,
    rank_sensitivity,
    sensitivity,
)

from .conftest import BASE, Z, merge

SAAS = "configs/saas.toml"
SMALL = {"trials": 200, "customers": 300}


@pytest.fixture(scope="module")
def price():
    scenarios = {"price +10%": {"revenue.arpa_monthly": 1100}}
    with_crn = compare(SAAS, scenarios, **SMALL)
    without = compare(SAAS, scenarios, **SMALL, common_random_numbers=False)
    return with_crn, without


def test_common_random_numbers_cut_the_variance_of_the_difference(price):
    with_crn, without = price
    for name in ("ltv_discounted", "ltv_gross_profit"):
        se_crn = float(with_crn[f"{name}_difference_se"].sel(scenario="price +10%", segment="all"))
        se_ind = float(without[f"{name}_difference_se"].sel(scenario="price +10%", segment="all"))
        assert (se_ind / se_crn) ** 2 >= 10, (name, se_ind, se_crn)


def test_price_scenario_scales_revenue_exactly(price):
    """Same customers, 10% higher price: every trial's revenue is 10% higher."""
    with_crn, _ = price
    base = with_crn.ltv_revenue.sel(scenario="base", segment="all")
    up = with_crn.ltv_revenue.sel(scenario="price +10%", segment="all")
    np.testing.assert_allclose(up, 1.1 * base, rtol=1e-9)
    np.testing.assert_allclose(
        with_crn.ltv_revenue_difference.sel(scenario="price +10%", segment="all"),
        0.1 * float(base.mean()),
        rtol=1e-9,
    )


def test_independent_streams_estimate_the_same_difference(price):
    with_crn, without = price
    name = "ltv_discounted"
    a = with_crn[f"{name}_difference"].sel(scenario="price +10%", segment="all")
    b = without[f"{name}_difference"].sel(scenario="price +10%", segment="all")
    se = math.hypot(
        float(with_crn[f"{name}_difference_se"].sel(scenario="price +10%", segment="all")),
        float(without[f"{name}_difference_se"].sel(scenario="price +10%", segment="all")),
    )
    assert abs(float(a) - float(b)) <= Z * se


def test_compare_rejects_the_reserved_name():
    with pytest.raises(ValueError, match="reserved"):
        compare(SAAS, {"base": {}}, trials=5, customers=10)


def test_adjust_moves_distributions_and_segment_values():
    cfg = adjust("configs/segments.toml", "churn.monthly_rate", lambda x: 2 * x)
    by_name = {s.name: s for s in cfg.segments}
    assert by_name["smb"]["churn.monthly_rate"].mean == pytest.approx(0.07)
    assert by_name["mid-market"]["churn.monthly_rate"].mean == pytest.approx(0.036)
    # the seeds' default 2% churn is moved too when the config relies on it
    plain = ltvsim.load_config({"churn": {"model": "constant"}})
    assert adjust(plain, "churn.monthly_rate", lambda x: x / 2).segments[0][
        "churn.monthly_rate"
    ] == pytest.approx(0.01)
    # a margin cannot be swung above 100%
    high = adjust({"revenue": {"gross_margin": 0.95}}, "revenue.gross_margin", lambda x: 1.1 * x)
    assert high.segments[0]["revenue.gross_margin"] == 1.0


@pytest.fixture(scope="module")
def tornado():
    # a fixed margin, so that swinging it scales every draw exactly like price does
    config = ltvsim.load_config(SAAS).with_overrides({"revenue.gross_margin": 0.8})
    return sensitivity(config, **SMALL)


def test_tornado_directions(tornado):
    ltv = tornado.mean_ltv_discounted
    low, high = ltv.sel(side="low"), ltv.sel(side="high")
    assert float(high.sel(lever="price (ARPA)")) > float(low.sel(lever="price (ARPA)"))
    assert float(high.sel(lever="retention (churn)")) < float(low.sel(lever="retention (churn)"))
    # price and margin multiply gross profit alike (no cost to serve in saas.toml)
    np.testing.assert_allclose(
        ltv.sel(lever="price (ARPA)"), ltv.sel(lever="gross margin"), rtol=1e-9
    )
    # CAC does not change LTV, only the ratio and payback
    np.testing.assert_allclose(ltv.sel(lever="CAC"), ltv.attrs["base"], rtol=1e-12)
    p = tornado.p_ltv_cac_at_least_3.sel(lever="CAC")
    assert float(p.sel(side="high")) < float(p.sel(side="low"))
    # sorted by effect on LTV, largest first
    effect = np.abs(ltv.sel(side="high") - ltv.sel(side="low")).values
    assert (np.diff(effect) <= 0).all()


def test_rank_sensitivity_finds_churn():
    ds = ltvsim.simulate(SAAS, **SMALL)
    rho = rank_sensitivity(ds).rank_correlation.sel(segment="all", output="ltv_discounted")
    assert float(rho.sel(input="input_churn_monthly_rate")) < -0.5
    assert abs(float(rho.sel(input="input_acquisition_cac"))) < 4 / math.sqrt(SMALL["trials"])


def test_goal_seek_cac_is_the_quantile_of_ltv_over_the_ratio():
    """With CAC fixed, trial j meets LTV:CAC >= 3 iff CAC <= LTV_j / 3: the answer is a quantile."""
    cfg = merge(
        BASE,
        simulation={"trials": 200, "customers": 400},
        churn={"monthly_rate": {"dist": "beta", "mean": 0.02, "sd": 0.006}},
    )
    result = goal_seek(cfg, lever="acquisition.cac", metric="ltv_cac", target=3, probability=0.8)
    ltv = ltvsim.simulate(cfg).ltv_gross_profit.sel(segment="all").values
    threshold = np.sort(ltv / 3)
    # P(CAC <= LTV/3) >= 0.8 holds up to the 40th smallest threshold (200 trials)
    assert threshold[39] - 1e-4 * 12000 <= result.value <= threshold[40] + 1e-4 * 12000
    assert result.achieved >= 0.8
    assert result.interval[0] <= result.value <= result.interval[1]


def test_goal_seek_churn_matches_the_seed_inversion():
    """Deterministic inputs, long horizon: max churn for LTV:CAC 3 is ARPA x GM / (3 CAC)."""
    cfg = merge(BASE, simulation={"trials": 60, "customers": 3000, "horizon_months": 1200})
    result = goal_seek(cfg, lever="churn.monthly_rate", metric="ltv_cac", target=3, probability=0.5)
    expected = formulas.max_churn_for_ratio(1000, 0.8, 12000, 3)
    assert abs(result.value - expected) <= Z * result.standard_error + 1e-4 * 0.02


def test_goal_seek_answer_reproduces_with_a_fresh_seed():
    n = 400
    result = goal_seek(
        SAAS,
        lever="churn.monthly_rate",
        metric="ltv_cac",
        target=3,
        probability=0.8,
        trials=n,
        customers=300,
    )
    factor = result.value / 0.02  # saas.toml's churn has mean 2%
    ds = ltvsim.simulate(
        adjust(SAAS, "churn.monthly_rate", lambda x: x * factor), trials=n, customers=300, seed=2024
    )
    p = float((ds.ltv_cac.sel(segment="all") >= 3).mean())
    assert abs(p - 0.8) <= Z * math.sqrt(2 * 0.8 * 0.2 / n)


def test_goal_seek_unreachable_target_is_a_clear_error():
    with pytest.raises(GoalSeekError, match="not reachable"):
        goal_seek(
            BASE,
            lever="acquisition.cac",
            metric="ltv_cac",
            target=1000,
            probability=0.5,
            trials=5,
            customers=50,
            bounds=(100.0, 20000.0),
        )


def test_tornado_can_rank_by_another_metric():
    config = ltvsim.load_config(SAAS).with_overrides({"revenue.gross_margin": 0.8})
    ranked = sensitivity(config, rank_by="p_ltv_cac_at_least_3", trials=60, customers=100)
    p = ranked.p_ltv_cac_at_least_3
    effect = np.abs(p.sel(side="high") - p.sel(side="low")).values
    assert ranked.attrs["ranked_by"] == "p_ltv_cac_at_least_3"
    assert (np.diff(effect) <= 0).all()
    with pytest.raises(ValueError, match="rank_by"):
        sensitivity(config, rank_by="ltv", trials=5, customers=10)


def test_tornado_reuses_a_given_base_result():
    config = ltvsim.load_config(SAAS)
    base = ltvsim.simulate(config, trials=40, customers=100)
    given = sensitivity(config, trials=40, customers=100, base_result=base)
    xr.testing.assert_identical(given, sensitivity(config, trials=40, customers=100))


def test_antithetic_compare_error_is_the_paired_one():
    """With antithetic inputs the reported SE of a scenario's change matches the spread
    of that change over independent seeds; the independent-trials formula overstates it.

    40 seeds: the sd of the mean changes has a relative error of about 1/sqrt(78) = 11%,
    so a correct SE lands within [0.6, 1.6] of it with probability > 0.9999.
    """
    config = ltvsim.load_config(
        merge(
            BASE,
            simulation={"trials": 40, "customers": 100, "antithetic_inputs": True},
            churn={"monthly_rate": {"dist": "uniform", "low": 0.01, "high": 0.04}},
            revenue={"arpa_monthly": {"dist": "uniform", "low": 800, "high": 1200}},
        )
    )
    scenario = {
        "churn -10%": {"churn.monthly_rate": {"dist": "uniform", "low": 0.009, "high": 0.036}}
    }
    changes, reported, independent = [], [], []
    for seed in range(40):
        result = compare(config, scenario, seed=seed).sel(segment="all")
        out = result.sel(scenario="churn -10%")
        changes.append(float(out.ltv_gross_profit_difference))
        reported.append(float(out.ltv_gross_profit_difference_se))
        difference = (
            out.ltv_gross_profit.values - result.sel(scenario="base").ltv_gross_profit.values
        )
        independent.append(difference.std(ddof=1) / math.sqrt(difference.size))
    empirical = float(np.std(changes, ddof=1))
    rms = float(np.sqrt(np.mean(np.square(reported))))
    assert 0.6 < rms / empirical < 1.6, (rms, empirical)
    assert float(np.sqrt(np.mean(np.square(independent)))) > 2 * empirical
