"""CloudWatch metric data for one window (pure: the adapter sends what this builds)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

MODEL_VERSION_DIMENSION = "ModelVersion"
# Which model a figure is about when two score the same records: "champion" or "shadow".
ROLE_DIMENSION = "ModelRole"
_COUNT_METRICS = {"Records"}


def metric_data(
    values: Mapping[str, float], timestamp: datetime, model_version: str | None
) -> list[dict[str, Any]]:
    """``MetricData`` entries: each metric without dimensions (what the alarms watch) and, when
    the window's model version is known, again with ``ModelVersion`` (to compare versions)."""
    data: list[dict[str, Any]] = []
    for name, value in values.items():
        unit = "Count" if name in _COUNT_METRICS else "None"
        base = {"MetricName": name, "Timestamp": timestamp, "Value": float(value), "Unit": unit}
        data.append(base)
        if model_version:
            data.append(
                {
                    **base,
                    "Dimensions": [{"Name": MODEL_VERSION_DIMENSION, "Value": str(model_version)}],
                }
            )
    return data


def role_metric_data(
    values: Mapping[str, Mapping[str, float | None]],
    timestamp: datetime,
    counts: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """``MetricData`` entries with ``ModelRole``: ``values`` is role -> metric name -> value;
    a value that is None (not computable) is left out; names in ``counts`` have unit Count."""
    return [
        {
            "MetricName": name,
            "Timestamp": timestamp,
            "Value": float(value),
            "Unit": "Count" if name in counts else "None",
            "Dimensions": [{"Name": ROLE_DIMENSION, "Value": role}],
        }
        for role, by_name in values.items()
        for name, value in by_name.items()
        if value is not None
    ]
