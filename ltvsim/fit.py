"""Fitting churn and purchase models to observed history, by maximum likelihood.

- :func:`fit_sbg`: the shifted-beta-geometric (sBG) churn model of a
  contractual business from cohort survival counts (Fader & Hardie, "How to
  Project Customer Retention", J. Interactive Marketing 21(1), 2007). Its
  result turns into the ``[churn] model = "sbg"`` config of a simulation.
- :func:`fit_bgnbd`: the BG/NBD repeat-purchase model of a non-contractual
  business from RFM summaries (Fader, Hardie & Lee, "Counting Your Customers
  the Easy Way", Marketing Science 24(2), 2005).
- :func:`fit_gamma_gamma`: the gamma-gamma model of spend per transaction
  (Fader, Hardie & Lee, "RFM and CLV", JMR 42(4), 2005).

The RFM conventions are those of the ``lifetimes`` library: ``frequency`` is
the number of *repeat* purchases, ``recency`` the customer's age at the last
purchase (0 without repeat purchases) and ``T`` its age at the end of the
observation, all in one time unit of the caller's choice.

Every fit optimises on the log scale of its (positive) parameters and reports
the covariance of the natural parameters as the inverse observed information
at the maximum. At the maximum this equals the delta-method transform of the
log-scale covariance exactly (the gradient vanishes), so either view gives
the same standard errors.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.special import betaln, digamma, gammaln, ndtri, zeta

from . import formulas
from .datafile import DataError  # raised for data a model cannot be fitted to

__all__ = [
    "BGNBDFit",
    "DataError",
    "FitError",
    "GammaGammaFit",
    "SBGFit",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "fit_sbg",
]


class FitError(RuntimeError):
    """The likelihood has no interior maximum for these data (the message says why)."""


# --- sBG: contractual churn from cohort survival -------------------------------


@dataclass(frozen=True, eq=False)
class SBGFit:
    """A maximum-likelihood sBG fit: churn probability per renewal ~ Beta(alpha, beta).

    Attributes
    ----------
    alpha, beta : float
        The estimates.
    cov : ndarray, shape (2, 2)
        Covariance of (alpha, beta): the inverse observed information.
    loglik : float
        Maximised log-likelihood.
    n_customers : int
        Customers in all cohorts together.
    cohorts : tuple of tuple of int
        The data: active customers at the start of each period, per cohort.
    """

    alpha: float
    beta: float
    cov: np.ndarray
    loglik: float
    n_customers: int
    cohorts: tuple[tuple[int, ...], ...]

    @property
    def se(self) -> np.ndarray:
        """Standard errors of (alpha, beta)."""
        return np.sqrt(np.diag(self.cov))

    @property
    def correlation(self) -> float:
        """Correlation of the alpha and beta estimates (typically strongly positive)."""
        return float(self.cov[0, 1] / math.sqrt(self.cov[0, 0] * self.cov[1, 1]))

    def survival(self, periods):
        """Share of a new cohort still active after ``periods`` renewals: ``S(t)``."""
        return formulas.sbg_survival(self.alpha, self.beta, periods)

    def retention(self, periods):
        """Cohort retention from period t−1 to t: ``(β + t − 1) / (α + β + t − 1)``."""
        return formulas.sbg_retention_rate(self.alpha, self.beta, periods)

    def loglik_at(self, alpha: float, beta: float) -> float:
        """Log-likelihood of the fitted data at other parameter values."""
        return _sbg_derivatives(_sbg_terms(self.cohorts), alpha, beta, order=0)[0]

    def interval(
        self,
        level: float = 0.95,
        method: str = "profile",
        *,
        n_boot: int = 1000,
        seed: int = 0,
    ) -> dict[str, tuple[float, float]]:
        """Confidence intervals of alpha and beta.

        Parameters
        ----------
        level : float
            Coverage, in (0, 1).
        method : {"profile", "wald", "bootstrap"}
            ``profile``: the parameter values whose profile log-likelihood is
            within ``χ²₁(level)/2`` of the maximum (invariant to
            reparameterisation; an infinite bound when the likelihood stays
            that high). ``wald``: ``exp(log θ̂ ± z · se/θ̂)``, normal on the log
            scale, so never negative. ``bootstrap``: percentile interval of
            ``n_boot`` parametric-bootstrap refits (cohorts of the same sizes
            and ages simulated from the fit; ``seed`` fixes them).

        Returns
        -------
        dict
            ``{"alpha": (low, high), "beta": (low, high)}``.
        """
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1); got {level!r}")
        z = float(ndtri(0.5 + level / 2.0))
        if method == "wald":
            out = {}
            for name, value, se in zip(
                ("alpha", "beta"), (self.alpha, self.beta), self.se, strict=True
            ):
                half = z * se / value
                out[name] = (value * math.exp(-half), value * math.exp(half))
            return out
        if method == "profile":
            return {
                name: _sbg_profile_interval(self, which, z * z / 2.0)
                for which, name in enumerate(("alpha", "beta"))
            }
        if method == "bootstrap":
            return _sbg_bootstrap_interval(self, level, n_boot, seed)
        raise ValueError(f"method must be 'profile', 'wald' or 'bootstrap'; got {method!r}")

    def to_config(self, renewal_months: int = 1, uncertain: bool = True) -> dict:
        """The ``[churn]`` section (and its ``[[correlations]]``) of an ltvsim config.

        Parameters
        ----------
        renewal_months : int
            Length of the data's period in months (1 for monthly cohort counts,
            12 for yearly ones): the fit's alpha and beta are per renewal.
        uncertain : bool
            If true (default), alpha and beta become uncertain inputs drawn once
            per trial from the fit's large-sample distribution on the log scale:
            ``(log alpha, log beta)`` bivariate normal around the estimates with
            the delta-method covariance ``cov_ij / (θ_i θ_j)`` — the
            distribution behind the Wald interval. In config terms: each a
            lognormal with median the estimate and log-scale sd ``se / θ̂``,
            joined by a Gaussian copula whose ``rho`` is the correlation of
            the log estimates (equal to ``self.correlation``: the delta method
            rescales each parameter, which leaves correlations unchanged).
            A Gaussian copula of lognormals is exactly that bivariate
            lognormal. Without the correlation (usually 0.9 or more) the mean
            churn ``alpha / (alpha + beta)`` would vary across trials far more
            than the data allow. If false, the point estimates.

        Returns
        -------
        dict
            ``{"churn": {"model": "sbg", "alpha": ..., "beta": ..., "renewal_months": ...},
            "correlations": [{"keys": ["churn.alpha", "churn.beta"], "rho": ...}]}``
            (no ``correlations`` when not uncertain), to merge into a config
            mapping or a ``[[segments]]`` table.
        """
        if not uncertain:
            churn = {"model": "sbg", "alpha": self.alpha, "beta": self.beta}
            return {"churn": {**churn, "renewal_months": renewal_months}}
        alpha, beta = (
            _lognormal_with_log_sd(value, se / value)
            for value, se in zip((self.alpha, self.beta), self.se, strict=True)
        )
        churn = {"model": "sbg", "alpha": alpha, "beta": beta, "renewal_months": renewal_months}
        pair = {"keys": ["churn.alpha", "churn.beta"], "rho": self.correlation}
        return {"churn": churn, "correlations": [pair]}


def _lognormal_with_log_sd(median: float, log_sd: float) -> dict:
    """A lognormal config distribution (mean, sd of the value) from its median and log-scale sd."""
    mean = median * math.exp(0.5 * log_sd**2)
    return {"dist": "lognormal", "mean": mean, "sd": mean * math.sqrt(math.expm1(log_sd**2))}


def fit_sbg(active) -> SBGFit:
    """Fit the shifted-beta-geometric churn model to cohort survival counts.

    Parameters
    ----------
    active : sequence of int, or sequence of such sequences
        For one cohort: the number of its customers active at the start of
        each period, the first entry the cohort's size (e.g. the 1,000
        customers acquired, then 631 still active after the first renewal,
        ...). Customers still active at the last count are right-censored:
        their lifetime is only known to be longer. Several cohorts of
        different ages (e.g. acquired in successive years, so each has one
        count less) are fitted jointly as one population: pass a list of
        such sequences.

    Returns
    -------
    SBGFit
        alpha, beta, their covariance, the log-likelihood; ``survival``,
        ``retention``, ``interval`` and ``to_config``.

    Raises
    ------
    DataError
        Empty data, negative, non-integer or increasing counts, an empty
        cohort, fewer than two periods observed, or data where nobody (or
        everybody) churned.
    FitError
        The data show no heterogeneity (retention does not rise with tenure):
        the likelihood is maximal as alpha and beta grow without bound with
        churn ``alpha / (alpha + beta)`` fixed; the constant churn model fits.
        Reported when the optimum has alpha + beta > 1e5 and a log-likelihood
        less than 0.01 above constant churn's (a likelihood-ratio statistic of
        0.02: no evidence of heterogeneity).

    Examples
    --------
    >>> fit = fit_sbg([1000, 631, 468, 382, 326, 289, 262, 241])
    >>> round(fit.alpha, 3), round(fit.beta, 3)
    (0.704, 1.182)
    """
    cohorts = _sbg_cohorts(active)
    terms = _sbg_terms(cohorts)
    lost = sum(c[0] - c[-1] for c in cohorts)
    n = sum(c[0] for c in cohorts)
    if lost == 0:
        raise DataError("active: no customer churned in any cohort; alpha and beta need churn")
    # cohorts still in their first period (size only) carry no information; they are allowed
    survived_first = sum(c[1] for c in cohorts if len(c) > 1)
    if survived_first == 0:
        raise DataError(
            "active: every customer churned at the first renewal; alpha and beta need survivors"
        )

    def objective(log_params):
        """Negative log-likelihood, gradient and Hessian in (log alpha, log beta)."""
        a, b = np.exp(log_params)
        value, grad, hess = _sbg_derivatives(terms, a, b, order=2)
        scale = np.array([a, b])
        g_log = grad * scale
        return -value, -g_log, -(hess * np.outer(scale, scale) + np.diag(g_log))

    # start from the first period's churn; a wider second start if the first fails
    churn1 = 1.0 - survived_first / sum(c[0] for c in cohorts if len(c) > 1)
    churn1 = min(max(churn1, 0.01), 0.99)
    for spread in (1.0, 10.0):
        x = _newton_minimise(objective, np.log([churn1 * spread, (1.0 - churn1) * spread]))
        _, grad, _ = objective(x)
        converged = np.all(np.isfinite(x)) and np.max(np.abs(grad)) <= 1e-8 * n
        if converged and x.sum() <= 25.0:
            break
    # constant churn is the sBG's limit alpha + beta -> inf; its maximum in closed form
    renewals_at_risk = sum(sum(c[:-1]) for c in cohorts)
    churn = lost / renewals_at_risk
    constant_loglik = lost * math.log(churn) + (renewals_at_risk - lost) * math.log1p(-churn)
    gain = -objective(x)[0] - constant_loglik
    if x.sum() > 25.0 or (math.exp(x[0]) + math.exp(x[1]) > 1e5 and gain < 0.01):
        raise FitError(
            "the cohort data show no heterogeneity (retention does not rise with tenure): "
            "the sBG likelihood grows as alpha and beta grow together; use churn.model = "
            f"'constant' with a churn of {churn:.4g} per period"
        )
    if not converged:
        raise FitError("the sBG fit did not converge (the gradient stays away from zero)")
    log_alpha, log_beta = x
    alpha, beta = float(math.exp(log_alpha)), float(math.exp(log_beta))
    value, _, hess = _sbg_derivatives(terms, alpha, beta, order=2)
    cov = _inverse_information(hess, ("alpha", "beta"))
    return SBGFit(alpha, beta, cov, float(value), n, cohorts)


def _newton_minimise(objective, x, max_iter: int = 200) -> np.ndarray:
    """Damped Newton with backtracking; steepest descent where the Hessian is not convex.

    ``objective(x)`` returns (value, gradient, Hessian). Steps are capped at 2 in
    every coordinate (a factor e^2 on the log scale) so a poor start cannot jump
    to overflow.
    """
    value, grad, hess = objective(x)
    for _ in range(max_iter):
        try:
            np.linalg.cholesky(hess)
            step = np.linalg.solve(hess, -grad)
        except np.linalg.LinAlgError:
            step = -grad / max(1.0, float(np.max(np.abs(grad))))
        step *= min(1.0, 2.0 / max(float(np.max(np.abs(step))), 1e-300))
        slope = float(grad @ step)
        t = 1.0
        while True:
            candidate = x + t * step
            new_value, new_grad, new_hess = objective(candidate)
            if np.isfinite(new_value) and new_value <= value + 1e-4 * t * slope:
                break
            t *= 0.5
            if t < 1e-12:
                return x
        x, value, grad, hess = candidate, new_value, new_grad, new_hess
        if float(np.max(np.abs(t * step))) < 1e-12:
            break
    return x


def _sbg_cohorts(active) -> tuple[tuple[int, ...], ...]:
    """Validate cohort counts: one sequence or a sequence of sequences."""
    if isinstance(active, np.ndarray) or hasattr(active, "__array__"):  # numpy, pandas
        array = np.asarray(active)
        if array.ndim not in (1, 2):
            raise DataError(f"active: expected one or two dimensions, got shape {array.shape}")
        rows = [array] if array.ndim == 1 and array.dtype != object else list(array)
    elif isinstance(active, Sequence) and not isinstance(active, str):
        nested = [not np.isscalar(x) for x in active]
        if all(nested):
            rows = list(active)
        elif not any(nested):
            rows = [active]
        else:
            raise DataError("active: mixes numbers and sequences; give one cohort or a list")
    else:
        raise DataError(f"active: expected a sequence of counts, got {type(active).__name__}")
    if not rows:
        raise DataError("active: empty; give each cohort's active counts, starting with its size")
    cohorts = []
    many = len(rows) > 1
    for i, row in enumerate(rows):
        where = f"active[{i}]" if many else "active"
        try:
            values = np.asarray(row, dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"{where}: expected numbers, got {row!r:.80}") from None
        if values.ndim != 1 or values.size == 0:
            raise DataError(f"{where}: expected a non-empty 1-D sequence of counts")
        bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
        if bad.any():
            j = int(np.argmax(bad))
            raise DataError(
                f"{where}[{j}] = {row[j]!r}: counts must be whole numbers >= 0 (customers active)"
            )
        if values[0] == 0:
            raise DataError(f"{where}[0] = 0: a cohort needs at least one customer")
        rises = np.diff(values) > 0
        if rises.any():
            j = int(np.argmax(rises)) + 1
            raise DataError(
                f"{where}[{j}] = {int(values[j])} > {where}[{j - 1}] = {int(values[j - 1])}: "
                "active counts of a cohort cannot increase (customers who return are new "
                "customers of a later cohort)"
            )
        cohorts.append(tuple(int(v) for v in values))
    if max(len(c) for c in cohorts) < 3:
        raise DataError(
            "active: at least one cohort needs its size and two later counts; one period "
            "identifies only the mean churn alpha/(alpha+beta), not its spread"
        )
    return tuple(cohorts)


def _sbg_terms(cohorts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sBG log-likelihood as ``Σ_k w_k · ln B(α + u_k, β + v_k) − N · ln B(α, β)``.

    A customer lost in period t contributes ``ln P(T = t) = ln B(α+1, β+t−1) − ln B(α, β)``,
    one still active after the last of T observed periods ``ln S(T) = ln B(α, β+T) − ln B(α, β)``
    (Fader & Hardie 2007, eqs. (5), (6) and Appendix B). Returned as arrays (w, u, v) with the
    ``−N`` term included as (−N, 0, 0).
    """
    w, u, v = [], [], []
    n = 0
    for counts in cohorts:
        n += counts[0]
        for t in range(1, len(counts)):
            lost = counts[t - 1] - counts[t]
            if lost:
                w.append(lost)
                u.append(1.0)
                v.append(t - 1.0)
        if counts[-1]:
            w.append(counts[-1])
            u.append(0.0)
            v.append(len(counts) - 1.0)
    w.append(-n)
    u.append(0.0)
    v.append(0.0)
    return np.array(w, dtype=float), np.array(u), np.array(v)


