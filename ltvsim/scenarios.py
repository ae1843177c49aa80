"""What-if questions: scenario comparison, sensitivity and goal seek.

Everything here runs the simulator several times on variants of one config
with the same seed. Because every random number is a function of (seed,
stream, trial, customer) and inputs are drawn by inverse transform, the
variants see the same customers and the same parameter draws: common random
numbers, so differences between them are measured far more precisely than
the outcomes themselves.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .analysis import SUMMARY_VARIABLES, mean_standard_error, trial_standard_error
from .config import Config, ConfigError, key_spec, load_config
from .dataset import TRIAL, VARIABLES
from .distributions import Distribution
from .simulate import simulate

TORNADO_METRICS = ("mean_ltv_discounted", "p_ltv_cac_at_least_3", "median_payback_months")
# Per-trial variables compared across scenarios: the headline ones.
COMPARED = SUMMARY_VARIABLES
# Direction in which a metric is good: goal seek asks P(metric >= target) for
# value metrics and P(metric <= target) for payback.
GOOD_IS_HIGH = {"payback_months": False, "lifetime_months": True}


def _config(config) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def _simulate(config: Config, trials, customers, seed, threads) -> xr.Dataset:
    return simulate(config, trials=trials, customers=customers, seed=seed, threads=threads)


# --- Adjusting a config ---------------------------------------------------------


def adjust(config, path: str, change: Callable[[float], float]) -> Config:
    """Apply ``change`` to config key ``path`` everywhere it is set.

    The top-level value (or the inherited default) and every segment's own
    value are changed; numbers are kept inside the key's valid range. A
    distribution is changed through its parameters (``mean``, ``low``,
    ``mode``, ``high`` by ``change``, ``sd`` by its slope): exactly the
    distribution of ``change(x)`` for normal, uniform, triangular, PERT,
    lognormal and gamma under scaling; for beta (support fixed to [0, 1]) a
    beta with the changed mean and sd.
    """
    config = _config(config)
    raw = copy.deepcopy(dict(config.source))
    section, key = path.split(".")
    spec = key_spec(path)
    scale = change(1.0) - change(0.0)

    def changed(value, where):
        if isinstance(value, Mapping):
            out = dict(value)
            for p in ("mean", "low", "mode", "high"):
                if p in out:
                    out[p] = change(out[p])
            if "sd" in out:
                out["sd"] = abs(scale) * out["sd"]
            return out
        if isinstance(value, list):
            return [changed(v, where) for v in value]
        new = change(value)
        low, high = spec.low, spec.high
        # Keep numbers inside the key's range (a margin cannot exceed 100%).
        return float(min(max(new, low), high))

    # The value segments inherit when the top level does not set the key
    # (a schema default, or the 0.02 monthly churn of the seeds' example).
    inherited = [s[path] for s in config.segments if s.streams.get(path) == path]
    inherited = inherited[0] if inherited else None
    if isinstance(inherited, Distribution):
        inherited = inherited.to_mapping()

    top = raw.setdefault(section, {})
    if key in top:
        top[key] = changed(top[key], "")
    elif inherited is not None:
        top[key] = changed(inherited, "")
    for segment in raw.get("segments", []):
        body = segment.get(section, {})
        if key in body:
            body[key] = changed(body[key], f"segments.{segment.get('name')}.")
    return load_config(raw)


def _churn_path(config: Config) -> str:
    """The churn key that a retention lever moves for this config."""
    models = {s["churn.model"] for s in config.segments}
    if models - {"constant"}:
        if models == {"curve"}:
            return "churn.monthly_rates"
        if models == {"sbg"}:
            return "churn.alpha"
        raise ConfigError(
            "the retention lever needs one churn model in every segment, got "
            f"{', '.join(sorted(models))}",
            "churn.model",
        )
    given = config.source.get("churn", {})
    return "churn.annual_rate" if "annual_rate" in given else "churn.monthly_rate"


# --- Scenario comparison --------------------------------------------------------


def compare(
    config,
    scenarios: Mapping[str, Mapping[str, object]],
    *,
    trials: int | None = None,
    customers: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    common_random_numbers: bool = True,
    base_name: str = "base",
) -> xr.Dataset:
    """Simulate the base config and each scenario with common random numbers.

    ``scenarios`` maps a name to overrides, e.g.
    ``{"price +10%": {"revenue.arpa_monthly": 1100}}`` (keys as in
    :meth:`Config.with_overrides`). Returns the per-trial variables with a
    ``scenario`` dim (the base first) and, per scenario and segment,
    ``<name>_difference`` (mean paired difference to the base) and
    ``<name>_difference_se`` (its MC standard error, from the per-trial
    differences). ``common_random_numbers=False`` gives every scenario its
    own seed: only useful to measure what common random numbers buy.
    """
    base = _config(config)
    if base_name in scenarios:
        raise ValueError(f"scenario name {base_name!r} is reserved for the base config")
    variants = {base_name: base}
    for name, overrides in scenarios.items():
        variants[name] = base.with_overrides(overrides)
    seed = base.seed if seed is None else seed
    results = []
    for i, variant in enumerate(variants.values()):
        variant_seed = seed if common_random_numbers else seed + 1000003 * i
        results.append(_simulate(variant, trials, customers, variant_seed, threads))
    return _stack_scenarios(list(variants), results, common_random_numbers)


def _stack_scenarios(names: list[str], results: list[xr.Dataset], crn: bool) -> xr.Dataset:
    keep = [
        v
        for v in results[0].data_vars
        if results[0][v].dims == TRIAL and all(v in r for r in results)
    ]
    stacked = xr.concat([r[keep] for r in results], dim="scenario", join="exact")
    stacked = stacked.assign_coords(scenario=("scenario", names))
    base = stacked.isel(scenario=0)
    paired = bool(results[0].attrs.get("antithetic_inputs", 0))  # antithetic pairs of trials
    for name in COMPARED:
        difference = stacked[name] - base[name]  # NaN where either never pays back
        n = difference.notnull().sum("trial")
        mean = difference.mean("trial")
        se = trial_standard_error(difference, paired)
        units = VARIABLES[name][1].format(
            money=f"{results[0].attrs['currency']} per acquired customer"
        )
        stacked[f"{name}_difference"] = mean.assign_attrs(
            units=units, long_name=f"mean paired difference of {name} to the base"
        )
        stacked[f"{name}_difference_se"] = se.where(n > 1).assign_attrs(
            units=units, long_name=f"MC standard error of {name}_difference"
        )
    good = (stacked["ltv_cac"] >= 3).astype(float)
    stacked["p_ltv_cac_at_least_3"] = good.mean("trial").assign_attrs(
        units="1", long_name="P(LTV:CAC >= 3)"
    )
    stacked["p_ltv_cac_at_least_3_difference_se"] = trial_standard_error(
        good - good.isel(scenario=0), paired
    ).assign_attrs(units="1", long_name="MC standard error of the paired change in P(LTV:CAC >= 3)")
    stacked.attrs = dict(results[0].attrs)
    stacked.attrs["common_random_numbers"] = int(crn)
    return stacked


# --- Sensitivity ------------------------------------------------------------------


@dataclass(frozen=True)
class Lever:
    """A one-at-a-time swing of a config key: proportional (``relative``) or additive."""

    name: str
    path: str  # "churn" is resolved per config
    swing: float
    relative: bool

    def change(self, sign: int) -> Callable[[float], float]:
        if self.relative:
            return lambda x: x * (1.0 + sign * self.swing)
        return lambda x: x + sign * self.swing

    def label(self) -> str:
        if self.relative:
            return f"±{self.swing:.0%}"
        return f"±{self.swing * 100:g} points"


def default_levers(swing: float = 0.10, config=None) -> list[Lever]:
    """DOMAIN.md's levers (price, purchase frequency, retention, margin) plus CAC,
    expansion and discount, for the business model of ``config`` (default: subscription).

    Purchase frequency is not a lever of a subscription: it bills every
    month, so its effect is that of price. For repeat purchase, price is the
    mean order value, frequency the purchase-rate shape ``r`` (the mean rate
    is ``r / alpha_months``) and retention the dropout (BG/NBD ``a``, Pareto/NBD
    ``s``: the mean dropout probability or rate moves with them); for deals,
    the deal value, deals per year and retention years.
    """
    shared = [
        Lever("gross margin", "revenue.gross_margin", swing, True),
        Lever("CAC", "acquisition.cac", swing, True),
    ]
    discount = Lever("discount rate", "discount.annual_rate", 0.02, False)
    model = "subscription" if config is None else _business_model(_config(config))
    if model == "repeat_purchase":
        return [
            Lever("order value (spend)", "spend", swing, True),
            Lever("purchase frequency (r)", "purchase.r", swing, True),
            Lever("dropout (retention)", "dropout", swing, True),
            *shared,
            discount,
        ]
    if model == "deals":
        return [
            Lever("deal value", "deal_value", swing, True),
            Lever("purchase frequency (deals per year)", "deals.per_year", swing, True),
            Lever("retention (years)", "deals.retention_years", swing, True),
            *shared,
            discount,
        ]
    return [
        Lever("price (ARPA)", "revenue.arpa_monthly", swing, True),
        Lever("retention (churn)", "churn", swing, True),
        *shared,
        Lever("expansion (annual growth)", "expansion.annual_growth", 0.05, False),
        discount,
    ]


def _business_model(config: Config) -> str:
    models = {s["business.model"] for s in config.segments}
    if len(models) > 1:
        raise ConfigError(
            "the default levers need one business model in every segment, got "
            f"{', '.join(sorted(models))}",
            "business.model",
        )
    return models.pop()


def _lever_path(config: Config, path: str) -> str:
    """The config key a lever named by concept (``"churn"``, ``"spend"`` …) moves."""
    if path == "churn":
        return _churn_path(config)
    if path == "spend":  # the mean order value is proportional to either key
        given = any(s["spend.mean_order_value"] is not None for s in config.segments)
        return "spend.mean_order_value" if given else "spend.gamma"
    if path == "dropout":
        processes = {s["purchase.process"] for s in config.segments}
        return "purchase.s" if processes == {"pareto_nbd"} else "purchase.a"
    if path == "deal_value":  # follow-on deals carry most of the value when set apart
        source = [config.source, *config.source.get("segments", [])]
        given = any("follow_on_value" in part.get("deals", {}) for part in source)
        return "deals.follow_on_value" if given else "deals.first_deal_value"
    return path


def sensitivity(
    config,
    *,
    levers: list[Lever] | None = None,
    trials: int | None = None,
    customers: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    segment: str = "all",
    rank_by: str = "mean_ltv_discounted",
    base_result: xr.Dataset | None = None,
) -> xr.Dataset:
    """One-at-a-time tornado with common random numbers.

    Each lever is swung down and up (``side`` = "low"/"high") and the effect
    on mean discounted LTV (its conditional-expectation estimate), on
    P(LTV:CAC >= 3) and on median payback is recorded. Levers are sorted by
    the size of their effect on ``rank_by`` (one of those three), largest
    first. ``base_result``, if the caller already has it, is
    ``simulate(config, trials=..., customers=..., seed=...)`` with the same
    arguments: it is used instead of simulating the base again.
    """
    if rank_by not in TORNADO_METRICS:
        raise ValueError(f"rank_by must be one of {TORNADO_METRICS}, got {rank_by!r}")
    base = _config(config)
    levers = levers or default_levers(config=base)
    base_ds = base_result
    if base_ds is None:
        base_ds = _simulate(base, trials, customers, seed, threads)
    metrics = {name: [] for name in TORNADO_METRICS}
    names, labels, paths = [], [], []
    for lever in levers:
        path = _lever_path(base, lever.path)
        rows = {name: [] for name in metrics}
        for sign in (-1, 1):
            ds = _simulate(adjust(base, path, lever.change(sign)), trials, customers, seed, threads)
            for name, value in _tornado_metrics(ds, segment).items():
                rows[name].append(value)
        for name in metrics:
            metrics[name].append(rows[name])
        names.append(lever.name)
        labels.append(lever.label())
        paths.append(path)
    base_metrics = _tornado_metrics(base_ds, segment)
    out = xr.Dataset(
        {
            name: (("lever", "side"), np.array(values), {"base": base_metrics[name]})
            for name, values in metrics.items()
        },
        coords={
            "lever": names,
            "side": ["low", "high"],
            "swing": ("lever", labels),
            "config_key": ("lever", paths),
        },
        attrs={"segment": segment, "trials": base_ds.sizes["trial"], "seed": base_ds.attrs["seed"]},
    )
    effect = np.abs(out[rank_by].diff("side")).squeeze("side", drop=True)
    order = np.argsort(-np.nan_to_num(effect.values, nan=np.inf), kind="stable")
    out.attrs["ranked_by"] = rank_by
    return out.isel(lever=order)


def _tornado_metrics(ds: xr.Dataset, segment: str) -> dict[str, float]:
    one = ds.sel(segment=segment)
    payback = np.where(np.isnan(one.payback_months.values), np.inf, one.payback_months.values)
    median = float(np.median(payback))
    return {
        "mean_ltv_discounted": float(one.expected_ltv_discounted.mean()),
        "p_ltv_cac_at_least_3": float((one.ltv_cac >= 3).mean()),
        "median_payback_months": median if math.isfinite(median) else math.nan,
    }


def rank_sensitivity(
    ds: xr.Dataset, outputs=("ltv_discounted", "ltv_cac", "payback_months")
) -> xr.Dataset:
    """Global sensitivity: Spearman rank correlation of each uncertain input's
    per-trial draw with each output, per segment (trials that never pay back
    rank last). The chart a Monte Carlo spreadsheet tool shows.
    """
    from scipy.stats import spearmanr  # scipy.stats is slow to import: only when needed

    inputs = [v for v in ds.data_vars if v.startswith("input_") and not v.endswith("_band")]
    if not inputs:
        raise ValueError("the result has no uncertain inputs: nothing varies across trials")
    segments = [s for s in ds.segment.values if s != "all"] or ["all"]
    values = np.full((len(inputs), len(outputs), len(segments)), np.nan)
    for k, segment in enumerate(segments):
        one = ds.sel(segment=segment)
        for j, output in enumerate(outputs):
            y = np.nan_to_num(one[output].values, nan=np.inf)
            for i, name in enumerate(inputs):
                x = one[name].values
                if np.ptp(x) > 0 and np.ptp(y[np.isfinite(y)]) > 0:
                    values[i, j, k] = spearmanr(x, y).statistic
    return xr.Dataset(
        {
            "rank_correlation": (
                ("input", "output", "segment"),
                values,
                {"long_name": "Spearman rank correlation across trials"},
            )
        },
        coords={
            "input": inputs,
            "config_key": ("input", [ds[v].attrs.get("config_key", v) for v in inputs]),
            "output": list(outputs),
            "segment": segments,
        },
    )


# --- Goal seek --------------------------------------------------------------------


class GoalSeekError(ValueError):
    """The target cannot be reached within the lever's range; the message says why."""


