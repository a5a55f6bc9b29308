"""The native codec of a compiled bundle gives exactly what the Python code gives.

Decoding: for any batch (valid records, records mutated at the byte level, near-valid ones,
non-canonical base64, data that is not text), the decoder with the native codec returns the
same DecodedBatch as without it. Encoding: the native output records are byte for byte the ones
msgspec writes for the same VerdictRecords.
"""

from __future__ import annotations

import base64
import ctypes
import json
from datetime import datetime, timezone
from itertools import repeat

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lambda_function import schema
from lambda_function.decoding import BatchDecoder, validate_payload
from lambda_function.model import VERDICTS_BY_CODE, ModelBundle
from lambda_function.native_codec import CODEC_ABI, NativeCodec, NativeCodecError
from lambda_function.service import (
    STATUS_SCORED,
    ScoringService,
    VerdictRecord,
    _json_encode,
    output_segments,
)
from lambda_function.writer import InMemoryWriter
from tests.fakes.scorer import FIRST_SEQUENCE, kinesis_event, valid_record
from tests.unit.lambda_function.test_decoding import near_valid_payloads
from tests.unit.lambda_function.test_handler_properties import mutated_payloads, valid_payloads

_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> ModelBundle:
    """The tiny model's bundle with its compiled predictor and native codec (built once)."""
    from tests.conftest import _tiny_model
    from tests.conftest import make_tiny_dataset as dataset
    from training.compile import compile_predictor

    bundle = _tiny_model(dataset())
    artifact = compile_predictor(bundle.model_text)
    if artifact is None:
        pytest.fail("gcc is needed to build the compiled predictor (apt-get install gcc)")
    directory = bundle.save(tmp_path_factory.mktemp("codec") / "bundle", compiled=[artifact])
    loaded = ModelBundle.load(directory)
    assert loaded.predictor.kind == "compiled" and loaded.codec is not None
    return loaded


def _assert_same_batch(native, python) -> None:
    assert native.n_records == python.n_records
    assert native.accepted == python.accepted
    assert native.mushroom_ids == python.mushroom_ids
    assert native.rejected == python.rejected
    assert native.matrix.shape == python.matrix.shape
    np.testing.assert_array_equal(native.matrix, python.matrix)  # NaN == NaN here
    assert native.matrix.tobytes() == python.matrix.tobytes()  # -0.0, NaN bits: identical


def _decoders(bundle: ModelBundle) -> tuple[BatchDecoder, BatchDecoder]:
    return BatchDecoder(bundle.encoder, bundle.codec), BatchDecoder(bundle.encoder)


def _data(payloads: list[bytes]) -> list[str]:
    return [base64.b64encode(p).decode() for p in payloads]


# --- decoding ---------------------------------------------------------------------------------


@settings(_SETTINGS, max_examples=300)
@given(st.lists(st.one_of(valid_payloads(), mutated_payloads(), near_valid_payloads()), max_size=8))
def test_native_decoding_equals_the_python_decoders(compiled, payloads):
    native, python = _decoders(compiled)
    data = _data(payloads)
    _assert_same_batch(native.decode(data), python.decode(data))


@settings(_SETTINGS, max_examples=200)
@given(mutated_payloads())
def test_what_the_native_decoder_accepts_the_schema_accepts(compiled, payload):
    result = compiled.codec.decode(_data([payload]))
    assert result is not None
    matrix, status, ids, _ = result
    if status[0] == 0:
        checked = validate_payload(payload)
        assert checked.ok, (payload[:200], checked.errors)
        assert ids == [checked.mushroom_id]
        expected = compiled.encoder.encode_rows([checked.row])
        assert matrix.tobytes() == expected.tobytes()