def _sbg_derivatives(terms, alpha: float, beta: float, order: int = 2):
    """Log-likelihood and, up to ``order``, its analytic gradient and Hessian in (alpha, beta).

    ``∂ ln B(x, y)/∂x = ψ(x) − ψ(x+y)``, ``∂²/∂x² = ψ'(x) − ψ'(x+y)``,
    ``∂²/∂x∂y = −ψ'(x+y)``.
    """
    w, u, v = terms
    x, y = alpha + u, beta + v
    value = float(w @ betaln(x, y))
    if order == 0:
        return (value,)
    args = np.stack([x, y, x + y])
    psi = digamma(args)
    grad = np.array([w @ (psi[0] - psi[2]), w @ (psi[1] - psi[2])])
    if order == 1:
        return value, grad
    tri = zeta(2.0, args)  # trigamma ψ'(z) = ζ(2, z); polygamma(1, ·) is a slow wrapper of it
    h_aa = w @ (tri[0] - tri[2])
    h_bb = w @ (tri[1] - tri[2])
    h_ab = -(w @ tri[2])
    return value, grad, np.array([[h_aa, h_ab], [h_ab, h_bb]])


# Profile searches stay within e^±20 (about 5e8) for the profiled parameter and e^±25
# for the other: far beyond any plausible sBG fit, and where ln B(α, β) still has
# ~1e-4 absolute precision. A bound beyond that is reported as 0 or infinity.
_PROFILE_LIMIT, _OTHER_LIMIT = 20.0, 25.0


