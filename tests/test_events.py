"""Event log -> config: cohorts, plan changes, validation, the writer, the CLI, recovery.

The recovery test fits ``examples/events.csv`` (generated from known
parameters by ``examples/make_events.py``) and requires every estimate
within Z = 4 of its standard errors of the truth (alpha and beta on the log
scale, where the fit is normal: the Wald interval's scale).
"""

import importlib.util
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ltvsim
from ltvsim.cli import app
from ltvsim.datafile import DataError
from ltvsim.events import fit_events, read_events, to_toml

from .conftest import Z

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "events.csv"
HEADER = "customer_id,date,event,mrr"

# a: upsell in March (two changes that month: the month's last MRR counts), cancel in April
# b: cancels in its start month; c: downgraded within its start month (starts at 100)
# d: downgrade in March; its June change is in the log's last, incomplete month: unused
SMALL_LOG = """customer_id,date,event,mrr
d,2024-01-05,start,300
a,2024-01-10,start,500
b,2024-01-20,start,1000
b,2024-01-25,cancel,
c,2024-02-01,start,200
c,2024-02-15,change,100
a,2024-03-05,change,600
d,2024-03-10,change,240
a,2024-03-20,change,550
a,2024-04-20,cancel,0
d,2024-06-10,change,600
"""


