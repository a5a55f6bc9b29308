"""The loop alarm -> retrain -> gate -> shadow -> promote or discard, in whole monitoring cycles
over an archive (DuckDB over a local folder) with a fake shadow port; and every start,
promotion and discard recorded: MLflow tags, SNS, timeline, dashboard markers."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from config.settings import ShadowRules
from lambda_function.bundle_store import load_bundle
from lambda_function.config import ShadowSetting
from lambda_function.model import PREDICTOR_AUTO, ModelBundle
from lambda_function.service import ScoringService
from lambda_function.shadow import Shadow
from lambda_function.writer import InMemoryWriter
from monitoring.cycle import run_cycle
from monitoring.publish import ROLE_DIMENSION
from monitoring.report import read_timeline, render_index
from tests.fakes.monitoring import (
    UNKNOWN_ALARM,
    FakeTrainer,
    archive_deps,
    archive_object,
    config,
    label_line,
    scored_at,
    verdict,
)
from tests.fakes.scorer import dataset_records, kinesis_event

T0 = datetime(2026, 11, 27, 12, 0, 5, tzinfo=timezone.utc)
RULES = ShadowRules(min_labelled=20, min_poisonous=5, alpha=0.05, max_age_hours=24)


class FakeShadow:
    """The deployment's shadow commands, in memory."""

    def __init__(self, current: str | None = None, fail: str | None = None):
        self.version, self.fail = current, fail
        self.calls: list[tuple[str, str | None]] = []

    def _maybe_fail(self, what: str) -> None:
        if self.fail == what:
            raise RuntimeError(f"{what}: the deployer's role was denied")

    def current(self) -> str | None:
        self._maybe_fail("current")
        return self.version

    def start(self, model_version: str) -> None:
        self._maybe_fail("start")
        self.calls.append(("start", model_version))
        self.version = model_version

    def promote(self) -> None:
        self._maybe_fail("promote")
        self.calls.append(("promote", self.version))
        self.version = None

    def stop(self) -> None:
        self._maybe_fail("stop")
        self.calls.append(("stop", self.version))
        self.version = None


@pytest.fixture
def env(tmp_path):
    shadow = FakeShadow()
    deployed: list[str] = []
    tags: list[tuple[str, dict]] = []
    sent: list[tuple[str, str]] = []

    def notify(subject: str, message: str) -> str:
        sent.append((subject, message))
        return f"msg-{len(sent)}"

    deps = archive_deps(
        tmp_path,
        config=replace(config(tmp_path), shadow=RULES),
        notify=notify,
        retrain=FakeTrainer(version="2"),
        deploy=deployed.append,
        shadow=shadow,
        tag_version=lambda version, t: tags.append((version, dict(t))),
    )
    return dict(
        deps=deps,
        objects=deps.objects,
        cw=deps.cloudwatch,
        shadow=shadow,
        deployed=deployed,
        tags=tags,
        sent=sent,
        trainer_calls=lambda: len(deps.retrain.calls),
    )


def put(objects, at, calls, version="2", name="part", start=0):
    """Verdict records of (true label, champion verdict, shadow verdict); shadow None = none."""
    rows = []
    for i, (_, champion, shadow) in enumerate(calls, start=start):
        row = verdict(i, champion, p=0.2 if champion == "edible" else 0.9)
        row["scored_at"] = scored_at(at + timedelta(milliseconds=i))
        if shadow is not None:
            row["shadow"] = {"model_version": version, "verdict": shadow, "p_poisonous": 0.5}
        rows.append(row)
    archive_object(objects, "verdicts", at, name, rows)


def put_labels(objects, at, calls, start=0):
    key = f"labels/received/{at:%Y-%m-%dT%H-%M-%S}.000000Z-lab.jsonl"
    objects.put_labels(key, [label_line(i, truth) for i, (truth, _, _) in enumerate(calls, start)])


def role_values(cw, metric, role):
    return [
        d["Value"]
        for d in cw.data
        if d["MetricName"] == metric
        and d.get("Dimensions") == [{"Name": ROLE_DIMENSION, "Value": role}]
    ]


