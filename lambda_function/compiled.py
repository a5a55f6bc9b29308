"""The compiled predictor: the model's trees as native code, loaded with ctypes.

Training (``training/compile.py``) turns ``model.txt`` into C (treelite + tl2cgen), adds the
batch entry point below and compiles it into ``predictor-<platform>.so``, listed in
``bundle.json`` under ``compiled_predictors`` (platform -> file, ABI) and, like every bundle
file, in ``files`` with its size and SHA-256. The ABI (version ``PREDICTOR_ABI``):

- ``int32_t mushroom_predictor_abi(void)``: the ABI version;
- ``int32_t mushroom_num_feature(void)``: the model's number of features;
- ``int32_t mushroom_predict_batch(const double* X, int64_t n_rows, int32_t n_cols,
  double* out)``: P(positive class) of each row of the C-ordered matrix ``X``, NaN = missing,
  exactly as LightGBM's ``Booster.predict``; returns 0, or -1 when ``n_cols`` is wrong;
- ``mushroom_scorer_create``, ``mushroom_scorer_score``, ``mushroom_scorer_free``: the species
  guard, rows grouped by species, the trees and the threshold in one call
  (``lambda_function/native/scorer.c``, wrapped by ``NativeScorer``), on the encoded matrix
  only: no native code reads the stream's bytes (msgspec does, ``decoding.py``);
- ``mushroom_num_tree``, ``mushroom_predict_batch_leaves`` and ``mushroom_scorer_score_leaves``
  (libraries compiled since the trees record their leaves; optional: an older one is served
  without them): the same, with each row's leaf in each tree, which the misread check then
  reads instead of walking the trees again (``training/compile.py`` ``patch_leaf_ordinals``);
- ``mushroom_build_flags``: how it was built (the hardening flags, checked by the tests).

ABI 2 is the hardened library without the native codec of ABI 1 (decision 0007): a bundle
compiled for ABI 1 is served by LightGBM, or refused by a package without it.

Loading a shared library runs its code, so it is loaded only from bytes that were verified
against ``bundle.json``: the caller passes those bytes, they are copied into a sealed anonymous
memory file (``memfd_create``: no path anyone else can write) and loaded from there, so what
runs is exactly what was checked. Needs only the standard library and numpy.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import platform
import re
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

PREDICTOR_ABI = 2
PREDICT_SYMBOL = "mushroom_predict_batch"
ABI_SYMBOL = "mushroom_predictor_abi"
NUM_FEATURE_SYMBOL = "mushroom_num_feature"
BUILD_FLAGS_SYMBOL = "mushroom_build_flags"
#: mushroom_scorer_score's status codes (scorer.c).
_SCORER_ERRORS = {
    -1: "bad argument",
    -2: "out of memory",
    -3: "the compiled trees refused the matrix",
}
_BAD_CODE = -4
_SEALS = ("F_SEAL_SEAL", "F_SEAL_SHRINK", "F_SEAL_GROW", "F_SEAL_WRITE")


@dataclass(frozen=True)
class CompiledArtifact:
    """A compiled predictor as training writes it into a bundle."""

    platform: str
    file_name: str
    data: bytes
    glibc: str | None  # highest GLIBC symbol version it needs; None when it names none
    compiler: str
    abi: Any = PREDICTOR_ABI

    def metadata(self) -> dict[str, Any]:
        """Its entry in bundle.json's ``compiled_predictors`` (the checksum is in ``files``)."""
        return {
            "file": self.file_name,
            "abi": self.abi,
            "glibc": self.glibc,
            "compiler": self.compiler,
        }


class CompiledPredictorError(RuntimeError):
    """The compiled predictor cannot be loaded or does not match the model."""


def platform_tag() -> str:
    """This process's platform, as bundles name it: ``linux-x86_64``, ``darwin-arm64``, ..."""
    return f"{platform.system().lower()}-{platform.machine().lower()}"


def predictor_file_name(platform_name: str) -> str:
    return f"predictor-{platform_name}.so"


