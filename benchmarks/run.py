"""Benchmark ltvsim in one run: JIT compile, kernel vs numpy reference vs raw RNG rate.

Usage::

    python benchmarks/run.py               # full run, 1-2 minutes on a quiet 2-core machine
    python benchmarks/run.py --quick       # smoke run, under a minute
    python benchmarks/run.py --repeats 9   # more repeats per measurement

Prints markdown tables to stdout (progress to stderr), writes
``benchmarks/results.json`` (every individual repeat) and regenerates the
results block of ``benchmarks/README.md``, which explains the method.

Every Numba cache this script touches lives in one temporary directory
(``NUMBA_CACHE_DIR``), removed at the end: the cold-compile measurement starts
from an empty cache, and nothing is written into the source tree.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# numba, xarray and ltvsim are imported inside the functions that use them:
# numba reads NUMBA_CACHE_DIR at import, and main() sets it first.

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benchmarks"
RESULTS = HERE / "results.json"
README = HERE / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
SAAS = ROOT / "configs" / "saas.toml"


@dataclass(frozen=True)
class Model:
    """One model to time: a config (plus overrides) and its trial counts."""

    name: str
    config: str  # relative to the repository root
    trials: int  # for simulate(); customers are the config's own
    reference_trials: int  # for the numpy reference: ~10-40x slower per trial
    overrides: dict = field(default_factory=dict)


# Trial counts are fixed (not calibrated to the machine) so that runs compare
# with each other; each simulate() call takes ~1 s on a 2-core Xeon VM.
MODELS = [
    Model("saas", "configs/saas.toml", 2000, 20),
    Model(
        "saas, constant churn, no volatility",
        "configs/saas.toml",
        4000,
        20,
        {"churn.monthly_rate": 0.02, "expansion.annual_volatility": 0.0},
    ),
    Model("annual-contracts", "configs/annual-contracts.toml", 1000, 20),
    Model("segments", "configs/segments.toml", 200, 10),
]
QUICK_DIVISOR = 10  # --quick divides every trial count by this
THREAD_TRIALS = 1000  # saas trials for the threads 1 vs 2 comparison
RNG_DRAWS = 10_000_000
CLI_REPEATS = 3
CACHED_START_REPEATS = 3

# Run in a fresh interpreter: import ltvsim and complete a tiny simulate().
STARTUP_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import ltvsim
t1 = time.perf_counter()
ltvsim.simulate(sys.argv[1], trials=2, customers=100)
t2 = time.perf_counter()
from ltvsim import _kernels
stats = getattr(getattr(_kernels, "simulate_units", None), "stats", None)
hits = sum(stats.cache_hits.values()) if stats else None
misses = sum(stats.cache_misses.values()) if stats else None
print(json.dumps({"import_s": t1 - t0, "first_call_s": t2 - t1,
                  "kernel_cache_hits": hits, "kernel_cache_misses": misses}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(fn):
    """(seconds, result) of one call, after a garbage collection."""
    gc.collect()
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def summarize(seconds: list[float], work: float | None = None) -> dict:
    """Median and spread of repeated timings; ``per_s`` = work / median seconds."""
    median = statistics.median(seconds)
    out = {
        "seconds": seconds,
        "median_s": median,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "spread": (max(seconds) - min(seconds)) / median,
    }
    if work is not None:
        out["per_s"] = work / median
    return out


def run_checked(command: list[str], env: dict) -> tuple[float, str]:
    """(wall seconds, stdout) of a subprocess run from the repository root."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )
    return seconds, done.stdout


# --- Sections --------------------------------------------------------------


def measure_startup(env: dict, cached_repeats: int) -> dict:
    """Cold start (empty Numba cache) and cached start, each in a fresh interpreter."""
    command = [sys.executable, "-c", STARTUP_PROBE, str(SAAS)]

    def probe():
        wall, stdout = run_checked(command, env)
        result = json.loads(stdout.strip().splitlines()[-1])
        result["total_s"] = result["import_s"] + result["first_call_s"]
        result["process_wall_s"] = wall
        return result

    log("startup: cold (empty NUMBA_CACHE_DIR) ...")
    cold = probe()
    cached = []
    for i in range(cached_repeats):
        log(f"startup: cached {i + 1}/{cached_repeats} ...")
        cached.append(probe())
    cached_first = statistics.median(c["first_call_s"] for c in cached)
    warning = None
    if any(c["kernel_cache_misses"] for c in cached):
        # e.g. the kernel's source changed between the probes
        warning = "a cached start recompiled the kernel: cached and compile times are invalid"
        log(f"warning: {warning}")
    return {
        "what": "fresh interpreter: import ltvsim, then simulate(saas, trials=2, customers=100)",
        "cold": cold,
        "cached": cached,
        "cached_total_median_s": statistics.median(c["total_s"] for c in cached),
        "cached_import_median_s": statistics.median(c["import_s"] for c in cached),
        "cached_first_call_median_s": cached_first,
        "compile_s": cold["first_call_s"] - cached_first,
        "warning": warning,
    }


