"""Window metrics: plain functions from verdict records (and late labels) to numbers.

A *window* is what one monitoring cycle read from the verdict stream. Its metrics:

- ``Records``: verdict records in the window (deduplicated on ``input_sequence_number``,
  because delivery is at-least-once);
- verdict shares (edible / poisonous / unknown) and ``UnknownRate`` over *scored* records;
  ``RejectedRate`` over all records; ``MeanPPoisonous`` over scored records;
- with labels: ``Accuracy``, ``Precision``, ``Recall``, ``F1`` (scikit-learn, positive class
  "poisonous") and ``FalseEdibleRate`` = poisonous mushrooms called edible / labelled
  poisonous mushrooms.

For the label metrics ``unknown`` counts as "do not eat", i.e. as a poisonous prediction: that is
what the forager does with it, and it keeps a model that answers ``unknown`` to everything from
looking undefined. ``FalseEdibleRate`` is the number that matters most: it is the harm.

Verdict records come from a stream anyone with write access can put on, so each one is checked
against the fields these metrics use (:func:`verdict_problem`); one that breaks it is counted as
invalid, never counted as a verdict, and never breaks the computation.

A metric that cannot be computed (no scored records, no labels) is ``None`` and is not
published, which CloudWatch treats as missing data (the alarms use ``notBreaching``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from lambda_function.model import VERDICT_EDIBLE, VERDICT_POISONOUS, VERDICT_UNKNOWN
from lambda_function.schema import EDIBLE, ID_MAX_LENGTH, POISONOUS
from lambda_function.service import STATUS_REJECTED, STATUS_SCORED

VERDICTS = (VERDICT_EDIBLE, VERDICT_POISONOUS, VERDICT_UNKNOWN)

# CloudWatch metric names (team conventions), in the order they are published.
METRIC_NAMES = (
    "Records",
    "UnknownRate",
    "RejectedRate",
    "FalseEdibleRate",
    "Accuracy",
    "Precision",
    "Recall",
    "F1",
    "MeanPPoisonous",
    "DriftShare",
)


@dataclass(frozen=True)
class LabelledVerdict:
    """One verdict joined with the lab's true class ("p" or "e")."""

    mushroom_id: str
    verdict: str
    label: str
    model_version: str | None = None


