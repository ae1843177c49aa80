"""Slow, obviously correct twin of the kernel: the customers × months arrays an
analyst would write in numpy.

It shares the config, the drawn inputs and their unit conversion with the
fast path (``simulate.draw_inputs`` / ``kernel_inputs``) but simulates the
customers differently on purpose: churn as a Bernoulli draw at every renewal
(not a geometric lifetime), its own numpy random generator, and whole
matrices instead of running sums. Tests compare the two statistically;
benchmarks time both on the same model.

``python_reference_simulate`` is a third twin in plain Python: loops over
customers and months with the standard library's ``random`` module, one
Bernoulli draw per renewal and per month, for small sizes only (tests and the
plain-Python benchmark ratio).
"""

from __future__ import annotations

import math
import random

import numpy as np

from . import _kernels
from .config import Config
from .model import CURVE, SBG, draw_inputs, kernel_inputs
from .simulate import SegmentRun, _empty_run, _with_overrides


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
    if args["model"] == SBG:
        theta = rng.beta(args["alpha"][j], args["beta"][j], size=(n, 1))
        renewal_churn = np.broadcast_to(theta, (n, horizon))
    elif args["model"] == CURVE:
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


# --- Plain Python ------------------------------------------------------------


def python_reference_simulate(config, *, trials=None, customers=None, seed=None):
    """The same Dataset as :func:`ltvsim.simulate`, in plain Python loops (small sizes)."""
    from .dataset import build_dataset

    config = _with_overrides(config, trials=trials, customers=customers, seed=seed)
    return build_dataset(config, python_reference_runs(config))


def python_reference_runs(config: Config) -> list[SegmentRun]:
    """Per-segment aggregates from :func:`python_simulate_trial`, trial by trial.

    The per-trial inputs are the fast path's (same streams); the customers'
    random numbers come from a ``random.Random`` seeded from the config's seed
    and the segment's position, so the result is reproducible.
    """
    runs = []
    for index, segment in enumerate(config.segments):
        run = _empty_run(config, segment)
        run.inputs = draw_inputs(config, segment, 0, config.trials)
        args = kernel_inputs(config, segment, run.inputs)
        rng = random.Random(f"ltvsim python reference {config.seed} {index}")
        edges = _kernels.histogram_edges()
        for trial in range(config.trials):
            alive, revenue, paid_first, ltv = python_simulate_trial(rng, config, args, trial)
            run.alive[trial] = alive
            run.revenue[trial] = revenue
            run.paid_first[trial] = paid_first
            run.customer_hist += np.histogram(ltv, edges)[0]
        run.weights[:] = args["weights"]
        runs.append(run)
    return runs


def python_simulate_trial(rng: random.Random, config: Config, args: dict, j: int):
    """One trial, customer by customer and month by month.

    Returns lists over months of customers ``alive``, ``revenue`` and
    ``paid_first`` (customers whose own cumulative gross profit first reaches
    CAC in the month), and the list of each customer's discounted
    gross-profit LTV.
    """
    horizon = config.horizon_months
    every = args["renewal_months"]
    model = args["model"]
    survival = [float(s) for s in args["curve_survival"]]  # P(survive n renewals)
    weights = [float(w) for w in args["weights"][j]]
    alpha, beta = float(args["alpha"][j]), float(args["beta"][j])
    arpa, sigma0 = float(args["arpa"][j]), float(args["arpa_sigma"][j])
    margin, cost, cac = float(args["margin"][j]), float(args["cost"][j]), float(args["cac"][j])
    mu, vol = float(args["log_drift"][j]), float(args["volatility"][j])
    up_p, up_x = float(args["upsell_p"][j]), 1.0 + float(args["upsell_size"][j])
    down_p, down_x = float(args["downgrade_p"][j]), 1.0 - float(args["downgrade_size"][j])
    price_x, price_every = 1.0 + float(args["price_increase"][j]), args["price_every"]

    alive = [0] * horizon
    revenue = [0.0] * horizon
    paid_first = [0] * horizon
    ltvs = []
    for _ in range(config.customers):
        if model == SBG:
            theta = rng.betavariate(alpha, beta)  # this customer's churn per renewal
        else:
            theta = float(args["churn_per_renewal"][j])
        mrr = arpa * math.exp(sigma0 * rng.gauss(0.0, 1.0) - 0.5 * sigma0**2)
        cumulative, paid, ltv = 0.0, False, 0.0
        for t in range(horizon):
            if t > 0:
                if t % every == 0:  # a renewal: leave with the per-renewal probability
                    if model == CURVE:
                        n = t // every
                        before = survival[n - 1]
                        theta = 1.0 - survival[n] / before if before > 0 else 1.0
                    if rng.random() < theta:
                        break
                if vol > 0.0:
                    mrr *= math.exp(mu + vol * rng.gauss(0.0, 1.0))
                else:
                    mrr *= math.exp(mu)
                if up_p + down_p > 0.0:  # at most one plan change a month
                    u = rng.random()
                    if u < up_p:
                        mrr *= up_x
                    elif u < up_p + down_p:
                        mrr *= down_x
                if t % price_every == 0:
                    mrr *= price_x
            gross_profit = margin * mrr - cost
            alive[t] += 1
            revenue[t] += mrr
            ltv += gross_profit * weights[t]
            cumulative += gross_profit
            if not paid and cumulative >= cac:
                paid = True
                paid_first[t] += 1
        ltvs.append(ltv)
    return alive, revenue, paid_first, ltvs


