"""The config: one schema that parses, validates, documents and converts units.

Every key the simulator understands is declared once in ``SCHEMA`` with its
unit, default, valid range and meaning; the README's key reference is printed
from it (``python -m ltvsim.config``). Rates carry their unit in the key name
and are converted by compounding, never by division.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .distributions import Distribution, DistributionError

INF = math.inf


class ConfigError(ValueError):
    """A user mistake in a config: names the key, the bad value and what is valid."""

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


@dataclass(frozen=True)
class Key:
    """One config key: type, default, valid range, unit and meaning."""

    kind: str  # "int" | "float" | "bool" | "str" | "choice" | "floats"
    default: object
    unit: str
    doc: str
    low: float = -INF
    high: float = INF
    low_open: bool = False
    high_open: bool = False
    uncertain: bool = False  # may be given as a distribution, drawn once per trial
    choices: tuple[str, ...] = ()

    def range_text(self) -> str:
        if self.kind == "choice":
            return " / ".join(f'"{c}"' for c in self.choices)
        if self.kind == "str":
            return "text"
        if self.kind == "bool":
            return "true / false"
        lo = "(" if self.low_open or self.low == -INF else "["
        hi = ")" if self.high_open or self.high == INF else "]"
        return f"{lo}{_bound(self.low)}, {_bound(self.high)}{hi}"

    def contains(self, x: float) -> bool:
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below


def _bound(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{int(x)}" if float(x).is_integer() else f"{x:g}"


def _rate(doc, unit, default=None, uncertain=True):
    return Key("float", default, unit, doc, 0.0, 1.0, uncertain=uncertain)


SCHEMA: dict[str, dict[str, Key]] = {
    "simulation": {
        "trials": Key(
            "int", 2000, "trials", "independent parameter draws, each a simulated cohort", 1, 10**8
        ),
        "customers": Key(
            "int", 1000, "customers", "customers simulated per trial and segment", 1, 10**9
        ),
        "horizon_months": Key("int", 120, "months", "months simulated after acquisition", 1, 1200),
        "seed": Key("int", 0, "", "seed of every random stream", 0, 2**63 - 1),
        "currency": Key("str", "USD", "", "currency label of all money"),
        "antithetic_inputs": Key(
            "bool",
            False,
            "",
            "draw uncertain inputs in antithetic pairs (trial 2k+1 uses 1-u of trial 2k): "
            "less MC error in mean LTV per trial",
        ),
        "quantiles": Key(
            "floats",
            [0.05, 0.25, 0.5, 0.75, 0.95],
            "1",
            "quantiles of the confidence bands",
            0.0,
            1.0,
            True,
            True,
        ),
    },
    "acquisition": {
        "cac": Key(
            "float",
            12000.0,
            "currency per customer",
            "customer acquisition cost",
            0.0,
            low_open=True,
            uncertain=True,
        ),
    },
    "revenue": {
        "mrr_model": Key(
            "choice",
            "per_account",
            "",
            "per_account: MRR from arpa_monthly and plan changes; seats: seat count x price "
            "per seat, the count a random process ([seats])",
            choices=("per_account", "seats"),
        ),
        "arpa_monthly": Key(
            "float",
            1000.0,
            "currency per month",
            "starting MRR per customer (mean across customers)",
            0.0,
            uncertain=True,
        ),
        "arpa_cv": Key(
            "float",
            0.0,
            "1",
            "coefficient of variation of starting MRR across customers (lognormal)",
            0.0,
            10.0,
            uncertain=True,
        ),
        "gross_margin": Key("float", 0.8, "1", "gross margin on revenue", 0.0, 1.0, uncertain=True),
        "billing_months": Key(
            "int",
            1,
            "months",
            "months of revenue paid at once, in advance (12: annual billing); "
            "must divide churn.renewal_months",
            1,
            120,
        ),
        "cost_to_serve_monthly": Key(
            "float",
            0.0,
            "currency per month",
            "cost per active customer beyond COGS",
            0.0,
            uncertain=True,
        ),
    },
    "seats": {
        "initial": Key(
            "float",
            10.0,
            "seats",
            "mean seats of a new account (1 + geometric across accounts)",
            1.0,
            1e6,
            uncertain=True,
        ),
        "price_monthly": Key(
            "float",
            100.0,
            "currency per seat per month",
            "list price of a seat (grows with expansion.price_increase)",
            0.0,
            uncertain=True,
        ),
        "added_per_seat_monthly": Key(
            "float",
            0.0,
            "seats per seat per month",
            "rate at which each seat brings a new one",
            0.0,
            10.0,
            uncertain=True,
        ),
        "removed_per_seat_monthly": Key(
            "float",
            0.0,
            "1/month",
            "rate at which each seat but the account's first is removed",
            0.0,
            10.0,
            uncertain=True,
        ),
    },
    "costs": {
        "onboarding": Key(
            "float",
            0.0,
            "currency per customer",
            "one-off cost of onboarding a new customer, at acquisition (time 0, not "
            "discounted, like CAC); in net LTV and payback, not in gross-profit LTV",
            0.0,
            uncertain=True,
        ),
        "retention_monthly": Key(
            "float",
            0.0,
            "currency per month",
            "retention spend (customer success, marketing) per active customer; "
            "in net LTV and payback, not in gross-profit LTV",
            0.0,
            uncertain=True,
        ),
        "payment_fee": Key(
            "float",
            0.0,
            "1",
            "payment-processing fee as a fraction of revenue (e.g. 0.029); a cost of "
            "revenue, in gross-profit LTV (gross_margin is taken to exclude it)",
            0.0,
            1.0,
            high_open=True,
            uncertain=True,
        ),
        "payment_fee_fixed": Key(
            "float",
            0.0,
            "currency per payment",
            "fixed payment-processing fee per payment (one every revenue.billing_months); in "
            "gross-profit LTV",
            0.0,
            uncertain=True,
        ),
    },
    "churn": {
        "model": Key("choice", "constant", "", "churn model", choices=("constant", "sbg", "curve")),
        "monthly_rate": _rate(
            "constant model: churn probability per month (0.02 when neither rate is given)",
            "1/month",
        ),
        "annual_rate": _rate(
            "constant model: churn probability per year "
            "(converted by compounding: 1-(1-a)^(1/12) per month)",
            "1/year",
        ),
        "alpha": Key(
            "float",
            None,
            "1",
            "sbg model: Beta(alpha, beta) of per-renewal churn",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "beta": Key(
            "float",
            None,
            "1",
            "sbg model: Beta(alpha, beta) of per-renewal churn",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "monthly_rates": Key(
            "floats",
            None,
            "1/month",
            "curve model: churn probability by tenure month, last value repeats",
            0.0,
            1.0,
        ),
        "renewal_months": Key(
            "int", 1, "months", "months between renewals; churn happens only at renewals", 1, 120
        ),
        "first_renewal_churn": _rate(
            "extra share of customers leaving at the first renewal (onboarding failures), "
            "on top of the churn model",
            "1 per first renewal",
            0.0,
        ),
    },
    "expansion": {
        "annual_growth": Key(
            "float",
            0.0,
            "1/year",
            "expected MRR growth of a surviving customer per year "
            "(arithmetic mean: E[MRR(12)] = (1+g) MRR(0))",
            -1.0,
            low_open=True,
            uncertain=True,
        ),
        "annual_volatility": Key(
            "float", 0.0, "1/sqrt(year)", "log-normal volatility of MRR", 0.0, 5.0, uncertain=True
        ),
        "upsell_monthly_probability": _rate("chance per month of an upsell event", "1/month", 0.0),
        "upsell_size": Key(
            "float", 0.0, "1", "MRR increase of an upsell, as a fraction", 0.0, 10.0, uncertain=True
        ),
        "downgrade_monthly_probability": _rate(
            "chance per month of a downgrade event", "1/month", 0.0
        ),
        "downgrade_size": Key(
            "float",
            0.0,
            "1",
            "MRR decrease of a downgrade, as a fraction",
            0.0,
            1.0,
            high_open=True,
            uncertain=True,
        ),
        "price_increase": Key(
            "float",
            0.0,
            "1",
            "scheduled list-price increase, as a fraction",
            0.0,
            10.0,
            uncertain=True,
        ),
        "price_increase_every_months": Key(
            "int", 12, "months", "months between scheduled price increases", 1, 1200
        ),
    },
    "discount": {
        "annual_rate": Key(
            "float",
            0.10,
            "1/year",
            "discount rate (converted by compounding: (1+r)^(1/12)-1 per month)",
            0.0,
            1.0,
            uncertain=True,
        ),
        "timing": Key(
            "choice",
            "start",
            "",
            "when in the month cash arrives",
            choices=("start", "middle", "end", "continuous"),
        ),
    },
    "mix": {
        "concentration": Key(
            "float",
            None,
            "1",
            "segment shares uncertain: Dirichlet(concentration × share) around the "
            "configured shares, drawn per trial (share sd sqrt(s(1-s)/(concentration+1))); "
            "unset: fixed shares",
            1.0,
        ),
    },
    "business": {
        "model": Key(
            "choice",
            "subscription",
            "",
            "how customers pay: recurring MRR with churn (subscription); orders at random "
            "while alive, dropping out unobserved (repeat_purchase: e-commerce, retail); a "
            "first deal and follow-on deals (deals: one-time sales, B2B)",
            choices=("subscription", "repeat_purchase", "deals"),
        ),
    },
    # Repeat purchase: a buy-till-you-die process (Fader, Hardie & Lee, "Counting
    # your customers the easy way", Marketing Science 24(2), 2005; Schmittlein,
    # Morrison & Colombo, Management Science 33(1), 1987). Defaults are the
    # published CDNOW estimates, converted from weeks to months (1 month =
    # 365.25 / 7 / 12 weeks; alpha and beta are times, so they divide by it).
    "purchase": {
        "process": Key(
            "choice",
            "bgnbd",
            "",
            "buy-till-you-die process: BG/NBD (drops out after a purchase) or Pareto/NBD "
            "(drops out at an exponential time)",
            choices=("bgnbd", "pareto_nbd"),
        ),
        "r": Key(
            "float",
            0.243,
            "1",
            "purchase rate across customers ~ Gamma(shape r, rate alpha_months): "
            "mean r / alpha_months purchases per month (pareto_nbd default: 0.553)",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "alpha_months": Key(
            "float",
            1.0151,
            "months",
            "rate parameter (a time) of the gamma distribution of purchase rates "
            "(pareto_nbd default: 2.4327)",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "a": Key(
            "float",
            0.793,
            "1",
            "bgnbd: dropout probability after each repeat purchase ~ Beta(a, b)",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "b": Key(
            "float",
            2.426,
            "1",
            "bgnbd: dropout probability after each repeat purchase ~ Beta(a, b)",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "s": Key(
            "float",
            0.606,
            "1",
            "pareto_nbd: dropout rate across customers ~ Gamma(shape s, rate beta_months)",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "beta_months": Key(
            "float",
            2.6836,
            "months",
            "pareto_nbd: rate parameter (a time) of the gamma distribution of dropout rates",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "cost_per_order": Key(
            "float",
            0.0,
            "currency per order",
            "cost of each order beyond COGS (picking, shipping, payment)",
            0.0,
            uncertain=True,
        ),
        "marketing_monthly": Key(
            "float",
            0.0,
            "currency per month",
            "retention marketing per customer for every month it is alive (not dropped out)",
            0.0,
            uncertain=True,
        ),
    },
    # Spend per order: the gamma-gamma model (Fader, Hardie & Lee, "RFM and CLV:
    # using iso-value curves for customer base analysis", JMR 42(4), 2005);
    # defaults are its CDNOW estimates (US dollars).
    "spend": {
        "p": Key(
            "float",
            6.25,
            "1",
            "gamma-gamma: order value ~ Gamma(shape p, rate nu); "
            "p sets the spread of one customer's orders (cv 1/sqrt(p))",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "q": Key(
            "float",
            3.74,
            "1",
            "gamma-gamma: nu ~ Gamma(shape q, rate gamma) across customers; "
            "q sets how much customers' mean order values differ",
            1.0,
            low_open=True,
            uncertain=True,
        ),
        "gamma": Key(
            "float",
            None,
            "currency",
            "gamma-gamma: rate of nu (15.44 when mean_order_value is not given); "
            "mean order value = p gamma / (q - 1)",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "mean_order_value": Key(
            "float",
            None,
            "currency per order",
            "instead of gamma: the mean order value, gamma = mean_order_value (q - 1) / p",
            0.0,
            low_open=True,
            uncertain=True,
        ),
    },
    "deals": {
        "first_deal_value": Key(
            "float",
            40000.0,
            "currency per deal",
            "value of the first deal (mean, when value_cv > 0)",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "follow_on_value": Key(
            "float",
            None,
            "currency per deal",
            "mean value of a follow-on deal (the first deal's value when not given)",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "value_cv": Key(
            "float",
            0.0,
            "1",
            "coefficient of variation of each deal's value around its mean (gamma)",
            0.0,
            10.0,
            uncertain=True,
        ),
        "per_year": Key(
            "float",
            6.0,
            "deals per year",
            "deal opportunities per year, evenly spaced from the first deal",
            0.0,
            365.0,
            low_open=True,
            uncertain=True,
        ),
        "follow_on_probability": _rate(
            "chance that a follow-on opportunity becomes a deal", "1", 1.0
        ),
        "retention_years": Key(
            "float",
            5.0,
            "years",
            "how long an account keeps buying (its mean, when retention = exponential)",
            0.0,
            low_open=True,
            uncertain=True,
        ),
        "retention": Key(
            "choice",
            "fixed",
            "",
            "fixed: every account buys for exactly retention_years; exponential: accounts "
            "leave at a constant hazard, mean retention_years",
            choices=("fixed", "exponential"),
        ),
    },
}
# Sections that hold one setting for the whole run: a segment cannot override them.
RUN_SECTIONS = ("simulation", "mix")

CHURN_MODEL_KEYS = {
    "constant": {"monthly_rate", "annual_rate"},
    "sbg": {"alpha", "beta"},
    "curve": {"monthly_rates"},
}
# Keys (whole sections or section.key) that only one business model uses; the
# rest (acquisition, gross margin, discount) are shared by every model.
BUSINESS_MODEL_KEYS = {
    "subscription": {
        "churn",
        "expansion",
        "seats",
        "costs",
        "revenue.mrr_model",
        "revenue.arpa_monthly",
        "revenue.arpa_cv",
        "revenue.billing_months",
        "revenue.cost_to_serve_monthly",
    },
    "repeat_purchase": {"purchase", "spend"},
    "deals": {"deals"},
}
PURCHASE_PROCESS_KEYS = {"bgnbd": {"a", "b"}, "pareto_nbd": {"s", "beta_months"}}
SEGMENT_KEYS = {"name", "share", "correlations"}
CORRELATION_KEYS = ("keys", "rho")
RESERVED_SEGMENT = "all"


@dataclass(frozen=True)
class Segment:
    """A fully resolved segment: every key has a value (number or Distribution).

    ``values`` maps ``"section.key"`` to the value. ``streams`` maps each
    uncertain key to the name of its random stream: an input inherited from the
    top level shares its stream (one draw per trial for every segment), an
    input a segment overrides gets a stream of its own.
    """

    name: str
    share: float
    values: Mapping[str, object]
    streams: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, path: str):
        return self.values[path]

    def is_uncertain(self, path: str) -> bool:
        return isinstance(self.values[path], Distribution)


@dataclass(frozen=True)
class InputGroup:
    """Uncertain inputs drawn jointly through a Gaussian copula.

    ``streams`` are the random streams of the inputs (see ``Segment.streams``),
    in schema order; ``cholesky`` is the lower Cholesky factor of their
    normal-score correlation matrix, row by row. A connected set of
    ``[[correlations]]`` pairs forms one group; pairs not given are 0.
    """

    streams: tuple[str, ...]
    cholesky: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Config:
    """A validated config. Build with :func:`load_config`."""

    source: Mapping  # the user's mapping, as given
    simulation: Mapping[str, object]
    segments: tuple[Segment, ...]
    named_segments: bool  # False when the config has no [[segments]]
    mix_concentration: float | None = None  # Dirichlet concentration of uncertain shares
    input_groups: tuple[InputGroup, ...] = ()  # correlated uncertain inputs

    def input_group(self, stream: str) -> InputGroup | None:
        """The correlated group whose streams include ``stream``, if any."""
        for group in self.input_groups:
            if stream in group.streams:
                return group
        return None

    @property
    def trials(self) -> int:
        return self.simulation["trials"]

    @property
    def customers(self) -> int:
        return self.simulation["customers"]

    @property
    def horizon_months(self) -> int:
        return self.simulation["horizon_months"]

    @property
    def seed(self) -> int:
        return self.simulation["seed"]

    @property
    def antithetic_inputs(self) -> bool:
        return self.simulation["antithetic_inputs"]

    @property
    def currency(self) -> str:
        return self.simulation["currency"]

    @property
    def quantiles(self) -> tuple[float, ...]:
        return tuple(self.simulation["quantiles"])

    def uncertain_inputs(self) -> list[str]:
        """Config paths that are uncertain in at least one segment, in schema order."""
        return [path for path in all_paths() if any(s.is_uncertain(path) for s in self.segments)]

    def to_json(self) -> str:
        return json.dumps(self.source, sort_keys=True, default=str)

    def with_overrides(self, overrides: Mapping[str, object]) -> Config:
        """A new config with ``{"section.key": value}`` overrides applied and validated.

        ``"segments.<name>.section.key"`` overrides one segment. An override
        that makes a correlated input a plain number drops its correlations
        (a fixed value is correlated with nothing).
        """
        raw = copy.deepcopy(dict(self.source))
        for path, value in overrides.items():
            parts = path.split(".")
            if parts[0] == "segments":
                if len(parts) != 4:
                    raise ConfigError("segment overrides look like segments.NAME.section.key", path)
                match = [s for s in raw.get("segments", []) if s.get("name") == parts[1]]
                if not match:
                    raise ConfigError(f"no segment named {parts[1]!r}", path)
                section = match[0].setdefault(parts[2], {})
                if not isinstance(section, dict):
                    raise ConfigError("segment overrides look like segments.NAME.section.key", path)
                section[parts[3]] = value
            elif len(parts) == 2:
                raw.setdefault(parts[0], {})[parts[1]] = value
            else:
                raise ConfigError("overrides look like section.key", path)
        return load_config(without_fixed_correlations(raw))


def without_fixed_correlations(raw: dict) -> dict:
    """``raw`` without the correlations of inputs no longer set to a distribution.

    For configs derived from a valid one (overrides, point inputs, averaged
    segments): an input made a plain number is correlated with nothing.
    Changes ``raw`` in place and returns it.
    """
    for table in [raw, *raw.get("segments", [])]:
        entries = table.get("correlations") if isinstance(table, Mapping) else None
        if not isinstance(entries, list):
            continue

        def still_uncertain(path, table=table):
            section, _, key = str(path).partition(".")
            body = table.get(section)
            return isinstance(body, Mapping) and isinstance(body.get(key), Mapping)

        table["correlations"] = [
            entry
            for entry in entries
            if not isinstance(entry, Mapping)
            or not isinstance(entry.get("keys"), list)
            or all(still_uncertain(k) for k in entry["keys"])
        ]
    return raw


def all_paths() -> list[str]:
    return [
        f"{section}.{key}"
        for section, keys in SCHEMA.items()
        if section not in RUN_SECTIONS
        for key in keys
    ]


def key_spec(path: str) -> Key:
    section, key = path.split(".")
    return SCHEMA[section][key]


def load_config(source: str | Path | Mapping) -> Config:
    """Read and validate a config from a TOML file path or a plain mapping."""
    if isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))
    else:
        raw = read_toml(Path(source))
    return _validate(raw)


def read_toml(path: Path) -> dict:
    """A TOML file as a dict; a missing, unreadable or malformed file is a ConfigError."""
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"config path is a directory, not a TOML file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a TOML file (not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line L, column C)".
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def _did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(options)}"


def _check_value(path: str, spec: Key, value):
    """Validate one value against its key; return the normalised value."""
    if spec.kind == "choice":
        if value not in spec.choices:
            raise ConfigError(f"got {value!r}; choose one of {spec.range_text()}", path)
        return value
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, got {value!r}", path)
        return value
    if spec.kind == "str":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"must be non-empty text, got {value!r}", path)
        return value
    if spec.kind == "floats":
        if not isinstance(value, list) or not value:
            raise ConfigError(f"must be a non-empty list of numbers, got {value!r}", path)
        return [_check_number(f"{path}[{i}]", spec, v, False) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if not spec.uncertain:
            raise ConfigError("must be a plain number; this key cannot be uncertain", path)
        try:
            dist = Distribution.from_mapping(value)
        except DistributionError as exc:
            raise ConfigError(str(exc), path) from None
        low, high = dist.support
        if not (spec.contains(low) or low == spec.low) or not (
            spec.contains(high) or high == spec.high
        ):
            raise ConfigError(
                f"a {dist.dist} distribution here can draw values in [{low:g}, {high:g}], "
                f"outside the valid range {spec.range_text()}; choose a distribution whose "
                "support fits (e.g. beta for a rate, lognormal or gamma for a positive "
                "amount) or truncate a normal with low/high",
                path,
            )
        return dist
    return _check_number(path, spec, value, spec.kind == "int")


def _check_number(path: str, spec: Key, value, integer: bool):
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"must be a number, got {value!r}", path)
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError("must be a number, got NaN", path)
    if not _finite(value):
        raise ConfigError(
            f"must be a finite number, got {value!r}; valid range is {spec.range_text()}", path
        )
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise ConfigError(f"must be a whole number, got {value!r}", path)
    if not spec.contains(value):
        raise ConfigError(f"got {value!r}; valid range is {spec.range_text()}", path)
    if spec.low_open and spec.low == 0 and value < sys.float_info.min:
        # subnormal floats lose precision and break the closed forms (found by fuzzing)
        raise ConfigError(
            f"got {value!r}, too close to 0 for floating point; must be at least "
            f"{sys.float_info.min:g}",
            path,
        )
    return int(value) if integer else float(value)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _check_sections(raw: Mapping, where: str, allowed: dict[str, dict[str, Key]]) -> dict:
    """Check section and key names; return {section: {key: value}} validated."""
    out: dict[str, dict] = {}
    for section, body in raw.items():
        path = f"{where}{section}"
        if section not in allowed:
            raise ConfigError(f"unknown section{_did_you_mean(section, allowed)}", path)
        if not isinstance(body, Mapping):
            raise ConfigError(f"must be a table of keys, got {body!r}", path)
        out[section] = {}
        for key, value in body.items():
            if key not in allowed[section]:
                raise ConfigError(
                    f"unknown key{_did_you_mean(key, allowed[section])}", f"{path}.{key}"
                )
            out[section][key] = _check_value(f"{path}.{key}", allowed[section][key], value)
    return out


def _validate(raw: dict) -> Config:
    raw_segments = raw.get("segments", [])
    top = {k: v for k, v in raw.items() if k not in ("segments", "correlations")}
    checked = _check_sections(top, "", SCHEMA)

    simulation = {k: spec.default for k, spec in SCHEMA["simulation"].items()}
    simulation.update(checked.pop("simulation", {}))
    simulation["quantiles"] = sorted(set(simulation["quantiles"]))

    if not isinstance(raw_segments, list):
        raise ConfigError("must be an array of tables: [[segments]]", "segments")
    mix = {k: spec.default for k, spec in SCHEMA["mix"].items()}
    mix.update(checked.pop("mix", {}))
    if mix["concentration"] is not None and not raw_segments:
        raise ConfigError(
            "an uncertain segment mix needs [[segments]] (the config has none)",
            "mix.concentration",
        )
    model_sections = {k: v for k, v in SCHEMA.items() if k not in RUN_SECTIONS}
    segments = []
    groups = _correlation_groups(raw.get("correlations", []), "", checked)
    if not raw_segments:
        segments.append(_resolve_segment(RESERVED_SEGMENT, 1.0, checked, {}))
    names = set()
    for i, seg in enumerate(raw_segments):
        where = f"segments[{i}]"
        if not isinstance(seg, Mapping):
            raise ConfigError("must be a table", where)
        name = seg.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("every segment needs a name (text)", f"{where}.name")
        where = f"segments.{name}"
        if name == RESERVED_SEGMENT or name in names:
            reason = "is reserved for the blend" if name == RESERVED_SEGMENT else "is used twice"
            raise ConfigError(f"segment name {name!r} {reason}", f"{where}.name")
        names.add(name)
        share = seg.get("share")
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise ConfigError(f"share must be a number in (0, 1], got {share!r}", f"{where}.share")
        overrides = {k: v for k, v in seg.items() if k not in SEGMENT_KEYS}
        for section in overrides:
            if section not in model_sections:
                hint = _did_you_mean(section, list(model_sections) + sorted(SEGMENT_KEYS))
                raise ConfigError(f"unknown key{hint}", f"{where}.{section}")
        seg_checked = _check_sections(overrides, f"{where}.", model_sections)
        segments.append(_resolve_segment(name, float(share), checked, seg_checked))
        groups += _correlation_groups(seg.get("correlations", []), f"{where}.", seg_checked)
    if raw_segments:
        total = sum(s.share for s in segments)
        if abs(total - 1.0) > 1e-9:
            shares = ", ".join(f"{s.name}={s.share:g}" for s in segments)
            raise ConfigError(f"segment shares must sum to 1, got {total:g} ({shares})", "segments")
    for segment in segments:
        _check_magnitude(segment, simulation)
    return Config(
        raw, simulation, tuple(segments), bool(raw_segments), mix["concentration"], tuple(groups)
    )


def _correlation_groups(entries, where: str, given: dict) -> list[InputGroup]:
    """Validate ``[[correlations]]`` entries of one level; return their copula groups.

    ``where`` is "" for the top level or "segments.NAME." for a segment;
    ``given`` that level's validated sections. Each entry correlates two
    inputs set as distributions at this level: ``rho`` is the correlation of
    their normal scores ``ndtri(F(x))`` (a Gaussian copula; for two lognormals
    exactly the correlation of their logarithms). Pairs linked through shared
    inputs form one group, whose correlation matrix must be positive definite.
    """
    name = f"{where}correlations"
    if not isinstance(entries, list):
        raise ConfigError(
            'must be an array of tables: [[correlations]] keys = ["a.b", "c.d"], rho = 0.5', name
        )
    prefix = where.removeprefix("segments.").removesuffix(".")
    stream = (lambda path: f"{prefix}/{path}") if where else (lambda path: path)
    order = {path: i for i, path in enumerate(all_paths())}
    rho: dict[tuple[str, str], float] = {}
    for i, entry in enumerate(entries):
        here = f"{name}[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError('must be a table: {keys = ["a.b", "c.d"], rho = 0.5}', here)
        for key in entry:
            if key not in CORRELATION_KEYS:
                raise ConfigError(
                    f"unknown key{_did_you_mean(key, CORRELATION_KEYS)}", f"{here}.{key}"
                )
        keys, value = entry.get("keys"), entry.get("rho")
        if (
            not isinstance(keys, list)
            or len(keys) != 2
            or not all(isinstance(k, str) for k in keys)
        ):
            raise ConfigError(f"must be a list of two config keys, got {keys!r}", f"{here}.keys")
        for key in keys:
            _check_correlated_key(key, f"{here}.keys", where, given)
        if keys[0] == keys[1]:
            raise ConfigError(f"names {keys[0]!r} twice; give two different keys", f"{here}.keys")
        if isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) < 1:
            raise ConfigError(
                f"must be a number in (-1, 1), got {value!r} (±1 would make one input a "
                "function of the other)",
                f"{here}.rho",
            )
        pair = tuple(sorted(keys, key=order.__getitem__))
        if pair in rho:
            raise ConfigError(f"the pair {pair[0]}, {pair[1]} is correlated twice", here)
        rho[pair] = float(value)
    groups = []
    for members in _connected(rho):
        paths = sorted(members, key=order.__getitem__)
        matrix = np.eye(len(paths))
        for (a, b), value in rho.items():
            if a in members:
                matrix[paths.index(a), paths.index(b)] = matrix[paths.index(b), paths.index(a)] = (
                    value
                )
        try:
            factor = np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            smallest = float(np.linalg.eigvalsh(matrix)[0])
            raise ConfigError(
                f"the correlations of {', '.join(paths)} contradict each other: their matrix "
                f"is not positive definite (smallest eigenvalue {smallest:.3g}); weaken them",
                name,
            ) from None
        groups.append(
            InputGroup(
                tuple(stream(p) for p in paths), tuple(tuple(row) for row in factor.tolist())
            )
        )
    return groups


def _check_correlated_key(path: str, where_keys: str, where: str, given: dict) -> None:
    parts = path.split(".")
    paths = all_paths()
    if len(parts) != 2 or path not in paths:
        raise ConfigError(f"unknown config key {path!r}{_did_you_mean(path, paths)}", where_keys)
    spec = key_spec(path)
    if not spec.uncertain:
        raise ConfigError(f"{path} cannot be uncertain, so it cannot be correlated", where_keys)
    if not isinstance(given.get(parts[0], {}).get(parts[1]), Distribution):
        level = (
            "in this segment (an inherited input is correlated in the top-level [[correlations]])"
            if where
            else "at the top level (a segment's own inputs are correlated in its correlations)"
        )
        raise ConfigError(f"{path} is not set to a distribution {level}", where_keys)


def _connected(pairs) -> list[set[str]]:
    """Connected components of the graph whose edges are ``pairs``, in first-seen order."""
    groups: list[set[str]] = []
    for a, b in pairs:
        touching = [g for g in groups if a in g or b in g]
        merged = {a, b}.union(*touching)
        groups = [g for g in groups if g not in touching] + [merged]
    return groups


# Money per customer-month, summed over customers and months, must stay a float64.
LOG_LARGEST_SUM = math.log(1e300)
# A standard normal draw of the kernel stays within ~10 sd in practice (53-bit uniforms).
NORMAL_REACH = 10.0


def _extreme(value, u: float) -> float:
    """An input's draw at uniform ``u`` (a number is its own draw)."""
    if isinstance(value, Distribution):
        return float(value.ppf(u))
    return float(value)


