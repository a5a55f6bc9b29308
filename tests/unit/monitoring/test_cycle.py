"""A whole monitoring cycle against fakes: read once, publish, evaluate, respond, record."""

from __future__ import annotations

import dataclasses
import html
import json
from datetime import datetime, timedelta, timezone

import pytest

from monitoring.cycle import PublishFailed, run_cycle
from monitoring.outputs import describe
from monitoring.ports import CycleDeps
from monitoring.state import StateConflict
from tests.fakes.monitoring import (
    FALSE_EDIBLE_ALARM,
    OBSERVATION,
    UNKNOWN_ALARM,
    FakeCloudWatch,
    FakeObjects,
    FakeStore,
    FakeStream,
    FakeTrainer,
    Killed,
    config,
    label_line,
    verdict,
)

T0 = datetime(2026, 11, 27, 12, 0, 5, tzinfo=timezone.utc)


@pytest.fixture
def env(tmp_path):
    stream = FakeStream("mushroom-verdicts")
    objects = FakeObjects()
    cloudwatch = FakeCloudWatch()
    store = FakeStore()
    trainer = FakeTrainer()
    notes: list[tuple[str, str]] = []
    deployed: list[str] = []
    tags: dict[str, dict] = {}

    def notify(subject, message):
        notes.append((subject, message))
        return f"msg-{len(notes)}"

    deps = CycleDeps(
        config=config(tmp_path),
        verdicts=stream,
        state_store=store,
        cloudwatch=cloudwatch,
        notify=notify,
        retrain=trainer,
        deploy=deployed.append,
        objects=objects,
        tag_run=lambda run_id, t: tags.setdefault(run_id, {}).update(t),
    )
    return dict(
        deps=deps,
        stream=stream,
        objects=objects,
        cloudwatch=cloudwatch,
        store=store,
        trainer=trainer,
        notes=notes,
        deployed=deployed,
        tags=tags,
        tmp_path=tmp_path,
    )


def healthy(stream, start=0, n=20, version="1"):
    stream.put(
        [
            verdict(i, "edible" if i % 2 else "poisonous", 0.1, version)
            for i in range(start, start + n)
        ]
    )


def test_healthy_window_publishes_and_stays_ok(env):
    healthy(env["stream"])
    result = run_cycle(env["deps"], at=T0, window="w1")
    cw = env["cloudwatch"]
    assert result.ok, result.errors
    assert result.metrics.records == 20 and result.metrics.unknown_rate == 0.0
    # Each metric without dimensions and with ModelVersion.
    assert cw.values("UnknownRate") == [0.0] and cw.values("UnknownRate", True) == [0.0]
    assert [d["Dimensions"] for d in cw.data if d.get("Dimensions")][0] == [
        {"Name": "ModelVersion", "Value": "1"}
    ]
    assert {a.name: a.state for a in result.alarms} == {
        UNKNOWN_ALARM: "OK",
        FALSE_EDIBLE_ALARM: "OK",
    }
    assert cw.alarms[UNKNOWN_ALARM]["StateValue"] == "OK"
    assert env["trainer"].calls == [] and env["notes"] == []
    assert (env["tmp_path"] / "reports" / "w1.html").is_file()
    assert "monitoring/reports/w1.html" in env["objects"].objects
    assert "alarm mushroom-unknown-rate-high: INSUFFICIENT_DATA -> OK" in describe(result)


def test_a_tiny_window_publishes_no_rate_raises_no_alarm_and_does_not_retrain(env):
    # `make invoke` (3 records, 2 unknown) then `make monitor`, with the default minimum.
    env["deps"].config = dataclasses.replace(env["deps"].config, min_records=100)
    env["stream"].put([verdict(0, "unknown"), verdict(1, "unknown"), verdict(2, "edible")])
    result = run_cycle(env["deps"], at=T0, window="tiny")
    cw = env["cloudwatch"]
    assert result.ok, result.errors
    assert result.metrics.unknown_rate == pytest.approx(2 / 3)
    assert cw.values("Records") == [3.0]
    assert cw.values("UnknownRate") == [] and cw.values("UnknownRate", True) == []
    assert {a.name: a.state for a in result.alarms}[UNKNOWN_ALARM] == "OK"
    assert env["trainer"].calls == [] and env["notes"] == [] and env["deployed"] == []
    note = "3 records < minimum 100"
    assert any(note in n for n in result.timeline_entry["not_published"])
    assert note in describe(result)
    assert html.escape(note) in (env["tmp_path"] / "reports" / "tiny.html").read_text()


