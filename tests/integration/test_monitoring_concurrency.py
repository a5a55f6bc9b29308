"""Two `python -m orchestration.monitor` at once against one deployed emulator stack: one runs, the
other is refused by the lease, and CloudWatch counts every verdict once.

The emulator holds only what a cycle touches, created directly (Terraform's own stack is
tested in test_terraform_stack.py): the verdict stream, the data bucket, the alert topic and
the two model-quality alarms. The verdicts are put on the stream directly, so no model is
trained. Both processes
import the cycle first and then wait for a start file, so their cycles begin together rather
than one interpreter start-up apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from config.settings import REPO_ROOT
from config.stack_env import read_stack_env
from emulation.emulator import start_emulator, stop_emulator

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

REPO = REPO_ROOT
N_VERDICTS = 1_000
# Imports the cycle, says it is ready, waits for the start file, then runs `make monitor`'s main.
STARTER = """
import pathlib, sys, time
import orchestration.monitor as monitor
ready, start = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ready.touch()
while not start.exists():
    time.sleep(0.01)
sys.exit(monitor.main([]))
"""


ALARMS = {
    "mushroom-unknown-rate-high": "UnknownRate",
    "mushroom-false-edible-rate-high": "FalseEdibleRate",
}


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A moto server with the resources a cycle uses; the environment a cycle needs."""
    local_dir = tmp_path_factory.mktemp("monitor-concurrency")
    saved = dict(os.environ)
    try:
        start_emulator("moto", local_dir=local_dir)
        os.environ.update(read_stack_env(local_dir / "stack.env"))
        boto3.client("s3").create_bucket(Bucket="mushroom-local-data")
        kinesis = boto3.client("kinesis")
        kinesis.create_stream(StreamName="mushroom-verdicts", ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(StreamName="mushroom-verdicts")
        topic = boto3.client("sns").create_topic(Name="mushroom-alerts")["TopicArn"]
        cloudwatch = boto3.client("cloudwatch")
        for name, metric in ALARMS.items():  # as terraform/modules/alerting creates them
            cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="MushroomClassifier",
                MetricName=metric,
                Statistic="Maximum",
                ComparisonOperator="GreaterThanThreshold",
                Threshold=0.2,
                Period=60,
                EvaluationPeriods=1,
                DatapointsToAlarm=1,
                TreatMissingData="notBreaching",
                AlarmActions=[topic],
                OKActions=[topic],
            )
        env = {
            **read_stack_env(local_dir / "stack.env"),
            "DATA_BUCKET": "mushroom-local-data",
            "OUTPUT_STREAM_NAME": "mushroom-verdicts",
            "SNS_TOPIC_ARN": topic,
            "MUSHROOM_LOCAL_DIR": str(local_dir),
            "MUSHROOM_REPORTS_DIR": str(local_dir / "reports"),
            "MONITORING_READ_OBSERVATIONS": "0",  # no drift reference needed
        }
        os.environ.update(env)  # boto3 clients of this test reach the same emulator
        yield env
    finally:
        stop_emulator(local_dir)
        os.environ.clear()
        os.environ.update(saved)


def put_verdicts(stream: str, n: int) -> None:
    kinesis = boto3.client("kinesis")
    records = [
        {
            "mushroom_id": f"conc-{i:05d}",
            "status": "scored",
            "verdict": "edible" if i % 2 else "poisonous",
            "p_poisonous": 0.1 if i % 2 else 0.9,
            "model_name": "mushroom-classifier",
            "model_version": "7",
            "input_sequence_number": f"conc-seq-{i}",
            "scored_at": "2026-12-01T12:00:00.000Z",
            "errors": [],
        }
        for i in range(n)
    ]
    for start in range(0, n, 500):
        reply = kinesis.put_records(
            StreamName=stream,
            Records=[
                {"Data": json.dumps(r).encode(), "PartitionKey": r["mushroom_id"]}
                for r in records[start : start + 500]
            ],
        )
        assert reply.get("FailedRecordCount", 0) == 0


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def published_records(namespace: str, since: datetime) -> float:
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName="Records",
        # One series: moto sums every series of the metric when no dimension is given, and
        # each window's Records goes out twice (without dimensions, and per ModelVersion).
        Dimensions=[{"Name": "ModelVersion", "Value": "7"}],
        StartTime=since,
        EndTime=datetime.now(timezone.utc) + timedelta(minutes=5),
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    return sum(p["Sum"] for p in points)


def test_two_cycles_at_once_one_runs_one_is_refused(stack_env, tmp_path):
    since = datetime.now(timezone.utc) - timedelta(minutes=5)
    put_verdicts(stack_env["OUTPUT_STREAM_NAME"], N_VERDICTS)
    start = tmp_path / "start"
    env = {**os.environ, **stack_env, "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(tmp_path / f"ready-{i}"), str(start)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        wait_for(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(2)), 120, "imports")
        start.touch()
        outcomes = [p.communicate(timeout=300) + (p.returncode,) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()

    codes = sorted(code for _, _, code in outcomes)
    assert codes == [0, 3], outcomes
    ran = next(o for o in outcomes if o[2] == 0)
    refused = next(o for o in outcomes if o[2] == 3)
    assert "window " in ran[0] and f"{N_VERDICTS} verdicts" in ran[0], ran
    assert "holds the lease s3://" in refused[1] and " until " in refused[1], refused
    assert "published" not in refused[0]

    namespace = stack_env.get("METRICS_NAMESPACE") or "MushroomClassifier"
    assert published_records(namespace, since) == N_VERDICTS
    s3 = boto3.client("s3")
    bucket = stack_env["DATA_BUCKET"]
    state = json.loads(
        s3.get_object(Bucket=bucket, Key="monitoring/checkpoints.json")["Body"].read()
    )
    assert state["cycles"] == 1 and state["pending_window"] is None
    # Released at the end: the next cycle runs (and finds nothing new).
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="monitoring/lease.json")
    assert listed.get("KeyCount", 0) == 0
    again = subprocess.run(
        [sys.executable, "-m", "orchestration.monitor"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "0 verdicts" in again.stdout
    assert published_records(namespace, since) == N_VERDICTS
