"""``make mlflow-ui``: the MLflow UI on 127.0.0.1 over the project's tracking store.

Uses the same settings as training (embedded SQLite store and artifact folder unless
``MLFLOW_TRACKING_URI`` / ``MLFLOW_ARTIFACT_LOCATION`` say otherwise); port ``MLFLOW_UI_PORT``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from config.settings import Settings


def ui_command(settings: Settings) -> list[str]:
    """The ``mlflow ui`` command line for these settings (localhost only)."""
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        settings.mlflow_tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.mlflow_ui_port),
        # One worker: a local UI for one person; four (the default) take 15 s to start here.
        "--workers",
        "1",
    ]
    if "://" not in settings.mlflow_tracking_uri or settings.mlflow_tracking_uri.startswith(
        "sqlite:"
    ):
        command += ["--default-artifact-root", settings.mlflow_artifact_location]
    return command


def runs_view_url(settings: Settings, experiment_id: str | None) -> str:
    """The UI's address; with an experiment, its runs table (MLflow 3.17 opens the GenAI view
    unless ``workflowType=machine_learning`` says otherwise)."""
    base = f"http://127.0.0.1:{settings.mlflow_ui_port}"
    if experiment_id is None:
        return base
    return f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning"


def _experiment_id(settings: Settings) -> str | None:
    from training.registry import mlflow_client  # noqa: PLC0415 - MLflow takes seconds

    experiment = mlflow_client(settings).get_experiment_by_name(settings.experiment_name)
    return None if experiment is None else str(experiment.experiment_id)


def main() -> int:
    settings = Settings.from_env()
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command = ui_command(settings)
    address = runs_view_url(settings, _experiment_id(settings))
    print(f"MLflow UI on {address} (store {uri}); Ctrl-C stops")
    sys.stdout.flush()
    # exec: Ctrl-C and signals go straight to the server, no wrapper process left behind.
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
