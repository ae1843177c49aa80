"""Shared helpers: Monte Carlo tolerances stated once.

A statistical assertion compares an estimate with its expectation within
``Z`` standard errors, the standard error estimated from the same run. With
Z = 4 a correct implementation fails a given check with probability 6e-5;
every seed is fixed, so a failure reproduces exactly.
"""

import math

import numpy as np
import pytest

Z = 4.0

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
