"""The registered model as an MLflow pyfunc: the Lambda's scoring service around the bundle.

``mlflow.pyfunc.load_model("models:/mushroom-classifier@champion")`` and ``mlflow models
serve`` load this file (MLflow's "models from code": the file is stored in the model and run on
load, no pickle) with the bundle as the artifact ``bundle`` and ``lambda_function`` as code.
``predict`` turns each input row into the JSON payload a producer would send and scores the
batch with :class:`lambda_function.service.ScoringService`, so the species guard, the threshold,
the input contract's checks, the misread check and the output record are the Lambda's own: one
output row per input row, ``status`` ``scored`` (``verdict``, ``p_poisonous``, and ``misread``:
the single misread attribute that made an edible verdict ``unknown``, as JSON, else "") or
``rejected`` (``errors``).

Input: a frame of the 20 features (``schema.FEATURE_NAMES``; nominal codes, null / NaN = not
observed) and an optional ``mushroom_id`` (default: the row's position).
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import mlflow
import msgspec
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from lambda_function import schema
from lambda_function.model import ModelBundle
from lambda_function.service import ScoringService
from lambda_function.writer import InMemoryWriter

BUNDLE_ARTIFACT = "bundle"
# The output columns, from the output contract (README, Contracts).
OUTPUT_COLUMNS = (
    "mushroom_id",
    "status",
    "verdict",
    "p_poisonous",
    "model_version",
    "errors",
    "misread",
)


def _payload(row: Mapping[str, Any], position: int) -> bytes:
    """One input row as the JSON a producer sends: NaN / None means "not observed" (omitted)."""
    record: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        # numpy scalars (from a frame) become Python numbers/strings for JSON.
        record[key] = value.item() if hasattr(value, "item") else value
    record.setdefault(schema.ID_FIELD, str(position))
    return json.dumps(record).encode()


def score_frame(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """Score ``frame`` with the Lambda's scoring service; one output row per input row."""
    writer = InMemoryWriter()
    # Sequence numbers are the row positions: they put the outputs back in input order.
    records = [
        {
            "kinesis": {
                "data": base64.b64encode(_payload(row, i)).decode(),
                "sequenceNumber": str(i),
            }
        }
        for i, row in enumerate(frame.to_dict("records"))
    ]
    ScoringService(bundle, writer).score_records(records)
    outputs = sorted(writer.records, key=lambda written: int(written[0]))
    rows = [msgspec.json.decode(data) for _, _, data in outputs]
    result = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
    # A column of strings: a field-by-field list of dicts does not fit MLflow's output schema.
    result["errors"] = [json.dumps(row["errors"]) if row["errors"] else "" for row in rows]
    result["misread"] = [json.dumps(row["misread"]) if row.get("misread") else "" for row in rows]
    return result


class MushroomVerdictModel(PythonModel):
    """Verdicts of the bundle in artifact ``bundle`` (see the module docstring)."""

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load(context.artifacts[BUNDLE_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return score_frame(self.bundle, pd.DataFrame(model_input))


def signature() -> ModelSignature:
    """The 20 features (numbers required, nominal codes optional) in; the verdict record out."""
    inputs = [ColSpec("string", schema.ID_FIELD, required=False)] + [
        ColSpec("double", f.name) if f.is_numeric else ColSpec("string", f.name, required=False)
        for f in schema.FEATURES
    ]
    outputs = [
        ColSpec("string", "mushroom_id", required=False),
        ColSpec("string", "status"),
        ColSpec("string", "verdict", required=False),
        ColSpec("double", "p_poisonous", required=False),
        ColSpec("string", "model_version"),
        ColSpec("string", "errors"),
        ColSpec("string", "misread"),
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def input_example(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A few feature rows as the frame ``predict`` takes (nominal "not observed" as None)."""
    frame = pd.DataFrame([{name: row.get(name) for name in schema.FEATURE_NAMES} for row in rows])
    for feature in schema.FEATURES:
        column = frame[feature.name]
        frame[feature.name] = (
            column.astype(float)
            if feature.is_numeric
            else column.astype(object).where(column.notna(), None)
        )
    return frame


def log_model(
    bundle_dir: Path, example: pd.DataFrame, *, model_id: str | None = None, name: str = "model"
) -> Any:
    """Log the pyfunc (this file, ``lambda_function`` as code, the bundle) to the active run.

    ``model_id``: a logged model created beforehand (:func:`mlflow.initialize_logged_model`),
    so the registry version can exist before the bundle that records its number.
    """
    package = Path(schema.__file__).resolve().parent
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=Path(__file__).resolve(),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        code_paths=[str(package)],
        signature=signature(),
        input_example=example,
        # What the code imports; the versions are the training environment's.
        pip_requirements=_requirements(),
        model_id=model_id,
    )


def _requirements() -> list[str]:
    from importlib.metadata import version  # noqa: PLC0415

    return [
        f"{name}=={version(name)}"
        for name in ("mlflow", "lightgbm", "numpy", "pandas", "msgspec", "aws-lambda-powertools")
    ]


def bundle_path(model_dir: Path) -> Path:
    """Where a downloaded registry source keeps the bundle: the pyfunc's artifact, or itself.

    Versions registered before the pyfunc existed point at the run's ``bundle/`` directory.
    """
    if (model_dir / "MLmodel").is_file():
        return model_dir / "artifacts" / BUNDLE_ARTIFACT
    return model_dir


# Models from code: MLflow runs this file on load and serves the object set here.
mlflow.models.set_model(MushroomVerdictModel())
