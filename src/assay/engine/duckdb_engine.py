"""The embedded engine: DuckDB, in memory or on a file. Takes sqlglot trees or SQL text, returns rows + SQL."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from assay.errors import EngineError
from assay.schema import canonical_tables, duckdb_create_table_sql


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
    """A DuckDB connection with the canonical tables created. ``path=None`` means in memory."""

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
        if threads:
            self.connection.execute(f"SET threads = {int(threads)}")
        if create_tables and not read_only:
            self.create_canonical_tables()

    def create_canonical_tables(self) -> None:
        for table in canonical_tables().values():
            self.connection.execute(duckdb_create_table_sql(table))

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
