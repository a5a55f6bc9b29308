"""One window read from the archive by SQL: label-free counts, the labels joined with the
verdicts they judge, invalid lines, and a bounded sample of observations for drift.

Label semantics (docs/architecture.md, Late labels):

- a label joins the id's newest usable scored verdict within the look-back, however many
  verdicts came in between;
- the window's labels are the last answer per id among the label objects it read; an id
  answered both ways within the window is a *conflict* (counted, reported; the later counts);
- a label that differs from the id's label in an earlier window is a *correction*: it is
  counted in the metrics of the window it arrives in, and reported;
- a label whose verdict the archive does not hold within the look-back is *unscored*:
  counted (``UnscoredLabels``) and reported with a few ids.

The SQL produces counts; the metrics themselves come from ``lambda_function.verdict_metrics``
(through ``monitoring.metrics``), so each is still defined once.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from lambda_function import verdict_metrics as vm
from lambda_function.schema import POISONOUS
from monitoring import archive as sql
from monitoring.inputs import Rejects
from monitoring.labels import LabelBatch
from monitoring.metrics import WindowMetrics, confusion_metrics, counted_metrics
from monitoring.query import QueryEngine, QueryError

log = logging.getLogger(__name__)

UNSCORED_EXAMPLES = 5


@dataclass
class LabelReport:
    """What happened to the window's labels (see the module docstring)."""

    received: int = 0
    joined: int = 0
    corrections: int = 0
    unscored: int = 0
    unscored_examples: list[str] = field(default_factory=list)
    conflicts: int = 0

    def metric_values(self) -> dict[str, float]:
        return {
            "LabelsJoined": float(self.joined),
            "LabelCorrections": float(self.corrections),
            "UnscoredLabels": float(self.unscored),
            "ConflictingLabels": float(self.conflicts),
        }

    def lines(self) -> list[str]:
        out = [
            f"labels: {self.received} received, {self.joined} joined a verdict, "
            f"{self.corrections} corrections, {self.unscored} without a verdict in the archive, "
            f"{self.conflicts} conflicting within the cycle"
        ]
        if self.unscored:
            out.append(
                f"  labels without a scored verdict in the look-back: {self.unscored}, e.g. "
                + ", ".join(self.unscored_examples)
            )
        return out


@dataclass
class ArchiveRead:
    window: str
    start: datetime
    end: datetime
    engine: str
    metrics: WindowMetrics
    labels: LabelReport
    invalid: Rejects
    skipped: list[str]
    observations: pd.DataFrame | None = None
    # The window's observation lines that are no record (exact; None: not read)
    observations_not_records: int | None = None
    read_by_line: list[str] = field(default_factory=list)  # objects re-read line by line
    queries: int = 0
    #: Verdict objects in the partitions the window's counts read (None: could not list).
    verdict_objects: int | None = None


@dataclass
class ArchiveReader:
    """Reads windows from the archive through a query engine; ``objects`` is the data bucket
    (the label events are written there before they are queried)."""

    engine: QueryEngine
    objects: Any  # monitoring.ports.ObjectStore
    look_back: timedelta = timedelta(days=30)
    grace: timedelta = timedelta(0)
    dedupe_horizon: timedelta = timedelta(hours=1)

    def window_end(self, at: datetime) -> datetime:
        return at - self.grace

    def read(
        self,
        window: str,
        at: datetime,
        start: datetime,
        labels: LabelBatch,
        *,
        drift_rows: int = 0,
        previous: str | None = None,
    ) -> ArchiveRead:
        """The window ``(start, at - grace]``. Its labels are recorded as received at ``at``
        (``sql.timestamp``); ``previous`` is that time of the last window the state recorded:
        the label history is the label events up to it."""
        end = self.window_end(at)
        skipped: list[str] = []
        by_line: list[str] = []
        queries = 0

        def run(text: str) -> Any:
            nonlocal queries
            queries += 1
            result = self.engine.query(text)
            skipped.extend(s for s in result.skipped if s not in skipped)
            by_line.extend(s for s in getattr(result, "read_by_line", ()) if s not in by_line)
            return result

        groups = run(sql.window_counts_sql(start, end, self.dedupe_horizon))
        invalid_row = run(sql.invalid_verdicts_sql(sql.closed_hours(start, end))).one()
        invalid = Rejects()
        if invalid_row["invalid"]:
            invalid.count = int(invalid_row["invalid"])
            invalid.reasons.append(
                f"{invalid.count} archived lines are not usable verdict records "
                "(not JSON objects, or breaking the output contract)"
            )
        metrics = counted_metrics(
            [dict(g) for g in groups.records()], invalid=int(invalid_row["invalid"] or 0)
        )
        metrics.duplicates += sum(int(g["earlier"] or 0) for g in groups.records())
        report = LabelReport(received=len(labels.labels), conflicts=labels.conflicts.count)
        received = sql.timestamp(at)
        if labels.labels:
            self._write_label_events(window, at, labels)
            look_from = end - self.look_back
            table: vm.Confusion = {c: dict.fromkeys(vm.VERDICTS, 0) for c in vm.TRUE_CLASSES}
            for row in run(sql.label_join_sql(received, look_from, end, previous)).records():
                n = int(row["n"])
                if row["verdict"] is None:
                    report.unscored += n
                    continue
                truth = vm.VERDICT_POISONOUS if row["label"] == POISONOUS else vm.VERDICT_EDIBLE
                table[truth][row["verdict"]] += n
                report.joined += n
                report.corrections += n if int(row["correction"]) else 0
            confusion_metrics(table, metrics)
            if report.unscored:
                report.unscored_examples = [
                    r["mushroom_id"]
                    for r in run(
                        sql.unscored_examples_sql(received, look_from, end, UNSCORED_EXAMPLES)
                    ).records()
                ]
        observations, not_records = None, None
        if drift_rows:
            sample = run(sql.observation_sample_sql(start, end, drift_rows))
            observations = pd.DataFrame(sample.rows, columns=sample.columns)
            not_records = int(run(sql.observation_lines_sql(start, end)).one()["not_records"])
        try:
            verdict_objects: int | None = sql.objects_since(
                self.objects, "verdicts", start - self.dedupe_horizon
            )
        except Exception:  # noqa: BLE001 - a count for the report only, never the cycle's fate
            log.warning("could not count the archive's verdict objects", exc_info=True)
            verdict_objects = None
        return ArchiveRead(
            window=window,
            start=start,
            end=end,
            engine=self.engine.name,
            metrics=metrics,
            labels=report,
            invalid=invalid,
            skipped=skipped,
            observations=observations,
            observations_not_records=not_records,
            read_by_line=by_line,
            queries=queries,
            verdict_objects=verdict_objects,
        )

    def _write_label_events(self, window: str, at: datetime, labels: LabelBatch) -> str:
        """The window's labels as one object of ``label_events`` (idempotent per window)."""
        lines = (
            json.dumps(
                {
                    "mushroom_id": m,
                    "label": label,
                    "received_in": sql.timestamp(at),
                    "source_key": window,
                }
            )
            for m, label in labels.labels.items()
        )
        body = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6)
        key = f"{sql.TABLES[sql.LABEL_EVENTS].prefix}{sql.partition_key(at)}{window}.gz"
        try:
            return self.objects.put(key, body, "application/gzip")
        except Exception as exc:  # the join needs them: the window cannot be read without
            raise QueryError(f"the window's label events not written to {key}: {exc}") from exc