def _check_magnitude(segment: Segment, simulation: Mapping) -> None:
    """Refuse amounts that would overflow float64 within the horizon, naming the cause.

    Bounds the log of a customer's MRR after ``horizon`` months: the largest
    amount of money of the segment and the size spread, then every multiplicative
    source at its largest (annual growth, price increases, an upsell every
    month, the volatility walk at ``NORMAL_REACH`` standard deviations); and
    LTV:CAC at the smallest CAC.
    """
    horizon, years = simulation["horizon_months"], simulation["horizon_months"] / 12.0
    prefix = "" if segment.name == RESERVED_SEGMENT else f"segments.{segment.name}."

    def most(path):
        # the largest uniform below 1 (1 - 2**-54 would round to 1.0: an infinite draw)
        return _extreme(segment[path], 1.0 - 2.0**-53)

    every = segment["expansion.price_increase_every_months"]
    upsells = horizon - 1 if most("expansion.upsell_monthly_probability") > 0 else 0
    # every amount of money (prices, costs, fees, order values): the largest sets the scale
    money = [
        path
        for path, value in segment.values.items()
        if "currency" in key_spec(path).unit
        and isinstance(value, int | float | Distribution)
        and not isinstance(value, bool)
    ]
    largest = max(money, key=most)
    sources = {
        largest: math.log(max(most(largest), 1.0)),
        "revenue.arpa_cv": NORMAL_REACH * math.sqrt(math.log1p(most("revenue.arpa_cv") ** 2)),
        "expansion.annual_growth": years * math.log1p(most("expansion.annual_growth")),
        "expansion.price_increase": (horizon - 1)
        // every
        * math.log1p(most("expansion.price_increase")),
        "expansion.upsell_size": upsells * math.log1p(most("expansion.upsell_size")),
        "expansion.annual_volatility": NORMAL_REACH
        * most("expansion.annual_volatility")
        * math.sqrt(years),
    }
    per_customer = sum(sources.values()) + math.log(horizon)
    total = per_customer + math.log(simulation["customers"])
    if total > LOG_LARGEST_SUM:
        cause = max(sources, key=sources.get)
        raise ConfigError(
            f"amounts could grow to about 1e{total / math.log(10):.0f} within {horizon} "
            "months, beyond floating point (1e308); lower it or shorten "
            "simulation.horizon_months",
            prefix + cause,
        )
    cac = _extreme(segment["acquisition.cac"], 2.0**-54)
    if per_customer - math.log(cac) > LOG_LARGEST_SUM:
        raise ConfigError(
            f"CAC can be as small as {cac:g}: LTV:CAC would overflow floating point; "
            "state money in a larger unit",
            prefix + "acquisition.cac",
        )


