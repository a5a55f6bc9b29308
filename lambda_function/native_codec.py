"""The native batch codec of a compiled predictor: one call decodes a batch, one encodes it.

Training compiles ``lambda_function/native/codec.c`` into the same shared library as the trees
(``compiled.py``), so it is loaded only from the verified bundle, like them. It is a shortcut
of the Python code, not a second definition of the contracts:

- ``decode``: base64 + JSON + validation + encoding of a whole batch into the model's matrix.
  It accepts a strict subset of what ``schema.validate_record`` accepts (canonical base64,
  ASCII-only flat objects, the schema's fields at most once, numbers without a sign); every
  other record is marked and goes to the Python decoder (``decoding.BatchDecoder``), which
  decides and explains. The field names, kinds, codes and limits are passed in from the schema
  and the bundle's encoder at load, never compiled in;
- ``encode_scored``: the output records of a batch of scored observations, from constant
  segments that ``service`` encodes with msgspec (so field names, order and number formatting
  stay ``VerdictRecord``'s), or None when anything is unusual: the caller then encodes.

Both are tested to give exactly what the Python code gives (tests/unit/lambda_function/
test_native_codec.py, with byte-level mutations of valid records).
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Mapping, Sequence

import numpy as np

from lambda_function import schema

CODEC_ABI = 1
ABI_SYMBOL = "mushroom_codec_abi"
_KIND_NUMERIC, _KIND_NOMINAL, _KIND_ID = 0, 1, 2
#: p_poisonous is rounded to 4 decimals: it takes the values k / 10^4, k = 0..10^4.
PROBABILITY_STEPS = 10_000

_p = ctypes.c_void_p
_i64 = ctypes.c_int64
_SIGNATURES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "mushroom_codec_configure": (
        ctypes.c_int32,
        (ctypes.c_int32, ctypes.c_int32, _p, _p, _p, _p, _p, ctypes.c_int32, _i64),
    ),
    "mushroom_codec_configure_output": (ctypes.c_int32, (_p, _i64, _p, _i64)),
    "mushroom_decode_batch": (_i64, (_p, _i64, _i64, _p, _p, _p, _i64)),
    "mushroom_encode_scored": (_i64, (_i64, _p, _i64, _p, _i64, _p, _p, _p, _i64, _p, _i64)),
    "mushroom_guard_configure": (
        ctypes.c_int32,
        (ctypes.c_int32, ctypes.c_int32, _p, _p, _p, _p, _p, _p, _i64, ctypes.c_double),
    ),
    "mushroom_score_batch": (ctypes.c_int32, (_p, _i64, _p, _p)),
}


class NativeCodecError(RuntimeError):
    """The library's codec cannot be used with this schema and bundle."""


def _blob(items: Sequence[bytes]) -> bytes:
    """Items each followed by a newline, the codec's list format."""
    return b"".join(item + b"\n" for item in items)


