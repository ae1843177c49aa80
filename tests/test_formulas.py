"""The seeds' worked examples, reproduced exactly (DOMAIN.md)."""

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
