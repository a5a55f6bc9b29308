"""The embedded query engine: DuckDB over the archive objects, in S3 or in a local folder.

The tables of ``monitoring.archive`` are views over the gzip JSON-lines objects, with ``dt``
and ``hour`` from the Hive-style folders (strings, as in the Glue tables), so a filter on them
skips whole folders. S3 is read with the httpfs extension from the PyPI package
``duckdb-ext-httpfs``, loaded by its path: nothing is downloaded at run time.

A line that is not a JSON object becomes a row of NULLs (``ignore_errors``), which the queries
count as invalid. DuckDB's JSON-lines reader refuses a whole object for some runs of lines,
e.g. a record put pretty-printed (``{`` ... ``}`` on lines of their own, archived as one line
each): such an object is read again line by line (each line parsed on its own, as Athena's
OpenX SerDe does), so its good lines still count and each of the others is one invalid row;
the result lists it in ``read_by_line``. An object DuckDB cannot read at all (not gzip,
truncated) would fail the whole query: it is left out, the query runs again, and the result
lists it in ``skipped``.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import duckdb

from monitoring.archive import TABLES
from monitoring.query import QueryError, QueryResult, sql_list, sql_literal

HTTPFS_PACKAGE = "duckdb-ext-httpfs"
MAX_SKIPPED = 100  # corrupt objects left out of one query before giving up


def httpfs_extension_path() -> Path:
    """The httpfs extension file shipped by the PyPI package for this DuckDB version."""
    from importlib import metadata

    try:
        files = metadata.files(HTTPFS_PACKAGE) or []
    except metadata.PackageNotFoundError as exc:
        raise QueryError(
            f"reading the archive from S3 needs the {HTTPFS_PACKAGE} package "
            f"(DuckDB {duckdb.__version__}); it is in Pipfile.lock: `make setup`"
        ) from exc
    wanted = f"v{duckdb.__version__}/"
    for item in files:
        name = str(item)
        if name.endswith("httpfs.duckdb_extension") and wanted in name:
            return Path(str(item.locate()))
    raise QueryError(
        f"{HTTPFS_PACKAGE} has no httpfs extension for DuckDB {duckdb.__version__} "
        "(the two versions must match)"
    )


@dataclass(frozen=True)
class S3Location:
    """Where the archive bucket is, and how to reach it (the emulator: an endpoint, path-style
    URLs, plain HTTP)."""

    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None


@dataclass
class DuckDBEngine:
    """:class:`monitoring.query.QueryEngine` over ``root`` (a folder, or ``s3://bucket/``)."""

    root: str
    s3: S3Location | None = None
    threads: int | None = None
    # DuckDB spills its aggregates to disk beyond this (the dedupe over a window's sequence
    # numbers is the big one); the cycle's peak RSS target is 1 GB in all.
    memory_limit: str | None = "768MB"
    name: str = "duckdb"
    _connection: Any = field(default=None, init=False, repr=False)
    # Objects the JSON-lines reader refused (archive objects never change: remembered).
    _by_line: list[str] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def local(cls, folder: Path | str, **kwargs: Any) -> "DuckDBEngine":
        return cls(root=str(Path(folder).resolve()) + "/", **kwargs)

    @classmethod
    def over_s3(cls, location: S3Location, **kwargs: Any) -> "DuckDBEngine":
        return cls(root=f"s3://{location.bucket}/", s3=location, **kwargs)

    def _connect(self) -> Any:
        if self._connection is not None:
            return self._connection
        # No query here relies on the input order (they ORDER BY where order matters), and
        # keeping it costs memory.
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "preserve_insertion_order": False,
        }
        if self.threads:
            config["threads"] = self.threads
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        connection = duckdb.connect(config=config)
        if self.s3 is not None:
            connection.execute(f"LOAD {sql_literal(str(httpfs_extension_path()))}")
            connection.execute(_secret_sql(self.s3))
        self._connection = connection
        return connection

    def pattern(self, table: str) -> str:
        return f"{self.root}{TABLES[table].prefix}*/*/*"

    def query(self, sql: str) -> QueryResult:
        with self._lock:
            connection = self._connect()
            skipped: list[str] = []
            while True:
                try:
                    self._bind(connection, skipped)
                    cursor = connection.execute(sql)
                    columns = [d[0] for d in cursor.description]
                    return QueryResult(
                        columns,
                        cursor.fetchall(),
                        skipped=list(skipped),
                        read_by_line=[p for p in self._by_line if p not in skipped],
                    )
                except duckdb.Error as exc:
                    path = _unreadable_object(str(exc), self.root)
                    if path is None or path in skipped or len(skipped) >= MAX_SKIPPED:
                        raise QueryError(f"DuckDB: {exc}") from exc
                    if "Malformed JSON" in str(exc) and path not in self._by_line:
                        self._by_line.append(path)  # read line by line from now on
                    else:
                        skipped.append(path)

    def _bind(self, connection: Any, skipped: list[str]) -> None:
        """(Re)create the table views; an empty table is an empty typed relation."""
        for name, table in TABLES.items():
            files = [
                row[0]
                for row in connection.execute(
                    f"SELECT file FROM glob({sql_literal(self.pattern(name))})"
                ).fetchall()
            ]
            by_line = [f for f in files if f in self._by_line and f not in skipped]
            files = [f for f in files if f not in skipped and f not in self._by_line]
            columns = ", ".join(f"{c!r}: {t!r}" for c, t in table.duckdb_columns())
            if not files and not by_line:
                typed = ", ".join(
                    f"CAST(NULL AS {t}) AS {c}"
                    for c, t in (*table.duckdb_columns(), ("dt", "VARCHAR"), ("hour", "VARCHAR"))
                )
                body = f'SELECT {typed}, CAST(NULL AS VARCHAR) AS "$path" WHERE false'
            else:
                parts = []
                if files:
                    source = sql_literal(files[0]) if len(files) == 1 else f"[{sql_list(files)}]"
                    if not skipped and not by_line:
                        source = sql_literal(self.pattern(name))
                    # The object's URL as "$path", the name Athena gives it (OBJECT_TIME).
                    parts.append(
                        'SELECT * EXCLUDE (filename), filename AS "$path" '
                        f"FROM read_json({source}, format='newline_delimited', "
                        f"columns={{{columns}}}, hive_partitioning=true, "
                        f"hive_types={_HIVE_TYPES}, filename=true, "
                        "ignore_errors=true, compression='gzip', maximum_object_size=16777216)"
                    )
                if by_line:
                    parts.append(_line_by_line(by_line, table.duckdb_columns()))
                body = " UNION ALL BY NAME ".join(parts)
            connection.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {body}")


