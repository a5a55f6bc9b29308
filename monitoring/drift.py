"""Feature drift of a window against the training reference, computed with Evidently 0.7.

``DriftShare`` is the share of the schema's features Evidently's ``DataDriftPreset`` finds
drifted (its default per-column tests: K-S / chi-squared on small samples, Wasserstein /
Jensen-Shannon distance on larger ones). Nominal "not observed" is a value of its own
(``MISSING_CODE``): for a mushroom, an absent ring is information, and Evidently refuses
columns that are entirely empty.

The reference follows the served model (:class:`DriftReference`, built by the composition root
``orchestration.monitor`` for the model version the Lambda alias serves): its training data,
so that once a model retrained on new data is served, that data is no longer drift. A
parquet/CSV file (``MONITORING_REFERENCE``) overrides it, and a seeded sample of the dataset is
the fallback when the served model cannot be told. The report says which reference was used.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from lambda_function.schema import FEATURE_NAMES, NOMINAL_FEATURES, NUMERIC_FEATURES

log = logging.getLogger(__name__)

MISSING_CODE = "(not observed)"


@dataclass
class DriftResult:
    """Drift of one window: the share of drifted features and the per-feature details."""

    share: float
    drifted: list[str] = field(default_factory=list)
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: int = 0
    reference: dict[str, Any] | None = None  # DriftReference.to_dict() of the reference used
    # Evidently's Snapshot of the run: kept in the monitoring workspace (``monitoring.workspace``)
    # instead of inlining its multi-megabyte HTML into every window's report.
    window_rows: int = 0  # rows in the window; more than ``rows`` when drift used a sample
    snapshot: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class DriftReference:
    """The reference a window's drift is computed against, and which data it is.

    ``frame`` holds the schema's features (:func:`features_frame`); ``model_version`` is the
    model whose training data it is (None for a file or the dataset fallback), ``rows`` its
    length, ``fingerprint`` a SHA-256 prefix of the data it was drawn from.
    """

    frame: pd.DataFrame
    description: str
    model_version: str | None = None
    fingerprint: str | None = None

    @property
    def rows(self) -> int:
        return len(self.frame)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "rows": self.rows,
            "fingerprint": self.fingerprint,
            "description": self.description,
        }

    @classmethod
    def of(cls, reference: "DriftReference | pd.DataFrame") -> "DriftReference":
        """``reference`` itself, or a plain frame described as such (its fingerprint computed)."""
        if isinstance(reference, DriftReference):
            return reference
        frame = features_frame(reference)
        return cls(frame, "a fixed reference frame", fingerprint=fingerprint(frame))


def describe_reference(reference: Mapping[str, Any] | None) -> str:
    """One line for a report: which data, how many rows, its fingerprint."""
    if not reference:
        return "not recorded"
    version = reference.get("model_version")
    return (
        f"{reference.get('description')}; {reference.get('rows')} rows"
        + (f", model version {version}" if version else "")
        + f", data fingerprint {reference.get('fingerprint') or 'unknown'}"
    )


def fingerprint(frame: pd.DataFrame) -> str:
    """First 12 hex digits of a SHA-256 over the frame's values (row order included)."""
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes()).hexdigest()[:12]


def features_frame(rows: Sequence[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """A frame of exactly the schema's features, typed for drift: numeric float, nominal str."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    out = pd.DataFrame(index=range(len(frame)))
    for name in NUMERIC_FEATURES:
        column = frame[name] if name in frame else pd.Series([None] * len(frame))
        out[name] = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
    for name in NOMINAL_FEATURES:
        column = frame[name] if name in frame else pd.Series([None] * len(frame))
        values = column.astype(object).to_numpy()
        out[name] = [MISSING_CODE if v is None or v != v else str(v) for v in values]
    return out[list(FEATURE_NAMES)]


def load_reference(
    path: Path | None,
    sample: int,
    seed: int = 42,
    load_dataset: Callable[[], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The drift reference: ``path`` (parquet or CSV) if given, else a sample of the dataset."""
    if path is not None:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    elif load_dataset is not None:
        frame = load_dataset()
    else:
        raise ValueError("no drift reference: give a reference file or a dataset loader")
    if len(frame) > sample:
        frame = frame.sample(n=sample, random_state=seed)
    return features_frame(frame.reset_index(drop=True))


def _is_p_value(method: str) -> bool:
    return "p_value" in method.lower()


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    max_rows: int | None = None,
    seed: int = 0,
) -> DriftResult:
    """Run Evidently's DataDriftPreset on the schema features of both frames.

    ``max_rows``: a window with more rows is drifted on a seeded random sample of that many
    (``rows`` says how many were used, ``window_rows`` how many the window had). Beyond a few
    thousand rows Evidently's distances (Wasserstein, Jensen-Shannon) barely move, while its
    time and memory keep growing with the rows (docs/scaling.md).
    """
    # Evidently imports in seconds; only pay that when drift is computed.
    from evidently import DataDefinition, Dataset, Report  # noqa: PLC0415
    from evidently.presets import DataDriftPreset  # noqa: PLC0415

    window_rows = len(current)
    if max_rows is not None and window_rows > max_rows:
        current = current.sample(n=max_rows, random_state=seed)
    reference, current = features_frame(reference), features_frame(current.reset_index(drop=True))
    definition = DataDefinition(
        numerical_columns=list(NUMERIC_FEATURES), categorical_columns=list(NOMINAL_FEATURES)
    )
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    result = DriftResult(share=0.0, rows=len(current), window_rows=window_rows, snapshot=snapshot)
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        kind = config.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            result.share = float(metric["value"]["share"])
        elif kind.endswith("ValueDrift"):
            column, method = config["column"], str(config.get("method"))
            threshold, score = float(config["threshold"]), float(metric["value"])
            drifted = score < threshold if _is_p_value(method) else score >= threshold
            result.columns[column] = {
                "method": method,
                "score": score,
                "threshold": threshold,
                "drifted": drifted,
            }
            if drifted:
                result.drifted.append(column)
    return result
