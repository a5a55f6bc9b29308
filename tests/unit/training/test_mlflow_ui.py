"""`make mlflow-ui`: its environment, and a Ctrl-C that stops it without tracebacks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from config.settings import REPO_ROOT
from tests.fakes import LOOPBACK_ONLY
from training import mlflow_ui


def test_the_ui_runs_without_job_runners_and_keeps_a_users_own_values():
    env = mlflow_ui.ui_environment({"PATH": "/bin"})
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and env["PATH"] == "/bin"
    mine = mlflow_ui.ui_environment({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"})
    assert mine["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.mark.slow
@LOOPBACK_ONLY
def test_ctrl_c_stops_the_ui_once_without_tracebacks(tmp_path, empty_store):
    import shutil

    shutil.copy(empty_store, tmp_path / "mlflow.db")
    port = _free_port()
    env = {
        **os.environ,
        "MUSHROOM_REPO_ROOT": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_UI_PORT": str(port),
    }
    # Its own session, as a terminal's foreground job: Ctrl-C is SIGINT to the whole group.
    ui = subprocess.Popen(
        [sys.executable, "-m", "training.mlflow_ui"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not _up(port):
            assert ui.poll() is None, ui.communicate()[0].decode()
            assert time.monotonic() < deadline, "the MLflow UI did not answer in 180 s"
            time.sleep(0.5)
        os.killpg(ui.pid, signal.SIGINT)
        output = ui.communicate(timeout=60)[0].decode()
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
    assert ui.returncode == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "Finished server process" in output
    assert "StarletteDeprecationWarning" not in output
    assert not _up(port)
