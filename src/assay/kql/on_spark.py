"""KQL on Apache Spark: compile to Spark SQL and run it over the Parquet datasets ``assay ingest`` writes.

Each table a query reads is the Parquet folder ``<parquet_dir>/<Table>/`` when there is one, else an empty view
with the table's known (or declared) columns, as DuckDB creates documented tables lazily. Rows come back decoded
as :func:`assay.kql.run` decodes DuckDB's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from assay.kql import KqlResult, _now, compile, referenced_tables, table_schemas
from assay.kql.binder import decode_value

#: Kusto type -> Spark SQL type of an empty view's column.
KUSTO_TO_SPARK = {"string": "STRING", "guid": "STRING", "dynamic": "STRING", "long": "BIGINT", "int": "INT",
                  "real": "DOUBLE", "bool": "BOOLEAN", "datetime": "TIMESTAMP",
                  "timespan": "INTERVAL DAY TO SECOND", "decimal": "DOUBLE"}


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def run_on_spark(text: str, engine: Any, parquet_dir: str | Path | None = None, *,
                 now: datetime | str | None = None, file: str | None = None,
                 tables: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> KqlResult:
    """Run KQL ``text`` on a :class:`~assay.engine.spark_engine.SparkEngine`; ``tables`` adds declared tables
    (custom schema files) to the known ones."""
    schemas: dict[str, list[tuple[str, str]]] = table_schemas(None)
    for name, columns in (tables or {}).items():
        schemas[name] = list(columns)
    fixed_now = _now(now)
    folder = Path(parquet_dir) if parquet_dir is not None else None
    # Kusto names are case-sensitive (LogonId and LogonID are two columns); Spark's default is not
    engine.session.conf.set("spark.sql.caseSensitive", "true")
    compiled = compile(text, tables=schemas, now=fixed_now, dialect="spark", file=file)
    for name in referenced_tables(compiled.tree):
        if name not in schemas:
            continue  # a CTE
        data = folder / name if folder is not None else None
        if data is not None and data.exists():
            engine.register_parquet(name, data)
        else:
            ddl = ", ".join(f"{_quoted(column)} {KUSTO_TO_SPARK.get(kusto_type, 'STRING')}"
                            for column, kusto_type in schemas[name])
            engine.session.createDataFrame([], ddl).createOrReplaceTempView(name)
    result = engine.run(compiled.sql, read="spark")
    rows = tuple(tuple(decode_value(value, kusto_type) for value, (_, kusto_type) in
                       zip(row, compiled.columns, strict=True)) for row in result.rows)
    return KqlResult(compiled.columns, rows, result.sql, fixed_now)


__all__ = ["KUSTO_TO_SPARK", "run_on_spark"]
