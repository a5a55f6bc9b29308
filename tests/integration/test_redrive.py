"""A broken rollout sends records to the DLQ; `make rollback` fixes it; `make redrive` replays
them: every record gets exactly one verdict (local Lambda runtime against a moto server)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from config.settings import REPO_ROOT
from deployment.rollout import BUNDLE_ENV, PACKAGE_ENV, Target, rollout
from emulation.lambda_runtime.runtime import run_until_idle
from lambda_function.model import ModelBundle
from tests.integration.lambda_stack import LAMBDA_TRUST

pytestmark = pytest.mark.integration

REGION = "us-east-1"
FUNCTION = "redrive-scorer"
MODELS = "redrive-models"
CODE = "redrive-code"
INPUT, OUTPUT, DLQ = "redrive-in", "redrive-out", "redrive-dlq"

# A scorer stand-in that loads its bundle as the real one does: bundle.json, then every file it
# lists, each checked by SHA-256 before use; a missing file fails the invocation (so the batch
# is retried, bisected, and sent to the DLQ).
HANDLER_SOURCE = """
import base64
import hashlib
import json
import os

import boto3

_s3 = boto3.client("s3")
_kinesis = boto3.client("kinesis")
_LOADED = {}


def _bundle():
    uri = os.environ["MODEL_BUNDLE_URI"]
    if uri not in _LOADED:
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        raw = _s3.get_object(Bucket=bucket, Key=prefix + "bundle.json")["Body"].read()
        metadata = json.loads(raw)
        for name, entry in metadata["files"].items():
            data = _s3.get_object(Bucket=bucket, Key=prefix + name)["Body"].read()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise RuntimeError(f"{name} is corrupt")
        _LOADED[uri] = uri.rstrip("/").rsplit("/", 1)[-1]
    return _LOADED[uri]


def handle(event, context):
    model_version = _bundle()
    entries = []
    for record in event["Records"]:
        body = json.loads(base64.b64decode(record["kinesis"]["data"]))
        verdict = {
            "mushroom_id": body["mushroom_id"],
            "input_sequence_number": record["kinesis"]["sequenceNumber"],
            "model_version": model_version,
        }
        entries.append({"Data": json.dumps(verdict).encode(), "PartitionKey": body["mushroom_id"]})
    _kinesis.put_records(StreamName=os.environ["OUTPUT_STREAM_NAME"], Records=entries)
    return {"batchItemFailures": []}
