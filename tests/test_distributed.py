"""Blocks of trials on a Dask cluster: bit-for-bit the local result, even when a worker dies.

One LocalCluster with two worker processes (one thread each) serves the
module: starting it costs a few seconds on two cores.
"""

import os
import signal

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import ltvsim
from ltvsim.cli import app

from .conftest import CONFIGS

distributed = pytest.importorskip("distributed")

SMALL = {"trials": 30, "customers": 300}


def _warm():
    # Load the numba kernel from its on-disk cache in the worker process.
    ltvsim.simulate(CONFIGS / "saas.toml", trials=2, customers=10)
    return os.getpid()


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    client = distributed.Client(cluster)
    client.run(_warm)
    yield client
    client.close()
    cluster.close()


def assert_same(a: xr.Dataset, b: xr.Dataset):
    """Identical Datasets, and every variable equal bit for bit (NaN where NaN)."""
    xr.testing.assert_identical(a, b)
    for name in a.variables:
        np.testing.assert_array_equal(a[name].values, b[name].values, strict=True)


@pytest.mark.parametrize(
    ("config", "block_trials"), [("saas.toml", 7), ("segments.toml", 4), ("saas.toml", 30)]
)
def test_cluster_result_is_the_local_one(client, config, block_trials):
    local = ltvsim.simulate(CONFIGS / config, **SMALL)
    remote = ltvsim.simulate(CONFIGS / config, client=client, block_trials=block_trials, **SMALL)
    assert_same(local, remote)


def test_adaptive_run_on_the_cluster_is_the_local_one(client):
    kwargs = {"customers": 200, "target_rel_error": 0.05, "max_trials": 300}
    local = ltvsim.simulate(CONFIGS / "saas.toml", **kwargs)
    remote = ltvsim.simulate(CONFIGS / "saas.toml", client=client, block_trials=37, **kwargs)
    assert_same(local, remote)


def test_killing_a_worker_mid_run_changes_nothing(client):
    # 24 blocks of ~5 M customer-months: the run lasts well past the first block.
    kwargs = {"trials": 48, "customers": 20_000, "seed": 11}
    local = ltvsim.simulate(CONFIGS / "saas.toml", **kwargs)
    before = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker(done, total):
        if killed:
            return
        busy = [address for address, keys in client.processing().items() if keys]
        address = busy[0] if busy else next(iter(before))
        os.kill(before[address], signal.SIGKILL)
        killed.append((address, done, total))

    remote = ltvsim.simulate(
        CONFIGS / "saas.toml", client=client, block_trials=2, progress=kill_a_busy_worker, **kwargs
    )
    address, done, total = killed[0]
    assert done < total  # the kill happened with blocks still to run
    client.wait_for_workers(2, timeout=60)
    assert before[address] not in client.run(os.getpid).values()  # the process really died
    assert_same(local, remote)


def test_cli_scheduler_option(client, tmp_path):
    args = ["run", str(CONFIGS / "saas.toml"), "--trials", "20", "--customers", "200"]
    runner = CliRunner()
    local = runner.invoke(app, [*args, "-o", str(tmp_path / "local.nc")])
    address = client.scheduler.address
    cluster = ["--scheduler", address, "--block-trials", "3"]
    remote = runner.invoke(app, [*args, "-o", str(tmp_path / "remote.nc"), *cluster])
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    results = [ltvsim.open_result(tmp_path / name) for name in ("local.nc", "remote.nc")]
    assert_same(*results)
    assert sorted(os.listdir(tmp_path)) == ["local.nc", "remote.nc"]
