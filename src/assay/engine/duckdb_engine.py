"""The embedded engine: DuckDB, in memory or on a file. Takes sqlglot trees or SQL text, returns rows + SQL."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from assay.errors import EngineError
from assay.schema import TableSchema, duckdb_create_table_sql, ingest_tables, known_tables


@dataclass(frozen=True)
class Result:
    """Rows returned by a query, with their column names and the SQL that produced them."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    sql: str
    column_types: tuple[str, ...] = field(default=())

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


def default_db_path() -> Path:
    """Where ``assay ingest`` keeps its database when no ``--db`` is given (``$ASSAY_DB`` overrides)."""
    env = os.environ.get("ASSAY_DB")
    if env:
        return Path(env)
    return Path.cwd() / ".assay" / "assay.duckdb"


class DuckDBEngine:
    """A DuckDB connection with the ingest-filled tables created. ``path=None`` means in memory.

    The ~730 other known tables (documented Sentinel / Defender tables, custom ones) are created only when needed
    (:meth:`ensure_tables`: a query reads them, rows are loaded into them), empty, with their columns: creating
    them all would cost every engine open (hunt workers and test scenarios open many).
    """

    dialect = "duckdb"

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False,
                 create_tables: bool = True, threads: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None and not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.connection = duckdb.connect(str(self.path) if self.path else ":memory:", read_only=read_only)
        except duckdb.Error as error:
            raise EngineError(f"cannot open DuckDB database {self.path}: {error}",
                              hint="check the path, or close other programs using it") from error
        self.read_only = read_only
        self._present: set[str] = set()  # lower-cased names of tables known to exist (ensure_tables' cache)
        if threads:
            self.connection.execute(f"SET threads = {int(threads)}")
        if create_tables and not read_only:
            self.create_canonical_tables()

    def create_canonical_tables(self) -> None:
        """Create the tables ingestion fills (with their documented columns), if absent."""
        self.connection.execute(";".join(duckdb_create_table_sql(table) for table in ingest_tables().values()))

    def ensure_tables(self, names: Iterable[str], schemas: Mapping[str, TableSchema] | None = None) -> list[str]:
        """Create the known tables among ``names`` that this database lacks (TEMP tables when it is read-only);
        ``schemas`` adds tables (a user's schema file) to the known ones. Returns the names created."""
        known = known_tables()
        wanted = [name for name in dict.fromkeys(names) if name.lower() not in self._present
                  and ((schemas is not None and name in schemas) or name in known)]
        if not wanted:
            return []
        self._present.update(str(row[0]).lower() for row in self.connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE schema_name = 'main'").fetchall())
        created = []
        for name in wanted:
            if name.lower() in self._present:
                continue
            table = schemas[name] if schemas is not None and name in schemas else known[name]
            try:
                self.connection.execute(duckdb_create_table_sql(table, temporary=self.read_only))
            except duckdb.Error as error:
                raise EngineError(f"cannot create table {name}: {error}") from error
            self._present.add(name.lower())
            created.append(name)
        return created

    def to_sql(self, query: exp.Expression | str) -> str:
        if isinstance(query, exp.Expression):
            return query.sql(dialect=self.dialect)
        return query

    def run(self, query: exp.Expression | str, parameters: Sequence[Any] | None = None) -> Result:
        sql = self.to_sql(query)
        try:
            cursor = self.connection.execute(sql, parameters) if parameters else self.connection.execute(sql)
            description = cursor.description or []
            rows = cursor.fetchall()
        except duckdb.Error as error:
            raise EngineError(f"DuckDB failed: {error}", sql=sql) from error
        columns = tuple(d[0] for d in description)
        types = tuple(str(d[1]) for d in description)
        return Result(columns, tuple(tuple(r) for r in rows), sql, types)

    def table_names(self) -> list[str]:
        rows = self.connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"
        ).fetchall()
        return [r[0] for r in rows]

    def table_columns(self, table: str) -> list[tuple[str, str]]:
        rows = self.connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position", [table]
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def row_count(self, table: str) -> int:
        quoted = exp.to_identifier(table, quoted=True).sql(dialect=self.dialect)
        value = self.connection.execute(f"SELECT count(*) FROM {quoted}").fetchone()
        return int(value[0]) if value else 0

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> DuckDBEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def transpile(sql_or_tree: exp.Expression | str, dialect: str) -> str:
    """SQL text for another dialect (e.g. ``spark``) from a sqlglot tree or DuckDB SQL."""
    if isinstance(sql_or_tree, exp.Expression):
        return sql_or_tree.sql(dialect=dialect)
    return sqlglot.transpile(sql_or_tree, read="duckdb", write=dialect)[0]
