"""The Lambda handler: Powertools batch processing, partial batch responses, metrics, imports."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

from config.settings import REPO_ROOT
from lambda_function import handler
from lambda_function.bundle_store import load_bundle
from lambda_function.service import ScoringService
from lambda_function.writer import InMemoryWriter, KinesisOutputWriter
from tests.fakes.scorer import (
    FakeKinesisClient,
    FakeLambdaContext,
    kinesis_event,
    load_event,
    valid_record,
)

ROOT = REPO_ROOT


@pytest.fixture
def service(tiny_bundle, monkeypatch):
    """The handler's container service, replaced by one over the tiny bundle and a fake."""
    service = ScoringService(load_bundle(str(tiny_bundle)), InMemoryWriter())
    monkeypatch.setattr(handler, "get_service", lambda: service)
    return service


def emf_lines(captured: str) -> list[dict]:
    lines = [json.loads(line) for line in captured.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def test_mixed_event_scores_and_rejects_without_failing(service, capsys):
    event = load_event("kinesis_mixed.json")
    response = handler.lambda_handler(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    written = [json.loads(data) for _, _, data in service.writer.records]
    assert [o["input_sequence_number"] for o in written] == [
        r["kinesis"]["sequenceNumber"] for r in event["Records"]
    ]
    (emf,) = emf_lines(capsys.readouterr().out)
    assert emf["RecordsScored"] == [2.0] or emf["RecordsScored"] == 2.0
    assert emf["RecordsRejected"] in (5.0, [5.0])
    assert emf["ModelVersion"] == "1"
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"RecordsScored", "RecordsRejected", "UnknownVerdicts", "BatchLatencyMs"} <= names
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MushroomScorer"


def _log_lines(captured: str) -> list[dict]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


@pytest.fixture
def logs():
    """What the function's Logger writes (its handler holds the stdout of import time)."""
    stream = io.StringIO()
    previous = handler.logger.registered_handler.setStream(stream)
    yield stream
    handler.logger.registered_handler.setStream(previous)


def test_a_clean_batch_writes_one_line_the_emf_metrics_with_its_fields(service, capsys, logs):
    payloads = [json.dumps(valid_record(i)).encode() for i in range(5)]
    context = FakeLambdaContext()
    assert handler.lambda_handler(kinesis_event(payloads), context) == {"batchItemFailures": []}

    assert _log_lines(logs.getvalue()) == []  # no second line repeating what the metrics say
    (emf,) = _log_lines(capsys.readouterr().out)
    assert "_aws" in emf and emf["RecordsScored"] in (5.0, [5.0])
    assert emf["records"] == 5 and emf["request_id"] == context.aws_request_id


def test_a_batch_with_rejections_also_logs_its_counts(service, logs):
    payloads = [json.dumps(valid_record(1)).encode(), b"not json"]
    handler.lambda_handler(kinesis_event(payloads), FakeLambdaContext())

    (summary,) = _log_lines(logs.getvalue())
    assert summary["message"].startswith("batch scored with rejected records")
    assert (summary["records"], summary["scored"], summary["rejected"]) == (2, 1, 1)


def test_invalid_utf8_in_a_string_is_rejected_without_failing_the_batch(service):
    bad = b'{"mushroom_id":"\xff\xfe","cap_diameter":5,"stem_height":1,"stem_width":1}'
    event = kinesis_event([json.dumps(valid_record(0)).encode(), bad])

    response = handler.lambda_handler(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    scored, rejected = [json.loads(data) for _, _, data in service.writer.records]
    assert scored["status"] == "scored"
    assert rejected["status"] == "rejected" and rejected["errors"][0]["field"] == "$"
    assert "not valid UTF-8" in rejected["errors"][0]["message"]


def test_unwritable_outputs_become_batch_item_failures(tiny_bundle, monkeypatch):
    # Position 1 fails on every attempt; everything else is written on the first one.
    client = FakeKinesisClient(script=[{1}, {0}, {0}])
    writer = KinesisOutputWriter(client, "mushroom-verdicts", max_attempts=3, sleep=lambda _: None)
    service = ScoringService(load_bundle(str(tiny_bundle)), writer)
    monkeypatch.setattr(handler, "get_service", lambda: service)
    event = load_event("kinesis_valid.json")

    response = handler.lambda_handler(event, FakeLambdaContext())

    failed = event["Records"][1]["kinesis"]["sequenceNumber"]
    assert response == {"batchItemFailures": [{"itemIdentifier": failed}]}
    assert len(client.written) == 2


def test_every_output_failing_is_reported_not_raised(tiny_bundle, monkeypatch):
    client = FakeKinesisClient(script=["all", "all"])
    writer = KinesisOutputWriter(client, "mushroom-verdicts", max_attempts=2, sleep=lambda _: None)
    monkeypatch.setattr(
        handler, "get_service", lambda: ScoringService(load_bundle(str(tiny_bundle)), writer)
    )
    event = load_event("kinesis_valid.json")
    response = handler.lambda_handler(event, FakeLambdaContext())
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        r["kinesis"]["sequenceNumber"] for r in event["Records"]
    ]


def test_missing_settings_fail_with_a_clear_message(monkeypatch):
    monkeypatch.delenv("MODEL_BUNDLE_URI", raising=False)
    handler.get_service.cache_clear()
    with pytest.raises(ValueError, match="MODEL_BUNDLE_URI is not set"):
        handler.lambda_handler(load_event("kinesis_valid.json"), FakeLambdaContext())
    handler.get_service.cache_clear()


def _logged_records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("environ", "exception_name", "message"),
    [
        ({}, "SettingsError", "MODEL_BUNDLE_URI is not set"),
        ({"MODEL_BUNDLE_URI": "/nonexistent/bundle"}, "BundleError", "model bundle not found"),
    ],
)
def test_a_cold_start_failure_is_logged_as_structured_json_and_raised(
    monkeypatch, environ, exception_name, message
):
    stream = io.StringIO()
    monkeypatch.setattr(handler.logger.registered_handler, "stream", stream)
    monkeypatch.delenv("MODEL_BUNDLE_URI", raising=False)
    monkeypatch.setenv("OUTPUT_STREAM_NAME", "mushroom-verdicts")
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    handler.get_service.cache_clear()
    event = load_event("kinesis_valid.json")
    try:
        with pytest.raises(Exception, match=message):
            handler.lambda_handler(event, FakeLambdaContext())
    finally:
        handler.get_service.cache_clear()

    (record,) = [r for r in _logged_records(stream) if r["level"] == "ERROR"]
    assert record["exception_name"] == exception_name
    assert message in record["exception"] and "Traceback" in record["exception"]
    assert record["function_name"] == "mushroom-scorer"  # the Lambda context is attached
    assert record["records"] == len(event["Records"])
    assert "retry" in record["message"]


