"""Replaying the DLQ (deployment/redrive.py) against moto's SQS and Kinesis in-process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from deployment.redrive import (
    FOREIGN,
    NOT_REDRIVEN,
    REDRIVEN,
    TRIMMED,
    UNREADABLE,
    BatchPointer,
    Journal,
    RedriveError,
    redrive,
)

INPUT = "mushroom-observations"


@dataclass
class Stack:
    sqs: Any
    kinesis: Any
    queue_url: str
    stream_arn: str
    journal_path: Path

    def put(self, count: int, start: int = 0) -> list[dict[str, Any]]:
        """``count`` records on the input stream; their ids, partition keys and places."""
        records = [
            {"Data": json.dumps({"mushroom_id": f"obs-{i}"}).encode(), "PartitionKey": f"pk-{i}"}
            for i in range(start, start + count)
        ]
        response = self.kinesis.put_records(StreamName=INPUT, Records=records)
        return [
            {**record, "SequenceNumber": r["SequenceNumber"], "ShardId": r["ShardId"]}
            for record, r in zip(records, response["Records"])
        ]

    def fail(self, batch: list[dict[str, Any]], **override: Any) -> None:
        """The on-failure record Lambda sends for ``batch`` (the ESM's SQS format)."""
        info = {
            "shardId": batch[0]["ShardId"],
            "startSequenceNumber": batch[0]["SequenceNumber"],
            "endSequenceNumber": batch[-1]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": "2026-12-06T23:00:00.000Z",
            "approximateArrivalOfLastRecord": "2026-12-06T23:00:01.000Z",
            "batchSize": len(batch),
            "streamArn": self.stream_arn,
            **override,
        }
        body = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "version": "1.0",
            "KinesisBatchInfo": info,
        }
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body))

    def run(self, kinesis: Any = None, **kwargs: Any) -> Any:
        return redrive(
            queue_url=self.queue_url,
            input_stream_name=INPUT,
            input_stream_arn=self.stream_arn,
            sqs=self.sqs,
            kinesis=kinesis or self.kinesis,
            journal=Journal(self.journal_path),
            sleep=lambda s: None,
            receive_wait_s=0,
            **kwargs,
        )

    def stream(self) -> list[dict[str, Any]]:
        shard = self.kinesis.list_shards(StreamName=INPUT)["Shards"][0]["ShardId"]
        iterator = self.kinesis.get_shard_iterator(
            StreamName=INPUT, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return self.kinesis.get_records(ShardIterator=iterator, Limit=10000)["Records"]

    def queue_depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def journal(self) -> list[dict[str, Any]]:
        if not self.journal_path.exists():
            return []
        return [json.loads(line) for line in self.journal_path.read_text().splitlines()]


@pytest.fixture
def stack(moto_aws: None, tmp_path: Path) -> Stack:
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=INPUT, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=INPUT)["StreamDescriptionSummary"]["StreamARN"]
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="mushroom-scorer-dlq")["QueueUrl"]
    return Stack(sqs, kinesis, queue, arn, tmp_path / "redrive-journal.jsonl")


def test_every_record_of_every_message_goes_back_once_and_the_messages_are_deleted(stack):
    records = stack.put(12)
    stack.fail(records[:5])
    stack.fail(records[5:6])
    stack.fail(records[9:12])

    report = stack.run()

    assert [o.status for o in report.outcomes] == [REDRIVEN] * 3 and report.records_put == 9
    assert stack.queue_depth() == 0
    redriven = stack.stream()[12:]
    expected = records[:6] + records[9:12]
    assert [(r["Data"], r["PartitionKey"]) for r in redriven] == [
        (r["Data"], r["PartitionKey"]) for r in expected
    ]
    journal = stack.journal()
    assert [j["original_sequence_number"] for j in journal] == [
        r["SequenceNumber"] for r in expected
    ]
    assert [j["redriven_sequence_number"] for j in journal] == [
        r["SequenceNumber"] for r in redriven
    ]
    assert "3 DLQ message(s): 3 redriven and deleted (9 record(s) put back" in report.summary()


def test_a_rerun_puts_nothing_twice(stack):
    records = stack.put(4)
    stack.fail(records)
    stack.run()
    # The same failure reported again (as after a crash between the put and the delete).
    stack.fail(records)

    again = stack.run()

    assert again.outcomes[0].status == REDRIVEN and again.outcomes[0].already == 4
    assert again.records_put == 0 and len(stack.stream()) == 8 and stack.queue_depth() == 0
    assert stack.run().outcomes == []  # an empty queue: nothing to do


class _Trimmed:
    """A Kinesis client whose shard no longer holds some sequence numbers (past retention)."""

    def __init__(self, client: Any, gone: set[str]) -> None:
        self._client, self._gone = client, gone

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_records(self, **kwargs: Any) -> Any:
        response = self._client.get_records(**kwargs)
        response["Records"] = [
            r for r in response["Records"] if r["SequenceNumber"] not in self._gone
        ]
        return response


