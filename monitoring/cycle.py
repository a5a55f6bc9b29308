"""One monitoring cycle over its ports (``make monitor`` runs it: ``orchestration.monitor``).

read -> metrics -> publish -> alarm check -> (on ALARM: notify, retrain, deploy) -> report ->
checkpoint. Every step is a function of :class:`CycleDeps`, whose members are small adapters
(``monitoring.aws``) or injected callables, so the whole cycle runs in the unit tests against
fakes; ``orchestration.monitor.build_deps`` wires the real ones from the settings.

One cycle at a time: :func:`run_exclusive` holds the lease (``monitoring.lease``); a second
cycle is refused (``LeaseHeld``, exit status 3) before it reads or writes anything. Every state
save is a compare-and-swap, so an update lost to a writer that bypassed the lease fails the
cycle (``StateConflict``) instead of passing silently.

Publishing is idempotent per window. Once the window's metrics are computed, the state is saved
with the checkpoints advanced and a *pending window* (name, timestamp, metric values, step);
each later step saves the state again. A re-run that finds a pending window finishes it
instead of reading new records. Crash points and what the re-run does:

- after the read, before the pending window is saved: nothing was recorded or published; the
  re-run reads the same records again.
- while publishing (step ``publishing``): CloudWatch may or may not have the datapoints and
  would count a second copy, so they are not published again (noted in the result). If
  PutMetricData returned an error instead, the step is ``publish-failed``: nothing was
  accepted, and the next cycle publishes the same datapoints (:class:`PublishFailed`).
- after publishing, before or during the alarm check: the alarms are checked and the response
  runs in the re-run (it had not started).
- during the alarm response (step ``responding``: notify, retrain, deploy): it may have gone
  as far as a deployment, so it is not repeated and its alarms count as handled; the re-run
  reports it as an error (no second alert, no second retraining).
- after the response, during the report or before the final save (step ``reporting``): the
  re-run writes the report and the timeline object again (same keys; the local
  ``timeline.jsonl`` may get the line twice) and clears the pending window.

A finished window's report lacks only what was not kept: the p_poisonous histogram and the
Evidently page when the window was finished by a re-run.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from lambda_function.decoding import validate_payload
from lambda_function.schema import ValidatedRecord, validate_record
from monitoring import alarms as alarm_eval
from monitoring import shadow as shadow_step
from monitoring.archive import table_of as archive_table_of
from monitoring.archive import timestamp as archive_timestamp
from monitoring.drift import DriftReference, DriftResult, compute_drift
from monitoring.inputs import InputReport, Rejects, load_json
from monitoring.labels import (
    LABEL_SUFFIX,
    LABELS_PREFIX,
    RECEIVED_PREFIX,
    LabelBatch,
    parse_label_object,
)
from monitoring.metrics import WindowMetrics, verdict_problem, window_metrics
from monitoring.outputs import write_outputs
from monitoring.ports import CycleDeps, JsonStore, ObjectStore
from monitoring.publish import metric_data
from monitoring.query import QueryError
from monitoring.respond import AlarmStatus, Response, respond
from monitoring.state import (
    PUBLISH_FAILED,
    PUBLISHING,
    REPORTING,
    RESPONDING,
    MonitoringState,
    PendingWindow,
)

log = logging.getLogger(__name__)


@dataclass
class CycleResult:
    """What one cycle did; ``timeline_entry`` is what went to the timeline."""

    window: str
    at: datetime
    metrics: WindowMetrics
    alarms: list[AlarmStatus]
    response: Response
    drift: DriftResult | None
    published: int
    labels_read: int
    inputs: InputReport  # unusable records and label lines, checkpoint gaps, lag
    report_path: Path | None
    report_uri: str | None
    timeline_entry: dict[str, Any]
    errors: list[str]
    counted_before: int = 0  # verdicts an earlier window already counted (retried batches)
    recovery: list[str] = field(default_factory=list)  # what finishing a pending window did
    archive: dict[str, Any] | None = None  # where the metrics came from (SQL), labels' fate

    @property
    def ok(self) -> bool:
        return not self.errors


def window_name(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _decode(records: Sequence[bytes]) -> tuple[list[dict[str, Any]], Rejects]:
    """Verdict records that keep the output contract (``verdict_problem``), and the rest."""
    parsed, invalid = [], Rejects()
    for data in records:
        item, problem = load_json(data)
        problem = problem or verdict_problem(item)
        if problem:
            invalid.add(problem)
        else:
            parsed.append(item)
    return parsed, invalid


def _observation_rows(records: Sequence[bytes]) -> tuple[list[dict[str, Any]], Rejects]:
    """Valid observations' feature rows, and the invalid ones (the scorer rejected those)."""
    return _valid_rows(validate_payload(data) for data in records)


