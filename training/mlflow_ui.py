"""``make mlflow-ui``: the MLflow UI on 127.0.0.1 over the project's tracking store.

Uses the same settings as training (embedded SQLite store and artifact folder unless
``MLFLOW_TRACKING_URI`` / ``MLFLOW_ARTIFACT_LOCATION`` say otherwise); port ``MLFLOW_UI_PORT``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from config.settings import Settings

# What the UI's processes get on top of the caller's environment (a caller's own value wins):
# - MLflow 3's server starts job runners (huey consumers, for GenAI judges and prompt
#   optimisation; nothing here uses them) that take a second import per process, and a Ctrl-C
#   during their start-up printed one traceback each;
# - one library-internal deprecation notice (MLflow's use of Starlette's WSGI middleware) that
#   nobody running the UI can act on.
UI_ENVIRONMENT = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "PYTHONWARNINGS": "ignore:starlette.middleware.wsgi is deprecated:UserWarning",
}


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


def ui_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The UI's environment: ``environ`` plus :data:`UI_ENVIRONMENT` where it says nothing."""
    return {**UI_ENVIRONMENT, **environ}


def serve(command: list[str], env: Mapping[str, str]) -> int:
    """Run the UI until it exits; Ctrl-C (or SIGTERM) stops it once, without tracebacks.

    The server runs in its own session: a Ctrl-C at the terminal would otherwise reach both
    ``mlflow ui`` (which forwards it to uvicorn) and uvicorn itself, and uvicorn, interrupted
    again while shutting down, printed a traceback. Here the signal is passed on once."""
    process = subprocess.Popen(command, env=dict(env), start_new_session=True)

    def stop(signum: int, _frame: object) -> None:
        if process.poll() is None:
            process.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    code = process.wait()
    # The server's exit status after a stop we asked for is a clean stop.
    return 0 if code in (0, -signal.SIGINT, -signal.SIGTERM) else code


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
    print(f"MLflow UI on {address} (store {uri}); Ctrl-C stops", flush=True)
    return serve(command, ui_environment(os.environ))


if __name__ == "__main__":
    sys.exit(main())
