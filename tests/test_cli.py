"""The command line: exit status, stdout and stderr.

Every mistake runs in-process (typer's CliRunner: fast, and an unhandled
exception would show as exit status 1 with ``result.exception`` set). A
representative subset, and the json run and summary, also run as a user runs
them: a separate ``python -m ltvsim.cli`` process, where a traceback would be
visible on stderr. Each process spends ~2 s importing numpy/scipy/numba/xarray,
so those are started together (one batch per module) and the tests read the
results.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import xarray as xr
from typer.testing import CliRunner

import ltvsim
from ltvsim.analysis import SUMMARY_VARIABLES
from ltvsim.cli import app

from .conftest import CONFIGS

SMALL = ["--trials", "20", "--customers", "200"]
GOOD = "[simulation]\ntrials = 20\ncustomers = 200\nhorizon_months = 24\n"
PREVIOUS = b"a previous result, byte for byte \x00\xff"
WIDE = {"COLUMNS": "200"}  # tables unwrapped, so labels can be searched for


def _cli(args, cwd):
    """Run ``python -m ltvsim.cli ARGS`` in ``cwd`` at 80 columns, as from a pipe."""
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "ltvsim.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _cli_many(invocations: dict, cwd) -> dict:
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        futures = {name: pool.submit(_cli, args, cwd) for name, args in invocations.items()}
        return {name: future.result() for name, future in futures.items()}


# name: (arguments, fragments the one-line error must contain). Each "run" writes to
# NAME.nc, which exists beforehand and must be left byte-identical.
MISTAKES = {
    "missing config": (["run", "nothere.toml"], ["nothere.toml", "not found"]),
    "config is a directory": (["run", "adir"], ["adir", "directory"]),
    "config is binary": (["run", "binary.toml"], ["binary.toml", "not a TOML file"]),
    "malformed TOML": (["run", "malformed.toml"], ["malformed.toml", "line 5, column 9"]),
    "unknown key": (["run", "unknown-key.toml"], ["revenue.gross_margn", "'gross_margin'"]),
    "bad value": (["run", "bad-value.toml"], ["churn.monthly_rate", "sd = 0.5"]),
    "brackets in the message": (
        ["run", "segment-timing.toml"],
        ["segments.a.discount.timing", "top-level [discount] section"],
    ),
    "zero trials": (["run", "good.toml", "--trials", "0"], ["simulation.trials", "got 0"]),
    "zero customers": (
        ["run", "good.toml", "--customers", "0"],
        ["simulation.customers", "got 0"],
    ),
    "negative seed": (["run", "good.toml", "--seed", "-1"], ["simulation.seed", "got -1"]),
    "zero threads": (["run", "good.toml", "--threads", "0"], ["threads", "got 0"]),
    "too many threads": (["run", "good.toml", "--threads", "100000"], ["threads", "got 100000"]),
    "output directory missing": (
        ["run", "good.toml", "-o", "nodir/out.nc"],
        ["output directory does not exist", "nodir"],
    ),
    "summary of a missing file": (["summary", "nothere.nc"], ["nothere.nc", "not found"]),
    "summary of a TOML file": (["summary", "good.toml"], ["good.toml", "not an ltvsim result"]),
    "summary of another netCDF": (["summary", "other.nc"], ["other.nc", "not an ltvsim result"]),
}
# Mistakes click catches before our code runs: status 2 and a usage message.
USAGE_MISTAKES = {
    "no config": ["run"],
    "trials not a number": ["run", "good.toml", "--trials", "many"],
    "unknown format": ["run", "good.toml", "--format", "xml"],
    "unknown option": ["run", "good.toml", "--trails", "20"],
}
FILES = {
    "good.toml": GOOD,
    "binary.toml": b"\x89HDF\r\n\x1a\n\x00\xff\xfe",
    "malformed.toml": GOOD + "[revenue\ngross_margin = 0.8\n",
    "unknown-key.toml": GOOD + "[revenue]\ngross_margn = 0.8\n",
    "bad-value.toml": GOOD + '[churn]\nmonthly_rate = {dist = "beta", mean = 0.02, sd = 0.5}\n',
    "segment-timing.toml": GOOD
    + '[[segments]]\nname = "a"\nshare = 1.0\ndiscount = {timing = "end"}\n',
}


# Mistakes that also run as separate processes: each kind of message and option.
IN_SUBPROCESS = [
    "malformed TOML",
    "bad value",
    "brackets in the message",
    "zero trials",
    "too many threads",
    "summary of a TOML file",
]


@pytest.fixture(scope="module")
def where(tmp_path_factory):
    """A working directory holding the files the invocations name."""
    where = tmp_path_factory.mktemp("cli")
    (where / "adir").mkdir()
    for name, content in FILES.items():
        if isinstance(content, bytes):
            (where / name).write_bytes(content)
        else:
            (where / name).write_text(content)
    xr.Dataset({"x": ("a", [1.0, 2.0])}).to_netcdf(where / "other.nc", engine="h5netcdf")
    return where


def _mistake_args(name: str, where: Path, runner: str) -> list[str]:
    """Arguments of mistake ``name``; a failing run targets an existing output file."""
    args = MISTAKES[name][0]
    if args[0] == "run" and "-o" not in args:
        output = where / f"{runner}-{name}.nc"
        output.write_bytes(PREVIOUS)
        args = [*args, "-o", output.name]
    return args


def _check_mistake(name, where, runner, returncode, stdout, stderr):
    assert returncode == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for fragment in MISTAKES[name][1]:
        assert fragment in lines[0]
    assert stdout == ""
    previous = where / f"{runner}-{name}.nc"
    if previous.exists():  # the run failed: the existing output is untouched
        assert previous.read_bytes() == PREVIOUS


@pytest.fixture(scope="module")
def batch(where):
    """The subprocess invocations of this module, run in parallel, keyed by name."""
    invocations = {name: _mistake_args(name, where, "process") for name in IN_SUBPROCESS}
    invocations["trials not a number"] = USAGE_MISTAKES["trials not a number"]
    invocations["run json"] = ["run", str(CONFIGS / "segments.toml"), "-o", "seg.nc", "-f", "json"]
    invocations["run json"] += SMALL
    results = _cli_many(invocations, where)
    # summary reads what run wrote, so it runs after the batch
    results["summary json"] = _cli(["summary", "seg.nc", "-f", "json"], where)
    return results


def _invoke(args, where, monkeypatch):
    monkeypatch.chdir(where)
    return CliRunner().invoke(app, args, env={"COLUMNS": "80"})


@pytest.mark.parametrize("name", MISTAKES, ids=str)
def test_user_mistake(where, monkeypatch, name):
    done = _invoke(_mistake_args(name, where, "runner"), where, monkeypatch)
    assert isinstance(done.exception, SystemExit), done.exception
    _check_mistake(name, where, "runner", done.exit_code, done.stdout, done.stderr)


@pytest.mark.parametrize("name", IN_SUBPROCESS, ids=str)
def test_user_mistake_in_a_process(where, batch, name):
    done = batch[name]
    _check_mistake(name, where, "process", done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("name", USAGE_MISTAKES, ids=str)
def test_usage_mistake(where, monkeypatch, name):
    done = _invoke(USAGE_MISTAKES[name], where, monkeypatch)
    assert isinstance(done.exception, SystemExit), done.exception
    assert done.exit_code == 2, done.stderr
    assert "Usage:" in done.stderr


def test_usage_mistake_in_a_process(batch):
    done = batch["trials not a number"]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "Usage:" in done.stderr
    assert "--trials" in done.stderr


def test_no_temporary_files_left(where, batch):
    assert not [p.name for p in where.iterdir() if p.name.endswith(".tmp")]


def _json(done) -> dict:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def test_run_json(batch):
    document = _json(batch["run json"])
    assert document["output"] == "seg.nc"
    assert document["attrs"]["trials"] == 20
    assert document["attrs"]["customers_per_segment"] == 200
    assert set(document["segments"]) == {"all", "smb", "mid-market", "enterprise"}
    for segment, data in document["segments"].items():
        rows = data["summary"]
        assert [row["variable"] for row in rows] == list(SUMMARY_VARIABLES), segment
        for row in rows:
            assert {"mean", "p5", "p50", "p95", "units"} <= set(row)
        for measure in ("ltv_cac", "payback_months"):
            bands = data["bands"][measure]
            assert len(bands) >= 4
            total = sum(band["probability"] for band in bands)
            assert total == pytest.approx(1.0, abs=1e-12), (segment, measure)
            for band in bands:
                assert 0.0 <= band["probability"] <= 1.0
                assert band["std_error"] >= 0.0


def test_summary_matches_run(batch):
    run = _json(batch["run json"])
    summary = _json(batch["summary json"])
    assert summary["result"] == "seg.nc"
    assert summary["segments"] == run["segments"]
    assert summary["attrs"] == run["attrs"]


def test_summary_table(where, batch):
    done = CliRunner().invoke(app, ["summary", str(where / "seg.nc")], env=WIDE)
    assert done.exit_code == 0, done.output
    for segment in ("all", "smb", "mid-market", "enterprise"):
        assert f"segment: {segment}" in done.stdout
    assert "LTV:CAC 3-5 (healthy)" in done.stdout


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_run_each_config(config, tmp_path):
    # In-process (one import, one JIT for all configs); exit status is still checked.
    output = tmp_path / "out.nc"
    done = CliRunner().invoke(app, ["run", str(config), "-o", str(output), *SMALL], env=WIDE)
    assert done.exception is None, done.output
    assert done.exit_code == 0, done.output
    assert "segment: all" in done.stdout
    assert "probability across trials" in done.stdout
    assert "LTV:CAC 3-5 (healthy)" in done.stdout
    assert f"wrote {output}" in done.stdout
    ds = ltvsim.open_result(output)
    assert (ds.attrs["trials"], ds.attrs["customers_per_segment"]) == (20, 200)
    for segment in ds.segment.values:
        assert f"segment: {segment}" in done.stdout


def test_netcdf_only_paths_refuse_a_zarr_output(tmp_path, monkeypatch):
    done = _invoke(
        ["run", str(CONFIGS / "saas.toml"), "-o", "x.zarr", "--target-rel-error", "0.1"],
        tmp_path,
        monkeypatch,
    )
    assert done.exit_code == 2 and "give an output ending in .nc" in done.output
    assert not (tmp_path / "x.zarr").exists()


def test_summary_reads_results_written_before_revenue_retention(tmp_path, monkeypatch):
    ds = ltvsim.simulate(CONFIGS / "saas.toml", trials=20, customers=50)
    ltvsim.write_result(
        ds.drop_vars(
            [
                "nrr",
                "grr",
                "nrr_band",
                "grr_band",
                "ltv_unbounded",
                "ltv_unbounded_band",
                "cohort_year",
            ]
        ),
        tmp_path / "old.nc",
    )
    done = _invoke(["summary", "old.nc"], tmp_path, monkeypatch)
    assert done.exit_code == 0, done.output
    assert "ltv_gross_profit" in done.output
