"""What a result contains: the variable registry and the Dataset builder.

``VARIABLES`` is the one place that names, describes and gives units to every
result variable. All money is per acquired customer; cumulative quantities at
period t include month t.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import __version__, _kernels, purchase_model
from .config import Config, key_spec
from .mix import segment_shares
from .model import cash_by_month, expected_ltv, kernel_inputs, long_run_nrr, retention_years

TRIAL = ("trial", "segment")
PATH = ("trial", "period", "segment")
YEARLY = ("trial", "cohort_year", "segment")

# name: (dims, units, long_name); "{money}" is replaced by "<currency> per acquired customer".
VARIABLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "ltv_revenue": (TRIAL, "{money}", "revenue LTV (never compare with CAC)"),
    "ltv_gross_profit": (TRIAL, "{money}", "gross-profit LTV"),
    "ltv_discounted": (TRIAL, "{money}", "discounted gross-profit LTV (NPV)"),
    "ltv_net": (
        TRIAL,
        "{money}",
        "net LTV: gross-profit LTV - retention spend - onboarding (CAC not subtracted)",
    ),
    "ltv_net_discounted": (TRIAL, "{money}", "discounted net LTV (NPV; CAC not subtracted)"),
    "cac": (TRIAL, "{money}", "customer acquisition cost"),
    "ltv_cac": (TRIAL, "1", "LTV:CAC (gross-profit LTV / CAC)"),
    "ltv_cac_discounted": (TRIAL, "1", "discounted LTV:CAC (discounted LTV / CAC)"),
    "payback_months": (
        TRIAL,
        "months",
        "CAC payback: months until cumulative net profit (gross profit - retention spend - "
        "onboarding) per acquired customer reaches CAC, profit accruing evenly within a "
        "month; NaN if not within the horizon",
    ),
    "lifetime_months": (TRIAL, "months", "mean months active within the horizon"),
    "long_run_nrr": (
        TRIAL,
        "1 per year",
        "cohort's net revenue retention per year as tenure grows without limit "
        "(E[revenue] of month t+12 over month t, t -> infinity)",
    ),
    "ltv_unbounded": (
        TRIAL,
        "1",
        "1 if LTV over an unbounded horizon is infinite: long-run NRR >= 1 + discount "
        "rate (the horizon then decides LTV)",
    ),
    "ltv_net_of_cac": (
        TRIAL,
        "{money}",
        "the seeds' e-commerce net LTV: gross-profit LTV (after per-order and retention "
        "costs) minus CAC; a profit per customer, never to be divided by CAC",
    ),
    "orders_per_customer": (
        TRIAL,
        "orders per acquired customer",
        "orders within the horizon, the first included (0 for subscriptions)",
    ),
    # Exact conditional expectations given the trial's inputs (no cohort noise):
    # the estimator of mean LTV (see model.expected_ltv).
    "expected_ltv_revenue": (TRIAL, "{money}", "E[revenue LTV | the trial's inputs]"),
    "expected_ltv_gross_profit": (TRIAL, "{money}", "E[gross-profit LTV | the trial's inputs]"),
    "expected_ltv_discounted": (
        TRIAL,
        "{money}",
        "E[discounted gross-profit LTV | the trial's inputs]",
    ),
    "expected_ltv_net": (TRIAL, "{money}", "E[net LTV | the trial's inputs]"),
    "expected_ltv_net_discounted": (TRIAL, "{money}", "E[discounted net LTV | the trial's inputs]"),
    # Costs per acquired customer (README "Costs"); the first two are inside gross profit.
    "cost_to_serve": (TRIAL, "{money}", "cost to serve (revenue.cost_to_serve_monthly)"),
    "cost_to_serve_discounted": (TRIAL, "{money}", "discounted cost to serve"),
    "cost_payment_fees": (
        TRIAL,
        "{money}",
        "payment-processing fees (costs.payment_fee x revenue + costs.payment_fee_fixed "
        "per payment)",
    ),
    "cost_payment_fees_discounted": (TRIAL, "{money}", "discounted payment-processing fees"),
    "cost_retention": (TRIAL, "{money}", "retention spend (costs.retention_monthly)"),
    "cost_retention_discounted": (TRIAL, "{money}", "discounted retention spend"),
    "cost_onboarding": (TRIAL, "{money}", "onboarding cost (costs.onboarding, at acquisition)"),
    "survival": (PATH, "1", "share of acquired customers active in the month"),
    "revenue": (PATH, "{money}", "revenue in the month"),
    "orders": (
        PATH,
        "orders per acquired customer",
        "orders (deals) in the month (0 for subscriptions)",
    ),
    "gross_profit": (PATH, "{money}", "gross profit in the month"),
    "cumulative_gross_profit": (PATH, "{money}", "gross profit up to and including the month"),
    "cumulative_discounted_gross_profit": (
        PATH,
        "{money}",
        "discounted gross profit up to and including the month",
    ),
    "cumulative_net_profit": (
        PATH,
        "{money}",
        "gross profit - retention spend up to and including the month, - onboarding",
    ),
    "paid_back_share": (
        PATH,
        "1",
        "share of acquired customers whose own cumulative net profit (as paid) has reached CAC",
    ),
    "nrr": (
        YEARLY,
        "1",
        "net revenue retention of cohort year y: MRR at month 12y over MRR at month "
        "12(y-1), churned customers included as 0",
    ),
    "grr": (
        YEARLY,
        "1",
        "gross revenue retention of cohort year y: like nrr, each customer's MRR capped "
        "at its value 12 months earlier (expansion excluded)",
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
        shares = segment_shares(config, first_trial, config.trials)
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

    if config.named_segments:
        data["segment_share"] = xr.Variable(
            TRIAL,
            np.vstack([shares, np.ones(config.trials)]).T,
            {"units": "1", "long_name": "share of the trial's acquired customers in the segment"},
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
        "cohort_year": (
            "cohort_year",
            np.arange(1, retention_years(config.horizon_months) + 1),
            {"units": "years", "long_name": "year since acquisition (ends at month 12y)"},
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
        "segment_mix": "fixed shares"
        if config.mix_concentration is None
        else f"Dirichlet around the shares, concentration {config.mix_concentration:g}",
        "payments": _payments(config),
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
    shown = [*BANDED, *(input_variable(p) for p in config.uncertain_inputs())]
    if config.mix_concentration:
        shown.append("segment_share")
    for name in shown:
        var = trial_data[name].variable
        band = band_quantiles(var.values, quantiles)
        data[f"{name}_band"] = xr.Variable(
            ("quantile", *var.dims[1:]),
            band,
            {"units": var.attrs["units"], "long_name": f"quantiles across trials of {name}"},
        )
    hists = [h / h.sum() for h in customer_hists]
    if config.named_segments:
        # customers pooled over trials: each segment weighted by its mean share
        shares = segment_shares(config, 0, config.trials)
        mean_shares = shares.mean(axis=1) if config.mix_concentration else shares[:, 0]
        hists.append(sum(w * h for w, h in zip(mean_shares, hists, strict=True)))
    data[CUSTOMER_LTV_BAND] = xr.Variable(
        ("quantile", "segment"),
        np.stack([histogram_quantiles(h, quantiles) for h in hists], axis=-1),
        {
            "units": money.replace("per acquired customer", "per customer"),
            "long_name": "quantiles of individual customers' discounted gross-profit LTV "
            "(net of retention spend, before onboarding), pooled over all trials "
            "(histogram, 0.67% relative bin width)",
        },
    )
    return data


def _payments(config: Config) -> str:
    text = "in advance: a customer pays in month 0 and every month it is active"
    if any(purchase_model.is_order_driven(s) for s in config.segments):
        text += (
            "; order-driven models (repeat purchase, deals): an order is paid when placed, "
            "at time t in month floor(t), the first at t = 0"
        )
    return text


def _segment_values(config: Config, run) -> dict[str, np.ndarray]:
    n = config.customers
    inputs = run.inputs
    survival = run.alive / n
    revenue = run.revenue / n
    orders = run.orders / n
    weights = run.weights
    if purchase_model.is_order_driven(run.segment):
        # Orders are paid when placed; no [costs], billing or MRR (so no NRR/GRR).
        cost, order_cost = purchase_model.cost_rates(inputs)
        margin = inputs["revenue.gross_margin"][:, None]
        gross_profit = margin * revenue - cost * survival - order_cost * orders
        cash_gross_profit = gross_profit
        cash, zero = revenue, np.zeros(len(survival))
        service_cost = fee = fixed_fee = retention = onboarding = zero
        expected = purchase_model.segment_expected_ltv(config, run.segment, inputs)
        long_run, unbounded = np.full(len(zero), np.nan), zero
        retained = np.full(run.retained.shape, np.nan)
        billing = 1
    else:
        args = kernel_inputs(config, run.segment, inputs)
        # margin is net of the payment fee, service cost includes the fixed fee
        margin, service = args["margin"][:, None], args["service_cost"][:, None]
        gross_profit = margin * revenue - service * survival
        # Gross profit by the month it is paid: revenue billed in advance, costs monthly.
        billing = run.segment["revenue.billing_months"]
        cash = cash_by_month(revenue, billing)
        cash_gross_profit = margin * cash - service * survival
        service_cost = inputs["revenue.cost_to_serve_monthly"]
        fee = inputs["costs.payment_fee"]
        fixed_fee = inputs["costs.payment_fee_fixed"] / billing  # per month: one payment per period
        retention, onboarding = args["retention"], args["onboarding"]
        expected = expected_ltv(args, config.horizon_months)
        long_run = long_run_nrr(args)
        unbounded = ((long_run >= 1.0 + inputs["discount.annual_rate"]) & (margin[:, 0] > 0)) * 1.0
        retained = run.retained / n
    lifetime = survival.sum(axis=1)
    discounted_lifetime = (survival * weights).sum(axis=1)
    out = {
        "cac": inputs["acquisition.cac"],
        "survival": survival,
        "revenue": revenue,
        "orders": orders,
        "gross_profit": gross_profit,
        "cash_gross_profit": cash_gross_profit,
        "cumulative_discounted_gross_profit": np.cumsum(cash_gross_profit * weights, axis=1),
        "paid_back_share": np.cumsum(run.paid_first, axis=1) / n,
        "retention_spend": retention[:, None] * survival,  # per month; for net profit
        "cost_to_serve": service_cost * lifetime,
        "cost_to_serve_discounted": service_cost * discounted_lifetime,
        "cost_payment_fees": fee * revenue.sum(axis=1) + fixed_fee * lifetime,
        "cost_payment_fees_discounted": fee * (cash * weights).sum(axis=1)
        + fixed_fee * discounted_lifetime,
        "cost_retention": retention * lifetime,
        "cost_retention_discounted": retention * discounted_lifetime,
        "cost_onboarding": onboarding,
        "retained": retained,
        "long_run_nrr": long_run,
        "ltv_unbounded": unbounded,
        "billing_months": billing,
    }
    for tier, values in expected.items():
        out[f"expected_ltv_{tier}"] = values
    return _derived(out)


def _derived(v: dict) -> dict:
    """Fill in the variables that follow from the per-month paths, costs and CAC."""
    v["cumulative_gross_profit"] = np.cumsum(v["gross_profit"], axis=1)
    net_profit = v["gross_profit"] - v["retention_spend"]
    v["cumulative_net_profit"] = np.cumsum(net_profit, axis=1) - v["cost_onboarding"][:, None]
    v["ltv_revenue"] = v["revenue"].sum(axis=1)
    v["ltv_gross_profit"] = v["cumulative_gross_profit"][:, -1]
    v["ltv_discounted"] = v["cumulative_discounted_gross_profit"][:, -1]
    v["ltv_net"] = v["cumulative_net_profit"][:, -1]
    v["ltv_net_discounted"] = (
        v["ltv_discounted"] - v["cost_retention_discounted"] - v["cost_onboarding"]
    )
    v["ltv_cac"] = v["ltv_gross_profit"] / v["cac"]
    v["ltv_cac_discounted"] = v["ltv_discounted"] / v["cac"]
    v["lifetime_months"] = v["survival"].sum(axis=1)
    # Payback on cash: revenue counts when it is paid (billing in advance).
    net_cash = v["cash_gross_profit"] - v["retention_spend"]
    v["payback_months"] = payback_months(
        np.cumsum(net_cash, axis=1) - v["cost_onboarding"][:, None],
        net_cash,
        v["cac"],
        within_month=v["billing_months"] == 1,
    )
    # MRR at month 12y is the revenue of month 12y.
    years = v["retained"].shape[1]
    year_start = v["revenue"][:, 0 : years * 12 : 12]
    with np.errstate(divide="ignore", invalid="ignore"):
        v["nrr"] = v["revenue"][:, 12 : (years + 1) * 12 : 12] / year_start
        v["grr"] = v["retained"] / year_start
    # Not defined where GRR is not (orders, not MRR: order-driven models).
    v["nrr"] = np.where(np.isnan(v["retained"]), np.nan, v["nrr"])
    v["ltv_net_of_cac"] = v["ltv_gross_profit"] - v["cac"]
    v["orders_per_customer"] = v["orders"].sum(axis=1)
    return v


# Per-acquired-customer amounts: the blend of segments is their share-weighted sum.
ADDITIVE = (
    "expected_ltv_revenue",
    "expected_ltv_gross_profit",
    "expected_ltv_discounted",
    "expected_ltv_net",
    "expected_ltv_net_discounted",
    "cac",
    "survival",
    "revenue",
    "orders",
    "gross_profit",
    "cash_gross_profit",
    "cumulative_discounted_gross_profit",
    "paid_back_share",
    "retention_spend",
    "retained",
    "cost_to_serve",
    "cost_to_serve_discounted",
    "cost_payment_fees",
    "cost_payment_fees_discounted",
    "cost_retention",
    "cost_retention_discounted",
    "cost_onboarding",
)


def _blend(per_segment: list[dict], shares: np.ndarray) -> dict:
    """The "all" segment: share-weighted blend of per-acquired-customer amounts.

    ``shares[i, j]`` is segment i's share of the customers acquired in trial j.
    """
    blend = {}
    for k in ADDITIVE:
        blend[k] = sum(
            (w if seg[k].ndim == 1 else w[:, None]) * seg[k]
            for w, seg in zip(shares, per_segment, strict=True)
        )
    # Unbounded if any segment is; the largest NRR dominates as tenure grows.
    for name in ("long_run_nrr", "ltv_unbounded", "billing_months"):
        blend[name] = np.max([seg[name] for seg in per_segment], axis=0)
    return _derived(blend)


def payback_months(cumulative, monthly, cac, within_month=True):
    """First time cumulative gross profit reaches CAC, interpolating within the month.

    With gross profit ``g`` per month forever this is exactly ``cac / g``.
    Revenue billed in advance for several months arrives at once at the start
    of the month (``within_month=False``): the payback is that month.
    NaN where it does not happen within the horizon.
    """
    crossed = cumulative >= cac[:, None]
    month = np.argmax(crossed, axis=1)
    rows = np.arange(len(cac))
    before = cumulative[rows, month] - monthly[rows, month]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        fraction = (cac - before) / monthly[rows, month]
    fraction = np.clip(fraction, 0.0, 1.0) if within_month else 0.0
    return np.where(crossed.any(axis=1), month + fraction, np.nan)


# Costs per acquired customer below gross profit: where either is non-zero, net LTV
# differs from gross-profit LTV and the summaries and charts show both.
COSTS_BELOW_GROSS_PROFIT = ("cost_retention", "cost_onboarding")


def has_costs_below_gross_profit(ds: xr.Dataset, segment: str | None = None) -> bool:
    """Whether retention spend or onboarding is non-zero in ``segment`` (None: anywhere)."""
    for name in COSTS_BELOW_GROSS_PROFIT:
        if name in ds:
            cost = ds[name] if segment is None else ds[name].sel(segment=segment)
            if bool((cost != 0).any()):
                return True
    return False


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
    edges = _kernels.histogram_edges()
    y_edges = np.sign(edges) * np.log1p(np.abs(edges))
    y = y_edges[b] + fraction * (y_edges[b + 1] - y_edges[b])
    return np.sign(y) * np.expm1(np.abs(y))
