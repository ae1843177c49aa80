"""The numba kernel: plain arrays in, per-period aggregates out.

A *unit* of work is one chunk of customers of one trial. Each unit writes only
its own rows of the output arrays, so the result does not depend on how units
are scheduled on threads; the driver sums a trial's chunks in a fixed order.
Memory is independent of the number of customers: nothing per customer is
stored, each customer's contribution is added to its unit's aggregates.

Model (months since acquisition ``t = 0 … H-1``, payments in advance):

* customer ``i`` has a per-renewal churn probability ``theta_i`` (a constant,
  a Beta(alpha, beta) draw — the shifted-beta-geometric model — or a
  tenure curve); renewals happen every ``renewal_months`` months, and at the
  first one an extra ``first_renewal_churn`` leave;
* the number of renewals survived is drawn directly by inverse transform of
  one uniform on the trial's table of P(N >= n), not as a Bernoulli per
  month; sBG thus draws the lifetime from its beta-geometric marginal and
  never the customer's churn probability itself;
* MRR starts at ``arpa * LogNormal(mean 1, sd arpa_cv)`` and then, between
  consecutive months, is multiplied by ``exp(mu + sigma Z)`` (organic
  expansion); by ``1 + upsell_size`` with probability ``upsell_p`` or else by
  ``1 - downgrade_size`` with probability ``downgrade_p`` (at most one plan
  change a month); and, every ``price_every`` months, by ``1 + price_increase``.
  Months between plan changes are drawn as geometric gaps, not a Bernoulli
  per month;
* each ``billing_months`` months' revenue is paid at once at the start of
  the billing period (1: monthly), which moves cash — discounting and payback
  — but not revenue.

Without volatility a customer's MRR is ``level × M(t)``: a level that changes
only at plan changes times a multiplier ``M(t)`` (growth and price increases)
common to the trial. Then the kernel works per *plan change*, not per month:
revenue goes into a difference array of levels, discounted LTV and payback
come from cumulative sums of ``M`` precomputed per trial (``cum_multiplier``,
``cum_cash_multiplier``), so a customer costs O(plan changes + years), not
O(months). With volatility a customer's multiplier is its own, ``M(t) ×
exp(sigma S_t)`` with ``S_t`` a sum of t normals: it is computed for the
customer's months in a few array passes (normals and exponential as SIMD
code: month t's normal is a function of the path stream and t alone) and
the same per-plan-change walk runs on it. ``_walk_months``, one month at a
time, is the plain form of the model that tests compare both with; it
consumes the same random numbers.

Each customer has separate sub-streams for churn, starting size, the
volatility path and plan changes, so a scenario that changes one of them
leaves the others' random numbers untouched (common random numbers).
"""

import math

import numpy as np
from numba import get_thread_id, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._fastmath import exp, float_bits
from ._rng import counter_normal, derive, finish_counter_normal, next_normal, next_uniform

# numba's disk cache is fresh while the cached function's own file is
# unchanged (numba 0.68 compares a hash of it); it does not look at the files
# whose functions are compiled into it. This line changes with those files, so
# a release that changes only them still recompiles this file's functions.
# tests/test_fastmath.py keeps it up to date. Here: _fastmath.py and _rng.py.
COMPILED_IN_SHA256 = "3a091578f83118053c7be869aa6b32dc3b9c7df2e3776dcd5652f00d73556908"

# Sub-streams of a customer.
CHURN_STREAM, SIZE_STREAM, PATH_STREAM, EVENT_STREAM, SEAT_STREAM = 1, 2, 3, 4, 5

# Inlining: helpers that take arrays are inlined (inline="always"); called per
# customer as separate functions, their array arguments' reference counts,
# shared by every thread, would bounce between cores (2 threads ran 30% slower).
# For the same reason the customer loop takes no row views and picks no arrays:
# simulate_units does that once per unit, before it.
# Helpers on scalars only are left to LLVM: inlining them in Numba's IR too
# made the first compile 60% longer.

