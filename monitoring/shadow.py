"""The shadow step of a monitoring cycle: observe the shadow, publish its paired evidence,
promote or discard it by the rules, and record every start, promotion and discard.

The loop is alarm -> retrain -> offline gate -> shadow (``monitoring.respond`` starts it) ->
promote or discard (here, one decision per cycle while a shadow is active). What the scorer's
deployment does is behind :class:`ShadowActions` (wired in ``orchestration``); MLflow is behind
``tag_version``. Each start, promotion and discard is recorded four ways: MLflow tags on the
model version, an SNS message, the window's timeline entry (``shadow``, ``shadow_events``) and a
marker metric on the dashboard (``ShadowStarted``, ``ShadowPromoted``, ``ShadowDiscarded``).

What the state remembers (``MonitoringState.shadow``): the active shadow's version, when it
started (or was first seen, when ``make shadow`` started it) and where its evidence begins.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from lambda_function import verdict_metrics as vm
from monitoring.promotion import PROMOTE, WAIT, decide
from monitoring.publish import role_metric_data
from monitoring.query import QueryError
from monitoring.shadow_evidence import CHAMPION, ROLES, SHADOW, PairedEvidence, read_evidence

if TYPE_CHECKING:
    from monitoring.ports import CycleDeps
    from monitoring.respond import Response
    from monitoring.state import MonitoringState

log = logging.getLogger(__name__)

# The figures published per role (CloudWatch names from lambda_function.verdict_metrics).
ROLE_FIGURES = (vm.DECISION_ACCURACY, vm.FALSE_EDIBLE_RATE, vm.COVERAGE, vm.UNKNOWN_RATE)
ROLE_METRICS = tuple(vm.CLOUDWATCH_NAMES[n] for n in ROLE_FIGURES)
DISAGREEMENT = vm.PAIRED_CLOUDWATCH_NAMES[vm.DISAGREEMENT_RATE]
# The evidence's counts, published with ModelRole=shadow.
COUNT_METRICS = {
    "PairedRecords": "records",
    "PairedLabelled": "labelled",
    "ShadowFailures": "shadow_failed",
    "DiscordantChampionRight": "champion_only_right",
    "DiscordantShadowRight": "shadow_only_right",
}
STARTED, PROMOTED, DISCARDED = "started", "promoted", "discarded"
MARKERS = {STARTED: "ShadowStarted", PROMOTED: "ShadowPromoted", DISCARDED: "ShadowDiscarded"}
TAG_PREFIX = "shadow."
_TAG_LIMIT = 5000  # MLflow's tag value limit


class ShadowActions(Protocol):
    """The scorer's shadow, as the deployment manages it (``make shadow/promote/shadow-stop``)."""

    def current(self) -> str | None:
        """The model version the served function version shadows, or None."""
        ...

    def start(self, model_version: str) -> None:
        """Keep the served model and add ``model_version`` as its shadow."""
        ...

    def promote(self) -> None:
        """Serve the shadow's model (the shadow ends)."""
        ...

    def stop(self) -> None:
        """Drop the shadow; the served model stays."""
        ...


TagVersion = Callable[[str, Mapping[str, str]], None]  # model version, tags -> MLflow


def observe(
    deps: CycleDeps, state: MonitoringState, at: datetime, end: datetime, labels_through: str
) -> dict[str, Any] | None:
    """The active shadow and its paired evidence over ``(since, end]`` (None: no shadow
    port wired). ``labels_through``: the current window's label time. Kept in the pending
    window: publishing and the decision use only what this returns."""
    if deps.shadow is None:
        return None
    errors: list[str] = []
    known = dict(state.shadow)
    try:
        current = deps.shadow.current()
        current = None if current is None else str(current)
    except Exception as exc:  # noqa: BLE001 - no decision this cycle, said so; fail closed
        log.exception("reading the current shadow failed")
        return {
            "model_version": known.get("model_version"),
            "evidence": None,
            "errors": [f"the current shadow could not be read ({exc}): no decision this cycle"],
            "unreadable": True,
        }
    ended = None
    if known and known.get("model_version") != current:
        ended = (
            f"shadow v{known['model_version']} ended outside the monitor "
            "(make promote, make shadow-stop, make rollout, or an interrupted cycle)"
        )
        errors.append(ended)
        known = {}
    if current is None:
        state.shadow = {}
        return {"model_version": None, "evidence": None, "errors": errors} if ended else None
    look_from = end - timedelta(days=deps.config.look_back_days)
    if not known:
        # Started without the monitor (make shadow): its records may go back to the look-back.
        known = {"model_version": current, "started_at": at.isoformat(), "since": None}
    state.shadow = known
    since = max(look_from, _time(known.get("since")) or look_from)
    evidence: PairedEvidence | None = None
    if deps.archive is None:
        errors.append(
            "the paired evidence is computed by SQL over the archive (MONITORING_SOURCE=archive);"
            " without it the shadow is not promoted"
        )
    else:
        try:
            found = read_evidence(deps.archive.engine, since, end, labels_through)
            evidence = found.get(current) or PairedEvidence(current)
        except QueryError as exc:
            errors.append(f"the shadow's evidence could not be queried ({exc}): no promotion")
    return {
        "model_version": current,
        "started_at": known["started_at"],
        "since": since.isoformat(),
        "through": end.isoformat(),
        "evidence": evidence.to_dict() if evidence else None,
        "errors": errors,
    }


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _evidence(summary: Mapping[str, Any] | None) -> PairedEvidence | None:
    if not summary or not summary.get("evidence"):
        return None
    return PairedEvidence.from_dict(summary["evidence"])


