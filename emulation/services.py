"""The embedded stack's background service: what AWS runs by itself beside the emulator.

moto stores functions and event source mappings but runs nothing. `make up` therefore starts,
beside moto server, one detached process (``python -m emulation.services run``) that hosts a
list of pollers, each with ``start``, ``stop`` and ``health``:

- ``lambda``: every enabled Kinesis event source mapping, polled continuously by the local
  Lambda runtime (emulation/lambda_runtime) with the Lambda service's semantics. Mappings are
  listed again every ``relist_s`` seconds, so one created, enabled, disabled or deleted later is
  picked up.
- ``firehose``: every Firehose delivery stream with a Kinesis source, pumped to S3 with
  Firehose's semantics (emulation/firehose_pump: buffering hints, at-least-once), so a record
  put on a stream reaches the archive with no other command. Its checkpoints are in
  ``<local dir>/firehose-pump``, held by the pump's own lock.

Another poller is one more class with the same three methods, added to ``build_pollers``. The
process holds the runtime's PollerLock, so nothing else polls the same checkpoints meanwhile
(no record delivered twice). Its pid and log are in
``.local/services.json`` and ``.local/services.log``; it rewrites ``.local/services-health.json``
every second (heartbeat, and each poller's health and counters), which `make status` reads.
`make down` stops it (SIGTERM to its process group: the pollers stop, then their workers).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Protocol

from config.settings import LOCAL_DIR
from emulation.processes import log_tail, spawn_module

log = logging.getLogger(__name__)

STATE_NAME = "services.json"
HEALTH_NAME = "services-health.json"
LOG_NAME = "services.log"
#: How often the service rewrites its health file; `status` calls it stale after STALE_S.
HEARTBEAT_S = 1.0
STALE_S = 10.0
#: How often the lambda poller lists the event source mappings again.
RELIST_S = 2.0
#: Wait after a failed run (function not deployed yet, code refused) before the next attempt.
RETRY_S = 5.0
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
#: The counters of a run that health reports (summed over the runs of a function).
COUNTERS = (
    "records_read",
    "records_succeeded",
    "records_discarded",
    "invocations",
    "function_errors",
    "on_failure_records",
)


#: The Firehose pump's counters that `status` prints (since the service started).
ARCHIVE_COUNTERS = ("records_read", "records_delivered", "objects_written", "buffered")


class ServiceError(RuntimeError):
    """The background service cannot be started or stopped."""


class Poller(Protocol):
    """One loop of the background service."""

    name: str

    def start(self) -> None:
        """Start polling in threads of its own; return at once."""

    def stop(self, timeout: float) -> None:
        """Stop polling and release what it holds, within ``timeout`` seconds."""

    def health(self) -> dict[str, Any]:
        """``{"healthy": bool, "detail": str, ...}``: what it does now, what failed."""


def runtime_state_dir(local_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    """The local Lambda runtime's state directory (code cache, checkpoints, logs) of a stack:
    LOCAL_LAMBDA_STATE_DIR when set, else ``<local_dir>/lambda-runtime``."""
    env = os.environ if env is None else env
    override = env.get("LOCAL_LAMBDA_STATE_DIR")
    return Path(override) if override else Path(local_dir) / "lambda-runtime"


# ---------------------------------------------------------------------------------------------
# The lambda poller
# ---------------------------------------------------------------------------------------------


def enabled_mappings(client: Any) -> dict[str, frozenset[Any]]:
    """Enabled Kinesis event source mappings of every function: {function name: mappings}."""
    from emulation.lambda_runtime.model import MappingConfig, parse_function_ref

    by_function: dict[str, set[Any]] = {}
    for page in client.get_paginator("list_event_source_mappings").paginate():
        for esm in page.get("EventSourceMappings", []):
            mapping = MappingConfig.from_api(esm)
            if mapping.is_kinesis and mapping.is_polling:
                name = parse_function_ref(mapping.function_arn).name
                by_function.setdefault(name, set()).add(mapping)
    return {name: frozenset(mappings) for name, mappings in by_function.items()}


@dataclass
class _FunctionRun:
    """The run polling one function's mappings, in a thread of its own."""

    mappings: frozenset[Any]
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    state: str = "starting"  # starting, polling, idle (no shard left), failed
    error: str = ""
    failed_at: float = 0.0
    finished: dict[str, int] = field(default_factory=dict)  # counters of ended runs
    live: dict[str, int] = field(default_factory=dict)  # counters of the current run

    def counters(self) -> dict[str, int]:
        return {k: self.finished.get(k, 0) + self.live.get(k, 0) for k in COUNTERS}


