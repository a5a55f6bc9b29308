"""The run summary (what make demo prints) reports the shared verdict metrics."""

from __future__ import annotations

import pytest

from producer import print_summary, summarise


def _verdict(i: int, verdict: str | None, status: str = "scored") -> dict:
    return {
        "mushroom_id": f"m{i}",
        "status": status,
        "verdict": verdict,
        "model_version": "3",
        "input_sequence_number": str(i),
        "errors": [] if status == "scored" else [{"field": "$", "message": "bad"}],
    }


def test_summary_counts_unknown_as_do_not_eat(capsys):
    verdicts = [
        _verdict(0, "poisonous"),
        _verdict(1, "unknown"),  # poisonous: the right action
        _verdict(2, "unknown"),  # edible: a meal lost
        _verdict(3, "edible"),
        _verdict(4, None, status="rejected"),
    ]
    labels = {"m0": "p", "m1": "p", "m2": "e", "m3": "e"}
    summary = summarise(verdicts, labels, {"m4"})
    assert summary["labelled"] == 4
    assert summary["decision_accuracy"] == pytest.approx(3 / 4)
    assert summary["coverage"] == pytest.approx(2 / 4)
    assert summary["covered_accuracy"] == 1.0
    assert summary["false_edible"] == 0 and summary["false_edible_rate"] == 0.0
    assert summary["rejected"] == 1 and summary["model_version"] == "3"
    print_summary(summary, records_put=5, seconds=1.0)
    out = capsys.readouterr().out
    assert "decision_accuracy 75.00%" in out and "coverage 50.00%" in out
    assert "covered_accuracy 100.00%" in out and "false_edible 0" in out


def test_invoke_prints_each_records_verdict():
    from producer import verdict_lines

    event = [
        {"kinesis": {"partitionKey": "obs-1", "sequenceNumber": "11"}},
        {"kinesis": {"partitionKey": "obs-2", "sequenceNumber": "12"}},
        {"kinesis": {"partitionKey": "obs-3", "sequenceNumber": "13"}},
    ]
    scored = {**_verdict(1, "edible"), "input_sequence_number": "11", "p_poisonous": 0.0123}
    rejected = {**_verdict(2, None, "rejected"), "input_sequence_number": "12"}
    assert verdict_lines(event, [rejected, scored]) == [
        "m1 -> edible (p_poisonous 0.012, model version 3)",
        "m2 -> rejected: $: bad",
        "obs-3 -> no verdict read (sequence number 13)",
    ]


def test_the_summary_and_invoke_say_which_misread_made_a_verdict_unknown(capsys):
    from producer import verdict_lines

    misread = {"field": "gill_spacing", "value": "d"}
    verdicts = [
        {**_verdict(0, "unknown"), "p_poisonous": 0.002, "misread": misread},
        {
            **_verdict(1, "unknown"),
            "p_poisonous": 0.3,
            "misread": {"field": "cap_diameter", "value": 7.5},
        },
        {**_verdict(2, "edible"), "p_poisonous": 0.001},
    ]
    summary = summarise(verdicts, {"m0": "p", "m1": "e", "m2": "e"}, set())
    assert summary["misread_unknown"] == 2
    assert summary["misread_fields"] == {"gill_spacing": 1, "cap_diameter": 1}
    print_summary(summary, records_put=3, seconds=1.0)
    assert "of the unknown, 2 because one misread attribute" in capsys.readouterr().out
    event = [{"kinesis": {"partitionKey": "obs-0", "sequenceNumber": "0"}}]
    assert verdict_lines(event, verdicts[:1]) == [
        "m0 -> unknown (p_poisonous 0.002, model version 3): gill_spacing misread for 'd' could"
        " make it poisonous"
    ]