class NativeCodec:
    """Decodes and encodes batches with a compiled predictor's native codec."""

    def __init__(
        self, library: Any, feature_order: Sequence[str], vocabularies: Mapping[str, Sequence]
    ):
        """Configure the library's codec for this schema and the bundle's encoder.

        NativeCodecError when the library has no codec of this ABI or refuses the settings.
        """
        try:
            abi = getattr(library, ABI_SYMBOL)
        except AttributeError as exc:
            raise NativeCodecError(f"the library has no native codec ({exc})") from exc
        abi.restype = ctypes.c_int32
        if abi() != CODEC_ABI:
            raise NativeCodecError(f"native codec ABI {abi()}, this code reads {CODEC_ABI}")
        self._library = library  # kept: its functions live as long as it does
        self._functions = {}
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(library, name)
            function.restype, function.argtypes = restype, argtypes
            self._functions[name] = function
        self.n_columns = len(feature_order)
        column_of = {name: j for j, name in enumerate(feature_order)}
        fields = [*schema.FEATURES, schema.ID_FIELD]
        names, kinds, columns = [], [], []
        values = np.full((len(fields), 256), np.nan)
        allowed = np.zeros((len(fields), 256), dtype=np.uint8)
        for f, feature in enumerate(fields):
            if isinstance(feature, str):  # the id
                names.append(feature)
                kinds.append(_KIND_ID)
                columns.append(-1)
                continue
            names.append(feature.name)
            columns.append(column_of[feature.name])
            if feature.is_numeric:
                kinds.append(_KIND_NUMERIC)
                continue
            kinds.append(_KIND_NOMINAL)
            # The bundle's code of each schema code; a schema code the bundle does not know is
            # missing (NaN), as FeatureEncoder.encode_rows maps it.
            bundle_codes = {code: float(i) for i, code in enumerate(vocabularies[feature.name])}
            for code in feature.vocabulary:
                if len(code) == 1 and code.isascii():
                    allowed[f, ord(code)] = 1
                    values[f, ord(code)] = bundle_codes.get(code, np.nan)
                # Codes of other lengths are left to the Python decoder (not allowed here).
        self._keep = (
            b"".join(name.encode("ascii") + b"\0" for name in names),
            np.array(kinds, dtype=np.int32),
            np.array(columns, dtype=np.int32),
            values,
            allowed,
        )
        status = self._functions["mushroom_codec_configure"](
            len(fields),
            self.n_columns,
            self._keep[0],
            self._keep[1].ctypes.data,
            self._keep[2].ctypes.data,
            values.ctypes.data,
            allowed.ctypes.data,
            schema.ID_MAX_LENGTH,
            schema.MAX_RECORD_BYTES,
        )
        if status != 0:
            raise NativeCodecError(f"the native codec refused this schema (status {status})")
        self._output_configured = False
        self.scores = False  # configure_guard: score() is available
        # Buffers kept between batches, per thread: allocating and freeing ~0.5 MB per batch
        # makes malloc return the memory to the kernel and fault it in again (~0.5 ms).
        self._buffers = threading.local()

    def _buffer(self, name: str, size: int) -> np.ndarray:
        """A reusable byte buffer of at least ``size`` bytes (this thread's)."""
        buffer = getattr(self._buffers, name, None)
        if buffer is None or buffer.size < size:
            buffer = np.empty(max(size, 2 * getattr(buffer, "size", 0)), dtype=np.uint8)
            setattr(self._buffers, name, buffer)
        return buffer

    def decode(self, data: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, list[str], bytes] | None:
        """Kinesis ``data`` fields -> (matrix, status, ids, ids blob), or None.

        ``status[i]`` is 0 when record i was accepted (its matrix row and id are set), 1 when
        the Python decoder must decide. None: the batch is not for the native path (a field that
        is not ASCII text, or holds a newline), and the caller decodes it all.
        """
        n = len(data)
        try:
            # A character that is not ASCII becomes "?", which is not base64 either: the codec
            # leaves that record (only) to Python.
            texts = "\n".join([*data, ""]).encode("ascii", "replace")
        except TypeError:  # a field that is not text
            return None
        # Kept until the next batch: freeing it now would let malloc hand the pages back to the
        # kernel, and the next batch would fault them in again (0.05 ms instead of 0.15-0.7).
        self._buffers.texts = texts
        matrix = np.empty((n, self.n_columns), dtype=np.float64)
        status = np.empty(n, dtype=np.uint8)
        # Ids are parts of the decoded texts: the texts' length bounds them, newlines included.
        ids = self._buffer("ids", min(n * (schema.ID_MAX_LENGTH + 1), len(texts)))
        written = self._functions["mushroom_decode_batch"](
            texts, len(texts), n, matrix.ctypes.data, status.ctypes.data, ids.ctypes.data, ids.size
        )
        if written < 0:  # -2: a field held a newline; nothing else is expected
            return None
        blob = ids[:written].tobytes()
        return matrix, status, blob.decode("ascii").split("\n")[:-1], blob

    def configure_guard(
        self,
        kinds: Sequence[str],
        edges: Sequence[np.ndarray | None],
        masks: Sequence[np.ndarray],
        threshold: float,
    ) -> None:
        """The bundle's species guard (per column: ``"nominal"`` or ``"numeric"``, its edges,
        its masks ``(rows, words)``) and threshold, for ``score``."""
        if len(kinds) != self.n_columns:
            raise NativeCodecError(
                f"the guard has {len(kinds)} columns, the codec {self.n_columns}"
            )
        nominal = np.array([kind == "nominal" for kind in kinds], dtype=np.int32)
        sizes = np.array([m.shape[0] for m in masks], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        counts = np.array([0 if e is None else len(e) for e in edges], dtype=np.int64)
        flat_edges = np.concatenate(
            [np.asarray(e, dtype=np.float64) for e in edges if e is not None] or [np.empty(0)]
        )
        table = np.ascontiguousarray(np.concatenate(masks), dtype=np.uint64)
        status = self._functions["mushroom_guard_configure"](
            self.n_columns,
            table.shape[1],
            nominal.ctypes.data,
            offsets.ctypes.data,
            sizes.ctypes.data,
            flat_edges.ctypes.data,
            counts.ctypes.data,
            table.ctypes.data,
            table.shape[0],
            float(threshold),
        )
        if status != 0:
            raise NativeCodecError(f"the native codec refused the species guard (status {status})")
        self.scores = True

    def score(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """P(poisonous) and verdict codes, as ``ModelBundle.score_codes`` gives them (guard,
        rows grouped by species, trees, threshold) in one native call; None if it cannot."""
        rows = np.ascontiguousarray(matrix, dtype=np.float64)
        if not self.scores or rows.ndim != 2 or rows.shape[1] != self.n_columns:
            return None
        n = rows.shape[0]
        p = np.empty(n, dtype=np.float64)
        codes = np.empty(n, dtype=np.int8)
        if self._functions["mushroom_score_batch"](
            rows.ctypes.data, n, p.ctypes.data, codes.ctypes.data
        ):
            return None
        return p, codes

    def configure_output(self, verdict_texts: Sequence[bytes], probability_texts: Sequence[bytes]):
        """The JSON texts of the verdicts (edible, poisonous, unknown) and of k / 10^4."""
        if len(verdict_texts) != 3 or len(probability_texts) != PROBABILITY_STEPS + 1:
            raise NativeCodecError("3 verdict texts and 10,001 probability texts are needed")
        verdicts, probabilities = _blob(verdict_texts), _blob(probability_texts)
        status = self._functions["mushroom_codec_configure_output"](
            verdicts, len(verdicts), probabilities, len(probabilities)
        )
        if status != 0:
            raise NativeCodecError(f"the native codec refused the output texts ({status})")
        self._output_configured = True

    def encode_scored(
        self,
        ids_blob: bytes,
        sequence_numbers: Sequence[str],
        verdict_codes: np.ndarray,
        p_poisonous: np.ndarray,
        segments: Sequence[bytes],
    ) -> list[bytes] | None:
        """One output record per scored observation: ``segments`` (5 constant parts) around
        the id, verdict, rounded p_poisonous and sequence number; None when the codec cannot
        (an id or sequence number that is not plain printable ASCII, p outside [0, 1])."""
        if not self._output_configured or len(segments) != 5:
            return None
        n = len(sequence_numbers)
        try:
            sequences = "\n".join([*sequence_numbers, ""]).encode("ascii")
        except (TypeError, UnicodeEncodeError):  # written as they are: plain ASCII only
            return None
        codes = np.ascontiguousarray(verdict_codes, dtype=np.int8)
        p = np.ascontiguousarray(p_poisonous, dtype=np.float64)
        if codes.shape != (n,) or p.shape != (n,):
            return None
        constant = _blob(segments)
        # Each record: the segments, its id and sequence number, at most 11 bytes of verdict and
        # 6 of probability ("0.1235"), 4 quotes, 1 newline: an upper bound, not a guess.
        capacity = n * (len(constant) + 32) + len(ids_blob) + len(sequences)
        out = self._buffer("out", capacity)
        written = self._functions["mushroom_encode_scored"](
            n,
            ids_blob,
            len(ids_blob),
            sequences,
            len(sequences),
            codes.ctypes.data,
            p.ctypes.data,
            constant,
            len(constant),
            out.ctypes.data,
            capacity,
        )
        if written < 0:
            return None
        return out[:written].tobytes().split(b"\n")[:-1]
