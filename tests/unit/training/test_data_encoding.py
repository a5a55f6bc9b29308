"""Training's vectorised encoding equals the serving encoder, row by row."""

from __future__ import annotations

import numpy as np

from lambda_function.model import FeatureEncoder
from training.features import encode_frame, frame_rows, labels


def test_encode_frame_matches_serving_encoder(tiny_dataset):
    encoder = FeatureEncoder.from_schema()
    from_frame = encode_frame(tiny_dataset, encoder)
    from_rows = encoder.encode_rows(frame_rows(tiny_dataset))
    np.testing.assert_array_equal(from_frame, from_rows)  # NaN == NaN here


def test_encoding_of_codes_missing_and_numbers(tiny_dataset):
    encoder = FeatureEncoder.from_schema()
    frame = tiny_dataset.head(1).copy()
    frame["cap_shape"] = "x"
    frame["veil_type"] = None
    frame["cap_diameter"] = 12.5
    row = encode_frame(frame, encoder)[0]
    order = list(encoder.feature_order)
    assert row[order.index("cap_shape")] == encoder.vocabularies["cap_shape"].index("x")
    assert np.isnan(row[order.index("veil_type")])
    assert row[order.index("cap_diameter")] == 12.5
    assert order.index("cap_shape") in encoder.categorical_indices
    assert order.index("cap_diameter") not in encoder.categorical_indices


def test_labels_are_one_for_poisonous(tiny_dataset):
    y = labels(tiny_dataset)
    assert set(np.unique(y)) == {0, 1}
    assert (y == (tiny_dataset["label"] == "p")).all()
