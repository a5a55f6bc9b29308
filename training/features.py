"""Vectorised encoding of training frames, identical to the serving-side FeatureEncoder.

``FeatureEncoder.encode_rows`` works on dicts (what the Lambda receives); training works on
DataFrames of 60,000 rows, so this module does the same mapping column-wise. A unit test checks
that both give the same matrix, so training and serving cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lambda_function.model import FeatureEncoder
from lambda_function.schema import FEATURE_NAMES, POISONOUS


def encode_frame(frame: pd.DataFrame, encoder: FeatureEncoder) -> np.ndarray:
    """Encode the feature columns of ``frame`` into an ``(n, n_features)`` float matrix.

    Nominal codes become their vocabulary index, None/NaN or out-of-vocabulary codes NaN (as in
    ``FeatureEncoder.encode_rows``); numeric columns are cast to float.
    """
    matrix = np.empty((len(frame), encoder.n_features), dtype=np.float64)
    for j, name in enumerate(encoder.feature_order):
        column = frame[name]
        if name in encoder.vocabularies:
            lookup = {code: float(i) for i, code in enumerate(encoder.vocabularies[name])}
            matrix[:, j] = column.map(lookup).astype(float).to_numpy()
        else:
            matrix[:, j] = column.astype(float).to_numpy()
    return matrix


def labels(frame: pd.DataFrame) -> np.ndarray:
    """1 for poisonous, 0 for edible."""
    return (frame["label"].to_numpy() == POISONOUS).astype(np.int8)


def frame_rows(frame: pd.DataFrame) -> list[dict]:
    """The feature rows of ``frame`` as dicts (the validator's output shape), None for missing."""
    features = frame[list(FEATURE_NAMES)].astype(object)
    features = features.where(features.notna(), None)
    return features.to_dict(orient="records")
