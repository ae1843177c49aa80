"""What a result contains: the variable registry and the Dataset builder.

``VARIABLES`` is the one place that names, describes and gives units to every
result variable. All money is per acquired customer; cumulative quantities at
period t include month t.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import __version__, _kernels
from .config import Config, key_spec
from .model import expected_ltv, kernel_inputs

TRIAL = ("trial", "segment")
PATH = ("trial", "period", "segment")

# name: (dims, units, long_name); "{money}" is replaced by "<currency> per acquired customer".
VARIABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "ltv_revenue": (TRIAL, "{money}", "revenue LTV (never compare with CAC)"),
    "ltv_gross_profit": (TRIAL, "{money}", "gross-profit LTV"),
    "ltv_discounted": (TRIAL, "{money}", "discounted gross-profit LTV (NPV)"),
    "cac": (TRIAL, "{money}", "customer acquisition cost"),
    "ltv_cac": (TRIAL, "1", "LTV:CAC (gross-profit LTV / CAC)"),
    "ltv_cac_discounted": (TRIAL, "1", "discounted LTV:CAC (discounted LTV / CAC)"),
    "payback_months": (
        TRIAL,
        "months",
        "CAC payback: months until cumulative gross profit per acquired customer reaches "
        "CAC, gross profit accruing evenly within a month; NaN if not within the horizon",
    ),
    "lifetime_months": (TRIAL, "months", "mean months active within the horizon"),
    # Exact conditional expectations given the trial's inputs (no cohort noise):
    # the estimator of mean LTV (see model.expected_ltv).
    "expected_ltv_revenue": (TRIAL, "{money}", "E[revenue LTV | the trial's inputs]"),
    "expected_ltv_gross_profit": (TRIAL, "{money}", "E[gross-profit LTV | the trial's inputs]"),
    "expected_ltv_discounted": (
        TRIAL,
        "{money}",
        "E[discounted gross-profit LTV | the trial's inputs]",
    ),
    "survival": (PATH, "1", "share of acquired customers active in the month"),
    "revenue": (PATH, "{money}", "revenue in the month"),
    "gross_profit": (PATH, "{money}", "gross profit in the month"),
    "cumulative_gross_profit": (PATH, "{money}", "gross profit up to and including the month"),
    "cumulative_discounted_gross_profit": (
        PATH,
        "{money}",
        "discounted gross profit up to and including the month",
    ),
    "paid_back_share": (
        PATH,
        "1",
        "share of acquired customers whose own cumulative gross profit has reached CAC",
    ),
}
BANDED = list(VARIABLES)
CUSTOMER_LTV_BAND = "customer_ltv_band"


def input_variable(path: str) -> str:
    """Result variable holding the per-trial draws of config key ``path``."""
    return "input_" + path.replace(".", "_")


def build_dataset(config: Config, runs) -> xr.Dataset:
    """Turn the driver's per-segment aggregates into the result Dataset."""
    ds = trial_dataset(config, runs)
    return ds.assign(band_variables(config, ds, [run.customer_hist for run in runs]))


