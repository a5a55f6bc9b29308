"""Bundle export: local layout, champion copy, S3 (moto), and loading without pandas/MLflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from config.settings import REPO_ROOT, Settings
from lambda_function.bundle_store import load_bundle
from lambda_function.compiled import platform_tag, predictor_file_name
from lambda_function.model import ModelBundle
from training import export

REPO = REPO_ROOT


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"MUSHROOM_REPO_ROOT": str(tmp_path), **env})


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)


def test_bundle_roundtrip_keeps_scores(tiny_bundle, tiny_dataset):
    from training.features import encode_frame

    bundle = ModelBundle.load(tiny_bundle)
    matrix = encode_frame(tiny_dataset, bundle.encoder)
    again = ModelBundle.load(bundle.save(tiny_bundle.parent / "copy"))
    p1, v1 = bundle.score(matrix)
    p2, v2 = again.score(matrix)
    np.testing.assert_allclose(p1, p2)
    assert v1 == v2 and again.threshold == bundle.threshold
    assert again.metadata["mlflow_run_id"] == "test-run"


def test_bundle_loads_without_pandas_or_mlflow(tiny_bundle):
    code = (
        "import sys\n"
        "sys.modules['pandas'] = None\n"
        "sys.modules['mlflow'] = None\n"
        "from lambda_function.model import ModelBundle\n"
        f"b = ModelBundle.load({str(tiny_bundle)!r})\n"
        "row = {f: None for f in b.encoder.feature_order}\n"
        "row.update(cap_diameter=5.0, stem_height=5.0, stem_width=5.0)\n"
        "p, verdicts = b.score_rows([row])\n"
        "print(verdicts[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("edible", "poisonous", "unknown")


def test_export_local_layout_and_champion_copy(tmp_path, tiny_bundle, no_aws, caplog):
    settings = _settings(tmp_path)
    bundle = ModelBundle.load(tiny_bundle)
    bundle.model_version = "7"
    with caplog.at_level("INFO"):
        local_dir, s3_uri = export.export_bundle(bundle, settings)
    assert s3_uri is None and "S3 export skipped" in caplog.text
    assert local_dir == tmp_path / ".local" / "bundles" / "mushroom-classifier" / "7"
    champion = ModelBundle.load(local_dir.parent / "champion")
    assert champion.model_version == "7"

    bundle.model_version = "8"
    export.export_bundle(bundle, settings, champion=False)
    assert ModelBundle.load(local_dir.parent / "8").model_version == "8"
    assert ModelBundle.load(local_dir.parent / "champion").model_version == "7"


@mock_aws
def test_export_to_s3_and_republish(tmp_path, tiny_bundle, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = _settings(tmp_path, AWS_ACCESS_KEY_ID="test", MODELS_BUCKET="models-test")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="models-test")
    bundle = ModelBundle.load(tiny_bundle)
    bundle.model_version = "3"

    _, uri = export.export_bundle(bundle, settings)
    assert uri == "s3://models-test/mushroom-classifier/3/"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models-test")["Contents"]}
    # Every file bundle.json lists: the model and (with a C compiler) its compiled predictor.
    compiled = {f"mushroom-classifier/3/{predictor_file_name(platform_tag())}"}
    assert keys == {
        "mushroom-classifier/3/model.txt",
        "mushroom-classifier/3/bundle.json",
    } | (compiled if shutil.which("gcc") else set())
    # What the Lambda downloads passes its size and checksum verification.
    served = load_bundle(uri, tmp_path / "cache", s3)
    assert served.model_version == "3"
    assert served.predictor.kind == ("compiled" if shutil.which("gcc") else "lightgbm")

    s3.delete_object(Bucket="models-test", Key="mushroom-classifier/3/bundle.json")
    assert export.publish_champion(settings) == uri
    assert s3.head_object(Bucket="models-test", Key="mushroom-classifier/3/bundle.json")


@mock_aws
def test_export_skips_missing_bucket(tmp_path, tiny_bundle, monkeypatch, caplog):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = _settings(tmp_path, AWS_ACCESS_KEY_ID="test", MODELS_BUCKET="absent")
    with caplog.at_level("INFO"):
        local_dir, uri = export.export_bundle(ModelBundle.load(tiny_bundle), settings)
    assert uri is None and local_dir.is_dir()
    assert "bucket absent not available" in caplog.text
