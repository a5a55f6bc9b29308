"""The shared verdict metrics on small hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from lambda_function import verdict_metrics as vm

# 4 poisonous: edible, poisonous, unknown, unknown; 5 edible: edible x3, poisonous, unknown.
POISONOUS = [1, 1, 1, 1, 0, 0, 0, 0, 0]
VERDICTS = [
    "edible",
    "poisonous",
    "unknown",
    "unknown",
    "edible",
    "edible",
    "edible",
    "poisonous",
    "unknown",
]


@pytest.fixture
def table() -> vm.Confusion:
    return vm.confusion(np.array(POISONOUS), np.array(VERDICTS))


def test_confusion_counts_true_class_by_verdict(table):
    assert table == {
        "edible": {"edible": 3, "poisonous": 1, "unknown": 1},
        "poisonous": {"edible": 1, "poisonous": 1, "unknown": 2},
    }
    assert vm.confusion([True, False], ["unknown", "edible"]) == vm.confusion(
        np.array([1, 0]), ["unknown", "edible"]
    )


def test_each_definition(table):
    # Right actions: 3 edible eaten + 3 poisonous not eaten (1 poisonous + 2 unknown) = 6 of 9.
    assert vm.decision_accuracy(table) == pytest.approx(6 / 9)
    # Not unknown: 6 verdicts, of which 3 edible-edible + 1 poisonous-poisonous are right.
    assert vm.covered_accuracy(table) == pytest.approx(4 / 6)
    assert vm.coverage(vm.verdict_counts(table)) == pytest.approx(6 / 9)
    assert vm.unknown_rate(vm.verdict_counts(table)) == pytest.approx(3 / 9)
    assert vm.false_edible(table) == 1
    assert vm.false_edible_rate(table) == pytest.approx(1 / 4)
    # Edible mushrooms not to be eaten: 1 poisonous + 1 unknown of 5.
    assert vm.false_poisonous_rate(table) == pytest.approx(2 / 5)
    # "Do not eat" verdicts: 3 on poisonous, 2 on edible.
    assert vm.do_not_eat_precision(table) == pytest.approx(3 / 5)
    assert vm.do_not_eat_recall(table) == pytest.approx(3 / 4)
    assert vm.do_not_eat_f1(table) == pytest.approx(2 * 0.6 * 0.75 / 1.35)


def test_all_metrics_by_name(table):
    metrics = vm.all_metrics(table)
    assert list(metrics) == [*vm.LABEL_FREE_METRICS, *vm.LABELLED_METRICS]
    assert metrics["decision_accuracy"] == pytest.approx(6 / 9)
    assert metrics["coverage"] == pytest.approx(6 / 9)
    assert metrics["false_edible"] == 1


def test_undefined_rates_are_none_not_zero():
    only_edible = vm.confusion([0, 0], ["edible", "unknown"])
    assert vm.false_edible_rate(only_edible) is None
    assert vm.do_not_eat_recall(only_edible) is None
    assert vm.do_not_eat_f1(only_edible) is None
    assert vm.false_poisonous_rate(only_edible) == 0.5
    all_unknown = vm.confusion([1, 0], ["unknown", "unknown"])
    assert vm.covered_accuracy(all_unknown) is None
    assert vm.coverage(vm.verdict_counts(all_unknown)) == 0.0
    empty = vm.confusion([], [])
    assert all(v in (None, 0) for v in vm.all_metrics(empty).values())
    assert vm.decision_accuracy(empty) is None


def test_f1_is_zero_when_no_poisonous_mushroom_is_flagged():
    table = vm.confusion([1, 0], ["edible", "unknown"])
    assert vm.do_not_eat_precision(table) == 0.0 and vm.do_not_eat_recall(table) == 0.0
    assert vm.do_not_eat_f1(table) == 0.0


@pytest.mark.parametrize(
    "poisonous, verdicts",
    [
        (["p", "e"], ["edible", "edible"]),  # labels must be booleans, not codes
        ([2, 0], ["edible", "edible"]),
        ([1], ["edible", "edible"]),
        ([1, 0], ["edible", "maybe"]),
    ],
)
def test_bad_inputs_are_refused(poisonous, verdicts):
    with pytest.raises(ValueError):
        vm.confusion(poisonous, verdicts)


def test_every_rate_has_one_cloudwatch_name():
    assert set(vm.CLOUDWATCH_NAMES) == set(vm.LABEL_FREE_METRICS + vm.LABELLED_METRICS) - {
        vm.FALSE_EDIBLE
    }
    assert len(set(vm.CLOUDWATCH_NAMES.values())) == len(vm.CLOUDWATCH_NAMES)
    # The Terraform alarms watch these two names.
    assert vm.CLOUDWATCH_NAMES[vm.UNKNOWN_RATE] == "UnknownRate"
    assert vm.CLOUDWATCH_NAMES[vm.FALSE_EDIBLE_RATE] == "FalseEdibleRate"
