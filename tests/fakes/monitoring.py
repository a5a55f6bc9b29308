"""In-memory fakes of the monitoring adapters (same methods as monitoring.aws), for tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from config.settings import MonitoringConfig
from lambda_function.schema import FEATURE_NAMES, ID_FIELD
from monitoring import alarms as alarm_eval
from monitoring.archive_window import ArchiveReader
from monitoring.duckdb_engine import DuckDBEngine
from monitoring.inputs import CheckpointGap, StreamRead
from monitoring.ports import CycleDeps
from monitoring.state import StateConflict
from tests.examples import example_observation

UNKNOWN_ALARM = "mushroom-unknown-rate-high"
FALSE_EDIBLE_ALARM = "mushroom-false-edible-rate-high"

OBSERVATION = {k: v for k, v in example_observation().items() if k != ID_FIELD}
assert tuple(OBSERVATION) == FEATURE_NAMES


class FakeStream:
    """A one-shard stream; sequence numbers are positions."""

    def __init__(self, stream_name: str):
        self.stream_name = stream_name
        self.records: list[bytes] = []

    def put(self, items: Sequence[Mapping[str, Any]]) -> None:
        self.records.extend(json.dumps(item).encode() for item in items)

    def put_raw(self, data: Sequence[bytes]) -> None:
        self.records.extend(data)

    def read(self, checkpoint: Mapping[str, str], max_records: int = 100_000) -> StreamRead:
        start = int(checkpoint.get("shard-0", "-1")) + 1
        gaps = []
        if start > len(self.records):  # past the end (a recreated stream): restart at 0
            gaps.append(CheckpointGap(self.stream_name, "shard-0", str(start - 1), "past the end"))
            start = 0
        data = self.records[start : start + max_records]
        new = dict(checkpoint)
        if data:
            new["shard-0"] = str(start + len(data) - 1)
        behind = len(self.records) - start - len(data)
        return StreamRead(data, new, gaps, lag_ms=1000 * behind)  # 1 s per record behind


class FakeStore:
    """The state store with compare-and-swap on a version counter (like S3's ETag)."""

    location = "memory://checkpoints.json"

    def __init__(self) -> None:
        self.document: dict[str, Any] | None = None
        self.version = 0
        self.saves: list[dict[str, Any]] = []

    def load(self) -> tuple[dict[str, Any] | None, str | None]:
        if self.document is None:
            return None, None
        return json.loads(json.dumps(self.document)), str(self.version)

    def save(self, document: Mapping[str, Any], expected: str | None) -> str:
        current = str(self.version) if self.document is not None else None
        if expected != current:
            raise StateConflict(f"{self.location}: expected {expected}, found {current}")
        self.document = json.loads(json.dumps(document))
        self.saves.append(self.document)
        self.version += 1
        return str(self.version)

    def delete(self, expected: str) -> bool:
        if self.document is None or expected != str(self.version):
            return False
        self.document = None
        return True


class Killed(BaseException):
    """The process dying at this point (not an Exception: nothing in the cycle catches it)."""


class _KeyListing:
    """The object store's listing and label lines over ``objects`` (key -> bytes) and ``put``,
    shared by the in-memory and the folder store."""

    objects: Mapping[str, bytes]

    def list_keys(self, prefix: str, suffix: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix) and k.endswith(suffix))

    def list_keys_after(self, prefix: str, start_after: str, delimiter: str = "") -> list[str]:
        keys = [k for k in self.list_keys(prefix) if k > start_after]
        if delimiter:
            keys = [k for k in keys if delimiter not in k[len(prefix) :]]
        return keys

    def put_labels(self, key: str, lines: Sequence[Mapping[str, Any]]) -> None:
        self.put(key, "\n".join(json.dumps(line) for line in lines).encode(), "application/jsonl")


class FakeObjects(_KeyListing):
    bucket = "mushroom-local-data"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def read_bytes(self, key: str) -> bytes:
        return self.objects[key]

    def put(self, key: str, body: bytes, content_type: str) -> str:
        self.objects[key] = body
        return f"s3://{self.bucket}/{key}"


