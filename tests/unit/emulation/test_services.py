"""The background service (emulation.services): which mappings it polls as they change, its
health, the poller lock, and its process lifecycle (a real process, no emulator behind it)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from emulation import services
from emulation.firehose_pump import FirehosePump, PumpBusy
from emulation.lambda_runtime.model import MappingConfig
from emulation.lambda_runtime.runtime import PollerBusy, PollerLock
from tests.fakes import LOOPBACK_ONLY

ARN = "arn:aws:lambda:us-east-1:123456789012:function:"
STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/in"


def mapping(uuid: str, function: str = "f", **fields: Any) -> MappingConfig:
    return MappingConfig(uuid, ARN + function, STREAM, **fields)


class FakeRuns:
    """Stands in for runtime.run: each call blocks until stopped (or fails on request)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.fail_with: Exception | None = None
        self.records = 0

    def __call__(self, function: str, *, stop: threading.Event, **kwargs: Any) -> Any:
        assert kwargs["exclusive"] is False  # the service holds the lock itself
        self.started.append(function)
        if self.fail_with is not None:
            raise self.fail_with
        stats = type("Stats", (), {k: 0 for k in services.COUNTERS})()
        stats.records_read = stats.records_succeeded = stats.invocations = self.records
        kwargs["on_stats"](stats)
        stop.wait(10)
        self.stopped.append(function)
        return stats


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.01)


@pytest.fixture
def clock() -> list[float]:
    return [0.0]


def poller(tmp_path: Path, listing: dict[str, Any], runs: FakeRuns, clock: list[float]) -> Any:
    def list_mappings() -> dict[str, frozenset[MappingConfig]]:
        if isinstance(listing.get("error"), Exception):
            raise listing["error"]
        return {name: frozenset(ms) for name, ms in listing.items()}

    return services.LambdaPoller(
        tmp_path, list_mappings=list_mappings, runner=runs, clock=lambda: clock[0], retry_s=5
    )


def test_a_run_per_function_restarted_when_its_mappings_change(
    tmp_path: Path, clock: list[float]
) -> None:
    runs, listing = FakeRuns(), {"f": [mapping("m1")]}
    runs.records = 3
    lambda_poller = poller(tmp_path, listing, runs, clock)
    lambda_poller.reconcile()
    wait_until(lambda: runs.started == ["f"])
    lambda_poller.reconcile()  # nothing changed: the run goes on
    assert runs.started == ["f"] and runs.stopped == []

    listing["f"] = [mapping("m1"), mapping("m2", "f", batch_size=10)]  # a new mapping
    listing["g"] = [mapping("m3", "g")]  # another function's
    lambda_poller.reconcile()
    wait_until(lambda: sorted(runs.started) == ["f", "f", "g"])
    assert runs.stopped == ["f"]
    wait_until(lambda: lambda_poller.health()["functions"]["f"]["records_read"] == 6)
    health = lambda_poller.health()
    assert health["healthy"] and "polling 3 enabled Kinesis" in health["detail"]

    del listing["g"]  # disabled or deleted: no longer polled
    lambda_poller.reconcile()
    assert "g" in runs.stopped and set(lambda_poller.health()["functions"]) == {"f"}
    lambda_poller.stop(5)
    assert runs.stopped.count("f") == 2


def test_a_failed_run_is_unhealthy_and_retried_after_the_delay(
    tmp_path: Path, clock: list[float]
) -> None:
    runs, listing = FakeRuns(), {"f": [mapping("m1")]}
    runs.fail_with = RuntimeError("function f not deployed")
    lambda_poller = poller(tmp_path, listing, runs, clock)
    lambda_poller.reconcile()
    wait_until(lambda: lambda_poller.health()["functions"]["f"]["state"] == "failed")
    health = lambda_poller.health()
    assert not health["healthy"]
    assert health["detail"] == "f: RuntimeError: function f not deployed"
    clock[0] = 4.0
    lambda_poller.reconcile()
    assert runs.started == ["f"]  # not before retry_s
    runs.fail_with = None
    clock[0] = 5.0
    lambda_poller.reconcile()
    wait_until(lambda: lambda_poller.health()["functions"]["f"]["state"] == "polling")
    assert runs.started == ["f", "f"] and lambda_poller.health()["healthy"]
    lambda_poller.stop(5)


