"""Charts and the HTML report: what each chart draws is the data it claims to draw.

The charts are checked through their artists (line data, legend texts, error
bar segments), not by image comparison, so the tests pin down content and
leave styling free.
"""

import base64
import html
import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure

import ltvsim
from ltvsim import plot
from ltvsim.analysis import band_probabilities, probability_text, summary_table

from .conftest import BASE, merge

AXES = {"fan": 2, "ltv-cac": 1, "payback": 1, "survival": 1}


@pytest.fixture(scope="module")
def saas():
    return ltvsim.simulate("configs/saas.toml", trials=50, customers=200)


@pytest.fixture(scope="module")
def segments():
    return ltvsim.simulate("configs/segments.toml", trials=50, customers=200)


def _gid(fig, gid):
    """The one artist of ``fig`` with this gid."""
    found = fig.findobj(lambda artist: artist.get_gid() == gid)
    assert len(found) == 1, f"expected one artist with gid {gid!r}, found {len(found)}"
    return found[0]


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def _vertical_lines(ax) -> list[float]:
    """x of every vertical line (axvline) of ``ax``."""
    out = []
    for line in ax.get_lines():
        x = np.asarray(line.get_xdata(), dtype=float)
        if x.size == 2 and x[0] == x[1] and line.get_transform() != ax.transData:
            out.append(float(x[0]))
    return sorted(out)


def test_importing_the_module_does_not_import_matplotlib():
    code = "import sys, ltvsim.plot; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_missing_matplotlib_is_a_clear_import_error(monkeypatch, saas):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'ltvsim\[plot\]'"):
        plot.fan_chart(saas)


@pytest.mark.parametrize("kind", sorted(AXES))
@pytest.mark.parametrize(("result", "segment"), [("saas", "all"), ("segments", "enterprise")])
def test_each_kind_returns_a_figure_with_its_axes(kind, result, segment, request):
    ds = request.getfixturevalue(result)
    fig = plot.kinds()[kind](ds, segment=segment)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == AXES[kind]
    assert f"segment {segment!r}" in " ".join(_texts(fig))


def test_unknown_segment_names_the_choices(segments):
    with pytest.raises(ValueError, match=r"unknown segment 'smbx'.*'mid-market'"):
        plot.survival_bands(segments, segment="smbx")


def test_fan_median_is_the_band_median_at_the_end_of_each_month(saas):
    fig = plot.fan_chart(saas)
    line = _gid(fig, "median")
    expected = saas.cumulative_gross_profit_band.sel(segment="all", quantile=0.5).values
    np.testing.assert_array_equal(line.get_ydata(), np.concatenate([[0.0], expected]))
    np.testing.assert_array_equal(line.get_xdata(), np.arange(saas.sizes["period"] + 1))


def test_fan_cac_line_is_the_median_cac_with_its_range_when_uncertain(saas, segments):
    fig = plot.fan_chart(saas)
    cac = saas.cac.sel(segment="all").values
    assert np.all(_gid(fig, "cac").get_ydata() == np.median(cac))
    lo, hi = np.quantile(cac, [0.05, 0.95])
    labels = fig.legends[0].get_texts()
    assert f"CAC 5-95%: {lo:,.0f} to {hi:,.0f}" in [t.get_text() for t in labels]

    # smb's CAC is a fixed 3,000: a line and no range.
    fig = plot.fan_chart(segments, segment="smb")
    assert np.all(_gid(fig, "cac").get_ydata() == 3000.0)
    assert not any("5-95%: " in t.get_text() for t in fig.legends[0].get_texts())


def test_fan_bands_are_nested_outermost_lightest(saas):
    fig = plot.fan_chart(saas)
    fills = {t.get_text(): h for t, h in zip(*_legend(fig), strict=True)}
    outer, inner = fills["5-95% of trials"], fills["25-75% of trials"]
    assert sum(outer.get_facecolor()[:3]) > sum(inner.get_facecolor()[:3])


def _legend(fig):
    legend = fig.legends[0]
    return legend.get_texts(), legend.legend_handles


