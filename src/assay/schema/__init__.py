"""The event contract: canonical tables and their columns, loaded from ``tables.yml`` (data, not code).

Both ingestion (which fills the tables) and the KQL binder (which type-checks queries against them) read this.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

#: Kusto type -> DuckDB type. ``dynamic`` is JSON text in DuckDB except RawEvents.Fields (a MAP).
KUSTO_TO_DUCKDB: dict[str, str] = {
    "string": "VARCHAR",
    "long": "BIGINT",
    "int": "INTEGER",
    "real": "DOUBLE",
    "bool": "BOOLEAN",
    "datetime": "TIMESTAMP",
    "timespan": "INTERVAL",
    "dynamic": "JSON",
    "guid": "VARCHAR",
}


@dataclass(frozen=True)
class Column:
    name: str
    kusto_type: str
    description: str

    @property
    def duckdb_type(self) -> str:
        return KUSTO_TO_DUCKDB[self.kusto_type]


@dataclass(frozen=True)
class TableSchema:
    name: str
    description: str
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column | None:
        for column in self.columns:
            if column.name == name:
                return column
        return None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


RAW_EVENTS = "RawEvents"


@cache
def canonical_tables() -> dict[str, TableSchema]:
    """All canonical tables by name, in declaration order."""
    text = resources.files("assay.schema").joinpath("tables.yml").read_text(encoding="utf-8")
    # Our own package data, read by every process that opens an engine (each hunt worker too): libyaml's safe
    # loader when PyYAML has it (0.26 s → a few ms); the same safe constructors either way.
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    tables: dict[str, TableSchema] = {}
    for name, spec in data["tables"].items():
        columns = tuple(Column(str(c[0]), str(c[1]), str(c[2])) for c in spec["columns"])
        for column in columns:
            if column.kusto_type not in KUSTO_TO_DUCKDB:
                raise ValueError(f"tables.yml: {name}.{column.name} has unknown type {column.kusto_type!r}")
        tables[name] = TableSchema(name, str(spec["description"]), columns)
    return tables


def duckdb_create_table_sql(table: TableSchema) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a canonical table (RawEvents.Fields is a MAP, other dynamics JSON)."""
    parts = []
    for column in table.columns:
        sql_type = column.duckdb_type
        if table.name == RAW_EVENTS and column.name == "Fields":
            sql_type = "MAP(VARCHAR, VARCHAR)"
        parts.append(f'"{column.name}" {sql_type}')
    return f'CREATE TABLE IF NOT EXISTS "{table.name}" ({", ".join(parts)})'
