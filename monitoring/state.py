"""What monitoring remembers between cycles (one JSON document, ``monitoring/checkpoints.json``).

- ``streams``: per stream, per shard, the last sequence number processed; the next cycle reads
  strictly after it, so each record is processed once (a crash before the save replays the
  window: metrics at least once, never lost).
- ``label_keys``: label objects already read.
- ``pending_verdicts``: verdicts still waiting for their label (mushroom_id -> verdict summary);
  ``pending_labels``: labels whose verdict has not been read yet. Both are bounded: the oldest
  entries go first, so a lab that never answers cannot grow the state without limit.
- ``alarm_states``: the state each alarm had at the end of the last cycle, which tells a fresh
  transition to ALARM (retrain) from an alarm that simply stays in ALARM (do not retrain again).
- ``refused_with_labels``: how many labelled records the last retraining used when the gate
  refused its model while an alarm stayed in ALARM. Retraining is tried again only once more
  labels than that have arrived (the same data would give the same refused model); None when
  nothing is pending.
- ``pending_window``: the window being published (see :class:`PendingWindow` and
  ``monitoring.cycle``), None between cycles.
- ``recent_sequence_numbers``: ``input_sequence_number`` of the verdicts counted lately
  (bounded like ``pending_verdicts``), so a retried Lambda batch whose output lands in two
  windows is counted once.
- ``archive``: reading the archive by SQL (``MONITORING_SOURCE=archive``), the only per-window
  memory besides alarm states and the pending window: where the last window ended, the last
  label object read, and the time of the last window's labels. ``streams``,
  ``pending_verdicts``, ``pending_labels`` and ``recent_sequence_numbers`` stay empty then,
  and ``label_keys`` holds only legacy label objects (directly under ``labels/``).
- ``shadow``: the active shadow model (``monitoring.shadow``): its version, when it started
  (or was first seen) and where its paired evidence begins; empty without one.

The document is stored in S3 (data bucket) or in a local file; see ``monitoring.aws``. Every
save is a compare-and-swap on the version read (:class:`StateConflict` when another writer got
there first), so an update is never lost silently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from monitoring.metrics import LabelledVerdict

STATE_VERSION = 1
MAX_PENDING = 200_000
MAX_RECENT_SEQUENCE_NUMBERS = 200_000

# Steps of a pending window, in order (see monitoring.cycle for what a re-run does at each).
PUBLISHING = "publishing"  # recorded, metrics being sent: they may or may not have arrived
PUBLISH_FAILED = "publish-failed"  # PutMetricData returned an error: nothing was accepted
RESPONDING = "responding"  # published, alarms checked; the alarm response is running
REPORTING = "reporting"  # the response is recorded; report and timeline being written
STEPS = (PUBLISHING, PUBLISH_FAILED, RESPONDING, REPORTING)


class StateConflict(RuntimeError):
    """The stored document changed since this cycle read it (another writer saved in between)."""


@dataclass
class PendingWindow:
    """A window whose input is consumed (checkpoints advanced) and whose outputs are not all
    done yet: what a re-run needs to finish it without publishing or responding twice."""

    window: str
    at: str  # ISO timestamp of the metrics
    step: str
    values: dict[str, float]
    serving_version: str | None
    metrics: dict[str, Any]  # WindowMetrics.to_dict()
    summary: dict[str, Any] = field(default_factory=dict)  # labels, unparseable, drift, errors
    alarms: list[dict[str, Any]] = field(default_factory=list)  # AlarmStatus fields
    response: dict[str, Any] | None = None  # Response fields, once the response is done

    def __post_init__(self) -> None:
        if self.step not in STEPS:
            raise ValueError(f"pending window step {self.step!r} is not one of {STEPS}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PendingWindow":
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MonitoringState:
    streams: dict[str, dict[str, str]] = field(default_factory=dict)
    label_keys: list[str] = field(default_factory=list)
    pending_verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_labels: dict[str, str] = field(default_factory=dict)
    alarm_states: dict[str, str] = field(default_factory=dict)
    refused_with_labels: int | None = None
    cycles: int = 0
    pending_window: PendingWindow | None = None
    recent_sequence_numbers: list[str] = field(default_factory=list)
    # Reading the archive (monitoring.archive_window): ``verdicts_through`` (ISO time the last
    # window ended), ``labels_after`` (last key read under labels/received/) and
    # ``labels_received`` (the time of the last window recorded: label events up to it are the
    # label history).
    archive: dict[str, str] = field(default_factory=dict)
    shadow: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "MonitoringState":
        if not data:
            return cls()
        if data.get("version") != STATE_VERSION:
            raise ValueError(
                f"monitoring state version {data.get('version')!r} is not {STATE_VERSION}"
            )
        return cls(
            streams={k: dict(v) for k, v in data.get("streams", {}).items()},
            label_keys=list(data.get("label_keys", [])),
            pending_verdicts=dict(data.get("pending_verdicts", {})),
            pending_labels=dict(data.get("pending_labels", {})),
            alarm_states=dict(data.get("alarm_states", {})),
            refused_with_labels=data.get("refused_with_labels"),
            cycles=int(data.get("cycles", 0)),
            pending_window=(
                PendingWindow.from_dict(data["pending_window"])
                if data.get("pending_window")
                else None
            ),
            recent_sequence_numbers=list(data.get("recent_sequence_numbers", [])),
            archive=dict(data.get("archive") or {}),
            shadow=dict(data.get("shadow") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "streams": self.streams,
            "label_keys": self.label_keys,
            "pending_verdicts": self.pending_verdicts,
            "pending_labels": self.pending_labels,
            "alarm_states": self.alarm_states,
            "refused_with_labels": self.refused_with_labels,
            "cycles": self.cycles,
            "pending_window": self.pending_window.to_dict() if self.pending_window else None,
            "recent_sequence_numbers": self.recent_sequence_numbers,
            "archive": self.archive,
            "shadow": self.shadow,
        }

    def drop_counted(
        self, verdicts: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Mapping[str, Any]], int]:
        """Drop verdicts an earlier window already counted (same ``input_sequence_number``)
        and remember this window's; returns the rest and how many were dropped."""
        counted = set(self.recent_sequence_numbers)
        kept: list[Mapping[str, Any]] = []
        for record in verdicts:
            key = record.get("input_sequence_number")
            if isinstance(key, str) and key in counted:
                continue
            kept.append(record)
        for record in kept:  # oldest first, so trimming drops the oldest
            key = record.get("input_sequence_number")
            if isinstance(key, str) and key and key not in counted:
                counted.add(key)
                self.recent_sequence_numbers.append(key)
        excess = len(self.recent_sequence_numbers) - MAX_RECENT_SEQUENCE_NUMBERS
        if excess > 0:
            del self.recent_sequence_numbers[:excess]
        return kept, len(verdicts) - len(kept)

    def join_labels(
        self, verdicts: list[Mapping[str, Any]], labels: Mapping[str, str]
    ) -> list[LabelledVerdict]:
        """Add this window's scored verdicts and new labels; return the pairs that now match.

        Matched entries leave the pending maps (a label is counted once). A later verdict for
        the same id (a re-scored observation) replaces the pending one.
        """
        for record in verdicts:
            mushroom_id = record.get("mushroom_id")
            if record.get("status") != "scored" or not isinstance(mushroom_id, str):
                continue
            self.pending_verdicts.pop(mushroom_id, None)  # re-insert = newest last
            self.pending_verdicts[mushroom_id] = {
                "verdict": record.get("verdict"),
                "model_version": record.get("model_version"),
            }
        for mushroom_id, label in labels.items():
            self.pending_labels.pop(mushroom_id, None)
            self.pending_labels[mushroom_id] = label
        pairs: list[LabelledVerdict] = []
        for mushroom_id in [m for m in self.pending_labels if m in self.pending_verdicts]:
            verdict = self.pending_verdicts.pop(mushroom_id)
            pairs.append(
                LabelledVerdict(
                    mushroom_id=mushroom_id,
                    verdict=str(verdict.get("verdict")),
                    label=self.pending_labels.pop(mushroom_id),
                    model_version=verdict.get("model_version"),
                )
            )
        _trim(self.pending_verdicts)
        _trim(self.pending_labels)
        return pairs


def _trim(mapping: dict[str, Any], limit: int = MAX_PENDING) -> None:
    """Drop the oldest entries (dicts keep insertion order) beyond ``limit``."""
    excess = len(mapping) - limit
    if excess > 0:
        for key in list(mapping)[:excess]:
            del mapping[key]
