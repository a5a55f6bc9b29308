"""Dataset fetch/verify/load: checksums, corrupt zips, alignment to primary_data.csv."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from config.settings import Settings
from lambda_function import schema
from tests.conftest import make_tiny_dataset
from training import data
from training.data import DatasetError


def _csv_texts(frame: pd.DataFrame, rows_per_species: int) -> tuple[bytes, bytes]:
    """Render a load_dataset()-style frame back into the two raw CSVs."""
    secondary = pd.DataFrame({"class": frame["label"]})
    for feature in schema.FEATURES:
        secondary[feature.dataset_column] = frame[feature.name]
    blocks = frame.groupby("species_id", sort=True)
    primary = pd.DataFrame(
        {
            "family": blocks["family"].first(),
            "name": blocks["species_name"].first(),
            "class": blocks["label"].first(),
            "cap-diameter": [f"[{b.min():.0f}, {b.max():.0f}]" for _, b in blocks["cap_diameter"]],
        }
    )
    return (
        secondary.to_csv(sep=";", index=False).encode(),
        primary.to_csv(sep=";", index=False).encode(),
    )


def _nested_zip(path: Path, files: dict[str, bytes]) -> Path:
    """The UCI layout: an outer zip holding MushroomDataset.zip holding the CSVs."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        for name, content in files.items():
            archive.writestr(f"MushroomDataset/{name}", content)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("MushroomDataset.zip", inner.getvalue())
    return path


@pytest.fixture
def tiny_csvs(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    frame = make_tiny_dataset(n_species=4, rows_per_species=data.ROWS_PER_SPECIES)
    secondary, primary = _csv_texts(frame, data.ROWS_PER_SPECIES)
    files = {data.SECONDARY_CSV: secondary, data.PRIMARY_CSV: primary}
    monkeypatch.setattr(data, "CSV_SHA256", {k: data.sha256_bytes(v) for k, v in files.items()})
    return files


def _settings(tmp_path: Path, zip_path: Path | None) -> Settings:
    env = {"MUSHROOM_REPO_ROOT": str(tmp_path), "MUSHROOM_DATA_DIR": str(tmp_path / "data")}
    if zip_path is not None:
        env["MUSHROOM_DATASET_ZIP"] = str(zip_path)
    return Settings.from_env(env)


def test_ensure_dataset_unpacks_verified_csvs(tmp_path, tiny_csvs):
    settings = _settings(tmp_path, _nested_zip(tmp_path / "uci.zip", tiny_csvs))
    data_dir = data.ensure_dataset(settings)
    assert (data_dir / data.SECONDARY_CSV).read_bytes() == tiny_csvs[data.SECONDARY_CSV]
    assert (data_dir / data.PRIMARY_CSV).read_bytes() == tiny_csvs[data.PRIMARY_CSV]
    # Verified files are re-used: the source zip is no longer needed.
    os.remove(settings.dataset_zip)
    assert data.ensure_dataset(settings) == data_dir


def test_corrupt_zip_gives_clear_error(tmp_path, tiny_csvs):
    corrupt = tmp_path / "uci.zip"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DatasetError) as excinfo:
        data.ensure_dataset(_settings(tmp_path, corrupt))
    message = str(excinfo.value)
    assert str(corrupt) in message and "not a valid zip" in message
    assert data.CSV_SHA256[data.SECONDARY_CSV] in message


def test_wrong_checksum_names_file_and_expected_checksum(tmp_path, tiny_csvs):
    tampered = dict(tiny_csvs)
    tampered[data.SECONDARY_CSV] = tiny_csvs[data.SECONDARY_CSV] + b"\n"
    zip_path = _nested_zip(tmp_path / "uci.zip", tampered)
    with pytest.raises(DatasetError, match="checksum mismatch for secondary_data.csv") as excinfo:
        data.ensure_dataset(_settings(tmp_path, zip_path))
    assert data.CSV_SHA256[data.SECONDARY_CSV] in str(excinfo.value)
    assert data.sha256_bytes(tampered[data.SECONDARY_CSV]) in str(excinfo.value)
    assert not (tmp_path / "data" / data.SECONDARY_CSV).exists()