def markers(cw, name):
    return [d["Value"] for d in cw.data if d["MetricName"] == name]


def start_shadow_by_alarm(env):
    """New species: the champion answers unknown, the alarm fires, the retrained v2 passes
    the gate and becomes the shadow (not deployed)."""
    put(env["objects"], T0 - timedelta(seconds=3), [("e", "unknown", None)] * 20, name="drift")
    return run_cycle(env["deps"], at=T0)


# The shadow covers the new species: 20 edible ones the champion called unknown, 10 poisonous.
BETTER = [("e", "unknown", "edible")] * 20 + [("p", "unknown", "poisonous")] * 10


def test_a_retrained_model_becomes_the_shadow_and_is_promoted_on_its_evidence(env):
    first = start_shadow_by_alarm(env)
    assert {a.name: a.state for a in first.alarms}[UNKNOWN_ALARM] == "ALARM"
    assert env["shadow"].calls == [("start", "2")] and env["deployed"] == []
    assert first.response.shadowed and not first.response.deployed
    assert first.timeline_entry["shadow_events"] == [{"event": "started", "model_version": "2"}]
    assert env["tags"][0][0] == "2" and env["tags"][0][1]["shadow.state"] == "started"
    assert "passed the offline gate" in env["tags"][0][1]["shadow.reason"]
    assert markers(env["cw"], "ShadowStarted") == [1.0]
    retrained = [m for s, m in env["sent"] if s.startswith("Retrained")]
    assert "started as the shadow of version 1" in retrained[0]

    # The shadow scores beside the champion; the labels arrive; the next cycle decides.
    put(env["objects"], T0 + timedelta(seconds=30), BETTER)
    put_labels(env["objects"], T0 + timedelta(seconds=50), BETTER)
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=2))
    assert second.ok, second.errors
    assert env["shadow"].calls[-1] == ("promote", "2")
    decision = second.timeline_entry["shadow"]["decision"]
    assert decision["action"] == "promote" and decision["p_better"] == 0.5**20
    # Published with the model role: the champion's and the shadow's lines.
    assert role_values(env["cw"], "DecisionAccuracy", "champion") == [10 / 30]
    assert role_values(env["cw"], "DecisionAccuracy", "shadow") == [1.0]
    assert role_values(env["cw"], "Coverage", "champion") == [0.0]
    assert role_values(env["cw"], "Coverage", "shadow") == [1.0]
    assert role_values(env["cw"], "FalseEdibleRate", "shadow") == [0.0]
    assert role_values(env["cw"], "DisagreementRate", "shadow") == [1.0]
    assert role_values(env["cw"], "DiscordantShadowRight", "shadow") == [20.0]
    # Recorded: MLflow tags, SNS, marker, timeline; the state forgets the shadow.
    version, tags = env["tags"][-1]
    assert version == "2" and tags["shadow.state"] == "promoted"
    assert '"labelled": 30' in tags["shadow.evidence"]
    subject, message = env["sent"][-1]
    assert subject == "Shadow v2 promoted" and '"shadow_only_right": 20' in message
    assert markers(env["cw"], "ShadowPromoted") == [1.0]
    assert second.timeline_entry["shadow_events"] == [{"event": "promoted", "model_version": "2"}]
    assert env["deps"].state_store.document["shadow"] == {}

    # index.html draws the champion and shadow lines and the markers.
    timeline = read_timeline(env["deps"].config.reports_dir / "timeline.jsonl")
    page = render_index(timeline)
    assert "class='shadow-line'" in page and "class='champion-line'" in page
    assert "shadow v2 promoted" in page and "shadow v2 started" in page


