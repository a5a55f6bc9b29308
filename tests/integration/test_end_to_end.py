"""The whole path on the embedded emulator: real Terraform apply, real training and registry,
the real Lambda zip, records through Kinesis and the deployed function to the verdict stream.

One moto server, Terraform state, MLflow store and runtime state of its own under a temporary
directory, so a developer's `make up` stack is never touched. Set MUSHROOM_LAMBDA_ZIP to a
built zip to skip the package build.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

import producer
from config.settings import REPO_ROOT, Settings
from config.stack_env import read_stack_env
from emulation.emulator import start_emulator, stop_emulator
from emulation.firehose_pump import make_pump
from emulation.local_lambda import invoke, run_until_idle
from orchestration.rollout import connect, deploy, serving
from producer import read_verdicts, summarise
from training.pipeline import held_out_sample as _held_out_sample

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = REPO_ROOT
EVENT_FIXTURE = REPO / "tests" / "fixtures" / "kinesis_event.json"
N_RECORDS = 1_000


def held_out_sample(n_records: int, seed: int) -> Any:
    """Held-out test rows, with the settings of the stack this module deployed."""
    return _held_out_sample(Settings.from_env(), n_records, seed)


@dataclass
class Deployed:
    local_dir: Path
    outputs: dict[str, Any]
    function_log: Path

    def client(self, service: str) -> Any:
        return boto3.client(service)  # endpoint and test credentials come from the environment

    def verdict_checkpoint(self) -> dict[str, str]:
        """The verdict stream's current tip: later reads see only new verdicts."""
        from monitoring.aws import KinesisStreamReader

        return KinesisStreamReader(self.outputs["output_stream_name"]).read({}).checkpoint

    def run_function(self) -> Any:
        with self.function_log.open("a") as log:
            return run_until_idle(
                self.outputs["function_name"], idle_seconds=1.5, timeout=300, log_stream=log
            )


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, lambda_zip: Path) -> Iterator[Deployed]:
    saved = dict(os.environ)
    local_dir = tmp_path_factory.mktemp("e2e")
    os.environ.update(
        MUSHROOM_LOCAL_DIR=str(local_dir),
        MUSHROOM_REPORTS_DIR=str(local_dir / "reports"),
        LOCAL_LAMBDA_STATE_DIR=str(local_dir / "lambda-runtime"),
        # The monitoring tests here cut windows at injected times and put hostile verdicts on
        # the stream directly: the stream path (the archive's has test_archive_flow.py).
        MONITORING_SOURCE="streams",
    )
    try:
        start_emulator("moto", local_dir=local_dir)
        os.environ.update(read_stack_env(local_dir / "stack.env"))
        # A copy of its own: a later build in build/ replaces the zip the deploy remembers.
        zip_path = Path(shutil.copy(lambda_zip, local_dir / lambda_zip.name))

        from config.settings import Settings
        from training.pipeline import run_training

        # A fresh registry: the first model becomes champion. Training runs before the first
        # apply (its S3 export is skipped: no bucket yet); the rollout after the apply uploads
        # the bundle and moves the alias to a version serving it.
        result = run_training(Settings.from_env(), reason="integration test")
        assert result.promoted, result.gate_reason

        outputs, rolled = deploy(
            {"lambda_zip_path": str(zip_path)}, target="moto", local_dir=local_dir, capture=True
        )
        os.environ.update(read_stack_env(local_dir / "stack.env"))
        assert rolled is not None and rolled.changed
        assert rolled.served.model_version == result.model_version
        assert rolled.served.run_id == result.run_id
        yield Deployed(local_dir, outputs, local_dir / "function.log")
    finally:
        stop_emulator(local_dir)
        os.environ.clear()
        os.environ.update(saved)