@dataclass
class WindowMetrics:
    """Everything computed for one window; ``None`` = not computable in this window."""

    records: int = 0
    invalid: int = 0  # records that break the verdict contract (verdict_problem), not counted
    scored: int = 0
    rejected: int = 0
    duplicates: int = 0
    verdict_counts: dict[str, int] = field(default_factory=dict)
    verdict_shares: dict[str, float] = field(default_factory=dict)
    unknown_rate: float | None = None
    rejected_rate: float | None = None
    mean_p_poisonous: float | None = None
    model_versions: dict[str, int] = field(default_factory=dict)
    labelled: int = 0
    labelled_poisonous: int = 0
    false_edible: int = 0
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    false_edible_rate: float | None = None
    drift_share: float | None = None

    def cloudwatch_values(self) -> dict[str, float]:
        """Metric name -> value for the metrics that exist in this window."""
        values: dict[str, float | None] = {
            "Records": float(self.records),
            "UnknownRate": self.unknown_rate,
            "RejectedRate": self.rejected_rate,
            "FalseEdibleRate": self.false_edible_rate,
            "Accuracy": self.accuracy,
            "Precision": self.precision,
            "Recall": self.recall,
            "F1": self.f1,
            "MeanPPoisonous": self.mean_p_poisonous,
            "DriftShare": self.drift_share,
        }
        return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}

    @property
    def dominant_model_version(self) -> str | None:
        """The model version that scored most records of the window (None if none scored)."""
        if not self.model_versions:
            return None
        return max(self.model_versions.items(), key=lambda kv: (kv[1], kv[0]))[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SEQUENCE_MAX_LENGTH = 256  # Kinesis sequence numbers have at most 128 digits


def _text_problem(value: Any, limit: int) -> str | None:
    """Why ``value`` is not 1-``limit`` printable characters (None when it is)."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not 1 <= len(value) <= limit:
        return f"must be 1-{limit} characters, got {len(value)}"
    # Printable excludes control characters and lone surrogates, which CloudWatch dimension
    # values and the UTF-8 state document cannot carry.
    if not value.isprintable() or not value.strip():
        return "must be printable text"
    return None


def verdict_problem(record: Any) -> str | None:
    """Why a decoded verdict record cannot be used (None when it can).

    The output contract as far as monitoring uses it: ``status`` scored or rejected, and an
    optional string ``input_sequence_number``; a scored record also needs a ``mushroom_id``, a
    ``verdict`` among ``VERDICTS``, a ``p_poisonous`` in [0, 1] and a ``model_version``.
    """
    if not isinstance(record, dict):
        return "not a JSON object"
    status = record.get("status")
    if status not in (STATUS_SCORED, STATUS_REJECTED):
        return f"status must be {STATUS_SCORED!r} or {STATUS_REJECTED!r}, got {status!r:.40}"
    sequence = record.get("input_sequence_number")
    if sequence is not None and (problem := _text_problem(sequence, _SEQUENCE_MAX_LENGTH)):
        return f"input_sequence_number {problem}"
    if status == STATUS_REJECTED:
        return None
    for name, limit in (("mushroom_id", ID_MAX_LENGTH), ("model_version", 128)):
        if problem := _text_problem(record.get(name), limit):
            return f"{name} {problem}"
    if record.get("verdict") not in VERDICTS:
        return f"verdict must be one of {VERDICTS}, got {record.get('verdict')!r:.40}"
    p = record.get("p_poisonous")
    # bool is an int; an int too large for a float would overflow in the mean.
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not _unit_interval(p):
        return f"p_poisonous must be a number in [0, 1], got {p!r:.40}"
    return None


def _unit_interval(value: int | float) -> bool:
    try:
        return 0.0 <= float(value) <= 1.0  # False for NaN
    except OverflowError:
        return False


def dedupe_verdicts(records: Iterable[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], int]:
    """Drop repeated outputs of a retried batch (same ``input_sequence_number``).

    Records without a sequence number cannot be matched and are all kept.
    Returns the unique records (first occurrence wins) and the number dropped.
    """
    seen: set[str] = set()
    unique: list[Mapping[str, Any]] = []
    dropped = 0
    for record in records:
        key = record.get("input_sequence_number")
        if isinstance(key, str) and key:
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
        unique.append(record)
    return unique, dropped


def _share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def stream_metrics(records: Sequence[Mapping[str, Any]]) -> WindowMetrics:
    """Label-free metrics of a window of verdict records (see the module docstring)."""
    usable = [r for r in records if verdict_problem(r) is None]
    unique, dropped = dedupe_verdicts(usable)
    scored = [r for r in unique if r["status"] == STATUS_SCORED]
    rejected = len(unique) - len(scored)
    counts = Counter(r["verdict"] for r in scored)
    verdict_counts = {v: counts.get(v, 0) for v in VERDICTS}
    probabilities = [float(r["p_poisonous"]) for r in scored]
    versions = Counter(r["model_version"] for r in scored)
    return WindowMetrics(
        records=len(unique),
        invalid=len(records) - len(usable),
        scored=len(scored),
        rejected=rejected,
        duplicates=dropped,
        verdict_counts=verdict_counts,
        verdict_shares=({v: n / len(scored) for v, n in verdict_counts.items()} if scored else {}),
        unknown_rate=_share(verdict_counts[VERDICT_UNKNOWN], len(scored)),
        rejected_rate=_share(rejected, len(unique)),
        mean_p_poisonous=(sum(probabilities) / len(probabilities) if probabilities else None),
        model_versions=dict(versions),
    )


def label_metrics(pairs: Sequence[LabelledVerdict], metrics: WindowMetrics) -> WindowMetrics:
    """Fill the label metrics of ``metrics`` from verdicts joined with true classes.

    Only pairs with a verdict (scored records) and a valid label count.
    """
    usable = [p for p in pairs if p.verdict in VERDICTS and p.label in (POISONOUS, EDIBLE)]
    metrics.labelled = len(usable)
    if not usable:
        return metrics
    y_true = [1 if p.label == POISONOUS else 0 for p in usable]
    # unknown = "do not eat" = the poisonous action (module docstring).
    y_pred = [0 if p.verdict == VERDICT_EDIBLE else 1 for p in usable]
    metrics.accuracy = float(accuracy_score(y_true, y_pred))
    metrics.precision = float(precision_score(y_true, y_pred, zero_division=0))
    metrics.recall = float(recall_score(y_true, y_pred, zero_division=0))
    metrics.f1 = float(f1_score(y_true, y_pred, zero_division=0))
    metrics.labelled_poisonous = sum(y_true)
    metrics.false_edible = sum(
        1 for p in usable if p.label == POISONOUS and p.verdict == VERDICT_EDIBLE
    )
    metrics.false_edible_rate = _share(metrics.false_edible, metrics.labelled_poisonous)
    return metrics


def window_metrics(
    records: Sequence[Mapping[str, Any]],
    pairs: Sequence[LabelledVerdict] = (),
    drift_share: float | None = None,
) -> WindowMetrics:
    """All metrics of one window: stream metrics, label metrics and the drift share."""
    metrics = label_metrics(pairs, stream_metrics(records))
    metrics.drift_share = drift_share
    return metrics
