"""The order-driven business models: repeat purchase (e-commerce, retail) and deals (B2B).

``kernel_params`` turns a segment's drawn inputs into the per-trial parameter
table of ``_purchase_kernel`` (years to months, spend in the kernel's
gamma-gamma form); ``expected_paths`` and ``expected_ltv`` give, for each
trial, the exact expectation of orders, customers alive, revenue and the LTV
tiers given that trial's inputs — the same role ``model.expected_ltv`` plays
for subscriptions (the mean estimator and adaptive stopping).

Repeat purchase: a customer orders at acquisition (t = 0), then buys till it
dies (BG/NBD or Pareto/NBD); spend per order is gamma-gamma. Gross profit is
``margin × order value − cost per order`` for each order minus marketing
for each month the customer is alive at the start of (not yet dropped out):
the seeds' e-commerce net LTV before acquisition cost (``ltv_net_of_cac``
subtracts CAC too).

Deals: a first deal at t = 0, then an opportunity every ``12 / per_year``
months while the account is retained, each won with ``follow_on_probability``.
With probability 1, no value spread and fixed retention this is the seeds'
four-factor formula exactly: value × margin × per year × years.
"""

from __future__ import annotations

import numpy as np

from . import _purchase_kernel as pk
from . import model
from .config import Config, Segment
from .formulas import (
    bgnbd_alive_probability,
    bgnbd_expected_purchases,
    gamma_gamma_mean_order_value,
    pareto_nbd_alive_probability,
    pareto_nbd_expected_purchases,
)
from .model import discount_weights

PROCESS_CODES = {"bgnbd": pk.BGNBD, "pareto_nbd": pk.PARETO_NBD}

# Parameter-table column <- config key (drawn per trial), for the keys used as given.
_COLUMNS = {
    pk.R: "purchase.r",
    pk.ALPHA: "purchase.alpha_months",
    pk.A: "purchase.a",
    pk.B: "purchase.b",
    pk.S: "purchase.s",
    pk.BETA: "purchase.beta_months",
    pk.SPEND_P: "spend.p",
    pk.SPEND_Q: "spend.q",
    pk.DEALS_PER_YEAR: "deals.per_year",
    pk.FOLLOW_ON_P: "deals.follow_on_probability",
    pk.FIRST_VALUE: "deals.first_deal_value",
    pk.FOLLOW_ON_VALUE: "deals.follow_on_value",
    pk.VALUE_CV: "deals.value_cv",
    pk.MARGIN: "revenue.gross_margin",
    pk.ORDER_COST: "purchase.cost_per_order",
    pk.MARKETING: "purchase.marketing_monthly",
    pk.CAC: "acquisition.cac",
}


def is_order_driven(segment: Segment) -> bool:
    """True if the segment's customers pay by orders (repeat purchase or deals)."""
    return segment["business.model"] != "subscription"


def process_code(segment: Segment) -> int:
    if segment["business.model"] == "deals":
        return pk.DEALS
    return PROCESS_CODES[segment["purchase.process"]]


def kernel_params(config: Config, segment: Segment, inputs: dict) -> dict:
    """The kernel's arguments for the trials of ``inputs``: process, parameter table, weights."""
    count = len(inputs["acquisition.cac"])
    params = np.zeros((count, pk.N_PARAMS))
    for column, path in _COLUMNS.items():
        params[:, column] = inputs[path]
    if "spend.mean_order_value" in inputs:  # gamma = mean (q - 1) / p
        params[:, pk.SPEND_GAMMA] = (
            inputs["spend.mean_order_value"] * (inputs["spend.q"] - 1.0) / inputs["spend.p"]
        )
    else:
        params[:, pk.SPEND_GAMMA] = inputs["spend.gamma"]
    params[:, pk.RETENTION] = 12.0 * inputs["deals.retention_years"]  # years to months
    params[:, pk.EXPONENTIAL_RETENTION] = float(segment["deals.retention"] == "exponential")
    horizon = config.horizon_months
    weights = discount_weights(inputs["discount.annual_rate"], horizon, segment["discount.timing"])
    return dict(
        process=process_code(segment),
        params=params,
        weights=weights,
        cum_weights=model.cumulative(weights),
    )


