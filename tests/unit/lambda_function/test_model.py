"""The serving bundle's scoring: row order, verdict precedence, the guard's species masks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from config.settings import REPO_ROOT
from lambda_function.model import (
    BUNDLE_FORMAT_VERSION,
    BUNDLE_METADATA_FILE,
    BUNDLE_MODEL_FILE,
    VERDICT_EDIBLE,
    VERDICT_POISONOUS,
    VERDICT_UNKNOWN,
    BundleError,
    ModelBundle,
    decide_verdicts,
    file_entry,
)
from training.features import encode_frame

REPO = REPO_ROOT


def test_score_returns_probabilities_in_input_order(tiny_bundle, tiny_dataset: pd.DataFrame):
    bundle = ModelBundle.load(tiny_bundle)
    shuffled = tiny_dataset.sample(frac=1.0, random_state=4)
    matrix = encode_frame(shuffled, bundle.encoder)

    p_poisonous, verdicts = bundle.score(matrix)

    # score() predicts rows grouped by species; the result must not depend on that.
    np.testing.assert_array_equal(p_poisonous, bundle.predict_proba(matrix))
    expected = decide_verdicts(
        bundle.predict_proba(matrix), bundle.guard.compatible(matrix), bundle.threshold
    )
    assert verdicts == expected


def test_unknown_beats_poisonous_beats_edible():
    p = np.array([0.9, 0.1, 0.9, 0.1, 0.5])
    known = np.array([True, True, False, False, True])

    assert decide_verdicts(p, known, threshold=0.5) == [
        VERDICT_POISONOUS,
        VERDICT_EDIBLE,
        VERDICT_UNKNOWN,
        VERDICT_UNKNOWN,
        VERDICT_POISONOUS,  # p == threshold is poisonous
    ]
    assert all(type(v) is str for v in decide_verdicts(p, known, threshold=0.5))
    assert decide_verdicts(np.empty(0), np.empty(0, dtype=bool), threshold=0.5) == []


def test_candidate_species_marks_the_row_species(tiny_bundle, tiny_dataset: pd.DataFrame):
    bundle = ModelBundle.load(tiny_bundle)
    guard = bundle.guard
    matrix = encode_frame(tiny_dataset, bundle.encoder)

    masks = guard.candidate_species(matrix)

    position = {s: i for i, s in enumerate(guard.species_ids)}
    for row, species in zip(masks, tiny_dataset["species_id"]):
        bit = position[int(species)]
        assert int(row[bit // 64]) >> (bit % 64) & 1, "a training row fits its own species"
    np.testing.assert_array_equal(masks.any(axis=1), guard.compatible(matrix))


def test_species_words_are_the_and_of_each_values_mask(tiny_bundle, tiny_dataset: pd.DataFrame):
    """Word by word, what the guard's definition gives row by row: missing nominal values read
    the feature's last mask row, numeric values their bin (NaN the last one)."""
    guard = ModelBundle.load(tiny_bundle).guard
    matrix = encode_frame(tiny_dataset, ModelBundle.load(tiny_bundle).encoder)
    rng = np.random.default_rng(5)
    matrix[rng.random(matrix.shape) < 0.2] = np.nan
    numeric = [j for j, kind in enumerate(guard.kinds) if kind == "numeric"]
    matrix[:5, numeric] = [[-1e9], [0.0], [1e9], [np.inf], [-np.inf]]

    expected = np.empty((len(matrix), guard.n_words), dtype=np.uint64)
    for i, row in enumerate(matrix):
        mask = np.full(guard.n_words, np.iinfo(np.uint64).max, dtype=np.uint64)
        for j, value in enumerate(row):
            if guard.kinds[j] == "nominal":
                code = len(guard.masks[j]) - 1 if np.isnan(value) else int(value)
            else:
                code = int(np.searchsorted(guard.edges[j], value, side="right"))
            mask &= guard.masks[j][code]
        expected[i] = mask

    words = guard.species_words(matrix)
    assert words.shape == (guard.n_words, len(matrix))
    np.testing.assert_array_equal(words.T, expected)
    np.testing.assert_array_equal(guard.candidate_species(matrix), expected)
    np.testing.assert_array_equal(guard.compatible(matrix), expected.any(axis=1))


