"""The scale-out engine: Apache Spark (PySpark) in local mode or on a cluster, over Parquet written by ingestion.

It runs the same sqlglot trees as :class:`~assay.engine.DuckDBEngine`, generated in sqlglot's ``spark`` dialect.
PySpark is an optional extra (``pip install 'assay[spark]'``); without it, or without a Java runtime, the
engine fails with an :class:`~assay.errors.EngineError` saying what to install. Nothing is imported or started
until an engine is created.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from assay.engine.duckdb_engine import Result
from assay.errors import EngineError

SPARK_INSTALL_HINT = "install the Spark extra: pip install 'assay[spark]' (needs Java 17 or later on PATH)"


def pyspark_available() -> str | None:
    """None when PySpark and a Java runtime are usable, else the reason they are not."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed"
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "no Java runtime found (set JAVA_HOME or put java on PATH)"
    return None


def spark_like_semantics(tree: exp.Expr) -> exp.Expr:
    """The tree with DuckDB LIKE semantics made explicit for Spark.

    DuckDB's LIKE has no escape character unless ``ESCAPE`` is given; Spark's default escape is a backslash.
    DuckDB list functions become their Spark equivalents (``list_bool_or(list_transform(…))`` → ``exists``).
    A Windows path pattern such as ``'%\\cmd.exe'`` would otherwise be rejected (or mean something else), so a
    LIKE without ``ESCAPE`` gets its backslashes doubled: the same match, spelled for Spark.
    """
    def rewrite(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Anonymous) and str(node.name).lower() == "list_bool_or" and node.expressions:
            # DuckDB list_bool_or(list_transform(xs, x -> p)) is Spark's exists(xs, x -> p)
            inner = node.expressions[0]
            if isinstance(inner, exp.Anonymous) and str(inner.name).lower() == "list_transform":
                return exp.Anonymous(this="exists", expressions=list(inner.expressions))
        if isinstance(node, exp.Like | exp.ILike) and not isinstance(node.parent, exp.Escape):
            pattern = node.expression
            if isinstance(pattern, exp.Literal) and pattern.is_string and "\\" in pattern.this:
                node.set("expression", exp.Literal.string(pattern.this.replace("\\", "\\\\")))
        return node

    return tree.copy().transform(rewrite, copy=False)


def _spark_type_name(data_type: Any) -> str:
    simple = getattr(data_type, "simpleString", None)
    return str(simple()) if callable(simple) else str(data_type)


class SparkEngine:
    """A Spark session running sqlglot trees. ``master`` is ``local[N]`` (default: all cores) or a cluster URL.

    Tables are Parquet files or folders registered as temporary views (:meth:`register_parquet`), so the SQL the
    Sigma and KQL stages compile runs unchanged apart from the dialect.
    """

    dialect = "spark"

    def __init__(self, master: str | None = None, *, app_name: str = "assay",
                 config: dict[str, str] | None = None) -> None:
        reason = pyspark_available()
        if reason is not None:
            raise EngineError(f"the Spark engine is not available: {reason}", hint=SPARK_INSTALL_HINT)
        from pyspark.sql import SparkSession

        self.master = master or os.environ.get("ASSAY_SPARK_MASTER") or "local[*]"
        builder = (
            SparkSession.builder.master(self.master).appName(app_name)
            # Small local jobs: a few shuffle partitions, no UI, UTC everywhere so timestamps equal DuckDB's.
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
            .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
            .config("spark.sql.ansi.enabled", "false")
        )
        for key, value in (config or {}).items():
            builder = builder.config(key, value)
        try:
            self.session = builder.getOrCreate()
        except Exception as error:  # the JVM failing to start surfaces as many exception types
            raise EngineError(f"cannot start Spark ({self.master}): {error}", hint=SPARK_INSTALL_HINT) from error
        self.session.sparkContext.setLogLevel("ERROR")

    def register_parquet(self, table: str, path: str | Path) -> None:
        """Expose a Parquet file or folder as the temporary view ``table``."""
        location = Path(path)
        if not location.exists():
            raise EngineError(f"Parquet data for table {table} not found at {location}",
                              hint="write it first with: assay ingest LOGS --store parquet")
        try:
            self.session.read.parquet(str(location)).createOrReplaceTempView(table)
        except Exception as error:
            raise EngineError(f"Spark cannot read {location} as Parquet: {error}") from error

    def to_sql(self, query: exp.Expr | str, read: str = "duckdb") -> str:
        """Spark SQL for a sqlglot tree; SQL text is taken as ``read`` SQL (DuckDB by default) and transpiled,
        or passed through unchanged when it is already Spark SQL (``read="spark"``)."""
        if isinstance(query, str) and read == "spark":
            return query
        tree: exp.Expr = query if isinstance(query, exp.Expr) else sqlglot.parse_one(query, read=read)
        return spark_like_semantics(tree).sql(dialect=self.dialect)

    def run(self, query: exp.Expr | str, parameters: Sequence[Any] | None = None, *, read: str = "duckdb") -> Result:
        if parameters:
            raise EngineError("the Spark engine does not take query parameters; inline literals in the tree")
        sql = self.to_sql(query, read)
        try:
            frame = self.session.sql(sql)
            rows = frame.collect()
        except Exception as error:
            raise EngineError(f"Spark failed: {error}", sql=sql) from error
        columns = tuple(frame.columns)
        types = tuple(_spark_type_name(field.dataType) for field in frame.schema.fields)
        return Result(columns, tuple(tuple(row) for row in rows), sql, types)

    def table_names(self) -> list[str]:
        return sorted(t.name for t in self.session.catalog.listTables())

    def close(self) -> None:
        """Stop the session (the JVM stays up for the next engine in this process, as PySpark does)."""
        self.session.stop()

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
