"""The seeds' worked examples, reproduced exactly (DOMAIN.md)."""

import math

import numpy as np
import pytest

from ltvsim import formulas as f


def test_subscription_example():
    ltv = f.subscription_ltv(1000, 0.80, 0.02)
    assert ltv == pytest.approx(40000, abs=0.005)
    assert ltv / 12000 == pytest.approx(3.33, abs=0.005)
    assert f.subscription_ltv(1000, 1.0, 0.02) == pytest.approx(50000, abs=0.005)  # revenue basis


def test_yen_subscription_example():
    arpa = 10_000_000 / 500
    assert arpa == 20_000
    assert f.lifetime_from_churn(0.02) == pytest.approx(50)
    ltv = f.subscription_ltv(arpa, 0.8, 0.02)
    assert ltv == pytest.approx(800_000, abs=0.005)
    assert ltv / 250_000 == pytest.approx(3.2)


def test_one_time_example():
    assert f.one_time_ltv(40_000, 0.5, 6, 5) == pytest.approx(600_000, abs=0.005)
    assert f.one_time_ltv(40_000, 1.0, 6, 5) == pytest.approx(1_200_000, abs=0.005)


def test_ecommerce_net():
    # 5,000 order x 4 a year x 3 years x 40% margin - 6,000 costs = 18,000
    assert f.ecommerce_net_ltv(5000, 4, 3, 0.4, 6000) == pytest.approx(18_000, abs=0.005)


def test_goal_seek_inversions_hit_the_target_exactly():
    k, arpa, gm, cac, churn = 3.0, 1000.0, 0.8, 12000.0, 0.02
    max_churn = f.max_churn_for_ratio(arpa, gm, cac, k)
    assert max_churn == pytest.approx(1000 * 0.8 / 36000)
    assert f.subscription_ltv(arpa, gm, max_churn) / cac == pytest.approx(k)
    max_cac = f.max_cac_for_ratio(f.subscription_ltv(arpa, gm, churn), k)
    assert max_cac == pytest.approx(40000 / 3)
    min_arpa = f.min_arpa_for_ratio(cac, churn, gm, k)
    assert min_arpa == pytest.approx(900)
    assert f.subscription_ltv(min_arpa, gm, churn) / cac == pytest.approx(k)


def test_simple_payback():
    assert f.simple_payback_months(12000, 1000, 0.8) == pytest.approx(15)


def test_constant_churn_ltv_reduces_to_the_seed_formula():
    assert f.constant_churn_ltv(1000, 0.8, 0.02) == pytest.approx(40000)
    # finite horizon: the geometric sum, term by term
    assert f.constant_churn_ltv(1000, 0.8, 0.02, horizon_months=24) == pytest.approx(
        800 * sum(0.98**t for t in range(24))
    )
    # growth + discount: q = p (1+g) / (1+d)
    q = 0.98 * 1.01 / 1.005
    assert f.constant_churn_ltv(1000, 0.8, 0.02, 0.01, 0.005) == pytest.approx(800 / (1 - q))


def test_rates_compound():
    assert float(f.monthly_discount_rate(0.10)) == pytest.approx(1.1 ** (1 / 12) - 1)
    assert float(f.monthly_discount_rate(0.10)) != pytest.approx(0.10 / 12)


def test_lognormal_multiplier_convention():
    sigma = 0.3 / 12**0.5
    mu = 0.0 - 0.5 * sigma**2  # zero expected growth
    assert float(f.lognormal_mrr_multiplier(mu, sigma, 12)) == pytest.approx(1.0)


# --- sBG discounted lifetimes (Fader & Hardie 2010) ------------------------------------


def sbg_discounted_sum(alpha, beta, discount, renewals=None, terms=60_000):
    """The sums of Fader & Hardie (2010) term by term, in plain Python.

    ``renewals=None``: DEL = Σ_{t≥0} S(t) z^t. Otherwise DERL =
    Σ_{k≥0} S(n+1+k)/S(n) z^k, n = renewals. S by the recursion
    S(t) = S(t−1) (β+t−1)/(α+β+t−1); exactly rounded summation (math.fsum).
    60,000 terms: the tail is below 1e-40 relative for every d >= 0.005 used here.
    """
    z = 1.0 / (1.0 + discount)
    first = 0 if renewals is None else renewals + 1
    ratio, out = 1.0, []
    if renewals is None:
        out.append(1.0)
    for t in range(first if renewals is not None else 1, first + terms):
        ratio *= (beta + t - 1) / (alpha + beta + t - 1)  # S(t) / S(first - 1), S(t) if DEL
        out.append(ratio * z ** (t - first))
    return math.fsum(out)


SBG_CASES = [
    (0.704, 1.182, 0.1),  # Fader & Hardie (2007) regular, 10% per year
    (0.668, 3.806, 0.1),  # high end
    (1.2, 3.0, 0.15),
    (0.3, 0.8, 0.005),  # monthly discount 0.5%: slow series, z = 0.995
    (80.0, 720.0, 0.01),  # little heterogeneity: scipy's hyp2f1 gives NaN, the series is used
]


@pytest.mark.parametrize("alpha, beta, d", SBG_CASES)
def test_sbg_del_is_the_discounted_survival_sum(alpha, beta, d):
    direct = sbg_discounted_sum(alpha, beta, d)
    assert f.sbg_del(alpha, beta, d) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("alpha, beta, d", SBG_CASES)