def _resolve_segment(name: str, share: float, top: dict, own: dict) -> Segment:
    where = "" if name == RESERVED_SEGMENT else f"segments.{name}."
    values, streams = {}, {}
    for section, keys in SCHEMA.items():
        if section in RUN_SECTIONS:
            continue
        for key, spec in keys.items():
            path = f"{section}.{key}"
            if key in own.get(section, {}):
                values[path], streams[path] = own[section][key], f"{name}/{path}"
            else:
                values[path], streams[path] = top.get(section, {}).get(key, spec.default), path
    _check_business_model(where, top, own, values, streams)
    # A segment that sets churn.model starts its churn from scratch (but keeps
    # renewal_months); one that sets either rate replaces both inherited rates.
    churn_top = dict(top.get("churn", {}))
    churn_own = own.get("churn", {})
    if "model" in churn_own:
        churn_top = {k: v for k, v in churn_top.items() if k == "renewal_months"}
    if {"monthly_rate", "annual_rate"} & set(churn_own):
        churn_top.pop("monthly_rate", None)
        churn_top.pop("annual_rate", None)
    churn_given = {**churn_top, **churn_own}
    model = churn_given.get("model", "constant")
    for key in set().union(*CHURN_MODEL_KEYS.values()):
        values[f"churn.{key}"] = churn_given.get(key)
    for other, keys in CHURN_MODEL_KEYS.items():
        if other != model:
            for key in sorted(keys & set(churn_given)):
                raise ConfigError(
                    f"is only used when churn.model = {other!r} (model here is {model!r})",
                    f"{where}churn.{key}",
                )
    if model == "constant":
        if "monthly_rate" in churn_given and "annual_rate" in churn_given:
            raise ConfigError("give monthly_rate or annual_rate, not both", f"{where}churn")
        if not {"monthly_rate", "annual_rate"} & set(churn_given):
            values["churn.monthly_rate"] = 0.02  # the seeds' worked example
    else:
        for key in sorted(CHURN_MODEL_KEYS[model]):
            if values[f"churn.{key}"] is None:
                raise ConfigError(
                    f"churn.model = {model!r} needs churn.{key}", f"{where}churn.{key}"
                )
    upper = [_upper(values[f"expansion.{k}_monthly_probability"]) for k in ("upsell", "downgrade")]
    if sum(upper) > 1.0:
        raise ConfigError(
            "upsell_monthly_probability + downgrade_monthly_probability can exceed 1 "
            f"({upper[0]:g} + {upper[1]:g}); at most one plan change happens a month",
            f"{where}expansion",
        )
    _check_mrr_model(values["revenue.mrr_model"], where, top, own)
    billing, renewal = values["revenue.billing_months"], values["churn.renewal_months"]
    if renewal % billing:
        raise ConfigError(
            f"must divide churn.renewal_months = {renewal} (a customer pays only for "
            f"months it is under contract), got {billing}",
            f"{where}revenue.billing_months",
        )
    if "timing" in own.get("discount", {}):
        raise ConfigError(
            "discount timing is one convention for the whole run; set it in "
            "the top-level [discount] section",
            f"{where}discount.timing",
        )
    return Segment(name, share, values, streams)


