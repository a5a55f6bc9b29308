"""The worker process: context, environment, warm reuse, errors and timeouts (no network)."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import pytest

from scripts.lambda_runtime import aws
from scripts.lambda_runtime.model import FunctionConfig
from scripts.lambda_runtime.sandbox import LambdaWorker, RuntimeMismatch, worker_environment

HANDLER = """
import os
import sys
import time

COLD = {"inits": 0}
COLD["inits"] += 1


def handle(event, context):
    print("this goes to the log, not into the protocol")
    if event.get("raise"):
        raise KeyError("boom")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("unserializable"):
        return {"value": object()}
    if event.get("exit"):
        os._exit(3)
    return {
        "inits": COLD["inits"],
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
        },
        "env": {k: os.environ.get(k) for k in (
            "_HANDLER", "AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_FUNCTION_VERSION", "LAMBDA_TASK_ROOT", "AWS_EXECUTION_ENV", "GREETING",
            "AWS_ACCESS_KEY_ID", "_X_AMZN_TRACE_ID", "TZ")},
        "path0": sys.path[0],
        "cwd": os.getcwd(),
    }
"""


def config(**overrides) -> FunctionConfig:
    base = dict(
        name="fn",
        arn="arn:aws:lambda:eu-west-1:123456789012:function:fn",
        handler="app.handle",
        runtime="python3.12",
        timeout_s=2,
        memory_mb=512,
        package_type="Zip",
        code_sha256="",
        role="arn:aws:iam::123456789012:role/r",
        environment={"GREETING": "hello", "AWS_LAMBDA_FUNCTION_NAME": "not-allowed"},
    )
    base.update(overrides)
    return FunctionConfig(**base)


@pytest.fixture()
def code_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(HANDLER)
    return tmp_path


@pytest.fixture()
def worker(code_dir: Path):
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    with LambdaWorker(config(), code_dir, credentials=credentials) as w:
        yield w


def test_context_and_environment_are_lambdas(worker: LambdaWorker, code_dir: Path) -> None:
    outcome = worker.invoke({})
    assert outcome.function_error is None and outcome.cold_start
    body = outcome.payload
    ctx = body["context"]
    assert ctx["function_name"] == "fn" and ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:fn"
    assert ctx["memory_limit_in_mb"] == "512"  # a string, as in the real runtime
    assert ctx["aws_request_id"] == outcome.request_id
    assert ctx["log_group_name"] == "/aws/lambda/fn"
    assert "[$LATEST]" in ctx["log_stream_name"]
    assert 0 < ctx["remaining"] <= 2000
    env = body["env"]
    assert env["_HANDLER"] == "app.handle" and env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fn"  # reserved variables win
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["GREETING"] == "hello" and env["AWS_ACCESS_KEY_ID"] == "test"
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-") and env["TZ"] == ":UTC"
    assert Path(env["LAMBDA_TASK_ROOT"]) == code_dir == Path(body["path0"]) == Path(body["cwd"])


def test_worker_stays_warm(worker: LambdaWorker) -> None:
    first, second = worker.invoke({}), worker.invoke({})
    assert first.cold_start and not second.cold_start
    assert second.payload["inits"] == 1 and worker.cold_starts == 1


def test_handler_exception_is_a_function_error(worker: LambdaWorker) -> None:
    outcome = worker.invoke({"raise": True})
    assert outcome.function_error == "Unhandled"
    assert outcome.payload["errorType"] == "KeyError"
    assert outcome.payload["errorMessage"] == "'boom'"
    assert outcome.payload["stackTrace"]
    assert worker.invoke({}).function_error is None and worker.cold_starts == 1  # still warm


def test_timeout_kills_and_restarts_the_worker(worker: LambdaWorker) -> None:
    worker.invoke({})
    outcome = worker.invoke({"sleep": 10})
    assert outcome.function_error == "Unhandled"
    assert outcome.payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in outcome.payload["errorMessage"]
    again = worker.invoke({})
    assert again.cold_start and again.payload["inits"] == 1 and worker.cold_starts == 2


def test_unserializable_result_and_crash(worker: LambdaWorker) -> None:
    outcome = worker.invoke({"unserializable": True})
    assert outcome.payload["errorType"] == "Runtime.MarshalError"
    crash = worker.invoke({"exit": True})
    assert crash.payload["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in crash.payload["errorMessage"]
    assert worker.invoke({}).cold_start


def test_import_error_is_reported_like_lambda(code_dir: Path) -> None:
    with LambdaWorker(config(handler="missing_module.handle"), code_dir) as w:
        outcome = w.invoke({})
    assert outcome.function_error == "Unhandled"
    assert outcome.payload["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'missing_module'" in outcome.payload["errorMessage"]
    with LambdaWorker(config(handler="app.nope"), code_dir) as w:
        assert w.invoke({}).payload["errorType"] == "Runtime.HandlerNotFound"


def test_other_runtime_is_refused(code_dir: Path) -> None:
    with pytest.raises(RuntimeMismatch):
        LambdaWorker(config(runtime="python3.9"), code_dir)


def test_worker_environment_passes_the_emulator_endpoint(code_dir: Path) -> None:
    env = worker_environment(
        config(),
        code_dir,
        "app.handle",
        parent_env={"AWS_ENDPOINT_URL": "http://x:1", "HOME": "/h"},
    )
    assert env["AWS_ENDPOINT_URL"] == "http://x:1" and "HOME" not in env


def test_zip_is_verified_then_cached_by_sha(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
    data = buffer.getvalue()
    sha = aws.code_sha256(data)

    class FakeS3:
        def __init__(self, body: bytes) -> None:
            self.body, self.calls = body, 0

        def get_object(self, Bucket: str, Key: str) -> dict:
            self.calls += 1
            assert (Bucket, Key) == ("b", "lambda/fn.zip")
            return {"Body": io.BytesIO(self.body)}

    fn = config(code_sha256=sha, tags={"package_s3_uri": "s3://b/lambda/fn.zip"})
    s3 = FakeS3(data)
    target = aws.prepare_code(fn, tmp_path, s3)
    assert (target / "app.py").read_text() == HANDLER
    assert target.name == base64.b64decode(sha).hex()
    assert aws.prepare_code(fn, tmp_path, s3) == target and s3.calls == 1  # cache hit

    tampered = config(code_sha256=aws.code_sha256(b"other"), tags=fn.tags)
    with pytest.raises(aws.CodeIntegrityError, match="refusing to run"):
        aws.prepare_code(tampered, tmp_path, FakeS3(data))
    with pytest.raises(aws.CodeIntegrityError, match="package_s3_uri"):
        aws.prepare_code(config(code_sha256=aws.code_sha256(b"x")), tmp_path, s3)


def test_log_output_does_not_break_the_protocol(code_dir: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "fn.log"
    with open(log_path, "ab") as log, LambdaWorker(config(), code_dir, log=log) as w:
        assert w.invoke({}).function_error is None
        w.invoke({"raise": True})
    text = log_path.read_text()
    assert "this goes to the log" in text and "[ERROR] KeyError" in text
    assert '"inits"' not in text  # the protocol (payloads) never reaches the log
