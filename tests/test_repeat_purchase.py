"""Repeat purchase (e-commerce, retail): buy-till-you-die orders with gamma-gamma spend.

Closed forms (BG/NBD and Pareto/NBD expected repeat purchases, P(alive),
gamma-gamma mean order value) are checked first against direct numerical
integration of their defining expectations, then the simulation against them
within Z = 4 Monte Carlo standard errors (conftest), every seed fixed. A
cohort's per-trial values are independent across trials, so the standard
error of their mean is sd / sqrt(trials).
"""

import math

import numba
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from typer.testing import CliRunner

import ltvsim
from ltvsim import _purchase_kernel as pk
from ltvsim import formulas
from ltvsim._rng import derive, stream_key
from ltvsim.cli import app
from ltvsim.config import ConfigError, key_spec, load_config
from ltvsim.purchase_model import expected_paths, kernel_params
from ltvsim.reference import purchase_reference_simulate

from .conftest import Z, assert_mc_close, merge, run_example, standard_error

R, ALPHA, A, B = 0.8, 4.0, 0.6, 3.4  # a < 1: eq. (9)'s prefactor is negative there
P, Q, GAMMA = 4.0, 5.0, 60.0
BGNBD = {
    "simulation": {"trials": 40, "customers": 2000, "horizon_months": 36, "seed": 21},
    "business": {"model": "repeat_purchase"},
    "acquisition": {"cac": 40.0},
    "revenue": {"gross_margin": 0.4},
    "purchase": {
        "r": R,
        "alpha_months": ALPHA,
        "a": A,
        "b": B,
        "cost_per_order": 5.0,
        "marketing_monthly": 0.5,
    },
    "spend": {"p": P, "q": Q, "gamma": GAMMA},
    "discount": {"annual_rate": 0.0},
}
S, BETA = 0.9, 12.0
PARETO = merge(BGNBD, purchase={"process": "pareto_nbd", "s": S, "beta_months": BETA})
del PARETO["purchase"]["a"], PARETO["purchase"]["b"]
# Uncertain inputs, discounting mid-month: the exact conditional expectation must follow.
UNCERTAIN = merge(
    BGNBD,
    simulation={"trials": 60, "customers": 1000},
    purchase={"r": {"dist": "gamma", "mean": 0.8, "sd": 0.15}},
    spend={"gamma": None, "mean_order_value": {"dist": "lognormal", "mean": 70, "sd": 10}},
    discount={"annual_rate": 0.1, "timing": "middle"},
)
del UNCERTAIN["spend"]["gamma"]


@pytest.fixture(scope="module")
def bgnbd():
    return ltvsim.simulate(BGNBD)


@pytest.fixture(scope="module")
def pareto():
    return ltvsim.simulate(PARETO)


def _all(ds, name):
    return ds[name].sel(segment="all").values


# ------------------------------------------------------------ closed forms themselves


def _beta_mean(f, a, b):
    """E[f(p)] for p ~ Beta(a, b), by adaptive quadrature."""
    density = stats.beta(a, b).pdf
    return integrate.quad(lambda p: f(p) * density(p), 0, 1, epsabs=1e-13, epsrel=1e-11)[0]


@pytest.mark.parametrize("a", [0.6, 1.0, 1.0 + 3e-7, 1.0 - 5e-5, 1.0 + 2e-4, 2.5])
@pytest.mark.parametrize("t", [0.5, 12.0, 120.0])
def test_bgnbd_expected_purchases_is_the_mean_over_dropout_probabilities(a, t):
    """Given λ and p, E[X(t)] = (1 − e^(−λpt)) / p; averaged over λ: (1 − (α/(α+pt))^r) / p.

    Eq. (9) is 0/0 at a = 1: near it the formula interpolates (error ~1e-8).
    """
    direct = _beta_mean(lambda p: (1 - (ALPHA / (ALPHA + p * t)) ** R) / p, a, B)
    rtol = 1e-7 if abs(a - 1) < 1e-4 else 1e-9
    assert formulas.bgnbd_expected_purchases(R, ALPHA, a, B, t) == pytest.approx(direct, rtol)


