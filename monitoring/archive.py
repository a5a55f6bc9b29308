"""The archive layout and the SQL that turns it into a window's counts.

Layout (data bucket; Firehose writes the first two, monitoring the third):

- ``archive/verdicts/dt=YYYY-MM-DD/hour=HH/<object>.gz``: each verdict record the scorer put on
  the verdict stream, one JSON object per line, gzip; ``dt``/``hour`` are the UTC arrival time
  at the delivery stream. Records may repeat (at-least-once).
- ``archive/observations/dt=.../hour=.../<object>.gz``: each input record as the producer put
  it (no Kinesis sequence number: Firehose keeps only the data).
- ``archive/label-events/dt=.../hour=.../<window>.gz``: the labels each monitoring window
  received, one line ``{"mushroom_id", "label", "received_in", "source_key", "waiting"}`` per
  id (the window's last answer for it; ``received_in`` is the window's end, ``source_key`` its
  name, ``waiting`` true when the archive held no verdict for the id then), written by the
  cycle before it queries them: the label history SQL needs (which label an id had before: a
  correction; which labels wait for their verdict), in both engines alike.

Every query here is one text for DuckDB and Athena (Trino): plain SELECTs, ``min_by``/
``max_by``, ``CASE``, string comparison of ``dt``/``hour``/``scored_at`` (fixed-width UTC, so
text order is time order). A unit test parses each one as Trino with sqlglot.

Which window a verdict belongs to: the one whose ``(start, end]`` holds the first
``scored_at`` of its ``input_sequence_number`` (copies of a retried batch count once, in the
window of the first; copies earlier than ``dedupe_horizon`` before the window are not looked
for). ``end`` is ``now - grace``: a verdict scored before it must have reached the archive
(Firehose's buffering interval plus delivery; 0 on the emulator once the pump is flushed).
A line that is not a usable verdict has no trustworthy ``scored_at``: it is counted invalid in
the window in which its arrival hour closes, so once and never lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from lambda_function.schema import FEATURES, ID_MAX_LENGTH
from lambda_function.service import STATUS_REJECTED, STATUS_SCORED
from lambda_function.verdict_metrics import VERDICTS
from monitoring.query import sql_list, sql_literal

ARCHIVE_PREFIX = "archive/"
LABEL_EVENTS = "label_events"


@dataclass(frozen=True)
class Table:
    prefix: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type), as in the Glue table

    def duckdb_columns(self) -> tuple[tuple[str, str], ...]:
        return self.columns


VERDICT_COLUMNS = (
    ("mushroom_id", "VARCHAR"),
    ("status", "VARCHAR"),
    ("verdict", "VARCHAR"),
    ("p_poisonous", "DOUBLE"),
    ("model_name", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("input_sequence_number", "VARCHAR"),
    ("scored_at", "VARCHAR"),
    # Additive: a function version with a shadow model adds its verdict (monitoring.shadow_sql).
    (
        "shadow",
        "STRUCT(model_version VARCHAR, verdict VARCHAR, p_poisonous DOUBLE, error VARCHAR)",
    ),
)
OBSERVATION_COLUMNS = (
    ("mushroom_id", "VARCHAR"),
    *((f.name, "DOUBLE" if f.kind == "numeric" else "VARCHAR") for f in FEATURES),
)
LABEL_EVENT_COLUMNS = (
    ("mushroom_id", "VARCHAR"),
    ("label", "VARCHAR"),
    ("received_in", "VARCHAR"),
    ("source_key", "VARCHAR"),
    ("waiting", "BOOLEAN"),
)
TABLES = {
    "verdicts": Table(f"{ARCHIVE_PREFIX}verdicts/", VERDICT_COLUMNS),
    "observations": Table(f"{ARCHIVE_PREFIX}observations/", OBSERVATION_COLUMNS),
    LABEL_EVENTS: Table(f"{ARCHIVE_PREFIX}label-events/", LABEL_EVENT_COLUMNS),
}
SCORED_AT_LENGTH = len("2026-11-27T12:00:00.123Z")


def utc(at: datetime) -> datetime:
    return at.astimezone(timezone.utc)


def timestamp(at: datetime) -> str:
    """``scored_at``'s format: ISO-8601 UTC with milliseconds and ``Z``."""
    return utc(at).strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc(at).microsecond // 1000:03d}Z"


