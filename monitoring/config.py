"""Monitoring settings, read from the environment in one place.

Shared names and locations (buckets, streams, reports, MLflow) come from
``config.settings.Settings``; this adds what only monitoring needs. ``make deploy`` writes the
Terraform outputs (``SNS_TOPIC_ARN``, ``UNKNOWN_RATE_ALARM_NAME``, ...) into .local/stack.env, so
the defaults below only matter before the first deploy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from config.settings import Settings

NAMESPACE = "MushroomClassifier"
UNKNOWN_RATE_ALARM = "mushroom-unknown-rate-high"
FALSE_EDIBLE_RATE_ALARM = "mushroom-false-edible-rate-high"
# An ops alarm on the monitor's own lag (Terraform output MONITOR_LAG_ALARM_NAME): it notifies
# through SNS by itself and is never a retraining trigger.
MONITOR_LAG_ALARM = "mushroom-monitor-lag-high"
TOPIC_NAME = "mushroom-alerts"
STATE_KEY = "monitoring/checkpoints.json"
LEASE_KEY = "monitoring/lease.json"  # held by the running cycle (monitoring.lease)
DEFAULT_LEASE_TTL_S = 900
REPORTS_PREFIX = "monitoring/reports/"
# One immutable object per window: several monitors sharing the bucket never overwrite history.
TIMELINE_PREFIX = "monitoring/timeline/"
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
        )


def resolve_evaluation_mode(mode: str, aws_target: str | None, endpoint_url: str | None) -> str:
    """``local`` (evaluate alarms here) or ``service`` (the target evaluates them).

    ``auto``: moto never evaluates alarms, so local there; LocalStack and AWS evaluate them.
    Without ``AWS_TARGET``, an endpoint URL that is not LocalStack's (port 4566) is taken to be
    moto (the project's embedded emulator); no endpoint means AWS.
    """
    if mode in ("local", "service"):
        return mode
    target = (aws_target or "").lower()
    if target == "moto":
        return "local"
    if target in ("localstack", "aws"):
        return "service"
    if endpoint_url and ":4566" not in endpoint_url and "localstack" not in endpoint_url:
        return "local"
    return "service"
