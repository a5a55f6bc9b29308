"""One window read from the archive by SQL: label-free counts, the labels joined with the
verdicts they judge, invalid lines, and a bounded sample of observations for drift.

Label semantics (docs/architecture.md, Late labels):

- a label joins the id's newest usable scored verdict within the look-back, however many
  verdicts came in between;
- the window's labels are the last answer per id among the label objects it read; an id
  answered both ways within the window is a *conflict* (counted, reported; the later counts);
- a label that differs from the id's label in an earlier window is a *correction*: it is
  counted in the metrics of the window it arrives in, and reported;
- a label that comes before its verdict is in the archive (Firehose buffers for minutes; a
  lab may be quick) *waits*: the pair's time is ``max(label's window end, verdict's
  scored_at)``, and the window holding that time counts it, once (``LabelsJoinedLate``,
  within ``LabelsJoined``). ``LabelsWaiting`` says how many wait at the window's end;
- a label still without a verdict a look-back after it came is *unscored*: counted in the
  window where its look-back runs out (``UnscoredLabels``), reported with an example id.

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
    joined: int = 0  # pairs counted in this window: labels received now, and joined_late
    joined_late: int = 0  # labels of earlier windows whose verdict landed in this one
    corrections: int = 0
    waiting: int = 0  # labels without a verdict yet, within the look-back (at the window's end)
    waiting_examples: list[str] = field(default_factory=list)
    unscored: int = 0  # labels whose look-back ran out in this window without a verdict
    unscored_examples: list[str] = field(default_factory=list)
    conflicts: int = 0

    def metric_values(self) -> dict[str, float]:
        return {
            "LabelsJoined": float(self.joined),
            "LabelsJoinedLate": float(self.joined_late),
            "LabelCorrections": float(self.corrections),
            "LabelsWaiting": float(self.waiting),
            "UnscoredLabels": float(self.unscored),
            "ConflictingLabels": float(self.conflicts),
        }

    def lines(self) -> list[str]:
        out = [
            f"labels: {self.received} received, {self.joined} joined a verdict "
            f"({self.joined_late} of them labels that waited for it), "
            f"{self.corrections} corrections, {self.waiting} waiting for their verdict, "
            f"{self.unscored} unscored past the look-back, "
            f"{self.conflicts} conflicting within the cycle"
        ]
        if self.waiting:
            out.append(
                f"  labels waiting for their verdict (within the look-back): {self.waiting}, "
                "e.g. " + ", ".join(self.waiting_examples)
            )
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
        end: datetime | None = None,
    ) -> ArchiveRead:
        """The window ``(start, end]`` (default ``end``: ``at - grace``). Its labels are
        recorded as received at ``end`` (``sql.timestamp``); ``previous`` is that time of the
        last window the state recorded: the label history is the label events up to it, and
        the labels that wait are looked for only once there is one."""
        end = end or self.window_end(at)
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
        received = sql.timestamp(end)  # a label's time: the end of the window that read it
        table: vm.Confusion = {c: dict.fromkeys(vm.VERDICTS, 0) for c in vm.TRUE_CLASSES}

        def judged(label: str, verdict: str, n: int) -> None:
            truth = vm.VERDICT_POISONOUS if label == POISONOUS else vm.VERDICT_EDIBLE
            table[truth][verdict] += n
            report.joined += n

        look_from = end - self.look_back
        waiting, ids = 0, []  # labels without a verdict yet, and their ids
        if labels.labels:
            key = self._write_label_events(window, end, labels)
            for row in run(sql.label_join_sql(received, look_from, end, previous)).records():
                n = int(row["n"])
                if row["verdict"] is None:
                    waiting += n
                    ids.append(row["waiting_id"])
                    continue
                judged(row["label"], row["verdict"], n)
                report.corrections += n if int(row["correction"]) else 0
            if waiting:
                ids.sort()
                self._write_label_events(window, end, labels, waiting=set(ids), key=key)
        report.waiting_examples = ids[:UNSCORED_EXAMPLES]  # the window's own, then others
        if (
            previous is not None
            and run(sql.waiting_count_sql(received, start - self.look_back, previous)).one()["n"]
        ):
            query = sql.waited_labels_sql(received, start, end, self.look_back, previous)
            joined: dict[str, str] = {}
            for row in run(query).records():
                n, state = int(row["n"]), row["state"]
                if state == "joined":
                    judged(row["label"], row["verdict"], n)
                    report.joined_late += n
                    joined[row["joined_id"]] = row["label"]
                elif state == "waiting":
                    report.waiting += n
                    if len(report.waiting_examples) < UNSCORED_EXAMPLES:
                        if row["example"] not in report.waiting_examples:
                            report.waiting_examples.append(row["example"])
                elif state == "expired":
                    report.unscored += n
                    if len(report.unscored_examples) < UNSCORED_EXAMPLES:
                        report.unscored_examples.append(row["example"])
            if joined:  # they wait no more: no later window looks for their verdict
                late = LabelBatch(labels=joined)
                self._write_label_events(f"{window}-joined", end, late)
        else:
            report.waiting = waiting  # the first window: only its own labels can wait
        if report.joined:
            confusion_metrics(table, metrics)
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

    def _write_label_events(
        self,
        window: str,
        end: datetime,
        labels: LabelBatch,
        waiting: set[str] = frozenset(),  # type: ignore[assignment]
        key: str | None = None,
    ) -> str:
        """The window's labels as one object of ``label_events`` (idempotent per window),
        received at ``end``; written again, with ``waiting`` marked, once the join has found
        which have no verdict yet (until then, none waits: a crash in between leaves labels
        that the re-run reads again, in a later window)."""
        lines = (
            json.dumps(
                {
                    "mushroom_id": m,
                    "label": label,
                    "received_in": sql.timestamp(end),
                    "source_key": window,
                    "waiting": m in waiting,
                }
            )
            for m, label in labels.labels.items()
        )
        body = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6)
        key = key or f"{sql.TABLES[sql.LABEL_EVENTS].prefix}{sql.partition_key(end)}{window}.gz"
        try:
            self.objects.put(key, body, "application/gzip")
            return key
        except Exception as exc:  # the join needs them: the window cannot be read without
            raise QueryError(f"the window's label events not written to {key}: {exc}") from exc