def partition_key(at: datetime) -> str:
    """The ``dt=.../hour=.../`` folder of an arrival time."""
    at = utc(at)
    return f"dt={at:%Y-%m-%d}/hour={at:%H}/"


def objects_since(objects: Any, table: str, at: datetime) -> int:
    """How many objects ``table`` holds in the partitions of ``at``'s hour and later: those a
    query filtered by ``since_hour(at)`` reads (keys sort by ``dt``, then ``hour``)."""
    prefix = TABLES[table].prefix
    return len(objects.list_keys_after(prefix, prefix + partition_key(at)))


def since_hour(at: datetime) -> str:
    """Partitions of arrival hours at or after ``at``'s hour (both engines prune on it)."""
    at = utc(at)
    day, hour = sql_literal(f"{at:%Y-%m-%d}"), sql_literal(f"{at:%H}")
    return f"(dt > {day} OR (dt = {day} AND hour >= {hour}))"


def closed_hours(start: datetime, end: datetime) -> list[datetime]:
    """Arrival hours whose end falls in ``(start, end]``: their invalid lines count now."""
    first = utc(start).replace(minute=0, second=0, microsecond=0)
    hours, hour = [], first
    while hour + timedelta(hours=1) <= utc(end):
        if hour + timedelta(hours=1) > utc(start):
            hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def hours_filter(hours: Sequence[datetime]) -> str:
    if not hours:
        return "false"
    return (
        "("
        + " OR ".join(
            f"(dt = {sql_literal(f'{h:%Y-%m-%d}')} AND hour = {sql_literal(f'{h:%H}')})"
            for h in hours
        )
        + ")"
    )


# A verdict line that keeps the output contract as far as the metrics use it: the SQL form of
# monitoring.metrics.verdict_problem (a test holds the two to the same answers). Text fields
# are checked by length only: trimming every row cost 1 s of CPU per million verdicts, and
# the one text that leaves the SQL as a value, model_version (a CloudWatch dimension), is
# checked in full on the few groups that come back (monitoring.metrics.counted_metrics).
_TEXT = "({c} IS NOT NULL AND length({c}) BETWEEN 1 AND {n})"
VALID_VERDICT = (
    f"(status IN ({sql_list([STATUS_SCORED, STATUS_REJECTED])})"
    f" AND scored_at IS NOT NULL AND length(scored_at) = {SCORED_AT_LENGTH}"
    f" AND (input_sequence_number IS NULL OR {_TEXT.format(c='input_sequence_number', n=256)})"
    f" AND (status = {sql_literal(STATUS_REJECTED)} OR ("
    f"{_TEXT.format(c='mushroom_id', n=ID_MAX_LENGTH)}"
    f" AND {_TEXT.format(c='model_version', n=128)}"
    f" AND verdict IN ({sql_list(VERDICTS)})"
    " AND p_poisonous BETWEEN 0 AND 1)))"
)


# Status and verdict as one small number while grouping a window's verdicts by sequence
# number (strings there cost memory per sequence number): 0 = rejected, 1.. = the verdicts.
_OUTCOMES = (
    (0, STATUS_REJECTED, None),
    *((i + 1, STATUS_SCORED, v) for i, v in enumerate(VERDICTS)),
)
_OUTCOME = (
    f"CASE WHEN status = {sql_literal(STATUS_REJECTED)} THEN 0 "
    + " ".join(f"WHEN verdict = {sql_literal(v)} THEN {n}" for n, _, v in _OUTCOMES if v)
    + " END"
)


def _decode(column: str, field: str) -> str:
    index = 1 if field == "status" else 2
    whens = " ".join(
        f"WHEN {o[0]} THEN {'NULL' if o[index] is None else sql_literal(str(o[index]))}"
        for o in _OUTCOMES
    )
    return f"CASE {column} {whens} END AS {field}"


