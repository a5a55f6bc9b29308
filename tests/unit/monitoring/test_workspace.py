"""The dashboard's panels: a bar per window (windows are discrete), thresholds as a series."""

from __future__ import annotations

from monitoring.workspace import FIGURES, THRESHOLD_SUFFIX, _dashboard


def test_every_figure_is_a_bar_chart_with_its_alarm_threshold_as_a_second_series():
    dashboard = _dashboard({"UnknownRate": ("mushroom-unknown-rate-high", 0.2)})
    panels = {panel.title: panel for panel in dashboard.panels}
    assert list(panels) == list(FIGURES.values())
    for panel in panels.values():
        # Not "line": Evidently's line chart joins the windows with a smoothed curve.
        assert panel.plot_params["plot_type"] == "bar", panel.title
        assert not panel.plot_params.get("is_stacked")
    unknown = panels[FIGURES["UnknownRate"]]
    assert [v.metric_labels["column"] for v in unknown.values] == [
        "UnknownRate",
        "UnknownRate" + THRESHOLD_SUFFIX,
    ]
    assert unknown.values[1].legend == "alarm threshold 0.2"
    assert "mushroom-unknown-rate-high, threshold 0.2" in unknown.subtitle
    assert len(panels[FIGURES["Records"]].values) == 1