def test_a_drift_reference_that_fails_is_reported_and_the_cycle_goes_on(env):
    observations = FakeStream("mushroom-observations")
    observations.put([{"mushroom_id": f"obs-{i:05d}", **OBSERVATION} for i in range(40)])

    def broken_reference():
        raise OSError("reference.parquet: no such file")

    env["deps"].observations, env["deps"].reference = observations, broken_reference
    healthy(env["stream"])
    result = run_cycle(env["deps"], at=T0, window="w-drift")
    assert result.drift is None
    assert result.errors == ["drift: reference.parquet: no such file"]
    assert result.metrics.records == 20 and result.published


@pytest.mark.slow
def test_the_report_and_timeline_say_which_drift_reference_was_used(env):
    from monitoring.drift import DriftReference, features_frame

    observations = FakeStream("mushroom-observations")
    observations.put([{"mushroom_id": f"obs-{i:05d}", **OBSERVATION} for i in range(40)])
    reference = DriftReference(
        features_frame([OBSERVATION] * 50),
        "training data of model v2: 50 labelled production records",
        "2",
        "abcdef123456",
    )
    env["deps"].observations, env["deps"].reference = observations, lambda: reference
    healthy(env["stream"])
    result = run_cycle(env["deps"], at=T0, window="w-drift")
    assert result.ok, result.errors
    assert result.drift is not None and result.drift.rows == 40
    assert result.timeline_entry["drift_reference"] == {
        "model_version": "2",
        "rows": 50,
        "fingerprint": "abcdef123456",
        "description": "training data of model v2: 50 labelled production records",
    }
    line = (
        "training data of model v2: 50 labelled production records; 50 rows, model version 2,"
        " data fingerprint abcdef123456"
    )
    assert f"reference: {line}" in describe(result)
    assert html.escape(line) in (env["tmp_path"] / "reports" / "w-drift.html").read_text()


def test_each_record_is_processed_once(env):
    healthy(env["stream"], n=10)
    run_cycle(env["deps"], at=T0)
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert second.metrics.records == 0
    healthy(env["stream"], start=10, n=5)
    third = run_cycle(env["deps"], at=T0 + timedelta(minutes=2))
    assert third.metrics.records == 5
    assert env["store"].document["streams"]["mushroom-verdicts"] == {"shard-0": "14"}


def test_breach_notifies_retrains_with_labels_and_deploys(env):
    stream, objects = env["stream"], env["objects"]
    healthy(stream)
    run_cycle(env["deps"], at=T0, window="phase1")
    # Phase 2: new species -> unknown; the lab answers for them.
    stream.put([verdict(100 + i, "unknown", 0.4) for i in range(20)])
    objects.put_labels("labels/batch-2.jsonl", [label_line(100 + i, "p") for i in range(20)])
    result = run_cycle(env["deps"], at=T0 + timedelta(minutes=1), window="phase2")

    assert result.metrics.unknown_rate == 1.0 and result.metrics.labelled == 20
    assert {a.name: a.state for a in result.alarms}[UNKNOWN_ALARM] == "ALARM"
    subject, message = env["notes"][0]
    assert UNKNOWN_ALARM in subject
    body = json.loads(message)
    assert body["window"] == "phase2" and body["metrics"]["UnknownRate"] == 1.0
    (call,) = env["trainer"].calls
    assert call["reason"] == f"alarm:{UNKNOWN_ALARM}"
    assert len(call["extra_records"]) == 20
    assert set(call["extra_records"]["label"]) == {"p"}
    assert env["deployed"] == ["2"]
    assert env["tags"]["run-2"]["monitoring.deployed"] == "true"
    assert env["tags"]["run-2"]["monitoring.window"] == "phase2"
    assert [a["action"] for a in result.response.actions] == [
        "notify",
        "retrain",
        "gate",
        "deploy",
        "mlflow-tags",
    ]
    timeline = [
        json.loads(line)
        for line in (env["tmp_path"] / "reports" / "timeline.jsonl").read_text().splitlines()
    ]
    assert [e["window"] for e in timeline] == ["phase1", "phase2"]
    assert timeline[1]["deployed"] and timeline[1]["new_version"] == "2"
    assert json.loads(objects.objects["monitoring/timeline/phase2.json"])["new_version"] == "2"

    # Phase 3: the new version knows them -> healthy, alarm back to OK, no second retraining.
    healthy(stream, start=200, version="2")
    third = run_cycle(env["deps"], at=T0 + timedelta(minutes=2), window="phase3")
    assert {a.name: a.state for a in third.alarms}[UNKNOWN_ALARM] == "OK"
    assert third.metrics.dominant_model_version == "2"
    assert len(env["trainer"].calls) == 1