def _sbg_profile_interval(fit: SBGFit, which: int, drop: float) -> tuple[float, float]:
    """Where the profile log-likelihood of parameter ``which`` falls ``drop`` below the maximum."""
    terms = _sbg_terms(fit.cohorts)
    mle = np.log([fit.alpha, fit.beta])
    target = fit.loglik - drop
    other = 1 - which
    start = [mle[other]]  # warm start: the previous profile point's maximiser

    def loglik(params) -> float:
        return _sbg_derivatives(terms, *np.exp(params), order=0)[0]

    def profile(log_value: float) -> float:
        """Profile log-likelihood minus the target, maximising over the other parameter
        by Newton steps on its log (exact derivatives), Brent's method as a fallback."""
        params = np.empty(2)
        params[which] = log_value
        y = start[0]
        for _ in range(50):
            params[other] = y
            point = np.exp(params)
            _, grad, hess = _sbg_derivatives(terms, *point, order=2)
            slope = point[other] * grad[other]
            curve = point[other] ** 2 * hess[other, other] + slope
            if not curve < 0.0:
                y = None
                break
            step = -slope / curve
            y = min(max(y + max(min(step, 2.0), -2.0), -_OTHER_LIMIT), _OTHER_LIMIT)
            if abs(step) < 1e-10:
                break
        if y is None:

            def negative(log_other: float) -> float:
                params[other] = log_other
                return -loglik(params)

            limits = (-_OTHER_LIMIT, _OTHER_LIMIT)
            y = optimize.minimize_scalar(negative, bounds=limits, method="bounded").x
        start[0] = y
        params[other] = y
        return loglik(params) - target

    # first guess beyond the Wald bound on the log scale, z · se / estimate
    step = 1.5 * math.sqrt(2.0 * drop) * max(float(fit.se[which] / np.exp(mle[which])), 1e-3)
    bounds = []
    for direction in (-1.0, 1.0):
        start[0] = mle[other]
        inner, outer = mle[which], mle[which] + direction * step
        while outer is not None and profile(outer) > 0.0:
            if abs(outer) >= _PROFILE_LIMIT:
                outer = None  # the likelihood never falls that far: an open-ended interval
            else:
                inner = outer
                outer = mle[which] + 2.0 * (outer - mle[which])
                outer = min(max(outer, -_PROFILE_LIMIT), _PROFILE_LIMIT)
        if outer is None:
            bounds.append(0.0 if direction < 0 else math.inf)
        else:
            bounds.append(float(np.exp(optimize.brentq(profile, inner, outer, xtol=1e-9))))
    return bounds[0], bounds[1]


