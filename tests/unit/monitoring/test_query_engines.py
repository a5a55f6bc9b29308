"""The query-engine adapters: DuckDB executes; Athena's request flow against moto (queued
results), with pagination, failures and timeouts; every query of monitoring.archive parses as
Trino (Athena's dialect) with sqlglot."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest
import sqlglot
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api._internal.models import moto_api_backend

from monitoring import archive as sql
from monitoring.athena import AthenaEngine
from monitoring.duckdb_engine import DuckDBEngine
from monitoring.metrics import verdict_problem
from monitoring.query import QueryError, sql_literal
from tests.fakes.monitoring import FolderObjects, archive_object, scored_at, verdict

REGION = "us-east-1"
T = datetime(2026, 11, 27, 12, 30, tzinfo=timezone.utc)


def every_query() -> dict[str, str]:
    start = T - timedelta(minutes=5)
    return {
        "window_counts_sql": sql.window_counts_sql(start, T, timedelta(hours=1)),
        "invalid_verdicts_sql": sql.invalid_verdicts_sql(
            sql.closed_hours(start - timedelta(hours=3), T)
        ),
        "label_join_sql": sql.label_join_sql(
            sql.timestamp(T), T - timedelta(days=30), T, sql.timestamp(start)
        ),
        "waiting_count_sql": sql.waiting_count_sql("w", start - timedelta(days=30), "p"),
        "waited_labels_sql": sql.waited_labels_sql("w", start, T, timedelta(days=30), "p"),
        "observation_sample_sql": sql.observation_sample_sql(start, T, 100),
        "observation_lines_sql": sql.observation_lines_sql(start, T),
    }


# Functions both DuckDB and Trino have, with the same meaning (sqlglot's expression names).
COMMON_FUNCTIONS = {
    "Count",
    "Sum",
    "Min",
    "Max",
    "ArgMin",
    "ArgMax",
    "Coalesce",
    "Length",
    "Trim",
    "Rand",
    "RegexpExtract",
    "Case",
    "If",
    "Cast",
    "And",
    "Or",
}


def functions(tree) -> set[str]:
    return {type(node).__name__ for node in tree.find_all(sqlglot.exp.Func)}


def test_every_query_is_listed_and_parses_as_trino():
    queries = every_query()
    assert set(queries) == set(sql.ALL_QUERIES)
    for name, text in queries.items():
        tree = sqlglot.parse_one(text, read="trino", error_level=sqlglot.ErrorLevel.RAISE)
        assert tree.find(sqlglot.exp.Select) is not None, name
        assert functions(tree) <= COMMON_FUNCTIONS, (name, functions(tree) - COMMON_FUNCTIONS)
        sqlglot.parse_one(text, read="duckdb", error_level=sqlglot.ErrorLevel.RAISE)


def test_the_common_subset_check_can_fail():
    """DuckDB-only syntax is caught: a QUALIFY clause, or a function Trino lacks."""
    with pytest.raises(sqlglot.errors.ParseError):
        sqlglot.parse_one("SELECT x FROM t QUALIFY y", read="trino")
    tree = sqlglot.parse_one("SELECT list_value(1), epoch_ms(2)", read="duckdb")
    assert not functions(tree) <= COMMON_FUNCTIONS


HOSTILE = [
    verdict(1, "edible"),
    verdict(2, None, p=None, status="rejected"),
    {**verdict(3, "edible"), "status": "weird"},
    {**verdict(4, "maybe")},
    {**verdict(5, "edible"), "p_poisonous": 1.5},
    {**verdict(6, "edible"), "p_poisonous": None},
    {**verdict(7, "edible"), "mushroom_id": ""},
    {**verdict(8, "edible"), "mushroom_id": "x" * 129},
    {**verdict(9, "edible"), "model_version": None},
    {**verdict(10, "edible"), "input_sequence_number": "9" * 257},
    {**verdict(11, "poisonous"), "input_sequence_number": None},
]


def test_sql_validity_agrees_with_verdict_problem(tmp_path):
    """The SQL's VALID_VERDICT and monitoring.metrics.verdict_problem judge alike."""
    objects = FolderObjects(tmp_path)
    rows = []
    for i, record in enumerate(HOSTILE):
        rows.append({**record, "scored_at": scored_at(T), "mushroom_id": record["mushroom_id"]})
    archive_object(objects, "verdicts", T, "mixed", rows)
    engine = DuckDBEngine.local(tmp_path)
    result = engine.query(
        f"SELECT input_sequence_number, {sql.VALID_VERDICT} AS ok FROM verdicts ORDER BY scored_at"
    )
    by_sql = [bool(ok) for _, ok in result.rows]
    by_python = [verdict_problem(r) is None for r in rows]
    assert by_sql == by_python
    assert by_python.count(True) == 3  # the two good ones and the one without a sequence number


