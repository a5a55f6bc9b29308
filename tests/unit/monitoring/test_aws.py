"""The boto3 adapters against moto (in-process, no network)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError

from config.settings import MonitoringConfig, Settings
from monitoring import alarms as alarm_eval
from monitoring.aws import (
    SHARD_END,
    CloudWatch,
    KinesisStreamReader,
    LocalJsonStore,
    S3JsonStore,
    S3Objects,
    Sns,
)
from monitoring.config import resolve_evaluation_mode
from monitoring.lease import CycleLease, LeaseHeld
from monitoring.publish import metric_data
from monitoring.state import StateConflict

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(moto_aws):
    """Every test here runs against moto in-process (tests/unit/conftest.py)."""


def put(client, stream, values, key="k"):
    for i in values:
        client.put_record(StreamName=stream, Data=json.dumps({"i": i}).encode(), PartitionKey=key)


def values(read):
    return [json.loads(d)["i"] for d in read.records]


def test_kinesis_reader_resumes_after_checkpoint():
    client = boto3.client("kinesis")
    client.create_stream(StreamName="mushroom-verdicts", ShardCount=2)
    for i in range(30):
        put(client, "mushroom-verdicts", [i], key=str(i))
    reader = KinesisStreamReader("mushroom-verdicts", client, page_limit=7)
    read = reader.read({})
    assert sorted(values(read)) == list(range(30))
    assert len(read.checkpoint) == 2 and read.gaps == [] and read.lag_ms == 0
    checkpoint = read.checkpoint
    again = reader.read(checkpoint)
    assert again.records == [] and again.gaps == [] and again.checkpoint == checkpoint
    put(client, "mushroom-verdicts", [30], key="x")
    assert values(reader.read(checkpoint)) == [30]
    # A cap leaves the rest for the next cycle instead of skipping it.
    first = reader.read({}, max_records=10)
    rest = reader.read(first.checkpoint)
    assert len(first.records) == 10 and len(first.records) + len(rest.records) == 31
    assert first.gaps == rest.gaps == []


def test_recreated_stream_checkpoint_past_the_end_is_a_gap_and_new_records_are_read():
    client = boto3.client("kinesis")
    client.create_stream(StreamName="mushroom-verdicts", ShardCount=1)
    put(client, "mushroom-verdicts", range(20))
    reader = KinesisStreamReader("mushroom-verdicts", client)
    checkpoint = reader.read({}).checkpoint
    client.delete_stream(StreamName="mushroom-verdicts")
    client.create_stream(StreamName="mushroom-verdicts", ShardCount=1)
    put(client, "mushroom-verdicts", [100, 101, 102])

    read = reader.read(checkpoint)

    assert values(read) == [100, 101, 102]
    (gap,) = read.gaps
    assert gap.shard_id == "shardId-000000000000" and gap.checkpoint == checkpoint[gap.shard_id]
    assert "not in the shard" in gap.describe()
    assert reader.read(read.checkpoint).gaps == []  # reported once, then read on as usual


def moto_shard(stream, shard_id="shardId-000000000000"):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.kinesis.models import kinesis_backends

    return kinesis_backends[DEFAULT_ACCOUNT_ID][REGION].streams[stream].shards[shard_id]


def test_checkpoint_older_than_the_trim_horizon_is_a_gap():
    client = boto3.client("kinesis")
    client.create_stream(StreamName="s", ShardCount=1)
    put(client, "s", range(10))
    reader = KinesisStreamReader("s", client)
    checkpoint = reader.read({}).checkpoint
    put(client, "s", range(10, 15))
    shard = moto_shard("s")
    for sequence in list(shard.records)[:12]:  # retention expired records 0-11
        del shard.records[sequence]

    read = reader.read(checkpoint)

    assert values(read) == [12, 13, 14]
    (gap,) = read.gaps
    assert "its record is gone; the oldest is" in gap.reason


def test_vanished_shard_is_a_gap_and_leaves_the_checkpoint():
    client = boto3.client("kinesis")
    client.create_stream(StreamName="s", ShardCount=1)
    put(client, "s", [1])
    reader = KinesisStreamReader("s", client)
    first = reader.read({})
    # A closed shard read to its end (SHARD_END) may expire: no gap.
    read = reader.read(
        {**first.checkpoint, "shardId-000000000009": "12", "shardId-000000000008": SHARD_END}
    )
    assert read.records == [] and read.checkpoint == first.checkpoint
    assert [(g.shard_id, g.reason) for g in read.gaps] == [
        ("shardId-000000000009", "the shard is no longer in the stream")
    ]
    # None of the checkpoint's shards left: a recreated stream, read from its oldest records.
    recreated = reader.read({"shardId-000000000009": "12"})
    assert values(recreated) == [1] and "recreated" in recreated.gaps[0].reason


class Faulty:
    """A Kinesis client that fails the way AWS can (moto does not), then behaves."""

    def __init__(self, client, refuse_checkpoint=False, expire_after_pages=None, lag=True):
        self.client = client
        self.refuse_checkpoint, self.expire_after_pages, self.lag = (
            refuse_checkpoint,
            expire_after_pages,
            lag,
        )
        self.pages = 0
        self.iterators: list[dict] = []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def get_shard_iterator(self, **kwargs):
        self.iterators.append(kwargs)
        if self.refuse_checkpoint and "StartingSequenceNumber" in kwargs:
            raise ClientError(
                {"Error": {"Code": "InvalidArgumentException", "Message": "not this stream"}},
                "GetShardIterator",
            )
        return self.client.get_shard_iterator(**kwargs)

    def get_records(self, **kwargs):
        self.pages += 1
        if self.pages == self.expire_after_pages:
            raise ClientError(
                {"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}}, "GetRecords"
            )
        page = self.client.get_records(**kwargs)
        if not self.lag:
            page.pop("MillisBehindLatest", None)
        return page


def test_refused_checkpoint_is_a_gap_and_the_shard_is_read_from_its_oldest_record():
    client = boto3.client("kinesis")
    client.create_stream(StreamName="s", ShardCount=1)
    put(client, "s", range(3))
    reader = KinesisStreamReader("s", Faulty(client, refuse_checkpoint=True))
    read = reader.read({"shardId-000000000000": "2"})
    assert values(read) == [0, 1, 2]
    (gap,) = read.gaps
    assert gap.reason == "Kinesis refused the checkpoint: InvalidArgumentException"


def test_expired_iterator_is_renewed_after_the_last_record_read():
    client = boto3.client("kinesis")
    client.create_stream(StreamName="s", ShardCount=1)
    put(client, "s", range(10))
    faulty = Faulty(client, expire_after_pages=3)
    read = KinesisStreamReader("s", faulty, page_limit=3).read({})
    assert values(read) == list(range(10)) and read.gaps == []
    renewed = faulty.iterators[-1]
    assert renewed["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    assert renewed["StartingSequenceNumber"] == str(6)  # moto numbers records from 1


def test_lag_is_reported_and_absent_lag_is_handled():
    client = boto3.client("kinesis")
    client.create_stream(StreamName="s", ShardCount=1)
    put(client, "s", range(5))
    assert KinesisStreamReader("s", client).read({}).lag_ms == 0
    records = list(moto_shard("s").records.values())
    records[0].created_at = records[-1].created_at - 7.5  # the first record is 7.5 s older
    assert KinesisStreamReader("s", client).read({}, max_records=1).lag_ms == 7500
    # Without the field: 0 once the tip is reached, unknown when the cap stopped the read.
    assert KinesisStreamReader("s", Faulty(client, lag=False)).read({}).lag_ms == 0
    capped = KinesisStreamReader("s", Faulty(client, lag=False)).read({}, max_records=2)
    assert len(capped.records) == 2 and capped.lag_ms is None


@pytest.fixture(params=["s3", "local"])
def versioned_store(request, tmp_path):
    """A state-store adapter of each kind: S3 (moto) and the local file."""

    def make(key: str = "monitoring/checkpoints.json"):
        if request.param == "s3":
            s3 = boto3.client("s3")
            if not s3.list_buckets()["Buckets"]:
                s3.create_bucket(Bucket="mushroom-local-data")
            return S3JsonStore("mushroom-local-data", key, s3)
        return LocalJsonStore(tmp_path / key)

    return make


def test_state_store_saves_with_compare_and_swap(versioned_store):
    store = versioned_store()
    assert store.load() == (None, None)
    first = store.save({"version": 1, "streams": {"a": {"s": "1"}}}, None)
    assert store.load() == ({"version": 1, "streams": {"a": {"s": "1"}}}, first)
    # A second creator loses: the document exists now.
    with pytest.raises(StateConflict, match="changed since it was read"):
        store.save({"version": 1, "cycles": 99}, None)
    second = store.save({"version": 1, "cycles": 1}, first)
    # A lost update: saving on top of the version read before someone else saved.
    with pytest.raises(StateConflict):
        store.save({"version": 1, "cycles": 2}, first)
    assert store.load() == ({"version": 1, "cycles": 1}, second)
    assert not store.delete(first)
    assert store.delete(second) and store.load() == (None, None)


def _lease(store, holder, now, ttl=timedelta(minutes=15)):
    return CycleLease(store, ttl, holder=holder, clock=lambda: now)


def test_lease_acquire_refuse_expire_takeover_release(versioned_store):
    store = versioned_store("monitoring/lease.json")
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    first = _lease(store, "host-a:1:aaa", t0)
    first.acquire()
    document, _ = store.load()
    assert document == {
        "holder": "host-a:1:aaa",
        "acquired_at": "2026-12-01T12:00:00+00:00",
        "expires_at": "2026-12-01T12:15:00+00:00",
    }
    with pytest.raises(LeaseHeld, match="host-a:1:aaa holds the lease .* until 2026-12-01T12:15"):
        _lease(store, "host-b:2:bbb", t0 + timedelta(minutes=14)).acquire()

    # The first cycle died: after the TTL its lease is taken over.
    taker = _lease(store, "host-c:3:ccc", t0 + timedelta(minutes=16))
    taker.acquire()
    assert store.load()[0]["holder"] == "host-c:3:ccc"
    first.release()  # late: no longer its lease, so it must not delete the taker's
    assert store.load()[0]["holder"] == "host-c:3:ccc"
    with pytest.raises(LeaseHeld, match="host-c:3:ccc"):
        _lease(store, "host-d:4:ddd", t0 + timedelta(minutes=17)).acquire()
    taker.release()
    assert store.load() == (None, None)
    with _lease(store, "host-d:4:ddd", t0 + timedelta(minutes=17)):
        assert store.load()[0]["holder"] == "host-d:4:ddd"
    assert store.load() == (None, None)


def test_two_takers_of_an_expired_lease_cannot_both_win(versioned_store):
    store = versioned_store("monitoring/lease.json")
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    _lease(store, "dead:1:x", t0).acquire()
    later = t0 + timedelta(hours=1)
    reads = [store.load()]  # what the second taker read, before the first one wrote

    class ReadBeforeTheOtherWrote:
        location = store.location

        def load(self):
            return reads.pop() if reads else store.load()

        def save(self, document, expected):
            return store.save(document, expected)

        def delete(self, expected):
            return store.delete(expected)

    _lease(store, "first:2:y", later).acquire()
    with pytest.raises(LeaseHeld, match="first:2:y"):
        _lease(ReadBeforeTheOtherWrote(), "second:3:z", later).acquire()
    assert store.load()[0]["holder"] == "first:2:y"


def test_a_lease_with_an_unreadable_expiry_is_not_taken(versioned_store):
    store = versioned_store("monitoring/lease.json")
    store.save({"holder": "someone", "expires_at": "soon"}, None)
    with pytest.raises(LeaseHeld, match="someone"):
        _lease(store, "me:1:x", datetime(2030, 1, 1, tzinfo=timezone.utc)).acquire()


def test_local_lease_one_winner_among_threads_starting_together(tmp_path):
    path = tmp_path / "lease.json"
    barrier = threading.Barrier(8)
    won, refused = [], []

    def start(i: int) -> None:
        lease = CycleLease(LocalJsonStore(path), timedelta(minutes=15), holder=f"t{i}")
        barrier.wait()
        try:
            lease.acquire()
            won.append(i)
        except LeaseHeld:
            refused.append(i)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(won) == 1 and len(refused) == 7


def test_s3_objects_list_read_put():
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="mushroom-local-data")
    objects = S3Objects("mushroom-local-data", s3)
    objects.put("labels/b.jsonl", b'{"mushroom_id": "x", "label": "p"}\n', "application/x-ndjson")
    objects.put("labels/a.jsonl", b"", "application/x-ndjson")
    objects.put("labels/readme.txt", b"", "text/plain")
    assert objects.list_keys("labels/", ".jsonl") == ["labels/a.jsonl", "labels/b.jsonl"]
    assert json.loads(objects.read_bytes("labels/b.jsonl"))["label"] == "p"
    objects.put("labels/c.jsonl", b'{"mushroom_id": "\xff"}', "application/x-ndjson")
    assert objects.read_bytes("labels/c.jsonl") == b'{"mushroom_id": "\xff"}'  # undecoded


def test_cloudwatch_publish_statistics_alarm_state():
    client = boto3.client("cloudwatch")
    client.put_metric_alarm(
        AlarmName="mushroom-unknown-rate-high",
        Namespace="MushroomClassifier",
        MetricName="UnknownRate",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        DatapointsToAlarm=1,
        Threshold=0.2,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    cw = CloudWatch(client)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    earlier = now - timedelta(minutes=2)
    cw.put_metric_data("MushroomClassifier", metric_data({"UnknownRate": 0.1}, earlier, "1"))
    cw.put_metric_data("MushroomClassifier", metric_data({"UnknownRate": 0.7}, now, "2"))
    cw.put_metric_data("MushroomClassifier", metric_data({"UnknownRate": 0.3}, now, "2"))
    (described,) = cw.describe_alarms(["mushroom-unknown-rate-high", "absent"])
    spec = alarm_eval.AlarmSpec.from_describe(described)
    start, end = alarm_eval.evaluation_window(spec, now)
    points = alarm_eval.bucket_datapoints(spec, cw.period_statistics(spec, start, end), now)
    # The dimensionless series only; Maximum per period.
    assert points == [0.1, None, 0.7]
    evaluation = alarm_eval.evaluate(spec, points)
    assert evaluation.state == "ALARM" and evaluation.changed
    cw.set_alarm_state(spec.name, evaluation.state, evaluation.reason, evaluation.reason_data())
    assert cw.describe_alarms([spec.name])[0]["StateValue"] == "ALARM"


def test_sns_publish_reaches_a_subscribed_queue():
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    arn = sns.create_topic(Name="mushroom-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts-observer")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    notifier = Sns(None, "mushroom-alerts", sns)  # found by name
    notifier.publish("ALARM: mushroom-unknown-rate-high", '{"alarm": "x"}')
    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)["Messages"]
    body = json.loads(message["Body"])
    assert body["Subject"].startswith("ALARM") and notifier.topic_arn == arn
    with pytest.raises(LookupError):
        _ = Sns(None, "no-such-topic", sns).topic_arn


@pytest.mark.parametrize(
    "mode,target,endpoint,expected",
    [
        ("auto", "moto", "http://127.0.0.1:5123", "local"),
        ("auto", "localstack", "http://localhost:4566", "service"),
        ("auto", None, "http://127.0.0.1:5123", "local"),
        ("auto", None, "http://localhost:4566", "service"),
        ("auto", None, None, "service"),
        ("local", "aws", None, "local"),
        ("service", "moto", None, "service"),
    ],
)
def test_evaluation_mode(mode, target, endpoint, expected):
    assert resolve_evaluation_mode(mode, target, endpoint) == expected


def test_config_from_env(tmp_path):
    env = {
        "MUSHROOM_REPO_ROOT": str(tmp_path),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "UNKNOWN_RATE_ALARM_NAME": "dev-mushroom-unknown-rate-high",
        "SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
        "ALARM_EVALUATION": "LOCAL",
    }
    config = MonitoringConfig.from_env(Settings.from_env(env), env)
    assert config.alarm_names == (
        "dev-mushroom-unknown-rate-high",
        "mushroom-false-edible-rate-high",
    )
    assert config.state_store == "s3" and config.alarm_evaluation == "local"
    assert config.reports_dir == tmp_path / "reports" / "monitoring"
    assert config.lease_ttl_seconds == 900
    assert config.local_lease_path == tmp_path / ".local" / "monitoring" / "lease.json"
    short = MonitoringConfig.from_env(
        Settings.from_env(env), {**env, "MONITORING_LEASE_TTL_SECONDS": "60"}
    )
    assert short.lease_ttl_seconds == 60
    with pytest.raises(ValueError, match="MONITORING_LEASE_TTL_SECONDS"):
        MonitoringConfig.from_env(
            Settings.from_env(env), {**env, "MONITORING_LEASE_TTL_SECONDS": "0"}
        )
    with pytest.raises(ValueError):
        MonitoringConfig.from_env(Settings.from_env(env), {"ALARM_EVALUATION": "maybe"})
    # The evidence a window needs before its rates are published.
    assert (config.min_records, config.min_labels) == (100, 50)
    custom = MonitoringConfig.from_env(
        Settings.from_env(env), {**env, "MONITORING_MIN_RECORDS": "0", "MONITORING_MIN_LABELS": "5"}
    )
    assert (custom.min_records, custom.min_labels) == (0, 5)
    with pytest.raises(ValueError, match="MONITORING_MIN_LABELS"):
        MonitoringConfig.from_env(Settings.from_env(env), {**env, "MONITORING_MIN_LABELS": "-1"})
    assert config.drift_max_rows == 10_000
    capped = {**env, "MONITORING_DRIFT_MAX_ROWS": "500"}
    assert MonitoringConfig.from_env(Settings.from_env(env), capped).drift_max_rows == 500
    with pytest.raises(ValueError, match="MONITORING_DRIFT_MAX_ROWS"):
        MonitoringConfig.from_env(Settings.from_env(env), {**env, "MONITORING_DRIFT_MAX_ROWS": "0"})


def test_the_monitor_lag_alarm_is_never_a_retraining_trigger(tmp_path):
    env = {
        "MUSHROOM_REPO_ROOT": str(tmp_path),
        "MONITOR_LAG_ALARM_NAME": "mushroom-monitor-lag-high",
    }
    config = MonitoringConfig.from_env(Settings.from_env(env), env)
    assert "mushroom-monitor-lag-high" not in config.alarm_names
    for lag_alarm in ("mushroom-monitor-lag-high", "prod-mushroom-monitor-lag-high"):
        named = {
            **env,
            "NAME_PREFIX": lag_alarm.removesuffix("mushroom-monitor-lag-high"),
            "MONITOR_LAG_ALARM_NAME": "",
            "MONITORING_ALARM_NAMES": f"mushroom-unknown-rate-high,{lag_alarm}",
        }
        with pytest.raises(ValueError, match="ops alarm"):
            MonitoringConfig.from_env(Settings.from_env(named), named)


def test_s3_release_where_conditional_delete_is_not_supported():
    """Some S3 implementations reject DeleteObject with If-Match: check the ETag, then delete."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="mushroom-local-data")

    class NoConditionalDelete:
        def __getattr__(self, name):
            return getattr(s3, name)

        def delete_object(self, **kwargs):
            if "IfMatch" in kwargs:
                raise ClientError(
                    {"Error": {"Code": "NotImplemented", "Message": "If-Match"}}, "DeleteObject"
                )
            return s3.delete_object(**kwargs)

    store = S3JsonStore("mushroom-local-data", "monitoring/lease.json", NoConditionalDelete())
    first = store.save({"holder": "a"}, None)
    second = store.save({"holder": "b"}, first)
    assert not store.delete(first) and store.load()[0] == {"holder": "b"}
    assert store.delete(second) and store.load() == (None, None)


def test_a_failed_release_does_not_hide_the_cycle_result(tmp_path, caplog):
    class Unreachable(LocalJsonStore):
        def delete(self, expected):
            raise ConnectionError("endpoint unreachable")

    lease = CycleLease(Unreachable(tmp_path / "lease.json"), timedelta(minutes=15))
    with lease:
        result = "cycle result"
    assert result == "cycle result"
    assert "could not release" in caplog.text and "expires" in caplog.text
