"""The two evaluations every model gets, and the plots people look at.

1. Random split: a stratified 80/20 split (the same 173 species on both sides). The model fitted
   on the 80% is also the model that gets registered, so its 20% test set is data the model never
   saw, which the promotion gate re-uses to compare challenger and champion.
2. Species held out: grouped 5-fold CV over species. Per fold the model (booster, threshold,
   guard) is fitted on the training species only, minus 20% of their rows, which measure how
   often known species are wrongly called ``unknown``; the held-out species measure how often a
   poisonous mushroom of a species never seen is called ``edible``.

Verdict metrics (threshold + guard + misread check: the served verdict) are the shared
definitions of :mod:`lambda_function.verdict_metrics`, under the same names; ``classifier_*``,
``auc`` and ``false_edible_without_guard`` describe the threshold alone, without the guard.
Rates are pooled over folds (sums of counts), not averages of per-fold rates.

Robustness to one misread attribute (``lambda_function/misread.py``): ``misread_false_edible``
counts the single-attribute variants of the held-out poisonous rows that the served verdict
calls edible (every other code of each observed nominal attribute; each measurement x0.8, x0.9,
x1.1, x1.2, x1.25, x10 and x0.1), out of ``misread_variants``; ``misread_unknown`` counts the
held-out rows the misread check turned from edible to unknown, and ``edible_called_edible``
is the share of edible held-out rows still called edible (the check's coverage price).
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
from lambda_function.misread import MisreadCheck
from lambda_function.model import (
    FeatureEncoder,
    ModelBundle,
    SpeciesGuard,
    verdict_codes,
    verdict_strings,
)
from lambda_function.trees import parse_model
from training.compile import misread_library
from training.train import FittedModel, fit_model, split_validation

N_FOLDS = 5
VERDICTS = vm.VERDICTS
MISREAD_FALSE_EDIBLE = "misread_false_edible"
MISREAD_VARIANTS = "misread_variants"
MISREAD_UNKNOWN = "misread_unknown"
EDIBLE_CALLED_EDIBLE = "edible_called_edible"
#: The measurement changes of the misread evaluation (the nominal ones: every other code).
VARIANT_FACTORS = (0.8, 0.9, 1.1, 1.2, 1.25, 10.0, 0.1)


def misread_check(
    booster: Any, guard: SpeciesGuard, threshold: float, encoder: FeatureEncoder
) -> MisreadCheck:
    """The served misread check of a model, native when a compiler is at hand."""
    return MisreadCheck(
        parse_model(booster.model_to_string()),
        guard,
        encoder.feature_order,
        encoder.vocabularies,
        threshold,
        library=misread_library(),
    )


def robust_codes(
    check: MisreadCheck, booster: Any, matrix: np.ndarray, p: np.ndarray, known: np.ndarray
) -> np.ndarray:
    """The served verdict codes: threshold, guard, then the misread check."""
    codes = verdict_codes(p, known, check.threshold)
    return check.check(matrix, codes, lambda rows: booster.predict(rows, num_threads=2)).codes


def single_changes(matrix: np.ndarray, encoder: FeatureEncoder) -> Any:
    """Blocks of variants of ``matrix``: one attribute changed in every row of a block."""
    for j, name in enumerate(encoder.feature_order):
        column = matrix[:, j]
        observed = ~np.isnan(column)
        if name in encoder.vocabularies:
            for code in range(len(encoder.vocabularies[name])):
                block = matrix[observed & (column != code)].copy()
                block[:, j] = code
                yield block
        else:
            for factor in VARIANT_FACTORS:
                block = matrix[observed].copy()
                block[:, j] *= factor
                yield block


def nominal_twins(
    variants: np.ndarray, rows: np.ndarray, groups: np.ndarray, nominal: np.ndarray
) -> dict[str, Any]:
    """How many ``variants`` have every nominal attribute of one of ``rows`` (a null matching
    a null), how many of those also lie within the measurement ranges of their twins, and the
    ``groups`` (species) of the twins. A variant with a twin among the training data's edible
    rows looks, to anything learned from those rows, like that edible species."""
    with_twin = inside = 0
    twin_groups: set[int] = set()
    a = rows[:, nominal]
    for variant in variants:
        b = variant[nominal]
        twins = np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=1)
        if not twins.any():
            continue
        with_twin += 1
        twin_groups.update(int(g) for g in np.unique(groups[twins]))
        box = rows[twins][:, ~nominal]
        values = variant[~nominal]
        inside += bool(np.all((values >= box.min(axis=0)) & (values <= box.max(axis=0))))
    return {
        "variants": int(len(variants)),
        "with_edible_twin": with_twin,
        "within_twins_measurements": inside,
        "twin_species": sorted(twin_groups),
    }


def misread_false_edible(
    check: MisreadCheck, booster: Any, poisonous: np.ndarray, encoder: FeatureEncoder
) -> tuple[int, int]:
    """(variants called edible, variants) over the single changes of poisonous rows."""
    edible = n = 0
    for block in single_changes(poisonous, encoder):
        if not len(block):
            continue
        p = booster.predict(block, num_threads=2)
        codes = robust_codes(check, booster, block, p, check.guard.compatible(block))
        edible += int(np.count_nonzero(codes == 0))
        n += len(block)
    return edible, n


def robustness(
    check: MisreadCheck,
    booster: Any,
    matrix: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    known: np.ndarray,
    encoder: FeatureEncoder,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The served codes of held-out rows and the misread figures (module docstring)."""
    base = verdict_codes(p, known, check.threshold)
    codes = robust_codes(check, booster, matrix, p, known)
    false_edible, n_variants = misread_false_edible(check, booster, matrix[y == 1], encoder)
    n_edible = int((y == 0).sum())
    return codes, {
        MISREAD_FALSE_EDIBLE: false_edible,
        MISREAD_VARIANTS: n_variants,
        MISREAD_UNKNOWN: int(np.count_nonzero(codes != base)),
        EDIBLE_CALLED_EDIBLE: (
            int(np.count_nonzero((codes == 0) & (y == 0))) / n_edible if n_edible else None
        ),
    }


