"""The seeds' five-step LTV worksheet beside the simulation, and why they differ.

The worksheet (value, margin, retention from churn, LTV, LTV:CAC and payback)
is what an analyst computes by hand from point inputs. The bridge then adds
what the formula leaves out one step at a time — the horizon, the churn model
(heterogeneity, renewals), customer size and expansion, cost to serve and
payment fees, input uncertainty, discounting, then retention spend and
onboarding when there are any — simulating each step with common random numbers,
so every step's effect is measured with a small paired standard error.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from . import formulas
from .analysis import LTV_CAC_BANDS, PAYBACK_BANDS
from .config import Config, ConfigError, Segment, load_config
from .distributions import Distribution
from .mix import AveragingGap, naive_average
from .simulate import simulate

PAYMENT_FEES = ("payment_fee", "payment_fee_fixed")
EXPANSION_OFF = {
    "annual_growth": 0.0,
    "annual_volatility": 0.0,
    "upsell_monthly_probability": 0.0,
    "downgrade_monthly_probability": 0.0,
    "price_increase": 0.0,
}


@dataclass
class Step:
    label: str
    ltv: float  # mean gross-profit LTV per acquired customer (discounted in the last step)
    change: float | None = None  # vs the previous step
    change_se: float | None = None  # MC standard error of the change (paired trials)
    how: str = "closed form"


@dataclass
class Worksheet:
    currency: str
    segments: list[dict]  # the five steps per segment (point inputs)
    blended: dict  # the five steps for the share-weighted blend
    bridge: list[Step] = field(default_factory=list)
    simulated: dict = field(default_factory=dict)
    # segments only: the simulated cost of averaging the segments' inputs
    averaging: AveragingGap | None = None


def point_value(value) -> float:
    """A number, or a distribution's mean: what a spreadsheet would use."""
    return value.mean if isinstance(value, Distribution) else float(value)


def monthly_churn_equivalent(segment: Segment) -> float:
    """The one monthly churn rate an analyst would put in the formula.

    constant: the configured rate; sbg: the mean first-renewal churn
    ``alpha / (alpha + beta)`` per renewal, as a monthly rate by compounding;
    curve: the average of the first twelve monthly rates.
    """
    model = segment["churn.model"]
    k = segment["churn.renewal_months"]
    if model == "constant":
        if segment["churn.annual_rate"] is not None:
            return 1 - (1 - point_value(segment["churn.annual_rate"])) ** (1 / 12)
        return point_value(segment["churn.monthly_rate"])
    if model == "sbg":
        alpha, beta = point_value(segment["churn.alpha"]), point_value(segment["churn.beta"])
        per_renewal = alpha / (alpha + beta)
        return 1 - (1 - per_renewal) ** (1 / k)
    rates = segment["churn.monthly_rates"]
    return float(np.mean([rates[min(t, len(rates) - 1)] for t in range(12)]))


def five_steps(arpa: float, margin: float, churn: float, cac: float) -> dict:
    """The seeds' worksheet for point inputs (monthly ARPA and churn)."""
    lifetime = formulas.lifetime_from_churn(churn) if churn > 0 else math.inf
    ltv = arpa * margin * lifetime
    ratio = ltv / cac
    payback = formulas.simple_payback_months(cac, arpa, margin) if arpa * margin > 0 else math.inf
    return {
        "arpa_monthly": arpa,
        "gross_margin": margin,
        "monthly_churn": churn,
        "lifetime_months": lifetime,
        "ltv": ltv,
        "cac": cac,
        "ltv_cac": ratio,
        "ltv_cac_band": _band(ratio, LTV_CAC_BANDS, closed_low=True),
        "simple_payback_months": payback,
        "payback_band": _band(payback, PAYBACK_BANDS, closed_low=False),
    }


def _band(x: float, bands, closed_low: bool) -> str:
    for label, low, high in bands:
        if (low <= x < high) if closed_low else (low < x <= high):
            return label
    return "never"


