"""Threshold choice, the species guard, and model fitting on synthetic species."""

from __future__ import annotations

import numpy as np

from lambda_function.model import FeatureEncoder, SpeciesGuard
from tests.conftest import make_tiny_dataset
from training.features import encode_frame, labels
from training.train import choose_threshold, fit_model, predict_ms_1000, split_validation


def test_threshold_calls_no_poisonous_validation_record_edible():
    p = np.array([0.9, 0.35, 0.8, 0.1, 0.2])
    y = np.array([1, 1, 1, 0, 0])
    threshold = choose_threshold(p, y)
    assert threshold == 0.35
    assert ((p >= threshold) | (y == 0)).all()


def test_threshold_never_above_default():
    p = np.array([0.99, 0.97, 0.01])
    y = np.array([1, 1, 0])
    assert choose_threshold(p, y) == 0.5
    assert choose_threshold(p, y, default=0.9) == 0.9


def test_threshold_without_poisonous_records_is_default():
    assert choose_threshold(np.array([0.2, 0.7]), np.array([0, 0])) == 0.5


def test_split_validation_is_stratified_and_deterministic():
    index = np.arange(100)
    strata = np.repeat([0, 1, 2, 3], 25)
    fit, validation = split_validation(index, strata, seed=1)
    assert len(validation) == 20 and set(fit).isdisjoint(validation)
    assert np.bincount(strata[validation]).tolist() == [5, 5, 5, 5]
    again = split_validation(index, strata, seed=1)
    assert (again[1] == validation).all()


def _guard_data():
    frame = make_tiny_dataset(n_species=6, rows_per_species=50, seed=3)
    encoder = FeatureEncoder.from_schema()
    return frame, encoder, encode_frame(frame, encoder), frame["species_id"].to_numpy()


def test_guard_knows_held_out_rows_of_known_species():
    frame, encoder, matrix, species = _guard_data()
    train_idx, held_out = split_validation(np.arange(len(frame)), species, seed=0)
    guard = SpeciesGuard.fit(matrix[train_idx], species[train_idx], encoder, numeric_margin=0.25)
    assert guard.compatible(matrix[held_out]).mean() > 0.95


def test_guard_flags_unseen_species_and_unseen_combinations():
    frame, encoder, matrix, species = _guard_data()
    seen = species < 5
    guard = SpeciesGuard.fit(matrix[seen], species[seen], encoder)
    # A whole species never seen in training.
    assert not guard.compatible(matrix[~seen]).any()
    # A row mixing two known species: codes of species 0 with measurements of species 1.
    row0 = matrix[species == 0][0].copy()
    row1 = matrix[species == 1][0]
    for name in ("cap_diameter", "stem_height", "stem_width"):
        j = encoder.feature_order.index(name)
        row0[j] = row1[j] * 10  # far outside every species' range
    assert not guard.compatible(row0[None, :])[0]
    assert guard.compatible(matrix[species == 0][:1])[0]


def test_fit_model_separates_synthetic_species(tiny_dataset):
    encoder = FeatureEncoder.from_schema()
    matrix = encode_frame(tiny_dataset, encoder)
    y = labels(tiny_dataset)
    fitted = fit_model(
        matrix, y, tiny_dataset["species_id"].to_numpy(), encoder, seed=0, num_boost_round=20
    )
    p = fitted.booster.predict(matrix)
    assert ((p >= fitted.threshold) == y).mean() > 0.95
    assert 0 < fitted.threshold <= 0.5
    assert fitted.n_fit + fitted.n_validation == len(y)
    assert predict_ms_1000(fitted.booster, matrix, repeats=3) > 0
