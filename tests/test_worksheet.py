"""The five-step worksheet and the bridge from the formula to the simulation."""

import itertools

import pytest

from ltvsim.worksheet import worksheet

from .conftest import Z


@pytest.fixture(scope="module")
def saas():
    return worksheet("configs/saas.toml", trials=200, customers=300)


def test_five_steps_use_the_point_inputs(saas):
    steps = saas.blended
    cac = (9000 + 4 * 12000 + 18000) / 6  # the PERT mean
    assert steps["ltv"] == pytest.approx(40000)
    assert steps["lifetime_months"] == pytest.approx(50)
    assert steps["ltv_cac"] == pytest.approx(40000 / cac)
    assert steps["ltv_cac_band"].startswith("3-5")
    assert steps["simple_payback_months"] == pytest.approx(cac / 800)
    assert steps["payback_band"].startswith("12-18")


def test_bridge_ends_at_the_simulated_means(saas):
    bridge = saas.bridge
    assert bridge[0].ltv == pytest.approx(40000)
    assert bridge[-2].ltv == pytest.approx(saas.simulated["ltv_gross_profit"]["mean"], rel=1e-12)
    assert bridge[-1].ltv == pytest.approx(saas.simulated["ltv_discounted"]["mean"], rel=1e-12)
    # saas.toml has no cost to serve: that step changes nothing, exactly
    cost = next(s for s in bridge if s.label == "+ cost to serve")
    assert cost.change == 0.0
    # every step's change is the difference of consecutive LTVs
    for before, after in itertools.pairwise(bridge):
        assert after.change == pytest.approx(after.ltv - before.ltv, rel=1e-9, abs=1e-6)


def test_constant_churn_simulation_meets_the_horizon_closed_form(saas):
    """With point inputs and constant churn the first simulated step adds nothing."""
    horizon, simulated = saas.bridge[1], saas.bridge[2]
    assert "horizon" in horizon.label and simulated.how == "simulated"
    assert abs(simulated.ltv - horizon.ltv) <= Z * simulated.change_se


def test_segments_show_the_averaging_error():
    sheet = worksheet("configs/segments.toml", trials=50, customers=200)
    naive, blended = sheet.bridge[0], sheet.bridge[1]
    assert "averaged" in naive.label and "per segment" in blended.label
    # averaging churn across segments understates LTV (1/c is convex)
    assert blended.ltv > naive.ltv
    assert [row["segment"] for row in sheet.segments] == ["smb", "mid-market", "enterprise"]
