"""Fixtures shared by the integration tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from config.settings import REPO_ROOT

REPO = REPO_ROOT


@pytest.fixture(scope="session")
def lambda_zip() -> Path:
    """The real Lambda zip, built once per session (``MUSHROOM_LAMBDA_ZIP`` to reuse one).

    Tests deploy a copy of their own: `make package` keeps only the newest zip in build/, and
    a deploy must not remember a file that disappears mid-run.
    """
    prebuilt = os.environ.get("MUSHROOM_LAMBDA_ZIP")
    if prebuilt:
        return Path(prebuilt).resolve()
    from deployment.package_lambda import build_lambda_zip

    return build_lambda_zip(REPO / "build")


@pytest.fixture(scope="session")
def drift_scenario(tmp_path_factory, lambda_zip: Path) -> SimpleNamespace:
    """``make demo-drift``'s command run once per session, as a user would (a child process).

    Its result JSON, what it printed (``stdout``; ``output`` with stderr) and its reports dir, whose
    ``monitoring/workspace`` is the dashboard the browser test serves. About 2.5 minutes.
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
