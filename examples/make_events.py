"""Generate ``examples/events.csv``: a subscription event log with known parameters.

    python examples/make_events.py            # rewrites examples/events.csv

Two segments acquire customers every month from 2022-01 to 2025-01; the log
ends on 2025-01-15. Each customer follows ltvsim's model (ltvsim/events.py
states the conventions):

- churn per renewal theta ~ Beta(alpha, beta) (sBG), renewals monthly: the
  customer pays L months, P(L = l) = theta (1 - theta)^(l - 1), and its cancel
  is logged in its last paid month (days 15-28);
- starting MRR lognormal with the segment's mean and coefficient of variation;
- in each later paid month at most one plan change (days 1-14): an upsell with
  probability p_up (MRR x (1 + size), size ~ gamma around the mean size) or
  else a downgrade with probability p_down (MRR x (1 - size), size ~ beta).

``tests/test_events.py`` regenerates the file, checks it is the one shipped,
and checks that ``ltvsim fit`` recovers TRUE within the fit's standard errors.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

import numpy as np

TRUE = {
    "smb": {
        "per_month": 50,
        "alpha": 0.8,
        "beta": 8.0,
        "arpa": 300.0,
        "arpa_cv": 0.6,
        "p_up": 0.02,
        "up_size": 0.25,
        "up_size_sd": 0.1,
        "p_down": 0.01,
        "down_size": 0.2,
        "down_size_sd": 0.08,
    },
    "enterprise": {
        "per_month": 12,
        "alpha": 1.5,
        "beta": 40.0,
        "arpa": 3000.0,
        "arpa_cv": 0.4,
        "p_up": 0.04,
        "up_size": 0.15,
        "up_size_sd": 0.05,
        "p_down": 0.01,
        "down_size": 0.1,
        "down_size_sd": 0.04,
    },
}
FIRST, LAST = (2022, 1), (2025, 1)  # acquisition months
END = dt.date(2025, 1, 15)  # the log's last day
SEED = 20240101


def month_day(month_index: int, day: int) -> dt.date:
    return dt.date(month_index // 12, month_index % 12 + 1, day)


def generate(seed: int = SEED) -> list[tuple[str, str, str, str, str]]:
    """Rows (customer_id, date, event, mrr, segment), sorted by date."""
    rng = np.random.default_rng(seed)
    first = 12 * FIRST[0] + FIRST[1] - 1
    last = 12 * LAST[0] + LAST[1] - 1
    end = 12 * END.year + END.month - 1
    rows = []  # (date, customer number, event number, row)
    number = 0
    for month in range(first, last + 1):
        for segment, p in TRUE.items():
            for _ in range(p["per_month"]):
                number += 1
                customer = f"{segment[0]}{number:05d}"
                events = []
                theta = rng.beta(p["alpha"], p["beta"])
                paid = rng.geometric(theta)  # months paid, >= 1
                sigma2 = math.log1p(p["arpa_cv"] ** 2)
                mrr = p["arpa"] * math.exp(rng.normal(-sigma2 / 2, math.sqrt(sigma2)))
                start_day = int(rng.integers(1, 29))
                events.append((month_day(month, start_day), "start", mrr))
                for t in range(1, min(paid, end - month + 1)):  # events after END: unseen
                    u = rng.random()
                    if u < p["p_up"]:
                        shape = (p["up_size"] / p["up_size_sd"]) ** 2
                        mrr *= 1 + rng.gamma(shape, p["up_size"] / shape)
                    elif u < p["p_up"] + p["p_down"]:
                        m, s = p["down_size"], p["down_size_sd"]
                        common = m * (1 - m) / s**2 - 1
                        mrr *= 1 - rng.beta(m * common, (1 - m) * common)
                    else:
                        continue
                    events.append((month_day(month + t, int(rng.integers(1, 15))), "change", mrr))
                low = start_day if paid == 1 else 15
                cancel_day = int(rng.integers(low, 29))
                if month + paid - 1 <= end:
                    events.append((month_day(month + paid - 1, cancel_day), "cancel", None))
                for k, (date, kind, value) in enumerate(events):
                    if date > END:
                        break
                    text = "" if value is None else f"{value:.2f}"
                    rows.append(
                        (date, number, k, (customer, date.isoformat(), kind, text, segment))
                    )
    rows.sort(key=lambda r: r[:3])
    return [r[3] for r in rows]


def write(path: Path, seed: int = SEED) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["customer_id", "date", "event", "mrr", "segment"])
        out.writerows(generate(seed))


if __name__ == "__main__":
    write(Path(__file__).with_name("events.csv"))
