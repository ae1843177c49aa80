"""Charts of a result and a self-contained HTML report.

matplotlib is optional (``pip install 'ltvsim[plot]'``) and imported only when
a chart is drawn. Figures are built with ``matplotlib.figure.Figure`` on the
Agg canvas, never through ``pyplot``: no window opens, no global figure
registry fills up, and a figure is freed when it is no longer referenced.

Every chart function takes a result Dataset (see :func:`ltvsim.simulate`) and
returns a Figure; nothing here prints, and only :func:`save` writes a file.
Money is per acquired customer, in ``ds.attrs["currency"]``; time is in months
since acquisition.

>>> from ltvsim import plot                                       # doctest: +SKIP
>>> fig = plot.fan_chart(ds, segment="all")                       # doctest: +SKIP
>>> plot.save(fig, "fan.png")                                     # doctest: +SKIP
>>> html = plot.report_html(ds)                                   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from .analysis import (
    LTV_CAC_BANDS,
    PAYBACK_BANDS,
    band_probabilities,
    format_number,
    probability_text,
    summary_digits,
    summary_table,
)
from .dataset import band_quantiles, has_costs_below_gross_profit
from .io import atomic_write

MISSING_MATPLOTLIB = "charts need matplotlib: pip install 'ltvsim[plot]'"

# Colours (matplotlib's default cycle, so charts look familiar).
BLUE = "#1f77b4"
ORANGE = "#ff7f0e"
GREY = "#555555"
LOW_COLOUR = "#8cb8da"  # BLUE, lightened: the low swing of a tornado bar
# One colour per LTV:CAC band, in the order of analysis.LTV_CAC_BANDS.
LTV_CAC_COLOURS = ("#d62728", "#ff7f0e", "#2ca02c", "#1f77b4")
# Payback benchmark boundaries (6, 12, 18 months) and the name of the band each closes.
PAYBACK_MARKS = tuple(
    (int(high), label[label.find("(") + 1 : label.rfind(")")])
    for label, _, high in PAYBACK_BANDS
    if math.isfinite(high)
)

MEASURE_NAMES = {
    "ltv_revenue": "revenue LTV (never compare with CAC)",
    "ltv_gross_profit": "gross-profit LTV",
    "ltv_discounted": "discounted gross-profit LTV (NPV)",
    "ltv_cac": "LTV:CAC",
    "ltv_cac_discounted": "discounted LTV:CAC",
    "payback_months": "CAC payback",
    "lifetime_months": "mean lifetime within the horizon",
    "ltv_net": "net LTV (after retention spend and onboarding)",
    "ltv_net_discounted": "discounted net LTV",
    "cost_to_serve": "cost to serve",
    "cost_payment_fees": "payment-processing fees",
    "cost_retention": "retention spend",
    "cost_onboarding": "onboarding",
}


# ---------------------------------------------------------------------------
# matplotlib plumbing


def _mpl():
    """matplotlib modules, imported on first use; a clear error when missing."""
    try:
        import matplotlib
        from matplotlib import ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise ImportError(MISSING_MATPLOTLIB) from exc
    return matplotlib, Figure, FigureCanvasAgg, ticker, Patch


def _figure(width: float, height: float):
    """A new Figure on an Agg canvas (no window, not registered with pyplot)."""
    _, Figure, FigureCanvasAgg, _, _ = _mpl()
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _money_axis(axis) -> None:
    """Tick labels with thousands separators: 12,000 not 12000 or 1.2e4."""
    ticker = _mpl()[3]
    axis.set_major_formatter(ticker.FuncFormatter(lambda x, _: _money(x)))


def _percent_axis(axis) -> None:
    """Shares as percentages without trailing zeros: 0%, 0.5%, 12.5%, 100%."""
    ticker = _mpl()[3]
    axis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x * 100:.3g}%"))


def _month_ticks(axis, last: float, minimum: int = 1) -> None:
    """Month ticks on multiples of 3, 6, 12, 24, … so that a year is a tick."""
    ticker = _mpl()[3]
    steps = [s for s in (1, 3, 6, 12, 24, 60, 120, 240, 600) if s >= minimum]
    step = next((s for s in steps if last / s <= 10), steps[-1])
    axis.set_major_locator(ticker.MultipleLocator(step))


def _tint(colour: str, amount: float) -> tuple[float, float, float]:
    """``colour`` mixed with white: amount 0 is white, 1 the colour itself."""
    matplotlib = _mpl()[0]
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    return tuple(1.0 - amount * (1.0 - rgb))


def _money(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 or x == int(x) else f"{x:,.2f}"


def _money_label(ds: xr.Dataset) -> str:
    currency = ds.attrs.get("currency", "")
    return f"{currency} per acquired customer".strip()


MONTHS_LABEL = "months since acquisition"


# ---------------------------------------------------------------------------
# data helpers


def _check_segment(ds: xr.Dataset, segment: str) -> None:
    names = [str(s) for s in ds["segment"].values]
    if segment not in names:
        raise ValueError(f"unknown segment {segment!r}; choose one of {names}")


def _title(ds: xr.Dataset, what: str, segment: str) -> str:
    return f"{what}: segment {segment!r}, {ds.sizes['trial']:,} trials"


def _side_legend(fig, ax, **kwargs):
    """The axes' legend beside it, right of the plot, so that it never covers data."""
    handles, labels = ax.get_legend_handles_labels()
    return fig.legend(
        handles,
        labels,
        loc="outside right upper",
        fontsize="small",
        frameon=False,
        **kwargs,
    )