def worksheet(config, *, trials=None, customers=None, seed=None, threads=None) -> Worksheet:
    """The worksheet per segment and blended, and the bridge to the simulated mean LTV."""
    config = config if isinstance(config, Config) else load_config(config)
    for s in config.segments:
        if s["business.model"] != "subscription":
            where = "" if not config.named_segments else f"segments.{s.name}."
            raise ConfigError(
                "the worksheet is the subscription formula (ARPA x margin / churn); "
                f"this segment is {s['business.model']!r}: use ltvsim run, and "
                "ltvsim.formulas.one_time_ltv / ecommerce_net_ltv for its seed formula",
                f"{where}business.model",
            )
    per_segment = []
    for s in config.segments:
        steps = five_steps(
            point_value(s["revenue.arpa_monthly"]),
            point_value(s["revenue.gross_margin"]),
            monthly_churn_equivalent(s),
            point_value(s["acquisition.cac"]),
        )
        per_segment.append({"segment": s.name, "share": s.share, **steps})
    shares = np.array([s.share for s in config.segments])
    mean_of = {
        key: float(shares @ [row[key] for row in per_segment])
        for key in ("arpa_monthly", "gross_margin", "monthly_churn", "cac")
    }
    blended = five_steps(
        mean_of["arpa_monthly"], mean_of["gross_margin"], mean_of["monthly_churn"], mean_of["cac"]
    )
    sheet = Worksheet(config.currency, per_segment, blended)
    sheet.bridge, full = _bridge(config, per_segment, shares, trials, customers, seed, threads)
    everyone = full.sel(segment="all")
    for name in (
        "ltv_gross_profit",
        "ltv_discounted",
        "ltv_cac",
        "payback_months",
        "lifetime_months",
    ):
        values = np.nan_to_num(everyone[name].values, nan=np.inf)
        finite = values[np.isfinite(values)]
        sheet.simulated[name] = {
            "mean": float(finite.mean()) if finite.size else math.nan,
            "p5": float(np.quantile(values, 0.05)),
            "p95": float(np.quantile(values, 0.95)),
        }
    sheet.simulated["p_ltv_cac_below_3"] = float((everyone.ltv_cac < 3).mean())
    if config.named_segments:
        sheet.averaging = naive_average(
            config, blended=full, trials=trials, customers=customers, seed=seed, threads=threads
        )
    return sheet


def _bridge(config, rows, shares, trials, customers, seed, threads):
    """The bridge's steps, and the simulation of the config itself (its last variant)."""
    horizon = config.horizon_months
    blended_formula = float(shares @ [r["ltv"] for r in rows])
    if config.named_segments:
        steps = [
            Step("formula on averaged inputs (segments ignored)", _naive_ltv(rows, shares)),
            Step("formula per segment, then blended", blended_formula),
        ]
    else:
        steps = [Step("formula: ARPA × margin ÷ churn", blended_formula)]
    with_horizon = [
        formulas.constant_churn_ltv(
            r["arpa_monthly"], r["gross_margin"], r["monthly_churn"], horizon_months=horizon
        )
        for r in rows
    ]
    steps.append(Step(f"+ {horizon}-month horizon", float(shares @ with_horizon)))
    for before, after in itertools.pairwise(steps):
        after.change = after.ltv - before.ltv

    fees = any(s[f"costs.{k}"] != 0 for s in config.segments for k in PAYMENT_FEES)
    variants = [
        ("+ churn model as configured (heterogeneity, renewals)", _variant(config)),
        ("+ customer size spread and expansion", _variant(config, expansion=True)),
        (
            "+ cost to serve" + (" and payment fees" if fees else ""),
            _variant(config, expansion=True, cost=True),
        ),
        ("+ input uncertainty (distributions, not means)", config),
    ]
    previous = None
    for label, variant in variants:
        ds = simulate(variant, trials=trials, customers=customers, seed=seed, threads=threads)
        values = ds.ltv_gross_profit.sel(segment="all").values
        step = _simulated_step(label, values, previous)
        if previous is None:  # compared with the closed form before it
            step.change = step.ltv - steps[-1].ltv
        steps.append(step)
        previous = values
    discounted = ds.ltv_discounted.sel(segment="all").values
    steps.append(_simulated_step("+ discounting (NPV)", discounted, previous))
    net = ds.ltv_net_discounted.sel(segment="all").values
    if (net != discounted).any():
        label = "- retention spend and onboarding (discounted net LTV)"
        steps.append(_simulated_step(label, net, discounted))
    return steps, ds


def _naive_ltv(rows, shares) -> float:
    arpa = float(shares @ [r["arpa_monthly"] for r in rows])
    margin = float(shares @ [r["gross_margin"] for r in rows])
    churn = float(shares @ [r["monthly_churn"] for r in rows])
    return arpa * margin / churn


def _simulated_step(label, values, previous) -> Step:
    mean = float(values.mean())
    se = float(values.std(ddof=1) / math.sqrt(values.size))
    step = Step(label, mean, how="simulated")
    if previous is not None:
        difference = values - previous
        step.change = float(difference.mean())
        step.change_se = float(difference.std(ddof=1) / math.sqrt(values.size))
    else:
        step.change_se = se  # vs a closed form: the simulation's own error
    return step


def _variant(config: Config, *, expansion=False, cost=False) -> Config:
    """The config with point inputs (means) and only the chosen features switched on."""
    raw = copy.deepcopy(dict(config.source))
    raw.pop("mix", None)  # the configured shares: an uncertain mix is input uncertainty
    for table in [raw, *raw.get("segments", [])]:
        for section in ("acquisition", "revenue", "costs", "churn", "expansion", "discount"):
            body = table.get(section)
            for key, value in (body or {}).items():
                if isinstance(value, dict):
                    body[key] = Distribution.from_mapping(value).mean
        revenue = table.setdefault("revenue", {})
        if not expansion:
            revenue["arpa_cv"] = 0.0
            table["expansion"] = {**table.get("expansion", {}), **EXPANSION_OFF}
        if not cost:  # the costs inside gross profit
            revenue["cost_to_serve_monthly"] = 0.0
            table["costs"] = {**table.get("costs", {}), **dict.fromkeys(PAYMENT_FEES, 0.0)}
    return load_config(raw)
