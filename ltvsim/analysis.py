"""Questions a result answers: summaries and band probabilities across trials.

Every probability is the share of trials in which the event happens, with its
Monte Carlo standard error ``sqrt(p (1 - p) / trials)`` — or, when trials
come in antithetic pairs, the standard error of the pairs' mean.
"""

from __future__ import annotations

import math
import operator
import re

import numpy as np
import xarray as xr

from .dataset import band_quantiles, has_costs_below_gross_profit

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
# Shown by summary_variables only when the result has them non-zero.
NET_TIERS = ("ltv_net", "ltv_net_discounted")
COST_VARIABLES = ("cost_to_serve", "cost_payment_fees", "cost_retention", "cost_onboarding")

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_EXPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


def summary_variables(ds: xr.Dataset) -> tuple[str, ...]:
    """The headline measures, plus each cost that is non-zero somewhere in ``ds``
    and, when retention spend or onboarding is, the net LTV tiers after the others."""
    costs = tuple(c for c in COST_VARIABLES if c in ds and bool((ds[c] != 0).any()))
    if not has_costs_below_gross_profit(ds):
        return SUMMARY_VARIABLES + costs
    after = SUMMARY_VARIABLES.index("ltv_discounted") + 1
    return SUMMARY_VARIABLES[:after] + NET_TIERS + SUMMARY_VARIABLES[after:] + costs


def summarize(
    ds: xr.Dataset,
    quantiles=SUMMARY_QUANTILES,
    variables=None,
) -> xr.Dataset:
    """A tidy summary across trials: mean, sd, MC standard error and quantiles.

    Dims ``measure`` (the result variables), ``segment`` and ``quantile``.
    The mean of an LTV tier or ratio is estimated by its exact conditional
    expectation given each trial's inputs (``mean_estimator``): unbiased,
    with no noise from the finite simulated cohort, so ``mc_se`` is the
    error due to the inputs' draws alone. ``trial_sd`` and the quantiles
    describe the simulated trials.
    ``payback_months`` statistics are over the trials that pay back within
    the horizon; ``never_pays_back`` is the share that do not, and a quantile
    that falls among those is NaN.

    >>> s = summarize(ds)                                      # doctest: +SKIP
    >>> s.trial_mean.sel(measure="ltv_cac", segment="all")     # doctest: +SKIP

    ``variables`` defaults to :func:`summary_variables`: the costs and net
    tiers appear when the result has costs.
    """
    if variables is None:
        variables = summary_variables(ds)
    q = np.asarray(quantiles, dtype=float)
    values = np.stack([_per_trial(ds, name) for name in variables])
    estimators = [_mean_estimator(ds, name) for name in variables]
    paired = bool(ds.attrs.get("antithetic_inputs", 0))
    mean, _, se, n = _moments(np.stack([e[1] for e in estimators]), paired)
    _, sd, _, _ = _moments(values)
    at_q = np.stack([band_quantiles(v, q) for v in values])  # measure, quantile, segment
    units = [ds[name].attrs.get("units", "") for name in variables]
    return xr.Dataset(
        {
            # not "mean"/"std": those names are Dataset methods
            "trial_mean": (("measure", "segment"), mean, {"long_name": "mean across trials"}),
            "trial_sd": (
                ("measure", "segment"),
                sd,
                {"long_name": "standard deviation across trials"},
            ),
            "mc_se": (
                ("measure", "segment"),
                se,
                {"long_name": "Monte Carlo standard error of trial_mean"},
            ),
            "quantile_value": (
                ("measure", "quantile", "segment"),
                at_q,
                {"long_name": "quantile across trials (NaN: among trials that never pay back)"},
            ),
            "trials": (("measure", "segment"), n, {"long_name": "trials with a finite value"}),
            "never_pays_back": (
                "segment",
                np.isnan(ds["payback_months"].transpose("trial", "segment").values).mean(axis=0),
                {"long_name": "share of trials not paying back CAC within the horizon"},
            ),
        },
        coords={
            "measure": ("measure", list(variables)),
            "units": ("measure", units),
            "mean_estimator": ("measure", [e[0] for e in estimators]),
            "segment": ds["segment"].values,
            "quantile": ("quantile", q, {"units": "1"}),
        },
        attrs={"trials": ds.sizes["trial"], "currency": ds.attrs.get("currency", "")},
    )