def test_duckdb_counts_bad_lines_and_skips_a_corrupt_object(tmp_path):
    objects = FolderObjects(tmp_path)
    good = [{**verdict(i, "edible"), "scored_at": scored_at(T)} for i in range(5)]
    archive_object(objects, "verdicts", T, "a", [*good, b"not json", b"[1, 2]"])
    objects.put(f"{sql.TABLES['verdicts'].prefix}{sql.partition_key(T)}b.gz", b"garbage", "x")
    engine = DuckDBEngine.local(tmp_path)
    result = engine.query(sql.invalid_verdicts_sql([T.replace(minute=0)]))
    assert result.one()["invalid"] == 2
    assert len(result.skipped) == 1 and result.skipped[0].endswith("/b.gz")
    counts = engine.query(sql.window_counts_sql(T - timedelta(minutes=1), T, timedelta(0)))
    assert sum(r["records"] for r in counts.records()) == 5


def test_duckdb_empty_archive_is_empty_tables(tmp_path):
    engine = DuckDBEngine.local(tmp_path)
    assert engine.query("SELECT count(*) AS n FROM verdicts").one() == {"n": 0}
    with pytest.raises(QueryError, match="DuckDB"):
        engine.query("SELECT nope FROM verdicts")


@pytest.fixture
def athena(moto_aws):
    client = boto3.client("athena", region_name=REGION)
    client.create_work_group(Name="mushroom-monitoring", Configuration={})
    return client


def queue(rows, columns):
    """Queue one result through moto's API (the header row first, as Athena returns it)."""
    data = [{"Data": [{"VarCharValue": c} for c, _ in columns]}] + [
        {"Data": [{} if v is None else {"VarCharValue": str(v)} for v in row]} for row in rows
    ]
    info = [{"Name": c, "Type": t} for c, t in columns]
    moto_api_backend.set_athena_result(
        rows=data, column_info=info, account_id=DEFAULT_ACCOUNT_ID, region=REGION
    )


def test_athena_request_flow_against_moto(athena):
    queue(
        [("scored", "edible", 3, 0.25), ("rejected", None, 1, None)],
        [("status", "varchar"), ("verdict", "varchar"), ("records", "bigint"), ("p_sum", "double")],
    )
    engine = AthenaEngine(athena, "mushroom-monitoring", "mushroom_archive", sleep=lambda s: None)
    result = engine.query(sql.window_counts_sql(T - timedelta(minutes=5), T, timedelta(hours=1)))
    assert result.columns == ["status", "verdict", "records", "p_sum"]
    assert result.rows == [("scored", "edible", 3, 0.25), ("rejected", None, 1, None)]
    executions = athena.list_query_executions(WorkGroup="mushroom-monitoring")["QueryExecutionIds"]
    sent = athena.get_query_execution(QueryExecutionId=executions[0])["QueryExecution"]
    assert sent["Query"].startswith("WITH scoped AS")
    assert sent["QueryExecutionContext"]["Database"] == "mushroom_archive"