def test_records_trimmed_from_the_stream_are_reported_and_their_message_kept(stack):
    records = stack.put(5)
    stack.fail(records)
    gone = {r["SequenceNumber"] for r in records[:2]}

    report = stack.run(kinesis=_Trimmed(stack.kinesis, gone))

    (outcome,) = report.outcomes
    assert outcome.status == TRIMMED and outcome.found == 3 and outcome.put == 3
    assert "2 of 5 record(s)" in outcome.detail and "no longer in the stream" in outcome.detail
    assert stack.queue_depth() == 1  # kept, and visible again for the next run
    assert (
        len(
            stack.sqs.receive_message(QueueUrl=stack.queue_url, VisibilityTimeout=0).get(
                "Messages", []
            )
        )
        == 1
    )
    assert "kept" in report.summary() and "trimmed" in report.summary()
    # A re-run does not put the three again, and still keeps the message.
    again = stack.run(kinesis=_Trimmed(stack.kinesis, gone))
    assert again.outcomes[0].status == TRIMMED and again.records_put == 0
    assert len(stack.stream()) == 8


class _Throttled:
    """A Kinesis client whose PutRecords fails the first entry ``times`` times."""

    def __init__(self, client: Any, times: int) -> None:
        self._client, self.times = client, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_records(self, **kwargs: Any) -> Any:
        if self.times <= 0:
            return self._client.put_records(**kwargs)
        self.times -= 1
        first, rest = kwargs["Records"][0], kwargs["Records"][1:]
        put = (
            self._client.put_records(StreamName=kwargs["StreamName"], Records=rest)["Records"]
            if rest
            else []
        )
        failed = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
        assert first  # not put
        return {"FailedRecordCount": 1, "Records": [failed, *put]}


def test_failed_entries_are_retried_and_a_record_never_put_keeps_its_message(stack):
    records = stack.put(3)
    stack.fail(records)
    assert stack.run(kinesis=_Throttled(stack.kinesis, 2)).outcomes[0].status == REDRIVEN
    assert len(stack.stream()) == 6 and stack.queue_depth() == 0

    more = stack.put(3, start=3)
    stack.fail(more)
    report = stack.run(kinesis=_Throttled(stack.kinesis, 99), put_attempts=3)
    (outcome,) = report.outcomes
    assert outcome.status == NOT_REDRIVEN and outcome.put == 2
    assert "1 of 3 record(s) not put back after 3 attempts" in outcome.detail
    assert "ProvisionedThroughputExceededException" in outcome.detail
    assert stack.queue_depth() == 1
    # Once Kinesis takes it, a re-run puts only the missing one and deletes the message.
    again = stack.run()
    assert again.outcomes[0].status == REDRIVEN and again.records_put == 1
    assert again.outcomes[0].already == 2 and stack.queue_depth() == 0


def test_a_message_that_is_not_an_on_failure_record_of_the_input_is_kept(stack):
    records = stack.put(2)
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody="not json")
    stack.fail(records, streamArn=stack.stream_arn.replace(INPUT, "another-stream"))
    stack.fail(records, shardId="shardId-000000000009")

    report = stack.run()

    statuses = sorted((o.status, o.detail) for o in report.outcomes)
    assert [s for s, _ in statuses] == [FOREIGN, FOREIGN, UNREADABLE]
    assert any("not JSON" in d for _, d in statuses)
    assert any("not the input stream" in d for _, d in statuses)
    assert any("shardId-000000000009" in d for s, d in statuses if s == UNREADABLE)
    assert stack.queue_depth() == 3 and len(stack.stream()) == 2  # nothing put, nothing lost


def test_the_pointer_parser_names_what_is_wrong():
    with pytest.raises(ValueError, match="no KinesisBatchInfo"):
        BatchPointer.parse(json.dumps({"Records": []}))
    with pytest.raises(
        ValueError, match="lacks a valid shardId, startSequenceNumber, .*, batchSize$"
    ):
        BatchPointer.parse(json.dumps({"KinesisBatchInfo": {"shardId": "", "batchSize": 0}}))


def test_a_damaged_journal_stops_before_anything_is_read(stack, tmp_path):
    stack.journal_path.write_text('{"shard_id": "s"}\n')
    records = stack.put(1)
    stack.fail(records)
    with pytest.raises(RedriveError, match="redrive-journal.jsonl:1 is not a redrive journal"):
        stack.run()
    assert stack.queue_depth() == 1 and len(stack.stream()) == 1


class _Refusing:
    """A Kinesis client that refuses ``method`` as a whole (a ClientError) ``times`` times."""

    def __init__(self, client: Any, method: str, times: int) -> None:
        self._client, self._method, self.times = client, method, times

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name != self._method:
            return attribute

        def refused(**kwargs: Any) -> Any:
            if self.times > 0:
                self.times -= 1
                raise ClientError(
                    {"Error": {"Code": "KMSThrottlingException", "Message": "slow down"}}, name
                )
            return attribute(**kwargs)

        return refused


def test_a_put_refused_as_a_whole_is_retried(stack):
    records = stack.put(3)
    stack.fail(records)
    report = stack.run(kinesis=_Refusing(stack.kinesis, "put_records", 2))
    assert report.outcomes[0].status == REDRIVEN and report.records_put == 3
    assert len(stack.stream()) == 6 and stack.queue_depth() == 0


def test_a_shard_that_cannot_be_read_keeps_its_message_and_the_others_go_on(stack):
    records = stack.put(4)
    stack.fail(records[:2])
    stack.fail(records[2:])
    report = stack.run(kinesis=_Refusing(stack.kinesis, "get_records", 1))
    assert [o.status for o in report.outcomes] == [UNREADABLE, REDRIVEN]
    assert "KMSThrottlingException" in report.outcomes[0].detail
    assert stack.queue_depth() == 1 and len(stack.stream()) == 6
    assert stack.run().outcomes[0].status == REDRIVEN and stack.queue_depth() == 0
