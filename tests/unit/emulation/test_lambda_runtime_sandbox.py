"""The worker process: context, environment, warm reuse, errors and timeouts (no network)."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import pytest

from emulation.lambda_runtime import aws
from emulation.lambda_runtime.model import ExecutionIdentity, FunctionConfig
from emulation.lambda_runtime.sandbox import LambdaWorker, RuntimeMismatch, worker_environment

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


ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}


def identity(*statements: dict) -> ExecutionIdentity:
    return ExecutionIdentity(
        credentials={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
        principal_arn="arn:aws:sts::123456789012:assumed-role/r/fn",
        statements=statements or (ALLOW_ALL,),
    )


def make_worker(code_dir: Path, tmp_path: Path, **overrides) -> LambdaWorker:
    ident = overrides.pop("identity", None) or identity()
    return LambdaWorker(config(**overrides), code_dir, identity=ident, state_dir=tmp_path / "state")


@pytest.fixture()
def code_dir(tmp_path: Path) -> Path:
    root = tmp_path / "task"
    root.mkdir()
    (root / "app.py").write_text(HANDLER)
    return root


@pytest.fixture()
def worker(code_dir: Path, tmp_path: Path):
    with make_worker(code_dir, tmp_path) as w:
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


def test_import_error_is_reported_like_lambda(code_dir: Path, tmp_path: Path) -> None:
    with make_worker(code_dir, tmp_path, handler="missing_module.handle") as w:
        outcome = w.invoke({})
    assert outcome.function_error == "Unhandled"
    assert outcome.payload["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'missing_module'" in outcome.payload["errorMessage"]
    with make_worker(code_dir, tmp_path, handler="app.nope") as w:
        assert w.invoke({}).payload["errorType"] == "Runtime.HandlerNotFound"


def test_other_runtime_is_refused(code_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RuntimeMismatch):
        make_worker(code_dir, tmp_path, runtime="python3.9")


def test_worker_environment_passes_the_emulator_endpoint(code_dir: Path) -> None:
    env = worker_environment(
        config(),
        code_dir,
        "app.handle",
        parent_env={"AWS_ENDPOINT_URL": "http://x:1", "HOME": "/h"},
    )
    assert env["AWS_ENDPOINT_URL"] == "http://x:1" and "HOME" not in env


class FakeS3:
    def __init__(self, body: bytes) -> None:
        self.body, self.calls = body, 0

    def get_object(self, Bucket: str, Key: str) -> dict:
        self.calls += 1
        assert (Bucket, Key) == ("b", "lambda/fn.zip")
        return {"Body": io.BytesIO(self.body)}


def test_zip_is_verified_then_cached_by_sha(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
    data = buffer.getvalue()
    sha = aws.code_sha256(data)

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
    with (
        open(log_path, "ab") as log,
        LambdaWorker(config(), code_dir, identity=identity(), log=log, state_dir=tmp_path) as w,
    ):
        assert w.invoke({}).function_error is None
        w.invoke({"raise": True})
    text = log_path.read_text()
    assert "this goes to the log" in text and "[ERROR] KeyError" in text
    assert '"inits"' not in text  # the protocol (payloads) never reaches the log


# -- what AWS would refuse ----------------------------------------------------------------------


def deployed(tmp_path: Path, files: dict[str, str], **overrides) -> tuple[FunctionConfig, Path]:
    """A tiny function zip 'deployed' and unpacked the way the runtime does it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    data = buffer.getvalue()
    uri = {"package_s3_uri": "s3://b/lambda/fn.zip"}
    fn = config(code_sha256=aws.code_sha256(data), tags=uri, **overrides)
    return fn, aws.prepare_code(fn, tmp_path / "code", FakeS3(data))


def run_once(tmp_path: Path, source: str, event: dict | None = None, **overrides):
    ident = overrides.pop("identity", None) or identity()
    fn, root = deployed(tmp_path, {"app.py": source}, **overrides)
    with LambdaWorker(fn, root, identity=ident, state_dir=tmp_path / "state") as w:
        return w.invoke(event or {}), w


