"""The embedded DuckDB engine creates the canonical tables and reports failures with the SQL that failed."""

from __future__ import annotations

import pytest

from assay.engine import DuckDBEngine
from assay.errors import EngineError
from assay.schema import canonical_tables


def test_canonical_tables_are_created_with_declared_columns() -> None:
    engine = DuckDBEngine()
    for name, table in canonical_tables().items():
        columns = [c for c, _ in engine.table_columns(name)]
        assert columns == list(table.column_names)
    types = dict(engine.table_columns("DeviceProcessEvents"))
    assert types["Timestamp"] == "TIMESTAMP"
    assert types["ProcessId"] == "BIGINT"
    assert dict(engine.table_columns("RawEvents"))["Fields"] == "MAP(VARCHAR, VARCHAR)"


def test_engine_error_keeps_sql() -> None:
    engine = DuckDBEngine()
    with pytest.raises(EngineError) as caught:
        engine.run("SELECT NoSuchColumn FROM DeviceProcessEvents")
    assert caught.value.sql == "SELECT NoSuchColumn FROM DeviceProcessEvents"
    assert "NoSuchColumn" in str(caught.value)
