"""schema.validate_record: every rule of the input contract, with its message."""

from __future__ import annotations

import math

import pytest

from lambda_function import schema
from lambda_function.schema import validate_record
from tests.examples import example_observation

VALID = example_observation()


def _errors(record) -> dict[str, str]:
    result = validate_record(record)
    assert result.row is None and not result.ok
    return {e["field"]: e["message"] for e in result.errors}


def test_valid_record_gives_clean_row():
    result = validate_record(VALID)
    assert result.ok and result.errors == ()
    assert result.mushroom_id == "obs-000123"
    assert list(result.row) == list(schema.FEATURE_NAMES)
    assert result.row["cap_diameter"] == 15.26 and result.row["gill_spacing"] is None


def test_absent_nominal_features_mean_not_observed():
    record = {k: v for k, v in VALID.items() if k not in ("veil_type", "ring_type")}
    result = validate_record(record)
    assert result.ok and result.row["veil_type"] is None and result.row["ring_type"] is None


def test_integer_measurement_is_accepted_as_float():
    result = validate_record({**VALID, "stem_width": 17})
    assert result.ok and result.row["stem_width"] == 17.0


@pytest.mark.parametrize("payload, kind", [([1, 2], "array"), ("text", "str"), (None, "NoneType")])
def test_non_object_is_rejected(payload, kind):
    assert _errors(payload) == {"$": f"record must be a JSON object, got {kind}"}


def test_unknown_fields_are_listed():
    errors = _errors({**VALID, "colour": "red", "extra": 1})
    assert errors["$"] == "unknown field(s): 'colour', 'extra'"


def test_many_unknown_fields_are_summarised():
    errors = _errors({**VALID, **{f"f{i}": i for i in range(7)}})
    assert errors["$"].endswith("and 2 more")


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "is required: a string of 1-128 characters"),
        (123, "must be a string of 1-128 characters, got int"),
        ("", "must be 1-128 characters long, got 0"),
        ("x" * 129, "must be 1-128 characters long, got 129"),
    ],
)
def test_mushroom_id_rules(value, message):
    record = {**VALID, "mushroom_id": value}
    assert _errors(record) == {"mushroom_id": message}


def test_missing_mushroom_id():
    record = {k: v for k, v in VALID.items() if k != "mushroom_id"}
    assert _errors(record) == {"mushroom_id": "is required: a string of 1-128 characters"}


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "is required: a finite number >= 0 (cm)"),
        ("15", "must be a finite number >= 0 (cm), got str '15'"),
        (True, "must be a finite number >= 0 (cm), got bool True"),
        (math.inf, "must be a finite number >= 0 (cm), got inf"),
        (math.nan, "must be a finite number >= 0 (cm), got nan"),
        (-0.5, "must be a finite number >= 0 (cm), got -0.5"),
    ],
)
def test_numeric_rules(value, message):
    assert _errors({**VALID, "cap_diameter": value}) == {"cap_diameter": message}


def test_stem_width_unit_is_mm():
    assert _errors({**VALID, "stem_width": -1}) == {
        "stem_width": "must be a finite number >= 0 (mm), got -1.0"
    }


def test_unknown_code_lists_the_vocabulary():
    message = _errors({**VALID, "season": "z"})["season"]
    assert message == (
        "unknown code 'z'; expected one of [s=spring, u=summer, a=autumn, w=winter] or null"
    )


def test_nominal_wrong_type():
    message = _errors({**VALID, "has_ring": True})["has_ring"]
    assert message == "must be one of the codes [t=ring, f=none] or null, got bool"


def test_all_errors_are_collected_at_once():
    errors = _errors({**VALID, "mushroom_id": "", "cap_diameter": -1, "season": "z", "x": 1})
    assert set(errors) == {"$", "mushroom_id", "cap_diameter", "season"}
    assert validate_record({**VALID, "season": "z"}).mushroom_id == "obs-000123"