def metric_data(summary: Mapping[str, Any] | None, at: datetime) -> list[dict[str, Any]]:
    """The evidence as CloudWatch data: each role's figures with ``ModelRole`` (champion and
    shadow lines on the dashboard), the disagreement rate and the counts with
    ``ModelRole=shadow``. A figure that is not computable (no labels yet) is not published."""
    evidence = _evidence(summary)
    if evidence is None:
        return []
    figures = evidence.figures()
    values: dict[str, dict[str, float | None]] = {
        role: {name: figures[role][f] for f, name in zip(ROLE_FIGURES, ROLE_METRICS)}
        for role in ROLES
    }
    values[SHADOW][DISAGREEMENT] = figures[vm.DISAGREEMENT_RATE]
    for name, attribute in COUNT_METRICS.items():
        values[SHADOW][name] = getattr(evidence, attribute)
    return role_metric_data(values, at, frozenset(COUNT_METRICS))


def marker_data(event: str, at: datetime) -> list[dict[str, Any]]:
    """A dashboard marker: 1 at the time of a shadow's start, promotion or discard."""
    return [{"MetricName": MARKERS[event], "Timestamp": at, "Value": 1.0, "Unit": "Count"}]


def evaluate(
    deps: CycleDeps,
    state: MonitoringState,
    window: str,
    at: datetime,
    summary: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """Decide on the shadow observed for this window and act: promote or discard through the
    port, then record it. A failed action keeps the shadow, to be decided again next cycle."""
    if deps.shadow is None or not summary or not summary.get("model_version"):
        return None
    version = str(summary["model_version"])
    outcome: dict[str, Any] = {"model_version": version, "acted": False, "errors": []}
    if summary.get("unreadable"):
        return outcome
    if state.shadow.get("model_version") != version:
        outcome["errors"].append(f"shadow v{version} changed during the cycle: no decision")
        return outcome
    evidence = _evidence(summary)
    started = _time(summary.get("started_at")) or at
    decision = decide(evidence, deps.config.shadow, at - started)
    outcome["decision"] = decision.to_dict()
    if decision.action == WAIT:
        return outcome
    act = deps.shadow.promote if decision.action == PROMOTE else deps.shadow.stop
    try:
        act()
    except Exception as exc:  # noqa: BLE001 - the shadow stays; decided again next cycle
        log.exception("%s of shadow v%s failed", decision.action, version)
        outcome["errors"].append(
            f"{decision.action} of shadow v{version} failed ({exc}); decided again next cycle"
        )
        return outcome
    outcome["acted"] = True
    event = PROMOTED if decision.action == PROMOTE else DISCARDED
    if event == DISCARDED and state.shadow.get("labels_used") is not None:
        # Like a refusal by the gate: while the alarm lasts, retrain again once more labels
        # than the discarded model saw have arrived (monitoring.respond).
        state.refused_with_labels = int(state.shadow["labels_used"])
    state.shadow = {}
    outcome["event"] = event
    outcome["errors"].extend(
        record(
            deps,
            event,
            version,
            window,
            at,
            reason=decision.reason,
            evidence=evidence.to_dict() if evidence else None,
            extra={"p_worse": decision.p_worse, "started_at": summary.get("started_at")},
        )
    )
    return outcome


def record_start(
    deps: CycleDeps,
    state: MonitoringState,
    version: str,
    window: str,
    at: datetime,
    reason: str,
    champion_version: str | None,
    response: Response,
) -> list[str]:
    """Remember a shadow the alarm response started and record it; a shadow it replaced is
    recorded as discarded (an action of ``response``). Returns the errors of recording (never
    raised)."""
    errors: list[str] = []
    replaced = state.shadow.get("model_version")
    if replaced and replaced != version:
        response.act(
            "shadow-discarded",
            f"shadow v{replaced} replaced by v{version} before a decision",
            model_version=str(replaced),
        )
        errors += record(
            deps,
            DISCARDED,
            str(replaced),
            window,
            at,
            reason=f"replaced by shadow v{version} ({reason})",
            evidence=None,
        )
    state.shadow = {
        "model_version": version,
        "started_at": at.isoformat(),
        "since": at.isoformat(),
        "labels_used": response.labels_used,
    }
    errors += record(
        deps,
        STARTED,
        version,
        window,
        at,
        reason=reason,
        evidence=None,
        extra={"champion_version": champion_version},
        notify=False,  # the retraining's SNS message says it (monitoring.respond)
    )
    return errors


def record(
    deps: CycleDeps,
    event: str,
    version: str,
    window: str,
    at: datetime,
    *,
    reason: str,
    evidence: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
    notify: bool = True,
) -> list[str]:
    """MLflow tags on the model version, the SNS message and the dashboard marker of one
    start, promotion or discard; returns what failed (each one is independent)."""
    errors: list[str] = []
    body = {
        "shadow_model_version": version,
        "event": event,
        "reason": reason,
        "window": window,
        "at": at.isoformat(),
        **dict(extra or {}),
        "evidence": evidence,
    }
    if deps.tag_version is not None:
        tags = {
            f"{TAG_PREFIX}state": event,
            f"{TAG_PREFIX}reason": reason[:_TAG_LIMIT],
            f"{TAG_PREFIX}window": window,
            f"{TAG_PREFIX}{event}_at": at.isoformat(),
            f"{TAG_PREFIX}evidence": json.dumps(_brief(evidence), sort_keys=True)[:_TAG_LIMIT],
        }
        try:
            deps.tag_version(version, tags)
        except Exception as exc:  # noqa: BLE001 - a record; the decision stands
            errors.append(f"tagging model version {version} ({event}) failed: {exc}")
    if notify:
        subject = f"Shadow v{version} {event}"
        try:
            deps.notify(subject, json.dumps(body, indent=2, sort_keys=True, default=str))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"SNS publish of '{subject}' failed: {exc}")
    try:
        deps.cloudwatch.put_metric_data(deps.config.namespace, marker_data(event, at))
    except Exception as exc:  # noqa: BLE001
        errors.append(f"dashboard marker {MARKERS[event]} not published: {exc}")
    return errors