@pytest.mark.parametrize("t", [0.0, 3.0, 36.0, 600.0])
def test_bgnbd_alive_probability_is_the_mean_over_dropout_probabilities(t):
    """Given λ and p, the dropout time is exponential with rate λp."""
    direct = _beta_mean(lambda p: (ALPHA / (ALPHA + p * t)) ** R, A, B)
    assert formulas.bgnbd_alive_probability(R, ALPHA, A, B, t) == pytest.approx(direct, 1e-9)


@pytest.mark.parametrize("s", [0.9, 1.0, 2.5])
def test_pareto_nbd_closed_forms_are_the_mean_over_dropout_rates(s):
    t = 30.0
    density = stats.gamma(s, scale=1 / BETA).pdf
    mean = lambda f: integrate.quad(lambda mu: f(mu) * density(mu), 0, np.inf, epsrel=1e-11)[0]  # noqa: E731
    purchases = R / ALPHA * mean(lambda mu: -math.expm1(-mu * t) / mu)
    assert formulas.pareto_nbd_expected_purchases(R, ALPHA, s, BETA, t) == pytest.approx(
        purchases, 1e-8
    )
    alive = mean(lambda mu: math.exp(-mu * t))
    assert formulas.pareto_nbd_alive_probability(s, BETA, t) == pytest.approx(alive, 1e-8)


def test_gamma_gamma_mean_order_value_is_p_gamma_over_q_minus_one():
    """E[z] = E[p / nu] with nu ~ Gamma(q, rate gamma): p gamma / (q - 1)."""
    direct = integrate.quad(lambda nu: P / nu * stats.gamma(Q, scale=1 / GAMMA).pdf(nu), 0, 1)[0]
    assert formulas.gamma_gamma_mean_order_value(P, Q, GAMMA) == pytest.approx(direct, 1e-9)


# --------------------------------------------------------------- simulation vs closed forms


@pytest.mark.parametrize("t", [1, 6, 12, 36])
def test_bgnbd_orders_in_0_t_match_eq_9(bgnbd, t):
    """Orders in months 0 … t−1 are the acquisition order plus X(t) (FHL 2005 eq. 9)."""
    orders = _all(bgnbd, "orders")[:, :t].sum(axis=1)
    assert_mc_close(orders, 1 + formulas.bgnbd_expected_purchases(R, ALPHA, A, B, t))


@pytest.mark.parametrize("month", [1, 12, 35])
def test_bgnbd_share_alive_matches_closed_form(bgnbd, month):
    survival = _all(bgnbd, "survival")[:, month]
    assert_mc_close(survival, formulas.bgnbd_alive_probability(R, ALPHA, A, B, month))


def test_bgnbd_spend_per_order_is_gamma_gamma_mean(bgnbd):
    """Per trial, revenue / orders: a ratio estimator, biased by O(1 / orders) ≈ 1e-4
    relative here, far below the 4-SE tolerance (≈ 1%)."""
    per_order = _all(bgnbd, "ltv_revenue") / _all(bgnbd, "orders_per_customer")
    assert_mc_close(per_order, formulas.gamma_gamma_mean_order_value(P, Q, GAMMA))


@pytest.mark.parametrize("t", [6, 36])
def test_pareto_nbd_orders_and_alive_match_closed_forms(pareto, t):
    orders = _all(pareto, "orders")[:, :t].sum(axis=1)
    assert_mc_close(orders, 1 + formulas.pareto_nbd_expected_purchases(R, ALPHA, S, BETA, t))
    alive = _all(pareto, "survival")[:, t - 1]
    assert_mc_close(alive, formulas.pareto_nbd_alive_probability(S, BETA, t - 1))


def test_pareto_nbd_ltv_tiers_match_exact_conditional_expectation(pareto):
    for tier in ("revenue", "gross_profit"):
        assert_mc_close(_all(pareto, f"ltv_{tier}"), _all(pareto, f"expected_ltv_{tier}")[0])


