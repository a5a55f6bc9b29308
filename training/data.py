"""Fetch, verify and load the UCI "Secondary Mushroom" dataset.

``ensure_dataset`` downloads the UCI zip (or copies ``MUSHROOM_DATASET_ZIP``), verifies the
SHA-256 of the two CSVs inside (their content is what matters; a zip can be re-packed) and
unpacks them into ``data/``. ``load_dataset`` returns one row per mushroom with the schema's
features, the label and the species it was simulated from: ``secondary_data.csv`` is ordered by
species, 353 rows per row of ``primary_data.csv``, and that alignment is checked, not assumed.

``python -m training.data`` (``make data``) fetches and verifies the data and prints a summary.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from config.settings import Settings
from lambda_function import schema

log = logging.getLogger(__name__)

PRIMARY_CSV = "primary_data.csv"
SECONDARY_CSV = "secondary_data.csv"
# SHA-256 of the CSVs inside the UCI zip (their content is what matters: a zip can be re-packed).
CSV_SHA256 = {
    SECONDARY_CSV: "c0eb333df5747171cfc4356c966434b4e9ba1f099c4a0aa2c27f545853e6d203",
    PRIMARY_CSV: "3b17b673a568cb0c9181f6c8dfcbaf73c5697da32a7a9a73ee635668f0992b6d",
}
ROWS_PER_SPECIES = 353
N_SPECIES = 173
# The generator draws cap diameters around the primary [min, max]; a block's median far outside
# that range means the block belongs to another species.
_ALIGNMENT_LOW, _ALIGNMENT_HIGH = 0.5, 1.5
_DOWNLOAD_TIMEOUT_S = 60

LABEL = "label"
SPECIES_ID = "species_id"
SPECIES_NAME = "species_name"
FAMILY = "family"
ROW_ID = "row_id"
META_COLUMNS = (LABEL, SPECIES_ID, SPECIES_NAME, FAMILY, ROW_ID)


class DatasetError(RuntimeError):
    """The dataset is missing, corrupt, has the wrong checksum or is misaligned."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_checksum() -> str:
    """The identity of the dataset version this code expects (SHA-256 of secondary_data.csv)."""
    return CSV_SHA256[SECONDARY_CSV]


def _find_csvs(archive: zipfile.ZipFile, source: str, found: dict[str, bytes]) -> None:
    """Collect the expected CSVs from a zip, descending into nested zips (UCI nests one)."""
    for info in archive.infolist():
        base = info.filename.rsplit("/", 1)[-1]
        if base in CSV_SHA256 and base not in found:
            found[base] = archive.read(info)
        elif base.lower().endswith(".zip"):
            inner_name = f"{source}!{info.filename}"
            try:
                with zipfile.ZipFile(io.BytesIO(archive.read(info))) as inner:
                    _find_csvs(inner, inner_name, found)
            except zipfile.BadZipFile as exc:
                raise DatasetError(f"{inner_name} is not a valid zip file: {exc}") from exc


def extract_verified_csvs(zip_path: Path) -> dict[str, bytes]:
    """Read both CSVs from the UCI zip and verify their SHA-256; raise DatasetError otherwise."""
    if not zip_path.is_file():
        raise DatasetError(f"dataset zip not found: {zip_path}")
    found: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(zip_path) as archive:
            _find_csvs(archive, str(zip_path), found)
    except zipfile.BadZipFile as exc:
        raise DatasetError(
            f"{zip_path} is not a valid zip file ({exc}); expected the UCI dataset zip whose "
            f"{SECONDARY_CSV} has SHA-256 {CSV_SHA256[SECONDARY_CSV]}"
        ) from exc
    for name, expected in CSV_SHA256.items():
        if name not in found:
            raise DatasetError(
                f"{zip_path} does not contain {name} (expected SHA-256 {expected}); "
                "is it the UCI 'Secondary Mushroom' zip (dataset id 848)?"
            )
        actual = sha256_bytes(found[name])
        if actual != expected:
            raise DatasetError(
                f"checksum mismatch for {name} in {zip_path}: expected SHA-256 {expected}, "
                f"got {actual}"
            )
    return found


def _download(url: str, target: Path) -> None:
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            with open(target, "wb") as handle:
                shutil.copyfileobj(response, handle)
    except OSError as exc:
        raise DatasetError(
            f"could not download the dataset from {url}: {exc}. Without network access, set "
            "MUSHROOM_DATASET_ZIP to a local copy of the UCI zip."
        ) from exc


def _verified_local(data_dir: Path) -> bool:
    return all(
        (data_dir / name).is_file() and sha256_file(data_dir / name) == expected
        for name, expected in CSV_SHA256.items()
    )


def ensure_dataset(settings: Settings) -> Path:
    """Make sure ``settings.data_dir`` holds both verified CSVs; return that directory.

    Re-uses verified files already there; otherwise copies ``settings.dataset_zip`` (or
    downloads ``settings.dataset_url``), verifies both CSVs and writes them atomically.
    """
    data_dir = settings.data_dir
    if _verified_local(data_dir):
        return data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        if settings.dataset_zip is not None:
            zip_path = settings.dataset_zip
            log.info("using local dataset copy %s", zip_path)
        else:
            zip_path = Path(tmp) / "secondary_mushroom_dataset.zip"
            _download(settings.dataset_url, zip_path)
        csvs = extract_verified_csvs(zip_path)
        for name, content in csvs.items():
            staged = Path(tmp) / name
            staged.write_bytes(content)
            staged.replace(data_dir / name)
    log.info("dataset verified in %s", data_dir)
    return data_dir


