"""The training pipeline: data -> both evaluations -> MLflow run -> registry + gate -> export.

``run_training`` composes five steps, plain functions with explicit inputs and outputs:
``prepare_step`` (dataset -> encoded frame), ``evaluate_step`` (both evaluations),
``track_step`` (MLflow parameters, metrics, plots), ``gate_step`` (challenger vs champion on the
same held-out rows, fail closed) and ``export_step`` (report, registration, bundle).

``python -m training.pipeline`` (``make train``) trains, evaluates, registers the model as a new
version of ``mushroom-classifier`` (alias ``challenger``), runs the promotion gate and exports the
bundle; ``--evaluate-only`` (``make evaluate``) runs both evaluations, logs an MLflow run and
writes ``reports/evaluation.json`` without registering anything. Both print a short summary.

The registered model is the random-split model (fitted on the 80% training part): its 20% test
rows are then held out from every version trained on the same data, which is what lets the gate
compare challenger and champion on the same unseen rows. The split is keyed by dataset row
(stratified by species, fixed seed), so excluding species or adding records does not move the
other rows between training and test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from config.settings import Settings
from lambda_function import schema
from lambda_function.model import FeatureEncoder, ModelBundle
from training import data as data_mod
from training import evaluate, registry, train
from training.export import export_bundle
from training.features import encode_frame, labels

log = logging.getLogger(__name__)

TEST_SHARE = 0.2
IS_TEST = "_is_test"
# Pseudo species ids for late-labelled records whose species is unknown (see _pseudo_species).
PSEUDO_SPECIES_BASE = 10_000
# The logged MLflow model's name in the run, and the rows of its input example.
MODEL_NAME_IN_RUN = "model"
INPUT_EXAMPLE_ROWS = 3
FOLD_METRIC_PREFIX = "species_holdout.fold"


@dataclass
class TrainingResult:
    """What a pipeline run produced; ``model_version`` is None when nothing was registered."""

    run_id: str
    model_version: str | None
    promoted: bool
    gate_reason: str
    evaluation: dict[str, Any]
    bundle_dir: Path | None
    bundle_uri: str | None = None
    champion_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- data preparation --------------------------------------------------------------------------


def _row_hashes(frame: pd.DataFrame, seed: int) -> np.ndarray:
    columns = [*schema.FEATURE_NAMES, data_mod.LABEL]
    key = f"mushroom{seed:08d}"[-16:].rjust(16, "0")
    return pd.util.hash_pandas_object(frame[columns], index=False, hash_key=key).to_numpy()


def normalize_records(records: pd.DataFrame) -> pd.DataFrame:
    """Bring labelled records (e.g. late labels) to the load_dataset() column conventions."""
    missing = [c for c in (*schema.NUMERIC_FEATURES, data_mod.LABEL) if c not in records]
    if missing:
        raise ValueError(f"extra_records lacks required columns: {missing}")
    out = pd.DataFrame(index=range(len(records)))
    for feature in schema.FEATURES:
        if feature.is_numeric:
            out[feature.name] = records[feature.name].astype(float).to_numpy()
            continue
        column = records[feature.name] if feature.name in records else pd.Series([None] * len(out))
        values = column.astype(object).where(column.notna(), None).to_numpy()
        unknown = {v for v in values if v is not None} - set(feature.vocabulary)
        if unknown:
            raise ValueError(f"extra_records: {feature.name} has unknown codes {sorted(unknown)}")
        out[feature.name] = values
    bad_labels = set(records[data_mod.LABEL]) - {schema.POISONOUS, schema.EDIBLE}
    if bad_labels:
        raise ValueError(f"extra_records: labels must be 'p' or 'e', got {sorted(bad_labels)}")
    out[data_mod.LABEL] = records[data_mod.LABEL].to_numpy()
    species = records.get(data_mod.SPECIES_ID, pd.Series([-1] * len(out)))
    out[data_mod.SPECIES_ID] = pd.to_numeric(species).fillna(-1).astype(int).to_numpy()
    for name in (data_mod.SPECIES_NAME, data_mod.FAMILY):
        out[name] = records[name].to_numpy() if name in records else None
    out[data_mod.ROW_ID] = -1
    return out


def _pseudo_species(records: pd.DataFrame) -> np.ndarray:
    """Group records of unknown species into pseudo species for the guard and the CV.

    In this data a species fixes which nominal features are observed at all, so (label,
    pattern of observed nominal features) separates most species; merged species only make the
    guard a little more permissive, never make a record of them "unknown".
    """
    observed = records[list(schema.NOMINAL_FEATURES)].notna().astype(int).astype(str)
    keys = records[data_mod.LABEL].astype(str) + ":" + observed.agg("".join, axis=1)
    codes, _ = pd.factorize(keys, sort=True)
    return PSEUDO_SPECIES_BASE + codes


def prepare_frame(
    full: pd.DataFrame,
    seed: int,
    exclude_species: Sequence[int] = (),
    extra_records: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The training frame with an ``_is_test`` column (the random split).

    Dataset rows: a stratified-by-species 80/20 split of the FULL dataset (so it does not depend
    on exclusions). Extra records: dropped when they duplicate a row still in the frame (they
    would leak across the split; rows of excluded species are new data to this model),
    otherwise assigned to test by a seeded hash of their content.
    """
    _, test_rows = train_test_split(
        full[data_mod.ROW_ID].to_numpy(),
        test_size=TEST_SHARE,
        stratify=full[data_mod.SPECIES_ID].to_numpy(),
        random_state=seed,
    )
    frame = full.copy()
    frame[IS_TEST] = frame[data_mod.ROW_ID].isin(set(test_rows.tolist()))
    if exclude_species:
        unknown_ids = set(exclude_species) - set(frame[data_mod.SPECIES_ID])
        if unknown_ids:
            raise ValueError(f"exclude_species: no such species ids {sorted(unknown_ids)}")
        frame = frame[~frame[data_mod.SPECIES_ID].isin(list(exclude_species))]
    if extra_records is not None and len(extra_records):
        extra = normalize_records(extra_records)
        hashes = _row_hashes(extra, seed)
        # Only rows still in the frame can leak: records of excluded species are new data.
        duplicate = np.isin(hashes, _row_hashes(frame, seed))
        if duplicate.any():
            log.info("dropping %d extra records identical to dataset rows", duplicate.sum())
        extra, hashes = extra[~duplicate].reset_index(drop=True), hashes[~duplicate]
        unknown = extra[data_mod.SPECIES_ID].to_numpy() < 0
        if unknown.any():
            extra.loc[unknown, data_mod.SPECIES_ID] = _pseudo_species(extra[unknown])
        extra[IS_TEST] = (hashes % 5) == 0
        frame = pd.concat([frame, extra], ignore_index=True)
    return frame.reset_index(drop=True)


