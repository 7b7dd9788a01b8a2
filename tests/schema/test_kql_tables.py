"""The documented tables (``kql_tables.json``): generated from the shared reference data, reconciled with the
ingest-filled tables of ``tables.yml``, and all known to the KQL binder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from assay import kql
from assay.errors import KqlBindError
from assay.schema import canonical_tables, documented_tables, ingest_tables, known_tables

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_kql_schemas", ROOT / "scripts" / "gen_kql_schemas.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_data_is_what_the_shared_reference_generates(shared_data: Path) -> None:
    folder = shared_data / "kql-schemas"
    if not (folder / "azure-monitor.json").is_file():
        pytest.skip(f"{folder} has no azure-monitor.json")
    generator = _generator()
    committed = (ROOT / "src" / "assay" / "schema" / "kql_tables.json").read_text(encoding="utf-8")
    assert generator.render(generator.generate(folder)) == committed, \
        "src/assay/schema/kql_tables.json is stale: run python scripts/gen_kql_schemas.py"
    # every documented table of both sources is in the package
    azure = json.loads((folder / "azure-monitor.json").read_text(encoding="utf-8"))["tables"]
    defender = json.loads((folder / "defender-xdr.json").read_text(encoding="utf-8"))["tables"]
    assert set(documented_tables()) == set(azure) | set(defender)


def test_families_hunting_queries_use_are_known() -> None:
    tables = known_tables()
    for name in ("SigninLogs", "AADNonInteractiveUserSignInLogs", "AuditLogs", "OfficeActivity", "Syslog",
                 "CommonSecurityLog", "AzureActivity", "SecurityAlert", "DeviceEvents", "DeviceLogonEvents",
                 "IdentityLogonEvents", "IdentityDirectoryEvents", "EmailEvents", "EmailUrlInfo", "CloudAppEvents",
                 "AlertInfo", "AlertEvidence", "UrlClickEvents"):
        assert name in tables, name
    assert len(tables) > 730
    assert tables["SigninLogs"].source == "azure-monitor"
    assert documented_tables()["DeviceLogonEvents"]["source"] == "defender+sentinel"  # tables that ingest
    # fills come from tables.yml (source "assay"); the documented data keeps both forms


def test_ingest_filled_tables_keep_their_columns_and_gain_documented_ones() -> None:
    for name, declared in canonical_tables().items():
        extended = ingest_tables()[name]
        names = list(extended.column_names)
        assert [c for c in names if c in declared.column_names] == list(declared.column_names), name
        # declared types and descriptions win over the documented ones
        for column in declared.columns:
            assert extended.column(column.name) == column
    process = ingest_tables()["DeviceProcessEvents"]
    assert process.column("InitiatingProcessVersionInfoCompanyName") is not None  # documented, not in tables.yml
    assert process.column_names[-2:] == ("AssayEventId", "AssaySource")  # provenance stays last
    assert {c.name for c in process.computed} == {"TimeGenerated", "Type"}
    assert ingest_tables()["SecurityEvent"].column("ServiceName") is not None


def test_case_insensitive_duplicates_are_dropped_not_stored() -> None:
    for table in known_tables().values():
        lowered = [name.lower() for name, _ in table.kql_columns]
        assert len(lowered) == len(set(lowered)), table.name


@pytest.mark.parametrize("query", [
    "DeviceProcessEvents | where TimeGenerated > ago(1d) | project TimeGenerated, Timestamp, Type",
    "DeviceLogonEvents | where Timestamp > ago(1d) | summarize count() by DeviceName",
    "DeviceLogonEvents | where TimeGenerated > ago(1d) | summarize count() by DeviceName, TenantId",
    "IdentityLogonEvents | where TimeGenerated > ago(7d) | where ActionType == 'LogonFailed' | count",
    "SigninLogs | where TimeGenerated > ago(1d) | where ResultType != '0' | summarize by UserPrincipalName",
    "AuditLogs | where OperationName has 'role' | extend Who = tostring(InitiatedBy.user.userPrincipalName)",
    "EmailEvents | join kind=inner EmailUrlInfo on NetworkMessageId | project Url, SenderFromAddress",
])
def test_queries_over_documented_tables_bind(query: str) -> None:
    kql.check(query)


def test_time_column_spellings_follow_the_documentation() -> None:
    # Sentinel-only tables have no Defender Timestamp: Kusto refuses it, so does Assay
    with pytest.raises(KqlBindError, match="Timestamp"):
        kql.check("SigninLogs | where Timestamp > ago(1d)")


def test_unknown_table_still_suggests_the_closest_name() -> None:
    with pytest.raises(KqlBindError) as caught:
        kql.check("SignInLogs | take 1")
    assert "SigninLogs" in str(caught.value)
    with pytest.raises(KqlBindError) as caught:
        kql.check("DeviceLogonEvent | take 1")
    assert "DeviceLogonEvents" in str(caught.value)


def test_documented_tables_run_empty_and_are_created_on_first_read() -> None:
    from assay.engine import DuckDBEngine

    with DuckDBEngine(None) as engine:
        assert "SigninLogs" not in engine.table_names()
        result = kql.run("SigninLogs | where TimeGenerated > ago(1d) | summarize n = count()", db=engine,
                         now="2024-05-01T00:00:00Z")
        assert result.rows == ((0,),)
        assert "SigninLogs" in engine.table_names()
