"""Prefect 3 flows: training and monitoring, with tasks that retry and log.

The flows only orchestrate: the work is done by plain functions (``training.pipeline``,
``monitoring.cycle``) that the unit tests call without Prefect. Dependencies can be injected
(``deps_factory``, ``run_training``, ``deploy``) so the flows also run against fakes.

- ``training_flow``: train -> (if promoted) deploy; the run's reason is recorded in MLflow.
- ``monitoring_flow``: one monitoring cycle; retraining and deployment triggered by an alarm run
  as their own task runs (visible in the Prefect UI), nested in the cycle task.

Retries: deployment (a Terraform apply of the registry's champion) is idempotent and retries.
The cycle task does not: the next scheduled cycle finishes a window a failed one left pending
(``monitoring.cycle``), so nothing is lost or counted twice, and the monitoring deployment
allows one run at a time (``orchestration.serve``). Training does not retry either (it
registers a model version; a failed run is visible in MLflow).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from config.settings import Settings
from monitoring.cycle import run_exclusive
from monitoring.outputs import describe
from monitoring.ports import CycleDeps
from orchestration.monitor import build_deps, default_deploy, default_retrain


@task(name="train-and-gate", cache_policy=NO_CACHE, log_prints=True)
def train_task(run_training: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """Train, evaluate, register and run the promotion gate."""
    logger = get_run_logger()
    logger.info("training: reason=%s", kwargs.get("reason"))
    result = (run_training or default_retrain(Settings.from_env()))(**kwargs)
    logger.info(
        "model version %s: %s (%s)",
        result.model_version,
        "promoted" if result.promoted else "not promoted",
        result.gate_reason,
    )
    return result


@task(name="deploy-champion", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def deploy_task(version: str, deploy: Callable[[str], None] | None = None) -> str:
    """Point the scorer at a registered version (only called for promoted versions)."""
    get_run_logger().info("deploying model version %s", version)
    (deploy or default_deploy)(version)
    return version


@task(name="monitoring-cycle", cache_policy=NO_CACHE)
def cycle_task(deps: CycleDeps, window: str | None = None) -> dict[str, Any]:
    """One cycle: read, metrics, publish, report, alarm check, retrain on ALARM.

    Holds the cycle lease: fails with ``LeaseHeld`` while another cycle runs."""
    logger = get_run_logger()
    result = run_exclusive(deps, window=window)
    for line in describe(result).splitlines():
        logger.info(line)
    if result.errors:
        logger.warning("cycle finished with errors: %s", "; ".join(result.errors))
    return result.timeline_entry


@flow(name="mushroom-training", log_prints=True)
def training_flow(
    exclude_species: Sequence[int] = (),
    reason: str = "manual",
    deploy_if_promoted: bool = True,
    run_training: Callable[..., Any] | None = None,
    deploy: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a challenger; deploy it if the promotion gate makes it champion."""
    result = train_task(run_training, exclude_species=tuple(exclude_species), reason=reason)
    deployed = False
    if deploy_if_promoted and result.promoted and result.model_version:
        deploy_task(str(result.model_version), deploy)
        deployed = True
    return {
        "run_id": result.run_id,
        "model_version": result.model_version,
        "promoted": bool(result.promoted),
        "gate_reason": result.gate_reason,
        "deployed": deployed,
    }


@flow(name="mushroom-monitoring", log_prints=True)
def monitoring_flow(
    window: str | None = None,
    deps_factory: Callable[..., CycleDeps] | None = None,
    run_training: Callable[..., Any] | None = None,
    deploy: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One monitoring cycle; alarm-driven retraining and deployment run as tasks."""

    def retrain(**kwargs: Any) -> Any:
        return train_task(run_training, **kwargs)

    def deploy_version(version: str) -> None:
        deploy_task(version, deploy)

    deps = (deps_factory or build_deps)(retrain=retrain, deploy=deploy_version)
    return cycle_task(deps, window)
