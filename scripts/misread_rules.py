"""Blocking rules of the misread check, measured on the evaluation's own models.

The served rule (decision 0008): a single-attribute variant blocks ``edible`` when the guard
knows it and ``P(poisonous) >= threshold``. The family measured here: a variant blocks when
``P(poisonous)`` reaches ``known_level`` (the guard knows it) or ``unknown_level`` (it does
not); the served rule is ``(threshold, never)``. For the random split and each species-held-out
fold (the same seed, folds and models as ``make evaluate``), every rule gets the evaluation's
figures: ``misread_false_edible`` (single changes of the held-out poisonous rows called edible;
``training/evaluate.py``), ``decision_accuracy`` and ``edible_called_edible`` on the random
split, ``unknown_rate_known`` and ``edible_called_edible_known`` pooled over the folds.

The variants are materialised as ``MisreadCheck.reference`` does (every other code; the
interval's ends, cut points and midpoints; the unit slips) and scored once with LightGBM and
the guard; each rule is then a comparison. The served rule's row reproduces ``make evaluate``.
For each fold, the served rule's false edible variants are compared with the edible rows the
fold's model was trained on (``training.evaluate.nominal_twins``): a variant with every nominal
attribute of such a row looks like that known edible species to anything learned from them.

``python -m scripts.misread_rules`` (needs data/: ``make data``): a Markdown table on stdout,
``reports/misread_rules.json``. About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from config.settings import REPO_ROOT, Settings
from lambda_function import verdict_metrics as vm
from lambda_function.misread import MARGIN, MisreadCheck
from lambda_function.model import verdict_codes, verdict_strings
from training import evaluate
from training.pipeline import prepare_step
from training.train import fit_model, split_validation

NEVER = math.inf
THRESHOLD = "threshold"
#: (known_level, unknown_level): THRESHOLD is the model's threshold, NEVER never blocks.
RULES: tuple[tuple[Any, Any], ...] = (
    (THRESHOLD, NEVER),
    (THRESHOLD, THRESHOLD),
    (THRESHOLD, 0.9),
    (THRESHOLD, 0.99),
    (THRESHOLD, 0.999),
    (THRESHOLD, 0.9999),
    (0.1, NEVER),
    (0.01, NEVER),
    (0.001, NEVER),
)
CHUNK_ROWS = 1500

Rule = Callable[[np.ndarray, np.ndarray], np.ndarray]


def rule_name(known_level: Any, unknown_level: Any) -> str:
    def level(x: Any) -> str:
        return "never" if x == NEVER else ("t" if x == THRESHOLD else f"{x:g}")

    return f"known p >= {level(known_level)}, unknown p >= {level(unknown_level)}"


def rules(threshold: float) -> dict[str, Rule]:
    """Rule name -> blocks(p, known) for a model's threshold."""
    out = {}
    for known_level, unknown_level in RULES:
        k = threshold if known_level == THRESHOLD else known_level
        u = threshold if unknown_level == THRESHOLD else unknown_level

        def blocks(p: np.ndarray, known: np.ndarray, k: float = k, u: float = u) -> np.ndarray:
            return np.where(known, p >= k - MARGIN, p >= u - MARGIN)

        out[rule_name(known_level, unknown_level)] = blocks
    return out


