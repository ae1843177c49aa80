"""The existing base's value and the company forecast, against closed forms.

Given a trial's (alpha, beta), a customer who has renewed n times survives t
more monthly renewals with probability ``S_n(t) = B(α, β+n+t) / B(α, β+n)``,
independently of the others; so the survivors of a group of N are
Binomial(N, S_n(t)) and every expectation below is exact. Tolerances are
``Z`` (= 4) Monte Carlo standard errors estimated from the same run.
"""

import math

import numba
import numpy as np
import pytest
from scipy.special import betaln

from ltvsim import formulas
from ltvsim.config import ConfigError
from ltvsim.datafile import DataError
from ltvsim.forecast import (
    AcquisitionPlan,
    CustomerBase,
    forecast,
    read_base,
    read_plan,
    sbg_parameter_draws,
    value_base,
)

from .conftest import Z

MONTHLY_10 = 1.1 ** (1 / 12) - 1  # 10% a year, compounded


def sbg_config(alpha=0.9, beta=6.0, trials=40, horizon=240, renewal=1, **sections):
    config = {
        "simulation": {"trials": trials, "horizon_months": horizon, "seed": 11},
        "revenue": {"arpa_monthly": 100.0, "gross_margin": 0.8},
        "churn": {"model": "sbg", "alpha": alpha, "beta": beta, "renewal_months": renewal},
        "discount": {"annual_rate": 0.1},
    }
    for section, keys in sections.items():
        config.setdefault(section, {}).update(keys)
    return config


def survival(alpha, beta, renewals, t):
    """S_n(t): share of customers with n renewals made who are still active t renewals later."""
    return np.exp(betaln(alpha, beta + renewals + t) - betaln(alpha, beta + renewals))


