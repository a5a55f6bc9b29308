"""ScoringService: one output per input, in the output contract (README, Contracts)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest

from lambda_function.model import ModelBundle
from lambda_function.service import ScoringService, format_timestamp
from lambda_function.writer import InMemoryWriter, OutputBatch
from tests.fakes.scorer import kinesis_event, load_event, valid_record

FIXED = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=timezone.utc)
CONTRACT_KEYS = [
    "mushroom_id",
    "status",
    "verdict",
    "p_poisonous",
    "model_name",
    "model_version",
    "input_sequence_number",
    "scored_at",
    "errors",
]


@pytest.fixture
def bundle(tiny_bundle) -> ModelBundle:
    return ModelBundle.load(tiny_bundle)


def outputs(writer: InMemoryWriter) -> list[dict]:
    return [json.loads(data) for _, _, data in writer.records]


def test_mixed_event_gives_one_output_per_record_in_order(bundle):
    writer = InMemoryWriter()
    event = load_event("kinesis_mixed.json")
    outcome = ScoringService(bundle, writer, clock=lambda: FIXED).score_records(event["Records"])

    records = outputs(writer)
    sequence_numbers = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert [o["input_sequence_number"] for o in records] == sequence_numbers
    assert [o["status"] for o in records] == ["scored"] * 2 + ["rejected"] * 5
    assert (outcome.n_records, outcome.n_scored, outcome.n_rejected) == (7, 2, 5)
    assert outcome.failed_sequence_numbers == frozenset()
    for output in records:
        assert list(output) == CONTRACT_KEYS
        assert output["scored_at"] == "2026-11-27T12:00:00.123Z"
        assert output["model_name"] == "mushroom-classifier" and output["model_version"] == "1"
    for output in records[:2]:
        assert output["verdict"] in ("edible", "poisonous", "unknown")
        assert output["p_poisonous"] == round(output["p_poisonous"], 4)
        assert 0 <= output["p_poisonous"] <= 1 and output["errors"] == []
    for output in records[2:]:
        assert output["verdict"] is None and output["p_poisonous"] is None
        assert output["errors"] and all(e["message"] for e in output["errors"])
    # Rejections keep the id when it was valid; partition key falls back to the sequence number.
    assert records[3]["mushroom_id"] == "obs-000004"
    keys = [key for _, key, _ in writer.records]
    assert keys[:2] == ["obs-000001", "obs-000002"] and keys[4] == sequence_numbers[4]


def test_scores_match_the_bundle(bundle):
    writer = InMemoryWriter()
    records = [valid_record(i, cap_diameter=float(i)) for i in range(20)]
    event = kinesis_event([json.dumps(r).encode() for r in records])
    outcome = ScoringService(bundle, writer).score_records(event["Records"])
    p, verdicts = bundle.score_rows(records)
    assert [o["p_poisonous"] for o in outputs(writer)] == [round(float(x), 4) for x in p]
    assert [o["verdict"] for o in outputs(writer)] == verdicts
    assert outcome.n_unknown == verdicts.count("unknown")


def test_duplicate_ids_each_get_their_own_output(bundle):
    writer = InMemoryWriter()
    event = kinesis_event([json.dumps(valid_record(7)).encode()] * 3)
    ScoringService(bundle, writer).score_records(event["Records"])
    assert len({o["input_sequence_number"] for o in outputs(writer)}) == 3


def test_empty_batch(bundle):
    writer = InMemoryWriter()
    outcome = ScoringService(bundle, writer).score_records([])
    assert outcome.n_records == 0 and writer.records == []


def test_write_failures_are_returned(bundle):
    class FailingWriter:
        def write(self, batch: OutputBatch) -> list[str]:
            return list(batch.sequence_numbers[:1])

    event = kinesis_event([json.dumps(valid_record(i)).encode() for i in range(3)])
    outcome = ScoringService(bundle, FailingWriter()).score_records(event["Records"])
    assert outcome.failed_sequence_numbers == {event["Records"][0]["kinesis"]["sequenceNumber"]}


def test_missing_data_field_is_a_rejection(bundle):
    writer = InMemoryWriter()
    record = {"kinesis": {"sequenceNumber": "1", "data": None}}
    ScoringService(bundle, writer).score_records([record])
    (output,) = outputs(writer)
    assert output["status"] == "rejected" and "base64" in output["errors"][0]["message"]


def test_format_timestamp_is_utc_millis_z():
    local = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc).astimezone()
    assert format_timestamp(local) == "2026-01-02T03:04:05.006Z"


def test_fixture_payloads_are_what_they_claim():
    event = load_event("kinesis_mixed.json")
    first = json.loads(base64.b64decode(event["Records"][0]["kinesis"]["data"]))
    assert first["mushroom_id"] == "obs-000001"


def test_newlines_in_ids_and_messages_still_give_one_output_per_record(bundle):
    """The outputs are encoded in one call as JSON lines: a newline (or U+2028) inside an id
    or an error message is escaped, so it never splits a record."""
    payloads = [
        json.dumps(valid_record(0, mushroom_id="a\nb")).encode(),
        json.dumps(valid_record(1, mushroom_id="c\u2028d\r")).encode(),
        b'{"mushroom_id": "e\\nf", "cap_diameter": "not\\na number"}',
        json.dumps(valid_record(3)).encode(),
    ]
    writer = InMemoryWriter()
    ScoringService(bundle, writer, clock=lambda: FIXED).score_records(
        kinesis_event(payloads)["Records"]
    )
    records = outputs(writer)
    assert [o["mushroom_id"] for o in records] == ["a\nb", "c\u2028d\r", "e\nf", "obs-000003"]
    assert [o["status"] for o in records] == ["scored", "scored", "rejected", "scored"]
    assert all(b"\n" not in data for _, _, data in writer.records)