def frame_checksum(frame: pd.DataFrame) -> str:
    """SHA-256 over the exact training frame (features, label, species): the data's identity."""
    columns = [*schema.FEATURE_NAMES, data_mod.LABEL, data_mod.SPECIES_ID]
    hashes = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes()).hexdigest()


# --- the steps: prepare -> evaluate -> track -> gate -> export ---------------------------------


@dataclass(frozen=True)
class PreparedData:
    """The training frame and its encoding: what every later step reads."""

    frame: pd.DataFrame
    encoder: FeatureEncoder
    matrix: np.ndarray
    y: np.ndarray
    species: np.ndarray
    is_test: np.ndarray
    data_sha: str
    excluded_species: list[int]
    n_extra_records: int

    @property
    def n_species(self) -> int:
        return int(len(np.unique(self.species)))


@dataclass(frozen=True)
class Evaluated:
    """Both evaluations; the random split's model is the one that gets registered."""

    random_split: evaluate.RandomSplitResult
    holdout: evaluate.SpeciesHoldoutResult
    predict_ms: float
    seconds: dict[str, float]

    @property
    def fitted(self) -> train.FittedModel:
        return self.random_split.fitted


@dataclass(frozen=True)
class GateOutcome:
    """The promotion gate's decision on the challenger, with the metrics it compared."""

    promoted: bool
    reason: str
    champion_version: str | None
    challenger: dict[str, Any]
    champion: dict[str, Any] | None

    def report(self) -> dict[str, Any]:
        """The ``gate`` section of ``evaluation.json``."""
        return {
            "champion_version": self.champion_version,
            "would_promote": self.promoted,
            "reason": self.reason,
            "challenger": _summary(self.challenger),
            "champion": _summary(self.champion) if self.champion else None,
        }

    def mlflow_metrics(self) -> dict[str, float]:
        return {
            **_flat_metrics("gate.challenger", self.challenger),
            **(_flat_metrics("gate.champion", self.champion) if self.champion else {}),
        }