# Customer-LTV histogram: logarithmic bins read off the bits of v = 1 + |x|, as
# in an HDR histogram, so no logarithm is computed per customer. Each octave
# [2^e, 2^(e+1)) of v is cut into 2^HIST_SUB_BITS equal bins (0.39-0.78% of v
# wide), for v up to 2^HIST_OCTAVES (|x| ~1.1e12 currency units); larger values
# go into the outermost bins. Negative x mirror the positive bins.
HIST_SUB_BITS = 7
HIST_OCTAVES = 40
_HIST_HALF = HIST_OCTAVES << HIST_SUB_BITS
HIST_BINS = 2 * _HIST_HALF

# Months in a cohort year (net and gross revenue retention are per year).
YEAR = 12

# Customers whose lifetimes and starting sizes are drawn ahead of their walks.
DRAW_BATCH = 32

# Per-trial inputs of simulate_units, in its argument order (model.kernel_inputs
# returns them by these names).
INPUT_NAMES = (
    "renewal_months",
    "renewal_survival",
    "first_renewal_churn",
    "arpa",
    "arpa_sigma",
    "margin",
    "cost",
    "cac",
    "log_drift",
    "volatility",
    "upsell_p",
    "upsell_size",
    "downgrade_p",
    "downgrade_size",
    "price_increase",
    "price_every",
    "seat_model",
    "seat_price",
    "seats_initial",
    "seat_add_rate",
    "seat_remove_rate",
    "billing_months",
    "multiplier",
    "multiplier_rising",
    "cum_multiplier",
    "cum_cash_multiplier",
    "cash_weights",
    "cum_weights",
)


@intrinsic
def _borrowed(typingctx, value):
    """``value`` (an array, or a tuple holding arrays) with views that have no owner.

    Numba increments and decrements an array's reference count (atomic
    operations) each time it is passed to a function that is not inlined; for
    arrays shared by the threads the counter's cache line also moves between
    cores. A borrowed view costs neither, and keeps nothing alive: use it only
    as a call's argument, with ``value`` a variable the caller uses again
    later (Numba releases a variable right after its last use).
    """
    if not isinstance(value, (types.Array, types.BaseTuple)):
        return None

    def codegen(context, builder, signature, args):
        return _borrow(context, builder, signature.args[0], args[0])

    return value(value), codegen


def _borrow(context, builder, typ, value):
    """LLVM value of ``_borrowed``: arrays' owner pointers set to null, recursively."""
    if isinstance(typ, types.Array):
        view = context.make_array(typ)(context, builder, value=value)
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        view.parent = cgutils.get_null_value(view.parent.type)
        return view._getvalue()
    if isinstance(typ, types.BaseTuple):
        for i, member in enumerate(typ):
            borrowed = _borrow(context, builder, member, builder.extract_value(value, i))
            value = builder.insert_value(value, borrowed, i)
    return value


@njit(inline="always", cache=True)
def _renewals_survived(state, first_churn, survival, guide):
    """Number of renewals a new customer survives, capped at the table's end.

    ``survival[n]`` = P(N >= n): ``(1 - theta)^n`` for constant churn, sBG's
    beta-geometric ``B(alpha, beta+n)/B(alpha, beta)`` or the curve's, with
    ``guide = _survival_guide(survival)``. ``first_churn`` is an extra
    probability of leaving at the first renewal, independent of the model's churn.
    """
    # For sBG this draws the lifetime from its marginal: the customer's own
    # Beta(alpha, beta) churn probability is needed for nothing else, so one
    # uniform replaces two gamma draws.
    state, u = next_uniform(state)
    n = _inverse_survival(u, survival, guide)
    if first_churn > 0.0 and n > 0:
        state, v = next_uniform(state)
        if v < first_churn:
            n = 0
    return state, n


@njit(cache=True)
def _guide_size(entries):
    """Cells of a survival table's guide: a power of 2, at least 4 per entry."""
    size = 1
    while size < 4 * entries:
        size *= 2
    return size


@njit(inline="always", cache=True)
def _inverse_survival(u, survival, guide):
    """N = max{n : u <= survival[n]}: a draw of N, given P(N >= n) and a uniform u.

    From the guide's upper bound down to it (``survival[0]`` = 1).
    """
    n = guide[int(u * guide.shape[0])]
    while u > survival[n]:
        n -= 1
    return n


