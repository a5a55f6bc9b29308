"""KinesisOutputWriter: chunking within PutRecords limits, bounded retries of failed entries."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import EndpointConnectionError

from lambda_function.writer import (
    MAX_BYTES_PER_RECORD,
    MAX_BYTES_PER_REQUEST,
    InMemoryWriter,
    KinesisOutputWriter,
    OutputBatch,
    chunk_indices,
)
from tests.fakes.scorer import FakeKinesisClient, client_error


def make_batch(n: int, size: int = 100) -> OutputBatch:
    return OutputBatch(
        sequence_numbers=[f"seq-{i}" for i in range(n)],
        partition_keys=[f"pk-{i}" for i in range(n)],
        data=[b"x" * size for _ in range(n)],
    )


def make_writer(client, sleeps=None, max_attempts=4):
    return KinesisOutputWriter(
        client,
        "mushroom-verdicts",
        max_attempts=max_attempts,
        backoff_base_s=0.05,
        backoff_max_s=0.3,
        sleep=(sleeps.append if sleeps is not None else lambda _: None),
        rng=random.Random(0),
    )


def test_chunks_at_500_records():
    client = FakeKinesisClient()
    assert make_writer(client).write(make_batch(1234)) == []
    assert [len(call) for call in client.calls] == [500, 500, 234]
    assert [r["PartitionKey"] for r in client.written] == [f"pk-{i}" for i in range(1234)]


def test_chunks_at_5_mib_per_request():
    size = 600 * 1024  # 8 of these fit in 5 MiB, 9 do not
    batch = make_batch(20, size=size)
    chunks = chunk_indices(batch, range(20))
    assert [len(c) for c in chunks] == [8, 8, 4]
    for chunk in chunks:
        assert sum(len(batch.data[i]) + len(batch.partition_keys[i]) for i in chunk) <= (
            MAX_BYTES_PER_REQUEST
        )
    client = FakeKinesisClient()
    assert make_writer(client).write(batch) == []
    assert [len(call) for call in client.calls] == [8, 8, 4]


def test_record_over_1_mib_is_reported_failed_not_dropped():
    batch = make_batch(3)
    batch.data[1] = b"x" * MAX_BYTES_PER_RECORD  # plus its partition key: over the limit
    client = FakeKinesisClient()
    assert make_writer(client).write(batch) == ["seq-1"]
    assert len(client.written) == 2


def test_only_failed_entries_are_retried_with_backoff():
    client = FakeKinesisClient(script=[{1, 3}, {0}])
    sleeps: list[float] = []
    assert make_writer(client, sleeps).write(make_batch(5)) == []
    assert [[r["PartitionKey"] for r in call] for call in client.calls] == [
        ["pk-0", "pk-1", "pk-2", "pk-3", "pk-4"],
        ["pk-1", "pk-3"],
        ["pk-1"],
    ]
    assert sorted(r["PartitionKey"] for r in client.written) == [f"pk-{i}" for i in range(5)]
    # Full jitter: each pause is within [0, min(max, base * 2^(attempt-1))].
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.05 and 0 <= sleeps[1] <= 0.1


def test_retries_exhausted_returns_the_sequence_numbers():
    client = FakeKinesisClient(script=[{2, 4}, {1}, {0}, {0}])
    sleeps: list[float] = []
    failed = make_writer(client, sleeps, max_attempts=4).write(make_batch(5))
    assert failed == ["seq-4"]
    assert len(client.calls) == 4 and len(sleeps) == 3
    assert all(s <= 0.3 for s in sleeps)


def test_throttled_call_is_retried_and_permanent_errors_raise():
    client = FakeKinesisClient(
        script=[
            client_error("ProvisionedThroughputExceededException"),
            EndpointConnectionError(endpoint_url="http://kinesis"),
        ]
    )
    assert make_writer(client).write(make_batch(3)) == []
    assert len(client.calls) == 3 and len(client.written) == 3

    missing = FakeKinesisClient(script=[client_error("ResourceNotFoundException")])
    with pytest.raises(Exception, match="ResourceNotFoundException"):
        make_writer(missing).write(make_batch(1))


def test_whole_chunk_failing_every_attempt_is_reported():
    client = FakeKinesisClient(script=[client_error("ThrottlingException")] * 2)
    assert make_writer(client, max_attempts=2).write(make_batch(3)) == ["seq-0", "seq-1", "seq-2"]


def test_stream_arn_goes_in_stream_arn():
    calls = []

    class Client:
        def put_records(self, **kwargs):
            calls.append(kwargs)
            return {"FailedRecordCount": 0, "Records": [{}]}

    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/mushroom-verdicts"
    KinesisOutputWriter(Client(), arn).write(make_batch(1))
    assert calls[0]["StreamARN"] == arn and "StreamName" not in calls[0]


def test_in_memory_writer_keeps_everything():
    writer = InMemoryWriter()
    assert writer.write(make_batch(2)) == []
    assert writer.records == [("seq-0", "pk-0", b"x" * 100), ("seq-1", "pk-1", b"x" * 100)]
