"""The client side of the wire contracts, as a forager's app or a lab's batch job would be:
observations onto the input stream, verdicts read back, and later the lab's labels into S3 (the
contract in ``monitoring.labels``).

Shared by the demo, the drift scenario, the end-to-end benchmark and the integration tests, so
they all put records the same way: JSON per the input contract, partition key = mushroom id,
PutRecords through the scorer's own writer (chunks within Kinesis limits, retries of the
throttled entries only, an error when records still cannot be written: never a silent loss).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import boto3
import pandas as pd

from lambda_function import verdict_metrics as vm
from lambda_function.schema import FEATURE_NAMES, ID_FIELD, POISONOUS
from lambda_function.writer import KinesisOutputWriter, OutputBatch
from monitoring.aws import KinesisStreamReader
from monitoring.labels import LABEL_FIELD, RECEIVED_PREFIX, SPECIES_FIELD


class ProducerError(RuntimeError):
    """Records could not be put on the stream after retries."""


@dataclass(frozen=True)
class RawRecord:
    """A record as bytes on the wire (malformed ones included) and why it is there."""

    partition_key: str
    data: bytes
    note: str = ""


def observations(frame: pd.DataFrame, id_prefix: str) -> list[dict[str, Any]]:
    """Input-contract observations for the rows of a ``training.data.load_dataset`` frame.

    Ids are ``<id_prefix>-<row_id>``: unique per dataset row and traceable back to it.
    """
    rows = frame[list(FEATURE_NAMES)].astype(object)
    rows = rows.where(rows.notna(), None)
    ids = [f"{id_prefix}-{int(r)}" for r in frame["row_id"]]
    return [{ID_FIELD: i, **row} for i, row in zip(ids, rows.to_dict(orient="records"))]


def to_raw(records: Sequence[dict[str, Any]]) -> list[RawRecord]:
    """Encode observations as the JSON a producer sends."""
    return [RawRecord(str(r[ID_FIELD]), json.dumps(r).encode()) for r in records]


def malformed_records(id_prefix: str) -> list[RawRecord]:
    """Records a careless or hostile producer sends; each must come back ``rejected``."""
    good = {
        ID_FIELD: f"{id_prefix}-ok-shape",
        "cap_diameter": 5.0,
        "stem_height": 6.0,
        "stem_width": 8.0,
        "cap_shape": "x",
    }
    cases = [
        ("not-json", b"{this is not json", "malformed JSON"),
        ("not-object", b"[1, 2, 3]", "a JSON array, not an object"),
        ("bad-utf8", b"\xff\xfe\x00garbage", "bytes that are not UTF-8"),
        ("negative", json.dumps({**good, "cap_diameter": -3}).encode(), "negative diameter"),
        ("unknown-code", json.dumps({**good, "cap_shape": "zz"}).encode(), "unknown code"),
        ("string-number", json.dumps({**good, "stem_width": "wide"}).encode(), "string number"),
        ("no-id", json.dumps({k: v for k, v in good.items() if k != ID_FIELD}).encode(), "no id"),
    ]
    return [RawRecord(f"{id_prefix}-{key}", data, note) for key, data, note in cases]


def put_raw(records: Sequence[RawRecord], stream_name: str, client: Any | None = None) -> int:
    """Put records on ``stream_name``; returns how many were written, raises if any were not."""
    client = client or boto3.client("kinesis")
    writer = KinesisOutputWriter(client, stream_name, max_attempts=6, backoff_max_s=2.0)
    keys = [r.partition_key for r in records]
    batch = OutputBatch(sequence_numbers=keys, partition_keys=keys, data=[r.data for r in records])
    not_written = writer.write(batch)
    if not_written:
        raise ProducerError(
            f"{len(not_written)} of {len(records)} records could not be put on {stream_name} "
            f"after retries (first: {not_written[:3]})"
        )
    return len(records)


def label_lines(frame: pd.DataFrame, records: Sequence[dict[str, Any]]) -> str:
    """The lab's answers for ``records`` (rows of ``frame`` in the same order), as JSON Lines."""
    lines = [
        json.dumps({**record, LABEL_FIELD: label, SPECIES_FIELD: int(species)})
        for record, label, species in zip(records, frame["label"], frame["species_id"])
    ]
    return "\n".join(lines) + "\n"


def label_key(name: str, at: datetime | None = None) -> str:
    """``labels/received/<UTC time>-<name>.jsonl``: keys that sort by arrival, so monitoring
    lists only those after the last one it read."""
    at = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{RECEIVED_PREFIX}{at:%Y-%m-%dT%H-%M-%S.%fZ}-{name}.jsonl"


def write_labels(bucket: str, name: str, text: str, client: Any | None = None) -> str:
    """Store one batch of lab results under ``labels/received/``; returns its S3 URI."""
    client = client or boto3.client("s3")
    key = label_key(name)
    client.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="application/jsonl")
    return f"s3://{bucket}/{key}"


