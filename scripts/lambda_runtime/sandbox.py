"""One warm Lambda execution environment: a separate worker process running the handler."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Mapping

from scripts.lambda_runtime.model import FunctionConfig, InvokeOutcome

try:  # orjson is in the project env; the worker itself only needs the standard library
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - fallback outside the project env
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def _loads(data: bytes) -> Any:
        return json.loads(data)


BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Lambda's limit for the init phase of an on-demand environment.
INIT_TIMEOUT_S = 10.0
#: Variables passed from the caller's environment so the code reaches the same emulator.
PASSTHROUGH_PREFIXES = ("AWS_ENDPOINT_URL",)
PASSTHROUGH_KEYS = ("PATH", "LANG", "S3_HOSTNAME")


class RuntimeMismatch(RuntimeError):
    """The local interpreter does not match the function's runtime."""


def resolve_python() -> str:
    """Interpreter for the worker: $LOCAL_LAMBDA_PYTHON, the project's .venv, or this one."""
    override = os.environ.get("LOCAL_LAMBDA_PYTHON")
    if override:
        return override
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    if venv_python.exists():
        return str(venv_python)
    return sys.executable


@lru_cache(maxsize=8)
def python_version(python: str) -> str:
    """'3.12' for an interpreter path (asked once per path)."""
    out = subprocess.run(
        [python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def check_runtime(runtime: str, python: str) -> None:
    """Refuse to run a python3.X function on another interpreter version."""
    if not runtime.startswith("python"):
        raise RuntimeMismatch(f"runtime {runtime!r} is not a Python runtime")
    wanted = runtime.removeprefix("python")
    found = python_version(python)
    if found != wanted:
        raise RuntimeMismatch(
            f"function runtime is {runtime} but {python} is Python {found}; "
            "set LOCAL_LAMBDA_PYTHON to a matching interpreter"
        )


def worker_environment(
    fn: FunctionConfig,
    code_dir: Path,
    handler: str,
    *,
    credentials: Mapping[str, str] | None = None,
    parent_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment Lambda gives the runtime: function variables plus reserved ones.

    Reserved variables win over function variables, as on Lambda. The caller's emulator
    endpoint and credentials stand in for the execution role's.
    """
    parent = os.environ if parent_env is None else parent_env
    env: dict[str, str] = dict(fn.environment)
    for key, value in parent.items():
        if key in PASSTHROUGH_KEYS or key.startswith(PASSTHROUGH_PREFIXES):
            env[key] = value
    today = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    env.update(
        {
            "_HANDLER": handler,
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_VERSION": fn.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{today}/[{fn.version}]{uuid.uuid4().hex}",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
            "TZ": ":UTC",
        }
    )
    env.setdefault("LANG", "en_US.UTF-8")
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    for key, value in (credentials or {}).items():
        if value:
            env[key] = value
    return env


class _LineReader:
    """Reads newline-terminated messages from a pipe with a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def readline(self, deadline: float) -> bytes | None:
        """One line without its newline; None on timeout; b'' on end of file."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return b""
            self.buffer += chunk


class LambdaWorker:
    """A warm execution environment: started on the first invoke, reused, restarted after a
    timeout or crash (the next invoke is a cold start again)."""

    def __init__(
        self,
        fn: FunctionConfig,
        code_dir: Path,
        *,
        handler: str | None = None,
        python: str | None = None,
        credentials: Mapping[str, str] | None = None,
        log: IO[Any] | int | None = None,
    ) -> None:
        self.fn = fn
        self.code_dir = Path(code_dir)
        self.handler = handler or fn.handler
        self.python = python or resolve_python()
        self.credentials = dict(credentials or {})
        self.log = log
        self.cold_starts = 0
        self.init_ms: list[float] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: _LineReader | None = None
        self._tmp_dir: str | None = None
        check_runtime(fn.runtime, self.python)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "LambdaWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker process (graceful: close its stdin, then kill if needed)."""
        proc, self._proc, self._reader = self._proc, None, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout:
                proc.stdout.close()
            self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp_dir:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        self.close()

    def _start(self, request_id: str) -> dict[str, Any] | None:
        """Start and initialise the worker; returns an error payload if init failed."""
        env = worker_environment(self.fn, self.code_dir, self.handler, credentials=self.credentials)
        # Each execution environment has its own /tmp on Lambda; sharing the host's /tmp would
        # let one run read another's cached model bundle (same URI, different emulator).
        self._remove_tmp()
        self._tmp_dir = tempfile.mkdtemp(prefix=f"lambda-{self.fn.name}-tmp-")
        env["TMPDIR"] = self._tmp_dir
        self._proc = subprocess.Popen(
            [self.python, "-I", "-u", str(BOOTSTRAP)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            cwd=str(self.code_dir),
        )
        assert self._proc.stdout is not None
        self._reader = _LineReader(self._proc.stdout.fileno())
        self.cold_starts += 1
        deadline = time.monotonic() + max(INIT_TIMEOUT_S, float(self.fn.timeout_s))
        line = self._reader.readline(deadline)
        if line is None:
            self._kill()
            return _runtime_error(
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: INIT phase timed out after "
                f"{max(INIT_TIMEOUT_S, float(self.fn.timeout_s)):.2f} seconds",
            )
        if not line:
            return self._exit_error(request_id)
        message = _loads(line)
        if message.get("type") != "ready":
            self._kill()
            return message.get("error") or _runtime_error("Runtime.Unknown", str(message))
        self.init_ms.append(float(message.get("init_ms", 0.0)))
        return None

    def _exit_error(self, request_id: str) -> dict[str, Any]:
        proc, code = self._proc, None
        if proc is not None:
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # closed its pipe but kept running
                proc.kill()
                code = proc.wait()
        self.close()
        status = f"signal: {-code}" if code is not None and code < 0 else f"exit status {code}"
        return _runtime_error(
            "Runtime.ExitError",
            f"RequestId: {request_id} Error: Runtime exited with error: {status}",
        )

    # -- invoke ------------------------------------------------------------------------------

    def invoke(self, event: Any, *, request_id: str | None = None) -> InvokeOutcome:
        """Synchronous invoke (RequestResponse): the handler's result or a function error."""
        request_id = request_id or str(uuid.uuid4())
        started = time.perf_counter()
        cold = self._proc is None or self._proc.poll() is not None
        if cold:
            self.close()
            init_error = self._start(request_id)
            if init_error is not None:
                self._kill()
                return self._outcome(request_id, init_error, started, cold, failed=True)
        assert self._proc is not None and self._proc.stdin is not None and self._reader
        timeout_s = float(self.fn.timeout_s)
        deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
        request = {
            "id": request_id,
            "event": event,
            "deadline_ms": deadline_ms,
            "invoked_function_arn": self.fn.arn,
            "trace_id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
        }
        deadline = time.monotonic() + timeout_s
        try:
            self._proc.stdin.write(_dumps(request) + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            return self._outcome(request_id, self._exit_error(request_id), started, cold, True)
        line = self._reader.readline(deadline)
        if line is None:
            self._kill()  # Lambda throws the environment away after a timeout
            error = _runtime_error(
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds",
            )
            return self._outcome(request_id, error, started, cold, failed=True)
        if not line:
            return self._outcome(request_id, self._exit_error(request_id), started, cold, True)
        message = _loads(line)
        if message.get("ok"):
            return self._outcome(request_id, message.get("result"), started, cold, failed=False)
        return self._outcome(request_id, message["error"], started, cold, failed=True)

    def _outcome(
        self, request_id: str, payload: Any, started: float, cold: bool, failed: bool
    ) -> InvokeOutcome:
        return InvokeOutcome(
            request_id=request_id,
            payload=payload,
            function_error="Unhandled" if failed else None,
            executed_version=self.fn.version,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            cold_start=cold,
        )


def _runtime_error(error_type: str, message: str) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message}
