"""CloudWatch metric-alarm evaluation, for targets that do not evaluate alarms themselves.

moto stores alarms but never evaluates them (only ``SetAlarmState`` changes their state). On
such a target the monitoring cycle evaluates each alarm Terraform created with CloudWatch's own
semantics and writes the outcome back with ``SetAlarmState``; on AWS and LocalStack it reads the
state the service computed. ``ALARM_EVALUATION=local|service|auto`` chooses; ``auto`` picks
``local`` on moto (see :func:`resolve_evaluation_mode`).

The rules implemented here are those of the CloudWatch User Guide, "Configuring how CloudWatch
alarms treat missing data" and "Avoiding premature transitions to alarm state":

- The alarm looks at the *evaluation range*, a few more periods than ``EvaluationPeriods`` (N)
  (5 for N = 3 in the guide; here ``N + 2``), each period reduced with the alarm's statistic.
- If the range holds at least N real datapoints, the N most recent real ones decide: ALARM when
  at least ``DatapointsToAlarm`` (M) of them breach, else OK; the missing-data treatment is not
  used.
- Otherwise all real datapoints of the range are used and the gap up to N is filled according
  to ``TreatMissingData``: ``breaching`` fills with breaching points, ``notBreaching`` with good
  ones; ``missing`` and ``ignore`` fill nothing. With no real datapoint at all, ``missing`` goes
  to INSUFFICIENT_DATA and ``ignore`` keeps the current state.
- Premature-alarm rule (``missing`` only; ``ignore`` keeps the state instead): when every real
  datapoint in the range breaches and the oldest of them is at least M periods old, the alarm
  goes to ALARM although fewer than M datapoints exist (guide rows ``- - X - -`` for 3 of 3 and
  ``- - - X -`` for 2 of 3). A non-breaching datapoint anywhere in the range turns the rule off
  (guide row ``0 - X - -`` for 2 of 3 stays OK).

The unit tests pin this module to all ten rows of the guide's two example tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)

MISSING = "missing"
IGNORE = "ignore"
BREACHING = "breaching"
NOT_BREACHING = "notBreaching"
TREATMENTS = (MISSING, IGNORE, BREACHING, NOT_BREACHING)

_COMPARATORS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "GreaterThanThreshold": ("greater than", lambda v, t: v > t),
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", lambda v, t: v >= t),
    "LessThanThreshold": ("less than", lambda v, t: v < t),
    "LessThanOrEqualToThreshold": ("less than or equal to", lambda v, t: v <= t),
}
# How many periods beyond EvaluationPeriods the evaluation range reaches back (the guide's
# examples: N = 3, range 5).
EXTRA_RANGE_PERIODS = 2


class AlarmConfigError(ValueError):
    """An alarm uses a feature this evaluator does not implement."""


@dataclass(frozen=True)
class AlarmSpec:
    """The parts of a ``DescribeAlarms`` MetricAlarm that decide its state."""

    name: str
    namespace: str
    metric_name: str
    statistic: str
    period: int
    evaluation_periods: int
    threshold: float
    comparison_operator: str
    datapoints_to_alarm: int | None = None
    treat_missing_data: str = MISSING
    dimensions: tuple[tuple[str, str], ...] = ()
    state: str = INSUFFICIENT_DATA
    actions_enabled: bool = True
    alarm_actions: tuple[str, ...] = ()

    @property
    def m(self) -> int:
        """Datapoints to alarm (defaults to EvaluationPeriods, as in CloudWatch)."""
        return self.datapoints_to_alarm or self.evaluation_periods

    @property
    def n(self) -> int:
        return self.evaluation_periods

    @property
    def evaluation_range(self) -> int:
        return self.evaluation_periods + EXTRA_RANGE_PERIODS

    @classmethod
    def from_describe(cls, alarm: Mapping[str, Any]) -> "AlarmSpec":
        """Build from one ``MetricAlarms`` entry of ``DescribeAlarms``."""
        if "Metrics" in alarm and alarm.get("Metrics"):
            raise AlarmConfigError(f"{alarm['AlarmName']}: metric-math alarms are not supported")
        statistic = alarm.get("Statistic") or alarm.get("ExtendedStatistic")
        if not statistic:
            raise AlarmConfigError(f"{alarm['AlarmName']}: no statistic")
        operator = alarm["ComparisonOperator"]
        if operator not in _COMPARATORS:
            raise AlarmConfigError(f"{alarm['AlarmName']}: {operator} is not supported")
        treatment = alarm.get("TreatMissingData") or MISSING
        if treatment not in TREATMENTS:
            raise AlarmConfigError(f"{alarm['AlarmName']}: TreatMissingData {treatment!r}")
        return cls(
            name=alarm["AlarmName"],
            namespace=alarm["Namespace"],
            metric_name=alarm["MetricName"],
            statistic=statistic,
            period=int(alarm["Period"]),
            evaluation_periods=int(alarm["EvaluationPeriods"]),
            threshold=float(alarm["Threshold"]),
            comparison_operator=operator,
            datapoints_to_alarm=(
                int(alarm["DatapointsToAlarm"]) if alarm.get("DatapointsToAlarm") else None
            ),
            treat_missing_data=treatment,
            dimensions=tuple((d["Name"], d["Value"]) for d in alarm.get("Dimensions") or ()),
            state=alarm.get("StateValue") or INSUFFICIENT_DATA,
            actions_enabled=bool(alarm.get("ActionsEnabled", True)),
            alarm_actions=tuple(alarm.get("AlarmActions") or ()),
        )

    def breaches(self, value: float) -> bool:
        return _COMPARATORS[self.comparison_operator][1](value, self.threshold)


@dataclass(frozen=True)
class Evaluation:
    """Outcome of evaluating one alarm; ``state`` is the state the alarm should be in."""

    alarm: str
    previous_state: str
    state: str
    reason: str
    datapoints: tuple[float | None, ...]
    retained: bool = False

    @property
    def changed(self) -> bool:
        return self.state != self.previous_state

    def reason_data(self) -> str:
        """JSON for ``SetAlarmState(StateReasonData=...)``."""
        return json.dumps(
            {
                "version": "1.0",
                "evaluator": "monitoring.alarms (CloudWatch semantics, local evaluation)",
                "recentDatapoints": [v for v in self.datapoints if v is not None],
                "datapointsOldestFirst": list(self.datapoints),
            }
        )


def evaluate(
    spec: AlarmSpec, datapoints: Sequence[float | None], current_state: str | None = None
) -> Evaluation:
    """Decide the state of ``spec`` from the evaluation range's datapoints.

    ``datapoints`` holds one value per period, oldest first, the newest period last; ``None``
    marks a missing period. It is normally ``spec.evaluation_range`` long; any length works.
    """
    current = current_state or spec.state
    points = tuple(datapoints)
    # (age, breaching) of every real datapoint, newest first; age 0 = newest period.
    real = [
        (age, spec.breaches(value))
        for age, value in enumerate(reversed(points))
        if value is not None and not (isinstance(value, float) and math.isnan(value))
    ]
    n, m = spec.n, spec.m

    def outcome(state: str, reason: str, retained: bool = False) -> Evaluation:
        return Evaluation(spec.name, current, state, reason, points, retained)

    if len(real) >= n:
        breaching = sum(1 for _, b in real[:n] if b)
        return outcome(*_threshold(spec, breaching, n, "most recent datapoints"))

    breaching = sum(1 for _, b in real if b)
    fill = n - len(real)
    treatment = spec.treat_missing_data
    if treatment == BREACHING:
        return outcome(
            *_threshold(spec, breaching + fill, n, f"datapoints ({fill} missing, as breaching)")
        )
    if treatment == NOT_BREACHING:
        return outcome(
            *_threshold(spec, breaching, n, f"datapoints ({fill} missing, as not breaching)")
        )
    if not real:
        if treatment == IGNORE:
            return outcome(current, "no datapoints in the evaluation range: state kept", True)
        return outcome(INSUFFICIENT_DATA, "no datapoints in the evaluation range")
    if breaching < m and _premature_rule(real, m):
        if treatment == IGNORE:
            return outcome(current, "intermittent breaching data with ignore: state kept", True)
        return outcome(
            ALARM,
            f"every datapoint in the range breaches and the oldest is {real[-1][0] + 1} periods "
            f"old (>= {m} datapoints to alarm)",
        )
    return outcome(*_threshold(spec, breaching, len(real), "available datapoints"))


def _premature_rule(real: Sequence[tuple[int, bool]], m: int) -> bool:
    return all(b for _, b in real) and real[-1][0] + 1 >= m


def _threshold(spec: AlarmSpec, breaching: int, considered: int, what: str) -> tuple[str, str]:
    words = _COMPARATORS[spec.comparison_operator][0]
    state = ALARM if breaching >= spec.m else OK
    return (
        state,
        f"{breaching} of {considered} {what} {words} the threshold ({spec.threshold:g}); "
        f"{spec.m} needed for ALARM",
    )


# --- periods and datapoints ---------------------------------------------------------------------


def period_start(at: datetime, period: int) -> datetime:
    """Start of the period containing ``at`` (periods aligned to the epoch, as CloudWatch)."""
    at = at.astimezone(timezone.utc)
    seconds = int(at.timestamp()) // period * period
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def evaluation_window(spec: AlarmSpec, at: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the evaluation range whose newest period contains ``at``."""
    newest = period_start(at, spec.period)
    start = newest - timedelta(seconds=spec.period * (spec.evaluation_range - 1))
    return start, newest + timedelta(seconds=spec.period)


def bucket_datapoints(
    spec: AlarmSpec, datapoints: Sequence[tuple[datetime, float]], at: datetime
) -> list[float | None]:
    """Place period statistics (timestamp = period start) into the range, oldest first."""
    start, end = evaluation_window(spec, at)
    slots: list[float | None] = [None] * spec.evaluation_range
    for timestamp, value in datapoints:
        timestamp = timestamp.astimezone(timezone.utc)
        if not start <= timestamp < end:
            continue
        index = int((timestamp - start).total_seconds()) // spec.period
        slots[index] = float(value)
    return slots
