"""The model's parameters: per-trial inputs, their units, and exact expectations.

``draw_inputs`` draws every input of a segment for a range of trials (by
inverse transform of reproducible uniforms); ``kernel_inputs`` converts them
into the per-month and per-renewal arrays the kernel works in (rates by
compounding, never by division); ``expected_ltv`` gives, for each trial, the
exact expectation of the LTV tiers given that trial's inputs — the
conditional expectation that removes the cohort's sampling noise from the
estimate of mean LTV.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri

from . import _kernels
from ._rng import stream_key, stream_uniforms
from .config import Config, InputGroup, Segment, monthly_from_annual

# Churn model codes in the per-trial arguments (the kernel itself only sees survival tables).
CONSTANT, SBG, CURVE = 0, 1, 2
MODEL_CODES = {"constant": CONSTANT, "sbg": SBG, "curve": CURVE}


def draw_inputs(config: Config, segment: Segment, first: int, count: int) -> dict:
    """Every input's value for trials ``first … first+count-1`` (fixed ones repeated).

    An uncertain input is its distribution's inverse CDF at the uniform of its
    own stream, or, when ``[[correlations]]`` put it in a group, at its
    correlated uniform (:func:`correlated_uniforms`).
    """
    values = {}
    correlated: dict[str, np.ndarray] = {}
    for path, value in segment.values.items():
        if segment.is_uncertain(path):
            stream = segment.streams[path]
            group = config.input_group(stream)
            if group is None:
                u = input_uniforms(config, stream, first, count)
            else:
                if stream not in correlated:
                    correlated.update(correlated_uniforms(config, group, first, count))
                u = correlated[stream]
            values[path] = value.ppf(u)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            values[path] = np.full(count, float(value))
    return values


def input_uniforms(config: Config, stream: str, first: int, count: int) -> np.ndarray:
    """The uniforms of uncertain-input stream ``stream`` in trials ``first … first+count-1``."""
    key = stream_key(config.seed, "input", stream)
    return trial_uniforms(key, first, count, config.antithetic_inputs)


# The open interval the streams' uniforms live in: an inverse CDF stays finite.
_U_LOW, _U_HIGH = 2.0**-54, 1.0 - 2.0**-53


def correlated_uniforms(config: Config, group: InputGroup, first: int, count: int) -> dict:
    """Uniforms of a correlated group's streams: a Gaussian copula, ``{stream: u}``.

    Each stream's own uniform becomes a standard normal score ``z = ndtri(u)``;
    ``L z`` with ``L`` the Cholesky factor of the group's correlation matrix
    has that correlation, and ``ndtr`` maps it back to uniforms, so every
    input keeps its distribution exactly. A pure function of (seed, trial);
    antithetic trials mirror (``z -> -z`` gives ``L z -> -L z``).
    """
    z = ndtri(np.stack([input_uniforms(config, s, first, count) for s in group.streams]))
    u = np.clip(ndtr(np.asarray(group.cholesky) @ z), _U_LOW, _U_HIGH)
    return dict(zip(group.streams, u, strict=True))


def trial_uniforms(key, first: int, count: int, antithetic: bool) -> np.ndarray:
    """The uniform behind an input's draw in trials ``first … first+count-1``.

    Antithetic pairs: trial 2k+1 takes ``1 - u`` of trial 2k, so a monotone
    response moves the opposite way in the two and their average varies less;
    every trial's input still has exactly its distribution.
    """
    if not antithetic:
        return stream_uniforms(key, first, count)
    trial = np.arange(first, first + count)
    start = first - first % 2
    u = stream_uniforms(key, start, first + count - start)[trial - trial % 2 - start]
    return np.where(trial % 2 == 1, 1.0 - u, u)


def kernel_inputs(config: Config, segment: Segment, inputs: dict) -> dict:
    """Convert drawn inputs to the kernel's per-month, per-renewal arrays."""
    horizon = config.horizon_months
    renewal = segment["churn.renewal_months"]
    model = segment["churn.model"]
    count = len(inputs["revenue.arpa_monthly"])
    churn = per_renewal_churn(inputs, renewal) if model == "constant" else np.zeros(count)
    max_renewals = -(-horizon // renewal)
    survival = np.ones(max_renewals + 1)
    rates = np.zeros(1)
    if model == "curve":
        rates = np.asarray(segment["churn.monthly_rates"], dtype=np.float64)
        hazard = rates[np.minimum(np.arange(max_renewals * renewal), len(rates) - 1)]
        month_survival = np.cumprod(1.0 - hazard)
        survival[1:] = month_survival[renewal - 1 :: renewal]
    ones = np.ones(count)
    sbg_alpha = inputs.get("churn.alpha", ones)
    sbg_beta = inputs.get("churn.beta", ones)

    growth = inputs["expansion.annual_growth"]
    vol = inputs["expansion.annual_volatility"] / math.sqrt(12.0)
    # annual_growth is the expected (arithmetic) growth: E[exp(mu + vol Z)] = (1+g)^(1/12).
    log_drift = np.log1p(growth) / 12.0 - 0.5 * vol**2
    weights = discount_weights(inputs["discount.annual_rate"], horizon, segment["discount.timing"])
    billing = segment["revenue.billing_months"]
    # Month t's revenue is paid at the start of its billing period.
    cash_weights = weights[:, billing_start(horizon, billing)]
    price = inputs["expansion.price_increase"]
    t = np.arange(horizon)
    # M(t): growth and price increases common to every customer of the trial
    # (the kernel's MRR without volatility is a customer's level times M).
    multiplier = np.exp(
        log_drift[:, None] * t
        + np.log1p(price)[:, None] * (t // segment["expansion.price_increase_every_months"])
    )
    cv = inputs["revenue.arpa_cv"]
    # Costs (README "Costs"): payment fees are a cost of revenue, inside gross profit;
    # retention spend and onboarding come after it. The kernel's payback and customer
    # histogram use the contribution net of every monthly cost and recover CAC plus
    # onboarding. With every cost 0 these are the drawn inputs, bit for bit.
    # One payment every billing period: the fixed fee per payment is fee / billing a month.
    fixed_fee_monthly = inputs["costs.payment_fee_fixed"] / segment["revenue.billing_months"]
    service_cost = inputs["revenue.cost_to_serve_monthly"] + fixed_fee_monthly
    retention = inputs["costs.retention_monthly"]
    return dict(
        model=MODEL_CODES[model],
        renewal_months=renewal,
        curve_survival=survival,
        renewal_survival=renewal_survival(model, churn, survival, sbg_alpha, sbg_beta),
        curve_last_rate=rates[-1],
        churn_per_renewal=churn,
        first_renewal_churn=inputs["churn.first_renewal_churn"],
        alpha=np.ascontiguousarray(sbg_alpha),
        beta=np.ascontiguousarray(sbg_beta),
        arpa=inputs["revenue.arpa_monthly"],
        arpa_sigma=np.sqrt(np.log1p(cv**2)),
        margin=inputs["revenue.gross_margin"] - inputs["costs.payment_fee"],
        service_cost=service_cost,
        retention=retention,
        onboarding=inputs["costs.onboarding"],
        cost=service_cost + retention,
        cac=inputs["acquisition.cac"] + inputs["costs.onboarding"],
        log_drift=log_drift,
        volatility=vol,
        upsell_p=inputs["expansion.upsell_monthly_probability"],
        upsell_size=inputs["expansion.upsell_size"],
        downgrade_p=inputs["expansion.downgrade_monthly_probability"],
        downgrade_size=inputs["expansion.downgrade_size"],
        price_increase=price,
        price_every=segment["expansion.price_increase_every_months"],
        seat_model=segment["revenue.mrr_model"] == "seats",
        seat_price=inputs["seats.price_monthly"],
        seats_initial=inputs["seats.initial"],
        seat_add_rate=inputs["seats.added_per_seat_monthly"],
        seat_remove_rate=inputs["seats.removed_per_seat_monthly"],
        billing_months=billing,
        multiplier=multiplier,
        multiplier_rising=log_drift >= 0.0,
        cum_multiplier=cumulative(multiplier),
        cum_cash_multiplier=cumulative(multiplier * cash_weights),
        weights=weights,
        cash_weights=cash_weights,
        cum_weights=cumulative(weights),
    )


def renewal_survival(model: str, churn, curve: np.ndarray, alpha, beta) -> np.ndarray:
    """P(a customer survives n renewals) per trial, n = 0 … max renewals (``len(curve) - 1``).

    Constant churn: ``(1 - churn)^n``; sBG: ``B(α, β+n)/B(α, β) = Π_{k<n}
    (β+k)/(α+β+k)``, the beta-geometric survival (Fader & Hardie 2007); the
    curve: its own table. The kernel draws lifetimes from it by inverse transform.
    """
    n = np.arange(len(curve))
    if model == "sbg":
        ratio = (beta[:, None] + n[:-1]) / (alpha[:, None] + beta[:, None] + n[:-1])
        return np.concatenate((np.ones((len(alpha), 1)), np.cumprod(ratio, axis=1)), axis=1)
    if model == "curve":
        return np.ascontiguousarray(np.broadcast_to(curve, (len(alpha), len(curve))))
    # exp(n log1p(-churn)), not (1 - churn)^n: 1 - churn loses a tiny churn's digits.
    with np.errstate(divide="ignore", invalid="ignore"):
        survival = np.exp(np.log1p(-churn)[:, None] * n)
    survival[:, 0] = 1.0  # 0 × log(0) at churn 1
    return survival


def per_renewal_churn(inputs: dict, renewal_months: int) -> np.ndarray:
    """Constant churn model: the probability of leaving at a renewal, compounding the
    monthly (or annual) rate over the ``renewal_months`` between renewals."""
    if "churn.annual_rate" in inputs:
        monthly_survival = (1.0 - inputs["churn.annual_rate"]) ** (1.0 / 12.0)
    else:
        monthly_survival = 1.0 - inputs["churn.monthly_rate"]
    return 1.0 - monthly_survival**renewal_months


def retention_years(horizon: int) -> int:
    """Cohort years y whose month 12y is inside the horizon (NRR and GRR of years 1 … y)."""
    return (horizon - 1) // _kernels.YEAR


def long_run_nrr(args: dict) -> np.ndarray:
    """Per trial, the cohort's yearly net revenue retention as tenure grows without limit.

    The limit of E[revenue(t + 12)] / E[revenue(t)]: yearly survival of the
    long-tenured (constant churn: ``(1-q)^(12/k)``; sBG: 1, the survivors'
    churn tends to 0; curve: its last monthly rate, which repeats) times the yearly growth of
    E[MRR]. LTV over an unbounded horizon is finite only if this is below
    1 + the annual discount rate.
    """
    # Yearly growth of E[level] as t grows: seats e^(12 max(r, 0)) (bounded if r < 0).
    if args["seat_model"]:
        r = args["seat_add_rate"] - args["seat_remove_rate"]
        level_growth = np.exp(12.0 * np.maximum(r, 0.0))
    else:
        level_growth = (
            1.0
            + args["upsell_p"] * args["upsell_size"]
            - args["downgrade_p"] * args["downgrade_size"]
        ) ** 12
    step = np.exp(args["log_drift"] + 0.5 * args["volatility"] ** 2)
    mrr_growth = (
        level_growth * step**12 * (1.0 + args["price_increase"]) ** (12.0 / args["price_every"])
    )
    renewal = args["renewal_months"]
    if args["model"] == SBG:
        survival = np.ones_like(step)
    elif args["model"] == CURVE:
        survival = np.full_like(step, (1.0 - args["curve_last_rate"]) ** 12)
    else:
        survival = (1.0 - args["churn_per_renewal"]) ** (12.0 / renewal)
    return survival * mrr_growth


def cumulative(values: np.ndarray) -> np.ndarray:
    """Sums of the first t columns, t = 0 … n: shape (rows, n + 1), starting at 0."""
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


def billing_start(horizon: int, billing_months: int) -> np.ndarray:
    """Month in which each month's revenue is paid: the start of its billing period."""
    t = np.arange(horizon)
    return t - t % billing_months


def cash_by_month(revenue: np.ndarray, billing_months: int) -> np.ndarray:
    """Revenue by the month it is paid: each billing period's sum at its first month.

    Churn happens only at renewals, which billing periods divide, so a customer
    active at the start of a billing period is active for all of it.
    """
    if billing_months == 1:
        return revenue
    starts = np.arange(0, revenue.shape[-1], billing_months)
    cash = np.zeros_like(revenue)
    cash[..., starts] = np.add.reduceat(revenue, starts, axis=-1)
    return cash


def discount_weights(annual_rate, horizon: int, timing: str) -> np.ndarray:
    """Discount factor of each month's cash, shape (len(annual_rate), horizon).

    ``v = 1 / (1 + d)`` with ``d = (1 + annual_rate)^(1/12) - 1``; cash of month t
    arrives at time t ("start"), t + 1/2 ("middle"), t + 1 ("end"), or evenly
    through the month ("continuous": ``v^t (1 - v) / delta``, ``delta = -ln v``).
    """
    d = monthly_from_annual(np.asarray(annual_rate, dtype=np.float64))[:, None]
    t = np.arange(horizon, dtype=np.float64)[None, :]
    log_v = -np.log1p(d)
    if timing == "start":
        return np.exp(log_v * t)
    if timing == "middle":
        return np.exp(log_v * (t + 0.5))
    if timing == "end":
        return np.exp(log_v * (t + 1.0))
    # continuous: the month's average of v^s over s in [t, t+1]; 1 when d = 0.
    delta = -log_v
    average = np.where(delta > 0, -np.expm1(-delta) / np.where(delta > 0, delta, 1.0), 1.0)
    return np.exp(log_v * t) * average


def expected_level(args: dict, t: np.ndarray) -> np.ndarray:
    """E[level of MRR in month t] (before growth, volatility and price increases).

    Per account: ``ARPA (1 + p_up·up − p_down·down)^t``. Seats: price per seat
    × E[seats(t)]; with add rate λ per seat and removal rate δ per seat but
    the first, ``dE/dt = (λ − δ) E + δ``, so ``E[seats(t)] = (m + δ/r) e^(rt)
    − δ/r``, ``r = λ − δ`` (``m + δt`` when r = 0), m the initial mean.
    """
    t = np.asarray(t, dtype=np.float64)[None, :]
    if args["seat_model"]:
        m = args["seats_initial"][:, None]
        add, remove = args["seat_add_rate"][:, None], args["seat_remove_rate"][:, None]
        r = add - remove
        safe_r = np.where(r == 0.0, 1.0, r)
        seats = np.where(
            r == 0.0, m + remove * t, (m + remove / safe_r) * np.exp(safe_r * t) - remove / safe_r
        )
        return args["seat_price"][:, None] * seats
    change = (
        1.0 + args["upsell_p"] * args["upsell_size"] - args["downgrade_p"] * args["downgrade_size"]
    )
    return args["arpa"][:, None] * change[:, None] ** t


def expected_ltv(args: dict, horizon: int) -> dict[str, np.ndarray]:
    """Exact E[LTV tiers | trial inputs] per trial, from the kernel's arrays ``args``.

    Churn and MRR are independent in the model, so the expected revenue of
    month t is ``S(t) × E[MRR(t)]`` with ``S`` the survival of the churn model
    (``(1-q)^n``, sBG ``B(α, β+n)/B(α, β)`` or the curve's table, n renewals
    by month t, times ``1 − first_renewal_churn`` after the first) and
    ``E[MRR(t)] = E[level(t)] × M(t) × exp(σ² t / 2)`` with ``M(t) = exp(μ t)
    (1 + price increase)^⌊t/every⌋`` (see ``expected_level``).
    Revenue is discounted to when it is paid (``cash_weights``), the cost to
    serve monthly.
    """
    t = np.arange(horizon)
    renewals = t // args["renewal_months"]
    # The table the kernel draws lifetimes from (see renewal_survival).
    survival = args["renewal_survival"][:, renewals]
    survival = survival * np.where(renewals >= 1, 1.0 - args["first_renewal_churn"][:, None], 1.0)
    volatility_growth = np.exp(0.5 * args["volatility"][:, None] ** 2 * t)
    revenue = expected_level(args, t) * args["multiplier"] * volatility_growth * survival
    margin, service_cost = args["margin"][:, None], args["service_cost"][:, None]
    gross_profit = margin * revenue - service_cost * survival
    # Revenue is discounted to when it is paid, the monthly costs to their month.
    discounted = margin * revenue * args["cash_weights"] - service_cost * survival * args["weights"]
    retention = args["retention"][:, None] * survival
    net_discounted = discounted - retention * args["weights"]
    return {
        "revenue": revenue.sum(axis=1),
        "gross_profit": gross_profit.sum(axis=1),
        "discounted": discounted.sum(axis=1),
        "net": (gross_profit - retention).sum(axis=1) - args["onboarding"],
        "net_discounted": net_discounted.sum(axis=1) - args["onboarding"],
    }
