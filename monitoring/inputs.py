"""What a monitoring cycle read, and what it could not use (plain data, no AWS).

Observations, verdicts and label lines come from producers monitoring does not control, so
any of them can be hostile: not UTF-8, not JSON, nested 100,000 deep, a 5,000-digit number, a
field of the wrong type. None of them may stop a cycle or skew it silently. Each one that
cannot be used is counted (CloudWatch ``InvalidObservations``, ``InvalidVerdicts``,
``InvalidLabels``), its first reasons go to the report and the summary, and it is skipped.

Stream reads also say where the checkpoint could not be followed (``CheckpointGaps``: records
trimmed past retention, a recreated stream, a vanished shard) and how far behind the stream's
tip the monitor is (``MonitorLagMs``: ``MillisBehindLatest`` of the last read, max over
shards and streams).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

MAX_REASONS = 5  # reasons kept per kind of input: enough to act on, bounded for a flood
_REASON_CHARS = 200


@dataclass
class Rejects:
    """Unusable inputs of one kind: how many, and the first few reasons."""

    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason[:_REASON_CHARS])

    def extend(self, other: "Rejects") -> None:
        self.count += other.count
        self.reasons.extend(other.reasons[: MAX_REASONS - len(self.reasons)])


def load_json(data: bytes) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, why)`` for data that is not strict UTF-8 JSON.

    The same checks as ``lambda_function.decoding.validate_payload`` (which also validates an
    observation): ``json`` raises ValueError for integers beyond Python's digit limit and
    RecursionError for absurd nesting, and both are bad input, not a crash.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8: {exc.reason} at byte {exc.start}"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at line {exc.lineno} col {exc.colno}"
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class CheckpointGap:
    """A shard whose checkpoint could not be followed: records after it may be lost."""

    stream: str
    shard_id: str
    checkpoint: str | None
    reason: str

    def describe(self) -> str:
        return (
            f"{self.stream} {self.shard_id}: {self.reason} (checkpoint {self.checkpoint}); "
            "records after it may never have been read"
        )


@dataclass
class StreamRead:
    """One read of a stream: record data, the new checkpoint, gaps found, and the lag."""

    records: list[bytes]
    checkpoint: dict[str, str]
    gaps: list[CheckpointGap] = field(default_factory=list)
    lag_ms: int | None = None  # MillisBehindLatest after the read, max over shards


@dataclass
class InputReport:
    """Unusable inputs, checkpoint gaps and lag of one cycle (``None``: input not read)."""

    verdicts: Rejects
    observations: Rejects | None = None
    labels: Rejects | None = None
    gaps: list[CheckpointGap] = field(default_factory=list)
    lag_ms: dict[str, int | None] = field(default_factory=dict)  # stream -> lag

    @classmethod
    def collect(
        cls,
        reads: Mapping[str, StreamRead],
        verdicts: Rejects,
        observations: Rejects | None,
        labels: Rejects | None,
    ) -> "InputReport":
        return cls(
            verdicts=verdicts,
            observations=observations,
            labels=labels,
            gaps=[gap for read in reads.values() for gap in read.gaps],
            lag_ms={stream: read.lag_ms for stream, read in reads.items()},
        )

    @property
    def max_lag_ms(self) -> int | None:
        known = [lag for lag in self.lag_ms.values() if lag is not None]
        return max(known) if known else None

    def metric_values(self) -> dict[str, float]:
        """CloudWatch metric name -> value (counts are published even when 0)."""
        values = {"InvalidVerdicts": float(self.verdicts.count)}
        if self.observations is not None:
            values["InvalidObservations"] = float(self.observations.count)
        if self.labels is not None:
            values["InvalidLabels"] = float(self.labels.count)
        values["CheckpointGaps"] = float(len(self.gaps))
        if self.max_lag_ms is not None:
            values["MonitorLagMs"] = float(self.max_lag_ms)
        return values

    def problems(self) -> list[tuple[str, Rejects]]:
        """(what, rejects) for each input kind that had unusable items."""
        kinds = (
            ("observations", self.observations),
            ("verdicts", self.verdicts),
            ("label lines", self.labels),
        )
        return [(name, r) for name, r in kinds if r is not None and r.count]

    def summary_lines(self) -> list[str]:
        """What ``make monitor`` prints about the inputs (nothing when all was usable)."""
        lines = []
        problems = self.problems()
        if problems:
            lines.append("invalid: " + ", ".join(f"{r.count} {name}" for name, r in problems))
            for name, rejects in problems:
                lines.extend(f"  invalid {name}: {reason}" for reason in rejects.reasons)
        lines.extend(f"CHECKPOINT GAP: {gap.describe()}" for gap in self.gaps)
        lag = ", ".join(f"{s} {'?' if v is None else v} ms" for s, v in self.lag_ms.items())
        if lag:
            lines.append(f"monitor lag behind the streams' tips: {lag}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "InputReport":
        """The inverse of :meth:`to_dict` (a pending window keeps its report in the state)."""
        if not data:
            return cls(verdicts=Rejects())

        def rejects(value: Mapping[str, Any] | None) -> Rejects | None:
            return None if value is None else Rejects(int(value["count"]), list(value["reasons"]))

        return cls(
            verdicts=rejects(data.get("verdicts")) or Rejects(),
            observations=rejects(data.get("observations")),
            labels=rejects(data.get("labels")),
            gaps=[CheckpointGap(**gap) for gap in data.get("gaps", [])],
            lag_ms=dict(data.get("lag_ms", {})),
        )
