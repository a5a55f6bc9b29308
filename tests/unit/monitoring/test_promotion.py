"""The promotion rules and McNemar's exact one-sided test, on hand-computed cases."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from scipy.stats import binomtest

from config.settings import ShadowRules
from lambda_function import verdict_metrics as vm
from monitoring.promotion import (
    DISCARD,
    PROMOTE,
    WAIT,
    binomial_upper_tail,
    decide,
    mcnemar_p_better,
    mcnemar_p_worse,
)
from monitoring.shadow_evidence import PairedEvidence

RULES = ShadowRules()  # 200 labelled, 50 poisonous, alpha 0.05, 168 h
YOUNG = timedelta(hours=1)


def test_mcnemar_hand_computed_cases():
    # b=0, c=6: all six discordant records favour the shadow: P(X >= 6 | 6) = 1/64.
    assert mcnemar_p_better(0, 6) == 1 / 64
    assert mcnemar_p_worse(0, 6) == 1.0
    # The mirror case is significantly worse at 0.05.
    assert mcnemar_p_worse(6, 0) == 1 / 64
    # b=5, c=5: P(X >= 5 | 10) = (252 + 210 + 120 + 45 + 10 + 1) / 1024 = 638/1024.
    assert mcnemar_p_worse(5, 5) == 638 / 1024
    # b=4, c=0: 1/16 = 0.0625, not significant at 0.05; b=5, c=0: 1/32 is.
    assert mcnemar_p_worse(4, 0) == 0.0625 and mcnemar_p_worse(5, 0) == 1 / 32
    # No discordant record: no evidence either way.
    assert mcnemar_p_worse(0, 0) == 1.0 == mcnemar_p_better(0, 0)


@pytest.mark.parametrize("b, c", [(0, 1), (3, 9), (9, 3), (17, 11), (40, 60), (120, 80)])
def test_mcnemar_agrees_with_scipy_binomtest(b, c):
    expected = binomtest(b, b + c, 0.5, alternative="greater").pvalue
    assert math.isclose(mcnemar_p_worse(b, c), expected, rel_tol=1e-12)


def test_binomial_tail_edges():
    assert binomial_upper_tail(0, 0) == 1.0
    assert binomial_upper_tail(4, 3) == 0.0
    with pytest.raises(ValueError):
        binomial_upper_tail(-1, 3)


def evidence(
    edible_right=150,
    poisonous_right=50,
    b=0,
    c=0,
    false_edible=0,
    failed=0,
) -> PairedEvidence:
    """Labelled records: both right on ``edible_right`` edible and ``poisonous_right``
    poisonous ones; ``b`` edible ones only the champion got right, ``c`` edible ones only the
    shadow got right; ``false_edible`` poisonous ones the shadow called edible (the champion
    unknown)."""
    e = PairedEvidence("2")
    e.add_labelled(vm.VERDICT_EDIBLE, "edible", "edible", edible_right)
    e.add_labelled(vm.VERDICT_POISONOUS, "poisonous", "unknown", poisonous_right)
    e.add_labelled(vm.VERDICT_EDIBLE, "edible", "unknown", b)
    e.add_labelled(vm.VERDICT_EDIBLE, "unknown", "edible", c)
    e.add_labelled(vm.VERDICT_POISONOUS, "unknown", "edible", false_edible)
    e.records = e.labelled + failed
    e.shadow_failed = failed
    return e


def test_promote_with_enough_evidence_and_not_worse():
    decision = decide(evidence(c=6), RULES, YOUNG)
    assert decision.action == PROMOTE
    assert decision.p_worse == 1.0 and decision.p_better == 1 / 64
    assert "206 labelled records (50 poisonous)" in decision.reason


def test_a_tie_on_the_discordant_pairs_is_not_worse():
    decision = decide(evidence(b=5, c=5), RULES, YOUNG)
    assert decision.action == PROMOTE and decision.p_worse == 638 / 1024


def test_discard_when_significantly_worse():
    decision = decide(evidence(b=6), RULES, YOUNG)
    assert decision.action == DISCARD and decision.p_worse == 1 / 64
    assert "significantly worse" in decision.reason
    # alpha is the setting's: at 0.01 the same evidence promotes.
    assert decide(evidence(b=6), ShadowRules(alpha=0.01), YOUNG).action == PROMOTE


def test_discard_at_the_first_false_edible_even_before_the_minimum_sample():
    decision = decide(evidence(edible_right=3, poisonous_right=0, false_edible=1), RULES, YOUNG)
    assert decision.action == DISCARD and "false edible" in decision.reason


def test_discard_when_the_shadow_failed():
    decision = decide(evidence(failed=2), RULES, YOUNG)
    assert decision.action == DISCARD and "failed on 2 of" in decision.reason


def test_wait_below_either_minimum():
    few_labels = decide(evidence(edible_right=100, poisonous_right=50), RULES, YOUNG)
    assert few_labels.action == WAIT and "150/200 labelled" in few_labels.reason
    few_poisonous = decide(evidence(edible_right=250, poisonous_right=49), RULES, YOUNG)
    assert few_poisonous.action == WAIT and "49/50 poisonous" in few_poisonous.reason
    # The test is not run before the minimum: even b=6, c=0 waits.
    assert decide(evidence(edible_right=10, poisonous_right=0, b=6), RULES, YOUNG).action == WAIT


def test_discard_at_the_maximum_age():
    small = evidence(edible_right=10, poisonous_right=5)
    assert decide(small, RULES, timedelta(hours=167)).action == WAIT
    old = decide(small, RULES, timedelta(hours=168))
    assert old.action == DISCARD and "no decision after 168.0 h" in old.reason
    assert decide(small, ShadowRules(max_age_hours=2), timedelta(hours=3)).action == DISCARD


def test_without_evidence_nothing_is_promoted():
    assert decide(None, RULES, YOUNG).action == WAIT
    assert decide(None, RULES, timedelta(days=8)).action == DISCARD


def test_shadow_rules_from_the_environment_and_their_checks():
    rules = ShadowRules.from_env(
        {
            "SHADOW_MIN_LABELLED": "20",
            "SHADOW_MIN_POISONOUS": "5",
            "SHADOW_ALPHA": "0.1",
            "SHADOW_MAX_AGE_HOURS": "2.5",
        }
    )
    assert rules == ShadowRules(20, 5, 0.1, 2.5)
    assert ShadowRules.from_env({}) == ShadowRules(200, 50, 0.05, 168.0)
    for bad in (
        {"SHADOW_ALPHA": "1.5"},
        {"SHADOW_MIN_LABELLED": "0"},
        {"SHADOW_MIN_LABELLED": "10", "SHADOW_MIN_POISONOUS": "11"},
        {"SHADOW_MAX_AGE_HOURS": "-1"},
    ):
        with pytest.raises(ValueError, match="SHADOW_"):
            ShadowRules.from_env(bad)


def test_right_action_is_decision_accuracy_record_by_record():
    for truth in vm.TRUE_CLASSES:
        for verdict in vm.VERDICTS:
            table = {c: dict.fromkeys(vm.VERDICTS, 0) for c in vm.TRUE_CLASSES}
            table[truth][verdict] = 1
            assert vm.right_action(truth, verdict) == (vm.decision_accuracy(table) == 1.0)
    assert vm.disagreement_rate({("edible", "edible"): 3, ("unknown", "edible"): 1}) == 0.25
    assert vm.disagreement_rate({}) is None
