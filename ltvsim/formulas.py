"""Closed forms: the seeds' deterministic formulas and the model's exact expectations.

The seed formulas (DOMAIN.md) are what a spreadsheet computes; the model
closed forms are what the simulation must converge to, and what the tests
hold it to. Rates here are per month unless the name says otherwise; cash
arrives at the start of each month (payments in advance).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import betaln, hyp2f1

# --- The seeds' formulas -----------------------------------------------------


def subscription_ltv(arpa: float, gross_margin: float, churn: float) -> float:
    """``ARPA × gross margin ÷ churn`` (ARPA and churn in the same time unit)."""
    return arpa * gross_margin / churn


def one_time_ltv(
    order_value: float, gross_margin: float, purchases_per_year: float, retention_years: float
) -> float:
    """One-time / B2B: ``order value × margin × purchases per year × retention years``."""
    return order_value * gross_margin * purchases_per_year * retention_years


def ecommerce_net_ltv(
    order_value: float,
    frequency: float,
    retention: float,
    gross_margin: float,
    acquisition_and_retention_costs: float,
) -> float:
    """E-commerce (net): ``order value × frequency × retention × margin − costs``."""
    return order_value * frequency * retention * gross_margin - acquisition_and_retention_costs


def lifetime_from_churn(churn: float) -> float:
    """Mean lifetime in periods: ``1 ÷ churn``."""
    return 1.0 / churn


def simple_payback_months(cac: float, arpa_monthly: float, gross_margin: float) -> float:
    """``CAC ÷ (monthly ARPA × gross margin)``: payback ignoring churn."""
    return cac / (arpa_monthly * gross_margin)


def max_churn_for_ratio(arpa: float, gross_margin: float, cac: float, ratio: float) -> float:
    """Highest churn at which LTV:CAC reaches ``ratio``: ``ARPA × margin ÷ (k × CAC)``."""
    return arpa * gross_margin / (ratio * cac)


def max_cac_for_ratio(ltv: float, ratio: float) -> float:
    """Highest CAC at which LTV:CAC reaches ``ratio``: ``LTV ÷ k``."""
    return ltv / ratio


def min_arpa_for_ratio(cac: float, churn: float, gross_margin: float, ratio: float) -> float:
    """Lowest ARPA at which LTV:CAC reaches ``ratio``: ``k × CAC × churn ÷ margin``."""
    return ratio * cac * churn / gross_margin


# --- Model closed forms --------------------------------------------------------


def monthly_discount_rate(annual_rate):
    """``(1 + r)^(1/12) − 1``: compounding, never ``r / 12``."""
    return (1.0 + np.asarray(annual_rate, dtype=float)) ** (1.0 / 12.0) - 1.0


def monthly_growth_rate(annual_growth):
    """Expected monthly MRR growth equivalent to ``annual_growth`` per year."""
    return (1.0 + np.asarray(annual_growth, dtype=float)) ** (1.0 / 12.0) - 1.0


def constant_churn_ltv(
    arpa: float,
    gross_margin: float,
    monthly_churn: float,
    monthly_growth: float = 0.0,
    monthly_discount: float = 0.0,
    horizon_months: float = math.inf,
) -> float:
    """Expected LTV under constant churn, cash at the start of each month.

    ``ARPA × GM × Σ_{t<H} q^t = ARPA × GM × (1 − q^H) / (1 − q)`` with
    ``q = (1 − c)(1 + g)/(1 + d)``; diverges when ``q >= 1`` and H is infinite.
    """
    q = (1.0 - monthly_churn) * (1.0 + monthly_growth) / (1.0 + monthly_discount)
    if q >= 1.0:
        if math.isinf(horizon_months):
            return math.inf
        return arpa * gross_margin * sum(q**t for t in range(int(horizon_months)))
    return arpa * gross_margin * (1.0 - q**horizon_months) / (1.0 - q)


def sbg_survival(alpha: float, beta: float, renewals):
    """sBG: share of a cohort surviving ``renewals`` renewals, ``B(α, β+n) / B(α, β)``."""
    n = np.asarray(renewals, dtype=float)
    return np.exp(betaln(alpha, beta + n) - betaln(alpha, beta))


def sbg_retention_rate(alpha: float, beta: float, renewal):
    """sBG retention from renewal n−1 to n: ``(β + n − 1) / (α + β + n − 1)``; rises with n."""
    n = np.asarray(renewal, dtype=float)
    return (beta + n - 1.0) / (alpha + beta + n - 1.0)


def sbg_del(alpha, beta, discount):
    """Discounted expected lifetime of a new customer under sBG churn, in renewal periods.

    ``DEL = Σ_{t≥0} S(t) / (1+d)^t = ₂F₁(1, β; α+β; 1/(1+d))``: one payment at
    the start of each period the customer is active, the first at acquisition
    (Fader & Hardie, "Customer-Base Valuation in a Contractual Setting: The
    Perils of Ignoring Heterogeneity", Marketing Science 29(1), 2010, eq. (5)).

    Parameters
    ----------
    alpha, beta : float or array_like
        Beta(α, β) of the per-renewal churn probability.
    discount : float or array_like
        Discount rate **per renewal period** (monthly renewals: the monthly
        rate, ``monthly_discount_rate(annual_rate)``; annual renewals: the
        annual rate). At d = 0 the result is the mean lifetime
        (α+β−1)/(α−1), infinite when α ≤ 1.

    Returns
    -------
    float or ndarray
        Expected discounted number of payments (multiply by the margin per
        period for the expected discounted lifetime value).
    """
    z = 1.0 / (1.0 + np.asarray(discount, dtype=float))
    alpha = np.asarray(alpha, dtype=float)
    return _scalar(_hyp2f1_unit(beta, alpha + beta, z))


def sbg_derl(alpha, beta, discount, renewals):
    """Discounted expected residual lifetime of a customer who has made ``renewals`` renewals.

    Fader & Hardie (2010), eq. (6): standing at the end of the customer's
    period ``n + 1`` (``n`` = ``renewals``), just before the next renewal
    decision, the expected discounted number of payments still to come,
    the next one (if it renews) undiscounted::

        DERL = Σ_{t≥0} S(n+1+t) / S(n) / (1+d)^t
             = (β+n)/(α+β+n) · ₂F₁(1, β+n+1; α+β+n+1; 1/(1+d)).

    The survivors' churn probability is Beta(α, β + n). A new customer's
    lifetime splits as ``DEL = 1 + DERL(n=0) / (1+d)``.

    Parameters
    ----------
    alpha, beta : float or array_like
        Beta(α, β) of the per-renewal churn probability at acquisition.
    discount : float or array_like
        Discount rate per renewal period (see :func:`sbg_del`).
    renewals : int or array_like
        Renewals the customer has already made (0 for one in its first period).
    """
    n = np.asarray(renewals, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    z = 1.0 / (1.0 + np.asarray(discount, dtype=float))
    ratio = (beta + n) / (alpha + beta + n)
    return _scalar(ratio * _hyp2f1_unit(beta + n + 1.0, alpha + beta + n + 1.0, z))


# Earlier, longer names of the same two closed forms.
sbg_discounted_expected_lifetime = sbg_del
sbg_discounted_expected_residual_lifetime = sbg_derl


def _hyp2f1_unit(b, c, z):
    """``₂F₁(1, b; c; z) = Σ_t (b)_t/(c)_t z^t`` for 0 < z <= 1 and c > b > 0.

    scipy's ``hyp2f1`` returns NaN once b and c reach a few hundred (an sBG
    population with little heterogeneity, alpha + beta large); there the
    series is summed directly: its terms fall at least as fast as z^t. At
    z = 1 it is Gauss's sum (c − 1)/(c − b − 1), infinite when c − b <= 1.
    """
    b, c, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (b, c, z)))
    out = np.array(hyp2f1(1.0, b, c, z), dtype=float)
    for i in np.ndindex(out.shape):
        if np.isfinite(out[i]):
            continue
        if z[i] >= 1.0:
            out[i] = (c[i] - 1.0) / (c[i] - b[i] - 1.0) if c[i] - b[i] > 1.0 else math.inf
        else:
            out[i] = _hyp2f1_unit_series(b[i], c[i], z[i])
    return out


def _hyp2f1_unit_series(b: float, c: float, z: float) -> float:
    """The series of ``₂F₁(1, b; c; z)`` in blocks of 4,096 terms, to 1e-17 relative."""
    total, term, start = 0.0, 1.0, 0
    while True:
        j = np.arange(start, start + 4096, dtype=float)
        terms = term * np.cumprod(np.concatenate(([1.0], (b + j) / (c + j) * z)))
        total += math.fsum(terms[:-1])
        term, start = terms[-1], start + 4096
        if term <= 1e-17 * total:
            return total


def _scalar(x):
    """A 0-d result as a Python float, arrays unchanged."""
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else x


def lognormal_mrr_multiplier(log_drift: float, volatility: float, months):
    """Expected MRR multiplier after t months of log drift μ, volatility σ: ``exp((μ + σ²/2) t)``.

    ltvsim's ``expansion.annual_growth`` is the arithmetic expectation, i.e.
    ``μ = ln(1 + g)/12 − σ²/2`` per month so that this equals ``(1 + g)^(t/12)``.
    """
    return np.exp((log_drift + 0.5 * volatility**2) * np.asarray(months, dtype=float))


# --- Repeat purchases (non-contractual): BG/NBD and gamma-gamma -------------------
# Time is in whatever unit the data uses (weeks for CDNOW; months in a simulation
# config's [purchase] section); the conventions are
# those of the `lifetimes` library: frequency = repeat purchases, recency = age
# at the last purchase, T = age at the end of observation.


def bgnbd_expected_purchases(r, alpha, a, b, t):
    """BG/NBD: expected repeat purchases of a new customer in ``(0, t]``.

    ``(a+b−1)/(a−1) × [1 − (α/(α+t))^r ₂F₁(r, b; a+b−1; t/(α+t))]``: Fader,
    Hardie & Lee, "Counting your customers the easy way", Marketing Science
    24(2), 2005, eq. (9). The expression is 0/0 at ``a = 1`` (a removable
    singularity) and loses digits next to it: within 1e-4 of ``a = 1`` it is
    interpolated linearly between ``a = 1 ± 1e-4``, which is analytic in ``a``
    (error about 1e-8 relative, far below any Monte Carlo error).
    """
    r, alpha, a, b, t = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (r, alpha, a, b, t))
    )
    h = 1e-4
    near = np.abs(a - 1.0) < h
    value = _bgnbd_eq9(r, alpha, np.where(near, 2.0, a), b, t)
    if near.any():
        below = _bgnbd_eq9(r, alpha, np.full_like(a, 1.0 - h), b, t)
        above = _bgnbd_eq9(r, alpha, np.full_like(a, 1.0 + h), b, t)
        value = np.where(near, below + (above - below) * (a - (1.0 - h)) / (2.0 * h), value)
    return _scalar(value)


def _bgnbd_eq9(r, alpha, a, b, t):
    z = t / (alpha + t)
    bracket = 1.0 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1.0, z)
    return (a + b - 1.0) / (a - 1.0) * bracket


def bgnbd_probability_alive(r, alpha, a, b, frequency, recency, T):
    """BG/NBD: P(still active at T | x repeat purchases, the last at t_x).

    ``1 / (1 + δ_{x>0} · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))`` (Fader, Hardie &
    Lee 2005, eq. (13)); a customer without repeat purchases is alive.
    """
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    T = np.asarray(T, dtype=float)
    return _scalar(1.0 / (1.0 + _bgnbd_dead_odds(r, alpha, a, b, x, t_x, T)))


def bgnbd_conditional_expected_purchases(r, alpha, a, b, t, frequency, recency, T):
    """BG/NBD: expected purchases in ``(T, T + t]`` of a customer with history (x, t_x, T).

    Fader, Hardie & Lee (2005), eq. (10)::

        (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))]
        / (1 + δ_{x>0} a/(b+x−1) ((α+T)/(α+t_x))^(r+x))
    """
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    T = np.asarray(T, dtype=float)
    t = np.asarray(t, dtype=float)
    lead = (a + b + x - 1.0) / (a - 1.0)
    hyp = hyp2f1(r + x, b + x, a + b + x - 1.0, t / (alpha + T + t))
    body = lead * (1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    return _scalar(body / (1.0 + _bgnbd_dead_odds(r, alpha, a, b, x, t_x, T)))


def _bgnbd_dead_odds(r, alpha, a, b, x, t_x, T):
    """Odds that a customer with x > 0 repeat purchases has dropped out (0 when x = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds = (
            np.log(a)
            - np.log(np.maximum(b + x - 1.0, 1e-300))
            + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
    return np.where(x > 0, np.exp(log_odds), 0.0)


def gamma_gamma_expected_spend(p, q, gamma, frequency, monetary_value):
    """Gamma-gamma: expected average spend per transaction given x and the observed mean.

    ``E[M | x, m̄] = p (γ + x m̄) / (p x + q − 1)``, a weighted average of the
    population mean ``p γ / (q − 1)`` and the customer's own mean ``m̄``
    (Fader, Hardie & Lee, "RFM and CLV: Using Iso-Value Curves for Customer
    Base Analysis", JMR 42(4), 2005; Hardie's note 025, eq. (5)). Needs q > 1;
    with x = 0 it is the population mean.
    """
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    return _scalar(p * (gamma + x * m) / (p * x + q - 1.0))


def bgnbd_alive_probability(r, alpha, a, b, t):
    """BG/NBD probability that a new customer has not dropped out by time t.

    Given λ and p the dropout time is exponential with rate ``λ p`` (a
    geometric number of exponential gaps), so ``P(τ > t) = E[(α/(α+pt))^r]``
    over ``p ~ Beta(a, b)`` ``= ₂F₁(r, a; a+b; −t/α)``, evaluated by the Pfaff
    transformation ``(α/(α+t))^r ₂F₁(r, b; a+b; t/(α+t))`` (argument in [0, 1)).
    """
    t = np.asarray(t, dtype=float)
    return (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b, t / (alpha + t))


def pareto_nbd_expected_purchases(r, alpha, s, beta, t):
    """Pareto/NBD expected repeat purchases in (0, t]: ``rβ/(α(s−1)) [1 − (β/(β+t))^(s−1)]``.

    Schmittlein, Morrison & Colombo, Management Science 33(1), 1987. Written as
    ``(rβ/α) L (1 − e^(−x)) / x`` with ``L = ln(1 + t/β)``, ``x = (s−1) L``: no
    cancellation near ``s = 1``, where it tends to ``(rβ/α) ln(1 + t/β)``.
    """
    s, beta, t = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (s, beta, t)))
    log_ratio = np.log1p(t / beta)
    x = (s - 1.0) * log_ratio
    safe = np.where(x == 0.0, 1.0, x)
    factor = np.where(x == 0.0, 1.0, -np.expm1(-safe) / safe)
    return r * beta / alpha * log_ratio * factor


def pareto_nbd_alive_probability(s, beta, t):
    """Pareto/NBD probability that a new customer is alive at t: ``(β/(β+t))^s``."""
    return (beta / (beta + np.asarray(t, dtype=float))) ** s


def gamma_gamma_mean_order_value(p, q, gamma):
    """Gamma-gamma expected value of an order, ``pγ/(q−1)`` (q > 1).

    Fader, Hardie & Lee, "RFM and CLV: using iso-value curves for customer
    base analysis", Journal of Marketing Research 42(4), 2005.
    """
    return p * gamma / (q - 1.0)