def libc_version() -> tuple[int, ...] | None:
    """The running glibc's version, e.g. (2, 34); None when it is not glibc (or unknown)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return None
    match = re.fullmatch(r"glibc (\d+)\.(\d+)", text.strip())
    return (int(match[1]), int(match[2])) if match else None


def glibc_supports(required: str | None) -> bool:
    """True when this process's glibc provides the symbol version ``required`` (``GLIBC_2.29``).

    No requirement recorded: True. A requirement on a system without glibc: False.
    """
    if not required:
        return True
    match = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", required)
    running = libc_version()
    if match is None or running is None:
        return False
    return running >= (int(match[1]), int(match[2]))


class CompiledPredictor:
    """P(poisonous) for encoded matrices, from the compiled trees; see the module docstring."""

    kind = "compiled"

    def __init__(self, library: Any, n_features: int, file_name: str):
        self.library = library  # kept: the functions below live as long as it does
        self._predict = getattr(library, PREDICT_SYMBOL)
        self._predict.restype = ctypes.c_int32
        self._predict.argtypes = (
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_int32,
            ctypes.c_void_p,
        )
        self.n_features = n_features
        self.file_name = file_name

    @classmethod
    def from_verified_bytes(
        cls, data: bytes, n_features: int, file_name: str
    ) -> "CompiledPredictor":
        """Load the library from ``data`` (already checked against bundle.json)."""
        try:
            fd = os.memfd_create(file_name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        except (AttributeError, OSError) as exc:
            raise CompiledPredictorError(f"cannot create a memory file for {file_name}: {exc}")
        try:
            with os.fdopen(os.dup(fd), "wb") as handle:
                handle.write(data)
            seals = 0
            for name in _SEALS:
                seals |= getattr(fcntl, name, 0)
            if hasattr(fcntl, "F_ADD_SEALS"):
                # Sealed: nobody, not even this process, can change the bytes after the check.
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            library = ctypes.CDLL(f"/proc/self/fd/{fd}", mode=os.RTLD_LOCAL | os.RTLD_NOW)
        except OSError as exc:
            os.close(fd)
            raise CompiledPredictorError(f"cannot load {file_name}: {exc}") from exc
        # The descriptor stays open for the life of the process, as the library does (ctypes
        # never unloads one): dlopen() reuses a loaded library of the same path name, so a
        # closed, reused /proc/self/fd/N would hand a second bundle the first one's trees.
        try:
            abi = getattr(library, ABI_SYMBOL)
            abi.restype = ctypes.c_int32
            num_feature = getattr(library, NUM_FEATURE_SYMBOL)
            num_feature.restype = ctypes.c_int32
        except AttributeError as exc:
            raise CompiledPredictorError(f"{file_name} lacks the predictor ABI: {exc}") from exc
        if abi() != PREDICTOR_ABI:
            raise CompiledPredictorError(
                f"{file_name} implements predictor ABI {abi()}, this code reads {PREDICTOR_ABI}"
            )
        if num_feature() != n_features:
            raise CompiledPredictorError(
                f"{file_name} was compiled for {num_feature()} features, the bundle has "
                f"{n_features}"
            )
        return cls(library, n_features, file_name)

    def build_flags(self) -> str:
        """How the library was built (``mushroom_build_flags``), e.g. its hardening flags."""
        flags = getattr(self.library, BUILD_FLAGS_SYMBOL)
        flags.restype = ctypes.c_char_p
        return flags().decode("ascii")

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(poisonous) for an ``(n, n_features)`` matrix, in one native call."""
        rows = np.ascontiguousarray(matrix, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} columns, got {rows.shape}")
        out = np.empty(rows.shape[0], dtype=np.float64)
        status = self._predict(rows.ctypes.data, rows.shape[0], rows.shape[1], out.ctypes.data)
        if status != 0:
            raise CompiledPredictorError(f"{self.file_name} returned status {status}")
        return out