"""


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("scorer/__init__.py", "")
        archive.writestr("scorer/app.py", source)
    return buffer.getvalue()


def _bundle(source: Path, directory: Path, version: str) -> Path:
    bundle = ModelBundle.load(source)
    bundle.model_version = version
    bundle.metadata["mlflow_run_id"] = f"run-{version}"
    return bundle.save(directory)


def _read_stream(kinesis: Any, name: str) -> list[dict[str, Any]]:
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return kinesis.get_records(ShardIterator=iterator, Limit=10000)["Records"]


def _make(target: str, local_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``make <target>`` as a user runs it, against the stack file of ``local_dir``."""
    return subprocess.run(
        ["make", "--no-print-directory", target, f"STACK_ENV={local_dir / 'stack.env'}"],
        cwd=REPO_ROOT,
        env={**env, "MUSHROOM_LOCAL_DIR": str(local_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_broken_rollout_rollback_redrive_gives_every_record_one_verdict(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_bundle: Path
) -> None:
    credentials = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    for key, value in credentials.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    kinesis, sqs, s3, lam, iam = (
        boto3.client(name) for name in ("kinesis", "sqs", "s3", "lambda", "iam")
    )
    for name in (INPUT, OUTPUT):
        kinesis.create_stream(StreamName=name, ShardCount=1)
    input_arn = kinesis.describe_stream_summary(StreamName=INPUT)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    output_arn = kinesis.describe_stream_summary(StreamName=OUTPUT)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    queue_url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    for bucket in (MODELS, CODE):
        s3.create_bucket(Bucket=bucket)
    role = iam.create_role(
        RoleName="redrive-scorer", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "kinesis:PutRecords", "Resource": output_arn},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{MODELS}/*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{MODELS}"},
        ],
    }
    iam.put_role_policy(
        RoleName="redrive-scorer", PolicyName="fn", PolicyDocument=json.dumps(policy)
    )
    s3.put_object(Bucket=CODE, Key="scorer.zip", Body=_zip(HANDLER_SOURCE))
    target = Target(function_name=FUNCTION, models_bucket=MODELS)
    lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="scorer.app.handle",
        Code={"S3Bucket": CODE, "S3Key": "scorer.zip"},
        Timeout=30,
        MemorySize=256,
        Environment={
            "Variables": {
                "OUTPUT_STREAM_NAME": OUTPUT,
                BUNDLE_ENV: target.bundle_uri("1"),
                PACKAGE_ENV: "lightgbm",  # the stand-in serves any bundle
            }
        },
        Tags={"package_s3_uri": f"s3://{CODE}/scorer.zip"},
        Publish=True,
    )
    alias_arn = lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1")[
        "AliasArn"
    ]
    lam.create_event_source_mapping(
        FunctionName=alias_arn,
        EventSourceArn=input_arn,
        StartingPosition="TRIM_HORIZON",
        BatchSize=10,
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        DestinationConfig={"OnFailure": {"Destination": queue_arn}},
    )

    def roll_out(version: str) -> Any:
        bundle = _bundle(tiny_bundle, tmp_path / f"bundle-{version}", version)
        return rollout(bundle, version, None, target=target, lambda_client=lam, s3_client=s3)

    assert roll_out("1").copy.state == "uploaded"  # model 1's copy, which a rollback verifies
    assert roll_out("2").served.model_version == "2"
    # The served copy is damaged: the model file is gone, bundle.json is kept.
    s3.delete_object(Bucket=MODELS, Key="mushroom-classifier/2/model.txt")

    ids = [f"obs-{i:03d}" for i in range(30)]
    put = kinesis.put_records(
        StreamName=INPUT,
        Records=[{"Data": json.dumps({"mushroom_id": i}).encode(), "PartitionKey": i} for i in ids],
    )
    originals = {r["SequenceNumber"]: i for r, i in zip(put["Records"], ids)}
    state = tmp_path / "runtime"
    broken = run_until_idle(FUNCTION, idle_seconds=0.5, timeout=120, state_dir=state)
    assert broken.records_discarded == len(ids) and _read_stream(kinesis, OUTPUT) == []

    local = tmp_path / "local"
    local.mkdir()
    (local / "stack.env").write_text(
        "".join(f"export {k}={v}\n" for k, v in credentials.items())
        + f"export FUNCTION_NAME={FUNCTION}\nexport MODELS_BUCKET={MODELS}\n"
        + f"export DLQ_URL={queue_url}\nexport INPUT_STREAM_NAME={INPUT}\n"
        + f"export INPUT_STREAM_ARN={input_arn}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}

    back = _make("rollback", local, env)
    assert back.returncode == 0, back.stderr
    assert "rolled back from version 2 (model 2) to version 1 (model 1)" in back.stdout

    redriven = _make("redrive", local, env)
    assert redriven.returncode == 0, redriven.stdout + redriven.stderr
    assert f"redriven and deleted ({len(ids)} record(s) put back" in redriven.stdout
    again = _make("redrive", local, env)  # nothing left: a re-run puts nothing
    assert again.returncode == 0 and "0 DLQ message(s)" in again.stdout, again.stdout

    fixed = run_until_idle(FUNCTION, idle_seconds=0.5, timeout=120, state_dir=state)
    assert fixed.records_discarded == 0

    journal = [
        json.loads(line) for line in (local / "redrive-journal.jsonl").read_text().splitlines()
    ]
    original_of = {j["redriven_sequence_number"]: j["original_sequence_number"] for j in journal}
    assert sorted(original_of.values()) == sorted(originals)  # every record re-put once
    verdicts = {}  # deduplicated on input_sequence_number (delivery is at-least-once)
    for record in _read_stream(kinesis, OUTPUT):
        verdict = json.loads(record["Data"])
        verdicts[verdict["input_sequence_number"]] = verdict
    # Every verdict is of a redriven record, told by the journal, and names its original.
    assert set(verdicts) == set(original_of)
    assert sorted(originals[original_of[seq]] for seq in verdicts) == ids
    assert all(v["mushroom_id"] == originals[original_of[s]] for s, v in verdicts.items())
    assert {v["model_version"] for v in verdicts.values()} == {"1"}
    assert (
        sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
