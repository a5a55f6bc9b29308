"""One warm Lambda execution environment: a separate worker process running the handler.

The worker sees what the python3.12 runtime gives a function, not the host's virtualenv:
``python -I -S`` (no site-packages, no PYTHON* variables), ``sys.path`` = task root, the
standard library, then a directory of the runtime's SDK (boto3, botocore, s3transfer,
jmespath, python-dateutil, urllib3, six: symlinks to the worker interpreter's copies of
exactly those distributions); ``LD_LIBRARY_PATH`` = task root and its ``lib/``. Its memory
is limited to MemorySize (peak RSS, checked while it runs), and it runs with the
credentials of the function's execution role.
"""

from __future__ import annotations

import hashlib
import json
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
from typing import IO, Any, Callable, Mapping

from config.settings import REPO_ROOT
from emulation.lambda_runtime.model import ExecutionIdentity, FunctionConfig, InvokeOutcome

try:  # orjson is in the project env; the worker itself only needs the standard library
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - fallback outside the project env

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def _loads(data: bytes) -> Any:
        return json.loads(data)


BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
#: Lambda's limit for the init phase of an on-demand environment.
INIT_TIMEOUT_S = 10.0
#: Variables passed from the caller's environment so the code reaches the same emulator.
PASSTHROUGH_PREFIXES = ("AWS_ENDPOINT_URL",)
PASSTHROUGH_KEYS = ("PATH", "LANG", "S3_HOSTNAME")
#: What the python3.12 runtime provides besides the standard library (the AWS SDK).
RUNTIME_DISTRIBUTIONS = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "urllib3",
    "six",
)
#: How often the worker's peak RSS is read while it runs.
MEMORY_POLL_S = 0.02
#: Address space allowed beyond MemorySize (hard backstop, RLIMIT_AS): the real function
#: reserves ~400 MB of virtual memory it never touches (thread stacks, malloc arenas, OpenBLAS
#: buffers), and more with more CPUs (a thread and an arena per core), so the limit that
#: matters is the peak RSS check.
ADDRESS_SPACE_HEADROOM_MB = 1024 + 128 * (os.cpu_count() or 1)


def default_state_dir() -> Path:
    """Where the runtime keeps its code cache and checkpoints: <repo>/.local/lambda-runtime."""
    override = os.environ.get("LOCAL_LAMBDA_STATE_DIR")
    if override:
        return Path(override)
    return REPO_ROOT / ".local" / "lambda-runtime"


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


_LIST_DISTRIBUTIONS = """
import importlib.metadata as md, json, sys
out = {}
for name in sys.argv[1:]:
    dist = md.distribution(name)
    tops = sorted({str(f).split("/")[0] for f in dist.files or () if not str(f).startswith("..")})
    out[name] = [dist.version, [str(dist.locate_file(t)) for t in tops if t != "__pycache__"]]
print(json.dumps(out))
"""


@lru_cache(maxsize=8)
def _runtime_listing(python: str) -> dict[str, Any]:
    """{distribution: [version, [top-level paths]]} of the SDK in ``python``'s environment."""
    out = subprocess.run(
        [python, "-I", "-c", _LIST_DISTRIBUTIONS, *RUNTIME_DISTRIBUTIONS],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def runtime_packages(python: str, state_dir: Path) -> Path:
    """A directory holding exactly the runtime's SDK distributions of ``python`` (symlinks to
    its copies, top-level packages and dist-info), built once per set of versions."""
    listing = _runtime_listing(python)
    key = hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:12]
    target = Path(state_dir) / "runtime-packages" / key
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".runtime-", dir=target.parent))
    for _, paths in listing.values():
        for path in paths:
            (staging / Path(path).name).symlink_to(path)
    (staging / "DISTRIBUTIONS.json").write_text(json.dumps(listing, indent=1))
    try:
        staging.rename(target)
    except OSError:  # built by another process meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return target