def trial_dataset(config: Config, runs, first_trial: int = 0) -> xr.Dataset:
    """Every per-trial variable (no bands) of trials ``first_trial …``; ``runs`` hold them.

    A result written block by block is the concatenation of these along ``trial``
    plus :func:`band_variables` of the whole.
    """
    money = f"{config.currency} per acquired customer"
    per_segment = [_segment_values(config, run) for run in runs]
    names = [s.name for s in config.segments]
    if config.named_segments:
        shares = np.array([s.share for s in config.segments])
        per_segment.append(_blend(per_segment, shares))
        names.append("all")

    data = {}
    for name, (dims, units, long_name) in VARIABLES.items():
        values = np.stack([seg[name] for seg in per_segment], axis=-1)
        data[name] = xr.Variable(
            dims, values, {"units": units.format(money=money), "long_name": long_name}
        )
    for path in config.uncertain_inputs():
        spec = key_spec(path)
        # NaN where a segment does not use the key (e.g. another churn model).
        draws = [run.inputs.get(path, np.full(config.trials, np.nan)) for run in runs]
        if config.named_segments:
            draws.append(np.full(config.trials, np.nan))
        unit = spec.unit.replace("currency", config.currency)
        data[input_variable(path)] = xr.Variable(
            TRIAL,
            np.stack(draws, axis=-1),
            {"units": unit, "long_name": f"drawn {path} ({spec.doc})", "config_key": path},
        )

    trials = np.arange(first_trial, first_trial + config.trials)
    coords = {
        "trial": ("trial", trials, {"long_name": "trial (parameter draw)"}),
        "period": (
            "period",
            np.arange(config.horizon_months),
            {"units": "months", "long_name": "months since acquisition (customer tenure)"},
        ),
        "segment": ("segment", np.array(names), {"long_name": "customer segment"}),
        "quantile": (
            "quantile",
            np.asarray(config.quantiles),
            {"units": "1", "long_name": "band quantile"},
        ),
    }
    return xr.Dataset(data, coords=coords, attrs=result_attrs(config))


def result_attrs(config: Config) -> dict:
    """The result's global attributes: what was run, with the config as JSON."""
    return {
        "title": "ltvsim customer-lifetime-value simulation",
        "ltvsim_version": __version__,
        "seed": config.seed,
        "trials": config.trials,
        "customers_per_segment": config.customers,
        "horizon_months": config.horizon_months,
        "currency": config.currency,
        "discount_timing": config.segments[0]["discount.timing"],
        "antithetic_inputs": int(config.antithetic_inputs),
        "payments": "in advance: a customer pays in month 0 and every month it is active",
        "config": config.to_json(),
    }


def band_variables(config: Config, trial_data, customer_hists) -> dict[str, xr.Variable]:
    """Quantiles across all trials of every per-trial variable, and of customers' LTV.

    ``trial_data`` maps names to per-trial variables (an in-memory Dataset or
    a lazily opened one: each variable is loaded once, one at a time);
    ``customer_hists`` are the segments' customer-LTV histograms, pooled over trials.
    """
    money = f"{config.currency} per acquired customer"
    quantiles = np.asarray(config.quantiles)
    data = {}
    for name in [*BANDED, *(input_variable(p) for p in config.uncertain_inputs())]:
        var = trial_data[name].variable
        band = band_quantiles(var.values, quantiles)
        data[f"{name}_band"] = xr.Variable(
            ("quantile", *var.dims[1:]),
            band,
            {"units": var.attrs["units"], "long_name": f"quantiles across trials of {name}"},
        )
    hists = [h / h.sum() for h in customer_hists]
    if config.named_segments:
        hists.append(sum(s.share * h for s, h in zip(config.segments, hists, strict=True)))
    data[CUSTOMER_LTV_BAND] = xr.Variable(
        ("quantile", "segment"),
        np.stack([histogram_quantiles(h, quantiles) for h in hists], axis=-1),
        {
            "units": money.replace("per acquired customer", "per customer"),
            "long_name": "quantiles of individual customers' discounted gross-profit LTV, "
            "pooled over all trials (histogram, 0.67% relative bin width)",
        },
    )
    return data


def _segment_values(config: Config, run) -> dict[str, np.ndarray]:
    n = config.customers
    inputs = run.inputs
    margin = inputs["revenue.gross_margin"][:, None]
    cost = inputs["revenue.cost_to_serve_monthly"][:, None]
    survival = run.alive / n
    revenue = run.revenue / n
    gross_profit = margin * revenue - cost * survival
    out = {
        "cac": inputs["acquisition.cac"],
        "survival": survival,
        "revenue": revenue,
        "gross_profit": gross_profit,
        "cumulative_discounted_gross_profit": np.cumsum(gross_profit * run.weights, axis=1),
        "paid_back_share": np.cumsum(run.paid_first, axis=1) / n,
    }
    expected = expected_ltv(kernel_inputs(config, run.segment, inputs), config.horizon_months)
    for tier, values in expected.items():
        out[f"expected_ltv_{tier}"] = values
    return _derived(out)


