"""Fixtures shared by the integration tests."""

from __future__ import annotations

import os
from pathlib import Path

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
