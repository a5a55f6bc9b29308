"""The local Firehose pump against moto in-process: prefixes, gzip lines, buffering hints,
checkpoints and resume, at-least-once under S3 failures, bad records, refused configurations."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from emulation.firehose_pump import (
    FirehosePump,
    PumpBusy,
    PumpConfigError,
    count_objects,
    evaluate_prefix,
    java_date,
)

BUCKET = "mushroom-local-data"
STREAM = "mushroom-verdicts"
DELIVERY = "mushroom-verdicts-archive"
PREFIX = "archive/verdicts/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/"
ERRORS = "archive-errors/verdicts/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
KEY = re.compile(
    r"^archive/verdicts/dt=(\d{4}-\d\d-\d\d)/hour=(\d\d)/"
    r"mushroom-verdicts-archive-1-(\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)-[0-9a-f-]{36}\.gz$"
)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Aws:
    def __init__(self) -> None:
        self.kinesis = boto3.client("kinesis")
        self.s3 = boto3.client("s3")
        self.firehose = boto3.client("firehose")
        self.iam = boto3.client("iam")
        self.role = self.iam.create_role(RoleName="firehose", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
        self.s3.create_bucket(Bucket=BUCKET)

    def stream(self, name: str = STREAM, shards: int = 1) -> str:
        self.kinesis.create_stream(StreamName=name, ShardCount=shards)
        return str(
            self.kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                "StreamARN"
            ]
        )

    def delivery_stream(
        self,
        source_arn: str,
        name: str = DELIVERY,
        size_mb: int = 1,
        interval_s: int = 0,
        **overrides: Any,
    ) -> None:
        destination = {
            "RoleARN": self.role,
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": PREFIX,
            "ErrorOutputPrefix": ERRORS,
            "BufferingHints": {"SizeInMBs": size_mb, "IntervalInSeconds": interval_s},
            "CompressionFormat": "GZIP",
            "ProcessingConfiguration": {
                "Enabled": True,
                "Processors": [{"Type": "AppendDelimiterToRecord"}],
            },
            **overrides,
        }
        self.firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="KinesisStreamAsSource",
            KinesisStreamSourceConfiguration={"KinesisStreamARN": source_arn, "RoleARN": self.role},
            ExtendedS3DestinationConfiguration=destination,
        )

    def put(self, records: list[bytes], stream: str = STREAM) -> None:
        for i, data in enumerate(records):
            self.kinesis.put_record(StreamName=stream, Data=data, PartitionKey=f"k{i}")

    def objects(self, prefix: str = "archive/") -> dict[str, list[bytes]]:
        """Archive object key -> its lines (with their newline)."""
        found = {}
        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        for item in sorted(listing, key=lambda o: o["Key"]):
            body = self.s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            found[item["Key"]] = gzip.decompress(body).splitlines(keepends=True)
        return found

    def pump(self, state_dir: Path | None = None, **kwargs: Any) -> FirehosePump:
        kwargs.setdefault("sleep", lambda seconds: None)
        return FirehosePump(self.firehose, self.kinesis, self.s3, state_dir=state_dir, **kwargs)


@pytest.fixture
def aws(moto_aws: None) -> Iterator[Aws]:
    yield Aws()


def verdict(i: int) -> bytes:
    return json.dumps({"mushroom_id": f"m-{i}", "input_sequence_number": str(i)}).encode()


def lines(objects: dict[str, list[bytes]]) -> list[bytes]:
    return [line for body in objects.values() for line in body]


# -- prefixes and names --------------------------------------------------------------------------


def test_prefix_evaluates_java_date_patterns_at_the_given_moment() -> None:
    moment = datetime(2026, 12, 6, 7, 5, 9, tzinfo=timezone.utc)
    assert evaluate_prefix(PREFIX, moment) == "archive/verdicts/dt=2026-12-06/hour=07/"
    assert (
        evaluate_prefix(ERRORS, moment, "processing-failed")
        == "archive-errors/verdicts/processing-failed/dt=2026-12-06/"
    )
    assert evaluate_prefix("", moment) == "2026/12/06/07/"  # Firehose's default
    assert java_date("yyyy'-'MM'T'HH:mm:ss", moment) == "2026-12T07:05:09"
    with pytest.raises(PumpConfigError, match="'EEE' is not supported"):
        java_date("EEE", moment)
    with pytest.raises(PumpConfigError, match="partitionKeyFromQuery"):
        evaluate_prefix("!{partitionKeyFromQuery:id}/", moment)


def test_records_land_as_gzip_lines_under_the_evaluated_prefix(aws: Aws) -> None:
    aws.delivery_stream(aws.stream())
    records = [verdict(i) for i in range(5)]
    aws.put(records)
    pump = aws.pump()
    assert pump.poll_once() == 5  # interval 0: written in the same round

    objects = aws.objects()
    (key,) = objects
    match = KEY.match(key)
    assert match, key
    arrival = aws.kinesis.get_records(
        ShardIterator=aws.kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    )["Records"][0]["ApproximateArrivalTimestamp"].astimezone(timezone.utc)
    # The oldest record's arrival names the partition and the object.
    assert match.group(1) == arrival.strftime("%Y-%m-%d") and match.group(2) == arrival.strftime(
        "%H"
    )
    assert match.group(3) == arrival.strftime("%Y-%m-%d-%H-%M-%S")
    assert objects[key] == [r + b"\n" for r in records]
    assert pump.health()["healthy"] and pump.stats.records_delivered == 5
    assert count_objects(aws.s3, BUCKET, ["archive/verdicts/", "archive/observations/"]) == {
        "archive/verdicts/": 1,
        "archive/observations/": 0,
    }


def test_only_kinesis_sourced_delivery_streams_are_pumped_each_to_its_own_prefix(aws: Aws) -> None:
    aws.delivery_stream(aws.stream())
    observations = aws.stream("mushroom-observations", shards=2)
    aws.delivery_stream(
        observations,
        name="mushroom-observations-archive",
        Prefix="archive/observations/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/",
    )
    aws.firehose.create_delivery_stream(
        DeliveryStreamName="direct",
        ExtendedS3DestinationConfiguration={
            "RoleARN": aws.role,
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
        },
    )
    aws.put([verdict(1)])
    aws.put([b'{"mushroom_id":"o-%d"}' % i for i in range(10)], stream="mushroom-observations")
    pump = aws.pump()
    pump.poll_once()
    assert sorted(pump.streams) == ["mushroom-observations-archive", DELIVERY]
    assert len(lines(aws.objects("archive/verdicts/"))) == 1
    assert len(lines(aws.objects("archive/observations/"))) == 10  # both shards read


# -- buffering hints -----------------------------------------------------------------------------


def test_size_hint_writes_an_object_once_a_mebibyte_is_buffered(aws: Aws) -> None:
    aws.delivery_stream(aws.stream(), size_mb=1, interval_s=900)
    record = b'{"pad":"' + b"x" * 4085 + b'"}'  # 4,095 bytes + the newline = 4 KiB a line
    aws.put([record] * 300)
    pump = aws.pump(monotonic=Clock())
    pump.poll_once()
    (first,) = aws.objects().values()
    assert len(first) == 256  # 256 x 4 KiB = 1 MiB, the size hint
    assert pump.health()["buffered"] == 44
    pump.flush(force=True)  # what stop() does
    assert sorted(len(body) for body in aws.objects().values()) == [44, 256]


def test_interval_hint_writes_after_the_interval_and_not_before(aws: Aws) -> None:
    aws.delivery_stream(aws.stream(), size_mb=5, interval_s=60)
    clock = Clock()
    pump = aws.pump(monotonic=clock)
    aws.put([verdict(i) for i in range(3)])
    pump.poll_once()
    clock.now += 59
    pump.poll_once()
    assert aws.objects() == {}
    clock.now += 1
    pump.poll_once()
    assert len(lines(aws.objects())) == 3


# -- checkpoints, restarts, at-least-once --------------------------------------------------------


def test_a_restart_resumes_after_the_checkpoint(aws: Aws, tmp_path: Path) -> None:
    aws.delivery_stream(aws.stream())
    aws.put([verdict(i) for i in range(5)])
    first = aws.pump(tmp_path)
    first.poll_once()
    first.stop()
    aws.put([verdict(i) for i in range(5, 8)])
    second = aws.pump(tmp_path)
    assert second.poll_once() == 3
    assert sorted(lines(aws.objects())) == sorted(verdict(i) + b"\n" for i in range(8))


def test_records_buffered_at_a_crash_are_read_again_never_lost(aws: Aws, tmp_path: Path) -> None:
    aws.delivery_stream(aws.stream(), interval_s=900)
    aws.put([verdict(i) for i in range(4)])
    crashed = aws.pump(tmp_path, monotonic=Clock())
    assert crashed.poll_once() == 4  # buffered, not written: the process dies here
    assert aws.objects() == {}
    restarted = aws.pump(tmp_path)
    restarted.run(max_seconds=0)  # one round, then the flush on stop
    assert sorted(lines(aws.objects())) == sorted(verdict(i) + b"\n" for i in range(4))


class FlakyS3:
    """The real client, but PutObject fails `failures` times first."""

    def __init__(self, s3: Any, failures: int) -> None:
        self.s3, self.failures, self.calls = s3, failures, 0

    def put_object(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "busy"}}, "PutObject")
        return self.s3.put_object(**kwargs)


def test_s3_errors_are_retried_and_a_failed_buffer_is_kept(aws: Aws, tmp_path: Path) -> None:
    aws.delivery_stream(aws.stream())
    s3 = FlakyS3(aws.s3, failures=4)
    pump = FirehosePump(
        aws.firehose, aws.kinesis, s3, state_dir=tmp_path, sleep=lambda s: None, s3_attempts=3
    )
    aws.put([verdict(i) for i in range(3)])
    pump.poll_once()  # 3 attempts fail
    health = pump.health()
    assert not health["healthy"] and "SlowDown" in health["detail"]
    assert health["buffered"] == 3 and pump.stats.s3_failed_flushes == 1
    assert not (tmp_path / "checkpoints.json").exists()  # nothing written, nothing skipped

    aws.put([verdict(3)])
    pump.poll_once()  # the kept buffer first (1 more failure, then success), then the new record
    assert pump.health()["healthy"]
    assert sorted(lines(aws.objects())) == sorted(verdict(i) + b"\n" for i in range(4))
    assert pump.stats.s3_retries == 3 and pump.stats.records_delivered == 4


# -- hostile input -------------------------------------------------------------------------------


def test_bad_records_are_archived_as_they_came_and_never_stop_the_batch(aws: Aws) -> None:
    aws.delivery_stream(aws.stream())
    records = [verdict(0), b"\xff\xfe not utf-8", b"not json", b'{"a":1}\n{"b":2}', verdict(1)]
    aws.put(records)
    pump = aws.pump()
    pump.poll_once()
    assert b"".join(lines(aws.objects())) == b"".join(r + b"\n" for r in records)
    assert pump.stats.records_delivered == 5
    assert pump.stats.records_with_newline == 1  # counted and logged: it reads as 2 lines


def test_a_configuration_it_cannot_reproduce_is_refused_not_guessed(aws: Aws) -> None:
    verdicts = aws.stream()
    aws.delivery_stream(verdicts)
    aws.delivery_stream(
        verdicts,
        name="snappy-archive",
        CompressionFormat="Snappy",
    )
    aws.delivery_stream(
        verdicts,
        name="lambda-archive",
        ProcessingConfiguration={"Enabled": True, "Processors": [{"Type": "Lambda"}]},
    )
    aws.put([verdict(0)])
    pump = aws.pump()
    pump.poll_once()
    health = pump.health()
    assert not health["healthy"]
    assert "snappy-archive: snappy-archive: compression Snappy" in health["detail"]
    assert "lambda-archive" in health["detail"] and "Lambda" in health["detail"]
    assert health["streams"] == [DELIVERY]
    assert len(lines(aws.objects())) == 1


# -- the loop ------------------------------------------------------------------------------------


def test_start_stop_runs_in_a_thread_and_flushes_on_stop(aws: Aws, tmp_path: Path) -> None:
    aws.delivery_stream(aws.stream(), interval_s=900)
    aws.put([verdict(i) for i in range(3)])
    pump = aws.pump(tmp_path, poll_interval_s=0.01)
    pump.start()
    with pytest.raises(PumpBusy, match="write every record twice"):
        aws.pump(tmp_path).start()  # a second pump on the same checkpoints
    deadline = 200
    while pump.stats.records_read < 3 and deadline:
        pump._stop.wait(0.01)
        deadline -= 1
    assert aws.objects() == {}  # the interval is 15 minutes
    pump.stop()
    assert len(lines(aws.objects())) == 3
    assert pump.health()["healthy"]


def test_a_failing_source_stream_does_not_stop_the_others(aws: Aws) -> None:
    aws.delivery_stream(aws.stream())
    gone = aws.stream("mushroom-observations")
    aws.delivery_stream(gone, name="mushroom-observations-archive")
    aws.kinesis.delete_stream(StreamName="mushroom-observations")
    aws.put([verdict(0)])
    pump = aws.pump()
    pump.poll_once()
    assert len(lines(aws.objects())) == 1
    health = pump.health()
    assert not health["healthy"]
    assert "mushroom-observations-archive: reading" in health["detail"]
