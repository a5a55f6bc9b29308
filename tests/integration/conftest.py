"""Fixtures shared by the integration tests."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from config.settings import REPO_ROOT
from emulation.lambda_runtime import moto_patches
from tests.integration.lambda_stack import free_port

REPO = REPO_ROOT


# Modules that must run in one process: they share the once-per-session drift scenario (run
# in two processes, it would run twice).
SHARED_SCOPES = {
    "test_drift_scenario.py": "drift-scenario",
    "test_dashboard_browser.py": "drift-scenario",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test`` runs these modules in two processes (``-n 2 --dist loadfile``): each module
    whole in one process, so its module-scoped stack is set up once, and the modules of one
    shared scope together. (``xdist_group`` marks would say it too, but pytest-xdist 3.8 does
    not apply them under pytest 9: the group never reaches the node id.)"""
    if config.getvalue("dist") != "loadfile":
        return None  # pytest-xdist's own scheduler for any other mode
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_SCOPES.get(Path(module).name, module)

    return ModuleScopes(config, log)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A bare moto server of the module's own (no Terraform), patched as the emulator's is."""
    from moto.server import ThreadedMotoServer

    moto_patches.apply()  # as emulation.lambda_runtime.moto_server runs it
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        moto_patches.restore()


@pytest.fixture
def moto_server() -> Iterator[str]:
    """A bare moto server of the test's own (no patches, no Terraform): its endpoint."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    yield endpoint
    # moto's backends live in the process, shared by every server it starts: leave them empty.
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    server.stop()


@pytest.fixture
def emulator(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``moto_server`` with its endpoint, region and test credentials in the environment, where
    boto3 clients find them."""
    for key, value in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }.items():
        monkeypatch.setenv(key, value)
    return moto_server


@pytest.fixture(scope="session")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Lambda zip, built once per run (``MUSHROOM_LAMBDA_ZIP`` to reuse one).

    Built in the run's temporary root under a lock, so that the test processes of one run
    share one build and never build into one staging directory at once; not in build/, which
    ``make package`` and ``make deploy`` (run by some tests) prune to their newest zip. Tests
    deploy a copy of their own all the same.
    """
    prebuilt = os.environ.get("MUSHROOM_LAMBDA_ZIP")
    if prebuilt:
        return Path(prebuilt).resolve()
    from deployment.package_lambda import ZIP_PREFIX, build_lambda_zip

    # Under pytest-xdist the parent of a process's base temp dir is the run's, shared by its
    # processes (xdist's recipe for once-per-run fixtures); without it, the base dir is.
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "lambda-zip"
    root.mkdir(exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other process waits for the build, then reuses it
        built = sorted(root.glob(f"{ZIP_PREFIX}-*.zip"))
        return built[0] if built else build_lambda_zip(root)


@pytest.fixture(scope="session")
def drift_scenario(tmp_path_factory, lambda_zip: Path) -> SimpleNamespace:
    """``make demo-drift``'s command run once per session, as a user would (a child process).

    Its result JSON, what it printed (``stdout``; ``output`` with stderr) and its reports dir, whose
    ``monitoring/workspace`` is the dashboard the browser test serves. About 3.5 minutes.
    """
    local_dir = tmp_path_factory.mktemp("demo-drift")
    result = local_dir / "result.json"
    reports = local_dir / "reports"
    command = [sys.executable, "-m", "scripts.demo_drift", "--local-dir", str(local_dir)]
    command += ["--reports-dir", str(reports), "--per-phase", "800"]
    command += ["--lambda-zip", str(lambda_zip), "--result", str(result)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1400)
    (local_dir / "output.txt").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise AssertionError(
            f"demo-drift exited {done.returncode}; its output ends:\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}"
        )
    return SimpleNamespace(
        **json.loads(result.read_text()),
        stdout=done.stdout,
        output=done.stdout + done.stderr,
        reports_dir=reports,
    )