def test_valid_records_are_all_decoded_natively(compiled):
    payloads = [
        json.dumps(valid_record(i, cap_shape=[None, "b", "x"][i % 3])).encode() for i in range(50)
    ]
    # Absent nominal features, no spaces, odd spacing: all in the native decoder's subset.
    payloads.append(
        json.dumps({k: v for k, v in valid_record(51).items() if k != "habitat"}).encode()
    )
    payloads.append(json.dumps(valid_record(52), separators=(",", ":")).encode())
    payloads.append(b" \n" + json.dumps(valid_record(53), indent=2).encode() + b"\r\n")
    _, status, ids, blob = compiled.codec.decode(_data(payloads))
    assert status.tolist() == [0] * len(payloads)
    assert blob == b"".join(i.encode() + b"\n" for i in ids)
    batch = BatchDecoder(compiled.encoder, compiled.codec).decode(_data(payloads))
    assert batch.ids_blob == blob and batch.accepted == list(range(len(payloads)))


_printable_ids = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'),
    min_size=1,
    max_size=schema.ID_MAX_LENGTH,
)


@settings(_SETTINGS, max_examples=100)
@given(
    ids=st.lists(_printable_ids, min_size=1, max_size=6),
    separators=st.sampled_from([(", ", ": "), (",", ":"), (" ,", " : ")]),
)
def test_valid_records_of_any_printable_id_are_decoded_natively(compiled, ids, separators):
    """Valid records stay in the native path, so a wrong byte from the (vectorised) base64
    decoder would show as a different id or value, not as a silent fallback."""
    payloads = [
        json.dumps(valid_record(i, mushroom_id=m), separators=separators).encode()
        for i, m in enumerate(ids)
    ]
    _, status, native_ids, _ = compiled.codec.decode(_data(payloads))
    assert status.tolist() == [0] * len(ids) and native_ids == ids
    native, python = _decoders(compiled)
    _assert_same_batch(native.decode(_data(payloads)), python.decode(_data(payloads)))


def test_every_pair_of_id_characters_at_every_alignment_decodes_natively(compiled):
    """Base64 of every pair of printable characters at each of the 3 byte alignments: every
    6-bit value ASCII text can produce, in every lane of the vectorised decoder."""
    plain = [chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\']
    pairs = "".join(a + b for a in plain for b in plain)
    ids = [
        "x" * shift + pairs[i : i + schema.ID_MAX_LENGTH - shift]
        for shift in range(3)
        for i in range(0, len(pairs), schema.ID_MAX_LENGTH - 2)
    ]
    payloads = [json.dumps(valid_record(1, mushroom_id=m)).encode() for m in ids]
    encoded = "".join(_data(payloads))
    assert set(encoded) - set("=") == set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    )
    _, status, native_ids, _ = compiled.codec.decode(_data(payloads))
    assert status.tolist() == [0] * len(ids) and native_ids == ids


@settings(_SETTINGS, max_examples=200)
@given(
    position=st.integers(0, 10_000),
    character=st.sampled_from(["=", " ", "-", "_", "*", "\x00", "\x7f", "\n", "é", "{"]),
)
def test_a_bad_base64_character_anywhere_is_left_to_python(compiled, position, character):
    text = base64.b64encode(json.dumps(valid_record(1)).encode()).decode()
    at = position % len(text)
    data = [text, text[:at] + character + text[at + 1 :], text]
    native, python = _decoders(compiled)
    batch = native.decode(data)
    _assert_same_batch(batch, python.decode(data))
    assert batch.accepted == [0, 2] or character in "=\n"  # '=' at a padding place is valid


@pytest.mark.parametrize(
    "data",
    [
        "eyJhIjoxfQ",  # no padding
        "eyJhIjoxfR==",  # unused bits set
        "eyJh Ijoxf Q==",  # a space inside
        "eyJhIjoxfQ==\n",  # a newline (the codec's separator)
        "eyJhIjoxfQ=a",  # padding inside
        "-_-_",  # the URL-safe alphabet
        "",
        "é",
        "eyJhIjoxfQ==é",
        "eyJhIjoxfQ\u2028==",
    ],
)
def test_non_canonical_base64_is_left_to_python(compiled, data):
    valid = base64.b64encode(json.dumps(valid_record(1)).encode()).decode()
    native, python = _decoders(compiled)
    _assert_same_batch(native.decode([valid, data]), python.decode([valid, data]))


