"""What a cycle leaves behind: the window's report, timeline entry, index page and dashboard
run, and its printed summary (:func:`describe`, the one formatter of a cycle)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from config.settings import MonitoringConfig
from monitoring.config import REPORTS_PREFIX, TIMELINE_PREFIX
from monitoring.drift import DriftResult, describe_reference
from monitoring.inputs import InputReport
from monitoring.metrics import WindowMetrics
from monitoring.ports import ObjectStore, RunStore
from monitoring.report import (
    DECISION_ACCURACY_NOTE,
    WALL_CLOCK,
    append_timeline,
    display_values,
    read_timeline,
    render_html,
    write_index,
    write_report,
)
from monitoring.respond import AlarmStatus, Response
from monitoring.shadow_report import shadow_lines
from monitoring.workspace import window_run

log = logging.getLogger(__name__)

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
    workspace: RunStore | None = None,
    clock: str = WALL_CLOCK,
) -> tuple[Path, str | None]:
    """Write the window's HTML report and timeline entry, locally and (with a bucket) to S3,
    redraw ``index.html`` and add the window's run to the dashboard workspace.

    The index and the dashboard are views: failing to write them is logged and noted in the
    timeline entry, and never stops the cycle.
    """
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
        clock=clock,
        workspace=config.workspace_dir,
    )
    path = write_report(config.reports_dir, window, document)
    timeline = config.reports_dir / "timeline.jsonl"
    uri = None
    entry["report"] = str(path)
    entry["clock"] = clock
    # What index.html draws: each alarm's threshold on its metric's chart.
    entry["thresholds"] = {
        s.metric_name: s.threshold for s in statuses if s.metric_name and s.threshold is not None
    }
    entry["alarm_metrics"] = {s.name: s.metric_name for s in statuses if s.metric_name}
    if workspace is not None:
        try:
            entry["dashboard_run"] = workspace.add_window(
                window_run(window, at, metrics, [a.to_dict() for a in statuses], drift)
            )
        except Exception as exc:  # noqa: BLE001 - a view; the cycle's outputs are written
            log.exception("adding window %s to the dashboard workspace failed", window)
            entry["dashboard_error"] = f"dashboard workspace not updated: {exc}"
    if objects is not None:
        uri = f"s3://{objects.bucket}/{REPORTS_PREFIX}{window}.html"
        entry["report_s3"] = uri
    append_timeline(timeline, entry)
    try:
        write_index(config.reports_dir, read_timeline(timeline), config.workspace_dir)
    except Exception:  # noqa: BLE001 - a view of the timeline, which is written
        log.exception("writing %s failed", config.reports_dir / "index.html")
    if objects is not None:
        objects.put(f"{REPORTS_PREFIX}{window}.html", document.encode(), "text/html")
        objects.put(
            f"{TIMELINE_PREFIX}{window}.json", json.dumps(entry).encode(), "application/json"
        )
    return path, uri


def describe(result: CycleResult) -> str:
    """Human-readable summary of a cycle (what ``make monitor`` prints)."""
    m = result.metrics
    clock = result.timeline_entry.get("clock", WALL_CLOCK)
    values = display_values(result.metrics.cloudwatch_values())
    lines = [
        f"window {result.window} at {result.at.isoformat()} ({clock}):"
        f" {m.records} verdicts ({m.scored} scored, {m.rejected} rejected,"
        f" {m.duplicates} duplicates dropped, {result.counted_before} counted in an earlier"
        " window),"
        f" {result.labels_read} new labels, {m.labelled} labelled verdicts",
        "metrics: " + ", ".join(f"{k}={_number(v)}" for k, v in values.items()),
        *m.not_published(),
        f"published {result.published} datapoints; "
        + (
            f"model version {m.dominant_model_version}"
            if m.dominant_model_version is not None
            else "no model version (no scored verdicts in the window)"
        ),
    ]
    if "DecisionAccuracy" in values:
        lines.append(f"  ({DECISION_ACCURACY_NOTE})")
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
    lines.extend((result.archive or {}).get("lines", []))
    lines.extend(shadow_lines(result.timeline_entry.get("shadow")))
    lines.extend(result.inputs.summary_lines())
    lines.append(
        f"report: {result.report_path}" + (f" and {result.report_uri}" if result.report_uri else "")
    )
    if "dashboard_error" in result.timeline_entry:
        lines.append(f"WARNING: {result.timeline_entry['dashboard_error']}")
    for note in result.recovery:
        lines.append(f"recovery: {note}")
    for error in result.errors:
        lines.append(f"ERROR: {error}")
    return "\n".join(lines)


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"