def test_bgnbd_probability_alive_given_history():
    """Customers simulated by the process: alive at T as often as P(alive | x, t_x, T) says.

    For each customer, 1{alive at T} − P(alive | x, t_x, T) has mean zero (the
    posterior is exact); checked over all customers and by number of repeat
    orders, within 4 standard errors of the mean difference.
    """
    config = load_config(BGNBD)
    args = kernel_params(
        config, config.segments[0], ltvsim.model.draw_inputs(config, config.segments[0], 0, 1)
    )
    horizon = 36
    x, t_x, dropout, _ = pk.customer_histories(
        stream_key(5, "posterior test"), 0, 40_000, args["process"], args["params"][0], horizon
    )
    assert x.max() > 5 and (dropout < horizon).mean() > 0.1  # the test sees every case
    posterior = formulas.bgnbd_probability_alive(R, ALPHA, A, B, x, t_x, horizon)
    difference = (dropout > horizon) - posterior
    for group in (x >= 0, x == 0, (x >= 1) & (x <= 3), x >= 4):
        d = difference[group]
        assert abs(d.mean()) <= Z * standard_error(d), (group.sum(), d.mean())


# ------------------------------------------------------------ LTV, costs, seed formula


def test_simulated_ltv_tiers_match_exact_conditional_expectation():
    """Uncertain inputs, discounting: per trial, simulated minus exact expectation has mean 0."""
    ds = ltvsim.simulate(UNCERTAIN)
    for tier in ("revenue", "gross_profit", "discounted"):
        difference = _all(ds, f"ltv_{tier}") - _all(ds, f"expected_ltv_{tier}")
        assert abs(difference.mean()) <= Z * standard_error(difference), tier
    assert np.ptp(_all(ds, "input_purchase_r")) > 0.2  # the inputs really vary


def test_net_ltv_is_the_seeds_ecommerce_formula_in_expectation(bgnbd):
    """order value × frequency × retention × margin − acquisition and retention costs.

    Frequency × retention is the expected number of orders within the horizon;
    the retention costs are per-order costs and marketing for every month alive.
    """
    config = load_config(BGNBD)
    segment = config.segments[0]
    args = kernel_params(config, segment, ltvsim.model.draw_inputs(config, segment, 0, 1))
    paths = expected_paths(args, 36)
    orders, alive_months = paths["orders"].sum(), paths["alive"].sum()
    years = 3.0
    costs = 5.0 * orders + 0.5 * alive_months + 40.0
    seeds = formulas.ecommerce_net_ltv(
        formulas.gamma_gamma_mean_order_value(P, Q, GAMMA), orders / years, years, 0.4, costs
    )
    exact = _all(bgnbd, "expected_ltv_gross_profit") - _all(bgnbd, "cac")
    np.testing.assert_allclose(exact, seeds, rtol=1e-12)
    assert_mc_close(_all(bgnbd, "ltv_net_of_cac"), seeds)


def test_payback_counts_order_costs_and_marketing():
    """With order costs above the margin on every order, nobody ever pays back."""
    loss = merge(
        BGNBD, simulation={"trials": 4, "customers": 300}, purchase={"cost_per_order": 1e4}
    )
    ds = ltvsim.simulate(loss)
    assert np.isnan(_all(ds, "payback_months")).all()
    assert (_all(ds, "paid_back_share") == 0).all()
    assert (_all(ds, "ltv_gross_profit") < 0).all()


def test_adaptive_stopping_uses_the_exact_expectation():
    ds = ltvsim.simulate(UNCERTAIN, customers=200, target_rel_error=0.02)
    assert ds.attrs["reached_target"] == 1
    fixed = ltvsim.simulate(UNCERTAIN, customers=200, trials=ds.attrs["trials"])
    xr.testing.assert_equal(ds.ltv_discounted, fixed.ltv_discounted)


# ------------------------------------------------------------------ reproducibility


