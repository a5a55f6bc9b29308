"""Property tests: arbitrary and hostile records never crash the handler or lose a record.

Two families of generators: JSON values built in Python (``hostile_records``), and valid
records serialised, then mutated at the byte level (``mutated_payloads``): what a broken or
hostile producer really sends. Every batch must give exactly one output per input record.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_function import handler, schema
from lambda_function.bundle_store import load_bundle
from lambda_function.decoding import validate_payload
from lambda_function.service import ScoringService
from lambda_function.writer import InMemoryWriter
from tests.fakes.scorer import FIRST_SEQUENCE, FakeLambdaContext, kinesis_record, valid_record


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


@pytest.fixture(scope="module", params=["lightgbm", "compiled"])
def scorer(request, tmp_path_factory):
    """The scoring service of a tiny model: LightGBM and the Python decoder, or the compiled
    predictor with its native scorer; msgspec decodes for both (each property holds for both)."""
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
    bundle = to_bundle(fitted, encoder, "mushroom-classifier", "1", {})
    compiled = []
    if request.param == "compiled":
        from training.compile import compile_predictor

        compiled = [compile_predictor(bundle.model_text)]
        assert compiled[0] is not None, "gcc is needed to build the compiled predictor"
    bundle.save(directory, compiled=compiled)
    service = ScoringService(load_bundle(str(directory)), InMemoryWriter())
    assert (service.bundle.scorer is not None) == (request.param == "compiled")
    return service


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


# --- byte-level mutations of valid, serialised records -------------------------------------------

_INVALID_UTF8 = [
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xc0\x80",  # overlong NUL
    b"\xe2\x82",  # truncated sequence
    b"\xed\xa0\x80",  # a lone surrogate in CESU-8 / WTF-8
    b"\xed\xa0\xbd\xed\xb8\x80",  # a surrogate pair in CESU-8
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
]
_DIGITS = st.integers(5_000, 6_000)


@st.composite
def valid_payloads(draw) -> bytes:
    """A valid record, serialised (absent and null nominal features, Unicode ids)."""
    record = valid_record(draw(st.integers(0, 50)))
    for name in draw(st.lists(st.sampled_from(schema.NOMINAL_FEATURES), max_size=3, unique=True)):
        if draw(st.booleans()):
            record.pop(name)
        else:
            record[name] = None
    if draw(st.booleans()):
        record[schema.ID_FIELD] = draw(st.text(min_size=1, max_size=schema.ID_MAX_LENGTH))
    return json.dumps(record, ensure_ascii=draw(st.booleans())).encode()


def _string_starts(payload: bytes) -> list[int]:
    """Offsets just after each double quote: inside a key or a string value, or just after."""
    return [i + 1 for i, byte in enumerate(payload) if byte == ord('"')]


def _numbers_in(payload: bytes) -> list[tuple[int, int]]:
    """(start, end) of the numeric measurement values (the ``_: <number>`` spans)."""
    spans = []
    for name in schema.NUMERIC_FEATURES:
        key = f'"{name}": '.encode()
        start = payload.find(key)
        if start >= 0:
            start += len(key)
            end = start
            while end < len(payload) and payload[end : end + 1] not in (b",", b"}"):
                end += 1
            spans.append((start, end))
    return spans


def _replace_value(draw, payload: bytes, value: bytes) -> bytes:
    spans = _numbers_in(payload)
    if not spans:
        return payload + value
    start, end = draw(st.sampled_from(spans))
    return payload[:start] + value + payload[end:]


def _invalid_utf8_in_string(draw, payload: bytes) -> bytes:
    at = draw(st.sampled_from(_string_starts(payload) or [0]))
    return payload[:at] + draw(st.sampled_from(_INVALID_UTF8)) + payload[at:]


def _duplicate_key(draw, payload: bytes) -> bytes:
    value = json.loads(payload)
    if not isinstance(value, dict) or not value:
        return payload
    members = list(value.items())
    name, value = draw(st.sampled_from(members))
    other = draw(st.sampled_from([value, None, -1, 2.5, "x", "", [1], {"a": 1}]))
    members.insert(draw(st.integers(0, len(members))), (name, other))
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in members)
    return ("{" + body + "}").encode()


def _huge_number(draw, payload: bytes) -> bytes:
    n = draw(_DIGITS)
    value = draw(
        st.sampled_from(
            [
                b"1" + b"0" * n,  # beyond float range, and Python's int digit limit
                b"-" + b"9" * n,
                b"1e" + b"0" * n + b"5",  # a long exponent of a valid value
                b"1e-" + b"0" * n + b"5",
                b"1e" + b"9" * n,
                b"0." + b"0" * n + b"1",
                b"1" + b"0" * n + b"e-" + str(n).encode(),  # long digits, valid value
            ]
        )
    )
    return _replace_value(draw, payload, value)


def _deep_nesting(draw, payload: bytes) -> bytes:
    n = draw(st.sampled_from([1_000, 5_000, 100_000]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    nested = opener * n + b"1" + closer * n
    if draw(st.booleans()):
        return nested  # the whole record
    return _replace_value(draw, payload, nested)


def _lone_surrogate(draw, payload: bytes) -> bytes:
    surrogate = draw(st.sampled_from([b"\\ud800", b"\\udfff", b"\\ud800\\u0041", b"\xed\xa0\x80"]))
    at = draw(st.sampled_from(_string_starts(payload) or [0]))
    return payload[:at] + surrogate + payload[at:]


def _other_encoding(draw, payload: bytes) -> bytes:
    encoding = draw(st.sampled_from(["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
    return payload.decode("utf-8").encode(encoding)


def _nul(draw, payload: bytes) -> bytes:
    at = draw(st.integers(0, len(payload)))
    return payload[:at] + draw(st.sampled_from([b"\x00", b"\\u0000"])) + payload[at:]


def _not_an_object(draw, payload: bytes) -> bytes:
    return draw(
        st.sampled_from(
            [
                b"",
                b" ",
                b"\n\t\r ",
                b"\x0b",
                b"42",
                b"-0.5",
                b"null",
                b"true",
                b'"x"',
                json.dumps(payload.decode("utf-8")).encode(),  # the record as a JSON string
                b"[" + payload + b"]",
                b"[" + payload + b"," + payload + b"]",
                payload + payload,
                b" " + payload + b"\n",
            ]
        )
    )


def _truncation(draw, payload: bytes) -> bytes:
    return payload[: draw(st.integers(0, len(payload)))]


def _byte_edit(draw, payload: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(payload) - 1)))
        kind = draw(st.sampled_from(["flip", "insert", "delete"]))
        if kind == "flip" and payload:
            flipped = payload[at] ^ (1 << draw(st.integers(0, 7)))
            payload = payload[:at] + bytes([flipped]) + payload[at + 1 :]
        elif kind == "insert":
            payload = payload[:at] + draw(st.binary(min_size=1, max_size=3)) + payload[at:]
        else:
            payload = payload[:at] + payload[at + draw(st.integers(1, 8)) :]
    return payload


_MUTATIONS = [
    _invalid_utf8_in_string,
    _duplicate_key,
    _huge_number,
    _deep_nesting,
    _lone_surrogate,
    _other_encoding,
    _nul,
    _not_an_object,
    _truncation,
    _byte_edit,
]


@st.composite
def mutated_payloads(draw) -> bytes:
    """A valid serialised record after one or two byte-level mutations."""
    payload = draw(valid_payloads())
    for mutation in draw(st.lists(st.sampled_from(_MUTATIONS), min_size=1, max_size=2)):
        try:
            payload = mutation(draw, payload)
        except (ValueError, RecursionError):  # the mutation needs a decodable record
            continue
    return payload


def _score(event: dict) -> tuple[dict, list[tuple[str, str, bytes]]]:
    writer = handler.get_service().writer
    writer.records.clear()
    response = handler.lambda_handler(event, FakeLambdaContext())
    return response, list(writer.records)


def assert_one_valid_verdict_per_record(event: dict, response: dict, written: list) -> None:
    """The handler's invariant for any batch, however hostile."""
    assert response == {"batchItemFailures": []}
    records = event["Records"]
    outputs = [json.loads(data) for _, _, data in written]  # UTF-8 JSON, every one
    assert [o["input_sequence_number"] for o in outputs] == [
        r["kinesis"]["sequenceNumber"] for r in records
    ]
    for record, output, (_, key, data) in zip(records, outputs, written):
        payload = base64.b64decode(record["kinesis"]["data"])
        expected = validate_payload(payload)
        assert key == (output["mushroom_id"] or output["input_sequence_number"])
        assert len(data) < 64 * 1024
        if output["status"] == "scored":
            assert expected.ok, (payload[:200], expected.errors)
            assert output["mushroom_id"] == expected.mushroom_id and output["errors"] == []
            assert output["verdict"] in ("edible", "poisonous", "unknown")
            assert 0.0 <= output["p_poisonous"] <= 1.0
        else:
            assert output["status"] == "rejected" and not expected.ok, payload[:200]
            assert output["errors"], payload[:200]
            assert all(e["field"] and e["message"] for e in output["errors"])
            assert output["verdict"] is None and output["p_poisonous"] is None


def _event(payloads: list[bytes]) -> dict:
    return {"Records": [kinesis_record(p, str(FIRST_SEQUENCE + i)) for i, p in enumerate(payloads)]}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payloads())
def test_a_mutated_record_alone_gets_exactly_one_verdict(scorer, monkeypatch_module, payload):
    event = _event([payload])
    assert_one_valid_verdict_per_record(event, *_score(event))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(valid_payloads(), mutated_payloads()), min_size=2, max_size=12))
def test_mutated_records_mixed_with_valid_ones(scorer, monkeypatch_module, payloads):
    """Batch fast path for all-valid batches, record-by-record fallback for the others."""
    event = _event(payloads)
    assert_one_valid_verdict_per_record(event, *_score(event))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_payloads(), min_size=1, max_size=12))
def test_valid_records_are_all_scored(scorer, monkeypatch_module, payloads):
    event = _event(payloads)
    response, written = _score(event)
    assert_one_valid_verdict_per_record(event, response, written)
    assert all(json.loads(data)["status"] == "scored" for _, _, data in written)