@dataclass
class GoalSeekResult:
    lever: str
    value: float  # the lever's (mean) value that meets the target
    standard_error: float  # MC uncertainty of ``value``
    interval: tuple[float, float]  # value at target probability ± 1 MC standard error
    metric: str
    target: float
    probability: float  # the required probability
    achieved: float  # P(metric meets target) at ``value`` in the search's simulation
    evaluations: int
    units: str

    def describe(self) -> str:
        op = ">=" if GOOD_IS_HIGH.get(self.metric, True) else "<="
        return (
            f"{self.lever} = {self.value:.6g} ± {self.standard_error:.2g} {self.units} gives "
            f"P({self.metric} {op} {self.target:g}) = {self.achieved:.3f} "
            f"(target {self.probability:g}; {self.evaluations} simulations)"
        )


def goal_seek(
    config,
    *,
    lever: str,
    metric: str,
    target: float,
    probability: float,
    bounds: tuple[float, float] | None = None,
    trials: int | None = None,
    customers: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    segment: str = "all",
    on_evaluation: Callable[[float, float], None] | None = None,
) -> GoalSeekResult:
    """The lever value at which P(metric meets target) equals ``probability``.

    ``lever`` is a config key (e.g. ``"churn.monthly_rate"``,
    ``"acquisition.cac"``, ``"revenue.arpa_monthly"``); an uncertain lever is
    moved by scaling its distribution so that its mean is the answer.
    ``metric`` is a per-trial variable; a value metric must reach ``target``
    (``ltv_cac >= 3``), payback must not exceed it (``payback_months <= 12``).
    With common random numbers each trial's metric is monotone in the lever,
    so the probability is a monotone step function and Brent's method on
    ``[low, high]`` finds where it crosses ``probability``. The MC
    uncertainty is the lever's change between the probabilities
    ``probability ± sqrt(p (1-p) / trials)`` (the binomial interval of a
    quantile). ``on_evaluation(lever_value, probability)`` is called after
    each simulation (for progress reports).
    """
    from scipy import optimize

    base = _config(config)
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1), got {probability!r}")
    if metric not in VARIABLES or VARIABLES[metric][0] != TRIAL:
        choices = [n for n, v in VARIABLES.items() if v[0] == TRIAL]
        raise ValueError(f"metric must be a per-trial variable, one of {choices}; got {metric!r}")
    try:
        spec = key_spec(lever)
    except (KeyError, ValueError):
        raise ConfigError(
            "unknown lever; give a config key such as churn.monthly_rate", lever
        ) from None
    if spec.kind != "float":
        raise ConfigError("goal seek needs a numeric lever", lever)
    base_mean = _lever_mean(base, lever)

    def scaled(x: float) -> Config:
        return adjust(base, lever, lambda v, f=x / base_mean: v * f)

    if bounds is None:
        # Two decades either side of the current value, pulled in while the
        # scaled config is invalid (e.g. a beta churn whose mean cannot grow).
        bounds = []
        for factor in (0.01, 100.0):
            x = min(max(base_mean * factor, spec.low), spec.high)
            for _ in range(30):
                try:
                    if spec.contains(x) and x != spec.low:
                        scaled(x)
                        break
                except ConfigError:
                    pass
                x = math.sqrt(x * base_mean) if x > 0 else base_mean / 100.0
            bounds.append(x)
        bounds = tuple(bounds)
    low, high = bounds
    if not (spec.contains(low) and spec.contains(high) and low < high):
        raise ConfigError(f"bounds {bounds} must lie in {spec.range_text()} with low < high", lever)
    good_is_high = GOOD_IS_HIGH.get(metric, True)
    cache: dict[float, float] = {}
    indicators: dict[float, np.ndarray] = {}  # per trial: meets the target?

    def p_meets(x: float) -> float:
        if x not in cache:
            ds = _simulate(scaled(x), trials, customers, seed, threads).sel(segment=segment)
            values = np.nan_to_num(ds[metric].values, nan=np.inf)
            meets = values >= target if good_is_high else values <= target
            cache[x] = float(meets.mean())
            indicators[x] = meets
            if on_evaluation is not None:
                on_evaluation(x, cache[x])  # e.g. progress: lever value, probability
        return cache[x]

    p_low, p_high = p_meets(low), p_meets(high)
    n = base.trials if trials is None else trials
    if not min(p_low, p_high) <= probability <= max(p_low, p_high):
        raise GoalSeekError(
            f"P({metric} {'>=' if good_is_high else '<='} {target:g}) stays between "
            f"{min(p_low, p_high):.3f} and {max(p_low, p_high):.3f} for {lever} in "
            f"[{low:g}, {high:g}]; {probability:g} is not reachable (widen bounds or change "
            "the target)"
        )

    feasible_low = p_low >= p_high  # which end of the range meets the target more often
    # The answer's MC uncertainty is a few percent; finer steps would only chase noise.
    xtol = 1e-4 * abs(base_mean)

    def excess(x: float, p: float) -> float:
        return (p_meets(x) - p) or 1e-12  # P == p counts as meeting the target

    def solve(p: float) -> float:
        """Boundary of {x : P(x) >= p}; P is a monotone step function of x."""
        p = min(max(p, min(p_low, p_high)), max(p_low, p_high))
        # Start from the tightest bracket already simulated (the cache is shared).
        xs = sorted(cache)
        signs = [excess(x, p) > 0 for x in xs]
        i = next(k for k in range(len(xs) - 1) if signs[k] != signs[k + 1])
        x = optimize.brentq(excess, xs[i], xs[i + 1], args=(p,), xtol=xtol, rtol=1e-12)
        # Brent stops within xtol of the step, on either side: report the side that meets it.
        for _ in range(4):
            if p_meets(x) >= p:
                break
            x = max(low, x - xtol) if feasible_low else min(high, x + xtol)
        return x

    value = solve(probability)
    se_p = math.sqrt(probability * (1 - probability) / n)
    if base.antithetic_inputs:
        # Antithetic pairs: the error of P from the pairs at the answer (monotone
        # outcomes: smaller than the binomial one, which stays the fallback).
        p_meets(value)  # the answer may be a point Brent's nudge reached without simulating
        paired_se = mean_standard_error(indicators[value].astype(float), paired=True)[1]
        se_p = paired_se if paired_se > 0 else se_p
    ends = sorted((solve(probability - se_p), solve(probability + se_p)))
    units = spec.unit.replace("currency", base.currency)
    return GoalSeekResult(
        lever=lever,
        value=value,
        standard_error=(ends[1] - ends[0]) / 2.0,
        interval=(ends[0], ends[1]),
        metric=metric,
        target=target,
        probability=probability,
        achieved=p_meets(value),
        evaluations=len(cache),
        units=units,
    )


def _lever_mean(config: Config, path: str) -> float:
    """The lever's mean value across segments (share-weighted)."""
    total = 0.0
    for segment in config.segments:
        value = segment[path]
        if value is None:
            raise ConfigError("this config does not use the key, so it cannot be a lever", path)
        total += segment.share * (value.mean if hasattr(value, "mean") else float(value))
    if total <= 0:
        raise ConfigError("a lever must have a positive value to scale", path)
    return total
