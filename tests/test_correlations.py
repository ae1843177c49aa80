"""Correlated uncertain inputs: a Gaussian copula declared by ``[[correlations]]``.

Statistical checks use Z = 4 standard errors (conftest): the sample
correlation through Fisher's z (``atanh r`` has sd ``1/sqrt(n-3)`` for a
normal pair; ``sqrt(1.06/(n-3))`` for Spearman's rank correlation, Fieller,
Hartley & Pearson, Biometrika 44, 1957), marginal moments through their
sample standard errors.
"""

import copy
import math

import numpy as np
import pytest
import xarray as xr
from scipy.special import ndtri

import ltvsim
from ltvsim import fit
from ltvsim._rng import stream_key
from ltvsim.config import ConfigError, load_config
from ltvsim.model import correlated_uniforms, draw_inputs, trial_uniforms

from .conftest import BASE, Z, merge

LOGNORMAL_CAC = {"dist": "lognormal", "mean": 12000.0, "sd": 3000.0}
LOGNORMAL_ARPA = {"dist": "lognormal", "mean": 1000.0, "sd": 400.0}
BETA_MARGIN = {"dist": "beta", "mean": 0.8, "sd": 0.05}
GAMMA_COST = {"dist": "gamma", "mean": 50.0, "sd": 20.0}


def config_with(correlations, trials=20000, **extra):
    raw = merge(
        BASE,
        simulation={"trials": trials, "customers": 10, "horizon_months": 3},
        acquisition={"cac": LOGNORMAL_CAC},
        revenue={
            "arpa_monthly": LOGNORMAL_ARPA,
            "gross_margin": BETA_MARGIN,
            "cost_to_serve_monthly": GAMMA_COST,
        },
        **extra,
    )
    if correlations is not None:
        raw["correlations"] = correlations
    return raw


def draws(raw, first=0, count=None):
    config = load_config(raw)
    segment = config.segments[0]
    return draw_inputs(config, segment, first, config.trials if count is None else count)


def fisher_z_ok(r: float, rho: float, n: int, variance: float = 1.0) -> bool:
    return abs(math.atanh(r) - math.atanh(rho)) < Z * math.sqrt(variance / (n - 3))


def test_without_correlations_every_draw_is_its_own_streams_inverse_cdf_bit_for_bit():
    # The pre-copula rule: value = ppf(uniform of the key's own stream).
    for antithetic in (False, True):
        raw = config_with(None, trials=501)
        raw["simulation"]["antithetic_inputs"] = antithetic
        config = load_config(raw)
        segment = config.segments[0]
        got = draw_inputs(config, segment, 7, 501)
        for path in ("acquisition.cac", "revenue.arpa_monthly", "revenue.gross_margin"):
            key = stream_key(config.seed, "input", path)
            expected = segment[path].ppf(trial_uniforms(key, 7, 501, antithetic))
            assert np.array_equal(got[path], expected)


def test_inputs_outside_a_correlation_are_unchanged_bit_for_bit():
    plain = draws(config_with(None, trials=2000))
    pair = [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.6}]
    correlated = draws(config_with(pair, trials=2000))
    for path in ("revenue.gross_margin", "revenue.cost_to_serve_monthly"):
        assert np.array_equal(plain[path], correlated[path])
    assert not np.array_equal(plain["revenue.arpa_monthly"], correlated["revenue.arpa_monthly"])


def test_lognormal_pair_has_the_correlation_of_its_logs_and_keeps_its_marginals():
    # A Gaussian copula of two lognormals is the bivariate lognormal: corr(log) = rho.
    n, rho = 20000, -0.7
    pair = [{"keys": ["revenue.arpa_monthly", "acquisition.cac"], "rho": rho}]
    got = draws(config_with(pair, trials=n))
    log_cac, log_arpa = np.log(got["acquisition.cac"]), np.log(got["revenue.arpa_monthly"])
    r = np.corrcoef(log_cac, log_arpa)[0, 1]
    assert fisher_z_ok(r, rho, n), r
    for values, spec in ((log_cac, LOGNORMAL_CAC), (log_arpa, LOGNORMAL_ARPA)):
        s2 = math.log1p((spec["sd"] / spec["mean"]) ** 2)
        mu = math.log(spec["mean"]) - s2 / 2
        assert abs(values.mean() - mu) < Z * math.sqrt(s2 / n)
        # sample variance of a normal: sd sigma^2 sqrt(2/(n-1))
        assert abs(values.var(ddof=1) - s2) < Z * s2 * math.sqrt(2 / (n - 1))


