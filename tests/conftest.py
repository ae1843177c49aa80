"""Shared helpers: Monte Carlo tolerances stated once.

A statistical assertion compares an estimate with its expectation within
``Z`` standard errors, the standard error estimated from the same run. With
Z = 4 a correct implementation fails a given check with probability 6e-5;
every seed is fixed, so a failure reproduces exactly.
"""

import math
from pathlib import Path

import numpy as np
import pytest

Z = 4.0

# The example configs shipped in configs/ (tests run them by path).
CONFIGS = Path(__file__).parent.parent / "configs"

BASE = {
    "simulation": {"trials": 40, "customers": 2000, "horizon_months": 120, "seed": 3},
    "acquisition": {"cac": 12000},
    "revenue": {"arpa_monthly": 1000, "gross_margin": 0.8},
    "churn": {"model": "constant", "monthly_rate": 0.02},
    "discount": {"annual_rate": 0.0},
}


def merge(base: dict, **sections) -> dict:
    """A copy of ``base`` with the given sections' keys updated."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, keys in sections.items():
        out.setdefault(section, {}).update(keys)
    return out


# Every feature of the model at once: sBG churn at quarterly renewals with an
# uncertain alpha, size spread, cost to serve, expansion with volatility, plan
# changes, price increases, an uncertain CAC, mid-month discounting.
RICH = merge(
    BASE,
    simulation={"trials": 30, "customers": 1500, "horizon_months": 72, "seed": 5},
    acquisition={"cac": {"dist": "lognormal", "mean": 9000, "sd": 2000}},
    revenue={"arpa_cv": 0.6, "cost_to_serve_monthly": 60.0},
    churn={
        "model": "sbg",
        "alpha": {"dist": "gamma", "mean": 0.9, "sd": 0.2},
        "beta": 2.5,
        "renewal_months": 3,
    },
    expansion={
        "annual_growth": 0.1,
        "annual_volatility": 0.3,
        "upsell_monthly_probability": 0.03,
        "upsell_size": 0.25,
        "downgrade_monthly_probability": 0.02,
        "downgrade_size": 0.2,
        "price_increase": 0.05,
        "price_increase_every_months": 12,
    },
    discount={"annual_rate": 0.12, "timing": "middle"},
)
del RICH["churn"]["monthly_rate"]


def run_example(config: str, output, trials: int = 20, customers: int = 200):
    """``ltvsim run CONFIG`` on a small size through the CLI (wide terminal); the result."""
    from typer.testing import CliRunner

    from ltvsim.cli import app

    command = ["run", config, "--trials", str(trials), "--customers", str(customers)]
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, [*command, "-o", str(output)])


def standard_error(values) -> float:
    """MC standard error of the mean of independent per-trial values."""
    values = np.asarray(values, dtype=float).ravel()
    return float(values.std(ddof=1) / math.sqrt(values.size))


def assert_mc_close(values, expected, *, z=Z, floor=0.0):
    """Mean of per-trial ``values`` equals ``expected`` within z standard errors.

    ``floor`` covers error the MC standard error cannot see (e.g. floating
    point on a deterministic run); it is stated at each call that uses it.
    """
    values = np.asarray(values, dtype=float)
    mean, se = float(values.mean()), standard_error(values)
    assert abs(mean - expected) <= z * se + floor, (
        f"mean {mean:.6g} vs expected {expected:.6g}: {abs(mean - expected) / max(se, 1e-300):.1f}"
        f" standard errors (se {se:.3g})"
    )


@pytest.fixture(scope="session")
def base_config():
    return BASE


def pytest_terminal_summary(terminalreporter):
    """Print how many cases each fuzzing test tried (its ``record_property("fuzz cases")``)."""
    lines = [
        f"{report.nodeid}: {value}"
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        for name, value in getattr(report, "user_properties", [])
        if name == "fuzz cases"
    ]
    if lines:
        terminalreporter.section("fuzz cases tried")
        for line in lines:
            terminalreporter.line(line)