@njit(inline="always", cache=True)
def _survival_guide(survival, guide):
    """``guide[c]`` = max{n : survival[n] >= c / K}, K = ``len(guide)`` (a power of 2).

    A uniform u in [c/K, (c+1)/K) survives at most ``guide[c]`` renewals, and
    with K several times the table's length the exact N is that or a step
    below: a lifetime in O(1) instead of a bisection of unpredictable branches
    (~25 ns a customer). K a power of 2 makes ``survival[n] * K`` exact.
    """
    n = survival.shape[0] - 1
    size = guide.shape[0]
    for c in range(size):
        while n > 0 and survival[n] * size < c:
            n -= 1
        guide[c] = n


@njit(inline="always", cache=True)
def _next_event(state, t, no_event, guide):
    """Month of the next plan change after month t: t + Geometric(p) on {1, 2, ...}.

    ``no_event[k]`` = (1 - p)^k, k = 0 … horizon, the chance of k months in a
    row without one, and ``guide = _survival_guide(no_event)``: the gap is
    drawn by inverse transform like a lifetime, without a logarithm.
    """
    horizon = no_event.shape[0] - 1
    state, u = next_uniform(state)
    gap = _inverse_survival(u, no_event, guide)
    return state, horizon if gap == horizon else t + 1 + gap


@njit(inline="always", cache=True)
def _no_event_table(p, no_event, guide):
    """Fill ``no_event[k]`` = (1 - p)^k, k = 0 … horizon, and its guide (for ``_next_event``)."""
    log_no_event = math.log1p(-p) if p < 1.0 else -math.inf
    no_event[0] = 1.0
    for k in range(1, no_event.shape[0]):
        no_event[k] = exp(k * log_no_event)
    _survival_guide(no_event, guide)


@njit(cache=True)
def _seats_until(state, seats, tau, month, add_rate, remove_rate):
    """Run the seat count's birth-death process over the events before ``month``.

    Each seat brings a new one at ``add_rate`` per month; each seat but the
    first (the account itself) leaves at ``remove_rate``. ``tau`` is the time
    of the next event; returns (state, seats at ``month``, next event time).
    """
    while tau < month:
        adds, removes = add_rate * seats, remove_rate * (seats - 1.0)
        state, u = next_uniform(state)
        seats += 1.0 if u * (adds + removes) < adds else -1.0
        state, tau = _next_seat_event(state, tau, seats, add_rate, remove_rate)
    return state, seats, tau


@njit(cache=True)
def _next_seat_event(state, now, seats, add_rate, remove_rate):
    """Time of the seat count's next change after ``now`` (exponential gap)."""
    rate = add_rate * seats + remove_rate * (seats - 1.0)
    if rate <= 0.0:
        return state, math.inf
    state, u = next_uniform(state)
    return state, now - math.log(u) / rate


@njit(cache=True)
def _change_month(tau, horizon):
    """First month that starts after a change at time ``tau``."""
    return horizon if tau >= horizon else int(tau) + 1


@njit(cache=True)
def _change_level(level, month, changes, change_state, horizon):
    """The level from ``month`` on, and the month of the next change.

    ``changes`` = (upsell share, upsell factor, downgrade factor, the chance of
    k months without a plan change and its guide (see ``_next_event``), seat
    model?, seat add rate, seat remove rate, price per seat; callers pass it
    ``_borrowed``);
    ``change_state`` = (plan-change stream, seat stream, seats, time of the
    next seat event).
    """
    up_share, up_x, dn_x, no_event, event_guide, seats_on, add_rate, remove_rate, seat_price = (
        changes
    )
    events, seat_stream, seats, tau = change_state
    if seats_on:
        seat_stream, seats, tau = _seats_until(
            seat_stream, seats, tau, month, add_rate, remove_rate
        )
        return seats * seat_price, _change_month(tau, horizon), (events, seat_stream, seats, tau)
    events, x = next_uniform(events)
    level *= up_x if x < up_share else dn_x
    events, next_change = _next_event(events, month, no_event, event_guide)
    return level, next_change, (events, seat_stream, seats, tau)