def test_three_inputs_of_other_families_have_the_copulas_rank_correlations():
    # Spearman's rho of a Gaussian copula: (6/pi) arcsin(rho/2) (Pearson 1907).
    n = 20000
    rhos = {
        ("revenue.arpa_monthly", "revenue.gross_margin"): 0.5,
        ("revenue.gross_margin", "revenue.cost_to_serve_monthly"): -0.4,
        ("revenue.arpa_monthly", "revenue.cost_to_serve_monthly"): 0.3,
    }
    entries = [{"keys": list(pair), "rho": rho} for pair, rho in rhos.items()]
    got = draws(config_with(entries, trials=n))
    ranks = {path: np.argsort(np.argsort(got[path])) for pair in rhos for path in pair}
    for (a, b), rho in rhos.items():
        spearman = np.corrcoef(ranks[a], ranks[b])[0, 1]
        assert fisher_z_ok(spearman, 6 / math.pi * math.asin(rho / 2), n, 1.06), (a, b)
    # marginals: the beta and gamma keep their mean and sd
    for path, spec in (
        ("revenue.gross_margin", BETA_MARGIN),
        ("revenue.cost_to_serve_monthly", GAMMA_COST),
    ):
        values = got[path]
        assert abs(values.mean() - spec["mean"]) < Z * spec["sd"] / math.sqrt(n)
        # relative se of a sample sd: sqrt((kurtosis - 1) / (4 n))
        kurtosis = np.mean((values - values.mean()) ** 4) / values.var() ** 2
        assert abs(values.std(ddof=1) / spec["sd"] - 1) < Z * math.sqrt((kurtosis - 1) / (4 * n))


def test_correlated_uniforms_are_uniform():
    # Kolmogorov-Smirnov distance of each stream's copula uniforms from U(0, 1):
    # 1.95/sqrt(n) is the 0.1% critical value.
    n = 20000
    pair = [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.95}]
    config = load_config(config_with(pair, trials=n))
    (group,) = config.input_groups
    for u in correlated_uniforms(config, group, 0, n).values():
        u = np.sort(u)
        grid = np.arange(1, n + 1) / n
        distance = max(np.max(grid - u), np.max(u - (grid - 1 / n)))
        assert distance < 1.95 / math.sqrt(n)


def test_correlated_draws_do_not_depend_on_how_trials_are_split():
    pair = [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.8}]
    raw = config_with(pair, trials=1000)
    whole = draws(raw)
    parts = [draws(raw, first, count) for first, count in ((0, 1), (1, 376), (377, 623))]
    for path, values in whole.items():
        assert np.array_equal(values, np.concatenate([p[path] for p in parts]))


def test_simulation_with_correlations_is_bit_identical_across_block_sizes():
    raw = config_with(
        [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.8}], trials=12
    )
    raw["simulation"]["customers"] = 300
    reference = ltvsim.simulate(raw, block_trials=12)
    xr.testing.assert_identical(ltvsim.simulate(raw, block_trials=5), reference)


def test_antithetic_pairs_mirror_the_correlated_normal_scores():
    pair = [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.8}]
    raw = config_with(pair, trials=400)
    raw["simulation"]["antithetic_inputs"] = True
    config = load_config(raw)
    (group,) = config.input_groups
    for u in correlated_uniforms(config, group, 0, 400).values():
        z = ndtri(u)
        np.testing.assert_allclose(z[1::2], -z[0::2], rtol=0, atol=1e-9)


def segmented(correlations, segments):
    raw = config_with(correlations, trials=300)
    raw["segments"] = segments
    return load_config(raw)


