"""Running a config into a result file: resource check, checkpoint and resume, zarr streaming.

``run_to_file(config, "out.nc")`` simulates in memory and writes netCDF;
``run_to_file(config, "out.zarr")`` streams every block of trials to a
chunked zarr store as it completes, so memory holds a few blocks and one
variable at a time, not the whole result. Both keep completed blocks in
``<output>.partial/`` until the result is written: after an interruption,
``resume=True`` runs only the missing blocks, and the result is identical to
an uninterrupted run. Before anything runs, :func:`check_resources` compares
the run's memory and disk needs with what the machine has.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from .config import Config, ConfigError, all_paths
from .dataset import PATH, VARIABLES, band_variables, result_attrs, trial_dataset
from .io import ResultFileError, ZarrResult, is_zarr, open_result, write_result

GB = 1e9


def checkpoint_dir(output) -> Path:
    """Where the completed blocks of a run writing ``output`` are kept."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def run_to_file(
    config: Config,
    output,
    *,
    resume: bool = False,
    client=None,
    block_trials: int | None = None,
    threads: int | None = None,
    progress=False,
):
    """Simulate ``config`` into ``output`` (``*.zarr``: streamed; otherwise netCDF).

    Returns the result: in memory for netCDF, opened lazily for zarr.
    Raises ConfigError if ``<output>.partial`` holds an interrupted run and
    ``resume`` is false, or if the run would not fit in memory or on disk.
    """
    from .simulate import assemble, run_blocks, trial_blocks

    output = Path(output)
    directory = output.parent if str(output.parent) else Path(".")
    if not directory.is_dir():
        raise ResultFileError(f"output directory does not exist: {directory}")
    partial = checkpoint_dir(output)
    if partial.exists() and not resume:
        raise ConfigError(
            f"{partial} holds an interrupted run: add --resume to finish it, or delete it",
            "output",
        )
    check_resources(config, output, checkpoint=True)
    if resume:
        _remove_temporaries(output)
    blocks = run_blocks(
        config,
        block_trials=block_trials,
        threads=threads,
        client=client,
        checkpoint=partial,
        progress=progress,
    )
    if is_zarr(output):
        chunk = trial_blocks(config, block_trials)[0][1]
        _stream_zarr(config, output, blocks, chunk)
        ds = open_result(output, lazy=True)
    else:
        from .dataset import build_dataset

        ds = build_dataset(config, assemble(blocks))
        write_result(ds, output)
    shutil.rmtree(partial, ignore_errors=True)
    return ds


def _remove_temporaries(output: Path) -> None:
    """Remove the temporary files an interrupted (killed) write of ``output`` left behind."""
    for stale in output.parent.glob(f".{output.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _stream_zarr(config: Config, output: Path, blocks, chunk_trials: int) -> None:
    """Write each block's per-trial variables as it arrives, then the bands of the whole."""
    store, hists = None, None
    try:
        for first, runs in blocks:
            count = {"simulation.trials": len(runs[0].alive)}
            block = trial_dataset(config.with_overrides(count), runs, first)
            if store is None:
                store = ZarrResult(output, block, config.trials, chunk_trials, result_attrs(config))
                hists = [run.customer_hist.copy() for run in runs]
            else:
                for total, run in zip(hists, runs, strict=True):
                    total += run.customer_hist
            store.write_block(block)
        with store.partial() as written:
            bands = band_variables(config, written, hists)
        store.add(bands)
        store.commit()
    except BaseException:
        if store is not None:
            store.abort()
        raise


def estimate_resources(config: Config, output=None, checkpoint: bool = False) -> dict[str, float]:
    """Bytes of memory and disk a run needs, and the size of its result (uncompressed float64).

    The result holds, per trial and output segment (the segments, plus "all"
    when named), ``len(PATH variables) × horizon + per-trial variables``
    numbers; the driver's raw per-segment sums hold 4 × horizon + inputs per
    trial. In memory (netCDF or no output) the raw sums, their assembled copy,
    the result and a sort buffer for the bands coexist; streaming to zarr
    holds two blocks and one variable (with its sort buffer) at a time.
    Disk: the result, and the checkpoint of raw sums when ``checkpoint``.
    """
    from .simulate import default_block_trials

    horizon, trials = config.horizon_months, config.trials
    out_segments = len(config.segments) + int(config.named_segments)
    n_path = sum(dims == PATH for dims, _, _ in VARIABLES.values())
    n_trial = len(VARIABLES) - n_path + len(config.uncertain_inputs())
    per_trial_result = 8 * out_segments * (n_path * horizon + n_trial)
    per_trial_raw = 8 * len(config.segments) * (4 * horizon + len(all_paths()))
    variable = 8 * trials * out_segments * horizon
    result = trials * per_trial_result
    if output is not None and is_zarr(output):
        block = min(trials, default_block_trials(config))
        memory = 2 * block * (per_trial_raw + per_trial_result) + 3 * variable
    else:
        memory = 2 * trials * per_trial_raw + result + 3 * variable
    disk = (result if output is not None else 0) + (trials * per_trial_raw if checkpoint else 0)
    return {"memory_bytes": float(memory), "disk_bytes": float(disk), "result_bytes": float(result)}


def available_memory() -> float:
    """Bytes of memory available to this process (psutil if installed, else sysconf)."""
    try:
        import psutil

        return float(psutil.virtual_memory().available)
    except ImportError:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_resources(config: Config, output=None, checkpoint: bool = False) -> None:
    """Raise ConfigError, saying what would fix it, if the run will not fit."""
    need = estimate_resources(config, output, checkpoint)
    memory = available_memory()
    if need["memory_bytes"] > memory:
        fix = (
            "use fewer trials or a shorter horizon"
            if output is not None and is_zarr(output)
            else "write a zarr store instead (ltvsim run -o NAME.zarr, or "
            "ltvsim.run_to_file(config, 'NAME.zarr')), which streams blocks to disk, "
            "or use fewer trials or a shorter horizon"
        )
        raise ConfigError(
            f"this run needs about {_gb(need['memory_bytes'])} of memory "
            f"({config.trials:,} trials × {config.horizon_months:,} months × "
            f"{len(config.segments)} segment(s)) but {_gb(memory)} is available: {fix}",
            "simulation.trials",
        )
    if output is not None and need["disk_bytes"] > 0:
        directory = Path(output).parent
        free = shutil.disk_usage(directory if str(directory) else ".").free
        if need["disk_bytes"] > free:
            raise ConfigError(
                f"this run needs about {_gb(need['disk_bytes'])} of disk in {directory} "
                f"(result and checkpoint) but {_gb(free)} is free: write elsewhere, or "
                "use fewer trials or a shorter horizon",
                "output",
            )


def _gb(n: float) -> str:
    return f"{n / GB:.3g} GB" if n >= 0.1 * GB else f"{math.ceil(n / 1e6)} MB"
