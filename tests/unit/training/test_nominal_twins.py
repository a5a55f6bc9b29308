"""``nominal_twins`` (training/evaluate.py): variants that look like known edible rows."""

import numpy as np

from training.evaluate import nominal_twins

NAN = np.nan
# Columns: two nominal attributes, then one measurement.
NOMINAL = np.array([True, True, False])
ROWS = np.array(
    [
        [0.0, 1.0, 2.0],  # species 7
        [0.0, 1.0, 4.0],  # species 7
        [0.0, NAN, 3.0],  # species 9: a null second attribute
        [1.0, 1.0, 3.0],  # species 5
    ]
)
GROUPS = np.array([7, 7, 9, 5])


def test_a_variant_with_the_nominals_of_rows_inside_their_measurement_range():
    result = nominal_twins(np.array([[0.0, 1.0, 3.0]]), ROWS, GROUPS, NOMINAL)
    assert result == {
        "variants": 1,
        "with_edible_twin": 1,
        "within_twins_measurements": 1,
        "twin_species": [7],
    }


def test_a_twin_outside_the_measurement_range_counts_as_a_twin_only():
    result = nominal_twins(np.array([[0.0, 1.0, 4.5]]), ROWS, GROUPS, NOMINAL)
    assert (result["with_edible_twin"], result["within_twins_measurements"]) == (1, 0)


def test_a_null_matches_only_a_null_and_no_twin_is_counted_as_none():
    variants = np.array([[0.0, NAN, 3.0], [0.0, 0.0, 3.0], [2.0, 1.0, 3.0]])
    result = nominal_twins(variants, ROWS, GROUPS, NOMINAL)
    assert result == {
        "variants": 3,
        "with_edible_twin": 1,
        "within_twins_measurements": 1,
        "twin_species": [9],
    }
