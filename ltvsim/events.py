"""From a subscription event log to a simulation config.

The log is a CSV with one row per event::

    customer_id,date,event,mrr[,segment]
    c1,2023-01-14,start,500
    c1,2023-06-02,change,650
    c1,2024-02-20,cancel,

``event`` is ``start`` (a new customer, MRR in currency per month), ``change``
(the customer's new MRR) or ``cancel`` (MRR empty or 0). ``segment``, when
present, is fixed per customer. :func:`fit_events` validates the log, builds
monthly cohorts and fits, per segment:

- **churn**: the sBG model (:func:`ltvsim.fit.fit_sbg`) to the cohorts' active
  counts. Months are calendar months; a customer starting in month ``s`` is
  in cohort ``s`` and is *active at the start of* months ``s, s+1, …`` up to and
  including the month of its cancel: one that cancels in month ``s + k`` paid
  ``k + 1`` months and is not active at month ``s + k + 1``. With renewals
  every ``K`` months, the counts are taken at tenures ``0, K, 2K, …``.
- **the observation end**: the log covers calendar months up to the month of
  its last event, ``E``, which counts as incomplete: cohort ``s`` is observed
  at the start of months ``s … E`` (right-censored there), and cancels and
  plan changes dated in month ``E`` are not used.
- **starting MRR**: each customer's MRR at the end of its start month; its
  mean across customers and coefficient of variation become
  ``revenue.arpa_monthly`` and ``revenue.arpa_cv``.
- **plan changes**: a customer's MRR in tenure month ``t`` is the MRR after
  its last event dated in calendar month ``s + t``; between consecutive
  active months (``t = 1, 2, …``, up to the cancel month or ``E − 1``) it
  rises (an upsell of size ``new/old − 1``), falls (a downgrade of size
  ``1 − new/old``) or stays — the model's "at most one plan change a month".
  Probabilities are events per customer-month at risk, sizes the mean size.

Every estimate carries its standard error into the config as a distribution
drawn once per trial, so the simulation carries estimation error: alpha and
beta as :meth:`ltvsim.fit.SBGFit.to_config` (lognormals with their
correlation), means lognormal or truncated normal with their standard error,
probabilities truncated normal with the binomial standard error. Organic
drift and volatility (``expansion.annual_growth``/``annual_volatility``) stay
0: plan changes already explain MRR moves in a log of discrete events.
Costs, CAC, margin and discount rate are not in a log and keep their defaults
(the written file's header says so).
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import RESERVED_SEGMENT, load_config
from .datafile import DataError, naming_file, read_csv_rows
from .fit import FitError, SBGFit, fit_sbg

__all__ = ["EventsFit", "SegmentFit", "fit_events", "read_events", "to_toml"]

COLUMNS = ("customer_id", "date", "event", "mrr")
OPTIONAL_COLUMNS = ("segment",)
EVENTS = ("start", "change", "cancel")
# A truncated normal's upper bound this many standard errors above its mean:
# the mass left out is below 1e-15, and the bound keeps upsell + downgrade
# probabilities provably <= 1 (the config checks their largest values).
TAIL_SE = 8.0
# config key -> SegmentFit attribute of the estimates besides churn
ESTIMATES = {
    "revenue.arpa_monthly": "arpa",
    "revenue.arpa_cv": "arpa_cv",
    "expansion.upsell_monthly_probability": "upsell_probability",
    "expansion.upsell_size": "upsell_size",
    "expansion.downgrade_monthly_probability": "downgrade_probability",
    "expansion.downgrade_size": "downgrade_size",
}


@dataclass(frozen=True)
class Event:
    row: int  # line in the file (header = 1), or index + 1 of a record
    customer: str
    month: int  # calendar month: 12 * year + month - 1
    date: dt.date
    kind: str
    mrr: float
    segment: str


@dataclass(frozen=True)
class Estimate:
    """An estimate, its standard error and how it was made (for the file's header)."""

    value: float
    se: float
    source: str


@dataclass
class SegmentFit:
    """What one segment's customers say about churn, starting MRR and plan changes."""

    name: str
    customers: int
    share: float
    cohorts: list[list[int]]  # active counts per cohort (start month), at tenures 0, K, 2K, …
    first_month: str  # first cohort, YYYY-MM
    churn: SBGFit | None  # None when the cohorts show no heterogeneity
    constant_churn: Estimate | None  # churn per renewal, when churn is None
    arpa: Estimate
    arpa_cv: Estimate
    upsell_probability: Estimate
    upsell_size: Estimate | None
    downgrade_probability: Estimate
    downgrade_size: Estimate | None
    customer_months: int  # months at risk of a plan change

    def config_sections(self, renewal_months: int) -> dict:
        """This segment's model sections (and correlations) of an ltvsim config."""
        out: dict = {}
        out["revenue"] = {
            "arpa_monthly": _lognormal(self.arpa),
            "arpa_cv": _truncated_normal(self.arpa_cv, 0.0, 10.0),
        }
        if self.churn is not None:
            out.update(self.churn.to_config(renewal_months))
        else:
            # constant churn per renewal c: monthly 1 - (1 - c)^(1/K), se by the delta method
            c = self.constant_churn
            monthly = 1.0 - (1.0 - c.value) ** (1.0 / renewal_months)
            slope = (1.0 - c.value) ** (1.0 / renewal_months - 1.0) / renewal_months
            rate = Estimate(monthly, c.se * slope, c.source)
            out["churn"] = {
                "model": "constant",
                "monthly_rate": _truncated_normal(rate, 0.0, 1.0),
                "renewal_months": renewal_months,
            }
        expansion = {}
        for kind, high in (("upsell", 10.0), ("downgrade", 1.0 - 1e-9)):
            p = getattr(self, f"{kind}_probability")
            size = getattr(self, f"{kind}_size")
            if p.value > 0 and size is not None:
                expansion[f"{kind}_monthly_probability"] = _truncated_normal(p, 0.0, 1.0)
                expansion[f"{kind}_size"] = _truncated_normal(size, 0.0, high)
        if expansion:
            out["expansion"] = expansion
        return out

    def estimates(self) -> list[tuple[str, float, float]]:
        """(config key, estimate, standard error) of every fitted number."""
        out = []
        if self.churn is not None:
            out += [
                ("churn.alpha", self.churn.alpha, float(self.churn.se[0])),
                ("churn.beta", self.churn.beta, float(self.churn.se[1])),
                ("corr(alpha, beta)", self.churn.correlation, math.nan),
            ]
        else:
            c = self.constant_churn
            out.append(("churn per renewal (constant)", c.value, c.se))
        for key in ESTIMATES:
            estimate = getattr(self, ESTIMATES[key])
            if estimate is not None:
                out.append((key, estimate.value, estimate.se))
        return out

    def notes(self) -> list[str]:
        """Where each number came from, one line each."""
        lines = []
        if self.churn is not None:
            fit = self.churn
            lines.append(
                f"churn: sBG fit to {len(self.cohorts)} monthly cohorts from {self.first_month} "
                f"({self.customers} customers): alpha = {fit.alpha:.4g} ± {fit.se[0]:.2g}, "
                f"beta = {fit.beta:.4g} ± {fit.se[1]:.2g} (se), correlation {fit.correlation:.3f}"
            )
        else:
            c = self.constant_churn
            lines.append(f"churn: {c.source}: {c.value:.4g} ± {c.se:.2g} per renewal")
        for label, attribute in ESTIMATES.items():
            estimate = getattr(self, attribute)
            if estimate is not None:
                lines.append(
                    f"{label}: {estimate.value:.4g} ± {estimate.se:.2g} (se), {estimate.source}"
                )
        return lines


@dataclass
class EventsFit:
    """The fit of an event log: one :class:`SegmentFit` per segment."""

    segments: list[SegmentFit]
    renewal_months: int
    end_month: str  # the incomplete last month of the log, YYYY-MM
    events: int
    source: str
    segmented: bool = field(default=False)

    def to_config(self) -> dict:
        """A config mapping that :func:`ltvsim.load_config` accepts."""
        if not self.segmented:
            return self.segments[0].config_sections(self.renewal_months)
        return {
            "segments": [
                {"name": s.name, "share": s.share, **s.config_sections(self.renewal_months)}
                for s in self.segments
            ]
        }

    def header(self) -> list[str]:
        """The written file's header comment: where each number came from."""
        lines = [
            f"Fitted by ltvsim fit from {self.source}: {self.events} events, last "
            f"(incomplete, unused) month {self.end_month}, renewals every "
            f"{self.renewal_months} month(s).",
            "Each estimate is a distribution with its standard error (drawn once per trial),",
            "so the simulation carries the estimation error; see ltvsim/events.py.",
            "Not in an event log, left at their defaults: set acquisition.cac,",
            "revenue.gross_margin, costs and discount.annual_rate for your business.",
            "expansion.annual_growth and annual_volatility are 0: plan changes carry MRR moves.",
        ]
        for s in self.segments:
            lines.append("")
            if self.segmented:
                lines.append(
                    f"segment {s.name}: share {s.share:.4g} = {s.customers} of "
                    f"{sum(x.customers for x in self.segments)} customers"
                )
            lines += s.notes()
            lines.append(f"plan changes: {s.customer_months} customer-months at risk")
        return lines


# --- reading and validating ---------------------------------------------------------


def read_events(source) -> tuple[list[Event], str]:
    """Validated events of a CSV path or an iterable of row mappings; and a description.

    Raises
    ------
    DataError
        One line naming the row and column: a missing file, an empty log,
        missing or unknown columns, an empty customer id, an unparsable date,
        an unknown event, an unparsable, negative or (for start and change)
        zero MRR, a customer whose first event is not a start, who starts
        twice, has events after its cancel or out of date order, or changes
        segment.
    """
    if isinstance(source, str | Path):
        hint = f"{','.join(COLUMNS)}[,segment]"
        header, body = read_csv_rows(source, "event log", hint)
        # as csv.DictReader gives them: a row's extra cells in a list under the key None
        rows = [(row, _record(header, cells)) for row, cells in body]
        described, where = str(source), "row"
    elif isinstance(source, Iterable) and not isinstance(source, Mapping):
        records = list(source)
        if not all(isinstance(r, Mapping) for r in records):
            raise DataError("records: expected mappings of column name to value")
        header = list(records[0]) if records else []
        rows = list(enumerate(records, start=1))
        described, where = f"{len(records)} records", "record"
    else:
        raise DataError(f"expected a CSV path or records, got {type(source).__name__}")
    _check_columns(header, described)
    if not rows:
        raise DataError(f"{described}: no events (only a header)")
    with naming_file(source if isinstance(source, str | Path) else None):
        events = [_parse_row(row, values, where) for row, values in rows]
        _check_histories(events, where)
    return events, described


def _record(header: list[str], cells: list[str]) -> dict:
    record = dict(zip(header, cells, strict=False))
    if len(cells) > len(header):
        record[None] = cells[len(header) :]
    return record


def _check_columns(header, described: str) -> None:
    columns = [str(c).strip() if c is not None else "" for c in header]
    expected = f"expected {', '.join(COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS)}"
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise DataError(f"{described}: missing column(s) {', '.join(missing)}; {expected}")
    unknown = [c for c in columns if c not in COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise DataError(
            f"{described}: unknown column(s) {', '.join(map(repr, unknown))}; {expected}"
        )


def _parse_row(row: int, values: Mapping, where: str) -> Event:
    def cell(column):
        value = values.get(column)
        return "" if value is None else str(value).strip()

    if None in values:  # a CSV row's cells beyond the header (see _record)
        raise DataError(f"{where} {row}: more fields than the header's columns")
    customer = cell("customer_id")
    if not customer:
        raise DataError(f"{where} {row}, column customer_id: empty")
    text = cell("date")
    try:
        date = dt.date.fromisoformat(text)
    except ValueError:
        raise DataError(
            f"{where} {row}, column date: {text!r} is not an ISO date (YYYY-MM-DD)"
        ) from None
    kind = cell("event").lower()
    if kind not in EVENTS:
        raise DataError(
            f"{where} {row}, column event: {cell('event')!r}; expected one of {', '.join(EVENTS)}"
        )
    text = cell("mrr")
    if kind == "cancel" and text == "":
        mrr = 0.0
    else:
        try:
            mrr = float(text)
        except ValueError:
            raise DataError(f"{where} {row}, column mrr: {text!r} is not a number") from None
        if not math.isfinite(mrr) or mrr < 0:
            raise DataError(f"{where} {row}, column mrr: {text}; MRR must be a finite number >= 0")
        if kind != "cancel" and mrr == 0:
            raise DataError(
                f"{where} {row}, column mrr: 0 on a {kind}; a paying customer's MRR is > 0 "
                "(log a cancel instead)"
            )
        if kind == "cancel" and mrr != 0:
            raise DataError(f"{where} {row}, column mrr: {text} on a cancel; leave it empty or 0")
    month = 12 * date.year + date.month - 1
    return Event(row, customer, month, date, kind, mrr, cell("segment") or RESERVED_SEGMENT)


def _check_histories(events: list[Event], where: str) -> None:
    last: dict[str, Event] = {}
    for e in events:
        before = last.get(e.customer)
        if before is None:
            if e.kind != "start":
                raise DataError(
                    f"{where} {e.row}, column event: customer {e.customer!r} has a {e.kind} "
                    "before any start; every customer's first event is a start"
                )
        else:
            if before.kind == "cancel":
                raise DataError(
                    f"{where} {e.row}: customer {e.customer!r} has a {e.kind} after its cancel "
                    f"({where} {before.row}); a returning customer needs a new customer_id"
                )
            if e.kind == "start":
                raise DataError(
                    f"{where} {e.row}, column event: customer {e.customer!r} starts twice "
                    f"(first on {where} {before.row})"
                )
            if e.date < before.date:
                raise DataError(
                    f"{where} {e.row}, column date: {e.date} is before the previous event of "
                    f"customer {e.customer!r} ({before.date}, {where} {before.row}); each "
                    "customer's events must be in date order"
                )
            if e.segment != before.segment:
                raise DataError(
                    f"{where} {e.row}, column segment: customer {e.customer!r} is in "
                    f"{before.segment!r} on {where} {before.row}; a customer keeps one segment"
                )
        last[e.customer] = e


# --- fitting --------------------------------------------------------------------------


def fit_events(source, *, renewal_months: int = 1) -> EventsFit:
    """Fit churn, starting MRR and plan changes to a subscription event log.

    Parameters
    ----------
    source : str, Path or iterable of mappings
        A CSV file (columns ``customer_id, date, event, mrr`` and optionally
        ``segment``) or its rows as mappings of column name to value.
    renewal_months : int
        Months between renewals (12 for annual contracts): churn is fitted to
        active counts at tenures 0, K, 2K, … months.

    Returns
    -------
    EventsFit
        Per segment: the sBG fit, starting MRR and plan-change estimates with
        standard errors; ``to_config()`` gives a config mapping,
        :func:`to_toml` its file.

    Raises
    ------
    DataError
        A malformed log (see :func:`read_events`) or one a segment's churn
        cannot be fitted to (no churn, no survivors, too short).
    """
    if (
        isinstance(renewal_months, bool)
        or not isinstance(renewal_months, int)
        or not 1 <= renewal_months <= 120
    ):
        raise DataError(
            f"renewal_months: must be a whole number in [1, 120], got {renewal_months!r}"
        )
    events, described = read_events(source)
    end = max(e.month for e in events)
    histories: dict[str, list[Event]] = {}
    for e in events:
        histories.setdefault(e.customer, []).append(e)
    names = sorted({h[0].segment for h in histories.values()})
    if len(names) > 1 and RESERVED_SEGMENT in names:
        row = next(h[0].row for h in histories.values() if h[0].segment == RESERVED_SEGMENT)
        raise DataError(
            f"row {row}, column segment: empty or {RESERVED_SEGMENT!r} while other customers "
            "have segments; name every customer's segment (or leave the column out)"
        )
    total = len(histories)
    segments = []
    for name in names:
        mine = [h for h in histories.values() if h[0].segment == name]
        segments.append(_fit_segment(name, mine, total, end, renewal_months))
    return EventsFit(
        segments,
        renewal_months,
        _month_text(end),
        len(events),
        described,
        segmented=names != [RESERVED_SEGMENT],
    )


def _fit_segment(name, histories, total, end, renewal_months) -> SegmentFit:
    where = "" if name == RESERVED_SEGMENT else f"segment {name!r}: "
    starts = [h[0].month for h in histories]
    first = min(starts)
    # cancel month, or None while active (a cancel in the incomplete month E counts as active)
    cancels = [
        h[-1].month if h[-1].kind == "cancel" and h[-1].month < end else None for h in histories
    ]
    by_cohort: dict[int, list[int | None]] = {}
    for start, cancel in zip(starts, cancels, strict=True):
        by_cohort.setdefault(start, []).append(cancel)
    cohorts = []
    for month, members in sorted(by_cohort.items()):
        tenures = range(0, end - month + 1, renewal_months)
        cohorts.append(
            [sum(1 for c in members if c is None or c - month >= tenure) for tenure in tenures]
        )
    churn, constant = None, None
    try:
        churn = fit_sbg(cohorts)
    except DataError as exc:
        raise DataError(f"{where}cannot fit churn to the cohorts: {_after_colon(exc)}") from None
    except FitError as exc:
        if "no heterogeneity" not in str(exc):
            raise DataError(f"{where}cannot fit churn to the cohorts: {exc}") from None
        lost = sum(c[0] - c[-1] for c in cohorts)
        at_risk = sum(sum(c[:-1]) for c in cohorts)
        c = lost / at_risk
        constant = Estimate(
            c,
            math.sqrt(c * (1 - c) / at_risk),
            f"no heterogeneity in the cohorts (sBG fit refused): constant churn, {lost} "
            f"cancels in {at_risk} renewals",
        )

    # MRR by tenure month from the month's last event (complete months only)
    start_mrr, ups, downs, at_risk = [], [], [], 0
    for history, start, cancel in zip(histories, starts, cancels, strict=True):
        level, levels = history[0].mrr, []
        last_month = (end - 1) if cancel is None else cancel
        events = iter(history)
        pending = next(events, None)
        for month in range(start, last_month + 1):
            while pending is not None and pending.month == month:
                if pending.kind != "cancel":
                    level = pending.mrr
                pending = next(events, None)
            levels.append(level)
        if not levels:  # started in the incomplete last month
            levels = [history[0].mrr]
        start_mrr.append(levels[0])
        ratio = np.asarray(levels[1:]) / np.asarray(levels[:-1])
        at_risk += ratio.size
        ups += list(ratio[ratio > 1] - 1)
        downs += list(1 - ratio[ratio < 1])
    return SegmentFit(
        name=name,
        customers=len(histories),
        share=len(histories) / total,
        cohorts=cohorts,
        first_month=_month_text(first),
        churn=churn,
        constant_churn=constant,
        arpa=_mean(start_mrr, "mean starting MRR of {n} customers"),
        arpa_cv=_cv(start_mrr),
        upsell_probability=_proportion(len(ups), at_risk, "upsells"),
        upsell_size=_mean(ups, "mean upsell size (new/old - 1) of {n} upsells") if ups else None,
        downgrade_probability=_proportion(len(downs), at_risk, "downgrades"),
        downgrade_size=(
            _mean(downs, "mean downgrade size (1 - new/old) of {n} downgrades") if downs else None
        ),
        customer_months=at_risk,
    )


def _after_colon(exc: Exception) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("active") and ": " in text else text


def _mean(values, source: str) -> Estimate:
    x = np.asarray(values, dtype=float)
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return Estimate(float(x.mean()), se, source.format(n=x.size))


def _cv(values) -> Estimate:
    """Coefficient of variation s/m and its delta-method standard error.

    With sample moments, Var(m) = s²/n, Cov(m, s²) = μ₃/n, Var(s²) = (μ₄ − s⁴)/n
    (large-sample), and ∂cv/∂m = −s/m², ∂cv/∂s² = 1/(2 s m).
    """
    x = np.asarray(values, dtype=float)
    n, m = x.size, float(x.mean())
    if n < 2:
        return Estimate(0.0, 0.0, "one customer: no spread")
    d = x - m
    s2, mu3, mu4 = float(d @ d / (n - 1)), float(np.mean(d**3)), float(np.mean(d**4))
    s = math.sqrt(s2)
    if s == 0:
        return Estimate(0.0, 0.0, f"every one of {n} customers starts at the same MRR")
    cov = np.array([[s2, mu3], [mu3, mu4 - s2 * s2]]) / n
    g = np.array([-s / m**2, 1 / (2 * s * m)])
    se = math.sqrt(max(float(g @ cov @ g), 0.0))
    return Estimate(s / m, se, f"sd/mean of starting MRR across {n} customers")


def _proportion(events: int, months: int, what: str) -> Estimate:
    p = events / months if months else 0.0
    se = math.sqrt(p * (1 - p) / months) if months else 0.0
    return Estimate(p, se, f"{events} {what} in {months} customer-months (binomial se)")


def _month_text(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


# Distributions carrying an estimate's standard error


def _lognormal(estimate: Estimate):
    if estimate.se == 0:
        return estimate.value
    return {"dist": "lognormal", "mean": estimate.value, "sd": estimate.se}


def _truncated_normal(estimate: Estimate, low: float, high: float):
    """Normal(value, se) cut to [low, min(high, value + 8 se)]: a key's valid range."""
    if estimate.se == 0:
        return estimate.value
    top = min(high, estimate.value + TAIL_SE * estimate.se)
    return {"dist": "normal", "mean": estimate.value, "sd": estimate.se, "low": low, "high": top}


# --- writing --------------------------------------------------------------------------


def to_toml(config: Mapping, header: Iterable[str] = ()) -> str:
    """A config mapping as TOML text, with ``header`` lines as a leading comment.

    A small writer for the config's known shapes (the standard library reads
    TOML but does not write it): sections of keys, distributions as inline
    tables, ``[[correlations]]`` and ``[[segments]]`` arrays of tables with
    their own sub-tables. The text is checked by reading it back.
    """
    lines = [f"# {line}".rstrip() for line in header]
    if lines:
        lines.append("")
    _write_table(config, "", lines)
    text = "\n".join(lines).strip("\n") + "\n"
    load_config(_read_back(text))  # the writer's contract: valid TOML that loads
    return text


def _read_back(text: str) -> dict:
    return tomllib.loads(text)


def _write_table(table: Mapping, prefix: str, lines: list[str]) -> None:
    nested = []
    for key, value in table.items():
        if isinstance(value, Mapping) and "dist" not in value:
            nested.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested:
        name = f"{prefix}{_key(key)}"
        if isinstance(value, Mapping):
            lines += ["", f"[{name}]"]
            _write_table(value, f"{name}.", lines)
        else:
            for item in value:
                lines += ["", f"[[{name}]]"]
                _write_table(item, f"{name}.", lines)


def _key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else _string(key)


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