def blocked(check: MisreadCheck, booster: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rule -> per row (all edible): some single-attribute variant blocks it."""
    by_rule = rules(check.threshold)
    out = {name: np.zeros(len(rows), dtype=bool) for name in by_rule}
    for start in range(0, len(rows), CHUNK_ROWS):
        owners, blocks = [], []
        for i in range(start, min(len(rows), start + CHUNK_ROWS)):
            feature, value = check.variants(rows[i])
            block = np.repeat(rows[i][None, :], len(feature), axis=0)
            block[np.arange(len(feature)), feature] = value
            blocks.append(block)
            owners.append(np.full(len(feature), i))
        if not blocks:
            continue
        variants, owner = np.concatenate(blocks), np.concatenate(owners)
        p = booster.predict(variants, num_threads=2)
        known = check.guard.compatible(variants)
        for name, rule in by_rule.items():
            out[name][np.unique(owner[rule(p, known)])] = True
    return out


def codes_by_rule(check: MisreadCheck, booster: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rule -> the verdict codes of ``rows`` (threshold, guard, then the check by that rule)."""
    p = booster.predict(rows, num_threads=2)
    codes = verdict_codes(p, check.guard.compatible(rows), check.threshold)
    edible = np.flatnonzero(codes == 0)
    out = {}
    for name, hit in blocked(check, booster, rows[edible]).items():
        robust = codes.copy()
        robust[edible[hit]] = 2
        out[name] = robust
    return out


def false_edible(check: MisreadCheck, booster: Any, poisonous: np.ndarray, encoder: Any) -> Any:
    """Rule -> single changes of ``poisonous`` rows called edible; how many changes; and the
    changes the served rule calls edible."""
    variants = np.concatenate([b for b in evaluate.single_changes(poisonous, encoder) if len(b)])
    codes = codes_by_rule(check, booster, variants)
    served = codes[rule_name(*RULES[0])]
    counts = {name: int(np.count_nonzero(c == 0)) for name, c in codes.items()}
    return counts, len(variants), variants[served == 0]


def measure(settings: Settings) -> dict[str, Any]:
    data = prepare_step(settings)
    matrix, y, species, encoder, seed = (
        data.matrix,
        data.y,
        data.species,
        data.encoder,
        settings.seed,
    )
    nominal = np.array([name in encoder.vocabularies for name in encoder.feature_order])
    train_idx, test_idx = np.flatnonzero(~data.is_test), np.flatnonzero(data.is_test)
    fitted = fit_model(matrix[train_idx], y[train_idx], species[train_idx], encoder, seed)
    check = evaluate.misread_check(fitted.booster, fitted.guard, fitted.threshold, encoder)
    test, y_test = matrix[test_idx], y[test_idx]
    codes = codes_by_rule(check, fitted.booster, test)
    fe, n_variants, _ = false_edible(check, fitted.booster, test[y_test == 1], encoder)
    random_split: dict[str, Any] = {"threshold": fitted.threshold, "variants": n_variants}
    for name, c in codes.items():
        table = evaluate.confusion(y_test, np.asarray(verdict_strings(c)))
        random_split[name] = {
            evaluate.MISREAD_FALSE_EDIBLE: fe[name],
            vm.DECISION_ACCURACY: vm.all_metrics(table)[vm.DECISION_ACCURACY],
            evaluate.EDIBLE_CALLED_EDIBLE: float(((c == 0) & (y_test == 0)).sum())
            / float((y_test == 0).sum()),
        }
    folds = []
    splitter = StratifiedGroupKFold(n_splits=evaluate.N_FOLDS, shuffle=True, random_state=seed)
    for fold, (fold_train, unseen) in enumerate(splitter.split(matrix, y, groups=species)):
        fit_idx, known_idx = split_validation(fold_train, species[fold_train], seed)
        fitted = fit_model(matrix[fit_idx], y[fit_idx], species[fit_idx], encoder, seed)
        check = evaluate.misread_check(fitted.booster, fitted.guard, fitted.threshold, encoder)
        fe, n_variants, served_edible = false_edible(
            check, fitted.booster, matrix[unseen][y[unseen] == 1], encoder
        )
        edible_fit = fit_idx[y[fit_idx] == 0]
        twins = evaluate.nominal_twins(
            served_edible, matrix[edible_fit], species[edible_fit], nominal
        )
        codes = codes_by_rule(check, fitted.booster, matrix[known_idx])
        y_known = y[known_idx]
        entry: dict[str, Any] = {
            "fold": fold,
            "threshold": fitted.threshold,
            "variants": n_variants,
            "n_known": int(len(known_idx)),
            "known_edible": int((y_known == 0).sum()),
            "served_false_edible_twins": twins,
        }
        for name, c in codes.items():
            entry[name] = {
                evaluate.MISREAD_FALSE_EDIBLE: fe[name],
                "unknown_known": int((c == 2).sum()),
                "edible_called_edible_known": int(((c == 0) & (y_known == 0)).sum()),
            }
        folds.append(entry)
    return {"random_split": random_split, "folds": folds}


def table(report: dict[str, Any]) -> str:
    folds, random_split = report["folds"], report["random_split"]
    n_known = sum(f["n_known"] for f in folds)
    known_edible = sum(f["known_edible"] for f in folds)
    lines = [
        "| a variant blocks when p_poisonous reaches ... | random split: misread_false_edible "
        "| decision_accuracy | edible_called_edible | held out: misread_false_edible, folds 0-4 "
        "| unknown_rate_known | edible_called_edible_known |",
        "|---|---|---|---|---|---|---|",
    ]
    for known_level, unknown_level in RULES:
        name = rule_name(known_level, unknown_level)
        r = random_split[name]
        per_fold = " / ".join(str(f[name][evaluate.MISREAD_FALSE_EDIBLE]) for f in folds)
        unknown = sum(f[name]["unknown_known"] for f in folds) / n_known
        edible = sum(f[name]["edible_called_edible_known"] for f in folds) / known_edible
        lines.append(
            f"| {name} | {r[evaluate.MISREAD_FALSE_EDIBLE]} | {100 * r[vm.DECISION_ACCURACY]:.2f}% "
            f"| {100 * r[evaluate.EDIBLE_CALLED_EDIBLE]:.2f}% | {per_fold} | {100 * unknown:.2f}% "
            f"| {100 * edible:.2f}% |"
        )
    for f in folds:
        twins = f["served_false_edible_twins"]
        if twins["variants"]:
            lines.append(
                f"\nfold {f['fold']}: of the served rule's {twins['variants']} false edible "
                f"variants, {twins['with_edible_twin']} have every nominal attribute of an edible "
                f"row the fold's model was trained on (species {twins['twin_species']}), "
                f"{twins['within_twins_measurements']} also within those rows' measurement ranges"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "reports" / "misread_rules.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = measure(Settings.from_env())
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"{report['seconds']} s; wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