def _sbg_bootstrap_interval(fit: SBGFit, level: float, n_boot: int, seed: int):
    """Percentile interval of parametric-bootstrap refits (same cohort sizes and ages)."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot!r}")
    rng = np.random.default_rng(seed)
    draws = []
    failed = 0
    for _ in range(n_boot):
        cohorts = []
        for counts in fit.cohorts:
            size, periods = counts[0], len(counts) - 1
            theta = rng.beta(fit.alpha, fit.beta, size)
            lifetime = rng.geometric(np.maximum(theta, 1e-300))  # periods until churn, >= 1
            # active at the start of period t: lifetime > t
            cohorts.append(np.array([(lifetime > t).sum() for t in range(periods + 1)]))
        try:
            refit = fit_sbg(cohorts)
        except (DataError, FitError):
            failed += 1
            continue
        draws.append((refit.alpha, refit.beta))
    if failed:
        warnings.warn(
            f"{failed} of {n_boot} bootstrap samples had no finite sBG maximum and were "
            "left out; the interval may be too narrow",
            RuntimeWarning,
            stacklevel=3,
        )
    draws = np.array(draws)
    tails = [0.5 - level / 2.0, 0.5 + level / 2.0]
    lo_hi = np.quantile(draws, tails, axis=0)
    return {
        "alpha": (float(lo_hi[0, 0]), float(lo_hi[1, 0])),
        "beta": (float(lo_hi[0, 1]), float(lo_hi[1, 1])),
    }


# --- BG/NBD: repeat purchases -----------------------------------------------------


@dataclass(frozen=True, eq=False)
class BGNBDFit:
    """A maximum-likelihood BG/NBD fit (names as in ``lifetimes``).

    Purchase rate while active ~ Gamma(shape r, rate alpha); after each
    purchase the customer drops out with probability p ~ Beta(a, b).
    ``cov`` is the covariance of (r, alpha, a, b); times are in the data's unit.
    """

    r: float
    alpha: float
    a: float
    b: float
    cov: np.ndarray
    loglik: float
    n_customers: int

    @property
    def se(self) -> np.ndarray:
        """Standard errors of (r, alpha, a, b)."""
        return np.sqrt(np.diag(self.cov))

    @property
    def params(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    def expected_purchases(self, t):
        """Expected repeat purchases of a new customer in (0, t]: ``E[X(t)]``."""
        return formulas.bgnbd_expected_purchases(self.r, self.alpha, self.a, self.b, t)

    def probability_alive(self, frequency, recency, T):
        """P(still active at T | frequency, recency, T)."""
        return formulas.bgnbd_probability_alive(
            self.r, self.alpha, self.a, self.b, frequency, recency, T
        )

    def conditional_expected_purchases(self, t, frequency, recency, T):
        """Expected purchases in (T, T + t] of a customer with this history."""
        return formulas.bgnbd_conditional_expected_purchases(
            self.r, self.alpha, self.a, self.b, t, frequency, recency, T
        )


def fit_bgnbd(frequency, recency, T) -> BGNBDFit:
    """Fit the BG/NBD model to RFM summaries (``lifetimes`` conventions).

    Parameters
    ----------
    frequency : array_like of int
        Repeat purchases per customer (purchases after the first), >= 0.
    recency : array_like of float
        Age of the customer at its last repeat purchase; 0 when frequency is 0.
    T : array_like of float
        Age of the customer at the end of the observation, >= recency, > 0.

    Returns
    -------
    BGNBDFit
        r, alpha, a, b, their covariance and the log-likelihood, with the
        model's closed forms as methods.

    Notes
    -----
    Individual log-likelihood (Fader, Hardie & Lee 2005, eq. (6)), with
    ``A = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b)``::

        ln L = A + ln[(α+T)^−(r+x) + δ_{x>0} a/(b+x−1) (α+t_x)^−(r+x)]
    """
    x, t_x, age = _rfm(frequency=frequency, recency=recency, T=T)

    def loglik_and_grad(params):
        return _bgnbd_loglik(params, x, t_x, age)

    mean_rate = max(x.mean() / age.mean(), 1e-3)
    start = np.array([1.0, 1.0 / mean_rate, 1.0, 1.0])
    params, value, cov = _maximise(loglik_and_grad, start, ("r", "alpha", "a", "b"))
    return BGNBDFit(*(float(p) for p in params), cov=cov, loglik=value, n_customers=x.size)


def _bgnbd_loglik(params, x, t_x, age):
    """BG/NBD log-likelihood of all customers and its analytic gradient in (r, alpha, a, b).

    ``w_dead`` is each customer's posterior probability of having dropped out
    after its last purchase: the weight of the likelihood's second term.
    """
    has_repeat = x > 0
    r, alpha, a, b = params
    log_total = np.log(alpha + age)
    log_last = np.log(alpha + t_x)
    alive = -(r + x) * log_total
    with np.errstate(divide="ignore"):
        dead = np.where(
            has_repeat,
            np.log(a) - np.log(np.where(has_repeat, b + x - 1.0, 1.0)) - (r + x) * log_last,
            -np.inf,
        )
    mix = np.logaddexp(alive, dead)
    w_dead = np.exp(dead - mix)  # share of the likelihood from "dropped out after t_x"
    value = np.sum(
        gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b) + mix
    )
    psi_abx, psi_ab = digamma(a + b + x), digamma(a + b)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - (1 - w_dead) * log_total
    d_r -= w_dead * log_last
    d_alpha = r / alpha - (r + x) * ((1 - w_dead) / (alpha + age) + w_dead / (alpha + t_x))
    d_a = psi_ab - psi_abx + w_dead / a
    d_b = digamma(b + x) - psi_abx - digamma(b) + psi_ab
    d_b -= w_dead / np.where(has_repeat, b + x - 1.0, 1.0)
    grad = np.array([d_r.sum(), d_alpha.sum(), d_a.sum(), d_b.sum()])
    return float(value), grad


# --- gamma-gamma: spend per transaction ---------------------------------------------


@dataclass(frozen=True, eq=False)
class GammaGammaFit:
    """A maximum-likelihood gamma-gamma fit (``lifetimes`` names p, q, v; here ``gamma`` is v).

    A transaction's value ~ Gamma(shape p, rate ν), ν ~ Gamma(shape q, rate γ)
    across customers. ``cov`` is the covariance of (p, q, gamma).
    """

    p: float
    q: float
    gamma: float
    cov: np.ndarray
    loglik: float
    n_customers: int

    @property
    def se(self) -> np.ndarray:
        """Standard errors of (p, q, gamma)."""
        return np.sqrt(np.diag(self.cov))

    @property
    def params(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}

    @property
    def mean_spend(self) -> float:
        """Population mean spend per transaction, ``p γ / (q − 1)`` (infinite when q <= 1)."""
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1.0 else math.inf

    def expected_spend(self, frequency, monetary_value):
        """Expected average spend per transaction given a customer's history."""
        return formulas.gamma_gamma_expected_spend(
            self.p, self.q, self.gamma, frequency, monetary_value
        )


