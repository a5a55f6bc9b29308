"""Fixtures: a temporary SQLite MLflow store and settings that use it (training, orchestration)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config.settings import Settings


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite MLflow store; creating one takes seconds, copying it does not."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    SqlAlchemyStore(f"sqlite:///{path}", str(path.parent / "artifacts"))
    return path


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> Settings:
    # No AWS target: S3 export must be skipped cleanly.
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return Settings.from_env(
        {
            "MUSHROOM_REPO_ROOT": str(tmp_path),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        }
    )