def test_thread_count_and_block_size_do_not_change_a_bit():
    config = merge(UNCERTAIN, simulation={"trials": 12, "customers": 5000})  # two chunks
    reference = ltvsim.simulate(config)
    for options in (
        {"threads": 1},
        {"threads": numba.config.NUMBA_NUM_THREADS},
        {"block_trials": 1},
        {"block_trials": 5},
    ):
        xr.testing.assert_identical(ltvsim.simulate(config, **options), reference)


def test_kernel_and_customer_histories_are_the_same_customers():
    """customer_histories replays the kernel's customers: same orders, same LTV."""
    config = load_config(merge(BGNBD, simulation={"trials": 1, "customers": 500}))
    ds = ltvsim.simulate(config)
    segment = config.segments[0]
    args = kernel_params(config, segment, ltvsim.model.draw_inputs(config, segment, 0, 1))
    key = derive(stream_key(config.seed, "customers", segment.name), 0)
    x, _, _, ltv = pk.customer_histories(key, 0, 500, args["process"], args["params"][0], 36)
    assert (x + 1).sum() == _all(ds, "orders_per_customer")[0] * 500
    assert ltv.mean() == pytest.approx(_all(ds, "ltv_gross_profit")[0], rel=1e-12)


# -------------------------------------------------------------------- slow twin


@pytest.mark.parametrize("config", [BGNBD, PARETO], ids=["bgnbd", "pareto_nbd"])
def test_kernel_agrees_with_the_numpy_reference(config):
    """Two constructions of the same process, different random numbers: within 4 SE."""
    small = merge(config, simulation={"trials": 16, "customers": 800})
    fast, slow = ltvsim.simulate(small), purchase_reference_simulate(small)
    for name, month in [
        ("ltv_gross_profit", None),
        ("orders_per_customer", None),
        ("lifetime_months", None),
        ("survival", 12),
        ("paid_back_share", 3),
        ("paid_back_share", 35),
    ]:
        a, b = _all(fast, name), _all(slow, name)
        if month is not None:
            a, b = a[:, month], b[:, month]
        se = math.hypot(standard_error(a), standard_error(b))
        assert abs(a.mean() - b.mean()) <= Z * se, (name, month, a.mean(), b.mean(), se)


# -------------------------------------------------------------------- bad input

BAD = {
    "purchase.r": 0,
    "purchase.alpha_months": -1,
    "purchase.a": 0,
    "purchase.b": -2,
    "purchase.cost_per_order": -1,
    "purchase.marketing_monthly": -0.5,
    "spend.p": 0,
    "spend.q": 1,
    "spend.gamma": 0,
    "spend.mean_order_value": -10,
}


def _config_with(path, value, base=BGNBD):
    section, key = path.split(".")
    raw = merge(base, **{section: {key: value}})
    if path == "spend.mean_order_value":
        del raw["spend"]["gamma"]
    return raw


@pytest.mark.parametrize("path", BAD)
def test_out_of_range_key_is_named_with_its_range(path):
    with pytest.raises(ConfigError) as caught:
        load_config(_config_with(path, BAD[path]))
    assert caught.value.key == path
    assert key_spec(path).range_text() in str(caught.value)