def test_a_package_missing_from_the_zip_is_an_import_error_even_if_the_host_has_it(tmp_path):
    # numpy is in the host virtualenv but not in this package, as on AWS.
    outcome, _ = run_once(tmp_path, "import numpy\n\ndef handle(e, c):\n    return 1\n")
    assert outcome.function_error == "Unhandled"
    assert outcome.payload["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'numpy'" in outcome.payload["errorMessage"]


def test_the_function_sees_its_package_the_stdlib_and_the_runtime_sdk_only(tmp_path):
    source = (
        "import os, sys, boto3, botocore, dateutil, jmespath, s3transfer, six, urllib3\n"
        "def handle(e, c):\n"
        "    return {'path': sys.path, 'ld': os.environ.get('LD_LIBRARY_PATH'),\n"
        "            'boto3': boto3.__version__}\n"
    )
    outcome, worker = run_once(tmp_path, source)
    assert outcome.function_error is None, outcome.payload
    path = outcome.payload["path"]
    assert path[0] == str(worker.code_dir)
    assert not [p for p in path if "site-packages" in p]  # not the host's virtualenv
    assert Path(path[-1]).parent.name == "runtime-packages"
    assert sorted(p.name for p in Path(path[-1]).iterdir() if p.is_symlink())[:3] == [
        "boto3",
        "boto3-" + outcome.payload["boto3"] + ".dist-info",
        "botocore",
    ]
    task_root = path[0]
    assert outcome.payload["ld"] == f"{task_root}:{task_root}/lib"


def test_allocating_past_memory_size_ends_the_invocation_like_aws(tmp_path):
    source = (
        "def handle(e, c):\n"
        "    block = b'x' * (e['mb'] << 20)  # written, so resident\n"
        "    return len(block)\n"
    )
    fn, root = deployed(tmp_path, {"app.py": source}, memory_mb=128)
    with LambdaWorker(fn, root, identity=identity(), state_dir=tmp_path / "state") as w:
        assert w.invoke({"mb": 16}).payload == 16 << 20  # within MemorySize: fine
        outcome = w.invoke({"mb": 600})
        assert outcome.function_error == "Unhandled"
        assert outcome.payload["errorType"] == "Runtime.OutOfMemory"
        assert "MemorySize 128 MB" in outcome.payload["errorMessage"]
        again = w.invoke({"mb": 1})
        assert again.cold_start and again.payload == 1 << 20  # a new environment


def test_the_task_root_is_read_only_and_tmp_is_writable(tmp_path):
    source = (
        "import os, tempfile\n"
        "def handle(e, c):\n"
        "    results = {}\n"
        "    for where in (os.environ['LAMBDA_TASK_ROOT'], tempfile.gettempdir()):\n"
        "        try:\n"
        "            with open(os.path.join(where, 'new.txt'), 'w') as f:\n"
        "                f.write('x')\n"
        "            results[where] = 'written'\n"
        "        except OSError as exc:\n"
        "            results[where] = type(exc).__name__\n"
        "    try:\n"
        "        open(os.path.join(os.environ['LAMBDA_TASK_ROOT'], 'app.py'), 'a').close()\n"
        "        results['app.py'] = 'written'\n"
        "    except OSError as exc:\n"
        "        results['app.py'] = type(exc).__name__\n"
        "    return results\n"
    )
    fn, root = deployed(tmp_path, {"app.py": source})
    with LambdaWorker(fn, root, identity=identity(), state_dir=tmp_path / "state") as w:
        results = w.invoke({}).payload
    assert (
        results.pop(str(root)) == "PermissionError" and results.pop("app.py") == "PermissionError"
    )
    assert list(results.values()) == ["written"]  # the environment's own /tmp
    assert not (root / "new.txt").exists()


ROLE_CALLS = """
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=1)


def handle(event, context):
    kinesis = boto3.client("kinesis", endpoint_url="http://127.0.0.1:9", config=CONFIG)
    results = {}
    for stream in ("out", "elsewhere"):
        try:
            kinesis.put_records(StreamName=stream, Records=[{"Data": b"x", "PartitionKey": "k"}])
            results[stream] = "sent"
        except ClientError as exc:
            results[stream] = [exc.response["Error"]["Code"], exc.response["Error"]["Message"]]
        except EndpointConnectionError:
            results[stream] = "allowed (reached the network)"
    return results
"""


def test_a_call_outside_the_execution_role_is_refused(tmp_path):
    out_only = {
        "Effect": "Allow",
        "Action": ["kinesis:PutRecord", "kinesis:PutRecords"],
        "Resource": "arn:aws:kinesis:eu-west-1:123456789012:stream/out",
    }
    outcome, _ = run_once(tmp_path, ROLE_CALLS, identity=identity(out_only))
    assert outcome.function_error is None, outcome.payload
    assert outcome.payload["out"] == "allowed (reached the network)"
    code, message = outcome.payload["elsewhere"]
    assert code == "AccessDeniedException"
    assert message == (
        "User: arn:aws:sts::123456789012:assumed-role/r/fn is not authorized to perform: "
        "kinesis:PutRecords on resource: arn:aws:kinesis:eu-west-1:123456789012:stream/elsewhere "
        "because no identity-based policy allows the kinesis:PutRecords action"
    )
