"""Fuzzing the config: every input simulates to finite results or raises ConfigError.

Hypothesis generates config mappings (valid and invalid keys, values, types,
nested tables, NaN/inf, huge numbers, distributions with odd parameters) and
raw TOML text. Each case must either load and simulate (tiny trials and
customers) to a result without inf and with NaN only where NaN has a meaning,
or raise ConfigError; on the command line, exit 0 or exit 2 with one line on
stderr and no traceback. Examples are derandomized, so CI is reproducible; the
number of cases of each outcome is recorded and printed in the test summary.
"""

import math
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ltvsim
from ltvsim.cli import app
from ltvsim.config import SCHEMA, ConfigError, load_config
from ltvsim.distributions import FAMILIES

FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# NaN is a result's way to say "never" (payback), "not used by this segment" (inputs) or
# "not defined" (revenue retention once no customer is left, or for order-driven models).
NAN_ALLOWED = ("payback_months", "input_", "nrr", "grr", "long_run_nrr")

numbers = st.one_of(
    st.integers(-3, 3),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1),
    st.sampled_from([0, 1, 0.5, 1e-300, 5e-324, 1e300, 1.7e308, -0.0, 2**63, 2**64]),
)
junk = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.lists(numbers, max_size=3))
distributions = st.fixed_dictionaries(
    {"dist": st.one_of(st.sampled_from(sorted(FAMILIES)), st.text(max_size=5))},
    optional={name: numbers for name in ("mean", "sd", "low", "high", "mode", "scale")},
)
values = st.one_of(numbers, junk, distributions)
simulation_values = {
    # valid values stay tiny so every case runs in milliseconds; invalid ones are anything
    "trials": st.one_of(st.integers(1, 4), st.integers(-5, 0), st.integers(10**8 + 1), junk),
    "customers": st.one_of(st.integers(1, 30), st.integers(-5, 0), st.floats(), junk),
    "horizon_months": st.one_of(st.integers(1, 1200), st.integers(1201), numbers, junk),
    "seed": st.one_of(st.integers(0, 2**64), numbers),
    "quantiles": st.one_of(st.lists(numbers, max_size=4), junk),
    "antithetic_inputs": st.one_of(st.booleans(), junk),
    "currency": st.one_of(st.text(max_size=4), junk),
}
model_keys = [(s, k) for s, keys in SCHEMA.items() if s != "simulation" for k in keys]


def valid_values(spec):
    """Values inside a key's documented range (extremes included)."""
    if spec.kind == "choice":
        return st.sampled_from(spec.choices)
    if spec.kind == "int":
        return st.integers(int(spec.low), int(min(spec.high, 10**6)))
    number = st.floats(
        min_value=spec.low if math.isfinite(spec.low) else None,
        max_value=spec.high if math.isfinite(spec.high) else None,
        exclude_min=spec.low_open and math.isfinite(spec.low),
        exclude_max=spec.high_open and math.isfinite(spec.high),
        allow_nan=False,
        allow_infinity=False,
    )
    if spec.kind == "floats":
        return st.lists(number, min_size=1, max_size=4)
    return number


@st.composite
def config_mappings(draw):
    """A config: real sections and keys with fuzzed values, sometimes unknown ones."""
    raw = {"simulation": {"trials": 2, "customers": 20, "horizon_months": 24}}
    for key, strategy in simulation_values.items():
        if draw(st.integers(0, 9)) == 0:
            raw["simulation"][key] = draw(strategy)
    for section, key in draw(st.lists(st.sampled_from(model_keys), max_size=5)):
        # mostly valid values (so that valid configs with odd values get simulated)
        valid = valid_values(SCHEMA[section][key])
        value = draw(valid) if draw(st.integers(0, 3)) else draw(values)
        raw.setdefault(section, {})[key] = value
    if draw(st.integers(0, 9)) == 0:
        raw[draw(st.text(max_size=6))] = draw(st.one_of(values, st.dictionaries(st.text(), values)))
    if draw(st.integers(0, 4)) == 0:
        raw["segments"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.one_of(st.sampled_from(["a", "b", "all"]), junk)},
                    optional={
                        "share": st.one_of(st.sampled_from([0.5, 1.0]), numbers),
                        "churn": st.fixed_dictionaries({"monthly_rate": values}),
                    },
                ),
                max_size=3,
            )
        )
    return raw