def _derived(v: dict) -> dict:
    """Fill in the variables that follow from the per-month paths and CAC."""
    v["cumulative_gross_profit"] = np.cumsum(v["gross_profit"], axis=1)
    v["ltv_revenue"] = v["revenue"].sum(axis=1)
    v["ltv_gross_profit"] = v["cumulative_gross_profit"][:, -1]
    v["ltv_discounted"] = v["cumulative_discounted_gross_profit"][:, -1]
    v["ltv_cac"] = v["ltv_gross_profit"] / v["cac"]
    v["ltv_cac_discounted"] = v["ltv_discounted"] / v["cac"]
    v["lifetime_months"] = v["survival"].sum(axis=1)
    v["payback_months"] = payback_months(v["cumulative_gross_profit"], v["gross_profit"], v["cac"])
    return v


def _blend(per_segment: list[dict], shares: np.ndarray) -> dict:
    """The "all" segment: share-weighted blend of per-acquired-customer amounts."""
    additive = [
        "expected_ltv_revenue",
        "expected_ltv_gross_profit",
        "expected_ltv_discounted",
        "cac",
        "survival",
        "revenue",
        "gross_profit",
        "cumulative_discounted_gross_profit",
        "paid_back_share",
    ]
    blend = {
        k: sum(w * seg[k] for w, seg in zip(shares, per_segment, strict=True)) for k in additive
    }
    return _derived(blend)


def payback_months(cumulative, monthly, cac):
    """First time cumulative gross profit reaches CAC, interpolating within the month.

    With gross profit ``g`` per month forever this is exactly ``cac / g``.
    NaN where it does not happen within the horizon.
    """
    crossed = cumulative >= cac[:, None]
    month = np.argmax(crossed, axis=1)
    rows = np.arange(len(cac))
    before = cumulative[rows, month] - monthly[rows, month]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        fraction = (cac - before) / monthly[rows, month]
    return np.where(crossed.any(axis=1), month + np.clip(fraction, 0.0, 1.0), np.nan)


def band_quantiles(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Quantiles along axis 0 (linear interpolation); NaN counts as "beyond every value".

    A quantile that falls on or next to a NaN (e.g. a payback that never
    happens within the horizon) is NaN.
    """
    ordered = np.sort(np.where(np.isnan(values), np.inf, values), axis=0)
    position = quantiles * (len(ordered) - 1)
    lo = np.floor(position).astype(int)
    hi = np.ceil(position).astype(int)
    shape = (-1,) + (1,) * (values.ndim - 1)
    w = (position - lo).reshape(shape)
    a, b = ordered[lo], ordered[hi]
    with np.errstate(invalid="ignore"):
        out = np.where(np.isinf(b) & (w > 0), np.inf, a + (b - a) * w)
    out = np.where(w == 0, a, out)
    return np.where(np.isinf(out), np.nan, out)


def histogram_quantiles(density: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Quantiles of the customer-LTV histogram, linear within a bin in log1p scale."""
    cdf = np.cumsum(density)
    target = np.asarray(quantiles) * cdf[-1]
    b = np.minimum(np.searchsorted(cdf, target, side="left"), len(cdf) - 1)
    below = cdf[b] - density[b]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.clip(np.nan_to_num((target - below) / density[b]), 0.0, 1.0)
    width = 2.0 * _kernels.HIST_LIMIT / _kernels.HIST_BINS
    y = -_kernels.HIST_LIMIT + (b + fraction) * width
    return np.sign(y) * np.expm1(np.abs(y))
