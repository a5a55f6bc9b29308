"""The serving bundle's scoring: row order, verdict precedence, the guard's species masks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lambda_function.model import (
    BUNDLE_METADATA_FILE,
    BUNDLE_MODEL_FILE,
    VERDICT_EDIBLE,
    VERDICT_POISONOUS,
    VERDICT_UNKNOWN,
    BundleError,
    ModelBundle,
    decide_verdicts,
)
from training.features import encode_frame


def test_score_returns_probabilities_in_input_order(tiny_bundle, tiny_dataset: pd.DataFrame):
    bundle = ModelBundle.load(tiny_bundle)
    shuffled = tiny_dataset.sample(frac=1.0, random_state=4)
    matrix = encode_frame(shuffled, bundle.encoder)

    p_poisonous, verdicts = bundle.score(matrix)

    # score() predicts rows grouped by species; the result must not depend on that.
    np.testing.assert_array_equal(p_poisonous, bundle.predict_proba(matrix))
    expected = decide_verdicts(
        bundle.predict_proba(matrix), bundle.guard.compatible(matrix), bundle.threshold
    )
    assert verdicts == expected


def test_unknown_beats_poisonous_beats_edible():
    p = np.array([0.9, 0.1, 0.9, 0.1, 0.5])
    known = np.array([True, True, False, False, True])

    assert decide_verdicts(p, known, threshold=0.5) == [
        VERDICT_POISONOUS,
        VERDICT_EDIBLE,
        VERDICT_UNKNOWN,
        VERDICT_UNKNOWN,
        VERDICT_POISONOUS,  # p == threshold is poisonous
    ]


def test_candidate_species_marks_the_row_species(tiny_bundle, tiny_dataset: pd.DataFrame):
    bundle = ModelBundle.load(tiny_bundle)
    guard = bundle.guard
    matrix = encode_frame(tiny_dataset, bundle.encoder)

    masks = guard.candidate_species(matrix)

    position = {s: i for i, s in enumerate(guard.species_ids)}
    for row, species in zip(masks, tiny_dataset["species_id"]):
        bit = position[int(species)]
        assert int(row[bit // 64]) >> (bit % 64) & 1, "a training row fits its own species"
    np.testing.assert_array_equal(masks.any(axis=1), guard.compatible(matrix))


def _edit_metadata(directory, edit) -> None:
    path = directory / BUNDLE_METADATA_FILE
    metadata = json.loads(path.read_text())
    path.write_text(json.dumps(edit(metadata)))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: {k: v for k, v in m.items() if k != "threshold"}, "lacks the key 'threshold'"),
        (lambda m: {k: v for k, v in m.items() if k != "guard"}, "lacks the key 'guard'"),
        (lambda m: {**m, "threshold": "high"}, "malformed"),
        (lambda m: {**m, "format_version": 99}, "format_version 99 is not supported"),
        (lambda m: {**m, "feature_order": m["feature_order"][::-1]}, "does not match"),
        (lambda m: [m], "not a JSON object"),
    ],
)
def test_unusable_bundle_metadata_is_a_bundle_error(tiny_bundle, edit, message):
    _edit_metadata(tiny_bundle, edit)
    with pytest.raises(BundleError, match=message):
        ModelBundle.load(tiny_bundle)


def test_corrupt_or_missing_model_file_is_a_bundle_error(tiny_bundle):
    (tiny_bundle / BUNDLE_MODEL_FILE).write_text("not a model")
    with pytest.raises(BundleError, match="not a LightGBM model file"):
        ModelBundle.load(tiny_bundle)
    (tiny_bundle / BUNDLE_MODEL_FILE).unlink()
    with pytest.raises(BundleError, match="has no model file"):
        ModelBundle.load(tiny_bundle)