def fit_gamma_gamma(frequency, monetary_value) -> GammaGammaFit:
    """Fit the gamma-gamma spend model (``lifetimes`` conventions).

    Parameters
    ----------
    frequency : array_like of int
        Repeat purchases per customer, >= 0. Customers without repeat
        purchases carry no information on spend and are left out.
    monetary_value : array_like of float
        Mean value of the customer's repeat purchases; > 0 where frequency > 0.

    Returns
    -------
    GammaGammaFit
        p, q, gamma, their covariance, the log-likelihood (of the repeat
        buyers' mean spends), ``expected_spend`` and ``mean_spend``.

    Notes
    -----
    Density of a mean ``m`` of ``x`` transactions (Hardie's note 025, eq. (1a))::

        ln f = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m + px ln x
               − (px+q) ln(γ + m x)
    """
    x = _column("frequency", frequency)
    m = _column("monetary_value", monetary_value)
    _same_length({"frequency": x, "monetary_value": m})
    _whole_non_negative("frequency", x)
    _finite("monetary_value", m)
    bad = (x > 0) & (m <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"monetary_value[{i}] = {_show(m[i])} with frequency[{i}] = {_show(x[i])}: a customer "
            "with repeat purchases needs a mean spend > 0"
        )
    keep = x > 0
    if keep.sum() < 2:
        raise DataError(
            "frequency: the gamma-gamma model needs at least two customers with repeat "
            f"purchases (frequency > 0); got {int(keep.sum())}"
        )
    x, m = x[keep], m[keep]

    def loglik_and_grad(params):
        return _gamma_gamma_loglik(params, x, m)

    start = np.array([1.0, 2.0, float(np.mean(m))])
    params, value, cov = _maximise(loglik_and_grad, start, ("p", "q", "gamma"))
    return GammaGammaFit(*(float(v) for v in params), cov=cov, loglik=value, n_customers=x.size)


