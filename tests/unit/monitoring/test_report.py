"""The timeline page (index.html, timeline.png) and how reports show numbers."""

from __future__ import annotations

import html
import json
import re

from monitoring.report import (
    TIMELINE_FIGURES,
    deployments,
    display_values,
    read_timeline,
    render_index,
    timeline_figure,
    transitions,
    write_timeline_png,
)

UNKNOWN = "mushroom-unknown-rate-high"


def entry(window, unknown, state, deployed=False, version="1", **extra):
    return {
        "window": window,
        "at": f"2026-11-27T12:0{window[-1]}:00+00:00",
        "metrics": {"Records": 800.0, "UnknownRate": unknown, "DecisionAccuracy": 0.48},
        "alarms": {UNKNOWN: state},
        "thresholds": {"UnknownRate": 0.2},
        "alarm_metrics": {UNKNOWN: "UnknownRate"},
        "model_version": version,
        "deployed": deployed,
        "retrained": deployed,
        "new_version": "2" if deployed else None,
        "report": f"/r/{window}.html",
        "clock": "simulated clock",
        **extra,
    }


TIMELINE = [
    entry("w1", 0.05, "OK"),
    entry("w2", 1.0, "ALARM", deployed=True),
    entry("w3", 0.02, "OK", version="2"),
]


def test_transitions_and_deployments_come_from_the_timeline():
    assert transitions(TIMELINE) == [(1, UNKNOWN, "OK", "ALARM"), (2, UNKNOWN, "ALARM", "OK")]
    # A first check is no event, unless the alarm starts in ALARM.
    assert transitions([entry("w1", 1.0, "ALARM")]) == [(0, UNKNOWN, "INSUFFICIENT_DATA", "ALARM")]
    assert deployments(TIMELINE) == [(1, "2")]


def test_timeline_chart_draws_threshold_transitions_and_deploy_marker():
    fig = timeline_figure(TIMELINE)
    unknown = next(ax for ax in fig.axes if ax.get_ylabel() == "UnknownRate")
    # The threshold: a horizontal line at 0.2 across the chart.
    flat = [ln for ln in unknown.get_lines() if list(ln.get_ydata()) == [0.2, 0.2]]
    assert flat and flat[0].get_linestyle() == "--"
    assert list(unknown.get_lines()[0].get_ydata()) == [0.05, 1.0, 0.02]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    unknown_texts = [t.get_text() for t in unknown.texts]  # on the alarm's own chart
    assert "OK -> ALARM" in unknown_texts and "ALARM -> OK" in unknown_texts
    assert "deployed v2" in texts and "alarm threshold 0.2" in texts
    assert fig.axes[-1].get_xlabel() == "window (simulated clock)"


def test_index_charts_draw_threshold_transitions_and_deploy_marker():
    page = render_index(TIMELINE)
    charts = dict(re.findall(r"<svg [^>]*aria-label='(\w+)'>(.*?)</svg>", page))
    assert list(charts) == list(TIMELINE_FIGURES)
    unknown = charts["UnknownRate"]
    assert unknown.count("class='point'") == 3 and "<title>w2: 1.0000</title>" in unknown
    (line,) = re.findall(r"<line class='threshold'[^>]*y1='([\d.]+)' y2='([\d.]+)'", unknown)
    assert line[0] == line[1] and "alarm threshold 0.2" in unknown
    assert unknown.count("class='transition'") == 2
    assert "OK -&gt; ALARM" in unknown and "ALARM -&gt; OK" in unknown
    assert "class='transition'" not in charts["Records"]  # not the alarm's metric
    assert all("class='deploy'" in c and "deployed v2" in c for c in charts.values())
    assert "<title>w1: 800</title>" in charts["Records"]


def test_index_lists_windows_thresholds_transitions_and_deploys():
    page = render_index(TIMELINE)
    assert "Alarm thresholds: UnknownRate 0.2 (mushroom-unknown-rate-high)" in page
    assert f"{UNKNOWN}: OK -&gt; ALARM" in page and "deployed model version 2" in page
    assert "<td>800</td>" in page and "800.0" not in page  # counts as integers
    assert "time (simulated clock)" in page
    assert "share of labelled mushrooms that are poisonous" in page
    assert "href='w2.html'" in page


def test_a_bad_timeline_line_is_skipped_not_fatal(tmp_path):
    path = tmp_path / "timeline.jsonl"
    path.write_text(json.dumps(TIMELINE[0]) + "\n{not json\n[1, 2]\n" + json.dumps(TIMELINE[1]))
    assert [e["window"] for e in read_timeline(path)] == ["w1", "w2"]


def test_counts_display_as_integers_and_rates_as_they_are():
    assert display_values({"Records": 2007.0, "UnknownRate": 0.5, "InvalidLabels": 3.0}) == {
        "Records": 2007,
        "UnknownRate": 0.5,
        "InvalidLabels": 3,
    }
    assert isinstance(display_values({"Records": 2007.0})["Records"], int)


def test_timeline_png_is_drawn_from_the_timeline_file(tmp_path):
    (tmp_path / "timeline.jsonl").write_text("".join(json.dumps(e) + "\n" for e in TIMELINE))
    assert write_timeline_png(tmp_path).read_bytes()[:4] == b"\x89PNG"


def _axis(chart: str) -> list[str]:
    return re.findall(r"<text class='axis'[^>]*>([^<]*)</text>", chart)


