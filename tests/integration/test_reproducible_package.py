"""The same commit builds the same Lambda zip, byte for byte, whichever command builds it.

That an unchanged ``make deploy`` then publishes no new version is checked on the deployed
stack of ``test_end_to_end.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import REPO_ROOT
from deployment.package_lambda import ZIP_PREFIX, sha256_file

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