def _edit_metadata(directory, edit) -> None:
    path = directory / BUNDLE_METADATA_FILE
    metadata = json.loads(path.read_text())
    path.write_text(json.dumps(edit(metadata)))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: {k: v for k, v in m.items() if k != "threshold"}, "lacks the key 'threshold'"),
        (lambda m: {k: v for k, v in m.items() if k != "guard"}, "lacks the key 'guard'"),
        (lambda m: {**m, "threshold": "high"}, "malformed"),
        (lambda m: {**m, "format_version": 99}, "format_version 99 is not supported"),
        (lambda m: {**m, "feature_order": m["feature_order"][::-1]}, "does not match"),
        (lambda m: [m], "not a JSON object"),
    ],
)
def test_unusable_bundle_metadata_is_a_bundle_error(tiny_bundle, edit, message):
    _edit_metadata(tiny_bundle, edit)
    with pytest.raises(BundleError, match=message):
        ModelBundle.load(tiny_bundle)


def test_corrupt_or_missing_model_file_is_a_bundle_error(tiny_bundle):
    # With a matching checksum (a trainer's bug), LightGBM's own error is reported.
    (tiny_bundle / BUNDLE_MODEL_FILE).write_text("not a model")
    _edit_metadata(tiny_bundle, lambda m: {**m, "files": {"model.txt": file_entry(b"not a model")}})
    with pytest.raises(BundleError, match="not a LightGBM model file"):
        ModelBundle.load(tiny_bundle)
    (tiny_bundle / BUNDLE_MODEL_FILE).unlink()
    with pytest.raises(BundleError, match="has no model file"):
        ModelBundle.load(tiny_bundle)


# --- checksums: every file of the bundle is verified before it is parsed -----------------------


def _metadata(directory) -> dict:
    return json.loads((directory / BUNDLE_METADATA_FILE).read_text())


def test_bundle_json_lists_every_file_with_its_size_and_sha256(tiny_bundle):
    metadata = _metadata(tiny_bundle)
    data = (tiny_bundle / BUNDLE_MODEL_FILE).read_bytes()
    assert metadata["format_version"] == BUNDLE_FORMAT_VERSION >= 2
    assert metadata["files"] == {
        BUNDLE_MODEL_FILE: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    }
    assert sorted(p.name for p in tiny_bundle.iterdir()) == sorted(
        [BUNDLE_METADATA_FILE, *metadata["files"]]
    )


# Truncating model.txt by 44 bytes makes lgb.Booster() spin forever (a shorter cut can
# segfault), so the load runs in a child process that a timeout can stop.
LOAD_IN_CHILD = """
import sys
from lambda_function.model import BundleError, ModelBundle
try:
    ModelBundle.load(sys.argv[1])
except BundleError as exc:
    print("BundleError:", exc)
"""


def test_a_truncated_model_file_is_refused_before_lightgbm_parses_it(tiny_bundle):
    model = tiny_bundle / BUNDLE_MODEL_FILE
    size = model.stat().st_size
    model.write_bytes(model.read_bytes()[:-44])
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_CHILD, str(tiny_bundle)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("BundleError:"), done.stdout
    assert str(model) in done.stdout
    assert f"expected {size} bytes, found {size - 44}" in done.stdout


