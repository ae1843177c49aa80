"""Antithetic input pairs: unbiased, same marginals, much less error per trial.

The exact answer here is a one-dimensional integral: with only the churn rate
uncertain, E[LTV] = ∫ f(c) dBeta(c), f the finite-horizon closed form.
"""

import math

import numpy as np
import pytest
import xarray as xr
from scipy import integrate, stats

import ltvsim
from ltvsim import formulas
from ltvsim.analysis import mean_standard_error

from .conftest import BASE, Z, merge

CHURN = {"dist": "beta", "mean": 0.03, "sd": 0.01}


def config(antithetic: bool, trials: int = 400):
    return merge(
        BASE,
        simulation={"trials": trials, "customers": 200, "antithetic_inputs": antithetic},
        churn={"monthly_rate": CHURN},
    )


def exact_mean_ltv() -> float:
    common = 0.03 * 0.97 / 0.01**2 - 1
    beta = stats.beta(0.03 * common, 0.97 * common)
    value, _ = integrate.quad(
        lambda c: formulas.constant_churn_ltv(1000, 0.8, c, horizon_months=120) * beta.pdf(c),
        0,
        1,
        limit=200,
    )
    return value


@pytest.fixture(scope="module")
def runs():
    return {a: ltvsim.simulate(config(a)) for a in (False, True)}


@pytest.mark.parametrize("antithetic", [False, True])
def test_mean_is_unbiased(runs, antithetic):
    ds = runs[antithetic]
    values = ds.expected_ltv_gross_profit.sel(segment="all").values
    mean, se = mean_standard_error(values, paired=antithetic)
    assert abs(mean - exact_mean_ltv()) <= Z * se
    # the summary reports the same estimate and error
    s = ltvsim.summarize(ds).sel(segment="all", measure="ltv_gross_profit")
    assert float(s.trial_mean) == pytest.approx(mean)
    assert float(s.mc_se) == pytest.approx(se)


def test_antithetic_pairs_cut_the_error(runs):
    _, plain = mean_standard_error(runs[False].expected_ltv_gross_profit.sel(segment="all"))
    _, paired = mean_standard_error(
        runs[True].expected_ltv_gross_profit.sel(segment="all"), paired=True
    )
    assert (plain / paired) ** 2 >= 10  # variance per trial, same number of trials


def test_each_trial_keeps_its_input_distribution(runs):
    drawn = runs[True].input_churn_monthly_rate.sel(segment="all").values
    common = 0.03 * 0.97 / 0.01**2 - 1
    assert stats.kstest(drawn, stats.beta(0.03 * common, 0.97 * common).cdf).pvalue > 1e-4
    # pairs mirror each other's quantile
    u = stats.beta(0.03 * common, 0.97 * common).cdf(drawn)
    np.testing.assert_allclose(u[0::2] + u[1::2], 1.0, atol=1e-9)


def test_reproducible_across_blocks_threads_and_prefixes(runs):
    ds = runs[True]
    again = ltvsim.simulate(config(True), threads=1, block_trials=7)
    xr.testing.assert_identical(again, ds)
    short = ltvsim.simulate(config(True, trials=11))
    np.testing.assert_array_equal(short.ltv_discounted.values, ds.ltv_discounted.values[:11])


def test_running_to_a_target_with_pairs():
    ds = ltvsim.simulate(config(True), target_rel_error=0.005)
    fixed = ltvsim.simulate(config(True), trials=ds.attrs["trials"])
    values = fixed.expected_ltv_discounted.sel(segment="all").values
    mean, se = mean_standard_error(values, paired=True)
    assert ds.attrs["achieved_rel_error"] == pytest.approx(se / mean)
    assert se / mean <= 0.005
    plain = ltvsim.simulate(config(False), target_rel_error=0.005)
    assert plain.attrs["trials"] >= 3 * ds.attrs["trials"]
    assert math.isfinite(ds.attrs["achieved_rel_error"])


def test_band_probability_errors_come_from_pairs(runs):
    ds = runs[True]
    ratio = ds.ltv_cac.sel(segment="all").values
    p, se = ltvsim.probability(ds, "ltv_cac < 3")
    expected = mean_standard_error((ratio < 3).astype(float), paired=True)
    assert (p, se) == pytest.approx(expected)
    bands = ltvsim.band_probabilities(ds)["ltv_cac"]
    assert sum(b["probability"] for b in bands) == pytest.approx(1.0)
    # independent trials keep the binomial error
    plain = runs[False]
    p, se = ltvsim.probability(plain, "ltv_cac < 3")
    assert se == pytest.approx(math.sqrt(p * (1 - p) / plain.sizes["trial"]))