def cost_rates(inputs: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per trial: cost per month alive (marketing) and cost per order, as columns."""
    return inputs["purchase.marketing_monthly"][:, None], inputs["purchase.cost_per_order"][:, None]


def expected_paths(args: dict, horizon: int) -> dict[str, np.ndarray]:
    """Exact E[orders], E[alive] and E[revenue] per customer by month, shape (trial, month).

    Repeat purchase: orders in month m are the acquisition order (m = 0)
    plus ``E[X(m+1)] − E[X(m)]`` repeat orders, each worth ``E[z] = pγ/(q−1)``
    independently of the purchase process; alive is ``P(τ > m)``. Deals: a
    sum over the opportunities ``t_k = 12k / per_year`` of
    ``P(τ > t_k) × P(won) × mean value``.
    """
    prm = args["params"]
    if args["process"] == pk.DEALS:
        return _expected_deal_paths(prm, horizon)
    months = np.arange(horizon + 1, dtype=float)
    r, alpha = prm[:, pk.R][:, None], prm[:, pk.ALPHA][:, None]
    if args["process"] == pk.BGNBD:
        a, b = prm[:, pk.A][:, None], prm[:, pk.B][:, None]
        repeat = bgnbd_expected_purchases(r, alpha, a, b, months)
        alive = bgnbd_alive_probability(r, alpha, a, b, months[:-1])
    else:
        s, beta = prm[:, pk.S][:, None], prm[:, pk.BETA][:, None]
        repeat = pareto_nbd_expected_purchases(r, alpha, s, beta, months)
        alive = pareto_nbd_alive_probability(s, beta, months[:-1])
    orders = np.diff(repeat, axis=1)
    orders[:, 0] += 1.0  # the acquisition order
    value = gamma_gamma_mean_order_value(
        prm[:, pk.SPEND_P], prm[:, pk.SPEND_Q], prm[:, pk.SPEND_GAMMA]
    )
    return {"orders": orders, "alive": alive, "revenue": orders * value[:, None]}


def _expected_deal_paths(prm: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
    count = len(prm)
    orders = np.zeros((count, horizon))
    revenue = np.zeros((count, horizon))
    months = np.arange(horizon, dtype=float)
    alive = np.zeros((count, horizon))
    for j, row in enumerate(prm):
        retention, exponential = row[pk.RETENTION], row[pk.EXPONENTIAL_RETENTION] > 0
        k = np.arange(int(np.ceil(horizon * row[pk.DEALS_PER_YEAR] / 12.0)) + 1)
        t = 12.0 * k / row[pk.DEALS_PER_YEAR]  # as the kernel computes it
        k, t = k[t < horizon], t[t < horizon]
        if exponential:
            retained = np.exp(-t / retention)
            alive[j] = np.exp(-months / retention)
        else:
            retained = (t < retention).astype(float)
            alive[j] = months < retention
        chance = retained * np.where(k == 0, 1.0, row[pk.FOLLOW_ON_P])
        value = np.where(k == 0, row[pk.FIRST_VALUE], row[pk.FOLLOW_ON_VALUE])
        month = t.astype(np.int64)
        orders[j] = np.bincount(month, chance, horizon)
        revenue[j] = np.bincount(month, chance * value, horizon)
    return {"orders": orders, "alive": alive, "revenue": revenue}


def expected_ltv(args: dict, horizon: int) -> dict[str, np.ndarray]:
    """Exact E[LTV tiers | trial inputs] per trial, from :func:`kernel_params` ``args``."""
    prm = args["params"]
    paths = expected_paths(args, horizon)
    gross_profit = (
        prm[:, pk.MARGIN][:, None] * paths["revenue"]
        - prm[:, pk.ORDER_COST][:, None] * paths["orders"]
        - prm[:, pk.MARKETING][:, None] * paths["alive"]
    )
    return {
        "revenue": paths["revenue"].sum(axis=1),
        "gross_profit": gross_profit.sum(axis=1),
        "discounted": (gross_profit * args["weights"]).sum(axis=1),
    }


def segment_expected_ltv(config: Config, segment: Segment, inputs: dict) -> dict[str, np.ndarray]:
    """Per trial, the exact E[LTV tiers | inputs] of a segment, whatever its business model."""
    if is_order_driven(segment):
        expected = expected_ltv(kernel_params(config, segment, inputs), config.horizon_months)
        # No [costs] apply: the net tiers are the gross-profit ones.
        expected["net"], expected["net_discounted"] = (
            expected["gross_profit"],
            expected["discounted"],
        )
        return expected
    args = model.kernel_inputs(config, segment, inputs)
    return model.expected_ltv(args, config.horizon_months)
