"""The single source of truth for the mushroom features.

Feature names are the UCI "Secondary Mushroom" column names with ``-`` replaced by ``_``;
nominal values are the dataset's one-letter codes. Training, the Lambda scorer, monitoring
and the tests all import these definitions; nothing else lists features or codes.

``validate_record`` implements the input contract (README, Contracts): one decoded JSON value in,
either a clean feature row or a list of ``{"field", "message"}`` errors a person can act on.
It is the slow, thorough path; the scorer's fast decoder (``lambda_function.decoding``) is
generated from the same definitions and falls back to this function for anything it rejects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Collection, Final, Literal

LABEL_COLUMN: Final = "class"
POISONOUS: Final = "p"
EDIBLE: Final = "e"
ID_FIELD: Final = "mushroom_id"
ID_MAX_LENGTH: Final = 128
# A valid observation is about 400 bytes; anything far larger is an error or an attack.
MAX_RECORD_BYTES: Final = 16 * 1024

Kind = Literal["numeric", "nominal"]

_COLORS = {
    "n": "brown",
    "b": "buff",
    "g": "gray",
    "r": "green",
    "p": "pink",
    "u": "purple",
    "e": "red",
    "w": "white",
    "y": "yellow",
    "l": "blue",
    "o": "orange",
    "k": "black",
}
_SURFACES = {
    "i": "fibrous",
    "g": "grooves",
    "y": "scaly",
    "s": "smooth",
    "h": "shiny",
    "l": "leathery",
    "k": "silky",
    "t": "sticky",
    "w": "wrinkled",
    "e": "fleshy",
    # Not in the dataset's meta file, but used by 'cap-surface' in the data.
    "d": "undocumented (d)",
}
_NONE = {"f": "none"}


@dataclass(frozen=True)
class Feature:
    """One input feature: its name, kind, unit (numeric) or vocabulary (nominal)."""

    name: str
    kind: Kind
    description: str
    unit: str | None = None
    vocabulary: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def dataset_column(self) -> str:
        """The column name in the UCI CSV files."""
        return self.name.replace("_", "-")

    @property
    def is_numeric(self) -> bool:
        return self.kind == "numeric"


def _numeric(name: str, unit: str, description: str) -> Feature:
    return Feature(name=name, kind="numeric", unit=unit, description=description)


def _nominal(name: str, codes: dict[str, str], description: str) -> Feature:
    return Feature(
        name=name,
        kind="nominal",
        description=description,
        vocabulary=tuple(codes),
        labels=tuple(codes.values()),
    )


FEATURES: Final[tuple[Feature, ...]] = (
    _numeric("cap_diameter", "cm", "cap diameter"),
    _nominal(
        "cap_shape",
        {
            "b": "bell",
            "c": "conical",
            "x": "convex",
            "f": "flat",
            "s": "sunken",
            "p": "spherical",
            "o": "others",
        },
        "cap shape",
    ),
    _nominal("cap_surface", _SURFACES, "cap surface"),
    _nominal("cap_color", _COLORS, "cap colour"),
    _nominal("does_bruise_or_bleed", {"t": "bruises or bleeds", "f": "no"}, "bruising"),
    _nominal(
        "gill_attachment",
        {
            "a": "adnate",
            "x": "adnexed",
            "d": "decurrent",
            "e": "free",
            "s": "sinuate",
            "p": "pores",
            "f": "none",
            "?": "unknown",
        },
        "gill attachment",
    ),
    _nominal("gill_spacing", {"c": "close", "d": "distant", "f": "none"}, "gill spacing"),
    _nominal("gill_color", {**_COLORS, **_NONE}, "gill colour"),
    _numeric("stem_height", "cm", "stem height"),
    _numeric("stem_width", "mm", "stem width"),
    _nominal(
        "stem_root",
        {
            "b": "bulbous",
            "s": "swollen",
            "c": "club",
            "u": "cup",
            "e": "equal",
            "z": "rhizomorphs",
            "r": "rooted",
            # Not in the meta file, but used by 'stem-root' in the data.
            "f": "none",
        },
        "stem root",
    ),
    _nominal("stem_surface", {**_SURFACES, **_NONE}, "stem surface"),
    _nominal("stem_color", {**_COLORS, **_NONE}, "stem colour"),
    _nominal("veil_type", {"p": "partial", "u": "universal"}, "veil type"),
    _nominal("veil_color", {**_COLORS, **_NONE}, "veil colour"),
    _nominal("has_ring", {"t": "ring", "f": "none"}, "ring present"),
    _nominal(
        "ring_type",
        {
            "c": "cobwebby",
            "e": "evanescent",
            "r": "flaring",
            "g": "grooved",
            "l": "large",
            "p": "pendant",
            "s": "sheathing",
            "z": "zone",
            "y": "scaly",
            "m": "movable",
            "f": "none",
            "?": "unknown",
        },
        "ring type",
    ),
    _nominal("spore_print_color", _COLORS, "spore print colour"),
    _nominal(
        "habitat",
        {
            "g": "grasses",
            "l": "leaves",
            "m": "meadows",
            "p": "paths",
            "h": "heaths",
            "u": "urban",
            "w": "waste",
            "d": "woods",
        },
        "habitat",
    ),
    _nominal("season", {"s": "spring", "u": "summer", "a": "autumn", "w": "winter"}, "season"),
)

FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
NUMERIC_FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.is_numeric)
NOMINAL_FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if not f.is_numeric)
FEATURES_BY_NAME: Final[dict[str, Feature]] = {f.name: f for f in FEATURES}
ALLOWED_FIELDS: Final[frozenset[str]] = frozenset((ID_FIELD, *FEATURE_NAMES))

# A clean row: feature name -> float (numeric) or code or None (nominal, not observed).
FeatureRow = dict[str, Any]
FieldError = dict[str, str]


@dataclass(frozen=True)
class ValidatedRecord:
    """The outcome of validating one record: a clean row, or errors (never both)."""

    mushroom_id: str | None
    row: FeatureRow | None
    errors: tuple[FieldError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def field_error(field: str, message: str) -> FieldError:
    """Build one error entry of the output contract."""
    return {"field": field, "message": message}


def _preview(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _keys(keys: list[str]) -> str:
    """At most five keys, escaped (an arbitrary key may not even be valid Unicode)."""
    shown = ", ".join(_preview(k, 30) for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def _check_id(value: Any) -> tuple[str | None, FieldError | None]:
    if value is None:
        return None, field_error(ID_FIELD, "is required: a string of 1-128 characters")
    if not isinstance(value, str):
        return None, field_error(
            ID_FIELD, f"must be a string of 1-128 characters, got {type(value).__name__}"
        )
    if not 1 <= len(value) <= ID_MAX_LENGTH:
        return None, field_error(
            ID_FIELD, f"must be 1-{ID_MAX_LENGTH} characters long, got {len(value)}"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # JSON allows escapes like "\ud800" that are not Unicode text; such an id cannot
            # be written back as UTF-8 (output record, Kinesis partition key).
            return None, field_error(ID_FIELD, "must be valid Unicode text (lone surrogate escape)")
    return value, None


def _check_numeric(feature: Feature, value: Any) -> tuple[float | None, FieldError | None]:
    expected = f"a finite number >= 0 ({feature.unit})"
    if value is None:
        return None, field_error(feature.name, f"is required: {expected}")
    # bool is an int subclass in Python; true/false is never a measurement.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, field_error(
            feature.name, f"must be {expected}, got {type(value).__name__} {_preview(value)}"
        )
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        return None, field_error(feature.name, f"must be {expected}, got {_preview(value)}")
    if not math.isfinite(number):
        return None, field_error(feature.name, f"must be {expected}, got {number!r}")
    if number < 0:
        return None, field_error(feature.name, f"must be {expected}, got {number!r}")
    return number, None


def _check_nominal(feature: Feature, value: Any) -> tuple[str | None, FieldError | None]:
    if value is None:
        return None, None
    codes = ", ".join(f"{c}={label}" for c, label in zip(feature.vocabulary, feature.labels))
    if not isinstance(value, str):
        return None, field_error(
            feature.name,
            f"must be one of the codes [{codes}] or null, got {type(value).__name__}",
        )
    if value not in feature.vocabulary:
        return None, field_error(
            feature.name, f"unknown code {_preview(value)}; expected one of [{codes}] or null"
        )
    return value, None


DUPLICATE_KEY_MESSAGE: Final = "appears more than once; the value is ambiguous"


def validate_record(payload: Any, duplicate_keys: Collection[str] = ()) -> ValidatedRecord:
    """Validate one decoded JSON value against the input contract.

    Collects every error instead of stopping at the first, so a producer can fix a record in
    one round trip. Absent nominal features mean "not observed" (same as null).
    ``duplicate_keys``: keys the JSON object held more than once (a JSON parser keeps one of
    the values, so the parser reports them); each is an error, and a repeated id is no id.
    """
    if not isinstance(payload, dict):
        kind = "array" if isinstance(payload, list) else type(payload).__name__
        return ValidatedRecord(
            None, None, (field_error("$", f"record must be a JSON object, got {kind}"),)
        )

    errors: list[FieldError] = []
    repeated = [key for key in duplicate_keys if key not in ALLOWED_FIELDS]
    errors.extend(
        field_error(k, DUPLICATE_KEY_MESSAGE) for k in duplicate_keys if k in ALLOWED_FIELDS
    )
    if repeated:
        errors.append(field_error("$", f"key(s) {_keys(repeated)} {DUPLICATE_KEY_MESSAGE}"))
    unknown = [key for key in payload if key not in ALLOWED_FIELDS]
    if unknown:
        errors.append(field_error("$", f"unknown field(s): {_keys(unknown)}"))

    mushroom_id, error = _check_id(payload.get(ID_FIELD))
    if error:
        errors.append(error)
    if ID_FIELD in duplicate_keys:
        mushroom_id = None

    row: FeatureRow = {}
    for feature in FEATURES:
        value = payload.get(feature.name)
        if feature.is_numeric:
            row[feature.name], error = _check_numeric(feature, value)
        else:
            row[feature.name], error = _check_nominal(feature, value)
        if error:
            errors.append(error)

    if errors:
        return ValidatedRecord(mushroom_id, None, tuple(errors))
    return ValidatedRecord(mushroom_id, row, ())
