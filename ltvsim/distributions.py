"""Uncertain inputs: distributions stated the way an analyst states them.

A config number may be replaced by an inline table such as
``{dist = "beta", mean = 0.02, sd = 0.005}``. The value is then drawn once
per trial by inverse transform of a reproducible uniform, so a trial's draw is
a monotone function of its uniform: common random numbers work across
scenarios that change a distribution's parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

# Parameters each family takes, in the analyst's terms.
FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (required, optional)
    "normal": (("mean", "sd"), ("low", "high")),
    "lognormal": (("mean", "sd"), ()),
    "beta": (("mean", "sd"), ()),
    "gamma": (("mean", "sd"), ()),
    "uniform": (("low", "high"), ()),
    "triangular": (("low", "mode", "high"), ()),
    "pert": (("low", "mode", "high"), ()),
}


class DistributionError(ValueError):
    """Impossible distribution parameters; the message says which and why."""


@dataclass(frozen=True)
class Distribution:
    """A univariate distribution with an analyst's parameterisation.

    ``normal``: mean, sd of the untruncated normal, optional ``low``/``high``
    truncation bounds. ``lognormal``, ``gamma``, ``beta``: mean and sd of the
    variable itself (not of its logarithm). ``uniform``: low, high.
    ``triangular`` and ``pert`` (Beta-PERT, lambda = 4): low, mode, high.
    """

    dist: str
    params: tuple[tuple[str, float], ...]

    @classmethod
    def from_mapping(cls, spec: dict) -> Distribution:
        spec = dict(spec)
        name = spec.pop("dist", None)
        if name is None:
            raise DistributionError(
                f"a distribution needs dist = one of {', '.join(FAMILIES)}; "
                f"got a table without dist: {spec!r}"
            )
        if not isinstance(name, str) or name not in FAMILIES:
            raise DistributionError(
                f"unknown distribution {name!r}; choose one of {', '.join(FAMILIES)}"
            )
        required, optional = FAMILIES[name]
        missing = [p for p in required if p not in spec]
        if missing:
            raise DistributionError(
                f"{name} needs {', '.join(required)}; missing {', '.join(missing)}"
            )
        unknown = [p for p in spec if p not in required + optional]
        if unknown:
            allowed = ", ".join(required + optional)
            raise DistributionError(f"{name} takes {allowed}; unknown {', '.join(unknown)}")
        values = {}
        for key, value in spec.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DistributionError(f"{name} parameter {key} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise DistributionError(f"{name} parameter {key} must be finite, got {value!r}")
            values[key] = float(value)
        made = cls(name, tuple(sorted(values.items())))
        made._frozen()  # validates the parameters
        return made

    def p(self, key: str, default: float | None = None) -> float | None:
        return dict(self.params).get(key, default)

    def to_mapping(self) -> dict:
        return {"dist": self.dist, **dict(self.params)}

    def _frozen(self):
        """The scipy frozen distribution; raises DistributionError if impossible."""
        p = dict(self.params)
        name = self.dist
        if name in ("normal", "lognormal", "beta", "gamma"):
            mean, sd = p["mean"], p["sd"]
            if sd <= 0:
                raise DistributionError(f"{name} needs sd > 0, got sd = {sd:g}")
        if name == "normal":
            low, high = p.get("low", -math.inf), p.get("high", math.inf)
            if not low < high:
                raise DistributionError(
                    f"normal truncation needs low < high, got {low:g}, {high:g}"
                )
            a, b = (low - mean) / sd, (high - mean) / sd
            if math.isinf(a) and math.isinf(b):
                return stats.norm(mean, sd)
            return stats.truncnorm(a, b, loc=mean, scale=sd)
        if name == "lognormal":
            if mean <= 0:
                raise DistributionError(f"lognormal needs mean > 0, got mean = {mean:g}")
            s2 = math.log1p((sd / mean) ** 2)
            return stats.lognorm(math.sqrt(s2), scale=mean * math.exp(-s2 / 2))
        if name == "gamma":
            if mean <= 0:
                raise DistributionError(f"gamma needs mean > 0, got mean = {mean:g}")
            return stats.gamma((mean / sd) ** 2, scale=sd**2 / mean)
        if name == "beta":
            if not 0 < mean < 1:
                raise DistributionError(f"beta needs 0 < mean < 1, got mean = {mean:g}")
            limit = math.sqrt(mean * (1 - mean))
            if sd >= limit:
                raise DistributionError(
                    f"beta with mean {mean:g} needs sd < sqrt(mean*(1-mean)) = {limit:.4g},"
                    f" got sd = {sd:g}"
                )
            common = mean * (1 - mean) / sd**2 - 1
            return stats.beta(mean * common, (1 - mean) * common)
        if name == "uniform":
            low, high = p["low"], p["high"]
            if not low < high:
                raise DistributionError(f"uniform needs low < high, got {low:g}, {high:g}")
            return stats.uniform(low, high - low)
        low, mode, high = p["low"], p["mode"], p["high"]
        if not (low <= mode <= high and low < high):
            raise DistributionError(
                f"{name} needs low <= mode <= high and low < high, got {low:g}, {mode:g}, {high:g}"
            )
        if name == "triangular":
            return stats.triang((mode - low) / (high - low), loc=low, scale=high - low)
        # Beta-PERT (Malcolm et al. 1959; Vose, "Risk Analysis", 2008): lambda = 4.
        alpha = 1 + 4 * (mode - low) / (high - low)
        beta = 1 + 4 * (high - mode) / (high - low)
        return stats.beta(alpha, beta, loc=low, scale=high - low)

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF at uniforms ``u`` in (0, 1)."""
        return np.asarray(self._frozen().ppf(u), dtype=np.float64)

    @property
    def mean(self) -> float:
        return float(self._frozen().mean())

    @property
    def support(self) -> tuple[float, float]:
        low, high = self._frozen().support()
        return float(low), float(high)
