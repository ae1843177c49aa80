"""Backtest of ltvsim.forecast: do its 80% and 95% bands cover what happens?

Each replication r = 0 … R−1 generates a company's 48-month history with
known sBG churn (alpha = 0.9, beta = 12 per monthly renewal; Poisson(100) new
customers a month; ``ltvsim.forecast.cohort_history(..., seed=r)``, plain
numpy, independent of the simulation kernel), fits the sBG model on every
cohort's counts up to month 36, forecasts months 36–47 from the customers
active in month 36 plus Poisson(100) new customers a month, and checks whether
the realised active customers of months 37–47 fall in the bands
(``backtest_history``, ``band_coverage``). Coverage is reported by months
ahead with its binomial standard error sqrt(p(1−p)/R), and pooled over the
11 months with the standard error of the per-history means (the months of one
history are correlated).

Two ablations show what the bands are made of: "point estimates" (every trial
uses the fitted alpha and beta: customer-level and acquisition noise only) and
"parameters only" (each trial's expected path given its draws: parameter
uncertainty only, no customer-level noise).

Also the published check: Fader & Hardie (2007)'s "regular" and "high end"
cohorts, fitted on years 0–7, forecast years 8–12 from the year-7 survivors.

Writes tests/data/sbg_history.csv (replication 0's history), docs/backtest-
coverage.png, docs/backtest-example.png and prints the README's markdown
tables. Run from the repository root:

    python benchmarks/backtest_forecast.py --replications 200
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from scipy.special import betaln

from ltvsim import plot
from ltvsim.fit import fit_sbg
from ltvsim.forecast import (
    BANDS,
    CustomerBase,
    backtest_history,
    band_coverage,
    cohort_history,
    forecast,
)

ROOT = Path(__file__).resolve().parent.parent
ALPHA, BETA, NEW_PER_MONTH, MONTHS, CUTOFF = 0.9, 12.0, 100, 48, 36
# Fader & Hardie, "How to Project Customer Retention", J. Interactive Marketing
# 21(1), 2007, Table 1 (as in tests/test_fit.py): active at the start of years 0-12.
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394]


def write_history(active: np.ndarray, path: Path) -> None:
    header = "acquired_month," + ",".join(f"month_{t}" for t in range(active.shape[1]))
    rows = [f"{a}," + ",".join(str(int(v)) for v in active[a]) for a in range(active.shape[0])]
    path.write_text("\n".join([header, *rows]) + "\n")


def expected_paths(ds, active: np.ndarray) -> np.ndarray:
    """Each trial's expected active customers given its (alpha, beta) and acquisitions."""
    a, b = ds.churn_alpha.values[:, None], ds.churn_beta.values[:, None]
    t = np.arange(ds.sizes["month"])[None, :]
    out = np.zeros((ds.sizes["trial"], ds.sizes["month"]))
    for cohort in range(CUTOFF + 1):
        n = CUTOFF - cohort
        out += active[cohort, CUTOFF] * np.exp(betaln(a, b + n + t) - betaln(a, b + n))
    acquired = ds.new_customers.values
    for m in range(1, ds.sizes["month"]):
        s = np.exp(betaln(a, b + np.maximum(t - m, 0)) - betaln(a, b))
        out += acquired[:, m : m + 1] * np.where(t >= m, s, 0.0)
    return out


def run(replications: int, trials: int):
    inside = {k: {lvl: [] for lvl in BANDS} for k in ("full", "point", "parameters")}
    example = None
    for r in range(replications):
        active = cohort_history(ALPHA, BETA, MONTHS, NEW_PER_MONTH, seed=r)
        if r == 0:
            write_history(active, ROOT / "tests" / "data" / "sbg_history.csv")
        ds, realised = backtest_history(active, CUTOFF, NEW_PER_MONTH, trials=trials, seed=r)
        if r == 0:
            example = (ds, realised)
        point, _ = backtest_history(
            active, CUTOFF, NEW_PER_MONTH, trials=trials, seed=r, parameter_uncertainty=False
        )
        for key, result in (("full", ds), ("point", point)):
            for level, hit in band_coverage(result, realised).items():
                inside[key][level].append(hit[1:])
        expected = expected_paths(ds, active)
        for level, (lo, hi) in BANDS.items():
            low, high = np.quantile(expected, [lo, hi], axis=0)
            inside["parameters"][level].append(((realised >= low) & (realised <= high))[1:])
    return {k: {lvl: np.array(v) for lvl, v in d.items()} for k, d in inside.items()}, example


