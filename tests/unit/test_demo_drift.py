"""demo-drift's printed timeline and closing hints (no scenario run: see the integration test)."""

from __future__ import annotations

from pathlib import Path

from config.settings import REPO_ROOT
from scripts.demo_drift import SIMULATED_CLOCK, closing_hints, format_timeline

ENTRY = {
    "window": "phase2-unseen",
    "records": 2007.0,  # as a JSON round trip of a float count would give it
    "metrics": {"UnknownRate": 1.0, "FalseEdibleRate": 0.0, "DecisionAccuracy": 0.4807},
    "alarms": {"mushroom-unknown-rate-high": "ALARM"},
    "model_version": "1",
    "alias_version": "2",
    "retrained": True,
    "new_version": "2",
    "deployed": True,
    "clock": SIMULATED_CLOCK,
}


def test_timeline_prints_integer_counts_the_clock_and_what_decision_accuracy_means():
    text = format_timeline([ENTRY])
    assert "2007.0" not in text and " 2007 " in text
    assert f"TIMELINE (window times from the {SIMULATED_CLOCK})" in text
    assert "0.481" in text and "unknown means 'do not eat'" in text.lower()
    assert text.count("retrained -> v2 deployed") == 1


def test_closing_hints_name_the_index_and_the_dashboard_command():
    reports = REPO_ROOT / "reports" / "demo-drift" / "monitoring"
    text = closing_hints(reports, reports / "workspace")
    assert str(reports / "index.html") in text and str(reports / "timeline.png") in text
    assert "make monitoring-ui MONITORING_WORKSPACE=reports/demo-drift/monitoring/workspace" in text
    assert "MONITORING_WORKSPACE=/elsewhere/ws" in closing_hints(Path("/r"), Path("/elsewhere/ws"))
