"""MLflow tracking setup, model registration, aliases and the promotion gate.

Every run's bundle is logged as run artifacts (``bundle/``: ``model.txt`` + ``bundle.json``) and
inside an MLflow pyfunc model (``training.pyfunc``), which is registered as a version of
``mushroom-classifier`` with alias ``challenger``. The gate then moves alias ``champion`` only
when the challenger is better than the current champion on at least one gate figure and worse on
none, on the SAME held-out data: the new run's random-split test set,
which neither model was trained on when the data did not change (the split is keyed by dataset
row, so it is the same rows every run). A tie is not a promotion: a new version that changes
nothing is not worth a rollout. The decision and its reason are recorded as tags on the model
version and on the run.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from config.settings import CHALLENGER_ALIAS, CHAMPION_ALIAS, Settings
from lambda_function import verdict_metrics as vm
from lambda_function.model import BundleError, ModelBundle

log = logging.getLogger(__name__)

TAG_DECISION = "gate.decision"
TAG_REASON = "gate.reason"
TAG_CHAMPION_VERSION = "gate.champion_version"
DECISION_PROMOTED = "promoted"
DECISION_REJECTED = "rejected"
# The experiment tag MLflow 3's UI reads for an experiment's kind, and the machine-learning kind.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# Metrics the gate compares (lambda_function.verdict_metrics), with the better direction.
#: Safety first: false edibles, also under one misread attribute (training/evaluate.py).
GATE_METRICS = (
    (vm.FALSE_EDIBLE, "lower"),
    ("misread_false_edible", "lower"),
    (vm.DECISION_ACCURACY, "higher"),
)


# MLflow draws a tqdm bar ("Downloading artifacts: 100%|...") for every multi-file download, a
# bundle of a few KB included, into the demo's and the monitor's output. It reads this switch
# from the environment only (at each download), so it is set where MLflow is configured; a
# user's own value wins.
ARTIFACTS_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def _quiet_mlflow_logs() -> None:
    # Database migrations and artifact uploads log at INFO on every start; keep output readable.
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking.fluent"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault(ARTIFACTS_PROGRESS_BAR, "false")


def mlflow_client(settings: Settings) -> Any:
    """Point MLflow at the settings' tracking and registry store; return an ``MlflowClient``.

    Creates no experiment: reading the registry (the champion, before a deploy) must not fix
    the experiment's artifact location before the stack's MLflow bucket is known.
    """
    import mlflow
    from mlflow import MlflowClient

    _quiet_mlflow_logs()
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def configure_mlflow(settings: Settings) -> tuple[Any, str]:
    """:func:`mlflow_client` plus the experiment runs log to: ``(MlflowClient, experiment_id)``.

    Creates the experiment (with the settings' artifact location) when needed. MLflow never
    changes an existing experiment's artifact location, so only the first run decides it.
    """
    import mlflow

    client = mlflow_client(settings)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        location = settings.mlflow_artifact_location
        if "://" not in location:
            Path(location).mkdir(parents=True, exist_ok=True)
        experiment_id = client.create_experiment(settings.experiment_name, location)
    else:
        experiment_id = experiment.experiment_id
        if experiment.artifact_location.rstrip("/") != settings.mlflow_artifact_location.rstrip(
            "/"
        ) and not experiment.artifact_location.endswith(settings.mlflow_artifact_location):
            log.warning(
                "experiment %r keeps its artifact location %s (settings say %s); use another "
                "MLFLOW_EXPERIMENT_NAME to switch",
                settings.experiment_name,
                experiment.artifact_location,
                settings.mlflow_artifact_location,
            )
    # Read by MLflow 3 UIs that pick the experiment's view from its kind (classic runs view
    # for "custom_model_development"); 3.17 picks it from the workflow switch (README, MLflow).
    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=experiment_id)
    return client, experiment_id


def _alias_version(client: Any, model_name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def get_champion(settings: Settings, client: Any | None = None) -> tuple[str, str] | None:
    """``(version, run_id)`` of the model with alias ``champion``, or None if there is none."""
    if client is None:
        client = mlflow_client(settings)
    version = _alias_version(client, settings.model_name, CHAMPION_ALIAS)
    if version is None:
        return None
    return str(version.version), str(version.run_id)


TAG_TRAINING_DATA = "training_data_sha256"


def champion_training_data(
    settings: Settings, client: Any | None = None
) -> tuple[str, str | None] | None:
    """``(version, training_data_sha256)`` of the champion, or None if there is none.

    The checksum is the one the pipeline recorded for the exact training frame (a tag of the
    model version, else the run's parameter); None when neither has it.
    """
    if client is None:
        client = mlflow_client(settings)
    version = _alias_version(client, settings.model_name, CHAMPION_ALIAS)
    if version is None:
        return None
    sha = (version.tags or {}).get(TAG_TRAINING_DATA)
    if not sha and version.run_id:
        sha = client.get_run(version.run_id).data.params.get(TAG_TRAINING_DATA)
    return str(version.version), sha or None


def register_version(
    client: Any,
    model_name: str,
    source: str,
    run_id: str,
    tags: Mapping[str, str] | None = None,
    model_id: str | None = None,
) -> str:
    """Register ``source`` as a new version of ``model_name`` and give it alias ``challenger``.

    ``model_id``: the MLflow logged model ``source`` (``models:/<model_id>``) refers to.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            model_name, description="Mushroom edibility classifier (LightGBM + species guard)"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        model_name,
        source=source,
        run_id=run_id,
        tags=dict(tags or {}),
        await_creation_for=0,
        model_id=model_id,
    )
    client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, version.version)
    return str(version.version)


