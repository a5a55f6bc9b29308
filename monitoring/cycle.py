"""One monitoring cycle (``make monitor`` = ``python -m monitoring.cycle``).

read -> metrics -> publish -> alarm check -> (on ALARM: notify, retrain, deploy) -> report ->
checkpoint. Every step is a function of :class:`CycleDeps`, whose members are small adapters
(``monitoring.aws``) or injected callables, so the whole cycle runs in the unit tests against
fakes; :func:`build_deps` wires the real ones from the environment.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import pandas as pd

from lambda_function.decoding import validate_payload
from monitoring import alarms as alarm_eval
from monitoring.config import (
    REPORTS_PREFIX,
    STATE_KEY,
    TIMELINE_PREFIX,
    MonitoringConfig,
    resolve_evaluation_mode,
)
from monitoring.drift import DriftResult, compute_drift
from monitoring.inputs import InputReport, Rejects, StreamRead, load_json
from monitoring.labels import LABEL_SUFFIX, LABELS_PREFIX, LabelBatch, parse_label_object
from monitoring.metrics import WindowMetrics, verdict_problem, window_metrics
from monitoring.publish import metric_data
from monitoring.report import append_timeline, render_html, write_report
from monitoring.respond import AlarmStatus, Deploy, Response, Retrain, TagRun, respond
from monitoring.state import MonitoringState

log = logging.getLogger(__name__)


class StreamReader(Protocol):
    stream_name: str

    def read(self, checkpoint: Mapping[str, str], max_records: int = ...) -> StreamRead: ...


class JsonStore(Protocol):
    location: str

    def load(self) -> dict[str, Any] | None: ...

    def save(self, document: Mapping[str, Any]) -> None: ...


class ObjectStore(Protocol):
    bucket: str

    def list_keys(self, prefix: str, suffix: str = "") -> list[str]: ...

    def read_bytes(self, key: str) -> bytes: ...

    def put(self, key: str, body: bytes, content_type: str) -> str: ...


class MetricsService(Protocol):
    def put_metric_data(self, namespace: str, metric_data: Sequence[Mapping[str, Any]]) -> int: ...

    def describe_alarms(self, names: Sequence[str]) -> list[dict[str, Any]]: ...

    def period_statistics(
        self, spec: alarm_eval.AlarmSpec, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]: ...

    def set_alarm_state(self, name: str, state: str, reason: str, reason_data: str) -> None: ...


@dataclass
class CycleDeps:
    """Everything a cycle touches (see the module docstring)."""

    config: MonitoringConfig
    verdicts: StreamReader
    state_store: JsonStore
    cloudwatch: MetricsService
    notify: Callable[[str, str], str]
    retrain: Retrain
    deploy: Deploy
    evaluation_mode: str = "local"
    observations: StreamReader | None = None
    objects: ObjectStore | None = None  # labels in, reports and timeline out (data bucket)
    reference: Callable[[], pd.DataFrame] | None = None
    tag_run: TagRun | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))


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
    rows, invalid = [], Rejects()
    for data in records:
        checked = validate_payload(data)
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
    deps: CycleDeps, at: datetime | None = None, window: str | None = None
) -> CycleResult:
    """Run one monitoring cycle; ``at`` is the metrics' timestamp (default: now)."""
    at = (at or deps.clock()).astimezone(timezone.utc)
    window = window or window_name(at)
    errors: list[str] = []
    state = MonitoringState.from_dict(deps.state_store.load())

    reads = {
        reader.stream_name: reader.read(
            state.streams.get(reader.stream_name, {}), deps.config.max_records
        )
        for reader in (deps.verdicts, deps.observations)
        if reader is not None
    }
    verdicts, invalid_verdicts = _decode(reads[deps.verdicts.stream_name].records)
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

    drift: DriftResult | None = None
    if deps.reference is not None and len(rows) >= deps.config.drift_min_rows:
        try:
            drift = compute_drift(deps.reference(), pd.DataFrame(rows))
        except Exception as exc:  # drift is advisory: report it, keep the cycle going
            log.exception("drift computation failed")
            errors.append(f"drift: {exc}")
    metrics = window_metrics(verdicts, pairs, drift.share if drift else None)
    values = {**metrics.cloudwatch_values(), **inputs.metric_values()}
    serving = metrics.dominant_model_version
    published = deps.cloudwatch.put_metric_data(
        deps.config.namespace, metric_data(values, at, serving)
    )

    statuses, alarm_errors = check_alarms(deps, at, state)
    errors.extend(alarm_errors)
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
    )
    errors.extend(response.errors)
    state.alarm_states.update(response.handled)
    if response.retrained:
        state.refused_with_labels = None if response.promoted else response.labels_used
    if not any(a.state == alarm_eval.ALARM for a in statuses):
        state.refused_with_labels = None

    entry = {
        "window": window,
        "at": at.isoformat(),
        "records": metrics.records,
        "labelled": metrics.labelled,
        "metrics": values,
        "verdict_shares": metrics.verdict_shares,
        "alarms": {a.name: a.state for a in statuses},
        "model_version": serving,
        "retrained": response.retrained,
        "new_version": response.new_version,
        "promoted": response.promoted,
        "deployed": response.deployed,
        "actions": response.actions,
        "inputs": inputs.to_dict(),
        "errors": errors,
    }
    report_path, report_uri = _write_outputs(
        deps, window, at, metrics, statuses, response, verdicts, drift, entry, inputs
    )

    state.label_keys.extend(label_keys)
    for stream_name, read in reads.items():
        state.streams[stream_name] = read.checkpoint
    state.cycles += 1
    deps.state_store.save(state.to_dict())
    return CycleResult(
        window=window,
        at=at,
        metrics=metrics,
        alarms=statuses,
        response=response,
        drift=drift,
        published=published,
        labels_read=len(labels.labels),
        inputs=inputs,
        report_path=report_path,
        report_uri=report_uri,
        timeline_entry=entry,
        errors=errors,
    )


