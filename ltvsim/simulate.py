"""The driver: draws inputs, converts units, splits work, runs the kernel.

Trials are processed in blocks; inside a block, each trial's customers are cut
into fixed-size chunks (units) that the numba kernel runs in parallel. Every
random number is a pure function of (seed, stream name, trial, customer), so
results are bit-identical whatever the thread count or block size.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numba
import numpy as np

from . import _kernels, _purchase_kernel, purchase_model
from ._rng import stream_key, stream_keys
from .analysis import mean_standard_error
from .config import Config, ConfigError, Segment, load_config
from .model import draw_inputs, kernel_inputs, retention_years

# Customers per work unit. Fixed (not tuned to the machine) because a trial's
# floating-point sums are added chunk by chunk: changing it changes the last bits.
CHUNK_CUSTOMERS = 4096
# Units per kernel call: bounds memory (each unit holds its per-month sums).
UNITS_PER_CALL = 256
# Trials added per step when running to a target precision: a constant, so the
# stopping point does not depend on threads or blocks.
ADAPTIVE_STEP = 100


@dataclass
class SegmentRun:
    """What the kernel produced for one segment, per trial (money summed over customers)."""

    segment: Segment
    inputs: dict[str, np.ndarray]  # drawn value of every input, per trial
    alive: np.ndarray  # (trial, period) customers active in month t
    revenue: np.ndarray  # (trial, period)
    paid_first: np.ndarray  # (trial, period) customers first paid back in month t
    # (trial, cohort year y) sum over customers active in month 12(y+1) of
    # min(MRR then, MRR 12 months earlier): gross revenue retention's numerator
    retained: np.ndarray
    weights: np.ndarray  # (trial, period) discount factor of month t
    customer_hist: np.ndarray  # (bin,) customers by discounted LTV, pooled over trials
    orders: np.ndarray | None = None  # (trial, period) orders in month t (order-driven models)


def simulate(
    config,
    *,
    trials: int | None = None,
    customers: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool | Callable[[int, int], None] = False,
    block_trials: int | None = None,
    target_rel_error: float | None = None,
    max_trials: int = 20_000,
    client=None,
    checkpoint=None,
):
    """Simulate a config; return the result as an ``xarray.Dataset``.

    Parameters
    ----------
    config : Config, mapping or path
        A :class:`ltvsim.Config`, or anything :func:`ltvsim.load_config` takes.
    trials, customers, seed : int, optional
        Override ``[simulation]`` keys of the config.
    threads : int, optional
        Numba threads to use (1 … ``numba.config.NUMBA_NUM_THREADS``); the
        result does not depend on it.
    progress : bool or callable
        ``True`` shows a progress bar; a callable is called as
        ``progress(done, total)`` as blocks finish, counting trial-segments
        (trials × segments).
    block_trials : int, optional
        Trials per block (memory/progress granularity); the result does not
        depend on it.
    target_rel_error : float, optional
        Instead of a fixed number of trials, add trials in steps of
        ``ADAPTIVE_STEP`` until the MC standard error of mean discounted LTV
        (segment "all", estimated by its exact conditional expectation) is
        at most this fraction of the mean, or ``max_trials`` is reached. The
        stopping point depends only on the config and seed; the result is
        identical to ``simulate(config, trials=ds.attrs["trials"])``.
    client : dask.distributed.Client, optional
        Run the blocks of trials as tasks on this Dask cluster (see
        :mod:`ltvsim.distributed`); the result is identical to a local run.
    checkpoint : path, optional
        Directory keeping every completed block (see :mod:`ltvsim.checkpoint`):
        an interrupted run called again with the same arguments resumes there.

    Examples
    --------
    >>> import ltvsim
    >>> ds = ltvsim.simulate("configs/seed-formula.toml", trials=20, customers=500)
    >>> float(ds.ltv_cac.sel(segment="all").mean()) > 2
    True
    """
    from .dataset import build_dataset

    config = _with_overrides(config, trials=trials, customers=customers, seed=seed)
    blocks = {"threads": threads, "block_trials": block_trials, "client": client}
    if target_rel_error is None:
        from .runner import check_resources

        check_resources(config)  # refuse, before running, a result too big for memory
        return build_dataset(
            config, _all_trials(config, progress=progress, checkpoint=checkpoint, **blocks)
        )
    if checkpoint is not None:
        raise ConfigError("cannot be combined with target_rel_error", "checkpoint")
    if isinstance(target_rel_error, bool) or not 0 < target_rel_error < 1:
        raise ConfigError(f"must be in (0, 1), got {target_rel_error!r}", "target_rel_error")
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise ConfigError(f"must be a whole number >= 1, got {max_trials!r}", "max_trials")
    parts, expected, done, achieved = [], [], 0, math.inf
    while achieved > target_rel_error and done < max_trials:
        step = config.with_overrides({"simulation.trials": min(ADAPTIVE_STEP, max_trials - done)})
        part = _all_trials(step, progress=progress, first_trial=done, **blocks)
        parts.append(part)
        expected.append(expected_discounted_ltv(config, part, first_trial=done))
        done += step.trials
        achieved = relative_error(np.concatenate(expected), config.antithetic_inputs)
    config = config.with_overrides({"simulation.trials": done})
    ds = build_dataset(config, _concatenate(parts))
    ds.attrs.update(
        target_rel_error=target_rel_error,
        achieved_rel_error=achieved,
        reached_target=int(achieved <= target_rel_error),
    )
    return ds


def expected_discounted_ltv(
    config: Config, runs: list[SegmentRun], first_trial: int = 0
) -> np.ndarray:
    """Per trial, the exact E[discounted LTV | inputs] blended by the trial's segment shares.

    ``runs`` hold trials ``first_trial …``; the shares are drawn per trial
    when the segment mix is uncertain.
    """
    from .mix import segment_shares

    count = len(runs[0].alive)
    shares = segment_shares(config, first_trial, count)
    blend = np.zeros(count)
    for share, run in zip(shares, runs, strict=True):
        expected = purchase_model.segment_expected_ltv(config, run.segment, run.inputs)
        blend += share * expected["discounted"]
    return blend


def relative_error(values: np.ndarray, paired: bool) -> float:
    """MC standard error of the mean of per-trial ``values`` over that mean.

    With the conditional expectations of discounted LTV only the inputs' draws
    contribute error: 0 when nothing is uncertain. With antithetic inputs
    (``paired``) the error comes from the pairs' means.
    """
    if values.size < 2:
        return math.inf
    mean, se = mean_standard_error(values, paired=paired)
    return se / abs(mean) if mean != 0 else math.inf


# The blocks: one block function, one driver, one assembly, whoever runs the blocks.


def run_block(config: Config, first: int, count: int, threads=None) -> list[SegmentRun]:
    """Trials ``first … first+count-1`` of ``config``: the unit of work of every driver.

    A pure function of its arguments (every random number depends on the
    seed and the trial number), so a block may run anywhere, twice, in any order.
    """
    block = config.with_overrides({"simulation.trials": count})
    return run_segments(block, threads=threads, first_trial=first)


def trial_blocks(config: Config, block_trials: int | None = None) -> list[tuple[int, int]]:
    """``(first, count)`` of every block of the config's trials."""
    if block_trials is None:
        block_trials = default_block_trials(config)
    elif isinstance(block_trials, bool) or not isinstance(block_trials, int) or block_trials < 1:
        raise ConfigError(f"must be a whole number >= 1, got {block_trials!r}", "block_trials")
    n = config.trials
    return [(first, min(block_trials, n - first)) for first in range(0, n, block_trials)]


