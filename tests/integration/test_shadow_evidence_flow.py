"""A shadow's paired evidence on the emulator: archived verdicts carrying the shadow field and
late labels in moto server's S3, monitoring cycles reading them with DuckDB over S3 (httpfs),
the figures published to moto's CloudWatch with the ModelRole dimension, and the automatic
decision: a better shadow promoted, a worse one discarded (the shadow port is a fake here;
``tests/unit/orchestration/test_shadow_commands.py`` has the cycle's decisions drive the
deployment's own commands on a moto Lambda alias and MLflow registry)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from config.settings import ShadowRules
from monitoring.aws import CloudWatch, S3Objects
from monitoring.cycle import run_cycle
from monitoring.duckdb_engine import DuckDBEngine, S3Location
from tests.fakes.monitoring import archive_deps, archive_shadowed, config, put_labels

pytestmark = pytest.mark.integration
BUCKET, REGION = "mushroom-local-data", "us-east-1"


class Shadow:
    """The deployment's shadow commands as a fake: which version shadows, and what was done."""

    def __init__(self, version: str | None) -> None:
        self.version, self.calls = version, []

    def current(self) -> str | None:
        return self.version

    def start(self, model_version: str) -> None:
        self.calls.append(("start", model_version))
        self.version = model_version

    def promote(self) -> None:
        self.calls.append(("promote", self.version))
        self.version = None

    def stop(self) -> None:
        self.calls.append(("stop", self.version))
        self.version = None


def role_points(cloudwatch, metric, role, since):
    return [
        p["Average"]
        for p in cloudwatch.get_metric_statistics(
            Namespace="MushroomClassifier",
            MetricName=metric,
            Dimensions=[{"Name": "ModelRole", "Value": role}],
            StartTime=since - timedelta(hours=1),
            EndTime=since + timedelta(hours=1),
            Period=3600,
            Statistics=["Average"],
        )["Datapoints"]
    ]


def test_paired_evidence_promotes_a_better_shadow_and_discards_a_worse_one(emulator, tmp_path):
    s3, cloudwatch = boto3.client("s3"), boto3.client("cloudwatch")
    s3.create_bucket(Bucket=BUCKET)
    objects = S3Objects(BUCKET)
    engine = DuckDBEngine.over_s3(S3Location(BUCKET, REGION, emulator, "test", "test"))
    shadow = Shadow("2")  # `make shadow MODEL_VERSION=2` ran before
    tags, sent = [], []
    deps = archive_deps(
        tmp_path,
        objects,
        engine,
        config=replace(
            config(tmp_path, alarm_names=()), shadow=ShadowRules(min_labelled=20, min_poisonous=5)
        ),
        cloudwatch=CloudWatch(),
        notify=lambda subject, message: sent.append(subject) or "msg",
        shadow=shadow,
        tag_version=lambda version, t: tags.append((version, t["shadow.state"])),
    )
    now = datetime.now(timezone.utc)
    # The shadow covers new species the champion calls unknown (safe, but no answer).
    better = [("e", "unknown", "edible")] * 20 + [("p", "unknown", "poisonous")] * 10
    archive_shadowed(objects, now - timedelta(seconds=30), better, "2", "obs")

    waiting = run_cycle(deps, at=now)
    assert waiting.timeline_entry["shadow"]["decision"]["action"] == "wait"
    assert role_points(cloudwatch, "DisagreementRate", "shadow", now) == [1.0]
    assert shadow.calls == []

    put_labels(objects, now + timedelta(seconds=1), better, "obs")
    promoted = run_cycle(deps, at=now + timedelta(seconds=2))
    assert promoted.ok, promoted.errors
    assert shadow.calls == [("promote", "2")]
    assert role_points(cloudwatch, "DecisionAccuracy", "shadow", now) == [1.0]
    assert role_points(cloudwatch, "DecisionAccuracy", "champion", now) == [10 / 30]
    assert role_points(cloudwatch, "Coverage", "champion", now) == [0.0]

    # A worse shadow: it makes edible mushrooms unknown where the champion was right.
    shadow.version = "3"
    worse = (
        [("e", "edible", "unknown")] * 10
        + [("e", "edible", "edible")] * 10
        + [("p", "poisonous", "poisonous")] * 10
    )
    archive_shadowed(objects, now + timedelta(seconds=3), worse, "3", "late")
    put_labels(objects, now + timedelta(seconds=4), worse, "late")
    discarded = run_cycle(deps, at=now + timedelta(seconds=5))
    assert discarded.ok, discarded.errors
    assert shadow.calls[-1] == ("stop", "3")
    assert discarded.timeline_entry["shadow"]["decision"]["p_worse"] == 0.5**10
    assert tags == [("2", "promoted"), ("3", "discarded")]
    assert sent == ["Shadow v2 promoted", "Shadow v3 discarded"]
    markers = cloudwatch.list_metrics(Namespace="MushroomClassifier")["Metrics"]
    assert {"ShadowPromoted", "ShadowDiscarded"} <= {m["MetricName"] for m in markers}