def test_the_window_labels_count_when_the_metric_clock_is_behind_the_cut(env):
    """``make demo-drift`` publishes on a simulated clock (``at``) behind the real cut: the
    labels the window read (received at the window's end) are the shadow's evidence all the
    same, so the decision sees them in the window they arrived in."""
    start_shadow_by_alarm(env)
    put(env["objects"], T0 + timedelta(seconds=30), BETTER)
    put_labels(env["objects"], T0 + timedelta(seconds=50), BETTER)
    result = run_cycle(env["deps"], at=T0 + timedelta(seconds=10), cut=T0 + timedelta(minutes=2))
    assert result.ok, result.errors
    assert result.timeline_entry["shadow"]["labelled"] == 30
    assert result.timeline_entry["shadow"]["decision"]["action"] == "promote"
    assert env["shadow"].calls[-1] == ("promote", "2")


def test_a_worse_shadow_is_discarded_without_ever_answering(env):
    start_shadow_by_alarm(env)
    # Worse: 10 edible mushrooms the champion called edible and the shadow unknown (b = 10).
    worse = (
        [("e", "edible", "unknown")] * 10
        + [("e", "edible", "edible")] * 10
        + [("p", "poisonous", "poisonous")] * 10
    )
    put(env["objects"], T0 + timedelta(seconds=30), worse)
    put_labels(env["objects"], T0 + timedelta(seconds=50), worse)
    result = run_cycle(env["deps"], at=T0 + timedelta(minutes=2))
    assert env["shadow"].calls == [("start", "2"), ("stop", "2")]
    assert env["deployed"] == []
    decision = result.timeline_entry["shadow"]["decision"]
    assert decision["action"] == "discard" and decision["p_worse"] == 0.5**10
    assert env["tags"][-1][1]["shadow.state"] == "discarded"
    assert env["sent"][-1][0] == "Shadow v2 discarded"
    assert markers(env["cw"], "ShadowDiscarded") == [1.0]


def test_the_first_false_edible_discards_before_the_minimum_sample(env):
    start_shadow_by_alarm(env)
    calls = [("p", "unknown", "edible"), ("e", "edible", "edible")]
    put(env["objects"], T0 + timedelta(seconds=30), calls)
    put_labels(env["objects"], T0 + timedelta(seconds=50), calls)
    result = run_cycle(env["deps"], at=T0 + timedelta(minutes=2))
    assert env["shadow"].calls[1] == ("stop", "2")
    assert "false edible" in result.timeline_entry["shadow"]["decision"]["reason"]


def test_waiting_for_labels_then_a_failed_promotion_is_retried(env):
    start_shadow_by_alarm(env)
    put(env["objects"], T0 + timedelta(seconds=30), BETTER)
    waiting = run_cycle(env["deps"], at=T0 + timedelta(minutes=2))  # no labels yet
    assert waiting.timeline_entry["shadow"]["decision"]["action"] == "wait"
    assert "0/20 labelled" in waiting.timeline_entry["shadow"]["decision"]["reason"]
    assert role_values(env["cw"], "DisagreementRate", "shadow") == [1.0]  # before any label
    assert role_values(env["cw"], "DecisionAccuracy", "shadow") == []  # not computable yet
    assert env["shadow"].calls == [("start", "2")]

    put_labels(env["objects"], T0 + timedelta(minutes=3), BETTER)
    env["shadow"].fail = "promote"
    failed = run_cycle(env["deps"], at=T0 + timedelta(minutes=4))
    assert not failed.ok and "promote of shadow v2 failed" in " ".join(failed.errors)
    assert env["deps"].state_store.document["shadow"]["model_version"] == "2"
    env["shadow"].fail = None
    # Evidence accumulates over the shadow's life: the next cycle has the same labels.
    retried = run_cycle(env["deps"], at=T0 + timedelta(minutes=6))
    assert env["shadow"].calls[-1] == ("promote", "2")
    assert retried.timeline_entry["shadow"]["labelled"] == 30