def decide_promotion(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    *,
    champion_version: str | None = None,
    champion_error: str | None = None,
) -> tuple[bool, str]:
    """The gate: promote when there is no champion, or the challenger is better on at least one
    gate figure and worse on none (``false_edible``: poisonous called edible, and
    ``misread_false_edible``: the same under one misread attribute, the safety figures, lower is
    better; ``decision_accuracy``: right actions, ``unknown`` counting as "do not eat",
    higher is better). A tie on every figure is not a promotion.

    It fails closed: a champion that exists but could not be evaluated (``champion_error``),
    or a gate metric that is not a finite number on either side, refuses the promotion. Only
    "there is no champion" (``champion`` and ``champion_error`` both None) promotes blindly.
    """
    if champion_error is not None:
        return False, (
            f"champion v{champion_version or '?'} could not be evaluated ({champion_error}); "
            "refusing to promote without a comparison (fail closed)"
        )
    if champion is None:
        return True, "first model: no champion yet"
    unusable = [
        f"{side} {name} is not a finite number ({metrics.get(name)!r})"
        for side, metrics in (("challenger", challenger), ("champion", champion))
        for name, _ in GATE_METRICS
        if not _is_finite_number(metrics.get(name))
    ]
    if unusable:
        return False, "cannot compare on the gate metrics (fail closed): " + "; ".join(unusable)
    worse, better = [], []
    for name, direction in GATE_METRICS:
        new, old = float(challenger[name]), float(champion[name])
        if new != old:
            improved = new < old if direction == "lower" else new > old
            (better if improved else worse).append(f"{name} {new:g} vs champion {old:g}")
    summary = ", ".join(
        f"{name} {float(challenger[name]):g} (champion {float(champion[name]):g})"
        for name, _ in GATE_METRICS
    )
    if worse:
        return False, "worse than champion on the same held-out data: " + "; ".join(worse)
    if not better:
        return False, "tie with champion on every figure: not promoted: " + summary
    return True, (
        "better than champion on the same held-out data ("
        + "; ".join(better)
        + ") and worse on none: "
        + summary
    )


def _is_finite_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def record_decision(
    client: Any,
    model_name: str,
    version: str,
    run_id: str,
    promoted: bool,
    reason: str,
    champion_version: str | None,
    move_champion: bool = True,
) -> None:
    """Tag the model version and the run with the decision; move ``champion`` if promoted
    (and ``move_champion``: a version bound for the shadow becomes champion only when its live
    evidence promotes it)."""
    tags = {
        TAG_DECISION: DECISION_PROMOTED if promoted else DECISION_REJECTED,
        TAG_REASON: reason[:4000],
        TAG_CHAMPION_VERSION: champion_version or "none",
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
        client.set_tag(run_id, key, value)
    if promoted and move_champion:
        client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
    log.info("version %s %s: %s", version, tags[TAG_DECISION], reason)


def download_bundle(source: str, dst: Path) -> Path:
    """Download a version's registry ``source`` into ``dst``; return its bundle directory.

    The source is the logged pyfunc model (the bundle is its artifact ``bundle``), or, for
    versions registered before the pyfunc, the run's ``bundle/`` directory itself.
    """
    import mlflow

    from training.pyfunc import bundle_path

    return bundle_path(
        Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst)))
    )


def load_champion_bundle(settings: Settings, client: Any, version: str) -> ModelBundle:
    """The champion's bundle: the local export if present, else the registered artifacts."""
    local = settings.model_bundles_dir / str(version)
    try:
        return ModelBundle.load(local)
    except BundleError as local_error:
        log.info("no usable local bundle for version %s (%s); trying MLflow", version, local_error)
    source = client.get_model_version(settings.model_name, version).source
    with tempfile.TemporaryDirectory() as tmp:
        return ModelBundle.load(download_bundle(source, Path(tmp)))
