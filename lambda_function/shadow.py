"""The shadow: a second model bundle scored beside the served one, never served.

A function version whose ``SHADOW_BUNDLE_URI`` is set scores every accepted record with both
bundles. The record's verdict stays the served bundle's; the shadow's verdict, computed exactly
like the served one (species guard, threshold, misread check) by the shadow's own bundle, goes
into the additive ``shadow`` field, so that monitoring can compare the two on the same records
before the shadow answers anyone. A shadow that cannot be loaded or scored never stops serving:
each scored record then carries the shadow's error instead of its verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from lambda_function.bundle_store import load_bundle
from lambda_function.config import ShadowSetting
from lambda_function.model import ModelBundle

#: The longest error text a record carries (it is repeated on every scored record of a batch).
MAX_ERROR_CHARS = 200
_NOT_LOADED = "shadow not loaded"
_NOT_SCORED = "shadow scoring failed"


@dataclass(frozen=True)
class ShadowScores:
    """The shadow's outcome on one batch's accepted rows: its probabilities and verdict codes
    (as ``MisreadResult.codes``), or the error that kept it from scoring them."""

    model_version: str
    p_poisonous: np.ndarray | None = None
    codes: np.ndarray | None = None
    error: str | None = None


def short_reason(what: str, exc: BaseException | str) -> str:
    """``what: <the exception>`` on one line, at most ``MAX_ERROR_CHARS`` characters."""
    reason = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    text = " ".join(f"{what}: {reason}".split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


class Shadow:
    """The shadow bundle of a function version, or why it is unusable (``error``)."""

    def __init__(
        self, model_version: str, bundle: ModelBundle | None = None, error: str | None = None
    ):
        if (bundle is None) == (error is None):
            raise ValueError("a shadow has either a bundle or an error")
        self.model_version = model_version
        self.bundle = bundle
        self.error = error

    @classmethod
    def load(
        cls,
        setting: ShadowSetting,
        cache_dir: str,
        predictor: str,
        loader: Callable[..., ModelBundle] = load_bundle,
    ) -> "Shadow":
        """The shadow of ``setting``, loaded and verified like any bundle (checksums first);
        a bad setting or a bundle that fails to load gives a shadow that reports why."""
        if setting.problem is not None:
            return cls(setting.model_version, error=short_reason(_NOT_LOADED, setting.problem))
        try:
            bundle = loader(setting.uri, cache_dir, predictor=predictor)
        except Exception as exc:  # BundleError, a download or a library that fails: any
            return cls(setting.model_version, error=short_reason(_NOT_LOADED, exc))
        return cls(bundle.model_version, bundle)

    def score(self, matrix: np.ndarray) -> ShadowScores:
        """The shadow's verdicts on the accepted rows (the served bundle's matrix: both
        bundles read the schema's features in the schema's order, checked when they load)."""
        if self.bundle is None:
            return ShadowScores(self.model_version, error=self.error)
        try:
            p_poisonous, robust = self.bundle.score_robust(matrix)
            if len(p_poisonous) != len(matrix) or len(robust.codes) != len(matrix):
                raise ValueError(f"{len(robust.codes)} verdicts for {len(matrix)} rows")
        except Exception as exc:  # never let the shadow fail the batch
            return ShadowScores(self.model_version, error=short_reason(_NOT_SCORED, exc))
        return ShadowScores(self.model_version, p_poisonous, robust.codes)

    def describe(self) -> dict[str, Any]:
        """Fields for the cold-start log line."""
        if self.bundle is None:
            return {"shadow_model_version": self.model_version, "shadow_error": self.error}
        return {
            "shadow_model_version": self.model_version,
            "shadow_predictor": self.bundle.predictor.kind,
            "shadow_trees": self.bundle.n_trees,
        }