def test_fan_states_the_share_that_never_pays_back(saas):
    ds = saas.copy(deep=True)
    payback = ds["payback_months"].sel(segment="all").values
    payback[::2] = np.nan  # half the trials never pay back
    ds["payback_months"].loc[{"segment": "all"}] = payback
    fig = plot.fan_chart(ds)
    never = np.isnan(payback).mean()
    title = fig.axes[1].get_title(loc="left")
    assert f"never within {ds.sizes['period']} months: {never:.1%}" in title


def test_fan_months_zooms_the_shared_x_axis(saas):
    fig = plot.fan_chart(saas, months=36)
    assert fig.axes[1].get_xlim() == (0.0, 36.0)
    assert len(_gid(fig, "median").get_xdata()) == 37
    with pytest.raises(ValueError, match="months must be in"):
        plot.fan_chart(saas, months=10_000)


def test_bands_follow_the_configured_quantiles():
    config = merge(BASE, simulation={"trials": 30, "customers": 100, "quantiles": [0.1, 0.8]})
    ds = ltvsim.simulate(config)
    fig = plot.survival_bands(ds)
    assert "10-80% of trials" in [t.get_text() for t in fig.legends[0].get_texts()]
    # No 0.5 among the quantiles: the median is computed from the trials.
    expected = np.median(ds.survival.sel(segment="all").values, axis=0)
    np.testing.assert_allclose(_gid(fig, "median").get_ydata(), expected)


def test_survival_median_is_the_band_median(segments):
    fig = plot.survival_bands(segments, segment="mid-market")
    expected = segments.survival_band.sel(segment="mid-market", quantile=0.5).values
    np.testing.assert_array_equal(_gid(fig, "median").get_ydata(), expected)
    assert fig.axes[0].get_ylim()[0] == 0.0


def test_ltv_cac_histogram_annotates_the_band_probabilities(saas):
    fig = plot.ltv_cac_histogram(saas)
    labels = [t.get_text() for t in _gid(fig, "bands").get_texts()]
    expected = [
        f"{b['band']}: " + probability_text(b["probability"], b["std_error"], saas.sizes["trial"])
        for b in band_probabilities(saas, "all")["ltv_cac"]
    ]
    assert labels == expected
    ax = fig.axes[0]
    assert _vertical_lines(ax) == [1.0, 3.0, 5.0]
    (bars,) = ax.containers
    assert sum(bar.get_height() for bar in bars) == pytest.approx(1.0)  # shares of trials


def test_payback_cdf_levels_off_at_the_share_that_pays_back(saas):
    ds = saas.copy(deep=True)
    payback = ds["payback_months"].sel(segment="all").values
    payback[:10] = np.nan
    ds["payback_months"].loc[{"segment": "all"}] = payback
    fig = plot.payback_cdf(ds)
    ax = fig.axes[0]
    cdf = _gid(fig, "cdf")
    assert cdf.get_ydata()[-1] == pytest.approx(1 - 10 / payback.size)
    assert np.all(np.diff(cdf.get_ydata()) >= 0)
    assert ax.get_ylim() == (0.0, 1.0)
    assert _vertical_lines(ax) == [6.0, 12.0, 18.0]
    p12 = np.mean(payback <= 12)  # NaN compares False: never counts as longer
    assert f"P(≤ 12 months, better) = {p12:.1%}" in "\n".join(_texts(fig))


def test_payback_cdf_when_no_trial_pays_back():
    config = merge(BASE, simulation={"trials": 20, "customers": 50, "horizon_months": 6})
    ds = ltvsim.simulate(config)
    assert np.isnan(ds.payback_months).all()
    for kind in ("fan", "payback"):
        fig = plot.kinds()[kind](ds)
        assert "never within 6 months: 100.0%" in "\n".join(_texts(fig))