def test_model_failing_the_gate_is_not_deployed(env):
    env["deps"].retrain = FakeTrainer(promoted=False, version="3")
    env["stream"].put([verdict(i, "unknown") for i in range(10)])
    result = run_cycle(env["deps"], at=T0)
    assert result.response.retrained and not result.response.deployed
    assert env["deployed"] == []
    assert "no-deploy" in [a["action"] for a in result.response.actions]
    assert env["tags"]["run-3"]["monitoring.promoted"] == "false"


def test_alarm_staying_in_alarm_does_not_retrain_again(env):
    env["stream"].put([verdict(i, "unknown") for i in range(10)])
    run_cycle(env["deps"], at=T0)
    env["stream"].put([verdict(100 + i, "unknown") for i in range(10)])
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert {a.name: a.state for a in second.alarms}[UNKNOWN_ALARM] == "ALARM"
    assert len(env["trainer"].calls) == 1


def test_failed_retraining_is_reported_and_retried(env):
    env["deps"].retrain = failing = FakeTrainer(fail=True)
    env["stream"].put([verdict(i, "unknown") for i in range(10)])
    first = run_cycle(env["deps"], at=T0)
    assert not first.ok and "training data not reachable" in first.errors[0]
    assert env["deployed"] == []
    env["stream"].put([verdict(100 + i, "unknown") for i in range(10)])
    run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert len(failing.calls) == 2


def test_false_edible_alarm_from_late_labels(env):
    # Verdicts first, labels one cycle later: the pair counts when the label arrives.
    env["stream"].put([verdict(i, "edible", 0.2) for i in range(10)])
    first = run_cycle(env["deps"], at=T0)
    assert first.metrics.labelled == 0 and first.metrics.false_edible_rate is None
    env["objects"].put_labels("labels/late.jsonl", [label_line(i, "p") for i in range(10)])
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert second.metrics.labelled == 10 and second.metrics.false_edible_rate == 1.0
    assert {a.name: a.state for a in second.alarms}[FALSE_EDIBLE_ALARM] == "ALARM"
    assert env["trainer"].calls[0]["reason"] == f"alarm:{FALSE_EDIBLE_ALARM}"


def test_service_mode_reads_states_and_acts_on_transitions(env):
    env["deps"].evaluation_mode = "service"
    cw = env["cloudwatch"]
    cw.alarms[UNKNOWN_ALARM]["StateValue"] = "OK"
    healthy(env["stream"])
    run_cycle(env["deps"], at=T0)
    assert cw.state_changes == []  # the service owns the state
    cw.alarms[UNKNOWN_ALARM]["StateValue"] = "ALARM"
    result = run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert result.response.retrained and env["deployed"] == ["2"]


def test_missing_alarm_is_an_error(env):
    del env["cloudwatch"].alarms[FALSE_EDIBLE_ALARM]
    result = run_cycle(env["deps"], at=T0)
    assert any(FALSE_EDIBLE_ALARM in e for e in result.errors)


def test_failed_deployment_is_reported_as_such_and_retried(env):
    def broken_deploy(version):
        raise RuntimeError("Lambda zip does not exist")

    env["deps"].deploy = broken_deploy
    env["stream"].put([verdict(i, "unknown") for i in range(10)])
    first = run_cycle(env["deps"], at=T0)
    assert first.response.promoted and not first.response.deployed
    assert first.errors == [
        f"deploying version 2 after alarm:{UNKNOWN_ALARM} failed: Lambda zip does not exist"
    ]
    assert [a["action"] for a in first.response.actions][-1] == "deploy-failed"
    env["stream"].put([verdict(100 + i, "unknown") for i in range(10)])
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert len(env["trainer"].calls) == 2 and second.response.retrained


def test_default_deploy_rolls_out_the_champion_and_checks_its_version(monkeypatch, tmp_path):
    import orchestration.rollout
    from config.settings import Settings
    from deployment.rollout import RolloutResult, Served
    from orchestration.monitor import default_deploy

    calls = []

    def connect(local_dir):
        calls.append(("connect", local_dir))
        return "stack"

    def roll_out_model(stack, model_version=None):
        calls.append(("roll_out_model", stack, model_version))
        return RolloutResult(Served("4", "s3://m/mushroom-classifier/2/", "2", "r", "3"), True, "")

    monkeypatch.setattr(orchestration.rollout, "connect", connect)
    monkeypatch.setattr(orchestration.rollout, "roll_out_model", roll_out_model)
    settings = Settings.from_env({"MUSHROOM_LOCAL_DIR": str(tmp_path)})
    default_deploy("2", settings)
    assert calls == [("connect", tmp_path), ("roll_out_model", "stack", None)]
    with pytest.raises(RuntimeError, match="served model version 2 instead of 3"):
        default_deploy("3", settings)