def window_counts_sql(start: datetime, end: datetime, dedupe_horizon: timedelta) -> str:
    """Usable verdicts of the window ``(start, end]``, deduplicated, counted by status,
    verdict and model version; ``copies`` = lines behind them, ``earlier`` = sequence numbers
    a past window counted that came again now."""
    look_from = utc(start) - dedupe_horizon
    lo, hi = sql_literal(timestamp(start)), sql_literal(timestamp(end))
    return f"""
WITH scoped AS (
    SELECT {_OUTCOME} AS outcome, p_poisonous, model_version, input_sequence_number, scored_at
    FROM verdicts
    WHERE {since_hour(look_from)} AND {VALID_VERDICT}
      AND scored_at > {sql_literal(timestamp(look_from))} AND scored_at <= {hi}
),
keyed AS (
    SELECT min(scored_at) AS first_at, max(scored_at) AS last_at, count(*) AS copies,
           min_by(outcome, scored_at) AS outcome,
           min_by(p_poisonous, scored_at) AS p_poisonous,
           min_by(model_version, scored_at) AS model_version
    FROM scoped WHERE input_sequence_number IS NOT NULL
    GROUP BY input_sequence_number
    UNION ALL
    SELECT scored_at, scored_at, 1, outcome, p_poisonous, model_version
    FROM scoped WHERE input_sequence_number IS NULL
)
SELECT {_decode("outcome", "status")}, {_decode("outcome", "verdict")}, model_version,
       sum(CASE WHEN first_at > {lo} THEN 1 ELSE 0 END) AS records,
       sum(CASE WHEN first_at > {lo} THEN copies ELSE 0 END) AS copies,
       sum(CASE WHEN first_at > {lo} THEN p_poisonous ELSE 0 END) AS p_sum,
       sum(CASE WHEN first_at <= {lo} AND last_at > {lo} THEN 1 ELSE 0 END) AS earlier
FROM keyed
WHERE last_at > {lo}
GROUP BY outcome, model_version
""".strip()


def invalid_verdicts_sql(hours: Sequence[datetime]) -> str:
    """Lines of the closed arrival hours that are not usable verdicts, with a few examples."""
    return f"""
SELECT count(*) AS invalid,
       min(COALESCE(status, '(no status: not a verdict object)')) AS example
FROM verdicts
WHERE {hours_filter(hours)} AND NOT COALESCE({VALID_VERDICT}, false)
""".strip()


def label_join_sql(
    received: str, look_back_from: datetime, end: datetime, previous: str | None = None
) -> str:
    """The window's labels (``label_events`` received at ``received``), each with the verdict
    it judges and the label the id had before.

    The verdict a label judges: the id's latest usable scored verdict scored at or before
    ``end`` and after ``look_back_from`` (a re-scored mushroom: the newest verdict, the one the
    forager saw last). ``verdict`` is NULL when the archive holds none: such a label waits,
    one row each with its id in ``waiting_id`` (the same scan names them). ``previous`` is
    the id's label in the latest earlier window (a correction when it differs). Only windows
    up to ``previous``, the last window the state recorded, count as earlier: label events a
    crashed cycle wrote before it recorded its window are not history.
    """
    w, hi = sql_literal(received), sql_literal(timestamp(end))
    before = f"e.received_in <= {sql_literal(previous)}" if previous else "false"
    return f"""
WITH new_labels AS (
    SELECT mushroom_id, max_by(label, source_key) AS label
    FROM {LABEL_EVENTS}
    WHERE {since_hour(look_back_from)} AND received_in = {w}
    GROUP BY mushroom_id
),
judged AS (
    SELECT v.mushroom_id, max_by(v.verdict, v.scored_at) AS verdict,
           max_by(v.model_version, v.scored_at) AS model_version
    FROM verdicts v JOIN new_labels n ON v.mushroom_id = n.mushroom_id
    WHERE {since_hour(look_back_from)} AND v.status = {sql_literal(STATUS_SCORED)}
      AND v.verdict IN ({sql_list(VERDICTS)})
      AND v.scored_at > {sql_literal(timestamp(look_back_from))} AND v.scored_at <= {hi}
    GROUP BY v.mushroom_id
),
earlier AS (
    SELECT e.mushroom_id, max_by(e.label, e.received_in) AS previous
    FROM {LABEL_EVENTS} e JOIN new_labels n ON e.mushroom_id = n.mushroom_id
    WHERE {since_hour(look_back_from)} AND {before}
    GROUP BY e.mushroom_id
)
SELECT n.label, j.verdict, j.model_version,
       CASE WHEN p.previous IS NOT NULL AND p.previous <> n.label THEN 1 ELSE 0 END
           AS correction,
       CASE WHEN j.verdict IS NULL THEN n.mushroom_id END AS waiting_id,
       count(*) AS n
FROM new_labels n
LEFT JOIN judged j ON j.mushroom_id = n.mushroom_id
LEFT JOIN earlier p ON p.mushroom_id = n.mushroom_id
GROUP BY n.label, j.verdict, j.model_version,
         CASE WHEN p.previous IS NOT NULL AND p.previous <> n.label THEN 1 ELSE 0 END,
         CASE WHEN j.verdict IS NULL THEN n.mushroom_id END
""".strip()