_HIVE_TYPES = "{'dt': 'VARCHAR', 'hour': 'VARCHAR'}"
# A byte no JSON text holds unescaped: read_csv's delimiter, so a line is one field (a line
# that has it anyway is not JSON: cut there, still one invalid row, with strict_mode off).
_NO_DELIMITER = "\x01"


def _line_by_line(files: list[str], columns: tuple[tuple[str, str], ...]) -> str:
    """The objects as one row per line: a line that is a JSON object gives its fields (cast
    as ``read_json`` casts them), any other line a row of NULLs. About three times the CPU of
    ``read_json``, so only for the objects that reader refuses."""
    structure = sql_literal(json.dumps(dict(columns)))
    fields = ", ".join(f"j.{name} AS {name}" for name, _ in columns)
    return (
        f'SELECT {fields}, dt, hour, filename AS "$path" FROM ('
        "SELECT CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' "
        f"THEN try(from_json(line, {structure})) END AS j, dt, hour, filename "
        f"FROM read_csv([{sql_list(files)}], columns={{'line': 'VARCHAR'}}, "
        f"delim={sql_literal(_NO_DELIMITER)}, quote='', escape='', header=false, "
        "auto_detect=false, strict_mode=false, new_line='\\n', max_line_size=16777216, "
        f"compression='gzip', hive_partitioning=true, hive_types={_HIVE_TYPES}, "
        "filename=true))"
    )


def _unreadable_object(message: str, root: str) -> str | None:
    """The object an error message blames, when it is one of the archive's."""
    if "Binder Error" in message or "Parser Error" in message:
        return None
    for token in reversed(re.findall(r"(\S+)", message)):
        token = token.strip("\"'.,")
        if token.startswith(root):
            return token
    return None


def _secret_sql(location: S3Location) -> str:
    options: Mapping[str, str | None] = {
        "KEY_ID": location.access_key_id,
        "SECRET": location.secret_access_key,
        "SESSION_TOKEN": location.session_token,
        "REGION": location.region,
    }
    # Credentials come in explicitly (the credential chain needs DuckDB's aws extension, which
    # is not shipped); without them the requests are anonymous.
    parts = ["TYPE s3"]
    parts += [f"{k} {sql_literal(v)}" for k, v in options.items() if v]
    if location.endpoint_url:
        secure = location.endpoint_url.startswith("https://")
        host = re.sub(r"^https?://", "", location.endpoint_url).rstrip("/")
        parts += [
            f"ENDPOINT {sql_literal(host)}",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if secure else 'false'}",
        ]
    return f"CREATE OR REPLACE SECRET archive ({', '.join(parts)})"
