"""Forecasts from data: the value of the existing customer base, and company totals by month.

- :func:`value_base`: for the customers active now, grouped by tenure, the
  discounted gross profit still to come and its distribution, beside the
  answer of a model that ignores heterogeneity (one constant churn rate).
- :func:`forecast`: MRR, gross profit and active customers by calendar month
  from the existing base plus a plan of new acquisitions, with bands.

Both run the simulation kernel on *groups* of customers that share every
trial's parameters. Under the sBG model a customer who has renewed ``n``
times has churn probability ~ Beta(alpha, beta + n) (Bayes' rule on the
survivors; Fader & Hardie, "Customer-Base Valuation in a Contractual
Setting: The Perils of Ignoring Heterogeneity", Marketing Science 29(1),
2010): a tenure group is simulated as a new cohort with beta shifted by
``n`` and starting MRR its current MRR. A new cohort acquired in plan month
``m`` is simulated from acquisition and shifted by ``m`` months. Trial ``k``
uses the same parameters (alpha, beta and every other uncertain input) for
every group, which is what makes the company-level bands right; each group
simulates its actual number of customers, so the bands hold both parameter
uncertainty and the customer-level (binomial) noise of the realised path.

Months are counted from the forecast start: month 0 is the current month, in
which every customer of the base is active and pays (payments in advance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import xarray as xr
from scipy.special import ndtri

from ._rng import stream_key, stream_keys, stream_uniforms
from .config import Config, ConfigError, load_config, without_fixed_correlations
from .datafile import DataError, naming_file, read_csv_rows
from .dataset import band_quantiles
from .model import cash_by_month, draw_inputs, kernel_inputs, per_renewal_churn
from .simulate import run_subscription_kernel, unit_layout

__all__ = [
    "QUANTILES",
    "AcquisitionPlan",
    "CustomerBase",
    "forecast",
    "read_base",
    "read_plan",
    "sbg_parameter_draws",
    "value_base",
]

# Quantiles of the bands: the 80% band is (0.1, 0.9), the 95% band (0.025, 0.975).
QUANTILES = (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975)
BANDS = {0.8: (0.1, 0.9), 0.95: (0.025, 0.975)}


# --- inputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerBase:
    """Customers active now, by tenure.

    Attributes
    ----------
    tenure_months : ndarray of int
        Months since each group's customers were acquired (0: acquired this
        month). With renewals every ``k`` months it must be a multiple of
        ``k``: the group is at the start of a contract period, having made
        ``tenure_months / k`` renewals.
    customers : ndarray of int
        Customers active now in each group.
    mrr_per_customer : ndarray of float
        Their current MRR (currency per month), the mean over the group.
    """

    tenure_months: np.ndarray
    customers: np.ndarray
    mrr_per_customer: np.ndarray

    def __post_init__(self):
        columns = {}
        for name in ("tenure_months", "customers", "mrr_per_customer"):
            values = np.atleast_1d(np.asarray(getattr(self, name), dtype=float))
            if values.ndim != 1:
                raise DataError(f"{name}: expected one value per tenure group")
            columns[name] = values
        sizes = {len(v) for v in columns.values()}
        if len(sizes) != 1 or 0 in sizes:
            raise DataError(
                "tenure_months, customers and mrr_per_customer need the same, non-zero length"
            )
        for name, values in columns.items():
            whole = name != "mrr_per_customer"
            bad = ~np.isfinite(values) | (values < 0) | (whole & (values != np.round(values)))
            if bad.any():
                i = int(np.argmax(bad))
                kind = "a whole number >= 0" if whole else "a number >= 0"
                raise DataError(f"{name}[{i}] = {values[i]:g}: must be {kind}")
        tenure = columns["tenure_months"].astype(np.int64)
        if len(np.unique(tenure)) != len(tenure):
            raise DataError("tenure_months: each tenure may appear only once")
        object.__setattr__(self, "tenure_months", tenure)
        object.__setattr__(self, "customers", columns["customers"].astype(np.int64))
        object.__setattr__(self, "mrr_per_customer", columns["mrr_per_customer"])


@dataclass(frozen=True)
class AcquisitionPlan:
    """New customers planned per month, with their uncertainty.

    The number acquired in month ``m`` of trial ``k`` is
    ``Poisson(new_customers[m] × F_k)``: Poisson noise around the plan, times a
    factor ``F_k`` common to every month of the trial (how well the whole
    plan is executed), lognormal with mean 1 and coefficient of variation
    ``cv`` (``cv = 0``: the plan's means are exact, only Poisson noise).

    Attributes
    ----------
    month : ndarray of int
        Months from the forecast start (0 = this month), each at most once.
    new_customers : ndarray of float
        Expected customers acquired in that month.
    cv : float
        Coefficient of variation of the plan-execution factor.
    """

    month: np.ndarray
    new_customers: np.ndarray
    cv: float = 0.0

    def __post_init__(self):
        month = np.atleast_1d(np.asarray(self.month, dtype=float))
        new = np.atleast_1d(np.asarray(self.new_customers, dtype=float))
        if month.ndim != 1 or month.shape != new.shape:
            raise DataError("month and new_customers need the same length")
        bad = ~np.isfinite(month) | (month < 0) | (month != np.round(month))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"month[{i}] = {month[i]:g}: must be a whole number >= 0")
        bad = ~np.isfinite(new) | (new < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"new_customers[{i}] = {new[i]:g}: must be a number >= 0")
        if len(np.unique(month)) != len(month):
            raise DataError("month: each month may appear only once")
        if isinstance(self.cv, bool) or not (math.isfinite(self.cv) and 0 <= self.cv <= 10):
            raise DataError(f"cv = {self.cv!r}: must be a number in [0, 10]")
        object.__setattr__(self, "month", month.astype(np.int64))
        object.__setattr__(self, "new_customers", new)


def read_base(path) -> CustomerBase:
    """Read a customer base CSV with columns ``tenure_months,customers,mrr_per_customer``."""
    columns = _read_csv(path, "customer base", ("tenure_months", "customers", "mrr_per_customer"))
    with naming_file(path):
        return CustomerBase(**columns)


def read_plan(path, cv: float = 0.0) -> AcquisitionPlan:
    """Read an acquisition plan CSV with columns ``month,new_customers``."""
    columns = _read_csv(path, "acquisition plan", ("month", "new_customers"))
    with naming_file(path):
        return AcquisitionPlan(columns["month"], columns["new_customers"], cv)


def _read_csv(path, what: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named numeric columns of a small CSV file; a one-line error for anything wrong."""
    header, body = read_csv_rows(path, what, ",".join(names))
    missing = [n for n in names if n not in header]
    if missing:
        raise DataError(
            f"{path}: missing column {missing[0]!r}; expected the header {','.join(names)}, "
            f"got {','.join(header)}"
        )
    if not body:
        raise DataError(f"{path}: no data rows below the header")
    out = {}
    for name in names:
        j = header.index(name)
        values = []
        for row, cells in body:
            cell = cells[j].strip() if j < len(cells) else ""
            try:
                values.append(float(cell))
            except ValueError:
                raise DataError(
                    f"{path}, row {row}, column {name}: expected a number, got {cell!r}"
                ) from None
        out[name] = np.array(values)
    return out


# --- parameter draws --------------------------------------------------------------


def sbg_parameter_draws(fit, trials: int, seed: int, first_trial: int = 0):
    """Per-trial (alpha, beta) from an sBG fit's large-sample sampling distribution.

    ``(log alpha, log beta)`` is bivariate normal around the estimates with the
    delta-method covariance ``cov / (θ θᵀ)``, so the strong correlation of the
    two estimates is kept (the distribution ``SBGFit.to_config`` writes, on the
    forecast's own streams). Trial ``k``'s draw
    depends only on (seed, k).

    Parameters
    ----------
    fit : ltvsim.fit.SBGFit
    trials, seed, first_trial : int

    Returns
    -------
    alpha, beta : ndarray, shape (trials,)
    """
    theta = np.array([fit.alpha, fit.beta])
    log_cov = np.asarray(fit.cov) / np.outer(theta, theta)
    chol = np.linalg.cholesky(log_cov)
    z = np.stack(
        [
            ndtri(stream_uniforms(stream_key(seed, "forecast", "fit", name), first_trial, trials))
            for name in ("z1", "z2")
        ]
    )
    log_theta = np.log(theta)[:, None] + chol @ z
    return np.exp(log_theta[0]), np.exp(log_theta[1])


def _trial_inputs(config: Config, trials: int, first_trial: int, fit) -> dict[str, np.ndarray]:
    """Every input of the config's single segment per trial; (alpha, beta) from ``fit`` if given."""
    segment = config.segments[0]
    inputs = draw_inputs(config, segment, first_trial, trials)
    if fit is not None:
        inputs["churn.alpha"], inputs["churn.beta"] = sbg_parameter_draws(
            fit, trials, config.seed, first_trial
        )
    return inputs


def _prepare(config, fit, trials, seed, months) -> Config:
    if not isinstance(config, Config):
        config = load_config(config)
    if config.named_segments:
        raise ConfigError(
            "a forecast takes a config without [[segments]] (the base and the plan "
            "are not split by segment)",
            "segments",
        )
    overrides = {"simulation.horizon_months": months}
    if trials is not None:
        overrides["simulation.trials"] = trials
    if seed is not None:
        overrides["simulation.seed"] = seed
    if fit is not None:
        # the fit's alpha and beta replace the config's churn model (per renewal period)
        renewal = config.segments[0]["churn.renewal_months"]
        churn = {"model": "sbg", "alpha": fit.alpha, "beta": fit.beta, "renewal_months": renewal}
        source = dict(config.source)
        source["churn"] = churn
        config = load_config(without_fixed_correlations(source))
    business = config.segments[0]["business.model"]
    if business != "subscription":
        raise ConfigError(
            f"a forecast of MRR needs business.model = 'subscription' (got {business!r})",
            "business.model",
        )
    model = config.segments[0]["churn.model"]
    if model not in ("sbg", "constant"):
        raise ConfigError(
            f"a forecast needs churn.model = 'sbg' or 'constant' (got {model!r}): "
            "the churn of customers who have already stayed a while must follow from it",
            "churn.model",
        )
    return config.with_overrides(overrides)


# --- groups of customers on the kernel ------------------------------------------------


@dataclass
class _Group:
    """Customers that start together: a tenure group of the base or a planned cohort."""

    label: str  # names the group's customer streams
    renewals: int  # renewals already made (0 for new customers)
    mrr: float  # starting MRR per customer; NaN: the config's ARPA
    customers: np.ndarray  # (trial,) customers in the group
    start: int = 0  # forecast month in which the group starts
    constant_churn: np.ndarray | None = field(default=None)  # per renewal; None: the config's


def _run_groups(config: Config, inputs: dict, groups: list[_Group]) -> dict[str, np.ndarray]:
    """Simulate every group over the horizon, trial k with inputs[...][k] for all groups.

    One kernel call: "virtual trial" g·T + k is group g in trial k. Returns
    (group, trial, month) arrays ``alive``, ``revenue``, ``gross_profit``
    (service basis) and ``cash_gross_profit`` (by the month paid), with the
    per-trial discount factors ``weights`` (trial, month).
    """
    segment = config.segments[0]
    trials, horizon = config.trials, config.horizon_months
    n_groups = len(groups)
    sbg = segment["churn.model"] == "sbg"
    virtual = {path: np.tile(values, n_groups) for path, values in inputs.items()}
    homogeneous = any(g.constant_churn is not None for g in groups)
    if homogeneous:
        segment = replace(segment, values={**segment.values, "churn.model": "constant"})
        virtual["churn.monthly_rate"] = np.zeros(n_groups * trials)
        virtual.pop("churn.annual_rate", None)
    renewal = segment["churn.renewal_months"]
    for g, group in enumerate(groups):
        rows = slice(g * trials, (g + 1) * trials)
        if not math.isnan(group.mrr):
            virtual["revenue.arpa_monthly"][rows] = group.mrr
        if group.renewals > 0:  # onboarding failures happen at the first renewal only
            virtual["churn.first_renewal_churn"][rows] = 0.0
        if homogeneous:
            per_month = 1.0 - (1.0 - group.constant_churn) ** (1.0 / renewal)
            virtual["churn.monthly_rate"][rows] = per_month
        elif sbg:
            virtual["churn.beta"][rows] = virtual["churn.beta"][rows] + group.renewals
    args = kernel_inputs(config, segment, virtual)

    counts = np.concatenate([g.customers for g in groups]).astype(np.int64)
    unit_trial, unit_first, unit_count, starts = unit_layout(counts)
    trial_keys = np.concatenate(
        [
            stream_keys(stream_key(config.seed, "forecast", "customers", g.label), 0, trials)
            for g in groups
        ]
    )
    out = run_subscription_kernel(
        args, (unit_trial, unit_first, unit_count, trial_keys), starts, horizon
    )
    alive, revenue = out["alive"], out["revenue"]
    # margin is net of the payment fee, service cost includes the fixed fee (model.kernel_inputs)
    margin, service_cost = args["margin"][:, None], args["service_cost"][:, None]
    gross_profit = margin * revenue - service_cost * alive
    cash = cash_by_month(revenue, segment["revenue.billing_months"])
    cash_gross_profit = margin * cash - service_cost * alive
    shape = (n_groups, trials, horizon)
    return {
        "alive": alive.reshape(shape),
        "revenue": revenue.reshape(shape),
        "gross_profit": gross_profit.reshape(shape),
        "cash_gross_profit": cash_gross_profit.reshape(shape),
        "weights": args["weights"][:trials],
    }


def _base_groups(config: Config, base: CustomerBase, trials: int) -> list[_Group]:
    renewal = config.segments[0]["churn.renewal_months"]
    off = base.tenure_months % renewal
    if off.any():
        i = int(np.argmax(off != 0))
        raise DataError(
            f"tenure_months[{i}] = {base.tenure_months[i]}: with renewals every {renewal} "
            "months the base's tenures must be multiples of it (customers at the start of a "
            "contract period)"
        )
    return [
        _Group(
            label=f"base/{tenure}",
            renewals=int(tenure // renewal),
            mrr=float(mrr),
            customers=np.full(trials, count, np.int64),
        )
        for tenure, count, mrr in zip(
            base.tenure_months, base.customers, base.mrr_per_customer, strict=True
        )
    ]


def _quantiles(quantiles) -> np.ndarray:
    q = np.asarray(quantiles, dtype=float)
    if q.ndim != 1 or q.size == 0 or not np.all((q >= 0) & (q <= 1)):
        raise ConfigError(f"must be a list of numbers in [0, 1], got {quantiles!r}", "quantiles")
    return np.unique(q)


def _band(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    return band_quantiles(np.asarray(values, dtype=float), quantiles)


# --- the value of the existing base ---------------------------------------------------


def value_base(
    config,
    base: CustomerBase,
    *,
    fit=None,
    trials: int | None = None,
    seed: int | None = None,
    horizon_months: int | None = None,
    quantiles=QUANTILES,
) -> xr.Dataset:
    """Discounted residual gross profit of the customers active now, by tenure group.

    For each tenure group and trial: the discounted gross profit its customers
    will still bring, from this month (their current payment, undiscounted)
    to the horizon, simulated customer by customer with the survivors' churn
    Beta(alpha, beta + n). Beside it, the homogeneous answer: every customer
    churns at the constant rate ``alpha / (alpha + beta)`` per renewal, the
    mean churn of a new customer (a single churn rate read off the cohorts),
    whatever its tenure, with the same trial's parameters, MRR and margins.

    Without expansion, costs or a horizon, the expected heterogeneous value
    per customer is ``MRR × margin × (1 + DERL(n) / (1 + d))`` for monthly
    renewals (``formulas.sbg_derl``; the current month's payment plus the
    ones after the next renewal).

    Parameters
    ----------
    config : Config, mapping or path
        Without ``[[segments]]``; its churn model ``sbg`` (or ``constant``) and
        its uncertain inputs drive the trials.
    base : CustomerBase
    fit : SBGFit, optional
        Replaces the config's alpha and beta by draws from the fit's sampling
        distribution (correlated; :func:`sbg_parameter_draws`).
    trials, seed : int, optional
        Override ``[simulation]``.
    horizon_months : int, optional
        Months valued (default ``simulation.horizon_months``).
    quantiles : sequence of float
        Band quantiles.

    Returns
    -------
    xarray.Dataset
        Dims (trial, tenure): ``residual_gross_profit`` and
        ``homogeneous_residual_gross_profit`` (group totals),
        ``*_per_customer``; (trial,): ``base_value`` and
        ``homogeneous_base_value``; ``*_band`` over ``quantile``.
    """
    quantiles = _quantiles(quantiles)
    if not isinstance(config, Config):
        config = load_config(config)
    months = config.horizon_months if horizon_months is None else horizon_months
    config = _prepare(config, fit, trials, seed, months)
    n_trials = config.trials
    inputs = _trial_inputs(config, n_trials, 0, fit)
    groups = _base_groups(config, base, n_trials)
    het = _run_groups(config, inputs, groups)
    if config.segments[0]["churn.model"] == "sbg":
        a, b = inputs["churn.alpha"], inputs["churn.beta"]
        mean_churn = a / (a + b)
    else:  # constant churn: no heterogeneity, the two answers coincide in distribution
        mean_churn = per_renewal_churn(inputs, config.segments[0]["churn.renewal_months"])
    hom_groups = [
        replace(g, label="homogeneous/" + g.label, constant_churn=mean_churn) for g in groups
    ]
    hom = _run_groups(config, inputs, hom_groups)

    weights = het["weights"][None]
    value = (het["cash_gross_profit"] * weights).sum(axis=2).T  # (trial, tenure)
    hom_value = (hom["cash_gross_profit"] * weights).sum(axis=2).T
    customers = np.maximum(base.customers, 1)[None]
    currency = config.currency
    money = {"units": currency}
    per = {"units": f"{currency} per customer"}
    data = {
        "residual_gross_profit": (
            ("trial", "tenure"),
            value,
            {**money, "long_name": "discounted residual gross profit of the tenure group"},
        ),
        "homogeneous_residual_gross_profit": (
            ("trial", "tenure"),
            hom_value,
            {**money, "long_name": "the same under constant churn alpha/(alpha+beta)"},
        ),
        "residual_gross_profit_per_customer": (
            ("trial", "tenure"),
            value / customers,
            {**per, "long_name": "discounted residual gross profit per active customer"},
        ),
        "homogeneous_residual_gross_profit_per_customer": (
            ("trial", "tenure"),
            hom_value / customers,
            {**per, "long_name": "the same under constant churn alpha/(alpha+beta)"},
        ),
        "base_value": (
            ("trial",),
            value.sum(axis=1),
            {**money, "long_name": "discounted residual gross profit of the whole base"},
        ),
        "homogeneous_base_value": (
            ("trial",),
            hom_value.sum(axis=1),
            {**money, "long_name": "the same under constant churn alpha/(alpha+beta)"},
        ),
        "customers": (("tenure",), base.customers, {"units": "customers"}),
        "mrr_per_customer": (("tenure",), base.mrr_per_customer, {"units": f"{currency}/month"}),
        "mean_churn": (("trial",), mean_churn, {"units": "1 per renewal"}),
    }
    for name in ("churn.alpha", "churn.beta"):
        if name in inputs:
            data[name.replace(".", "_")] = (("trial",), inputs[name], {"units": "1"})
    ds = xr.Dataset(data)
    for name in (
        "residual_gross_profit",
        "homogeneous_residual_gross_profit",
        "residual_gross_profit_per_customer",
        "homogeneous_residual_gross_profit_per_customer",
        "base_value",
        "homogeneous_base_value",
    ):
        var = ds[name]
        ds[f"{name}_band"] = (
            ("quantile", *var.dims[1:]),
            _band(var.values, quantiles),
            {"units": var.attrs["units"], "long_name": f"quantiles across trials of {name}"},
        )
    ds = ds.assign_coords(
        tenure=("tenure", base.tenure_months, {"units": "months", "long_name": "tenure now"}),
        quantile=("quantile", quantiles, {"units": "1"}),
    )
    ds.attrs.update(
        currency=currency,
        horizon_months=months,
        trials=n_trials,
        seed=config.seed,
        parameters="fit" if fit is not None else "config",
        config=config.to_json(),
        description="value of the existing customer base (ltvsim.forecast.value_base)",
    )
    return ds


# --- the company forecast ---------------------------------------------------------------


def forecast(
    config,
    base: CustomerBase | None = None,
    plan: AcquisitionPlan | None = None,
    months: int = 24,
    *,
    fit=None,
    trials: int | None = None,
    seed: int | None = None,
    quantiles=QUANTILES,
) -> xr.Dataset:
    """Company MRR, gross profit and active customers by month: the base plus planned cohorts.

    Parameters
    ----------
    config : Config, mapping or path
        Without ``[[segments]]``; churn model ``sbg`` or ``constant``. Its
        uncertain inputs are drawn once per trial and shared by the base and
        every new cohort; new customers start at its ``revenue.arpa_monthly``.
    base : CustomerBase, optional
        Customers active now (month 0).
    plan : AcquisitionPlan, optional
        New customers per month; months at or beyond ``months`` are ignored.
    months : int
        Months forecast (month 0 is the current month).
    fit : SBGFit, optional
        Draw (alpha, beta) per trial from the fit (correlated), not from the config.
    trials, seed : int, optional
        Override ``[simulation]``.
    quantiles : sequence of float
        Band quantiles (default: the 80% and 95% bands and the quartiles).

    Returns
    -------
    xarray.Dataset
        Dims (trial, month): ``mrr``, ``gross_profit``, ``active_customers``,
        ``new_customers`` and the base's share ``base_mrr``,
        ``base_active_customers``; ``*_band`` (quantile, month).

    Examples
    --------
    >>> from ltvsim.forecast import AcquisitionPlan, CustomerBase, forecast
    >>> base = CustomerBase([0, 12], [100, 50], [1000.0, 1200.0])
    >>> plan = AcquisitionPlan([0, 1, 2], [10, 10, 10])
    >>> config = {"churn": {"model": "sbg", "alpha": 0.9, "beta": 6.0}}
    >>> ds = forecast(config, base, plan, months=6, trials=50)
    >>> ds.mrr.dims
    ('trial', 'month')
    """
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 1200:
        raise ConfigError(f"must be a whole number in [1, 1200], got {months!r}", "months")
    if base is None and plan is None:
        raise DataError("give a customer base, an acquisition plan or both")
    quantiles = _quantiles(quantiles)
    config = _prepare(config, fit, trials, seed, months)
    n_trials = config.trials
    inputs = _trial_inputs(config, n_trials, 0, fit)
    groups = _base_groups(config, base, n_trials) if base is not None else []
    n_base = len(groups)
    acquired = np.zeros((n_trials, months), np.int64)
    if plan is not None:
        keep = plan.month < months
        plan_months, means = plan.month[keep], plan.new_customers[keep]
        factor = np.ones(n_trials)
        if plan.cv > 0:
            sigma = math.sqrt(math.log1p(plan.cv**2))
            u = stream_uniforms(stream_key(config.seed, "forecast", "plan"), 0, n_trials)
            factor = np.exp(sigma * ndtri(u) - 0.5 * sigma**2)
        from scipy.stats import poisson  # slow to import: on first use

        for m, mean in zip(plan_months, means, strict=True):
            key = stream_key(config.seed, "forecast", "acquired", str(m))
            u = stream_uniforms(key, 0, n_trials)
            counts = poisson.ppf(u, mean * factor).astype(np.int64)
            acquired[:, m] = counts
            groups.append(_Group(f"new/{m}", 0, math.nan, counts, start=int(m)))
    shape = (n_trials, months)
    total = {k: np.zeros(shape) for k in ("alive", "revenue", "gross_profit")}
    base_total = {k: np.zeros(shape) for k in ("alive", "revenue")}
    if groups:
        paths = _run_groups(config, inputs, groups)
        for g, group in enumerate(groups):
            span = months - group.start
            for k in total:
                total[k][:, group.start :] += paths[k][g, :, :span]
            if g < n_base:
                for k in base_total:
                    base_total[k] += paths[k][g]
    currency = config.currency
    per_month = f"{currency}/month"
    variables = {
        "mrr": (total["revenue"], per_month, "monthly recurring revenue (revenue of the month)"),
        "gross_profit": (total["gross_profit"], per_month, "gross profit of the month"),
        "active_customers": (
            total["alive"].astype(np.int64),
            "customers",
            "customers active in the month",
        ),
        "base_mrr": (base_total["revenue"], per_month, "MRR from the customers active now"),
        "base_active_customers": (
            base_total["alive"].astype(np.int64),
            "customers",
            "customers active in the month, of those active now",
        ),
        "new_customers": (acquired, "customers", "customers acquired in the month"),
    }
    data = {
        name: (("trial", "month"), values, {"units": units, "long_name": long_name})
        for name, (values, units, long_name) in variables.items()
    }
    for name in ("mrr", "gross_profit", "active_customers", "base_mrr", "base_active_customers"):
        values, units, long_name = variables[name]
        data[f"{name}_band"] = (
            ("quantile", "month"),
            _band(values, quantiles),
            {"units": units, "long_name": f"quantiles across trials of {long_name}"},
        )
    for name in ("churn.alpha", "churn.beta"):
        if name in inputs:
            data[name.replace(".", "_")] = (("trial",), inputs[name], {"units": "1"})
    ds = xr.Dataset(
        data,
        coords={
            "trial": ("trial", np.arange(n_trials)),
            "month": (
                "month",
                np.arange(months),
                {"units": "months", "long_name": "months from the forecast start (0 = now)"},
            ),
            "quantile": ("quantile", quantiles, {"units": "1"}),
        },
    )
    ds.attrs.update(
        currency=currency,
        trials=n_trials,
        seed=config.seed,
        months=months,
        plan_cv=plan.cv if plan is not None else 0.0,
        parameters="fit" if fit is not None else "config",
        config=config.to_json(),
        description=(
            "company forecast (ltvsim.forecast): existing base plus planned cohorts; bands "
            "hold parameter uncertainty, plan uncertainty and customer-level noise"
        ),
    )
    return ds


# --- backtests --------------------------------------------------------------------------


def cohort_history(
    alpha: float, beta: float, months: int, new_per_month: float, seed: int
) -> np.ndarray:
    """A company's history under known sBG parameters: active customers by cohort and month.

    Independent of the simulation kernel (plain numpy, ``numpy.random.default_rng(seed)``):
    cohort ``a`` (acquired in month ``a``) has ``Poisson(new_per_month)`` customers;
    each draws its churn probability per monthly renewal ``θ ~ Beta(alpha, beta)``
    and stays ``Geometric(θ)`` months (at least one).

    Returns
    -------
    ndarray of int, shape (months, months)
        ``active[a, t]``: customers of cohort ``a`` active in calendar month ``t``
        (0 before ``a``).
    """
    rng = np.random.default_rng(seed)
    active = np.zeros((months, months), np.int64)
    t = np.arange(months)
    for a in range(months):
        size = rng.poisson(new_per_month)
        stay = rng.geometric(rng.beta(alpha, beta, size))  # months active, >= 1
        tenure = t[a:] - a
        active[a, a:] = (stay[:, None] > tenure[None, :]).sum(axis=0)
    return active


def backtest_history(
    active: np.ndarray,
    cutoff: int,
    new_per_month: float,
    *,
    trials: int = 400,
    seed: int = 0,
    mrr: float = 100.0,
    parameter_uncertainty: bool = True,
) -> tuple[xr.Dataset, np.ndarray]:
    """Fit on a history up to month ``cutoff``, forecast the rest; return (forecast, realised).

    The sBG model is fitted to every cohort's active counts up to and including
    month ``cutoff`` (the forecast's month 0: the base is who is active then).
    The forecast draws (alpha, beta) from the fit (:func:`sbg_parameter_draws`)
    and plans ``Poisson(new_per_month)`` new customers in each later month, as
    the history was generated. Every customer pays ``mrr``. With
    ``parameter_uncertainty=False`` every trial uses the point estimates (the
    bands then hold only customer-level and acquisition noise).

    Returns
    -------
    forecast : xarray.Dataset
        :func:`forecast`'s result for months ``cutoff … months − 1``.
    realised : ndarray, shape (months − cutoff,)
        Customers actually active in those months.
    """
    from .fit import fit_sbg

    months = active.shape[1]
    cohorts = [active[a, a : cutoff + 1] for a in range(cutoff + 1) if active[a, a] > 0]
    fit = fit_sbg(cohorts)
    base = CustomerBase(
        cutoff - np.arange(cutoff + 1), active[: cutoff + 1, cutoff], np.full(cutoff + 1, mrr)
    )
    ahead = months - cutoff
    plan = AcquisitionPlan(np.arange(1, ahead), np.full(ahead - 1, float(new_per_month)))
    config = {
        "simulation": {"trials": trials, "seed": seed},
        "revenue": {"arpa_monthly": mrr, "gross_margin": 1.0},
        "churn": {"model": "sbg", "alpha": fit.alpha, "beta": fit.beta},
        "discount": {"annual_rate": 0.0},
    }
    ds = forecast(config, base, plan, months=ahead, fit=fit if parameter_uncertainty else None)
    return ds, active[:, cutoff:].sum(axis=0)


def band_coverage(ds: xr.Dataset, realised: np.ndarray, variable: str = "active_customers"):
    """Whether ``realised`` lies in the 80% and 95% bands of ``variable``, month by month.

    Returns
    -------
    dict
        ``{0.8: bool array, 0.95: bool array}`` over the forecast's months.
    """
    band = ds[f"{variable}_band"]
    out = {}
    for level, (q_low, q_high) in BANDS.items():
        low = band.sel(quantile=q_low).values
        high = band.sel(quantile=q_high).values
        out[level] = (realised >= low) & (realised <= high)
    return out