def test_an_alarm_already_in_alarm_but_never_seen_is_acted_on():
    from monitoring.respond import AlarmStatus

    def status(state, previous, seen):
        return AlarmStatus("a", state, previous, seen, reason="")

    # First cycle against a service that evaluated the alarm before this monitor ever looked.
    assert status("ALARM", "ALARM", None).fired
    assert status("ALARM", "OK", None).fired
    assert status("ALARM", "OK", "OK").fired
    # Already handled when it went to ALARM: not again.
    assert not status("ALARM", "ALARM", "ALARM").fired
    assert not status("OK", "ALARM", "ALARM").fired
    assert not status("INSUFFICIENT_DATA", "OK", None).fired


def test_refused_retraining_is_tried_again_once_more_labels_arrive(env):
    stream, objects = env["stream"], env["objects"]
    env["deps"].retrain = refusing = FakeTrainer(promoted=False, version="3")
    stream.put([verdict(i, "unknown") for i in range(10)])
    objects.put_labels("labels/a.jsonl", [label_line(i, "p") for i in range(10)])
    first = run_cycle(env["deps"], at=T0)
    assert first.response.retrained and not first.response.promoted
    assert env["store"].document["refused_with_labels"] == 10

    # Still in ALARM, no new labels: the same data would give the same refused model.
    stream.put([verdict(100 + i, "unknown") for i in range(10)])
    run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert len(refusing.calls) == 1

    # New labels: retrain again, without a second alert; this model passes and is deployed.
    env["deps"].retrain = passing = FakeTrainer(promoted=True, version="4")
    stream.put([verdict(200 + i, "unknown") for i in range(10)])
    objects.put_labels("labels/b.jsonl", [label_line(200 + i, "p") for i in range(10)])
    third = run_cycle(env["deps"], at=T0 + timedelta(minutes=2))
    assert [a["action"] for a in third.response.actions][0] == "retry"
    assert len(passing.calls[0]["extra_records"]) == 20
    assert env["deployed"] == ["4"]
    alerts = [subject for subject, _ in env["notes"] if subject.startswith("ALARM")]
    assert len(alerts) == 1, "a retry is not a new alert"
    assert env["store"].document["refused_with_labels"] is None


def test_no_retraining_without_new_labelled_records_since_the_champion(env):
    stream, objects = env["stream"], env["objects"]
    seen: list[int] = []

    def no_new_data(records):
        seen.append(0 if records is None else len(records))
        return "no new labelled records since champion v1 was trained" if seen[-1] < 20 else None

    env["deps"].no_new_data = no_new_data
    stream.put([verdict(i, "unknown") for i in range(10)])
    objects.put_labels("labels/a.jsonl", [label_line(i, "p") for i in range(10)])
    first = run_cycle(env["deps"], at=T0, window="fired")
    assert {a.name: a.state for a in first.alarms}[UNKNOWN_ALARM] == "ALARM"
    assert first.ok, first.errors
    assert env["trainer"].calls == [] and env["deployed"] == []
    assert not first.response.retrained and first.response.skipped
    assert [a["action"] for a in first.response.actions] == ["notify", "no-retrain"]
    assert "no new labelled records since champion v1" in first.response.actions[1]["detail"]
    assert json.loads(env["notes"][0][1])["action"].startswith("not retraining: no new labelled")
    assert first.timeline_entry["retrained"] is False and first.timeline_entry["deployed"] is False
    assert "action no-retrain: alarm:" in describe(first)

    # Still in ALARM, new labels: retried (no second alert), now with something new to learn.
    stream.put([verdict(100 + i, "unknown") for i in range(10)])
    objects.put_labels("labels/b.jsonl", [label_line(100 + i, "p") for i in range(10)])
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert [a["action"] for a in second.response.actions][:2] == ["retry", "retrain"]
    assert len(env["trainer"].calls) == 1 and env["deployed"] == ["2"]
    assert seen == [10, 20]
    assert len(alerts(env)) == 1


def test_when_new_labels_cannot_be_checked_nothing_is_retrained_and_the_next_cycle_retries(env):
    def broken(records):
        raise RuntimeError("MLflow unreachable")

    env["deps"].no_new_data = broken
    alarm_window(env)
    first = run_cycle(env["deps"], at=T0)
    assert not first.ok and "MLflow unreachable" in first.errors[0]
    assert env["trainer"].calls == [] and env["deployed"] == []
    env["deps"].no_new_data = lambda records: None
    env["stream"].put([verdict(100 + i, "unknown") for i in range(10)])
    run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert len(env["trainer"].calls) == 1 and env["deployed"] == ["2"]


