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


def _function_with_alias(lambda_client: object) -> tuple[str, str]:
    """A function with versions 1 and 2, alias live -> 1; returns (unqualified ARN, alias ARN)."""
    import io
    import json
    import zipfile

    role = boto3.client("iam").create_role(
        RoleName="fn-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handle(event, context):\n    return None\n")
    fn = lambda_client.create_function(  # type: ignore[attr-defined]
        FunctionName="f",
        Runtime="python3.12",
        Role=role,
        Handler="app.handle",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": {"V": "1"}},
    )
    lambda_client.publish_version(FunctionName="f")  # type: ignore[attr-defined]
    alias = lambda_client.create_alias(  # type: ignore[attr-defined]
        FunctionName="f", Name="live", FunctionVersion="1"
    )
    lambda_client.update_function_configuration(  # type: ignore[attr-defined]
        FunctionName="f", Environment={"Variables": {"V": "2"}}
    )
    lambda_client.publish_version(FunctionName="f")  # type: ignore[attr-defined]
    return fn["FunctionArn"], alias["AliasArn"]


def test_a_mapping_keeps_the_function_arn_it_was_given(kinesis: object) -> None:
    lambda_client = boto3.client("lambda")
    base, alias_arn = _function_with_alias(lambda_client)
    stream = kinesis.describe_stream_summary(StreamName="s")[  # type: ignore[attr-defined]
        "StreamDescriptionSummary"
    ]["StreamARN"]
    moto_patches.apply()
    try:
        given = {
            alias_arn: alias_arn,
            "f:live": alias_arn,
            f"{base}:1": f"{base}:1",
            "f:2": f"{base}:2",
            "f": base,
            base: base,
        }
        created = {
            name: lambda_client.create_event_source_mapping(
                FunctionName=name, EventSourceArn=stream, StartingPosition="TRIM_HORIZON"
            )
            for name in given
        }
        assert {n: m["FunctionArn"] for n, m in created.items()} == given
        # The alias moves; the mapping still names the alias (the service resolves it).
        lambda_client.update_alias(FunctionName="f", Name="live", FunctionVersion="2")
        uuid = created[alias_arn]["UUID"]
        assert lambda_client.get_event_source_mapping(UUID=uuid)["FunctionArn"] == alias_arn
        updated = lambda_client.update_event_source_mapping(UUID=uuid, FunctionName="f:1")
        assert updated["FunctionArn"] == f"{base}:1"
        with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
            lambda_client.create_event_source_mapping(
                FunctionName="f:nope", EventSourceArn=stream, StartingPosition="TRIM_HORIZON"
            )
    finally:
        moto_patches.restore()


def test_the_patches_refuse_another_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto
    from moto.kinesis.models import Shard

    monkeypatch.setattr(moto, "__version__", "5.3.0")
    original = Shard.put_record
    with pytest.raises(moto_patches.MotoVersionError) as refused:
        moto_patches.apply()
    message = str(refused.value)
    assert "moto 5.3.0 is installed" in message
    assert f"written for moto {moto_patches.TARGET_MOTO_VERSION}" in message
    assert Shard.put_record is original  # nothing was patched


def test_the_pinned_moto_version_is_the_installed_one() -> None:
    import moto

    moto_patches.check_moto_version()  # the installed version passes
    assert moto.__version__ == moto_patches.TARGET_MOTO_VERSION


def test_the_patched_server_does_not_start_on_another_moto_version(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import moto

    from emulation.lambda_runtime import moto_server

    monkeypatch.setattr(moto, "__version__", "6.0.0")
    assert moto_server.main(["-p", "0"]) == 2
    assert "moto 6.0.0 is installed" in capsys.readouterr().err
