"""The command line: argument handling and printing, nothing else.

User mistakes (bad config, missing file, bad option) print one line on stderr
and exit with status 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import importlib.util
import json
import sys
import threading
import time
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .analysis import (
    band_probabilities,
    format_number,
    probability_text,
    retention_summary,
    summary_digits,
    summary_table,
    unbounded_warning,
)
from .config import ConfigError, read_toml
from .datafile import DataError
from .distributed import ClusterError
from .distributions import DistributionError
from .io import ResultFileError, is_zarr, open_result, write_result

app = typer.Typer(
    name="ltvsim",
    help="Monte Carlo customer lifetime value: LTV, LTV:CAC and CAC payback as distributions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
USER_ERRORS = (
    ConfigError,
    DataError,
    DistributionError,
    ResultFileError,
    FileNotFoundError,
    ClusterError,
)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="table for people, json for scripts")
]
ConfigArgument = Annotated[Path, typer.Argument(help="TOML config file")]
ResultArgument = Annotated[Path, typer.Argument(help="result file written by 'ltvsim run'")]
TrialsOption = Annotated[int | None, typer.Option(help="override simulation.trials")]
CustomersOption = Annotated[int | None, typer.Option(help="override simulation.customers")]
SeedOption = Annotated[int | None, typer.Option(help="override simulation.seed")]
ThreadsOption = Annotated[int | None, typer.Option(help="numba threads (result is the same)")]
SegmentOption = Annotated[str, typer.Option(help="segment to analyse")]


def _fail(message: str) -> typer.Exit:
    # One line, printed as given: no rich markup (a message may contain "[discount]")
    # and no wrapping at the terminal width.
    line = Text.assemble(("error:", "bold red"), " ", " ".join(message.split()))
    Console(stderr=True, soft_wrap=True).print(line, highlight=False)
    return typer.Exit(2)


@app.command()
def run(
    config: ConfigArgument,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="result file [default: CONFIG.nc]")
    ] = None,
    trials: TrialsOption = None,
    customers: CustomersOption = None,
    seed: SeedOption = None,
    threads: ThreadsOption = None,
    target_rel_error: Annotated[
        float | None,
        typer.Option(
            help="instead of a fixed trial count, add trials until the MC standard error of "
            "mean discounted LTV is at most this fraction of it (e.g. 0.005)"
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="run the blocks on the Dask cluster at this address (tcp://HOST:8786)"),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="finish an interrupted run from OUTPUT.partial")
    ] = False,
    block_trials: Annotated[
        int | None, typer.Option(help="trials per block (the result is the same)")
    ] = None,
    fmt: FormatOption = Format.table,
):
    """Simulate CONFIG, print the summary and write the result (netCDF4, or zarr for *.zarr).

    Completed blocks of trials are kept in OUTPUT.partial until the result is
    written; after an interruption, the same command with --resume finishes it.

    Example: ltvsim run configs/saas.toml -o saas.nc --trials 5000

    Example: ltvsim run configs/saas.toml --target-rel-error 0.005

    Example: ltvsim run configs/saas.toml -o big.zarr --trials 200000 --scheduler tcp://head:8786
    """
    from .config import load_config
    from .runner import checkpoint_dir, run_to_file
    from .simulate import simulate

    # Import what is needed after the kernel while the kernel (which releases
    # the GIL) runs: the netCDF writer; and, when the cluster extra is
    # installed, dask and distributed, which xarray imports on the first
    # Variable and on writing (~0.3 s each).
    threading.Thread(
        target=_import_available, args=("h5netcdf", "dask.array", "distributed"), daemon=True
    ).start()
    output = output or Path(config.stem + ".nc")
    client = None
    try:
        overrides = {"trials": trials, "customers": customers, "seed": seed}
        given = {f"simulation.{k}": v for k, v in overrides.items() if v is not None}
        settings = load_config(config).with_overrides(given)
        if scheduler is not None:
            from .distributed import connect

            client = connect(scheduler)
        started = time.perf_counter()
        if target_rel_error is not None:
            if resume:
                raise ConfigError("cannot be combined with --target-rel-error", "--resume")
            _netcdf_only(output, "--target-rel-error")
            ds = simulate(
                settings,
                threads=threads,
                progress=sys.stderr.isatty(),
                target_rel_error=target_rel_error,
                block_trials=block_trials,
                client=client,
            )
            write_result(ds, output)
        else:
            ds = run_to_file(
                settings,
                output,
                resume=resume,
                client=client,
                block_trials=block_trials,
                threads=threads,
                progress=sys.stderr.isatty(),
            )
        seconds = time.perf_counter() - started
    except USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        message = "interrupted; no output was written"
        if checkpoint_dir(output).is_dir():
            message += (
                f". Completed blocks are kept in {checkpoint_dir(output)}: "
                "run again with --resume to finish"
            )
        Console(stderr=True).print(message, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        if client is not None:
            client.close()
    _report(ds, fmt, extra={"output": str(output), "seconds": round(seconds, 3)})
    ds.close()


@app.command()
def summary(
    result: ResultArgument,
    fmt: FormatOption = Format.table,
):
    """Print the summary table of a saved result.

    Example: ltvsim summary saas.nc --format json
    """
    try:
        ds = open_result(result)
    except USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    _report(ds, fmt, extra={"result": str(result)})


def _netcdf_only(output: Path, what: str) -> None:
    """Refuse a zarr output where only netCDF is written."""
    if is_zarr(output):
        raise ConfigError(f"{what} writes netCDF only: give an output ending in .nc", "--output")


def _import_available(*modules: str) -> None:
    """Import each of ``modules`` whose package is installed."""
    for name in modules:
        if importlib.util.find_spec(name.split(".")[0]) is not None:
            importlib.import_module(name)


def _report(ds, fmt: Format, extra: dict):
    segments = [str(s) for s in ds.segment.values]
    segments = ["all"] + [s for s in segments if s != "all"]
    if fmt is Format.json:
        document = {
            "attrs": {
                k: ds.attrs[k]
                for k in (
                    "ltvsim_version",
                    "seed",
                    "trials",
                    "customers_per_segment",
                    "horizon_months",
                    "currency",
                    "discount_timing",
                )
            },
            **extra,
            "segments": {
                s: {
                    "summary": summary_table(ds, s),
                    "bands": band_probabilities(ds, s),
                    "retention": retention_summary(ds, s) if "nrr" in ds else None,
                }
                for s in segments
            },
        }
        typer.echo(json.dumps(document, indent=2, default=_plain))
        return
    console = Console()
    attrs = ds.attrs
    console.print(
        f"[bold]ltvsim[/] {attrs['trials']:,} trials × {attrs['customers_per_segment']:,} "
        f"customers × {attrs['horizon_months']} months, seed {attrs['seed']}, "
        f"discount timing {attrs['discount_timing']}; money in {attrs['currency']} "
        "per acquired customer",
        highlight=False,
    )
    if "target_rel_error" in attrs:
        verdict = "reached" if attrs["reached_target"] else "NOT reached (max trials)"
        console.print(
            f"target MC error of mean discounted LTV {attrs['target_rel_error']:.2%}: {verdict}, "
            f"{attrs['achieved_rel_error']:.3%} with {attrs['trials']:,} trials",
            highlight=False,
        )
    for segment in segments:
        console.print(_summary_table(ds, segment))
    console.print(_band_table(ds, segments))
    if "nrr" in ds and np.isfinite(ds["nrr"].values).any():  # MRR-based: subscription segments
        console.print(_retention_table(ds, segments))
    warning = unbounded_warning(ds)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    where = extra.get("output")
    if where:
        console.print(f"wrote {where} in {extra['seconds']:.2f} s", highlight=False)


def _retention_table(ds, segments: list[str]) -> Table:
    """Mean NRR and GRR of the first cohort years (at most 5 columns)."""
    table = Table(
        title="revenue retention by cohort year (mean across trials)", title_justify="left"
    )
    table.add_column("segment")
    table.add_column("measure")
    years = [int(y) for y in ds["cohort_year"].values[:5]]
    for y in years:
        table.add_column(f"year {y}", justify="right")
    for segment in segments:
        r = retention_summary(ds, segment)
        for name in ("nrr", "grr"):
            cells = [
                "—" if v is None else f"{format_number(v * 100, 1)}%" for v in r[name][: len(years)]
            ]
            table.add_row(segment, name.upper(), *cells)
    return table


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")


def _summary_table(ds, segment: str) -> Table:
    table = Table(title=f"segment: {segment}", title_justify="left")
    for column in ("measure", "mean", "± MC se", "5%", "50%", "95%"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for row in summary_table(ds, segment):
        digits = summary_digits(row["units"])
        name = row["variable"]
        if name == "payback_months":
            name += f" (never: {row['never']:.1%})"
        cells = [format_number(row[k], digits) for k in ("mean", "p5", "p50", "p95")]
        cells.insert(1, format_number(row["mc_se"], digits + 1))
        table.add_row(name, *cells)
    return table


def _band_table(ds, segments: list[str]) -> Table:
    table = Table(title="probability across trials (± MC standard error)", title_justify="left")
    table.add_column("band")
    for segment in segments:
        table.add_column(segment, justify="right")
    bands = {s: band_probabilities(ds, s) for s in segments}
    for measure, title in (("ltv_cac", "LTV:CAC"), ("payback_months", "payback")):
        for i, entry in enumerate(bands["all"][measure]):
            cells = []
            for s in segments:
                b = bands[s][measure][i]
                cells.append(probability_text(b["probability"], b["std_error"], ds.sizes["trial"]))
            table.add_row(f"{title} {entry['band']}", *cells)
    return table


@app.command()
def keys():
    """Print every config key with its unit, default and valid range (markdown)."""
    from .config import reference_table

    typer.echo(reference_table())


@app.command("fit")
def fit_command(
    events: Annotated[
        Path, typer.Argument(help="CSV event log: customer_id,date,event,mrr[,segment]")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="config to write [default: EVENTS-fitted.toml]"),
    ] = None,
    renewal_months: Annotated[
        int, typer.Option(help="months between renewals (12: annual contracts)")
    ] = 1,
    fmt: FormatOption = Format.table,
):
    """Fit churn, starting MRR and plan changes to an event log; write a config.

    Every estimate becomes a distribution with its standard error, so a run
    of the written config carries the estimation error. The file's header
    says where each number came from; CAC, margin, costs and the discount
    rate are not in a log: set them.

    Example: ltvsim fit examples/events.csv -o fitted.toml && ltvsim run fitted.toml
    """
    from .events import fit_events, to_toml
    from .io import atomic_write

    output = output or Path(events.stem + "-fitted.toml")
    try:
        fitted = fit_events(events, renewal_months=renewal_months)
        text = to_toml(fitted.to_config(), fitted.header())
        atomic_write(output, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    rows = [
        {"segment": s.name, "parameter": name, "estimate": value, "se": _float(se)}
        for s in fitted.segments
        for name, value, se in s.estimates()
    ]
    if fmt is Format.json:
        typer.echo(json.dumps({"output": str(output), "estimates": rows}, indent=2))
        return
    table = Table(
        title=f"fitted to {events} ({fitted.events:,} events; renewals every "
        f"{renewal_months} month(s))",
        title_justify="left",
    )
    for column in ("segment", "parameter", "estimate", "± se"):
        table.add_column(column, justify="left" if column in ("segment", "parameter") else "right")
    for row in rows:
        table.add_row(
            row["segment"],
            row["parameter"],
            f"{row['estimate']:.4g}",
            "—" if row["se"] is None else f"{row['se']:.2g}",
        )
    Console().print(table)
    Console(stderr=True).print(f"wrote {output}", highlight=False)


@app.command()
def worksheet(
    config: ConfigArgument,
    trials: TrialsOption = None,
    customers: CustomersOption = None,
    seed: SeedOption = None,
    threads: ThreadsOption = None,
    fmt: FormatOption = Format.table,
):
    """The seeds' five-step LTV worksheet beside the simulation, and why they differ.

    Example: ltvsim worksheet configs/saas.toml --trials 500
    """
    from .worksheet import worksheet as make_worksheet

    try:
        sheet = make_worksheet(
            config, trials=trials, customers=customers, seed=seed, threads=threads
        )
    except USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if fmt is Format.json:
        typer.echo(json.dumps(dataclasses.asdict(sheet), indent=2, default=_plain))
        return
    console = Console()
    for table in worksheet_tables(sheet):
        console.print(table)


def worksheet_tables(sheet) -> list[Table]:
    """The worksheet as rich tables (also used by the report)."""
    c = sheet.currency
    steps = Table(
        title=f"the five-step worksheet (point inputs; money in {c})", title_justify="left"
    )
    rows = [*sheet.segments, {"segment": "averaged inputs", **sheet.blended}]
    many = len(rows) > 2
    steps.add_column("step")
    shown = rows if many else rows[-1:]
    for row in shown:
        steps.add_column("all" if not many else row["segment"], justify="right")
    lines = [
        ("1. average customer value (ARPA / month)", "arpa_monthly", "{:,.0f}"),
        ("2. gross margin", "gross_margin", "{:.1%}"),
        ("3. monthly churn -> lifetime (months)", None, None),
        ("4. LTV = ARPA × margin × lifetime", "ltv", "{:,.0f}"),
        ("5. CAC", "cac", "{:,.0f}"),
        ("   LTV:CAC", "ltv_cac", "{:.2f}"),
        ("   band", "ltv_cac_band", "{}"),
        ("   simple payback (months)", "simple_payback_months", "{:.1f}"),
        ("   band", "payback_band", "{}"),
    ]
    for label, key, pattern in lines:
        if key is None:
            cells = [f"{r['monthly_churn']:.2%} -> {r['lifetime_months']:.1f}" for r in shown]
        else:
            cells = [pattern.format(r[key]) for r in shown]
        steps.add_row(label, *cells)
    bridge = Table(
        title="from the formula to the simulation (mean LTV per acquired customer)",
        title_justify="left",
    )
    for column in ("step", "LTV", "change", "± MC se", "how"):
        bridge.add_column(column, justify="left" if column in ("step", "how") else "right")
    for step in sheet.bridge:
        change = "" if step.change is None else f"{step.change:+,.0f}"
        se = "" if step.change_se is None else f"{step.change_se:,.0f}"
        bridge.add_row(step.label, f"{step.ltv:,.0f}", change, se, step.how)
    sim = Table(title="the simulated distribution (all segments)", title_justify="left")
    for column in ("measure", "mean", "5%", "95%"):
        sim.add_column(column, justify="left" if column == "measure" else "right")
    for name, values in sheet.simulated.items():
        if isinstance(values, dict):
            digits = 2 if "cac" in name else (1 if "months" in name else 0)
            sim.add_row(name, *(f"{values[k]:,.{digits}f}" for k in ("mean", "p5", "p95")))
    sim.add_row("P(LTV:CAC < 3)", f"{sheet.simulated['p_ltv_cac_below_3']:.1%}", "", "")
    tables = [steps, bridge, sim]
    if sheet.averaging is not None:
        tables.append(_averaging_table(sheet.averaging, c))
    return tables


def _averaging_table(gap, currency: str) -> Table:
    """The naive average of the segments beside the correct blend."""
    averaged = ", ".join(f"{k} = {v:,.6g}" for k, v in gap.averaged.items()) or "none"
    table = Table(
        title="averaging the segments (the seeds' mistake) vs simulating them separately "
        f"(money in {currency})",
        title_justify="left",
        caption=f"averaged inputs: {averaged}",
        caption_justify="left",
    )
    for column in ("measure", "segments blended", "averaged inputs", "difference", "± MC se"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for row in gap.rows:
        pattern = (
            "{:.1%}"
            if row["measure"].startswith("P(")
            else ("{:,.2f}" if "LTV:CAC" in row["measure"] else "{:,.0f}")
        )
        cells = [pattern.format(row[k]) for k in ("blend", "naive", "difference")]
        cells[2] = ("+" if row["difference"] > 0 else "") + cells[2]
        table.add_row(row["measure"], *cells, pattern.format(row["difference_se"]))
    return table


ScenarioOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scenario",
        "-s",
        help="NAME: key=value[, key=value ...], e.g. 'price +10%: revenue.arpa_monthly=1100'",
    ),
]


@app.command()
def compare(
    config: ConfigArgument,
    scenario: ScenarioOption = None,
    scenarios_file: Annotated[
        Path | None,
        typer.Option("--scenarios", help="TOML file of [scenarios.NAME] tables of overrides"),
    ] = None,
    trials: TrialsOption = None,
    customers: CustomersOption = None,
    seed: SeedOption = None,
    threads: ThreadsOption = None,
    segment: SegmentOption = "all",
    plot: Annotated[Path | None, typer.Option(help="also draw the comparison to this PNG")] = None,
    fmt: FormatOption = Format.table,
):
    """Compare scenarios against the base config with common random numbers.

    Example: ltvsim compare configs/saas.toml -s 'price +10%: revenue.arpa_monthly=1100'
    -s 'churn -20%: churn.monthly_rate={dist="beta", mean=0.016, sd=0.004}'
    """
    from .scenarios import compare as run_compare

    try:
        named = parse_scenarios(scenario or [], scenarios_file)
        result = run_compare(
            config, named, trials=trials, customers=customers, seed=seed, threads=threads
        )
        one = result.sel(segment=segment)
    except USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    except KeyError:
        raise _fail(f"no segment named {segment!r}") from None
    rows = []
    for name in one.scenario.values:
        s = one.sel(scenario=name)
        payback = np.nan_to_num(s.payback_months.values, nan=np.inf)
        rows.append(
            {
                "scenario": str(name),
                "mean_ltv_discounted": float(s.ltv_discounted.mean()),
                "difference": float(s.ltv_discounted_difference),
                "difference_se": _float(s.ltv_discounted_difference_se),
                "p_ltv_cac_at_least_3": float(s.p_ltv_cac_at_least_3),
                "p_difference_se": _float(s.p_ltv_cac_at_least_3_difference_se),
                "median_payback_months": _float(np.median(payback)),
            }
        )
    if plot is not None:
        names = [r["scenario"] for r in rows]
        errors = [
            float(one.ltv_discounted.sel(scenario=n).std() / np.sqrt(one.sizes["trial"]))
            for n in names
        ]
        label = f"mean discounted LTV ({result.attrs['currency']} per acquired customer)"
        _save_chart(
            plot,
            lambda charts: charts.scenario_comparison(
                names, [r["mean_ltv_discounted"] for r in rows], errors, label, base_name=names[0]
            ),
        )
    if fmt is Format.json:
        typer.echo(json.dumps({"segment": segment, "scenarios": rows}, indent=2, default=_plain))
        return
    table = Table(
        title=f"scenarios vs base, segment {segment} (common random numbers)", title_justify="left"
    )
    for column in (
        "scenario",
        "mean disc. LTV",
        "change ± MC se",
        "P(LTV:CAC ≥ 3)",
        "change ± MC se",
        "median payback",
    ):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for i, r in enumerate(rows):
        first = i == 0
        table.add_row(
            r["scenario"],
            f"{r['mean_ltv_discounted']:,.0f}",
            "" if first else f"{r['difference']:+,.0f} ± {r['difference_se']:,.0f}",
            f"{r['p_ltv_cac_at_least_3']:.1%}",
            ""
            if first
            else f"{r['p_ltv_cac_at_least_3'] - rows[0]['p_ltv_cac_at_least_3']:+.1%}"
            f" ± {r['p_difference_se']:.1%}",
            "never" if r["median_payback_months"] is None else f"{r['median_payback_months']:.1f}",
        )
    Console().print(table)


def parse_scenarios(options: list[str], path: Path | None) -> dict[str, dict]:
    """Scenarios from ``-s 'NAME: key=value, ...'`` options and a TOML file."""
    named: dict[str, dict] = {}
    if path is not None:
        document = read_toml(path)
        tables = document.get("scenarios")
        if not isinstance(tables, dict) or not tables:
            raise ConfigError(f"{path} has no [scenarios.NAME] tables", "scenarios")
        for name, body in tables.items():
            named[name] = _flatten(body, name)
    for option in options:
        name, colon, body = option.partition(":")
        if not colon or not name.strip():
            raise ConfigError(f"expected 'NAME: key=value, ...', got {option!r}", "--scenario")
        overrides = {}
        for item in _split_top_level(body):
            key, equals, value = item.partition("=")
            if not equals:
                raise ConfigError(f"expected key=value, got {item.strip()!r}", "--scenario")
            try:
                overrides[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
            except tomllib.TOMLDecodeError:
                raise ConfigError(
                    f"{value.strip()!r} is not a TOML value (a number, or an inline table such "
                    'as {dist = "beta", mean = 0.02, sd = 0.005})',
                    key.strip(),
                ) from None
        named[name.strip()] = overrides
    if not named:
        raise ConfigError("give at least one --scenario or a --scenarios file", "--scenario")
    return named


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside braces or brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        depth += char in "{["
        depth -= char in "}]"
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _flatten(body, where: str, prefix: str = "") -> dict:
    out = {}
    if not isinstance(body, dict):
        raise ConfigError("must be a table of config keys", f"scenarios.{where}")
    for key, value in body.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and "dist" not in value:
            out.update(_flatten(value, where, f"{path}."))
        else:
            out[path] = value
    return out


@app.command()
def sensitivity(
    config: ConfigArgument,
    swing: Annotated[float, typer.Option(help="relative swing of price, churn, margin, CAC")] = 0.1,
    trials: TrialsOption = None,
    customers: CustomersOption = None,
    seed: SeedOption = None,
    threads: ThreadsOption = None,
    segment: SegmentOption = "all",
    plot: Annotated[Path | None, typer.Option(help="also draw the tornado to this PNG")] = None,
    fmt: FormatOption = Format.table,
):
    """Tornado of the levers (common random numbers) and rank correlations of uncertain inputs.

    Example: ltvsim sensitivity configs/saas.toml --swing 0.2 --trials 500 --plot tornado.png
    """
    from .config import load_config
    from .scenarios import default_levers, rank_sensitivity
    from .scenarios import sensitivity as run_sensitivity
    from .simulate import simulate

    if not 0 < swing < 1:
        raise _fail(f"--swing must be in (0, 1), got {swing}")
    try:
        settings = load_config(config)  # once: the base run, the levers and the tornado share it
        ds = simulate(settings, trials=trials, customers=customers, seed=seed, threads=threads)
        tornado = run_sensitivity(
            settings,
            levers=default_levers(swing, settings),
            trials=trials,
            customers=customers,
            seed=seed,
            threads=threads,
            segment=segment,
            base_result=ds,
        )
        inputs = [v for v in ds.data_vars if v.startswith("input_") and "_band" not in v]
        ranks = rank_sensitivity(ds) if inputs else None
    except USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    except KeyError:
        raise _fail(f"no segment named {segment!r}") from None
    if plot is not None:
        ltv = tornado.mean_ltv_discounted
        _save_chart(
            plot,
            lambda charts: charts.tornado(
                [
                    f"{lever} {swing}"
                    for lever, swing in zip(tornado.lever.values, tornado.swing.values, strict=True)
                ],
                ltv.sel(side="low").values,
                ltv.sel(side="high").values,
                ltv.attrs["base"],
                f"mean discounted LTV ({ds.attrs['currency']} per acquired customer)",
                swing_labels=("low swing", "high swing"),
            ),
        )
    metrics = ("mean_ltv_discounted", "p_ltv_cac_at_least_3", "median_payback_months")
    if fmt is Format.json:
        document = {
            "segment": segment,
            "base": {m: tornado[m].attrs["base"] for m in metrics},
            "levers": [
                {
                    "lever": str(lever),
                    "config_key": str(tornado.config_key.sel(lever=lever).values),
                    "swing": str(tornado.swing.sel(lever=lever).values),
                    **{
                        m: {
                            side: _float(tornado[m].sel(lever=lever, side=side))
                            for side in ("low", "high")
                        }
                        for m in metrics
                    },
                }
                for lever in tornado.lever.values
            ],
        }
        if ranks is not None:
            document["rank_correlation"] = {
                str(i): {
                    str(o): _float(
                        ranks.rank_correlation.sel(input=i, output=o, segment=ranks.segment[-1])
                    )
                    for o in ranks.output.values
                }
                for i in ranks.input.values
            }
        typer.echo(json.dumps(document, indent=2, default=_plain))
        return
    console = Console()
    table = Table(
        title=f"one-at-a-time sensitivity, segment {segment} "
        "(low swing -> high swing; largest effect on LTV first)",
        title_justify="left",
    )
    for column in ("lever", "swing", "mean disc. LTV", "P(LTV:CAC ≥ 3)", "median payback"):
        table.add_column(column, justify="left" if column in ("lever", "swing") else "right")
    base = {m: tornado[m].attrs["base"] for m in metrics}
    table.add_row(
        "base", "", f"{base[metrics[0]]:,.0f}", f"{base[metrics[1]]:.1%}", _months(base[metrics[2]])
    )
    for lever in tornado.lever.values:
        t = tornado.sel(lever=lever)
        table.add_row(
            str(lever),
            str(t.swing.values),
            " -> ".join(f"{v:,.0f}" for v in t.mean_ltv_discounted.values),
            " -> ".join(f"{v:.1%}" for v in t.p_ltv_cac_at_least_3.values),
            " -> ".join(_months(v) for v in t.median_payback_months.values),
        )
    console.print(table)
    if ranks is not None:
        where = ranks.segment.values[-1]
        rank_table = Table(
            title=f"rank correlation of uncertain inputs with outcomes "
            f"(across trials, segment {where})",
            title_justify="left",
        )
        rank_table.add_column("input")
        for output in ranks.output.values:
            rank_table.add_column(str(output), justify="right")
        for name in ranks.input.values:
            values = ranks.rank_correlation.sel(input=name, segment=where).values
            rank_table.add_row(
                str(ranks.config_key.sel(input=name).values), *(f"{v:+.2f}" for v in values)
            )
        console.print(rank_table)


@app.command("goal-seek")
def goal_seek(
    config: ConfigArgument,
    lever: Annotated[str, typer.Option(help="config key to move, e.g. churn.monthly_rate")],
    metric: Annotated[str, typer.Option(help="per-trial variable, e.g. ltv_cac")] = "ltv_cac",
    target: Annotated[float, typer.Option(help="value the metric must reach")] = 3.0,
    probability: Annotated[float, typer.Option(help="required probability")] = 0.8,
    low: Annotated[float | None, typer.Option(help="lowest lever value to search")] = None,
    high: Annotated[float | None, typer.Option(help="highest lever value to search")] = None,
    trials: TrialsOption = None,
    customers: CustomersOption = None,
    seed: SeedOption = None,
    threads: ThreadsOption = None,
    segment: SegmentOption = "all",
    fmt: FormatOption = Format.table,
):
    """Find the lever value at which P(metric meets target) reaches the probability.

    Value metrics must reach the target (ltv_cac >= 3); payback must not exceed
    it (payback_months <= 12).

    Example: ltvsim goal-seek configs/saas.toml --lever churn.monthly_rate
    --metric ltv_cac --target 3 --probability 0.8 --trials 500 --customers 500
    """
    from .scenarios import GoalSeekError
    from .scenarios import goal_seek as run_goal_seek

    if (low is None) != (high is None):
        raise _fail("give both --low and --high, or neither")
    status = Console(stderr=True).status("goal seek", spinner="dots")
    evaluations = []

    def report(x: float, p: float):
        evaluations.append(x)
        status.update(f"goal seek: simulation {len(evaluations)}, {lever} = {x:.6g} gives {p:.3f}")

    try:
        if sys.stderr.isatty():
            status.start()
        result = run_goal_seek(
            config,
            lever=lever,
            metric=metric,
            target=target,
            probability=probability,
            bounds=None if low is None else (low, high),
            trials=trials,
            customers=customers,
            seed=seed,
            threads=threads,
            segment=segment,
            on_evaluation=report,
        )
    except (*USER_ERRORS, GoalSeekError, ValueError) as exc:
        raise _fail(str(exc)) from None
    finally:
        status.stop()
    if fmt is Format.json:
        typer.echo(json.dumps(dataclasses.asdict(result), indent=2, default=_plain))
        return
    typer.echo(result.describe())
    typer.echo(
        f"MC uncertainty: {result.interval[0]:.6g} … {result.interval[1]:.6g} "
        "(the lever at the target probability ± one standard error)"
    )


class ChartKind(StrEnum):
    fan = "fan"
    ltv_cac = "ltv-cac"
    payback = "payback"
    survival = "survival"


@app.command("plot")
def plot_command(
    result: ResultArgument,
    kind: Annotated[ChartKind, typer.Option(help="which chart")] = ChartKind.fan,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="PNG file")] = None,
    segment: SegmentOption = "all",
    months: Annotated[int | None, typer.Option(help="fan chart: months to show")] = None,
):
    """Draw a chart of a saved result to a PNG (needs the plot extra: matplotlib).

    Example: ltvsim plot saas.nc --kind fan -o fan.png
    """
    output = output or Path(f"{result.stem}-{kind.value}.png")
    if months is not None and kind is not ChartKind.fan:
        raise _fail("--months applies to the fan chart only")
    try:
        from . import plot as charts

        ds = open_result(result)
        draw = charts.kinds()[kind.value]
        figure = draw(ds, segment=segment, months=months) if months else draw(ds, segment=segment)
        charts.save(figure, output)
    except (*USER_ERRORS, ImportError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"wrote {output}")


@app.command()
def report(
    result: ResultArgument,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file")] = None,
    worksheet_trials: Annotated[
        int, typer.Option(help="trials for the worksheet's bridge simulations")
    ] = 500,
):
    """Write one self-contained HTML page: summary, band probabilities, worksheet, charts.

    Example: ltvsim report saas.nc -o report.html
    """
    output = output or Path(f"{result.stem}-report.html")
    try:
        from . import plot as charts
        from .config import load_config
        from .io import atomic_write
        from .worksheet import worksheet as make_worksheet

        ds = open_result(result)
        config = load_config(json.loads(ds.attrs["config"]))
        sections = []
        # the worksheet is the subscription formula; order-driven models have none
        if all(s["business.model"] == "subscription" for s in config.segments):
            sheet = make_worksheet(
                config,
                trials=min(worksheet_trials, int(ds.attrs["trials"])),
                customers=min(1000, int(ds.attrs["customers_per_segment"])),
            )
            sections.append(
                ("Worksheet: the formula beside the simulation", charts.worksheet_html(sheet))
            )
        page = charts.report_html(ds, extra_sections=sections)
        atomic_write(output, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    except (*USER_ERRORS, ImportError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"wrote {output}")


@app.command("forecast")
def forecast_command(
    config: ConfigArgument,
    base: Annotated[
        Path | None,
        typer.Option(help="CSV of customers active now: tenure_months,customers,mrr_per_customer"),
    ] = None,
    plan: Annotated[
        Path | None, typer.Option(help="CSV of planned acquisitions: month,new_customers")
    ] = None,
    months: Annotated[int, typer.Option(help="months to forecast (0 = this month)")] = 24,
    plan_cv: Annotated[
        float,
        typer.Option(
            help="coefficient of variation of a plan-execution factor common to the "
            "trial's months (0: Poisson noise around the plan only)"
        ),
    ] = 0.0,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="result file (default: CONFIG-forecast.nc)"),
    ] = None,
    chart: Annotated[
        Path | None, typer.Option(help="also draw the MRR fan chart to this PNG")
    ] = None,
    value_base: Annotated[
        bool,
        typer.Option(
            "--value-base",
            help="also value the base: discounted residual gross profit by tenure to "
            "simulation.horizon_months, beside constant churn",
        ),
    ] = False,
    trials: TrialsOption = None,
    seed: SeedOption = None,
    fmt: FormatOption = Format.table,
):
    """Forecast MRR, gross profit and active customers by month: the base plus a plan.

    Example: ltvsim forecast co.toml --base base.csv --plan plan.csv -o f.nc --chart f.png
    """
    from .forecast import forecast, read_base, read_plan
    from .forecast import value_base as base_valuation

    output = output or Path(f"{config.stem}-forecast.nc")
    if value_base and base is None:
        raise _fail("--value-base needs --base")
    valuation = None
    try:
        _netcdf_only(output, "forecast")
        customers = read_base(base) if base is not None else None
        acquisitions = read_plan(plan, cv=plan_cv) if plan is not None else None
        ds = forecast(config, customers, acquisitions, months, trials=trials, seed=seed)
        if value_base:
            valuation = base_valuation(config, customers, trials=trials, seed=seed)
        write_result(ds, output)
    except USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    if chart is not None:
        _save_chart(chart, lambda charts: charts.forecast_chart(ds))
    rows = forecast_rows(ds)
    base_rows = base_value_rows(valuation) if valuation is not None else None
    if fmt is Format.json:
        document = {"output": str(output), "months": rows}
        if base_rows is not None:
            document["base_value"] = base_rows
        typer.echo(json.dumps(document, indent=2))
        return
    if base_rows is not None:
        Console().print(_base_value_table(valuation, base_rows))
    currency = ds.attrs["currency"]
    table = Table(
        title=f"forecast by month: median [80% band] across {ds.sizes['trial']:,} trials",
        title_justify="left",
    )
    table.add_column("month", justify="right")
    for name in (f"MRR ({currency})", f"gross profit ({currency})", "active customers"):
        table.add_column(name, justify="right")
    for row in rows:
        cells = [
            f"{_compact(row[k]['p50'])} [{_compact(row[k]['p10'])}, {_compact(row[k]['p90'])}]"
            for k in ("mrr", "gross_profit", "active_customers")
        ]
        table.add_row(str(row["month"]), *cells)
    console = Console()
    console.print(table)
    console.print(f"wrote {output}", highlight=False)


def base_value_rows(valuation) -> list[dict]:
    """Per tenure group (at most 8, spread over the tenures) and for the whole base:
    mean and 10/90% of the discounted residual gross profit, and the constant-churn mean."""
    tenures = valuation["tenure"].values
    picks = np.linspace(0, len(tenures) - 1, min(8, len(tenures))).round().astype(int)
    shown = tenures[np.unique(picks)]
    rows = []
    for tenure in [*shown.tolist(), None]:
        if tenure is None:
            het, hom = valuation["base_value"], valuation["homogeneous_base_value"]
            row = {"tenure_months": "all", "customers": int(valuation["customers"].sum())}
        else:
            one = valuation.sel(tenure=tenure)
            het = one["residual_gross_profit_per_customer"]
            hom = one["homogeneous_residual_gross_profit_per_customer"]
            row = {"tenure_months": int(tenure), "customers": int(one["customers"])}
        low, high = np.quantile(het.values, [0.1, 0.9])
        row.update(
            mean=float(het.mean()),
            p10=float(low),
            p90=float(high),
            constant_churn_mean=float(hom.mean()),
        )
        rows.append(row)
    return rows


def _base_value_table(valuation, rows: list[dict]) -> Table:
    currency = valuation.attrs["currency"]
    table = Table(
        title=f"value of the existing base: discounted residual gross profit ({currency}), "
        f"{valuation.attrs['horizon_months']} months, {valuation.sizes['trial']:,} trials",
        title_justify="left",
    )
    for name in ("tenure (months)", "customers", "sBG mean [80% band]", "constant churn"):
        table.add_column(name, justify="right")
    for row in rows:
        per = "" if row["tenure_months"] == "all" else " /customer"
        table.add_row(
            str(row["tenure_months"]),
            f"{row['customers']:,}",
            f"{_compact(row['mean'])} [{_compact(row['p10'])}, {_compact(row['p90'])}]{per}",
            f"{_compact(row['constant_churn_mean'])}{per}",
        )
    return table


def _compact(x: float) -> str:
    """3 significant digits with k / M / B from 10,000 up: 1,421,879 -> 1.42M."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= max(scale, 1e4):
            digits = ".3g" if abs(x) < 100 * scale else ",.0f"
            return f"{x / scale:{digits}}{suffix}"
    return f"{x:,.0f}"


