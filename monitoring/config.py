"""Monitoring's storage layout (state, lease, reports and timeline keys in the data bucket)
and how alarms are evaluated. Its settings are ``config.settings.MonitoringConfig``.
"""

from __future__ import annotations

STATE_KEY = "monitoring/checkpoints.json"
LEASE_KEY = "monitoring/lease.json"  # held by the running cycle (monitoring.lease)
REPORTS_PREFIX = "monitoring/reports/"
# One immutable object per window: several monitors sharing the bucket never overwrite history.
TIMELINE_PREFIX = "monitoring/timeline/"


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