@pytest.mark.parametrize("renewals", [0, 1, 4, 30])
def test_sbg_derl_is_the_survivors_discounted_sum(alpha, beta, d, renewals):
    # a customer who has made n renewals has survived n renewals: S(n+1+t)/S(n), undiscounted
    # at the next renewal (Fader & Hardie 2010, eq. (6) with their n - 1 = our renewals)
    direct = sbg_discounted_sum(alpha, beta, d, renewals)
    assert f.sbg_derl(alpha, beta, d, renewals) == pytest.approx(direct, rel=1e-12)


def test_sbg_del_and_derl_identities():
    alpha, beta, d = 0.668, 3.806, 0.1
    # a new customer pays now, then is a customer with 0 renewals one period later
    assert f.sbg_del(alpha, beta, d) == pytest.approx(1 + f.sbg_derl(alpha, beta, d, 0) / (1 + d))
    # survivors of n renewals are a new population with churn ~ Beta(alpha, beta + n)
    for n in (1, 5, 12):
        assert f.sbg_derl(alpha, beta, d, n) == pytest.approx(f.sbg_derl(alpha, beta + n, d, 0))
    # heterogeneity: the longer a customer has stayed, the more it is worth
    derl = f.sbg_derl(alpha, beta, d, np.arange(10))
    assert (np.diff(derl) > 0).all()
    # no heterogeneity (alpha + beta -> inf at churn c): the geometric annuity (1+d)/(d+c)
    c = 0.2
    assert f.sbg_del(c * 1e7, (1 - c) * 1e7, d) == pytest.approx((1 + d) / (d + c), rel=1e-6)
    # no discount: Gauss's sum, the mean lifetime (alpha + beta - 1) / (alpha - 1) for alpha > 1
    assert f.sbg_del(1.5, 4.0, 0.0) == pytest.approx(4.5 / 0.5)
    assert f.sbg_del(0.7, 4.0, 0.0) == math.inf
    # vectorised over parameters
    np.testing.assert_allclose(
        f.sbg_del([0.704, 0.668], [1.182, 3.806], 0.1),
        [f.sbg_del(0.704, 1.182, 0.1), f.sbg_del(0.668, 3.806, 0.1)],
    )
    assert f.sbg_discounted_expected_lifetime is f.sbg_del  # the older name, same function


def test_sbg_del_and_derl_against_the_simulation():
    """ltvsim.simulate with sBG churn, 1 a month, margin 1, 10% a year discount.

    Monthly renewals, so the per-period discount is the monthly rate
    d = 1.1^(1/12) − 1. Horizon H = 240 months: the simulated discounted LTV is
    DEL minus the tail beyond H, z^H S(H−1) DERL(H−1) (z = 1/(1+d)); what a
    customer still brings after month n, per acquired customer, is
    z^(n+1) S(n) DERL(n). Tolerance: 4 MC standard errors (conftest).
    """
    import ltvsim

    from .conftest import BASE, assert_mc_close, merge

    alpha, beta, horizon = 0.9, 2.5, 240
    cfg = merge(
        BASE,
        simulation={"horizon_months": horizon, "trials": 40, "customers": 3000, "seed": 11},
        revenue={"arpa_monthly": 1.0, "gross_margin": 1.0},
        churn={"model": "sbg", "alpha": alpha, "beta": beta},
        discount={"annual_rate": 0.10, "timing": "start"},
    )
    del cfg["churn"]["monthly_rate"]
    ds = ltvsim.simulate(cfg).sel(segment="all")
    d = float(f.monthly_discount_rate(0.10))
    z = 1 / (1 + d)
    tail = (
        z**horizon
        * f.sbg_survival(alpha, beta, horizon - 1)
        * f.sbg_derl(alpha, beta, d, horizon - 1)
    )
    assert_mc_close(ds.ltv_discounted.values, f.sbg_del(alpha, beta, d) - tail)
    for n in (0, 6, 24):
        residual = ds.ltv_discounted.values - ds.cumulative_discounted_gross_profit.values[:, n]
        expected = z ** (n + 1) * f.sbg_survival(alpha, beta, n) * f.sbg_derl(alpha, beta, d, n)
        assert_mc_close(residual, expected - tail)


# --- BG/NBD and gamma-gamma closed forms ------------------------------------------------


def test_bgnbd_conditional_expectation_of_a_brand_new_customer_is_the_unconditional():
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    t = np.array([1.0, 10.0, 52.0])
    # no history (x = 0, T -> 0): the conditional formula reduces to E[X(t)]
    np.testing.assert_allclose(
        f.bgnbd_conditional_expected_purchases(r, alpha, a, b, t, 0, 0.0, 1e-12),
        f.bgnbd_expected_purchases(r, alpha, a, b, t),
        rtol=1e-9,
    )


def test_gamma_gamma_spend_is_a_weighted_average():
    p, q, gamma = 6.25, 3.74, 15.44
    population = p * gamma / (q - 1)
    for x, m in [(1, 10.0), (5, 40.0), (50, 25.0)]:
        weight = p * x / (p * x + q - 1)
        expected = (1 - weight) * population + weight * m
        assert f.gamma_gamma_expected_spend(p, q, gamma, x, m) == pytest.approx(expected)