class ScriptedAthena:
    """A client whose executions go through given states, with paged results."""

    def __init__(self, states, pages=(), reason="syntax error at line 1"):
        self.states, self.pages, self.reason = list(states), list(pages), reason
        self.calls: list[tuple[str, dict]] = []

    def start_query_execution(self, **kw):
        self.calls.append(("start", kw))
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, **kw):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        status = {"State": state, "StateChangeReason": self.reason}
        return {"QueryExecution": {"Status": status, "Statistics": {"DataScannedInBytes": 42}}}

    def stop_query_execution(self, **kw):
        self.calls.append(("stop", kw))

    def get_query_results(self, **kw):
        self.calls.append(("results", kw))
        return self.pages.pop(0)


def page(rows, token=None, header=False):
    cells = [{"Data": [{"VarCharValue": "n"}]}] if header else []
    cells += [{"Data": [{"VarCharValue": str(v)}]} for v in rows]
    out = {
        "ResultSet": {
            "Rows": cells,
            "ResultSetMetadata": {"ColumnInfo": [{"Name": "n", "Type": "bigint"}]},
        }
    }
    if token:
        out["NextToken"] = token
    return out


def test_athena_polls_until_done_and_follows_pages():
    client = ScriptedAthena(
        ["QUEUED", "RUNNING", "SUCCEEDED"], [page([1, 2], "t1", header=True), page([3])]
    )
    waits = []
    engine = AthenaEngine(client, "wg", "db", sleep=waits.append)
    result = engine.query("SELECT 1 AS n")
    assert [r[0] for r in result.rows] == [1, 2, 3]
    assert result.scanned_bytes == 42
    assert waits == [0.2, 0.4]
    assert [c for c, _ in client.calls] == ["start", "results", "results"]
    assert client.calls[2][1]["NextToken"] == "t1"


def test_athena_failure_is_a_clear_error():
    engine = AthenaEngine(ScriptedAthena(["FAILED"]), "wg", "db", sleep=lambda s: None)
    with pytest.raises(QueryError, match="q-1 FAILED: syntax error at line 1"):
        engine.query("SELECT")


def test_athena_timeout_stops_the_query():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    client = ScriptedAthena(["RUNNING"])
    engine = AthenaEngine(client, "wg", "db", timeout=3, sleep=sleep, clock=lambda: now[0])
    with pytest.raises(QueryError, match="still RUNNING after 3 s; stopped"):
        engine.query("SELECT 1")
    assert ("stop", {"QueryExecutionId": "q-1"}) in client.calls


def test_literals_are_quoted_for_both_dialects():
    assert sql_literal("o'brien") == "'o''brien'"


def test_duckdb_reads_every_line_of_an_object_holding_a_multi_line_record(tmp_path):
    """A record put pretty-printed is archived as several lines (Firehose appends one newline
    per record). DuckDB's JSON-lines reader then refuses the whole object; the engine re-reads
    that object line by line instead, so its good lines still count and each line of the
    spread record is one invalid line, as Athena's OpenX SerDe (ignore.malformed.json) reads
    it."""
    import json

    objects = FolderObjects(tmp_path)
    good = [{**verdict(i, "edible"), "scored_at": scored_at(T)} for i in range(5)]
    pretty = json.dumps(good[0] | {"mushroom_id": "pretty"}, indent=2).encode()
    archive_object(objects, "verdicts", T, "a", [*good[:3], pretty, *good[3:], b"not json"])
    engine = DuckDBEngine.local(tmp_path)
    result = engine.query(sql.invalid_verdicts_sql([T.replace(minute=0)]))
    assert result.skipped == []
    assert result.one()["invalid"] == pretty.count(b"\n") + 1 + 1  # its lines, "not json"
    counts = engine.query(sql.window_counts_sql(T - timedelta(minutes=1), T, timedelta(0)))
    assert sum(r["records"] for r in counts.records()) == 5
    assert engine.query('SELECT count(DISTINCT "$path") AS n FROM verdicts').one() == {"n": 1}