def _band_pairs(quantiles: Sequence[float]) -> list[tuple[float, float]]:
    """Quantiles paired outside-in: (0.05, 0.95), (0.25, 0.75), … outermost first."""
    q = sorted(float(x) for x in quantiles)
    low = [x for x in q if x < 0.5]
    high = [x for x in q if x > 0.5][::-1]
    return list(zip(low, high, strict=False))


def _percent_label(q: float) -> str:
    return f"{q * 100:.3g}"


def _median(ds: xr.Dataset, name: str, segment: str) -> np.ndarray:
    """The median across trials: from ``<name>_band`` when it holds 0.5, else computed."""
    band = ds[f"{name}_band"].sel(segment=segment)
    qs = band["quantile"].values
    hit = np.isclose(qs, 0.5)
    if hit.any():
        return band.isel(quantile=int(np.argmax(hit))).values
    values = ds[name].sel(segment=segment).transpose("trial", ...).values
    return band_quantiles(values, np.array([0.5]))[0]


def _draw_bands(ax, ds, name, segment, x, colour, prepend=None, periods=None):
    """Nested shaded bands of ``<name>_band``, outermost lightest, and the median.

    Opaque tints rather than transparency, so that the legend shows each
    band's colour exactly. ``periods`` keeps the first that many months.
    """
    band = ds[f"{name}_band"].sel(segment=segment).isel(period=slice(0, periods))
    pairs = _band_pairs(band["quantile"].values)
    for i, (lo, hi) in enumerate(pairs):
        y_lo = band.sel(quantile=lo).values
        y_hi = band.sel(quantile=hi).values
        if prepend is not None:
            y_lo = np.concatenate([[prepend], y_lo])
            y_hi = np.concatenate([[prepend], y_hi])
        shade = 0.22 + 0.28 * i / max(1, len(pairs) - 1) if len(pairs) > 1 else 0.3
        ax.fill_between(
            x,
            y_lo,
            y_hi,
            color=_tint(colour, shade),
            linewidth=0,
            label=f"{_percent_label(lo)}-{_percent_label(hi)}% of trials",
            zorder=1 + i,
        )
    median = _median(ds, name, segment)[:periods]
    if prepend is not None:
        median = np.concatenate([[prepend], median])
    (line,) = ax.plot(x, median, color=colour, linewidth=2.0, label="median", zorder=10)
    line.set_gid("median")
    return line


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def _nice_width(span: float, target_bins: int, widths: Sequence[float]) -> float:
    raw = span / target_bins if span > 0 else widths[0]
    return next((w for w in widths if w >= raw), widths[-1])


# ---------------------------------------------------------------------------
# charts of a result