def test_tornado_sorts_by_swing_largest_on_top():
    fig = plot.tornado(
        ["price", "churn", "margin"],
        low=[90.0, 70.0, 95.0],
        high=[110.0, 140.0, 104.0],
        base=100.0,
        metric_label="LTV",
        swing_labels=("-10%", "+10%"),
    )
    ax = fig.axes[0]
    ticks = sorted(zip(ax.get_yticks(), ax.get_yticklabels(), strict=True), reverse=True)
    assert [label.get_text() for _, label in ticks] == ["churn", "price", "margin"]
    assert _vertical_lines(ax) == [100.0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["base: 100", "-10%", "+10%"]
    # Every bar starts at the base and ends at a swing value.
    ends = sorted(p.get_x() + p.get_width() for p in ax.patches)
    assert ends == sorted([90.0, 70.0, 95.0, 110.0, 140.0, 104.0])
    assert all(p.get_x() == 100.0 for p in ax.patches)


def test_scenario_comparison_error_bars_are_two_standard_errors():
    means, ses = [3.8, 4.2, 3.1], [0.05, 0.1, 0.02]
    fig = plot.scenario_comparison(["base", "price", "cac"], means, ses, "LTV:CAC", "base")
    ax = fig.axes[0]
    (container,) = [c for c in ax.containers if getattr(c, "errorbar", None)]
    segments = container.errorbar.lines[2][0].get_segments()
    got = np.sort([[s[0][0], s[1][0]] for s in segments], axis=0)
    expected = np.sort([[m - 2 * s, m + 2 * s] for m, s in zip(means, ses, strict=True)], axis=0)
    np.testing.assert_allclose(got, expected)
    assert "4.2 ± 0.2" in _texts(fig)
    with pytest.raises(ValueError, match="base_name"):
        plot.scenario_comparison(["a"], [1.0], [0.1], "x", base_name="b")


def test_save_writes_a_png_atomically(saas, tmp_path):
    path = tmp_path / "fan.png"
    path.write_bytes(b"old")
    assert plot.save(plot.survival_bands(saas), path) == path
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert os.listdir(tmp_path) == ["fan.png"]

    class Broken:
        def savefig(self, *args, **kwargs):
            raise RuntimeError("rendering failed")

    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        plot.save(Broken(), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["fan.png"]


@pytest.fixture(scope="module")
def report(segments):
    extra = plot.scenario_comparison(["a", "b"], [1.0, 2.0], [0.1, 0.1], "LTV:CAC")
    return plot.report_html(
        segments,
        charts=[("Scenarios <b>A & B</b>", extra)],
        extra_sections=[("Worksheet <vs> simulation", "<p id='ws'>seed formula</p>")],
    )


def test_report_is_self_contained(report):
    assert report.startswith("<!DOCTYPE html>")
    assert "<script" not in report.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", report, re.IGNORECASE)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', report)
    assert len(images) == 4 + 1  # fan, ltv-cac, payback, survival + the caller's chart
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert report.count("data:image/png;base64,") == len(images)


def test_report_has_facts_summaries_and_band_probabilities(report, segments):
    for segment in ("all", "smb", "mid-market", "enterprise"):
        assert f"Segment {segment}</h3>" in report
        rows = {row["variable"]: row for row in summary_table(segments, segment)}
        assert f"<td>{rows['ltv_gross_profit']['mean']:,.0f}</td>" in report
        assert f"<td>{rows['ltv_cac']['p50']:,.2f}</td>" in report
    for band in band_probabilities(segments, "smb")["payback_months"]:
        text = probability_text(band["probability"], band["std_error"], segments.sizes["trial"])
        assert html.escape(text) in report
    attrs = segments.attrs
    for value in (
        f"{attrs['trials']:,}",
        f"{attrs['customers_per_segment']:,}",
        f"{attrs['horizon_months']} months",
        str(attrs["seed"]),
        attrs["discount_timing"],
        attrs["currency"],
        attrs["ltvsim_version"],
    ):
        assert f"<dd>{value}" in report
    assert "<table" in report and "| measure |" not in report  # HTML, not markdown


def test_report_escapes_titles_and_embeds_extra_sections(report):
    assert "Scenarios &lt;b&gt;A &amp; B&lt;/b&gt;" in report
    assert "<b>A" not in report
    assert "<h2>Worksheet &lt;vs&gt; simulation</h2><p id='ws'>seed formula</p>" in report


def test_report_without_segments(saas):
    html = plot.report_html(saas)
    assert "Segment all</h3>" in html
    assert html.count("data:image/png;base64,") == 4