def worker_environment(
    fn: FunctionConfig,
    code_dir: Path,
    handler: str,
    *,
    credentials: Mapping[str, str] | None = None,
    parent_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment Lambda gives the runtime: function variables plus reserved ones.

    Reserved variables win over function variables, as on Lambda. ``credentials`` are the
    execution role's (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
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
            # Lambda: /var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:
            # /var/task/lib:/opt/lib. The host's system directories cannot be taken away.
            "LD_LIBRARY_PATH": f"{code_dir}:{code_dir}/lib",
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
    timeout, crash or out-of-memory (the next invoke is a cold start again)."""

    def __init__(
        self,
        fn: FunctionConfig,
        code_dir: Path,
        *,
        identity: ExecutionIdentity | Callable[[], ExecutionIdentity],
        handler: str | None = None,
        python: str | None = None,
        log: IO[Any] | int | None = None,
        isolated: bool = True,
        state_dir: Path | None = None,
        invoked_function_arn: str | None = None,
    ) -> None:
        self.fn = fn
        # What the caller invoked (the context's invoked_function_arn): an alias ARN runs the
        # alias's version, whose number is AWS_LAMBDA_FUNCTION_VERSION.
        self.invoked_function_arn = invoked_function_arn or fn.arn
        self.code_dir = Path(code_dir)
        self.handler = handler or fn.handler
        self.python = python or resolve_python()
        self.identity = identity
        self.log = log
        self.isolated = isolated
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.cold_starts = 0
        self.init_ms: list[float] = []
        self.max_memory_used_mb = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: _LineReader | None = None
        self._tmp_dir: str | None = None
        check_runtime(fn.runtime, self.python)
        if not Path("/proc/self/status").is_file():  # fail closed: no way to measure memory
            raise RuntimeMismatch("no /proc on this host: the MemorySize limit cannot be enforced")

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

    def _command_and_env(self) -> tuple[list[str], dict[str, str]]:
        identity = self.identity() if callable(self.identity) else self.identity
        env = worker_environment(
            self.fn, self.code_dir, self.handler, credentials=identity.credentials
        )
        # Private settings of the local bootstrap (it removes them before loading the code).
        env["_LOCAL_LAMBDA_IAM"] = json.dumps(
            {"principal": identity.principal_arn, "statements": list(identity.statements)}
        )
        env["_LOCAL_LAMBDA_AS_LIMIT_MB"] = str(self.fn.memory_mb + ADDRESS_SPACE_HEADROOM_MB)
        flags = ["-I", "-u"]
        if self.isolated:
            flags.insert(1, "-S")  # no site-packages: only what the runtime provides
            env["_LOCAL_LAMBDA_RUNTIME_PATH"] = str(runtime_packages(self.python, self.state_dir))
        return [self.python, *flags, str(BOOTSTRAP)], env

    def _start(self, request_id: str) -> dict[str, Any] | None:
        """Start and initialise the worker; returns an error payload if init failed."""
        try:
            command, env = self._command_and_env()
        except Exception as exc:  # no role session or policies: the function does not run
            return _runtime_error(
                "Runtime.ExecutionRoleError", f"RequestId: {request_id} Error: {exc}"
            )
        # Each execution environment has its own /tmp on Lambda; sharing the host's /tmp would
        # let one run read another's cached model bundle (same URI, different emulator).
        self._remove_tmp()
        self._tmp_dir = tempfile.mkdtemp(prefix=f"lambda-{self.fn.name}-tmp-")
        env["TMPDIR"] = self._tmp_dir
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            cwd=str(self.code_dir),
        )
        assert self._proc.stdout is not None
        self._reader = _LineReader(self._proc.stdout.fileno())
        self.cold_starts += 1
        init_timeout = max(INIT_TIMEOUT_S, float(self.fn.timeout_s))
        line = self._await(time.monotonic() + init_timeout)
        if line is _OUT_OF_MEMORY:
            return self._out_of_memory(request_id)
        if line is None:
            self._kill()
            return _runtime_error(
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: INIT phase timed out after "
                f"{init_timeout:.2f} seconds",
            )
        if not line:
            return self._exit_error(request_id)
        message = _loads(line)
        if message.get("type") != "ready":
            self._kill()
            return message.get("error") or _runtime_error("Runtime.Unknown", str(message))
        self.init_ms.append(float(message.get("init_ms", 0.0)))
        return None

    def _peak_memory_mb(self) -> float:
        """The worker's peak RSS (VmHWM) so far, in MB; 0 once it has exited."""
        proc = self._proc
        try:
            with open(f"/proc/{proc.pid}/status", "rb") as status:  # type: ignore[union-attr]
                for line in status:
                    if line.startswith(b"VmHWM:"):
                        return int(line.split()[1]) / 1024.0
        except (OSError, AttributeError):
            pass
        return 0.0

    def _await(self, deadline: float) -> Any:
        """The worker's next line (None on timeout), or _OUT_OF_MEMORY as soon as its peak
        RSS exceeds MemorySize (checked every MEMORY_POLL_S and after each message)."""
        assert self._reader is not None
        while True:
            line = self._reader.readline(min(deadline, time.monotonic() + MEMORY_POLL_S))
            peak = self._peak_memory_mb()
            self.max_memory_used_mb = max(self.max_memory_used_mb, peak)
            if peak > self.fn.memory_mb:
                return _OUT_OF_MEMORY
            if line is not None or time.monotonic() >= deadline:
                return line

    def _out_of_memory(self, request_id: str) -> dict[str, Any]:
        peak = self._peak_memory_mb()
        self._kill()  # as Lambda's cgroup limit does: the environment is gone
        return _runtime_error(
            "Runtime.OutOfMemory",
            f"RequestId: {request_id} Error: Runtime exited with error: signal: killed "
            f"(max memory used {peak:.0f} MB, MemorySize {self.fn.memory_mb} MB)",
        )

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
            "invoked_function_arn": self.invoked_function_arn,
            "trace_id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
        }
        deadline = time.monotonic() + timeout_s
        try:
            self._proc.stdin.write(_dumps(request) + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            return self._outcome(request_id, self._exit_error(request_id), started, cold, True)
        line = self._await(deadline)
        if line is _OUT_OF_MEMORY:
            return self._outcome(request_id, self._out_of_memory(request_id), started, cold, True)
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


#: Returned by LambdaWorker._await when the worker went over MemorySize.
_OUT_OF_MEMORY = object()


def _runtime_error(error_type: str, message: str) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message}
