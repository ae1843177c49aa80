"""The numba kernel: plain arrays in, per-period aggregates out.

A *unit* of work is one chunk of customers of one trial. Each unit writes only
its own rows of the output arrays, so the result does not depend on how units
are scheduled on threads; the driver sums a trial's chunks in a fixed order.
Memory is independent of the number of customers: nothing per customer is
stored, each customer's contribution is added to its unit's aggregates.

Model (months since acquisition ``t = 0 … H-1``, payments in advance):

* customer ``i`` has a per-renewal churn probability ``theta_i`` (a constant,
  a Beta(alpha, beta) draw — the shifted-beta-geometric model — or a
  tenure curve); renewals happen every ``renewal_months`` months;
* the number of renewals survived is drawn directly by inverse transform of
  one uniform (geometric for constant/sBG), not as a Bernoulli per month;
* MRR starts at ``arpa * LogNormal(mean 1, sd arpa_cv)`` and then, between
  consecutive months, is multiplied by ``exp(mu + sigma Z)`` (organic
  expansion); by ``1 + upsell_size`` with probability ``upsell_p`` or else by
  ``1 - downgrade_size`` with probability ``downgrade_p`` (at most one plan
  change a month); and, every ``price_every`` months, by ``1 + price_increase``.
  Months between plan changes are drawn as geometric gaps, not a Bernoulli
  per month.

Each customer has separate sub-streams for churn, starting size, the
volatility path and plan changes, so a scenario that changes one of them
leaves the others' random numbers untouched (common random numbers).
"""

import math

import numpy as np
from numba import get_thread_id, njit, prange

from ._rng import derive, next_gamma, next_normal, next_uniform

CONSTANT, SBG, CURVE = 0, 1, 2

# Sub-streams of a customer.
CHURN_STREAM, SIZE_STREAM, PATH_STREAM, EVENT_STREAM = 1, 2, 3, 4

# Customer-LTV histogram: bins uniform in y = sign(x) log1p(|x|), |x| up to
# 1e12 currency units; bin width 0.0067 in y, i.e. 0.67% relative in x.
HIST_BINS = 8192
HIST_LIMIT = math.log1p(1e12)


@njit(inline="always", cache=True)
def _renewals_survived(state, model, theta, log_keep, alpha, beta, curve_survival, max_renewals):
    """Number of renewals a new customer survives, capped at ``max_renewals``.

    ``log_keep`` is ``log1p(-theta)`` for the constant model, hoisted out of
    the customer loop by the caller.
    """
    state, u = next_uniform(state)
    if model == CURVE:
        # P(N >= n) = curve_survival[n]; N = max{n : u <= S[n]} by bisection.
        lo, hi = 0, max_renewals
        if u <= curve_survival[hi]:
            return state, max_renewals
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if u <= curve_survival[mid]:
                lo = mid
            else:
                hi = mid
        return state, lo
    if model == SBG:
        state, ga = next_gamma(state, alpha)
        state, gb = next_gamma(state, beta)
        theta = ga / (ga + gb)
        log_keep = math.log1p(-theta)
    if theta <= 0.0:
        return state, max_renewals
    if theta >= 1.0:
        return state, 0
    n = math.log(u) / log_keep  # geometric: P(N >= n) = (1-theta)^n
    if n >= max_renewals:
        return state, max_renewals
    return state, int(n)


@njit(inline="always", cache=True)
def _next_event(state, t, log_no_event, horizon):
    """Month of the next plan change after month t: t + Geometric(p) on {1, 2, ...}.

    ``log_no_event`` is ``log1p(-p)``; ``-inf`` (p = 1) means every month.
    """
    if log_no_event == -math.inf:
        return state, t + 1
    state, u = next_uniform(state)
    gap = math.log(u) / log_no_event
    if gap >= horizon:
        return state, horizon
    return state, t + 1 + int(gap)


@njit(inline="always", cache=True)
def _hist_bin(x):
    y = math.copysign(math.log1p(abs(x)), x)
    b = int((y + HIST_LIMIT) * (HIST_BINS / (2.0 * HIST_LIMIT)))
    return min(max(b, 0), HIST_BINS - 1)


