"""Window metrics: plain functions from verdict records (and late labels) to numbers.

A *window* is what one monitoring cycle read from the verdict stream. Its metrics:

- ``Records``: verdict records in the window (deduplicated on ``input_sequence_number``,
  because delivery is at-least-once);
- verdict shares (edible / poisonous / unknown), ``UnknownRate`` and ``Coverage`` over *scored*
  records; ``RejectedRate`` over all records; ``MeanPPoisonous`` over scored records;
- with labels: ``DecisionAccuracy``, ``CoveredAccuracy``, ``FalseEdibleRate``,
  ``FalsePoisonousRate`` and ``DoNotEatPrecision`` / ``DoNotEatRecall`` / ``DoNotEatF1``.

The verdict metrics are the shared definitions of :mod:`lambda_function.verdict_metrics`
(``unknown`` counts as "do not eat"), published under the CloudWatch names of its
``CLOUDWATCH_NAMES``; the window's fields carry the shared names. ``FalseEdibleRate`` is the
number that matters most: it is the harm.

Verdict records come from a stream anyone with write access can put on, so each one is checked
against the fields these metrics use (:func:`verdict_problem`); one that breaks it is counted as
invalid, never counted as a verdict, and never breaks the computation.

A metric that cannot be computed (no scored records, no labels) is ``None`` and is not
published, which CloudWatch treats as missing data (the alarms use ``notBreaching``). Nor is a
rate without enough evidence behind it: a window publishes its label-free rates only with at
least ``min_records`` verdicts and its labelled metrics only with at least ``min_labels``
labelled verdicts (``MonitoringConfig``), so three stray records cannot raise an alarm.
:meth:`WindowMetrics.not_published` says what was held back and why. Counts are always
published.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

from lambda_function import verdict_metrics as vm
from lambda_function.schema import EDIBLE, ID_MAX_LENGTH, POISONOUS
from lambda_function.service import STATUS_REJECTED, STATUS_SCORED

VERDICTS = vm.VERDICTS
# The window's verdict metrics (fields of WindowMetrics), with their CloudWatch names.
_VERDICT_METRICS = tuple(
    n for n in (*vm.LABEL_FREE_METRICS, *vm.LABELLED_METRICS) if n in vm.CLOUDWATCH_NAMES
)

# The CloudWatch names of the rates that need ``min_records`` verdicts, and of those that need
# ``min_labels`` labelled verdicts.
RECORD_RATES = (
    "RejectedRate",
    *(vm.CLOUDWATCH_NAMES[n] for n in vm.LABEL_FREE_METRICS if n in vm.CLOUDWATCH_NAMES),
    "MeanPPoisonous",
)
LABEL_RATES = tuple(vm.CLOUDWATCH_NAMES[n] for n in vm.LABELLED_METRICS if n in vm.CLOUDWATCH_NAMES)

# CloudWatch metric names, in the order they are published.
METRIC_NAMES = (
    "Records",
    "RejectedRate",
    *(vm.CLOUDWATCH_NAMES[n] for n in _VERDICT_METRICS),
    "MeanPPoisonous",
    "DriftShare",
)
# The figures people watch over time, in order: the index.html and Evidently charts, and what
# the CloudWatch dashboard (terraform/dashboard.tf) must chart.
DASHBOARD_FIGURES = (
    "Records",
    "UnknownRate",
    "RejectedRate",
    "FalseEdibleRate",
    "DecisionAccuracy",
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
    coverage: float | None = None
    rejected_rate: float | None = None
    mean_p_poisonous: float | None = None
    model_versions: dict[str, int] = field(default_factory=dict)
    labelled: int = 0
    labelled_poisonous: int = 0
    false_edible: int = 0
    decision_accuracy: float | None = None
    covered_accuracy: float | None = None
    false_edible_rate: float | None = None
    false_poisonous_rate: float | None = None
    do_not_eat_precision: float | None = None
    do_not_eat_recall: float | None = None
    do_not_eat_f1: float | None = None
    drift_share: float | None = None
    # The evidence this window's rates needed to be published (0 = none; MonitoringConfig).
    min_records: int = 0
    min_labels: int = 0

    def computed_values(self) -> dict[str, float]:
        """CloudWatch metric name -> value for every metric computable in this window."""
        values: dict[str, float | None] = {
            "Records": float(self.records),
            "RejectedRate": self.rejected_rate,
            **{vm.CLOUDWATCH_NAMES[n]: getattr(self, n) for n in _VERDICT_METRICS},
            "MeanPPoisonous": self.mean_p_poisonous,
            "DriftShare": self.drift_share,
        }
        return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}

    def cloudwatch_values(self) -> dict[str, float]:
        """The metrics this window publishes: computable ones with enough evidence behind them."""
        held_back = {name for names, _ in self._held_back() for name in names}
        return {k: v for k, v in self.computed_values().items() if k not in held_back}

    def not_published(self) -> list[str]:
        """Why computed rates were held back, e.g. ``"not published: UnknownRate, ...: 3 records
        < minimum 100"`` (empty when everything computed is published)."""
        return [f"not published: {', '.join(names)}: {why}" for names, why in self._held_back()]

    def _held_back(self) -> list[tuple[list[str], str]]:
        computed = self.computed_values()
        out = []
        for names, have, minimum, what in (
            (RECORD_RATES, self.records, self.min_records, "records"),
            (LABEL_RATES, self.labelled, self.min_labels, "labels"),
        ):
            withheld = [n for n in names if n in computed]
            if withheld and have < minimum:
                out.append((withheld, f"{have} {what} < minimum {minimum}"))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WindowMetrics":
        """Inverse of :meth:`to_dict`; fields this version does not know are dropped (a
        pending window saved by an older version; its metrics are still published)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

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
    verdict_counts = vm.count_verdicts(r["verdict"] for r in scored)
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
        unknown_rate=vm.unknown_rate(verdict_counts),
        coverage=vm.coverage(verdict_counts),
        rejected_rate=_share(rejected, len(unique)),
        mean_p_poisonous=(sum(probabilities) / len(probabilities) if probabilities else None),
        model_versions=dict(versions),
    )


def label_metrics(pairs: Sequence[LabelledVerdict], metrics: WindowMetrics) -> WindowMetrics:
    """Fill the label metrics of ``metrics`` from verdicts joined with true classes.

    Only pairs with a verdict (scored records) and a valid label count.
    """
    usable = [p for p in pairs if p.verdict in VERDICTS and p.label in (POISONOUS, EDIBLE)]
    if not usable:
        metrics.labelled = 0
        return metrics
    table = vm.confusion([p.label == POISONOUS for p in usable], [p.verdict for p in usable])
    return confusion_metrics(table, metrics)


def confusion_metrics(table: vm.Confusion, metrics: WindowMetrics) -> WindowMetrics:
    """Fill the label metrics of ``metrics`` from a confusion table (counted here, or by SQL)."""
    metrics.labelled = sum(sum(row.values()) for row in table.values())
    if not metrics.labelled:
        return metrics
    metrics.labelled_poisonous = sum(table[vm.VERDICT_POISONOUS].values())
    for name, value in vm.labelled_metrics(table).items():
        setattr(metrics, name, value)
    return metrics


def counted_metrics(groups: Iterable[Mapping[str, Any]], invalid: int = 0) -> WindowMetrics:
    """Label-free metrics from counts (the archive's SQL): one group per status, verdict and
    model version, with ``records`` (deduplicated), ``copies`` (lines behind them) and
    ``p_sum`` (sum of p_poisonous)."""
    counts = dict.fromkeys(VERDICTS, 0)
    versions: Counter[str] = Counter()
    records = copies = rejected = 0
    p_sum = 0.0
    for group in groups:
        n = int(group["records"] or 0)
        if group["status"] == STATUS_SCORED and _text_problem(group["model_version"], 128):
            invalid += n  # a model version no CloudWatch dimension can carry
            continue
        records += n
        copies += int(group["copies"] or 0)
        if group["status"] == STATUS_SCORED:
            counts[group["verdict"]] += n
            versions[group["model_version"]] += n
            p_sum += float(group["p_sum"] or 0.0)
        else:
            rejected += n
    scored = records - rejected
    return WindowMetrics(
        records=records,
        invalid=invalid,
        scored=scored,
        rejected=rejected,
        duplicates=copies - records,
        verdict_counts=counts,
        verdict_shares=({v: n / scored for v, n in counts.items()} if scored else {}),
        unknown_rate=vm.unknown_rate(counts),
        coverage=vm.coverage(counts),
        rejected_rate=_share(rejected, records),
        mean_p_poisonous=(p_sum / scored if scored else None),
        model_versions={k: v for k, v in versions.items() if v},
    )


def window_metrics(
    records: Sequence[Mapping[str, Any]],
    pairs: Sequence[LabelledVerdict] = (),
    drift_share: float | None = None,
    *,
    min_records: int = 0,
    min_labels: int = 0,
) -> WindowMetrics:
    """All metrics of one window: stream metrics, label metrics and the drift share; rates
    backed by fewer than ``min_records`` verdicts / ``min_labels`` labels are not published."""
    metrics = label_metrics(pairs, stream_metrics(records))
    metrics.drift_share = drift_share
    metrics.min_records, metrics.min_labels = min_records, min_labels
    return metrics
