"""Mappings of the identity and endpoint events into Defender's tables: real recordings fill DeviceLogonEvents,
DeviceEvents and DeviceFileEvents, and a synthesized event mapped from its Windows record says the same as the
synthesized Defender row (so Sigma-on-logs and KQL-on-Defender see one set of facts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assay.engine import DuckDBEngine
from assay.ingest import ingest_paths
from assay.verify.synth import synthesize, write_telemetry
from tests.verify.test_synth_events import scenario

SAMPLES = "evtx-attack-samples"


def _rows(engine: DuckDBEngine, sql: str) -> list[dict[str, Any]]:
    result = engine.run(sql)
    names = [c[0] if isinstance(c, tuple) else str(c) for c in result.columns]
    return [dict(zip(names, row, strict=False)) for row in result.rows]


@pytest.fixture
def recording(shared_data: Path) -> Any:
    engines: list[DuckDBEngine] = []

    def ingest(relative: str) -> DuckDBEngine:
        path = shared_data / SAMPLES / relative
        if not path.is_file():
            pytest.skip(f"recording {relative} is not in this copy of the shared data")
        engine = DuckDBEngine(None)
        engines.append(engine)
        summary = ingest_paths([path], engine=engine)
        assert summary.bad_records == 0
        return engine

    yield ingest
    for engine in engines:
        engine.close()


def test_real_logons_fill_device_logon_events(recording: Any) -> None:
    engine = recording("Privilege Escalation/samaccount_spoofing_CVE-2021-42287_CVE-2021-42278_DC_securitylogs.evtx")
    rows = _rows(engine, 'SELECT * FROM "DeviceLogonEvents" ORDER BY "AssayEventId"')
    raw = engine.run('SELECT count(*) FROM "RawEvents" WHERE "EventID" IN (4624, 4625)').rows[0][0]
    assert len(rows) == raw > 0
    ntlm = next(r for r in rows if r["Protocol"] == "NTLM")
    assert ntlm["ActionType"] == "LogonSuccess" and ntlm["LogonType"] == "Network"
    assert ntlm["AccountName"] == "lgrove" and ntlm["RemoteIP"] == "172.16.66.19"
    assert ntlm["RemoteDeviceName"] == "04246W-WIN10" and ntlm["LogonId"] > 0


def test_real_failed_logons_carry_a_failure_reason(recording: Any) -> None:
    engine = recording("Credential Access/CA_4624_4625_LogonType2_LogonProc_chrome.evtx")
    failed = _rows(engine, 'SELECT * FROM "DeviceLogonEvents" WHERE "ActionType" = \'LogonFailed\'')
    assert failed and failed[0]["FailureReason"] == "InvalidUserNameOrPassword"
    assert failed[0]["LogonType"] == "Interactive" and failed[0]["InitiatingProcessFileName"] == "chrome.exe"


def test_real_lsass_access_becomes_open_process_api_call(recording: Any) -> None:
    engine = recording("Credential Access/tutto_malseclogon.evtx")
    rows = _rows(engine, 'SELECT "FileName", "InitiatingProcessFileName", "AdditionalFields" FROM "DeviceEvents" '
                         'WHERE "ActionType" = \'OpenProcessApiCall\' AND "FileName" = \'lsass.exe\'')
    assert rows
    import json

    extra = json.loads(rows[0]["AdditionalFields"])
    assert isinstance(extra["DesiredAccess"], int) and extra["GrantedAccess"].startswith("0x")


def test_real_service_install_and_task_become_device_events(recording: Any) -> None:
    import json

    services = recording("Lateral Movement/LM_Remote_Service02_7045.evtx")
    installed = _rows(services, 'SELECT * FROM "DeviceEvents" WHERE "ActionType" = \'ServiceInstalled\'')
    assert installed and json.loads(installed[0]["AdditionalFields"])["ServiceName"]
    tasks = recording("Execution/temp_scheduled_task_4698_4699.evtx")
    created = _rows(tasks, 'SELECT * FROM "DeviceEvents" WHERE "ActionType" = \'ScheduledTaskCreated\'')
    assert created and json.loads(created[0]["AdditionalFields"])["TaskName"] == "\\CYAlyNSS"
    assert "<Task" in json.loads(created[0]["AdditionalFields"])["TaskContent"]


def test_real_dns_and_deletes_map(recording: Any) -> None:
    engine = recording("Privilege Escalation/Sysmon_UACME_64.evtx")
    dns = _rows(engine, 'SELECT * FROM "DeviceEvents" WHERE "ActionType" = \'DnsQueryResponse\'')
    assert dns and dns[0]["RemoteUrl"] == "wpad"
    deleted = _rows(engine, 'SELECT * FROM "DeviceFileEvents" WHERE "ActionType" = \'FileDeleted\'')
    assert deleted and deleted[0]["FileName"] == "consent.exe.dat" and len(deleted[0]["SHA256"]) == 64


def test_a_mapped_synthesized_event_agrees_with_the_synthesized_defender_row(tmp_path: Path) -> None:
    telemetry = synthesize(scenario("own-mapping-agreement"))
    files = write_telemetry(telemetry, tmp_path, ("security", "sysmon", "windows"))
    columns = ("ActionType", "LogonType", "AccountName", "AccountDomain", "RemoteIP", "Protocol", "LogonId",
               "FailureReason")
    mapped: list[tuple[Any, ...]] = []
    for schema in ("security",):
        engine = DuckDBEngine(None)
        try:
            ingest_paths(files[schema], engine=engine)
            mapped = [tuple(r) for r in engine.run(
                f'SELECT {", ".join(chr(34) + c + chr(34) for c in columns)} FROM "DeviceLogonEvents" '
                'WHERE "ActionType" <> \'LogonAttempted\' ORDER BY "Timestamp", "AssayEventId"').rows]
        finally:
            engine.close()
    synthesized = sorted((tuple(row.get(c) for c in columns) for row in telemetry.defender["DeviceLogonEvents"]
                          if row["ActionType"] != "LogonAttempted"), key=str)
    assert sorted(mapped, key=str) == synthesized
    engine = DuckDBEngine(None)
    try:
        ingest_paths(files["sysmon"], engine=engine)
        access = engine.run('SELECT "FileName", "InitiatingProcessFileName", "AdditionalFields"->>\'DesiredAccess\' '
                            'FROM "DeviceEvents" WHERE "ActionType" = \'OpenProcessApiCall\'').rows
    finally:
        engine.close()
    row = next(r for r in telemetry.defender["DeviceEvents"] if r["ActionType"] == "OpenProcessApiCall")
    assert [tuple(a) for a in access] == [(row["FileName"], row["InitiatingProcessFileName"],
                                           str(row["AdditionalFields"]["DesiredAccess"]))]


def test_exclude_channels_must_be_a_list_of_names() -> None:
    from assay.errors import IngestError
    from assay.ingest.mapping import compile_mapping

    good = compile_mapping({"name": "x", "table": "WindowsEvent", "leftover": "EventData",
                            "match": {"exclude_channels": ["Security"]},
                            "columns": {"EventID": {"raw": "EventID"}}}, "x.yml")
    assert "Channel NOT IN ('Security')" in good.where_sql()
    with pytest.raises(IngestError, match="exclude_channels"):
        compile_mapping({"name": "x", "table": "WindowsEvent", "match": {"exclude_channels": "Security"},
                         "columns": {"EventID": {"raw": "EventID"}}}, "x.yml")
