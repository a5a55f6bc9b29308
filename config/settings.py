"""Configuration of the offline side (training, monitoring, deployment), read in one place.

Every value comes from the environment with a project-local default, so a clean clone works
without any setup and the same code runs against the embedded emulator or real AWS. Nothing
here talks to AWS or MLflow: it only decides names and locations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
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
        monitoring: what only the monitoring cycle needs (:class:`MonitoringConfig`), read
            from the same environment.
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
    monitoring: MonitoringConfig | None = None

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
        settings = cls(
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
        return replace(settings, monitoring=MonitoringConfig.from_env(settings, env))

    @property
    def model_bundles_dir(self) -> Path:
        """``<bundles_dir>/mushroom-classifier``: one sub-directory per version + champion."""
        return self.bundles_dir / self.model_name


# --- monitoring ---------------------------------------------------------------------------
# ``make deploy`` writes the Terraform outputs (``SNS_TOPIC_ARN``, ``UNKNOWN_RATE_ALARM_NAME``, ...)
# into .local/stack.env, so the defaults below only matter before the first deploy.

NAMESPACE = "MushroomClassifier"
UNKNOWN_RATE_ALARM = "mushroom-unknown-rate-high"
FALSE_EDIBLE_RATE_ALARM = "mushroom-false-edible-rate-high"
# An ops alarm on the monitor's own lag (Terraform output MONITOR_LAG_ALARM_NAME): it notifies
# through SNS by itself and is never a retraining trigger.
MONITOR_LAG_ALARM = "mushroom-monitor-lag-high"
TOPIC_NAME = "mushroom-alerts"
DEFAULT_LEASE_TTL_S = 900
# The evidence a window needs before its rates are published (see MonitoringConfig).
DEFAULT_MIN_RECORDS = 100
DEFAULT_MIN_LABELS = 50
# Drift rows per cycle: Evidently's distances are stable well below this (docs/scaling.md).
DEFAULT_DRIFT_MAX_ROWS = 10_000
# The archive's SQL (monitoring.archive): a label joins its verdict up to this many days later;
# copies of a verdict are looked for this long before a window; on AWS a window ends this long
# before now (Firehose buffers up to 900 s before it writes).
QUERY_ENGINES = ("duckdb", "athena")
SOURCES = ("archive", "streams")
# How a retrained model that passes the offline gate reaches users (MONITORING_PROMOTION).
PROMOTIONS = ("shadow", "direct")
DEFAULT_LOOK_BACK_DAYS = 30
DEFAULT_DEDUPE_HORIZON_S = 3600
DEFAULT_AWS_GRACE_S = 960
# On the emulator the background service's pump (or LocalStack's Firehose) buffers 10 s
# (terraform's local archive_buffering_interval_s); twice that leaves room on a busy machine.
DEFAULT_LOCAL_GRACE_S = 20


# Promotion of a shadow by its paired evidence on live labels (monitoring.promotion).
DEFAULT_SHADOW_MIN_LABELLED = 200
DEFAULT_SHADOW_MIN_POISONOUS = 50
DEFAULT_SHADOW_ALPHA = 0.05
DEFAULT_SHADOW_MAX_AGE_HOURS = 168.0


@dataclass(frozen=True)
class ShadowRules:
    """When a shadow model is promoted or discarded (``monitoring.promotion.decide``).

    Attributes:
        min_labelled: labelled records both models scored before the decision
            (``SHADOW_MIN_LABELLED``, default 200).
        min_poisonous: of which truly poisonous (``SHADOW_MIN_POISONOUS``, default 50).
        alpha: level of McNemar's exact one-sided test "the shadow is worse on decision
            accuracy", taken once, when both minimums are first met (``SHADOW_ALPHA``, 0.05).
        max_age_hours: a shadow without a decision this long after it started is discarded
            (``SHADOW_MAX_AGE_HOURS``, default 168: a week).
    """

    min_labelled: int = DEFAULT_SHADOW_MIN_LABELLED
    min_poisonous: int = DEFAULT_SHADOW_MIN_POISONOUS
    alpha: float = DEFAULT_SHADOW_ALPHA
    max_age_hours: float = DEFAULT_SHADOW_MAX_AGE_HOURS

    def __post_init__(self) -> None:
        if self.min_labelled < 1 or self.min_poisonous < 0:
            raise ValueError(
                "SHADOW_MIN_LABELLED must be >= 1 and SHADOW_MIN_POISONOUS >= 0, got "
                f"{self.min_labelled} and {self.min_poisonous}"
            )
        if self.min_poisonous > self.min_labelled:
            raise ValueError(
                f"SHADOW_MIN_POISONOUS ({self.min_poisonous}) cannot exceed SHADOW_MIN_LABELLED "
                f"({self.min_labelled})"
            )
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"SHADOW_ALPHA must be in (0, 1), got {self.alpha}")
        if not self.max_age_hours > 0:
            raise ValueError(f"SHADOW_MAX_AGE_HOURS must be positive, got {self.max_age_hours}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ShadowRules":
        return cls(
            min_labelled=int(env.get("SHADOW_MIN_LABELLED") or DEFAULT_SHADOW_MIN_LABELLED),
            min_poisonous=int(env.get("SHADOW_MIN_POISONOUS") or DEFAULT_SHADOW_MIN_POISONOUS),
            alpha=float(env.get("SHADOW_ALPHA") or DEFAULT_SHADOW_ALPHA),
            max_age_hours=float(env.get("SHADOW_MAX_AGE_HOURS") or DEFAULT_SHADOW_MAX_AGE_HOURS),
        )


def _positive_int(env: Mapping[str, str], key: str, default: int) -> int:
    value = int(env.get(key) or default)
    if value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value}")
    return value


EVALUATION_MODES = ("auto", "local", "service")
STATE_STORES = ("auto", "s3", "local")


@dataclass(frozen=True)
class MonitoringConfig:
    """Monitoring-only settings; build with :meth:`from_env`.

    Attributes:
        namespace: CloudWatch namespace (``METRICS_NAMESPACE``).
        alarm_names: the model-quality alarms to check and act on (``MONITORING_ALARM_NAMES``,
            comma-separated; default the two Terraform outputs ``UNKNOWN_RATE_ALARM_NAME`` and
            ``FALSE_EDIBLE_RATE_ALARM_NAME``). Naming the monitor-lag alarm is an error: an
            alarm here triggers retraining, and lag is no model problem.
        topic_arn: SNS alert topic (``SNS_TOPIC_ARN``; otherwise looked up by ``topic_name``).
        topic_name: ``NAME_PREFIX`` + ``mushroom-alerts``.
        alarm_evaluation: ``ALARM_EVALUATION`` = auto | local | service (see
            :func:`resolve_evaluation_mode`).
        aws_target: ``AWS_TARGET`` written by ``make up`` (moto, localstack) or "aws".
        state_store: ``MONITORING_STATE`` = auto | s3 | local (auto: S3 when an AWS target is
            configured, else a local file).
        local_state_path: the local checkpoint file.
        reports_dir: ``<reports>/monitoring`` (one HTML report per window + timeline.jsonl).
        reference_path: ``MONITORING_REFERENCE``, a parquet/CSV drift reference (training
            features); default: a sample of ``training.data.load_dataset``.
        reference_sample: rows sampled for the drift reference (``MONITORING_REFERENCE_ROWS``).
        read_observations: also read the input stream for feature drift
            (``MONITORING_READ_OBSERVATIONS``, default on).
        max_records: records read per stream per cycle (``MONITORING_MAX_RECORDS``); the rest
            waits for the next cycle, nothing is skipped.
        drift_min_rows: fewer current rows than this -> no drift computed (noise).
        lease_ttl_seconds: how long a cycle's lease lasts (``MONITORING_LEASE_TTL_SECONDS``,
            default 15 min): longer than a cycle including retraining, so a crashed cycle
            blocks the next ones for at most this long.
        local_lease_path: the lease file next to the local checkpoint file.
        min_records: a window publishes its rates (UnknownRate, Coverage, RejectedRate,
            MeanPPoisonous) only with at least this many verdicts (``MONITORING_MIN_RECORDS``,
            default 100); a smaller window is missing data to the alarms. Counts are always
            published.
        min_labels: likewise for the metrics that need labels (DecisionAccuracy,
            FalseEdibleRate, ...): at least this many labelled verdicts
            (``MONITORING_MIN_LABELS``, default 50).
        workspace_dir: the Evidently workspace the cycle adds one run per window to, shown by
            ``make monitoring-ui`` (``MONITORING_WORKSPACE``, default ``<reports>/monitoring/
            workspace``).
        ui_port: the port of ``make monitoring-ui`` (``MONITORING_UI_PORT``, default 8000).
        drift_max_rows: drift is computed on a seeded sample of at most this many of a
            window's observations (``MONITORING_DRIFT_MAX_ROWS``, default 10,000).
        source: where a window's verdicts come from (``MONITORING_SOURCE``): ``archive`` (SQL
            over the archive; the default when the deployed stack has one, i.e.
            ``ARCHIVE_VERDICTS_PREFIX`` is set, as `make deploy` writes it to stack.env) or
            ``streams`` (the Kinesis streams after checkpoints: the default without an
            archive).
        query_engine: what runs the archive's SQL (``MONITORING_QUERY_ENGINE``: duckdb, the
            embedded default, or athena with ``ATHENA_WORKGROUP`` and ``ARCHIVE_DATABASE``).
        look_back_days: how late a label may come and still join its verdict
            (``MONITORING_LOOK_BACK_DAYS``, default 30; it bounds what a query scans).
        archive_grace_seconds: a window ends this long before now, so every verdict in it
            has reached the archive (``MONITORING_ARCHIVE_GRACE_SECONDS``; 960 on AWS, 20 on
            the emulator, whose Firehose buffers 10 s; 0 without an AWS target).
        dedupe_horizon_seconds: copies of a verdict (same input_sequence_number) counted in
            an earlier window are looked for this far back (``MONITORING_DEDUPE_HORIZON_SECONDS``).
        shadow: when a shadow model is promoted or discarded (:class:`ShadowRules`).
        promotion: what the closed loop does with a retrained model that passes the offline
            gate (``MONITORING_PROMOTION``): ``shadow`` (it scores live traffic beside the
            served model and is promoted or discarded by its paired evidence; the default with
            the archive, which the evidence is computed from) or ``direct`` (it is rolled out
            at once; the default without an archive, and the only choice there).
    """

    namespace: str
    alarm_names: tuple[str, ...]
    topic_arn: str | None
    topic_name: str
    alarm_evaluation: str
    aws_target: str | None
    state_store: str
    local_state_path: Path
    reports_dir: Path
    reference_path: Path | None
    reference_sample: int
    read_observations: bool
    max_records: int
    drift_min_rows: int
    lease_ttl_seconds: float = DEFAULT_LEASE_TTL_S
    local_lease_path: Path | None = None
    min_records: int = DEFAULT_MIN_RECORDS
    min_labels: int = DEFAULT_MIN_LABELS
    workspace_dir: Path | None = None
    ui_port: int = 8000
    drift_max_rows: int = DEFAULT_DRIFT_MAX_ROWS
    # The archive (monitoring.archive): which engine queries it, and the window's bounds.
    source: str = "streams"
    query_engine: str = "duckdb"
    athena_workgroup: str | None = None
    athena_database: str | None = None
    look_back_days: int = DEFAULT_LOOK_BACK_DAYS
    archive_grace_seconds: int = 0
    dedupe_horizon_seconds: int = DEFAULT_DEDUPE_HORIZON_S
    shadow: ShadowRules = ShadowRules()
    promotion: str = "direct"

    @classmethod
    def from_env(
        cls, settings: Settings, env: Mapping[str, str] | None = None
    ) -> "MonitoringConfig":
        env = os.environ if env is None else env
        prefix = env.get("NAME_PREFIX", "")
        names = env.get("MONITORING_ALARM_NAMES")
        alarm_names = (
            tuple(n.strip() for n in names.split(",") if n.strip())
            if names
            else (
                env.get("UNKNOWN_RATE_ALARM_NAME") or prefix + UNKNOWN_RATE_ALARM,
                env.get("FALSE_EDIBLE_RATE_ALARM_NAME") or prefix + FALSE_EDIBLE_RATE_ALARM,
            )
        )
        lag_alarm = env.get("MONITOR_LAG_ALARM_NAME") or prefix + MONITOR_LAG_ALARM
        if lag_alarm in alarm_names:
            raise ValueError(
                f"MONITORING_ALARM_NAMES includes {lag_alarm}, an ops alarm on the monitor's lag:"
                " it notifies by itself and must not trigger retraining"
            )
        mode = (env.get("ALARM_EVALUATION") or "auto").lower()
        if mode not in EVALUATION_MODES:
            raise ValueError(f"ALARM_EVALUATION must be one of {EVALUATION_MODES}, got {mode!r}")
        store = (env.get("MONITORING_STATE") or "auto").lower()
        if store not in STATE_STORES:
            raise ValueError(f"MONITORING_STATE must be one of {STATE_STORES}, got {store!r}")
        if store == "auto":
            store = "s3" if settings.aws_configured else "local"
        reference = env.get("MONITORING_REFERENCE")
        ttl = float(env.get("MONITORING_LEASE_TTL_SECONDS") or DEFAULT_LEASE_TTL_S)
        if not ttl > 0:
            raise ValueError(f"MONITORING_LEASE_TTL_SECONDS must be positive, got {ttl}")
        engine = (env.get("MONITORING_QUERY_ENGINE") or "duckdb").lower()
        if engine not in QUERY_ENGINES:
            raise ValueError(
                f"MONITORING_QUERY_ENGINE must be one of {QUERY_ENGINES}, got {engine!r}"
            )
        has_archive = bool(env.get("ARCHIVE_VERDICTS_PREFIX"))
        source = (env.get("MONITORING_SOURCE") or ("archive" if has_archive else "streams")).lower()
        if source not in SOURCES:
            raise ValueError(f"MONITORING_SOURCE must be one of {SOURCES}, got {source!r}")
        promotion = (
            env.get("MONITORING_PROMOTION") or ("shadow" if source == "archive" else "direct")
        ).lower()
        if promotion not in PROMOTIONS:
            raise ValueError(f"MONITORING_PROMOTION must be one of {PROMOTIONS}, got {promotion!r}")
        if promotion == "shadow" and source != "archive":
            raise ValueError(
                "MONITORING_PROMOTION=shadow needs MONITORING_SOURCE=archive: a shadow's paired "
                "evidence is computed by SQL over the archive"
            )
        return cls(
            namespace=env.get("METRICS_NAMESPACE") or NAMESPACE,
            alarm_names=alarm_names,
            topic_arn=env.get("SNS_TOPIC_ARN") or None,
            topic_name=prefix + TOPIC_NAME,
            alarm_evaluation=mode,
            aws_target=env.get("AWS_TARGET") or None,
            state_store=store,
            local_state_path=settings.local_dir / "monitoring" / "checkpoints.json",
            reports_dir=settings.reports_dir / "monitoring",
            reference_path=Path(reference).expanduser().resolve() if reference else None,
            reference_sample=int(env.get("MONITORING_REFERENCE_ROWS") or 5000),
            read_observations=(env.get("MONITORING_READ_OBSERVATIONS") or "1")
            not in ("0", "false"),
            max_records=int(env.get("MONITORING_MAX_RECORDS") or 100_000),
            drift_min_rows=int(env.get("MONITORING_DRIFT_MIN_ROWS") or 30),
            lease_ttl_seconds=ttl,
            local_lease_path=settings.local_dir / "monitoring" / "lease.json",
            min_records=_minimum(env, "MONITORING_MIN_RECORDS", DEFAULT_MIN_RECORDS),
            min_labels=_minimum(env, "MONITORING_MIN_LABELS", DEFAULT_MIN_LABELS),
            workspace_dir=_path(
                env, "MONITORING_WORKSPACE", settings.reports_dir / "monitoring" / "workspace"
            ),
            ui_port=int(env.get("MONITORING_UI_PORT") or 8000),
            drift_max_rows=_positive_int(env, "MONITORING_DRIFT_MAX_ROWS", DEFAULT_DRIFT_MAX_ROWS),
            source=source,
            query_engine=engine,
            athena_workgroup=env.get("ATHENA_WORKGROUP") or None,
            athena_database=env.get("ARCHIVE_DATABASE") or None,
            look_back_days=_positive_int(env, "MONITORING_LOOK_BACK_DAYS", DEFAULT_LOOK_BACK_DAYS),
            # Firehose's buffering interval and delivery must fit in it (AWS: up to 900 s; the
            # emulator's pump in the background service: 10 s).
            archive_grace_seconds=_minimum(
                env,
                "MONITORING_ARCHIVE_GRACE_SECONDS",
                _default_grace(env.get("AWS_TARGET")),
            ),
            dedupe_horizon_seconds=_minimum(
                env, "MONITORING_DEDUPE_HORIZON_SECONDS", DEFAULT_DEDUPE_HORIZON_S
            ),
            shadow=ShadowRules.from_env(env),
            promotion=promotion,
        )


def _default_grace(target: str | None) -> int:
    """How long before now a window over the archive ends, by default, on ``target``."""
    target = (target or "").lower()
    if target == "aws":
        return DEFAULT_AWS_GRACE_S
    return DEFAULT_LOCAL_GRACE_S if target else 0


def _minimum(env: Mapping[str, str], key: str, default: int) -> int:
    """A non-negative count from ``env`` (0 = no minimum)."""
    value = int(env.get(key) or default)
    if value < 0:
        raise ValueError(f"{key} must be 0 or more, got {value}")
    return value
