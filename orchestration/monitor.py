"""The monitoring CLI (``make monitor`` = ``python -m orchestration.monitor``): one cycle, wired.

The composition root of the closed loop: real adapters from the settings (``monitoring.aws``),
retraining (``training.pipeline``), the promotion gate's result rolled out, MLflow run tags.
The cycle itself (``monitoring.cycle``) only sees its ports.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from config.settings import MonitoringConfig, Settings
from monitoring.archive_window import ArchiveReader
from monitoring.athena import AthenaEngine
from monitoring.config import LEASE_KEY, STATE_KEY, resolve_evaluation_mode
from monitoring.cycle import (
    ArchiveUnavailable,
    PublishFailed,
    all_training_records,
    run_exclusive,
)
from monitoring.drift import DriftReference, fingerprint, load_reference
from monitoring.duckdb_engine import DuckDBEngine, S3Location
from monitoring.lease import EXIT_LEASE_HELD, CycleLease, LeaseHeld
from monitoring.outputs import describe
from monitoring.ports import CycleDeps, JsonStore
from monitoring.respond import Deploy, NoNewData, Retrain, TagRun
from monitoring.shadow import ShadowActions, TagVersion
from monitoring.state import StateConflict
from monitoring.workspace import EvidentlyWorkspace

log = logging.getLogger(__name__)


def default_retrain(settings: Any) -> Retrain:
    """``training.pipeline.run_training`` bound to the settings (imported when called)."""

    def retrain(**kwargs: Any) -> Any:
        from training.pipeline import run_training  # noqa: PLC0415 - heavy, only on ALARM

        return run_training(settings, **kwargs)

    return retrain


class DeployedShadow:
    """:class:`monitoring.shadow.ShadowActions` on the deployed stack: the functions behind
    ``make shadow``, ``make promote`` and ``make shadow-stop`` (each verifies what it did)."""

    def __init__(self, settings: Settings) -> None:
        self._local_dir = settings.local_dir

    def _stack(self) -> Any:
        from orchestration.rollout import connect  # noqa: PLC0415 - boto3 and the stack file

        return connect(local_dir=self._local_dir)

    def current(self) -> str | None:
        from orchestration.rollout import shadowing  # noqa: PLC0415

        state = shadowing(self._stack())
        return None if state is None else str(state.model_version)

    def start(self, model_version: str) -> None:
        from orchestration.rollout import shadow_model  # noqa: PLC0415

        shadow_model(self._stack(), model_version)

    def promote(self) -> None:
        from orchestration.rollout import promote_shadow_model  # noqa: PLC0415

        promote_shadow_model(self._stack())  # also moves the registry's champion

    def stop(self) -> None:
        from orchestration.rollout import stop_shadow_model  # noqa: PLC0415

        stop_shadow_model(self._stack())


def keeping_the_champion(retrain: Retrain) -> Retrain:
    """``retrain`` whose gate does not move the registry's ``champion``: with a shadow, a
    version that passes the gate becomes champion only when its live evidence promotes it."""

    def wrapped(**kwargs: Any) -> Any:
        return retrain(**kwargs, move_champion=False)

    return wrapped


# Where the labelled records a retraining used are kept in its MLflow run, so the drift
# reference of that version is its exact training data on any host, whatever labels came later.
EXTRA_RECORDS_ARTIFACT = "training_data/extra_records.parquet"


def recording_extra_records(settings: Settings, retrain: Retrain) -> Retrain:
    """``retrain`` that also logs the labelled records it was given to the new run."""

    def wrapped(**kwargs: Any) -> Any:
        result = retrain(**kwargs)
        records = kwargs.get("extra_records")
        if records is not None and len(records) and getattr(result, "run_id", None):
            try:
                _log_extra_records(settings, str(result.run_id), records)
            except Exception as exc:  # noqa: BLE001 - the reference is rebuilt from labels then
                log.warning("labelled records not logged to run %s: %s", result.run_id, exc)
        return result

    return wrapped


def _log_extra_records(settings: Settings, run_id: str, records: pd.DataFrame) -> None:
    import tempfile  # noqa: PLC0415

    from training import registry  # noqa: PLC0415

    client = registry.mlflow_client(settings)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(EXTRA_RECORDS_ARTIFACT).name
        records.to_parquet(path)
        client.log_artifact(run_id, str(path), str(Path(EXTRA_RECORDS_ARTIFACT).parent))


def _logged_extra_records(client: Any, run_id: str) -> pd.DataFrame | None:
    """The labelled records logged to the run, or None (not logged, not reachable)."""
    import tempfile  # noqa: PLC0415

    try:
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_parquet(client.download_artifacts(run_id, EXTRA_RECORDS_ARTIFACT, tmp))
    except Exception as exc:  # noqa: BLE001 - an older run, or artifacts out of reach
        log.info("no labelled records logged to run %s (%s)", run_id, exc)
        return None


def default_deploy(version: str, settings: Settings | None = None) -> None:
    """Serve the registry's champion, which the gate has just made ``version``.

    ``orchestration.rollout.roll_out_model``: the champion's bundle to S3, a published Lambda
    version, the alias ``live`` moved to it; no Terraform. The stack is the one of
    ``settings.local_dir`` (``MUSHROOM_LOCAL_DIR``). Raises when what got served is not
    ``version`` (the champion moved in between): the cycle records that as a failure instead of
    claiming a deployment.
    """
    from orchestration.rollout import connect, roll_out_model  # noqa: PLC0415 - on promotion

    settings = settings or Settings.from_env()
    result = roll_out_model(connect(local_dir=settings.local_dir))
    if result.served.model_version != str(version):
        raise RuntimeError(
            f"served model version {result.served.model_version or 'none'} instead of "
            f"{version}: the registry's champion is not the version this cycle promoted"
        )


def no_new_training_data(settings: Settings) -> NoNewData:
    """Compare what retraining would train on with what the champion was trained on.

    Retraining on the labelled records means the dataset plus those records, built exactly as
    the pipeline builds it (``training.pipeline.prepare_frame``: records that duplicate dataset
    rows are dropped). When that frame's checksum equals the champion's recorded
    ``training_data_sha256`` there is nothing new to learn, and the check says why.
    """

    def check(records: pd.DataFrame | None) -> str | None:
        from training import registry  # noqa: PLC0415 - heavy, only on ALARM
        from training.data import load_dataset  # noqa: PLC0415
        from training.pipeline import frame_checksum, prepare_frame  # noqa: PLC0415

        champion = registry.champion_training_data(settings)
        if champion is None or champion[1] is None:
            return None  # nothing to compare with: retrain, the gate decides
        version, champion_sha = champion
        frame = prepare_frame(load_dataset(settings), settings.seed, extra_records=records)
        if frame_checksum(frame) != champion_sha:
            return None
        return (
            f"no new labelled records since champion v{version} was trained (the training "
            f"data would be identical: training_data_sha256 {champion_sha[:12]})"
        )

    return check


# A model retrained on at least this many labelled production records (in its training part)
# gets those records as its drift reference: they are what production looked like when it was
# trained, and what it was retrained for. With fewer, its dataset training rows are the reference.
MIN_PRODUCTION_REFERENCE_ROWS = 200


def training_reference(
    settings: Settings,
    version: str,
    labelled_records: Callable[[], pd.DataFrame | None],
    sample: int,
    cache_dir: Path | None = None,
) -> DriftReference:
    """The training data of registered model ``version``, as a drift reference.

    Rebuilt as the pipeline built it (``training.pipeline.prepare_frame``): the dataset without
    the run's ``excluded_species``, plus, when the run had ``n_extra_records``, the labelled
    records logged to it (:func:`recording_extra_records`; else the labelled records there are
    now), and checked against the run's ``training_data_sha256`` (a mismatch, e.g. labels that
    arrived after the training, is said in the description). Only the
    training part (not the held-out test rows) counts; see ``MIN_PRODUCTION_REFERENCE_ROWS``.
    Saved as ``<cache_dir>/v<version>-<checksum>.parquet`` with its description, so later
    cycles (and processes) do not rebuild it.
    """
    from training import registry  # noqa: PLC0415 - heavy, only when the version changes
    from training.data import ROW_ID, load_dataset  # noqa: PLC0415
    from training.pipeline import IS_TEST, frame_checksum, prepare_frame  # noqa: PLC0415

    client = registry.mlflow_client(settings)
    registered = client.get_model_version(settings.model_name, version)
    params = client.get_run(registered.run_id).data.params
    recorded = params.get(registry.TAG_TRAINING_DATA) or ""
    cached = cache_dir / f"v{version}-{recorded[:16]}.parquet" if cache_dir else None
    if cached is not None and recorded and cached.is_file():
        frame = pd.read_parquet(cached)
        description = json.loads(cached.with_suffix(".json").read_text())["description"]
        return DriftReference(frame, description, version, recorded[:12])

    excluded = [int(s) for s in params.get("excluded_species", "").split(",") if s.isdigit()]
    extra = None
    if int(params.get("n_extra_records") or 0):
        extra = _logged_extra_records(client, registered.run_id)
        if extra is None:
            extra = labelled_records()
    full = prepare_frame(load_dataset(settings), settings.seed, excluded, extra)
    checksum = frame_checksum(full)
    train = full[~full[IS_TEST]]
    production = train[train[ROW_ID] < 0]
    if len(production) >= MIN_PRODUCTION_REFERENCE_ROWS:
        what = f"{len(production)} labelled production records (of {len(train)} training rows)"
        rows = production
    else:
        what = f"{len(train)} training rows" + (
            f", {sample} sampled" if len(train) > sample else ""
        )
        rows = train
    description = f"training data of model v{version}: {what}"
    if recorded and checksum != recorded:
        description += (
            f" (rebuilt: training_data_sha256 {checksum[:12]} differs from the recorded "
            f"{recorded[:12]}; the labelled records changed since)"
        )
    frame = load_reference(None, sample, settings.seed, load_dataset=lambda: rows)
    reference = DriftReference(frame, description, version, (recorded or checksum)[:12])
    if cached is not None and recorded:
        cached.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(cached)
        cached.with_suffix(".json").write_text(json.dumps(reference.to_dict()))
    return reference


def served_reference(
    settings: Settings,
    config: MonitoringConfig,
    served_version: Callable[[], str | None],
    build: Callable[[str], DriftReference],
) -> Callable[[], DriftReference]:
    """The drift reference for the model version served now, built once per version.

    An explicit ``MONITORING_REFERENCE`` file wins; when the served version cannot be told (no
    stack, an alias without a model) or its training data cannot be rebuilt, a seeded sample
    of the dataset is used and the description says why.
    """
    built: dict[str, DriftReference] = {}

    def fallback(why: str) -> DriftReference:
        if "dataset" not in built:  # loaded once, whatever the reason

            def dataset() -> pd.DataFrame:
                from training.data import load_dataset  # noqa: PLC0415

                return load_dataset(settings)

            frame = load_reference(
                config.reference_path, config.reference_sample, settings.seed, load_dataset=dataset
            )
            source = f"file {config.reference_path}" if config.reference_path else "dataset sample"
            built["dataset"] = DriftReference(frame, source, None, fingerprint(frame))
        return dataclasses.replace(
            built["dataset"], description=f"{built['dataset'].description} ({why})"
        )

    def reference() -> DriftReference:
        if config.reference_path is not None:
            return fallback("MONITORING_REFERENCE")
        try:
            version = served_version()
        except Exception as exc:  # noqa: BLE001 - drift is advisory; say why, use the fallback
            return fallback(f"served model unknown: {type(exc).__name__}: {exc}"[:200])
        if not version:
            return fallback("the alias serves no registered model")
        if version not in built:
            try:
                built[version] = build(version)
            except Exception as exc:  # noqa: BLE001
                log.warning("training data of model v%s not rebuilt: %s", version, exc)
                return fallback(f"training data of model v{version} not rebuilt: {exc}"[:200])
        return built[version]

    return reference


def mlflow_tagger(settings: Any) -> TagRun:
    def tag(run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow import MlflowClient  # noqa: PLC0415

        client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)

    return tag


def mlflow_version_tagger(settings: Any) -> TagVersion:
    """Tags on a registered model version (a shadow's start, promotion or discard)."""

    def tag(version: str, tags: Mapping[str, str]) -> None:
        from mlflow import MlflowClient  # noqa: PLC0415

        client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        for key, value in tags.items():
            client.set_model_version_tag(settings.model_name, str(version), key, value)

    return tag


def build_deps(
    settings: Settings | None = None,
    retrain: Retrain | None = None,
    deploy: Deploy | None = None,
    no_new_data: NoNewData | None = None,
    shadow: ShadowActions | None = None,
) -> CycleDeps:
    """Wire the real adapters from the settings (default: read from the environment once).

    With ``shadow`` (by default the deployed stack's shadow commands when the settings'
    ``promotion`` is ``shadow``), a model that passes the gate becomes the shadow (the registry's
    ``champion`` stays) and the cycles promote or discard it by its evidence."""
    from monitoring import aws  # noqa: PLC0415 - boto3 only when wiring the real thing

    settings = settings or Settings.from_env()
    config = settings.monitoring
    if config is None:
        raise ValueError("settings without monitoring settings: build them with Settings.from_env")
    use_s3 = config.state_store == "s3"
    store: JsonStore = (
        aws.S3JsonStore(settings.data_bucket, STATE_KEY)
        if use_s3
        else aws.LocalJsonStore(config.local_state_path)
    )
    lease_store = (
        aws.S3JsonStore(settings.data_bucket, LEASE_KEY)
        if use_s3
        else aws.LocalJsonStore(
            config.local_lease_path or config.local_state_path.with_name("lease.json")
        )
    )
    sns = aws.Sns(config.topic_arn, config.topic_name)
    if shadow is None and config.promotion == "shadow":
        shadow = DeployedShadow(settings)
    retrain = retrain or default_retrain(settings)
    if shadow is not None:
        retrain = keeping_the_champion(retrain)

    objects = aws.S3Objects(settings.data_bucket) if settings.aws_configured else None

    def served_version() -> str | None:
        from orchestration.rollout import connect, serving  # noqa: PLC0415 - the Lambda alias

        if not settings.aws_configured:  # boto3 would probe for credentials, then fail
            raise LookupError("no AWS target configured (make up, make deploy)")
        return serving(connect(local_dir=settings.local_dir)).model_version

    reference = served_reference(
        settings,
        config,
        served_version,
        functools.partial(
            training_reference,
            settings,
            labelled_records=functools.partial(all_training_records, objects),
            sample=config.reference_sample,
            cache_dir=config.local_state_path.parent / "reference",
        ),
    )

    return CycleDeps(
        config=config,
        verdicts=aws.KinesisStreamReader(settings.output_stream_name),
        observations=(
            aws.KinesisStreamReader(settings.input_stream_name)
            if config.read_observations
            else None
        ),
        state_store=store,
        objects=objects,
        cloudwatch=aws.CloudWatch(),
        notify=sns.publish,
        retrain=recording_extra_records(settings, retrain),
        deploy=deploy or functools.partial(default_deploy, settings=settings),
        evaluation_mode=resolve_evaluation_mode(
            config.alarm_evaluation, config.aws_target, settings.aws_endpoint_url
        ),
        reference=reference,
        tag_run=mlflow_tagger(settings),
        no_new_data=no_new_data or no_new_training_data(settings),
        lease=CycleLease(lease_store, timedelta(seconds=config.lease_ttl_seconds)),
        workspace=EvidentlyWorkspace(config.workspace_dir) if config.workspace_dir else None,
        archive=archive_reader(settings, objects) if config.source == "archive" else None,
        shadow=shadow,
        tag_version=mlflow_version_tagger(settings),
    )


def archive_reader(settings: Settings, objects: Any) -> ArchiveReader:
    """SQL over the archive in the data bucket: DuckDB reading S3 (the emulator's or AWS's),
    or Athena over the Glue tables (``MONITORING_QUERY_ENGINE=athena``)."""
    import boto3  # noqa: PLC0415 - only when wiring the real thing

    config = settings.monitoring
    assert config is not None
    if objects is None:
        raise ValueError("MONITORING_SOURCE=archive needs an AWS target (make up, make deploy)")
    engine: Any
    if config.query_engine == "athena":
        if not (config.athena_workgroup and config.athena_database):
            raise ValueError("the athena engine needs ATHENA_WORKGROUP and ARCHIVE_DATABASE")
        engine = AthenaEngine(
            boto3.client("athena"), config.athena_workgroup, config.athena_database
        )
    else:
        credentials = boto3.Session().get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials else None
        engine = DuckDBEngine.over_s3(
            S3Location(
                bucket=settings.data_bucket,
                region=settings.aws_region,
                endpoint_url=settings.aws_endpoint_url,
                access_key_id=frozen.access_key if frozen else None,
                secret_access_key=frozen.secret_key if frozen else None,
                session_token=frozen.token if frozen else None,
            )
        )
    return ArchiveReader(
        engine,
        objects,
        look_back=timedelta(days=config.look_back_days),
        grace=timedelta(seconds=config.archive_grace_seconds),
        dedupe_horizon=timedelta(seconds=config.dedupe_horizon_seconds),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.monitor", description=__doc__)
    parser.add_argument("--window", help="window name (default: the UTC timestamp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "Found credentials ..." per client
    deps = build_deps()
    where = "here (CloudWatch semantics)" if deps.evaluation_mode == "local" else "by the service"
    print(f"monitoring cycle: alarms evaluated {where}; state in {deps.state_store.location}")
    try:
        result = run_exclusive(deps, window=args.window)
    except LeaseHeld as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_LEASE_HELD
    except (StateConflict, PublishFailed, ArchiveUnavailable) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(describe(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