def fan_chart(ds: xr.Dataset, segment: str = "all", months: int | None = None):
    """Cumulative gross profit per acquired customer against CAC, and CAC payback.

    Top: the median across trials of cumulative (undiscounted) gross profit
    and nested bands for every pair of quantiles in ``ds.quantile``
    (outermost lightest), with the median CAC as a horizontal line and its
    5-95% range across trials as a light band when CAC is uncertain. Month
    ``t``'s value is drawn at the end of the month, ``t + 1``, starting from
    0 at acquisition; gross profit accrues evenly within the month as in the
    payback definition, so where the median crosses CAC reads off a payback
    time. Bottom (shared x axis): histogram of ``payback_months`` across
    trials, with the share of trials that never pay back within the horizon
    in its title. With retention spend or onboarding (``[costs]``) the path is
    cumulative net profit, which is what payback compares with CAC, starting
    at minus the median onboarding cost.

    ``months`` limits the x axis to the first that many months (default: the
    whole horizon), to look closely at payback when it comes early.
    """
    _check_segment(ds, segment)
    horizon = ds.sizes["period"]
    if months is None:
        months = horizon
    if not 1 <= months <= horizon:
        raise ValueError(f"months must be in [1, {horizon}] (the horizon), got {months!r}")
    fig = _figure(10.0, 6.8)
    ax, hist_ax = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    money = _money_label(ds)
    x = np.arange(months + 1, dtype=float)

    # With retention spend or onboarding, payback is when the net profit reaches CAC:
    # draw that path, starting from minus the (median) onboarding cost at acquisition.
    profit, what, start = "cumulative_gross_profit", "gross profit", 0.0
    if has_costs_below_gross_profit(ds, segment):
        profit, what = "cumulative_net_profit", "net profit"
        start = -float(np.median(ds["cost_onboarding"].sel(segment=segment).values))
    _draw_bands(ax, ds, profit, segment, x, BLUE, prepend=start, periods=months)

    cac = _finite(ds["cac"].sel(segment=segment).values)
    cac_median = float(np.median(cac))
    if np.ptp(cac) > 0:
        lo, hi = np.quantile(cac, [0.05, 0.95])
        ax.axhspan(
            lo,
            hi,
            color=_tint(ORANGE, 0.25),
            linewidth=0,
            zorder=0.5,
            label=f"CAC 5-95%: {_money(lo)} to {_money(hi)}",
        )
    (cac_line,) = ax.plot(
        [x[0], x[-1]],
        [cac_median, cac_median],
        color=ORANGE,
        linewidth=1.8,
        linestyle="--",
        label=f"CAC (median): {_money(cac_median)}",
        zorder=11,
    )
    cac_line.set_gid("cac")
    ax.set_ylabel(f"cumulative {what}\n{money}")
    _money_axis(ax.yaxis)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title(_title(ds, f"Cumulative {what} vs CAC", segment), loc="left")
    _side_legend(fig, ax)

    payback = ds["payback_months"].sel(segment=segment).values
    never = float(np.mean(np.isnan(payback)))
    paid = _finite(payback)
    if paid.size:
        span = float(paid.max() - paid.min())
        width = _nice_width(span, 30, (0.25, 0.5, 1.0, 2.0, 3.0, 6.0, 12.0))
        edges = np.arange(
            math.floor(paid.min() / width) * width,
            paid.max() + width,
            width,
        )
        if edges.size < 2:
            edges = np.array([edges[0], edges[0] + width])
        hist_ax.hist(
            paid,
            bins=edges,
            weights=np.full(paid.size, 1.0 / payback.size),
            color=_tint(BLUE, 0.75),
            edgecolor="white",
            linewidth=0.5,
        )
        # Median across all trials, "never" counting as longer than any payback.
        median = float(band_quantiles(payback, np.array([0.5]))[0])
        if math.isfinite(median) and median <= months:
            hist_ax.axvline(median, color=GREY, linewidth=1.2, linestyle=":")
            hist_ax.annotate(
                f"median {median:.1f}",
                (median, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(4, -4),
                textcoords="offset points",
                va="top",
                fontsize="small",
                color=GREY,
            )
    else:
        hist_ax.text(
            0.5,
            0.5,
            "no trial pays back CAC within the horizon",
            transform=hist_ax.transAxes,
            ha="center",
            va="center",
        )
    heading = f"CAC payback across trials; never within {horizon} months: {never:.1%}"
    if months < horizon:
        later = np.sum(paid > months) / payback.size
        heading += f"; after {months} months: {later:.1%}"
    hist_ax.set_title(heading, loc="left", fontsize="medium")
    hist_ax.set_ylabel("share of trials")
    _percent_axis(hist_ax.yaxis)
    hist_ax.set_xlabel(MONTHS_LABEL)
    hist_ax.set_xlim(0, months)
    _month_ticks(hist_ax.xaxis, months)
    hist_ax.grid(True, axis="y", color="#e5e5e5", linewidth=0.8)
    hist_ax.set_axisbelow(True)
    return fig


def ltv_cac_histogram(ds: xr.Dataset, segment: str = "all"):
    """Histogram of LTV:CAC across trials against the benchmark bands.

    Vertical lines at 1, 3 and 5; bars and background coloured by band; the
    legend gives each band's probability across trials and its Monte Carlo
    standard error (:func:`ltvsim.analysis.band_probabilities`).
    """
    _check_segment(ds, segment)
    Patch = _mpl()[4]
    fig = _figure(9.0, 5.6)
    ax = fig.subplots()
    ratio = ds["ltv_cac"].sel(segment=segment).values
    values = _finite(ratio)
    bands = band_probabilities(ds, segment)["ltv_cac"]

    left = min(0.0, float(values.min()) if values.size else 0.0)
    right = max(6.0, float(values.max()) * 1.04 if values.size else 6.0)
    span = float(np.ptp(values)) if values.size else 1.0
    width = _nice_width(span, 40, (0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0))
    if values.size:
        start = math.floor(values.min() / width) * width
        edges = np.arange(start, values.max() + width, width)
        if edges.size < 2:
            edges = np.array([start, start + width])
        counts, edges = np.histogram(values, bins=edges)
        centres = (edges[:-1] + edges[1:]) / 2
        colours = [LTV_CAC_COLOURS[_band_index(c)] for c in centres]
        ax.bar(
            edges[:-1],
            counts / ratio.size,
            width=np.diff(edges),
            align="edge",
            color=colours,
            edgecolor="white",
            linewidth=0.5,
            zorder=2,
        )

    handles = []
    for i, ((_, low, high), band) in enumerate(zip(LTV_CAC_BANDS, bands, strict=True)):
        ax.axvspan(max(low, left), min(high, right), color=_tint(LTV_CAC_COLOURS[i], 0.1), zorder=0)
        label = f"{band['band']}: " + probability_text(
            band["probability"], band["std_error"], ds.sizes["trial"]
        )
        handles.append(Patch(color=LTV_CAC_COLOURS[i], label=label))
    for boundary in (1.0, 3.0, 5.0):
        ax.axvline(boundary, color=GREY, linewidth=1.0, linestyle="--", zorder=3)
    ax.set_xlim(left, right)
    ax.set_xlabel("LTV:CAC (gross-profit LTV / CAC)")
    ax.set_ylabel("share of trials")
    _percent_axis(ax.yaxis)
    ax.grid(True, axis="y", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title(_title(ds, "LTV:CAC across trials", segment), loc="left")
    legend = fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=2,
        fontsize="small",
        title="P(band) across trials ± MC standard error",
        title_fontsize="small",
        frameon=False,
    )
    legend.set_gid("bands")
    return fig


def _band_index(value: float) -> int:
    for i, (_, low, high) in enumerate(LTV_CAC_BANDS):
        if low <= value < high:
            return i
    return len(LTV_CAC_BANDS) - 1


def payback_cdf(ds: xr.Dataset, segment: str = "all"):
    """Empirical CDF of CAC payback across trials.

    Trials that never pay back within the horizon count as infinitely long,
    so the curve levels off below 1 by their share. Vertical lines at the
    benchmarks 6, 12 and 18 months, each marked with P(payback <= m).
    """
    _check_segment(ds, segment)
    fig = _figure(9.0, 5.4)
    ax = fig.subplots()
    horizon = ds.sizes["period"]
    payback = ds["payback_months"].sel(segment=segment).values
    n = payback.size
    paid = np.sort(_finite(payback))
    never = 1.0 - paid.size / n

    if never > 0 or not paid.size:
        right = float(horizon)
    else:
        right = min(float(horizon), max(24.0, math.ceil(paid.max() * 1.1)))
    x = np.concatenate([[0.0], paid, [right]])
    y = np.concatenate([[0.0], np.arange(1, paid.size + 1) / n, [paid.size / n]])
    (line,) = ax.step(x, y, where="post", color=BLUE, linewidth=2.0, zorder=5)
    line.set_gid("cdf")
    if never > 0:
        ax.axhline(1.0 - never, color=GREY, linewidth=0.8, linestyle=":")

    lines = []
    for months, name in PAYBACK_MARKS:
        if months > right:
            continue
        p = float(np.mean(paid <= months)) * paid.size / n if paid.size else 0.0
        ax.axvline(months, color=GREY, linewidth=1.0, linestyle="--", zorder=3)
        ax.plot([months], [p], "o", color=BLUE, markersize=5, zorder=6)
        lines.append(f"P(≤ {months} months, {name}) = {p:.1%}")
    lines.append(f"never within {horizon} months: {never:.1%}")

    # The box goes where the curve is not: lower right when most trials have
    # paid back by 55% of the axis, upper left when few have by 45%, else below.
    def cdf(months: float) -> float:
        return float(np.sum(paid <= months)) / n

    box = {"fontsize": "small", "zorder": 10}
    box["bbox"] = {"boxstyle": "round", "facecolor": "white", "edgecolor": "#cccccc"}
    if cdf(0.55 * right) >= 0.4:
        ax.text(0.98, 0.04, "\n".join(lines), transform=ax.transAxes, ha="right", **box)
    elif cdf(0.45 * right) <= 0.55:
        ax.text(0.02, 0.96, "\n".join(lines), transform=ax.transAxes, va="top", **box)
    else:  # beside the axes (constrained layout makes room)
        ax.text(1.02, 0.5, "\n".join(lines), transform=ax.transAxes, va="center", **box)
    ax.set_xlim(0, right)
    ax.set_ylim(0, 1)
    _month_ticks(ax.xaxis, right, minimum=6 if right >= 18 else 1)
    _percent_axis(ax.yaxis)
    ax.set_xlabel(f"CAC payback, {MONTHS_LABEL}")
    ax.set_ylabel("share of trials paid back")
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title(_title(ds, "CAC payback, cumulative distribution", segment), loc="left")
    return fig


def survival_bands(ds: xr.Dataset, segment: str = "all"):
    """Share of acquired customers still active, by month: median and bands across trials."""
    _check_segment(ds, segment)
    fig = _figure(9.0, 5.4)
    ax = fig.subplots()
    horizon = ds.sizes["period"]
    x = ds["period"].values.astype(float)
    _draw_bands(ax, ds, "survival", segment, x, BLUE)
    lifetime = _finite(ds["lifetime_months"].sel(segment=segment).values)
    ax.set_xlim(0, x[-1] if x.size > 1 else 1)
    ax.set_ylim(0, 1.02)
    _month_ticks(ax.xaxis, horizon)
    _percent_axis(ax.yaxis)
    ax.set_xlabel(MONTHS_LABEL)
    ax.set_ylabel("share of acquired customers active")
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title(_title(ds, "Survival", segment), loc="left")
    legend = _side_legend(fig, ax)
    if lifetime.size:
        legend.set_title(
            f"mean months active within\nthe {horizon}-month horizon\n"
            f"(median across trials): {np.median(lifetime):.1f}",
            prop={"size": "small"},
        )
        legend.get_title().set_multialignment("left")
    return fig


# ---------------------------------------------------------------------------
# charts of plain numbers (sensitivity and scenarios)


def _value_formatter(values) -> Callable[[float], str]:
    values = _finite(values)
    big = values.size and np.max(np.abs(values)) >= 1000
    return (lambda v: f"{v:,.0f}") if big else (lambda v: f"{v:,.3g}")


def tornado(
    levers: Sequence[str],
    low: Sequence[float],
    high: Sequence[float],
    base: float,
    metric_label: str,
    swing_labels: tuple[str, str] | None = None,
):
    """Tornado chart: the metric at each lever's low and high swing around ``base``.

    Bars are sorted by ``|high - low|``, largest on top; the base value is a
    vertical line. ``swing_labels`` names the two swings in the legend
    (default ``("low", "high")``).
    """
    low = np.asarray(low, dtype=float)
    high = np.asarray(high, dtype=float)
    levers = [str(name) for name in levers]
    if not len(levers) == low.size == high.size:
        raise ValueError(
            f"levers, low and high must have the same length, got "
            f"{len(levers)}, {low.size}, {high.size}"
        )
    low_label, high_label = swing_labels or ("low", "high")
    order = np.argsort(-np.abs(high - low), kind="stable")
    fig = _figure(9.0, 1.6 + 0.45 * max(1, len(levers)))
    ax = fig.subplots()
    Patch = _mpl()[4]
    fmt = _value_formatter(np.concatenate([low, high, [base]]))
    y = np.arange(len(levers))[::-1]  # first in order on top
    for row, i in zip(y, order, strict=True):
        swings = [(low[i], LOW_COLOUR), (high[i], BLUE)]
        # The longer bar first, so that a swing on the same side stays visible.
        swings.sort(key=lambda swing: -abs(swing[0] - base))
        for k, (value, colour) in enumerate(swings):
            ax.barh(row, value - base, left=base, height=0.6, color=colour, zorder=2 + k)
            if k == 1 and value == swings[0][0]:
                continue  # same value as the other swing: one label
            ax.annotate(
                fmt(value),
                (value, row),
                xytext=(4 if value >= base else -4, 0),
                textcoords="offset points",
                ha="left" if value >= base else "right",
                va="center",
                fontsize="small",
            )
    base_line = ax.axvline(base, color=GREY, linewidth=1.2, zorder=4, label=f"base: {fmt(base)}")
    ax.set_yticks(y, [levers[i] for i in order])
    ax.set_xlabel(metric_label)
    ax.xaxis.set_major_formatter(_mpl()[3].FuncFormatter(lambda v, _: fmt(v)))
    ax.margins(x=0.15)
    ax.grid(True, axis="x", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    handles = [
        base_line,
        Patch(color=LOW_COLOUR, label=low_label),
        Patch(color=BLUE, label=high_label),
    ]
    fig.legend(
        handles=handles, loc="outside lower center", ncols=3, fontsize="small", frameon=False
    )
    ax.set_title(f"Sensitivity of {metric_label}", loc="left")
    return fig


def scenario_comparison(
    names: Sequence[str],
    means: Sequence[float],
    ses: Sequence[float],
    metric_label: str,
    base_name: str | None = None,
):
    """A metric per scenario as horizontal bars with ±2 Monte Carlo standard errors.

    Scenarios are drawn in the given order, first on top; ``base_name``
    highlights the base scenario and marks its value with a vertical line.
    """
    names = [str(name) for name in names]
    means = np.asarray(means, dtype=float)
    ses = np.asarray(ses, dtype=float)
    if not len(names) == means.size == ses.size:
        raise ValueError(
            f"names, means and ses must have the same length, got "
            f"{len(names)}, {means.size}, {ses.size}"
        )
    if base_name is not None and base_name not in names:
        raise ValueError(f"base_name {base_name!r} is not one of the scenarios {names}")
    fig = _figure(9.0, 1.6 + 0.45 * max(1, len(names)))
    ax = fig.subplots()
    fmt = _value_formatter(means)
    y = np.arange(len(names))[::-1]
    legend_handles = []
    colours = [ORANGE if name == base_name else BLUE for name in names]
    ax.barh(
        y,
        means,
        xerr=2 * ses,
        height=0.6,
        color=[_tint(c, 0.7) for c in colours],
        edgecolor=colours,
        error_kw={"ecolor": "black", "capsize": 4, "linewidth": 1.2},
        zorder=2,
    )
    for row, mean, se in zip(y, means, ses, strict=True):
        ax.annotate(
            _plus_minus(mean, 2 * se),
            (mean + 2 * se if mean >= 0 else mean - 2 * se, row),
            xytext=(6 if mean >= 0 else -6, 0),
            textcoords="offset points",
            ha="left" if mean >= 0 else "right",
            va="center",
            fontsize="small",
        )
    if base_name is not None:
        legend_handles.append(
            ax.axvline(
                means[names.index(base_name)],
                color=ORANGE,
                linewidth=1.2,
                linestyle="--",
                label=f"base scenario: {base_name}",
            )
        )
        fig.legend(
            handles=legend_handles, loc="outside lower center", fontsize="small", frameon=False
        )
    ax.set_yticks(y, names)
    ax.set_xlabel(f"{metric_label} (error bars: ±2 MC standard errors)")
    ax.xaxis.set_major_formatter(_mpl()[3].FuncFormatter(lambda v, _: fmt(v)))
    ax.margins(x=0.2)
    ax.grid(True, axis="x", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_title(f"{metric_label} by scenario", loc="left")
    return fig


def _plus_minus(value: float, error: float) -> str:
    """``value ± error`` rounded to the error's first significant digit."""
    if not math.isfinite(error) or error <= 0:
        return _value_formatter([value])(value)
    decimals = max(0, -math.floor(math.log10(error)))
    return f"{value:,.{decimals}f} ± {error:,.{decimals}f}"


# ---------------------------------------------------------------------------
# output


def forecast_chart(ds: xr.Dataset, variable: str = "mrr", realised=None):
    """Fan chart of a company forecast (:func:`ltvsim.forecast.forecast`) by calendar month.

    The median across trials of ``variable`` (``mrr``, ``gross_profit`` or
    ``active_customers``) with nested bands for every pair of quantiles in
    ``ds.quantile`` (outermost lightest), and the median of the existing
    base's share (dashed) when the result has one. ``realised`` (optional, one
    value per month) is drawn as black dots: what actually happened, for a
    backtest.
    """
    names = {
        "mrr": "MRR",
        "gross_profit": "gross profit per month",
        "active_customers": "active customers",
    }
    if variable not in names:
        raise ValueError(f"unknown forecast variable {variable!r}; choose one of {list(names)}")
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot()
    band = ds[f"{variable}_band"]
    x = ds["month"].values
    pairs = _band_pairs(band["quantile"].values)
    for i, (lo, hi) in enumerate(pairs):
        shade = 0.22 + 0.28 * i / max(1, len(pairs) - 1) if len(pairs) > 1 else 0.3
        ax.fill_between(
            x,
            band.sel(quantile=lo).values,
            band.sel(quantile=hi).values,
            color=_tint(BLUE, shade),
            linewidth=0,
            label=f"{_percent_label(lo)}-{_percent_label(hi)}% of trials",
            zorder=1 + i,
        )
    median = band_quantiles(ds[variable].transpose("trial", "month").values, np.array([0.5]))[0]
    ax.plot(x, median, color=BLUE, linewidth=2.0, label="median", zorder=10)
    base_name = f"base_{variable}"
    if base_name in ds and bool((ds["new_customers"] > 0).any()):
        base = band_quantiles(ds[base_name].transpose("trial", "month").values, np.array([0.5]))
        ax.plot(x, base[0], color=GREY, linestyle="--", linewidth=1.5, label="existing base")
    if realised is not None:
        ax.plot(x, realised, "o", color="black", markersize=3.5, label="realised", zorder=11)
    unit = ds[variable].attrs.get("units", "")
    ax.set_ylabel(f"{names[variable]} ({unit})")
    ax.set_xlabel("months from the forecast start (0 = now)")
    _month_ticks(ax.xaxis, float(x[-1]) if len(x) else 1.0)
    if variable != "active_customers":
        _money_axis(ax.yaxis)
    ax.set_title(f"forecast of {names[variable]}: {ds.sizes['trial']:,} trials", loc="left")
    ax.grid(True, alpha=0.3)
    _side_legend(fig, ax)
    return fig


def kinds() -> dict[str, Callable]:
    """Chart kinds of a result by their command-line name: ``ltvsim plot --kind NAME``."""
    return {
        "fan": fan_chart,
        "ltv-cac": ltv_cac_histogram,
        "payback": payback_cdf,
        "survival": survival_bands,
    }


def png_bytes(fig, dpi: int = 120) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (see :func:`ltvsim.io.atomic_write`)."""
    data = png_bytes(fig, dpi=dpi)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def report_html(
    ds: xr.Dataset,
    charts: Sequence[tuple[str, object]] | None = None,
    extra_sections: Sequence[tuple[str, str]] | None = None,
) -> str:
    """One self-contained HTML page: run facts, summaries, band probabilities, charts.

    The page has no scripts and no external files: CSS is inline and every
    chart is a base64 PNG data URI. ``charts`` adds ``(title, Figure)`` pairs
    after the standard charts of segment ``"all"``; ``extra_sections`` adds
    ``(title, html)`` sections, the html inserted as given (the caller's,
    trusted) and the title escaped.
    """
    segments = [str(s) for s in ds["segment"].values]
    ordered = (["all"] if "all" in segments else []) + [s for s in segments if s != "all"]
    main = "all" if "all" in segments else segments[0]
    title = f"ltvsim report: {ds.attrs.get('currency', '')} customer lifetime value"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head><body><main>",
        f"<h1>{_e(title)}</h1>",
        _facts_html(ds),
        "<h2>Summary across trials</h2>",
        "<p class=note>Money is per acquired customer. Gross profit is after cost to "
        "serve and payment fees; net LTV, shown when there is retention spend or "
        "onboarding, also subtracts those, and payback then recovers CAC from net profit. "
        "LTV:CAC uses gross-profit LTV; "
        "revenue LTV is never to be compared with CAC. Payback statistics are over the "
        "trials that pay back within the horizon; a quantile that falls among the "
        "others reads &ldquo;never&rdquo;. &plusmn; is the Monte Carlo standard error "
        "of the mean.</p>",
    ]
    for segment in ordered:
        parts.append(f"<h3>Segment {_e(segment)}</h3>")
        parts.append(_summary_html(ds, segment))
    parts.append("<h2>Probability of each benchmark band</h2>")
    parts.append(
        "<p class=note>Share of trials in the band &plusmn; its Monte Carlo standard error.</p>"
    )
    parts.append(_bands_html(ds, ordered))
    parts.append(f"<h2>Charts: segment {_e(main)}</h2>")
    for kind, function in kinds().items():
        fig = function(ds, segment=main)
        parts.append(_figure_html(f"{kind}: {function.__doc__.splitlines()[0]}", fig))
    for chart_title, fig in charts or ():
        parts.append(_figure_html(chart_title, fig))
    for section_title, body in extra_sections or ():
        parts.append(f"<section><h2>{_e(section_title)}</h2>{body}</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def worksheet_html(sheet) -> str:
    """The worksheet and its bridge to the simulation (a :class:`ltvsim.worksheet.Worksheet`)."""
    rows = [*sheet.segments, {"segment": "averaged inputs", **sheet.blended}]
    shown = rows if len(rows) > 2 else rows[-1:]
    head = "".join(f"<th>{_e(r['segment'] if len(shown) > 1 else 'all')}</th>" for r in shown)
    lines = [
        ("1. average customer value (ARPA / month)", lambda r: f"{r['arpa_monthly']:,.0f}"),
        ("2. gross margin", lambda r: f"{r['gross_margin']:.1%}"),
        (
            "3. monthly churn → lifetime (months)",
            lambda r: f"{r['monthly_churn']:.2%} → {r['lifetime_months']:.1f}",
        ),
        ("4. LTV = ARPA × margin × lifetime", lambda r: f"{r['ltv']:,.0f}"),
        ("5. CAC", lambda r: f"{r['cac']:,.0f}"),
        ("LTV:CAC", lambda r: f"{r['ltv_cac']:.2f} ({r['ltv_cac_band']})"),
        (
            "simple payback (months)",
            lambda r: f"{r['simple_payback_months']:.1f} ({r['payback_band']})",
        ),
    ]
    body = "".join(
        f"<tr><td>{_e(label)}</td>" + "".join(f"<td>{_e(cell(r))}</td>" for r in shown) + "</tr>"
        for label, cell in lines
    )
    steps = "<table><tr><th>step</th>" + head + "</tr>" + body + "</table>"
    bridge_rows = "".join(
        f"<tr><td>{_e(step.label)}</td><td>{step.ltv:,.0f}</td>"
        f"<td>{'' if step.change is None else f'{step.change:+,.0f}'}</td>"
        f"<td>{'' if step.change_se is None else f'{step.change_se:,.0f}'}</td>"
        f"<td>{_e(step.how)}</td></tr>"
        for step in sheet.bridge
    )
    bridge = (
        "<table><tr><th>step</th><th>mean LTV</th><th>change</th><th>&plusmn; MC se</th>"
        f"<th>how</th></tr>{bridge_rows}</table>"
    )
    return (
        f"<p class=note>Point inputs (distribution means), money in {_e(sheet.currency)} per "
        "acquired customer. The bridge adds what the formula leaves out one step at a time; "
        "simulated steps share their random numbers, so each change carries a small paired "
        f"standard error.</p>{steps}<h3>From the formula to the simulation</h3>{bridge}"
        + (averaging_html(sheet.averaging) if sheet.averaging is not None else "")
    )


def averaging_html(gap) -> str:
    """The naive average of the segments beside the correct blend (:mod:`ltvsim.mix`)."""
    averaged = ", ".join(f"{k} = {v:,.6g}" for k, v in gap.averaged.items()) or "none"

    def cell(row, key):
        if row["measure"].startswith("P("):
            return f"{row[key]:+.1%}" if key == "difference" else f"{row[key]:.1%}"
        pattern = ",.2f" if "LTV:CAC" in row["measure"] else ",.0f"
        return format(row[key], ("+" if key == "difference" else "") + pattern)

    rows = "".join(
        f"<tr><td>{_e(r['measure'])}</td>"
        + "".join(f"<td>{_e(cell(r, k))}</td>" for k in ("blend", "naive", "difference"))
        + f"<td>{_e(cell(r, 'difference_se').lstrip('+'))}</td></tr>"
        for r in gap.rows
    )
    return (
        "<h3>Averaging the segments: the seeds' mistake, measured</h3>"
        "<p class=note>One segment whose inputs are the share-weighted averages of the "
        "segments' (a distribution by its mean; differing churn as one monthly rate), "
        f"simulated with the same seed. Averaged inputs: {_e(averaged)}.</p>"
        "<table><tr><th>measure</th><th>segments blended (correct)</th>"
        "<th>averaged inputs</th><th>difference</th><th>&plusmn; MC se</th></tr>"
        f"{rows}</table>"
    )


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#222;background:#fff;margin:0;line-height:1.4}
main{max-width:1100px;margin:0 auto;padding:1.5rem 2rem 3rem}
h1{font-size:1.6rem;margin:.2rem 0 1rem}
h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h3{font-size:1.05rem;margin:1.2rem 0 .4rem}
table{border-collapse:collapse;font-size:.9rem;margin:.3rem 0 .8rem}
table.summary{min-width:56rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid #e5e5e5;text-align:right;
white-space:nowrap}
th{background:#f4f6f8;font-weight:600}
th:first-child,td:first-child{text-align:left}
td.units{text-align:left;color:#666}
tr.group th{background:#fff;text-align:left;padding-top:.7rem}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.15rem 1rem;
font-size:.92rem;margin:0}
dl.facts dt{color:#666}
dl.facts dd{margin:0}
.note{color:#555;font-size:.88rem;max-width:60rem}
code{font-size:.85em;color:#666}
figure{margin:1.2rem 0}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-weight:600;margin-bottom:.3rem}
""".strip()


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _facts_html(ds: xr.Dataset) -> str:
    attrs = ds.attrs
    facts = [
        ("trials", _count(attrs.get("trials", ds.sizes["trial"]))),
        ("customers per segment", _count(attrs.get("customers_per_segment"))),
        ("horizon", f"{_count(attrs.get('horizon_months', ds.sizes['period']))} months"),
        ("seed", attrs.get("seed")),
        ("discount timing", attrs.get("discount_timing")),
        ("currency", attrs.get("currency")),
        ("ltvsim version", attrs.get("ltvsim_version")),
    ]
    shares = _segment_shares(ds)
    if shares:
        facts.append(("segments (share)", ", ".join(f"{n} ({s:.0%})" for n, s in shares)))
        if attrs.get("segment_mix"):
            facts.append(("segment mix", attrs["segment_mix"]))
    if attrs.get("payments"):
        facts.append(("payments", attrs["payments"]))
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e('—' if v is None else v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{rows}</dl>'


def _count(value) -> str:
    if value is None:
        return "—"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def _segment_shares(ds: xr.Dataset) -> list[tuple[str, float]]:
    try:
        config = json.loads(ds.attrs.get("config", "{}"))
        return [(str(s["name"]), float(s["share"])) for s in config.get("segments", [])]
    except (TypeError, ValueError, KeyError, AttributeError):
        return []


def _summary_html(ds: xr.Dataset, segment: str) -> str:
    rows = summary_table(ds, segment)
    quantile_keys = [k for k in rows[0] if k.startswith("p") and k[1:].isdigit()]
    header = ["measure", "units", "mean", "± MC se", *(f"{k[1:]}%" for k in quantile_keys)]
    out = ['<table class="summary"><thead><tr>']
    out += [f"<th>{_e(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for row in rows:
        name = row["variable"]
        never = "never" if name == "payback_months" else "—"
        label = MEASURE_NAMES.get(name, name)
        if "never" in row:
            label += f" (never: {row['never']:.1%})"
        units = {"1": "ratio"}.get(row["units"], row["units"])
        digits = summary_digits(row["units"])
        cells = [
            f"<td>{_e(label)} <code>{_e(name)}</code></td>",
            f'<td class="units">{_e(units)}</td>',
            f"<td>{_e(format_number(row['mean'], digits, never))}</td>",
            f"<td>{_e(format_number(row['mc_se'], digits + 1 if digits else 0, '—'))}</td>",
            *(f"<td>{_e(format_number(row[k], digits, never))}</td>" for k in quantile_keys),
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _bands_html(ds: xr.Dataset, segments: Sequence[str]) -> str:
    probabilities = {s: band_probabilities(ds, s) for s in segments}
    groups = (("ltv_cac", "LTV:CAC"), ("payback_months", "CAC payback"))
    out = ["<table><thead><tr><th>band</th>"]
    out += [f"<th>{_e(s)}</th>" for s in segments]
    out.append("</tr></thead><tbody>")
    for key, heading in groups:
        out.append(f'<tr class="group"><th colspan="{len(segments) + 1}">{_e(heading)}</th></tr>')
        first = probabilities[segments[0]][key]
        for i, band in enumerate(first):
            cells = [f"<td>{_e(heading)} {_e(band['band'])}</td>"]
            for s in segments:
                b = probabilities[s][key][i]
                text = probability_text(b["probability"], b["std_error"], ds.sizes["trial"])
                cells.append(f"<td>{_e(text)}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _figure_html(title: str, fig) -> str:
    data = base64.b64encode(png_bytes(fig, dpi=100)).decode("ascii")
    return (
        f"<figure><figcaption>{_e(title)}</figcaption>"
        f'<img alt="{_e(title)}" src="data:image/png;base64,{data}"></figure>'
    )
