"""Slow, obviously correct twin of the kernel: the customers × months arrays an
analyst would write in numpy.

It shares the config, the drawn inputs and their unit conversion with the
fast path (``simulate.draw_inputs`` / ``kernel_inputs``) but simulates the
customers differently on purpose: churn as a Bernoulli draw at every renewal
(not a geometric lifetime), its own numpy random generator, and whole
matrices instead of running sums. Tests compare the two statistically;
benchmarks time both on the same model.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from .config import Config
from .simulate import SegmentRun, _empty_run, _with_overrides, draw_inputs, kernel_inputs


def reference_simulate(config, *, trials=None, customers=None, seed=None):
    """The same Dataset as :func:`ltvsim.simulate`, computed slowly in numpy."""
    from .dataset import build_dataset

    config = _with_overrides(config, trials=trials, customers=customers, seed=seed)
    return build_dataset(config, reference_runs(config))


def reference_runs(config: Config) -> list[SegmentRun]:
    runs = []
    for index, segment in enumerate(config.segments):
        run = _empty_run(config, segment)
        run.inputs = draw_inputs(config, segment, 0, config.trials)
        args = kernel_inputs(config, segment, run.inputs)
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, index]))
        for trial in range(config.trials):
            alive, revenue, paid_first, ltv = simulate_trial(rng, config, args, trial)
            run.alive[trial] = alive.sum(axis=0)
            run.revenue[trial] = revenue.sum(axis=0)
            run.paid_first[trial] = paid_first.sum(axis=0)
            run.customer_hist += np.histogram(ltv, _kernels.histogram_edges())[0]
        run.weights[:] = args["weights"]
        runs.append(run)
    return runs


def simulate_trial(rng: np.random.Generator, config: Config, args: dict, j: int):
    """One trial as customers × months arrays.

    Returns ``alive`` (bool), ``revenue`` and ``paid_first`` (bool: the month a
    customer's own cumulative gross profit first reaches CAC), all
    customers × months, and each customer's discounted gross-profit LTV.
    """
    n, horizon = config.customers, config.horizon_months
    k = args["renewal_months"]
    months = np.arange(horizon)

    # Churn: a Bernoulli draw at each renewal (t = k, 2k, ...) with the
    # customer's per-renewal churn probability.
    if args["model"] == _kernels.SBG:
        theta = rng.beta(args["alpha"][j], args["beta"][j], size=(n, 1))
        renewal_churn = np.broadcast_to(theta, (n, horizon))
    elif args["model"] == _kernels.CURVE:
        survival = args["curve_survival"]  # P(survive n renewals)
        per_renewal = 1.0 - survival[1:] / np.where(survival[:-1] > 0, survival[:-1], 1.0)
        renewal_churn = np.broadcast_to(per_renewal[np.maximum(months // k - 1, 0)], (n, horizon))
    else:
        renewal_churn = np.full((n, horizon), args["churn_per_renewal"][j])
    is_renewal = (months > 0) & (months % k == 0)
    leaves = is_renewal & (rng.random((n, horizon)) < renewal_churn)
    alive = np.cumsum(leaves, axis=1) == 0

    # MRR: starting size, then monthly multiplicative changes.
    sigma0 = args["arpa_sigma"][j]
    start = args["arpa"][j] * np.exp(sigma0 * rng.standard_normal(n) - 0.5 * sigma0**2)
    step = np.exp(args["log_drift"][j] + args["volatility"][j] * rng.standard_normal((n, horizon)))
    step *= np.where(rng.random((n, horizon)) < args["upsell_p"][j], 1 + args["upsell_size"][j], 1)
    step *= np.where(
        rng.random((n, horizon)) < args["downgrade_p"][j], 1 - args["downgrade_size"][j], 1
    )
    step[:, months % args["price_every"] == 0] *= 1 + args["price_increase"][j]
    step[:, 0] = 1.0
    mrr = start[:, None] * np.cumprod(step, axis=1)

    revenue = np.where(alive, mrr, 0.0)
    gross_profit = np.where(alive, args["margin"][j] * mrr - args["cost"][j], 0.0)
    reached = np.cumsum(gross_profit, axis=1) >= args["cac"][j]
    paid_first = reached & (np.cumsum(reached, axis=1) == 1)
    ltv = (gross_profit * args["weights"][j]).sum(axis=1)
    return alive, revenue, paid_first, ltv
