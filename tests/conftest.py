"""Shared fixtures of general use (fast: well under a second each).

- ``tiny_dataset``: a synthetic DataFrame with exactly the columns of
  ``training.data.load_dataset`` (schema features, ``label``, ``species_id``, ``species_name``,
  ``family``, ``row_id``), 8 species x 40 rows, each species with its own codes and numeric
  ranges, like the real data. Build other sizes with :func:`make_tiny_dataset`.
- ``tiny_bundle``: a ``ModelBundle`` (LightGBM + threshold + species guard) trained on
  ``tiny_dataset`` and saved to ``tmp_path / "bundle"``; the fixture returns that directory
  (``ModelBundle.load(tiny_bundle)`` gives the bundle; use it as MODEL_BUNDLE_URI).
- ``tiny_compiled_bundle``: the same with its compiled predictor for this platform (compiled
  once per session; skipped without a C compiler).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from config.settings import LOCAL_DIR
from lambda_function import schema


def _forget_developer_stack() -> None:
    """Tests never talk to a developer's running stack.

    The Makefile exports what `make up`/`make deploy` wrote to .local/stack.env (endpoint,
    bucket and stream names) into every recipe, `make test` included. Unit tests must not see
    it, and integration tests start emulators of their own and export their own values.
    """
    stack_env = LOCAL_DIR / "stack.env"
    if stack_env.exists():
        for line in stack_env.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                os.environ.pop(line[len("export ") :].split("=", 1)[0].strip(), None)


_forget_developer_stack()


def make_tiny_dataset(
    n_species: int = 8, rows_per_species: int = 40, seed: int = 0
) -> pd.DataFrame:
    """Synthetic mushrooms in the load_dataset() layout, ordered by species like the real data.

    Each species picks one or two codes per nominal feature (or never observes it) and a
    numeric range per metrical feature; even species ids are poisonous.
    """
    rng = np.random.default_rng(seed)
    columns: dict[str, list] = {name: [] for name in schema.FEATURE_NAMES}
    for species in range(n_species):
        for feature in schema.FEATURES:
            n = rows_per_species
            if feature.is_numeric:
                low = rng.uniform(1, 20)
                values = rng.uniform(low, low * 1.5, size=n).round(2).tolist()
            elif rng.random() < 0.25:
                values = [None] * n
            else:
                codes = rng.choice(feature.vocabulary, size=min(2, len(feature.vocabulary)))
                values = rng.choice(codes, size=n).tolist()
            columns[feature.name].extend(values)
    frame = pd.DataFrame(columns)
    for feature in schema.FEATURES:
        if not feature.is_numeric:
            frame[feature.name] = frame[feature.name].astype(object)
    species_ids = np.repeat(np.arange(n_species), rows_per_species)
    frame["label"] = np.where(species_ids % 2 == 0, schema.POISONOUS, schema.EDIBLE)
    frame["species_id"] = species_ids
    frame["species_name"] = [f"Species {s}" for s in species_ids]
    frame["family"] = [f"Family {s // 2}" for s in species_ids]
    frame["row_id"] = np.arange(len(frame))
    return frame


@pytest.fixture
def tiny_dataset() -> pd.DataFrame:
    """8 synthetic species x 40 rows in the load_dataset() layout (see module docstring)."""
    return make_tiny_dataset()


def _tiny_model(dataset: pd.DataFrame) -> Any:
    """The ModelBundle of ``tiny_bundle``, not saved."""
    from lambda_function.model import FeatureEncoder
    from training.features import encode_frame, labels
    from training.train import fit_model, to_bundle

    encoder = FeatureEncoder.from_schema()
    matrix = encode_frame(dataset, encoder)
    fitted = fit_model(
        matrix,
        labels(dataset),
        dataset["species_id"].to_numpy(),
        encoder,
        seed=0,
        num_boost_round=10,
    )
    return to_bundle(
        fitted,
        encoder,
        "mushroom-classifier",
        "1",
        {"mlflow_run_id": "test-run", "data_checksum": "test", "training_metrics": {}},
    )


@pytest.fixture
def tiny_bundle(tmp_path: Path, tiny_dataset: pd.DataFrame) -> Path:
    """Directory of a ModelBundle trained on ``tiny_dataset`` (model.txt + bundle.json)."""
    return _tiny_model(tiny_dataset).save(tmp_path / "bundle")


@pytest.fixture(scope="session")
def _tiny_compiled_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.compile import compile_predictor

    bundle = _tiny_model(make_tiny_dataset())
    artifact = compile_predictor(bundle.model_text)
    if artifact is None:
        pytest.skip("no C compiler: the compiled predictor cannot be built here")
    return bundle.save(tmp_path_factory.mktemp("tiny-compiled") / "bundle", compiled=[artifact])


@pytest.fixture
def tiny_compiled_bundle(tmp_path: Path, _tiny_compiled_source: Path) -> Path:
    """``tiny_bundle`` plus its compiled predictor for this platform (compiled once a session)."""
    return Path(shutil.copytree(_tiny_compiled_source, tmp_path / "compiled-bundle"))