def _parse_range(text: str) -> tuple[float, float]:
    numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", str(text))]
    if not numbers:
        raise DatasetError(f"{PRIMARY_CSV}: cannot read a cap-diameter range from {text!r}")
    return min(numbers), max(numbers)


def check_alignment(secondary: pd.DataFrame, primary: pd.DataFrame) -> None:
    """Fail loudly unless block k of ``secondary`` (353 rows) is species k of ``primary``.

    Checks per block: one class, equal to the primary row's class, and a cap-diameter median
    within a plausible range of the primary's [min, max].
    """
    n_species = len(primary)
    if len(secondary) != n_species * ROWS_PER_SPECIES:
        raise DatasetError(
            f"{SECONDARY_CSV} has {len(secondary)} rows; expected {ROWS_PER_SPECIES} per species "
            f"x {n_species} species in {PRIMARY_CSV} = {n_species * ROWS_PER_SPECIES}"
        )
    classes = secondary["class"].to_numpy().reshape(n_species, ROWS_PER_SPECIES)
    diameters = secondary["cap-diameter"].to_numpy(dtype=float).reshape(n_species, -1)
    problems: list[str] = []
    for k, (p_class, p_range, name) in enumerate(
        zip(primary["class"], primary["cap-diameter"], primary["name"])
    ):
        block = f"rows {k * ROWS_PER_SPECIES}-{(k + 1) * ROWS_PER_SPECIES - 1}"
        block_classes = set(classes[k])
        if block_classes != {p_class}:
            problems.append(
                f"{block}: classes {sorted(block_classes)} != {p_class!r} of species {k} {name}"
            )
            continue
        low, high = _parse_range(p_range)
        median = float(np.median(diameters[k]))
        if not low * _ALIGNMENT_LOW <= median <= high * _ALIGNMENT_HIGH:
            problems.append(
                f"{block}: cap-diameter median {median:.2f} outside [{low}, {high}] "
                f"of species {k} {name}"
            )
    if problems:
        shown = "; ".join(problems[:5])
        raise DatasetError(
            f"{SECONDARY_CSV} is not aligned with {PRIMARY_CSV} ({len(problems)} species "
            f"blocks do not match): {shown}"
        )


def frame_from_csvs(secondary: pd.DataFrame, primary: pd.DataFrame) -> pd.DataFrame:
    """Turn the raw CSV frames into the training frame (see :func:`load_dataset`)."""
    secondary = secondary.rename(columns=str.lower)
    primary = primary.rename(columns=str.lower)
    check_alignment(secondary, primary)
    columns: dict[str, object] = {}
    for feature in schema.FEATURES:
        raw = secondary[feature.dataset_column]
        if feature.is_numeric:
            columns[feature.name] = raw.astype(float)
            continue
        values = raw.astype(object).where(raw.notna(), None)
        unknown = set(values.dropna()) - set(feature.vocabulary)
        if unknown:
            raise DatasetError(
                f"{SECONDARY_CSV}: column {feature.dataset_column} has codes "
                f"{sorted(unknown)} that are not in the schema vocabulary"
            )
        columns[feature.name] = values
    frame = pd.DataFrame(columns)
    species = np.repeat(np.arange(len(primary)), ROWS_PER_SPECIES)
    frame[LABEL] = secondary["class"].to_numpy()
    frame[SPECIES_ID] = species
    frame[SPECIES_NAME] = primary["name"].to_numpy()[species]
    frame[FAMILY] = primary["family"].to_numpy()[species]
    frame[ROW_ID] = np.arange(len(frame))
    return frame


def read_csvs(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the raw secondary and primary CSVs (``;``-separated, empty = missing)."""
    nominal = {f.dataset_column: str for f in schema.FEATURES if not f.is_numeric}
    secondary = pd.read_csv(data_dir / SECONDARY_CSV, sep=";", dtype={**nominal, "class": str})
    primary = pd.read_csv(data_dir / PRIMARY_CSV, sep=";", dtype=str)
    return secondary, primary


def load_dataset(settings: Settings) -> pd.DataFrame:
    """The verified dataset, one row per mushroom.

    Columns: the schema's features (nominal: code or None; numeric: float), ``label``
    ("p"/"e"), ``species_id`` (0..172, the row of primary_data.csv), ``species_name``,
    ``family`` and ``row_id`` (the row's position in secondary_data.csv, a stable key).
    """
    data_dir = ensure_dataset(settings)
    return frame_from_csvs(*read_csvs(data_dir))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    try:
        frame = load_dataset(settings)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    poisonous = (frame[LABEL] == schema.POISONOUS).mean()
    print(
        f"dataset ok in {settings.data_dir}: {len(frame)} rows, "
        f"{frame[SPECIES_ID].nunique()} species, {frame[FAMILY].nunique()} families, "
        f"{poisonous:.1%} poisonous; {SECONDARY_CSV} sha256 {dataset_checksum()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
