"""Every single misread attribute of every poisonous mushroom of the dataset: never edible.

A model trained on the whole dataset (as the registered one, with its threshold and guard, and
its compiled library when there is a C compiler) scores each poisonous row with one attribute
changed, as a forager might misread it: every other code of each observed nominal attribute,
each measurement x0.8, x0.9, x1.1, x1.2, x10 and x0.1. None of the ~3.5 million variants may
be called edible: a variant v of a poisonous row x has x among its own variants. On the way,
the trees the check parsed are checked against LightGBM on every row, and the native check
against the reference on a sample.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from config.settings import Settings
from lambda_function.misread import MisreadCheck
from lambda_function.model import VERDICT_EDIBLE, FeatureEncoder, ModelBundle
from training.compile import compile_predictor
from training.data import load_dataset
from training.features import encode_frame, labels
from training.train import fit_model, to_bundle

FACTORS = (0.8, 0.9, 1.1, 1.2, 10.0, 0.1)
CHUNK = 100_000


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MUSHROOM_DATASET_ZIP"), reason="MUSHROOM_DATASET_ZIP unset")
def test_no_single_misread_attribute_of_a_poisonous_row_is_called_edible(tmp_path):
    settings = Settings.from_env(
        {
            "MUSHROOM_DATASET_ZIP": os.environ["MUSHROOM_DATASET_ZIP"],
            "MUSHROOM_DATA_DIR": str(tmp_path / "data"),
        }
    )
    frame = load_dataset(settings)

    encoder = FeatureEncoder.from_schema()
    matrix, y = encode_frame(frame, encoder), labels(frame)
    fitted = fit_model(matrix, y, frame["species_id"].to_numpy(), encoder, seed=42)
    artifact = compile_predictor(fitted.booster.model_to_string())
    bundle = ModelBundle.load(
        to_bundle(fitted, encoder, "mushroom-classifier").save(
            tmp_path / "bundle", compiled=[artifact] if artifact else []
        )
    )
    # The trees the check reads are LightGBM's, on every row (missing values included) ...
    trees = bundle.misread.ensemble
    expected = fitted.booster.predict(matrix, num_threads=2)
    np.testing.assert_allclose(trees.predict(matrix), expected, rtol=0, atol=1e-12)
    # ... the leaves the compiled trees record while they score are the trees' leaves ...
    if bundle.records_leaves:
        np.testing.assert_array_equal(bundle.score_with_leaves(matrix)[2], trees.leaves(matrix))
    # ... and the native check answers as the reference does, on a sample of rows, whether it
    # reads those leaves (as served) or finds them itself.
    sample = matrix[np.random.default_rng(0).choice(len(matrix), 2000, replace=False)]
    _, codes = bundle.score_codes(sample)
    reference = MisreadCheck(
        trees, bundle.guard, encoder.feature_order, encoder.vocabularies, bundle.threshold
    ).reference(sample, codes, bundle.predict_proba)
    served = bundle.score_robust(sample)[1]
    walked = bundle.misread.check(sample, codes, bundle.predict_proba)
    for result in (served, walked):
        for got, want in zip(
            (result.codes, result.feature, result.value),
            (reference.codes, reference.feature, reference.value),
        ):
            np.testing.assert_array_equal(got, want)

    poisonous = matrix[y == 1]
    _, verdicts = bundle.score(poisonous)
    assert VERDICT_EDIBLE not in verdicts  # unperturbed

    variants = []
    for j, name in enumerate(encoder.feature_order):
        column = poisonous[:, j]
        observed = ~np.isnan(column)
        if name in encoder.vocabularies:
            for code in range(len(encoder.vocabularies[name])):
                changed = observed & (column != code)
                block = poisonous[changed].copy()
                block[:, j] = code
                variants.append(block)
        else:
            for factor in FACTORS:
                block = poisonous[observed].copy()
                block[:, j] *= factor
                variants.append(block)
    variants = np.concatenate(variants)
    assert len(variants) > 3_000_000
    edible = 0
    for start in range(0, len(variants), CHUNK):
        _, verdicts = bundle.score(variants[start : start + CHUNK])
        edible += verdicts.count(VERDICT_EDIBLE)
    assert edible == 0
