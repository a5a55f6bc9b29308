"""A training run logs an MLflow model: the registered pyfunc gives the Lambda's verdicts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from config.settings import Settings
from lambda_function import schema
from lambda_function.model import ModelBundle
from lambda_function.service import ScoringService
from lambda_function.writer import InMemoryWriter
from orchestration import rollout
from tests.conftest import make_tiny_dataset
from tests.fakes.scorer import kinesis_event
from training import pipeline, pyfunc, registry
from training import train as train_mod

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, empty_store) -> dict[str, Any]:
    """One ``run_training`` on the tiny dataset in its own store (the tests only read it)."""
    root = tmp_path_factory.mktemp("pyfunc")
    shutil.copy(empty_store, root / "mlflow.db")
    settings = Settings.from_env(
        {"MUSHROOM_REPO_ROOT": str(root), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    )
    dataset = make_tiny_dataset()
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "MLFLOW_TRACKING_URI"):
            patch.delenv(key, raising=False)
        patch.setattr(pipeline.data_mod, "load_dataset", lambda _settings: dataset)
        patch.setattr(train_mod, "NUM_BOOST_ROUND", 10)
        result = pipeline.run_training(settings, reason="test")
    assert result.promoted and result.model_version == "1"
    client, experiment_id = registry.configure_mlflow(settings)
    return {
        "settings": settings,
        "result": result,
        "dataset": dataset,
        "client": client,
        "experiment_id": experiment_id,
    }


def _rows(dataset) -> list[dict]:
    """Dataset rows (edible and poisonous), one no training species fits, one invalid."""
    rows = [
        {"mushroom_id": f"m-{i}", **{name: row[name] for name in schema.FEATURE_NAMES}}
        for i, row in enumerate(dataset.sample(30, random_state=3).to_dict("records"))
    ]
    rows.append({**rows[0], "mushroom_id": "unseen", "cap_diameter": 500.0})
    rows.append({**rows[1], "mushroom_id": "invalid", "stem_width": -1.0})
    return rows


def _lambda_outputs(bundle: ModelBundle, rows: list[dict]) -> dict[str, dict]:
    """What the Lambda's scoring service writes for these rows, by mushroom id."""
    payloads = [
        json.dumps({k: v for k, v in row.items() if v is not None}).encode() for row in rows
    ]
    writer = InMemoryWriter()
    ScoringService(bundle, writer).score_records(kinesis_event(payloads)["Records"])
    outputs = (msgspec.json.decode(data) for _, _, data in writer.records)
    return {output["mushroom_id"]: output for output in outputs}


def test_the_champion_loads_as_a_pyfunc_with_the_lambdas_verdicts(trained):
    import mlflow

    settings = trained["settings"]
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    rows = _rows(trained["dataset"])
    frame = pyfunc.input_example(rows)
    frame.insert(0, "mushroom_id", [row["mushroom_id"] for row in rows])
    predicted = model.predict(frame)

    expected = _lambda_outputs(ModelBundle.load(settings.model_bundles_dir / "champion"), rows)
    assert list(predicted["mushroom_id"]) == [row["mushroom_id"] for row in rows]
    for output in predicted.to_dict("records"):
        lambda_output = expected[output["mushroom_id"]]
        assert output["status"] == lambda_output["status"]
        assert output["verdict"] == lambda_output["verdict"]
        if lambda_output["p_poisonous"] is not None:
            assert output["p_poisonous"] == lambda_output["p_poisonous"]
        assert output["model_version"] == "1"
        misread = lambda_output.get("misread")
        assert output["misread"] == (json.dumps(misread) if misread else "")
    # Every kind of outcome is compared, not only the easy ones.
    outcomes = {(o["status"], o["verdict"]) for o in expected.values()}
    assert {("scored", "edible"), ("scored", "poisonous"), ("scored", "unknown")} <= outcomes
    assert expected["invalid"]["status"] == "rejected"
    assert "stem_width" in predicted.set_index("mushroom_id").loc["invalid", "errors"]


def test_the_version_is_the_logged_model_with_signature_and_the_bundle(trained, tmp_path):
    import mlflow

    settings, client, run_id = trained["settings"], trained["client"], trained["result"].run_id
    info = mlflow.models.get_model_info(f"models:/{settings.model_name}@champion")
    assert set(info.signature.inputs.input_names()) == {schema.ID_FIELD, *schema.FEATURE_NAMES}
    assert {"verdict", "p_poisonous"} <= set(info.signature.outputs.input_names())
    assert info.saved_input_example_info is not None
    version = client.get_model_version(settings.model_name, "1")
    # The SQLite registry keeps the logged model in the source only (not in model_id).
    assert version.source.startswith("models:/m-")
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.source_run_id == run_id and logged.status == "READY"
    # The run keeps its bundle/ artifacts; the model's copy is the same bytes (same checksums).
    run_bundle = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/bundle"))
    model_bundle = registry.download_bundle(version.source, tmp_path / "download")
    names = sorted(p.name for p in run_bundle.iterdir())
    assert names == sorted(p.name for p in model_bundle.iterdir())
    assert all((run_bundle / n).read_bytes() == (model_bundle / n).read_bytes() for n in names)
    # Without the local export, the gate and the rollout read the registered model.
    shutil.rmtree(settings.model_bundles_dir / "1")
    assert registry.load_champion_bundle(settings, client, "1").model_version == "1"
    rollout_dir = rollout._bundle_dir(settings, version, tmp_path / "rollout")
    assert ModelBundle.load(rollout_dir).model_version == "1"


def test_per_fold_metrics_are_one_series_per_figure_and_the_experiment_is_tagged(trained):
    client, run_id = trained["client"], trained["result"].run_id
    folds = trained["result"].evaluation["species_holdout"]["folds"]
    keys = set(client.get_run(run_id).data.metrics)
    assert not [k for k in keys if k.startswith("fold")]
    history = client.get_metric_history(run_id, "species_holdout.fold.n_unseen")
    assert sorted(m.step for m in history) == list(range(folds))
    assert "species_holdout.fold.decision_accuracy" in keys
    experiment = client.get_experiment(trained["experiment_id"])
    assert experiment.tags[registry.EXPERIMENT_KIND_TAG] == registry.EXPERIMENT_KIND
