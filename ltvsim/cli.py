"""The command line: argument handling and printing, nothing else.

User mistakes (bad config, missing file, bad option) print one line on stderr
and exit with status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .analysis import band_probabilities, summary_table
from .config import ConfigError
from .distributions import DistributionError
from .io import ResultFileError, open_result, write_result

app = typer.Typer(
    name="ltvsim",
    help="Monte Carlo customer lifetime value: LTV, LTV:CAC and CAC payback as distributions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
USER_ERRORS = (ConfigError, DistributionError, ResultFileError, FileNotFoundError)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="table for people, json for scripts")
]


def _fail(message: str) -> typer.Exit:
    # One line, printed as given: no rich markup (a message may contain "[discount]")
    # and no wrapping at the terminal width.
    line = Text.assemble(("error:", "bold red"), " ", " ".join(message.split()))
    Console(stderr=True, soft_wrap=True).print(line, highlight=False)
    return typer.Exit(2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="TOML config file")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="result file [default: CONFIG.nc]")
    ] = None,
    trials: Annotated[int | None, typer.Option(help="override simulation.trials")] = None,
    customers: Annotated[int | None, typer.Option(help="override simulation.customers")] = None,
    seed: Annotated[int | None, typer.Option(help="override simulation.seed")] = None,
    threads: Annotated[int | None, typer.Option(help="numba threads (result is the same)")] = None,
    fmt: FormatOption = Format.table,
):
    """Simulate CONFIG, print the summary and write the result (netCDF4).

    Example: ltvsim run configs/saas.toml -o saas.nc --trials 5000
    """
    from .simulate import simulate

    output = output or Path(config.stem + ".nc")
    try:
        started = time.perf_counter()
        ds = simulate(
            config,
            trials=trials,
            customers=customers,
            seed=seed,
            threads=threads,
            progress=sys.stderr.isatty(),
        )
        seconds = time.perf_counter() - started
        write_result(ds, output)
    except USER_ERRORS as exc:
        raise _fail(str(exc)) from None
    _report(ds, fmt, extra={"output": str(output), "seconds": round(seconds, 3)})


@app.command()
def summary(
    result: Annotated[Path, typer.Argument(help="result file written by 'ltvsim run'")],
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
                s: {"summary": summary_table(ds, s), "bands": band_probabilities(ds, s)}
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
    for segment in segments:
        console.print(_summary_table(ds, segment))
    console.print(_band_table(ds, segments))
    where = extra.get("output")
    if where:
        console.print(f"wrote {where} in {extra['seconds']:.2f} s", highlight=False)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")


def _number(value, digits=0) -> str:
    if value is None:
        return "never"
    return f"{value:,.{digits}f}"


def _summary_table(ds, segment: str) -> Table:
    table = Table(title=f"segment: {segment}", title_justify="left")
    for column in ("measure", "mean", "5%", "50%", "95%"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for row in summary_table(ds, segment):
        digits = 2 if row["variable"].startswith("ltv_cac") else 1
        if row["variable"].startswith("ltv_") and not row["variable"].startswith("ltv_cac"):
            digits = 0
        name = row["variable"]
        if name == "payback_months":
            name += f" (never: {row['never']:.1%})"
        table.add_row(name, *(_number(row[k], digits) for k in ("mean", "p5", "p50", "p95")))
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
                cells.append(f"{b['probability']:.1%} ± {b['std_error']:.1%}")
            table.add_row(f"{title} {entry['band']}", *cells)
    return table


def main():
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; no output was written")
        sys.exit(130)


if __name__ == "__main__":
    main()