@njit(inline="always", cache=True)
def _hist_bin(x):
    # The exponent and the leading mantissa bits of v >= 1: (octave << sub bits) | sub-bin.
    k = (float_bits(1.0 + abs(x)) >> (52 - HIST_SUB_BITS)) - (1023 << HIST_SUB_BITS)
    k = min(k, _HIST_HALF - 1)
    return _HIST_HALF + k if x >= 0.0 else _HIST_HALF - 1 - k


@njit(inline="always", cache=True)
def _first_month_reaching(gp_before, level_gp, cum_m, inverse, c2s, monotone, start, end, target):
    """First month t in [start, end) where cumulative gross profit reaches ``target``; -1 if none.

    Through month t it is ``gp_before + level_gp * (cum_m[t+1] - cum_m[start])
    - c2s * (t + 1 - start)``, ``gp_before`` being the total through month
    start - 1 (below the target). When it cannot fall within the interval
    (``monotone``): a guess from ``inverse`` (see ``_inverse_table``; empty:
    none) corrected by a few steps, or bisection; else a scan.
    """
    found = -1
    if monotone:
        last = gp_before + level_gp * (cum_m[end] - cum_m[start]) - c2s * (end - start)
        if last >= target and inverse.shape[0] > 0:  # c2s == 0: first t with cum_m[t+1] >= x
            x = cum_m[start] + (target - gp_before) / level_gp
            cells = inverse.shape[0] - 1  # _inverse_table's step is cum_m[cells] / cells
            found = max(start, inverse[min(int(x * (cells / cum_m[cells])), cells)])
            # The guess is right or a month early in most cases: one step forward
            # without a branch (a mispredicted one costs ~5 ns a customer), then
            # settle it on the exact test, a step or two at most either way.
            found += gp_before + level_gp * (cum_m[found + 1] - cum_m[start]) < target
            while found > start:
                if gp_before + level_gp * (cum_m[found] - cum_m[start]) < target:
                    break
                found -= 1
            while gp_before + level_gp * (cum_m[found + 1] - cum_m[start]) < target:
                found += 1
        elif last >= target:
            # Bisection without a branch on the comparison (a select), whose
            # outcome is a coin toss the CPU would mispredict half the time.
            lo, n = start - 1, end - start  # below the target at lo, reached at lo + n
            while n > 1:
                half = n >> 1
                mid = lo + half
                below = (
                    gp_before + level_gp * (cum_m[mid + 1] - cum_m[start]) - c2s * (mid + 1 - start)
                    < target
                )
                lo = mid if below else lo
                n -= half
            found = lo + 1
    else:
        for t in range(start, end):
            if (
                gp_before + level_gp * (cum_m[t + 1] - cum_m[start]) - c2s * (t + 1 - start)
                >= target
            ):
                found = t
                break
    return found


@njit(inline="always", cache=True)
def _inverse_table(cum_m, table):
    """``table[k]`` = first month t with ``cum_m[t+1] >= k × step``: a guide table.

    ``cum_m`` rises (M > 0), so the month where a customer's cumulative
    multiplier reaches any x is ``table[x // step]`` or a step or two after
    it: payback in O(1) instead of a bisection whose every step depends on
    the last (~70 ns a customer).
    """
    months = cum_m.shape[0] - 1  # one cell a month on average: step = cum_m[months] / months
    t = 0
    for k in range(months + 1):
        while t < months - 1 and cum_m[t + 1] * months < k * cum_m[months]:
            t += 1
        table[k] = t


