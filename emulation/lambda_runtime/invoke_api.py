"""Lambda's Invoke API on the embedded emulator: the published code runs in the local runtime.

moto's own Invoke runs functions in Docker; ``moto_patches`` routes Invoke here instead, in the
moto server process (whose AWS_ENDPOINT_URL is the server itself). What AWS does, and so this:

- the name, ``name:qualifier``, an ARN or ``?Qualifier=`` selects $LATEST, a version or an
  alias, resolved on each call (an alias that moved runs its new version);
- a request body over 6 MB (6,291,456 bytes) is refused with 413 RequestEntityTooLargeException
  before anything runs, a body that is not JSON with 400 InvalidRequestContentException;
- ``X-Amz-Executed-Version`` names the version that ran; when the handler raises (or times out,
  or runs out of memory) the status is still 200, ``X-Amz-Function-Error: Unhandled`` is set and
  the payload is the error (``errorType``, ``errorMessage``, ``stackTrace``);
- ``X-Amz-Log-Type: Tail`` returns the last 4 KB of the invocation's log, base64, in
  ``X-Amz-Log-Result`` (START, the function's output, END, REPORT);
- ``X-Amz-Invocation-Type``: RequestResponse (default), Event (202, runs in the background),
  DryRun (204, runs nothing).

Each qualified reference keeps one warm execution environment, one invocation at a time.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from emulation.lambda_runtime.model import FunctionRef, InvokeOutcome, parse_function_ref
from emulation.lambda_runtime.runtime import MAX_SYNC_PAYLOAD_BYTES, LocalFunction
from emulation.lambda_runtime.sandbox import default_state_dir

log = logging.getLogger(__name__)

#: How much of the log ``LogType=Tail`` returns (Lambda: the last 4 KB).
LOG_TAIL_BYTES = 4096

Response = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Invocation:
    """One invocation's outcome and the log lines it wrote."""

    outcome: InvokeOutcome
    log: bytes
    memory_mb: int
    max_memory_used_mb: float


def error(status: int, error_type: str, message: str) -> Response:
    body = json.dumps({"Type": "User", "message": message}).encode()
    headers = {"x-amzn-ErrorType": error_type, "content-type": "application/json"}
    return status, headers, body


def log_tail(invocation: Invocation) -> str:
    """What ``X-Amz-Log-Result`` carries: base64 of the invocation's last 4 KB of log."""
    outcome = invocation.outcome
    request = outcome.request_id
    text = (
        f"START RequestId: {request} Version: {outcome.executed_version}\n".encode()
        + invocation.log
        + f"END RequestId: {request}\n".encode()
        + (
            f"REPORT RequestId: {request}\tDuration: {outcome.duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(outcome.duration_ms)} ms\t"
            f"Memory Size: {invocation.memory_mb} MB\t"
            f"Max Memory Used: {math.ceil(invocation.max_memory_used_mb)} MB\t\n"
        ).encode()
    )
    return base64.b64encode(text[-LOG_TAIL_BYTES:]).decode("ascii")


def invoke_response(
    function_name: str,
    qualifier: str | None,
    raw_body: bytes,
    headers: Mapping[str, str],
    run: Callable[[FunctionRef, Any], Invocation],
    run_async: Callable[[FunctionRef, Any], None],
) -> Response:
    """The HTTP response of Invoke: status, headers and body (see the module docstring).

    ``run`` invokes synchronously; ``run_async`` starts an Event invocation and returns.
    """
    if len(raw_body) > MAX_SYNC_PAYLOAD_BYTES:
        return error(
            413,
            "RequestEntityTooLargeException",
            f"Request must be smaller than {MAX_SYNC_PAYLOAD_BYTES} bytes for the "
            f"InvokeFunction operation (this one has {len(raw_body)} bytes)",
        )
    try:
        event = json.loads(raw_body) if raw_body.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        return error(
            400,
            "InvalidRequestContentException",
            f"Could not parse request body into json: {exc}",
        )
    ref = parse_function_ref(function_name, qualifier)
    invocation_type = headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    if invocation_type == "DryRun":
        return 204, {}, b""
    if invocation_type == "Event":
        run_async(ref, event)
        return 202, {}, b""
    if invocation_type != "RequestResponse":
        return error(
            400,
            "InvalidParameterValueException",
            f"InvocationType {invocation_type!r} is not one of RequestResponse, Event, DryRun",
        )
    invocation = run(ref, event)
    outcome = invocation.outcome
    body = json.dumps(outcome.payload, separators=(",", ":")).encode()
    function_error = outcome.function_error
    if len(body) > MAX_SYNC_PAYLOAD_BYTES:
        function_error = "Unhandled"
        body = json.dumps(
            {
                "errorType": "Function.ResponseSizeTooLarge",
                "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum "
                f"allowed payload size ({MAX_SYNC_PAYLOAD_BYTES} bytes).",
            }
        ).encode()
    response_headers = {
        "content-type": "application/json",
        "X-Amz-Executed-Version": outcome.executed_version,
    }
    if function_error:
        response_headers["X-Amz-Function-Error"] = function_error
    if headers.get("X-Amz-Log-Type") == "Tail":
        response_headers["X-Amz-Log-Result"] = log_tail(invocation)
    return 200, response_headers, body