# --- one cycle at a time, idempotent publishing ----------------------------------------------


def alarm_window(env, n=10):
    """n unknown verdicts: the unknown-rate alarm fires, retraining is promoted and deployed."""
    env["stream"].put([verdict(i, "unknown") for i in range(n)])


def alerts(env):
    return [subject for subject, _ in env["notes"] if subject.startswith("ALARM")]


def kill_once(obj, name, before=False):
    """Make ``obj.name`` kill the process once (after doing its work, unless ``before``)."""
    original = getattr(obj, name)
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1 and before:
            raise Killed(name)
        result = original(*args, **kwargs)
        if calls["n"] == 1:
            raise Killed(name)
        return result

    setattr(obj, name, dying)


def kill_at(env, point):
    deps, cw, objects = env["deps"], env["cloudwatch"], env["objects"]
    if point == "after read (labels)":
        kill_once(objects, "list_keys", before=True)
    elif point == "after publish":
        kill_once(cw, "put_metric_data")
    elif point == "at the alarm check":
        kill_once(cw, "describe_alarms", before=True)
    elif point == "after notify":
        kill_once(deps, "notify")
    elif point == "after retrain":
        kill_once(deps, "retrain")
    elif point == "after deploy":
        kill_once(deps, "deploy")
    elif point == "after report":
        kill_once(objects, "put")  # the S3 report is written, the timeline object is not
    elif point == "before checkpoint":
        store = env["store"]
        original = store.save

        def save(document, expected):
            if document["pending_window"] is None and not getattr(save, "done", False):
                save.done = True
                raise Killed("final save")
            return original(document, expected)

        store.save = save