def check_finite(ds) -> None:
    for name, var in ds.data_vars.items():
        values = var.values
        assert not np.isinf(values).any(), f"{name} has inf"
        if not name.startswith(NAN_ALLOWED):
            assert not np.isnan(values).any(), f"{name} has NaN"


def outcome(source) -> str:
    """Load and simulate ``source``; "simulated" or "config error", anything else fails."""
    try:
        config = load_config(source)
    except ConfigError as exc:
        assert str(exc)  # (the CLI prints it on one line: see the CLI test below)
        return "config error"
    small = {
        "simulation.trials": min(config.trials, 4),
        "simulation.customers": min(config.customers, 30),
    }
    try:
        ds = ltvsim.simulate(config.with_overrides(small))
    except ConfigError:
        return "config error (at run time)"
    check_finite(ds)
    return "simulated"


def test_fuzzed_config_mappings(record_property):
    seen = Counter()

    @FUZZ
    @given(config_mappings())
    def case(raw):
        seen[outcome(raw)] += 1

    case()
    record_property("fuzz cases", dict(seen))
    assert sum(seen.values()) >= FUZZ.max_examples
    assert seen["simulated"] >= 20 and seen["config error"] >= 20  # both sides explored


VALID_TOML = """\
[simulation]
trials = 3
customers = 20
horizon_months = 36
quantiles = [0.1, 0.5, 0.9]

[acquisition]
cac = { dist = "lognormal", mean = 9000, sd = 2000 }

[revenue]
arpa_monthly = 1000
gross_margin = 0.8

[churn]
model = "sbg"
alpha = 0.9
beta = 2.5
renewal_months = 3

[discount]
annual_rate = 0.1
"""


@st.composite
def toml_texts(draw):
    """The valid file with lines cut, duplicated, replaced or garbled; or any text."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.text(max_size=200))
    lines = VALID_TOML.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["cut", "repeat", "garble", "replace", "value"]))
        if edit == "cut":
            del lines[i]
        elif edit == "repeat":
            lines.insert(i, lines[i])
        elif edit == "garble":
            j = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j] + draw(st.text(max_size=4)) + lines[i][j:]
        elif edit == "replace":
            lines[i] = draw(st.text(max_size=30))
        elif "=" in lines[i]:
            literal = st.sampled_from(
                ["nan", "inf", "-inf", "1e999", "0", "-1", "1e-320", '"x"', "true", "[]",
                 "{}", "99999999999999999999", "0.5", "1200", "{ dist = \"beta\" }"]
            )  # fmt: skip
            lines[i] = lines[i].split("=")[0] + "= " + draw(literal)
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


def test_fuzzed_toml_files(tmp_path_factory, record_property):
    seen = Counter()
    folder = tmp_path_factory.mktemp("fuzz")

    @FUZZ
    @given(toml_texts())
    def case(text):
        path = folder / "config.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        seen[outcome(path)] += 1

    case()
    record_property("fuzz cases", dict(seen))
    assert sum(seen.values()) >= FUZZ.max_examples
    assert seen["simulated"] >= 20 and seen["config error"] >= 20


@settings(max_examples=25, deadline=None, derandomize=True)
@given(text=toml_texts())
def test_fuzzed_toml_on_the_command_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cli") / "config.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    out = path.with_suffix(".nc")
    result = CliRunner().invoke(
        app, ["run", str(path), "-o", str(out), "--trials", "2", "--customers", "10"]
    )
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.output.startswith("error:") and len(result.output.strip().splitlines()) == 1
    else:
        assert math.isfinite(ltvsim.open_result(out).ltv_cac.mean())