@dataclass(frozen=True)
class Exported:
    """What the export step wrote: the version (None when not registering) and the bundle."""

    version: str | None
    bundle_dir: Path | None
    bundle_uri: str | None
    report_path: Path


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in ("per_fold", "confusion")}


def _flat_metrics(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    return {
        f"{prefix}.{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def prepare_step(
    settings: Settings,
    exclude_species: Sequence[int] = (),
    extra_records: pd.DataFrame | None = None,
) -> PreparedData:
    """Load the verified dataset, build the training frame (:func:`prepare_frame`), encode it."""
    frame = prepare_frame(
        data_mod.load_dataset(settings), settings.seed, exclude_species, extra_records
    )
    encoder = FeatureEncoder.from_schema()
    return PreparedData(
        frame=frame,
        encoder=encoder,
        matrix=encode_frame(frame, encoder),
        y=labels(frame),
        species=frame[data_mod.SPECIES_ID].to_numpy(),
        is_test=frame[IS_TEST].to_numpy(),
        data_sha=frame_checksum(frame),
        excluded_species=sorted(int(s) for s in exclude_species),
        n_extra_records=0 if extra_records is None else int(len(extra_records)),
    )


def evaluate_step(settings: Settings, data: PreparedData) -> Evaluated:
    """The random-split and species-held-out evaluations, and the model's predict time."""
    started = time.perf_counter()
    random_split = evaluate.evaluate_random_split(
        data.matrix, data.y, data.species, data.is_test, data.encoder, settings.seed
    )
    random_seconds = time.perf_counter() - started
    holdout = evaluate.evaluate_species_holdout(
        data.matrix, data.y, data.species, data.encoder, settings.seed
    )
    holdout_seconds = time.perf_counter() - started - random_seconds
    predict_ms = train.predict_ms_1000(random_split.fitted.booster, data.matrix[data.is_test])
    return Evaluated(
        random_split,
        holdout,
        predict_ms,
        {"random_split": random_seconds, "species_holdout": holdout_seconds},
    )


def evaluation_report(
    settings: Settings, data: PreparedData, evaluated: Evaluated, reason: str
) -> dict[str, Any]:
    """The content of ``reports/evaluation.json`` before the gate and the registry add theirs."""
    return {
        "model_version": "unregistered",
        "random_split": evaluated.random_split.metrics,
        "species_holdout": evaluated.holdout.metrics,
        "training_seconds": None,
        "predict_ms_1000": round(evaluated.predict_ms, 3),
        "threshold": evaluated.fitted.threshold,
        "n_rows": int(len(data.frame)),
        "n_species": data.n_species,
        "excluded_species": data.excluded_species,
        "n_extra_records": data.n_extra_records,
        "dataset_sha256": data_mod.dataset_checksum(),
        "training_data_sha256": data.data_sha,
        "reason": reason,
        "seed": settings.seed,
        # Where the time goes (2 shared cores: contention from other processes shows here).
        "stage_seconds": {k: round(v, 2) for k, v in evaluated.seconds.items()},
    }


def run_params(settings: Settings, data: PreparedData) -> dict[str, Any]:
    """The MLflow run's parameters (also recorded in the bundle's metadata)."""
    return {
        **{f"lgb.{k}": v for k, v in train.lgb_params(settings.seed).items()},
        "num_boost_round": train.NUM_BOOST_ROUND,
        "guard_numeric_margin": train.GUARD_NUMERIC_MARGIN,
        "threshold_default": train.DEFAULT_THRESHOLD,
        "test_share": TEST_SHARE,
        "species_folds": evaluate.N_FOLDS,
        "seed": settings.seed,
        "n_rows": len(data.frame),
        "n_species": data.n_species,
        "excluded_species": ",".join(map(str, data.excluded_species))[:5000] or "none",
        "n_extra_records": data.n_extra_records,
        "dataset_sha256": data_mod.dataset_checksum(),
        "training_data_sha256": data.data_sha,
        "lightgbm_version": lgb.__version__,
    }


def fold_metrics(per_fold: Sequence[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per-fold figures keyed by fold index, under one name per figure: logged with ``step`` =
    fold, the MLflow UI draws one chart per figure with a point per fold (rather than a
    single-bar chart per fold and figure)."""
    index_key = f"{FOLD_METRIC_PREFIX}.fold"
    return {
        int(fold["fold"]): {
            k: v for k, v in _flat_metrics(FOLD_METRIC_PREFIX, fold).items() if k != index_key
        }
        for fold in per_fold
    }


def track_step(params: dict[str, Any], data: PreparedData, evaluated: Evaluated) -> None:
    """Log parameters, the evaluations' metrics and the plots to the active MLflow run."""
    import mlflow

    mlflow.log_params(params)
    holdout = evaluated.holdout.metrics
    metrics = {
        **_flat_metrics("random_split", evaluated.random_split.metrics),
        **_flat_metrics("species_holdout", holdout),
        "predict_ms_1000": evaluated.predict_ms,
        "threshold": evaluated.fitted.threshold,
    }
    mlflow.log_metrics(metrics)
    for step, values in sorted(fold_metrics(holdout["per_fold"]).items()):
        mlflow.log_metrics(values, step=step)  # one batch per fold
    with tempfile.TemporaryDirectory() as tmp:
        plots = evaluate.write_plots(
            Path(tmp),
            evaluated.random_split,
            evaluated.holdout,
            list(data.encoder.feature_order),
        )
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")


def gate_step(
    settings: Settings, client: Any, challenger: ModelBundle, data: PreparedData
) -> GateOutcome:
    """Compare the challenger with the registry's champion on the same held-out rows.

    Fails closed: a champion that cannot be evaluated refuses the challenger
    (:func:`training.registry.decide_promotion`).
    """
    test_rows, y_test = data.frame[data.is_test], data.y[data.is_test]
    challenger_metrics = evaluate.evaluate_bundle(challenger, data.matrix[data.is_test], y_test)
    champion = registry.get_champion(settings, client)
    champion_version = champion[0] if champion else None
    champion_metrics, champion_error = _evaluate_champion(
        settings, client, champion, test_rows, y_test
    )
    promoted, reason = registry.decide_promotion(
        challenger_metrics,
        champion_metrics,
        champion_version=champion_version,
        champion_error=champion_error,
    )
    return GateOutcome(promoted, reason, champion_version, challenger_metrics, champion_metrics)


def export_step(
    settings: Settings,
    client: Any,
    run_id: str,
    evaluation: dict[str, Any],
    params: dict[str, Any],
    evaluated: Evaluated,
    data: PreparedData,
    gate: GateOutcome,
    *,
    reason: str,
    register: bool,
    started: float,
    move_champion: bool = True,
) -> Exported:
    """Write ``evaluation.json`` (file and run artifact); when ``register``: register the version
    (alias ``challenger``: the run's logged pyfunc model), record the gate's decision, and save
    the bundle in the run (``bundle/`` and inside the model), locally and (champion) in S3.
    ``evaluation`` gets the version and the timings."""
    import mlflow

    from training import pyfunc  # imports MLflow: only when a run is logged

    version = None
    logged_model = None
    if register:
        # The version is the logged model: created first (empty) so that its number is known
        # before the bundle that records it is written; the artifacts follow below.
        logged_model = mlflow.initialize_logged_model(name=MODEL_NAME_IN_RUN, source_run_id=run_id)
        version = registry.register_version(
            client,
            settings.model_name,
            f"models:/{logged_model.model_id}",
            run_id,
            tags={"reason": reason, "training_data_sha256": data.data_sha},
            model_id=logged_model.model_id,
        )
        registry.record_decision(
            client,
            settings.model_name,
            version,
            run_id,
            gate.promoted,
            gate.reason,
            gate.champion_version,
            move_champion=move_champion,
        )
        evaluation["model_version"] = version
    evaluation["training_seconds"] = round(time.perf_counter() - started, 2)
    evaluation["stage_seconds"]["mlflow_gate_registry"] = round(
        evaluation["training_seconds"] - sum(evaluation["stage_seconds"].values()), 2
    )
    mlflow.log_metric("training_seconds", evaluation["training_seconds"])
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    report_path = settings.reports_dir / "evaluation.json"
    report_path.write_text(json.dumps(evaluation, indent=2) + "\n")
    mlflow.log_artifact(str(report_path))
    if version is None:
        return Exported(None, None, None, report_path)
    metadata = {
        "mlflow_run_id": run_id,
        "registered_version": version,
        "dataset_sha256": data_mod.dataset_checksum(),
        "data_checksum": data.data_sha,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lightgbm_version": lgb.__version__,
        "params": {k: str(v) for k, v in params.items()},
        "excluded_species": data.excluded_species,
        "training_metrics": {
            "random_split": _summary(evaluated.random_split.metrics),
            "species_holdout": _summary(evaluated.holdout.metrics),
            "predict_ms_1000": evaluation["predict_ms_1000"],
        },
    }
    bundle = train.to_bundle(evaluated.fitted, data.encoder, settings.model_name, version, metadata)
    with tempfile.TemporaryDirectory() as tmp:
        saved = bundle.save(Path(tmp) / "bundle")
        mlflow.log_artifacts(str(saved), "bundle")
        example = pyfunc.input_example(
            data.frame[data.is_test].head(INPUT_EXAMPLE_ROWS).to_dict("records")
        )
        pyfunc.log_model(saved, example, model_id=logged_model.model_id, name=MODEL_NAME_IN_RUN)
    bundle_dir, bundle_uri = export_bundle(
        bundle, settings, champion=gate.promoted and move_champion
    )
    return Exported(version, bundle_dir, bundle_uri, report_path)


def run_training(
    settings: Settings,
    *,
    exclude_species: Sequence[int] = (),
    extra_records: pd.DataFrame | None = None,
    reason: str = "manual",
    register: bool = True,
    move_champion: bool = True,
) -> TrainingResult:
    """Train, evaluate both ways, log to MLflow and (if ``register``) register + gate + export.

    ``move_champion=False`` (the closed loop's shadow promotion): a version that passes the gate
    is registered and tagged promoted by the gate, but the registry's ``champion`` stays; it
    moves when the shadow's live evidence promotes the version (``make promote``).

    ``exclude_species`` trains as if those species did not exist; ``extra_records`` (same
    columns as load_dataset; species_id may be -1) are appended to the data.
    """
    import mlflow

    started = time.perf_counter()
    data = prepare_step(settings, exclude_species, extra_records)
    load_seconds = time.perf_counter() - started
    evaluated = evaluate_step(settings, data)
    evaluation = evaluation_report(settings, data, evaluated, reason)
    evaluation["stage_seconds"] = {"load": round(load_seconds, 2), **evaluation["stage_seconds"]}
    params = run_params(settings, data)

    client, _ = registry.configure_mlflow(settings)
    run_tags = {"reason": reason, "mode": "train" if register else "evaluate-only"}
    with mlflow.start_run(
        run_name=f"{reason}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}", tags=run_tags
    ) as run:
        run_id = run.info.run_id
        track_step(params, data, evaluated)
        challenger = train.to_bundle(evaluated.fitted, data.encoder, settings.model_name)
        gate = gate_step(settings, client, challenger, data)
        evaluation["gate"] = gate.report()
        mlflow.log_metrics(gate.mlflow_metrics())
        exported = export_step(
            settings,
            client,
            run_id,
            evaluation,
            params,
            evaluated,
            data,
            gate,
            reason=reason,
            register=register,
            started=started,
            move_champion=move_champion,
        )

    # Evaluate-only registers nothing, so nothing is promoted (the report says what the gate
    # would have decided).
    promoted = gate.promoted and register
    return TrainingResult(
        run_id=run_id,
        model_version=exported.version,
        promoted=promoted,
        gate_reason=gate.reason,
        evaluation=evaluation,
        bundle_dir=exported.bundle_dir,
        bundle_uri=exported.bundle_uri,
        champion_version=(
            exported.version if promoted and move_champion else gate.champion_version
        ),
        extra={
            "total_seconds": round(time.perf_counter() - started, 2),
            "report": str(exported.report_path),
        },
    )


def _evaluate_champion(
    settings: Settings,
    client: Any,
    champion: tuple[str, str] | None,
    test_rows: pd.DataFrame,
    y_test: np.ndarray,
) -> tuple[dict[str, Any] | None, str | None]:
    """The champion's gate metrics on the challenger's test rows, or the reason it failed.

    Any failure (bundle missing, corrupt or failing its checksums, artifacts unreachable) is
    returned as a reason, which makes the gate refuse: a challenger is never promoted because
    the model it should beat could not be scored.
    """
    if champion is None:
        return None, None
    try:
        bundle = registry.load_champion_bundle(settings, client, champion[0])
        # Encoded with the champion's own vocabularies: codes may differ between versions.
        matrix = encode_frame(test_rows, bundle.encoder)
        return evaluate.evaluate_bundle(bundle, matrix, y_test), None
    except Exception as exc:  # noqa: BLE001 - every failure must close the gate, with its reason
        reason = f"{type(exc).__name__}: {exc}"[:500]
        log.error("champion v%s cannot be evaluated (%s): the gate refuses", champion[0], reason)
        return None, reason


def _print_summary(result: TrainingResult) -> None:
    ev = result.evaluation
    rs, sh = ev["random_split"], ev["species_holdout"]
    print(
        f"random split   : decision_accuracy {rs['decision_accuracy']:.5f}  coverage "
        f"{rs['coverage']:.5f}  false_edible {rs['false_edible']}  n_test {rs['n_test']}  "
        f"classifier_accuracy {rs['classifier_accuracy']:.5f}  threshold {ev['threshold']:.4f}"
    )
    print(
        f"species heldout: {sh['folds']} folds over {sh['n_species']} species  auc {sh['auc']:.3f}"
        f"  false_edible_rate {sh['false_edible_rate']:.4%}  unknown_rate_unseen "
        f"{sh['unknown_rate_unseen']:.2%}  unknown_rate_known {sh['unknown_rate_known']:.3%}"
    )
    print(
        f"predict_ms_1000 {ev['predict_ms_1000']:.2f}  training_seconds {ev['training_seconds']}"
        f"  (total {result.extra['total_seconds']} s)  mlflow run {result.run_id}"
    )
    if result.model_version is None:
        print(f"evaluate-only: nothing registered; gate would say: {ev['gate']['reason']}")
    else:
        decision = "PROMOTED to champion" if result.promoted else "not promoted"
        print(f"model version {result.model_version}: {decision}: {result.gate_reason}")
        print(
            f"bundle: {result.bundle_dir}" + (f"  {result.bundle_uri}" if result.bundle_uri else "")
        )
    print(f"report: {result.extra['report']}")


def _parse_species(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated species ids: {exc}") from exc


def held_out_sample(settings: Settings, n_records: int, seed: int) -> pd.DataFrame:
    """``n_records`` rows of the random split's test part: mushrooms no model trained on."""
    frame = prepare_frame(data_mod.load_dataset(settings), settings.seed)
    test = frame[frame[IS_TEST]]
    return test.sample(n=min(n_records, len(test)), random_state=seed).reset_index(drop=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--evaluate-only", action="store_true", help="evaluate and report, register nothing"
    )
    parser.add_argument(
        "--exclude-species", type=_parse_species, default=[], help="e.g. 1,2,3 (0..172)"
    )
    parser.add_argument("--reason", default="manual", help="recorded as the run's reason tag")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    try:
        result = run_training(
            settings,
            exclude_species=args.exclude_species,
            reason=args.reason,
            register=not args.evaluate_only,
        )
    except (data_mod.DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