def test_every_record_yields_exactly_one_correct_verdict(deployed: Deployed) -> None:
    sample = held_out_sample(N_RECORDS, seed=3)
    records = producer.observations(sample, "e2e")
    malformed = producer.malformed_records("e2e")
    checkpoint = deployed.verdict_checkpoint()

    producer.put_raw(producer.to_raw(records) + malformed, deployed.outputs["input_stream_name"])
    stats = deployed.run_function()
    expected = len(records) + len(malformed)
    verdicts = read_verdicts(
        deployed.outputs["output_stream_name"], checkpoint, expected, timeout=60
    )

    assert stats.function_errors == 0 and stats.on_failure_records == 0
    assert len(verdicts) == expected
    assert len({v["input_sequence_number"] for v in verdicts}) == expected
    by_id: dict[str, int] = {}
    for verdict in verdicts:
        by_id[verdict["mushroom_id"]] = by_id.get(verdict["mushroom_id"], 0) + 1
    assert all(by_id.get(r["mushroom_id"]) == 1 for r in records)

    rejected = [v for v in verdicts if v["status"] == "rejected"]
    assert len(rejected) == len(malformed)
    assert all(v["verdict"] is None and v["errors"] for v in rejected)

    labels = dict(zip((r["mushroom_id"] for r in records), sample["label"]))
    summary = summarise(verdicts, labels, {m.partition_key for m in malformed})
    assert summary["false_edible"] == 0
    assert summary["covered_accuracy"] >= 0.999
    assert summary["unknown_rate"] <= 0.01
    assert summary["model_version"] == serving(connect(local_dir=deployed.local_dir)).model_version