class NativeScorer:
    """The species guard, rows grouped by species, the trees and the threshold of one bundle in
    one native call (``scorer.c``): what ``ModelBundle.score_codes`` computes, faster.

    The guard is copied into a native context at creation and never changed afterwards; this
    object owns it (freed when the object is collected), so concurrent calls are safe and no
    reconfiguration can pull arrays from under a running call.
    """

    def __init__(
        self,
        library: Any,
        column_names: Sequence[str],
        kinds: Sequence[str],
        edges: Sequence[np.ndarray | None],
        masks: Sequence[np.ndarray],
        threshold: float,
    ):
        """CompiledPredictorError when the library has no scorer or refuses the guard."""
        try:
            create, score, free = (
                library.mushroom_scorer_create,
                library.mushroom_scorer_score,
                library.mushroom_scorer_free,
            )
        except AttributeError as exc:
            raise CompiledPredictorError(f"the library has no native scorer ({exc})") from exc
        p, i32, i64 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
        create.restype = p
        create.argtypes = (i32, i32, p, p, p, p, i64, p, i64, ctypes.c_double, p)
        score.restype = i32
        score.argtypes = (p, p, i64, i32, p, p, p, p)
        free.restype, free.argtypes = None, (p,)
        try:  # a library compiled before the trees recorded their leaves has neither
            score_leaves, num_tree = library.mushroom_scorer_score_leaves, library.mushroom_num_tree
        except AttributeError:
            score_leaves = num_tree = None
        if score_leaves is not None and num_tree is not None:
            score_leaves.restype, score_leaves.argtypes = i32, (p, p, i64, i32, p, p, p, p, p)
            num_tree.restype, num_tree.argtypes = i32, ()
        if not (len(column_names) == len(kinds) == len(edges) == len(masks)):
            raise CompiledPredictorError("the guard does not describe every column")
        nominal = np.array([kind == "nominal" for kind in kinds], dtype=np.int32)
        sizes = np.array([m.shape[0] for m in masks], dtype=np.int64)
        counts = np.array([0 if e is None else len(e) for e in edges], dtype=np.int64)
        flat_edges = np.ascontiguousarray(
            np.concatenate(
                [np.asarray(e, dtype=np.float64) for e in edges if e is not None] or [np.empty(0)]
            ),
            dtype=np.float64,
        )
        table = np.ascontiguousarray(np.concatenate(masks), dtype=np.uint64)
        status = ctypes.c_int32(0)
        context = create(
            len(kinds),
            table.shape[1],
            nominal.ctypes.data,
            sizes.ctypes.data,
            counts.ctypes.data,
            flat_edges.ctypes.data,
            flat_edges.size,
            table.ctypes.data,
            table.shape[0],
            float(threshold),
            ctypes.byref(status),
        )
        if not context:
            raise CompiledPredictorError(
                f"the native scorer refused the species guard (status {status.value})"
            )
        self._library = library  # kept: its functions live as long as it does
        self._score = score
        self._score_leaves = score_leaves
        #: The model's number of trees when the library records the rows' leaves, else None.
        self.n_trees: int | None = int(num_tree()) if num_tree is not None else None
        self._context = context
        self.column_names = tuple(column_names)
        self.n_columns = len(self.column_names)
        self._finalizer = weakref.finalize(self, free, context)

    def score(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P(poisonous) and verdict codes (int8: 0 edible, 1 poisonous, 2 unknown).

        ValueError when the matrix has the wrong shape or holds a nominal value that is no
        code of its vocabulary (the decoder never writes one); CompiledPredictorError when the
        native call fails otherwise.
        """
        p, codes, _ = self._run(matrix, with_leaves=False)
        return p, codes

    def score_with_leaves(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        """``score``, and each row's leaf in each tree as the compiled trees recorded it while
        they scored the row (``(n, n_trees)`` int32, the global leaf numbers of
        ``lambda_function/trees.py``), or None when the library does not record them."""
        return self._run(matrix, with_leaves=self.n_trees is not None)

    def _run(self, matrix: np.ndarray, with_leaves: bool) -> tuple[np.ndarray, np.ndarray, Any]:
        rows = np.ascontiguousarray(matrix, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_columns:
            raise ValueError(f"expected a matrix of {self.n_columns} columns, got {rows.shape}")
        n = rows.shape[0]
        p = np.empty(n, dtype=np.float64)
        codes = np.empty(n, dtype=np.int8)
        bad_row, bad_column = ctypes.c_int64(-1), ctypes.c_int32(-1)
        leaves = np.empty((n, self.n_trees or 0), dtype=np.int32) if with_leaves else None
        arguments = (self._context, rows.ctypes.data, n, self.n_columns)
        outputs = (p.ctypes.data, codes.ctypes.data)
        errors = (ctypes.byref(bad_row), ctypes.byref(bad_column))
        if leaves is not None:
            status = self._score_leaves(*arguments, *outputs, leaves.ctypes.data, *errors)
        else:
            status = self._score(*arguments, *outputs, *errors)
        if status == _BAD_CODE:
            name = self.column_names[bad_column.value]
            value = rows[bad_row.value, bad_column.value]
            raise ValueError(
                f"row {bad_row.value}: {name} = {value!r} is no code of its vocabulary"
            )
        if status != 0:
            raise CompiledPredictorError(
                f"the native scorer failed: {_SCORER_ERRORS.get(status, f'status {status}')}"
            )
        return p, codes, leaves