def residual_lifetime(alpha, beta, renewals, horizon, renewal_months=1):
    """Σ_{t<H} S_n(⌊t/k⌋) (1+d)^−t: discounted months still paid (this month's included)."""
    t = np.arange(horizon)
    s = survival(alpha, beta, renewals, t // renewal_months)
    return float((s / (1 + MONTHLY_10) ** t).sum())


def mean_and_se(values):
    values = np.asarray(values, dtype=float)
    return values.mean(axis=0), values.std(axis=0, ddof=1) / math.sqrt(len(values))


def test_residual_lifetime_is_fader_hardie_derl():
    """The slow twin used below is F&H (2010)'s DERL with this month's payment in front."""
    for n in (0, 3, 20):
        long = residual_lifetime(0.9, 6.0, n, 20_000)
        derl = formulas.sbg_derl(0.9, 6.0, MONTHLY_10, n)
        assert long == pytest.approx(1 + derl / (1 + MONTHLY_10), rel=1e-9)


def test_value_of_base_matches_closed_forms():
    """Per-customer residual value: sBG survivors Beta(α, β+n), and constant churn α/(α+β)."""
    base = CustomerBase([0, 6, 36], [3000, 3000, 3000], [100.0, 120.0, 150.0])
    ds = value_base(sbg_config(), base)
    het = ds.residual_gross_profit_per_customer.values
    hom = ds.homogeneous_residual_gross_profit_per_customer.values
    churn = 0.9 / 6.9
    for i, (n, mrr) in enumerate(zip(base.tenure_months, base.mrr_per_customer, strict=True)):
        mean, se = mean_and_se(het[:, i])
        expected = mrr * 0.8 * residual_lifetime(0.9, 6.0, n, 240)
        assert abs(mean - expected) <= Z * se, (n, mean, expected, se)
        mean, se = mean_and_se(hom[:, i])
        expected = formulas.constant_churn_ltv(mrr, 0.8, churn, 0.0, MONTHLY_10, 240)
        assert abs(mean - expected) <= Z * se, (n, mean, expected, se)
    total = ds.base_value.values
    assert np.allclose(total, ds.residual_gross_profit.values.sum(axis=1))
    assert ds.residual_gross_profit.attrs["units"] == "USD"


def test_ignoring_heterogeneity_undervalues_long_tenured_customers():
    """Fader & Hardie (2010)'s finding on their 2007 'regular' cohort (α = 0.704, β = 1.182).

    Yearly renewals, 10% a year: the constant-churn model (churn 0.373 a year for
    everybody) values a customer the same whatever its tenure, while the sBG
    survivors of n renewals churn at α/(α+β+n): the heterogeneous value is higher
    and the gap grows with tenure. Closed forms (the test's numbers, per 1 of MRR
    and margin 1): tenure 0 → 20.8 vs 17.3 months; 1 year → 28.8 vs 17.3;
    4 years → 43.9 vs 17.3; 7 years → 52.6 vs 17.3.
    """
    tenures = np.arange(0, 96, 12)
    base = CustomerBase(tenures, np.full(8, 2000), np.full(8, 1.0))
    config = sbg_config(alpha=0.704, beta=1.182, renewal=12, horizon=600)
    config["revenue"]["gross_margin"] = 1.0
    ds = value_base(config, base)
    het = ds.residual_gross_profit_per_customer.values
    hom = ds.homogeneous_residual_gross_profit_per_customer.values
    ratio_mean, ratio_se = mean_and_se(het / hom)
    for i, n in enumerate(tenures // 12):
        expected = residual_lifetime(0.704, 1.182, n, 600, 12)
        mean, se = mean_and_se(het[:, i])
        assert abs(mean - expected) <= Z * se
    # heterogeneous > homogeneous at every tenure, by more than 4 SE
    assert np.all(ratio_mean - 1 > Z * ratio_se), ratio_mean
    # and the gap grows with tenure: each year's ratio above the previous one
    steps = np.diff(ratio_mean)
    step_se = np.hypot(ratio_se[1:], ratio_se[:-1])
    assert np.all(steps > Z * step_se), (ratio_mean, ratio_se)
    assert ratio_mean[-1] > 2.5  # long-tenured customers worth three times the naive value


def forecast_case(trials=400, cv=0.3):
    config = sbg_config(
        alpha={"dist": "lognormal", "mean": 0.9, "sd": 0.2},
        beta={"dist": "lognormal", "mean": 6.0, "sd": 1.0},
        trials=trials,
    )
    base = CustomerBase([0, 3, 12], [500, 400, 300], [80.0, 100.0, 130.0])
    plan = AcquisitionPlan(np.arange(18), np.full(18, 50.0), cv=cv)
    return config, base, plan


def conditional_moments(ds, base, arpa):
    """Per trial and month: E and Var of active customers and E of MRR given the trial's draws."""
    a, b = ds.churn_alpha.values[:, None], ds.churn_beta.values[:, None]
    months = ds.sizes["month"]
    t = np.arange(months)[None, :]
    mean = np.zeros((ds.sizes["trial"], months))
    var, mrr = np.zeros_like(mean), np.zeros_like(mean)
    for n, count, level in zip(
        base.tenure_months, base.customers, base.mrr_per_customer, strict=True
    ):
        s = survival(a, b, n, t)
        mean += count * s
        var += count * s * (1 - s)
        mrr += count * level * s
    acquired = ds.new_customers.values
    for m in range(months):
        s = np.where(t >= m, survival(a, b, 0, np.maximum(t - m, 0)), 0.0)
        mean += acquired[:, m : m + 1] * s
        var += acquired[:, m : m + 1] * s * (1 - s)
        mrr += acquired[:, m : m + 1] * arpa * s
    return mean, var, mrr


def test_forecast_is_binomial_around_its_trial_expectation():
    """Given a trial's (α, β) and acquisitions, active customers are a sum of binomials.

    The standardised residual has mean 0 and variance 1 in every month only if
    every group of the trial (base and new cohorts) uses that trial's α and β:
    groups drawing their own parameters would add their parameter variance.
    """
    config, base, plan = forecast_case()
    ds = forecast(config, base, plan, months=18)
    mean, var, mrr = conditional_moments(ds, base, arpa=100.0)
    active = ds.active_customers.values
    assert np.array_equal(active[:, 0] - ds.new_customers.values[:, 0], np.full(400, 1200))
    z = (active[:, 1:] - mean[:, 1:]) / np.sqrt(var[:, 1:])
    z_mean, z_se = mean_and_se(z)
    assert np.all(np.abs(z_mean) <= Z * z_se)
    # variance of a standardised sum of binomials: 1, within the SE of a sample variance
    z_var = z.var(axis=0, ddof=1)
    var_se = np.sqrt(((z - z.mean(axis=0)) ** 4).mean(axis=0) - z_var**2) / math.sqrt(len(z))
    assert np.all(np.abs(z_var - 1) <= Z * var_se), z_var
    # MRR: every customer keeps its starting MRR (no expansion), so its expectation is exact
    residual = ds.mrr.values - mrr
    r_mean, r_se = mean_and_se(residual[:, 1:])
    assert np.all(np.abs(r_mean) <= Z * r_se)
    gross = ds.gross_profit.values
    assert np.allclose(gross, 0.8 * ds.mrr.values)
    assert ds.mrr.attrs["units"] == "USD/month"


def test_forecast_month_zero_is_the_base():
    config, base, _ = forecast_case(trials=20)
    ds = forecast(config, base, None, months=6)
    assert np.all(ds.active_customers.values[:, 0] == 1200)
    assert np.allclose(ds.mrr.values[:, 0], (base.customers * base.mrr_per_customer).sum())
    assert np.array_equal(ds.base_active_customers.values, ds.active_customers.values)


def test_plan_counts_are_poisson_times_a_lognormal_factor():
    """Mean λ and variance λ + λ²·cv² (Poisson given the factor; the factor has mean 1)."""
    config, _, plan = forecast_case(trials=2000, cv=0.3)
    ds = forecast(config, None, plan, months=3)
    counts = ds.new_customers.values[:, 0].astype(float)
    mean, se = mean_and_se(counts)
    assert abs(mean - 50) <= Z * se
    var = counts.var(ddof=1)
    var_se = math.sqrt((((counts - counts.mean()) ** 4).mean() - var**2) / len(counts))
    assert abs(var - (50 + 50**2 * 0.09)) <= Z * var_se
    # the factor is common to the trial's months: months are positively correlated
    assert np.corrcoef(ds.new_customers.values[:, 0], ds.new_customers.values[:, 1])[0, 1] > 0.5


def test_fit_draws_keep_the_estimates_correlation():
    from ltvsim.fit import fit_sbg

    fit = fit_sbg([1000, 631, 468, 382, 326, 289, 262, 241])
    a, b = sbg_parameter_draws(fit, 4000, seed=1)
    theta = np.array([fit.alpha, fit.beta])
    target = fit.cov / np.outer(theta, theta)
    sample = np.cov(np.log(a), np.log(b))
    n = len(a)
    rho, rho_hat = target[0, 1] / math.sqrt(target[0, 0] * target[1, 1]), np.corrcoef(a, b)[0, 1]
    assert abs(np.corrcoef(np.log(a), np.log(b))[0, 1] - rho) <= Z * (1 - rho**2) / math.sqrt(n)
    assert rho_hat > 0.5  # alpha and beta move together
    for i in range(2):
        assert abs(sample[i, i] / target[i, i] - 1) <= Z * math.sqrt(2 / n)
    assert np.median(a) == pytest.approx(fit.alpha, rel=4 * math.sqrt(target[0, 0] / n) * 1.3)


def test_forecast_with_fit_uses_its_draws():
    from ltvsim.fit import fit_sbg

    fit = fit_sbg([1000, 631, 468, 382, 326, 289, 262, 241])
    config, base, plan = forecast_case(trials=30)
    ds = forecast(config, base, plan, months=4, fit=fit)
    a, b = sbg_parameter_draws(fit, 30, seed=11)
    assert np.array_equal(ds.churn_alpha.values, a)
    assert np.array_equal(ds.churn_beta.values, b)
    assert ds.attrs["parameters"] == "fit"


def test_forecast_is_reproducible_whatever_the_threads():
    config, base, plan = forecast_case(trials=30)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = forecast(config, base, plan, months=12)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = forecast(config, base, plan, months=12)
    finally:
        numba.set_num_threads(before)
    for name in ("mrr", "gross_profit", "active_customers", "new_customers"):
        assert np.array_equal(one[name].values, many[name].values)
    other = forecast(config, base, plan, months=12, seed=12)
    assert not np.array_equal(one.mrr.values, other.mrr.values)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_base_and_plan(tmp_path):
    base = read_base(write(tmp_path, "b.csv", "tenure_months,customers,mrr_per_customer\n0,5,10\n"))
    assert base.customers.tolist() == [5]
    plan = read_plan(write(tmp_path, "p.csv", "new_customers,month\n7.5,2\n"), cv=0.1)
    assert plan.month.tolist() == [2] and plan.new_customers.tolist() == [7.5]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("tenure_months,customers\n1,2\n", "missing column 'mrr_per_customer'"),
        ("tenure_months,customers,mrr_per_customer\n", "no data rows"),
        ("tenure_months,customers,mrr_per_customer\n1,x,3\n", "row 2, column customers"),
        ("tenure_months,customers,mrr_per_customer\n1,-2,3\n", "customers[0] = -2: must be"),
        ("tenure_months,customers,mrr_per_customer\n1.5,2,3\n", "tenure_months[0] = 1.5"),
        ("tenure_months,customers,mrr_per_customer\n1,2,3\n1,4,5\n", "only once"),
    ],
)
def test_bad_base_file_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(DataError, match=None) as info:
        read_base(write(tmp_path, "b.csv", text))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="acquisition plan not found"):
        read_plan(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="cv = -1"):
        AcquisitionPlan([0], [1.0], cv=-1)
    with pytest.raises(DataError, match="month\\[0\\]"):
        AcquisitionPlan([-1], [1.0])
    base = CustomerBase([6], [10], [1.0])
    with pytest.raises(DataError, match="multiples of it"):
        forecast(sbg_config(renewal=12), base, months=3)
    curve = sbg_config()
    curve["churn"] = {"model": "curve", "monthly_rates": [0.1, 0.05]}
    with pytest.raises(ConfigError, match="sbg' or 'constant'"):
        forecast(curve, base, months=3)
    segments = sbg_config()
    segments["segments"] = [{"name": "a", "share": 1.0}]
    with pytest.raises(ConfigError, match="without \\[\\[segments\\]\\]"):
        forecast(segments, base, months=3)
    with pytest.raises(ConfigError, match="months"):
        forecast(sbg_config(), base, months=0)