def test_top_level_correlations_are_shared_and_segment_correlations_are_own():
    top = [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.9}]
    own = {"dist": "lognormal", "mean": 500.0, "sd": 100.0}
    config = segmented(
        top,
        [
            {"name": "a", "share": 0.5},
            # overrides one input of the top-level pair: its own arpa is independent,
            # the inherited cac keeps the shared draws
            {"name": "b", "share": 0.3, "revenue": {"arpa_monthly": own}},
            {
                "name": "c",
                "share": 0.2,
                "revenue": {"arpa_monthly": own, "gross_margin": BETA_MARGIN},
                "correlations": [
                    {"keys": ["revenue.arpa_monthly", "revenue.gross_margin"], "rho": -0.9}
                ],
            },
        ],
    )
    got = {s.name: draw_inputs(config, s, 0, config.trials) for s in config.segments}
    assert np.array_equal(got["a"]["acquisition.cac"], got["b"]["acquisition.cac"])
    assert np.array_equal(got["a"]["acquisition.cac"], got["c"]["acquisition.cac"])
    assert (
        np.corrcoef(np.log(got["a"]["acquisition.cac"]), np.log(got["a"]["revenue.arpa_monthly"]))[
            0, 1
        ]
        > 0.8
    )
    r_b = np.corrcoef(
        np.log(got["b"]["acquisition.cac"]), np.log(got["b"]["revenue.arpa_monthly"])
    )[0, 1]
    assert fisher_z_ok(r_b, 0.0, config.trials)
    r_c = np.corrcoef(
        np.log(got["c"]["revenue.arpa_monthly"]), ndtri_of_beta(got["c"]["revenue.gross_margin"])
    )[0, 1]
    assert r_c < -0.8
    streams = {g.streams for g in config.input_groups}
    assert streams == {
        ("acquisition.cac", "revenue.arpa_monthly"),
        ("c/revenue.arpa_monthly", "c/revenue.gross_margin"),
    }


def ndtri_of_beta(values):
    """Normal scores by rank (the copula's scale)."""
    n = values.size
    return ndtri((np.argsort(np.argsort(values)) + 0.5) / n)


def test_override_fixing_a_correlated_input_drops_its_correlation():
    pair = [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.8}]
    config = load_config(config_with(pair, trials=10))
    fixed = config.with_overrides({"acquisition.cac": 10000})
    assert fixed.input_groups == ()
    kept = config.with_overrides({"acquisition.cac": {"dist": "gamma", "mean": 9000, "sd": 900}})
    assert len(kept.input_groups) == 1


