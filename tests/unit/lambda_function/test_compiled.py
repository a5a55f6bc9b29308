"""Which predictor a bundle is served by, and what a compiled one must be to be loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import REPO_ROOT
from lambda_function import compiled
from lambda_function.config import Settings, SettingsError
from lambda_function.model import (
    BUNDLE_METADATA_FILE,
    COMPILED_KEY,
    BundleError,
    ModelBundle,
    file_entry,
)

PLATFORM = compiled.platform_tag()
LIBRARY = compiled.predictor_file_name(PLATFORM)


def _edit_metadata(bundle: Path, change) -> None:
    path = bundle / BUNDLE_METADATA_FILE
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))


def test_a_corrupt_compiled_predictor_refuses_the_bundle(tiny_compiled_bundle):
    library = tiny_compiled_bundle / LIBRARY
    data = bytearray(library.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    library.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{LIBRARY} is corrupt: sha256"):
        ModelBundle.load(tiny_compiled_bundle)


def test_a_compiled_predictor_not_listed_in_files_is_refused(tiny_compiled_bundle):
    _edit_metadata(tiny_compiled_bundle, lambda m: m["files"].pop(LIBRARY))
    with pytest.raises(BundleError, match="not listed in files"):
        ModelBundle.load(tiny_compiled_bundle)


@pytest.mark.parametrize("name", ["../predictor.so", "/tmp/predictor.so", ".hidden.so"])
def test_a_compiled_predictor_path_outside_the_bundle_is_refused(tiny_compiled_bundle, name):
    def point_elsewhere(metadata: dict) -> None:
        metadata[COMPILED_KEY][PLATFORM]["file"] = name

    _edit_metadata(tiny_compiled_bundle, point_elsewhere)
    with pytest.raises(BundleError, match="must be a plain file name"):
        ModelBundle.load(tiny_compiled_bundle)


def test_a_bundle_compiled_for_another_platform_is_served_by_lightgbm(tiny_compiled_bundle):
    def move(metadata: dict) -> None:
        metadata[COMPILED_KEY] = {"darwin-arm64": metadata[COMPILED_KEY].pop(PLATFORM)}

    _edit_metadata(tiny_compiled_bundle, move)
    predictor = ModelBundle.load(tiny_compiled_bundle).predictor
    assert predictor.kind == "lightgbm" and predictor.fallback_reason is None


def test_a_predictor_needing_a_newer_glibc_is_not_loaded(tiny_compiled_bundle):
    def newer(metadata: dict) -> None:
        metadata[COMPILED_KEY][PLATFORM]["glibc"] = "GLIBC_9.99"

    _edit_metadata(tiny_compiled_bundle, newer)
    predictor = ModelBundle.load(tiny_compiled_bundle).predictor
    assert predictor.kind == "lightgbm"
    assert "needs GLIBC_9.99, newer than this system's" in predictor.fallback_reason


def test_a_library_without_the_predictor_abi_falls_back_with_the_reason(tiny_compiled_bundle):
    """A verified file that is a shared library but not a predictor (here libm's copy)."""
    import ctypes.util

    name = ctypes.util.find_library("m")
    candidates = [Path(p) / name for p in ("/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64")]
    libm = next((p for p in candidates if p.is_file()), None)
    if libm is None:
        pytest.skip("no libm found to stand in for a foreign library")
    data = libm.read_bytes()
    (tiny_compiled_bundle / LIBRARY).write_bytes(data)
    _edit_metadata(tiny_compiled_bundle, lambda m: m["files"].update({LIBRARY: file_entry(data)}))
    predictor = ModelBundle.load(tiny_compiled_bundle).predictor
    assert predictor.kind == "lightgbm"
    assert "lacks the predictor ABI" in predictor.fallback_reason


def test_the_compiled_predictor_is_loaded_from_the_verified_bytes(tiny_compiled_bundle):
    """Replacing the file after the check changes nothing: the checked bytes are what runs."""
    original = compiled.CompiledPredictor.from_verified_bytes
    seen: list[bytes] = []

    def spy(data: bytes, n_features: int, file_name: str):
        seen.append(data)
        (tiny_compiled_bundle / LIBRARY).write_bytes(b"swapped after the check")
        return original(data, n_features, file_name)

    compiled.CompiledPredictor.from_verified_bytes = spy  # type: ignore[method-assign]
    try:
        bundle = ModelBundle.load(tiny_compiled_bundle)
    finally:
        compiled.CompiledPredictor.from_verified_bytes = original  # type: ignore[method-assign]
    assert bundle.predictor.kind == "compiled" and len(seen) == 1
    expected = json.loads((tiny_compiled_bundle / BUNDLE_METADATA_FILE).read_text())["files"]
    assert file_entry(seen[0]) == expected[LIBRARY]


def test_lightgbm_can_be_asked_for_and_nothing_else(tiny_compiled_bundle):
    assert ModelBundle.load(tiny_compiled_bundle, "lightgbm").predictor.kind == "lightgbm"
    with pytest.raises(BundleError, match="is not one of"):
        ModelBundle.load(tiny_compiled_bundle, "/tmp/other.so")
    base = {"MODEL_BUNDLE_URI": "/b", "OUTPUT_STREAM_NAME": "s"}
    assert Settings.from_env(base).predictor == "auto"
    assert Settings.from_env({**base, "SCORER_PREDICTOR": "lightgbm"}).predictor == "lightgbm"
    with pytest.raises(SettingsError, match="SCORER_PREDICTOR='compiled.so' must be one of"):
        Settings.from_env({**base, "SCORER_PREDICTOR": "compiled.so"})


def test_a_compiled_bundle_loads_and_scores_without_lightgbm(tiny_compiled_bundle):
    code = (
        "import sys\n"
        "sys.modules['lightgbm'] = None\n"
        "sys.modules['scipy'] = None\n"
        "from lambda_function.model import ModelBundle\n"
        f"b = ModelBundle.load({str(tiny_compiled_bundle)!r})\n"
        "row = {f: None for f in b.encoder.feature_order}\n"
        "row.update(cap_diameter=5.0, stem_height=5.0, stem_width=5.0)\n"
        "p, verdicts = b.score_rows([row])\n"
        "print(b.predictor.kind, b.n_trees, verdicts[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    kind, trees, verdict = done.stdout.split()
    assert kind == "compiled" and int(trees) == ModelBundle.load(tiny_compiled_bundle).n_trees
    assert verdict in ("edible", "poisonous", "unknown")


def test_n_trees_counts_the_trees_of_model_txt(tiny_bundle):
    bundle = ModelBundle.load(tiny_bundle)
    assert bundle.n_trees == bundle.booster.num_trees() > 0
