"""The driver: draws inputs, converts units, splits work, runs the kernel.

Trials are processed in blocks; inside a block, each trial's customers are cut
into fixed-size chunks (units) that the numba kernel runs in parallel. Every
random number is a pure function of (seed, stream name, trial, customer), so
results are bit-identical whatever the thread count or block size.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from . import _kernels
from ._rng import derive, stream_key, stream_uniforms
from .config import Config, ConfigError, Segment, load_config, monthly_from_annual

# Customers per work unit. Fixed (not tuned to the machine) because a trial's
# floating-point sums are added chunk by chunk: changing it changes the last bits.
CHUNK_CUSTOMERS = 4096
# Units per kernel call: bounds memory (each unit holds a histogram of 64 KiB).
UNITS_PER_CALL = 256

MODEL_CODES = {"constant": _kernels.CONSTANT, "sbg": _kernels.SBG, "curve": _kernels.CURVE}


@dataclass
class SegmentRun:
    """What the kernel produced for one segment, per trial (money summed over customers)."""

    segment: Segment
    inputs: dict[str, np.ndarray]  # drawn value of every input, per trial
    alive: np.ndarray  # (trial, period) customers active in month t
    revenue: np.ndarray  # (trial, period)
    paid_first: np.ndarray  # (trial, period) customers first paid back in month t
    weights: np.ndarray  # (trial, period) discount factor of month t
    customer_hist: np.ndarray  # (bin,) customers by discounted LTV, pooled over trials


def simulate(
    config,
    *,
    trials: int | None = None,
    customers: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool | Callable[[int, int], None] = False,
    block_trials: int | None = None,
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
        ``progress(trials_done, trials_total)`` after each block.
    block_trials : int, optional
        Trials per block (memory/progress granularity); the result does not
        depend on it.

    Examples
    --------
    >>> import ltvsim
    >>> ds = ltvsim.simulate("configs/seed-formula.toml", trials=20, customers=500)
    >>> float(ds.ltv_cac.sel(segment="all").mean()) > 2
    True
    """
    config = _with_overrides(config, trials=trials, customers=customers, seed=seed)
    runs = run_segments(config, threads=threads, progress=progress, block_trials=block_trials)
    from .dataset import build_dataset

    return build_dataset(config, runs)


def _with_overrides(config, **overrides) -> Config:
    if not isinstance(config, Config):
        config = load_config(config)
    given = {f"simulation.{k}": v for k, v in overrides.items() if v is not None}
    return config.with_overrides(given) if given else config


def run_segments(config: Config, *, threads=None, progress=False, block_trials=None):
    """Run every segment of ``config``; return a list of :class:`SegmentRun`."""
    n_trials, n_customers = config.trials, config.customers
    chunks_per_trial = math.ceil(n_customers / CHUNK_CUSTOMERS)
    if block_trials is None:
        block_trials = max(1, UNITS_PER_CALL // chunks_per_trial)
    elif isinstance(block_trials, bool) or not isinstance(block_trials, int) or block_trials < 1:
        raise ConfigError(f"must be a whole number >= 1, got {block_trials!r}", "block_trials")
    callback = _progress_callback(progress)
    runs = [_empty_run(config, s) for s in config.segments]
    total = n_trials * len(runs)
    done = 0
    with _threads(threads), callback as report:
        for first in range(0, n_trials, block_trials):
            count = min(block_trials, n_trials - first)
            for run in runs:
                _run_block(config, run, first, count, chunks_per_trial)
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
        weights=np.zeros(shape),
        customer_hist=np.zeros(_kernels.HIST_BINS, np.int64),
    )


def draw_inputs(config: Config, segment: Segment, first: int, count: int) -> dict:
    """Every input's value for trials ``first … first+count-1`` (fixed ones repeated)."""
    values = {}
    for path, value in segment.values.items():
        if segment.is_uncertain(path):
            key = stream_key(config.seed, "input", segment.streams[path])
            values[path] = value.ppf(stream_uniforms(key, first, count))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            values[path] = np.full(count, float(value))
    return values