@njit(parallel=True, cache=True, nogil=True)
def simulate_units(
    unit_trial,
    unit_first,
    unit_count,
    trial_keys,
    renewal_months,
    renewal_survival,
    first_renewal_churn,
    arpa,
    arpa_sigma,
    margin,
    cost,
    cac,
    log_drift,
    volatility,
    upsell_p,
    upsell_size,
    downgrade_p,
    downgrade_size,
    price_increase,
    price_every,
    seat_model,
    seat_price,
    seats_initial,
    seat_add_rate,
    seat_remove_rate,
    billing_months,
    multiplier,
    multiplier_rising,
    cum_multiplier,
    cum_cash_multiplier,
    cash_weights,
    cum_weights,
    month_by_month,
    out_ends,
    out_revenue,
    out_paid,
    out_retained,
    out_hist,
):
    """Simulate every unit; write its aggregates into row ``u`` of each output.

    Per-trial inputs are indexed by ``unit_trial[u]``; monthly rates are
    already per month. ``multiplier[j, t]`` is M(t), the trial's growth and
    price-increase factor of month t (``multiplier_rising[j]``: never falls);
    ``cum_multiplier[j, t]`` is
    ``sum(M[:t])`` and ``cum_cash_multiplier[j, t]`` is ``sum(M[:t] *
    cash_weights[j, :t])``, where ``cash_weights[j, t]`` discounts month t's
    revenue to when it is paid (the start of its billing period) and
    ``cum_weights[j, t]`` sums the discount factors of the first t months
    (for the monthly cost to serve). ``month_by_month`` forces the
    month-by-month walk (tests compare the two walks).

    Outputs (zeroed by the caller):
    ``out_ends[u, m]`` customers active for exactly m months within the horizon;
    ``out_revenue[u, t]`` revenue of month t summed over customers;
    ``out_paid[u, t]`` customers whose own cumulative gross profit (cash
    basis) first reaches CAC in month t;
    ``out_retained[u, y]`` sum over customers active in month 12(y+1) of
    min(MRR then, MRR twelve months earlier) — gross revenue retention's
    numerator; ``out_hist[k, b]`` customers whose discounted gross-profit LTV
    falls in histogram bin b, counted by thread k (the caller sums the rows:
    integer counts, so the order does not matter).
    """
    horizon = out_revenue.shape[1]
    max_renewals = (horizon + renewal_months - 1) // renewal_months
    guide_size = _guide_size(max_renewals + 1)
    event_guide_size = _guide_size(horizon + 1)
    for u in prange(unit_trial.shape[0]):
        j = unit_trial[u]
        a0, s0, gm, c2s, acq = arpa[j], arpa_sigma[j], margin[j], cost[j], cac[j]
        mu, vol = log_drift[j], volatility[j]
        up_p, up_x = upsell_p[j], 1.0 + upsell_size[j]
        dn_p, dn_x = downgrade_p[j], 1.0 - downgrade_size[j]
        event_p = up_p + dn_p
        up_share = up_p / event_p if event_p > 0.0 else 0.0
        no_event = np.empty(horizon + 1)
        event_guide = np.empty(event_guide_size, np.int64)
        if event_p > 0.0:
            _no_event_table(event_p, no_event, event_guide)
        add_rate, remove_rate = seat_add_rate[j], seat_remove_rate[j]
        changes = (
            up_share,
            up_x,
            dn_x,
            no_event,
            event_guide,
            seat_model,
            add_rate,
            remove_rate,
            seat_price[j],
        )
        # Initial seats: 1 + geometric, mean seats_initial (many small accounts, a few large).
        log_more_seats = math.log1p(-1.0 / seats_initial[j]) if seats_initial[j] > 1.0 else 0.0
        m_j, cm_j, ccm_j = multiplier[j], cum_multiplier[j], cum_cash_multiplier[j]
        # Nobody's level ever changes: revenue retention is added per unit, not per customer.
        levels_constant = not (seat_model or event_p > 0.0 or vol > 0.0 or month_by_month)
        thread = get_thread_id()  # constant within a unit
        # Without volatility revenue is collected as changes of level (see module doc);
        # a volatile customer's own multiplier and its cumulative sums go in scratch arrays.
        level_change = np.zeros(horizon + 1)
        own_m = np.empty(horizon)
        own_cum_m = np.empty(horizon + 1)
        own_cum_cash_m = np.empty(horizon + 1)
        # Payback by table lookup where cumulative profit is a function of cum_m alone.
        inverse = np.empty(horizon + 1 if c2s == 0.0 else 0, np.int64)
        if inverse.shape[0] > 0:
            _inverse_table(cm_j, inverse)
        no_inverse = np.empty(0, np.int64)
        batch_keys = np.empty(DRAW_BATCH, np.uint64)
        batch_renewals = np.empty(DRAW_BATCH, np.int64)
        batch_levels = np.empty(DRAW_BATCH)
        guide = np.empty(guide_size, np.int64)
        # Every array the customer loop uses is taken here, once a unit (see the
        # note on inlining): a row view or a choice of arrays inside it updates
        # reference counts for each customer, 30-40% of a constant-level customer.
        survival_j, cash_weights_j = renewal_survival[j], cash_weights[j]
        _survival_guide(survival_j, guide)
        revenue_u, paid_u, retained_u = out_revenue[u], out_paid[u], out_retained[u]
        if vol > 0.0:  # the customer's own multiplier, refilled for each customer
            m, rising, cm, ccm, lookup = own_m, False, own_cum_m, own_cum_cash_m, no_inverse
        else:
            m, rising, cm, ccm, lookup = m_j, multiplier_rising[j], cm_j, ccm_j, inverse
        for i in range(unit_first[u], unit_first[u] + unit_count[u]):
            b = (i - unit_first[u]) % DRAW_BATCH
            if b == 0:
                _draw_batch(
                    trial_keys[j],
                    i,
                    min(DRAW_BATCH, unit_first[u] + unit_count[u] - i),
                    first_renewal_churn[j],
                    survival_j,
                    guide,
                    a0,
                    s0 if not seat_model else 0.0,
                    batch_keys,
                    batch_renewals,
                    batch_levels,
                )
            customer, n = batch_keys[b], batch_renewals[b]
            months = min((n + 1) * renewal_months, horizon)
            out_ends[u, months] += 1
            # (unused streams are not derived: the customer key stands in)
            events = derive(customer, EVENT_STREAM) if event_p > 0.0 else customer
            seat_stream = derive(customer, SEAT_STREAM) if seat_model else customer
            seats, tau, next_change = 1.0, math.inf, horizon
            if seat_model:
                if log_more_seats < 0.0:
                    seat_stream, v = next_uniform(seat_stream)
                    seats += math.floor(math.log(v) / log_more_seats)
                level = seats * seat_price[j]
                seat_stream, tau = _next_seat_event(seat_stream, 0.0, seats, add_rate, remove_rate)
                next_change = _change_month(tau, horizon)
            else:
                level = batch_levels[b]
                if event_p > 0.0:
                    events, next_change = _next_event(events, 0, no_event, event_guide)
            change_state = (events, seat_stream, seats, tau)
            if month_by_month:
                discounted = _walk_months(
                    derive(customer, PATH_STREAM),
                    changes,
                    change_state,
                    next_change,
                    level,
                    months,
                    mu,
                    vol,
                    1.0 + price_increase[j],
                    price_every,
                    billing_months,
                    gm,
                    c2s,
                    acq,
                    cash_weights_j,
                    revenue_u,
                    paid_u,
                    retained_u,
                )
            else:
                # One call site for both multipliers: the walk is inlined, twice would
                # double the kernel's compile time.
                if vol > 0.0:
                    _own_multiplier(
                        derive(customer, PATH_STREAM),
                        months,
                        vol,
                        _borrowed(m_j),
                        _borrowed(cash_weights_j),
                        _borrowed(own_m),
                        _borrowed(own_cum_m),
                        _borrowed(own_cum_cash_m),
                    )
                discounted = _walk_plan_changes(
                    changes,
                    change_state,
                    next_change,
                    level,
                    months,
                    billing_months,
                    gm,
                    c2s,
                    acq,
                    m,
                    rising,
                    cm,
                    ccm,
                    lookup,
                    vol > 0.0,
                    levels_constant,
                    level_change,
                    revenue_u,
                    paid_u,
                    retained_u,
                )
            ltv = gm * discounted - c2s * cum_weights[j, months]
            # Counts are integers, so one row per thread is exact and order-free.
            out_hist[thread, _hist_bin(ltv)] += 1
        if not month_by_month:
            level = 0.0  # summed over the customers active in month t
            active = unit_count[u]
            next_year = YEAR
            for t in range(horizon):
                level += level_change[t]
                active -= out_ends[u, t]  # lifetimes of exactly t months end before month t
                if active == 0:
                    level = 0.0  # nobody left: no rounding residue of the +/- level changes
                out_revenue[u, t] += level * m_j[t]
                if t == next_year:
                    if levels_constant:  # min(MRR now, a year ago), every level unchanged
                        out_retained[u, t // YEAR - 1] += level * min(m_j[t], m_j[t - YEAR])
                    next_year += YEAR


@njit(inline="always", cache=True)
def _draw_batch(
    trial_key,
    first,
    count,
    first_churn,
    survival,
    guide,
    arpa,
    arpa_sigma,
    keys,
    renewals,
    levels,
):
    """Keys, renewals survived and starting MRR of customers ``first … first+count-1``.

    Drawn a batch ahead of the walks: each customer's draws are a chain of
    dependent steps (hash, uniform, table lookups; hash, normal), and a loop
    of only these lets the CPU run several customers' chains at once. The
    exponentials of the starting sizes follow in a pass of their own (SIMD code).
    """
    for b in range(count):
        customer = derive(trial_key, first + b)
        keys[b] = customer
        _, renewals[b] = _renewals_survived(
            derive(customer, CHURN_STREAM), first_churn, survival, guide
        )
        levels[b] = arpa
        if arpa_sigma > 0.0:
            _, levels[b] = next_normal(derive(customer, SIZE_STREAM))
    if arpa_sigma > 0.0:
        for b in range(count):
            levels[b] = arpa * exp(arpa_sigma * levels[b] - 0.5 * arpa_sigma * arpa_sigma)


@njit(inline="always", cache=True)
def _walk_months(
    path,
    changes,
    change_state,
    next_change,
    level,
    months,
    mu,
    vol,
    price_x,
    price_every,
    billing_months,
    gm,
    c2s,
    acq,
    cash_weights,
    out_revenue,
    out_paid,
    out_retained,
):
    """One customer month by month; returns its discounted revenue (cash timing).

    MRR is ``level × path_x``: the level moves at plan or seat changes, the
    path with growth, volatility and price increases.
    """
    horizon = out_revenue.shape[0]
    growth = math.exp(mu)
    next_price = price_every
    discounted = 0.0
    cash = 0.0  # gross profit from revenue paid so far
    period_revenue = 0.0
    paid = False
    path_x = 1.0
    year_start_mrr = level
    period_end = billing_months  # the open billing period is [period_end - billing, period_end)
    next_year = YEAR
    for t in range(months):
        if t > 0:
            if vol > 0.0:
                z = finish_counter_normal(path, t, counter_normal(path, t))
                path_x *= math.exp(mu + vol * z)
            else:
                path_x *= growth
            if t == next_change:
                # borrowed: _change_level is not inlined (see _borrowed)
                level, next_change, change_state = _change_level(
                    level, t, _borrowed(changes), change_state, horizon
                )
            if t == next_price:
                path_x *= price_x
                next_price += price_every
        mrr = level * path_x
        if t == next_year:  # a counter, not t % YEAR: a modulo a month costs ~6 ns
            out_retained[t // YEAR - 1] += min(mrr, year_start_mrr)
            year_start_mrr = mrr
            next_year += YEAR
        out_revenue[t] += mrr
        discounted += mrr * cash_weights[t]
        if not paid:
            # A billing period's revenue is paid at its start: check when it closes.
            period_revenue += mrr
            if t + 1 == period_end or t == months - 1:
                cash += gm * period_revenue
                period_revenue = 0.0
                start = period_end - billing_months
                period_end += billing_months
                if cash - c2s * (start + 1) >= acq:
                    paid = True
                    out_paid[start] += 1
    return discounted


@njit(inline="always", cache=True)
def _walk_plan_changes(
    changes,
    change_state,
    next_change,
    level,
    months,
    billing_months,
    gm,
    c2s,
    acq,
    m,
    m_rising,
    cum_m,
    cum_cash_m,
    inverse,
    own_path,
    levels_constant,
    level_change,
    out_revenue,
    out_paid,
    out_retained,
):
    """One customer interval by interval of constant level; returns its discounted revenue.

    Month t's MRR is ``level × m[t]`` with the level of the interval holding t;
    the level moves at plan or seat changes (``_change_level``). ``m`` is the
    trial's multiplier, whose revenue the caller adds from ``level_change``
    once per unit, or the customer's own (``own_path``), added month by month.
    With ``levels_constant`` (no plan or seat changes, the trial's multiplier)
    the caller also adds revenue retention per unit. ``inverse`` is
    ``_inverse_table(cum_m)`` when the cost to serve is 0, else empty.
    """
    horizon = m.shape[0]
    discounted = 0.0
    cash = 0.0  # gross profit from revenue paid by the end of the previous interval
    period_revenue = 0.0  # revenue of the open billing period (billing_months > 1)
    period_end = billing_months
    paid = False
    year_start_mrr = level
    next_year = horizon if levels_constant else YEAR
    start = 0
    while True:
        end = min(next_change, months)  # level is constant on [start, end)
        if own_path:
            for t in range(start, end):
                # Unsigned indices: without numba's check for negative ones, this
                # loop compiles to SIMD code (8% of a volatile customer's time).
                out_revenue[np.uint64(t)] += level * m[np.uint64(t)]
        else:
            level_change[start] += level
            level_change[end] -= level
        discounted += level * (cum_cash_m[end] - cum_cash_m[start])
        while next_year < end:
            mrr = level * m[next_year]
            out_retained[next_year // YEAR - 1] += min(mrr, year_start_mrr)
            year_start_mrr = mrr
            next_year += YEAR
        if not paid:
            if billing_months == 1:
                # Gross profit cannot fall within the interval if each month's is >= 0.
                monotone = c2s == 0.0 or (m_rising and gm * level * m[start] >= c2s)
                gp_before = cash - c2s * start
                t = _first_month_reaching(
                    gp_before, gm * level, cum_m, inverse, c2s, monotone, start, end, acq
                )
                if t >= 0:
                    paid = True
                    out_paid[t] += 1
                cash += gm * level * (cum_m[end] - cum_m[start])
            else:
                # Close every billing period that ends in [start, end]; the open one
                # ends at period_end (a counter: an integer division costs ~5 ns).
                p = start
                while p < end and not paid:
                    close = min(end, period_end)
                    period_revenue += level * (cum_m[close] - cum_m[p])
                    if close == period_end or close == months:
                        cash += gm * period_revenue
                        period_revenue = 0.0
                        first = period_end - billing_months  # the period's first month
                        if cash - c2s * (first + 1) >= acq:
                            paid = True
                            out_paid[first] += 1
                        period_end += billing_months
                    p = close
        if end == months:
            break
        # borrowed: _change_level is not inlined (see _borrowed)
        level, next_change, change_state = _change_level(
            level, end, _borrowed(changes), change_state, horizon
        )
        start = end
    return discounted


@njit(cache=True)
def _own_multiplier(path, months, vol, m, cash_weights, own_m, cum_m, cum_cash_m):
    """A volatile customer's multiplier for months ``0 … months-1`` and its cumulative sums.

    ``own_m[t] = m[t] × exp(vol × S_t)``, S_t the sum of the path stream's
    normals 1 … t (the trial's M carries the drift). In passes, so that the
    normals (each a function of its month alone) and the exponential run as
    SIMD code. Not inlined: it does O(months) work a call, and inlining it made
    the first compile 4 s longer.
    """
    for t in range(1, months):
        own_m[t] = counter_normal(path, t)  # SIMD: NaN where the ziggurat needs more
    s = 0.0
    own_m[0] = 0.0
    for t in range(1, months):
        s += finish_counter_normal(path, t, own_m[t])
        own_m[t] = s
    for t in range(months):
        own_m[t] = m[t] * exp(vol * own_m[t])
    total = 0.0
    cash = 0.0
    cum_m[0] = 0.0
    cum_cash_m[0] = 0.0
    for t in range(months):
        total += own_m[t]
        cash += own_m[t] * cash_weights[t]
        cum_m[t + 1] = total
        cum_cash_m[t + 1] = cash


def histogram_edges():
    """Bin edges of the customer-LTV histogram, in currency (``HIST_BINS + 1``, rising)."""
    k = np.arange(_HIST_HALF + 1)
    sub = 1 << HIST_SUB_BITS
    positive = np.ldexp(1.0 + (k % sub) / sub, k // sub) - 1.0  # 0 … 2^40 - 1
    return np.concatenate((-positive[::-1], positive[1:]))
