"""Verdicts flow stream -> archive -> SQL -> CloudWatch on the emulator: moto server's Kinesis,
Firehose (configuration only), S3 and CloudWatch; the project's Firehose pump writes the
archive; a monitoring cycle reads it with DuckDB over S3 and publishes to CloudWatch."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from emulation.firehose_pump import make_pump
from monitoring.aws import CloudWatch, S3Objects
from monitoring.cycle import run_cycle
from monitoring.duckdb_engine import DuckDBEngine, S3Location
from tests.fakes.monitoring import archive_deps, config, verdict

pytestmark = pytest.mark.integration
BUCKET, STREAM, REGION = "mushroom-local-data", "mushroom-verdicts", "us-east-1"
PREFIX = "archive/verdicts/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/"


def test_verdicts_flow_from_the_stream_to_cloudwatch(emulator, tmp_path):
    kinesis, s3 = boto3.client("kinesis"), boto3.client("s3")
    firehose, cloudwatch = boto3.client("firehose"), boto3.client("cloudwatch")
    s3.create_bucket(Bucket=BUCKET)
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    firehose.create_delivery_stream(
        DeliveryStreamName="mushroom-verdicts-archive",
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={
            "KinesisStreamARN": arn,
            "RoleARN": "arn:aws:iam::123456789012:role/f",
        },
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/f",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": PREFIX,
            "ErrorOutputPrefix": "archive-errors/",
            "CompressionFormat": "GZIP",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
            "ProcessingConfiguration": {
                "Enabled": True,
                "Processors": [
                    {
                        "Type": "AppendDelimiterToRecord",
                        "Parameters": [{"ParameterName": "Delimiter", "ParameterValue": "\\n"}],
                    }
                ],
            },
        },
    )
    now = datetime.now(timezone.utc)
    records = []
    for i in range(200):
        row = verdict(i, "edible" if i % 4 else "unknown", p=0.2)
        row["scored_at"] = (now - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        records.append({"Data": json.dumps(row).encode(), "PartitionKey": row["mushroom_id"]})
    for start in range(0, len(records), 100):
        kinesis.put_records(StreamName=STREAM, Records=records[start : start + 100])
    kinesis.put_record(StreamName=STREAM, Data=b"not a verdict", PartitionKey="x")

    pump = make_pump(state_dir=None)
    pump.run(until_idle=1.0, max_seconds=60)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="archive/verdicts/")
    assert listed.get("KeyCount", 0) >= 1

    objects = S3Objects(BUCKET)
    engine = DuckDBEngine.over_s3(S3Location(BUCKET, REGION, emulator, "test", "test"))
    deps = archive_deps(
        tmp_path, objects, engine, config=config(tmp_path, alarm_names=()), cloudwatch=CloudWatch()
    )
    result = run_cycle(deps, at=datetime.now(timezone.utc) + timedelta(seconds=1))
    assert result.metrics.records == 200
    assert result.metrics.unknown_rate == 0.25
    assert "metrics by SQL (duckdb" in result.archive["lines"][0]
    points = cloudwatch.get_metric_statistics(
        Namespace="MushroomClassifier",
        MetricName="UnknownRate",
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [p["Maximum"] for p in points] == [0.25]
