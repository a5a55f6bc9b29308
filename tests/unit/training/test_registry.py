"""Registry and promotion gate on a temporary SQLite MLflow store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from config.settings import Settings
from lambda_function.model import ModelBundle
from training import evaluate, pipeline, registry
from training import train as train_mod


def test_decide_promotion_rules():
    good = {"false_edible": 0, "misread_false_edible": 0, "decision_accuracy": 0.99}
    assert registry.decide_promotion(good, None) == (True, "first model: no champion yet")
    promoted, reason = registry.decide_promotion({**good, "false_edible": 1}, good)
    assert not promoted and "false_edible 1 vs champion 0" in reason
    promoted, reason = registry.decide_promotion({**good, "decision_accuracy": 0.98}, good)
    assert not promoted and "decision_accuracy 0.98 vs champion 0.99" in reason
    promoted, reason = registry.decide_promotion({**good, "decision_accuracy": 1.0}, good)
    assert promoted and reason.startswith("better than champion")
    assert "decision_accuracy 1 vs champion 0.99" in reason and "worse on none" in reason


def test_gate_does_not_promote_a_tie():
    # The retrain-on-the-same-data case: identical figures change nothing for the forager.
    good = {"false_edible": 0, "misread_false_edible": 0, "decision_accuracy": 0.996971}
    promoted, reason = registry.decide_promotion(good, dict(good), champion_version="1")
    assert not promoted
    assert reason.startswith("tie with champion on every figure: not promoted")
    assert "decision_accuracy 0.996971 (champion 0.996971)" in reason


def test_gate_promotes_better_safety_with_equal_quality():
    champion = {"false_edible": 2, "misread_false_edible": 0, "decision_accuracy": 0.99}
    promoted, reason = registry.decide_promotion({**champion, "false_edible": 1}, champion)
    assert promoted and "false_edible 1 vs champion 2" in reason


def test_gate_treats_misread_false_edibles_as_safety():
    champion = {"false_edible": 0, "misread_false_edible": 0, "decision_accuracy": 0.99}
    challenger = {**champion, "misread_false_edible": 3, "decision_accuracy": 0.999}
    promoted, reason = registry.decide_promotion(challenger, champion, champion_version="1")
    assert not promoted and "misread_false_edible 3 vs champion 0" in reason
    promoted, reason = registry.decide_promotion(
        {**champion, "misread_false_edible": 0}, {**champion, "misread_false_edible": 2}
    )
    assert promoted and "misread_false_edible 0 vs champion 2" in reason
    # A champion evaluated without the figure (or with a NaN) cannot be compared: fail closed.
    legacy = {"false_edible": 0, "decision_accuracy": 0.99}
    promoted, reason = registry.decide_promotion(champion, legacy, champion_version="1")
    assert not promoted and "champion misread_false_edible is not a finite number" in reason


def test_gate_refuses_better_on_one_figure_and_worse_on_another():
    champion = {"false_edible": 0, "misread_false_edible": 0, "decision_accuracy": 0.99}
    challenger = {"false_edible": 1, "misread_false_edible": 0, "decision_accuracy": 0.999}
    promoted, reason = registry.decide_promotion(challenger, champion)
    assert not promoted and reason.startswith("worse than champion")
    assert "false_edible 1 vs champion 0" in reason


def test_gate_counts_unknown_as_do_not_eat_on_the_same_rows():
    # Same 4 held-out rows (3 poisonous, 1 edible) and scores; the challenger's guard calls two
    # poisonous mushrooms unknown where the champion said poisonous. The old rule (unknown =
    # wrong) refused it; the same actions ("do not eat") make it a tie, which is no promotion
    # but no longer a refusal for being worse.
    y = np.array([1, 1, 1, 0])
    p = np.array([0.9, 0.8, 0.7, 0.1])
    robust = {"misread_false_edible": 0}
    champion = {**evaluate.verdict_metrics(y, p, np.array([True] * 4), threshold=0.5), **robust}
    challenger = {
        **evaluate.verdict_metrics(y, p, np.array([False, False, True, True]), 0.5),
        **robust,
    }
    assert challenger["decision_accuracy"] == champion["decision_accuracy"] == 1.0
    promoted, reason = registry.decide_promotion(challenger, champion, champion_version="1")
    assert not promoted and reason.startswith("tie with champion"), reason
    assert "decision_accuracy 1 (champion 1)" in reason
    # An edible mushroom called unknown is a wrong action: the gate refuses.
    worse = {**evaluate.verdict_metrics(y, p, np.array([True, True, True, False]), 0.5), **robust}
    promoted, reason = registry.decide_promotion(worse, champion, champion_version="1")
    assert not promoted and "decision_accuracy 0.75 vs champion 1" in reason


def test_gate_fails_closed_when_the_champion_cannot_be_evaluated():
    good = {"false_edible": 0, "misread_false_edible": 0, "decision_accuracy": 0.99}
    promoted, reason = registry.decide_promotion(
        good, None, champion_version="4", champion_error="model.txt checksum differs"
    )
    assert not promoted
    assert reason.startswith("champion v4 could not be evaluated (model.txt checksum differs)")
    assert "fail closed" in reason


@pytest.mark.parametrize("side", ["challenger", "champion"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), None, "n/a"])
def test_gate_refuses_metrics_it_cannot_compare(side, value):
    # NaN compares False both ways: without a check, "not worse" would promote a broken model.
    good = {"false_edible": 0, "misread_false_edible": 0, "decision_accuracy": 0.99}
    broken = {**good, "decision_accuracy": value}
    challenger, champion = (broken, good) if side == "challenger" else (good, broken)
    promoted, reason = registry.decide_promotion(challenger, champion, champion_version="1")
    assert not promoted
    assert f"{side} decision_accuracy is not a finite number" in reason


def test_registration_aliases_and_tags(settings, tiny_bundle):
    import mlflow

    client, _ = registry.configure_mlflow(settings)
    assert registry.get_champion(settings, client) is None
    versions = []
    for promoted in (True, False):
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(tiny_bundle), "bundle")
            source = mlflow.get_artifact_uri("bundle")
            version = registry.register_version(
                client, settings.model_name, source, run.info.run_id
            )
            registry.record_decision(
                client, settings.model_name, version, run.info.run_id, promoted, "why", None
            )
            versions.append((version, run.info.run_id))
    assert registry.get_champion(settings, client) == versions[0]
    challenger = client.get_model_version_by_alias(settings.model_name, "challenger")
    assert str(challenger.version) == versions[1][0]
    assert challenger.tags[registry.TAG_DECISION] == "rejected"
    assert client.get_run(versions[1][1]).data.tags[registry.TAG_REASON] == "why"
    # No local export: the champion bundle comes from the registered MLflow artifacts.
    bundle = registry.load_champion_bundle(settings, client, versions[0][0])
    assert isinstance(bundle, ModelBundle)


def test_a_fresh_demo_logs_artifacts_to_the_stack_bucket(tmp_path, empty_store, moto_aws):
    import boto3
    import mlflow

    # make demo reads the champion (deploy_champion) before Terraform has created the MLflow
    # bucket, then trains once the bucket is known.
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    env = {
        "MUSHROOM_REPO_ROOT": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    assert registry.get_champion(Settings.from_env(env)) is None
    boto3.client("s3").create_bucket(Bucket="stack-mlflow")
    stack = Settings.from_env({**env, "MLFLOW_BUCKET": "stack-mlflow", "AWS_ACCESS_KEY_ID": "t"})
    client, experiment_id = registry.configure_mlflow(stack)
    location = client.get_experiment(experiment_id).artifact_location
    assert location == "s3://stack-mlflow/artifacts"
    with mlflow.start_run() as run:
        mlflow.log_text("probe", "probe.txt")
    listed = boto3.client("s3").list_objects_v2(Bucket="stack-mlflow")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert keys == [f"artifacts/{run.info.run_id}/artifacts/probe.txt"]


def test_gate_step_fails_closed_on_a_corrupt_champion(
    settings, tiny_bundle, tiny_dataset, monkeypatch
):
    import mlflow

    client, _ = registry.configure_mlflow(settings)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tiny_bundle), "bundle")
        source = mlflow.get_artifact_uri("bundle")
        version = registry.register_version(client, settings.model_name, source, run.info.run_id)
        registry.record_decision(
            client, settings.model_name, version, run.info.run_id, True, "first", None
        )
    # No local export, and the registered model.txt is truncated: the champion cannot be scored.
    (stored,) = Path(settings.mlflow_artifact_location).rglob("bundle/model.txt")
    stored.write_text(stored.read_text()[:100])

    def no_training(*_args, **_kwargs):
        raise AssertionError("the gate step must not train")

    monkeypatch.setattr(train_mod, "fit_model", no_training)
    monkeypatch.setattr(pipeline.data_mod, "load_dataset", lambda _settings: tiny_dataset)
    data = pipeline.prepare_step(settings)
    gate = pipeline.gate_step(settings, client, ModelBundle.load(tiny_bundle), data)
    assert not gate.promoted and gate.champion_version == "1" and gate.champion is None
    assert gate.reason.startswith("champion v1 could not be evaluated (BundleError")
    assert "fail closed" in gate.reason
    assert gate.challenger["n_test"] == int(data.is_test.sum())
    assert gate.report()["would_promote"] is False


@pytest.mark.slow
def test_pipeline_gate_first_worse_equal(settings, tiny_dataset, monkeypatch):
    monkeypatch.setattr(pipeline.data_mod, "load_dataset", lambda _settings: tiny_dataset)
    monkeypatch.setattr(train_mod, "NUM_BOOST_ROUND", 10)

    first = pipeline.run_training(settings, reason="test")
    assert first.promoted and first.model_version == "1"
    assert first.gate_reason == "first model: no champion yet"
    assert (settings.model_bundles_dir / "champion" / "bundle.json").is_file()
    assert first.bundle_uri is None  # no AWS target: S3 skipped, no crash
    report = (settings.reports_dir / "evaluation.json").read_text()
    assert '"model_version": "1"' in report

    # A worse model: a threshold that calls every poisonous mushroom edible.
    with monkeypatch.context() as patch:
        patch.setattr(train_mod, "choose_threshold", lambda p, y, default=0.5: 1.0)
        worse = pipeline.run_training(settings, reason="test")
    assert not worse.promoted and worse.model_version == "2"
    assert "worse than champion" in worse.gate_reason
    client, _ = registry.configure_mlflow(settings)
    tags = client.get_model_version(settings.model_name, "2").tags
    assert tags[registry.TAG_DECISION] == "rejected"
    assert tags[registry.TAG_CHAMPION_VERSION] == "1"
    assert registry.get_champion(settings) == ("1", first.run_id)

    # The champion's bundle breaks (corrupt export, missing artifacts): fail closed.
    def broken_champion(*_args, **_kwargs):
        raise RuntimeError("bundle.json checksum mismatch")

    with monkeypatch.context() as patch:
        patch.setattr(registry, "load_champion_bundle", broken_champion)
        blind = pipeline.run_training(settings, reason="test")
    assert not blind.promoted and blind.model_version == "3"
    assert blind.gate_reason.startswith("champion v1 could not be evaluated")
    assert blind.evaluation["gate"]["would_promote"] is False
    tags = client.get_model_version(settings.model_name, "3").tags
    assert tags[registry.TAG_DECISION] == "rejected"
    assert registry.get_champion(settings) == ("1", first.run_id)
    assert ModelBundle.load(settings.model_bundles_dir / "champion").model_version == "1"

    # The same data again: the same model, a tie, which is not promoted.
    equal = pipeline.run_training(settings, reason="test")
    assert not equal.promoted and equal.model_version == "4"
    assert equal.gate_reason.startswith("tie with champion on every figure: not promoted")
    assert registry.get_champion(settings) == ("1", first.run_id)
    assert ModelBundle.load(settings.model_bundles_dir / "champion").model_version == "1"


def test_downloading_a_bundle_draws_no_progress_bar(settings, tmp_path, monkeypatch, capfd):
    import mlflow

    monkeypatch.setenv(registry.ARTIFACTS_PROGRESS_BAR, "unset")  # restored after the test
    monkeypatch.delenv(registry.ARTIFACTS_PROGRESS_BAR)
    registry.mlflow_client(settings)
    files = tmp_path / "bundle"
    files.mkdir()
    for name in ("model.txt", "bundle.json", "predictor.so"):
        (files / name).write_text(name)
    mlflow.set_experiment("progress")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(files), "bundle")
    capfd.readouterr()
    got = mlflow.artifacts.download_artifacts(
        artifact_uri=f"runs:/{run.info.run_id}/bundle", dst_path=str(tmp_path / "dl")
    )
    assert sorted(p.name for p in Path(got).iterdir()) == [
        "bundle.json",
        "model.txt",
        "predictor.so",
    ]
    out, err = capfd.readouterr()
    assert "Downloading artifacts" not in out + err, err


def test_a_users_own_progress_bar_setting_is_kept(settings, monkeypatch):
    import os

    monkeypatch.setenv(registry.ARTIFACTS_PROGRESS_BAR, "true")
    registry.mlflow_client(settings)
    assert os.environ[registry.ARTIFACTS_PROGRESS_BAR] == "true"
