"""The Prefect flows, run against fakes on a temporary Prefect server (one per module).

Measured here: prefect_test_harness starts in about 10 s, then each flow run takes about 1 s;
the ephemeral default (no PREFECT_API_URL) costs the same start-up once per process. So all
flow tests share one harness.
"""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness

from monitoring.ports import CycleDeps
from orchestration.flows import monitoring_flow, training_flow
from tests.fakes import LOOPBACK_ONLY
from tests.fakes.monitoring import (
    UNKNOWN_ALARM,
    FakeCloudWatch,
    FakeObjects,
    FakeStore,
    FakeStream,
    FakeTrainer,
    config,
    label_line,
    verdict,
)

# Prefect's test harness runs a local API server.
pytestmark = [pytest.mark.slow, LOOPBACK_ONLY]


@pytest.fixture(scope="module", autouse=True)
def prefect_server():
    # About 10 s on a quiet machine; a loaded 2-core machine (tests in parallel) needs more.
    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_training_flow_deploys_only_promoted_versions():
    deployed: list[str] = []
    promoted = training_flow(
        exclude_species=[1, 2], run_training=FakeTrainer(version="5"), deploy=deployed.append
    )
    assert promoted["deployed"] and deployed == ["5"]
    refused = training_flow(run_training=FakeTrainer(promoted=False), deploy=deployed.append)
    assert not refused["deployed"] and deployed == ["5"]


def test_monitoring_flow_runs_a_cycle_with_retraining_tasks(tmp_path):
    stream, objects, trainer, deployed = FakeStream("v"), FakeObjects(), FakeTrainer(), []
    stream.put([verdict(i, "unknown") for i in range(10)])
    objects.put_labels("labels/a.jsonl", [label_line(i, "p") for i in range(10)])

    def deps_factory(retrain, deploy):
        return CycleDeps(
            config=config(tmp_path),
            verdicts=stream,
            state_store=FakeStore(),
            cloudwatch=FakeCloudWatch(),
            notify=lambda subject, message: "id",
            retrain=retrain,
            deploy=deploy,
            objects=objects,
        )

    entry = monitoring_flow(
        window="w1", deps_factory=deps_factory, run_training=trainer, deploy=deployed.append
    )
    assert entry["alarms"][UNKNOWN_ALARM] == "ALARM"
    assert entry["deployed"] and deployed == ["2"]
    assert trainer.calls[0]["reason"] == f"alarm:{UNKNOWN_ALARM}"


def test_monitoring_deployment_runs_one_flow_at_a_time():
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    from orchestration.serve import deployments

    monitoring, training = deployments(5)
    assert monitoring.concurrency_limit == 1
    assert monitoring.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
    assert training.concurrency_limit is None


def test_monitoring_flow_is_refused_while_another_cycle_holds_the_lease(tmp_path):
    from datetime import timedelta

    from monitoring.lease import CycleLease, LeaseHeld

    leases, state, cloudwatch = FakeStore(), FakeStore(), FakeCloudWatch()
    CycleLease(leases, timedelta(minutes=15), holder="make-monitor:1:abc").acquire()
    stream = FakeStream("v")
    stream.put([verdict(i, "edible") for i in range(5)])

    def deps_factory(retrain, deploy):
        return CycleDeps(
            config=config(tmp_path),
            verdicts=stream,
            state_store=state,
            cloudwatch=cloudwatch,
            notify=lambda subject, message: "id",
            retrain=retrain,
            deploy=deploy,
            lease=CycleLease(leases, timedelta(minutes=15)),
        )

    with pytest.raises(LeaseHeld, match="make-monitor:1:abc"):
        monitoring_flow(window="w1", deps_factory=deps_factory)
    assert cloudwatch.data == [] and state.document is None


def test_the_printed_training_hint_runs_on_the_served_server_from_a_fresh_terminal(tmp_path):
    """`make orchestrate` prints how to start a training run. Pasted into a new terminal (no
    virtualenv on PATH, no Prefect settings), it must create the run on the server that serves
    the deployment: without PREFECT_API_URL the CLI starts a temporary server of its own."""
    import os
    import shlex
    import subprocess

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from config.settings import REPO_ROOT
    from orchestration.serve import deployments, run_hint

    _, training = deployments(5)
    deployment_id = training.apply()
    api_url = PREFECT_API_URL.value()
    hint = run_hint(api_url, training)
    words = shlex.split(hint)
    assert words[0] == f"PREFECT_API_URL={api_url}" and words[1] == ".venv/bin/prefect"
    assert words[2:] == ["deployment", "run", "mushroom-training/on-demand"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VIRTUAL_ENV"))}
    env["HOME"] = str(tmp_path)  # no ~/.prefect profile
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    done = subprocess.run(
        ["bash", "-c", hint], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    mine = [r for r in runs if r.deployment_id == deployment_id]
    assert len(mine) == 1 and mine[0].state.name == "Scheduled", [r.state for r in mine]