CRASH_POINTS = [
    "after read (labels)",
    "after publish",
    "at the alarm check",
    "after notify",
    "after retrain",
    "after deploy",
    "after report",
    "before checkpoint",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_rerun_after_a_crash_publishes_and_responds_once(env, point):
    alarm_window(env)
    kill_at(env, point)
    with pytest.raises(Killed):
        run_cycle(env["deps"], at=T0, window="w1")
    rerun = run_cycle(env["deps"], at=T0 + timedelta(seconds=30), window="w1-rerun")
    # Whatever the crash point, one more cycle leaves nothing pending and reads nothing twice.
    after = run_cycle(env["deps"], at=T0 + timedelta(minutes=1))

    cw = env["cloudwatch"]
    assert sum(cw.values("Records")) == 10, cw.values("Records")
    assert after.metrics.records == 0
    state = env["store"].document
    assert state["pending_window"] is None
    assert state["streams"]["mushroom-verdicts"] == {"shard-0": "9"}
    assert len(alerts(env)) == 1
    # Killed between the alert and the retraining: the response runs at most once, and the
    # re-run says so.
    assert len(env["trainer"].calls) == (0 if point == "after notify" else 1)
    if point in ("after notify", "after retrain", "after deploy"):
        assert rerun.window == "w1" and "interrupted and is not repeated" in rerun.errors[0]
    elif point == "after read (labels)":
        assert rerun.window == "w1-rerun" and rerun.metrics.records == 10
    else:
        assert rerun.window == "w1"  # the pending window was finished, not a new one
    if point not in ("after notify", "after retrain", "after deploy"):
        assert env["deployed"] == ["2"]


def test_a_failed_publish_is_published_once_by_the_next_cycle(env):
    alarm_window(env)
    cw = env["cloudwatch"]
    original = cw.put_metric_data

    def rejected(namespace, data):
        raise RuntimeError("Throttling: Rate exceeded")

    cw.put_metric_data = rejected
    with pytest.raises(PublishFailed, match="publishing window w1 to CloudWatch failed"):
        run_cycle(env["deps"], at=T0, window="w1")
    assert env["store"].document["pending_window"]["step"] == "publish-failed"
    cw.put_metric_data = original
    rerun = run_cycle(env["deps"], at=T0 + timedelta(seconds=30))
    assert rerun.window == "w1" and rerun.published == len(cw.data)
    assert sum(cw.values("Records")) == 10 and len(env["trainer"].calls) == 1


def test_a_lost_update_is_detected_not_silent(env, tmp_path):
    """Cycle A reads the state, cycle B runs a whole cycle, then A tries to save."""
    healthy(env["stream"], n=10)
    other = dataclasses.replace(env["deps"])
    stream = env["stream"]
    original = stream.read

    def read_then_let_b_run(checkpoint, max_records=100_000):
        stream.read = original
        run_cycle(other, at=T0, window="b")
        return original(checkpoint, max_records)

    stream.read = read_then_let_b_run
    with pytest.raises(StateConflict):
        run_cycle(env["deps"], at=T0, window="a")
    # A published nothing: the conflict is found when it records its window, before publishing.
    assert sum(env["cloudwatch"].values("Records")) == 10
    assert env["store"].document["cycles"] == 1


def test_a_verdict_counted_in_an_earlier_window_is_not_counted_again(env):
    healthy(env["stream"], n=10)
    run_cycle(env["deps"], at=T0)
    # A retried Lambda batch re-emits two verdicts one window later, with one new one.
    env["stream"].put([verdict(3, "edible", 0.1), verdict(4, "poisonous", 0.1)])
    healthy(env["stream"], start=10, n=1)
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert second.metrics.records == 1 and second.counted_before == 2
    assert "2 counted in an earlier window" in describe(second)
    assert sum(env["cloudwatch"].values("Records")) == 11


def test_a_cycle_refused_by_the_lease_publishes_and_writes_nothing(env):
    from monitoring.cycle import run_exclusive
    from monitoring.lease import CycleLease, LeaseHeld

    healthy(env["stream"])
    leases = FakeStore()
    holder = CycleLease(leases, timedelta(minutes=15), holder="host-a:1:abc")
    holder.acquire()
    env["deps"].lease = CycleLease(leases, timedelta(minutes=15), holder="host-b:2:def")
    with pytest.raises(LeaseHeld, match="host-a:1:abc holds the lease"):
        run_exclusive(env["deps"], at=T0)
    assert env["cloudwatch"].data == [] and env["store"].document is None
    holder.release()
    assert run_exclusive(env["deps"], at=T0).metrics.records == 20
    assert leases.document is None  # released after the cycle


def test_make_monitor_exits_3_with_who_holds_the_lease(env, monkeypatch, capsys):
    import orchestration.monitor as monitor
    from monitoring.lease import CycleLease

    leases = FakeStore()
    CycleLease(leases, timedelta(minutes=15), holder="host-a:1:abc").acquire()
    env["deps"].lease = CycleLease(leases, timedelta(minutes=15))
    monkeypatch.setattr(monitor, "build_deps", lambda: env["deps"])
    assert monitor.main([]) == 3
    err = capsys.readouterr().err
    assert "host-a:1:abc holds the lease" in err and "until" in err
    assert env["store"].document is None


# Hostile inputs: each is counted, reported and skipped; none stops the cycle.
NESTING_BOMB = b'{"a":' * 2000 + b"1" + b"}" * 2000
HUGE_INTEGER = b'{"mushroom_id": "obs-huge", "cap_diameter": ' + b"9" * 5000 + b"}"
HOSTILE_OBSERVATIONS = [NESTING_BOMB, b'{"mushroom_id": "\xff\xfe"}', HUGE_INTEGER]
HOSTILE_VERDICTS = [
    b"not json",
    NESTING_BOMB,
    b"\xff\xfe\x00",
    b'{"p_poisonous": ' + b"9" * 5000 + b"}",
    b"[1, 2]",
]


def hostile_verdict_dicts():
    return [
        {**verdict(900, "edible"), "p_poisonous": "0.1"},
        {**verdict(901, "edible"), "p_poisonous": 10**400},
        {**verdict(902, "edible"), "model_version": ["1"]},
        {**verdict(903, "edible"), "mushroom_id": {"id": 1}},
        {**verdict(904, "edible"), "verdict": "tasty"},
        {**verdict(905, "edible"), "status": None},
    ]


def hostile_label_object():
    # Two valid lines, labelled as the healthy window scored them (1 edible, 2 poisonous).
    valid = "\n".join(json.dumps(label_line(i, label)) for i, label in ((1, "e"), (2, "p")))
    return b"\n".join(
        [
            valid.encode(),
            b'{"mushroom_id": "obs-00090", "label": "p", "cap_shape": "\xff"}',  # not UTF-8
            b"[" * 100_000 + b"]" * 100_000,
            b'{"mushroom_id": "obs-00091", "label": "p", "species_id": ' + b"7" * 5000 + b"}",
        ]
    )


def test_hostile_records_and_labels_are_counted_and_never_stop_a_cycle(env, tmp_path):
    observations = FakeStream("mushroom-observations")
    env["deps"].observations = observations
    observations.put([{"mushroom_id": "obs-00001", **OBSERVATION}])
    observations.put_raw(HOSTILE_OBSERVATIONS)
    healthy(env["stream"], n=10)
    env["stream"].put_raw(HOSTILE_VERDICTS)
    env["stream"].put(hostile_verdict_dicts())
    objects = env["objects"]
    objects.objects["labels/a-hostile.jsonl"] = hostile_label_object()
    objects.objects["labels/b-utf16.jsonl"] = json.dumps(label_line(3, "p")).encode("utf-16")

    result = run_cycle(env["deps"], at=T0, window="w1")

    assert result.ok, result.errors
    inputs = result.inputs
    assert inputs.observations.count == 3 and inputs.verdicts.count == 11
    assert inputs.labels.count == 4  # 3 lines + the UTF-16 object
    assert any("RecursionError" in r for r in inputs.observations.reasons)
    assert result.metrics.records == 10 and result.labels_read == 2
    assert result.metrics.labelled == 2  # the valid label lines joined their verdicts
    cw = env["cloudwatch"]
    assert cw.values("InvalidObservations") == [3.0]
    assert cw.values("InvalidVerdicts") == [11.0]
    assert cw.values("InvalidLabels") == [4.0]
    summary = describe(result)
    assert "invalid: 3 observations, 11 verdicts, 4 label lines" in summary
    report = (env["tmp_path"] / "reports" / "w1.html").read_text()
    assert "Unusable input" in report and "RecursionError" in report
    document = env["store"].document
    assert document["label_keys"] == ["labels/a-hostile.jsonl", "labels/b-utf16.jsonl"]
    assert document["streams"]["mushroom-observations"] == {"shard-0": "3"}
    assert document["streams"]["mushroom-verdicts"] == {"shard-0": "20"}

    observations.put_raw([NESTING_BOMB])
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=1), window="w2")
    assert second.ok, second.errors
    assert second.inputs.observations.count == 1 and second.inputs.labels.count == 0
    assert cw.values("InvalidObservations") == [3.0, 1.0]