def test_an_unreadable_shadow_is_no_decision_and_a_manual_shadow_is_observed(env):
    env["shadow"].version = "5"  # started by `make shadow MODEL_VERSION=5`
    same = [("e", "edible", "edible")] * 25 + [("p", "poisonous", "poisonous")] * 5
    put(env["objects"], T0 - timedelta(minutes=30), same, version="5")
    put_labels(env["objects"], T0 - timedelta(minutes=20), same)
    env["shadow"].fail = "current"
    blind = run_cycle(env["deps"], at=T0)
    assert "could not be read" in " ".join(blind.timeline_entry["shadow"]["errors"])
    assert env["shadow"].calls == []
    env["shadow"].fail = None
    seen = run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    # The records since the look-back count: labels of the earlier window are the truth.
    assert seen.timeline_entry["shadow"]["labelled"] == 30
    assert env["shadow"].calls == [("promote", "5")]


def test_without_the_archive_the_shadow_is_never_promoted(env):
    deps = replace(env["deps"], archive=None)
    env["shadow"].version = "2"
    result = run_cycle(deps, at=T0)
    view = result.timeline_entry["shadow"]
    assert view["decision"]["action"] == "wait"
    assert "MONITORING_SOURCE=archive" in " ".join(view["errors"])
    assert env["shadow"].calls == []


def test_without_a_shadow_port_the_gate_deploys_as_before(env):
    deps = replace(env["deps"], shadow=None)
    put(env["objects"], T0 - timedelta(seconds=3), [("e", "unknown", None)] * 20)
    result = run_cycle(deps, at=T0)
    assert env["deployed"] == ["2"] and result.timeline_entry["shadow"] is None
    assert result.timeline_entry["shadow_events"] == []


def test_after_a_discard_the_alarm_still_on_retrains_once_more_labels_arrived(env):
    start_shadow_by_alarm(env)  # no labels yet: v2 was trained on 0 labelled records
    assert env["deps"].state_store.document["shadow"]["labels_used"] == 0
    # The champion still answers unknown (the alarm stays on); v2 calls a poisonous one edible.
    calls = [("p", "unknown", "edible")] + [("e", "unknown", "edible")] * 19
    put(env["objects"], T0 + timedelta(seconds=30), calls)
    put_labels(env["objects"], T0 + timedelta(seconds=50), calls)
    env["deps"].retrain.version = "3"
    result = run_cycle(env["deps"], at=T0 + timedelta(minutes=2))
    assert {a.name: a.state for a in result.alarms}[UNKNOWN_ALARM] == "ALARM"
    # Discarded like a gate refusal: 20 labelled records now > 0, so retrained at once.
    assert env["shadow"].calls == [("start", "2"), ("stop", "2"), ("start", "3")]
    assert [e["event"] for e in result.timeline_entry["shadow_events"]] == [
        "discarded",
        "started",
    ]
    assert env["trainer_calls"]() == 2


def test_the_printed_summary_says_what_the_shadow_did(env):
    from monitoring.outputs import describe

    start_shadow_by_alarm(env)
    put(env["objects"], T0 + timedelta(seconds=30), BETTER)
    put_labels(env["objects"], T0 + timedelta(seconds=50), BETTER)
    text = describe(run_cycle(env["deps"], at=T0 + timedelta(minutes=2)))
    assert "shadow v2: 30 records beside the champion, 30 labelled (10 poisonous)" in text
    assert "DecisionAccuracy: champion 0.3333, shadow 1.0000" in text
    assert "decision: promote: not worse on decision accuracy" in text


def test_a_shadow_that_cannot_be_started_leaves_the_alarm_for_the_next_cycle(env):
    env["shadow"].fail = "start"
    result = start_shadow_by_alarm(env)
    assert not result.ok
    assert "starting version 2 as the shadow" in " ".join(result.errors)
    assert [a["action"] for a in result.response.actions][-1] == "shadow-start-failed"
    assert env["deps"].state_store.document["shadow"] == {}
    assert markers(env["cw"], "ShadowStarted") == [] and env["deployed"] == []
    # Not handled: the alarm counts as fresh again, so the next cycle retrains and starts it.
    env["shadow"].fail = None
    put(env["objects"], T0 + timedelta(seconds=50), [("e", "unknown", None)] * 20, name="more")
    run_cycle(env["deps"], at=T0 + timedelta(minutes=2))
    assert env["shadow"].calls == [("start", "2")]