# Keys that set MRR in the other model: an error to give them (they would be ignored).
PER_ACCOUNT_ONLY = (
    "revenue.arpa_monthly",
    "revenue.arpa_cv",
    "expansion.upsell_monthly_probability",
    "expansion.upsell_size",
    "expansion.downgrade_monthly_probability",
    "expansion.downgrade_size",
)


def _check_mrr_model(mrr_model: str, where: str, top: dict, own: dict):
    """Reject keys of the other MRR model (a segment that sets its own model
    ignores the top level's keys of the other one)."""
    sources = [own] if "mrr_model" in own.get("revenue", {}) else [top, own]
    given = {
        f"{section}.{key}"
        for raw in sources
        for section, keys in raw.items()
        if isinstance(keys, Mapping)
        for key in keys
    }
    if mrr_model == "seats":
        clash = [path for path in PER_ACCOUNT_ONLY if path in given]
        hint = "seats set MRR: use [seats] (seat changes replace plan changes)"
    else:
        clash = sorted(path for path in given if path.startswith("seats."))
        hint = 'only used when revenue.mrr_model = "seats"'
    if clash:
        raise ConfigError(f"{hint}; got it with mrr_model = {mrr_model!r}", where + clash[0])


def owner_model(path: str, business_model: str) -> str | None:
    """The other business model config key ``path`` belongs to, or None if this one may use it."""
    section = path.split(".")[0]
    for other, keys in BUSINESS_MODEL_KEYS.items():
        if other != business_model and (path in keys or section in keys):
            return other
    return None


