"""Summaries, band probabilities, tail risk and the accessor, against direct numpy."""

import math

import numpy as np
import pytest

import ltvsim
from ltvsim.analysis import band_probabilities, probability, summarize, tail_risk

from .conftest import BASE, Z, merge, standard_error


@pytest.fixture(scope="module")
def ds():
    cfg = merge(
        BASE,
        simulation={"trials": 300, "customers": 200, "horizon_months": 36},
        churn={"monthly_rate": {"dist": "beta", "mean": 0.04, "sd": 0.02}},
        acquisition={"cac": {"dist": "lognormal", "mean": 14000, "sd": 5000}},
    )
    return ltvsim.simulate(cfg)


def test_summary_matches_numpy(ds):
    s = summarize(ds).sel(segment="all")
    ltv = ds.ltv_gross_profit.sel(segment="all").values
    m = s.sel(measure="ltv_gross_profit")
    # the mean of an LTV tier: its exact conditional expectation, averaged over trials
    expected = ds.expected_ltv_gross_profit.sel(segment="all").values
    assert str(m.mean_estimator.values) == "conditional expectation"
    assert float(m.trial_mean) == pytest.approx(expected.mean())
    assert float(m.mc_se) == pytest.approx(expected.std(ddof=1) / math.sqrt(expected.size))
    # ... which the simulated trials' mean estimates too (the simulation is unbiased) ...
    assert abs(ltv.mean() - expected.mean()) <= Z * standard_error(ltv - expected)
    # ... with a larger error: the cohort's sampling noise on top of the inputs'
    assert standard_error(ltv) > float(m.mc_se)
    assert float(m.trial_sd) == pytest.approx(ltv.std(ddof=1))
    np.testing.assert_allclose(m.quantile_value, np.quantile(ltv, [0.05, 0.5, 0.95]))
    # other measures: the plain sample mean
    life = ds.lifetime_months.sel(segment="all").values
    lm = s.sel(measure="lifetime_months")
    assert str(lm.mean_estimator.values) == "sample mean"
    assert float(lm.trial_mean) == pytest.approx(life.mean())
    assert float(lm.mc_se) == pytest.approx(life.std(ddof=1) / math.sqrt(life.size))
    ratio = s.sel(measure="ltv_cac")
    cac = ds.cac.sel(segment="all").values
    assert float(ratio.trial_mean) == pytest.approx((expected / cac).mean())


def test_payback_summary_counts_never(ds):
    payback = ds.payback_months.sel(segment="all").values
    never = np.isnan(payback)
    assert 0 < never.mean() < 1  # this config has both
    s = summarize(ds).sel(segment="all")
    assert float(s.never_pays_back) == pytest.approx(never.mean())
    assert float(s.trial_mean.sel(measure="payback_months")) == pytest.approx(
        payback[~never].mean()
    )
    # a high quantile among the trials that never pay back is NaN, not a number
    if never.mean() > 0.05:
        assert np.isnan(float(s.quantile_value.sel(measure="payback_months", quantile=0.95)))


def test_band_probabilities_sum_to_one_with_binomial_errors(ds):
    bands = band_probabilities(ds)
    for measure, rows in bands.items():
        assert sum(r["probability"] for r in rows) == pytest.approx(1.0), measure
        for r in rows:
            p = r["probability"]
            assert r["std_error"] == pytest.approx(math.sqrt(p * (1 - p) / 300))
    ratio = ds.ltv_cac.sel(segment="all").values
    assert bands["ltv_cac"][0]["probability"] == pytest.approx((ratio < 1).mean())


def test_probability_expressions(ds):
    ratio = ds.ltv_cac.sel(segment="all").values
    p, se = probability(ds, "ltv_cac < 3")
    assert p == pytest.approx((ratio < 3).mean())
    assert se == pytest.approx(math.sqrt(p * (1 - p) / ratio.size))
    payback = ds.payback_months.sel(segment="all").values
    p, _ = probability(ds, "payback_months <= 12")
    assert p == pytest.approx((payback <= 12).mean())  # NaN (never) is not <= 12
    p, _ = probability(ds, "payback_months > 12")
    assert p == pytest.approx(1 - (payback <= 12).mean())  # never counts as longer
    with pytest.raises(ValueError, match="VARIABLE OP NUMBER"):
        probability(ds, "ltv_cac about 3")
    with pytest.raises(ValueError, match="unknown per-trial variable"):
        probability(ds, "ltv_cca < 3")


def test_tail_risk(ds):
    ltv = ds.ltv_discounted.sel(segment="all").values
    risk = tail_risk(ds, "ltv_discounted", 0.1)
    assert risk["value_at_risk"] == pytest.approx(np.quantile(ltv, 0.1))
    assert risk["expected_shortfall"] == pytest.approx(ltv[ltv <= risk["value_at_risk"]].mean())
    assert risk["expected_shortfall"] <= risk["value_at_risk"]
    assert risk["value_at_risk_se"] > 0 and risk["expected_shortfall_se"] > 0
    net = tail_risk(ds, "ltv_discounted - cac", 0.1)
    assert net["value_at_risk"] == pytest.approx(
        np.quantile(ltv - ds.cac.sel(segment="all").values, 0.1)
    )
    with pytest.raises(ValueError):
        tail_risk(ds, "ltv_discounted", 1.5)


def test_accessor(ds):
    assert ds.ltv.probability("ltv_cac >= 3") == probability(ds, "ltv_cac >= 3")
    assert ds.ltv.bands() == band_probabilities(ds)
    assert "| ltv_cac |" in ds.ltv.markdown()
    assert "trial_mean" in ds.ltv.summary()