def forecast_rows(ds) -> list[dict]:
    """Median and 80% band of the forecast's totals at months 0, 1, 3, 6, 12, 18, … and the last."""
    last = ds.sizes["month"] - 1
    shown = sorted({m for m in (0, 1, 3, 6, *range(12, last, 6)) if m < last} | {last})
    rows = []
    for m in shown:
        row = {"month": m}
        for name in ("mrr", "gross_profit", "active_customers"):
            band = ds[f"{name}_band"].sel(month=m)
            row[name] = {
                f"p{round(q * 100):g}": float(band.sel(quantile=q)) for q in (0.1, 0.5, 0.9)
            }
        rows.append(row)
    return rows


def _save_chart(path: Path, draw):
    """Draw a figure with ``draw(plot_module)`` and save it; user errors exit 2."""
    try:
        from . import plot as charts

        charts.save(draw(charts), path)
    except (ImportError, ResultFileError) as exc:
        raise _fail(str(exc)) from None
    Console(stderr=True).print(f"wrote {path}", highlight=False)


def _months(value) -> str:
    return "never" if value is None or not np.isfinite(value) else f"{value:.1f}"


def _float(value) -> float | None:
    value = float(value)
    return None if not np.isfinite(value) else value


def main():
    """Console entry point."""
    # What the imports made lives as long as the process: out of the garbage
    # collector's passes during the command. And a young-generation pass every
    # 50,000 allocations instead of 700: Numba's first call and the Dataset make
    # hundreds of thousands of objects, few of them garbage (together ~0.25 s
    # of a warm `ltvsim run`; cyclic garbage is still collected).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        app()
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; no output was written")
        sys.exit(130)
    finally:
        # The process ends here. At exit, the interpreter's garbage collector
        # would walk every object numba, xarray and pandas made (0.3-0.45 s,
        # 15% of a warm `ltvsim run`) only to find nothing worth collecting:
        # freeze them out of its sight. atexit handlers and finalizers still run.
        gc.freeze()


if __name__ == "__main__":
    main()
