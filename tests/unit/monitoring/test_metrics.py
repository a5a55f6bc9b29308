"""Window metrics, label parsing and state joins (plain functions)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from lambda_function import verdict_metrics as vm
from monitoring.labels import parse_label_lines, parse_label_object
from monitoring.metrics import LabelledVerdict, WindowMetrics, verdict_problem, window_metrics
from monitoring.publish import metric_data
from monitoring.state import MonitoringState
from tests.fakes.monitoring import OBSERVATION, label_line, verdict


def test_stream_metrics_shares_rates_and_duplicates():
    records = [
        verdict(0, "edible", 0.1),
        verdict(1, "poisonous", 0.9),
        verdict(2, "unknown", 0.5),
        verdict(3, "unknown", 0.5),
        verdict(4, None, None, status="rejected"),
        verdict(1, "poisonous", 0.9),  # a retried batch repeats an output
    ]
    m = window_metrics(records)
    assert (m.records, m.scored, m.rejected, m.duplicates) == (5, 4, 1, 1)
    assert m.verdict_counts == {"edible": 1, "poisonous": 1, "unknown": 2}
    assert m.unknown_rate == pytest.approx(0.5)
    assert m.rejected_rate == pytest.approx(0.2)
    assert m.mean_p_poisonous == pytest.approx(0.5)
    assert m.dominant_model_version == "1"
    assert m.coverage == pytest.approx(0.5)
    assert m.decision_accuracy is None and m.false_edible_rate is None
    assert set(m.cloudwatch_values()) == {
        "Records",
        "UnknownRate",
        "Coverage",
        "RejectedRate",
        "MeanPPoisonous",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"p_poisonous": "0.1"},
        {"p_poisonous": 10**400},  # too large for a float
        {"p_poisonous": float("nan")},
        {"p_poisonous": True},
        {"p_poisonous": 1.5},
        {"model_version": ["1"]},
        {"model_version": "\ud800"},  # cannot be a CloudWatch dimension value
        {"model_version": "x" * 2000},
        {"mushroom_id": {"id": 1}},
        {"verdict": "tasty"},
        {"verdict": ["edible"]},
        {"status": {"scored": 1}},
        {"input_sequence_number": 7},
    ],
)
def test_a_verdict_breaking_the_contract_is_counted_not_measured(change):
    hostile = {**verdict(9, "edible", 0.1, version="1"), **change}
    m = window_metrics([verdict(0, "poisonous", 0.9), hostile])
    assert (m.records, m.invalid, m.scored) == (1, 1, 1)
    assert m.verdict_shares == {"edible": 0.0, "poisonous": 1.0, "unknown": 0.0}
    assert m.mean_p_poisonous == pytest.approx(0.9) and m.model_versions == {"1": 1}
    assert verdict_problem(hostile)


def test_empty_window_has_only_a_record_count():
    m = window_metrics([])
    assert m.cloudwatch_values() == {"Records": 0.0}
    assert m.dominant_model_version is None


def test_label_metrics_unknown_counts_as_do_not_eat():
    pairs = [
        LabelledVerdict("a", "edible", "p"),  # the harm: poisonous called edible
        LabelledVerdict("b", "poisonous", "p"),
        LabelledVerdict("c", "unknown", "p"),  # safe
        LabelledVerdict("d", "edible", "e"),
        LabelledVerdict("e", "unknown", "e"),  # lost an edible one: a false positive
    ]
    m = window_metrics([], pairs)
    # Right actions: b, c (not eaten, poisonous) and d (eaten, edible): 3 of 5.
    assert m.labelled == 5 and m.labelled_poisonous == 3 and m.false_edible == 1
    assert m.false_edible_rate == pytest.approx(1 / 3)
    assert m.decision_accuracy == pytest.approx(3 / 5)
    # Not unknown: a (wrong), b, d (right).
    assert m.covered_accuracy == pytest.approx(2 / 3)
    assert m.false_poisonous_rate == pytest.approx(1 / 2)
    assert m.do_not_eat_precision == pytest.approx(2 / 3)
    assert m.do_not_eat_recall == pytest.approx(2 / 3)
    assert m.do_not_eat_f1 == pytest.approx(2 / 3)
    # Published under the shared definitions' CloudWatch names.
    values = m.cloudwatch_values()
    assert values["DecisionAccuracy"] == pytest.approx(3 / 5)
    assert values["CoveredAccuracy"] == pytest.approx(2 / 3)
    assert values["FalseEdibleRate"] == pytest.approx(1 / 3)
    assert "Accuracy" not in values and "Precision" not in values


def test_window_metrics_are_the_shared_definitions():
    pairs = [
        LabelledVerdict(str(i), verdict, label)
        for i, (verdict, label) in enumerate(
            [("unknown", "p"), ("unknown", "e"), ("edible", "e"), ("poisonous", "e")]
        )
    ]
    m = window_metrics([], pairs)
    table = vm.confusion([p.label == "p" for p in pairs], [p.verdict for p in pairs])
    for name, value in vm.labelled_metrics(table).items():
        assert getattr(m, name) == value, name


def test_a_pending_window_saved_with_old_field_names_still_loads():
    saved = {**window_metrics([verdict(0, "edible", 0.1)]).to_dict(), "accuracy": 0.5}
    assert WindowMetrics.from_dict(saved).cloudwatch_values()["Records"] == 1.0


def test_false_edible_rate_needs_labelled_poisonous():
    m = window_metrics([], [LabelledVerdict("d", "edible", "e")])
    assert m.decision_accuracy == 1.0 and m.false_edible_rate is None


def test_metric_data_with_and_without_model_version():
    at = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
    data = metric_data({"Records": 3.0, "UnknownRate": 0.5}, at, "4")
    assert len(data) == 4
    assert [d for d in data if "Dimensions" not in d][0]["Unit"] == "Count"
    assert data[1]["Dimensions"] == [{"Name": "ModelVersion", "Value": "4"}]
    assert len(metric_data({"Records": 0.0}, at, None)) == 1


def test_label_contract_parsing():
    lines = [
        json.dumps(label_line(1, "p")),
        json.dumps({"mushroom_id": "obs-00002", "label": "e"}),  # metrics-only label
        json.dumps({"mushroom_id": "obs-00003", "label": "x"}),
        "{not json",
        json.dumps({**label_line(4, "e"), "cap_shape": "Z"}),
        "",
    ]
    batch = parse_label_lines(lines, source="labels/a.jsonl")
    assert batch.labels == {"obs-00001": "p", "obs-00002": "e", "obs-00004": "e"}
    (record,) = batch.training_records
    assert record["species_id"] == 7 and record["label"] == "p"
    assert record["cap_diameter"] == OBSERVATION["cap_diameter"]
    assert batch.invalid.count == 3
    assert batch.invalid.reasons[0].startswith("labels/a.jsonl:3: label must be")
    assert "cap_shape" in batch.invalid.reasons[2]


def test_hostile_label_lines_are_invalid_and_the_other_lines_count():
    good = [json.dumps(label_line(i, "p")).encode() for i in (1, 2)]
    data = b"\n".join(
        [
            good[0],
            b'{"mushroom_id": "obs-00003", "label": "\xff"}',  # not UTF-8
            b"[" * 100_000 + b"]" * 100_000,  # too long, and absurdly deep
            b"[" * 5_000 + b"]" * 5_000,  # within the limit, still too deep
            b'{"mushroom_id": "obs-00004", "label": "p", "species_id": ' + b"7" * 5000 + b"}",
            b'{"mushroom_id": "' + b"x" * 200 + b'", "label": "p"}',
            good[1],
        ]
    )
    batch = parse_label_object(data, source="labels/h.jsonl")
    assert batch.labels == {"obs-00001": "p", "obs-00002": "p"}
    assert len(batch.training_records) == 2
    assert batch.invalid.count == 5
    reasons = batch.invalid.reasons
    assert reasons[0].startswith("labels/h.jsonl:2: not valid UTF-8")
    assert reasons[1].startswith("labels/h.jsonl:3: line is 200000 bytes; the limit is 16384")
    assert "RecursionError" in reasons[2] and "ValueError" in reasons[3]
    assert "mushroom_id must be a string of 1-128" in reasons[4]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_label_object_in_another_encoding_is_one_invalid_entry(encoding):
    text = "\n".join(json.dumps(label_line(i, "p")) for i in range(3))
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    batch = parse_label_object(data, source="labels/u.jsonl")
    assert batch.labels == {} and batch.invalid.count == 1
    assert "labels must be UTF-8" in batch.invalid.reasons[0]


def test_a_utf8_byte_order_mark_is_tolerated():
    batch = parse_label_object(b"\xef\xbb\xbf" + json.dumps(label_line(1, "e")).encode())
    assert batch.labels == {"obs-00001": "e"} and batch.invalid.count == 0


def test_state_joins_late_labels_and_round_trips():
    state = MonitoringState()
    assert state.join_labels([verdict(1, "edible")], {"obs-00009": "p"}) == []
    pairs = state.join_labels([verdict(9, "poisonous")], {"obs-00001": "e"})
    assert sorted((p.mushroom_id, p.verdict, p.label) for p in pairs) == [
        ("obs-00001", "edible", "e"),
        ("obs-00009", "poisonous", "p"),
    ]
    assert state.pending_verdicts == {} and state.pending_labels == {}
    state.join_labels([verdict(5, None, None, status="rejected")], {})
    assert state.pending_verdicts == {}
    again = MonitoringState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    with pytest.raises(ValueError):
        MonitoringState.from_dict({"version": 99})


def test_a_window_below_the_minimum_publishes_counts_but_no_rates():
    tiny = [verdict(0, "unknown"), verdict(1, "unknown"), verdict(2, "edible")]
    m = window_metrics(tiny, min_records=100, min_labels=50)
    assert m.unknown_rate == pytest.approx(2 / 3)  # computed (the report shows the counts) ...
    assert m.cloudwatch_values() == {"Records": 3.0}  # ... but not published
    assert m.not_published() == [
        "not published: RejectedRate, UnknownRate, Coverage, MeanPPoisonous: "
        "3 records < minimum 100"
    ]
    enough = window_metrics([verdict(i, "unknown") for i in range(100)], min_records=100)
    assert enough.cloudwatch_values()["UnknownRate"] == 1.0 and enough.not_published() == []


def test_labelled_metrics_need_the_minimum_of_labels():
    records = [verdict(i, "edible", 0.2) for i in range(100)]
    pairs = [LabelledVerdict(f"obs-{i:05d}", "edible", "p") for i in range(3)]
    m = window_metrics(records, pairs, min_records=100, min_labels=50)
    assert m.false_edible_rate == 1.0
    values = m.cloudwatch_values()
    assert "UnknownRate" in values  # 100 records are enough for the label-free rates
    assert not {"FalseEdibleRate", "DecisionAccuracy", "DoNotEatRecall"} & set(values)
    (note,) = m.not_published()
    assert note.startswith("not published: DecisionAccuracy, CoveredAccuracy, FalseEdibleRate")
    assert note.endswith(": 3 labels < minimum 50")
    # The minimums travel with a pending window (saved and finished by a re-run).
    assert WindowMetrics.from_dict(m.to_dict()).cloudwatch_values() == values