def _write_outputs(
    deps: CycleDeps,
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
    path = write_report(deps.config.reports_dir, window, document)
    timeline = deps.config.reports_dir / "timeline.jsonl"
    uri = None
    entry["report"] = str(path)
    if deps.objects is not None:
        uri = f"s3://{deps.objects.bucket}/{REPORTS_PREFIX}{window}.html"
        entry["report_s3"] = uri
    append_timeline(timeline, entry)
    if deps.objects is not None:
        deps.objects.put(f"{REPORTS_PREFIX}{window}.html", document.encode(), "text/html")
        deps.objects.put(
            f"{TIMELINE_PREFIX}{window}.json", json.dumps(entry).encode(), "application/json"
        )
    return path, uri


def describe(result: CycleResult) -> str:
    """Human-readable summary of a cycle (what ``make monitor`` prints)."""
    m = result.metrics
    lines = [
        f"window {result.window}: {m.records} verdicts ({m.scored} scored, {m.rejected} rejected,"
        f" {m.duplicates} duplicates dropped),"
        f" {result.labels_read} new labels, {m.labelled} labelled verdicts",
        "metrics: "
        + ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.cloudwatch_values().items()),
        f"published {result.published} datapoints; model version {m.dominant_model_version}",
    ]
    if result.drift:
        lines.append(
            f"drift: share {result.drift.share:.2f} over {result.drift.rows} observations"
            f" (drifted: {', '.join(result.drift.drifted) or 'none'})"
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
    for error in result.errors:
        lines.append(f"ERROR: {error}")
    return "\n".join(lines)


# --- wiring ------------------------------------------------------------------------------------


def default_retrain(settings: Any) -> Retrain:
    """``training.pipeline.run_training`` bound to the settings (imported when called)."""

    def retrain(**kwargs: Any) -> Any:
        from training.pipeline import run_training  # noqa: PLC0415 - heavy, only on ALARM

        return run_training(settings, **kwargs)

    return retrain


def default_deploy(version: str, settings: Any | None = None) -> None:
    """Serve the registry's champion, which the gate has just made ``version``.

    ``scripts.deploy.deploy_champion``: Terraform apply with the champion's version, in the
    Terraform state under ``settings.local_dir`` (``MUSHROOM_LOCAL_DIR``), then the champion's
    bundle (re)published to S3. Raises when what got deployed is not ``version`` (the champion
    moved in between): the cycle records that as a failure instead of claiming a deployment.
    """
    from scripts.deploy import deploy_champion  # noqa: PLC0415 - only on promotion
    from training.settings import Settings  # noqa: PLC0415

    settings = settings or Settings.from_env()
    outputs = deploy_champion(local_dir=settings.local_dir, capture=True)
    served = str(outputs.get("serving_model_bundle_uri") or "")
    if served.rstrip("/").rsplit("/", 1)[-1] != str(version):
        raise RuntimeError(
            f"deployed {served or 'no model'} instead of version {version}: "
            "the registry's champion is not the version this cycle promoted"
        )


def mlflow_tagger(settings: Any) -> TagRun:
    def tag(run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow import MlflowClient  # noqa: PLC0415

        client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)

    return tag


def build_deps(
    env: Mapping[str, str] | None = None,
    retrain: Retrain | None = None,
    deploy: Deploy | None = None,
) -> CycleDeps:
    """Wire the real adapters from the environment (stack.env, training settings)."""
    from monitoring import aws  # noqa: PLC0415 - boto3 only when wiring the real thing
    from monitoring.drift import load_reference  # noqa: PLC0415
    from training.settings import Settings  # noqa: PLC0415

    settings = Settings.from_env(env)
    config = MonitoringConfig.from_env(settings, env)
    use_s3 = config.state_store == "s3"
    store: JsonStore = (
        aws.S3JsonStore(settings.data_bucket, STATE_KEY)
        if use_s3
        else aws.LocalJsonStore(config.local_state_path)
    )
    sns = aws.Sns(config.topic_arn, config.topic_name)

    @functools.lru_cache(maxsize=1)
    def reference() -> pd.DataFrame:
        def dataset() -> pd.DataFrame:
            from training.data import load_dataset  # noqa: PLC0415

            return load_dataset(settings)

        return load_reference(
            config.reference_path, config.reference_sample, settings.seed, load_dataset=dataset
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
        objects=aws.S3Objects(settings.data_bucket) if settings.aws_configured else None,
        cloudwatch=aws.CloudWatch(),
        notify=sns.publish,
        retrain=retrain or default_retrain(settings),
        deploy=deploy or functools.partial(default_deploy, settings=settings),
        evaluation_mode=resolve_evaluation_mode(
            config.alarm_evaluation, config.aws_target, settings.aws_endpoint_url
        ),
        reference=reference,
        tag_run=mlflow_tagger(settings),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.cycle", description=__doc__)
    parser.add_argument("--window", help="window name (default: the UTC timestamp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "Found credentials ..." per client
    deps = build_deps()
    where = "here (CloudWatch semantics)" if deps.evaluation_mode == "local" else "by the service"
    print(f"monitoring cycle: alarms evaluated {where}; state in {deps.state_store.location}")
    result = run_cycle(deps, window=args.window)
    print(describe(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
