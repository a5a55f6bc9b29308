"""Fast batch decoding agrees with the schema validator, the single source of truth."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_function import decoding, schema
from lambda_function.decoding import BatchDecoder, _decode_one, decode_base64, validate_payload
from lambda_function.model import FeatureEncoder
from tests.fakes.scorer import valid_record

ENCODER = FeatureEncoder.from_schema()


@pytest.fixture
def decoder() -> BatchDecoder:
    return BatchDecoder(ENCODER)


def test_valid_batch_takes_the_fast_path_and_matches_encode_rows(decoder):
    records = [valid_record(i, cap_shape=[None, "b", "x"][i % 3]) for i in range(30)]
    batch = decoder.decode_payloads([json.dumps(r).encode() for r in records])

    assert batch.accepted == list(range(30))
    assert batch.rejected == {}
    assert batch.mushroom_ids == [r["mushroom_id"] for r in records]
    rows = [schema.validate_record(r).row for r in records]
    np.testing.assert_array_equal(batch.matrix, ENCODER.encode_rows(rows))


def test_absent_nominal_features_mean_not_observed(decoder):
    record = {"mushroom_id": "a", "cap_diameter": 1, "stem_height": 2, "stem_width": 3}
    batch = decoder.decode_payloads([json.dumps(record).encode()])
    assert batch.accepted == [0]
    np.testing.assert_array_equal(
        batch.matrix, ENCODER.encode_rows([schema.validate_record(record).row])
    )


def test_one_bad_record_does_not_reject_the_others(decoder):
    payloads = [
        json.dumps(valid_record(0)).encode(),
        b'{"mushroom_id": "x", "cap_diameter": NaN}',
        json.dumps(valid_record(2)).encode(),
    ]
    batch = decoder.decode_payloads(payloads)
    assert batch.accepted == [0, 2]
    assert batch.mushroom_ids == ["obs-000000", "x", "obs-000002"]
    fields = {e["field"] for e in batch.rejected[1]}
    assert {"cap_diameter", "stem_height", "stem_width"} <= fields
    assert batch.matrix.shape == (2, len(schema.FEATURES))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, "not valid base64"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"mushroom_id": ', "not valid JSON"),
        (b"[]", "must be a JSON object, got array"),
        (b"42", "must be a JSON object, got int"),
        (b"[" * 5_000 + b"]" * 5_000, "not valid JSON"),
        (b'{"mushroom_id": "' + b"a" * schema.MAX_RECORD_BYTES + b'"}', "the limit is"),
    ],
)
def test_malformed_records_are_rejected_with_one_clear_error(decoder, payload, expected):
    batch = decoder.decode_payloads([payload])
    assert batch.accepted == []
    (error,) = batch.rejected[0]
    assert error["field"] == "$"
    assert expected in error["message"]


def test_field_errors_come_from_the_schema_validator(decoder):
    record = valid_record(0, cap_color="z", stem_width=-1, extra=1)
    batch = decoder.decode_payloads([json.dumps(record).encode()])
    assert batch.rejected[0] == schema.validate_record(record).errors
    assert batch.mushroom_ids == ["obs-000000"]


def test_payloads_cannot_merge_across_record_boundaries(decoder):
    """Two halves of one object, plus a record holding two objects, keep the count at 3: the
    joined buffer would decode, but each record alone is invalid and must be rejected."""
    whole = json.dumps(valid_record(0))
    cut = whole.index(', "stem_height"')
    first, second = whole[:cut] + "}", "{" + whole[cut + 1 :]
    payloads = [
        (whole[:cut]).encode(),
        (whole[cut + 1 :]).encode(),
        f"{whole},{whole}".encode(),
        first.encode(),
        second.encode(),
    ]
    batch = decoder.decode_payloads(payloads)
    assert batch.accepted == []
    for i in (0, 1, 2):
        assert batch.rejected[i][0]["field"] == "$"
    # first/second are whole objects with an unknown field or missing features: field errors.
    assert set(batch.rejected) == {0, 1, 2, 3, 4}


def test_strings_cannot_span_records(decoder):
    """A string opened in one record and closed in the next must not glue them together."""
    tail = json.dumps(valid_record(1))[1:]
    payloads = [
        b'{"cap_diameter": 1, "stem_height": 1, "stem_width": 1, "mushroom_id": "}',
        ('{"},' + tail).encode(),
    ]
    batch = decoder.decode_payloads(payloads)
    assert batch.accepted == []
    assert set(batch.rejected) == {0, 1}


def test_decode_base64_batch_and_fallback():
    good = base64.b64encode(b'{"a": 1}').decode()
    assert decode_base64([good, good]) == [b'{"a": 1}', b'{"a": 1}']
    assert decode_base64([good, "%%%", None]) == [b'{"a": 1}', None, None]


def test_lone_surrogate_ids_are_rejected_on_both_paths(decoder):
    payload = b'{"mushroom_id": "\\ud800", "cap_diameter": 1, "stem_height": 1, "stem_width": 1}'
    batch = decoder.decode_payloads([payload])
    assert batch.rejected[0][0]["field"] == "mushroom_id"
    assert batch.mushroom_ids == [None]


def test_integers_beyond_the_float_range_are_rejected(decoder):
    payload = json.dumps(valid_record(0, cap_diameter=10**400)).encode()
    batch = decoder.decode_payloads([payload])
    assert batch.rejected[0][0]["field"] == "cap_diameter"


# --- fast path vs slow path, on generated records ----------------------------------------------

_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -0.0, 1e308, 1.7976931348623157e308]),
)
_junk = st.one_of(
    st.none(),
    st.booleans(),
    _numbers,
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _feature_value(feature: schema.Feature):
    if feature.is_numeric:
        return st.one_of(st.floats(min_value=0, max_value=1e6), _numbers, _junk)
    return st.one_of(st.sampled_from((*feature.vocabulary, None)), _junk)


@st.composite
def near_valid_records(draw) -> dict:
    """Records that are mostly valid, with a few fields perturbed, dropped or added.

    Each feature keeps its valid value unless drawn for a change (about 1 in 8 each), so about
    a third of the records stay valid and both outcomes are exercised.
    """
    record: dict = {}
    for feature in schema.FEATURES:
        change = draw(st.integers(0, 15))
        if change == 0:
            continue
        if change == 1:
            record[feature.name] = draw(_feature_value(feature))
        else:
            record[feature.name] = draw(_valid_value(feature))
    if draw(st.integers(0, 19)):
        record[schema.ID_FIELD] = draw(
            st.one_of(st.text(min_size=1, max_size=130), _junk)
            if draw(st.integers(0, 3)) == 0
            else st.text(min_size=1, max_size=20)
        )
    if draw(st.integers(0, 9)) == 0:
        record[draw(st.text(max_size=8))] = draw(_junk)
    return record


def _valid_value(feature: schema.Feature):
    if feature.is_numeric:
        return st.floats(min_value=0, max_value=1e6)
    return st.sampled_from((*feature.vocabulary, None))


def _payload(record: dict) -> bytes:
    # allow_nan: Python writes NaN/Infinity tokens, which strict JSON parsers reject.
    return json.dumps(record, allow_nan=True).encode()


@st.composite
def near_valid_payloads(draw) -> bytes:
    """Serialised near-valid records, some with a key repeated (json.dumps cannot write that)."""
    members = list(draw(near_valid_records()).items())
    for _ in range(draw(st.sampled_from([0, 0, 1, 2])) if members else 0):
        name = draw(st.sampled_from([k for k, _ in members]))
        feature = schema.FEATURES_BY_NAME.get(name)
        value = draw(_feature_value(feature) if feature else st.just("obs-2"))
        members.insert(draw(st.integers(0, len(members))), (name, value))
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v, allow_nan=True)}" for k, v in members)
    return ("{" + body + "}").encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_payloads())
def test_fast_and_slow_paths_agree_on_accept_or_reject(payload):
    observation, errors, _ = _decode_one(payload)
    slow = validate_payload(payload)
    assert (observation is not None) == slow.ok, (payload, slow.errors)
    assert observation is not None or errors
    try:
        decoding._record_decoder.decode(payload)
    except Exception as exc:
        # What msgspec refuses, the validator rejects too (no generic "$" fallback needed).
        assert not slow.ok, (payload, exc)
    if slow.ok:
        matrix, ids = BatchDecoder(ENCODER).encode([observation])
        np.testing.assert_array_equal(matrix, ENCODER.encode_rows([slow.row]))
        assert ids == [slow.mushroom_id]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(near_valid_payloads(), min_size=1, max_size=8))
def test_batch_decode_equals_record_by_record(payloads):
    records = payloads
    batch = BatchDecoder(ENCODER).decode_payloads(payloads)
    expected_ok = [i for i, p in enumerate(payloads) if validate_payload(p).ok]
    assert batch.accepted == expected_ok
    assert sorted([*batch.accepted, *batch.rejected]) == list(range(len(records)))
    for i, errors in batch.rejected.items():
        assert errors and all(set(e) == {"field", "message"} for e in errors)
    assert not np.isinf(batch.matrix).any()
    assert all(math.isfinite(v) for v in batch.matrix[:, 0])


def test_column_by_column_fallback_encodes_the_same(decoder):
    records = [valid_record(i, habitat=[None, "g", "d", "u"][i % 4]) for i in range(12)]
    batch = decoder.decode_payloads([json.dumps(r).encode() for r in records])
    slow = BatchDecoder(ENCODER)
    slow._ascii_codes = False  # as if some schema code were not one ASCII character
    fallback = slow.decode_payloads([json.dumps(r).encode() for r in records])
    np.testing.assert_array_equal(batch.matrix, fallback.matrix)


def test_codes_missing_from_an_older_bundle_become_missing_values():
    vocabularies = dict(ENCODER.vocabularies)
    vocabularies["habitat"] = ("g", "l")  # an older model that never saw "d"
    older = FeatureEncoder(ENCODER.feature_order, vocabularies)
    records = [valid_record(0, habitat="d"), valid_record(1, habitat="l")]
    batch = BatchDecoder(older).decode_payloads([json.dumps(r).encode() for r in records])
    rows = [schema.validate_record(r).row for r in records]
    np.testing.assert_array_equal(batch.matrix, older.encode_rows(rows))
    column = older.feature_order.index("habitat")
    assert math.isnan(batch.matrix[0, column]) and batch.matrix[1, column] == 1.0


# --- every exception of the decoders becomes one record's rejection ------------------------------

_MEASUREMENTS = b'"cap_diameter": 5, "stem_height": 1, "stem_width": 1'


@pytest.mark.parametrize(
    "payload",
    [
        b'{"mushroom_id": "\xff\xfe", ' + _MEASUREMENTS + b"}",  # invalid UTF-8 in a value
        b'{"mushroom_id": "a", "cap\xff": 1, ' + _MEASUREMENTS + b"}",  # ... in a key
        b'{"mushroom_id": "\xed\xa0\x80", ' + _MEASUREMENTS + b"}",  # CESU-8 surrogate
        b'{"mushroom_id": "\xc0\x80", ' + _MEASUREMENTS + b"}",  # overlong NUL
    ],
)
def test_invalid_utf8_inside_strings_is_that_records_rejection(decoder, payload):
    valid = json.dumps(valid_record(0)).encode()
    for payloads, bad in (([payload], 0), ([valid, payload, valid], 1)):
        batch = decoder.decode_payloads(payloads)
        assert batch.accepted == [i for i in range(len(payloads)) if i != bad]
        (error,) = batch.rejected[bad]
        assert error["field"] == "$" and "not valid UTF-8" in error["message"]


class _Raising:
    def __init__(self, exc: BaseException):
        self.exc = exc

    def decode(self, _payload):
        raise self.exc


@pytest.mark.parametrize(
    "exc", [MemoryError(), RecursionError("deep"), ValueError("x"), TypeError()]
)
def test_any_batch_decode_failure_falls_back_to_record_by_record(decoder, monkeypatch, exc):
    monkeypatch.setattr(decoding, "_batch_decoder", _Raising(exc))
    records = [valid_record(i) for i in range(3)]
    batch = decoder.decode_payloads([json.dumps(r).encode() for r in records])
    assert batch.accepted == [0, 1, 2] and batch.rejected == {}


@pytest.mark.parametrize(
    "exc", [MemoryError(), RecursionError("deep"), ValueError("x"), TypeError()]
)
def test_a_record_the_fast_decoder_cannot_decode_is_rejected_with_an_error(monkeypatch, exc):
    """Even when the schema validator finds nothing wrong, a refusal is never an empty list."""
    monkeypatch.setattr(decoding, "_batch_decoder", _Raising(exc))
    monkeypatch.setattr(decoding, "_record_decoder", _Raising(exc))
    batch = BatchDecoder(ENCODER).decode_payloads([json.dumps(valid_record(0)).encode()])
    (error,) = batch.rejected[0]
    assert error["field"] == "$" and type(exc).__name__ in error["message"]


@pytest.mark.parametrize("exc", [MemoryError(), RecursionError("deep"), KeyError("k")])
def test_the_schema_validator_path_is_total(monkeypatch, exc):
    def explode(*_args):
        raise exc

    monkeypatch.setattr(schema, "validate_record", explode)
    result = validate_payload(json.dumps(valid_record(0)).encode())
    (error,) = result.errors
    assert error["field"] == "$" and type(exc).__name__ in error["message"]


# --- duplicate keys ----------------------------------------------------------------------------

_DUPLICATE = "appears more than once; the value is ambiguous"


@pytest.mark.parametrize(
    ("members", "field"),
    [
        (b'"cap_diameter": -5, "cap_diameter": 5', "cap_diameter"),  # fast path refuses the first
        (b'"cap_diameter": 5, "cap_diameter": 6', "cap_diameter"),  # fast path keeps the last
        (b'"cap_diameter": 5, "cap\\u005fdiameter": 5', "cap_diameter"),  # same key, escaped
        (b'"cap_diameter": 5, "cap_shape": "x", "cap_shape": null', "cap_shape"),
        (b'"cap_diameter": 5, "mushroom_id": "e"', "mushroom_id"),
    ],
)
def test_duplicate_keys_are_rejected_naming_the_key(decoder, members, field):
    payload = b'{"mushroom_id": "d", ' + members + b', "stem_height": 1, "stem_width": 1}'
    valid = json.dumps(valid_record(0)).encode()
    for payloads, bad in (([payload], 0), ([valid, payload, valid], 1)):
        batch = decoder.decode_payloads(payloads)
        assert batch.accepted == [i for i in range(len(payloads)) if i != bad]
        assert {"field": field, "message": _DUPLICATE} in batch.rejected[bad]
    # An ambiguous id is no id.
    assert batch.mushroom_ids[1] == (None if field == "mushroom_id" else "d")


def test_duplicate_unknown_keys_are_named_safely(decoder):
    payload = b'{"mushroom_id": "d", "\\ud800": 1, "\\ud800": 2, ' + _MEASUREMENTS + b"}"
    errors = decoder.decode_payloads([payload]).rejected[0]
    duplicate = next(e for e in errors if "more than once" in e["message"])
    assert duplicate == {"field": "$", "message": f"key(s) '\\ud800' {_DUPLICATE}"}
    json.dumps(errors).encode("utf-8")  # no lone surrogate reaches the output


def test_colons_inside_strings_do_not_reject_a_valid_record(decoder):
    record = valid_record(0, mushroom_id='a:b:"c":d')
    batch = decoder.decode_payloads([json.dumps(record).encode()] * 2)
    assert batch.accepted == [0, 1] and batch.mushroom_ids == ['a:b:"c":d'] * 2