def test_missing_csv_and_missing_zip_are_clear(tmp_path, tiny_csvs):
    zip_path = _nested_zip(
        tmp_path / "uci.zip", {data.SECONDARY_CSV: tiny_csvs[data.SECONDARY_CSV]}
    )
    with pytest.raises(DatasetError, match="does not contain primary_data.csv"):
        data.extract_verified_csvs(zip_path)
    with pytest.raises(DatasetError, match="dataset zip not found"):
        data.extract_verified_csvs(tmp_path / "nope.zip")


def test_load_dataset_returns_schema_columns(tmp_path, tiny_csvs):
    settings = _settings(tmp_path, _nested_zip(tmp_path / "uci.zip", tiny_csvs))
    frame = data.load_dataset(settings)
    assert list(frame.columns) == [*schema.FEATURE_NAMES, *data.META_COLUMNS]
    assert len(frame) == 4 * data.ROWS_PER_SPECIES
    assert frame["species_id"].tolist()[:: data.ROWS_PER_SPECIES] == [0, 1, 2, 3]
    assert set(frame["label"]) <= {"p", "e"}
    assert frame["cap_diameter"].dtype == float
    nominal = frame[list(schema.NOMINAL_FEATURES)]
    # Missing nominal values are None, never NaN or "".
    assert all(
        v is None or v in schema.FEATURES_BY_NAME[c].vocabulary for c in nominal for v in nominal[c]
    )


def _raw_frames(tiny_csvs: dict[str, bytes]) -> tuple[pd.DataFrame, pd.DataFrame]:
    secondary = pd.read_csv(io.BytesIO(tiny_csvs[data.SECONDARY_CSV]), sep=";", dtype=str)
    secondary["cap-diameter"] = secondary["cap-diameter"].astype(float)
    primary = pd.read_csv(io.BytesIO(tiny_csvs[data.PRIMARY_CSV]), sep=";", dtype=str)
    return secondary, primary


def test_alignment_accepts_ordered_blocks(tiny_csvs):
    data.check_alignment(*_raw_frames(tiny_csvs))


def test_alignment_fails_on_shuffled_blocks(tiny_csvs):
    secondary, primary = _raw_frames(tiny_csvs)
    n = data.ROWS_PER_SPECIES
    # Swap species blocks 0 and 1 (one poisonous, one edible).
    swapped = pd.concat([secondary[n : 2 * n], secondary[:n], secondary[2 * n :]])
    with pytest.raises(DatasetError, match="not aligned"):
        data.check_alignment(swapped.reset_index(drop=True), primary)


def test_alignment_fails_on_same_class_blocks_with_other_sizes(tiny_csvs):
    secondary, primary = _raw_frames(tiny_csvs)
    primary = primary.copy()
    primary.loc[0, "cap-diameter"] = "[100, 120]"
    with pytest.raises(DatasetError, match="cap-diameter median"):
        data.check_alignment(secondary, primary)


def test_alignment_fails_on_row_count(tiny_csvs):
    secondary, primary = _raw_frames(tiny_csvs)
    with pytest.raises(DatasetError, match="rows; expected 353 per species"):
        data.check_alignment(secondary[:-1], primary)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MUSHROOM_DATASET_ZIP"), reason="MUSHROOM_DATASET_ZIP unset")
def test_real_dataset_loads_and_is_aligned(tmp_path):
    settings = Settings.from_env(
        {
            "MUSHROOM_DATASET_ZIP": os.environ["MUSHROOM_DATASET_ZIP"],
            "MUSHROOM_DATA_DIR": str(tmp_path / "data"),
        }
    )
    frame = data.load_dataset(settings)
    assert len(frame) == 61069
    assert frame["species_id"].nunique() == data.N_SPECIES
    assert frame["family"].nunique() == 23
    assert (frame.groupby("species_id")["label"].nunique() == 1).all()
