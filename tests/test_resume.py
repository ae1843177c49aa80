"""Checkpoints and resume: an interrupted run finishes identical to an uninterrupted one."""

import importlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import ltvsim
from ltvsim.cli import app
from ltvsim.config import ConfigError, load_config
from ltvsim.runner import checkpoint_dir, estimate_resources, run_to_file

from .conftest import CONFIGS

# the module (ltvsim.simulate the attribute is the function)
driver = importlib.import_module("ltvsim.simulate")
SMALL = {"trials": 24, "customers": 300}


def assert_same(a: xr.Dataset, b: xr.Dataset):
    xr.testing.assert_identical(a, b)
    for name in a.variables:
        np.testing.assert_array_equal(a[name].values, b[name].values, strict=True)


@pytest.fixture(scope="module")
def reference():
    return ltvsim.simulate(CONFIGS / "segments.toml", **SMALL)


def test_resume_runs_only_the_missing_blocks(reference, tmp_path, monkeypatch):
    checkpoint = tmp_path / "run.partial"
    first = ltvsim.simulate(
        CONFIGS / "segments.toml", block_trials=5, checkpoint=checkpoint, **SMALL
    )
    assert_same(reference, first)
    blocks = sorted(checkpoint.glob("block-*.npz"))
    assert len(blocks) == 5  # 24 trials in blocks of 5
    for lost in blocks[1::2]:
        lost.unlink()

    calls = []
    run_block = driver.run_block

    def counted(config, first, count, threads=None):
        calls.append(first)
        return run_block(config, first, count, threads)

    monkeypatch.setattr(driver, "run_block", counted)
    resumed = ltvsim.simulate(
        CONFIGS / "segments.toml", block_trials=5, checkpoint=checkpoint, **SMALL
    )
    assert sorted(calls) == [5, 15]
    assert_same(reference, resumed)


@pytest.mark.parametrize(
    "change", [{"seed": 1}, {"trials": 25}, {"block_trials": 6}], ids=lambda c: next(iter(c))
)
def test_checkpoint_of_another_run_is_refused(tmp_path, change):
    checkpoint = tmp_path / "run.partial"
    kwargs = {**SMALL, "block_trials": 5}
    ltvsim.simulate(CONFIGS / "saas.toml", checkpoint=checkpoint, **kwargs)
    with pytest.raises(ConfigError, match="belongs to another run"):
        ltvsim.simulate(CONFIGS / "saas.toml", checkpoint=checkpoint, **{**kwargs, **change})


def test_checkpoint_holds_no_pickles(tmp_path):
    checkpoint = tmp_path / "run.partial"
    ltvsim.simulate(CONFIGS / "segments.toml", checkpoint=checkpoint, block_trials=12, **SMALL)
    json.loads((checkpoint / "run.json").read_text())
    for block in checkpoint.glob("block-*.npz"):
        with np.load(block, allow_pickle=False) as arrays:  # raises on an object array
            assert all(arrays[name].dtype.kind in "if" for name in arrays.files)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_zarr_and_netcdf_results_are_the_same(reference, tmp_path, suffix):
    config = load_config(CONFIGS / "segments.toml").with_overrides(
        {f"simulation.{k}": v for k, v in SMALL.items()}
    )
    out = tmp_path / f"result{suffix}"
    run_to_file(config, out, block_trials=5).close()
    assert_same(reference, ltvsim.open_result(out))
    assert os.listdir(tmp_path) == [out.name]  # no checkpoint or temporary left


def test_zarr_is_chunked_along_trials(tmp_path):
    config = load_config(CONFIGS / "saas.toml").with_overrides(
        {f"simulation.{k}": v for k, v in SMALL.items()}
    )
    run_to_file(config, tmp_path / "r.zarr", block_trials=5).close()
    lazy = xr.open_zarr(tmp_path / "r.zarr")
    assert lazy["revenue"].chunks[0] == (5, 5, 5, 5, 4)


