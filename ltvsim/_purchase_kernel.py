"""The numba kernel of the order-driven business models: plain arrays in, aggregates out.

Units of work, streams and outputs mirror the subscription kernel
(``_kernels.simulate_units``): a unit is a chunk of one trial's customers and
writes only its own rows, so the result does not depend on scheduling.

Time is continuous (months since acquisition); every customer orders at
``t = 0`` (the acquisition order or first deal) and then:

* ``BGNBD`` (Fader, Hardie & Lee, "Counting your customers the easy way",
  Marketing Science 24(2), 2005): repeat orders form a Poisson process of rate
  ``lambda ~ Gamma(r, rate alpha)`` per month; after each repeat order the
  customer drops out with probability ``p ~ Beta(a, b)``.
* ``PARETO_NBD`` (Schmittlein, Morrison & Colombo, Management Science 33(1),
  1987): the same purchase process, and the customer drops out at an
  exponential time of rate ``mu ~ Gamma(s, rate beta)`` per month.
* ``DEALS``: deal opportunities at ``12 k / per_year`` months while the
  account is retained (a fixed number of months, or an exponential time);
  each follow-on opportunity becomes a deal with probability
  ``follow_on_probability``.

Order values: the gamma-gamma model for purchases (Fader, Hardie & Lee, "RFM
and CLV", JMR 42(4), 2005): ``z ~ Gamma(p, rate nu)``, ``nu ~ Gamma(q, rate
gamma)`` per customer; for deals a gamma around the deal's mean with the given
coefficient of variation (exactly the mean when it is 0). Gaps between orders
are exponential draws, not a Bernoulli per month. Each customer has separate
sub-streams for its rates, dropout, order times and order values.
"""

import math

import numpy as np
from numba import get_thread_id, njit, prange

from ._kernels import _hist_bin
from ._rng import derive, next_gamma, next_uniform

# Of _fastmath.py, _rng.py and _kernels.py, so that numba's cache goes stale
# when they change (why: _kernels.COMPILED_IN_SHA256).
COMPILED_IN_SHA256 = "0a613f7c196061dce9da28df3d21f6295199824eb9c2eb81bdd67d8afb907f35"

BGNBD, PARETO_NBD, DEALS = 0, 1, 2

# Sub-streams of a customer.
RATE_STREAM, DROPOUT_STREAM, ORDER_STREAM, VALUE_STREAM = 1, 2, 3, 4

# Columns of the per-trial parameter table (``purchase_model.kernel_params`` fills it).
# Times and rates are in months; money in currency.
(
    R,  # purchase rate ~ Gamma(R, rate ALPHA) per month
    ALPHA,
    A,  # BG/NBD dropout probability after a repeat order ~ Beta(A, B)
    B,
    S,  # Pareto/NBD dropout rate ~ Gamma(S, rate BETA) per month
    BETA,
    SPEND_P,  # gamma-gamma order value
    SPEND_Q,
    SPEND_GAMMA,
    DEALS_PER_YEAR,  # deal opportunities per year, evenly spaced
    FOLLOW_ON_P,  # chance a follow-on opportunity becomes a deal
    FIRST_VALUE,  # mean value of the first deal
    FOLLOW_ON_VALUE,  # mean value of a follow-on deal
    VALUE_CV,  # coefficient of variation of a deal's value
    RETENTION,  # months an account is retained (mean, if exponential)
    EXPONENTIAL_RETENTION,  # 1.0: exponential retention time, 0.0: fixed
    MARGIN,  # gross margin on order value
    ORDER_COST,  # cost per order
    MARKETING,  # cost per month alive
    CAC,
    N_PARAMS,
) = range(21)


@njit(inline="always", cache=True)
def _exponential(state):
    """Advance ``state``; return (new state, a standard exponential draw)."""
    state, u = next_uniform(state)
    return state, -math.log(u)


