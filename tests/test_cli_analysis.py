"""The analysis commands: worksheet, compare, sensitivity, goal-seek, keys."""

import json

import pytest
from typer.testing import CliRunner

from ltvsim.cli import app, parse_scenarios
from ltvsim.config import ConfigError

SMALL = ["--trials", "40", "--customers", "100"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_keys_prints_every_schema_key():
    from ltvsim.config import SCHEMA

    out = invoke("keys").stdout
    for section, keys in SCHEMA.items():
        for key in keys:
            assert f"`{section}.{key}`" in out


def test_worksheet_json():
    result = invoke("worksheet", "configs/saas.toml", *SMALL, "-f", "json")
    assert result.exit_code == 0, result.output
    sheet = json.loads(result.stdout)
    assert sheet["blended"]["ltv"] == pytest.approx(40000)
    assert sheet["bridge"][0]["label"].startswith("formula")
    assert invoke("worksheet", "configs/segments.toml", *SMALL).exit_code == 0


def test_compare_table_and_json(tmp_path):
    args = [
        "compare",
        "configs/saas.toml",
        "-s",
        "price +10%: revenue.arpa_monthly=1100",
        "-s",
        'churn: churn.monthly_rate={dist="beta", mean=0.016, sd=0.004}',
        *SMALL,
    ]
    table = invoke(*args)
    assert table.exit_code == 0, table.output
    assert "price +10%" in table.stdout and "churn" in table.stdout
    doc = json.loads(invoke(*args, "-f", "json").stdout)
    names = [row["scenario"] for row in doc["scenarios"]]
    assert names == ["base", "price +10%", "churn"]
    assert doc["scenarios"][1]["difference"] > 0
    scenarios = tmp_path / "s.toml"
    scenarios.write_text(
        '[scenarios."cac +20%"]\n"acquisition.cac" = 15000\n'
        "[scenarios.margin.revenue]\ngross_margin = 0.7\n"
    )
    doc = json.loads(
        invoke(
            "compare", "configs/saas.toml", "--scenarios", scenarios, *SMALL, "-f", "json"
        ).stdout
    )
    assert [row["scenario"] for row in doc["scenarios"]] == ["base", "cac +20%", "margin"]


def test_parse_scenarios_errors():
    assert parse_scenarios(["a: revenue.arpa_monthly=1, acquisition.cac=2"], None) == {
        "a": {"revenue.arpa_monthly": 1, "acquisition.cac": 2}
    }
    for bad in ["no colon", "x: revenue.arpa_monthly", "x: revenue.arpa_monthly=abc"]:
        with pytest.raises(ConfigError):
            parse_scenarios([bad], None)
    with pytest.raises(ConfigError):
        parse_scenarios([], None)


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "configs/saas.toml", "-s", "x: revenue.arpa_monthy=1100"],
        ["compare", "configs/saas.toml", "-s", "x: revenue.arpa_monthly=-5"],
        ["compare", "configs/saas.toml", "-s", "x: revenue.arpa_monthly=1", "--segment", "nope"],
        ["sensitivity", "configs/saas.toml", "--swing", "3"],
        ["goal-seek", "configs/saas.toml", "--lever", "revenue.arpa"],
        ["goal-seek", "configs/saas.toml", "--lever", "acquisition.cac", "--probability", "2"],
        [
            "goal-seek",
            "configs/saas.toml",
            "--lever",
            "acquisition.cac",
            "--target",
            "1e9",
            "--low",
            "100",
            "--high",
            "200",
        ],
        ["worksheet", "missing.toml"],
    ],
)
def test_user_mistakes_exit_2_with_one_line(args):
    result = invoke(*args, "--trials", "5", "--customers", "20")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_sensitivity_json_ranks_levers():
    doc = json.loads(invoke("sensitivity", "configs/saas.toml", *SMALL, "-f", "json").stdout)
    levers = [lever["lever"] for lever in doc["levers"]]
    assert set(levers) >= {"price (ARPA)", "retention (churn)", "gross margin", "CAC"}
    assert "churn.monthly_rate" in {
        k.replace("input_", "").replace("_", ".", 1) for k in doc["rank_correlation"]
    }


def test_goal_seek_json():
    doc = json.loads(
        invoke(
            "goal-seek", "configs/saas.toml", "--lever", "acquisition.cac", *SMALL, "-f", "json"
        ).stdout
    )
    assert doc["lever"] == "acquisition.cac"
    assert doc["interval"][0] <= doc["value"] <= doc["interval"][1]
    assert doc["achieved"] >= 0.8


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "saas.nc"
    assert invoke("run", "configs/saas.toml", "-o", path, *SMALL).exit_code == 0
    return path


@pytest.mark.parametrize("kind", ["fan", "ltv-cac", "payback", "survival"])
def test_plot_writes_a_png(saved, tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    result = invoke("plot", saved, "--kind", kind, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")


def test_report_is_one_self_contained_page(saved, tmp_path):
    out = tmp_path / "report.html"
    result = invoke("report", saved, "-o", out, "--worksheet-trials", "20")
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "Worksheet" in page and "formula: ARPA × margin ÷ churn" in page
    assert "<script" not in page and 'src="http' not in page


def test_tornado_and_comparison_charts(tmp_path):
    tornado, comparison = tmp_path / "t.png", tmp_path / "c.png"
    assert invoke("sensitivity", "configs/saas.toml", *SMALL, "--plot", tornado).exit_code == 0
    args = ["compare", "configs/saas.toml", "-s", "p: revenue.arpa_monthly=1100", *SMALL]
    assert invoke(*args, "--plot", comparison).exit_code == 0
    assert tornado.read_bytes().startswith(b"\x89PNG")
    assert comparison.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "args",
    [
        ["plot", "missing.nc"],
        ["plot", "{saved}", "--kind", "payback", "--months", "24"],
        ["plot", "{saved}", "--segment", "nope"],
        ["plot", "{saved}", "-o", "/no/such/dir/x.png"],
        ["report", "missing.nc"],
    ],
)
def test_chart_mistakes_exit_2(saved, args):
    result = invoke(*(str(a).format(saved=saved) for a in args))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:") and "Traceback" not in result.output