# A cold start in a fresh interpreter, with pandas, sklearn and mlflow unimportable (as in the
# Lambda package), through the real get_service() (settings from the environment, bundle from a
# directory, a real boto3 Kinesis client whose PutRecords is answered by a botocore hook).
COLD_START = textwrap.dedent("""
    import importlib.abc, json, sys

    class Blocker(importlib.abc.MetaPathFinder):
        BLOCKED = {"pandas", "sklearn", "mlflow", *sys.argv[1:]}
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Blocker())

    from botocore.awsrequest import AWSResponse
    from lambda_function import handler
    from tests.fakes.scorer import FakeLambdaContext, load_event

    class Raw:
        def __init__(self, body):
            self.body = body
        def stream(self, **_):
            yield self.body

    def answer(request, **_):
        n = len(json.loads(request.body)["Records"])
        body = json.dumps({"FailedRecordCount": 0, "Records": [
            {"SequenceNumber": str(i), "ShardId": "shardId-000000000000"} for i in range(n)
        ]}).encode()
        return AWSResponse(request.url, 200, {}, Raw(body))

    service = handler.get_service()
    service.writer.client.meta.events.register("before-send.kinesis.PutRecords", answer)
    response = handler.lambda_handler(load_event("kinesis_mixed.json"), FakeLambdaContext())
    leaked = sorted(m for m in Blocker.BLOCKED if m in sys.modules)
    print("RESULT " + json.dumps({"response": response, "leaked": leaked}))
    """)


def _cold_start(bundle, *blocked: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MODEL_BUNDLE_URI": str(bundle),
        "OUTPUT_STREAM_NAME": "mushroom-verdicts",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(
        [sys.executable, "-c", COLD_START, *blocked],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _loaded_log(stdout: str) -> dict:
    (record,) = [
        json.loads(line)
        for line in stdout.splitlines()
        if line.startswith("{") and "model bundle loaded" in line
    ]
    return record


def test_cold_start_imports_neither_pandas_nor_mlflow(tiny_bundle):
    result = _cold_start(tiny_bundle)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    outcome = json.loads(line[len("RESULT ") :])
    assert outcome == {"response": {"batchItemFailures": []}, "leaked": []}


def test_a_compiled_bundle_is_served_without_lightgbm_or_scipy(tiny_compiled_bundle):
    """What the compiled-flavour package does: no LightGBM, no SciPy, one log line says so."""
    result = _cold_start(tiny_compiled_bundle, "lightgbm", "scipy")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    assert json.loads(line[len("RESULT ") :]) == {
        "response": {"batchItemFailures": []},
        "leaked": [],
    }
    record = _loaded_log(result.stdout)
    assert record["message"] == "model bundle loaded: scoring with the compiled predictor"
    assert record["predictor"] == "compiled" and record.get("predictor_fallback_reason") is None
    assert record["scorer"] == "native" and record.get("scorer_unavailable_reason") is None


def test_without_a_compiled_predictor_and_without_lightgbm_the_cold_start_fails_clearly(
    tiny_bundle,
):
    result = _cold_start(tiny_bundle, "lightgbm")
    assert result.returncode != 0
    assert "LightGBM is not installed" in result.stderr
    assert "no usable compiled predictor for" in result.stderr


def test_the_log_says_lightgbm_serves_a_bundle_without_a_compiled_predictor(tiny_bundle):
    result = _cold_start(tiny_bundle)
    assert result.returncode == 0, result.stderr
    assert _loaded_log(result.stdout)["predictor"] == "lightgbm"


def test_the_function_runs_without_importing_boto3(tiny_compiled_bundle):
    """Its clients are botocore's (``lambda_function.aws``): boto3 and s3transfer, half of the
    handler's import time, are never imported (the runtime has them; the function needs neither)."""
    result = _cold_start(tiny_compiled_bundle, "lightgbm", "scipy", "boto3", "s3transfer")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    assert json.loads(line[len("RESULT ") :])["leaked"] == []


def test_aws_clients_read_region_and_endpoint_from_the_environment(monkeypatch):
    from lambda_function import aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    aws._session.cache_clear()
    try:
        client = aws.client("kinesis")
    finally:
        aws._session.cache_clear()
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "http://localhost:4566"
    assert client.meta.service_model.service_name == "kinesis"