def kernel_inputs(config: Config, segment: Segment, inputs: dict) -> dict:
    """Convert drawn inputs to the kernel's per-month, per-renewal arrays."""
    horizon = config.horizon_months
    renewal = segment["churn.renewal_months"]
    model = segment["churn.model"]
    count = len(inputs["revenue.arpa_monthly"])
    churn = np.zeros(count)
    if model == "constant":
        if "churn.annual_rate" in inputs:
            monthly_survival = (1.0 - inputs["churn.annual_rate"]) ** (1.0 / 12.0)
        else:
            monthly_survival = 1.0 - inputs["churn.monthly_rate"]
        churn = 1.0 - monthly_survival**renewal
    max_renewals = -(-horizon // renewal)
    survival = np.ones(max_renewals + 1)
    if model == "curve":
        rates = np.asarray(segment["churn.monthly_rates"], dtype=np.float64)
        hazard = rates[np.minimum(np.arange(max_renewals * renewal), len(rates) - 1)]
        month_survival = np.cumprod(1.0 - hazard)
        survival[1:] = month_survival[renewal - 1 :: renewal]
    ones = np.ones(count)
    sbg_alpha = inputs.get("churn.alpha", ones)
    sbg_beta = inputs.get("churn.beta", ones)

    growth = inputs["expansion.annual_growth"]
    vol = inputs["expansion.annual_volatility"] / math.sqrt(12.0)
    # annual_growth is the expected (arithmetic) growth: E[exp(mu + vol Z)] = (1+g)^(1/12).
    log_drift = np.log1p(growth) / 12.0 - 0.5 * vol**2
    weights = discount_weights(inputs["discount.annual_rate"], horizon, segment["discount.timing"])
    cum_weights = np.zeros((count, horizon + 1))
    np.cumsum(weights, axis=1, out=cum_weights[:, 1:])
    cv = inputs["revenue.arpa_cv"]
    return dict(
        model=MODEL_CODES[model],
        renewal_months=renewal,
        curve_survival=survival,
        churn_per_renewal=churn,
        alpha=np.ascontiguousarray(sbg_alpha),
        beta=np.ascontiguousarray(sbg_beta),
        arpa=inputs["revenue.arpa_monthly"],
        arpa_sigma=np.sqrt(np.log1p(cv**2)),
        margin=inputs["revenue.gross_margin"],
        cost=inputs["revenue.cost_to_serve_monthly"],
        cac=inputs["acquisition.cac"],
        log_drift=log_drift,
        volatility=vol,
        upsell_p=inputs["expansion.upsell_monthly_probability"],
        upsell_size=inputs["expansion.upsell_size"],
        downgrade_p=inputs["expansion.downgrade_monthly_probability"],
        downgrade_size=inputs["expansion.downgrade_size"],
        price_increase=inputs["expansion.price_increase"],
        price_every=segment["expansion.price_increase_every_months"],
        weights=weights,
        cum_weights=cum_weights,
    )


def discount_weights(annual_rate, horizon: int, timing: str) -> np.ndarray:
    """Discount factor of each month's cash, shape (len(annual_rate), horizon).

    ``v = 1 / (1 + d)`` with ``d = (1 + annual_rate)^(1/12) - 1``; cash of month t
    arrives at time t ("start"), t + 1/2 ("middle"), t + 1 ("end"), or evenly
    through the month ("continuous": ``v^t (1 - v) / delta``, ``delta = -ln v``).
    """
    d = monthly_from_annual(np.asarray(annual_rate, dtype=np.float64))[:, None]
    t = np.arange(horizon, dtype=np.float64)[None, :]
    log_v = -np.log1p(d)
    if timing == "start":
        return np.exp(log_v * t)
    if timing == "middle":
        return np.exp(log_v * (t + 0.5))
    if timing == "end":
        return np.exp(log_v * (t + 1.0))
    # continuous: the month's average of v^s over s in [t, t+1]; 1 when d = 0.
    delta = -log_v
    average = np.where(delta > 0, -np.expm1(-delta) / np.where(delta > 0, delta, 1.0), 1.0)
    return np.exp(log_v * t) * average


def _run_block(config: Config, run: SegmentRun, first: int, count: int, chunks: int):
    segment = run.segment
    inputs = draw_inputs(config, segment, first, count)
    for path, values in inputs.items():
        run.inputs.setdefault(path, np.empty(config.trials))[first : first + count] = values
    args = kernel_inputs(config, segment, inputs)
    customers_key = stream_key(config.seed, "customers", segment.name)
    trial_keys = np.array([derive(customers_key, first + j) for j in range(count)], np.uint64)

    n_customers, horizon = config.customers, config.horizon_months
    unit_trial = np.repeat(np.arange(count), chunks)
    unit_first = np.tile(np.arange(chunks) * CHUNK_CUSTOMERS, count)
    unit_count = np.minimum(CHUNK_CUSTOMERS, n_customers - unit_first)
    n_units = len(unit_trial)
    ends = np.zeros((n_units, horizon + 1), np.int64)
    revenue = np.zeros((n_units, horizon))
    paid = np.zeros((n_units, horizon), np.int64)
    hist = np.zeros((n_units, _kernels.HIST_BINS), np.int64)
    _kernels.simulate_units(
        unit_trial,
        unit_first,
        unit_count,
        trial_keys,
        args["model"],
        args["renewal_months"],
        args["curve_survival"],
        args["churn_per_renewal"],
        args["alpha"],
        args["beta"],
        args["arpa"],
        args["arpa_sigma"],
        args["margin"],
        args["cost"],
        args["cac"],
        args["log_drift"],
        args["volatility"],
        args["upsell_p"],
        args["upsell_size"],
        args["downgrade_p"],
        args["downgrade_size"],
        args["price_increase"],
        args["price_every"],
        args["weights"],
        args["cum_weights"],
        ends,
        revenue,
        paid,
        hist,
    )
    # A trial's chunks are consecutive units: add them in order.
    starts = np.arange(count) * chunks
    ends = np.add.reduceat(ends, starts, axis=0)
    rows = slice(first, first + count)
    # alive in month t = customers active for more than t months
    run.alive[rows] = np.cumsum(ends[:, ::-1], axis=1)[:, ::-1][:, 1:]
    run.revenue[rows] = np.add.reduceat(revenue, starts, axis=0)
    run.paid_first[rows] = np.add.reduceat(paid, starts, axis=0)
    run.weights[rows] = args["weights"]
    run.customer_hist += hist.sum(axis=0)


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
def _progress_callback(progress):
    if callable(progress):
        yield progress
        return
    if not progress:
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} trial-segments"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("simulate", total=None)

        def report(done, total):
            bar.update(task, completed=done, total=total)

        yield report