def test_role_metric_data_leaves_out_what_is_not_computable():
    from monitoring.publish import role_metric_data

    at = T0
    data = role_metric_data(
        {"champion": {"Coverage": 0.5, "DecisionAccuracy": None}, "shadow": {"PairedLabelled": 3}},
        at,
        frozenset({"PairedLabelled"}),
    )
    assert data == [
        {
            "MetricName": "Coverage",
            "Timestamp": at,
            "Value": 0.5,
            "Unit": "None",
            "Dimensions": [{"Name": ROLE_DIMENSION, "Value": "champion"}],
        },
        {
            "MetricName": "PairedLabelled",
            "Timestamp": at,
            "Value": 3.0,
            "Unit": "Count",
            "Dimensions": [{"Name": ROLE_DIMENSION, "Value": "shadow"}],
        },
    ]


# A worse shadow, scored by the real scorer, is discarded by the real cycle without ever
# answering a consumer: every output record carries the champion's verdict and model version,
# the shadow's verdicts are only in the additive ``shadow`` field, nothing is deployed.


def _observations(dataset: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every row of the tiny dataset as an input record, and its true label by id."""
    records = dataset_records(dataset, "lab")
    truth = {r["mushroom_id"]: str(label) for r, label in zip(records, dataset["label"])}
    return records, truth


def test_a_worse_shadow_scored_live_is_discarded_and_never_answered(
    env, tiny_bundle: Path, tiny_dataset: pd.DataFrame, tmp_path: Path
) -> None:
    start_shadow_by_alarm(env)  # the retrained v2 passed the gate: it is the shadow now
    assert env["shadow"].version == "2"
    # v2 as the scorer loads it: the same model with a threshold so high that it calls
    # poisonous mushrooms edible (the forbidden mistake).
    worse = ModelBundle.load(tiny_bundle)
    worse.model_version, worse.threshold = "2", 0.999
    shadow_dir = worse.save(tmp_path / "shadow" / "2")
    shadow = Shadow.load(
        ShadowSetting(str(shadow_dir), "2"), str(tmp_path / "cache"), PREDICTOR_AUTO
    )
    champion = load_bundle(str(tiny_bundle))
    records, truth = _observations(tiny_dataset)
    writer = InMemoryWriter()
    scored_at = T0 + timedelta(seconds=30)
    service = ScoringService(champion, writer, clock=lambda: scored_at, shadow=shadow)
    service.score_records(kinesis_event([json.dumps(r).encode() for r in records])["Records"])
    output = [json.loads(data) for _, _, data in writer.records]

    # What a consumer reads: one record per input, every verdict the champion's.
    assert len(output) == len(records)
    assert {o["model_version"] for o in output} == {champion.model_version} != {"2"}
    false_edible = [
        o for o in output if truth[o["mushroom_id"]] == "p" and o["shadow"]["verdict"] == "edible"
    ]
    assert false_edible and all(o["verdict"] != "edible" for o in false_edible)
    # The shadow's verdict on every record, in the additive field only.
    assert all(o["shadow"]["model_version"] == "2" for o in output)

    archive_object(env["objects"], "verdicts", scored_at, "scored", output)
    labels = [{**r, "label": truth[r["mushroom_id"]]} for r in records]  # the lab's lines
    env["objects"].put_labels(
        f"labels/received/{scored_at:%Y-%m-%dT%H-%M-%S}.000000Z-lab.jsonl", labels
    )
    result = run_cycle(env["deps"], at=T0 + timedelta(minutes=2))

    decision = result.timeline_entry["shadow"]["decision"]
    assert decision["action"] == "discard" and "false edible" in decision["reason"], decision
    assert env["shadow"].calls == [("start", "2"), ("stop", "2")]
    assert env["deployed"] == []  # the served model never changed
    assert result.timeline_entry["shadow_events"] == [{"event": "discarded", "model_version": "2"}]
    assert result.metrics.dominant_model_version == champion.model_version