def default_block_trials(config: Config) -> int:
    """Trials per block such that a kernel call holds at most ``UNITS_PER_CALL`` units."""
    return max(1, UNITS_PER_CALL // math.ceil(config.customers / CHUNK_CUSTOMERS))


def run_blocks(
    config: Config,
    *,
    first_trial: int = 0,
    block_trials: int | None = None,
    threads=None,
    client=None,
    checkpoint=None,
    progress=False,
) -> Iterator[tuple[int, list[SegmentRun]]]:
    """Yield ``(first trial, runs)`` for every block of the config's trials, in any order.

    Blocks already in ``checkpoint`` (a directory) are read back, the others
    run here (``client=None``) or as tasks on a Dask cluster; each new block
    is saved to the checkpoint as soon as it is done. Trials are numbered
    from ``first_trial``.
    """
    blocks = [(first_trial + f, n) for f, n in trial_blocks(config, block_trials)]
    store = None
    if checkpoint is not None:
        from .checkpoint import Checkpoint

        store = Checkpoint(checkpoint, config, blocks)
    total, done = config.trials * len(config.segments), 0
    with _progress_callback(progress, total) as report:
        saved = store.completed() if store else set()
        for first, count in blocks:
            if first in saved:
                done += count * len(config.segments)
                report(done, total)
                yield first, store.load(first)
        todo = [(f, n) for f, n in blocks if f not in saved]
        if client is None:
            results = ((f, run_block(config, f, n, threads)) for f, n in todo)
        else:
            from .distributed import map_blocks

            results = map_blocks(client, config, todo)
        counts = dict(blocks)
        for first, runs in results:
            _check_finite(runs, first)
            if store:
                store.save(first, runs)
            done += counts[first] * len(config.segments)
            report(done, total)
            yield first, runs


def _all_trials(config: Config, *, client=None, checkpoint=None, **kwargs) -> list[SegmentRun]:
    """The runs of all of ``config``'s trials (``run_blocks``'s keywords).

    Run here with no checkpoint, every block writes straight into the
    whole run's arrays: the same numbers as assembling the blocks, without
    a second copy of every per-trial array (~2% of a 1,000-trial call).
    """
    if client is None and checkpoint is None:
        runs = run_segments(config, **kwargs)
        _check_finite(runs, kwargs.get("first_trial", 0))
        return runs
    return assemble(run_blocks(config, client=client, checkpoint=checkpoint, **kwargs))


def _check_finite(runs: list[SegmentRun], first: int) -> None:
    """A safety net behind config's magnitude check: never let inf reach a result.

    ``first`` is the number of the runs' first trial, so the error names the
    first trial that overflowed.
    """
    for run in runs:
        finite = np.isfinite(run.revenue).all(axis=1)
        if not finite.all():
            trial = first + int(np.argmin(finite))
            raise ConfigError(
                f"revenue overflowed floating point in segment {run.segment.name!r} "
                f"(first in trial {trial}); lower the growth, price increases or upsells, "
                "or shorten simulation.horizon_months",
                "expansion",
            )


def assemble(blocks) -> list[SegmentRun]:
    """The runs of all trials from ``(first trial, runs)`` blocks given in any order."""
    ordered = sorted(blocks, key=lambda block: block[0])
    return _concatenate([runs for _, runs in ordered])


def _concatenate(parts: list[list[SegmentRun]]) -> list[SegmentRun]:
    """Join runs of consecutive trial ranges, segment by segment."""
    if len(parts) == 1:
        return parts[0]
    joined = []
    for pieces in zip(*parts, strict=True):
        joined.append(
            SegmentRun(
                segment=pieces[0].segment,
                inputs={k: np.concatenate([p.inputs[k] for p in pieces]) for k in pieces[0].inputs},
                alive=np.concatenate([p.alive for p in pieces]),
                revenue=np.concatenate([p.revenue for p in pieces]),
                paid_first=np.concatenate([p.paid_first for p in pieces]),
                retained=np.concatenate([p.retained for p in pieces]),
                weights=np.concatenate([p.weights for p in pieces]),
                customer_hist=sum(p.customer_hist for p in pieces),
                orders=np.concatenate([p.orders for p in pieces]),
            )
        )
    return joined


def _with_overrides(config, **overrides) -> Config:
    if not isinstance(config, Config):
        config = load_config(config)
    given = {f"simulation.{k}": v for k, v in overrides.items() if v is not None}
    return config.with_overrides(given) if given else config


def run_segments(
    config: Config,
    *,
    threads=None,
    progress=False,
    block_trials=None,
    first_trial=0,
    month_by_month=False,
):
    """Run every segment of ``config``; return a list of :class:`SegmentRun`.

    The trials are numbers ``first_trial … first_trial + trials - 1``: each
    trial's random streams depend on its number only. ``month_by_month``
    disables the kernel's per-plan-change walk (for tests).
    """
    blocks = trial_blocks(config, block_trials)
    runs = [_empty_run(config, s) for s in config.segments]
    total = config.trials * len(runs)
    callback = _progress_callback(progress, total)
    done = 0
    with _threads(threads), callback as report:
        for first, count in blocks:
            for run in runs:
                _run_block(config, run, first_trial, first, count, month_by_month)
                done += count
                report(done, total)
    return runs


def _empty_run(config: Config, segment: Segment) -> SegmentRun:
    shape = (config.trials, config.horizon_months)
    return SegmentRun(
        segment=segment,
        inputs={},
        alive=np.zeros(shape, np.int64),
        revenue=np.zeros(shape),
        paid_first=np.zeros(shape, np.int64),
        retained=np.zeros((config.trials, retention_years(config.horizon_months))),
        weights=np.zeros(shape),
        customer_hist=np.zeros(_kernels.HIST_BINS, np.int64),
        orders=np.zeros(shape, np.int64),
    )


def _run_block(
    config: Config,
    run: SegmentRun,
    offset: int,
    first: int,
    count: int,
    month_by_month: bool = False,
):
    """Trials ``first … first+count-1`` of ``run`` (numbered from ``offset``).

    ``month_by_month`` makes the subscription kernel walk every customer month
    by month even without volatility (the same numbers up to rounding; tests
    compare them).
    """
    segment = run.segment
    inputs = draw_inputs(config, segment, offset + first, count)
    for path, values in inputs.items():
        run.inputs.setdefault(path, np.empty(config.trials))[first : first + count] = values
    customers_key = stream_key(config.seed, "customers", segment.name)
    trial_keys = stream_keys(customers_key, offset + first, count)
    unit_trial, unit_first, unit_count, starts = unit_layout(np.full(count, config.customers))
    units = (unit_trial, unit_first, unit_count, trial_keys)
    horizon = config.horizon_months
    rows = slice(first, first + count)
    if purchase_model.is_order_driven(segment):
        args = purchase_model.kernel_params(config, segment, inputs)
        out = run_purchase_kernel(args, units, starts, horizon)
        run.orders[rows] = out["orders"]
    else:
        args = kernel_inputs(config, segment, inputs)
        out = run_subscription_kernel(args, units, starts, horizon, month_by_month)
        run.retained[rows] = out["retained"]
    run.alive[rows] = out["alive"]
    run.revenue[rows] = out["revenue"]
    run.paid_first[rows] = out["paid_first"]
    run.weights[rows] = args["weights"]
    run.customer_hist += out["customer_hist"]


def unit_layout(customers: np.ndarray):
    """Cut each trial's customers into chunks of ``CHUNK_CUSTOMERS`` (work units).

    Returns ``unit_trial``, ``unit_first``, ``unit_count`` (per unit: its
    trial, first customer and number of customers) and ``starts``, each
    trial's first unit (a trial's units are consecutive).
    """
    customers = np.asarray(customers, dtype=np.int64)
    chunks = np.maximum(1, -(-customers // CHUNK_CUSTOMERS))
    starts = np.concatenate(([0], np.cumsum(chunks)[:-1]))
    unit_trial = np.repeat(np.arange(len(customers)), chunks)
    unit_first = (np.arange(len(unit_trial)) - starts[unit_trial]) * CHUNK_CUSTOMERS
    unit_count = np.clip(customers[unit_trial] - unit_first, 0, CHUNK_CUSTOMERS)
    return unit_trial, unit_first, unit_count, starts


# numba's default threading layer is not safe for concurrent kernel calls from
# several Python threads (a Dask worker with nthreads > 1): one kernel call at a
# time (each already uses every numba thread); the numpy work around it runs freely.
_KERNEL_LOCK = threading.Lock()


def run_subscription_kernel(args: dict, units, starts, horizon: int, month_by_month=False) -> dict:
    """Run the subscription kernel on ``units`` (``unit_layout`` + trial keys); per-trial sums.

    Returns the per-trial sums of ``_per_trial`` plus ``retained`` (GRR
    numerator by cohort year).
    """
    out = _unit_outputs(len(units[0]), horizon)
    retained = np.zeros((len(units[0]), retention_years(horizon)))
    with _KERNEL_LOCK:
        _kernels.simulate_units(
            *units,
            *(args[name] for name in _kernels.INPUT_NAMES),
            month_by_month,
            out["ends"],
            out["revenue"],
            out["paid"],
            retained,
            out["hist"],
        )
    return {**_per_trial(out, starts), "retained": _by_trial(retained, starts)}


def run_purchase_kernel(args: dict, units, starts, horizon: int) -> dict:
    """Run the order-driven kernel on ``units``; per-trial sums plus ``orders`` by month."""
    out = _unit_outputs(len(units[0]), horizon)
    orders = np.zeros((len(units[0]), horizon), np.int64)
    with _KERNEL_LOCK:
        _purchase_kernel.simulate_purchase_units(
            *units,
            args["process"],
            args["params"],
            args["weights"],
            args["cum_weights"],
            out["ends"],
            out["revenue"],
            orders,
            out["paid"],
            out["hist"],
        )
    return {**_per_trial(out, starts), "orders": _by_trial(orders, starts)}


def _unit_outputs(n_units: int, horizon: int) -> dict:
    """Zeroed per-unit outputs both kernels fill (the histogram has one row per thread)."""
    return {
        "ends": np.zeros((n_units, horizon + 1), np.int64),
        "revenue": np.zeros((n_units, horizon)),
        "paid": np.zeros((n_units, horizon), np.int64),
        "hist": np.zeros((numba.get_num_threads(), _kernels.HIST_BINS), np.int64),
    }


def _per_trial(out: dict, starts) -> dict:
    """Per-trial ``alive``, ``revenue``, ``paid_first`` and the pooled ``customer_hist``.

    A trial's chunks are consecutive units: they are added in order.
    """
    return {
        "alive": _alive(_by_trial(out["ends"], starts)),
        "revenue": _by_trial(out["revenue"], starts),
        "paid_first": _by_trial(out["paid"], starts),
        "customer_hist": out["hist"].sum(axis=0),
    }


def _by_trial(per_unit: np.ndarray, starts) -> np.ndarray:
    """Rows of ``per_unit`` summed over each trial's units (consecutive, added in order)."""
    if per_unit.shape[0] == len(starts):  # one unit a trial: nothing to add
        return per_unit
    return np.add.reduceat(per_unit, starts, axis=0)


def _alive(ends: np.ndarray) -> np.ndarray:
    """Customers active in month t = customers active for more than t months."""
    return np.cumsum(ends[:, ::-1], axis=1)[:, ::-1][:, 1:]


@contextlib.contextmanager
def _threads(threads):
    if threads is None:
        yield
        return
    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= limit:
        raise ConfigError(f"must be a whole number in [1, {limit}], got {threads!r}", "threads")
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@contextlib.contextmanager
def _progress_callback(progress, total: int):
    if callable(progress):
        yield progress
        return
    if not progress:
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} trial-segments"),
        TimeRemainingColumn(),
    )
    # Before its first call in a process the kernel is loaded from numba's cache
    # or, the very first time, compiled (several seconds): say so.
    first = "simulating"
    if not _kernels.simulate_units.signatures:
        first = "loading the kernel (compiled on first use, then cached)"
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(first, total=total)

        def report(done, total):
            bar.update(task, completed=done, total=total, description="simulating")

        yield report
