"""A whole monitoring cycle reading the archive by SQL (DuckDB over a local folder): metrics,
late labels, alarms, retraining, and a small state."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from monitoring.cycle import run_cycle
from monitoring.duckdb_engine import DuckDBEngine
from monitoring.labels import LabelBatch
from monitoring.outputs import describe
from tests.fakes.monitoring import (
    FALSE_EDIBLE_ALARM,
    FolderObjects,
    archive_deps,
    archive_object,
    label_line,
    scored_at,
    verdict,
)

T0 = datetime(2026, 11, 27, 12, 0, 5, tzinfo=timezone.utc)


@pytest.fixture
def env(tmp_path):
    deps = archive_deps(tmp_path)
    return dict(
        deps=deps,
        objects=deps.objects,
        store=deps.state_store,
        cw=deps.cloudwatch,
        trainer=deps.retrain,
    )


def put_verdicts(objects, at, calls, prefix="obs", name="part"):
    rows = []
    for i, call in enumerate(calls):
        row = verdict(i, call, p=0.2 if call == "edible" else 0.9, prefix=prefix)
        row["scored_at"] = scored_at(at)
        rows.append(row)
    archive_object(objects, "verdicts", at, name, rows)


def published(cw, name):
    return [d["Value"] for d in cw.data if d["MetricName"] == name and "Dimensions" not in d]


def test_archive_cycle_counts_verdicts_joins_late_labels_and_alarms(env):
    objects = env["objects"]
    put_verdicts(objects, T0 - timedelta(seconds=3), ["edible"] * 20)
    # A retried batch: the same records again, a little later; counted once.
    put_verdicts(objects, T0 - timedelta(seconds=2), ["edible"] * 20, name="retry")
    first = run_cycle(env["deps"], at=T0)
    assert first.metrics.records == 20 and first.metrics.duplicates == 20
    assert first.metrics.false_edible_rate is None
    assert published(env["cw"], "Records") == [20.0]
    assert "metrics by SQL (duckdb" in describe(first)
    # Both objects are in the partitions the window's counts read, and the summary says so.
    assert first.archive["verdict_objects"] == 2
    assert "over the archive (2 verdict objects in the partitions read)" in describe(first)

    # Labels arrive a cycle later (new key scheme), with a legacy object too.
    objects.put_labels(
        "labels/received/2026-11-27T12-01-00.000000Z-lab.jsonl",
        [label_line(i, "p") for i in range(15)],
    )
    objects.put_labels("labels/old-batch.jsonl", [label_line(i, "p") for i in range(15, 20)])
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=2))
    assert second.metrics.records == 0  # nothing new scored
    assert second.metrics.labelled == 20 and second.metrics.false_edible_rate == 1.0
    assert published(env["cw"], "LabelsJoined") == [0.0, 20.0]
    assert {a.name: a.state for a in second.alarms}[FALSE_EDIBLE_ALARM] == "ALARM"
    assert env["trainer"].calls[0]["reason"] == f"alarm:{FALSE_EDIBLE_ALARM}"

    # Nothing is read twice; the state holds checkpoints, not records.
    third = run_cycle(env["deps"], at=T0 + timedelta(minutes=4))
    assert third.labels_read == 0 and third.metrics.labelled == 0
    state = env["store"].document
    assert state["pending_verdicts"] == {} and state["pending_labels"] == {}
    assert state["recent_sequence_numbers"] == []
    assert state["archive"]["labels_after"].endswith("-lab.jsonl")
    assert state["label_keys"] == ["labels/old-batch.jsonl"]
    assert len(json.dumps(state)) < 5_000


def test_bad_label_lines_and_unscored_labels_are_reported_not_fatal(env):
    objects = env["objects"]
    put_verdicts(objects, T0 - timedelta(seconds=1), ["poisonous"] * 12)
    body = b"\n".join(
        [json.dumps(label_line(i, "p")).encode() for i in range(12)]
        + [b"{not json", json.dumps(label_line(99, "p", prefix="ghost")).encode()]
    )
    objects.put("labels/received/2026-11-27T12-00-00.000000Z-a.jsonl", body, "application/jsonl")
    # A later object in the same cycle answers obs-00003 the other way: a conflict.
    objects.put_labels("labels/received/2026-11-27T12-00-01.000000Z-b.jsonl", [label_line(3, "e")])
    result = run_cycle(env["deps"], at=T0)
    assert result.ok
    assert result.inputs.labels.count == 1  # the bad line; a conflict is not an invalid line
    assert published(env["cw"], "ConflictingLabels") == [1.0]
    assert "conflicting labels: " in describe(result) and "obs-00003" in describe(result)
    assert result.metrics.labelled_poisonous == 11  # obs-00003 counts as edible, the later answer
    # Its verdict may still be in Firehose's buffer: the label waits (within the look-back).
    assert result.archive["labels"]["waiting"] == 1
    assert result.archive["labels"]["waiting_examples"] == ["ghost-00099"]
    assert published(env["cw"], "LabelsWaiting") == [1.0]
    assert published(env["cw"], "UnscoredLabels") == [0.0]
    assert result.metrics.labelled == 12 and result.metrics.false_edible == 0
    assert result.metrics.false_poisonous_rate == 1.0  # edible obs-00003 was called poisonous


def test_archive_settings_and_wiring(moto_aws, monkeypatch, tmp_path):
    """The archive is the source when asked for; the engine is checked; build_deps wires
    DuckDB over the data bucket (or Athena with its workgroup and database)."""
    from config.settings import MonitoringConfig, Settings
    from monitoring.athena import AthenaEngine
    from orchestration.monitor import archive_reader

    base = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "LOCAL_DIR": str(tmp_path)}
    settings = Settings.from_env(base)
    assert MonitoringConfig.from_env(settings, base).source == "streams"  # no archive deployed
    assert MonitoringConfig.from_env(settings, base).archive_grace_seconds == 0
    stack = {**base, "MONITORING_SOURCE": "archive"}
    assert MonitoringConfig.from_env(settings, stack).source == "archive"
    # A deployed stack with an archive (make deploy writes its outputs to stack.env): the
    # archive by default, streams only when asked for.
    deployed = {**base, "AWS_TARGET": "moto", "ARCHIVE_VERDICTS_PREFIX": "archive/verdicts/"}
    assert MonitoringConfig.from_env(settings, deployed).source == "archive"
    assert MonitoringConfig.from_env(settings, deployed).archive_grace_seconds == 20
    pinned = {**deployed, "MONITORING_SOURCE": "streams"}
    assert MonitoringConfig.from_env(settings, pinned).source == "streams"
    assert (
        MonitoringConfig.from_env(settings, {**stack, "AWS_TARGET": "aws"}).archive_grace_seconds
        == 960
    )
    with pytest.raises(ValueError, match="MONITORING_QUERY_ENGINE"):
        MonitoringConfig.from_env(settings, {**stack, "MONITORING_QUERY_ENGINE": "sqlite"})
    with pytest.raises(ValueError, match="MONITORING_SOURCE"):
        MonitoringConfig.from_env(settings, {**stack, "MONITORING_SOURCE": "kafka"})

    full = Settings.from_env(stack)
    reader = archive_reader(full, FolderObjects(tmp_path))
    assert (
        isinstance(reader.engine, DuckDBEngine)
        and reader.engine.root == f"s3://{full.data_bucket}/"
    )
    assert reader.look_back == timedelta(days=30)
    athena_env = {**stack, "MONITORING_QUERY_ENGINE": "athena"}
    with pytest.raises(ValueError, match="ATHENA_WORKGROUP"):
        archive_reader(Settings.from_env(athena_env), FolderObjects(tmp_path))
    athena_env |= {"ATHENA_WORKGROUP": "wg", "ARCHIVE_DATABASE": "db"}
    reader = archive_reader(Settings.from_env(athena_env), FolderObjects(tmp_path))
    assert isinstance(reader.engine, AthenaEngine) and reader.engine.database == "db"


def test_producer_label_keys_sort_by_arrival():
    from producer import label_key

    first = label_key("lab", datetime(2026, 11, 27, 9, 59, 59, 999999, tzinfo=timezone.utc))
    second = label_key("batch", datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    assert first.startswith("labels/received/") and first.endswith("-lab.jsonl")
    assert first < second


def test_drift_reads_a_bounded_sample_of_archived_observations(env, tmp_path):
    from dataclasses import replace

    from monitoring.drift import DriftReference, features_frame
    from tests.fakes.monitoring import OBSERVATION

    objects = env["objects"]
    rows = [{"mushroom_id": f"obs-{i:05d}", **OBSERVATION} for i in range(80)]
    hostile = [
        b"{not json",
        json.dumps({"mushroom_id": "bad", **OBSERVATION, "cap_shape": "zz"}).encode(),
    ]
    archive_object(objects, "observations", T0 - timedelta(seconds=5), "obs", [*rows, *hostile])
    reference = DriftReference(features_frame([OBSERVATION] * 50), "training data", "1", "abc")
    deps = env["deps"]
    deps.reference = lambda: reference
    deps.config = replace(deps.config, drift_max_rows=100)
    result = run_cycle(deps, at=T0)
    assert result.drift is not None and result.drift.rows == 80
    assert result.inputs.observations.count == 2  # both hostile lines were in the sample
    assert "unknown code 'zz'" in " ".join(result.inputs.observations.reasons)
    # The sample is bounded by SQL: 30 rows asked, 30 rows read.
    read = deps.archive.read("w2", T0, T0 - timedelta(minutes=5), LabelBatch(), drift_rows=30)
    assert len(read.observations) == 30


def test_a_drift_reference_that_fails_is_reported_and_the_cycle_goes_on(env):
    from tests.fakes.monitoring import OBSERVATION

    rows = [{"mushroom_id": f"obs-{i:05d}", **OBSERVATION} for i in range(80)]
    archive_object(env["objects"], "observations", T0 - timedelta(seconds=5), "obs", rows)
    put_verdicts(env["objects"], T0 - timedelta(seconds=3), ["edible"] * 30)

    def broken_reference():
        raise OSError("reference.parquet: no such file")

    env["deps"].reference = broken_reference
    result = run_cycle(env["deps"], at=T0)
    assert result.drift is None
    assert result.errors == ["drift: reference.parquet: no such file"]
    assert result.metrics.records == 30 and result.published


def test_a_later_window_of_the_same_hour_neither_samples_nor_counts_earlier_observations(env):
    """Observations carry no time of their own: each belongs to the window its object was
    written in, so a second cycle within the hour does not count the first one's invalid
    observations again (it used to: every window sampled the whole hour)."""
    from dataclasses import replace

    from monitoring.drift import DriftReference, features_frame
    from tests.fakes.monitoring import OBSERVATION

    objects = env["objects"]
    first = [{"mushroom_id": f"a-{i:03d}", **OBSERVATION} for i in range(20)]
    bad = json.dumps({"mushroom_id": "bad", **OBSERVATION, "cap_shape": "zz"}).encode()
    archive_object(objects, "observations", T0 - timedelta(seconds=5), "obs", [*first, bad])
    reference = DriftReference(features_frame([OBSERVATION] * 50), "training data", "1", "abc")
    deps = env["deps"]
    deps.reference = lambda: reference
    deps.config = replace(deps.config, drift_max_rows=1000, drift_min_rows=5)
    result = run_cycle(deps, at=T0)
    assert result.drift is not None and result.drift.rows == 20
    assert result.inputs.observations.count == 1

    later = T0 + timedelta(minutes=5)  # the same arrival hour
    second = [{"mushroom_id": f"b-{i:03d}", **OBSERVATION} for i in range(7)]
    archive_object(objects, "observations", later - timedelta(seconds=5), "obs", second)
    result = run_cycle(deps, at=later)
    assert result.drift is not None and result.drift.rows == 7
    assert result.inputs.observations.count == 0


def test_an_unavailable_archive_fails_the_cycle_clearly_and_loses_nothing(env):
    from monitoring.cycle import ArchiveUnavailable
    from monitoring.query import QueryError

    put_verdicts(env["objects"], T0 - timedelta(seconds=1), ["edible"] * 12)
    env["objects"].put_labels(
        "labels/received/2026-11-27T12-00-00.000000Z-a.jsonl", [label_line(1, "p")]
    )

    class Down:
        name = "duckdb"

        def query(self, text):
            raise QueryError("DuckDB: IO Error: connection refused")

    working = env["deps"].archive.engine
    env["deps"].archive.engine = Down()
    with pytest.raises(ArchiveUnavailable, match="connection refused"):
        run_cycle(env["deps"], at=T0)
    assert env["store"].document is None  # nothing advanced, nothing recorded
    env["deps"].archive.engine = working
    result = run_cycle(env["deps"], at=T0)
    assert result.metrics.records == 12 and result.labels_read == 1


def test_objects_since_counts_the_partitions_of_that_hour_and_later(tmp_path):
    """The verdict objects a window's counts read: its look-from hour's partition and later
    ones (including a later day), none before."""
    from monitoring.archive import objects_since

    objects = FolderObjects(tmp_path)
    day = datetime(2026, 11, 27, tzinfo=timezone.utc)
    for arrived in (day + timedelta(hours=10), day + timedelta(hours=11, minutes=59)):
        archive_object(objects, "verdicts", arrived, "part", [verdict(1, "edible")])
    archive_object(objects, "verdicts", day + timedelta(days=1, hours=2), "next", [])
    archive_object(objects, "observations", day + timedelta(hours=11), "obs", [])
    assert objects_since(objects, "verdicts", day + timedelta(hours=11, minutes=30)) == 2
    assert objects_since(objects, "verdicts", day) == 3
    assert objects_since(objects, "verdicts", day + timedelta(days=2)) == 0


def test_a_multi_line_observation_never_hides_its_objects_good_lines(env):
    """An observation put pretty-printed (valid for the scorer) is archived as one line per
    line. The object's good observations still reach drift, each stray line is one invalid
    observation (not an invalid verdict), and a corrupt observations object is reported as
    an observations object."""
    from dataclasses import replace

    from monitoring.drift import DriftReference, features_frame
    from tests.fakes.monitoring import OBSERVATION

    objects = env["objects"]
    put_verdicts(objects, T0 - timedelta(seconds=3), ["edible"] * 12)
    rows = [{"mushroom_id": f"obs-{i:05d}", **OBSERVATION} for i in range(30)]
    pretty = json.dumps({"mushroom_id": "pretty", **OBSERVATION}, indent=2).encode()
    archive_object(
        objects, "observations", T0 - timedelta(seconds=5), "obs", [*rows[:10], pretty, *rows[10:]]
    )
    corrupt = archive_object(objects, "observations", T0 - timedelta(seconds=4), "bad", [])
    objects.put(corrupt, b"not gzip at all", "application/gzip")
    reference = DriftReference(features_frame([OBSERVATION] * 50), "training data", "1", "abc")
    deps = env["deps"]
    deps.reference = lambda: reference
    deps.config = replace(deps.config, drift_max_rows=100, drift_min_rows=5)
    result = run_cycle(deps, at=T0)
    assert result.ok, result.errors
    assert result.metrics.records == 12
    assert result.drift is not None and result.drift.rows == 30
    spread = pretty.count(b"\n") + 1
    assert result.inputs.verdicts.count == 0
    assert result.inputs.observations.count == spread + 1  # its lines, the corrupt object
    reasons = " ".join(result.inputs.observations.reasons)
    assert f"{spread} archived observation lines are not JSON objects" in reasons
    assert "archive object not readable" in reasons and corrupt.rsplit("/", 1)[1] in reasons
    assert len(result.archive["read_by_line"]) == 1
    assert "read line by line" in describe(result)


def test_a_label_before_its_verdict_waits_across_cycles_and_counts_once(env):
    """The cycle's own wiring of the waiting labels (its state remembers the last window's
    end): a label read before its verdict is archived waits, joins in the cycle whose window
    holds the verdict's scored_at, and is not counted again by the next cycle."""
    objects = env["objects"]
    objects.put_labels(
        "labels/received/2026-11-27T12-00-00.000000Z-lab.jsonl",
        [label_line(i, "p") for i in range(3)],
    )
    first = run_cycle(env["deps"], at=T0)
    assert first.archive["labels"]["waiting"] == 3 and first.metrics.labelled == 0
    assert published(env["cw"], "LabelsWaiting") == [3.0]

    # Their verdicts (poisonous mushrooms called edible) are scored after the first window.
    put_verdicts(objects, T0 + timedelta(seconds=30), ["edible"] * 3)
    second = run_cycle(env["deps"], at=T0 + timedelta(minutes=1))
    assert second.archive["labels"]["joined_late"] == 3 and second.metrics.labelled == 3
    assert second.metrics.false_edible == 3
    assert published(env["cw"], "LabelsJoinedLate") == [0.0, 3.0]
    assert published(env["cw"], "LabelsWaiting") == [3.0, 0.0]

    third = run_cycle(env["deps"], at=T0 + timedelta(minutes=2))
    assert third.metrics.labelled == 0 and third.archive["labels"]["joined"] == 0
