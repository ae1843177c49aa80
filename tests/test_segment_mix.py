"""The segment mix: uncertain shares, and the naive average of segments.

Uncertain shares are ``Dirichlet(k × s)``: ``E[share_i] = s_i`` and
``Var[share_i] = s_i (1 − s_i) / (k + 1)``; for fixed per-segment values
``L_i`` the blend ``Σ share_i L_i`` has variance
``(Σ s_i L_i² − (Σ s_i L_i)²) / (k + 1)`` (Dirichlet moments, e.g. Kotz,
Balakrishnan & Johnson, "Continuous Multivariate Distributions", ch. 49).
Means are checked within 4 MC standard errors (conftest ``assert_mc_close``);
a sample variance within 4 of its standard errors, ``var × sqrt(2/(n−1))``
inflated 1.5× for the non-normal shares (their excess kurtosis is small at
the concentrations used).

The naive average's closed form (constant churn, equal ARPA, no discount,
horizon H): correct blend ``Σ s_i ARPA·GM·(1 − (1−c_i)^H)/c_i`` against
``ARPA·GM·(1 − (1−c̄)^H)/c̄`` with ``c̄ = Σ s_i c_i`` — the Jensen gap of
``1/c``. The exact conditional expectations must match it to 1e-12.
"""

import math

import numpy as np
import pytest

import ltvsim
from ltvsim import formulas
from ltvsim.config import load_config
from ltvsim.mix import naive_average, naive_average_config, segment_shares

from .conftest import BASE, assert_mc_close, merge

SHARES = {"smb": 0.6, "mid": 0.3, "ent": 0.1}
CHURN = {"smb": 0.04, "mid": 0.02, "ent": 0.008}


def _segments(concentration=None, trials=200, **top):
    raw = merge(
        BASE,
        simulation={"trials": trials, "customers": 200, "horizon_months": 60, "seed": 8},
        **top,
    )
    raw["segments"] = [
        {"name": name, "share": share, "churn": {"monthly_rate": CHURN[name]}}
        for name, share in SHARES.items()
    ]
    if concentration is not None:
        raw["mix"] = {"concentration": concentration}
    return raw


def test_dirichlet_shares_moments_and_purity():
    config = load_config(_segments(concentration=30, trials=5))
    shares = segment_shares(config, 0, 20_000)
    np.testing.assert_allclose(shares.sum(axis=0), 1.0, rtol=1e-14)
    assert (shares > 0).all()
    s = np.array(list(SHARES.values()))
    for i in range(len(s)):
        assert_mc_close(shares[i], s[i])
        variance, expected = shares[i].var(ddof=1), s[i] * (1 - s[i]) / 31
        tolerance = 4 * 1.5 * expected * math.sqrt(2 / (shares.shape[1] - 1))
        assert abs(variance - expected) <= tolerance, (variance, expected)
    # a pure function of (seed, trial): any block of trials draws the same shares
    np.testing.assert_array_equal(segment_shares(config, 123, 40), shares[:, 123:163])
    # fixed shares: the configured ones
    fixed = segment_shares(load_config(_segments()), 0, 3)
    np.testing.assert_array_equal(fixed, np.repeat(s[:, None], 3, axis=1))


@pytest.fixture(scope="module")
def mixed_and_fixed():
    return ltvsim.simulate(_segments(concentration=20)), ltvsim.simulate(_segments())


