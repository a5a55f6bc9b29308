"""Lambda's Invoke on the embedded emulator (emulation.lambda_runtime.invoke_api): limits,
status codes, headers and the log tail, with a fake function (no moto, no worker)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from emulation.lambda_runtime import invoke_api, runtime
from emulation.lambda_runtime.model import FunctionRef, InvokeOutcome
from emulation.lambda_runtime.runtime import MAX_SYNC_PAYLOAD_BYTES, PayloadTooLarge


class FakeFunction:
    """Records what ran; returns a fixed outcome and log."""

    def __init__(self, payload: Any = None, error: str | None = None, log: bytes = b"") -> None:
        self.outcome = InvokeOutcome(
            request_id="req-1",
            payload={"ok": True} if payload is None else payload,
            function_error=error,
            executed_version="3",
            duration_ms=12.3,
        )
        self.log = log
        self.ran: list[tuple[FunctionRef, Any]] = []
        self.queued: list[tuple[FunctionRef, Any]] = []

    def run(self, ref: FunctionRef, event: Any) -> invoke_api.Invocation:
        self.ran.append((ref, event))
        return invoke_api.Invocation(self.outcome, self.log, 256, 47.2)

    def run_async(self, ref: FunctionRef, event: Any) -> None:
        self.queued.append((ref, event))


def call(
    fake: FakeFunction, body: bytes, name: str = "f", qualifier: str | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    return invoke_api.invoke_response(name, qualifier, body, headers, fake.run, fake.run_async)


def test_a_success_returns_the_payload_and_the_executed_version() -> None:
    fake = FakeFunction(payload={"batchItemFailures": []})
    status, headers, body = call(fake, b'{"Records": []}', "f", "live")
    assert status == 200
    assert headers["X-Amz-Executed-Version"] == "3"
    assert "X-Amz-Function-Error" not in headers and "X-Amz-Log-Result" not in headers
    assert json.loads(body) == {"batchItemFailures": []}
    assert fake.ran == [(FunctionRef("f", "live"), {"Records": []})]


def test_the_qualifier_may_come_in_the_name_or_the_arn() -> None:
    fake = FakeFunction()
    call(fake, b"{}", "f:7")
    call(fake, b"{}", "arn:aws:lambda:us-east-1:123456789012:function:f:live")
    call(fake, b"", "f")  # no body: an empty event
    assert [ref for ref, _ in fake.ran] == [
        FunctionRef("f", "7"),
        FunctionRef("f", "live"),
        FunctionRef("f"),
    ]
    assert fake.ran[-1][1] == {}


def test_a_handler_error_is_a_200_with_function_error_and_the_error_payload() -> None:
    error = {"errorType": "ValueError", "errorMessage": "boom", "stackTrace": ["..."]}
    fake = FakeFunction(payload=error, error="Unhandled")
    status, headers, body = call(fake, b"{}")
    assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled"
    assert json.loads(body) == error


def test_over_6_mb_is_refused_with_413_before_anything_runs() -> None:
    fake = FakeFunction()
    at_limit = b'"' + b"x" * (MAX_SYNC_PAYLOAD_BYTES - 2) + b'"'
    assert call(fake, at_limit)[0] == 200
    status, headers, body = call(fake, at_limit + b" ")
    assert status == 413
    assert headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
    assert "Request must be smaller than 6291456 bytes" in json.loads(body)["message"]
    assert len(fake.ran) == 1  # only the call at the limit ran


def test_a_body_that_is_not_json_is_a_400() -> None:
    fake = FakeFunction()
    status, headers, body = call(fake, b"{not json")
    assert status == 400 and headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert "Could not parse request body into json" in json.loads(body)["message"]
    assert fake.ran == []


def test_dry_run_runs_nothing_and_event_runs_in_the_background() -> None:
    fake = FakeFunction()
    assert call(fake, b"{}", **{"X-Amz-Invocation-Type": "DryRun"})[0] == 204
    assert call(fake, b'{"a": 1}', **{"X-Amz-Invocation-Type": "Event"})[0] == 202
    assert fake.ran == [] and fake.queued == [(FunctionRef("f"), {"a": 1})]
    assert call(fake, b"{}", **{"X-Amz-Invocation-Type": "Later"})[0] == 400


def test_log_type_tail_returns_the_last_4_kb_of_this_invocations_log() -> None:
    fake = FakeFunction(log=b"[INFO] hello\n")
    _, headers, _ = call(fake, b"{}", **{"X-Amz-Log-Type": "Tail"})
    tail = base64.b64decode(headers["X-Amz-Log-Result"]).decode()
    assert tail.startswith(
        "START RequestId: req-1 Version: 3\n[INFO] hello\nEND RequestId: req-1\n"
    )
    assert "REPORT RequestId: req-1\tDuration: 12.30 ms\tBilled Duration: 13 ms\t" in tail
    assert "Memory Size: 256 MB\tMax Memory Used: 48 MB" in tail

    long = FakeFunction(log=b"".join(b"line %05d\n" % i for i in range(2000)))
    _, headers, _ = call(long, b"{}", **{"X-Amz-Log-Type": "Tail"})
    tail = base64.b64decode(headers["X-Amz-Log-Result"])
    assert len(tail) == invoke_api.LOG_TAIL_BYTES
    assert b"line 01999\nEND RequestId: req-1\n" in tail and b"START" not in tail


def test_a_response_over_6_mb_becomes_a_function_error() -> None:
    fake = FakeFunction(payload="x" * MAX_SYNC_PAYLOAD_BYTES)
    status, headers, body = call(fake, b"{}")
    assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled"
    assert json.loads(body)["errorType"] == "Function.ResponseSizeTooLarge"


def test_the_local_invoke_path_refuses_over_6_mb_too() -> None:
    event = {"pad": "x" * MAX_SYNC_PAYLOAD_BYTES}
    with pytest.raises(PayloadTooLarge, match="RequestEntityTooLarge.*6,291,456"):
        runtime.invoke("f", event)  # refused before any client or worker is made
    runtime.check_payload_size(MAX_SYNC_PAYLOAD_BYTES)  # the limit itself is allowed