def write(tmp_path, text, name="events.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_cohorts_and_plan_changes_of_a_small_log_by_hand(tmp_path):
    # End month E = 2024-06. Cohort 2024-01 (a, b, d) at the start of Jan ... Jun:
    # b paid Jan only, a Jan-Apr, d all: 3, 2, 2, 2, 1, 1. Cohort 2024-02 (c): 1 x 5.
    fitted = fit_events(write(tmp_path, SMALL_LOG))
    (segment,) = fitted.segments
    assert segment.cohorts == [[3, 2, 2, 2, 1, 1], [1, 1, 1, 1, 1]]
    assert fitted.end_month == "2024-06" and not fitted.segmented
    # months at risk of a change: a Feb-Apr (3), b none, c Mar-May (3), d Feb-May (4)
    assert segment.customer_months == 10
    assert segment.upsell_probability.value == pytest.approx(0.1)
    assert segment.upsell_size.value == pytest.approx(0.1)  # 500 -> 550 in March
    assert segment.downgrade_probability.value == pytest.approx(0.1)
    assert segment.downgrade_size.value == pytest.approx(0.2)  # 300 -> 240
    assert segment.upsell_probability.se == pytest.approx(math.sqrt(0.1 * 0.9 / 10))
    # starting MRR: the start month's last value (c: 100)
    assert segment.arpa.value == pytest.approx((300 + 500 + 1000 + 100) / 4)
    # two-month renewals: tenures 0, 2, 4
    assert fit_events(write(tmp_path, SMALL_LOG), renewal_months=2).segments[0].cohorts == [
        [3, 2, 1],
        [1, 1, 1],
    ]


def test_records_give_the_same_fit_as_the_file(tmp_path):
    lines = SMALL_LOG.strip().splitlines()
    records = [dict(zip(lines[0].split(","), line.split(","), strict=True)) for line in lines[1:]]
    from_records = fit_events(records).segments[0]
    from_file = fit_events(write(tmp_path, SMALL_LOG)).segments[0]
    assert from_records.cohorts == from_file.cohorts
    assert from_records.estimates() == from_file.estimates()


def test_cohorts_without_heterogeneity_become_constant_churn(tmp_path):
    # 1,000 customers, exactly 10% leave each month: active 1000, 900, 810, 729, 656.
    # The sBG likelihood has no interior maximum (test_fit); constant churn 344/3439.
    rows = [HEADER]
    cancels = {1: 100, 2: 90, 3: 81, 4: 73}
    customer = 0
    for month, count in cancels.items():
        for _ in range(count):
            rows += [f"x{customer},2024-01-02,start,100", f"x{customer},2024-0{month}-20,cancel,"]
            customer += 1
    while customer < 1000:
        rows.append(f"x{customer},2024-01-02,start,100")
        customer += 1
    rows.append("x999,2024-05-03,change,120")  # the log runs into May
    rows[1:] = sorted(rows[1:], key=lambda r: r.split(",")[1])
    fitted = fit_events(write(tmp_path, "\n".join(rows) + "\n"))
    (segment,) = fitted.segments
    assert segment.cohorts == [[1000, 900, 810, 729, 656]]
    assert segment.churn is None
    c = 344 / 3439
    assert segment.constant_churn.value == pytest.approx(c)
    churn = fitted.to_config()["churn"]
    assert churn["model"] == "constant" and churn["monthly_rate"]["mean"] == pytest.approx(c)
    assert churn["monthly_rate"]["sd"] == pytest.approx(math.sqrt(c * (1 - c) / 3439))


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"is empty; expected a header customer_id,date,event,mrr"),
        (HEADER + "\n", r"no events \(only a header\)"),
        (
            "customer_id,date,mrr\nx,2024-01-01,5\n",
            r"missing column\(s\) event; expected customer_id, date, event, mrr and "
            "optionally segment",
        ),
        (HEADER + ",plan\nx,2024-01-01,start,5,gold\n", r"unknown column\(s\) 'plan'; expected"),
        (
            HEADER + "\nx,2024-01-01,start,5,extra\n",
            r"row 2: more fields than the header's columns",
        ),
        (HEADER + "\n,2024-01-01,start,5\n", r"row 2, column customer_id: empty"),
        (
            HEADER + "\nx,01/02/2024,start,5\n",
            r"row 2, column date: '01/02/2024' is not an ISO date \(YYYY-MM-DD\)",
        ),
        (
            HEADER + "\nx,2024-01-01,begin,5\n",
            r"row 2, column event: 'begin'; expected one of start, change, cancel",
        ),
        (HEADER + "\nx,2024-01-01,start,five\n", r"row 2, column mrr: 'five' is not a number"),
        (
            HEADER + "\nx,2024-01-01,start,-5\n",
            r"row 2, column mrr: -5; MRR must be a finite number >= 0",
        ),
        (HEADER + "\nx,2024-01-01,start,0\n", r"row 2, column mrr: 0 on a start"),
        (
            HEADER + "\nx,2024-01-01,start,5\nx,2024-02-01,cancel,5\n",
            r"row 3, column mrr: 5 on a cancel; leave it empty or 0",
        ),
        (
            HEADER + "\nx,2024-01-01,change,5\n",
            r"row 2, column event: customer 'x' has a change before any start",
        ),
        (
            HEADER + "\nx,2024-01-01,start,5\nx,2024-02-01,start,5\n",
            r"row 3, column event: customer 'x' starts twice \(first on row 2\)",
        ),
        (
            HEADER + "\nx,2024-01-01,start,5\nx,2024-02-01,cancel,\nx,2024-03-01,change,7\n",
            r"row 4: customer 'x' has a change after its cancel \(row 3\)",
        ),
        (
            HEADER + "\nx,2024-02-01,start,5\nx,2024-01-01,change,7\n",
            r"row 3, column date: 2024-01-01 is before the previous event of customer 'x' "
            r"\(2024-02-01, row 2\)",
        ),
        (
            HEADER + ",segment\nx,2024-01-01,start,5,a\nx,2024-02-01,change,7,b\n",
            r"row 3, column segment: customer 'x' is in 'a' on row 2",
        ),
        (
            HEADER + ",segment\nx,2024-01-01,start,5,a\ny,2024-02-01,start,7,\n",
            r"row 3, column segment: empty or 'all' while other customers have segments",
        ),
        (
            HEADER + "\nx,2024-01-01,start,5\ny,2024-02-01,start,7\n",
            r"^cannot fit churn to the cohorts: at least one cohort needs its size and two "
            "later counts",
        ),
        (
            HEADER + "\nx,2024-01-01,start,5\ny,2024-01-02,start,7\nx,2024-04-01,change,6\n",
            r"^cannot fit churn to the cohorts: no customer churned",
        ),
    ],
)
def test_bad_logs_are_one_line_errors_naming_row_and_column(tmp_path, text, message):
    with pytest.raises(DataError, match=message) as info:
        fit_events(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_file_and_bad_renewal_months(tmp_path):
    with pytest.raises(DataError, match=r"event log not found: .*nope.csv"):
        read_events(tmp_path / "nope.csv")
    with pytest.raises(
        DataError, match=r"renewal_months: must be a whole number in \[1, 120\], got 0"
    ):
        fit_events(write(tmp_path, SMALL_LOG), renewal_months=0)


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "make_events", ROOT / "examples" / "make_events.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example_fit():
    return fit_events(EXAMPLE)


def test_shipped_example_is_what_its_generator_writes(tmp_path):
    generator = load_generator()
    generator.write(tmp_path / "events.csv")
    assert (tmp_path / "events.csv").read_bytes() == EXAMPLE.read_bytes()


def test_fit_recovers_the_generators_parameters_within_their_standard_errors(example_fit):
    true = load_generator().TRUE
    assert [s.name for s in example_fit.segments] == ["enterprise", "smb"]
    for segment in example_fit.segments:
        p = true[segment.name]
        churn = segment.churn
        for value, se, truth in zip(
            (churn.alpha, churn.beta), churn.se, (p["alpha"], p["beta"]), strict=True
        ):
            assert abs(math.log(value / truth)) < Z * se / value, (segment.name, value, truth)
        checks = {
            "arpa": p["arpa"],
            "arpa_cv": p["arpa_cv"],
            "upsell_probability": p["p_up"],
            "upsell_size": p["up_size"],
            "downgrade_probability": p["p_down"],
            "downgrade_size": p["down_size"],
        }
        for attribute, truth in checks.items():
            estimate = getattr(segment, attribute)
            assert abs(estimate.value - truth) < Z * estimate.se, (segment.name, attribute)
    shares = {s.name: s.share for s in example_fit.segments}
    assert shares["smb"] + shares["enterprise"] == pytest.approx(1.0)
    # acquisitions are 50 and 12 a month, the last month cut at day 15
    assert shares["smb"] == pytest.approx(50 / 62, abs=0.005)


def test_written_toml_reads_back_to_the_same_config_and_simulates(example_fit):
    config = example_fit.to_config()
    text = to_toml(config, example_fit.header())
    assert text.startswith("# Fitted by ltvsim fit from")
    assert tomllib.loads(text) == config
    loaded = ltvsim.load_config(tomllib.loads(text))
    assert [s.name for s in loaded.segments] == ["enterprise", "smb"]
    assert len(loaded.input_groups) == 2  # each segment's alpha-beta correlation
    ds = ltvsim.simulate(loaded, trials=8, customers=200)
    assert ds.sizes["trial"] == 8


def test_toml_writer_quotes_keys_and_strings():
    config = {
        "simulation": {"currency": 'E"U\\R', "quantiles": [0.1, 0.9], "antithetic_inputs": True},
        "acquisition": {"cac": {"dist": "gamma", "mean": 100.0, "sd": 10.0}},
    }
    assert tomllib.loads(to_toml(config)) == config


def test_cli_fit_writes_a_config_and_prints_estimates(tmp_path):
    out = tmp_path / "fitted.toml"
    runner = CliRunner()
    result = runner.invoke(
        app, ["fit", str(EXAMPLE), "-o", str(out), "--format", "json"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "churn.alpha" in result.output and '"se":' in result.output
    assert ltvsim.load_config(out).named_segments
    result = runner.invoke(app, ["fit", str(EXAMPLE), "-o", str(out), "--renewal-months", "12"])
    assert result.exit_code == 0
    assert tomllib.loads(out.read_text())["segments"][0]["churn"]["renewal_months"] == 12


def test_cli_fit_user_errors_exit_2_with_one_line_and_keep_the_old_file(tmp_path):
    out = tmp_path / "fitted.toml"
    out.write_text("previous")
    bad = write(tmp_path, HEADER + "\nx,2024-13-01,start,5\n", "bad.csv")
    process = subprocess.run(
        [sys.executable, "-m", "ltvsim.cli", "fit", str(bad), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        f"error: {bad}: row 2, column date: '2024-13-01' is not an ISO date (YYYY-MM-DD)"
    ]
    assert out.read_text() == "previous"


def test_unreadable_csv_is_a_data_error(tmp_path):
    """A field over the csv module's size limit is a one-line DataError, not a traceback."""
    path = tmp_path / "huge.csv"
    path.write_text("customer_id,date,event,mrr\n" + "x" * 200_000 + ",2024-01-01,start,10\n")
    with pytest.raises(DataError, match=r"cannot read .*huge.csv"):
        read_events(path)
