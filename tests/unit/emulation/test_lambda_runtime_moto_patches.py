"""The moto Kinesis patches keep moto's results (sequence numbers, GetRecords pages)."""

from __future__ import annotations

import boto3
import pytest

from emulation.lambda_runtime import moto_patches


@pytest.fixture()
def kinesis(moto_aws: None) -> object:
    client = boto3.client("kinesis")
    client.create_stream(StreamName="s", ShardCount=1)
    return client


def _pages(client: object, iterator_type: str, limit: int, **kwargs: str) -> list[list[str]]:
    iterator = client.get_shard_iterator(  # type: ignore[attr-defined]
        StreamName="s", ShardId="shardId-000000000000", ShardIteratorType=iterator_type, **kwargs
    )["ShardIterator"]
    pages = []
    for _ in range(5):
        response = client.get_records(ShardIterator=iterator, Limit=limit)  # type: ignore
        pages.append([r["SequenceNumber"] for r in response["Records"]])
        iterator = response["NextShardIterator"]
    return pages


def test_patched_moto_returns_what_moto_returns(kinesis: object) -> None:
    records = [{"Data": f"r{i}".encode(), "PartitionKey": str(i)} for i in range(25)]
    kinesis.put_records(StreamName="s", Records=records)  # type: ignore[attr-defined]
    expected = [
        _pages(kinesis, "TRIM_HORIZON", 10),
        _pages(kinesis, "AFTER_SEQUENCE_NUMBER", 7, StartingSequenceNumber="3"),
        _pages(kinesis, "LATEST", 10),
    ]
    moto_patches.apply()
    try:
        put = kinesis.put_records(StreamName="s", Records=records[:2])  # type: ignore
        assert [r["SequenceNumber"] for r in put["Records"]] == ["26", "27"]
        actual = [
            _pages(kinesis, "TRIM_HORIZON", 10),
            _pages(kinesis, "AFTER_SEQUENCE_NUMBER", 7, StartingSequenceNumber="3"),
            _pages(kinesis, "LATEST", 10),
        ]
    finally:
        moto_patches.restore()
    # Same pages, plus the two records put after patching at the end of each read.
    assert actual[0][:3] == [expected[0][0], expected[0][1], expected[0][2] + ["26", "27"]]
    assert sum(actual[1], []) == sum(expected[1], []) + ["26", "27"]
    assert actual[2] == [[], [], [], [], []]
