"""Scenario "new species arrive", end to end on its own emulator: ``make demo-drift``'s command.

The test runs the demo as a user would (a child process, ``python -m scripts.demo_drift``) and
reads the result it writes; it imports no demo code.

Terraform apply, the real Lambda zip in the local Lambda runtime, MLflow, CloudWatch alarms
evaluated with CloudWatch semantics, SNS observed through SQS, and the monitoring cycle's own
promotion over the archive: the retrained model shadows the champion, and the cycle promotes it
on its paired evidence (``make shadow`` / ``make promote``'s functions). About 3.5 minutes on 2
cores, run once per session
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
    # The retrained version passed the offline gate and became the shadow: not deployed, and
    # the registry's champion stays until the shadow's live evidence promotes it.
    assert p2["retrained"] and p2["promoted"] and not p2["deployed"], p2["errors"]
    assert p2["new_version"] != scenario.versions["initial"]
    assert [a["action"] for a in p2["actions"]][:4] == ["notify", "retrain", "gate", "shadow-start"]
    assert p2["shadow_events"] == [{"event": "started", "model_version": p2["new_version"]}]
    assert scenario.versions["shadow_started"] == p2["new_version"]
    assert any(s.startswith("Retrained: ") for s in p2["sns_subjects"])
    assert p2["errors"] == []


def test_phase3_the_shadow_covers_the_new_species_while_the_champion_answers(scenario):
    timeline = by_window(scenario)
    p2, p3 = timeline["phase2-unseen"], timeline["phase3-shadow"]
    shadow, champion = p2["new_version"], scenario.versions["initial"]
    assert p3["records"] == p3["observations"] == 800
    # Served: every verdict is the champion's (unknown: do not eat); the shadow's verdicts
    # for every record are only in the additive shadow field.
    verdicts = p3["verdicts"]
    assert verdicts["records"] == 800
    assert verdicts["by_model_version"] == {champion: 800}
    assert p3["model_version"] == champion and p3["shadow_model_version"] == shadow
    assert p3["metrics"]["UnknownRate"] > UNKNOWN_THRESHOLD
    assert verdicts["shadow_by_model_version"] == {shadow: 800}
    shadow_said = verdicts["shadow_verdicts_by_model_version"][shadow]
    assert shadow_said.get("unknown", 0) <= 0.2 * 800, shadow_said  # it covers them
    assert p3["alarms"][UNKNOWN] == "ALARM" and not p3["retrained"]
    # Its paired evidence on the labels of the window, and the decision taken on it.
    view = p3["shadow"]
    assert view["model_version"] == shadow and view["records"] == view["labelled"] == 800
    assert view["labelled_poisonous"] >= 50
    assert view["figures"]["shadow"]["false_edible"] == 0
    assert view["figures"]["shadow"]["coverage"] > view["figures"]["champion"]["coverage"]
    assert view["discordant"]["shadow"] > view["discordant"]["champion"]
    assert view["decision"]["action"] == "promote" and view["decision"]["p_worse"] > 0.05
    assert p3["shadow_events"] == [{"event": "promoted", "model_version": shadow}]
    assert f"Shadow v{shadow} promoted" in p3["sns_subjects"]
    assert scenario.versions["shadow_promoted"] == shadow == scenario.versions["champion"]
    assert p3["errors"] == []


def test_phase4_the_promoted_model_serves_and_coverage_recovers(scenario):
    timeline = by_window(scenario)
    p2, p3, p4 = (timeline[w] for w in ("phase2-unseen", "phase3-shadow", "phase4-after-promotion"))
    # The verdicts carry the version that scored them: the promoted model is really serving.
    assert p4["model_version"] == p2["new_version"] == scenario.versions["champion"]
    assert p4["verdicts"]["by_model_version"] == {scenario.versions["champion"]: 800}
    assert p4["verdicts"]["shadow_by_model_version"] == {} and not p4["shadow_model_version"]
    assert p4["records"] == p4["observations"] == 800
    assert p4["metrics"]["UnknownRate"] <= UNKNOWN_THRESHOLD < p3["metrics"]["UnknownRate"]
    assert p4["metrics"]["FalseEdibleRate"] <= FALSE_EDIBLE_THRESHOLD
    assert p4["metrics"]["DecisionAccuracy"] >= 0.95
    assert p4["alarms"] == {UNKNOWN: "OK", FALSE_EDIBLE: "OK"}
    assert not p4["retrained"] and p4["sns_subjects"] == [] and p4["errors"] == []
    assert p4["shadow"] is None and p4["shadow_events"] == []


def test_drift_falls_once_the_retrained_model_is_served(scenario):
    timeline = by_window(scenario)
    p1, p2, p3, p4 = (
        timeline[w]
        for w in ("phase1-known", "phase2-unseen", "phase3-shadow", "phase4-after-promotion")
    )
    # The reference follows the served model: its training data, then what it was retrained
    # on, from the window after the promotion (a shadow is not served).
    for entry in (p1, p2, p3):
        assert entry["drift_reference"]["model_version"] == scenario.versions["initial"]
    assert p4["drift_reference"]["model_version"] == scenario.versions["champion"]
    assert "labelled production records" in p4["drift_reference"]["description"]
    assert p4["drift_reference"]["fingerprint"] != p2["drift_reference"]["fingerprint"]
    assert p2["metrics"]["DriftShare"] > 0.5
    assert p4["metrics"]["DriftShare"] < p2["metrics"]["DriftShare"] / 2, (p2, p4)


def test_every_window_shows_the_alias_version_that_scored_it(scenario):
    timeline = by_window(scenario)
    p1, p2, p3, p4 = (
        timeline[w]
        for w in ("phase1-known", "phase2-unseen", "phase3-shadow", "phase4-after-promotion")
    )
    assert p1["alias_version"] == p2["alias_version"]
    # Starting the shadow published a version, and so did the promotion.
    assert int(p1["alias_version"]) < int(p3["alias_version"]) < int(p4["alias_version"])


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
    assert not [x for x in lines if "deploy:" in x or "deployed version" in x]
    for action in ("notify", "retrain", "gate", "shadow-start", "shadow-promoted"):
        # printed by the summary or by a log line
        printed = [
            i
            for i, x in enumerate(lines)
            if x.startswith(f"action {action}: ") or f": {action}: " in x
        ]
        assert len(printed) == 1 and printed[0] > fired, [lines[i] for i in printed]


def test_output_says_what_the_shadow_did_and_on_which_evidence(scenario):
    out = scenario.stdout
    shadow = scenario.versions["shadow_started"]
    assert "[demo-drift] promotion: shadow." in out and "at least 200 labelled records" in out
    assert f"[demo-drift] shadow v{shadow} started:" in out
    assert re.search(
        rf"output stream: 800 verdicts served by model v{scenario.versions['initial']} "
        rf"\{{'unknown': 800\}}; beside them, only in the shadow field \(answering no one\): "
        rf"shadow v{shadow} ",
        out,
    ), out
    (promoted,) = re.findall(rf"\[demo-drift\] shadow v{shadow} promoted on its evidence: .*", out)
    assert "800 labelled records (" in promoted and "false edible 0," in promoted
    assert re.search(r"champion right b=\d+, shadow right c=\d+, McNemar one-sided", promoted)


def test_every_window_is_computed_by_sql_over_the_archive(scenario):
    """Like a deployed stack: the pump archives what the scorer wrote, the cycle queries it."""
    out = scenario.stdout
    archived = re.findall(r"Firehose pump: (\d+) records archived; the archive holds (.*)", out)
    assert [int(n) for n, _ in archived] == [1600] * 4  # observations and verdicts
    assert all("under archive/verdicts/" in held for _, held in archived)
    for entry in scenario.timeline:
        assert entry["archive"]["engine"] == "duckdb", entry["window"]
        assert entry["archive"]["verdict_objects"] >= 1
        assert entry["archive"]["lines"][0].startswith("metrics by SQL (duckdb")
    assert out.count("metrics by SQL (duckdb") == 4


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
    assert len(sizes) == 4 and max(sizes.values()) <= 300_000, sizes
    index = (monitoring / "index.html").read_text()
    assert f"{UNKNOWN}: OK -&gt; ALARM" in index or f"{FALSE_EDIBLE}: OK -&gt; ALARM" in index
    for event in ("started", "promoted"):  # the shadow's markers
        assert f"shadow v{scenario.versions['champion']} {event}" in index
    assert "UnknownRate 0.2 (mushroom-unknown-rate-high)" in index  # the threshold legend
    # The dashboard command names this scenario's workspace, as printed at the end.
    (hint,) = re.findall(r"<code>(make monitoring-ui [^<]+)</code>", index)
    words = shlex.split(html.unescape(hint))
    assert words[2] == f"MONITORING_WORKSPACE={monitoring / 'workspace'}", words
    assert (monitoring / "workspace").is_dir() and html.unescape(hint) in scenario.stdout
    assert (monitoring / "timeline.png").stat().st_size > 10_000