def _gamma_gamma_loglik(params, x, m):
    """Gamma-gamma log-likelihood of the repeat buyers and its gradient in (p, q, gamma)."""
    log_x, log_m = np.log(x), np.log(m)
    p, q, gamma = params
    px = p * x
    log_total = np.log(gamma + m * x)
    value = np.sum(
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1.0) * log_m
        + px * log_x
        - (px + q) * log_total
    )
    psi_pxq = digamma(px + q)
    d_p = x * (psi_pxq - digamma(px) + log_m + log_x - log_total)
    d_q = psi_pxq - digamma(q) + np.log(gamma) - log_total
    d_gamma = q / gamma - (px + q) / (gamma + m * x)
    return float(value), np.array([d_p.sum(), d_q.sum(), d_gamma.sum()])


# --- shared machinery ---------------------------------------------------------------


def _maximise(loglik_and_grad, start, names):
    """Maximise a log-likelihood over positive parameters (log scale, analytic gradient).

    Returns the estimates, the maximum and the covariance (inverse observed
    information, from a central-difference Jacobian of the analytic gradient).
    """

    def objective(log_params):
        params = np.exp(log_params)
        value, grad = loglik_and_grad(params)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(params)
        return -value, -grad * params

    res = optimize.minimize(
        objective, np.log(start), jac=True, method="BFGS", options={"gtol": 1e-6, "maxiter": 2000}
    )
    # BFGS stops on a small gradient in absolute terms; polish with Newton steps on the
    # numerical Hessian so the estimates do not depend on the starting point's scale.
    log_params = res.x
    for _ in range(20):
        params = np.exp(log_params)
        _, grad = loglik_and_grad(params)
        hess = _hessian(loglik_and_grad, params)
        h_log = hess * np.outer(params, params) + np.diag(grad * params)
        try:
            step = np.linalg.solve(h_log, -grad * params)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        trial = log_params + step
        if loglik_and_grad(np.exp(trial))[0] < loglik_and_grad(params)[0] - 1e-9:
            break
        log_params = trial
        if np.max(np.abs(step)) < 1e-10:
            break
    params = np.exp(log_params)
    if np.any(np.abs(log_params) > 30.0):
        raise FitError(
            "the likelihood has no finite maximum for these data (estimates "
            + ", ".join(f"{n} = {p:.3g}" for n, p in zip(names, params, strict=True))
            + ")"
        )
    value, _ = loglik_and_grad(params)
    cov = _inverse_information(_hessian(loglik_and_grad, params), names)
    return params, float(value), cov


