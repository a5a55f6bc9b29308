"""The two evaluations every model gets, and the plots people look at.

1. Random split: a stratified 80/20 split (the same 173 species on both sides). The model fitted
   on the 80% is also the model that gets registered, so its 20% test set is data the model never
   saw, which the promotion gate re-uses to compare challenger and champion.
2. Species held out: grouped 5-fold CV over species. Per fold the model (booster, threshold,
   guard) is fitted on the training species only, minus 20% of their rows, which measure how
   often known species are wrongly called ``unknown``; the held-out species measure how often a
   poisonous mushroom of a species never seen is called ``edible``.

Verdict metrics (threshold + guard) are the shared definitions of
:mod:`lambda_function.verdict_metrics`, under the same names; ``classifier_*``, ``auc`` and
``false_edible_without_guard`` describe the threshold alone, without the guard. Rates are pooled
over folds (sums of counts), not averages of per-fold rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_curve,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import StratifiedGroupKFold

from lambda_function import verdict_metrics as vm
from lambda_function.model import (
    FeatureEncoder,
    ModelBundle,
    decide_verdicts,
)
from training.train import FittedModel, fit_model, split_validation

N_FOLDS = 5
VERDICTS = vm.VERDICTS


def _safe_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


def confusion(y: np.ndarray, verdicts: np.ndarray) -> vm.Confusion:
    """Counts of true label (edible/poisonous) x verdict (edible/poisonous/unknown)."""
    return vm.confusion(y == 1, verdicts)


def verdict_metrics(
    y: np.ndarray, p: np.ndarray, known: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Classifier metrics (threshold only, no guard: ``classifier_*``, ``auc``,
    ``false_edible_without_guard``) and the shared verdict metrics (threshold + guard, named as
    in :mod:`lambda_function.verdict_metrics`)."""
    predicted = (p >= threshold).astype(np.int8)
    verdicts = np.asarray(decide_verdicts(p, known, threshold))
    table = confusion(y, verdicts)
    return {
        "n_test": int(len(y)),
        "classifier_accuracy": float(accuracy_score(y, predicted)) if len(y) else None,
        "classifier_f1": float(f1_score(y, predicted, zero_division=0)),
        "classifier_recall_poisonous": float(recall_score(y, predicted, zero_division=0)),
        "false_edible_without_guard": int(((predicted == 0) & (y == 1)).sum()),
        **vm.all_metrics(table),
        "auc": _safe_auc(y, p),
        "threshold": float(threshold),
        "confusion": table,
    }