def measure_rng(draws: int, repeats: int) -> dict:
    """Single-threaded numpy Generator rates, draws per second."""
    rng = np.random.default_rng()
    methods = {"random": rng.random, "standard_normal": rng.standard_normal}
    seconds = {name: [] for name in methods}
    for fn in methods.values():
        fn(draws)  # warm-up: first allocation of an output this size
    for _ in range(repeats):
        for name, fn in methods.items():
            seconds[name].append(timed(lambda fn=fn: fn(draws))[0])
    return {"draws": draws} | {name: summarize(s, draws) for name, s in seconds.items()}


def alive_customer_months(ds, customers: int) -> float:
    """Survival summed over trial and period, times customers, over the real segments."""
    names = [s for s in ds.segment.values.tolist() if s != "all"] or ["all"]
    return float(ds.survival.sel(segment=names).sum()) * customers


def measure_model(model: Model, divisor: int, repeats: int, rng: dict) -> dict:
    """simulate() and the numpy reference on one model, interleaved repeat by repeat."""
    import numba

    import ltvsim
    from ltvsim.reference import reference_simulate

    config = ltvsim.load_config(ROOT / model.config)
    if model.overrides:
        config = config.with_overrides(model.overrides)
    customers = config.customers
    trials = max(1, model.trials // divisor)
    ref_trials = max(1, model.reference_trials // divisor)

    def kernel():
        return ltvsim.simulate(config, trials=trials, customers=customers)

    def reference():
        return reference_simulate(config, trials=ref_trials, customers=customers)

    log(f"{model.name}: warm-up ...")
    kernel_warmup, ds = timed(kernel)
    reference_warmup, ref_ds = timed(reference)
    kernel_work = alive_customer_months(ds, customers)
    reference_work = alive_customer_months(ref_ds, customers)
    kernel_s, reference_s = [], []
    for i in range(repeats):
        log(f"{model.name}: repeat {i + 1}/{repeats} ...")
        kernel_s.append(timed(kernel)[0])
        reference_s.append(timed(reference)[0])
    threads = numba.get_num_threads()
    k = summarize(kernel_s, kernel_work)
    r = summarize(reference_s, reference_work)
    per_thread = k["per_s"] / threads
    return {
        "name": model.name,
        "config": model.config,
        "overrides": model.overrides,
        "customers": customers,
        "threads": threads,
        "kernel": {
            "trials": trials,
            "alive_customer_months": kernel_work,
            "lifetime_months_mean": kernel_work / (trials * customers * len(config.segments)),
            "warmup_s": kernel_warmup,
            **k,
        },
        "reference": {
            "trials": ref_trials,
            "alive_customer_months": reference_work,
            "lifetime_months_mean": reference_work
            / (ref_trials * customers * len(config.segments)),
            "warmup_s": reference_warmup,
            **r,
        },
        "kernel_over_reference": k["per_s"] / r["per_s"],
        "kernel_per_thread_per_s": per_thread,
        "per_thread_over_random": per_thread / rng["random"]["per_s"],
        "per_thread_over_standard_normal": per_thread / rng["standard_normal"]["per_s"],
    }


def measure_threads(divisor: int, repeats: int, rng: dict) -> dict:
    """saas with 1 and 2 Numba threads, interleaved; efficiency = t1 / (2 t2)."""
    import numba

    import ltvsim

    if numba.config.NUMBA_NUM_THREADS < 2:
        return {"skipped": f"NUMBA_NUM_THREADS = {numba.config.NUMBA_NUM_THREADS}"}
    config = ltvsim.load_config(SAAS)
    trials = max(1, THREAD_TRIALS // divisor)
    customers = config.customers

    def run(threads):
        return ltvsim.simulate(config, trials=trials, customers=customers, threads=threads)

    log("threads: warm-up ...")
    work = alive_customer_months(run(1), customers)
    run(2)
    seconds = {1: [], 2: []}
    for i in range(repeats):
        log(f"threads: repeat {i + 1}/{repeats} ...")
        for threads in (1, 2):
            seconds[threads].append(timed(lambda threads=threads: run(threads))[0])
    one, two = summarize(seconds[1], work), summarize(seconds[2], work)
    return {
        "config": "configs/saas.toml",
        "trials": trials,
        "customers": customers,
        "alive_customer_months": work,
        "threads_1": one,
        "threads_2": two,
        "speedup": one["median_s"] / two["median_s"],
        "efficiency": one["median_s"] / (2 * two["median_s"]),
        "single_thread_over_random": one["per_s"] / rng["random"]["per_s"],
        "single_thread_over_standard_normal": one["per_s"] / rng["standard_normal"]["per_s"],
    }


def measure_cli(env: dict, workdir: Path, quick: bool) -> dict:
    """Wall time of ``ltvsim run configs/saas.toml -o <tmp>.nc``, warm Numba cache."""
    exe = Path(sys.executable).with_name("ltvsim")
    command = [str(exe) if exe.exists() else shutil.which("ltvsim") or "ltvsim"]
    command += ["run", "configs/saas.toml", "-o", str(workdir / "saas.nc")]
    if quick:
        command += ["--trials", str(2000 // QUICK_DIVISOR)]
    seconds = []
    for i in range(CLI_REPEATS):
        log(f"cli: run {i + 1}/{CLI_REPEATS} ...")
        seconds.append(run_checked(command, env)[0])
    shown = ["ltvsim", *command[1:4], "<tmp>.nc", *command[5:]]
    return {"command": " ".join(shown), **summarize(seconds)}


# --- Facts, output ---------------------------------------------------------


def cpu_snapshot() -> dict | None:
    """Machine-wide busy and steal CPU seconds (/proc/stat), and this process's own."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    own = os.times()
    return {
        "wall": time.perf_counter(),
        "busy": (user + nice + system + irq + softirq) / tick,
        "steal": steal / tick,
        "own": own.user + own.system + own.children_user + own.children_system,
    }


def contention(before: dict | None, after: dict | None) -> dict | None:
    """Share of the machine's CPU capacity that others used while the benchmark ran.

    ``other_processes``: busy CPU time not spent by this process or its
    subprocesses; ``steal``: time the hypervisor gave to other guests.
    """
    if before is None or after is None:
        return None
    capacity = (after["wall"] - before["wall"]) * (os.cpu_count() or 1)
    others = (after["busy"] - before["busy"]) - (after["own"] - before["own"])
    return {
        "other_processes": max(0.0, others) / capacity,
        "steal": (after["steal"] - before["steal"]) / capacity,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict:
    import numba
    import xarray

    import ltvsim

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = None
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": layer,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "xarray": xarray.__version__,
        "ltvsim": ltvsim.__version__,
    }


def code_facts() -> dict:
    """Which code was measured: git commit, dirty flag, hashes of the hot files."""

    def git(*args):
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        except OSError:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    files = ["ltvsim/_kernels.py", "ltvsim/_rng.py", "ltvsim/simulate.py", "ltvsim/reference.py"]
    return {
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "ltvsim")),
        "sha256_12": {
            f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest()[:12]
            for f in files
            if (ROOT / f).exists()
        },
    }


def millions(x: float) -> str:
    return f"{x / 1e6:,.1f}"


def busy_note(contention: dict | None) -> str:
    if contention is None:
        return ""
    return (
        f"; other processes used {100 * contention['other_processes']:.0f}% and "
        f"the hypervisor stole {100 * contention['steal']:.0f}% of the CPU during the run"
    )


def markdown(results: dict) -> str:
    m, s, rng = results["machine"], results["startup"], results["rng"]
    lines = [
        f"Run {results['date']} ({results['mode']}, median of {results['repeats']}) on "
        f"{m['cpu_model']}, {m['cpu_count']} cores, {m['numba_threads']} Numba threads "
        f"({m['numba_threading_layer']}); Python {m['python']}, numpy {m['numpy']}, "
        f"numba {m['numba']}, xarray {m['xarray']}; load average "
        f"{results['load_average_start'][0]:.2f} at start, "
        f"{results['load_average_end'][0]:.2f} at end{busy_note(results['contention'])}.",
        "",
        "Throughput in millions of alive customer-months per second (M/s); "
        '"per thread" is the simulate() rate divided by its threads.',
        "",
        "| model | simulate(): trials × customers | simulate() M/s (spread) | "
        "reference: trials | reference M/s | kernel ÷ reference | "
        "per thread ÷ random() | per thread ÷ standard_normal() |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["models"]:
        k, ref = r["kernel"], r["reference"]
        lines.append(
            f"| {r['name']} | {k['trials']:,} × {r['customers']:,} | "
            f"{millions(k['per_s'])} (±{50 * k['spread']:.0f}%) | {ref['trials']:,} | "
            f"{millions(ref['per_s'])} | {r['kernel_over_reference']:.1f}× | "
            f"{r['per_thread_over_random']:.3f} | {r['per_thread_over_standard_normal']:.3f} |"
        )
    cold, t = s["cold"], results["threads"]
    lines += [
        "",
        "| measurement | median | detail |",
        "|---|---|---|",
        f"| cold start, empty Numba cache | {cold['total_s']:.2f} s | "
        f"import {cold['import_s']:.2f} s + first simulate() {cold['first_call_s']:.2f} s |",
        f"| cached start | {s['cached_total_median_s']:.2f} s | "
        f"import {s['cached_import_median_s']:.2f} s + first simulate() "
        f"{s['cached_first_call_median_s']:.2f} s |",
        f"| JIT compile (cold − cached first call) | {s['compile_s']:.2f} s | "
        "excluded from every throughput |",
        f"| numpy `random()` | {millions(rng['random']['per_s'])} M draws/s | "
        f"single thread, {rng['draws']:,} per call |",
        f"| numpy `standard_normal()` | {millions(rng['standard_normal']['per_s'])} M draws/s "
        f"| single thread, {rng['draws']:,} per call |",
    ]
    if "skipped" in t:
        lines.append(f"| saas threads 1 vs 2 | skipped | {t['skipped']} |")
    else:
        lines.append(
            f"| saas threads 1 vs 2: efficiency t1 / (2 t2) | {t['efficiency']:.2f} | "
            f"t1 {t['threads_1']['median_s']:.2f} s, t2 {t['threads_2']['median_s']:.2f} s "
            f"({t['trials']:,} × {t['customers']:,}); 1 thread "
            f"{millions(t['threads_1']['per_s'])} M/s = "
            f"{t['single_thread_over_standard_normal']:.3f} × standard_normal() |"
        )
    c = results["cli"]
    lines.append(
        f"| `{c['command']}` | {c['median_s']:.2f} s | "
        f"wall time of the process, warm cache, median of {len(c['seconds'])} |"
    )
    return "\n".join(lines)


def update_readme(table: str) -> None:
    """Replace the block between the markers (append one if there is none)."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    block = f"{START}\n{table}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1/10 of the work")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (default 5)")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave results.json and README alone"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    divisor = QUICK_DIVISOR if args.quick else 1
    started = time.perf_counter()
    before = cpu_snapshot()
    results = {
        "mode": "quick" if args.quick else "full",
        "repeats": args.repeats,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average_start": os.getloadavg(),
        "code": code_facts(),
    }
    cache_dir = Path(tempfile.mkdtemp(prefix="ltvsim-bench-"))
    try:
        env = os.environ | {"NUMBA_CACHE_DIR": str(cache_dir / "numba")}
        results["startup"] = measure_startup(env, 1 if args.quick else CACHED_START_REPEATS)
        # Numba reads NUMBA_CACHE_DIR when imported: this process shares the
        # cache the probes just filled, so its warm-up loads, not compiles.
        os.environ["NUMBA_CACHE_DIR"] = env["NUMBA_CACHE_DIR"]
        log("numpy random rates ...")
        rng = measure_rng(RNG_DRAWS // divisor, args.repeats)
        results["rng"] = rng
        results["models"] = [measure_model(m, divisor, args.repeats, rng) for m in MODELS]
        results["threads"] = measure_threads(divisor, args.repeats, rng)
        results["cli"] = measure_cli(env, cache_dir, args.quick)
        results["machine"] = machine_facts()
        results["load_average_end"] = os.getloadavg()
        results["contention"] = contention(before, cpu_snapshot())
        if code_facts()["sha256_12"] != results["code"]["sha256_12"]:
            results["code"]["warning"] = "ltvsim source changed during the run"
            log(f"warning: {results['code']['warning']}")
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    results["benchmark_wall_s"] = time.perf_counter() - started
    table = markdown(results)
    print(table)
    if not args.no_write:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        update_readme(table)
        log(f"wrote {RESULTS.relative_to(ROOT)} and {README.relative_to(ROOT)}")
    log(f"benchmark took {results['benchmark_wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