def test_an_emulator_that_does_not_answer_keeps_the_runs_and_says_so(
    tmp_path: Path, clock: list[float]
) -> None:
    runs, listing = FakeRuns(), {"f": [mapping("m1")]}
    lambda_poller = poller(tmp_path, listing, runs, clock)
    assert lambda_poller.health() == {"healthy": False, "detail": "starting", "functions": {}}
    lambda_poller.reconcile()
    listing["error"] = ConnectionError("connection refused")
    lambda_poller.reconcile()
    health = lambda_poller.health()
    assert not health["healthy"]
    assert health["detail"] == "cannot list the event source mappings: connection refused"
    assert runs.stopped == [] and "f" in health["functions"]
    lambda_poller.stop(5)


def test_enabled_mappings_groups_enabled_kinesis_mappings_by_function() -> None:
    def esm(uuid: str, function_arn: str, source: str = STREAM, state: str = "Enabled") -> dict:
        return {
            "UUID": uuid,
            "FunctionArn": function_arn,
            "EventSourceArn": source,
            "State": state,
        }

    class Client:
        def get_paginator(self, name: str) -> Any:
            assert name == "list_event_source_mappings"
            pages = [
                {"EventSourceMappings": [esm("a", ARN + "f:live"), esm("b", ARN + "f")]},
                {
                    "EventSourceMappings": [
                        esm("c", ARN + "g", state="Disabled"),
                        esm("d", ARN + "h", source="arn:aws:sqs:us-east-1:1:q"),
                    ]
                },
            ]
            return type("Paginator", (), {"paginate": lambda self: pages})()

    found = services.enabled_mappings(Client())
    assert set(found) == {"f"} and {m.uuid for m in found["f"]} == {"a", "b"}


class StubPoller:
    name = "stub"

    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")

    def stop(self, timeout: float) -> None:
        self.events.append("stop")

    def health(self) -> dict[str, Any]:
        return {"healthy": True, "detail": "fine"}


def test_serve_writes_each_pollers_health_until_stopped(tmp_path: Path) -> None:
    stub, stop = StubPoller(), threading.Event()
    path = tmp_path / "health.json"
    thread = threading.Thread(target=services.serve, args=([stub], path, stop, 0.01))
    thread.start()
    wait_until(path.exists)
    health = json.loads(path.read_text())
    assert health["running"] and health["pid"] == os.getpid()
    assert health["pollers"] == [{"name": "stub", "healthy": True, "detail": "fine"}]
    stop.set()
    thread.join(5)
    assert stub.events == ["start", "stop"] and not json.loads(path.read_text())["running"]


def test_status_calls_a_silent_service_unhealthy(tmp_path: Path) -> None:
    assert services.service_status(tmp_path) is None
    services.write_json(tmp_path / services.STATE_NAME, {"pid": os.getpid(), "log": "x.log"})
    pollers = [{"name": "lambda", "healthy": True, "detail": "polling"}]
    health = {"pid": os.getpid(), "heartbeat": time.time(), "pollers": pollers}
    services.write_json(tmp_path / services.HEALTH_NAME, health)
    # This test process stands in for the service (its command line decides that).
    real = services._is_service
    try:
        services._is_service = lambda pid: True  # type: ignore[assignment]
        status = services.service_status(tmp_path)
        assert status is not None and status.healthy
        assert status.lines()[0].startswith("background service: healthy")
        health["heartbeat"] = time.time() - services.STALE_S - 1
        services.write_json(tmp_path / services.HEALTH_NAME, health)
        stale = services.service_status(tmp_path)
        assert stale is not None and not stale.healthy
        assert "UNHEALTHY (no heartbeat for" in stale.lines()[0]
    finally:
        services._is_service = real  # type: ignore[assignment]
    gone = services.service_status(tmp_path)  # the pid is not the service's: not running
    assert gone is not None and not gone.running and not gone.healthy


def test_a_second_poller_on_the_same_checkpoints_is_refused(tmp_path: Path) -> None:
    with PollerLock(tmp_path, owner="the background service (pid 1)"):
        with pytest.raises(PollerBusy, match=r"the background service \(pid 1\) already polls"):
            PollerLock(tmp_path).acquire()
    PollerLock(tmp_path).acquire().release()  # free again once released