@pytest.mark.parametrize("data", [[None], [b"eyJhIjoxfQ=="], [1, "x"], [{"a": 1}]])
def test_data_that_is_not_text_is_left_to_python(compiled, data):
    assert compiled.codec.decode(data) is None
    native, python = _decoders(compiled)
    _assert_same_batch(native.decode(data), python.decode(data))


_number_texts = st.one_of(
    st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(repr),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.17e}"),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.3E}"),
    st.integers(min_value=0, max_value=10**40).map(str),
    st.tuples(st.integers(0, 10**20), st.integers(0, 40), st.integers(-400, 400)).map(
        lambda t: f"{t[0]}.{'0' * t[1]}1e{t[2]}"
    ),
    st.sampled_from(["0", "0.0", "0e0", "1E+22", "9007199254740993", "1e-400", "1e400", "01"]),
    st.sampled_from(["1.", ".5", "-0.0", "-1", "1e", "+1", "0x10", "1_0", "NaN", "Infinity"]),
    st.text("0123456789.eE+-", min_size=1, max_size=30),
)


@settings(_SETTINGS, max_examples=400)
@example(text="123456789012345678901234567890.5")
@example(text="4.35")
@given(text=_number_texts)
def test_numbers_decode_to_the_double_python_reads(compiled, text):
    record = json.dumps(valid_record(1, cap_diameter="<number>"))
    payload = record.replace('"<number>"', text).encode()
    native, python = _decoders(compiled)
    _assert_same_batch(native.decode(_data([payload])), python.decode(_data([payload])))


def test_a_codec_refuses_settings_it_cannot_honour(compiled):
    configure = compiled.codec._functions["mushroom_codec_configure"]
    kinds = np.zeros(2, dtype=np.int32)
    columns = np.array([0, 0], dtype=np.int32)  # one column twice, and no id field
    table = np.zeros((2, 256))
    allowed = np.zeros((2, 256), dtype=np.uint8)
    status = configure(
        2, 1, b"a\0b\0", kinds.ctypes.data, columns.ctypes.data, table.ctypes.data,
        allowed.ctypes.data, 128, 16384,
    )  # fmt: skip
    assert status < 0
    # The refused settings were not applied half way: configure the real ones again.
    NativeCodec(
        compiled.predictor.library, compiled.encoder.feature_order, compiled.encoder.vocabularies
    )


def test_a_library_without_the_codec_is_refused_by_name():
    libc = ctypes.CDLL(None)
    with pytest.raises(NativeCodecError, match="no native codec"):
        NativeCodec(libc, [], {})
    assert CODEC_ABI == 1


def test_a_bundle_compiled_without_the_codec_is_served_by_the_python_decoder(
    tmp_path, monkeypatch, compiled
):
    from tests.conftest import _tiny_model, make_tiny_dataset
    from training import compile as compile_mod

    empty = tmp_path / "native"
    empty.mkdir()
    (empty / "codec.c").write_text("/* an older bundle's library: no codec */\n")
    monkeypatch.setattr(compile_mod, "NATIVE_DIR", empty)
    bundle = _tiny_model(make_tiny_dataset())
    artifact = compile_mod.compile_predictor(bundle.model_text)
    loaded = ModelBundle.load(bundle.save(tmp_path / "old", compiled=[artifact]))

    assert loaded.predictor.kind == "compiled" and loaded.codec is None
    assert "no native codec" in loaded.codec_unavailable_reason
    payloads = [json.dumps(valid_record(i)).encode() for i in range(5)]
    _assert_same_batch(
        BatchDecoder(loaded.encoder, loaded.codec).decode(_data(payloads)),
        BatchDecoder(compiled.encoder).decode(_data(payloads)),
    )