def test_result_size_estimate_matches_a_real_result():
    config = load_config(CONFIGS / "segments.toml").with_overrides({"simulation.trials": 200})
    ds = ltvsim.simulate(config, customers=50)
    band = sum(v.nbytes for name, v in ds.data_vars.items() if "quantile" in v.dims)
    per_trial = ds.nbytes - band  # the estimate counts what grows with trials
    estimate = estimate_resources(config)["result_bytes"]
    assert per_trial * 0.9 <= estimate <= per_trial * 1.1


def test_memory_estimate_refuses_what_cannot_fit(monkeypatch):
    from ltvsim import runner

    config = load_config(CONFIGS / "saas.toml").with_overrides({"simulation.trials": 10**6})
    need = estimate_resources(config)
    assert need["memory_bytes"] > 1.5 * need["result_bytes"] > 1e10  # result + raw sums
    zarr_need = estimate_resources(config, "big.zarr")["memory_bytes"]
    assert zarr_need < need["result_bytes"] / 2  # streaming holds one variable, not the result
    monkeypatch.setattr(runner, "available_memory", lambda: 4e9)
    with pytest.raises(ConfigError, match=r"simulation.trials: .* GB of memory .*zarr") as err:
        ltvsim.simulate(config)
    assert "\n" not in str(err.value)


# --- a real interruption: kill -9 of `ltvsim run`, then --resume -------------------------

RUN = [sys.executable, "-m", "ltvsim.cli", "run", str(CONFIGS / "saas.toml")]
BIG = ["--trials", "60", "--customers", "20000", "--block-trials", "2", "--seed", "5"]


def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path):
    out = tmp_path / "run.nc"
    partial = checkpoint_dir(out)
    proc = subprocess.Popen([*RUN, *BIG, "-o", str(out)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(partial.glob("block-*.npz"))) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = len(list(partial.glob("block-*.npz")))
    assert 2 <= kept < 30  # interrupted mid-run: 30 blocks in all
    assert not out.exists()  # never a half-written result

    again = CliRunner().invoke(app, [*RUN[3:], *BIG, "-o", str(out)])
    assert again.exit_code == 2 and "--resume" in again.output  # no silent restart
    assert "Traceback" not in again.output and len(again.output.strip().splitlines()) == 1
    resumed = subprocess.run([*RUN, *BIG, "-o", str(out), "--resume"], capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not partial.exists()

    config = load_config(CONFIGS / "saas.toml").with_overrides(
        {"simulation.trials": 60, "simulation.customers": 20000, "simulation.seed": 5}
    )
    assert_same(ltvsim.simulate(config), ltvsim.open_result(out))
    assert os.listdir(tmp_path) == [out.name]


def test_disk_estimate_refuses_what_cannot_fit(tmp_path, monkeypatch):
    from ltvsim import runner

    config = load_config(CONFIGS / "saas.toml").with_overrides(
        {f"simulation.{k}": v for k, v in SMALL.items()}
    )
    need = estimate_resources(config, tmp_path / "r.nc", checkpoint=True)
    assert need["disk_bytes"] > need["result_bytes"]  # result and checkpoint
    need = need["disk_bytes"]
    free = type("Usage", (), {"free": need / 2})
    monkeypatch.setattr(runner.shutil, "disk_usage", lambda path: free)
    with pytest.raises(ConfigError, match=r"output: this run needs about .* of disk"):
        run_to_file(config, tmp_path / "r.nc")
    assert os.listdir(tmp_path) == []


def test_cli_writes_and_reads_zarr(tmp_path):
    args = ["run", str(CONFIGS / "saas.toml"), "--trials", "12", "--customers", "100"]
    runner = CliRunner()
    nc = runner.invoke(app, [*args, "-o", str(tmp_path / "r.nc"), "-f", "json"])
    zarr = runner.invoke(app, [*args, "-o", str(tmp_path / "r.zarr"), "-f", "json"])
    assert nc.exit_code == 0 and zarr.exit_code == 0, zarr.output
    summary = runner.invoke(app, ["summary", str(tmp_path / "r.zarr"), "-f", "json"])
    assert summary.exit_code == 0
    assert json.loads(summary.output)["segments"] == json.loads(nc.output)["segments"]
    assert_same(ltvsim.open_result(tmp_path / "r.nc"), ltvsim.open_result(tmp_path / "r.zarr"))
