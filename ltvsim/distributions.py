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
from scipy.special import betaincinv, gammaincinv, ndtr, ndtri

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
        made._check()
        return made

    def p(self, key: str, default: float | None = None) -> float | None:
        return dict(self.params).get(key, default)

    def to_mapping(self) -> dict:
        return {"dist": self.dist, **dict(self.params)}

    def _check(self) -> None:
        """Raise DistributionError if the parameters are impossible."""
        p = dict(self.params)
        name = self.dist
        if name in ("normal", "lognormal", "beta", "gamma"):
            mean, sd = p["mean"], p["sd"]
            if sd <= 0:
                raise DistributionError(f"{name} needs sd > 0, got sd = {sd:g}")
            if name in ("lognormal", "gamma") and mean <= 0:
                raise DistributionError(f"{name} needs mean > 0, got mean = {mean:g}")
        if name == "normal":
            low, high = p.get("low", -math.inf), p.get("high", math.inf)
            if not low < high:
                raise DistributionError(
                    f"normal truncation needs low < high, got {low:g}, {high:g}"
                )
            if self._truncated_mass() <= 0:
                raise DistributionError(
                    f"normal with mean {mean:g} and sd {sd:g} has no mass in [{low:g}, {high:g}]"
                )
        elif name == "beta":
            if not 0 < mean < 1:
                raise DistributionError(f"beta needs 0 < mean < 1, got mean = {mean:g}")
            limit = math.sqrt(mean * (1 - mean))
            if sd >= limit:
                raise DistributionError(
                    f"beta with mean {mean:g} needs sd < sqrt(mean*(1-mean)) = {limit:.4g},"
                    f" got sd = {sd:g}"
                )
        elif name == "uniform":
            if not p["low"] < p["high"]:
                raise DistributionError(
                    f"uniform needs low < high, got {p['low']:g}, {p['high']:g}"
                )
        elif name in ("triangular", "pert"):
            low, mode, high = p["low"], p["mode"], p["high"]
            if not (low <= mode <= high and low < high):
                raise DistributionError(
                    f"{name} needs low <= mode <= high and low < high, "
                    f"got {low:g}, {mode:g}, {high:g}"
                )

    # Closed forms with scipy.special only: importing scipy.stats costs most of
    # a second of start-up, and every family here has a short inverse CDF.

    def _truncated_mass(self) -> float:
        a, b = self._standard_bounds()
        return float(ndtr(b) - ndtr(a))

    def _standard_bounds(self) -> tuple[float, float]:
        p = dict(self.params)
        return (
            (p.get("low", -math.inf) - p["mean"]) / p["sd"],
            (p.get("high", math.inf) - p["mean"]) / p["sd"],
        )

    def _beta_shape(self) -> tuple[float, float, float, float]:
        """(a, b, loc, scale) of the beta behind "beta" and "pert"."""
        p = dict(self.params)
        if self.dist == "beta":
            mean, sd = p["mean"], p["sd"]
            common = mean * (1 - mean) / sd**2 - 1
            return mean * common, (1 - mean) * common, 0.0, 1.0
        # Beta-PERT (Malcolm et al. 1959; Vose, "Risk Analysis", 2008): lambda = 4.
        low, mode, high = p["low"], p["mode"], p["high"]
        width = high - low
        return 1 + 4 * (mode - low) / width, 1 + 4 * (high - mode) / width, low, width

    def ppf(self, u) -> np.ndarray:
        """Inverse CDF at uniforms ``u`` in (0, 1)."""
        u = np.asarray(u, dtype=np.float64)
        p = dict(self.params)
        name = self.dist
        if name == "normal":
            a, b = self._standard_bounds()
            if a > 0:  # mirror, so the arithmetic happens where the CDF is small
                z = -ndtri(ndtr(-b) + (1 - u) * (ndtr(-a) - ndtr(-b)))
            else:
                z = ndtri(ndtr(a) + u * (ndtr(b) - ndtr(a)))
            return np.clip(p["mean"] + p["sd"] * z, *self.support)
        if name == "lognormal":
            s2 = math.log1p((p["sd"] / p["mean"]) ** 2)
            return np.exp(math.log(p["mean"]) - s2 / 2 + math.sqrt(s2) * ndtri(u))
        if name == "gamma":
            return p["sd"] ** 2 / p["mean"] * gammaincinv((p["mean"] / p["sd"]) ** 2, u)
        if name in ("beta", "pert"):
            a, b, loc, scale = self._beta_shape()
            return loc + scale * betaincinv(a, b, u)
        if name == "uniform":
            return p["low"] + u * (p["high"] - p["low"])
        low, mode, high = p["low"], p["mode"], p["high"]
        split = (mode - low) / (high - low)
        with np.errstate(invalid="ignore"):
            left = low + np.sqrt(u * (high - low) * (mode - low))
            right = high - np.sqrt((1 - u) * (high - low) * (high - mode))
        return np.where(u < split, left, right)

    @property
    def mean(self) -> float:
        p = dict(self.params)
        if self.dist == "normal":
            a, b = self._standard_bounds()
            shift = (_pdf(a) - _pdf(b)) / self._truncated_mass()
            return p["mean"] + p["sd"] * shift
        if self.dist in ("lognormal", "gamma", "beta"):
            return p["mean"]
        if self.dist == "uniform":
            return (p["low"] + p["high"]) / 2
        if self.dist == "triangular":
            return (p["low"] + p["mode"] + p["high"]) / 3
        return (p["low"] + 4 * p["mode"] + p["high"]) / 6

    @property
    def sd(self) -> float:
        p = dict(self.params)
        if self.dist == "normal":
            a, b = self._standard_bounds()
            mass = self._truncated_mass()
            shift = (_pdf(a) - _pdf(b)) / mass
            tails = (_xpdf(a) - _xpdf(b)) / mass
            return p["sd"] * math.sqrt(1 + tails - shift**2)
        if self.dist in ("lognormal", "gamma", "beta"):
            return p["sd"]
        if self.dist == "uniform":
            return (p["high"] - p["low"]) / math.sqrt(12)
        low, mode, high = p["low"], p["mode"], p["high"]
        if self.dist == "triangular":
            return math.sqrt(
                (low**2 + mode**2 + high**2 - low * mode - low * high - mode * high) / 18
            )
        mean = self.mean
        return math.sqrt((mean - low) * (high - mean) / 7)  # Beta-PERT with lambda = 4

    @property
    def support(self) -> tuple[float, float]:
        p = dict(self.params)
        if self.dist == "normal":
            return p.get("low", -math.inf), p.get("high", math.inf)
        if self.dist in ("lognormal", "gamma"):
            return 0.0, math.inf
        if self.dist == "beta":
            return 0.0, 1.0
        return p["low"], p["high"]


def _pdf(z: float) -> float:
    return 0.0 if math.isinf(z) else math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _xpdf(z: float) -> float:
    return 0.0 if math.isinf(z) else z * _pdf(z)