# --- encoding ---------------------------------------------------------------------------------


def _python_outputs(ids, sequence_numbers, codes, p, model_name, model_version, scored_at):
    return list(
        map(
            _json_encode,
            map(
                VerdictRecord,
                ids,
                repeat(STATUS_SCORED),
                [VERDICTS_BY_CODE[c] for c in codes],
                np.round(p, 4).tolist(),
                repeat(model_name),
                repeat(model_version),
                sequence_numbers,
                repeat(scored_at),
                repeat(()),
            ),
        )
    )


_probabilities = st.one_of(
    st.floats(min_value=0, max_value=1),
    st.integers(0, 10_000).map(lambda k: k / 10_000),
    st.integers(0, 9_999).map(lambda k: (k + 0.5) / 10_000),  # ties of the rounding
    st.tuples(st.integers(0, 10_000), st.sampled_from([-1, 1])).map(
        lambda t: float(np.nextafter(t[0] / 10_000, t[1] * np.inf)) if 0 < t[0] < 10_000 else 0.0
    ),
)


@settings(_SETTINGS, max_examples=300)
@given(
    rows=st.lists(
        st.tuples(_printable_ids, st.integers(0, 2), _probabilities), min_size=1, max_size=20
    ),
    model=st.tuples(st.text(max_size=10), st.text(max_size=5), st.text(max_size=30)),
)
def test_native_output_records_are_msgspecs_bytes(compiled, rows, model):
    service = ScoringService(compiled, InMemoryWriter())  # configures the output texts
    ids = [r[0] for r in rows]
    codes = np.array([r[1] for r in rows], dtype=np.int8)
    p = np.array([r[2] for r in rows])
    sequence_numbers = [str(FIRST_SEQUENCE + i) for i in range(len(rows))]
    segments = output_segments(*model)
    expected = _python_outputs(ids, sequence_numbers, codes, p, *model)
    if segments is None:  # a mark inside the model name: the service encodes in Python
        assert any("\x01" in part or "\x02" in part or "\x03" in part for part in model)
        return
    blob = b"".join(i.encode() + b"\n" for i in ids)
    assert service.codec.encode_scored(blob, sequence_numbers, codes, p, segments) == expected


@pytest.mark.parametrize(
    "ids, sequence_numbers, p",
    [
        (["a"], ["1"], [float("nan")]),
        (["a"], ["1"], [1.5]),
        (["a"], ["1"], [-0.1]),
        (['a"b'], ["1"], [0.5]),
        (["a"], ["1\\"], [0.5]),
        (["é"], ["1"], [0.5]),
        (["a"], ["1é"], [0.5]),
        ([""], ["1"], [0.5]),
    ],
)
def test_what_the_native_encoder_cannot_write_is_left_to_python(compiled, ids, sequence_numbers, p):
    ScoringService(compiled, InMemoryWriter())
    blob = b"".join(i.encode() + b"\n" for i in ids)
    codes = np.zeros(len(ids), dtype=np.int8)
    segments = output_segments("m", "1", "t")
    assert (
        compiled.codec.encode_scored(blob, sequence_numbers, codes, np.array(p), segments) is None
    )


def test_the_service_writes_the_same_records_with_and_without_the_codec(compiled):
    moment = datetime(2026, 12, 2, 6, 0, tzinfo=timezone.utc)
    payloads = [json.dumps(valid_record(i)).encode() for i in range(40)]
    payloads.append(b'{"not": "valid"}')  # one rejection: the Python encoder writes the batch
    outputs = []
    for codec in (compiled.codec, None):
        for batch in (payloads[:-1], payloads):
            writer = InMemoryWriter()
            service = ScoringService(compiled, writer, clock=lambda: moment)
            service.codec = service.decoder.codec = codec
            outcome = service.score_records(kinesis_event(batch)["Records"])
            outputs.append((outcome, writer.records))
    assert outputs[0] == outputs[2] and outputs[1] == outputs[3]
    assert outputs[0][0].n_scored == 40 and outputs[1][0].n_rejected == 1