@LOOPBACK_ONLY
def test_the_service_process_starts_reports_a_dead_endpoint_and_stops(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_MAX_ATTEMPTS": "1",
        "LOCAL_LAMBDA_STATE_DIR": str(tmp_path / "runtime"),
    }
    status = services.start_services(tmp_path, env, timeout=60)
    try:
        assert status.running and not status.healthy
        assert "cannot list the event source mappings" in status.pollers[0]["detail"]
        # The pump is hosted too, and says that it cannot reach the emulator.
        wait_until(
            lambda: "Error"
            in (services.poller_health("firehose", tmp_path) or {}).get("detail", ""),
            timeout=60,
        )
        firehose = services.poller_health("firehose", tmp_path)
        assert firehose is not None and not firehose["healthy"], firehose
        assert services.start_services(tmp_path, env).pid == status.pid  # idempotent
        with pytest.raises(PollerBusy):  # it holds the runtime's checkpoints
            PollerLock(tmp_path / "runtime").acquire()
        with pytest.raises(PumpBusy):  # and the pump's
            FirehosePump(None, None, None, state_dir=services.pump_state_dir(tmp_path)).start()
    finally:
        assert services.stop_services(tmp_path)
    with pytest.raises(ProcessLookupError):
        os.kill(status.pid, 0)
    assert services.service_status(tmp_path) is None
    PollerLock(tmp_path / "runtime").acquire().release()


def test_function_counters_read_the_lambda_pollers_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert services.function_counters("f", tmp_path) is None  # no service started
    monkeypatch.setattr(services, "_is_service", lambda pid: True)
    services.write_json(tmp_path / services.STATE_NAME, {"pid": os.getpid(), "log": "x.log"})
    function = {"state": "polling", "error": "", "records_read": 7, "invocations": 2}
    lambda_health = {"name": "lambda", "healthy": True, "functions": {"f": function}}
    health = {"pid": os.getpid(), "heartbeat": time.time(), "pollers": [lambda_health]}
    services.write_json(tmp_path / services.HEALTH_NAME, health)
    counts = services.function_counters("f", tmp_path)
    assert counts is not None and counts["records_read"] == 7 and counts["invocations"] == 2
    assert counts["function_errors"] == 0
    assert services.function_counters("g", tmp_path) == {k: 0 for k in services.COUNTERS}


class FakePump:
    """Stands in for the Firehose pump: start, stop, health."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def start(self) -> None:
        self.events.append("start")

    def stop(self, timeout: float) -> None:
        self.events.append("stop")

    def health(self) -> dict[str, Any]:
        return {"healthy": True, "detail": "2 delivery stream(s)", "records_delivered": 5}


def test_the_firehose_poller_retries_a_busy_pump_then_reports_its_health(tmp_path: Path) -> None:
    events: list[str] = []
    attempts = [0]

    def make() -> FakePump:
        attempts[0] += 1
        if attempts[0] == 1:
            raise PumpBusy("another Firehose pump uses the checkpoints")
        return FakePump(events)

    firehose = services.FirehosePoller(tmp_path, make=make, retry_s=0.01)
    firehose.start()
    first = firehose.health()  # the first attempt failed, in start() itself
    assert not first["healthy"] and "PumpBusy: another Firehose pump" in first["detail"]
    wait_until(lambda: firehose.health()["healthy"])
    assert firehose.health()["records_delivered"] == 5 and attempts[0] == 2
    firehose.stop(5)
    assert events == ["start", "stop"]


def test_the_service_hosts_the_lambda_runtime_and_the_firehose_pump(tmp_path: Path) -> None:
    pollers = services.build_pollers(tmp_path, tmp_path / "runtime", say=lambda message: None)
    assert [p.name for p in pollers] == ["lambda", "firehose"]
    assert pollers[1].state_dir == tmp_path / "firehose-pump"  # type: ignore[attr-defined]


def test_status_and_poller_health_show_the_pumps_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert services.poller_health("firehose", tmp_path) is None  # no service started
    monkeypatch.setattr(services, "_is_service", lambda pid: True)
    services.write_json(tmp_path / services.STATE_NAME, {"pid": os.getpid(), "log": "x.log"})
    pump = {
        "name": "firehose",
        "healthy": True,
        "detail": "2 delivery stream(s), 3 record(s) buffered",
        "streams": ["a-archive", "b-archive"],
        "records_read": 10,
        "records_delivered": 7,
        "objects_written": 2,
        "buffered": 3,
    }
    health = {"pid": os.getpid(), "heartbeat": time.time(), "pollers": [pump]}
    services.write_json(tmp_path / services.HEALTH_NAME, health)
    assert services.poller_health("firehose", tmp_path) == pump
    assert services.poller_health("lambda", tmp_path) is None
    status = services.service_status(tmp_path)
    assert status is not None
    assert status.lines()[1:] == [
        "  firehose: ok: 2 delivery stream(s), 3 record(s) buffered",
        "    records_read 10, records_delivered 7, objects_written 2, buffered 3, "
        "streams a-archive, b-archive",
    ]