def _check_business_model(where: str, top: dict, own: dict, values: dict, streams: dict):
    """Reject keys the segment's business model does not use; fill derived defaults."""
    model = values["business.model"]
    given = {f"{s}.{k}" for part in (top, own) for s, keys in part.items() for k in keys}
    for path in sorted(given):
        other = owner_model(path, model)
        if other:
            raise ConfigError(
                f"is only used when business.model = {other!r} (model here is {model!r})",
                f"{where}{path}",
            )
    process = values["purchase.process"]
    for other, keys in PURCHASE_PROCESS_KEYS.items():
        for key in sorted(keys):
            if other != process and f"purchase.{key}" in given:
                raise ConfigError(
                    f"is only used when purchase.process = {other!r} (process here is {process!r})",
                    f"{where}purchase.{key}",
                )
    if process == "pareto_nbd":
        # The defaults of r and alpha are BG/NBD's CDNOW fit; Pareto/NBD's own CDNOW
        # fit (Fader, Hardie & Lee 2005: r 0.553, alpha 10.578 weeks) goes with its s, beta.
        for key, value in (("r", 0.553), ("alpha_months", 2.4327)):
            if f"purchase.{key}" not in given:
                values[f"purchase.{key}"] = value
    # gamma or mean_order_value: a segment that sets either replaces both.
    spend = {"gamma", "mean_order_value"}
    spend_given = spend & set(own.get("spend", {})) or spend & set(top.get("spend", {}))
    if spend_given == spend:
        raise ConfigError("give gamma or mean_order_value, not both", f"{where}spend")
    if "spend.gamma" in given and spend_given == {"mean_order_value"}:
        values["spend.gamma"] = None
    if "spend.mean_order_value" in given and spend_given == {"gamma"}:
        values["spend.mean_order_value"] = None
    if not spend_given:
        values["spend.gamma"] = 15.44  # CDNOW (Fader, Hardie & Lee 2005)
    if values["deals.follow_on_value"] is None:
        # the first deal's value, drawn from the same stream: the same number
        values["deals.follow_on_value"] = values["deals.first_deal_value"]
        streams["deals.follow_on_value"] = streams["deals.first_deal_value"]


def _upper(value) -> float:
    """Largest value a number or a distribution can take."""
    return value.support[1] if isinstance(value, Distribution) else value


def monthly_from_annual(annual_rate: float):
    """Monthly rate equivalent to an annual one by compounding: (1+r)^(1/12) - 1."""
    return (1.0 + annual_rate) ** (1.0 / 12.0) - 1.0


def monthly_churn_from_annual(annual_churn: float):
    """Monthly churn probability with the same annual survival: 1 - (1-a)^(1/12)."""
    return 1.0 - (1.0 - annual_churn) ** (1.0 / 12.0)


def reference_table() -> str:
    """Markdown table of every key: the README's config reference."""
    lines = ["| key | unit | default | valid | uncertain | meaning |", "|---|---|---|---|---|---|"]
    for section, keys in SCHEMA.items():
        for key, spec in keys.items():
            default = "—" if spec.default is None else json.dumps(spec.default)
            unit = spec.unit or "—"
            lines.append(
                f"| `{section}.{key}` | {unit} | {default} | {spec.range_text()} | "
                f"{'yes' if spec.uncertain else 'no'} | {spec.doc} |"
            )
    return "\n".join(lines)
