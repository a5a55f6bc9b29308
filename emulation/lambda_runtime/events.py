"""Exact AWS shapes: the Kinesis event, the partial batch response and the on-failure record."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Sequence

from emulation.lambda_runtime.model import InvokeOutcome, StreamRecord

#: Lambda caps a synchronous invocation payload at 6 MB; the ESM keeps batches below it.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: Bytes one record adds to the event besides its data (keys, ARNs, ids), a generous estimate.
_RECORD_OVERHEAD_BYTES = 600


class InvalidBatchResponse(ValueError):
    """A partial batch response that Lambda treats as a failure of the whole batch."""


def iso_ms(epoch: float) -> str:
    """Epoch seconds to the ISO-8601 form Lambda uses in on-failure records (ms, 'Z')."""
    millis = round(epoch * 1000)  # round first: 0.001 is not exact in binary floating point
    moment = datetime.fromtimestamp(millis // 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def build_kinesis_event(
    records: Sequence[StreamRecord],
    *,
    shard_id: str,
    stream_arn: str,
    region: str,
    invoke_identity_arn: str,
) -> dict[str, Any]:
    """The event Lambda sends for a batch of records from one shard."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": r.data_b64,
                    "approximateArrivalTimestamp": round(r.arrival, 3),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{r.sequence_number}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": invoke_identity_arn,
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
            for r in records
        ]
    }


def split_batches(records: Sequence[StreamRecord], batch_size: int) -> list[list[StreamRecord]]:
    """Cut fetched records into batches of at most batch_size records and about 6 MB."""
    batches: list[list[StreamRecord]] = []
    current: list[StreamRecord] = []
    size = 0
    for record in records:
        record_size = len(record.data_b64) + len(record.partition_key) + _RECORD_OVERHEAD_BYTES
        if current and (len(current) >= batch_size or size + record_size > MAX_PAYLOAD_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(record)
        size += record_size
    if current:
        batches.append(current)
    return batches


def first_failed_index(response: Any, records: Sequence[StreamRecord]) -> int | None:
    """Index of the lowest failed sequence number in a partial batch response, None if none.

    Success: a null response, an empty object, a null or empty ``batchItemFailures``.
    Whole-batch failure (raises InvalidBatchResponse): an item without ``itemIdentifier``
    (wrong key name), a null or empty identifier, or one that is not in the batch.
    """
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if not failures:
        return None
    if not isinstance(failures, list):
        raise InvalidBatchResponse(f"batchItemFailures is not a list: {failures!r}")
    position = {r.sequence_number: i for i, r in enumerate(records)}
    lowest: int | None = None
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            raise InvalidBatchResponse(f"invalid batch item failure: {item!r}")
        if identifier not in position:
            raise InvalidBatchResponse(f"itemIdentifier {identifier!r} is not in the batch")
        index = position[identifier]
        lowest = index if lowest is None else min(lowest, index)
    return lowest


def on_failure_record(
    records: Sequence[StreamRecord],
    *,
    condition: str,
    function_arn: str,
    shard_id: str,
    stream_arn: str,
    invoke_count: int,
    last_outcome: InvokeOutcome | None,
    now: float,
) -> dict[str, Any]:
    """The JSON document Lambda sends to an SQS/SNS on-failure destination for a discarded batch.

    ``condition`` is ``RetryAttemptsExhausted`` or ``RecordAgeExceeded``; the record carries
    batch metadata only (no data), so a consumer re-reads the shard by sequence number.
    """
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    request_id = ""
    if last_outcome is not None:
        request_id = last_outcome.request_id
        response_context = {
            "statusCode": last_outcome.status_code,
            "executedVersion": last_outcome.executed_version,
        }
        if last_outcome.function_error:
            response_context["functionError"] = last_outcome.function_error
    return {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": iso_ms(now),
        "KinesisBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records[0].sequence_number,
            "endSequenceNumber": records[-1].sequence_number,
            "approximateArrivalOfFirstRecord": iso_ms(records[0].arrival),
            "approximateArrivalOfLastRecord": iso_ms(records[-1].arrival),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }
