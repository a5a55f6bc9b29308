"""model.txt parsed into flat trees gives LightGBM's own predictions, and the native misread
check gives the reference's answers, on a model trained by the training code."""

from __future__ import annotations

import numpy as np
import pytest

from lambda_function.misread import MisreadCheck
from lambda_function.model import BundleError, ModelBundle, verdict_codes
from lambda_function.trees import TreeModelError, parse_model
from training.features import encode_frame


def odd_values(matrix: np.ndarray, seed: int, negative: bool = True) -> np.ndarray:
    """Rows with a fifth of their values replaced by ones no encoder produces (negative
    codes only with ``negative``: the species guard reads no row for them)."""
    rng = np.random.default_rng(seed)
    rows = matrix[rng.integers(0, len(matrix), 3000)].copy()
    hit = rng.random(rows.shape) < 0.2
    odd = [np.nan, 0.0, 1e-40, 2.5, 63.0, 64.0, 1e12, 3e9] + ([-1.0, -0.5] if negative else [])
    rows[hit] = rng.choice(odd, int(hit.sum()))
    return rows


def test_the_parsed_trees_predict_exactly_as_lightgbm(tiny_bundle, tiny_dataset):
    bundle = ModelBundle.load(tiny_bundle)
    ensemble = parse_model(bundle.model_text)
    matrix = encode_frame(tiny_dataset, bundle.encoder)
    assert ensemble.n_trees == bundle.n_trees
    for rows in (matrix, odd_values(matrix, 0)):
        expected = bundle.booster.predict(rows, num_threads=1)
        np.testing.assert_allclose(ensemble.predict(rows), expected, rtol=0, atol=1e-12)


def test_the_native_check_equals_the_reference(tiny_compiled_bundle, tiny_dataset):
    bundle = ModelBundle.load(tiny_compiled_bundle)
    assert bundle.misread.kind == "native", bundle.misread.native_unavailable_reason
    matrix = encode_frame(tiny_dataset, bundle.encoder)
    scaled = matrix.copy()
    scaled[:, [0, 8, 9]] *= 1.3  # measurements off the training values
    rows = np.vstack([matrix, scaled, odd_values(matrix, 1, negative=False)])
    p = bundle.predict_proba(rows)
    known = bundle.guard.compatible(rows)
    blocked = 0
    # Thresholds across the model's range, so that many rows are near the decision.
    for threshold in np.quantile(p, [0.2, 0.4, 0.6, 0.8]).tolist():
        codes = verdict_codes(p, known, threshold)
        checks = [
            MisreadCheck(
                bundle.misread.ensemble,
                bundle.guard,
                bundle.encoder.feature_order,
                bundle.encoder.vocabularies,
                threshold,
                library,
            )
            for library in (bundle.predictor.library, None)
        ]
        assert [c.kind for c in checks] == ["native", "reference"]
        native = checks[0].check(rows, codes, bundle.predict_proba)
        plain = checks[1].check(rows, codes, bundle.predict_proba)
        np.testing.assert_array_equal(native.codes, plain.codes)
        np.testing.assert_array_equal(native.feature, plain.feature)
        np.testing.assert_array_equal(native.value, plain.value)
        blocked += int((plain.codes != codes).sum())
    assert blocked > 50


def test_a_model_text_the_check_cannot_read_fails_the_load(tiny_compiled_bundle):
    with pytest.raises(TreeModelError, match="objective"):
        parse_model("tree\nobjective=regression\nmax_feature_idx=19\n\nTree=0\nnum_leaves=1\n")
    bundle = ModelBundle.load(tiny_compiled_bundle)
    broken = bundle.model_text.replace("left_child=", "left_child=99 ", 1)
    bundle.__dict__.pop("_misread")
    bundle.model_text = broken
    with pytest.raises(BundleError, match="model.txt: tree 0"):
        bundle.misread