def _charts(page: str) -> dict[str, str]:
    return dict(re.findall(r"<svg [^>]*aria-label='(\w+)'>(.*?)</svg>", page))


def test_a_one_point_chart_has_an_axis_from_zero_to_a_round_number():
    one = entry("w1", 0.0, "OK")
    one["metrics"] = {"Records": 2007.0, "RejectedRate": 0.0035, "DecisionAccuracy": 1.0}
    charts = _charts(render_index([one]))
    # Not -0.497 to 0.503 or 0.499 to 1.5 (a made-up +-0.5 around the one value).
    assert _axis(charts["RejectedRate"]) == ["0.004", "0"]
    assert _axis(charts["DecisionAccuracy"]) == ["1", "0"]
    assert _axis(charts["Records"]) == ["2,500", "0"]  # not 2.01e+03
    assert "<title>w1: 0.0035</title>" in charts["RejectedRate"]
    assert "<title>w1: 2,007</title>" in charts["Records"]


def test_a_flat_series_has_a_readable_axis_and_counts_read_as_integers():
    flat = [entry(f"w{i}", 0.1, "OK") for i in range(1, 4)]
    for e in flat:
        e["metrics"]["Records"] = 1500.0
    page = render_index(flat)
    assert _axis(_charts(page)["Records"]) == ["1,500", "0"]  # not 1.5e+03 at both ends
    assert "e+0" not in page
    assert "<td>1,500</td>" in page


def test_axis_range_and_labels():
    from monitoring.report import axis_label, axis_range

    assert axis_range([]) == (0.0, 1.0) and axis_range([0.0, 0.0]) == (0.0, 1.0)
    assert axis_range([0.05, 1.0, 0.02, 0.2]) == (0.0, 1.0)
    assert axis_range([0.85, 0.35]) == (0.0, 1.0)
    assert axis_range([0.3]) == (0.0, 0.3)
    assert axis_range([2.0, 1.0]) == (0.0, 2.0)
    assert axis_range([-0.3, 0.2]) == (-0.3, 0.2)
    assert [axis_label(v) for v in (0.0, 0.004, 0.25, 1.0, 2000.0)] == [
        "0",
        "0.004",
        "0.25",
        "1",
        "2,000",
    ]


def test_an_empty_window_shows_no_model_as_a_dash_not_none():
    empty = entry("w1", 0.0, "OK", version=None)
    empty["metrics"] = {"Records": 0.0}
    page = render_index([empty])
    assert "None" not in page
    assert "<td>-</td>" in page


def test_the_index_names_the_workspace_its_dashboard_command_opens(tmp_path):
    from config.settings import REPO_ROOT

    inside = REPO_ROOT / "reports" / "demo-drift" / "monitoring" / "workspace"
    page = render_index(TIMELINE, inside)
    command = "make monitoring-ui MONITORING_WORKSPACE=reports/demo-drift/monitoring/workspace"
    assert f"<code>{command}</code>" in page
    elsewhere = html.unescape(render_index(TIMELINE, tmp_path / "my workspace"))
    assert f"MONITORING_WORKSPACE='{tmp_path / 'my workspace'}'" in elsewhere


def test_the_timeline_png_axes_start_at_zero_and_read_as_numbers():
    one = entry("w1", 0.0, "OK")
    one["metrics"] = {"Records": 2007.0, "RejectedRate": 0.0035}
    fig = timeline_figure([one])
    axes = {ax.get_ylabel(): ax for ax in fig.axes}
    assert [t.get_text() for t in axes["Records"].get_yticklabels()] == ["0", "2,500"]
    assert [t.get_text() for t in axes["RejectedRate"].get_yticklabels()] == ["0", "0.004"]
    low, high = axes["RejectedRate"].get_ylim()
    assert low < 0 < 0.0035 < high < 0.0045


def test_timeline_png_draws_the_shadow_beside_the_champion_and_its_events():
    figures = {
        "champion": {"unknown_rate": 1.0, "decision_accuracy": 0.47},
        "shadow": {"unknown_rate": 0.07, "decision_accuracy": 0.93},
    }
    timeline = [
        entry("w1", 0.05, "OK"),
        entry("w2", 1.0, "ALARM", shadow_events=[{"event": "started", "model_version": "2"}]),
        entry(
            "w3",
            1.0,
            "ALARM",
            shadow={"model_version": "2", "figures": figures},
            shadow_events=[{"event": "promoted", "model_version": "2"}],
        ),
        entry("w4", 0.02, "OK", version="2"),
    ]
    fig = timeline_figure(timeline)
    by_name = {ax.get_ylabel(): ax for ax in fig.axes}
    shadow = [
        ln for ln in by_name["UnknownRate"].get_lines() if ln.get_label() == "shadow, same records"
    ]
    assert len(shadow) == 1
    ydata = list(shadow[0].get_ydata())
    assert ydata[2] == 0.07 and all(v != v for v in ydata[:2] + ydata[3:])  # NaN elsewhere
    assert not [ln for ln in by_name["Records"].get_lines() if ln.get_label().startswith("shadow")]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "shadow v2 started" in texts and "shadow v2 promoted" in texts
    # Each event: a dashed vertical line on every chart, at its window.
    dashed_at = {
        ln.get_xdata()[0]
        for ln in by_name["DecisionAccuracy"].get_lines()
        if ln.get_linestyle() == "--" and list(ln.get_xdata()) == [ln.get_xdata()[0]] * 2
    }
    assert {1, 2} <= dashed_at