def _safe_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


def confusion(y: np.ndarray, verdicts: np.ndarray) -> vm.Confusion:
    """Counts of true label (edible/poisonous) x verdict (edible/poisonous/unknown)."""
    return vm.confusion(y == 1, verdicts)


def verdict_metrics(
    y: np.ndarray,
    p: np.ndarray,
    known: np.ndarray,
    threshold: float,
    codes: np.ndarray | None = None,
) -> dict[str, Any]:
    """Classifier metrics (threshold only, no guard: ``classifier_*``, ``auc``,
    ``false_edible_without_guard``) and the shared verdict metrics (of the verdict ``codes``,
    by default threshold + guard; named as in :mod:`lambda_function.verdict_metrics`)."""
    predicted = (p >= threshold).astype(np.int8)
    if codes is None:
        codes = verdict_codes(p, known, threshold)
    verdicts = np.asarray(verdict_strings(codes))
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
    """Verdict metrics and misread figures of a (possibly older) bundle's served verdict on
    encoded rows: used by the gate."""
    p = bundle.booster.predict(matrix, num_threads=2)
    known = bundle.guard.compatible(matrix)
    check = misread_check(bundle.booster, bundle.guard, bundle.threshold, bundle.encoder)
    codes, figures = robustness(check, bundle.booster, matrix, y, p, known, bundle.encoder)
    return {**verdict_metrics(y, p, known, bundle.threshold, codes), **figures}


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
    test = matrix[test_idx]
    p = fitted.booster.predict(test)
    known = fitted.guard.compatible(test)
    check = misread_check(fitted.booster, fitted.guard, fitted.threshold, encoder)
    codes, figures = robustness(check, fitted.booster, test, y[test_idx], p, known, encoder)
    metrics = {**verdict_metrics(y[test_idx], p, known, fitted.threshold, codes), **figures}
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
    misread_totals = {MISREAD_FALSE_EDIBLE: 0, MISREAD_VARIANTS: 0, MISREAD_UNKNOWN: 0}
    known_edible = known_edible_called_edible = 0
    for fold, (train_idx, unseen_idx) in enumerate(folds.split(matrix, y, groups=species)):
        fit_idx, known_idx = split_validation(train_idx, species[train_idx], seed)
        fitted = fit_model(matrix[fit_idx], y[fit_idx], species[fit_idx], encoder, seed)
        check = misread_check(fitted.booster, fitted.guard, fitted.threshold, encoder)
        p = fitted.booster.predict(matrix[unseen_idx])
        known = fitted.guard.compatible(matrix[unseen_idx])
        codes, figures = robustness(
            check, fitted.booster, matrix[unseen_idx], y[unseen_idx], p, known, encoder
        )
        unseen = verdict_metrics(y[unseen_idx], p, known, fitted.threshold, codes)
        for key in misread_totals:
            misread_totals[key] += figures[key]
        # Known species' held-out rows: called unknown by the guard or the misread check.
        known_rows = matrix[known_idx]
        known_codes = robust_codes(
            check,
            fitted.booster,
            known_rows,
            fitted.booster.predict(known_rows),
            fitted.guard.compatible(known_rows),
        )
        unknown_known = int(np.count_nonzero(known_codes == 2))
        known_edible += int((y[known_idx] == 0).sum())
        known_edible_called_edible += int(
            np.count_nonzero((known_codes == 0) & (y[known_idx] == 0))
        )
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
                MISREAD_FALSE_EDIBLE: figures[MISREAD_FALSE_EDIBLE],
                "fit_seconds": round(fitted.fit_seconds, 3),
            }
        )
        y_all.append(y[unseen_idx])
        p_all.append(p)
        v_all.append(np.asarray(verdict_strings(codes)))
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
        **misread_totals,
        # The coverage price on known species: their edible held-out rows still called edible.
        EDIBLE_CALLED_EDIBLE + "_known": known_edible_called_edible / max(1, known_edible),
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