Runner = Callable[..., Any]


class LambdaPoller:
    """Polls every enabled Kinesis event source mapping, one run per function, and restarts a
    function's run when its mappings change (or some seconds after it failed)."""

    name = "lambda"

    def __init__(
        self,
        state_dir: Path,
        *,
        list_mappings: Callable[[], dict[str, frozenset[Any]]] | None = None,
        runner: Runner | None = None,
        relist_s: float = RELIST_S,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self._list_mappings = list_mappings or self._list_with_boto3
        self._runner = runner or self._default_runner
        self.relist_s, self.retry_s = relist_s, retry_s
        self._clock, self._say = clock, say
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._runs: dict[str, _FunctionRun] = {}
        self._list_error = ""
        self._listed_once = False
        self._thread: threading.Thread | None = None
        self._logs: dict[str, IO[bytes]] = {}

    @staticmethod
    def _list_with_boto3() -> dict[str, frozenset[Any]]:
        import boto3

        return enabled_mappings(boto3.client("lambda"))

    def _default_runner(self, function: str, **kwargs: Any) -> Any:
        from emulation.lambda_runtime.runtime import run

        log_stream = self._logs.get(function)
        if log_stream is None:
            path = self.state_dir / "logs" / f"{function}.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            log_stream = self._logs[function] = open(path, "ab")
        return run(function, log_stream=log_stream, **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.reconcile()  # the first health record already says what is polled
        self._thread = threading.Thread(target=self._supervise, name="lambda-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop.set()
        deadline = time.monotonic() + timeout
        for run in runs:
            if run.thread is not None:
                run.thread.join(max(0.0, deadline - time.monotonic()))
        for stream in self._logs.values():
            stream.close()

    def health(self) -> dict[str, Any]:
        with self._lock:
            functions = {
                name: {"state": run.state, "error": run.error, **run.counters()}
                for name, run in sorted(self._runs.items())
            }
            list_error = self._list_error
            listed = self._listed_once
            mappings = sum(len(run.mappings) for run in self._runs.values())
        failed = [name for name, f in functions.items() if f["state"] == "failed"]
        if list_error:
            detail = f"cannot list the event source mappings: {list_error}"
        elif failed:
            detail = "; ".join(f"{name}: {functions[name]['error']}" for name in failed)
        elif not listed:
            detail = "starting"
        else:
            detail = (
                f"polling {mappings} enabled Kinesis event source mapping(s) of "
                f"{len(functions)} function(s)"
            )
        return {
            "healthy": listed and not list_error and not failed,
            "detail": detail,
            "functions": functions,
        }

    # -- supervision -------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stop.wait(self.relist_s):
            self.reconcile()

    def reconcile(self) -> None:
        """List the mappings once; start, restart or stop function runs to match them."""
        try:
            desired = self._list_mappings()
        except Exception as exc:  # the emulator is busy or going away: keep the runs, retry
            with self._lock:
                self._list_error = str(exc)
            log.warning("cannot list event source mappings: %s", exc)
            return
        with self._lock:
            self._list_error = ""
            self._listed_once = True
            current = dict(self._runs)
        for name, run in current.items():
            if name not in desired:
                self._end(name, run, "no enabled mapping left")
        for name, mappings in desired.items():
            run = current.get(name)
            if run is None:
                self._begin(name, mappings, _FunctionRun(mappings))
            elif run.mappings != mappings:
                self._end(name, run, "its mappings changed")
                self._begin(name, mappings, _FunctionRun(mappings, finished=run.counters()))
            elif run.state == "failed" and self._clock() - run.failed_at >= self.retry_s:
                self._begin(name, mappings, _FunctionRun(mappings, finished=run.counters()))

    def _end(self, name: str, run: _FunctionRun, why: str) -> None:
        run.stop.set()
        if run.thread is not None:
            run.thread.join(STOP_TIMEOUT_S)
        with self._lock:
            if self._runs.get(name) is run:
                del self._runs[name]
        self._say(f"{name}: stopped polling ({why})")

    def _begin(self, name: str, mappings: frozenset[Any], run: _FunctionRun) -> None:
        def on_stats(stats: Any) -> None:
            run.live = {k: int(getattr(stats, k)) for k in COUNTERS}

        def target() -> None:
            run.state = "polling"
            try:
                stats = self._runner(
                    name,
                    stop=run.stop,
                    state_dir=self.state_dir,
                    exclusive=False,  # the service holds the PollerLock itself
                    on_stats=on_stats,
                    progress=lambda message: self._say(f"{name}: {message}"),
                )
                on_stats(stats)
                run.finished = run.counters()
                run.live = {}
                run.state = "idle"
            except Exception as exc:  # retried after retry_s; health says why meanwhile
                run.finished = run.counters()
                run.live = {}
                run.error = f"{type(exc).__name__}: {exc}"
                run.failed_at = self._clock()
                run.state = "failed"
                self._say(f"{name}: {run.error} (retrying in {self.retry_s:.0f} s)")

        run.thread = threading.Thread(target=target, name=f"lambda-{name}", daemon=True)
        with self._lock:
            self._runs[name] = run
        self._say(f"{name}: polling {len(mappings)} mapping(s)")
        run.thread.start()


# ---------------------------------------------------------------------------------------------
# The Firehose poller
# ---------------------------------------------------------------------------------------------

PUMP_DIR_NAME = "firehose-pump"


def pump_state_dir(local_dir: Path) -> Path:
    """The Firehose pump's checkpoints and lock of a stack: ``<local_dir>/firehose-pump``."""
    return Path(local_dir) / PUMP_DIR_NAME


class FirehosePoller:
    """Runs the Firehose pump (emulation/firehose_pump) in the service. A pump that cannot
    start (another one holds its checkpoints) is unhealthy with the reason and tried again
    every ``retry_s`` seconds; once started, its own health is the poller's."""

    name = "firehose"

    def __init__(
        self,
        state_dir: Path,
        *,
        make: Callable[[], Any] | None = None,
        retry_s: float = RETRY_S,
        say: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self._make = make or self._make_pump
        self.retry_s, self._say = retry_s, say
        self._pump: Any = None
        self._error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _make_pump(self) -> Any:
        from emulation.firehose_pump import make_pump

        return make_pump(self.state_dir)

    def _attempt(self) -> bool:
        try:
            pump = self._make()
            pump.start()  # raises PumpBusy at once when another pump holds the checkpoints
        except Exception as exc:  # retried; health says why meanwhile
            self._error = f"{type(exc).__name__}: {exc}"
            self._say(f"firehose: {self._error} (retrying in {self.retry_s:.0f} s)")
            return False
        self._pump, self._error = pump, ""
        self._say(f"firehose: pumping Kinesis-sourced delivery streams (state {self.state_dir})")
        return True

    def _retry(self) -> None:
        while not self._stop.wait(self.retry_s):
            if self._attempt():
                return

    def start(self) -> None:
        if not self._attempt():
            self._thread = threading.Thread(target=self._retry, name="firehose-retry", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pump is not None:
            self._pump.stop(timeout)  # writes what is buffered, releases the lock

    def health(self) -> dict[str, Any]:
        if self._pump is not None:
            return dict(self._pump.health())
        return {"healthy": False, "detail": self._error or "starting"}


def build_pollers(local_dir: Path, state_dir: Path, say: Callable[[str], None]) -> list[Poller]:
    """The loops the service hosts: the Lambda runtime and the Firehose pump."""
    return [LambdaPoller(state_dir, say=say), FirehosePoller(pump_state_dir(local_dir), say=say)]


# ---------------------------------------------------------------------------------------------
# The service process
# ---------------------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def serve(
    pollers: Sequence[Poller],
    health_path: Path,
    stop: threading.Event,
    heartbeat_s: float = HEARTBEAT_S,
) -> None:
    """Start the pollers, write their health every ``heartbeat_s`` until ``stop``, stop them."""
    started = time.time()

    def write(running: bool) -> None:
        write_json(
            health_path,
            {
                "pid": os.getpid(),
                "started_at": started,
                "heartbeat": time.time(),
                "running": running,
                "pollers": [{"name": p.name, **p.health()} for p in pollers],
            },
        )

    for poller in pollers:
        poller.start()
    try:
        while not stop.is_set():
            write(True)
            stop.wait(heartbeat_s)
    finally:
        for poller in pollers:
            poller.stop(STOP_TIMEOUT_S)
        write(False)


def _run_service(local_dir: Path, state_dir: Path) -> int:
    """The service process's main: lock, pollers, heartbeat until SIGTERM or SIGINT."""
    from emulation.lambda_runtime.runtime import PollerBusy, PollerLock

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def say(message: str) -> None:
        log.info(message)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        lock = PollerLock(state_dir, owner=f"the background service (pid {os.getpid()})").acquire()
    except PollerBusy as exc:
        say(f"error: {exc}")
        return 2
    try:
        say(f"background service started (pid {os.getpid()}, runtime state {state_dir})")
        serve(build_pollers(local_dir, state_dir, say), local_dir / HEALTH_NAME, stop)
    finally:
        lock.release()
        say("background service stopped")
    return 0


# ---------------------------------------------------------------------------------------------
# Start, stop, status (from `make up`, `make down`, `make status`)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatus:
    """What `status` says about the background service."""

    pid: int
    running: bool
    healthy: bool
    heartbeat_age_s: float | None
    pollers: list[dict[str, Any]]
    log: str

    def lines(self) -> list[str]:
        """Human-readable status lines."""
        if not self.running:
            return [f"background service: not running (pid {self.pid} gone; log {self.log})"]
        if self.heartbeat_age_s is None:
            state = "starting"
        elif self.heartbeat_age_s > STALE_S:
            state = f"UNHEALTHY (no heartbeat for {self.heartbeat_age_s:.0f} s)"
        else:
            state = "healthy" if self.healthy else "UNHEALTHY"
        out = [f"background service: {state} (pid {self.pid}, log {self.log})"]
        for poller in self.pollers:
            mark = "ok" if poller.get("healthy") else "FAILING"
            out.append(f"  {poller['name']}: {mark}: {poller.get('detail', '')}")
            for name, function in (poller.get("functions") or {}).items():
                counts = ", ".join(f"{k} {function.get(k, 0)}" for k in COUNTERS)
                out.append(f"    {name} ({function.get('state')}): {counts}")
            if "records_delivered" in poller:
                out.append(
                    "    "
                    + ", ".join(f"{k} {poller.get(k, 0)}" for k in ARCHIVE_COUNTERS)
                    + f", streams {', '.join(poller.get('streams') or []) or 'none'}"
                )
        return out


def _exists(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie has)."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS)


def _alive(pid: int) -> bool:
    """True when ``pid`` is a running background service."""
    return _exists(pid) and _is_service(pid)


def _is_service(pid: int) -> bool:
    """Guard against a recycled pid: only our service process counts."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # no /proc (macOS): trust the pid file
    try:
        return b"emulation.services" in cmdline.read_bytes()
    except OSError:
        return False


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def service_status(local_dir: Path = LOCAL_DIR) -> ServiceStatus | None:
    """The recorded service's status, or None when `up` started none."""
    state = _read(Path(local_dir) / STATE_NAME)
    if state is None:
        return None
    pid = int(state["pid"])
    running = _alive(pid)
    health = _read(Path(local_dir) / HEALTH_NAME) or {}
    fresh = health.get("pid") == pid and running
    age = time.time() - float(health["heartbeat"]) if fresh else None
    pollers = list(health.get("pollers") or []) if fresh else []
    healthy = bool(
        running
        and age is not None
        and age <= STALE_S
        and pollers
        and all(p.get("healthy") for p in pollers)
    )
    return ServiceStatus(pid, running, healthy, age, pollers, str(state.get("log", "")))


def function_counters(function: str, local_dir: Path = LOCAL_DIR) -> dict[str, int] | None:
    """The service's counters for ``function`` so far (summed over its runs), or None when no
    healthy-looking service runs (read them before and after to count what one step did)."""
    status = service_status(local_dir)
    if status is None or not status.running:
        return None
    for poller in status.pollers:
        if poller.get("name") == LambdaPoller.name:
            found = (poller.get("functions") or {}).get(function) or {}
            return {k: int(found.get(k, 0)) for k in COUNTERS}
    return None


def poller_health(name: str, local_dir: Path = LOCAL_DIR) -> dict[str, Any] | None:
    """The last health record of the service's poller ``name``, or None when no service runs
    (or it hosts no such poller)."""
    status = service_status(local_dir)
    if status is None or not status.running:
        return None
    for poller in status.pollers:
        if poller.get("name") == name:
            return poller
    return None


def start_services(
    local_dir: Path = LOCAL_DIR,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> ServiceStatus:
    """Start the background service for the stack of ``local_dir`` (idempotent).

    ``env`` is added to this process's environment for it (the emulator's endpoint and
    credentials). Returns once it wrote its first health record; raises ServiceError with its
    log's tail when it exits or stays silent for ``timeout`` seconds.
    """
    local_dir = Path(local_dir)
    current = service_status(local_dir)
    if current is not None and current.running:
        return current
    local_dir.mkdir(parents=True, exist_ok=True)
    (local_dir / HEALTH_NAME).unlink(missing_ok=True)
    child_env = {**os.environ, **(env or {})}
    state_dir = runtime_state_dir(local_dir, child_env)
    log_path = local_dir / LOG_NAME
    # Appended: the log keeps what earlier runs of the service said.
    process = spawn_module(
        "emulation.services",
        ["run", "--local-dir", str(local_dir), "--state-dir", str(state_dir)],
        env=child_env,
        log_path=log_path,
        append=True,
    )
    write_json(local_dir / STATE_NAME, {"pid": process.pid, "log": str(log_path)})
    deadline = time.monotonic() + timeout
    while True:
        health = _read(local_dir / HEALTH_NAME)
        if health is not None and health.get("pid") == process.pid:
            status = service_status(local_dir)
            assert status is not None
            return status
        if process.poll() is not None:
            (local_dir / STATE_NAME).unlink(missing_ok=True)
            raise ServiceError(
                f"the background service exited with code {process.returncode} while "
                f"starting:\n{log_tail(log_path)}"
            )
        if time.monotonic() >= deadline:
            stop_services(local_dir)
            raise ServiceError(
                f"the background service wrote no health record within {timeout:.0f} s:\n"
                f"{log_tail(log_path)}"
            )
        time.sleep(0.05)


def stop_services(local_dir: Path = LOCAL_DIR, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop the background service and every process it started; True when one was running."""
    local_dir = Path(local_dir)
    state = _read(local_dir / STATE_NAME)
    stopped = False
    if state is not None:
        pid = int(state["pid"])
        if _alive(pid):
            # The pollers stop first (unacknowledged records are read again next time), then
            # anything left in its process group (workers) goes with it.
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _exists(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            _kill_group(pid)
            stopped = True
        else:
            _kill_group(pid)  # leftovers of a service that died
    (local_dir / STATE_NAME).unlink(missing_ok=True)
    (local_dir / HEALTH_NAME).unlink(missing_ok=True)
    return stopped


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 5.0
    while _exists(pgid) and time.monotonic() < deadline:  # reaps it when it is our child
        time.sleep(0.02)


def main(argv: Sequence[str] | None = None) -> int:
    """``run`` (the service itself, in the foreground) or ``status``."""
    parser = argparse.ArgumentParser(prog="python -m emulation.services", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the service in the foreground (make up starts it)")
    run_p.add_argument("--local-dir", type=Path, default=LOCAL_DIR)
    run_p.add_argument("--state-dir", type=Path, default=None)
    status_p = sub.add_parser("status", help="print the service's health")
    status_p.add_argument("--local-dir", type=Path, default=LOCAL_DIR)
    args = parser.parse_args(argv)
    if args.command == "run":
        state_dir = args.state_dir or runtime_state_dir(args.local_dir)
        return _run_service(args.local_dir, state_dir)
    status = service_status(args.local_dir)
    if status is None:
        print("background service: not started (make up)")
        return 3
    print("\n".join(status.lines()))
    return 0 if status.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
