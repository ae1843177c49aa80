"""Soak test: many consecutive runs in one process, resident memory must stay flat.

Each iteration simulates a small config with a new seed, writes the result
(netCDF, atomically), opens it again and summarises it, as a long-running
service or notebook would. The resident set size (RSS, from
``/proc/self/statm``) is sampled after ``gc.collect()`` every ``--every``
runs. The first samples include one-time costs (numba kernel load, HDF5 and
xarray caches), so the verdict uses the samples after ``--settle`` runs: the
least-squares slope of RSS against run number, in MB per 100 runs, and the
total growth over that window. The process exits 1 when the growth exceeds
``--limit-mb``.

    python benchmarks/soak.py                  # 200 runs, 1-3 minutes on 2 cores
    python benchmarks/soak.py --runs 1000      # longer
    python benchmarks/run.py --soak            # the same, from the benchmark driver
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "segments.toml"
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """Resident set size of this process, MB (Linux /proc; ru_maxrss elsewhere is a peak)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE / 1e6
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def soak(runs: int, every: int, trials: int, customers: int) -> list[tuple[int, float, float]]:
    """Run ``runs`` iterations; return ``(run, RSS MB, seconds since start)`` samples."""
    import ltvsim

    config = ltvsim.load_config(CONFIG)
    samples = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ltvsim-soak-") as folder:
        path = Path(folder) / "result.nc"
        for run in range(1, runs + 1):
            ds = ltvsim.simulate(config, trials=trials, customers=customers, seed=run)
            ltvsim.write_result(ds, path)
            back = ltvsim.open_result(path)
            ltvsim.summarize(back)
            del ds, back
            if run % every == 0 or run == 1:
                gc.collect()
                samples.append((run, rss_mb(), time.perf_counter() - started))
    return samples


def verdict(samples, settle: int) -> dict[str, float]:
    """Growth after the first ``settle`` runs: total MB and least-squares MB per 100 runs."""
    window = [(r, m) for r, m, _ in samples if r >= settle]
    if len(window) < 2:
        raise ValueError("not enough samples after --settle: run longer or sample more often")
    runs, mb = np.array(window, dtype=float).T
    slope = np.polyfit(runs, mb, 1)[0] * 100
    return {"growth_mb": float(mb[-1] - mb[0]), "slope_mb_per_100_runs": float(slope)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="consecutive runs (default 200)")
    parser.add_argument("--every", type=int, default=10, help="sample RSS every N runs")
    parser.add_argument("--settle", type=int, default=20, help="runs before the verdict window")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--limit-mb", type=float, default=20.0, help="allowed growth (MB)")
    args = parser.parse_args(argv)
    if args.runs < args.settle + 2 * args.every:
        parser.error("--runs must exceed --settle by at least two samples")
    samples = soak(args.runs, args.every, args.trials, args.customers)
    size = f"{args.trials} trials × {args.customers} customers"
    print(f"soak: {args.runs} runs of {CONFIG.name}, {size}")
    print(f"{'run':>6} {'RSS MB':>8} {'seconds':>8}")
    for run, mb, seconds in samples:
        print(f"{run:>6} {mb:>8.1f} {seconds:>8.1f}")
    result = verdict(samples, args.settle)
    stable = result["growth_mb"] <= args.limit_mb
    print(
        f"after run {args.settle}: RSS grew {result['growth_mb']:+.1f} MB "
        f"({result['slope_mb_per_100_runs']:+.2f} MB per 100 runs, least squares); "
        f"{'stable' if stable else 'GROWING'} (limit {args.limit_mb:g} MB)"
    )
    return 0 if stable else 1


if __name__ == "__main__":
    sys.exit(main())
