"""Config validation: every user mistake is a ConfigError naming the key, the bad
value and what would be valid; every valid form is accepted and means what it says.
"""

import math

import numpy as np
import pytest
from scipy import stats

import ltvsim
from ltvsim import ConfigError, load_config
from ltvsim.config import key_spec
from ltvsim.distributions import Distribution

from .conftest import BASE, CONFIGS, merge

SHIPPED = sorted(CONFIGS.glob("*.toml"))
NAN = float("nan")


def _error(raw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    return info.value


def _segments(*segments) -> dict:
    return {**BASE, "segments": list(segments)}


# A message fragment standing for the key's valid range as the schema renders it.
RANGE = "<range>"


def _expect(error: ConfigError, fragments):
    """The message contains every fragment; RANGE means the range of ``error.key``."""
    for fragment in fragments:
        if fragment == RANGE:
            fragment = key_spec(error.key.split("[")[0].removeprefix("segments.a.")).range_text()
        assert fragment in str(error)


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.segments


def test_missing_file(tmp_path):
    missing = tmp_path / "nothere.toml"
    error = _error(missing)
    assert "not found" in str(error)
    assert str(missing) in str(error)


def test_directory(tmp_path):
    error = _error(tmp_path)
    assert "directory" in str(error)
    assert str(tmp_path) in str(error)


def test_malformed_toml_gives_line_and_column(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[revenue]\ngross_margin = = 0.8\n")
    error = _error(path)
    assert "not valid TOML" in str(error)
    assert "line 2, column 16" in str(error)


def test_binary_file_is_not_toml(tmp_path):
    path = tmp_path / "result.nc"
    path.write_bytes(b"\x89HDF\r\n\x1a\n\x00\xff\xfe")
    error = _error(path)
    assert "not a TOML file" in str(error)
    assert str(path) in str(error)


def test_toml_nan(tmp_path):
    path = tmp_path / "nan.toml"
    path.write_text("[revenue]\narpa_monthly = nan\n")
    error = _error(path)
    assert error.key == "revenue.arpa_monthly"
    assert "revenue.arpa_monthly" in str(error)
    assert "NaN" in str(error)


def test_toml_file_and_mapping_agree(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text('[churn]\nannual_rate = 0.22\n[discount]\ntiming = "end"\n')
    from_file = load_config(path)
    from_mapping = load_config({"churn": {"annual_rate": 0.22}, "discount": {"timing": "end"}})
    assert from_file.segments == from_mapping.segments


# ------------------------------------------------------------------ names of things


def test_unknown_section_suggests():
    error = _error(merge(BASE, revenu={"arpa_monthly": 100}))
    assert error.key == "revenu"
    assert "unknown section" in str(error)
    assert "did you mean 'revenue'?" in str(error)


def test_unknown_key_suggests():
    error = _error(merge(BASE, revenue={"gross_margn": 0.7}))
    assert error.key == "revenue.gross_margn"
    assert "revenue.gross_margn" in str(error)
    assert "did you mean 'gross_margin'?" in str(error)


def test_unknown_key_without_close_match_lists_keys():
    error = _error(merge(BASE, churn={"zzz": 1}))
    assert error.key == "churn.zzz"
    assert "valid keys: model, monthly_rate, annual_rate" in str(error)


def test_unknown_key_in_segment_suggests():
    error = _error(_segments({"name": "a", "share": 1.0, "churn": {"monthly_rat": 0.1}}))
    assert error.key == "segments.a.churn.monthly_rat"
    assert "did you mean 'monthly_rate'?" in str(error)


def test_unknown_choice_lists_choices():
    error = _error(merge(BASE, churn={"model": "sgb"}))
    assert error.key == "churn.model"
    assert "'sgb'" in str(error)
    assert key_spec("churn.model").range_text() in str(error)
    assert all(f'"{choice}"' in str(error) for choice in ("constant", "sbg", "curve"))


# ---------------------------------------------------------------- values and ranges

# (sections to merge into BASE, key, fragments the message must contain)
OUT_OF_RANGE = {
    "churn above 1": ({"churn": {"monthly_rate": 1.5}}, "churn.monthly_rate", ["1.5", RANGE]),
    "churn below 0": ({"churn": {"monthly_rate": -0.1}}, "churn.monthly_rate", ["-0.1", RANGE]),
    "annual churn above 1": (
        {"churn": {"monthly_rate": None, "annual_rate": 2.0}},
        "churn.annual_rate",
        ["2.0", RANGE],
    ),
    "margin above 1": ({"revenue": {"gross_margin": 1.2}}, "revenue.gross_margin", ["1.2", RANGE]),
    "negative arpa": ({"revenue": {"arpa_monthly": -5}}, "revenue.arpa_monthly", ["-5", RANGE]),
    "negative cac": ({"acquisition": {"cac": -1}}, "acquisition.cac", ["-1", RANGE]),
    "zero cac": ({"acquisition": {"cac": 0}}, "acquisition.cac", ["got 0", RANGE]),
    "infinite cac": ({"acquisition": {"cac": math.inf}}, "acquisition.cac", ["inf", RANGE]),
    "zero trials": ({"simulation": {"trials": 0}}, "simulation.trials", ["got 0", RANGE]),
    "fractional trials": ({"simulation": {"trials": 2.5}}, "simulation.trials", ["2.5", "whole"]),
    "huge int": ({"simulation": {"customers": 10**400}}, "simulation.customers", ["finite"]),
    "zero horizon": (
        {"simulation": {"horizon_months": 0}},
        "simulation.horizon_months",
        ["got 0", RANGE],
    ),
    "bool for number": (
        {"revenue": {"arpa_monthly": True}},
        "revenue.arpa_monthly",
        ["must be a number", "True"],
    ),
    "text for number": (
        {"revenue": {"arpa_monthly": "1000"}},
        "revenue.arpa_monthly",
        ["must be a number", "'1000'"],
    ),
    "bool for int": ({"simulation": {"trials": True}}, "simulation.trials", ["True"]),
    "distribution on a fixed key": (
        {"simulation": {"trials": {"dist": "uniform", "low": 1, "high": 9}}},
        "simulation.trials",
        ["cannot be uncertain"],
    ),
}


@pytest.mark.parametrize("case", OUT_OF_RANGE, ids=str)
def test_bad_value(case):
    sections, key, fragments = OUT_OF_RANGE[case]
    raw = merge(BASE, **sections)
    raw["churn"] = {k: v for k, v in raw["churn"].items() if v is not None}
    error = _error(raw)
    assert error.key == key
    assert str(error).startswith(f"{key}: ")
    _expect(error, fragments)


def test_section_not_a_table():
    error = _error({**BASE, "revenue": 5})
    assert error.key == "revenue"
    assert "must be a table of keys, got 5" in str(error)


# (where the NaN goes, key)
NANS = {
    "number": ({"revenue": {"arpa_monthly": NAN}}, "revenue.arpa_monthly"),
    "rate": ({"churn": {"monthly_rate": NAN}}, "churn.monthly_rate"),
    "int": ({"simulation": {"seed": NAN}}, "simulation.seed"),
    "list item": ({"simulation": {"quantiles": [0.5, NAN]}}, "simulation.quantiles[1]"),
    "distribution parameter": (
        {"revenue": {"gross_margin": {"dist": "beta", "mean": NAN, "sd": 0.1}}},
        "revenue.gross_margin",
    ),
}


@pytest.mark.parametrize("case", NANS, ids=str)
def test_nan_is_rejected(case):
    sections, key = NANS[case]
    error = _error(merge(BASE, **sections))
    assert error.key == key
    assert "nan" in str(error).lower()


def test_nan_share_is_rejected():
    error = _error(_segments({"name": "a", "share": NAN}, {"name": "b", "share": 0.5}))
    assert error.key == "segments.a.share"
    assert "nan" in str(error)


def test_nan_in_segment_override_is_rejected():
    error = _error(_segments({"name": "a", "share": 1.0, "revenue": {"arpa_monthly": NAN}}))
    assert error.key == "segments.a.revenue.arpa_monthly"
    assert "NaN" in str(error)


# --------------------------------------------------------------------------- segments


def test_shares_must_sum_to_one():
    error = _error(_segments({"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}))
    assert error.key == "segments"
    assert "sum to 1" in str(error)
    assert "0.9" in str(error)
    assert "a=0.5, b=0.4" in str(error)


def test_share_out_of_range():
    error = _error(_segments({"name": "a", "share": 1.5}))
    assert error.key == "segments.a.share"
    assert "(0, 1]" in str(error)
    assert "1.5" in str(error)


def test_duplicate_segment_name():
    error = _error(_segments({"name": "a", "share": 0.5}, {"name": "a", "share": 0.5}))
    assert error.key == "segments.a.name"
    assert "'a'" in str(error)
    assert "used twice" in str(error)


def test_segment_named_all():
    error = _error(_segments({"name": "all", "share": 1.0}))
    assert error.key == "segments.all.name"
    assert "reserved" in str(error)


@pytest.mark.parametrize("name", [None, "", 7])
def test_segment_without_name(name):
    segment = {"share": 0.5} if name is None else {"name": name, "share": 0.5}
    error = _error(_segments({"name": "a", "share": 0.5}, segment))
    assert error.key == "segments[1].name"
    assert "needs a name" in str(error)


def test_segments_not_an_array():
    error = _error({**BASE, "segments": {"name": "a", "share": 1.0}})
    assert error.key == "segments"
    assert "[[segments]]" in str(error)


def test_segment_cannot_override_discount_timing():
    raw = _segments({"name": "a", "share": 1.0, "discount": {"timing": "end"}})
    error = _error(raw)
    assert error.key == "segments.a.discount.timing"
    assert "[discount]" in str(error)


def test_segment_cannot_set_simulation():
    error = _error(_segments({"name": "a", "share": 1.0, "simulation": {"trials": 5}}))
    assert error.key == "segments.a.simulation"


def test_segment_monthly_rate_replaces_top_level_annual_rate():
    raw = {
        "churn": {"annual_rate": 0.22},
        "segments": [
            {"name": "a", "share": 0.5, "churn": {"monthly_rate": 0.05}},
            {"name": "b", "share": 0.5},
        ],
    }
    a, b = load_config(raw).segments
    assert a["churn.monthly_rate"] == 0.05
    assert a["churn.annual_rate"] is None
    assert b["churn.annual_rate"] == 0.22
    assert b["churn.monthly_rate"] is None


# ------------------------------------------------------------------------ churn model


def test_monthly_and_annual_rate_both_given():
    error = _error(merge(BASE, churn={"monthly_rate": 0.02, "annual_rate": 0.2}))
    assert error.key == "churn"
    assert "monthly_rate or annual_rate, not both" in str(error)


def test_sbg_needs_alpha():
    error = _error({"churn": {"model": "sbg", "beta": 3.0}})
    assert error.key == "churn.alpha"
    assert "'sbg' needs churn.alpha" in str(error)


def test_keys_of_another_churn_model():
    error = _error({"churn": {"model": "constant", "alpha": 1.0}})
    assert error.key == "churn.alpha"
    assert "churn.model = 'sbg'" in str(error)
    assert "'constant'" in str(error)


def test_keys_of_another_churn_model_in_segment():
    error = _error(_segments({"name": "a", "share": 1.0, "churn": {"monthly_rates": [0.1]}}))
    assert error.key == "segments.a.churn.monthly_rates"
    assert "'curve'" in str(error)


def test_upsell_plus_downgrade_above_one():
    error = _error(
        merge(
            BASE,
            expansion={"upsell_monthly_probability": 0.6, "downgrade_monthly_probability": 0.5},
        )
    )
    assert error.key == "expansion"
    assert "0.6 + 0.5" in str(error)


def test_upsell_plus_downgrade_above_one_by_distribution():
    upsell = {"dist": "uniform", "low": 0.2, "high": 0.7}
    raw = merge(
        BASE, expansion={"upsell_monthly_probability": upsell, "downgrade_monthly_probability": 0.4}
    )
    error = _error(raw)
    assert error.key == "expansion"
    assert "0.7 + 0.4" in str(error)


def test_upsell_plus_downgrade_at_one_is_accepted():
    raw = merge(
        BASE, expansion={"upsell_monthly_probability": 0.5, "downgrade_monthly_probability": 0.5}
    )
    assert load_config(raw).segments[0]["expansion.upsell_monthly_probability"] == 0.5


# ---------------------------------------------------------------------- distributions

# (distribution, key to put it on, fragments the message must contain)
BAD_DISTRIBUTIONS = {
    "beta sd too large": (
        {"dist": "beta", "mean": 0.02, "sd": 0.5},
        "churn.monthly_rate",
        ["sd = 0.5", "sqrt(mean*(1-mean))", "0.14"],
    ),
    "triangular mode outside": (
        {"dist": "triangular", "low": 500, "mode": 2000, "high": 1500},
        "revenue.arpa_monthly",
        ["low <= mode <= high", "500, 2000, 1500"],
    ),
    "pert mode outside": (
        {"dist": "pert", "low": 9000, "mode": 8000, "high": 18000},
        "acquisition.cac",
        ["low <= mode <= high"],
    ),
    "unknown family": (
        {"dist": "betta", "mean": 0.02, "sd": 0.01},
        "churn.monthly_rate",
        ["'betta'", "choose one of normal, lognormal, beta, gamma, uniform, triangular, pert"],
    ),
    "no family": ({"mean": 0.02, "sd": 0.01}, "churn.monthly_rate", ["dist = one of normal"]),
    "family not text": ({"dist": ["beta"]}, "churn.monthly_rate", ["['beta']"]),
    "missing parameter": (
        {"dist": "gamma", "mean": 1000},
        "revenue.arpa_monthly",
        ["gamma needs mean, sd", "missing sd"],
    ),
    "unknown parameter": (
        {"dist": "uniform", "low": 0, "high": 1, "mode": 0.5},
        "revenue.gross_margin",
        ["unknown mode"],
    ),
    "bool parameter": (
        {"dist": "gamma", "mean": True, "sd": 1},
        "revenue.arpa_monthly",
        ["must be a number", "True"],
    ),
    "zero sd": ({"dist": "lognormal", "mean": 1000, "sd": 0}, "revenue.arpa_monthly", ["sd > 0"]),
    "negative lognormal mean": (
        {"dist": "lognormal", "mean": -1, "sd": 1},
        "revenue.arpa_monthly",
        ["mean > 0"],
    ),
    "uniform reversed": (
        {"dist": "uniform", "low": 0.9, "high": 0.1},
        "revenue.gross_margin",
        ["low < high", "0.9, 0.1"],
    ),
    "normal on a rate": (
        {"dist": "normal", "mean": 0.02, "sd": 0.005},
        "churn.monthly_rate",
        ["[-inf, inf]", RANGE, "truncate a normal with low/high"],
    ),
    "normal truncated outside a rate": (
        {"dist": "normal", "mean": 0.02, "sd": 0.005, "low": -0.5, "high": 0.5},
        "churn.monthly_rate",
        ["[-0.5, 0.5]", RANGE],
    ),
    "uniform reaching zero cac": (
        {"dist": "uniform", "low": -100, "high": 100},
        "acquisition.cac",
        ["[-100, 100]", RANGE],
    ),
}


@pytest.mark.parametrize("case", BAD_DISTRIBUTIONS, ids=str)
def test_bad_distribution(case):
    spec, key, fragments = BAD_DISTRIBUTIONS[case]
    section, name = key.split(".")
    error = _error(merge(BASE, **{section: {name: spec}}))
    assert error.key == key
    assert str(error).startswith(f"{key}: ")
    _expect(error, fragments)


def _truncnorm_moments(mean, sd, low, high):
    """Mean and sd of a normal truncated to [low, high] (Johnson, Kotz & Balakrishnan)."""
    a, b = (low - mean) / sd, (high - mean) / sd
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    z = 0.5 * (math.erf(b / math.sqrt(2)) - math.erf(a / math.sqrt(2)))
    shift = (pdf(a) - pdf(b)) / z
    var = 1 + (a * pdf(a) - b * pdf(b)) / z - shift**2
    return mean + sd * shift, sd * math.sqrt(var)


def _triangular_sd(low, mode, high):
    return math.sqrt((low**2 + mode**2 + high**2 - low * mode - low * high - mode * high) / 18)


# (key, distribution, expected mean, expected sd); sds from each family's closed form.
GOOD_DISTRIBUTIONS = {
    "normal": (None, {"dist": "normal", "mean": 0.05, "sd": 0.1}, 0.05, 0.1),
    "normal truncated": (
        "revenue.arpa_monthly",
        {"dist": "normal", "mean": 1000, "sd": 400, "low": 0, "high": 2000},
        *_truncnorm_moments(1000, 400, 0, 2000),
    ),
    "normal truncated asymmetric": (
        "churn.monthly_rate",
        {"dist": "normal", "mean": 0.02, "sd": 0.01, "low": 0.0, "high": 1.0},
        *_truncnorm_moments(0.02, 0.01, 0.0, 1.0),
    ),
    "lognormal": ("acquisition.cac", {"dist": "lognormal", "mean": 30000, "sd": 6000}, 30000, 6000),
    "beta": ("churn.monthly_rate", {"dist": "beta", "mean": 0.02, "sd": 0.005}, 0.02, 0.005),
    "gamma": ("churn.alpha", {"dist": "gamma", "mean": 1.0, "sd": 0.2}, 1.0, 0.2),
    "uniform": (
        "revenue.gross_margin",
        {"dist": "uniform", "low": 0.6, "high": 0.9},
        0.75,
        0.3 / math.sqrt(12),
    ),
    "triangular": (
        "revenue.arpa_monthly",
        {"dist": "triangular", "low": 500, "mode": 800, "high": 1500},
        (500 + 800 + 1500) / 3,
        _triangular_sd(500, 800, 1500),
    ),
    # Beta-PERT: mean (low + 4 mode + high) / 6, variance (mean-low)(high-mean)/7.
    "pert": (
        "acquisition.cac",
        {"dist": "pert", "low": 9000, "mode": 12000, "high": 18000},
        (9000 + 4 * 12000 + 18000) / 6,
        math.sqrt((12500 - 9000) * (18000 - 12500) / 7),
    ),
}


@pytest.mark.parametrize("case", GOOD_DISTRIBUTIONS, ids=str)
def test_distribution_moments(case):
    key, spec, mean, sd = GOOD_DISTRIBUTIONS[case]
    if key is None:  # no key accepts an unbounded normal: check the family alone
        dist = Distribution.from_mapping(spec)
    else:
        section, name = key.split(".")
        raw = merge(BASE, **{section: {name: spec}})
        if section == "churn" and name in ("alpha", "beta"):
            raw["churn"] = {"model": "sbg", "alpha": 1.0, "beta": 3.0, name: spec}
        config = load_config(raw)
        dist = config.segments[0][key]
        assert isinstance(dist, Distribution)
        assert config.uncertain_inputs() == [key]
    assert dist.dist == spec["dist"]
    assert dist.mean == pytest.approx(mean, rel=1e-9)
    assert dist.sd == pytest.approx(sd, rel=1e-9)


def test_distribution_draws_by_inverse_transform():
    dist = Distribution.from_mapping({"dist": "beta", "mean": 0.02, "sd": 0.005})
    u = [0.01, 0.5, 0.99]
    a = 0.02 * (0.02 * 0.98 / 0.005**2 - 1)
    b = 0.98 * (0.02 * 0.98 / 0.005**2 - 1)
    assert list(dist.ppf(u)) == pytest.approx(list(stats.beta(a, b).ppf(u)), rel=1e-12)


# ---------------------------------------------------------------------- overrides


def test_with_overrides():
    config = load_config(BASE)
    changed = config.with_overrides({"revenue.arpa_monthly": 1100})
    assert changed.segments[0]["revenue.arpa_monthly"] == 1100
    assert config.segments[0]["revenue.arpa_monthly"] == 1000
    assert changed.segments[0]["revenue.gross_margin"] == 0.8


def test_with_overrides_of_a_segment():
    config = load_config(_segments({"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}))
    changed = config.with_overrides({"segments.b.revenue.arpa_monthly": 1100})
    a, b = changed.segments
    assert (a["revenue.arpa_monthly"], b["revenue.arpa_monthly"]) == (1000, 1100)


# (override, key, fragment)
BAD_OVERRIDES = {
    "bad value": ({"revenue.arpa_monthly": -1}, "revenue.arpa_monthly", RANGE),
    "nan": ({"revenue.gross_margin": NAN}, "revenue.gross_margin", "NaN"),
    "unknown key": ({"revenue.arpa_montly": 1}, "revenue.arpa_montly", "'arpa_monthly'"),
    "no section": ({"arpa_monthly": 1}, "arpa_monthly", "section.key"),
    "too deep": ({"revenue.arpa_monthly.x": 1}, "revenue.arpa_monthly.x", "section.key"),
    "zero trials": ({"simulation.trials": 0}, "simulation.trials", RANGE),
    "unknown segment": (
        {"segments.c.revenue.arpa_monthly": 1},
        "segments.c.revenue.arpa_monthly",
        "no segment named 'c'",
    ),
    "segment name is not a section": (
        {"segments.a.name.x": 1},
        "segments.a.name.x",
        "segments.NAME.section.key",
    ),
    "segment share": ({"segments.a.share": 1}, "segments.a.share", "segments.NAME.section.key"),
}


@pytest.mark.parametrize("case", BAD_OVERRIDES, ids=str)
def test_bad_override(case):
    override, key, fragment = BAD_OVERRIDES[case]
    config = load_config(_segments({"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}))
    with pytest.raises(ConfigError) as info:
        config.with_overrides(override)
    assert info.value.key == key
    _expect(info.value, [fragment])


def test_config_error_is_exported():
    assert ltvsim.ConfigError is ConfigError
    assert issubclass(ConfigError, ValueError)


FAMILY_CASES = [
    ({"dist": "normal", "mean": 5.0, "sd": 2.0}, stats.norm(5, 2)),
    (
        {"dist": "normal", "mean": 0.02, "sd": 0.01, "low": 0.0, "high": 1.0},
        stats.truncnorm(-2, 98, loc=0.02, scale=0.01),
    ),
    (
        {"dist": "normal", "mean": 0.0, "sd": 1.0, "low": 2.0, "high": 3.0},
        stats.truncnorm(2, 3),
    ),  # far in the upper tail: the mirrored branch
    (
        {"dist": "lognormal", "mean": 100.0, "sd": 30.0},
        stats.lognorm(math.sqrt(math.log1p(0.09)), scale=100 * math.exp(-math.log1p(0.09) / 2)),
    ),
    ({"dist": "gamma", "mean": 2.0, "sd": 0.5}, stats.gamma(16, scale=0.125)),
    ({"dist": "beta", "mean": 0.3, "sd": 0.1}, stats.beta(6, 14)),
    ({"dist": "uniform", "low": 1.0, "high": 3.0}, stats.uniform(1, 2)),
    (
        {"dist": "triangular", "low": 1.0, "mode": 2.0, "high": 5.0},
        stats.triang(0.25, loc=1, scale=4),
    ),
    ({"dist": "pert", "low": 1.0, "mode": 2.0, "high": 5.0}, stats.beta(2, 4, loc=1, scale=4)),
]


@pytest.mark.parametrize("spec, reference", FAMILY_CASES)
def test_each_family_matches_scipy_stats(spec, reference):
    """ltvsim's closed forms (scipy.special only) against scipy.stats."""
    dist = Distribution.from_mapping(spec)
    u = np.array([1e-6, 0.01, 0.2, 0.5, 0.8, 0.99, 1 - 1e-6])
    np.testing.assert_allclose(dist.ppf(u), reference.ppf(u), rtol=1e-9)
    assert dist.mean == pytest.approx(reference.mean(), rel=1e-9)
    assert dist.sd == pytest.approx(reference.std(), rel=1e-9)
    assert dist.support == pytest.approx(reference.support())
