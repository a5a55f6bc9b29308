"""The local Lambda runtime against a moto server: deployed zip, ESM semantics, DLQ, integrity."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from emulation.lambda_runtime import aws as runtime_aws
from emulation.lambda_runtime.runtime import run as runtime_run
from emulation.local_lambda import invoke, main, run_until_idle
from tests.integration.lambda_stack import (
    BUCKET,
    HANDLER_SOURCE,
    REGION,
    Stack,
    kinesis_record,
    wait_for,
    zip_source,
)

pytestmark = pytest.mark.integration


@pytest.fixture()
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_endpoint


def test_poison_record_goes_to_dlq_and_others_are_processed_once(
    aws_env: str, tmp_path: Path
) -> None:
    stack = Stack("poison")
    stack.deploy()
    stack.map(
        BatchSize=10,
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=2,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        DestinationConfig={"OnFailure": {"Destination": stack.queue_arn}},
    )
    bodies = [{"id": f"obs-{i:03d}"} for i in range(50)]
    bodies[23]["poison"] = True
    sequences = stack.put(bodies)

    stats = run_until_idle(stack.function, idle_seconds=0.5, timeout=60, state_dir=tmp_path)

    outputs = wait_for(lambda: (o := stack.outputs()) and len(o) >= 49 and o)
    ids = sorted(o["id"] for o in outputs)
    assert ids == sorted(b["id"] for b in bodies if not b.get("poison"))  # each exactly once
    first = outputs[0]
    assert first["function_name"] == stack.function
    assert first["memory_limit_in_mb"] == "256"
    assert 0 < first["remaining_ms"] <= 30_000
    assert first["task_root_first"] and first["greeting"] == "hi"
    assert first["eventID"] == f"shardId-000000000000:{first['seq']}"

    dlq = wait_for(stack.dlq)
    assert len(dlq) == 1
    info = dlq[0]["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == sequences[23]
    assert info["batchSize"] == 1 and info["streamArn"] == stack.input_arn
    assert dlq[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert dlq[0]["requestContext"]["approximateInvokeCount"] == 3  # 1 + MaximumRetryAttempts
    assert dlq[0]["responseContext"]["functionError"] == "Unhandled"
    assert stats.records_succeeded == 49 and stats.records_discarded == 1
    assert stats.cold_starts == 1  # one warm environment for all invocations
    assert stats.checkpoints  # progress reached the end of the shard
    assert list(stats.checkpoints.values())[0]["shardId-000000000000"] == sequences[-1]

    # A second run resumes from the persisted checkpoint: nothing is processed again.
    again = run_until_idle(stack.function, idle_seconds=0.3, timeout=30, state_dir=tmp_path)
    assert again.records_read == 0


def test_zip_with_another_sha_is_refused(aws_env: str, tmp_path: Path) -> None:
    stack = Stack("sha")
    stack.deploy()
    uri = f"s3://{BUCKET}/lambda/{stack.function}.zip"
    bucket, key = runtime_aws.parse_s3_uri(uri)
    stack.s3.put_object(Bucket=bucket, Key=key, Body=zip_source(HANDLER_SOURCE + "\n# tampered\n"))

    with pytest.raises(runtime_aws.CodeIntegrityError, match="CodeSha256"):
        invoke(stack.function, {"Records": []}, state_dir=tmp_path)
    assert not list((tmp_path / "code").glob("*/.verified"))


def test_invoke_like_aws_cli_reports_function_errors_and_timeouts(
    aws_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    stack = Stack("invoke")
    stack.deploy(timeout=1)
    good = {"Records": [kinesis_record(stack, {"id": "obs-1"})]}
    response = invoke(stack.function, good, state_dir=tmp_path)
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["Payload"] == {"batchItemFailures": []}

    poison = {"Records": [kinesis_record(stack, {"id": "obs-2", "poison": True})]}
    response = invoke(stack.function, poison, state_dir=tmp_path)
    assert response["FunctionError"] == "Unhandled"
    assert response["Payload"]["errorType"] == "ValueError"
    assert response["Payload"]["errorMessage"] == "poison record obs-2"

    slow = {"Records": [kinesis_record(stack, {"id": "obs-3", "sleep": 5})]}
    response = invoke(stack.function, slow, state_dir=tmp_path)
    assert response["FunctionError"] == "Unhandled"
    assert response["Payload"]["errorType"] == "Sandbox.Timedout"

    # The CLI prints the same response as JSON.
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(good))
    monkeypatch.setenv("LOCAL_LAMBDA_STATE_DIR", str(tmp_path))
    assert main(["invoke", "--event", str(event_file), "--function", stack.function]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["StatusCode"] == 200 and printed["ExecutedVersion"] == "$LATEST"


def test_a_call_outside_the_role_fails_and_the_credentials_are_the_roles(
    aws_env: str, tmp_path: Path
) -> None:
    stack = Stack("iam")
    stack.deploy()
    refused = {"Records": [kinesis_record(stack, {"id": "obs-1", "write_input": True})]}
    response = invoke(stack.function, refused, state_dir=tmp_path)
    assert response["FunctionError"] == "Unhandled"
    assert response["Payload"]["errorType"] == "ClientError"
    message = response["Payload"]["errorMessage"]
    assert "(AccessDeniedException) when calling the PutRecords operation" in message
    assert f"assumed-role/role-iam/{stack.function} is not authorized to perform: " in message
    assert f"kinesis:PutRecords on resource: {stack.input_arn}" in message
    assert stack.outputs() == []  # nothing written before the refusal either
    allowed = {"Records": [kinesis_record(stack, {"id": "obs-2"})]}
    assert "FunctionError" not in invoke(stack.function, allowed, state_dir=tmp_path)
    (output,) = stack.outputs()
    assert output["id"] == "obs-2"
    # sts:AssumeRole credentials of the role, not the caller's ("test"): moto's ASIA... keys.
    assert output["access_key"].startswith("ASIA")


def test_a_stop_request_ends_endless_retries_of_a_poison_record(
    aws_env: str, tmp_path: Path
) -> None:
    stack = Stack("stop")
    stack.deploy()
    stack.map(BatchSize=10, MaximumRetryAttempts=-1, MaximumRecordAgeInSeconds=-1)
    sequences = stack.put([{"id": "obs-0"}, {"id": "obs-1", "poison": True}, {"id": "obs-2"}])
    started = time.monotonic()
    stop = threading.Event()
    # The request comes mid-retry: the poison record fails, and is retried, from the first
    # second on; 5 s leave room for the execution environment's start on a busy machine.
    # (The run's on_stats callback cannot say it: it reports between batches, and the retries
    # of one batch never end.)
    timer = threading.Timer(5.0, stop.set)
    timer.start()
    try:
        stats = run_until_idle(
            stack.function, idle_seconds=0.5, timeout=120, state_dir=tmp_path, stop=stop
        )
        stopped = time.monotonic()
    finally:
        timer.cancel()
    assert stop.is_set() and stopped - started < 15
    assert stats.stopped_because == "stopped" and stats.retries > 0
    assert stats.records_discarded == 0 and stats.records_succeeded == 0
    assert stats.checkpoints == {next(iter(stats.checkpoints)): {}}  # nothing acknowledged
    # max_seconds is honoured mid-retry too, and the next run starts at the same record.
    # The budget covers the new execution environment's start (seconds on a loaded machine):
    # the poison record keeps failing, so the run still ends on max-seconds, mid-retry.
    again = run_until_idle(stack.function, idle_seconds=0.5, timeout=8, state_dir=tmp_path)
    assert again.stopped_because == "max-seconds" and again.records_read == len(sequences)


def test_alias_moves_mid_stream_switch_versions_between_batches(
    aws_env: str, tmp_path: Path
) -> None:
    """Rollout and rollback through the alias while records stream: one output per record,
    each batch on one version, version 1 before the move, 2 after it, 1 after the rollback."""
    stack = Stack("alias")
    stack.deploy()
    v1 = stack.publish("v1")
    alias_arn = stack.lambda_.create_alias(
        FunctionName=stack.function, Name="live", FunctionVersion=v1
    )["AliasArn"]
    assert stack.map(function=alias_arn, BatchSize=10)["FunctionArn"] == alias_arn
    stop, producing = threading.Event(), threading.Event()
    producing.set()
    result: dict[str, Any] = {}
    messages: list[str] = []
    put: list[str] = []

    def serve() -> None:
        result["stats"] = runtime_run(
            stack.function,
            stop=stop,
            state_dir=tmp_path,
            persist_checkpoints=False,
            progress=messages.append,
        )

    def produce() -> None:
        while producing.is_set():
            bodies = [{"id": f"obs-{len(put) + i:04d}"} for i in range(5)]
            stack.put(bodies)
            put.extend(b["id"] for b in bodies)
            time.sleep(0.03)

    def versions_seen() -> list[str]:
        return [o["function_version"] for o in stack.outputs()]

    server, producer = threading.Thread(target=serve), threading.Thread(target=produce)
    server.start()
    producer.start()
    try:
        wait_for(lambda: len(versions_seen()) >= 40, timeout=60)
        v2 = stack.publish("v2")
        stack.lambda_.update_alias(FunctionName=stack.function, Name="live", FunctionVersion=v2)
        wait_for(lambda: "2" in versions_seen(), timeout=30)
        seen = len(versions_seen())
        wait_for(lambda: len(versions_seen()) >= seen + 40, timeout=30)
        stack.lambda_.update_alias(FunctionName=stack.function, Name="live", FunctionVersion=v1)
        wait_for(lambda: versions_seen()[-1] == "1", timeout=30)
        producing.clear()
        producer.join()
        wait_for(lambda: len(stack.outputs()) >= len(put), timeout=60)
    finally:
        producing.clear()
        stop.set()
        server.join(timeout=30)
        producer.join(timeout=5)
    outputs = stack.outputs()
    assert sorted(o["id"] for o in outputs) == sorted(put)  # every record exactly once
    ordered = sorted(outputs, key=lambda o: int(o["seq"]))
    # Runs of one version along the shard: 1, then 2 (rollout), then 1 again (rollback).
    runs = [
        v
        for i, v in enumerate(o["function_version"] for o in ordered)
        if i == 0 or ordered[i - 1]["function_version"] != v
    ]
    assert runs == [v1, v2, v1]
    by_request: dict[str, set[str]] = {}
    for output in outputs:
        by_request.setdefault(output["request_id"], set()).add(output["function_version"])
        # The version's own environment, invoked through the alias ARN as on AWS.
        assert output["greeting"] == f"v{output['function_version']}"
        assert output["invoked_arn"] == alias_arn
    assert all(len(versions) == 1 for versions in by_request.values())  # no batch mixes
    stats = result["stats"]
    assert stats.records_succeeded == len(put) and stats.records_discarded == 0
    assert set(stats.invocations_by_version) == {v1, v2}
    assert stats.cold_starts == 3  # one environment per switch
    assert any(f"now runs version {v2} (was {v1})" in m for m in messages)


def test_a_version_runs_the_code_it_was_published_with(aws_env: str, tmp_path: Path) -> None:
    """After a new zip is deployed (new key, tag moved, old object deleted, as Terraform does),
    version 1 still runs its own code, found among the versioned bucket's object versions."""
    s3 = boto3.client("s3")
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    stack = Stack("code")
    stack.deploy()
    v1 = stack.publish("v1")
    old_key = f"lambda/{stack.function}.zip"
    new_key = f"lambda/{stack.function}-b.zip"
    code_b = HANDLER_SOURCE.replace('os.environ.get("GREETING")', '"code-b"')
    s3.put_object(Bucket=BUCKET, Key=new_key, Body=zip_source(code_b))
    stack.lambda_.update_function_code(FunctionName=stack.function, S3Bucket=BUCKET, S3Key=new_key)
    function_arn = stack.lambda_.get_function(FunctionName=stack.function)["Configuration"][
        "FunctionArn"
    ]
    stack.lambda_.tag_resource(
        Resource=function_arn, Tags={"package_s3_uri": f"s3://{BUCKET}/{new_key}"}
    )
    s3.delete_object(Bucket=BUCKET, Key=old_key)

    pinned = invoke(
        f"{stack.function}:{v1}",
        {"Records": [kinesis_record(stack, {"id": "obs-v1"})]},
        state_dir=tmp_path,
    )
    latest = invoke(
        stack.function,
        {"Records": [kinesis_record(stack, {"id": "obs-latest"})]},
        state_dir=tmp_path,
    )
    assert pinned["ExecutedVersion"] == v1 and latest["ExecutedVersion"] == "$LATEST"
    greetings = {o["id"]: (o["greeting"], o["function_version"]) for o in stack.outputs()}
    assert greetings == {"obs-v1": ("v1", v1), "obs-latest": ("code-b", "$LATEST")}
