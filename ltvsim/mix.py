"""The segment mix: per-trial shares, and the cost of averaging segments.

Segments are always simulated separately and blended per acquired customer
(DOMAIN.md: averaging very different segments is one of the seeds' mistakes).
``segment_shares`` gives each trial's shares — the configured ones, or, with
``[mix] concentration``, a Dirichlet draw around them. ``naive_average``
measures the mistake: it simulates one segment whose inputs are the
share-weighted averages of the segments' inputs, with the same seed, and
compares it with the correct blend.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaincinv

from ._rng import stream_key
from .config import (
    PER_ACCOUNT_ONLY,
    SCHEMA,
    Config,
    load_config,
    owner_model,
    without_fixed_correlations,
)
from .distributions import Distribution
from .model import trial_uniforms


def segment_shares(config: Config, first: int, count: int) -> np.ndarray:
    """Share of acquired customers of each segment in trials ``first … first+count-1``.

    Shape ``(segment, trial)``; each column sums to 1. Fixed shares repeat the
    configured ones. With ``mix.concentration = k`` the shares are
    ``Dirichlet(k × share)``: segment i draws ``G_i ~ Gamma(k s_i)`` by inverse
    transform of its own uniform stream and the shares are ``G_i / Σ G``, so
    ``E[share_i] = s_i`` and ``Var[share_i] = s_i (1 - s_i) / (k + 1)``. A pure
    function of (seed, trial): any block of trials gets the same draws.
    """
    configured = np.array([s.share for s in config.segments])
    if config.mix_concentration is None:
        return np.repeat(configured[:, None], count, axis=1)
    gammas = np.empty((len(configured), count))
    for i, segment in enumerate(config.segments):
        key = stream_key(config.seed, "mix", segment.name)
        u = trial_uniforms(key, first, count, config.antithetic_inputs)
        gammas[i] = gammaincinv(config.mix_concentration * configured[i], u)
    return gammas / gammas.sum(axis=0)


# Measures compared between the correct blend and the naive average:
# (label, per-trial values of a dataset's segment "all").
def _measures(one) -> dict[str, np.ndarray]:
    cac = one["cac"].values
    return {
        "mean gross-profit LTV": one["expected_ltv_gross_profit"].values,
        "mean discounted LTV": one["expected_ltv_discounted"].values,
        "mean net LTV": one["expected_ltv_net"].values,
        "mean LTV:CAC": one["expected_ltv_gross_profit"].values / cac,
        "P(LTV:CAC < 3)": (one["ltv_cac"].values < 3.0).astype(float),
    }


@dataclass
class AveragingGap:
    """The correct per-segment blend beside one segment of averaged inputs.

    ``averaged`` maps each input that differs between segments to the value
    the naive segment used; ``rows`` holds, per measure, the blend's and the
    naive segment's mean over trials, their difference (naive − blend) and
    its MC standard error, paired by trial (same seed: inputs the segments
    share are the same draws in both).
    """

    averaged: dict[str, object]
    rows: list[dict] = field(default_factory=list)


def naive_average_config(config: Config) -> tuple[Config, dict[str, object]]:
    """One segment whose inputs are the share-weighted averages of the segments' inputs.

    An input every segment has the same value for (typically inherited from
    the top level) is kept as it is, distribution included, and is drawn from
    the same stream as in the segmented run. An input that differs is
    replaced by ``Σ share × value``, a distribution by its mean — what an
    analyst averaging a table of segments would do. Churn that differs
    becomes the constant monthly rate ``Σ share × monthly churn`` (each
    segment's churn as the one monthly rate a formula would use:
    ``worksheet.monthly_churn_equivalent``), renewals kept only if common.
    Also returns the averaged inputs, ``{path: value}``.
    """
    from .worksheet import monthly_churn_equivalent, point_value

    segments = config.segments
    shares = np.array([s.share for s in segments])
    raw = copy.deepcopy({k: v for k, v in config.source.items() if k not in ("segments", "mix")})
    averaged: dict[str, object] = {}

    def same(path):
        first = segments[0][path]
        return all(s[path] == first for s in segments[1:])

    for section, keys in SCHEMA.items():
        if section in ("simulation", "mix", "churn"):
            continue
        for key in keys:
            path = f"{section}.{key}"
            if owner_model(path, segments[0]["business.model"]):
                continue
            if same(path):
                value = segments[0][path]
                if value is not None and value != keys[key].default:
                    raw.setdefault(section, {})[key] = _raw_value(value)
                continue
            if keys[key].kind == "choice":  # discount.timing is one for the run
                continue
            value = float(shares @ [point_value(s[path]) for s in segments])
            if keys[key].kind == "int":
                value = round(value)
            raw.setdefault(section, {})[key] = averaged[path] = value
    # Keys of the MRR model the average does not use would be rejected.
    seats = raw.get("revenue", {}).get("mrr_model") == "seats"
    unused = PER_ACCOUNT_ONLY if seats else [f"seats.{k}" for k in SCHEMA["seats"]]
    for path in unused:
        section, key = path.split(".")
        raw.get(section, {}).pop(key, None)
    churn_paths = [f"churn.{k}" for k in SCHEMA["churn"]]
    if all(same(p) for p in churn_paths):
        raw["churn"] = {
            p.split(".")[1]: _raw_value(segments[0][p])
            for p in churn_paths
            if segments[0][p] is not None
        }
    else:
        rate = float(shares @ [monthly_churn_equivalent(s) for s in segments])
        renewal = segments[0]["churn.renewal_months"] if same("churn.renewal_months") else 1
        raw["churn"] = {"model": "constant", "monthly_rate": rate, "renewal_months": renewal}
        averaged["churn.monthly_rate"] = rate
    return load_config(without_fixed_correlations(raw)), averaged


def _raw_value(value):
    return value.to_mapping() if isinstance(value, Distribution) else value


def naive_average(
    config,
    *,
    blended=None,
    trials: int | None = None,
    customers: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
) -> AveragingGap:
    """How far averaging the segments' inputs is from simulating them separately.

    Simulates :func:`naive_average_config` with the same seed and compares it
    with the correct blend (segment ``"all"`` of ``blended``, the result of
    simulating ``config`` with the same trials, customers and seed; simulated
    here when not given). Means of LTV and LTV:CAC are estimated by their
    exact conditional expectations, as in :func:`ltvsim.summarize`.
    """
    from .simulate import _with_overrides, simulate

    config = _with_overrides(config, trials=trials, customers=customers, seed=seed)
    # not at the top: analysis -> dataset -> mix
    from .analysis import mean_standard_error
    from .dataset import has_costs_below_gross_profit

    if blended is None:
        blended = simulate(config, threads=threads)
    naive_config, averaged = naive_average_config(config)
    naive = simulate(naive_config, threads=threads)
    gap = AveragingGap(averaged)
    right = _measures(blended.sel(segment="all"))
    wrong = _measures(naive.sel(segment="all"))
    if not any(has_costs_below_gross_profit(ds, "all") for ds in (blended, naive)):
        del right["mean net LTV"]  # the same as gross-profit LTV
    for label, values in right.items():
        difference = wrong[label] - values
        se = mean_standard_error(difference, paired=config.antithetic_inputs)[1]
        se = se if difference.size > 1 else math.nan
        gap.rows.append(
            {
                "measure": label,
                "blend": float(values.mean()),
                "naive": float(wrong[label].mean()),
                "difference": float(difference.mean()),
                "difference_se": se,
            }
        )
    return gap
