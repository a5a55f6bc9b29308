"""Property tests: arbitrary and hostile records never crash the handler or lose a record."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_function import handler, schema
from lambda_function.bundle_store import load_bundle
from lambda_function.service import ScoringService
from lambda_function.writer import InMemoryWriter
from tests.unit.scorer_fakes import FIRST_SEQUENCE, FakeLambdaContext, kinesis_record, valid_record


def _json_bytes(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def hostile_records(draw) -> tuple[bytes | None, str | None]:
    """(payload, raw data) for one Kinesis record; raw data overrides base64 of the payload."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None, draw(st.text(max_size=30))  # data that is probably not base64
    if kind == 1:
        return draw(st.binary(max_size=200)), None  # arbitrary bytes, rarely UTF-8 JSON
    if kind == 2:
        return _json_bytes(draw(_json_values)), None  # any JSON, rarely an object
    if kind == 3:
        size = draw(st.sampled_from([schema.MAX_RECORD_BYTES - 100, schema.MAX_RECORD_BYTES * 2]))
        return _json_bytes(valid_record(1, mushroom_id="x" * size)), None  # huge strings
    if kind == 4:
        n = draw(st.sampled_from([100, 10_000]))
        return _json_bytes({f"f{i}": i for i in range(n)}), None  # very many fields
    record = valid_record(draw(st.integers(0, 3)))  # few ids: duplicates are common
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from([*schema.ALLOWED_FIELDS, "unknown"]))
        if draw(st.booleans()):
            record.pop(field, None)
        else:
            record[field] = draw(_scalars)
    return _json_bytes(record), None


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    from lambda_function.model import FeatureEncoder
    from tests.conftest import make_tiny_dataset
    from training.features import encode_frame, labels
    from training.train import fit_model, to_bundle

    frame = make_tiny_dataset()
    encoder = FeatureEncoder.from_schema()
    fitted = fit_model(
        encode_frame(frame, encoder),
        labels(frame),
        frame["species_id"].to_numpy(),
        encoder,
        seed=0,
        num_boost_round=10,
    )
    directory = tmp_path_factory.mktemp("bundle")
    to_bundle(fitted, encoder, "mushroom-classifier", "1", {}).save(directory)
    return ScoringService(load_bundle(str(directory)), InMemoryWriter())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_records(), min_size=1, max_size=12))
def test_handler_never_raises_and_answers_every_record(scorer, monkeypatch_module, records):
    scorer.writer.records.clear()
    event = {
        "Records": [
            kinesis_record(payload or b"", str(FIRST_SEQUENCE + i), data=data)
            for i, (payload, data) in enumerate(records)
        ]
    }
    response = handler.lambda_handler(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    outputs = [json.loads(data) for _, _, data in scorer.writer.records]
    assert [o["input_sequence_number"] for o in outputs] == [
        r["kinesis"]["sequenceNumber"] for r in event["Records"]
    ]
    for output, (_, key, data) in zip(outputs, scorer.writer.records):
        assert output["status"] in ("scored", "rejected")
        assert (output["status"] == "rejected") == bool(output["errors"])
        assert key == (output["mushroom_id"] or output["input_sequence_number"])
        assert len(data) < 64 * 1024


@pytest.fixture(scope="module")
def monkeypatch_module(scorer):
    patcher = pytest.MonkeyPatch()
    patcher.setattr(handler, "get_service", lambda: scorer)
    yield patcher
    patcher.undo()
