"""Pipeline data preparation: stable random split, species exclusion, late-labelled records."""

from __future__ import annotations

import pandas as pd
import pytest

from config.settings import Settings
from lambda_function import schema
from tests.conftest import make_tiny_dataset
from training import pipeline


def test_split_is_stable_when_species_are_excluded(tiny_dataset):
    full = pipeline.prepare_frame(tiny_dataset, seed=1)
    assert abs(full[pipeline.IS_TEST].mean() - 0.2) < 0.01
    # Stratified by species: every species has test rows.
    assert full.groupby("species_id")[pipeline.IS_TEST].sum().min() >= 1
    fewer = pipeline.prepare_frame(tiny_dataset, seed=1, exclude_species=[0, 3])
    assert set(fewer["species_id"]) == set(range(8)) - {0, 3}
    merged = fewer.merge(full, on="row_id", suffixes=("", "_full"))
    assert (merged[pipeline.IS_TEST] == merged[pipeline.IS_TEST + "_full"]).all()


def test_unknown_species_id_is_rejected(tiny_dataset):
    with pytest.raises(ValueError, match="no such species ids \\[99\\]"):
        pipeline.prepare_frame(tiny_dataset, seed=1, exclude_species=[99])


def test_extra_records_are_appended_with_pseudo_species(tiny_dataset):
    new = make_tiny_dataset(n_species=3, rows_per_species=20, seed=9)
    extra = new[[*schema.FEATURE_NAMES, "label"]].copy()  # no species columns at all
    duplicate = tiny_dataset[[*schema.FEATURE_NAMES, "label"]].head(5)
    frame = pipeline.prepare_frame(
        tiny_dataset, seed=1, extra_records=pd.concat([extra, duplicate], ignore_index=True)
    )
    added = frame[frame["row_id"] == -1]
    assert len(added) == len(extra)  # the 5 copies of dataset rows were dropped
    assert (added["species_id"] >= pipeline.PSEUDO_SPECIES_BASE).all()
    assert added["species_id"].nunique() <= 3
    assert added[pipeline.IS_TEST].any() and not added[pipeline.IS_TEST].all()


def test_extra_records_with_bad_codes_are_rejected(tiny_dataset):
    extra = tiny_dataset[[*schema.FEATURE_NAMES, "label"]].head(2).copy()
    extra["season"] = "z"
    with pytest.raises(ValueError, match="season has unknown codes \\['z'\\]"):
        pipeline.prepare_frame(tiny_dataset, seed=1, extra_records=extra)


def test_settings_defaults_and_overrides(tmp_path):
    settings = Settings.from_env({"MUSHROOM_REPO_ROOT": str(tmp_path)})
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path}/.local/mlflow/mlflow.db"
    assert settings.mlflow_artifact_location == str(tmp_path / ".local/mlflow/artifacts")
    assert settings.models_bucket == "mushroom-local-models"
    assert settings.input_stream_name == "mushroom-observations"
    assert settings.output_stream_name == "mushroom-verdicts"
    assert settings.model_bundles_dir == tmp_path / ".local/bundles/mushroom-classifier"
    assert not settings.aws_configured
    emulator = Settings.from_env(
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "MLFLOW_BUCKET": "b", "MUSHROOM_SEED": "7"}
    )
    assert emulator.mlflow_artifact_location == "s3://b/artifacts"
    assert emulator.aws_configured and emulator.seed == 7
