"""What a cycle leaves behind: the window's report and timeline entry, and its printed summary."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from config.settings import MonitoringConfig
from monitoring.config import REPORTS_PREFIX, TIMELINE_PREFIX
from monitoring.drift import DriftResult, describe_reference
from monitoring.inputs import InputReport
from monitoring.metrics import WindowMetrics
from monitoring.ports import ObjectStore
from monitoring.report import append_timeline, render_html, write_report
from monitoring.respond import AlarmStatus, Response

if TYPE_CHECKING:
    from monitoring.cycle import CycleResult


def write_outputs(
    config: MonitoringConfig,
    objects: ObjectStore | None,
    window: str,
    at: datetime,
    metrics: WindowMetrics,
    statuses: Sequence[AlarmStatus],
    response: Response,
    verdicts: Sequence[Mapping[str, Any]],
    drift: DriftResult | None,
    entry: dict[str, Any],
    inputs: InputReport | None = None,
) -> tuple[Path, str | None]:
    """Write the window's HTML report and timeline entry, locally and (with a bucket) to S3."""
    p_values = [
        float(v["p_poisonous"])
        for v in verdicts
        if v.get("status") == "scored" and isinstance(v.get("p_poisonous"), (int, float))
    ]
    document = render_html(
        window,
        at,
        metrics,
        [a.to_dict() for a in statuses],
        response.actions,
        p_values,
        drift,
        inputs=inputs,
    )
    path = write_report(config.reports_dir, window, document)
    timeline = config.reports_dir / "timeline.jsonl"
    uri = None
    entry["report"] = str(path)
    if objects is not None:
        uri = f"s3://{objects.bucket}/{REPORTS_PREFIX}{window}.html"
        entry["report_s3"] = uri
    append_timeline(timeline, entry)
    if objects is not None:
        objects.put(f"{REPORTS_PREFIX}{window}.html", document.encode(), "text/html")
        objects.put(
            f"{TIMELINE_PREFIX}{window}.json", json.dumps(entry).encode(), "application/json"
        )
    return path, uri


def describe(result: CycleResult) -> str:
    """Human-readable summary of a cycle (what ``make monitor`` prints)."""
    m = result.metrics
    lines = [
        f"window {result.window}: {m.records} verdicts ({m.scored} scored, {m.rejected} rejected,"
        f" {m.duplicates} duplicates dropped, {result.counted_before} counted in an earlier"
        " window),"
        f" {result.labels_read} new labels, {m.labelled} labelled verdicts",
        "metrics: "
        + ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.cloudwatch_values().items()),
        *m.not_published(),
        f"published {result.published} datapoints; model version {m.dominant_model_version}",
    ]
    if result.drift:
        lines.append(
            f"drift: share {result.drift.share:.2f} over {result.drift.rows} observations"
            f" (drifted: {', '.join(result.drift.drifted) or 'none'});"
            f" reference: {describe_reference(result.drift.reference)}"
        )
    for alarm in result.alarms:
        lines.append(
            f"alarm {alarm.name}: {alarm.previous_state} -> {alarm.state} ({alarm.reason})"
        )
    for action in result.response.actions:
        lines.append(f"action {action['action']}: {action['detail']}")
    lines.extend(result.inputs.summary_lines())
    lines.append(
        f"report: {result.report_path}" + (f" and {result.report_uri}" if result.report_uri else "")
    )
    for note in result.recovery:
        lines.append(f"recovery: {note}")
    for error in result.errors:
        lines.append(f"ERROR: {error}")
    return "\n".join(lines)
