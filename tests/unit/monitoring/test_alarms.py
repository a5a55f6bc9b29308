"""The local alarm evaluator against CloudWatch's documented examples (and its edges)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from monitoring import alarms
from monitoring.alarms import ALARM, INSUFFICIENT_DATA, OK, AlarmConfigError, AlarmSpec
from tests.examples import FIXTURES

EXAMPLES = json.loads((FIXTURES / "cloudwatch_missing_data_examples.json").read_text())
THRESHOLD = 0.5


def spec(m: int, n: int, treatment: str = alarms.MISSING, **overrides) -> AlarmSpec:
    values = dict(
        name="test-alarm",
        namespace="MushroomClassifier",
        metric_name="UnknownRate",
        statistic="Maximum",
        period=60,
        evaluation_periods=n,
        datapoints_to_alarm=m,
        threshold=THRESHOLD,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data=treatment,
    )
    values.update(overrides)
    return AlarmSpec(**values)


def parse(points: str) -> list[float | None]:
    """'0 - X' -> [0.0, None, 1.0] (0 = good, X = breaching, - = missing)."""
    return [{"0": 0.0, "X": 1.0, "-": None}[token] for token in points.split()]


DOC_CASES = [
    pytest.param(
        table["datapoints_to_alarm"],
        table["evaluation_periods"],
        row["points"],
        treatment,
        row[treatment],
        id=f"{table['datapoints_to_alarm']}of{table['evaluation_periods']}"
        f"[{row['points']}]-{treatment}",
    )
    for table in EXAMPLES["tables"]
    for row in table["rows"]
    for treatment in alarms.TREATMENTS
]


@pytest.mark.parametrize("m,n,points,treatment,expected", DOC_CASES)
@pytest.mark.parametrize("current", [OK, ALARM])
def test_documented_examples(m, n, points, treatment, expected, current):
    result = alarms.evaluate(spec(m, n, treatment), parse(points), current_state=current)
    if expected == "RETAIN":
        assert result.retained and result.state == current
        assert not result.changed
    else:
        assert result.state == expected
        assert result.changed == (expected != current)


@pytest.mark.parametrize("points", EXAMPLES["premature_examples"]["not_alarm"])
def test_premature_transition_is_avoided(points):
    result = alarms.evaluate(spec(3, 3), parse(points), current_state=OK)
    assert result.state != ALARM


def test_single_period_alarm_follows_latest_datapoint():
    one = spec(1, 1, alarms.NOT_BREACHING)
    assert alarms.evaluate(one, [None, None, 0.9]).state == ALARM
    assert alarms.evaluate(one, [None, 0.9, 0.1]).state == OK
    # The newest real point decides even when the newest period is empty.
    assert alarms.evaluate(one, [None, 0.9, None]).state == ALARM
    assert alarms.evaluate(one, [None, None, None]).state == OK


@pytest.mark.parametrize(
    "operator,value,breaches",
    [
        ("GreaterThanThreshold", 0.5, False),
        ("GreaterThanOrEqualToThreshold", 0.5, True),
        ("LessThanThreshold", 0.4, True),
        ("LessThanOrEqualToThreshold", 0.5, True),
        ("LessThanThreshold", 0.5, False),
    ],
)
def test_comparison_operators(operator, value, breaches):
    assert spec(1, 1, comparison_operator=operator).breaches(value) is breaches


def test_from_describe_reads_terraform_alarm():
    described = {
        "AlarmName": "mushroom-unknown-rate-high",
        "Namespace": "MushroomClassifier",
        "MetricName": "UnknownRate",
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": 0.2,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        "StateValue": "INSUFFICIENT_DATA",
        "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:mushroom-alerts"],
    }
    parsed = AlarmSpec.from_describe(described)
    assert (parsed.m, parsed.n, parsed.evaluation_range) == (1, 1, 3)
    assert parsed.treat_missing_data == alarms.NOT_BREACHING
    assert parsed.state == INSUFFICIENT_DATA
    assert parsed.alarm_actions == ("arn:aws:sns:us-east-1:123456789012:mushroom-alerts",)
    # Without DatapointsToAlarm, CloudWatch uses EvaluationPeriods.
    del described["DatapointsToAlarm"]
    described["EvaluationPeriods"] = 3
    assert AlarmSpec.from_describe(described).m == 3


def test_from_describe_rejects_what_is_not_implemented():
    with pytest.raises(AlarmConfigError, match="not supported"):
        AlarmSpec.from_describe(
            {
                "AlarmName": "band",
                "Namespace": "x",
                "MetricName": "y",
                "Statistic": "Average",
                "Period": 60,
                "EvaluationPeriods": 1,
                "Threshold": 0,
                "ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold",
            }
        )


def test_bucket_datapoints_places_periods_oldest_first():
    alarm = spec(1, 3)
    at = datetime(2026, 11, 27, 12, 0, 30, tzinfo=timezone.utc)
    newest = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
    points = [
        (newest, 0.7),
        (newest - timedelta(minutes=2), 0.1),
        (newest - timedelta(minutes=9), 0.9),  # outside the 5-period range
        (newest + timedelta(minutes=1), 0.9),  # in the future
    ]
    assert alarms.bucket_datapoints(alarm, points, at) == [None, None, 0.1, None, 0.7]
    start, end = alarms.evaluation_window(alarm, at)
    assert (end - start) == timedelta(minutes=5)


def _terraform_missing_data_treatment() -> str:
    """``treat_missing_data`` of the model-quality alarms in the alerting module."""
    import re

    from config.settings import REPO_ROOT

    text = (REPO_ROOT / "terraform" / "modules" / "alerting" / "main.tf").read_text()
    block = text[text.index('resource "aws_cloudwatch_metric_alarm" "monitoring"') :]
    block = block[: block.index("\n}\n")]
    match = re.search(r'treat_missing_data\s*=\s*"(\w+)"', block)
    assert match, "the monitoring alarms must set treat_missing_data"
    return match.group(1)


@pytest.mark.parametrize("before", [OK, ALARM, INSUFFICIENT_DATA])
def test_a_window_below_the_minimum_is_missing_data_that_does_not_breach(before):
    # A window with too few records publishes no UnknownRate (monitoring.metrics): to the alarm
    # that period is missing. CloudWatch (Terraform's treatment) and the local evaluator must
    # agree that it is not a breach, whatever the alarm's state was.
    from tests.fakes.monitoring import FakeCloudWatch

    treatment = _terraform_missing_data_treatment()
    assert treatment in (alarms.NOT_BREACHING, alarms.IGNORE)
    fake = FakeCloudWatch().alarms["mushroom-unknown-rate-high"]["TreatMissingData"]
    assert fake == treatment  # the cycle's unit tests use the same semantics
    alarm = spec(1, 1, treatment, state=before)
    result = alarms.evaluate(alarm, [None] * alarm.evaluation_range)
    assert result.state != ALARM or before == ALARM and treatment == alarms.IGNORE
    if treatment == alarms.NOT_BREACHING:
        assert result.state == OK, result.reason