def test_uncertain_mix_blends_each_trial_with_its_shares(mixed_and_fixed):
    mixed, fixed = mixed_and_fixed
    names = list(SHARES)
    shares = mixed.segment_share.sel(segment=names).values.T  # (segment, trial)
    np.testing.assert_allclose(shares.sum(axis=0), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(mixed.segment_share.sel(segment="all"), 1.0)
    # the segments themselves do not depend on the mix: bit-identical
    for name in ("ltv_gross_profit", "survival", "payback_months"):
        np.testing.assert_array_equal(
            mixed[name].sel(segment=names).values, fixed[name].sel(segment=names).values
        )
    # every additive amount of "all" is the trial's share-weighted sum
    for name in ("expected_ltv_gross_profit", "ltv_discounted", "cac", "cost_onboarding"):
        per_segment = mixed[name].sel(segment=names).values.T
        np.testing.assert_allclose(
            mixed[name].sel(segment="all").values,
            (shares * per_segment).sum(axis=0),
            rtol=1e-12,
            err_msg=name,
        )
    # ratios are recomputed from the blend, never averaged
    blend = mixed.sel(segment="all")
    np.testing.assert_allclose(blend.ltv_cac, blend.ltv_gross_profit / blend.cac, rtol=1e-15)


def test_mean_of_the_blend_is_the_expected_share_weighted_mean(mixed_and_fixed):
    """E[Σ share_i L_i] = Σ s_i E[L_i]: shares are drawn independently of the segments."""
    mixed, _ = mixed_and_fixed
    names = list(SHARES)
    s = np.array([SHARES[n] for n in names])
    values = mixed.expected_ltv_gross_profit
    per_segment = values.sel(segment=names).values  # (trial, segment)
    difference = values.sel(segment="all").values - per_segment @ s
    assert_mc_close(difference, 0.0)
    # the inputs are fixed, so each segment's expected LTV is the same in every trial
    # and the blend's variance is the Dirichlet closed form
    L = per_segment[0]
    expected_variance = (s @ L**2 - (s @ L) ** 2) / 21
    n = values.sizes["trial"]
    variance = values.sel(segment="all").values.var(ddof=1)
    assert abs(variance - expected_variance) <= 4 * 1.5 * expected_variance * math.sqrt(2 / (n - 1))


def test_fixed_shares_are_the_old_blend_bit_for_bit(mixed_and_fixed):
    """Without [mix], "all" is Σ s_i × segment with the configured scalar shares."""
    _, fixed = mixed_and_fixed
    names = list(SHARES)
    for name in ("ltv_revenue", "expected_ltv_discounted", "cac"):
        old = sum(SHARES[n] * fixed[name].sel(segment=n).values for n in names)
        if name == "ltv_revenue":  # derived from the blended monthly revenue
            old = sum(SHARES[n] * fixed.revenue.sel(segment=n).values for n in names).sum(axis=1)
        np.testing.assert_array_equal(fixed[name].sel(segment="all").values, old, err_msg=name)
    assert fixed.attrs["segment_mix"] == "fixed shares"


def test_naive_average_is_the_jensen_gap():
    """Two constant-churn segments, equal ARPA: the closed forms, exactly."""
    raw = merge(BASE, simulation={"trials": 40, "customers": 2000, "horizon_months": 120})
    raw["segments"] = [
        {"name": "loyal", "share": 0.5, "churn": {"monthly_rate": 0.01}},
        {"name": "fickle", "share": 0.5, "churn": {"monthly_rate": 0.07}},
    ]
    gap = naive_average(raw)
    assert gap.averaged == {"churn.monthly_rate": pytest.approx(0.04, rel=1e-15)}
    blend = sum(
        0.5 * formulas.constant_churn_ltv(1000, 0.8, c, horizon_months=120) for c in (0.01, 0.07)
    )
    naive = formulas.constant_churn_ltv(1000, 0.8, 0.04, horizon_months=120)
    rows = {r["measure"]: r for r in gap.rows}
    ltv = rows["mean gross-profit LTV"]
    assert ltv["blend"] == pytest.approx(blend, rel=1e-12)
    assert ltv["naive"] == pytest.approx(naive, rel=1e-12)
    assert ltv["difference"] == pytest.approx(naive - blend, rel=1e-10)
    assert ltv["difference"] < 0  # Jensen: 1/c is convex, averaging churn undervalues
    assert rows["mean LTV:CAC"]["difference"] == pytest.approx((naive - blend) / 12000, rel=1e-10)
    # the simulated cohorts agree with the expectations within MC error
    naive_ds = ltvsim.simulate(naive_average_config(load_config(raw))[0])
    assert_mc_close(naive_ds.ltv_gross_profit.sel(segment="all").values, naive)


def test_naive_average_keeps_shared_inputs_and_averages_the_rest():
    cac = {"dist": "lognormal", "mean": 9000, "sd": 2000}
    raw = merge(BASE, simulation={"trials": 30, "customers": 300}, acquisition={"cac": cac})
    raw["segments"] = [
        {"name": "a", "share": 0.25, "revenue": {"arpa_monthly": 400}},
        {
            "name": "b",
            "share": 0.75,
            "revenue": {"arpa_monthly": {"dist": "gamma", "mean": 2000, "sd": 300}},
            "churn": {"model": "sbg", "alpha": 1.0, "beta": 49.0},
            "costs": {"onboarding": 1000.0},
        },
    ]
    config = load_config(raw)
    naive_config, averaged = naive_average_config(config)
    assert averaged["revenue.arpa_monthly"] == pytest.approx(0.25 * 400 + 0.75 * 2000)
    assert averaged["costs.onboarding"] == pytest.approx(750.0)
    # sBG's first-renewal churn 1/50 and constant 2%: both 2% a month
    assert averaged["churn.monthly_rate"] == pytest.approx(0.02)
    assert naive_config.segments[0]["churn.model"] == "constant"
    assert "acquisition.cac" not in averaged
    gap = naive_average(config)
    blended = ltvsim.simulate(config)
    naive_ds = ltvsim.simulate(naive_config)
    # the shared CAC is the same draw in every trial: common random numbers
    np.testing.assert_array_equal(
        naive_ds.cac.sel(segment="all").values,
        blended.input_acquisition_cac.sel(segment="a").values,
    )
    assert [r["measure"] for r in gap.rows][-1] == "P(LTV:CAC < 3)"


def test_worksheet_and_report_show_the_averaging_gap():
    from ltvsim.plot import worksheet_html
    from ltvsim.worksheet import worksheet

    raw = merge(BASE, simulation={"trials": 10, "customers": 200, "horizon_months": 48})
    raw["segments"] = [
        {"name": "loyal", "share": 0.5, "churn": {"monthly_rate": 0.01}},
        {"name": "fickle", "share": 0.5, "churn": {"monthly_rate": 0.07}},
    ]
    raw["mix"] = {"concentration": 50}
    sheet = worksheet(raw)
    rows = {r["measure"]: r for r in sheet.averaging.rows}
    assert "mean net LTV" not in rows  # no costs below gross profit: same as gross
    assert rows["mean gross-profit LTV"]["difference"] < 0
    page = worksheet_html(sheet)
    assert "Averaging the segments" in page and "churn.monthly_rate = 0.04" in page