def test_cli_forecast(tmp_path):
    import json

    import xarray as xr
    from typer.testing import CliRunner

    from ltvsim.cli import app

    base = write(
        tmp_path, "base.csv", "tenure_months,customers,mrr_per_customer\n0,50,100\n6,30,110\n"
    )
    plan = write(tmp_path, "plan.csv", "month,new_customers\n0,10\n1,10\n2,10\n")
    config = write(tmp_path, "c.toml", '[churn]\nmodel = "sbg"\nalpha = 0.9\nbeta = 6.0\n')
    out = tmp_path / "f.nc"
    args = ["forecast", str(config), "--base", str(base), "--plan", str(plan), "--months", "6"]
    options = ["--trials", "30", "-o", str(out), "-f", "json", "--value-base"]
    result = CliRunner().invoke(app, [*args, *options])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    rows = document["months"]
    value = document["base_value"]
    assert [r["tenure_months"] for r in value] == [0, 6, "all"]
    assert value[1]["mean"] > value[1]["constant_churn_mean"]  # survivors churn less
    assert [r["month"] for r in rows] == [0, 1, 3, 5]
    assert rows[0]["active_customers"]["p10"] >= 80
    with xr.open_dataset(out) as ds:
        assert ds.mrr.dims == ("trial", "month") and ds.sizes["trial"] == 30
        assert ds.mrr.attrs["units"] == "USD/month"
    # mistakes: one line on stderr, exit status 2, the existing result untouched
    before = out.read_bytes()
    bad = write(tmp_path, "bad.csv", "tenure_months,customers,mrr_per_customer\n0,many,100\n")
    for wrong in (
        ["--base", str(bad)],
        ["--base", str(tmp_path / "nowhere.csv")],
        ["--plan", str(base)],
        ["--plan", str(plan), "--plan-cv", "-0.5"],
        ["--plan", str(plan), "--value-base"],
        [],
    ):
        result = CliRunner().invoke(app, ["forecast", str(config), *wrong, "-o", str(out)])
        assert result.exit_code == 2, (wrong, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("error:")
    assert out.read_bytes() == before


def test_forecast_chart(tmp_path):
    pytest.importorskip("matplotlib")
    from ltvsim import plot

    config, base, plan = forecast_case(trials=30)
    ds = forecast(config, base, plan, months=8)
    realised = ds.active_customers.isel(trial=0).values
    fig = plot.forecast_chart(ds, "active_customers", realised=realised)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["median", "existing base", "realised"]
    median = ax.get_lines()[0].get_ydata()
    assert np.allclose(median, ds.active_customers_band.sel(quantile=0.5).values)
    # one shaded band per pair of quantiles: 2.5-97.5, 10-90, 25-75
    assert len(ax.collections) == 3
    path = plot.save(plot.forecast_chart(ds), tmp_path / "f.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="unknown forecast variable"):
        plot.forecast_chart(ds, "ltv")


def test_constant_churn_base_has_no_heterogeneity_gap():
    """With constant churn the two answers are the same model: equal in distribution."""
    config = sbg_config(trials=60)
    config["churn"] = {"model": "constant", "annual_rate": 0.3}
    base = CustomerBase([0, 24], [2000, 2000], [100.0, 100.0])
    ds = value_base(config, base)
    diff = ds.residual_gross_profit.values - ds.homogeneous_residual_gross_profit.values
    mean, se = mean_and_se(diff)
    assert np.all(np.abs(mean) <= Z * se)
    churn = 1 - 0.7 ** (1 / 12)
    expected = formulas.constant_churn_ltv(100.0, 0.8, churn, 0.0, MONTHLY_10, 240)
    per_customer, se = mean_and_se(ds.residual_gross_profit_per_customer.values)
    assert np.all(np.abs(per_customer - expected) <= Z * se)
    assert np.allclose(ds.mean_churn.values, churn)  # per monthly renewal, compounded


def test_bad_quantiles():
    base = CustomerBase([0], [10], [1.0])
    with pytest.raises(ConfigError, match="quantiles"):
        forecast(sbg_config(), base, months=2, quantiles=[0.5, 1.5])
    with pytest.raises(ConfigError, match="quantiles"):
        value_base(sbg_config(), base, quantiles=[])


def test_fit_replaces_a_correlated_config_and_orders_are_refused():
    """A config from ``SBGFit.to_config`` (correlated alpha, beta) takes a fit's draws instead."""
    from ltvsim.fit import fit_sbg

    fit = fit_sbg([1000, 631, 468, 382, 326, 289, 262, 241])
    config = {**sbg_config(trials=20), **fit.to_config()}
    base = CustomerBase([0, 1], [100, 50], [10.0, 10.0])
    from_config = forecast(config, base, months=3)
    from_fit = forecast(config, base, months=3, fit=fit)
    assert np.array_equal(from_fit.churn_alpha.values, sbg_parameter_draws(fit, 20, seed=11)[0])
    assert not np.array_equal(from_config.churn_alpha.values, from_fit.churn_alpha.values)
    orders = {"business": {"model": "repeat_purchase"}}
    with pytest.raises(ConfigError, match=r"needs business\.model = .subscription."):
        forecast(orders, base, months=3)


def test_read_base_accepts_a_spreadsheet_bom(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark; the header must still be found."""
    path = tmp_path / "b.csv"
    path.write_bytes("\ufefftenure_months,customers,mrr_per_customer\n0,5,10\n".encode())
    assert read_base(path).customers.tolist() == [5]