def _usable_scored(alias: str) -> str:
    return (
        f"{alias}.status = {sql_literal(STATUS_SCORED)} "
        f"AND {alias}.verdict IN ({sql_list(VERDICTS)})"
    )


def _waited(received: str, expire_from: datetime, previous: str) -> str:
    """Per id, its latest label event when that one waits and had not expired by
    ``expire_from`` (the window's start minus the look-back). The events are those of the
    windows the state recorded (up to ``previous``) and this window's (``received``): a
    crashed cycle's events are not history. A label that joined late has a later event that
    does not wait (written by the window it joined in), so it is not looked for again."""
    lo = sql_literal(timestamp(expire_from))
    return f"""latest AS (
    SELECT mushroom_id, max_by(label, received_in) AS label, max(received_in) AS received_in,
           max_by(waiting, received_in) AS waiting
    FROM {LABEL_EVENTS}
    WHERE {since_hour(expire_from)} AND received_in > {lo}
      AND (received_in <= {sql_literal(previous)} OR received_in = {sql_literal(received)})
    GROUP BY mushroom_id
),
waited AS (
    SELECT mushroom_id, label, received_in FROM latest WHERE COALESCE(waiting, false)
)"""


def waiting_count_sql(received: str, expire_from: datetime, previous: str) -> str:
    """How many labels wait (from the label events alone: no verdict is scanned when none)."""
    return f"""
WITH {_waited(received, expire_from, previous)}
SELECT count(*) AS n FROM waited
""".strip()