@pytest.mark.parametrize(
    "raw, key, fragment",
    [
        (_config_with("purchase.s", 1.0), "purchase.s", "purchase.process = 'pareto_nbd'"),
        (merge(PARETO, purchase={"a": 1.0}), "purchase.a", "purchase.process = 'bgnbd'"),
        (merge(BGNBD, churn={"monthly_rate": 0.02}), "churn.monthly_rate", "'subscription'"),
        (merge(BGNBD, revenue={"arpa_monthly": 50}), "revenue.arpa_monthly", "'subscription'"),
        (merge(BGNBD, deals={"per_year": 4}), "deals.per_year", "business.model = 'deals'"),
        ({"purchase": {"r": 1.0}}, "purchase.r", "business.model = 'repeat_purchase'"),
        (merge(BGNBD, spend={"mean_order_value": 50}), "spend", "not both"),
        (merge(BGNBD, business={"model": "retail"}), "business.model", '"repeat_purchase"'),
        (merge(BGNBD, purchase={"process": "bg"}), "purchase.process", '"pareto_nbd"'),
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
        section, key = path.split(".")
        text = f'[business]\nmodel = "repeat_purchase"\n[{section}]\n{key} = {value}\n'
        (tmp_path / "bad.toml").write_text(text)
        result = runner.invoke(app, ["run", str(tmp_path / "bad.toml")])
        assert result.exit_code == 2, (path, result.output)
        assert path in result.output and key_spec(path).range_text() in result.output


# -------------------------------------------------------------- config and CLI


def test_mixed_business_models_blend_per_acquired_customer():
    """A subscription segment and a repeat-purchase segment, each with its own keys."""
    mixed = {
        "simulation": {"trials": 6, "customers": 400, "horizon_months": 36},
        "segments": [
            {"name": "saas", "share": 0.25, "churn": {"monthly_rate": 0.03}},
            {
                "name": "shop",
                "share": 0.75,
                "business": {"model": "repeat_purchase"},
                "purchase": {"cost_per_order": 3.0},
            },
        ],
    }
    ds = ltvsim.simulate(mixed)
    v = ds.expected_ltv_discounted
    blend = 0.25 * v.sel(segment="saas") + 0.75 * v.sel(segment="shop")
    np.testing.assert_allclose(v.sel(segment="all"), blend, rtol=1e-12)
    assert (ds.orders_per_customer.sel(segment="saas") == 0).all()
    assert (ds.orders_per_customer.sel(segment="shop") >= 1).all()


def test_cli_runs_the_ecommerce_example(tmp_path):
    output = tmp_path / "shop.nc"
    result = run_example("configs/ecommerce.toml", output)
    assert result.exit_code == 0, result.output
    for label in ("ltv_discounted", "payback_months", "LTV:CAC 3-5 (healthy)"):
        assert label in result.output
    saved = ltvsim.open_result(output)
    assert saved.orders.attrs["units"] == "orders per acquired customer"
    assert "input_purchase_r" in saved and "input_spend_mean_order_value" in saved


def test_sensitivity_swings_the_repeat_purchase_levers():
    tornado = ltvsim.sensitivity(BGNBD, trials=6, customers=300)
    keys = dict(zip(tornado.lever.values, tornado.config_key.values, strict=True))
    assert keys["order value (spend)"] == "spend.gamma"
    assert keys["purchase frequency (r)"] == "purchase.r"
    assert keys["dropout (retention)"] == "purchase.a"
    ltv = tornado.mean_ltv_discounted  # exact conditional expectations: no noise
    assert ltv.sel(lever="purchase frequency (r)", side="high") > ltv.sel(
        lever="purchase frequency (r)", side="low"
    )
    assert ltv.sel(lever="dropout (retention)", side="high") < ltv.sel(
        lever="dropout (retention)", side="low"
    )


def test_worksheet_refuses_an_order_driven_config():
    result = CliRunner().invoke(app, ["worksheet", "configs/ecommerce.toml"])
    assert result.exit_code == 2
    assert "business.model" in result.output and "subscription" in result.output


def test_report_of_an_order_driven_result_has_no_worksheet(tmp_path):
    pytest.importorskip("matplotlib")
    result = tmp_path / "shop.nc"
    ltvsim.write_result(ltvsim.simulate("configs/ecommerce.toml", trials=10, customers=100), result)
    page = tmp_path / "shop.html"
    outcome = CliRunner().invoke(app, ["report", str(result), "-o", str(page)])
    assert outcome.exit_code == 0, outcome.output
    text = page.read_text()
    assert "ltv_discounted" in text and "Worksheet" not in text


# ------------------------------------------------------------ properties (hypothesis)


@st.composite
def order_driven_configs(draw):
    """Any valid repeat-purchase or deals config, costs off so the LTV tiers are ordered."""
    config = {
        "simulation": {
            "trials": draw(st.integers(1, 4)),
            "customers": draw(st.integers(1, 200)),
            "horizon_months": draw(st.integers(1, 60)),
            "seed": draw(st.integers(0, 2**32)),
        },
        "acquisition": {"cac": draw(st.floats(1.0, 1000.0))},
        "revenue": {"gross_margin": draw(st.floats(0.0, 1.0))},
        "discount": {
            "annual_rate": draw(st.floats(0.0, 1.0)),
            "timing": draw(st.sampled_from(["start", "middle", "end", "continuous"])),
        },
    }
    if draw(st.booleans()):
        process = draw(st.sampled_from(["bgnbd", "pareto_nbd"]))
        positive = st.floats(0.05, 20.0)
        purchase = {"process": process, "r": draw(positive), "alpha_months": draw(positive)}
        if process == "bgnbd":
            purchase.update(a=draw(positive), b=draw(positive))
        else:
            purchase.update(s=draw(positive), beta_months=draw(positive))
        config["business"] = {"model": "repeat_purchase"}
        config["purchase"] = purchase
        config["spend"] = {"p": draw(positive), "q": draw(st.floats(1.05, 20.0))}
        config["spend"]["mean_order_value"] = draw(st.floats(0.01, 500.0))
    else:
        config["business"] = {"model": "deals"}
        config["deals"] = {
            "first_deal_value": draw(st.floats(1.0, 1e5)),
            "follow_on_value": draw(st.floats(1.0, 1e5)),
            "value_cv": draw(st.floats(0.0, 3.0)),
            "per_year": draw(st.floats(0.1, 52.0)),
            "follow_on_probability": draw(st.floats(0.0, 1.0)),
            "retention_years": draw(st.floats(0.01, 20.0)),
            "retention": draw(st.sampled_from(["fixed", "exponential"])),
        }
    return config


@settings(max_examples=30, deadline=None, derandomize=True)
@given(order_driven_configs())
def test_order_driven_paths_are_monotone_bounded_and_ordered(config):
    ds = ltvsim.simulate(config).sel(segment="all")
    survival = ds.survival.values
    assert (survival[:, 0] == 1).all()  # everyone is alive when it places its first order
    assert (survival >= 0).all() and (np.diff(survival, axis=1) <= 0).all()
    assert (ds.orders.values[:, 0] >= 1).all()
    paid = ds.paid_back_share.values
    assert (np.diff(paid, axis=1) >= 0).all() and (paid <= 1).all()
    revenue, gross, discounted = (
        ds[n].values for n in ("ltv_revenue", "ltv_gross_profit", "ltv_discounted")
    )
    tolerance = 1e-9 * (1 + revenue)
    assert (revenue >= gross - tolerance).all() and (gross >= discounted - tolerance).all()
    assert (discounted >= 0).all()
    for tier in ("revenue", "gross_profit", "discounted"):
        assert np.isfinite(ds[f"expected_ltv_{tier}"].values).all()
    if config["business"]["model"] == "deals":
        opportunities = math.ceil(
            config["simulation"]["horizon_months"] * config["deals"]["per_year"] / 12
        )
        assert (ds.orders_per_customer.values <= opportunities + 1e-9).all()


def test_pareto_nbd_defaults_are_its_own_cdnow_fit():
    """Without r and alpha, Pareto/NBD takes its own CDNOW estimates (r 0.553, alpha
    10.578 weeks = 2.4327 months), not BG/NBD's."""
    config = ltvsim.load_config(
        {"business": {"model": "repeat_purchase"}, "purchase": {"process": "pareto_nbd"}}
    )
    segment = config.segments[0]
    assert segment["purchase.r"] == 0.553
    assert segment["purchase.alpha_months"] == pytest.approx(10.578 * 12 * 7 / 365.25, abs=1e-4)
    given = ltvsim.load_config(
        {"business": {"model": "repeat_purchase"}, "purchase": {"process": "pareto_nbd", "r": 0.4}}
    )
    assert given.segments[0]["purchase.r"] == 0.4
