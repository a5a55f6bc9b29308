"""Exact AWS shapes built by the local Lambda runtime."""

from __future__ import annotations

import base64
import json

import pytest

from emulation.lambda_runtime.events import (
    MAX_PAYLOAD_BYTES,
    InvalidBatchResponse,
    build_kinesis_event,
    first_failed_index,
    iso_ms,
    on_failure_record,
    split_batches,
)
from emulation.lambda_runtime.model import InvokeOutcome, MappingConfig, StreamRecord
from tests.examples import FIXTURES

FIXTURE = FIXTURES / "kinesis_event.json"
STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/mushroom-observations"


def _records(n: int, start: int = 1, size: int = 10) -> list[StreamRecord]:
    return [
        StreamRecord(
            sequence_number=str(seq),
            partition_key=f"obs-{seq}",
            data_b64=base64.b64encode(b"x" * size).decode(),
            arrival=1_700_000_000.0 + seq / 1000,
        )
        for seq in range(start, start + n)
    ]


def test_event_has_the_shape_of_the_sample_aws_event() -> None:
    sample = json.loads(FIXTURE.read_text())
    records = [
        StreamRecord(
            r["kinesis"]["sequenceNumber"],
            r["kinesis"]["partitionKey"],
            r["kinesis"]["data"],
            r["kinesis"]["approximateArrivalTimestamp"],
        )
        for r in sample["Records"]
    ]
    event = build_kinesis_event(
        records,
        shard_id="shardId-000000000000",
        stream_arn=sample["Records"][0]["eventSourceARN"],
        region="us-east-1",
        invoke_identity_arn=sample["Records"][0]["invokeIdentityArn"],
    )
    assert event == sample


def test_sample_event_carries_mushroom_observations() -> None:
    sample = json.loads(FIXTURE.read_text())
    assert 2 <= len(sample["Records"]) <= 3
    for record in sample["Records"]:
        body = json.loads(base64.b64decode(record["kinesis"]["data"]))
        assert body["mushroom_id"] == record["kinesis"]["partitionKey"]
        assert record["eventID"] == f"shardId-000000000000:{record['kinesis']['sequenceNumber']}"


def test_event_record_fields() -> None:
    event = build_kinesis_event(
        _records(2),
        shard_id="shardId-000000000003",
        stream_arn=STREAM,
        region="eu-west-1",
        invoke_identity_arn="arn:aws:iam::1:role/r",
    )
    first = event["Records"][0]
    assert first["eventSource"] == "aws:kinesis" and first["eventName"] == "aws:kinesis:record"
    assert first["eventVersion"] == "1.0" and first["kinesis"]["kinesisSchemaVersion"] == "1.0"
    assert first["eventID"] == "shardId-000000000003:1"
    assert first["awsRegion"] == "eu-west-1" and first["eventSourceARN"] == STREAM
    assert first["kinesis"]["approximateArrivalTimestamp"] == 1_700_000_000.001
    assert base64.b64decode(first["kinesis"]["data"]) == b"x" * 10


@pytest.mark.parametrize(
    "response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, "ok"]
)
def test_responses_that_mean_success(response: object) -> None:
    assert first_failed_index(response, _records(3)) is None


def test_lowest_failed_sequence_number_wins() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}
    assert first_failed_index(response, _records(4)) == 1


@pytest.mark.parametrize(
    "item",
    [{"itemIdentifier": ""}, {"itemIdentifier": None}, {"id": "2"}, {"itemIdentifier": "99"}],
)
def test_invalid_items_fail_the_whole_batch(item: dict) -> None:
    with pytest.raises(InvalidBatchResponse):
        first_failed_index({"batchItemFailures": [item]}, _records(3))


def test_split_respects_batch_size_and_payload_limit() -> None:
    assert [len(b) for b in split_batches(_records(25), 10)] == [10, 10, 5]
    big = _records(8, size=1_000_000)  # ~1.33 MB base64 each
    batches = split_batches(big, 10_000)
    assert len(batches) > 1 and sum(len(b) for b in batches) == 8
    for batch in batches:
        assert sum(len(r.data_b64) for r in batch) <= MAX_PAYLOAD_BYTES


def test_on_failure_record_shape() -> None:
    outcome = InvokeOutcome(request_id="req-1", payload={}, function_error="Unhandled")
    record = on_failure_record(
        _records(3),
        condition="RetryAttemptsExhausted",
        function_arn="arn:aws:lambda:us-east-1:1:function:f",
        shard_id="shardId-000000000000",
        stream_arn=STREAM,
        invoke_count=4,
        last_outcome=outcome,
        now=1_700_000_100.5,
    )
    assert record == {
        "requestContext": {
            "requestId": "req-1",
            "functionArn": "arn:aws:lambda:us-east-1:1:function:f",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 4,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "version": "1.0",
        "timestamp": "2023-11-14T22:15:00.500Z",
        "KinesisBatchInfo": {
            "shardId": "shardId-000000000000",
            "startSequenceNumber": "1",
            "endSequenceNumber": "3",
            "approximateArrivalOfFirstRecord": "2023-11-14T22:13:20.001Z",
            "approximateArrivalOfLastRecord": "2023-11-14T22:13:20.003Z",
            "batchSize": 3,
            "streamArn": STREAM,
        },
    }


def test_iso_ms() -> None:
    assert iso_ms(0.0) == "1970-01-01T00:00:00.000Z"


def test_mapping_defaults_from_moto_style_nulls() -> None:
    mapping = MappingConfig.from_api(
        {
            "UUID": "u",
            "FunctionArn": "arn:aws:lambda:us-east-1:1:function:f",
            "EventSourceArn": STREAM,
            "State": "Enabled",
            "BatchSize": 100,
            "StartingPosition": "TRIM_HORIZON",
            "BisectBatchOnFunctionError": None,
            "MaximumRetryAttempts": None,
            "MaximumRecordAgeInSeconds": None,
            "FunctionResponseTypes": None,
            "DestinationConfig": None,
            "LastModified": 1_700_000_000.0,
        }
    )
    assert mapping.max_retry_attempts == -1 and mapping.max_record_age_s == -1
    assert not mapping.bisect_on_error and not mapping.report_batch_item_failures
    assert mapping.on_failure_destination is None and mapping.is_polling and mapping.is_kinesis
    assert not MappingConfig.from_api({**_minimal(), "State": "Disabled"}).is_polling


def _minimal() -> dict:
    return {"UUID": "u", "FunctionArn": "f", "EventSourceArn": STREAM}