@njit(parallel=True, cache=True, nogil=True)
def simulate_units(
    unit_trial,
    unit_first,
    unit_count,
    trial_keys,
    model,
    renewal_months,
    curve_survival,
    churn_per_renewal,
    alpha,
    beta,
    arpa,
    arpa_sigma,
    margin,
    cost,
    cac,
    log_drift,
    volatility,
    upsell_p,
    upsell_size,
    downgrade_p,
    downgrade_size,
    price_increase,
    price_every,
    weights,
    cum_weights,
    out_ends,
    out_revenue,
    out_paid,
    out_hist,
):
    """Simulate every unit; write its aggregates into row ``u`` of each output.

    Per-trial inputs are indexed by ``unit_trial[u]``; monthly rates are
    already per month, ``weights[j, t]`` is the discount factor of month t.
    Outputs (zeroed by the caller):
    ``out_ends[u, m]`` customers active for exactly m months within the horizon;
    ``out_revenue[u, t]`` revenue of month t summed over customers;
    ``out_paid[u, t]`` customers whose own cumulative gross profit first
    reaches CAC in month t; ``out_hist[k, b]`` customers whose discounted
    gross-profit LTV falls in histogram bin b, counted by thread k (the
    caller sums the rows: integer counts, so the order does not matter).
    """
    horizon = out_revenue.shape[1]
    max_renewals = (horizon + renewal_months - 1) // renewal_months
    for u in prange(unit_trial.shape[0]):
        j = unit_trial[u]
        a0, s0, gm, c2s, acq = arpa[j], arpa_sigma[j], margin[j], cost[j], cac[j]
        mu, vol = log_drift[j], volatility[j]
        growth = math.exp(mu)
        up_p, up_x = upsell_p[j], 1.0 + upsell_size[j]
        dn_p, dn_x = downgrade_p[j], 1.0 - downgrade_size[j]
        price_x = 1.0 + price_increase[j]
        event_p = up_p + dn_p
        up_share = up_p / event_p if event_p > 0.0 else 0.0
        log_no_event = math.log1p(-event_p) if event_p < 1.0 else -math.inf
        theta = churn_per_renewal[j]
        log_keep = math.log1p(-theta) if 0.0 < theta < 1.0 else 0.0
        for i in range(unit_first[u], unit_first[u] + unit_count[u]):
            customer = derive(trial_keys[j], i)
            _, n = _renewals_survived(
                derive(customer, CHURN_STREAM),
                model,
                theta,
                log_keep,
                alpha[j],
                beta[j],
                curve_survival,
                max_renewals,
            )
            months = min((n + 1) * renewal_months, horizon)
            out_ends[u, months] += 1
            mrr = a0
            if s0 > 0.0:
                _, z = next_normal(derive(customer, SIZE_STREAM))
                mrr = a0 * math.exp(s0 * z - 0.5 * s0 * s0)
            path = derive(customer, PATH_STREAM)
            events = derive(customer, EVENT_STREAM)
            next_event = horizon
            if event_p > 0.0:
                events, next_event = _next_event(events, 0, log_no_event, horizon)
            cum_gp = 0.0
            paid = False
            discounted_revenue = 0.0
            next_price = price_every
            for t in range(months):
                if t > 0:
                    if vol > 0.0:
                        path, z = next_normal(path)
                        mrr *= math.exp(mu + vol * z)
                    else:
                        mrr *= growth
                    if t == next_event:
                        events, x = next_uniform(events)
                        mrr *= up_x if x < up_share else dn_x
                        events, next_event = _next_event(events, t, log_no_event, horizon)
                    if t == next_price:
                        mrr *= price_x
                        next_price += price_every
                out_revenue[u, t] += mrr
                discounted_revenue += mrr * weights[j, t]
                if not paid:
                    cum_gp += gm * mrr - c2s
                    if cum_gp >= acq:
                        paid = True
                        out_paid[u, t] += 1
            ltv = gm * discounted_revenue - c2s * cum_weights[j, months]
            # Counts are integers, so one row per thread is exact and order-free.
            out_hist[get_thread_id(), _hist_bin(ltv)] += 1


def histogram_edges():
    """Bin edges of the customer-LTV histogram, in currency."""
    y = np.linspace(-HIST_LIMIT, HIST_LIMIT, HIST_BINS + 1)
    return np.sign(y) * np.expm1(np.abs(y))
