"""Scenario "new species arrive", end to end on its own emulator: ``make demo-drift``'s command.

The test runs the demo as a user would (a child process, ``python -m scripts.demo_drift``) and
reads the result it writes; it imports no demo code.

Terraform apply, the real Lambda zip in the local Lambda runtime, MLflow, CloudWatch alarms
evaluated with CloudWatch semantics, SNS observed through SQS, and the monitoring cycle's own
default deploy (the registry's champion). About 2.5 minutes on 2 cores, run once per session
(``drift_scenario`` in conftest.py; the browser test serves its dashboard); set
MUSHROOM_LAMBDA_ZIP to a built zip to skip packaging.
"""

from __future__ import annotations

import html
import json
import re
import shlex

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

UNKNOWN = "mushroom-unknown-rate-high"
FALSE_EDIBLE = "mushroom-false-edible-rate-high"
UNKNOWN_THRESHOLD, FALSE_EDIBLE_THRESHOLD = 0.2, 0.01  # terraform/vars/local.tfvars


@pytest.fixture(scope="module")
def scenario(drift_scenario):
    return drift_scenario


def by_window(scenario):
    return {entry["window"]: entry for entry in scenario.timeline}


def test_phase1_known_species_healthy(scenario):
    p1 = by_window(scenario)["phase1-known"]
    assert len(scenario.excluded_species) == 20
    assert p1["records"] == p1["observations"] == 800
    assert p1["metrics"]["UnknownRate"] <= UNKNOWN_THRESHOLD
    assert p1["metrics"]["FalseEdibleRate"] <= FALSE_EDIBLE_THRESHOLD
    assert p1["alarms"] == {UNKNOWN: "OK", FALSE_EDIBLE: "OK"}
    assert p1["model_version"] == scenario.versions["initial"]
    assert not p1["retrained"] and p1["sns_subjects"] == [] and p1["errors"] == []


def test_phase2_unseen_species_fire_the_alarm_and_retrain(scenario):
    p2 = by_window(scenario)["phase2-unseen"]
    assert p2["records"] == 800
    breached = [
        name
        for name, metric, limit in (
            (UNKNOWN, "UnknownRate", UNKNOWN_THRESHOLD),
            (FALSE_EDIBLE, "FalseEdibleRate", FALSE_EDIBLE_THRESHOLD),
        )
        if p2["metrics"][metric] > limit
    ]
    assert breached and all(p2["alarms"][name] == "ALARM" for name in breached)
    assert p2["metrics"]["DriftShare"] > 0.5
    assert any(s.startswith("ALARM: ") for s in p2["sns_subjects"])
    alert = next(m for m in scenario.sns_messages if m["subject"].startswith("ALARM"))
    body = json.loads(alert["message"])
    assert body["alarm"] in breached and body["window"] == "phase2-unseen"
    assert p2["retrained"] and p2["promoted"] and p2["deployed"], p2["errors"]
    assert p2["new_version"] != scenario.versions["initial"]
    assert [a["action"] for a in p2["actions"]][:4] == ["notify", "retrain", "gate", "deploy"]
    assert any(s.startswith("Retrained: ") for s in p2["sns_subjects"])
    assert p2["errors"] == []


def test_phase3_retrained_model_is_served_and_healthy(scenario):
    timeline = by_window(scenario)
    p2, p3 = timeline["phase2-unseen"], timeline["phase3-after-retrain"]
    # The verdicts carry the version that scored them: the new champion is really serving.
    assert p3["model_version"] == p2["new_version"] == scenario.versions["champion"]
    assert p3["records"] == p3["observations"] == 800
    assert p3["metrics"]["UnknownRate"] <= UNKNOWN_THRESHOLD
    assert p3["metrics"]["FalseEdibleRate"] <= FALSE_EDIBLE_THRESHOLD
    assert p3["metrics"]["DecisionAccuracy"] >= 0.95
    assert p3["alarms"] == {UNKNOWN: "OK", FALSE_EDIBLE: "OK"}
    assert not p3["retrained"] and p3["sns_subjects"] == [] and p3["errors"] == []


def test_drift_falls_once_the_retrained_model_is_served(scenario):
    timeline = by_window(scenario)
    p1, p2, p3 = (timeline[w] for w in ("phase1-known", "phase2-unseen", "phase3-after-retrain"))
    # The reference follows the served model: its training data, then what it was retrained on.
    assert p1["drift_reference"]["model_version"] == scenario.versions["initial"]
    assert p2["drift_reference"]["model_version"] == scenario.versions["initial"]
    assert p3["drift_reference"]["model_version"] == scenario.versions["champion"]
    assert "labelled production records" in p3["drift_reference"]["description"]
    assert p3["drift_reference"]["fingerprint"] != p2["drift_reference"]["fingerprint"]
    assert p2["metrics"]["DriftShare"] > 0.5
    assert p3["metrics"]["DriftShare"] < p2["metrics"]["DriftShare"] / 2, (p2, p3)