def coverage_table(inside) -> str:
    full = inside["full"]
    replications = len(full[0.8])
    lines = [
        "| months ahead | 80% band | 95% band |",
        "|---|---|---|",
    ]
    for h in (1, 3, 6, 9, 11):
        cells = []
        for level in BANDS:
            p = full[level][:, h - 1].mean()
            cells.append(f"{p:.1%} ± {math.sqrt(p * (1 - p) / replications):.1%}")
        lines.append(f"| {h} | {cells[0]} | {cells[1]} |")
    lines.append("")
    lines.append("| bands from | 80% band (pooled, months 1-11) | 95% band (pooled) |")
    lines.append("|---|---|---|")
    names = {
        "full": "forecast (parameters + customers + acquisitions)",
        "point": "point estimates (customers + acquisitions only)",
        "parameters": "parameters only (expected path per trial)",
    }
    for key, name in names.items():
        cells = []
        for level in BANDS:
            per_history = inside[key][level].mean(axis=1)
            se = per_history.std(ddof=1) / math.sqrt(replications)
            cells.append(f"{per_history.mean():.1%} ± {se:.1%}")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def coverage_figure(inside, path: Path) -> None:
    fig = plot._figure(7.5, 3.8)
    ax = fig.add_subplot()
    full = inside["full"]
    replications = len(full[0.8])
    months = np.arange(1, full[0.8].shape[1] + 1)
    for level, colour in ((0.8, plot.BLUE), (0.95, plot.ORANGE)):
        p = full[level].mean(axis=0)
        se = np.sqrt(p * (1 - p) / replications)
        ax.errorbar(
            months,
            p,
            yerr=2 * se,
            fmt="o-",
            color=colour,
            capsize=3,
            label=f"{level:.0%} band: realised inside (± 2 SE)",
        )
        ax.axhline(level, color=colour, linestyle="--", linewidth=1)
    ax.set_xlabel("months ahead of the forecast start")
    ax.set_ylabel("share of histories")
    ax.set_ylim(0.6, 1.02)
    plot._percent_axis(ax.yaxis)
    ax.set_title(
        f"coverage of forecast bands, active customers: {replications} generated histories",
        loc="left",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    plot.save(fig, path)


def fader_hardie_table(trials: int) -> str:
    lines = [
        "| cohort | year | actual | forecast median | 80% band | 95% band |",
        "|---|---|---|---|---|---|",
    ]
    for name, data in (("regular", REGULAR), ("high end", HIGH_END)):
        fit = fit_sbg(data[:8])
        config = {
            "simulation": {"trials": trials, "seed": 1},
            "revenue": {"arpa_monthly": 1.0},
            "churn": {"model": "sbg", "alpha": fit.alpha, "beta": fit.beta, "renewal_months": 12},
        }
        base = CustomerBase([84], [data[7]], [1.0])
        ds = forecast(config, base, None, months=61, fit=fit)
        for year in range(8, 13):
            band = ds.active_customers_band.sel(month=12 * (year - 7)).values
            q = dict(zip(ds["quantile"].values.round(3), band, strict=True))
            lines.append(
                f"| {name} | {year} | {data[year]} | {q[0.5]:.0f} | "
                f"{q[0.1]:.0f}-{q[0.9]:.0f} | {q[0.025]:.0f}-{q[0.975]:.0f} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--trials", type=int, default=400)
    args = parser.parse_args()
    started = time.perf_counter()
    inside, (ds, realised) = run(args.replications, args.trials)
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    coverage_figure(inside, docs / "backtest-coverage.png")
    plot.save(plot.forecast_chart(ds, "active_customers", realised), docs / "backtest-example.png")
    print(coverage_table(inside))
    print()
    print(fader_hardie_table(4000))
    print(f"\n{args.replications} replications in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
