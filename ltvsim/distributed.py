"""Blocks of trials as tasks on a Dask distributed cluster.

Each block is :func:`ltvsim.simulate.run_block` on a trial range, a pure
function of (config, first trial, count): Dask may run it on any worker,
again after a worker dies, in any order, and the assembled result is
bit-for-bit the local one. Needs the ``cluster`` extra
(``pip install "ltvsim[cluster]"``).

Example
-------
>>> from dask.distributed import Client                      # doctest: +SKIP
>>> client = Client("tcp://scheduler:8786")                  # doctest: +SKIP
>>> ds = ltvsim.simulate("configs/saas.toml", trials=100_000, client=client)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator

from .config import Config, ConfigError


class ClusterError(RuntimeError):
    """The cluster could not finish a block (its retries exhausted, or the cluster went away)."""


def map_blocks(client, config: Config, blocks: list[tuple[int, int]]) -> Iterator[tuple[int, list]]:
    """Run ``blocks`` (first trial, count) on ``client``; yield ``(first, runs)`` as they finish.

    A finished block's result is fetched and released at once, so the
    cluster holds only blocks still running or waiting to be collected.
    """
    from dask.base import tokenize
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    from .simulate import run_block

    token = tokenize(config.to_json())
    futures = {}
    for first, count in blocks:
        # A key from the content: the same block submitted twice is one task.
        key = f"ltvsim-block-{token}-{first}-{count}"
        future = client.submit(run_block, config, first, count, key=key, pure=True)
        futures[future] = first
    for future in as_completed(futures):
        try:
            runs = future.result()
        except (KilledWorker, OSError) as exc:  # retries exhausted, or the cluster went away
            raise ClusterError(
                f"block of trials {futures[future]}.. failed on the cluster: {exc}"
            ) from exc
        first = futures.pop(future)
        future.release()
        yield first, runs


def connect(address: str):
    """A ``dask.distributed.Client`` for the scheduler at ``address``; a clear error if not."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError('needs Dask: pip install "ltvsim[cluster]"', "scheduler") from None
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        message = f"cannot reach the Dask scheduler at {address!r}: {exc}"
        raise ConfigError(message, "scheduler") from None