def test_an_unchanged_make_deploy_publishes_no_new_version(
    deployed: Deployed, lambda_zip: Path
) -> None:
    """``make deploy``'s apply step as make runs it, on this module's deployed stack: its own
    process builds the zip again (byte for byte the one deployed), Terraform has nothing to
    change and the rollout finds the champion served: no new Lambda version."""
    from deployment.package_lambda import ZIP_PREFIX, sha256_file

    lam = deployed.client("lambda")
    name = deployed.outputs["function_name"]

    def versions() -> list[str]:
        return [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]

    before = versions()
    done = subprocess.run(
        [sys.executable, "-m", "deployment.deploy", "apply", "--target", "moto"],
        cwd=REPO,
        env={**os.environ, "MUSHROOM_LOCAL_DIR": str(deployed.local_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{ZIP_PREFIX}-{sha256_file(lambda_zip)[:12]}.zip" in done.stdout
    assert versions() == before


def test_invoke_returns_what_aws_lambda_invoke_returns(deployed: Deployed) -> None:
    event = json.loads(EVENT_FIXTURE.read_text())
    checkpoint = deployed.verdict_checkpoint()

    response = invoke(deployed.outputs["function_name"], event, state_dir=deployed.local_dir)

    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["Payload"] == {"batchItemFailures": []}
    verdicts = read_verdicts(
        deployed.outputs["output_stream_name"], checkpoint, len(event["Records"]), timeout=30
    )
    assert sorted(v["input_sequence_number"] for v in verdicts) == sorted(
        r["kinesis"]["sequenceNumber"] for r in event["Records"]
    )


def test_a_shadow_scores_every_record_and_changes_no_served_verdict(deployed: Deployed) -> None:
    """The same records before and after `make shadow`: every scored record of the second run
    carries exactly one shadow verdict, the shadow bundle's own, and every served field equals
    the first run's (apart from the record's sequence number and time)."""
    from deployment.shadow import start_shadow, stop_shadow
    from lambda_function.model import ModelBundle

    stack = connect(local_dir=deployed.local_dir)
    champion = serving(stack)
    # Model 2: the champion's trees with a lower threshold, so that some verdicts differ.
    shadow = ModelBundle.load(Settings.from_env().model_bundles_dir / str(champion.model_version))
    shadow.model_version, shadow.threshold = "2", 0.001
    shadow_dir = shadow.save(deployed.local_dir / "shadow-bundle" / "2")
    sample = held_out_sample(300, seed=21)
    records = producer.observations(sample, "shadow")
    malformed = producer.malformed_records("shadow")
    raw = producer.to_raw(records) + malformed
    stream, out = deployed.outputs["input_stream_name"], deployed.outputs["output_stream_name"]

    def run() -> list[dict[str, Any]]:
        checkpoint = deployed.verdict_checkpoint()
        producer.put_raw(raw, stream)
        stats = deployed.run_function()
        assert stats.function_errors == 0 and stats.on_failure_records == 0
        verdicts = read_verdicts(out, checkpoint, len(raw), timeout=60)
        assert len(verdicts) == len(raw)
        assert len({v["input_sequence_number"] for v in verdicts}) == len(raw)
        return verdicts

    plain = run()
    kwargs = {"target": stack.target, "lambda_client": stack.lambda_client}
    started = start_shadow(shadow_dir, "2", None, s3_client=stack.s3_client, **kwargs)
    try:
        assert started.served.model_version == champion.model_version
        shadowed = run()
    finally:
        stopped = stop_shadow(s3_client=stack.s3_client, **kwargs)
    assert stopped.served.shadow_model_version is None

    expected_p, expected_verdicts = ModelBundle.load(shadow_dir).score_rows(records)
    expected = dict(zip((r["mushroom_id"] for r in records), zip(expected_verdicts, expected_p)))
    differ = 0
    for verdict in shadowed:
        if verdict["status"] != "scored":
            assert "shadow" not in verdict
            continue
        field = verdict.pop("shadow")  # exactly one shadow verdict per scored record
        assert list(field) == ["model_version", "verdict", "p_poisonous"], field
        assert field["model_version"] == "2"
        wanted_verdict, wanted_p = expected[verdict["mushroom_id"]]
        assert (field["verdict"], field["p_poisonous"]) == (wanted_verdict, round(wanted_p, 4))
        differ += field["verdict"] != verdict["verdict"]
    assert sum(v["status"] == "scored" for v in shadowed) == len(records)
    assert differ > 0  # the shadow really is another model

    def served(verdicts: list[dict[str, Any]]) -> list[str]:
        """Each output without what differs between two runs of the same records."""
        per_run = ("input_sequence_number", "scored_at")
        return sorted(
            json.dumps({k: v for k, v in verdict.items() if k not in per_run})
            for verdict in verdicts
        )

    assert served(shadowed) == served(plain)


def _dlq_batch_sizes(deployed: Deployed, expected_records: int, timeout: float) -> list[dict]:
    """On-failure records in the DLQ until they cover ``expected_records`` records."""
    sqs = deployed.client("sqs")
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while sum(f["KinesisBatchInfo"]["batchSize"] for f in found) < expected_records:
        assert time.monotonic() < deadline, f"DLQ holds only {found}"
        reply = sqs.receive_message(
            QueueUrl=deployed.outputs["dlq_url"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        found.extend(json.loads(m["Body"]) for m in reply.get("Messages", []))
    return found


def test_failing_records_go_to_the_dlq_without_blocking_the_shard(deployed: Deployed) -> None:
    lambda_client = deployed.client("lambda")
    name = deployed.outputs["function_name"]
    environment = lambda_client.get_function_configuration(
        FunctionName=name, Qualifier=deployed.outputs["function_alias"]
    )["Environment"]
    broken = {**environment["Variables"], "OUTPUT_STREAM_NAME": "mushroom-verdicts-missing"}
    sample = held_out_sample(6, seed=5)
    stream = deployed.outputs["input_stream_name"]

    # A fault the function cannot work around: its output stream does not exist. The mapping
    # invokes the alias, so the broken settings are published and served like a rollout.
    alias = deployed.outputs["function_alias"]
    served = lambda_client.get_alias(FunctionName=name, Name=alias)["FunctionVersion"]
    lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": broken}
    )
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
    broken_version = lambda_client.publish_version(FunctionName=name)["Version"]
    lambda_client.update_alias(FunctionName=name, Name=alias, FunctionVersion=broken_version)
    try:
        producer.put_raw(producer.to_raw(producer.observations(sample.head(3), "dlq")), stream)
        stats = deployed.run_function()
    finally:
        lambda_client.update_alias(FunctionName=name, Name=alias, FunctionVersion=served)
        lambda_client.update_function_configuration(FunctionName=name, Environment=environment)

    assert stats.function_errors + stats.partial_failures > 0
    assert stats.on_failure_records >= 1
    failures = _dlq_batch_sizes(deployed, expected_records=3, timeout=30)
    assert {f["requestContext"]["condition"] for f in failures} == {"RetryAttemptsExhausted"}
    assert {f["KinesisBatchInfo"]["streamArn"] for f in failures} == {
        deployed.outputs["input_stream_arn"]
    }

    # The shard moved on: records put after the failure are scored normally.
    checkpoint = deployed.verdict_checkpoint()
    later = producer.observations(sample.tail(3), "after-dlq")
    producer.put_raw(producer.to_raw(later), stream)
    deployed.run_function()
    verdicts = read_verdicts(deployed.outputs["output_stream_name"], checkpoint, 3, timeout=30)
    assert sorted(v["mushroom_id"] for v in verdicts) == sorted(r["mushroom_id"] for r in later)
    assert all(v["status"] == "scored" for v in verdicts)


HOSTILE_OBSERVATIONS = [
    producer.RawRecord("bomb", b'{"a":' * 2000 + b"1" + b"}" * 2000),
    producer.RawRecord("bad-utf8", b'{"mushroom_id": "\xff\xfe", "cap_diameter": 1}'),
    producer.RawRecord("huge", b'{"mushroom_id": "huge", "cap_diameter": ' + b"9" * 5000 + b"}"),
]
HOSTILE_VERDICTS = [
    producer.RawRecord("not-json", b"{not json"),
    producer.RawRecord("p-string", json.dumps({"status": "scored", "p_poisonous": "x"}).encode()),
]


def _lines(*lines: bytes) -> bytes:
    return b"\n".join(lines)


def test_hostile_records_and_labels_never_stop_monitoring(deployed: Deployed) -> None:
    """Two cycles complete over hostile observations, verdicts and label objects; every
    unusable one is counted in CloudWatch, the valid label lines are used, and the bad label
    objects are marked read."""
    from monitoring.aws import S3JsonStore
    from monitoring.config import STATE_KEY
    from monitoring.cycle import run_cycle
    from orchestration.monitor import build_deps

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no alarm should fire in this test")

    deps = build_deps(retrain=never, deploy=never)
    deps.reference = None  # drift has its own tests; this one is about unusable input
    cloudwatch = deployed.client("cloudwatch")
    at0 = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    run_cycle(deps, at=at0)  # a baseline: whatever earlier tests left on the streams

    sample = held_out_sample(3, seed=11)
    records = producer.observations(sample, "hostile")
    streams = deployed.outputs
    producer.put_raw(producer.to_raw(records), streams["input_stream_name"])
    deployed.run_function()
    # After the scorer ran: what the monitor makes of them is the point here (the scorer's
    # one-verdict-per-record for hostile input has tests of its own).
    producer.put_raw(HOSTILE_OBSERVATIONS, streams["input_stream_name"])
    producer.put_raw(HOSTILE_VERDICTS, streams["output_stream_name"])
    bucket = os.environ["DATA_BUCKET"]
    s3 = deployed.client("s3")
    valid = producer.label_lines(sample, records).encode().splitlines()
    bad = _lines(
        valid[0],
        b'{"mushroom_id": "hostile-x", "label": "p", "cap_shape": "\xff"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"mushroom_id": "hostile-y", "label": "p", "species_id": ' + b"7" * 5000 + b"}",
        *valid[1:],
    )
    s3.put_object(Bucket=bucket, Key="labels/hostile-mixed.jsonl", Body=bad)
    s3.put_object(
        Bucket=bucket, Key="labels/hostile-utf16.jsonl", Body=valid[0].decode().encode("utf-16")
    )

    at1 = at0 + timedelta(minutes=2)
    first = run_cycle(deps, at=at1)
    assert first.ok, first.errors
    assert (first.metrics.records, first.metrics.scored) == (3, 3)
    assert (first.inputs.observations.count, first.inputs.verdicts.count) == (3, 2)
    assert first.inputs.labels.count == 4  # 3 lines of one object + the UTF-16 object
    assert first.labels_read == 3 and first.metrics.labelled == 3

    producer.put_raw(HOSTILE_VERDICTS[:1], streams["output_stream_name"])
    at2 = at1 + timedelta(minutes=2)
    second = run_cycle(deps, at=at2)
    assert second.ok, second.errors
    assert second.inputs.verdicts.count == 1 and second.inputs.labels.count == 0

    def published(metric: str, at: datetime) -> list[float]:
        points = cloudwatch.get_metric_statistics(
            Namespace="MushroomClassifier",
            MetricName=metric,
            Dimensions=[],
            StartTime=at,
            EndTime=at + timedelta(seconds=60),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        return [p["Maximum"] for p in points]

    assert published("InvalidObservations", at1) == [3.0]
    assert published("InvalidVerdicts", at1) == [2.0] and published("InvalidVerdicts", at2) == [1.0]
    assert published("InvalidLabels", at1) == [4.0] and published("InvalidLabels", at2) == [0.0]
    assert published("CheckpointGaps", at2) == [0.0]
    state, _version = S3JsonStore(bucket, STATE_KEY).load()
    assert {"labels/hostile-mixed.jsonl", "labels/hostile-utf16.jsonl"} <= set(state["label_keys"])


def test_make_invoke_then_make_monitor_publishes_no_rate_and_does_not_retrain(
    deployed: Deployed, tmp_path: Path
) -> None:
    """`make invoke` (the fixture's 3 records) then `make monitor` on a stack with nothing
    else new: the verdicts are printed, the window is far below the minimum of records, so no
    rate is published, no alarm fires and nothing is retrained."""
    from monitoring.cycle import run_cycle
    from orchestration.monitor import build_deps

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("3 records must not retrain or deploy anything")

    deps = build_deps(retrain=never, deploy=never)
    at0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=30)
    run_cycle(deps, at=at0)  # a baseline: whatever earlier tests left on the streams

    # The fixture event with sequence numbers of its own (an earlier test invoked it as is,
    # and the monitor drops verdicts it has already counted).
    event = json.loads(EVENT_FIXTURE.read_text())
    for index, record in enumerate(event["Records"]):
        record["kinesis"]["sequenceNumber"] = f"{time.time_ns()}{index:03d}"
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))
    printed = subprocess.run(
        [sys.executable, "-m", "scripts.invoke", "--event", str(event_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert printed.returncode == 0, printed.stderr
    assert "3 verdicts on" in printed.stdout
    assert len([line for line in printed.stdout.splitlines() if " -> " in line]) == 3

    at1 = at0 + timedelta(minutes=20)  # the baseline's datapoints are out of the alarms' range
    result = run_cycle(deps, at=at1)
    assert result.ok, result.errors
    assert result.metrics.records == 3
    assert not result.response.retrained and not result.response.actions
    assert all(a.state != "ALARM" for a in result.alarms), result.alarms
    assert any("3 records < minimum 100" in n for n in result.timeline_entry["not_published"])
    cloudwatch = deployed.client("cloudwatch")

    def published(metric: str) -> list[float]:
        points = cloudwatch.get_metric_statistics(
            Namespace="MushroomClassifier",
            MetricName=metric,
            Dimensions=[],
            StartTime=at1,
            EndTime=at1 + timedelta(seconds=60),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        return [p["Maximum"] for p in points]

    assert published("Records") == [3.0]
    assert published("UnknownRate") == [] and published("RejectedRate") == []


def test_the_compiled_predictor_serves_and_equals_lightgbm_on_the_whole_dataset(
    deployed: Deployed,
) -> None:
    """The champion that make train exported, on every row of the dataset (~61,000): the
    compiled predictor gives LightGBM's probabilities and verdicts, and the native misread
    check the Python reference's; the function serves it."""
    from lambda_function.model import ModelBundle, verdict_strings
    from training.data import load_dataset
    from training.features import encode_frame

    settings = Settings.from_env()
    champion = settings.model_bundles_dir / "champion"
    compiled = ModelBundle.load(champion)
    lightgbm = ModelBundle.load(champion, predictor="lightgbm")
    assert (compiled.predictor.kind, lightgbm.predictor.kind) == ("compiled", "lightgbm")
    matrix = encode_frame(load_dataset(settings), compiled.encoder)
    assert matrix.shape[0] > 60_000 and np.isnan(matrix).any()  # missing values included
    p_compiled, codes_compiled = compiled.score_codes(matrix)
    p_lightgbm, codes_lightgbm = lightgbm.score_codes(matrix)
    assert np.array_equal(codes_compiled, codes_lightgbm)
    assert float(np.max(np.abs(p_compiled - p_lightgbm))) <= 1e-9

    # The misread check: native on every row; the Python reference (a few ms a row) on every
    # row the native check changed and on 3,000 others drawn at random.
    _, robust = compiled.score_robust(matrix)
    changed = np.flatnonzero(robust.codes != codes_compiled)
    others = np.random.default_rng(7).choice(matrix.shape[0], 3_000, replace=False)
    rows = np.union1d(changed, others)
    assert changed.size > 0  # the check made some edible rows unknown: they are compared
    _, reference = lightgbm.score(matrix[rows])
    assert verdict_strings(robust.codes[rows]) == reference

    # The deployed zip (no LightGBM) loaded the compiled predictor at its cold start.
    log = deployed.function_log.read_text()
    assert "model bundle loaded: scoring with the compiled predictor" in log
    assert "scoring with the lightgbm predictor" not in log


def _archived(deployed: Deployed, prefix: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Keys under `prefix` of the data bucket, and every JSON line of their gzip bodies."""
    s3, bucket = deployed.client("s3"), deployed.outputs["data_bucket"]
    keys, lines = [], []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            keys.append(item["Key"])
            body = gzip.decompress(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            for line in body.splitlines():
                try:
                    lines.append(json.loads(line))
                except (ValueError, RecursionError):  # 100,000 nested brackets: recursion
                    continue  # hostile records of other tests: archived as they came
    return keys, lines


def test_every_verdict_of_a_run_lands_in_the_archive(deployed: Deployed) -> None:
    """Stream -> local Firehose pump (the Terraform-created delivery streams) -> S3 archive."""
    sample = held_out_sample(300, seed=17)
    records = producer.observations(sample, "archive")
    deployed.run_function()  # what earlier tests left unscored (the hostile records) first
    checkpoint = deployed.verdict_checkpoint()
    put = producer.put_raw(producer.to_raw(records), deployed.outputs["input_stream_name"])
    deployed.run_function()
    verdicts = read_verdicts(deployed.outputs["output_stream_name"], checkpoint, put, timeout=60)
    assert len(verdicts) == put == len(records)

    pump = make_pump(deployed.local_dir / "firehose-pump")
    pump.run(until_idle=1.0, max_seconds=120)  # then the flush on stop
    assert pump.health()["healthy"], pump.health()
    assert sorted(pump.streams) == [
        "mushroom-observations-archive",
        "mushroom-verdicts-archive",
    ]

    keys, archived = _archived(deployed, deployed.outputs["archive_verdicts_prefix"])
    ours = {
        v["input_sequence_number"]
        for v in archived
        if isinstance(v, dict) and str(v.get("mushroom_id")).startswith("archive-")
    }
    assert len(ours) == put  # every verdict, counted once (distinct input sequence numbers)
    assert ours == {v["input_sequence_number"] for v in verdicts}
    name = re.compile(
        r"^archive/verdicts/dt=\d{4}-\d\d-\d\d/hour=\d\d/"
        r"mushroom-verdicts-archive-1-\d{4}(-\d\d){5}-[0-9a-f-]{36}\.gz$"
    )
    assert keys and all(name.match(key) for key in keys), keys

    _, observations = _archived(deployed, deployed.outputs["archive_observations_prefix"])
    ids = {
        o.get("mushroom_id")
        for o in observations
        if isinstance(o, dict) and str(o.get("mushroom_id")).startswith("archive-")
    }
    assert ids == {r["mushroom_id"] for r in records}


def test_the_background_service_scores_what_the_aws_cli_puts(
    deployed: Deployed, tmp_path: Path
) -> None:
    """`make up`'s background service on this stack: a record put with the AWS CLI gets its
    verdict with no other command, and both reach the archive through the service's pump;
    `aws lambda invoke` on the alias returns the scorer's reply; stopping the service leaves
    no process. Last in the module: the service holds the
    checkpoints the tests above poll themselves."""
    from emulation.services import (
        function_counters,
        poller_health,
        service_status,
        start_services,
        stop_services,
    )

    def services_status(local_dir: Path) -> list[str]:
        status = service_status(local_dir)
        return status.lines() if status else ["no service"]

    from monitoring.aws import KinesisStreamReader

    aws = str(Path(sys.executable).with_name("aws"))
    env = {**os.environ}

    def cli(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [aws, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    name = deployed.outputs["function_name"]
    service = start_services(deployed.local_dir, env)
    try:
        assert service.healthy, service.lines()
        checkpoint = deployed.verdict_checkpoint()
        (record,) = producer.observations(held_out_sample(1, seed=21), "cli")
        put = cli(
            "kinesis", "put-record", "--stream-name", deployed.outputs["input_stream_name"],
            "--partition-key", record["mushroom_id"], "--data", json.dumps(record),
        )  # fmt: skip
        # The service also scores what earlier tests put and left unscored (the hostile
        # records): only this record's verdicts are counted.
        mine: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not mine and time.monotonic() < deadline:
            read = KinesisStreamReader(deployed.outputs["output_stream_name"]).read(checkpoint)
            checkpoint = read.checkpoint
            mine += [
                v
                for v in map(json.loads, read.records)
                if v["mushroom_id"] == record["mushroom_id"]
            ]
            time.sleep(0.2)
        (verdict,) = mine
        assert verdict["input_sequence_number"] == put["SequenceNumber"]
        assert verdict["status"] == "scored" and verdict["verdict"] in {"edible", "poisonous"}
        deadline = time.monotonic() + 10  # the health file is rewritten every second
        while (counters := function_counters(name, deployed.local_dir) or {}).get(
            "records_read", 0
        ) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert counters["records_read"] >= 1 and counters["function_errors"] == 0

        # The service's Firehose pump archives the record's verdict and the record itself with
        # no other command (its buffer interval is 10 s locally; polled, not slept).
        def archived(prefix: str) -> bool:
            _, lines = _archived(deployed, deployed.outputs[prefix])
            return any(
                isinstance(line, dict)
                and line.get("mushroom_id") == record["mushroom_id"]
                and line.get("input_sequence_number", put["SequenceNumber"])
                == put["SequenceNumber"]
                for line in lines
            )

        def delivered() -> int:  # the health file is rewritten every second: it may lag S3
            pump = poller_health("firehose", deployed.local_dir) or {}
            return int(pump.get("records_delivered", 0))

        deadline = time.monotonic() + 90
        while not (
            archived("archive_verdicts_prefix")
            and archived("archive_observations_prefix")
            and delivered() >= 2
        ):
            assert time.monotonic() < deadline, services_status(deployed.local_dir)
            time.sleep(0.5)
        pump = poller_health("firehose", deployed.local_dir)
        assert pump is not None and pump["healthy"], pump

        out = tmp_path / "out.json"
        alias = deployed.outputs["function_alias"]
        response = cli(
            "lambda", "invoke", "--function-name", name, "--qualifier", alias,
            "--payload", f"fileb://{EVENT_FIXTURE}", str(out),
        )  # fmt: skip
        served = serving(connect(local_dir=deployed.local_dir))
        assert response["StatusCode"] == 200 and "FunctionError" not in response
        assert response["ExecutedVersion"] == served.function_version
        assert json.loads(out.read_text()) == {"batchItemFailures": []}
    finally:
        stop_services(deployed.local_dir)
    assert function_counters(name, deployed.local_dir) is None
    with pytest.raises(ProcessLookupError):
        os.kill(service.pid, 0)
