"""`make shadow`, `make promote`, `make shadow-stop` (orchestration/rollout.py): the registry's
side (a version it lacks is refused; a promotion moves its champion) over moto in-process."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from config.settings import ShadowRules
from deployment.rollout import RolloutError
from lambda_function.model import ModelBundle
from monitoring.cycle import run_cycle
from orchestration.monitor import DeployedShadow
from orchestration.rollout import (
    Stack,
    describe,
    promote_shadow_model,
    serving,
    shadow_model,
    shadowing,
    stop_shadow_model,
)
from tests.fakes.mlflow_store import empty_store, settings  # noqa: F401 - fixtures
from tests.fakes.monitoring import archive_deps, archive_shadowed, config, put_labels
from tests.unit.deployment import test_rollout
from training import registry


@pytest.fixture
def deployed(settings, moto_aws, tiny_compiled_bundle: Path, tmp_path: Path):  # noqa: F811
    """test_rollout's stack (model 1 served) and a registry holding versions 1 and 2, whose
    bundles are exported where `make train` puts them."""
    import mlflow

    lam = test_rollout.stack.__wrapped__(moto_aws, tiny_compiled_bundle, tmp_path)
    client, _ = registry.configure_mlflow(settings)
    for version in ("1", "2"):
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(tiny_compiled_bundle), "bundle")
            registered = registry.register_version(
                client, settings.model_name, mlflow.get_artifact_uri("bundle"), run.info.run_id
            )
        assert registered == version
        bundle = ModelBundle.load(lam.bundles[version])
        bundle.metadata["mlflow_run_id"] = run.info.run_id
        bundle.save(settings.model_bundles_dir / version)
    return Stack(settings, test_rollout.TARGET, lam.lam, lam.s3), client


def test_a_version_the_registry_lacks_is_refused(deployed) -> None:
    stack, _ = deployed
    with pytest.raises(RolloutError, match="model version 7 is not registered.*nothing changed"):
        shadow_model(stack, "7")
    assert shadowing(stack) is None


def test_shadow_then_promote_serves_it_and_makes_it_the_champion(deployed) -> None:
    stack, client = deployed
    started = shadow_model(stack, "2")
    assert started.served.model_version == "1" and started.served.shadow_model_version == "2"
    state = shadowing(stack)
    assert state is not None and state.model_version == "2"
    assert describe(serving(stack)).endswith("; shadow: model version 2 (answers no one)")

    promoted = promote_shadow_model(stack)

    assert promoted.served.model_version == "2" and shadowing(stack) is None
    champion_dir = stack.settings.model_bundles_dir / "champion"
    assert promoted.message.endswith(
        f"the registry's champion is now version 2, and {champion_dir} a copy of it"
    )
    champion = client.get_model_version_by_alias(stack.settings.model_name, "champion")
    assert str(champion.version) == "2"
    # The local champion folder (make bench, make invoke's local runs) follows the registry.
    assert ModelBundle.load(champion_dir).model_version == "2"


def test_promote_without_the_local_bundle_still_moves_the_registry(deployed) -> None:
    stack, client = deployed
    shadow_model(stack, "2")
    shutil.rmtree(stack.settings.model_bundles_dir / "2")
    promoted = promote_shadow_model(stack)
    assert promoted.message.endswith("the registry's champion is now version 2")
    champion = client.get_model_version_by_alias(stack.settings.model_name, "champion")
    assert str(champion.version) == "2"
    assert not (stack.settings.model_bundles_dir / "champion").exists()


def test_stop_drops_the_shadow(deployed) -> None:
    stack, _ = deployed
    shadow_model(stack, "2")
    assert stop_shadow_model(stack).served.shadow_model_version is None
    assert shadowing(stack) is None and serving(stack).model_version == "1"


class _DeployedShadow(DeployedShadow):
    """The monitor's shadow port on this test's stack (instead of the one stack.env names)."""

    def __init__(self, stack: Stack) -> None:
        self._the_stack = stack

    def _stack(self) -> Stack:
        return self._the_stack


def test_the_cycles_decisions_drive_the_deployed_shadow(deployed, tmp_path: Path) -> None:
    """Evidence -> decision -> `make shadow-stop` / `make promote` on the deployed alias: a
    worse shadow leaves the alias serving model 1 without a shadow, a better one serves."""
    stack, client = deployed
    client.set_registered_model_alias(stack.settings.model_name, "champion", "1")
    tags: list[tuple[str, str]] = []
    deps = archive_deps(
        tmp_path,
        config=replace(
            config(tmp_path, alarm_names=()), shadow=ShadowRules(min_labelled=20, min_poisonous=5)
        ),
        shadow=_DeployedShadow(stack),
        tag_version=lambda version, t: tags.append((version, t["shadow.state"])),
    )
    now = datetime.now(timezone.utc)
    shadow_model(stack, "2")
    # Worse: it makes edible mushrooms unknown where the champion was right.
    worse = [("e", "edible", "unknown")] * 10 + [("p", "poisonous", "poisonous")] * 10
    archive_shadowed(deps.objects, now - timedelta(seconds=30), worse, "2", "worse")
    put_labels(deps.objects, now - timedelta(seconds=20), worse, "worse")

    discarded = run_cycle(deps, at=now)

    assert discarded.ok, discarded.errors
    assert discarded.timeline_entry["shadow"]["decision"]["action"] == "discard"
    assert shadowing(stack) is None and serving(stack).model_version == "1"
    champion = client.get_model_version_by_alias(stack.settings.model_name, "champion")
    assert str(champion.version) == "1"

    shadow_model(stack, "2")
    better = [("e", "unknown", "edible")] * 20 + [("p", "unknown", "poisonous")] * 10
    archive_shadowed(deps.objects, now + timedelta(seconds=10), better, "2", "better")
    put_labels(deps.objects, now + timedelta(seconds=20), better, "better")

    promoted = run_cycle(deps, at=now + timedelta(seconds=30))

    assert promoted.ok, promoted.errors
    assert promoted.timeline_entry["shadow"]["decision"]["action"] == "promote"
    assert shadowing(stack) is None and serving(stack).model_version == "2"
    champion = client.get_model_version_by_alias(stack.settings.model_name, "champion")
    assert str(champion.version) == "2"
    assert tags == [("2", "discarded"), ("2", "promoted")]