# --- Order-driven business models (repeat purchase, deals) --------------------


def purchase_reference_simulate(config, *, trials=None, customers=None, seed=None):
    """The same Dataset as :func:`ltvsim.simulate` for the order-driven business
    models, customer by customer in Python with numpy's generator.

    The construction differs from the kernel's on purpose: the orders of a
    Poisson process on an interval are a Poisson count placed at sorted
    uniform times (not a chain of exponential gaps); BG/NBD dropout is a
    geometric number of repeat orders; each customer's gross profit is a
    per-month array whose running sum gives its payback month.
    """
    from .dataset import build_dataset

    config = _with_overrides(config, trials=trials, customers=customers, seed=seed)
    return build_dataset(config, purchase_reference_runs(config))


def purchase_reference_runs(config: Config) -> list[SegmentRun]:
    from . import _purchase_kernel as pk
    from .purchase_model import kernel_params

    runs = []
    horizon = config.horizon_months
    edges = _kernels.histogram_edges()
    for index, segment in enumerate(config.segments):
        run = _empty_run(config, segment)
        run.inputs = draw_inputs(config, segment, 0, config.trials)
        args = kernel_params(config, segment, run.inputs)
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, index, 6]))
        for j in range(config.trials):
            prm, weights = args["params"][j], args["weights"][j]
            ltvs = []
            for _ in range(config.customers):
                times, values, dropout = _reference_orders(rng, args["process"], prm, horizon)
                month = np.floor(times).astype(np.int64)
                orders = np.bincount(month, minlength=horizon)
                revenue = np.bincount(month, values, minlength=horizon)
                months = horizon if dropout >= horizon else max(1, math.ceil(dropout))
                alive = np.arange(horizon) < months
                gross_profit = (
                    prm[pk.MARGIN] * revenue
                    - prm[pk.ORDER_COST] * orders
                    - prm[pk.MARKETING] * alive
                )
                reached = np.flatnonzero(np.cumsum(gross_profit) >= prm[pk.CAC])
                if reached.size:
                    run.paid_first[j, reached[0]] += 1
                run.alive[j] += alive
                run.orders[j] += orders
                run.revenue[j] += revenue
                ltvs.append(float(gross_profit @ weights))
            run.customer_hist += np.histogram(ltvs, edges)[0]
        run.weights[:] = args["weights"]
        runs.append(run)
    return runs


def _reference_orders(rng: np.random.Generator, process: int, prm, horizon: int):
    """One customer's order times and values within the horizon, and its dropout time."""
    from . import _purchase_kernel as pk

    if process == pk.DEALS:
        retention = prm[pk.RETENTION]
        if prm[pk.EXPONENTIAL_RETENTION] > 0:
            retention = rng.exponential(retention)
        k = np.arange(int(np.ceil(horizon * prm[pk.DEALS_PER_YEAR] / 12.0)) + 1)
        times = 12.0 * k / prm[pk.DEALS_PER_YEAR]
        keep = (times < retention) & (times < horizon)
        keep[1:] &= rng.random(len(k) - 1) < prm[pk.FOLLOW_ON_P]
        k, times = k[keep], times[keep]
        mean = np.where(k == 0, prm[pk.FIRST_VALUE], prm[pk.FOLLOW_ON_VALUE])
        cv = prm[pk.VALUE_CV]
        values = rng.gamma(1.0 / cv**2, mean * cv**2) if cv > 0 else mean
        return times, values, retention

    lam = rng.gamma(prm[pk.R], 1.0 / prm[pk.ALPHA])
    nu = rng.gamma(prm[pk.SPEND_Q], 1.0 / prm[pk.SPEND_GAMMA])
    if process == pk.PARETO_NBD:
        dropout = rng.exponential(1.0 / rng.gamma(prm[pk.S], 1.0 / prm[pk.BETA]))
        end = min(dropout, horizon)
        repeat = np.sort(rng.uniform(0.0, end, rng.poisson(lam * end)))
    else:
        p = rng.beta(prm[pk.A], prm[pk.B])
        repeat = np.sort(rng.uniform(0.0, horizon, rng.poisson(lam * horizon)))
        last = rng.geometric(p)  # the repeat order after which the customer drops out
        dropout = math.inf
        if last <= len(repeat):
            repeat, dropout = repeat[:last], repeat[last - 1]
    times = np.concatenate([[0.0], repeat])
    return times, rng.gamma(prm[pk.SPEND_P], 1.0 / nu, len(times)), dropout