def _valid_rows(checks: Iterable[ValidatedRecord]) -> tuple[list[dict[str, Any]], Rejects]:
    """The feature rows of the records that keep the input contract, and the rejects (each
    with its first two errors)."""
    rows, invalid = [], Rejects()
    for checked in checks:
        if checked.ok:
            rows.append(checked.row)
        else:
            invalid.add("; ".join(f"{e['field']}: {e['message']}" for e in checked.errors[:2]))
    return rows, invalid


def read_labels(objects: ObjectStore | None, seen: Sequence[str]) -> tuple[LabelBatch, list[str]]:
    """New label objects (not in ``seen``) parsed; returns the batch and the keys read."""
    batch = LabelBatch()
    if objects is None:
        return batch, []
    done = set(seen)
    keys = [k for k in objects.list_keys(LABELS_PREFIX, LABEL_SUFFIX) if k not in done]
    read = []
    for key in keys:
        try:
            data = objects.read_bytes(key)
        except Exception as exc:  # noqa: BLE001 - one unreachable object must not stop a cycle
            batch.unreadable.append(f"label object {key} not read (retried next cycle): {exc}")
            continue
        batch.extend(parse_label_object(data, source=key))
        read.append(key)
    return batch, read


def all_training_records(objects: ObjectStore | None) -> pd.DataFrame | None:
    """Every labelled record gathered so far (all label objects), for retraining."""
    if objects is None:
        return None
    batch, _ = read_labels(objects, ())
    for problem in batch.unreadable:
        log.warning("retraining without %s", problem)
    if not batch.training_records:
        return None
    # Last answer per mushroom wins (a lab may correct itself).
    frame = pd.DataFrame(batch.training_records)
    return frame.drop_duplicates(subset="mushroom_id", keep="last").reset_index(drop=True)


def check_alarms(
    deps: CycleDeps, at: datetime, state: MonitoringState
) -> tuple[list[AlarmStatus], list[str]]:
    """Describe the alarms; evaluate them here (moto) or read the service's state."""
    statuses: list[AlarmStatus] = []
    errors: list[str] = []
    described = deps.cloudwatch.describe_alarms(list(deps.config.alarm_names))
    found = {a["AlarmName"] for a in described}
    for name in deps.config.alarm_names:
        if name not in found:
            errors.append(f"alarm {name} not found (has `make deploy` run?)")
    for alarm in described:
        name = alarm["AlarmName"]
        seen = state.alarm_states.get(name)
        if deps.evaluation_mode != "local":
            statuses.append(
                AlarmStatus(
                    name=name,
                    state=alarm["StateValue"],
                    previous_state=seen or alarm["StateValue"],
                    seen_before=seen,
                    reason=alarm.get("StateReason", ""),
                    metric_name=alarm.get("MetricName"),
                    threshold=alarm.get("Threshold"),
                )
            )
            continue
        try:
            spec = alarm_eval.AlarmSpec.from_describe(alarm)
        except alarm_eval.AlarmConfigError as exc:
            errors.append(str(exc))
            continue
        start, end = alarm_eval.evaluation_window(spec, at)
        points = alarm_eval.bucket_datapoints(
            spec, deps.cloudwatch.period_statistics(spec, start, end), at
        )
        evaluation = alarm_eval.evaluate(spec, points)
        if evaluation.changed:
            deps.cloudwatch.set_alarm_state(
                name, evaluation.state, evaluation.reason, evaluation.reason_data()
            )
        statuses.append(
            AlarmStatus(
                name=name,
                state=evaluation.state,
                previous_state=evaluation.previous_state,
                seen_before=seen,
                reason=evaluation.reason,
                metric_name=spec.metric_name,
                threshold=spec.threshold,
            )
        )
    return statuses, errors