def _per_trial(ds: xr.Dataset, name: str) -> np.ndarray:
    return ds[name].transpose("trial", "segment").values


def _mean_estimator(ds: xr.Dataset, name: str) -> tuple[str, np.ndarray]:
    """What estimates the mean of ``name`` best, and its per-trial values.

    For the LTV tiers and ratios the exact conditional expectation given each
    trial's inputs (``expected_ltv_*``, CAC being an input) has the same mean
    as the simulated values and no cohort noise; everything else is the
    plain mean of the simulated trials.
    """
    tier = {"ltv_cac": "ltv_gross_profit", "ltv_cac_discounted": "ltv_discounted"}.get(name, name)
    expected = f"expected_{tier}"
    if tier.startswith("ltv_") and expected in ds:
        values = _per_trial(ds, expected)
        if tier != name:
            values = values / _per_trial(ds, "cac")
        return "conditional expectation", values
    return "sample mean", _per_trial(ds, name)


def _moments(values: np.ndarray, paired: bool = False):
    """Mean, sd and standard error of the mean along axis 1 over the finite values; count.

    ``paired``: trials (2k, 2k+1) are antithetic pairs, so the standard error
    comes from the pair means, which are independent (the trials are not).
    """
    finite = np.isfinite(values)
    n = finite.sum(axis=1)
    filled = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=1) / n
        sd = np.sqrt(((filled - mean[:, None]) ** 2 * finite).sum(axis=1) / (n - 1))
        se = sd / np.sqrt(n)
        if paired:
            even = values.shape[1] // 2 * 2
            pairs = (values[:, 0:even:2] + values[:, 1:even:2]) / 2
            k = np.isfinite(pairs).sum(axis=1)
            centred = np.where(np.isfinite(pairs), pairs - np.nanmean(pairs, axis=1)[:, None], 0)
            se = np.sqrt((centred**2).sum(axis=1) / (k - 1)) / np.sqrt(k)
    return mean, sd, se, n


def trial_standard_error(values: xr.DataArray, paired: bool = False) -> xr.DataArray:
    """MC standard error of the mean over ``trial`` of every other coordinate of ``values``.

    NaN trials are left out; with antithetic inputs (``paired``) the error
    comes from the pairs' means (see ``_moments``).
    """
    others = [d for d in values.dims if d != "trial"]
    ordered = values.transpose(*others, "trial")
    flat = ordered.values.reshape(-1, ordered.sizes["trial"])
    _, _, se, _ = _moments(flat[:, :, None], paired)
    return xr.DataArray(
        se[:, 0].reshape(ordered.shape[:-1]), {d: values[d] for d in others}, others
    )


def mean_standard_error(values, paired: bool = False) -> tuple[float, float]:
    """Mean of per-trial ``values`` and its MC standard error (see ``_moments``)."""
    mean, _, se, _ = _moments(np.asarray(values, dtype=float)[None, :, None], paired)
    return float(mean[0, 0]), float(se[0, 0])


def summary_table(ds: xr.Dataset, segment: str = "all") -> list[dict]:
    """Rows of :func:`summarize` for one segment (mean, p5, p50, p95, MC error)."""
    summary = summarize(ds).sel(segment=segment)
    rows = []
    for name in summary["measure"].values:
        m = summary.sel(measure=name)
        row = {
            "variable": str(name),
            "units": str(m["units"].values),
            "mean": _number(m["trial_mean"]),
            "mc_se": _number(m["mc_se"]),
        }
        for qi in summary["quantile"].values:
            row[f"p{round(qi * 100)}"] = _number(m["quantile_value"].sel(quantile=qi))
        if name == "payback_months":
            row["never"] = float(m["never_pays_back"])
        rows.append(row)
    return rows


