"""What happens when an alarm fires: notify, retrain, deploy only what passed the gate, record.

Plain function with every effect injected (``notify``, ``retrain``, ``deploy``, ``tag_run``,
``training_records``), so the decision logic is tested with fakes and the Prefect flow or the
command line wires the real ones (SNS, ``training.pipeline.run_training``, ``deployment.deploy``).

Retraining runs once per *transition* to ALARM (an alarm that stays in ALARM on the next cycle
does not retrain again; one that goes back to OK and fires again does), and only when the
labelled records add something to what the champion was trained on (``no_new_data``): the same
data gives the same model, which is worth neither a run nor a rollout. If retraining or
deployment fails, the failure is recorded and the alarm is not marked as handled, so the next
cycle tries again.

With ``start_shadow`` (the scorer's shadow, ``monitoring.shadow``), a model that passes the gate
is not deployed: it becomes the shadow, scoring every record beside the champion without
answering anyone, until its paired evidence on live labels promotes or discards it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import pandas as pd

from monitoring.alarms import ALARM

log = logging.getLogger(__name__)


class TrainingResultLike(Protocol):
    run_id: str
    model_version: str | None
    promoted: bool
    gate_reason: str


Retrain = Callable[..., TrainingResultLike]
Deploy = Callable[[str], None]  # registered model version -> serving it
Notify = Callable[[str, str], str]  # (subject, message) -> message id
TagRun = Callable[[str, Mapping[str, str]], None]
# The labelled records gathered so far -> why retraining on them would repeat the champion's
# training data (e.g. "no new labelled records since champion v1 was trained"), or None.
NoNewData = Callable[[pd.DataFrame | None], str | None]


@dataclass
class AlarmStatus:
    """One alarm after the check: ``seen_before`` is the state the last cycle recorded."""

    name: str
    state: str
    previous_state: str
    seen_before: str | None
    reason: str
    metric_name: str | None = None
    threshold: float | None = None

    @property
    def fired(self) -> bool:
        """In ALARM, and not already in ALARM when this monitor last looked.

        An alarm this monitor has never recorded counts as fresh, even if CloudWatch says it
        was in ALARM before: nobody has acted on it yet (e.g. the first cycle against AWS,
        where the service evaluated the alarm between deploy and the first cycle).
        """
        return self.state == ALARM and self.seen_before != ALARM

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "previous_state": self.previous_state,
            "reason": self.reason,
            "metric": self.metric_name,
            "threshold": self.threshold,
        }


@dataclass
class Response:
    """Actions taken for one cycle, and which alarms are now handled."""

    actions: list[dict[str, Any]] = field(default_factory=list)
    handled: dict[str, str] = field(default_factory=dict)  # alarm -> state to remember
    retrained: bool = False
    run_id: str | None = None
    new_version: str | None = None
    promoted: bool = False
    deployed: bool = False
    shadowed: bool = False  # the new version became the shadow instead of being deployed
    gate_reason: str | None = None
    shadow: dict[str, Any] | None = None  # the decision on the active shadow (monitoring.shadow)
    labels_used: int | None = None  # labelled records the retraining saw (or would have)
    skipped: bool = False  # retraining not run: nothing new since the champion was trained
    errors: list[str] = field(default_factory=list)

    def act(self, action: str, detail: str, **extra: Any) -> None:
        self.actions.append({"action": action, "detail": detail, **extra})
        log.info("%s: %s", action, detail)


def alert_message(
    alarm: AlarmStatus,
    window: str,
    values: Mapping[str, float],
    serving: str | None,
    action: str = "retraining with the labelled records gathered so far",
) -> tuple[str, str]:
    """(subject, message) for the SNS alert of one fired alarm."""
    subject = f"ALARM: {alarm.name} (window {window})"
    body = {
        "alarm": alarm.name,
        "state": alarm.state,
        "previous_state": alarm.previous_state,
        "reason": alarm.reason,
        "metric": alarm.metric_name,
        "threshold": alarm.threshold,
        "window": window,
        "metrics": dict(values),
        "serving_model_version": serving,
        "action": action,
    }
    return subject, json.dumps(body, indent=2, sort_keys=True)


def respond(
    alarms: Sequence[AlarmStatus],
    *,
    window: str,
    values: Mapping[str, float],
    serving_version: str | None,
    notify: Notify,
    retrain: Retrain,
    deploy: Deploy,
    training_records: Callable[[], pd.DataFrame | None],
    tag_run: TagRun | None = None,
    refused_with_labels: int | None = None,
    no_new_data: NoNewData | None = None,
    start_shadow: Deploy | None = None,
) -> Response:
    """Notify for every fired alarm, then retrain once and deploy the new champion if promoted.

    Retraining is skipped (and said so) when ``no_new_data`` finds nothing new since the
    champion was trained; if that check fails, nothing is retrained and the alarm stays
    unhandled, so the next cycle checks again. An alarm that stays in ALARM after the gate
    refused a retrained model or retraining was skipped (``refused_with_labels`` records then)
    is retried, without a new alert, once more labels have arrived.
    """
    response = Response()
    fired = [a for a in alarms if a.fired]
    for alarm in alarms:
        if not alarm.fired:
            response.handled[alarm.name] = alarm.state
    records: pd.DataFrame | None = None
    still_alarming = [a for a in alarms if a.state == ALARM and not a.fired]
    if not fired and still_alarming and refused_with_labels is not None:
        records = training_records()
        n_records = 0 if records is None else len(records)
        if n_records <= refused_with_labels:
            return response
        response.act(
            "retry",
            f"{', '.join(a.name for a in still_alarming)} still in ALARM; {n_records} labelled "
            f"records now, {refused_with_labels} when the gate last refused",
        )
        fired = still_alarming
    if not fired:
        return response

    names = ",".join(a.name for a in fired)
    reason = f"alarm:{names}"
    step = "retraining"
    skip: str | None = None
    try:
        if records is None:
            records = training_records()
        if no_new_data is not None:
            skip = no_new_data(records)
    except Exception as exc:  # cannot tell: no retraining now, the next cycle checks again
        log.exception("checking the labelled records after %s failed", reason)
        skip_error = f"checking for new labelled records after {reason} failed: {exc}"
    else:
        skip_error = None
    n_records = 0 if records is None else len(records)
    response.labels_used = n_records

    action = (
        f"not retraining: {skip or skip_error}"
        if skip or skip_error
        else "retraining with the labelled records gathered so far"
    )
    for alarm in [a for a in fired if a.fired]:  # a retry after a refusal is not a new alert
        subject, message = alert_message(alarm, window, values, serving_version, action)
        try:
            message_id = notify(subject, message)
            response.act("notify", f"SNS {subject} (message {message_id})")
        except Exception as exc:  # the alert failing must not stop the retraining
            response.errors.append(f"SNS publish for {alarm.name} failed: {exc}")
            response.act("notify-failed", f"{alarm.name}: {exc}")

    if skip_error is not None:
        response.errors.append(skip_error)
        response.act("retrain-failed", skip_error)
        for alarm in fired:
            response.handled[alarm.name] = alarm.seen_before or alarm.previous_state
        return response
    if skip is not None:
        response.skipped = True
        response.act(
            "no-retrain",
            f"{reason}: {skip} ({n_records} labelled records); still serving {serving_version}",
        )
        for alarm in fired:
            response.handled[alarm.name] = alarm.state
        return response

    try:
        response.act(
            "retrain",
            f"{reason}: run_training with {n_records} labelled records as extra_records",
        )
        result = retrain(extra_records=records, reason=reason)
        response.retrained = True
        response.run_id, response.new_version = result.run_id, result.model_version
        response.promoted = bool(result.promoted)
        response.gate_reason = result.gate_reason
        response.act(
            "gate",
            f"version {result.model_version}: "
            f"{'promoted' if result.promoted else 'not promoted'}: {result.gate_reason}",
            run_id=result.run_id,
        )
        if result.promoted and result.model_version and start_shadow is not None:
            step = f"starting version {result.model_version} as the shadow"
            start_shadow(str(result.model_version))
            response.shadowed = True
            response.act(
                "shadow-start",
                f"version {result.model_version} shadows the served version "
                f"{serving_version} ({reason}): promoted or discarded by its live evidence",
            )
        elif result.promoted and result.model_version:
            step = f"deploying version {result.model_version}"
            deploy(str(result.model_version))
            response.deployed = True
            response.act("deploy", f"version {result.model_version} is now served ({reason})")
        else:
            response.act(
                "no-deploy",
                f"gate refused version {result.model_version}; still serving {serving_version}",
            )
    except Exception as exc:  # recorded, alarm left unhandled -> retried next cycle
        log.exception("%s after %s failed", step, reason)
        response.errors.append(f"{step} after {reason} failed: {exc}")
        failed = "deploy-failed"
        if step == "retraining":
            failed = "retrain-failed"
        elif step.endswith("as the shadow"):
            failed = "shadow-start-failed"
        response.act(failed, str(exc))
        for alarm in fired:
            # Remember the pre-ALARM state, so the next cycle sees a fresh transition again.
            response.handled[alarm.name] = alarm.seen_before or alarm.previous_state
        return response

    for alarm in fired:
        response.handled[alarm.name] = alarm.state
    if tag_run is not None and response.run_id:
        tags = {
            "monitoring.trigger": reason,
            "monitoring.window": window,
            "monitoring.metrics": json.dumps(dict(values), sort_keys=True)[:5000],
            "monitoring.promoted": str(response.promoted).lower(),
            "monitoring.deployed": str(response.deployed).lower(),
            "monitoring.shadowed": str(response.shadowed).lower(),
            "monitoring.replaced_version": str(serving_version),
        }
        try:
            tag_run(response.run_id, tags)
            response.act("mlflow-tags", f"run {response.run_id}: {sorted(tags)}")
        except Exception as exc:
            response.errors.append(f"tagging MLflow run {response.run_id} failed: {exc}")
    outcome = "deployed" if response.deployed else "NOT deployed (gate)"
    if response.shadowed:
        outcome = (
            f"passed the offline gate ({response.gate_reason}) and started as the shadow of "
            f"version {serving_version}: it answers no one until its paired evidence on live "
            "labels promotes it"
        )
    summary = f"retrained after {names}: version {response.new_version} {outcome}"
    try:
        notify(f"Retrained: {names}"[:100], summary)
    except Exception as exc:
        response.errors.append(f"SNS publish of the retraining outcome failed: {exc}")
    return response