def run_cycle(
    deps: CycleDeps,
    at: datetime | None = None,
    window: str | None = None,
    *,
    cut: datetime | None = None,
) -> CycleResult:
    """Run one monitoring cycle; ``at`` is the metrics' timestamp (default: now).

    Over the archive, the window holds the verdicts scored until ``cut`` minus the grace
    (default ``cut = at``). ``make demo-drift`` publishes on a simulated clock (``at``, one
    alarm period per phase) while the Lambda stamps verdicts with the real one: it cuts at
    the real time. A window left pending by an interrupted cycle is finished instead (no new
    records read).
    """
    at = (at or deps.clock()).astimezone(timezone.utc)
    window = window or window_name(at)
    errors: list[str] = []
    document, version = deps.state_store.load()
    state = MonitoringState.from_dict(document)
    if state.pending_window is not None:
        return finish_window(deps, state, version, recovered=True)
    if deps.archive is not None:
        cut = (cut or at).astimezone(timezone.utc)
        return _archive_cycle(deps, state, version, at, window, cut)

    reads = {
        reader.stream_name: reader.read(
            state.streams.get(reader.stream_name, {}), deps.config.max_records
        )
        for reader in (deps.verdicts, deps.observations)
        if reader is not None
    }
    verdicts, invalid_verdicts = _decode(reads[deps.verdicts.stream_name].records)
    verdicts, counted_before = state.drop_counted(verdicts)
    rows: list[dict[str, Any]] = []
    invalid_observations = None
    if deps.observations is not None:
        rows, invalid_observations = _observation_rows(reads[deps.observations.stream_name].records)

    labels, label_keys = read_labels(deps.objects, state.label_keys)
    errors.extend(labels.unreadable)
    inputs = InputReport.collect(
        reads, invalid_verdicts, invalid_observations, labels.invalid if deps.objects else None
    )
    pairs = state.join_labels(verdicts, labels.labels)

    drift = _window_drift(deps, rows, errors)
    metrics = window_metrics(
        verdicts,
        pairs,
        drift.share if drift else None,
        min_records=deps.config.min_records,
        min_labels=deps.config.min_labels,
    )

    state.label_keys.extend(label_keys)
    for stream_name, read in reads.items():
        state.streams[stream_name] = read.checkpoint
    state.pending_window = pending_window(
        window,
        at,
        metrics,
        inputs,
        labels_read=len(labels.labels),
        counted_before=counted_before,
        drift=drift,
        errors=errors,
    )
    state.pending_window.summary["shadow"] = shadow_step.observe(
        deps, state, at, at, archive_timestamp(at)
    )
    return finish_window(deps, state, version, verdicts=verdicts, drift=drift)


def pending_window(
    window: str,
    at: datetime,
    metrics: WindowMetrics,
    inputs: InputReport,
    *,
    labels_read: int,
    counted_before: int,
    drift: DriftResult | None,
    errors: Sequence[str],
) -> PendingWindow:
    """What a re-run needs to finish this window (its outputs) without its records."""
    return PendingWindow(
        window=window,
        at=at.isoformat(),
        step=PUBLISHING,
        values={**metrics.cloudwatch_values(), **inputs.metric_values()},
        serving_version=metrics.dominant_model_version,
        metrics=metrics.to_dict(),
        summary={
            "labels_read": labels_read,
            "inputs": inputs.to_dict(),
            "counted_before": counted_before,
            "drift": (
                {
                    "share": drift.share,
                    "drifted": list(drift.drifted),
                    "rows": drift.rows,
                    "reference": drift.reference,
                }
                if drift
                else None
            ),
            "errors": list(errors),
        },
    )


class PublishFailed(RuntimeError):
    """PutMetricData returned an error: the window stays pending and is published next cycle."""


@dataclass
class _StateWriter:
    """Saves the state with compare-and-swap, following the version from save to save."""

    store: JsonStore
    version: str | None

    def save(self, state: MonitoringState) -> None:
        self.version = self.store.save(state.to_dict(), self.version)


