"""Questions a result answers: summaries and band probabilities across trials.

Every probability is the share of trials in which the event happens, with its
Monte Carlo standard error ``sqrt(p (1 - p) / trials)``.
"""

from __future__ import annotations

import math
import operator
import re

import numpy as np
import xarray as xr

from .dataset import band_quantiles

# DOMAIN.md: business benchmarks. (label, low, high): low < x <= high for payback,
# low <= x < high for LTV:CAC.
LTV_CAC_BANDS = (
    ("< 1 (danger)", -math.inf, 1.0),
    ("1-3 (needs improvement)", 1.0, 3.0),
    ("3-5 (healthy)", 3.0, 5.0),
    ("> 5 (under-investing?)", 5.0, math.inf),
)
PAYBACK_BANDS = (
    ("<= 6 months (best)", -math.inf, 6.0),
    ("6-12 months (better)", 6.0, 12.0),
    ("12-18 months (good)", 12.0, 18.0),
    ("> 18 months (slow)", 18.0, math.inf),
)
NEVER = "never within horizon"

SUMMARY_VARIABLES = (
    "ltv_revenue",
    "ltv_gross_profit",
    "ltv_discounted",
    "ltv_cac",
    "ltv_cac_discounted",
    "payback_months",
    "lifetime_months",
)
SUMMARY_QUANTILES = (0.05, 0.5, 0.95)

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_EXPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


def summary_table(ds: xr.Dataset, segment: str = "all") -> list[dict]:
    """Mean and 5/50/95% quantiles across trials of the headline variables.

    For ``payback_months`` the mean is over trials that pay back within the
    horizon, and ``never`` gives the share that do not; a quantile that falls
    among those is ``None``.
    """
    rows = []
    q = np.asarray(SUMMARY_QUANTILES)
    for name in SUMMARY_VARIABLES:
        values = ds[name].sel(segment=segment).values
        finite = values[np.isfinite(values)]
        row = {
            "variable": name,
            "units": ds[name].attrs.get("units", ""),
            "mean": float(finite.mean()) if finite.size else None,
        }
        for qi, value in zip(q, band_quantiles(values, q), strict=True):
            row[f"p{round(qi * 100)}"] = None if math.isnan(value) else float(value)
        if name == "payback_months":
            row["never"] = float(np.isnan(values).mean())
        rows.append(row)
    return rows


def probability(ds: xr.Dataset, expression: str, segment: str = "all") -> tuple[float, float]:
    """P(expression) across trials and its MC standard error, e.g. ``"ltv_cac < 3"``.

    ``payback_months`` that never happens within the horizon counts as
    infinitely long: ``P(payback_months <= 12)`` excludes it.
    """
    match = _EXPR.match(expression)
    if not match:
        raise ValueError(
            f"expected 'VARIABLE OP NUMBER' with OP one of < <= > >=, got {expression!r}"
        )
    name, op, number = match.groups()
    if name not in ds or ds[name].dims != ("trial", "segment"):
        choices = [v for v in ds.data_vars if ds[v].dims == ("trial", "segment")]
        raise ValueError(f"unknown per-trial variable {name!r}; choose one of {choices}")
    values = ds[name].sel(segment=segment).values
    values = np.where(np.isnan(values), np.inf, values)
    return _share(_OPS[op](values, float(number)))


def band_probabilities(ds: xr.Dataset, segment: str = "all") -> dict[str, list[dict]]:
    """Probability (and MC standard error) of each LTV:CAC and payback band; each set sums to 1."""
    ratio = ds["ltv_cac"].sel(segment=segment).values
    payback = ds["payback_months"].sel(segment=segment).values
    out = {"ltv_cac": [], "payback_months": []}
    for label, low, high in LTV_CAC_BANDS:
        p, se = _share((ratio >= low) & (ratio < high))
        out["ltv_cac"].append({"band": label, "probability": p, "std_error": se})
    for label, low, high in PAYBACK_BANDS:
        p, se = _share((payback > low) & (payback <= high))
        out["payback_months"].append({"band": label, "probability": p, "std_error": se})
    p, se = _share(np.isnan(payback))
    out["payback_months"].append({"band": NEVER, "probability": p, "std_error": se})
    return out


def _share(event: np.ndarray) -> tuple[float, float]:
    p = float(np.mean(event))
    return p, math.sqrt(p * (1.0 - p) / event.size)
