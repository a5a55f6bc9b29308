"""The local Lambda runtime against a moto server: deployed zip, ESM semantics, DLQ, integrity."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import pytest

from emulation.lambda_runtime import aws as runtime_aws
from emulation.lambda_runtime import moto_patches
from emulation.lambda_runtime.runtime import run as runtime_run
from emulation.local_lambda import invoke, main, run_until_idle

pytestmark = pytest.mark.integration

REGION = "us-east-1"
FUNCTION = "local-lambda-test"
BUCKET = "local-lambda-test-code"

HANDLER_SOURCE = """
import base64
import json
import os
import sys
import time

import boto3

_kinesis = boto3.client("kinesis")  # created once per execution environment (cold start)
_OUT = os.environ["OUTPUT_STREAM_NAME"]


def handle(event, context):
    entries = []
    for record in event["Records"]:
        body = json.loads(base64.b64decode(record["kinesis"]["data"]))
        if body.get("poison"):
            raise ValueError(f"poison record {body['id']}")
        if body.get("write_input"):  # not allowed by the role: PutRecords on the input stream
            _kinesis.put_records(StreamName=os.environ["INPUT_STREAM_NAME"], Records=[
                {"Data": b"{}", "PartitionKey": "x"}])
        if body.get("sleep"):
            time.sleep(body["sleep"])
        entries.append({
            "Data": json.dumps({
                "id": body["id"],
                "seq": record["kinesis"]["sequenceNumber"],
                "eventID": record["eventID"],
                "function_name": context.function_name,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "request_id": context.aws_request_id,
                "task_root_first": sys.path[0] == os.environ["LAMBDA_TASK_ROOT"],
                "handler_env": os.environ["_HANDLER"],
                "greeting": os.environ.get("GREETING"),
                "access_key": os.environ["AWS_ACCESS_KEY_ID"],
                "function_version": context.function_version,
                "invoked_arn": context.invoked_function_arn,
            }).encode(),
            "PartitionKey": body["id"],
        })
    if entries:
        _kinesis.put_records(StreamName=_OUT, Records=entries)
    return {"batchItemFailures": []}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("testfn/__init__.py", "")
        archive.writestr("testfn/app.py", source)
    return buffer.getvalue()


def _wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within timeout")
        time.sleep(interval)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    moto_patches.apply()  # as emulation.lambda_runtime.moto_server runs it
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        moto_patches.restore()


@pytest.fixture()
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_endpoint