def finish_window(
    deps: CycleDeps,
    state: MonitoringState,
    version: str | None,
    *,
    verdicts: Sequence[Mapping[str, Any]] = (),
    drift: DriftResult | None = None,
    recovered: bool = False,
) -> CycleResult:
    """Publish, check alarms, respond, report and clear the pending window, saving the state
    after each step (see the module docstring for what a re-run does after a crash)."""
    pending = state.pending_window
    if pending is None:
        raise ValueError("finish_window needs a state with a pending window")
    writer = _StateWriter(deps.state_store, version)
    at = datetime.fromisoformat(pending.at)
    window, values, serving = pending.window, pending.values, pending.serving_version
    errors: list[str] = list(pending.summary.get("errors", []))
    notes: list[str] = []
    published = 0
    if not recovered:
        # Recorded before publishing: a re-run finds it and does not publish it twice.
        writer.save(state)

    if pending.step == PUBLISHING and recovered:
        notes.append(
            f"window {window} was interrupted while publishing: its metrics may already be in "
            "CloudWatch, which would count them twice, so they are not published again"
        )
    if pending.step == PUBLISH_FAILED or (pending.step == PUBLISHING and not recovered):
        try:
            published = deps.cloudwatch.put_metric_data(
                deps.config.namespace,
                metric_data(values, at, serving)
                + shadow_step.metric_data(pending.summary.get("shadow"), at),
            )
        except Exception as exc:
            pending.step = PUBLISH_FAILED
            writer.save(state)
            raise PublishFailed(
                f"publishing window {window} to CloudWatch failed ({exc}); it stays pending "
                "and the next cycle publishes the same datapoints"
            ) from exc
        if pending.step == PUBLISH_FAILED:
            notes.append(f"window {window}: published now, after the last cycle failed to")
    if pending.step in (PUBLISHING, PUBLISH_FAILED):
        statuses, alarm_errors = check_alarms(deps, at, state)
        errors.extend(alarm_errors)
        pending.alarms = [asdict(a) for a in statuses]
        pending.summary["errors"] = errors
        pending.step = RESPONDING
        writer.save(state)  # the response runs at most once for this window
        response = respond_and_record(
            deps, state, window, values, serving, statuses, at, pending.summary.get("shadow")
        )
        pending.response = asdict(response)
        pending.step = REPORTING
        writer.save(state)
    elif pending.step == RESPONDING:
        # Killed during notify/retrain/deploy: not repeated (it may have got as far as a
        # deployment), and the alarms count as handled so the next cycle does not start it
        # again either; the error says what to check.
        interrupted = Response()
        for alarm in pending.alarms:
            interrupted.handled[alarm["name"]] = alarm["state"]
        state.alarm_states.update(interrupted.handled)
        interrupted.errors.append(
            f"the alarm response for window {window} was interrupted and is not repeated: "
            "check the SNS alert, the MLflow run and the served version (`make train` "
            "retrains by hand)"
        )
        pending.response = asdict(interrupted)
        pending.step = REPORTING
        writer.save(state)

    statuses = [AlarmStatus(**a) for a in pending.alarms]
    response = Response(**(pending.response or {}))
    errors.extend(response.errors)
    metrics = WindowMetrics.from_dict(pending.metrics)
    inputs = InputReport.from_dict(pending.summary.get("inputs"))
    if drift is None and pending.summary.get("drift"):
        drift = DriftResult(**pending.summary["drift"])
    entry = {
        "window": window,
        "at": at.isoformat(),
        "records": metrics.records,
        "labelled": metrics.labelled,
        "metrics": values,
        "not_published": metrics.not_published(),
        "verdict_shares": metrics.verdict_shares,
        "alarms": {a.name: a.state for a in statuses},
        "model_version": serving,
        "drift_reference": drift.reference if drift else None,
        "retrained": response.retrained,
        "new_version": response.new_version,
        "promoted": response.promoted,
        "deployed": response.deployed,
        "actions": response.actions,
        "shadow": shadow_step.timeline_view(pending.summary.get("shadow"), response.shadow),
        "shadow_events": shadow_step.events(response),
        "inputs": inputs.to_dict(),
        "errors": errors,
    }
    if notes:
        entry["recovery"] = notes
    if pending.summary.get("archive"):
        entry["archive"] = pending.summary["archive"]
    report_path, report_uri = write_outputs(
        deps.config,
        deps.objects,
        window,
        at,
        metrics,
        statuses,
        response,
        verdicts,
        drift,
        entry,
        inputs,
        workspace=deps.workspace,
        clock=deps.clock_label,
    )
    state.pending_window = None
    state.cycles += 1
    writer.save(state)
    summary = pending.summary
    return CycleResult(
        window=window,
        at=at,
        metrics=metrics,
        alarms=statuses,
        response=response,
        drift=drift,
        published=published,
        labels_read=int(summary.get("labels_read", 0)),
        inputs=inputs,
        report_path=report_path,
        report_uri=report_uri,
        timeline_entry=entry,
        errors=errors,
        counted_before=int(summary.get("counted_before", 0)),
        recovery=notes,
        archive=summary.get("archive"),
    )