def retention_summary(ds: xr.Dataset, segment: str = "all") -> dict:
    """Net and gross revenue retention by cohort year, and whether LTV is bounded.

    ``nrr``/``grr``: mean across trials per cohort year (years whose month 12y
    is inside the horizon); ``unbounded_share``: share of trials whose LTV
    over an unbounded horizon would be infinite (long-run NRR at or above
    1 + the discount rate), where the horizon alone decides the LTV shown.
    """
    out = {"cohort_year": [int(y) for y in ds["cohort_year"].values]}
    for name in ("nrr", "grr"):
        values = ds[name].sel(segment=segment).transpose("trial", "cohort_year").values
        finite = np.isfinite(values)  # NaN once every customer has left
        count = finite.sum(axis=0)
        total = np.where(finite, values, 0.0).sum(axis=0)
        out[name] = [_number(t / c) if c else None for t, c in zip(total, count, strict=True)]
    out["unbounded_share"] = float(ds["ltv_unbounded"].sel(segment=segment).mean())
    return out


def unbounded_warning(ds: xr.Dataset) -> str | None:
    """A sentence for the user when some trials' LTV has no finite limit, else None."""
    if "ltv_unbounded" not in ds:  # a result written before ltvsim computed it
        return None
    shares = ds["ltv_unbounded"].mean("trial")
    hit = [
        f"{float(share):.0%} of trials of {s}"
        for s, share in zip(ds.segment.values, shares.values, strict=True)
        if share > 0
    ]
    if not hit:
        return None
    return (
        f"LTV has no finite limit in {', '.join(hit)}: revenue retention outgrows the "
        f"discount rate (long-run NRR >= 1 + discount rate), so the LTV shown covers the "
        f"first {ds.attrs['horizon_months']} months only and grows with the horizon"
    )


def to_markdown(ds: xr.Dataset, segment: str = "all") -> str:
    """The summary of one segment as a markdown table (no pandas needed)."""
    rows = summary_table(ds, segment)
    quantile_keys = [k for k in rows[0] if k.startswith("p") and k[1:].isdigit()]
    header = ["measure", "units", "mean", "± MC se", *(f"{k[1:]}%" for k in quantile_keys)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["variable"], row["units"], _fmt(row["mean"]), _fmt(row["mc_se"])]
        cells += [_fmt(row[k]) for k in quantile_keys]
        lines.append("| " + " | ".join(cells) + " |")
    never = next(r["never"] for r in rows if r["variable"] == "payback_months")
    lines.append(f"\nShare of trials never paying back within the horizon: {never:.1%}.")
    return "\n".join(lines)


