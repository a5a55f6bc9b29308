"""The query engine on AWS: Athena over the archive's Glue tables (``terraform/archive.tf``).

StartQueryExecution in the workgroup (its encrypted result location and bytes-scanned limit
apply), GetQueryExecution polled with a growing interval until the query ends or ``timeout``
passes (then StopQueryExecution), GetQueryResults page by page. Values come back as text and
are converted by the column types Athena reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from monitoring.query import QueryError, QueryResult

_DONE = ("SUCCEEDED", "FAILED", "CANCELLED")
_INTEGER = ("tinyint", "smallint", "integer", "int", "bigint")
_DECIMAL = ("double", "float", "real", "decimal")


def _convert(value: str | None, kind: str) -> Any:
    if value is None:
        return None
    kind = kind.lower()
    if kind in _INTEGER:
        return int(value)
    if kind.split("(")[0] in _DECIMAL:
        return float(value)
    if kind == "boolean":
        return value.lower() == "true"
    return value


@dataclass
class AthenaEngine:
    """:class:`monitoring.query.QueryEngine` on Athena; ``client`` is a boto3 Athena client."""

    client: Any
    workgroup: str
    database: str
    timeout: float = 300.0
    poll_initial: float = 0.2
    poll_max: float = 5.0
    page_size: int = 1000
    name: str = "athena"
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def query(self, sql: str) -> QueryResult:
        try:
            started = self.client.start_query_execution(
                QueryString=sql,
                WorkGroup=self.workgroup,
                QueryExecutionContext={"Database": self.database},
            )
        except Exception as exc:  # botocore errors: say what failed, keep the cause
            raise QueryError(f"Athena refused the query in workgroup {self.workgroup}: {exc}")
        execution_id = started["QueryExecutionId"]
        status = self._wait(execution_id)
        scanned = status.get("Statistics", {}).get("DataScannedInBytes")
        return self._results(execution_id, scanned)

    def _wait(self, execution_id: str) -> dict[str, Any]:
        deadline = self.clock() + self.timeout
        interval = self.poll_initial
        while True:
            execution = self.client.get_query_execution(QueryExecutionId=execution_id)
            execution = execution["QueryExecution"]
            state = execution["Status"]["State"]
            if state == "SUCCEEDED":
                return execution
            if state in _DONE:
                reason = execution["Status"].get("StateChangeReason", "no reason given")
                raise QueryError(f"Athena query {execution_id} {state}: {reason}")
            if self.clock() >= deadline:
                try:
                    self.client.stop_query_execution(QueryExecutionId=execution_id)
                finally:
                    raise QueryError(
                        f"Athena query {execution_id} still {state} after {self.timeout:.0f} s; "
                        "stopped"
                    )
            self.sleep(interval)
            interval = min(interval * 2, self.poll_max)

    def _results(self, execution_id: str, scanned: int | None) -> QueryResult:
        columns: list[str] = []
        kinds: list[str] = []
        rows: list[tuple[Any, ...]] = []
        token: str | None = None
        first = True
        while True:
            kwargs: dict[str, Any] = {
                "QueryExecutionId": execution_id,
                "MaxResults": self.page_size,
            }
            if token:
                kwargs["NextToken"] = token
            page = self.client.get_query_results(**kwargs)
            result = page["ResultSet"]
            if first:
                info = result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [c["Name"] for c in info]
                kinds = [c.get("Type", "varchar") for c in info]
            data = result.get("Rows", [])
            if first and data:
                data = data[1:]  # a SELECT's first row repeats the column names
            first = False
            for row in data:
                values = [cell.get("VarCharValue") for cell in row["Data"]]
                rows.append(tuple(_convert(v, k) for v, k in zip(values, kinds)))
            token = page.get("NextToken")
            if not token:
                return QueryResult(columns, rows, scanned_bytes=scanned)
