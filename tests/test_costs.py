"""Costs: cost to serve, payment fees, retention spend and onboarding.

Which tier holds which cost (README "Costs"): gross-profit LTV = revenue ×
(margin − payment fee) − (cost to serve + fixed fee per payment) per active
month; net LTV = gross-profit LTV − retention spend − onboarding; payback is
when cumulative net profit recovers CAC.

Closed forms under constant churn ``c``, no expansion, cash at the start of
the month: ``E[Σ_t S(t) w_t] = Σ_{t<H} q^t`` with ``q = (1 − c)/(1 + d)``
(``formulas.constant_churn_ltv`` with unit ARPA and margin). The exact
conditional expectations (``expected_ltv_*``) must equal these to floating
point (1e-12 relative); the simulated cohort's cost totals must agree within
4 MC standard errors of the per-trial values (``assert_mc_close``).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ltvsim
from ltvsim import formulas
from ltvsim.cli import app
from ltvsim.config import ConfigError, load_config
from ltvsim.dataset import VARIABLES
from ltvsim.model import draw_inputs, kernel_inputs

from .conftest import BASE, RICH, assert_mc_close, merge
from .test_invariants import configs

COSTS = {"onboarding": 800.0, "retention_monthly": 40.0, "payment_fee": 0.029}
ANNUAL_DISCOUNT = 0.10


def _all(ds, name):
    return ds[name].sel(segment="all").values


@pytest.fixture(scope="module")
def costed():
    """Constant churn 3%, size spread (so fees are random), every cost non-zero."""
    cfg = merge(
        BASE,
        simulation={"trials": 60, "customers": 1500, "horizon_months": 96, "seed": 21},
        revenue={"arpa_cv": 0.5, "cost_to_serve_monthly": 25.0},
        churn={"monthly_rate": 0.03},
        costs={**COSTS, "payment_fee_fixed": 0.30},
        discount={"annual_rate": ANNUAL_DISCOUNT},
    )
    return ltvsim.simulate(cfg)


def test_cost_totals_match_closed_forms(costed):
    d = float(formulas.monthly_discount_rate(ANNUAL_DISCOUNT))
    months = formulas.constant_churn_ltv(1.0, 1.0, 0.03, horizon_months=96)
    discounted_months = formulas.constant_churn_ltv(1.0, 1.0, 0.03, 0.0, d, 96)
    # Expectations: E[revenue] = ARPA × S(t) (the size spread has mean 1).
    expected = {
        "cost_to_serve": 25.0 * months,
        "cost_to_serve_discounted": 25.0 * discounted_months,
        "cost_retention": 40.0 * months,
        "cost_retention_discounted": 40.0 * discounted_months,
        "cost_payment_fees": (0.029 * 1000 + 0.30) * months,
        "cost_payment_fees_discounted": (0.029 * 1000 + 0.30) * discounted_months,
    }
    for name, value in expected.items():
        assert_mc_close(_all(costed, name), value)
    np.testing.assert_array_equal(_all(costed, "cost_onboarding"), 800.0)

    gross = 1000 * (0.8 - 0.029) - 25.0 - 0.30
    net = gross - 40.0
    exact = {
        "expected_ltv_revenue": 1000 * months,
        "expected_ltv_gross_profit": gross * months,
        "expected_ltv_discounted": gross * discounted_months,
        "expected_ltv_net": net * months - 800.0,
        "expected_ltv_net_discounted": net * discounted_months - 800.0,
    }
    for name, value in exact.items():
        np.testing.assert_allclose(_all(costed, name), value, rtol=1e-12, err_msg=name)
    # the simulated tiers converge to them
    for tier in ("ltv_gross_profit", "ltv_discounted", "ltv_net", "ltv_net_discounted"):
        assert_mc_close(_all(costed, tier), exact[f"expected_{tier}"])


def test_tiers_add_up_trial_by_trial(costed):
    """Each tier is the one above it minus the costs it adds (floating point only)."""
    revenue = _all(costed, "ltv_revenue")
    gross = _all(costed, "ltv_gross_profit")
    fees, serve = _all(costed, "cost_payment_fees"), _all(costed, "cost_to_serve")
    retention, onboarding = _all(costed, "cost_retention"), _all(costed, "cost_onboarding")
    np.testing.assert_allclose(gross, 0.8 * revenue - serve - fees, rtol=1e-10)
    np.testing.assert_allclose(_all(costed, "ltv_net"), gross - retention - onboarding, rtol=1e-10)
    np.testing.assert_allclose(
        _all(costed, "ltv_net_discounted"),
        _all(costed, "ltv_discounted") - _all(costed, "cost_retention_discounted") - onboarding,
        rtol=1e-10,
    )
    # LTV:CAC stays gross-profit LTV over CAC: costs below gross profit do not enter it
    np.testing.assert_allclose(_all(costed, "ltv_cac"), gross / 12000, rtol=1e-12)
    assert (_all(costed, "ltv_net") < gross).all()


@pytest.mark.parametrize(
    "costs, cac",
    [
        ({"onboarding": 1000.0}, 12000),
        ({"onboarding": 1000.0, "retention_monthly": 50.0, "payment_fee": 0.03}, 12000),
        ({"payment_fee": 0.05, "payment_fee_fixed": 0.5, "retention_monthly": 20.0}, 3000),
    ],
)
def test_churn_free_payback_recovers_cac_and_onboarding(costs, cac):
    """No churn: payback = (CAC + onboarding) / monthly net profit, exactly."""
    cfg = merge(
        BASE,
        acquisition={"cac": cac},
        churn={"monthly_rate": 0.0},
        revenue={"cost_to_serve_monthly": 10.0},
        costs=costs,
    )
    ds = ltvsim.simulate(cfg, trials=3, customers=50)
    monthly = (
        1000 * (0.8 - costs.get("payment_fee", 0.0))
        - 10.0
        - costs.get("payment_fee_fixed", 0.0)
        - costs.get("retention_monthly", 0.0)
    )
    expected = (cac + costs.get("onboarding", 0.0)) / monthly
    np.testing.assert_allclose(_all(ds, "payback_months"), expected, rtol=1e-12)
    # every customer's own payback happens in the same month (the kernel's view)
    paid = ds.paid_back_share.sel(segment="all").values
    month = int(np.ceil(expected)) - 1
    assert (paid[:, month] == 1.0).all() and (paid[:, :month] == 0.0).all()
    # the net path starts at -onboarding
    first = ds.cumulative_net_profit.sel(segment="all", period=0).values
    np.testing.assert_allclose(first, monthly - costs.get("onboarding", 0.0), rtol=1e-12)


def test_zero_costs_are_bit_identical_to_no_costs_section():
    without = ltvsim.simulate(RICH)
    zeros = {"onboarding": 0, "retention_monthly": 0.0, "payment_fee": 0.0, "payment_fee_fixed": 0}
    with_zeros = ltvsim.simulate({**RICH, "costs": zeros})
    for name in without.data_vars:
        np.testing.assert_array_equal(with_zeros[name].values, without[name].values, err_msg=name)
    # and the kernel sees the drawn inputs themselves, not arithmetic on them
    config = load_config(RICH)
    segment = config.segments[0]
    inputs = draw_inputs(config, segment, 0, 5)
    args = kernel_inputs(config, segment, inputs)
    assert args["margin"] is not inputs["revenue.gross_margin"]
    np.testing.assert_array_equal(args["margin"], inputs["revenue.gross_margin"])
    np.testing.assert_array_equal(args["cost"], inputs["revenue.cost_to_serve_monthly"])
    np.testing.assert_array_equal(args["cac"], inputs["acquisition.cac"])
    # without costs the net tiers are the gross-profit tiers
    np.testing.assert_array_equal(without.ltv_net.values, without.ltv_gross_profit.values)
    np.testing.assert_array_equal(without.ltv_net_discounted.values, without.ltv_discounted.values)


def test_rich_model_net_tiers_match_their_expectation():
    """Everything at once, uncertain retention spend: kernel vs exact expectation."""
    costs = {
        "retention_monthly": {"dist": "gamma", "mean": 30.0, "sd": 10.0},
        "onboarding": {"dist": "pert", "low": 200, "mode": 500, "high": 1500},
        "payment_fee": 0.025,
        "payment_fee_fixed": 0.25,
    }
    ds = ltvsim.simulate({**RICH, "costs": costs})
    for tier in ("ltv_net", "ltv_net_discounted"):
        difference = _all(ds, tier) - _all(ds, f"expected_{tier}")
        assert_mc_close(difference, 0.0)
    # the drawn costs are stored and used
    retention = _all(ds, "input_costs_retention_monthly")
    np.testing.assert_allclose(
        _all(ds, "cost_retention"), retention * _all(ds, "lifetime_months"), rtol=1e-12
    )
    np.testing.assert_array_equal(_all(ds, "cost_onboarding"), _all(ds, "input_costs_onboarding"))


def test_segment_costs_blend_per_acquired_customer():
    raw = merge(BASE, simulation={"trials": 4, "customers": 300}, costs={"retention_monthly": 10})
    raw["segments"] = [
        {"name": "self-serve", "share": 0.7, "costs": {"payment_fee": 0.03}},
        {"name": "sales-led", "share": 0.3, "costs": {"onboarding": 5000.0}},
    ]
    ds = ltvsim.simulate(raw)
    onboarding = ds.cost_onboarding.sel(segment=["self-serve", "sales-led", "all"]).values
    np.testing.assert_allclose(onboarding, [[0.0, 5000.0, 1500.0]] * 4, rtol=1e-15)
    fees = ds.cost_payment_fees
    assert (fees.sel(segment="sales-led") == 0).all() and (fees.sel(segment="self-serve") > 0).all()
    # inherited retention spend applies to both
    assert (ds.cost_retention > 0).all()


def test_cost_variables_are_registered_with_units():
    ds = ltvsim.simulate(BASE, trials=2, customers=20)
    for name in VARIABLES:
        if name.startswith("cost_") or name.startswith("ltv_net"):
            assert ds[name].attrs["units"] == "USD per acquired customer", name


BAD = {
    # key: (bad value, fragments of the message)
    "costs.onboarding": (-1.0, ["-1.0", "[0, inf)"]),
    "costs.retention_monthly": (-0.5, ["-0.5", "[0, inf)"]),
    "costs.payment_fee": (1.0, ["1.0", "[0, 1)"]),
    "costs.payment_fee_fixed": ("0.3", ["must be a number", "'0.3'"]),
    "mix.concentration": (0.5, ["0.5", "[1, inf)"]),
}


@pytest.mark.parametrize("key", BAD)
def test_bad_cost_value_names_key_and_range(key, tmp_path):
    value, fragments = BAD[key]
    section, name = key.split(".")
    raw = {**BASE, section: {name: value}}
    if section == "mix":  # valid only with segments
        raw["segments"] = [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert info.value.key == key
    for fragment in fragments:
        assert fragment in str(info.value)
    # the command line: status 2, one line naming the key
    value_text = f'"{value}"' if isinstance(value, str) else repr(value)
    path = tmp_path / "bad.toml"
    segments = "".join(
        f'[[segments]]\nname = "{n}"\nshare = 0.5\n' for n in ("a", "b") if section == "mix"
    )
    path.write_text(f"[{section}]\n{name} = {value_text}\n{segments}")
    done = CliRunner().invoke(app, ["run", str(path), "--trials", "2"])
    assert done.exit_code == 2, done.output
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}: "), done.output


@pytest.mark.parametrize(
    "raw, key, fragment",
    [
        ({**BASE, "mix": {"concentration": 20}}, "mix.concentration", "needs [[segments]]"),
        (
            {
                **BASE,
                "segments": [{"name": "a", "share": 1.0, "mix": {"concentration": 20}}],
            },
            "segments.a.mix",
            "unknown key",
        ),
        ({**BASE, "costs": {"onbording": 5}}, "costs.onbording", "did you mean 'onboarding'"),
        (
            {**BASE, "costs": {"payment_fee": {"dist": "normal", "mean": 0.03, "sd": 0.01}}},
            "costs.payment_fee",
            "outside the valid range [0, 1)",
        ),
    ],
    ids=["mix without segments", "mix per segment", "typo", "unbounded fee distribution"],
)
def test_cost_and_mix_structure_errors(raw, key, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert info.value.key == key
    assert fragment in str(info.value)


def test_summary_shows_costs_only_when_present(costed):
    from ltvsim.analysis import SUMMARY_VARIABLES, summary_table, summary_variables

    plain = ltvsim.simulate(BASE, trials=3, customers=50)
    assert summary_variables(plain) == SUMMARY_VARIABLES
    fees = ltvsim.simulate(merge(BASE, costs={"payment_fee": 0.03}), trials=3, customers=50)
    assert summary_variables(fees) == (*SUMMARY_VARIABLES, "cost_payment_fees")
    shown = [row["variable"] for row in summary_table(costed)]
    assert shown[:5] == [
        "ltv_revenue",
        "ltv_gross_profit",
        "ltv_discounted",
        "ltv_net",
        "ltv_net_discounted",
    ]
    assert shown[-4:] == ["cost_to_serve", "cost_payment_fees", "cost_retention", "cost_onboarding"]
    # the net tiers' means are their exact expectations, as for the other tiers
    row = next(r for r in summary_table(costed) if r["variable"] == "ltv_net")
    assert row["mean"] == pytest.approx(float(_all(costed, "expected_ltv_net").mean()), rel=1e-12)


def test_worksheet_bridge_ends_with_the_net_tier_and_cli_shows_it(tmp_path):
    from ltvsim.worksheet import worksheet

    raw = merge(
        BASE,
        simulation={"trials": 20, "customers": 300, "horizon_months": 60},
        costs={"payment_fee": 0.03, "retention_monthly": {"dist": "gamma", "mean": 30, "sd": 5}},
        discount={"annual_rate": 0.1},
    )
    sheet = worksheet(raw)
    labels = [step.label for step in sheet.bridge]
    assert "+ cost to serve and payment fees" in labels
    assert labels[-1].startswith("- retention spend and onboarding")
    assert sheet.bridge[-1].change < 0
    assert sheet.averaging is None  # no segments, nothing averaged
    path = tmp_path / "costs.toml"
    path.write_text(
        "[simulation]\ntrials = 10\ncustomers = 200\nhorizon_months = 36\n"
        "[costs]\nonboarding = 500\n"
        '[[segments]]\nname = "a"\nshare = 0.5\n'
        '[[segments]]\nname = "b"\nshare = 0.5\nchurn = {monthly_rate = 0.05}\n'
    )
    done = CliRunner().invoke(app, ["worksheet", str(path)], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "- retention spend and onboarding" in done.output
    assert "averaging the segments" in done.output
    assert "churn.monthly_rate = 0.035" in done.output


@settings(
    max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    configs(), st.floats(0.0, 0.2), st.floats(0.0, 2.0), st.floats(0.0, 200.0), st.floats(0.0, 5e3)
)
def test_costs_only_lower_profit_and_delay_payback(config, fee, fixed, retention, onboarding):
    """Same seed with and without costs: the same customers, less profit, later payback."""
    costs = {
        "payment_fee": fee,
        "payment_fee_fixed": fixed,
        "retention_monthly": retention,
        "onboarding": onboarding,
    }
    without = ltvsim.simulate(config)
    with_costs = ltvsim.simulate({**config, "costs": costs})
    for name in ("survival", "revenue", "ltv_revenue", "cac"):
        np.testing.assert_array_equal(with_costs[name].values, without[name].values)
    scale = 1e-9 * (1 + np.abs(without.ltv_revenue.values) + onboarding)
    gross, net = with_costs.ltv_gross_profit.values, with_costs.ltv_net.values
    np.testing.assert_allclose(
        gross,
        without.ltv_gross_profit.values - with_costs.cost_payment_fees.values,
        atol=scale.max(),
    )
    assert (net <= gross + scale).all()
    assert (with_costs.ltv_net_discounted.values <= with_costs.ltv_discounted.values + scale).all()
    later = np.nan_to_num(with_costs.payback_months.values, nan=np.inf)
    earlier = np.nan_to_num(without.payback_months.values, nan=np.inf)
    assert (later >= earlier - 1e-9).all()
    assert (with_costs.paid_back_share.values <= without.paid_back_share.values).all()


def test_fan_chart_draws_the_net_profit_that_payback_uses(costed):
    pytest.importorskip("matplotlib")
    from ltvsim import plot

    fig = plot.fan_chart(costed)
    line = next(a for ax in fig.axes for a in ax.get_lines() if a.get_gid() == "median")
    median = costed.cumulative_net_profit_band.sel(segment="all", quantile=0.5).values
    np.testing.assert_array_equal(line.get_ydata(), np.concatenate([[-800.0], median]))
    assert fig.axes[0].get_ylabel().startswith("cumulative net profit")
