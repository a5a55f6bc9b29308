"""The closed loop's promotion by shadow, as the composition root wires it."""

from __future__ import annotations

import pytest

from config.settings import MonitoringConfig, Settings
from orchestration.monitor import DeployedShadow, build_deps, keeping_the_champion
from tests.fakes.mlflow_store import empty_store, settings  # noqa: F401 - fixtures
from training import registry


def _env(tmp_path, **extra: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_TARGET": "moto",
        "LOCAL_DIR": str(tmp_path),
        "ARCHIVE_VERDICTS_PREFIX": "archive/verdicts/",
        **extra,
    }


def test_with_the_archive_a_passing_model_goes_to_the_shadow_by_default(tmp_path):
    stack = Settings.from_env(_env(tmp_path))
    assert MonitoringConfig.from_env(stack, _env(tmp_path)).promotion == "shadow"
    direct = _env(tmp_path, MONITORING_PROMOTION="direct")
    assert MonitoringConfig.from_env(stack, direct).promotion == "direct"
    streams = _env(tmp_path, MONITORING_SOURCE="streams")
    assert MonitoringConfig.from_env(stack, streams).promotion == "direct"
    with pytest.raises(ValueError, match="needs MONITORING_SOURCE=archive"):
        MonitoringConfig.from_env(stack, {**streams, "MONITORING_PROMOTION": "shadow"})
    with pytest.raises(ValueError, match="MONITORING_PROMOTION must be one of"):
        MonitoringConfig.from_env(stack, _env(tmp_path, MONITORING_PROMOTION="canary"))


def test_build_deps_wires_the_stacks_shadow_and_a_gate_that_keeps_the_champion(moto_aws, tmp_path):
    calls: list[dict] = []

    def retrain(**kwargs):
        calls.append(kwargs)
        return None

    shadowed = build_deps(Settings.from_env(_env(tmp_path)), retrain=retrain)
    assert isinstance(shadowed.shadow, DeployedShadow)
    shadowed.retrain(reason="alarm")
    direct = build_deps(
        Settings.from_env(_env(tmp_path, MONITORING_PROMOTION="direct")), retrain=retrain
    )
    assert direct.shadow is None
    direct.retrain(reason="alarm")
    assert calls == [{"reason": "alarm", "move_champion": False}, {"reason": "alarm"}]


def test_keeping_the_champion_passes_the_flag_through():
    seen: list[dict] = []
    keeping_the_champion(lambda **kwargs: seen.append(kwargs))(extra_records=None)
    assert seen == [{"extra_records": None, "move_champion": False}]


def test_a_version_bound_for_the_shadow_does_not_move_the_champion(settings):  # noqa: F811
    import mlflow

    client, _ = registry.configure_mlflow(settings)
    versions = []
    for move in (True, False):
        with mlflow.start_run() as run:
            mlflow.log_text("probe", "probe.txt")
            version = registry.register_version(
                client, settings.model_name, mlflow.get_artifact_uri(), run.info.run_id
            )
            registry.record_decision(
                client,
                settings.model_name,
                version,
                run.info.run_id,
                True,
                "passes the gate",
                None,
                move_champion=move,
            )
            versions.append(version)
    champion = client.get_model_version_by_alias(settings.model_name, registry.CHAMPION_ALIAS)
    assert str(champion.version) == versions[0]  # the second passed the gate, stays challenger
    second = client.get_model_version(settings.model_name, versions[1])
    assert second.tags[registry.TAG_DECISION] == registry.DECISION_PROMOTED