@njit(cache=True)
def _customer(
    key, process, prm, weights, cum_weights, horizon, u, out_ends, out_revenue, out_orders, out_paid
):
    """Simulate one customer; add it to row ``u`` of the outputs.

    ``prm`` is the trial's parameter row, ``weights``/``cum_weights`` its
    discount factors by month and their running sums. Returns the number of
    repeat orders (after the one at t = 0) within the horizon, the time of
    the last of them (0 if none), the dropout time (``inf`` if the customer
    never drops out) and the customer's discounted gross-profit LTV.
    """
    rates = derive(key, RATE_STREAM)
    dropout = derive(key, DROPOUT_STREAM)
    orders = derive(key, ORDER_STREAM)
    values = derive(key, VALUE_STREAM)
    lam, p_drop, tau, win = 0.0, 0.0, math.inf, 1.0
    shape, scale_first, scale_follow = 0.0, 0.0, 0.0
    if process == DEALS:
        if prm[EXPONENTIAL_RETENTION] > 0.0:
            dropout, e = _exponential(dropout)
            tau = prm[RETENTION] * e
        else:
            tau = prm[RETENTION]
        win = prm[FOLLOW_ON_P]
        cv = prm[VALUE_CV]
        if cv > 0.0:
            shape = 1.0 / (cv * cv)
            scale_first, scale_follow = prm[FIRST_VALUE] / shape, prm[FOLLOW_ON_VALUE] / shape
    else:
        rates, g = next_gamma(rates, prm[R])
        lam = g / prm[ALPHA]
        if process == BGNBD:
            dropout, ga = next_gamma(dropout, prm[A])
            dropout, gb = next_gamma(dropout, prm[B])
            p_drop = ga / (ga + gb) if ga + gb > 0.0 else 0.5
        else:
            dropout, gs = next_gamma(dropout, prm[S])
            dropout, e = _exponential(dropout)
            mu = gs / prm[BETA]
            tau = e / mu if mu > 0.0 else math.inf
        values, gq = next_gamma(values, prm[SPEND_Q])
        shape = prm[SPEND_P]
        scale_first = prm[SPEND_GAMMA] / gq if gq > 0.0 else math.inf
        scale_follow = scale_first
    margin, order_cost, marketing, cac = prm[MARGIN], prm[ORDER_COST], prm[MARKETING], prm[CAC]

    t, k = 0.0, 0  # time and index of the current order (opportunity, for deals)
    repeat, last = 0, 0.0
    month = 0  # the month whose gross profit is being accumulated
    cum = -marketing  # the customer's own cumulative gross profit
    ltv = 0.0
    paid = False
    while True:
        won = True
        if k > 0 and win < 1.0:
            orders, x = next_uniform(orders)
            won = x < win
        # Every opportunity draws its value, won or not, so a scenario that changes
        # the win probability keeps the other deals' values (common random numbers).
        value = prm[FIRST_VALUE] if k == 0 else prm[FOLLOW_ON_VALUE]
        if shape > 0.0:
            values, g = next_gamma(values, shape)
            value = g * (scale_first if k == 0 else scale_follow)
        if won:
            m = int(t)
            if m > month:
                # Month `month` is complete; the months up to m only cost marketing,
                # so CAC can be reached only at the end of a month with an order.
                if not paid and cum >= cac:
                    paid = True
                    out_paid[u, month] += 1
                cum -= marketing * (m - month)
                month = m
            gross_profit = margin * value - order_cost
            cum += gross_profit
            ltv += gross_profit * weights[m]
            out_revenue[u, m] += value
            out_orders[u, m] += 1
            if k > 0:
                repeat += 1
                last = t
                if p_drop > 0.0:
                    dropout, x = next_uniform(dropout)
                    if x < p_drop:
                        tau = t  # BG/NBD: drops out right after this order
                        break
        k += 1
        if process == DEALS:
            t = 12.0 * k / prm[DEALS_PER_YEAR]  # exact when the true time is whole
        elif lam > 0.0:
            orders, e = _exponential(orders)
            t += e / lam
        else:
            break
        if t >= tau or t >= horizon:
            break
    if not paid and cum >= cac:
        out_paid[u, month] += 1
    months = horizon if tau >= horizon else max(1, math.ceil(tau))
    out_ends[u, months] += 1
    ltv -= marketing * cum_weights[months]
    return repeat, last, tau, ltv


@njit(parallel=True, cache=True, nogil=True)
def simulate_purchase_units(
    unit_trial,
    unit_first,
    unit_count,
    trial_keys,
    process,
    params,
    weights,
    cum_weights,
    out_ends,
    out_revenue,
    out_orders,
    out_paid,
    out_hist,
):
    """Simulate every unit; write its aggregates into row ``u`` of each output.

    ``params[j]`` is trial j's parameter row (columns ``R`` … ``CAC``),
    ``weights[j, t]`` the discount factor of month t. Outputs (zeroed by the
    caller): ``out_ends[u, m]`` customers alive (not dropped out) for exactly
    m months within the horizon; ``out_revenue[u, t]`` order value in month t;
    ``out_orders[u, t]`` orders in month t; ``out_paid[u, t]`` customers whose
    own cumulative gross profit (after per-order and marketing costs) first
    reaches CAC at the end of month t; ``out_hist[k, b]`` customers by
    discounted gross-profit LTV, counted by thread k.
    """
    horizon = out_revenue.shape[1]
    for u in prange(unit_trial.shape[0]):
        j = unit_trial[u]
        for i in range(unit_first[u], unit_first[u] + unit_count[u]):
            _, _, _, ltv = _customer(
                derive(trial_keys[j], i),
                process,
                params[j],
                weights[j],
                cum_weights[j],
                horizon,
                u,
                out_ends,
                out_revenue,
                out_orders,
                out_paid,
            )
            out_hist[get_thread_id(), _hist_bin(ltv)] += 1


@njit(cache=True)
def customer_histories(trial_key, first, count, process, params, horizon):
    """Per-customer summaries of customers ``first … first+count-1`` of one trial.

    The same customers, with the same random numbers, as
    :func:`simulate_purchase_units` (undiscounted). Returns arrays of the
    number of repeat orders within the horizon, the time of the last one
    (months, 0 if none), the dropout time (``inf`` if never) and the
    gross-profit LTV: the data a buy-till-you-die model is fitted to.
    """
    repeat = np.empty(count, np.int64)
    last = np.empty(count)
    dropout = np.empty(count)
    ltv = np.empty(count)
    weights = np.ones(horizon)
    cum_weights = np.arange(horizon + 1) * 1.0
    ends = np.zeros((1, horizon + 1), np.int64)
    revenue = np.zeros((1, horizon))
    orders = np.zeros((1, horizon), np.int64)
    paid = np.zeros((1, horizon), np.int64)
    for c in range(count):
        repeat[c], last[c], dropout[c], ltv[c] = _customer(
            derive(trial_key, first + c),
            process,
            params,
            weights,
            cum_weights,
            horizon,
            0,
            ends,
            revenue,
            orders,
            paid,
        )
    return repeat, last, dropout, ltv
