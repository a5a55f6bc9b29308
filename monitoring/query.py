"""The query-engine port: monitoring asks SQL questions of the archive through it.

One SQL text serves every engine (the common subset of DuckDB and Trino, which Athena runs; a
unit test parses every query of ``monitoring.archive`` as Trino). The tables it names are
``verdicts``, ``observations`` and ``label_events`` (``monitoring.archive``, the layout);
each adapter binds them: DuckDB to views over the objects (``monitoring.duckdb_engine``),
Athena to the Glue tables of the archive database (``monitoring.athena``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence


class QueryError(RuntimeError):
    """A query failed (syntax, access, a timeout, a cancelled or failed execution)."""


@dataclass
class QueryResult:
    """Rows of one query, with column names; ``skipped`` lists objects the engine could not
    read and left out (a corrupt object is reported, never stops a cycle)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    skipped: list[str] = field(default_factory=list)
    # Objects read line by line (DuckDB: its JSON-lines reader refused them; their good lines
    # count, each other line is one invalid row)
    read_by_line: list[str] = field(default_factory=list)
    scanned_bytes: int | None = None  # what the engine billed (Athena), when it says

    def records(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            yield dict(zip(self.columns, row))

    def one(self) -> dict[str, Any]:
        """The single row of an aggregate query."""
        if len(self.rows) != 1:
            raise QueryError(f"expected one row, got {len(self.rows)}")
        return dict(zip(self.columns, self.rows[0]))


class QueryEngine(Protocol):
    """Runs one SQL text over the archive tables; raises :class:`QueryError`."""

    name: str  # "duckdb" or "athena", said in reports

    def query(self, sql: str) -> QueryResult: ...


def sql_literal(value: str) -> str:
    """A SQL string literal (single quotes doubled): the same in DuckDB and Trino."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values: Sequence[str]) -> str:
    return ", ".join(sql_literal(v) for v in values)