def _window_drift(
    deps: CycleDeps, rows: list[dict[str, Any]], errors: list[str]
) -> DriftResult | None:
    """The window's drift against the served model's reference, when there is a reference and
    enough observations; None otherwise, or on failure (then noted in ``errors``)."""
    drift: DriftResult | None = None
    if deps.reference is None or len(rows) < deps.config.drift_min_rows:
        return drift
    try:
        reference = DriftReference.of(deps.reference())
        drift = compute_drift(
            reference.frame, pd.DataFrame(rows), max_rows=deps.config.drift_max_rows
        )
        drift.reference = reference.to_dict()
    except Exception as exc:  # drift is advisory: report it, keep the cycle going
        log.exception("drift computation failed")
        errors.append(f"drift: {exc}")
    return drift


def read_new_labels(objects: ObjectStore | None, state: MonitoringState) -> tuple[LabelBatch, str]:
    """Label objects not read yet: under ``labels/received/`` the keys after the checkpoint
    (time-sorted names: a bounded listing), and legacy objects directly under ``labels/``
    (the keys read are remembered; no new ones are written there). Returns the batch and the
    new checkpoint."""
    batch = LabelBatch()
    after = state.archive.get("labels_after", "")
    if objects is None:
        return batch, after
    done = set(state.label_keys)
    legacy = [k for k in objects.list_keys_after(LABELS_PREFIX, "", delimiter="/") if k not in done]
    received = objects.list_keys_after(RECEIVED_PREFIX, after)
    for key in [*legacy, *received]:
        if not key.endswith(LABEL_SUFFIX):
            continue
        try:
            data = objects.read_bytes(key)
        except Exception as exc:  # noqa: BLE001 - one unreachable object must not stop a cycle
            batch.unreadable.append(f"label object {key} not read (retried next cycle): {exc}")
            break  # the checkpoint must not pass it
        batch.extend(parse_label_object(data, source=key))
        if key.startswith(RECEIVED_PREFIX):
            after = key
        else:
            state.label_keys.append(key)
    return batch, after


def _archive_cycle(
    deps: CycleDeps,
    state: MonitoringState,
    version: str | None,
    at: datetime,
    window: str,
    cut: datetime,
) -> CycleResult:
    """The window from the archive by SQL (``monitoring.archive_window``): nothing per record
    is kept in the state, only the time the window reached and the label checkpoint."""
    archive = deps.archive
    assert archive is not None
    errors: list[str] = []
    labels, labels_after = read_new_labels(deps.objects, state)
    errors.extend(labels.unreadable)
    end = archive.window_end(cut)
    through = state.archive.get("verdicts_through")
    start = datetime.fromisoformat(through) if through else end - archive.look_back
    drift_rows = deps.config.drift_max_rows if deps.reference is not None else 0
    try:
        read = archive.read(
            window,
            at,
            start,
            labels,
            drift_rows=drift_rows,
            previous=state.archive.get("labels_received"),
            end=end,
        )
    except QueryError as exc:
        # Nothing advanced: the next cycle reads the same window again.
        raise ArchiveUnavailable(f"the archive could not be queried: {exc}") from exc
    invalid = read.invalid
    rows, invalid_observations = _sampled_observations(read.observations)
    if read.observations_not_records:
        invalid_observations = invalid_observations or Rejects()
        invalid_observations.count += read.observations_not_records
        invalid_observations.reasons.insert(
            0,
            f"{read.observations_not_records} archived observation lines are not JSON objects "
            "with a mushroom_id (not JSON, no id, or a line of a record put pretty-printed)",
        )
    for path in read.skipped:  # under the table the object belongs to
        rejects = invalid
        if archive_table_of(path) == "observations":
            rejects = invalid_observations = invalid_observations or Rejects()
        key = path[path.find("/archive/") + 1 :] if "/archive/" in path else path
        rejects.add(f"archive object not readable, left out: {key}")
    inputs = InputReport(verdicts=invalid, observations=invalid_observations, labels=labels.invalid)
    drift = _window_drift(deps, rows, errors)
    metrics = read.metrics
    metrics.drift_share = drift.share if drift else None
    metrics.min_records, metrics.min_labels = deps.config.min_records, deps.config.min_labels
    state.archive = {
        "verdicts_through": end.isoformat(),
        "labels_after": labels_after,
        "labels_received": archive_timestamp(end),  # the label events' received_in
    }
    state.pending_window = pending_window(
        window,
        at,
        metrics,
        inputs,
        labels_read=len(labels.labels),
        counted_before=0,
        drift=drift,
        errors=errors,
    )
    state.pending_window.values.update(read.labels.metric_values())
    # The labels this window read are received at its end (ArchiveReader.read), which is not
    # ``at`` when the metric clock is not the cut's (make demo-drift's simulated clock).
    state.pending_window.summary["shadow"] = shadow_step.observe(
        deps, state, at, read.end, archive_timestamp(read.end)
    )
    state.pending_window.summary["archive"] = {
        "engine": read.engine,
        "queries": read.queries,
        "verdict_objects": read.verdict_objects,
        "read_by_line": read.read_by_line,
        "window": [read.start.isoformat(), read.end.isoformat()],
        "labels": asdict(read.labels),
        "lines": [
            f"metrics by SQL ({read.engine}, {read.queries} queries) over the archive "
            f"({_objects(read.verdict_objects)} in the partitions read), "
            f"verdicts scored in ({read.start:%Y-%m-%d %H:%M:%S}, {read.end:%Y-%m-%d %H:%M:%S}]",
            *read.labels.lines(),
            *(
                f"  archive object read line by line (a record in it spans lines): {path}"
                for path in read.read_by_line[:5]
            ),
            *(f"  conflicting labels: {reason}" for reason in labels.conflicts.reasons),
        ],
    }
    return finish_window(deps, state, version, drift=drift)