class FakeCloudWatch:
    """Stores datapoints; alarms as DescribeAlarms returns them (moto-like: never evaluated)."""

    def __init__(self, period: int = 60, unknown: float = 0.2, false_edible: float = 0.01):
        self.data: list[dict[str, Any]] = []
        self.alarms = {
            name: {
                "AlarmName": name,
                "Namespace": "MushroomClassifier",
                "MetricName": metric,
                "Statistic": "Maximum",
                "Period": period,
                "EvaluationPeriods": 1,
                "DatapointsToAlarm": 1,
                "Threshold": threshold,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
                "StateValue": "INSUFFICIENT_DATA",
                "StateReason": "Unchecked: Initial alarm creation",
            }
            for name, metric, threshold in (
                (UNKNOWN_ALARM, "UnknownRate", unknown),
                (FALSE_EDIBLE_ALARM, "FalseEdibleRate", false_edible),
            )
        }
        self.state_changes: list[tuple[str, str]] = []

    def put_metric_data(self, namespace: str, metric_data: Sequence[Mapping[str, Any]]) -> int:
        self.data.extend({**d, "Namespace": namespace} for d in metric_data)
        return len(metric_data)

    def describe_alarms(self, names: Sequence[str]) -> list[dict[str, Any]]:
        return [dict(self.alarms[n]) for n in names if n in self.alarms]

    def period_statistics(
        self, spec: alarm_eval.AlarmSpec, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        buckets: dict[datetime, float] = {}
        for d in self.data:
            if d["MetricName"] != spec.metric_name or d.get("Dimensions"):
                continue
            ts = d["Timestamp"].astimezone(timezone.utc)
            if not start <= ts < end:
                continue
            key = alarm_eval.period_start(ts, spec.period)
            buckets[key] = max(buckets.get(key, d["Value"]), d["Value"])
        return sorted(buckets.items())

    def set_alarm_state(self, name: str, state: str, reason: str, reason_data: str) -> None:
        json.loads(reason_data)
        self.alarms[name]["StateValue"] = state
        self.alarms[name]["StateReason"] = reason
        self.state_changes.append((name, state))

    def values(self, metric: str, with_dimension: bool = False) -> list[float]:
        return [
            d["Value"]
            for d in self.data
            if d["MetricName"] == metric and bool(d.get("Dimensions")) == with_dimension
        ]


@dataclass
class FakeTrainingResult:
    run_id: str
    model_version: str | None
    promoted: bool
    gate_reason: str


class FakeTrainer:
    def __init__(self, promoted: bool = True, version: str = "2", fail: bool = False):
        self.calls: list[dict[str, Any]] = []
        self.promoted, self.version, self.fail = promoted, version, fail

    def __call__(self, **kwargs: Any) -> FakeTrainingResult:
        self.calls.append(kwargs)
        if self.fail:
            raise RuntimeError("training data not reachable")
        reason = "better on held-out species" if self.promoted else "worse false-edible rate"
        return FakeTrainingResult("run-" + self.version, self.version, self.promoted, reason)


def config(tmp_path: Path, **overrides: Any) -> MonitoringConfig:
    values = dict(
        namespace="MushroomClassifier",
        alarm_names=(UNKNOWN_ALARM, FALSE_EDIBLE_ALARM),
        topic_arn="arn:aws:sns:us-east-1:123456789012:mushroom-alerts",
        topic_name="mushroom-alerts",
        alarm_evaluation="local",
        aws_target="moto",
        state_store="local",
        local_state_path=tmp_path / "state.json",
        reports_dir=tmp_path / "reports",
        reference_path=None,
        reference_sample=1000,
        read_observations=True,
        max_records=100_000,
        drift_min_rows=30,
        # Small enough for the tests' windows of 10-20 verdicts; the evidence rule has its own.
        min_records=10,
        min_labels=10,
    )
    values.update(overrides)
    return MonitoringConfig(**values)


def verdict(
    index: int,
    verdict: str | None,
    p: float | None = 0.5,
    version: str = "1",
    status: str = "scored",
    prefix: str = "obs",
) -> dict[str, Any]:
    return {
        "mushroom_id": f"{prefix}-{index:05d}",
        "status": status,
        "verdict": verdict,
        "p_poisonous": p,
        "model_name": "mushroom-classifier",
        "model_version": version,
        "input_sequence_number": f"{prefix}-seq-{index}",
        "scored_at": "2026-11-27T12:00:00.000Z",
        "errors": [] if status == "scored" else [{"field": "cap_diameter", "message": "bad"}],
    }


def label_line(index: int, label: str, prefix: str = "obs", species: int = 7) -> dict[str, Any]:
    return {
        "mushroom_id": f"{prefix}-{index:05d}",
        "label": label,
        "species_id": species,
        **OBSERVATION,
    }


class FolderObjects(_KeyListing):
    """An object store over a local folder (the DuckDB engine reads the same folder)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.bucket = str(self.root)

    @property
    def objects(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }

    def read_bytes(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def put(self, key: str, body: bytes, content_type: str) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return str(path)


def archive_deps(
    tmp_path: Path, objects: Any = None, engine: Any = None, **overrides: Any
) -> CycleDeps:
    """A cycle's dependencies over an archive: ``objects`` (by default a local folder,
    ``tmp_path/bucket``) read by ``engine`` (by default DuckDB over that folder); in-memory
    fakes for the rest (no retraining, no deploy); ``overrides`` replace any of them."""
    objects = FolderObjects(tmp_path / "bucket") if objects is None else objects
    engine = DuckDBEngine.local(objects.root) if engine is None else engine
    deps = CycleDeps(
        config=config(tmp_path),
        verdicts=FakeStream("unused"),
        state_store=FakeStore(),
        cloudwatch=FakeCloudWatch(),
        notify=lambda subject, message: "msg-1",
        retrain=FakeTrainer(),
        deploy=lambda version: None,
        objects=objects,
        archive=ArchiveReader(engine, objects),
    )
    return replace(deps, **overrides)


def archive_object(objects: Any, kind: str, arrived: datetime, name: str, lines: Sequence[Any]):
    """Write one archive object as Firehose does: gzip of each record's JSON and a newline
    (``bytes`` lines are written as they are: hostile input)."""
    import gzip

    from monitoring.archive import TABLES, partition_key

    body = b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )
    # Named as Firehose names objects: <stream>-<version>-YYYY-MM-DD-HH-MM-SS-<random>.gz
    stamp = f"{arrived.astimezone(timezone.utc):%Y-%m-%d-%H-%M-%S}"
    key = f"{TABLES[kind].prefix}{partition_key(arrived)}{name}-1-{stamp}-{uuid.uuid4()}.gz"
    objects.put(key, gzip.compress(body, compresslevel=1), "application/gzip")
    return key


def scored_at(at: datetime) -> str:
    from monitoring.archive import timestamp

    return timestamp(at)


def archive_shadowed(
    objects: Any, at: datetime, calls: Sequence[tuple[str, str, str]], version: str, prefix: str
) -> str:
    """Archived verdicts carrying a shadow: one per (label, champion verdict, shadow verdict)
    of ``calls``, scored a millisecond apart from ``at``, as Firehose writes them."""
    rows = []
    for i, (_, champion, shadow) in enumerate(calls):
        row = verdict(i, champion, p=0.2 if champion == "edible" else 0.9, prefix=prefix)
        row["scored_at"] = scored_at(at + timedelta(milliseconds=i))
        row["shadow"] = {"model_version": version, "verdict": shadow, "p_poisonous": 0.5}
        rows.append(row)
    return archive_object(objects, "verdicts", at, f"{prefix}-part", rows)


def put_labels(
    objects: Any, at: datetime, calls: Sequence[tuple[str, str, str]], prefix: str
) -> str:
    """The lab's label object for ``calls`` (producer/ writes the same lines)."""
    key = f"labels/received/{at:%Y-%m-%dT%H-%M-%S.%f}Z-{prefix}.jsonl"
    lines = [label_line(i, truth, prefix) for i, (truth, _, _) in enumerate(calls)]
    objects.put(key, "".join(json.dumps(line) + "\n" for line in lines).encode(), "text/plain")
    return key