def waited_labels_sql(
    received: str, start: datetime, end: datetime, look_back: timedelta, previous: str
) -> str:
    """What became of the labels that wait, in the window ``(start, end]``.

    A label that came before its verdict (none in the look-back when its window read it)
    waits; its pair's time is that of the id's first verdict scored after the label came.
    ``state``: ``joined`` when the id has a verdict scored in ``(start, end]`` (the pair is
    counted here, once: it judges the id's newest verdict scored by ``end``; the window then
    records a label event that does not wait, so no later window looks for it), ``waiting``
    when there is none yet and the label came less than ``look_back`` before ``end``,
    ``expired`` when there is none and the look-back ran out in this window
    (``UnscoredLabels``). Only the window's own verdicts are scanned (their arrival hours):
    a waiting label had no verdict before this window, or it would have joined then.
    ``joined_id`` names each label joined here (one row each).
    """
    expire_from = utc(start) - look_back
    lo, hi = sql_literal(timestamp(start)), sql_literal(timestamp(end))
    wait_from = sql_literal(timestamp(utc(end) - look_back))
    state = (
        "CASE WHEN l.verdict IS NOT NULL THEN 'joined' "
        f"WHEN w.received_in > {wait_from} THEN 'waiting' ELSE 'expired' END"
    )
    joined_id = "CASE WHEN l.verdict IS NOT NULL THEN w.mushroom_id END"
    return f"""
WITH {_waited(received, expire_from, previous)},
landed AS (
    SELECT v.mushroom_id, max_by(v.verdict, v.scored_at) AS verdict,
           max_by(v.model_version, v.scored_at) AS model_version
    FROM verdicts v JOIN waited w ON v.mushroom_id = w.mushroom_id
    WHERE {since_hour(start)} AND {_usable_scored("v")}
      AND v.scored_at > {lo} AND v.scored_at > w.received_in AND v.scored_at <= {hi}
    GROUP BY v.mushroom_id
)
SELECT {state} AS state, w.label, l.verdict, l.model_version, {joined_id} AS joined_id,
       count(*) AS n, min(w.mushroom_id) AS example
FROM waited w LEFT JOIN landed l ON l.mushroom_id = w.mushroom_id
GROUP BY {state}, w.label, l.verdict, l.model_version, {joined_id}
""".strip()


#: The object's time in a Firehose object name
#: (``<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<random>``); ``"$path"`` is the object's URL
#: (Athena's pseudo-column; the DuckDB views name their ``filename`` so).
OBJECT_TIME = r"""regexp_extract("$path", '-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-[^/]*$', 1)"""


def object_time(at: datetime) -> str:
    """``at`` as the time in a Firehose object name (whole seconds, UTC)."""
    return f"{utc(at):%Y-%m-%d-%H-%M-%S}"


def _written_in(start: datetime, end: datetime) -> str:
    """Observations of the objects written in ``(start, end]`` (the time in the object's
    name), in the partitions of those hours."""
    hour, last = (utc(t).replace(minute=0, second=0, microsecond=0) for t in (start, end))
    hours = []
    while hour <= last:
        hours.append(hour)
        hour += timedelta(hours=1)
    lo, hi = sql_literal(object_time(start)), sql_literal(object_time(end))
    return f"{hours_filter(hours)}\n  AND {OBJECT_TIME} > {lo} AND {OBJECT_TIME} <= {hi}"


def observation_sample_sql(start: datetime, end: datetime, limit: int) -> str:
    """At most ``limit`` observations (a random sample) of the objects written in
    ``(start, end]`` (the time in the object's name), for drift. Observations carry no time of
    their own; by object, each observation belongs to exactly one window, so a window never
    samples (nor counts as invalid) what an earlier window of the same hour already did."""
    columns = ", ".join(name for name, _ in OBSERVATION_COLUMNS)
    return f"""
SELECT {columns}
FROM observations
WHERE {_written_in(start, end)}
  AND mushroom_id IS NOT NULL
ORDER BY random()
LIMIT {int(limit)}
""".strip()


def observation_lines_sql(start: datetime, end: datetime) -> str:
    """All lines of the observation objects written in ``(start, end]``, and those that are
    no record at all (not a JSON object with a ``mushroom_id``: e.g. each line of a record put
    pretty-printed, which the archive keeps as one line each), counted exactly (the sample
    checks the rest against the input contract)."""
    return f"""
SELECT count(*) AS lines,
       COALESCE(sum(CASE WHEN mushroom_id IS NULL THEN 1 ELSE 0 END), 0) AS not_records
FROM observations
WHERE {_written_in(start, end)}
""".strip()


def table_of(path: str) -> str | None:
    """Which archive table an object's URL or key belongs to."""
    for name, table in TABLES.items():
        if f"/{table.prefix}" in path or path.startswith(table.prefix):
            return name
    return None


ALL_QUERIES = (
    "window_counts_sql",
    "invalid_verdicts_sql",
    "label_join_sql",
    "waiting_count_sql",
    "waited_labels_sql",
    "observation_sample_sql",
    "observation_lines_sql",
)
