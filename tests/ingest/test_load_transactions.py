"""The load's transactions: batches are cut where a transaction reaches COMMIT_EVERY_ROWS rows (a row-group
boundary), and no record is lost, duplicated or renumbered across the cuts."""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import pytest

from assay.engine import DuckDBEngine
from assay.ingest import ingest_paths, pipeline
from assay.ingest.pipeline import split_batches
from assay.ingest.readers import Batch
from assay.ingest.sources import EVTX_JSON, Source


def _sysmon_1(record: int) -> str:
    return json.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": 1,
        "TimeCreated": {"#attributes": {"SystemTime": f"2026-11-24T08:41:{record % 60:02d}.512304Z"}},
        "EventRecordID": record, "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "FIN-WS042.corp.contoso.com"},
        "EventData": {"UtcTime": f"2026-11-24 08:41:{record % 60:02d}.512", "ProcessId": 4000 + record,
                      "Image": "C:\\Windows\\System32\\cmstp.exe",
                      "CommandLine": f"cmstp.exe /s /ns C:\\Users\\j.martin\\AppData\\Local\\Temp\\{record}.inf",
                      "ParentImage": "C:\\Windows\\System32\\cmd.exe", "User": "CONTOSO\\j.martin"}}})


def _batch(label: str, first: int, count: int) -> Batch:
    source = Source(label, functools.partial(io.BytesIO, b""), EVTX_JSON)
    records = list(range(first, first + count))
    return Batch(source, records, [_sysmon_1(r) for r in records])


def test_split_batches_cuts_inside_a_batch_and_keeps_order() -> None:
    batches = [_batch("a.jsonl", 1, 5), _batch("b.jsonl", 100, 4)]
    head, tail = split_batches(batches, 7)
    assert [(b.source.label, b.records) for b in head] == [("a.jsonl", [1, 2, 3, 4, 5]), ("b.jsonl", [100, 101])]
    assert [(b.source.label, b.records) for b in tail] == [("b.jsonl", [102, 103])]
    assert tail[0].texts == [_sysmon_1(102), _sysmon_1(103)]
    assert split_batches(batches, 9) == (batches, [])
    assert split_batches(batches, 5) == (batches[:1], batches[1:])


def test_commits_cut_across_batches_keep_every_record_once(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 files of 11, 5 and 9 events loaded in 4-row batches with a commit every 6 rows: cuts fall inside
    # batches and inside files.
    paths: list[str | Path] = []
    first = 1
    for name, count in (("ws042-a.jsonl", 11), ("ws042-b.jsonl", 5), ("ws042-c.jsonl", 9)):
        path = tmp_path / name
        path.write_text("".join(_sysmon_1(r) + "\n" for r in range(first, first + count)), encoding="utf-8")
        paths.append(path)
        first += count
    monkeypatch.setattr(pipeline, "COMMIT_EVERY_ROWS", 6)
    engine = DuckDBEngine(tmp_path / "events.duckdb")
    try:
        summary = ingest_paths(paths, engine=engine, batch_rows=4)
        assert summary.records_read == 25 and summary.bad_records == 0
        assert [(s.records, s.bad) for s in summary.sources] == [(11, 0), (5, 0), (9, 0)]
        rows = engine.connection.execute(
            "SELECT AssayEventId, SourceFile, SourceRecord, Fields['ProcessId'] FROM RawEvents "
            "ORDER BY AssayEventId").fetchall()
        assert [r[0] for r in rows] == list(range(1, 26))
        # JSON lines are numbered by line: each file restarts at 1.
        assert [r[2] for r in rows] == [*range(1, 12), *range(1, 6), *range(1, 10)]
        assert [r[3] for r in rows] == [str(4000 + r) for r in range(1, 26)]
        assert [Path(r[1]).name for r in rows][10:12] == ["ws042-a.jsonl", "ws042-b.jsonl"]
        processes = engine.connection.execute(
            "SELECT ProcessId, ProcessCommandLine FROM DeviceProcessEvents ORDER BY ProcessId").fetchall()
        assert [p[0] for p in processes] == [4000 + r for r in range(1, 26)]
        assert processes[24][1] == "cmstp.exe /s /ns C:\\Users\\j.martin\\AppData\\Local\\Temp\\25.inf"
    finally:
        engine.close()


def _security_5145(record: int) -> str:
    return json.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing",
                                     "Guid": "54849625-5478-4994-A5BA-3E3B0328C30D"}},
        "EventID": 5145, "TimeCreated": {"#attributes": {"SystemTime": "2019-03-19T23:34:25.216Z"}},
        "EventRecordID": record, "Channel": "Security", "Computer": "DC1.insecurebank.local"},
        "EventData": {"SubjectUserSid": "S-1-5-21-738609754-2819869699-4189121830-1108",
                      "SubjectUserName": "bob", "SubjectDomainName": "INSECUREBANK", "SubjectLogonId": "0x8d5e1",
                      "ObjectType": "File", "IpAddress": "10.0.2.17", "IpPort": str(49700 + record),
                      "ShareName": "\\\\*\\IPC$", "ShareLocalPath": "", "RelativeTargetName": "svcctl",
                      "AccessMask": "0x3", "AccessList": "%%4416 %%4417"}}})


def test_store_is_grouped_by_event_type_and_ids_keep_record_order(tmp_path: Path) -> None:
    # Interleaved event types in one file: the store keeps each batch grouped by (Channel, EventID), so a mapping
    # reads the compressed field text of its own events only; ids, record numbers and typed rows are unchanged.
    lines = [_sysmon_1(r) if r % 3 else _security_5145(r) for r in range(1, 31)]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    engine = DuckDBEngine(tmp_path / "events.duckdb")
    try:
        summary = ingest_paths([path], engine=engine)
        assert summary.records_read == 30
        stored = engine.connection.execute(
            "SELECT Channel, EventID, AssayEventId, SourceRecord FROM RawEventStore ORDER BY rowid").fetchall()
        assert [(c, e) for c, e, _, _ in stored] == [("Microsoft-Windows-Sysmon/Operational", 1)] * 20 + [
            ("Security", 5145)] * 10
        assert [i for _, _, i, _ in stored] == [r for r in range(1, 31) if r % 3] + list(range(3, 31, 3))
        assert all(i == record for _, _, i, record in stored)
        shares = engine.connection.execute(
            "SELECT AssayEventId, IpPort, RelativeTargetName FROM SecurityEvent "
            "ORDER BY AssayEventId").fetchall()
        assert shares == [(r, str(49700 + r), "svcctl") for r in range(3, 31, 3)]
        processes = engine.connection.execute(
            "SELECT AssayEventId, ProcessId FROM DeviceProcessEvents ORDER BY AssayEventId").fetchall()
        assert processes == [(r, 4000 + r) for r in range(1, 31) if r % 3]
        fields = engine.connection.execute(
            "SELECT Fields['ShareName'] FROM RawEvents WHERE AssayEventId = 9").fetchall()
        assert fields == [("\\\\*\\IPC$",)]
    finally:
        engine.close()