class Stack:
    """Streams, DLQ, function and mapping created the way Terraform does it."""

    def __init__(self, suffix: str) -> None:
        self.kinesis = boto3.client("kinesis")
        self.lambda_ = boto3.client("lambda")
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.iam = boto3.client("iam")
        self.suffix = suffix
        self.function = f"{FUNCTION}-{suffix}"
        self.input = f"in-{suffix}"
        self.output = f"out-{suffix}"
        for name in (self.input, self.output):
            self.kinesis.create_stream(StreamName=name, ShardCount=1)
        self.input_arn = self.kinesis.describe_stream_summary(StreamName=self.input)[
            "StreamDescriptionSummary"
        ]["StreamARN"]
        self.queue_url = self.sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]

    def deploy(self, source: str = HANDLER_SOURCE, timeout: int = 30) -> bytes:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = self.iam.create_role(
            RoleName=f"role-{self.suffix}", AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]["Arn"]
        output_arn = self.kinesis.describe_stream_summary(StreamName=self.output)[
            "StreamDescriptionSummary"
        ]["StreamARN"]
        # What the function does, nothing more (the way Terraform scopes the scorer's role).
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "kinesis:PutRecords", "Resource": output_arn}
            ],
        }
        self.iam.put_role_policy(
            RoleName=f"role-{self.suffix}", PolicyName="fn", PolicyDocument=json.dumps(policy)
        )
        code = _zip(source)
        try:
            self.s3.create_bucket(Bucket=BUCKET)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        key = f"lambda/{self.function}.zip"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=code)
        self.lambda_.create_function(
            FunctionName=self.function,
            Runtime="python3.12",
            Role=role,
            Handler="testfn.app.handle",
            Code={"S3Bucket": BUCKET, "S3Key": key},
            Timeout=timeout,
            MemorySize=256,
            Environment={
                "Variables": {
                    "OUTPUT_STREAM_NAME": self.output,
                    "INPUT_STREAM_NAME": self.input,
                    "GREETING": "hi",
                }
            },
            Tags={"package_s3_uri": f"s3://{BUCKET}/{key}"},
        )
        return code

    def publish(self, greeting: str) -> str:
        """Publish a version whose GREETING names it (a rollout changes only the environment)."""
        self.lambda_.update_function_configuration(
            FunctionName=self.function,
            Environment={
                "Variables": {
                    "OUTPUT_STREAM_NAME": self.output,
                    "INPUT_STREAM_NAME": self.input,
                    "GREETING": greeting,
                }
            },
        )
        return self.lambda_.publish_version(FunctionName=self.function)["Version"]

    def map(self, function: str | None = None, **settings: Any) -> dict[str, Any]:
        return self.lambda_.create_event_source_mapping(
            FunctionName=function or self.function,
            EventSourceArn=self.input_arn,
            StartingPosition="TRIM_HORIZON",
            **settings,
        )

    def put(self, bodies: list[dict[str, Any]]) -> list[str]:
        response = self.kinesis.put_records(
            StreamName=self.input,
            Records=[{"Data": json.dumps(b).encode(), "PartitionKey": b["id"]} for b in bodies],
        )
        assert response.get("FailedRecordCount", 0) == 0
        return [r["SequenceNumber"] for r in response["Records"]]

    def outputs(self) -> list[dict[str, Any]]:
        shard = self.kinesis.list_shards(StreamName=self.output)["Shards"][0]["ShardId"]
        iterator = self.kinesis.get_shard_iterator(
            StreamName=self.output, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = self.kinesis.get_records(ShardIterator=iterator, Limit=10000)["Records"]
        return [json.loads(r["Data"]) for r in records]

    def dlq(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


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

    outputs = _wait_for(lambda: (o := stack.outputs()) and len(o) >= 49 and o)
    ids = sorted(o["id"] for o in outputs)
    assert ids == sorted(b["id"] for b in bodies if not b.get("poison"))  # each exactly once
    first = outputs[0]
    assert first["function_name"] == stack.function
    assert first["memory_limit_in_mb"] == "256"
    assert 0 < first["remaining_ms"] <= 30_000
    assert first["task_root_first"] and first["greeting"] == "hi"
    assert first["eventID"] == f"shardId-000000000000:{first['seq']}"

    dlq = _wait_for(stack.dlq)
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
    stack.s3.put_object(Bucket=bucket, Key=key, Body=_zip(HANDLER_SOURCE + "\n# tampered\n"))

    with pytest.raises(runtime_aws.CodeIntegrityError, match="CodeSha256"):
        invoke(stack.function, {"Records": []}, state_dir=tmp_path)
    assert not list((tmp_path / "code").glob("*/.verified"))


def test_invoke_like_aws_cli_reports_function_errors_and_timeouts(
    aws_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    stack = Stack("invoke")
    stack.deploy(timeout=1)
    good = {"Records": [_kinesis_record(stack, {"id": "obs-1"})]}
    response = invoke(stack.function, good, state_dir=tmp_path)
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["Payload"] == {"batchItemFailures": []}

    poison = {"Records": [_kinesis_record(stack, {"id": "obs-2", "poison": True})]}
    response = invoke(stack.function, poison, state_dir=tmp_path)
    assert response["FunctionError"] == "Unhandled"
    assert response["Payload"]["errorType"] == "ValueError"
    assert response["Payload"]["errorMessage"] == "poison record obs-2"

    slow = {"Records": [_kinesis_record(stack, {"id": "obs-3", "sleep": 5})]}
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
    refused = {"Records": [_kinesis_record(stack, {"id": "obs-1", "write_input": True})]}
    response = invoke(stack.function, refused, state_dir=tmp_path)
    assert response["FunctionError"] == "Unhandled"
    assert response["Payload"]["errorType"] == "ClientError"
    message = response["Payload"]["errorMessage"]
    assert "(AccessDeniedException) when calling the PutRecords operation" in message
    assert f"assumed-role/role-iam/{stack.function} is not authorized to perform: " in message
    assert f"kinesis:PutRecords on resource: {stack.input_arn}" in message
    assert stack.outputs() == []  # nothing written before the refusal either
    allowed = {"Records": [_kinesis_record(stack, {"id": "obs-2"})]}
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
    stop = threading.Event()
    timer = threading.Timer(2.0, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        stats = run_until_idle(
            stack.function, idle_seconds=0.5, timeout=120, state_dir=tmp_path, stop=stop
        )
    finally:
        timer.cancel()
    assert time.monotonic() - started < 10
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
        _wait_for(lambda: len(versions_seen()) >= 40, timeout=60)
        v2 = stack.publish("v2")
        stack.lambda_.update_alias(FunctionName=stack.function, Name="live", FunctionVersion=v2)
        _wait_for(lambda: "2" in versions_seen(), timeout=30)
        seen = len(versions_seen())
        _wait_for(lambda: len(versions_seen()) >= seen + 40, timeout=30)
        stack.lambda_.update_alias(FunctionName=stack.function, Name="live", FunctionVersion=v1)
        _wait_for(lambda: versions_seen()[-1] == "1", timeout=30)
        producing.clear()
        producer.join()
        _wait_for(lambda: len(stack.outputs()) >= len(put), timeout=60)
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
    s3.put_object(Bucket=BUCKET, Key=new_key, Body=_zip(code_b))
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
        {"Records": [_kinesis_record(stack, {"id": "obs-v1"})]},
        state_dir=tmp_path,
    )
    latest = invoke(
        stack.function,
        {"Records": [_kinesis_record(stack, {"id": "obs-latest"})]},
        state_dir=tmp_path,
    )
    assert pinned["ExecutedVersion"] == v1 and latest["ExecutedVersion"] == "$LATEST"
    greetings = {o["id"]: (o["greeting"], o["function_version"]) for o in stack.outputs()}
    assert greetings == {"obs-v1": ("v1", v1), "obs-latest": ("code-b", "$LATEST")}


def _kinesis_record(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    sequence = "49590338271490256608559692538361571095921575989136588898"
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": body["id"],
            "sequenceNumber": sequence,
            "data": base64.b64encode(json.dumps(body).encode()).decode(),
            "approximateArrivalTimestamp": 1545084650.987,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": REGION,
        "eventSourceARN": stack.input_arn,
    }
