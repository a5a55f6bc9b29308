"""The composition root's check that retraining would learn something new."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from monitoring.drift import DriftReference, features_frame
from orchestration.monitor import (
    MIN_PRODUCTION_REFERENCE_ROWS,
    no_new_training_data,
    recording_extra_records,
    served_reference,
    training_reference,
)
from tests.fakes.mlflow_store import empty_store, settings  # noqa: F401 - fixtures
from tests.fakes.monitoring import OBSERVATION
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


# --- the drift reference follows the served model ---------------------------------------------


def _reference(description: str, version: str | None = None) -> DriftReference:
    frame = features_frame([OBSERVATION] * 3)
    return DriftReference(frame, description, version, "f" * 12)


def test_the_drift_reference_follows_the_served_version_and_is_built_once_per_version(
    settings,  # noqa: F811
):
    served = ["1"]
    builds: list[str] = []

    def build(version: str) -> DriftReference:
        builds.append(version)
        return _reference(f"training data of model v{version}", version)

    reference = served_reference(settings, settings.monitoring, lambda: served[0], build)
    assert reference().model_version == "1" and reference().model_version == "1"
    served[0] = "2"  # a retrained model was rolled out
    assert reference().description == "training data of model v2"
    assert builds == ["1", "2"]  # cached per version, not rebuilt every cycle
    served[0] = "1"  # a rollback
    assert reference().model_version == "1" and builds == ["1", "2"]


def test_without_a_served_version_the_dataset_sample_is_used_and_says_why(
    settings, tiny_dataset, monkeypatch  # noqa: F811
):
    monkeypatch.setattr(data_mod, "load_dataset", lambda _settings: tiny_dataset)

    def no_stack() -> str:
        raise ConnectionError("no emulator at http://127.0.0.1:1")

    def never(version: str) -> DriftReference:
        raise AssertionError("nothing to build")

    reference = served_reference(settings, settings.monitoring, no_stack, never)()
    assert reference.model_version is None and reference.rows == len(tiny_dataset)
    assert reference.description.startswith("dataset sample (served model unknown: ConnectionError")
    broken = served_reference(settings, settings.monitoring, lambda: "3", never)()
    assert "training data of model v3 not rebuilt: nothing to build" in broken.description


def _register_run(settings, bundle_dir, dataset, exclude, extra):  # noqa: F811 - the fixture
    """A registered version whose run records what ``run_training`` records of its data."""
    import mlflow

    client, _ = registry.configure_mlflow(settings)
    frame = prepare_frame(dataset, settings.seed, exclude, extra)
    with mlflow.start_run() as run:
        mlflow.log_params(
            {
                "excluded_species": ",".join(map(str, exclude)) or "none",
                "n_extra_records": 0 if extra is None else len(extra),
                registry.TAG_TRAINING_DATA: frame_checksum(frame),
            }
        )
        mlflow.log_artifacts(str(bundle_dir), "bundle")
        version = registry.register_version(
            client, settings.model_name, mlflow.get_artifact_uri("bundle"), run.info.run_id
        )
    return SimpleNamespace(run_id=run.info.run_id, model_version=version)


def _individuals(dataset: pd.DataFrame, shift: float) -> pd.DataFrame:
    """Other individuals of every species (new to the pipeline), as the lab labels them."""
    other = dataset.copy()
    other["cap_diameter"] = other["cap_diameter"] + shift
    return other


def test_the_reference_is_the_labelled_records_the_retraining_used_not_later_ones(
    settings, tiny_dataset, tiny_bundle, monkeypatch  # noqa: F811
):
    monkeypatch.setattr(data_mod, "load_dataset", lambda _settings: tiny_dataset)
    used, later = _individuals(tiny_dataset, 100.0), _individuals(tiny_dataset, 200.0)

    def retrain(**kwargs):
        return _register_run(settings, tiny_bundle, tiny_dataset, (), kwargs["extra_records"])

    result = recording_extra_records(settings, retrain)(extra_records=used, reason="test")
    # Labels arrived after the training (the next phase's): not the model's training data.
    everything = pd.concat([used, later], ignore_index=True)
    reference = training_reference(settings, result.model_version, lambda: everything, 5000)
    assert "labelled production records" in reference.description
    assert "rebuilt" not in reference.description  # the recorded training_data_sha256 matches
    values = reference.frame["cap_diameter"]
    assert ((values >= 100) & (values < 200)).all()


def test_the_training_reference_is_the_served_models_training_data(
    settings, tiny_dataset, tiny_bundle, tmp_path, monkeypatch  # noqa: F811
):
    loads: list[int] = []

    def load(_settings):
        loads.append(1)
        return tiny_dataset

    monkeypatch.setattr(data_mod, "load_dataset", load)
    excluded = sorted(tiny_dataset["species_id"].unique())[:2]
    # Other individuals of every species, labelled in production: new data to the pipeline.
    labelled = _individuals(tiny_dataset, 100.0)
    versions = {
        "v1": _register_run(settings, tiny_bundle, tiny_dataset, excluded, None).model_version,
        "v2": _register_run(settings, tiny_bundle, tiny_dataset, (), labelled).model_version,
    }

    cache = tmp_path / "reference-cache"
    v1 = training_reference(settings, versions["v1"], lambda: labelled, 5000, cache)
    assert v1.model_version == versions["v1"]
    assert v1.description.startswith(f"training data of model v{versions['v1']}: ")
    assert "training rows" in v1.description and "rebuilt" not in v1.description
    known = tiny_dataset[~tiny_dataset["species_id"].isin(excluded)]
    assert 0 < v1.rows < len(known)  # its training part: no excluded species, no test rows
    assert (v1.frame["cap_diameter"] < 100).all()

    v2 = training_reference(settings, versions["v2"], lambda: labelled, 5000, cache)
    # Retrained on labelled production records: those are its reference.
    assert "labelled production records" in v2.description
    assert v2.rows >= MIN_PRODUCTION_REFERENCE_ROWS and (v2.frame["cap_diameter"] >= 100).all()
    assert v2.fingerprint != v1.fingerprint

    # Cached on disk: a later cycle (another process) reads it instead of rebuilding it.
    loads.clear()
    again = training_reference(settings, versions["v2"], lambda: None, 5000, cache)
    assert loads == [] and again.description == v2.description
    assert again.frame.equals(v2.frame)


def test_shadow_decisions_are_tagged_on_the_registered_model_version(settings):  # noqa: F811
    """monitoring.shadow records starts and decisions as MLflow model-version tags."""
    from mlflow import MlflowClient

    from orchestration.monitor import mlflow_version_tagger

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    if not client.search_registered_models(f"name = '{settings.model_name}'"):
        client.create_registered_model(settings.model_name)
    version = client.create_model_version(settings.model_name, "file:///nowhere", run_id=None)
    mlflow_version_tagger(settings)(version.version, {"shadow.state": "promoted"})
    tags = client.get_model_version(settings.model_name, version.version).tags
    assert tags["shadow.state"] == "promoted"
