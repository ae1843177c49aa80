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


def sbg_discounted_expected_lifetime(alpha: float, beta: float, discount: float) -> float:
    """``Σ_n S(n) / (1+d)^n = ₂F₁(1, β; α+β; 1/(1+d))`` per renewal period.

    Fader & Hardie, "Customer-Base Valuation in a Contractual Setting: The
    Perils of Ignoring Heterogeneity", Marketing Science 29(1), 2010, eq. (5),
    for payments in advance; ``discount`` is the rate per renewal period.
    """
    return float(hyp2f1(1.0, beta, alpha + beta, 1.0 / (1.0 + discount)))


def sbg_discounted_expected_residual_lifetime(
    alpha: float, beta: float, discount: float, renewals: int
) -> float:
    """Expected discounted payments still to come from a customer who has renewed
    ``renewals`` times: ``Σ_{t≥0} S(n+1+t)/S(n) / (1+d)^t``, valued at the date of
    the next renewal (Fader & Hardie 2010, eq. (6)); the survivors' churn is
    Beta(α, β + n).
    """
    n = renewals
    ratio = (beta + n) / (alpha + beta + n)
    z = 1.0 / (1.0 + discount)
    return float(ratio * hyp2f1(1.0, beta + n + 1.0, alpha + beta + n + 1.0, z))


def lognormal_mrr_multiplier(log_drift: float, volatility: float, months):
    """Expected MRR multiplier after t months of log drift μ, volatility σ: ``exp((μ + σ²/2) t)``.

    ltvsim's ``expansion.annual_growth`` is the arithmetic expectation, i.e.
    ``μ = ln(1 + g)/12 − σ²/2`` per month so that this equals ``(1 + g)^(t/12)``.
    """
    return np.exp((log_drift + 0.5 * volatility**2) * np.asarray(months, dtype=float))


# --- Buy-till-you-die and spend closed forms (repeat-purchase model) ---------
# Time t in months, alpha and beta in months (the unit of the purchase section).


def bgnbd_expected_purchases(r, alpha, a, b, t):
    """BG/NBD expected number of repeat purchases in (0, t] of a new customer.

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
    return value


def _bgnbd_eq9(r, alpha, a, b, t):
    z = t / (alpha + t)
    bracket = 1.0 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1.0, z)
    return (a + b - 1.0) / (a - 1.0) * bracket


def bgnbd_alive_probability(r, alpha, a, b, t):
    """BG/NBD probability that a new customer has not dropped out by time t.

    Given λ and p the dropout time is exponential with rate ``λ p`` (a
    geometric number of exponential gaps), so ``P(τ > t) = E[(α/(α+pt))^r]``
    over ``p ~ Beta(a, b)`` ``= ₂F₁(r, a; a+b; −t/α)``, evaluated by the Pfaff
    transformation ``(α/(α+t))^r ₂F₁(r, b; a+b; t/(α+t))`` (argument in [0, 1)).
    """
    t = np.asarray(t, dtype=float)
    return (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b, t / (alpha + t))


def bgnbd_conditional_alive_probability(r, alpha, a, b, x, t_x, T):
    """BG/NBD P(alive at T | x repeat purchases, the last at t_x).

    ``1 / (1 + δ(x>0) a/(b+x−1) ((α+T)/(α+t_x))^(r+x))``: Fader, Hardie & Lee,
    "Computing P(alive) using the BG/NBD model" (2008 note), eq. (2).
    """
    x = np.asarray(x, dtype=float)
    t_x = np.asarray(t_x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = a / (b + x - 1.0) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return np.where(x > 0, 1.0 / (1.0 + np.where(x > 0, odds, 0.0)), 1.0)


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
