"""The shadow's paired evidence by SQL (DuckDB over a local folder of archive objects built with
the shadow field of the verdict contract), and the query's Trino syntax."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import sqlglot

from lambda_function import verdict_metrics as vm
from monitoring.archive import LABEL_EVENTS, timestamp
from monitoring.duckdb_engine import DuckDBEngine
from monitoring.shadow_evidence import (
    CHAMPION,
    SHADOW,
    PairedEvidence,
    read_evidence,
    shadow_evidence_sql,
)
from tests.fakes.monitoring import FolderObjects, archive_object, scored_at, verdict

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
END = T0 + timedelta(hours=2)
# The functions both DuckDB and Trino have (as in test_query_engines.py).
COMMON_FUNCTIONS = {
    "Count",
    "Min",
    "Max",
    "ArgMin",
    "ArgMax",
    "Length",
    "Case",
    "If",
    "Cast",
    "And",
    "Or",
}


def shadowed(i, champion, shadow, version="2", at=T0, prefix="obs", error=None):
    row = verdict(i, champion, p=0.2 if champion == "edible" else 0.9, prefix=prefix)
    row["scored_at"] = scored_at(at + timedelta(milliseconds=i))
    row["shadow"] = {
        "model_version": version,
        "verdict": shadow,
        "p_poisonous": None if shadow is None else 0.5,
        **({"error": error} if error else {}),
    }
    return row


def label_events(objects, at, labels, window="w1"):
    """Label events as the cycle writes them (monitoring.archive_window)."""
    lines = [
        {"mushroom_id": m, "label": label, "received_in": timestamp(at), "source_key": window}
        for m, label in labels.items()
    ]
    archive_object(objects, LABEL_EVENTS, at, window, lines)


def evidence(objects, since=T0 - timedelta(minutes=5), through=END) -> dict[str, PairedEvidence]:
    return read_evidence(DuckDBEngine.local(objects.root), since, END, timestamp(through))


def test_the_query_parses_as_trino_with_common_functions_only():
    text = shadow_evidence_sql(T0, END, timestamp(END))
    tree = sqlglot.parse_one(text, read="trino", error_level=sqlglot.ErrorLevel.RAISE)
    found = {type(node).__name__ for node in tree.find_all(sqlglot.exp.Func)}
    assert found <= COMMON_FUNCTIONS, found - COMMON_FUNCTIONS
    sqlglot.parse_one(text, read="duckdb", error_level=sqlglot.ErrorLevel.RAISE)
    # The shadow's fields are read as the Glue column's struct fields.
    assert "shadow.model_version" in text and "shadow.verdict" in text


def test_paired_figures_on_the_same_records(tmp_path):
    objects = FolderObjects(tmp_path)
    rows = (
        # 0-3 edible, both right; 4-5 poisonous: champion unknown (right), shadow poisonous
        [shadowed(i, "edible", "edible") for i in range(4)]
        + [shadowed(i, "unknown", "poisonous") for i in (4, 5)]
        # 6: edible mushroom, champion unknown (wrong), shadow edible (right): c
        + [shadowed(6, "unknown", "edible")]
        # 7: edible mushroom, champion edible (right), shadow unknown (wrong): b
        + [shadowed(7, "edible", "unknown")]
        # 8: the shadow failed; 9: no shadow at all (a version without one)
        + [shadowed(8, "edible", None, error="bundle checksum mismatch")]
        + [{**verdict(9, "edible"), "scored_at": scored_at(T0)}]
    )
    archive_object(objects, "verdicts", T0, "part", rows)
    # A retried batch: copies of 0-7 count once.
    archive_object(objects, "verdicts", T0 + timedelta(seconds=5), "retry", rows[:8])
    labels = {f"obs-{i:05d}": "e" for i in (0, 1, 2, 3, 6, 7, 8, 9)}
    labels.update({"obs-00004": "p", "obs-00005": "p"})
    label_events(objects, T0 + timedelta(hours=1), labels)

    found = evidence(objects)
    assert set(found) == {"2"}
    e = found["2"]
    assert (e.records, e.shadow_failed) == (9, 1)
    assert e.pairs == {
        ("edible", "edible"): 4,
        ("unknown", "poisonous"): 2,
        ("unknown", "edible"): 1,
        ("edible", "unknown"): 1,
    }
    assert (e.labelled, e.labelled_poisonous) == (8, 2)  # the failed record has no pair
    assert (e.both_right, e.champion_only_right, e.shadow_only_right, e.both_wrong) == (6, 1, 1, 0)
    figures = e.figures()
    # The shared definitions, on the same 8 records: 7 of 8 right for each.
    assert figures[CHAMPION][vm.DECISION_ACCURACY] == figures[SHADOW][vm.DECISION_ACCURACY] == 7 / 8
    assert figures[CHAMPION][vm.COVERAGE] == 5 / 8 and figures[SHADOW][vm.COVERAGE] == 7 / 8
    assert figures[SHADOW][vm.UNKNOWN_RATE] == 1 / 8
    assert figures[SHADOW][vm.FALSE_EDIBLE_RATE] == 0.0
    assert figures[vm.DISAGREEMENT_RATE] == 4 / 8
    # The JSON form (pending window, timeline) comes back to the same counts.
    again = PairedEvidence.from_dict(json.loads(json.dumps(e.to_dict())))
    assert again.figures() == figures and again.pairs == e.pairs


def test_disagreement_before_any_label(tmp_path):
    objects = FolderObjects(tmp_path)
    rows = [shadowed(i, "unknown", "edible") for i in range(3)] + [shadowed(3, "edible", "edible")]
    archive_object(objects, "verdicts", T0, "part", rows)
    e = evidence(objects)["2"]
    assert e.labelled == 0 and e.figures()[vm.DISAGREEMENT_RATE] == 3 / 4
    assert e.figures()[SHADOW][vm.DECISION_ACCURACY] is None


def test_latest_label_is_the_truth_and_the_newest_record_is_judged(tmp_path):
    objects = FolderObjects(tmp_path)
    # obs-1 scored twice (different sequence numbers): the newer pair is the one judged.
    first = shadowed(1, "edible", "edible")
    newer = {**shadowed(1, "unknown", "poisonous", at=T0 + timedelta(minutes=1))}
    newer["input_sequence_number"] = "obs-seq-1-again"
    archive_object(objects, "verdicts", T0, "part", [first, newer])
    label_events(objects, T0 + timedelta(minutes=10), {"obs-00001": "e"}, "w1")
    label_events(objects, T0 + timedelta(minutes=20), {"obs-00001": "p"}, "w2")  # correction
    e = evidence(objects)["2"]
    assert e.records == 2 and e.labelled == 1
    assert e.tables[SHADOW][vm.VERDICT_POISONOUS][vm.VERDICT_POISONOUS] == 1
    # Labels received after the window's label time are not used yet.
    early = evidence(objects, through=T0 + timedelta(minutes=15))["2"]
    assert early.tables[SHADOW][vm.VERDICT_EDIBLE][vm.VERDICT_POISONOUS] == 1


def test_a_false_edible_of_the_shadow_and_versions_apart(tmp_path):
    objects = FolderObjects(tmp_path)
    rows = [shadowed(0, "unknown", "edible", version="2"), shadowed(1, "unknown", "edible", "3")]
    archive_object(objects, "verdicts", T0, "part", rows)
    label_events(objects, T0 + timedelta(minutes=10), {"obs-00000": "p", "obs-00001": "e"})
    found = evidence(objects)
    assert found["2"].shadow_false_edible == 1 and found["2"].champion_only_right == 1
    assert found["3"].shadow_false_edible == 0 and found["3"].shadow_only_right == 1


def test_records_before_the_shadow_started_are_left_out(tmp_path):
    objects = FolderObjects(tmp_path)
    archive_object(objects, "verdicts", T0, "old", [shadowed(0, "edible", "edible")])
    later = T0 + timedelta(minutes=30)
    archive_object(objects, "verdicts", later, "new", [shadowed(1, "edible", "edible", at=later)])
    assert evidence(objects, since=T0 + timedelta(minutes=10))["2"].records == 1
    assert evidence(objects)["2"].records == 2


def test_an_archive_without_shadows_has_no_evidence(tmp_path):
    objects = FolderObjects(tmp_path)
    archive_object(
        objects, "verdicts", T0, "part", [{**verdict(1, "edible"), "scored_at": scored_at(T0)}]
    )
    assert evidence(objects) == {}