class WarmFunctions:
    """One warm LocalFunction per qualified reference, each invoked one call at a time.

    Before each call the reference is resolved again (an alias's current version, a redeployed
    $LATEST); a changed version gets a new execution environment, as on Lambda.
    """

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self._lock = threading.Lock()
        self._functions: dict[FunctionRef, tuple[LocalFunction, threading.Lock, Any]] = {}

    def _get(self, ref: FunctionRef) -> tuple[LocalFunction, threading.Lock, Any]:
        with self._lock:
            entry = self._functions.get(ref)
            if entry is None:
                log_dir = self.state_dir / "logs"
                log_dir.mkdir(parents=True, exist_ok=True)
                log_file = open(log_dir / f"invoke-{ref.name}.log", "ab")
                function = LocalFunction(
                    ref.name,
                    qualifier=ref.qualifier,
                    state_dir=self.state_dir,
                    log_stream=log_file,
                )
                entry = (function, threading.Lock(), log_file)
                self._functions[ref] = entry
            return entry

    def invoke(self, ref: FunctionRef, event: Any) -> Invocation:
        """Run ``event`` through the version ``ref`` names now; the outcome and its log."""
        function, lock, log_file = self._get(ref)
        with lock:
            function.refresh()
            log_path = Path(log_file.name)
            start = log_path.stat().st_size
            outcome = function.invoke(event)
            with log_path.open("rb") as reader:
                reader.seek(start)
                written = reader.read()
            return Invocation(
                outcome, written, function.config.memory_mb, function.max_memory_used_mb
            )

    def invoke_async(self, ref: FunctionRef, event: Any) -> None:
        """An Event invocation: runs in a thread; its outcome goes to the log only."""

        def target() -> None:
            try:
                outcome = self.invoke(ref, event).outcome
                if outcome.function_error:
                    log.warning("Event invocation of %s failed: %s", ref, outcome.payload)
            except Exception:  # nothing waits for it: the log is the only witness
                log.exception("Event invocation of %s could not run", ref)

        threading.Thread(target=target, name=f"invoke-event-{ref.name}", daemon=True).start()

    def close(self) -> None:
        """Stop every worker and close the logs."""
        with self._lock:
            for function, _, log_file in self._functions.values():
                function.close()
                log_file.close()
            self._functions.clear()


_WARM: WarmFunctions | None = None
_WARM_LOCK = threading.Lock()


def warm_functions() -> WarmFunctions:
    """The process's WarmFunctions (created on the first Invoke)."""
    global _WARM
    with _WARM_LOCK:
        if _WARM is None:
            _WARM = WarmFunctions()
        return _WARM


def reset() -> None:
    """Stop the process's warm functions (moto_patches.restore)."""
    global _WARM
    with _WARM_LOCK:
        if _WARM is not None:
            _WARM.close()
        _WARM = None


def handle(function_name: str, qualifier: str | None, raw_body: bytes, headers: Any) -> Response:
    """Invoke as the moto server serves it; errors that stop the code before it runs (its zip
    changed since deployment, no execution role, another Python) are a 500 that names them."""
    warm = warm_functions()
    try:
        return invoke_response(
            function_name, qualifier, raw_body, headers, warm.invoke, warm.invoke_async
        )
    except ValueError as exc:  # QualifierError, WeightedAliasUnsupported
        return error(400, "InvalidParameterValueException", str(exc))
    except Exception as exc:  # the runtime could not run the function at all
        log.exception("Invoke of %s failed before the handler ran", function_name)
        return error(500, "ServiceException", f"the local Lambda runtime cannot run it: {exc}")
