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
- optionally, the native batch codec (``native_codec.py``, ``mushroom_codec_abi`` and the
  functions it lists): a library without it is served with the Python decoder.

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
from dataclasses import dataclass
from typing import Any

import numpy as np

PREDICTOR_ABI = 1
PREDICT_SYMBOL = "mushroom_predict_batch"
ABI_SYMBOL = "mushroom_predictor_abi"
NUM_FEATURE_SYMBOL = "mushroom_num_feature"
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