def evaluate_bundle(bundle: ModelBundle, matrix: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Verdict metrics of a (possibly older) bundle on encoded rows: used by the gate."""
    p = bundle.booster.predict(matrix, num_threads=2)
    known = bundle.guard.compatible(matrix)
    return verdict_metrics(y, p, known, bundle.threshold)


@dataclass
class RandomSplitResult:
    """The random-split evaluation and the model it trained (the one that gets registered)."""

    metrics: dict[str, Any]
    fitted: FittedModel
    y_test: np.ndarray
    p_test: np.ndarray


def evaluate_random_split(
    matrix: np.ndarray,
    y: np.ndarray,
    species: np.ndarray,
    is_test: np.ndarray,
    encoder: FeatureEncoder,
    seed: int,
) -> RandomSplitResult:
    """Fit on rows where ``is_test`` is False, evaluate on the others."""
    train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    fitted = fit_model(matrix[train_idx], y[train_idx], species[train_idx], encoder, seed)
    p = fitted.booster.predict(matrix[test_idx])
    known = fitted.guard.compatible(matrix[test_idx])
    metrics = verdict_metrics(y[test_idx], p, known, fitted.threshold)
    metrics.update(n_train=int(len(train_idx)), fit_seconds=round(fitted.fit_seconds, 3))
    return RandomSplitResult(metrics=metrics, fitted=fitted, y_test=y[test_idx], p_test=p)


@dataclass
class SpeciesHoldoutResult:
    metrics: dict[str, Any]
    y_unseen: np.ndarray
    p_unseen: np.ndarray
    verdicts_unseen: np.ndarray


def evaluate_species_holdout(
    matrix: np.ndarray,
    y: np.ndarray,
    species: np.ndarray,
    encoder: FeatureEncoder,
    seed: int,
    n_folds: int = N_FOLDS,
) -> SpeciesHoldoutResult:
    """Grouped k-fold over species (stratified by class, fixed seed); see the module docstring."""
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    per_fold: list[dict[str, Any]] = []
    y_all, p_all, v_all = [], [], []
    fe_no_guard = known_total = known_unknown = 0
    for fold, (train_idx, unseen_idx) in enumerate(folds.split(matrix, y, groups=species)):
        fit_idx, known_idx = split_validation(train_idx, species[train_idx], seed)
        fitted = fit_model(matrix[fit_idx], y[fit_idx], species[fit_idx], encoder, seed)
        p = fitted.booster.predict(matrix[unseen_idx])
        known = fitted.guard.compatible(matrix[unseen_idx])
        unseen = verdict_metrics(y[unseen_idx], p, known, fitted.threshold)
        # Known species' held-out rows: only the guard's answer matters here.
        unknown_known = int((~fitted.guard.compatible(matrix[known_idx])).sum())
        fe_no_guard += unseen["false_edible_without_guard"]
        known_total += len(known_idx)
        known_unknown += unknown_known
        per_fold.append(
            {
                "fold": fold,
                "n_train_species": int(len(np.unique(species[fit_idx]))),
                "n_unseen_species": int(len(np.unique(species[unseen_idx]))),
                "n_unseen": int(len(unseen_idx)),
                "threshold": fitted.threshold,
                "auc": unseen["auc"],
                vm.FALSE_EDIBLE: unseen[vm.FALSE_EDIBLE],
                "false_edible_without_guard": unseen["false_edible_without_guard"],
                vm.FALSE_EDIBLE_RATE: unseen[vm.FALSE_EDIBLE_RATE],
                vm.DECISION_ACCURACY: unseen[vm.DECISION_ACCURACY],
                "unknown_rate_unseen": unseen[vm.UNKNOWN_RATE],
                "unknown_rate_known": unknown_known / max(1, len(known_idx)),
                "fit_seconds": round(fitted.fit_seconds, 3),
            }
        )
        y_all.append(y[unseen_idx])
        p_all.append(p)
        v_all.append(np.asarray(decide_verdicts(p, known, fitted.threshold)))
    y_unseen, p_unseen = np.concatenate(y_all), np.concatenate(p_all)
    verdicts = np.concatenate(v_all)
    pooled = confusion(y_unseen, verdicts)
    fold_aucs = [f["auc"] for f in per_fold if f["auc"] is not None]
    metrics = {
        "folds": n_folds,
        "n_species": int(len(np.unique(species))),
        # Pooled AUC of P(poisonous) on unseen species, without the guard.
        "auc": _safe_auc(y_unseen, p_unseen),
        "auc_mean_over_folds": float(np.mean(fold_aucs)) if fold_aucs else None,
        # The shared verdict metrics on the unseen species' rows, pooled over folds.
        **vm.all_metrics(pooled),
        "false_edible_rate_without_guard": fe_no_guard / max(1, int((y_unseen == 1).sum())),
        "unknown_rate_unseen": vm.unknown_rate(vm.verdict_counts(pooled)),
        "unknown_rate_known": known_unknown / max(1, known_total),
        "n_unseen": int(len(y_unseen)),
        "n_known_holdout": known_total,
        "confusion": pooled,
        "per_fold": per_fold,
    }
    return SpeciesHoldoutResult(metrics, y_unseen, p_unseen, verdicts)


# --- plots ------------------------------------------------------------------------------------


def write_plots(
    out_dir: Path,
    random_split: RandomSplitResult,
    holdout: SpeciesHoldoutResult | None,
    feature_names: list[str],
) -> list[Path]:
    """Confusion matrices, ROC and PR curves, feature importance; PNGs in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    panels = [("random split (test 20%)", random_split.metrics["confusion"])]
    if holdout is not None:
        panels.append(("species held out (unseen species)", holdout.metrics["confusion"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False)
    for ax, (title, table) in zip(axes[0], panels):
        counts = np.array([[table[t][v] for v in VERDICTS] for t in table])
        ax.imshow(counts, cmap="Blues")
        ax.set_xticks(range(len(VERDICTS)), VERDICTS)
        ax.set_yticks(range(len(table)), list(table))
        ax.set_xlabel("verdict")
        ax.set_ylabel("true class")
        ax.set_title(title)
        for (i, j), value in np.ndenumerate(counts):
            ax.text(j, i, str(value), ha="center", va="center")
    save(fig, "confusion_matrices.png")

    curves = [("random split", random_split.y_test, random_split.p_test)]
    if holdout is not None:
        curves.append(("unseen species, no guard", holdout.y_unseen, holdout.p_unseen))
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for label, y, p in curves:
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        roc_ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y, p):.3f})")
        precision, recall, _ = precision_recall_curve(y, p)
        pr_ax.plot(recall, precision, label=label)
    roc_ax.plot([0, 1], [0, 1], ls=":", c="grey")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (poisonous)")
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (poisonous)")
    roc_ax.legend(loc="lower right")
    pr_ax.legend(loc="lower left")
    save(fig, "roc_pr_curves.png")

    booster = random_split.fitted.booster
    gain = booster.feature_importance(importance_type="gain")
    order = np.argsort(gain)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([feature_names[i] for i in order], gain[order])
    ax.set(xlabel="total gain", title="Feature importance (gain)")
    save(fig, "feature_importance.png")
    return written