def test_a_corrupt_model_file_of_the_right_size_is_refused(tiny_bundle):
    model = tiny_bundle / BUNDLE_MODEL_FILE
    data = bytearray(model.read_bytes())
    expected = hashlib.sha256(data).hexdigest()
    data[100] ^= 0x01
    model.write_bytes(bytes(data))
    actual = hashlib.sha256(data).hexdigest()
    with pytest.raises(BundleError, match=f"{model}.*sha256 {actual}.*expected {expected}"):
        ModelBundle.load(tiny_bundle)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: {**m, "format_version": 1}, "no file checksums.*make train"),
        (lambda m: {k: v for k, v in m.items() if k != "files"}, "lacks the key 'files'"),
        (lambda m: {**m, "files": {}}, "'model.txt' is not listed in files"),
        (lambda m: {**m, "files": {"model.txt": {"size": 1}}}, "must hold size .* and sha256"),
        (lambda m: {**m, "files": ["model.txt"]}, "files must be an object"),
    ],
)
def test_bundles_without_valid_checksums_are_refused(tiny_bundle, edit, message):
    _edit_metadata(tiny_bundle, edit)
    with pytest.raises(BundleError, match=message):
        ModelBundle.load(tiny_bundle)


def _point_model_file_at(directory, name) -> None:
    """Name another model file in bundle.json, with the checksum of the real one."""
    _edit_metadata(
        directory,
        lambda m: {**m, "model_file": name, "files": {name: m["files"][BUNDLE_MODEL_FILE]}},
    )


@pytest.mark.parametrize(
    "name", ["", "a\0b", "../model.txt", "sub/model.txt", "/etc/hostname", ".", "..", 7, None]
)
def test_a_model_file_name_that_is_not_a_plain_file_name_is_refused(tiny_bundle, name):
    _point_model_file_at(tiny_bundle, name)
    with pytest.raises(BundleError, match="must be a plain file name"):
        ModelBundle.load(tiny_bundle)


def test_a_model_file_that_is_a_directory_is_refused(tiny_bundle):
    (tiny_bundle / "models").mkdir()
    _point_model_file_at(tiny_bundle, "models")
    with pytest.raises(BundleError, match="is not a regular file"):
        ModelBundle.load(tiny_bundle)


def test_a_model_file_symlinked_outside_the_bundle_is_refused(tiny_bundle, tmp_path):
    outside = tmp_path / "elsewhere.txt"
    outside.write_bytes((tiny_bundle / BUNDLE_MODEL_FILE).read_bytes())
    (tiny_bundle / "linked.txt").symlink_to(outside)
    _point_model_file_at(tiny_bundle, "linked.txt")
    with pytest.raises(BundleError, match="outside the bundle"):
        ModelBundle.load(tiny_bundle)


def test_an_unreadable_bundle_json_is_a_bundle_error(tiny_bundle):
    metadata = tiny_bundle / BUNDLE_METADATA_FILE
    metadata.write_bytes(b'{"format_version": 2, "x": "\xff"}')
    with pytest.raises(BundleError, match="not valid UTF-8 JSON"):
        ModelBundle.load(tiny_bundle)
    metadata.unlink()
    metadata.mkdir()
    with pytest.raises(BundleError, match="cannot read"):
        ModelBundle.load(tiny_bundle)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: {**m, "threshold": float("nan")}, "threshold nan must be within"),
        (lambda m: {**m, "threshold": 1.5}, "threshold 1.5 must be within"),
        (
            lambda m: {
                **m,
                "vocabularies": {k: v for k, v in m["vocabularies"].items() if k != "habitat"},
            },
            "vocabularies .* do not match the schema's nominal features",
        ),
        (
            lambda m: {**m, "guard": {**m["guard"], "features": m["guard"]["features"][:-1]}},
            "guard describes 19 features",
        ),
    ],
)
def test_bundles_that_would_fail_every_batch_are_refused_at_load(tiny_bundle, edit, message):
    _edit_metadata(tiny_bundle, edit)
    with pytest.raises(BundleError, match=message):
        ModelBundle.load(tiny_bundle)


def test_loading_verifies_checksums_in_milliseconds(tiny_bundle):
    ModelBundle.load(tiny_bundle)  # warm the file cache
    started = time.perf_counter()
    ModelBundle.load(tiny_bundle)
    assert time.perf_counter() - started < 1.0
