"""The verdict metrics, each defined once: used by the gate, evaluation, monitoring and the demo.

A verdict is an action for the forager: ``edible`` means "eat", ``poisonous`` and ``unknown``
both mean "do not eat". Every metric below is named by the constant next to it; the same name
is the dict key in the gate and ``reports/evaluation.json``, the MLflow metric key (after a
prefix such as ``random_split.``), the label in reports and demo output, and, through
:data:`CLOUDWATCH_NAMES`, the CloudWatch metric name.

Counts come as a :data:`Confusion` table, ``{true class: {verdict: count}}`` with true classes
``edible`` / ``poisonous``, built by :func:`confusion`. Label-free metrics take verdict counts
(:func:`count_verdicts`). A rate whose denominator is zero is ``None`` (not computable), never 0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping

import numpy as np

from lambda_function.model import VERDICT_EDIBLE, VERDICT_POISONOUS, VERDICT_UNKNOWN

VERDICTS = (VERDICT_EDIBLE, VERDICT_POISONOUS, VERDICT_UNKNOWN)
TRUE_CLASSES = (VERDICT_EDIBLE, VERDICT_POISONOUS)
# The verdicts that mean "do not eat".
DO_NOT_EAT = frozenset((VERDICT_POISONOUS, VERDICT_UNKNOWN))

Confusion = dict[str, dict[str, int]]

UNKNOWN_RATE = "unknown_rate"
COVERAGE = "coverage"
DECISION_ACCURACY = "decision_accuracy"
COVERED_ACCURACY = "covered_accuracy"
FALSE_EDIBLE = "false_edible"
FALSE_EDIBLE_RATE = "false_edible_rate"
FALSE_POISONOUS_RATE = "false_poisonous_rate"
DO_NOT_EAT_PRECISION = "do_not_eat_precision"
DO_NOT_EAT_RECALL = "do_not_eat_recall"
DO_NOT_EAT_F1 = "do_not_eat_f1"
# Two models on the same records (a champion and its shadow): how often their verdicts differ.
DISAGREEMENT_RATE = "disagreement_rate"

# Label-free metrics (any scored verdicts) and metrics that need the true class.
LABEL_FREE_METRICS = (UNKNOWN_RATE, COVERAGE)
LABELLED_METRICS = (
    DECISION_ACCURACY,
    COVERED_ACCURACY,
    FALSE_EDIBLE,
    FALSE_EDIBLE_RATE,
    FALSE_POISONOUS_RATE,
    DO_NOT_EAT_PRECISION,
    DO_NOT_EAT_RECALL,
    DO_NOT_EAT_F1,
)

# CloudWatch metric name of each rate (the alarms in terraform/main.tf use UnknownRate and
# FalseEdibleRate). The count FALSE_EDIBLE is not published: its rate is.
CLOUDWATCH_NAMES = {
    UNKNOWN_RATE: "UnknownRate",
    COVERAGE: "Coverage",
    DECISION_ACCURACY: "DecisionAccuracy",
    COVERED_ACCURACY: "CoveredAccuracy",
    FALSE_EDIBLE_RATE: "FalseEdibleRate",
    FALSE_POISONOUS_RATE: "FalsePoisonousRate",
    DO_NOT_EAT_PRECISION: "DoNotEatPrecision",
    DO_NOT_EAT_RECALL: "DoNotEatRecall",
    DO_NOT_EAT_F1: "DoNotEatF1",
}
# Metrics of two models on the same records, and their CloudWatch names.
PAIRED_CLOUDWATCH_NAMES = {DISAGREEMENT_RATE: "DisagreementRate"}


def _share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def count_verdicts(verdicts: Iterable[str]) -> dict[str, int]:
    """Scored verdicts counted per verdict (every verdict present, 0 when absent)."""
    counts = Counter(verdicts)
    unexpected = set(counts) - set(VERDICTS)
    if unexpected:
        raise ValueError(f"not verdicts: {sorted(map(repr, unexpected))[:5]}")
    return {v: counts.get(v, 0) for v in VERDICTS}


def confusion(poisonous: Any, verdicts: Any) -> Confusion:
    """Count labelled verdicts by true class x verdict.

    ``poisonous``: per record, whether it is truly poisonous (bools, or 0/1 as the training
    labels). ``verdicts``: the verdict of the same record.
    """
    truth = np.asarray(poisonous)
    if truth.size == 0:
        truth = truth.astype(bool)  # an empty list is float64 to numpy
    if truth.dtype.kind not in "biu" or not np.isin(truth, (0, 1)).all():
        raise ValueError("poisonous must be booleans or 0/1")
    given = np.asarray(verdicts, dtype=object)
    if truth.shape != given.shape or truth.ndim != 1:
        raise ValueError(f"poisonous {truth.shape} and verdicts {given.shape} differ in shape")
    truth = truth.astype(bool)
    return {
        VERDICT_EDIBLE: count_verdicts(given[~truth].tolist()),
        VERDICT_POISONOUS: count_verdicts(given[truth].tolist()),
    }


def verdict_counts(table: Confusion) -> dict[str, int]:
    """The verdict counts of a confusion table (true class ignored)."""
    return {v: sum(table[c][v] for c in TRUE_CLASSES) for v in VERDICTS}


def unknown_rate(counts: Mapping[str, int]) -> float | None:
    """``unknown`` verdicts / scored verdicts."""
    return _share(counts[VERDICT_UNKNOWN], sum(counts[v] for v in VERDICTS))


def coverage(counts: Mapping[str, int]) -> float | None:
    """Verdicts that are not ``unknown`` (edible or poisonous) / scored verdicts."""
    total = sum(counts[v] for v in VERDICTS)
    return _share(total - counts[VERDICT_UNKNOWN], total)


def _do_not_eat(row: Mapping[str, int]) -> int:
    return sum(row[v] for v in DO_NOT_EAT)


def right_action(true_class: str, verdict: str) -> bool:
    """Whether ``verdict`` is the right action for a mushroom of ``true_class``: ``edible`` for
    an edible one, ``poisonous`` or ``unknown`` for a poisonous one (what
    :func:`decision_accuracy` counts, one record at a time)."""
    if true_class not in TRUE_CLASSES or verdict not in VERDICTS:
        raise ValueError(f"not a true class and verdict: {true_class!r}, {verdict!r}")
    if true_class == VERDICT_EDIBLE:
        return verdict == VERDICT_EDIBLE
    return verdict in DO_NOT_EAT


def disagreement_rate(pairs: Mapping[tuple[str, str], int]) -> float | None:
    """Records on which two models gave different verdicts / records both scored; ``pairs``
    counts records by (one model's verdict, the other's). Needs no label."""
    total = sum(pairs.values())
    return _share(sum(n for (a, b), n in pairs.items() if a != b), total)


def decision_accuracy(table: Confusion) -> float | None:
    """Right actions / labelled verdicts: an edible mushroom called ``edible``, a poisonous one
    called ``poisonous`` or ``unknown`` (``unknown`` is "do not eat": right for a poisonous
    mushroom, wrong for an edible one)."""
    edible, poisonous = table[VERDICT_EDIBLE], table[VERDICT_POISONOUS]
    right = edible[VERDICT_EDIBLE] + _do_not_eat(poisonous)
    return _share(right, sum(edible.values()) + sum(poisonous.values()))


def covered_accuracy(table: Confusion) -> float | None:
    """Verdicts equal to the true class / labelled verdicts that are not ``unknown``."""
    edible, poisonous = table[VERDICT_EDIBLE], table[VERDICT_POISONOUS]
    covered = sum(row[v] for row in (edible, poisonous) for v in TRUE_CLASSES)
    return _share(edible[VERDICT_EDIBLE] + poisonous[VERDICT_POISONOUS], covered)


def false_edible(table: Confusion) -> int:
    """Poisonous mushrooms called ``edible`` (a count: the harm)."""
    return table[VERDICT_POISONOUS][VERDICT_EDIBLE]


def false_edible_rate(table: Confusion) -> float | None:
    """Poisonous mushrooms called ``edible`` / labelled poisonous mushrooms."""
    return _share(false_edible(table), sum(table[VERDICT_POISONOUS].values()))


def false_poisonous_rate(table: Confusion) -> float | None:
    """Edible mushrooms called ``poisonous`` or ``unknown`` (a meal lost) / labelled edible ones."""
    edible = table[VERDICT_EDIBLE]
    return _share(_do_not_eat(edible), sum(edible.values()))


def do_not_eat_precision(table: Confusion) -> float | None:
    """Poisonous mushrooms among those called ``poisonous`` or ``unknown``."""
    poisonous = _do_not_eat(table[VERDICT_POISONOUS])
    return _share(poisonous, poisonous + _do_not_eat(table[VERDICT_EDIBLE]))


def do_not_eat_recall(table: Confusion) -> float | None:
    """Poisonous mushrooms called ``poisonous`` or ``unknown`` / labelled poisonous mushrooms
    (1 - ``false_edible_rate``)."""
    return _share(_do_not_eat(table[VERDICT_POISONOUS]), sum(table[VERDICT_POISONOUS].values()))


def do_not_eat_f1(table: Confusion) -> float | None:
    """Harmonic mean of ``do_not_eat_precision`` and ``do_not_eat_recall`` (None if either is
    None; 0 when both are 0)."""
    precision, recall = do_not_eat_precision(table), do_not_eat_recall(table)
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


_LABELLED = {
    DECISION_ACCURACY: decision_accuracy,
    COVERED_ACCURACY: covered_accuracy,
    FALSE_EDIBLE: false_edible,
    FALSE_EDIBLE_RATE: false_edible_rate,
    FALSE_POISONOUS_RATE: false_poisonous_rate,
    DO_NOT_EAT_PRECISION: do_not_eat_precision,
    DO_NOT_EAT_RECALL: do_not_eat_recall,
    DO_NOT_EAT_F1: do_not_eat_f1,
}


def label_free_metrics(counts: Mapping[str, int]) -> dict[str, float | None]:
    """``unknown_rate`` and ``coverage`` of scored verdict counts, by name."""
    return {UNKNOWN_RATE: unknown_rate(counts), COVERAGE: coverage(counts)}


def labelled_metrics(table: Confusion) -> dict[str, float | int | None]:
    """Every metric that needs the true class, by name (in :data:`LABELLED_METRICS` order)."""
    return {name: _LABELLED[name](table) for name in LABELLED_METRICS}


def all_metrics(table: Confusion) -> dict[str, float | int | None]:
    """Label-free and labelled metrics of the same labelled verdicts, by name."""
    return {**label_free_metrics(verdict_counts(table)), **labelled_metrics(table)}