def test_every_window_shows_the_alias_version_served(scenario):
    timeline = by_window(scenario)
    p1, p3 = timeline["phase1-known"], timeline["phase3-after-retrain"]
    assert p1["alias_version"] and p3["alias_version"]
    assert int(p3["alias_version"]) > int(p1["alias_version"])  # the retraining published one


def test_rollback_drill_rolls_back_and_forward_without_losing_a_record(scenario):
    back, forward = scenario.drill
    assert back["step"] == "rollback" and forward["step"] == "roll-forward"
    assert back["served_model_version"] == scenario.versions["initial"]
    assert forward["served_model_version"] == scenario.versions["champion"]
    assert back["alias_version"] != forward["alias_version"]
    for step in (back, forward):
        assert step["verdicts"] == step["records"] > 0
    # The verdicts carry the version that scored them: the runtime follows the alias.
    assert back["verdicts_by_model_version"] == {scenario.versions["initial"]: back["records"]}
    assert forward["verdicts_by_model_version"] == {
        scenario.versions["champion"]: forward["records"]
    }


def test_output_prints_each_action_once_after_the_alarm_that_caused_it(scenario):
    lines = scenario.output.splitlines()
    fired = next(i for i, x in enumerate(lines) if re.match(r"alarm \S+: OK -> ALARM", x))
    deployed = [
        i
        for i, x in enumerate(lines)
        if x.startswith("action deploy:") or "deployed version" in x or "deploy:" in x
    ]
    assert len(deployed) == 1 and deployed[0] > fired, [lines[i] for i in deployed]
    for action in ("notify", "retrain", "gate"):  # printed by the summary or by a log line
        printed = [x for x in lines if x.startswith(f"action {action}: ") or f": {action}: " in x]
        assert len(printed) == 1, printed


def test_every_window_is_computed_by_sql_over_the_archive(scenario):
    """Like a deployed stack: the pump archives what the scorer wrote, the cycle queries it."""
    out = scenario.stdout
    archived = re.findall(r"Firehose pump: (\d+) records archived; the archive holds (.*)", out)
    assert [int(n) for n, _ in archived] == [1600, 1600, 1600]  # observations and verdicts
    assert all("under archive/verdicts/" in held for _, held in archived)
    for entry in scenario.timeline:
        assert entry["archive"]["engine"] == "duckdb", entry["window"]
        assert entry["archive"]["verdict_objects"] >= 1
        assert entry["archive"]["lines"][0].startswith("metrics by SQL (duckdb")
    assert out.count("metrics by SQL (duckdb") == 3


def test_output_labels_the_simulated_clock_and_prints_counts_as_integers(scenario):
    out = scenario.stdout
    assert "(simulated clock: demo-drift advances one alarm period per phase)" in out
    assert "TIMELINE (window times from the simulated clock" in out
    assert "Records=800," in out and not re.search(r"\b800\.0+\b", out)
    assert "unknown means 'do not eat'" in out.lower()
    assert "make monitoring-ui MONITORING_WORKSPACE=" in out


def test_reports_are_small_and_the_index_draws_the_timeline(scenario):
    monitoring = scenario.reports_dir / "monitoring"
    sizes = {p.name: p.stat().st_size for p in monitoring.glob("phase*.html")}
    assert len(sizes) == 3 and max(sizes.values()) <= 300_000, sizes
    index = (monitoring / "index.html").read_text()
    assert f"{UNKNOWN}: OK -&gt; ALARM" in index or f"{FALSE_EDIBLE}: OK -&gt; ALARM" in index
    assert f"deployed model version {scenario.versions['champion']}" in index
    assert "UnknownRate 0.2 (mushroom-unknown-rate-high)" in index  # the threshold legend
    # The dashboard command names this scenario's workspace, as printed at the end.
    (hint,) = re.findall(r"<code>(make monitoring-ui [^<]+)</code>", index)
    words = shlex.split(html.unescape(hint))
    assert words[2] == f"MONITORING_WORKSPACE={monitoring / 'workspace'}", words
    assert (monitoring / "workspace").is_dir() and html.unescape(hint) in scenario.stdout
    assert (monitoring / "timeline.png").stat().st_size > 10_000
