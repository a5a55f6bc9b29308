"""emulation.emulator: stack.env handling, readiness polling, port and lifecycle errors."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.stack_env import read_stack_env, update_stack_env
from emulation import emulator
from emulation.emulator import EmulatorError, start_emulator, stop_emulator, wait_until_ready
from tests.fakes import LOOPBACK_ONLY

# The emulator's lifecycle: a real moto server (and test servers) on 127.0.0.1.
pytestmark = LOOPBACK_ONLY


@pytest.fixture
def listening_socket() -> Iterator[int]:
    """A port held by someone else."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def http_server() -> Iterator[str]:
    """A tiny HTTP server standing in for an emulator."""

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------------------------------------
# stack.env
# ---------------------------------------------------------------------------------------------


def test_stack_env_round_trip_keeps_emulator_lines_first(tmp_path: Path) -> None:
    path = tmp_path / "stack.env"
    update_stack_env(path, {"FUNCTION_NAME": "mushroom-scorer"})
    update_stack_env(path, emulator.emulator_env("moto", "http://127.0.0.1:5000"))
    lines = path.read_text().splitlines()
    assert lines[1] == "export AWS_TARGET=moto"
    assert lines[-1] == "export FUNCTION_NAME=mushroom-scorer"
    assert read_stack_env(path)["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert all(line.startswith(("#", "export ")) for line in lines)


def test_stack_env_quotes_only_values_that_need_it(tmp_path: Path) -> None:
    path = tmp_path / "stack.env"
    update_stack_env(path, {"PLAIN": "arn:aws:sqs:us-east-1:1:q", "SPACED": "a b", "EMPTY": ""})
    text = path.read_text()
    assert "export PLAIN=arn:aws:sqs:us-east-1:1:q\n" in text
    assert "export SPACED='a b'\n" in text
    assert read_stack_env(path) == {
        "PLAIN": "arn:aws:sqs:us-east-1:1:q",
        "SPACED": "a b",
        "EMPTY": "",
    }
    # bash reads the same values
    out = subprocess.run(
        ["bash", "-c", f'source {path}; printf \'%s|%s\' "$PLAIN" "$SPACED"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "arn:aws:sqs:us-east-1:1:q|a b"


def test_stack_env_removed_when_empty(tmp_path: Path) -> None:
    path = tmp_path / "stack.env"
    update_stack_env(path, {"A": "1"})
    update_stack_env(path, remove=["A"])
    assert not path.exists()


# ---------------------------------------------------------------------------------------------
# Ports and readiness
# ---------------------------------------------------------------------------------------------


def test_port_in_use_and_free_port(listening_socket: int) -> None:
    assert emulator.port_in_use(listening_socket)
    assert not emulator.port_in_use(emulator.free_port())


def test_wait_until_ready_returns_when_server_answers(http_server: str) -> None:
    assert wait_until_ready(http_server, timeout=5) < 5


def test_wait_until_ready_times_out_with_clear_error() -> None:
    endpoint = f"http://127.0.0.1:{emulator.free_port()}"
    with pytest.raises(EmulatorError, match="did not answer within"):
        wait_until_ready(endpoint, timeout=0.3, interval=0.05)


def test_wait_until_ready_stops_when_the_process_dies() -> None:
    endpoint = f"http://127.0.0.1:{emulator.free_port()}"
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(EmulatorError, match="exited with code 3"):
        wait_until_ready(endpoint, timeout=30, process=process)


# ---------------------------------------------------------------------------------------------
# start / stop
# ---------------------------------------------------------------------------------------------


def test_taken_port_is_a_clear_error(tmp_path: Path, listening_socket: int) -> None:
    with pytest.raises(EmulatorError, match=f"port {listening_socket} .* already in use"):
        start_emulator("moto", port=listening_socket, local_dir=tmp_path)
    assert emulator.read_state(tmp_path) is None
    assert not (tmp_path / "stack.env").exists()


def test_unknown_target_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="unknown target"):
        start_emulator("minikube", local_dir=tmp_path)


def test_localstack_without_docker_explains_why(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(emulator.shutil, "which", lambda name: None)
    with pytest.raises(EmulatorError, match="needs Docker"):
        start_emulator("localstack", local_dir=tmp_path)


def test_stop_without_emulator_keeps_other_lines(tmp_path: Path) -> None:
    update_stack_env(tmp_path / "stack.env", {"MLFLOW_TRACKING_URI": "sqlite:///x.db"})
    assert stop_emulator(tmp_path) is False
    assert read_stack_env(tmp_path / "stack.env") == {"MLFLOW_TRACKING_URI": "sqlite:///x.db"}


def test_up_is_idempotent_and_down_cleans_up(tmp_path: Path) -> None:
    """A real moto server on 127.0.0.1 (about 1 s to start)."""
    try:
        first = start_emulator("moto", local_dir=tmp_path)
        second = start_emulator("moto", local_dir=tmp_path)
        assert second == first
        assert emulator.endpoint_answers(first.endpoint)
        env = read_stack_env(tmp_path / "stack.env")
        assert env["AWS_ENDPOINT_URL"] == first.endpoint
        assert env["AWS_ACCESS_KEY_ID"] == "test"
        assert (tmp_path / "moto.pid").read_text().strip() == str(first.pid)
        with pytest.raises(EmulatorError, match="already running"):
            start_emulator("moto", port=emulator.free_port(), local_dir=tmp_path)
        update_stack_env(tmp_path / "stack.env", {"OTHER": "kept"})
        # What make deploy leaves behind: outputs in stack.env and a state for this emulator.
        outputs = tmp_path / "terraform" / "moto" / "outputs.json"
        outputs.parent.mkdir(parents=True)
        outputs.write_text('{"function_name": "mushroom-scorer"}')
        (outputs.parent / "terraform.tfstate").write_text("{}")
        update_stack_env(tmp_path / "stack.env", {"FUNCTION_NAME": "mushroom-scorer"})
    finally:
        stopped = stop_emulator(tmp_path)
    assert stopped is True
    assert not emulator.endpoint_answers(first.endpoint)
    assert read_stack_env(tmp_path / "stack.env") == {"OTHER": "kept"}
    assert emulator.status(tmp_path) is None
    # The emulator's resources died with it, so its Terraform state is dropped too.
    assert not (tmp_path / "terraform" / "moto" / "terraform.tfstate").exists()


def test_a_new_emulator_stops_a_service_left_polling_a_dead_one(tmp_path: Path) -> None:
    """A background service recorded for an emulator that died would poll nothing (its
    endpoint is gone), and `up` would keep it: a fresh emulator stops it first."""
    from emulation import services

    leftover = subprocess.Popen(  # its command line names it a service, as the real one's does
        [sys.executable, "-c", "import time; time.sleep(120)", "emulation.services"],
        start_new_session=True,
    )
    services.write_json(tmp_path / services.STATE_NAME, {"pid": leftover.pid, "log": "x"})
    try:
        start_emulator("moto", local_dir=tmp_path)
        leftover.wait(timeout=20)  # stopped (TimeoutExpired otherwise: it sleeps 120 s)
        assert services.service_status(tmp_path) is None
    finally:
        if leftover.poll() is None:
            leftover.kill()
        stop_emulator(tmp_path)
