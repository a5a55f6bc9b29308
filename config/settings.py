"""Configuration of the offline side (training, monitoring, deployment), read in one place.

Every value comes from the environment with a project-local default, so a clean clone works
without any setup and the same code runs against the embedded emulator or real AWS. Nothing
here talks to AWS or MLflow: it only decides names and locations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_DATASET_URL = "https://archive.ics.uci.edu/static/public/848/secondary+mushroom+dataset.zip"
MODEL_NAME = "mushroom-classifier"
EXPERIMENT_NAME = "mushroom-classifier"
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"


def _path(env: Mapping[str, str], key: str, default: Path) -> Path:
    value = env.get(key)
    return Path(value).expanduser().resolve() if value else default


# Run state that is never committed (MLflow store, Terraform state, stack.env, emulator files).
# Resolved once, here: every module that needs a default location takes it from this constant.
LOCAL_DIR = _path(os.environ, "MUSHROOM_LOCAL_DIR", REPO_ROOT / ".local")


def _has_aws_target(env: Mapping[str, str]) -> bool:
    """An emulator endpoint or explicit AWS credentials/profile are configured.

    Deliberately env-only: asking boto3's credential chain would probe the EC2 metadata
    service (a timeout on a laptop) just to read settings.
    """
    return any(
        env.get(k)
        for k in (
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        )
    )


@dataclass(frozen=True)
class Settings:
    """Offline-side settings; build with :meth:`from_env`.

    Attributes:
        repo_root: the project checkout (all local defaults live below it).
        data_dir: where the verified CSVs are unpacked (``MUSHROOM_DATA_DIR``, default
            ``<repo>/data``).
        dataset_url: UCI download URL (``MUSHROOM_DATASET_URL``).
        dataset_zip: a local copy of the UCI zip used instead of downloading
            (``MUSHROOM_DATASET_ZIP``; CI points it at the shared copy).
        local_dir: run state that is never committed (``MUSHROOM_LOCAL_DIR``, default
            ``<repo>/.local``).
        mlflow_tracking_uri: MLflow tracking and registry store (``MLFLOW_TRACKING_URI``,
            default ``sqlite:///<repo>/.local/mlflow/mlflow.db``).
        mlflow_artifact_location: artifact root for a newly created experiment
            (``MLFLOW_ARTIFACT_LOCATION``; default ``s3://$MLFLOW_BUCKET/artifacts`` when
            ``MLFLOW_BUCKET`` is set and an AWS target is configured, else
            ``<repo>/.local/mlflow/artifacts``).
        experiment_name: MLflow experiment (``MLFLOW_EXPERIMENT_NAME``).
        model_name: registered model name (fixed by the team conventions).
        models_bucket: S3 bucket for model bundles and the Lambda zip (``MODELS_BUCKET``).
        data_bucket: S3 bucket for late labels and monitoring data (``DATA_BUCKET``).
        mlflow_bucket: S3 bucket for MLflow artifacts (``MLFLOW_BUCKET``).
        input_stream_name: Kinesis input stream (``INPUT_STREAM_NAME``).
        output_stream_name: Kinesis output stream (``OUTPUT_STREAM_NAME``).
        aws_endpoint_url: the emulator endpoint, if any (``AWS_ENDPOINT_URL``; boto3 reads
            it itself, this is for logging and decisions only).
        aws_region: ``AWS_DEFAULT_REGION`` (default us-east-1).
        aws_configured: an emulator endpoint or AWS credentials/profile are set in the
            environment (S3 export and S3 artifacts are attempted only then).
        bundles_dir: local model bundles (``MUSHROOM_BUNDLES_DIR``, default
            ``<repo>/.local/bundles``); versions under ``mushroom-classifier/<version>/``.
        reports_dir: JSON/HTML reports (``MUSHROOM_REPORTS_DIR``, default ``<repo>/reports``).
        seed: the one seed for splits and LightGBM (``MUSHROOM_SEED``, default 42).
        mlflow_ui_port: port of ``make mlflow-ui`` on 127.0.0.1 (``MLFLOW_UI_PORT``, 5000).
    """

    repo_root: Path
    data_dir: Path
    dataset_url: str
    dataset_zip: Path | None
    local_dir: Path
    mlflow_tracking_uri: str
    mlflow_artifact_location: str
    experiment_name: str
    model_name: str
    models_bucket: str
    data_bucket: str
    mlflow_bucket: str
    input_stream_name: str
    output_stream_name: str
    aws_endpoint_url: str | None
    aws_region: str
    aws_configured: bool
    bundles_dir: Path
    reports_dir: Path
    seed: int
    mlflow_ui_port: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read the settings from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        root = _path(env, "MUSHROOM_REPO_ROOT", REPO_ROOT)
        local_dir = _path(env, "MUSHROOM_LOCAL_DIR", root / ".local")
        mlflow_dir = local_dir / "mlflow"
        mlflow_bucket = env.get("MLFLOW_BUCKET") or "mushroom-local-mlflow"
        if env.get("MLFLOW_ARTIFACT_LOCATION"):
            artifact_location = env["MLFLOW_ARTIFACT_LOCATION"]
        elif env.get("MLFLOW_BUCKET") and _has_aws_target(env):
            artifact_location = f"s3://{mlflow_bucket}/artifacts"
        else:
            artifact_location = str(mlflow_dir / "artifacts")
        dataset_zip = env.get("MUSHROOM_DATASET_ZIP")
        return cls(
            repo_root=root,
            data_dir=_path(env, "MUSHROOM_DATA_DIR", root / "data"),
            dataset_url=env.get("MUSHROOM_DATASET_URL") or DEFAULT_DATASET_URL,
            dataset_zip=Path(dataset_zip).expanduser().resolve() if dataset_zip else None,
            local_dir=local_dir,
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            mlflow_artifact_location=artifact_location,
            experiment_name=env.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT_NAME,
            model_name=MODEL_NAME,
            models_bucket=env.get("MODELS_BUCKET") or "mushroom-local-models",
            data_bucket=env.get("DATA_BUCKET") or "mushroom-local-data",
            mlflow_bucket=mlflow_bucket,
            input_stream_name=env.get("INPUT_STREAM_NAME") or "mushroom-observations",
            output_stream_name=env.get("OUTPUT_STREAM_NAME") or "mushroom-verdicts",
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            aws_region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
            aws_configured=_has_aws_target(env),
            bundles_dir=_path(env, "MUSHROOM_BUNDLES_DIR", local_dir / "bundles"),
            reports_dir=_path(env, "MUSHROOM_REPORTS_DIR", root / "reports"),
            seed=int(env.get("MUSHROOM_SEED") or 42),
            mlflow_ui_port=int(env.get("MLFLOW_UI_PORT") or 5000),
        )

    @property
    def model_bundles_dir(self) -> Path:
        """``<bundles_dir>/mushroom-classifier``: one sub-directory per version + champion."""
        return self.bundles_dir / self.model_name
