"""Fakes and builders shared by the scorer's unit tests (Kinesis events, context, clients)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lambda_function import schema
from tests.examples import example_observation

if TYPE_CHECKING:  # the handler's tests import this module with pandas blocked
    import pandas as pd

EVENTS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "events"
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/mushroom-observations"
FIRST_SEQUENCE = 49590338271490256608559692538361571095921575989136588898


def valid_record(i: int = 0, **overrides: Any) -> dict[str, Any]:
    """A record that passes the input contract (values in the style of the dataset)."""
    record = example_observation()
    record.update(mushroom_id=f"obs-{i:06d}", cap_diameter=15.26 + i % 7)
    record.update(overrides)
    return record


def dataset_records(dataset: pd.DataFrame, prefix: str) -> list[dict[str, Any]]:
    """Each row of a dataset frame (``make_tiny_dataset``'s layout) as an input record with the
    id ``<prefix>-<row number, 4 digits>``: numbers as floats, codes as they are, no missing."""
    records = []
    for i, (_, row) in enumerate(dataset.iterrows()):
        record: dict[str, Any] = {"mushroom_id": f"{prefix}-{i:04d}"}
        for feature in schema.FEATURES:
            value = row[feature.name]
            if feature.is_numeric:
                record[feature.name] = float(value)
            elif isinstance(value, str):
                record[feature.name] = value
        records.append(record)
    return records


def kinesis_record(payload: bytes, sequence_number: str, data: str | None = None) -> dict:
    """One record of a Kinesis event, shaped as Lambda delivers it."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "pk",
            "sequenceNumber": sequence_number,
            "data": base64.b64encode(payload).decode() if data is None else data,
            "approximateArrivalTimestamp": 1764244800.123,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/mushroom-scorer",
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
    }


def kinesis_event(payloads: list[bytes], first: int = FIRST_SEQUENCE) -> dict:
    return {"Records": [kinesis_record(p, str(first + i)) for i, p in enumerate(payloads)]}


def load_event(name: str) -> dict:
    return json.loads((EVENTS_DIR / name).read_text())


@dataclass
class FakeLambdaContext:
    function_name: str = "mushroom-scorer"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mushroom-scorer"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/mushroom-scorer"
    log_stream_name: str = "2026/11/27/[$LATEST]0"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class FakeKinesisClient:
    """``put_records`` that fails chosen attempts: per call, a set of entry positions to fail
    (ProvisionedThroughputExceededException) or an exception to raise."""

    script: list[Any] = field(default_factory=list)
    calls: list[list[dict]] = field(default_factory=list)
    written: list[dict] = field(default_factory=list)

    def put_records(self, Records: list[dict], StreamName: str = "", **_: Any) -> dict:
        self.calls.append(Records)
        step = self.script.pop(0) if self.script else set()
        if isinstance(step, Exception):
            raise step
        results = []
        for position, record in enumerate(Records):
            if step == "all" or position in step:
                results.append(
                    {
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded for shard shardId-000000000000",
                    }
                )
            else:
                self.written.append(record)
                results.append({"SequenceNumber": str(len(self.written)), "ShardId": "shard-0"})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedRecordCount": failed, "Records": results}


def client_error(code: str, operation: str = "PutRecords") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"fake {code}"}}, operation)
