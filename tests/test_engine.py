"""The embedded DuckDB engine creates the canonical tables and reports failures with the SQL that failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.engine import DuckDBEngine
from assay.errors import EngineError
from assay.schema import canonical_tables, ingest_tables


def test_canonical_tables_are_created_with_declared_columns() -> None:
    engine = DuckDBEngine()
    for name, table in ingest_tables().items():
        columns = [c for c, _ in engine.table_columns(name)]
        assert columns == [c for c, _ in table.kql_columns]
        # what ingestion writes (tables.yml) is all there, in the same order
        declared = list(canonical_tables()[name].column_names)
        assert [c for c in columns if c in declared] == declared
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


def test_only_ingest_filled_tables_are_created_on_open() -> None:
    with DuckDBEngine() as engine:
        assert sorted(engine.table_names()) == sorted(ingest_tables())


def test_documented_tables_are_created_when_asked_and_only_once() -> None:
    with DuckDBEngine() as engine:
        assert engine.ensure_tables(["SigninLogs", "NoSuchTable", "RawEvents"]) == ["SigninLogs"]
        assert engine.ensure_tables(["SigninLogs"]) == []
        columns = dict(engine.table_columns("SigninLogs"))
        assert columns["TimeGenerated"] == "TIMESTAMP" and columns["UserPrincipalName"] == "VARCHAR"


def test_defender_time_alias_and_type_are_computed_not_stored() -> None:
    with DuckDBEngine() as engine:
        engine.ensure_tables(["DeviceLogonEvents"])
        engine.connection.execute("INSERT INTO DeviceLogonEvents (Timestamp, DeviceName) "
                                  "VALUES ('2024-05-01 10:00:00', 'ws-01')")
        rows = engine.run("SELECT Timestamp = TimeGenerated, Type FROM DeviceLogonEvents").rows
        assert rows == ((True, "DeviceLogonEvents"),)


def test_read_only_database_gets_temporary_tables(tmp_path: Path) -> None:

    path = tmp_path / "case.duckdb"
    DuckDBEngine(path).close()
    with DuckDBEngine(path, read_only=True) as engine:
        assert engine.ensure_tables(["AuditLogs"]) == ["AuditLogs"]
        assert engine.run("SELECT count(*) FROM AuditLogs").rows == ((0,),)
    with DuckDBEngine(path, read_only=True) as engine:
        assert "AuditLogs" not in engine.table_names()  # nothing was written to the file