def test_a_checkpoint_gap_and_the_monitor_lag_are_published_and_reported(env):
    env["deps"].config = config(env["tmp_path"], max_records=8)
    healthy(env["stream"], n=10)
    first = run_cycle(env["deps"], at=T0, window="w1")
    assert first.inputs.gaps == [] and first.inputs.max_lag_ms == 2000  # 2 records left
    env["stream"].records = []  # recreated: 3 new verdicts so far, at positions 0..2
    healthy(env["stream"], start=100, n=3)

    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=1), window="w2")

    assert second.ok and second.metrics.records == 3
    cw = env["cloudwatch"]
    assert cw.values("CheckpointGaps") == [0.0, 1.0]
    assert cw.values("MonitorLagMs") == [2000.0, 0.0]
    assert "CHECKPOINT GAP: mushroom-verdicts shard-0: past the end" in describe(second)
    assert "checkpoint gap" in (env["tmp_path"] / "reports" / "w2.html").read_text()
    assert second.timeline_entry["inputs"]["gaps"][0]["checkpoint"] == "7"


def test_a_pending_window_keeps_its_input_report():
    """A re-run finishes a window from the state alone: the input report must survive it."""
    from monitoring.inputs import CheckpointGap, InputReport, Rejects

    report = InputReport(
        verdicts=Rejects(2, ["not valid JSON", "not an object"]),
        observations=Rejects(1, ["nesting"]),
        labels=None,
        gaps=[CheckpointGap("mushroom-verdicts", "shard-0", "7", "past the end")],
        lag_ms={"mushroom-verdicts": 1500, "mushroom-observations": None},
    )
    restored = InputReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert restored == report
    assert restored.metric_values() == report.metric_values()


class FakeWorkspace:
    """The dashboard port: keeps the runs it is given, or fails like a full disk."""

    def __init__(self, fail: bool = False):
        self.runs: list = []
        self.fail = fail

    def add_window(self, run) -> str:
        if self.fail:
            raise OSError("No space left on device")
        self.runs.append(run)
        return f"runs/{run.window}.json"


def alarm_then_recovery(env):
    """phase1 healthy, phase2 unknown -> ALARM -> retrain -> deploy v2, phase3 healthy on v2."""
    stream, objects = env["stream"], env["objects"]
    healthy(stream)
    run_cycle(env["deps"], at=T0, window="phase1")
    stream.put([verdict(100 + i, "unknown", 0.4) for i in range(20)])
    objects.put_labels("labels/batch-2.jsonl", [label_line(100 + i, "p") for i in range(20)])
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=1), window="phase2")
    healthy(stream, start=200, version="2")
    run_cycle(env["deps"], at=T0 + timedelta(minutes=2), window="phase3")
    return second


