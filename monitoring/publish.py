"""CloudWatch metric data for one window (pure: the adapter sends what this builds)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

MODEL_VERSION_DIMENSION = "ModelVersion"
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