# --- scoring ----------------------------------------------------------------------------------


def _numpy_score(bundle: ModelBundle, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codec, bundle.codec = bundle.codec, None
    try:
        return bundle.score_codes(matrix)
    finally:
        bundle.codec = codec


@settings(_SETTINGS, max_examples=150)
@given(data=st.data())
def test_native_scoring_equals_the_guard_and_predictor_in_python(compiled, data):
    """Guard (codes, missing rows, numeric bins: values at, just below and above the edges,
    NaN, beyond every edge), grouping, trees and threshold: the same doubles and codes."""
    from tests.conftest import make_tiny_dataset
    from training.features import encode_frame

    base = encode_frame(make_tiny_dataset(), compiled.encoder)
    n = data.draw(st.integers(1, 40))
    rows = base[data.draw(st.lists(st.integers(0, len(base) - 1), min_size=n, max_size=n))].copy()
    edges = [e for e in compiled.guard.edges if e is not None]
    special = [np.nan, 0.0, 1e300, *np.concatenate(edges).tolist()]
    for _ in range(data.draw(st.integers(0, 3 * n))):
        i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, rows.shape[1] - 1))
        if compiled.guard.kinds[j] == "nominal":
            rows[i, j] = data.draw(st.sampled_from([np.nan, 0.0, 1.0, 2.0]))
        else:
            value = data.draw(st.sampled_from(special))
            rows[i, j] = data.draw(
                st.sampled_from([value, np.nextafter(value, -np.inf), np.nextafter(value, np.inf)])
            )
    p, codes = compiled.codec.score(rows)
    expected_p, expected_codes = _numpy_score(compiled, rows)
    assert p.tobytes() == expected_p.tobytes()
    assert codes.tolist() == expected_codes.tolist()


def test_the_bundle_scores_natively_and_the_same(compiled):
    from tests.conftest import make_tiny_dataset
    from training.features import encode_frame

    matrix = encode_frame(make_tiny_dataset(), compiled.encoder)
    assert compiled.codec.scores
    p, codes = compiled.score_codes(matrix)
    expected_p, expected_codes = _numpy_score(compiled, matrix)
    assert p.tobytes() == expected_p.tobytes() and codes.tolist() == expected_codes.tolist()
    assert set(codes.tolist()) >= {0, 1}


def test_a_guard_of_another_shape_is_refused(compiled):
    guard = compiled.guard
    with pytest.raises(NativeCodecError, match="columns"):
        compiled.codec.configure_guard(guard.kinds[:-1], guard.edges[:-1], guard.masks[:-1], 0.5)


def test_values_at_every_guard_edge_score_the_same(compiled):
    """Every row of the tiny dataset with each numeric feature set to each guard edge (and the
    doubles either side): the bins, hence the masks and verdicts, of numpy's searchsorted."""
    from tests.conftest import make_tiny_dataset
    from training.features import encode_frame

    base = encode_frame(make_tiny_dataset(), compiled.encoder)[::4]
    batches = []
    for j, edges in enumerate(compiled.guard.edges):
        if edges is None:
            continue
        for edge in edges:
            for value in (np.nextafter(edge, -np.inf), edge, np.nextafter(edge, np.inf)):
                rows = base.copy()
                rows[:, j] = value
                batches.append(rows)
    matrix = np.concatenate(batches)
    p, codes = compiled.codec.score(matrix)
    expected_p, expected_codes = _numpy_score(compiled, matrix)
    assert codes.tolist() == expected_codes.tolist()
    assert p.tobytes() == expected_p.tobytes()
    assert 0 < np.count_nonzero(codes == 2) < len(codes)  # both sides of the edges are met