def test_each_window_adds_one_dashboard_run_tagged_with_window_and_model(env):
    env["deps"].workspace = workspace = FakeWorkspace()
    alarm_then_recovery(env)
    assert [r.window for r in workspace.runs] == ["phase1", "phase2", "phase3"]
    assert [r.at for r in workspace.runs] == [T0 + timedelta(minutes=m) for m in range(3)]
    assert workspace.runs[2].tags == ["window=phase3", "model_version=2"]
    phase2 = workspace.runs[1].figures
    assert phase2["UnknownRate"] == 1.0 and phase2["Records"] == 20.0
    assert phase2["DecisionAccuracy"] == 1.0 and phase2["ModelVersion"] == 1.0
    assert workspace.runs[1].thresholds == {
        "UnknownRate": (UNKNOWN_ALARM, 0.2),
        "FalseEdibleRate": (FALSE_EDIBLE_ALARM, 0.01),
    }
    timeline = (env["tmp_path"] / "reports" / "timeline.jsonl").read_text().splitlines()
    assert json.loads(timeline[0])["dashboard_run"] == "runs/phase1.json"


def test_a_failing_dashboard_write_is_logged_and_never_stops_the_cycle(env, caplog):
    env["deps"].workspace = FakeWorkspace(fail=True)
    healthy(env["stream"])
    result = run_cycle(env["deps"], at=T0, window="w1")
    assert result.ok and result.report_path.is_file()
    assert "No space left on device" in result.timeline_entry["dashboard_error"]
    assert "adding window w1 to the dashboard workspace failed" in caplog.text
    assert "WARNING: dashboard workspace not updated" in describe(result)
    assert env["store"].document["pending_window"] is None  # the window was finished


def test_every_cycle_redraws_the_index_with_thresholds_transitions_and_deploys(env):
    alarm_then_recovery(env)
    index = (env["tmp_path"] / "reports" / "index.html").read_text()
    assert f"{UNKNOWN_ALARM}: OK -&gt; ALARM" in index
    assert f"{UNKNOWN_ALARM}: ALARM -&gt; OK" in index
    assert "deployed model version 2" in index
    assert "UnknownRate 0.2" in index  # the threshold legend
    assert index.count("<a href='phase") == 3
    assert index.count("<svg") == 6 and "deployed v2" in index


def test_summary_prints_counts_as_integers_the_clock_and_each_action_once_in_order(env):
    env["deps"].clock_label = "simulated clock"
    second = alarm_then_recovery(env)
    text = describe(second)
    assert "Records=20," in text and "Records=20.0" not in text
    assert f"at {(T0 + timedelta(minutes=1)).isoformat()} (simulated clock)" in text
    assert "unknown means 'do not eat'" in text.lower()
    lines = text.splitlines()
    alarm = lines.index(next(x for x in lines if x.startswith(f"alarm {UNKNOWN_ALARM}")))
    deploy = [i for i, x in enumerate(lines) if x.startswith("action deploy")]
    assert len(deploy) == 1 and deploy[0] > alarm
    report = (env["tmp_path"] / "reports" / "phase2.html").read_text()
    assert "<td>Records</td><td>20</td>" in report and "(simulated clock)" in report


def test_drift_is_computed_on_at_most_drift_max_rows(env, monkeypatch):
    import pandas as pd

    from monitoring import cycle
    from monitoring.drift import DriftResult
    from tests.examples import example_observation

    calls = []

    def fake_drift(reference, current, max_rows=None):
        calls.append((len(current), max_rows))
        return DriftResult(share=0.0, rows=min(len(current), max_rows), window_rows=len(current))

    monkeypatch.setattr(cycle, "compute_drift", fake_drift)
    observations = FakeStream("mushroom-observations")
    observations.put([{**example_observation(), "mushroom_id": f"o-{i}"} for i in range(60)])
    deps = env["deps"]
    deps.observations = observations
    deps.reference = lambda: pd.DataFrame([example_observation()])
    deps.config = dataclasses.replace(deps.config, drift_max_rows=25)
    healthy(env["stream"])
    result = run_cycle(deps, at=T0)
    assert result.ok, result.errors
    assert calls == [(60, 25)]
    assert (result.drift.rows, result.drift.window_rows) == (25, 60)


def test_an_empty_window_says_no_model_version_not_none(env):
    result = run_cycle(env["deps"], at=T0, window="empty")
    text = describe(result)
    assert "model version None" not in text
    assert "no model version (no scored verdicts in the window)" in text
    page = (env["tmp_path"] / "reports" / "index.html").read_text()
    assert "None" not in page