def read_verdicts(
    stream_name: str, checkpoint: dict[str, str], expected: int, timeout: float
) -> list[dict[str, Any]]:
    """Verdicts after ``checkpoint`` until ``expected`` arrived or ``timeout`` passed."""
    reader = KinesisStreamReader(stream_name)
    verdicts: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(verdicts) < expected and time.monotonic() < deadline:
        read = reader.read(checkpoint)
        checkpoint = read.checkpoint
        verdicts.extend(json.loads(d) for d in read.records)
        if len(verdicts) < expected:
            time.sleep(0.2)  # polling the emulator: short pause between empty reads
    return verdicts


def summarise(
    verdicts: Sequence[dict[str, Any]],
    labels: dict[str, str],
    malformed_ids: set[str],
) -> dict[str, Any]:
    """Counts, and the shared verdict metrics on the labelled scored verdicts of one run."""
    by_verdict = Counter(v["verdict"] or "rejected" for v in verdicts)
    scored = [v for v in verdicts if v["status"] == "scored" and v["mushroom_id"] in labels]
    table = vm.confusion(
        [labels[v["mushroom_id"]] == POISONOUS for v in scored], [v["verdict"] for v in scored]
    )
    rejected = [v for v in verdicts if v["status"] == "rejected"]
    misread = Counter(v["misread"]["field"] for v in verdicts if v.get("misread"))
    return {
        "outputs": len(verdicts),
        "by_verdict": dict(by_verdict),
        # unknown because one misread attribute could hide a poisonous mushroom, by attribute
        "misread_unknown": sum(misread.values()),
        "misread_fields": dict(misread.most_common()),
        "labelled": len(scored),
        **vm.all_metrics(table),
        "rejected": len(rejected),
        "malformed_put": len(malformed_ids),
        "rejections": [
            {"input": v["input_sequence_number"], "errors": v["errors"]} for v in rejected
        ],
        "model_version": (
            Counter(v["model_version"] for v in scored).most_common(1)[0][0] if scored else None
        ),
    }


def percent(value: float | None) -> str:
    """A rate for people: ``n/a`` when it had no denominator."""
    return "n/a" if value is None else f"{value:.2%}"


def print_summary(summary: dict[str, Any], records_put: int, seconds: float) -> None:
    print(f"    outputs read: {summary['outputs']} for {records_put} records put")
    print(f"    served model version: {summary['model_version']}")
    for verdict, count in sorted(summary["by_verdict"].items()):
        print(f"    {verdict:>10}: {count}")
    if summary.get("misread_unknown"):
        fields = ", ".join(f"{k} {v}" for k, v in summary["misread_fields"].items())
        print(
            f"    of the unknown, {summary['misread_unknown']} because one misread attribute "
            f"could hide a poisonous mushroom ({fields})"
        )
    print(f"    on {summary['labelled']} labelled held-out verdicts (unknown = do not eat):")
    for name, meaning in (
        (vm.DECISION_ACCURACY, "right eat / do-not-eat actions"),
        (vm.COVERAGE, "verdicts not unknown"),
        (vm.COVERED_ACCURACY, "edible/poisonous verdicts that are right"),
        (vm.FALSE_EDIBLE_RATE, "poisonous mushrooms called edible"),
    ):
        print(f"      {name} {percent(summary[name])} ({meaning})")
    print(f"      {vm.FALSE_EDIBLE} {summary[vm.FALSE_EDIBLE]} (poisonous called edible)")
    print(
        f"    rejected: {summary['rejected']} (malformed records put: {summary['malformed_put']})"
    )
    for item in summary["rejections"][:10]:
        reasons = "; ".join(f"{e['field']}: {e['message']}" for e in item["errors"])
        print(f"      - {reasons[:150]}")
    print(
        f"    {records_put} records from put to verdicts read in {seconds:.1f} s, including the "
        "function's cold start; steady state: make bench-e2e"
    )


def verdict_lines(
    event_records: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]]
) -> list[str]:
    """One line per record of a Kinesis event: its mushroom id and the verdict it got.

    Verdicts are matched on ``input_sequence_number`` (the record's sequence number); a record
    without one says so, which is itself a broken contract (one output per input).
    """
    by_sequence = {v.get("input_sequence_number"): v for v in verdicts}
    lines = []
    for record in event_records:
        kinesis = record.get("kinesis", {})
        sequence = kinesis.get("sequenceNumber")
        verdict = by_sequence.get(sequence)
        who = (verdict or {}).get(ID_FIELD) or kinesis.get("partitionKey") or sequence
        if verdict is None:
            lines.append(f"{who} -> no verdict read (sequence number {sequence})")
        elif verdict.get("status") == "rejected":
            reasons = "; ".join(f"{e['field']}: {e['message']}" for e in verdict["errors"])
            lines.append(f"{who} -> rejected: {reasons[:200]}")
        else:
            line = (
                f"{who} -> {verdict['verdict']} (p_poisonous {float(verdict['p_poisonous']):.3f},"
                f" model version {verdict.get('model_version')})"
            )
            misread = verdict.get("misread")
            if misread:
                line += (
                    f": {misread['field']} misread for {misread['value']!r} could make it"
                    " poisonous"
                )
            lines.append(line)
    return lines
