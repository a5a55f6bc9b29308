"""Evaluation metrics: verdict counts, false-edible, unknown rates, species-held-out CV."""

from __future__ import annotations

import numpy as np

from lambda_function import verdict_metrics as vm
from lambda_function.model import FeatureEncoder
from tests.conftest import make_tiny_dataset
from training.evaluate import evaluate_species_holdout, verdict_metrics
from training.features import encode_frame, labels


def test_verdict_metrics_counts_false_edible_after_guard():
    y = np.array([1, 1, 1, 0, 0])
    p = np.array([0.9, 0.2, 0.1, 0.1, 0.8])
    known = np.array([True, True, False, True, True])
    m = verdict_metrics(y, p, known, threshold=0.5)
    # Poisonous rows: 0.9 -> poisonous, 0.2 known -> edible (!), 0.1 unknown.
    assert m["false_edible"] == 1
    assert m["false_edible_without_guard"] == 2
    assert m["false_edible_rate"] == 1 / 3
    assert m["classifier_accuracy"] == 2 / 5
    assert m["unknown_rate"] == 1 / 5 and m["coverage"] == 4 / 5
    # The shared definition: the unknown poisonous row is a right action ("do not eat").
    assert m["decision_accuracy"] == 3 / 5
    assert m["covered_accuracy"] == 2 / 4
    assert "verdict_accuracy" not in m and "accuracy" not in m
    assert m["confusion"]["poisonous"] == {"edible": 1, "poisonous": 1, "unknown": 1}
    assert m["n_test"] == 5 and m["classifier_recall_poisonous"] == 1 / 3


def test_species_holdout_on_synthetic_species():
    frame = make_tiny_dataset(n_species=10, rows_per_species=30, seed=5)
    encoder = FeatureEncoder.from_schema()
    result = evaluate_species_holdout(
        encode_frame(frame, encoder),
        labels(frame),
        frame["species_id"].to_numpy(),
        encoder,
        seed=0,
    )
    m = result.metrics
    assert m["folds"] == 5 and len(m["per_fold"]) == 5
    assert m["n_unseen"] == len(frame)  # every row is unseen in exactly one fold
    # Synthetic species share almost no codes, so the guard marks unseen species unknown.
    assert m["unknown_rate_unseen"] > 0.9
    assert m["false_edible_rate"] <= 0.1
    assert 0 <= m["unknown_rate_known"] <= 0.2
    # Pooled over folds with the shared definitions.
    assert m["false_edible"] == sum(f["false_edible"] for f in m["per_fold"])
    assert m["decision_accuracy"] == vm.decision_accuracy(m["confusion"])
    assert m["unknown_rate_unseen"] == m["unknown_rate"] == 1 - m["coverage"]
    for fold in m["per_fold"]:
        assert fold["n_unseen_species"] == 2