def events(response: Response) -> list[dict[str, str]]:
    """The window's shadow events for the timeline's markers, in order."""
    found = []
    for action in response.actions:
        name = str(action.get("action", ""))
        if name in ("shadow-promoted", "shadow-discarded"):
            found.append(
                {"event": name.removeprefix("shadow-"), "model_version": action["model_version"]}
            )
    if response.shadowed and response.new_version:
        found.append({"event": STARTED, "model_version": str(response.new_version)})
    return found


def _brief(evidence: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The evidence without the per-pair table (the MLflow tag's size is limited)."""
    if evidence is None:
        return None
    return {k: v for k, v in evidence.items() if k not in ("pairs", "tables")}


def timeline_view(
    summary: Mapping[str, Any] | None, outcome: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """What the timeline keeps of the shadow for one window: version, figures per role,
    the counts the decision used, and the decision."""
    if not summary and not outcome:
        return None
    summary = summary or {}
    evidence = summary.get("evidence") or {}
    return {
        "model_version": summary.get("model_version"),
        "started_at": summary.get("started_at"),
        "figures": evidence.get("figures"),
        "records": evidence.get("records"),
        "labelled": evidence.get("labelled"),
        "labelled_poisonous": evidence.get("labelled_poisonous"),
        "discordant": (
            {
                CHAMPION: evidence.get("champion_only_right"),
                SHADOW: evidence.get("shadow_only_right"),
            }
            if evidence
            else None
        ),
        "decision": (outcome or {}).get("decision"),
        "event": (outcome or {}).get("event"),
        "errors": [*summary.get("errors", []), *(outcome or {}).get("errors", [])],
    }