def tail_risk(
    ds: xr.Dataset, variable: str = "ltv_discounted", level: float = 0.05, segment: str = "all"
) -> dict:
    """Value-at-risk and expected shortfall (CVaR) of a per-trial outcome.

    ``variable`` is a per-trial variable, or ``"ltv_discounted - cac"`` /
    ``"ltv_gross_profit - cac"`` for the value net of acquisition cost. The
    value-at-risk is the ``level`` quantile of the outcome (the bad case it
    falls below with probability ``level``); the expected shortfall is the
    mean outcome in that worst ``level`` share. Standard errors: the VaR's from
    the binomial order-statistic interval, the shortfall's from the
    asymptotic formula of Manistre & Hancock (North American Actuarial
    Journal 9(2), 2005).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    names = [part.strip() for part in variable.split("-")]
    if len(names) == 2 and names[1] == "cac":
        outcome = ds[names[0]] - ds["cac"]
    elif len(names) == 1:
        outcome = ds[names[0]]
    else:
        raise ValueError(f"expected a per-trial variable or 'VARIABLE - cac', got {variable!r}")
    values = np.sort(outcome.sel(segment=segment).values)
    n = values.size
    var = float(band_quantiles(values, np.array([level]))[0])
    tail = values[values <= var]
    shortfall = float(tail.mean())
    half_width = math.sqrt(n * level * (1 - level))
    lo = values[max(0, math.floor(n * level - half_width))]
    hi = values[min(n - 1, math.ceil(n * level + half_width))]
    tail_var = float(tail.var(ddof=1)) if tail.size > 1 else 0.0
    shortfall_se = math.sqrt((tail_var + (1 - level) * (shortfall - var) ** 2) / (n * level))
    return {
        "variable": variable,
        "level": level,
        "value_at_risk": var,
        "value_at_risk_se": float(hi - lo) / 2.0,
        "expected_shortfall": shortfall,
        "expected_shortfall_se": shortfall_se,
        "units": ds[names[0]].attrs.get("units", ""),
    }


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def summary_digits(units: str) -> int:
    """Decimals a summary value is shown with: money 0, months 1, ratios 2."""
    if "per acquired customer" in units:
        return 0
    return 2 if units == "1" else 1


def format_number(value: float | None, digits: int, never: str = "never") -> str:
    """A summary number for people: fixed decimals, thousands separators."""
    if value is None or not math.isfinite(value):
        return never
    return f"{value:,.{digits}f}"


def _fmt(value) -> str:
    if value is None:
        return "never"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}"


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
    return _share(_OPS[op](values, float(number)), _paired(ds))


def band_probabilities(ds: xr.Dataset, segment: str = "all") -> dict[str, list[dict]]:
    """Probability (and MC standard error) of each LTV:CAC and payback band; each set sums to 1."""
    ratio = ds["ltv_cac"].sel(segment=segment).values
    payback = ds["payback_months"].sel(segment=segment).values
    paired = _paired(ds)
    out = {"ltv_cac": [], "payback_months": []}
    for label, low, high in LTV_CAC_BANDS:
        p, se = _share((ratio >= low) & (ratio < high), paired)
        out["ltv_cac"].append({"band": label, "probability": p, "std_error": se})
    for label, low, high in PAYBACK_BANDS:
        p, se = _share((payback > low) & (payback <= high), paired)
        out["payback_months"].append({"band": label, "probability": p, "std_error": se})
    p, se = _share(np.isnan(payback), paired)
    out["payback_months"].append({"band": NEVER, "probability": p, "std_error": se})
    return out


@xr.register_dataset_accessor("ltv")
class LtvAccessor:
    """The result answers questions itself: ``ds.ltv.summary()``,
    ``ds.ltv.probability("ltv_cac < 3")``, ``ds.ltv.bands()``, ``ds.ltv.tail_risk()``.
    """

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def summary(self, quantiles=SUMMARY_QUANTILES) -> xr.Dataset:
        return summarize(self._ds, quantiles)

    def markdown(self, segment: str = "all") -> str:
        return to_markdown(self._ds, segment)

    def probability(self, expression: str, segment: str = "all") -> tuple[float, float]:
        return probability(self._ds, expression, segment)

    def bands(self, segment: str = "all") -> dict[str, list[dict]]:
        return band_probabilities(self._ds, segment)

    def tail_risk(self, variable="ltv_discounted", level=0.05, segment="all") -> dict:
        return tail_risk(self._ds, variable, level, segment)


def probability_text(p: float, se: float, trials: int) -> str:
    """A probability with its MC error; at 0 or 1, where the binomial error is 0,
    the 95% bound of the rule of three (3 / trials) instead."""
    bound = 3.0 / trials
    if p == 0.0:
        return f"0% (< {bound:.1%})"
    if p == 1.0:
        return f"100% (> {1 - bound:.1%})"
    return f"{p:.1%} ± {se:.1%}"


def _paired(ds: xr.Dataset) -> bool:
    """Whether trials come in antithetic pairs (then errors come from pair means)."""
    return bool(ds.attrs.get("antithetic_inputs", 0))


def _share(event: np.ndarray, paired: bool = False) -> tuple[float, float]:
    """Share of trials with the event, and its MC standard error."""
    if paired and event.size >= 4:
        return mean_standard_error(event.astype(float), paired=True)
    p = float(np.mean(event))
    return p, math.sqrt(p * (1.0 - p) / event.size)
