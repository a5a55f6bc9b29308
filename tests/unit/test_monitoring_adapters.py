"""The boto3 adapters against moto (in-process, no network)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from monitoring import alarms as alarm_eval
from monitoring.aws import (
    CloudWatch,
    KinesisStreamReader,
    LocalJsonStore,
    S3JsonStore,
    S3Objects,
    Sns,
)
from monitoring.config import MonitoringConfig, resolve_evaluation_mode
from monitoring.publish import metric_data
from training.settings import Settings

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(moto_aws):
    """Every test here runs against moto in-process (tests/unit/conftest.py)."""


def test_kinesis_reader_resumes_after_checkpoint():
    client = boto3.client("kinesis")
    client.create_stream(StreamName="mushroom-verdicts", ShardCount=2)
    for i in range(30):
        client.put_record(
            StreamName="mushroom-verdicts", Data=json.dumps({"i": i}).encode(), PartitionKey=str(i)
        )
    reader = KinesisStreamReader("mushroom-verdicts", client, page_limit=7)
    data, checkpoint = reader.read({})
    assert sorted(json.loads(d)["i"] for d in data) == list(range(30))
    assert len(checkpoint) == 2
    assert reader.read(checkpoint)[0] == []
    client.put_record(StreamName="mushroom-verdicts", Data=b'{"i": 30}', PartitionKey="x")
    data, _ = reader.read(checkpoint)
    assert [json.loads(d)["i"] for d in data] == [30]
    # A cap leaves the rest for the next cycle instead of skipping it.
    first, partial = reader.read({}, max_records=10)
    rest, _ = reader.read(partial)
    assert len(first) == 10 and len(first) + len(rest) == 31


def test_state_stores(tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="mushroom-local-data")
    store = S3JsonStore("mushroom-local-data", "monitoring/checkpoints.json", s3)
    assert store.load() is None
    store.save({"version": 1, "streams": {"a": {"s": "1"}}})
    assert store.load()["streams"] == {"a": {"s": "1"}}
    local = LocalJsonStore(tmp_path / "m" / "checkpoints.json")
    assert local.load() is None
    local.save({"x": 1})
    assert local.load() == {"x": 1}


def test_s3_objects_list_read_put():
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="mushroom-local-data")
    objects = S3Objects("mushroom-local-data", s3)
    objects.put("labels/b.jsonl", b'{"mushroom_id": "x", "label": "p"}\n', "application/x-ndjson")
    objects.put("labels/a.jsonl", b"", "application/x-ndjson")
    objects.put("labels/readme.txt", b"", "text/plain")
    assert objects.list_keys("labels/", ".jsonl") == ["labels/a.jsonl", "labels/b.jsonl"]
    assert json.loads(objects.read_text("labels/b.jsonl"))["label"] == "p"


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
    with pytest.raises(ValueError):
        MonitoringConfig.from_env(Settings.from_env(env), {"ALARM_EVALUATION": "maybe"})