def _objects(count: int | None) -> str:
    if count is None:
        return "verdict objects not counted"
    return f"{count} verdict object{'' if count == 1 else 's'}"


def _sampled_observations(
    sample: pd.DataFrame | None,
) -> tuple[list[dict[str, Any]], Rejects | None]:
    """The sample's observations that keep the input contract (the scorer rejected the rest:
    counted, as in the stream path, but only among the sampled rows)."""
    if sample is None:
        return [], None
    return _valid_rows(
        validate_record({k: v for k, v in record.items() if v is not None})
        for record in sample.to_dict("records")
    )


class ArchiveUnavailable(RuntimeError):
    """The archive's query engine failed: the window stays unread and is read next cycle."""


def respond_and_record(
    deps: CycleDeps,
    state: MonitoringState,
    window: str,
    values: Mapping[str, float],
    serving: str | None,
    statuses: Sequence[AlarmStatus],
    at: datetime | None = None,
    shadow_summary: Mapping[str, Any] | None = None,
) -> Response:
    """The decision on the active shadow, then the alarm response (notify, retrain, then
    deploy or start a shadow), and what the state remembers of them."""
    at = at or deps.clock()
    decided = shadow_step.evaluate(deps, state, window, at, shadow_summary)
    response = respond(
        statuses,
        window=window,
        values=values,
        serving_version=serving,
        notify=deps.notify,
        retrain=deps.retrain,
        deploy=deps.deploy,
        training_records=functools.partial(all_training_records, deps.objects),
        tag_run=deps.tag_run,
        refused_with_labels=state.refused_with_labels,
        no_new_data=deps.no_new_data,
        start_shadow=deps.shadow.start if deps.shadow is not None else None,
    )
    response.shadow = decided
    if decided:
        response.errors.extend(decided.get("errors", []))
        if decided.get("event"):
            # First in the actions: the decision came before the alarm response.
            response.act(
                f"shadow-{decided['event']}",
                f"shadow v{decided['model_version']} {decided['event']}: "
                f"{decided['decision']['reason']}",
                model_version=decided["model_version"],
            )
            response.actions.insert(0, response.actions.pop())
    if response.shadowed and response.new_version:
        response.errors.extend(
            shadow_step.record_start(
                deps,
                state,
                str(response.new_version),
                window,
                at,
                reason=f"passed the offline gate: {response.gate_reason}",
                champion_version=serving,
                response=response,
            )
        )
    state.alarm_states.update(response.handled)
    if response.retrained:
        state.refused_with_labels = None if response.promoted else response.labels_used
    elif response.skipped:  # retried, while the alarm lasts, once more labels have arrived
        state.refused_with_labels = response.labels_used
    if not any(a.state == alarm_eval.ALARM for a in statuses):
        state.refused_with_labels = None
    return response


def run_exclusive(
    deps: CycleDeps,
    at: datetime | None = None,
    window: str | None = None,
    *,
    cut: datetime | None = None,
) -> CycleResult:
    """:func:`run_cycle` holding the cycle lease (raises ``LeaseHeld`` if another cycle runs)."""
    if deps.lease is None:
        return run_cycle(deps, at, window, cut=cut)
    with deps.lease:
        return run_cycle(deps, at, window, cut=cut)