@pytest.mark.parametrize(
    "correlations, match",
    [
        (
            {"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.5},
            r"^correlations: must be an array of tables",
        ),
        (["x"], r"^correlations\[0\]: must be a table"),
        (
            [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rh": 0.5}],
            r"correlations\[0\]\.rh: unknown key; did you mean 'rho'",
        ),
        (
            [{"keys": ["acquisition.cac"], "rho": 0.5}],
            r"correlations\[0\]\.keys: must be a list of two config keys",
        ),
        (
            [{"keys": ["acquisition.cca", "revenue.arpa_monthly"], "rho": 0.5}],
            r"unknown config key 'acquisition.cca'; did you mean 'acquisition.cac'",
        ),
        (
            [{"keys": ["discount.annual_rate", "revenue.arpa_monthly"], "rho": 0.5}],
            r"discount.annual_rate is not set to a distribution at the top level",
        ),
        (
            [{"keys": ["churn.renewal_months", "revenue.arpa_monthly"], "rho": 0.5}],
            r"churn.renewal_months cannot be uncertain",
        ),
        (
            [{"keys": ["acquisition.cac", "acquisition.cac"], "rho": 0.5}],
            r"names 'acquisition.cac' twice",
        ),
        (
            [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 1.0}],
            r"correlations\[0\]\.rho: must be a number in \(-1, 1\), got 1.0",
        ),
        (
            [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": "high"}],
            r"rho: must be a number in \(-1, 1\)",
        ),
        (
            [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": math.nan}],
            r"rho: must be a number in \(-1, 1\)",
        ),
        (
            [
                {"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.5},
                {"keys": ["revenue.arpa_monthly", "acquisition.cac"], "rho": 0.4},
            ],
            r"correlations\[1\]: the pair acquisition.cac, revenue.arpa_monthly is correlated "
            "twice",
        ),
        (
            [
                {"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.9},
                {"keys": ["revenue.arpa_monthly", "revenue.gross_margin"], "rho": 0.9},
                {"keys": ["acquisition.cac", "revenue.gross_margin"], "rho": -0.9},
            ],
            r"^correlations: the correlations of acquisition.cac, revenue.arpa_monthly, "
            r"revenue.gross_margin contradict each other: their matrix is not positive definite",
        ),
    ],
)
def test_bad_correlations_are_one_line_errors_naming_the_entry(correlations, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config(config_with(correlations, trials=10))
    assert "\n" not in str(info.value)


def test_segment_correlations_must_name_the_segments_own_inputs():
    inherited = [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.5}]
    with pytest.raises(
        ConfigError,
        match=r"^segments.a.correlations\[0\]\.keys: acquisition.cac is not set to a "
        "distribution in this segment",
    ):
        segmented(None, [{"name": "a", "share": 1.0, "correlations": inherited}])


def test_to_config_with_correlation_matches_the_fits_delta_method_sd_of_retention():
    # Fader & Hardie (2007) "regular" cohort, 7 years: alpha 0.704, beta 1.182,
    # estimates correlated 0.89. The simulated retention after one period,
    # beta/(alpha+beta) with alpha and beta drawn per trial, must vary across
    # trials as the delta method says: sd = sqrt(g' cov g), g the gradient.
    result = fit.fit_sbg([1000, 631, 468, 382, 326, 289, 262, 241])
    a, b = result.alpha, result.beta
    gradient = np.array([-b, a]) / (a + b) ** 2
    section = result.to_config(renewal_months=1)
    trials, customers = 2000, 4000
    base = {
        "simulation": {"trials": trials, "customers": customers, "horizon_months": 2, "seed": 3},
        "churn": section["churn"],
    }
    for cov, correlations in (
        (result.cov, section["correlations"]),
        (np.diag(np.diag(result.cov)), None),  # what independent draws give
    ):
        raw = copy.deepcopy(base)
        if correlations is not None:
            raw["correlations"] = correlations
        ds = ltvsim.simulate(raw)
        retained = ds.survival.sel(segment="all", period=1).values
        alpha = ds.input_churn_alpha.sel(segment="all").values
        beta = ds.input_churn_beta.sel(segment="all").values
        exact = beta / (alpha + beta)
        # the cohort adds binomial noise E[S(1-S)]/n to the trials' variance: remove it
        total = retained.var(ddof=1)
        sd = math.sqrt(total - np.mean(exact * (1 - exact)) / customers)
        delta = math.sqrt(gradient @ cov @ gradient)
        # se of a sample variance ~ var sqrt(2/(T-1)); of the sd, that / (2 sd)
        se = total * math.sqrt(2 / (trials - 1)) / (2 * sd)
        assert abs(sd - delta) < Z * se, (sd, delta, se)
        if correlations is not None:
            correlated_sd = sd
    assert sd > 2 * correlated_sd  # dropping the correlation widens churn uncertainty


def test_derived_configs_drop_correlations_of_inputs_they_fix():
    # naive averaging turns an input that differs between segments into a number, the
    # worksheet uses point inputs: neither may trip over a correlation of the original.
    from ltvsim.mix import naive_average_config
    from ltvsim.worksheet import worksheet

    top = [{"keys": ["acquisition.cac", "revenue.arpa_monthly"], "rho": 0.5}]
    config = segmented(
        top,
        [
            {"name": "a", "share": 0.5},
            {"name": "b", "share": 0.5, "revenue": {"arpa_monthly": 500.0}},
        ],
    )
    naive, averaged = naive_average_config(config)
    assert "revenue.arpa_monthly" in averaged and naive.input_groups == ()
    same = segmented(top, [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}])
    assert len(naive_average_config(same)[0].input_groups) == 1  # both keys still shared
    # a horizon long enough to pay CAC back (the worksheet's payback quantiles)
    sheet = worksheet(
        same.with_overrides({"simulation.horizon_months": 120}), trials=4, customers=50
    )
    assert len(sheet.segments) == 2
