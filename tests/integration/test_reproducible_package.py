"""The same commit builds the same Lambda zip, byte for byte, whichever command builds it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from config.settings import REPO_ROOT
from deployment.deploy import terraform_apply
from deployment.package_lambda import ZIP_PREFIX, sha256_file
from emulation.emulator import start_emulator, stop_emulator

pytestmark = pytest.mark.integration


def test_make_package_builds_the_zip_the_test_process_built(lambda_zip: Path, tmp_path: Path):
    """``lambda_zip`` is built in this process (as ``make demo`` and ``make deploy`` build it,
    after importing botocore and the scorer), or given by ``MUSHROOM_LAMBDA_ZIP``; ``make
    package`` builds in a process of its own. Different bytes would make an unchanged ``make
    deploy`` publish a new Lambda version."""
    subprocess.run(
        [sys.executable, "-m", "deployment.package_lambda", "--output-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = tmp_path.glob(f"{ZIP_PREFIX}-*.zip")
    assert sha256_file(built) == sha256_file(lambda_zip)
    assert built.name == lambda_zip.name


@pytest.mark.timeout(900)
def test_an_unchanged_make_deploy_publishes_no_new_version(lambda_zip: Path, tmp_path: Path):
    """Apply with the zip this process built, then run ``make deploy``'s apply step as make
    runs it (its own process, which builds the zip again): no new Lambda version."""
    local_dir = tmp_path / "local"
    zip_copy = Path(shutil.copy(lambda_zip, tmp_path / lambda_zip.name))
    state = start_emulator("moto", local_dir=local_dir)
    try:
        outputs = terraform_apply(
            {"lambda_zip_path": str(zip_copy)}, target="moto", local_dir=local_dir, capture=True
        )
        lam = boto3.client(
            "lambda",
            endpoint_url=state.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

        def versions() -> list[str]:
            listed = lam.list_versions_by_function(FunctionName=outputs["function_name"])
            return [v["Version"] for v in listed["Versions"]]

        before = versions()
        deployed = subprocess.run(
            [sys.executable, "-m", "deployment.deploy", "apply", "--target", "moto"],
            cwd=REPO_ROOT,
            env={**os.environ, "MUSHROOM_LOCAL_DIR": str(local_dir)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        assert f"{ZIP_PREFIX}-{sha256_file(lambda_zip)[:12]}.zip" in deployed.stdout
        assert versions() == before == ["$LATEST", "1"]
    finally:
        stop_emulator(local_dir)
