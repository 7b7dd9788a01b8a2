"""Run sqlglot expression trees on an engine: DuckDB (embedded default) or Spark (optional extra).

A :class:`Result` keeps the exact SQL that ran, so every verdict can show its evidence.
"""

from assay.engine.duckdb_engine import DuckDBEngine, Result, default_db_path

__all__ = ["DuckDBEngine", "Result", "default_db_path"]