def _hessian(loglik_and_grad, params) -> np.ndarray:
    """Symmetrised central-difference Jacobian of an analytic gradient (relative step 1e-5)."""
    k = params.size
    hess = np.empty((k, k))
    for j in range(k):
        h = 1e-5 * params[j]
        up, down = params.copy(), params.copy()
        up[j] += h
        down[j] -= h
        hess[:, j] = (loglik_and_grad(up)[1] - loglik_and_grad(down)[1]) / (2.0 * h)
    return 0.5 * (hess + hess.T)


def _inverse_information(hess: np.ndarray, names) -> np.ndarray:
    """Covariance = inverse of the observed information ``−H``; it must be positive definite."""
    info = -np.asarray(hess, dtype=float)
    try:
        np.linalg.cholesky(info)
    except np.linalg.LinAlgError:
        raise FitError(
            f"the observed information of ({', '.join(names)}) is not positive definite "
            "at the estimate: the parameters are not identified by these data"
        ) from None
    cov = np.linalg.inv(info)
    cov = 0.5 * (cov + cov.T)
    cov.setflags(write=False)
    return cov


def _rfm(*, frequency, recency, T):
    """Validate an RFM summary (``lifetimes`` conventions); returns float arrays."""
    columns = {
        "frequency": _column("frequency", frequency),
        "recency": _column("recency", recency),
        "T": _column("T", T),
    }
    _same_length(columns)
    x, t_x, age = columns["frequency"], columns["recency"], columns["T"]
    _whole_non_negative("frequency", x)
    for name in ("recency", "T"):
        _finite(name, columns[name])
    checks = [
        (t_x < 0, "recency", "must be >= 0"),
        (age <= 0, "T", "must be > 0 (the customer's age at the end of the observation)"),
        (t_x > age, "recency", "exceeds T: the last purchase cannot come after the observation"),
        ((x == 0) & (t_x != 0), "recency", "must be 0 when frequency is 0 (no repeat purchase)"),
    ]
    for bad, name, why in checks:
        if bad.any():
            i = int(np.argmax(bad))
            extra = f" (T[{i}] = {_show(age[i])})" if "exceeds" in why else ""
            raise DataError(f"{name}[{i}] = {_show(columns[name][i])}{extra}: {why}")
    return x, t_x, age


def _column(name: str, values) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{name}: expected numbers, got {values!r:.80}") from None
    if array.ndim != 1:
        raise DataError(f"{name}: expected a 1-D sequence, got shape {array.shape}")
    if array.size == 0:
        raise DataError(f"{name}: empty; give one value per customer")
    return array


def _same_length(columns: dict[str, np.ndarray]) -> None:
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise DataError(f"one value per customer in every column: {described}")


def _finite(name: str, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{name}[{i}] = {_show(values[i])}: must be a finite number")


def _whole_non_negative(name: str, values: np.ndarray) -> None:
    _finite(name, values)
    bad = (values < 0) | (values != np.round(values))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{name}[{i}] = {_show(values[i])}: must be a whole number >= 0")


def _show(value) -> str:
    """A number as a user wrote it: 3, 2.5, -1, nan (no numpy reprs)."""
    return f"{float(value):g}"
