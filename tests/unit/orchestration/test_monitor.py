"""The composition root's check that retraining would learn something new."""

from __future__ import annotations

import pandas as pd

from orchestration.monitor import no_new_training_data
from tests.unit.training.test_registry import empty_store, settings  # noqa: F401 - fixtures
from training import data as data_mod
from training import registry
from training.pipeline import frame_checksum, prepare_frame


def _register_champion(settings, bundle_dir, sha: str) -> str:  # noqa: F811 - the fixture
    import mlflow

    client, _ = registry.configure_mlflow(settings)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(bundle_dir), "bundle")
        version = registry.register_version(
            client,
            settings.model_name,
            mlflow.get_artifact_uri("bundle"),
            run.info.run_id,
            tags={registry.TAG_TRAINING_DATA: sha},
        )
        registry.record_decision(
            client, settings.model_name, version, run.info.run_id, True, "first", None
        )
    return version


def test_retraining_is_skipped_only_without_new_labelled_records(
    settings, tiny_dataset, tiny_bundle, monkeypatch  # noqa: F811
):
    monkeypatch.setattr(data_mod, "load_dataset", lambda _settings: tiny_dataset)
    check = no_new_training_data(settings)
    assert check(None) is None  # no champion yet: nothing to compare with

    champion_sha = frame_checksum(prepare_frame(tiny_dataset, settings.seed))
    version = _register_champion(settings, tiny_bundle, champion_sha)
    assert registry.champion_training_data(settings) == (version, champion_sha)

    reason = check(None)
    assert reason is not None
    assert reason.startswith(f"no new labelled records since champion v{version} was trained")
    # Labels for mushrooms the dataset already has add nothing (the pipeline drops them).
    assert check(tiny_dataset.head(5).copy()) == reason

    new = tiny_dataset.head(5).copy()
    new["cap_diameter"] = new["cap_diameter"] + 0.123  # other individuals: new information
    assert check(new) is None


def test_a_champion_without_a_recorded_checksum_is_retrained(
    settings, tiny_dataset, tiny_bundle, monkeypatch  # noqa: F811
):
    monkeypatch.setattr(data_mod, "load_dataset", lambda _settings: tiny_dataset)
    _register_champion(settings, tiny_bundle, "")
    assert no_new_training_data(settings)(pd.DataFrame()) is None
