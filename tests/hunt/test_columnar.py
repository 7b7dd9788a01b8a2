"""The columnar EVTX path gives exactly the hits (and evidence) of the record-by-record Python path.

EVTX files cannot be written by a test, so the evaluator is fed the evtx parser's JSON text directly (compact, as
pyevtx-rs writes it). The record-by-record path (``events.evtx_row`` + prefilter + generated Python) is the
reference here; the equality test over SigmaHQ and EVTX-ATTACK-SAMPLES holds both to DuckDB's rule-by-rule answer.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from assay.hunt.columnar import BATCH_TABLE, reads_of_python, reads_of_sql
from assay.hunt.evaluate import enumerate_targets
from assay.hunt.fastpath import UnitResult, _Worker, build_plan
from assay.hunt.hitrows import hits_from_rows
from assay.hunt.pyeval import python_source
from assay.hunt.rules import load_hunt_rules
from assay.ingest.readers import Batch
from assay.ingest.sources import EVTX, Source
from assay.schema import RAW_EVENTS
from tests.hunt.conftest import RULES, SECURITY_GUID, case_events, evtx_json_event, process_creation

EXTRA_RULES = {
    "security_log_cleared.yml": """
title: Security Eventlog Cleared By Admin
id: 0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0101
status: test
level: high
tags: [attack.defense-evasion, attack.t1070.001]
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 1102
        SubjectUserName|startswith: 'adm'
    condition: selection
""",
    "system_service_by_provider.yml": """
title: Service Installed From Public Folder
id: 0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0102
status: test
level: medium
logsource: {product: windows, service: system}
detection:
    selection:
        Provider_Name: 'Service Control Manager'
        EventID: 7045
        ImagePath|contains: '\\Users\\Public\\'
    condition: selection
""",
    "proc_user_null.yml": """
title: Process Without User
id: 0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0103
status: test
level: low
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\\rundll32.exe'
        User: null
    condition: selection
""",
}


def edge_events() -> list[dict[str, Any]]:
    """Events that stress the columnar extraction: UserData instead of EventData, a field in another case, a
    missing field, a service event with a Qualifiers EventID, and the same event twice."""
    system32 = "C:\\Windows\\System32\\"
    cleared = evtx_json_event(20, "Security", "Microsoft-Windows-Eventlog", 1102, "2024-03-12T10:00:00.0000000Z",
                              "SRV-DC-01.corp.example.com", {}, guid="FC65DDD8-D6EF-4962-83D5-6E5CFE9CE148")
    del cleared["Event"]["EventData"]
    cleared["Event"]["UserData"] = {"LogFileCleared": {
        "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
        "SubjectUserSid": "S-1-5-21-3623811015-3361044348-30300820-500", "SubjectUserName": "adm-jdoe",
        "SubjectDomainName": "CORP", "SubjectLogonId": "0x3e7a21"}}
    renamed_case = process_creation(21, "2024-03-12T10:01:00.0000000Z", system32 + "cmstp.exe",
                                    "cmstp.exe /s C:\\Users\\Public\\evil.inf", system32 + "cmd.exe", "CMSTP.EXE")
    data = renamed_case["Event"]["EventData"]
    data["image"] = data.pop("Image")  # Fields['Image'] is case-sensitive: this event has no Image
    rundll = process_creation(22, "2024-03-12T10:02:00.0000000Z", system32 + "rundll32.exe",
                              "rundll32.exe C:\\Users\\Public\\payload.dll,Start", system32 + "explorer.exe",
                              "RUNDLL32.EXE")
    del rundll["Event"]["EventData"]["User"]
    service = evtx_json_event(23, "System", "Service Control Manager", {"#attributes": {"Qualifiers": 16384},
                                                                         "#text": 7045},
                              "2024-03-12T10:03:00.0000000Z", "WKS-FIN-042.corp.example.com", {
                                  "ServiceName": "UpdaterSvc", "ImagePath": "C:\\Users\\Public\\svc.exe",
                                  "ServiceType": "user mode service", "StartType": "auto start",
                                  "AccountName": "LocalSystem"}, guid="555908D1-A6D7-4695-8E1E-26931D2012F4")
    no_fields = evtx_json_event(24, "Security", "Microsoft-Windows-Security-Auditing", 4625,
                                "2024-03-12T10:04:00.0000000Z", "SRV-DC-01.corp.example.com", {}, guid=SECURITY_GUID)
    del no_fields["Event"]["EventData"]
    return [*case_events(), cleared, renamed_case, rundll, service, no_fields, case_events()[0]]


@pytest.fixture
def plan_and_worker(tmp_path: Path, cache_dir: Path) -> tuple[Any, _Worker]:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name, text in {**RULES, **EXTRA_RULES}.items():
        (folder / name).write_text(text.lstrip(), encoding="utf-8")
    rule_set = load_hunt_rules([folder], cache_dir=cache_dir)
    assert not rule_set.problems
    refs = [r for r in enumerate_targets(rule_set.rules) if r.target.table == RAW_EVENTS]
    plan = build_plan(refs)
    return plan, _Worker(plan)


def evtx_batch(events: list[dict[str, Any]], label: str) -> Batch:
    source = Source(label=label, format=EVTX, opener=lambda: io.BytesIO(b""))  # texts are given: never opened
    texts = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in events]
    return Batch(source, records=list(range(1, len(texts) + 1)), texts=texts)


def hit_dicts(hits: Any) -> list[dict[str, Any]]:
    return sorted((h.as_dict() for h in hits), key=lambda d: (d["source_file"], d["source_record"], d["rule"]))


def test_columnar_hits_equal_the_record_by_record_path(plan_and_worker: tuple[Any, _Worker]) -> None:
    plan, worker = plan_and_worker
    events = edge_events()
    batches = [evtx_batch(events[:5], "C:/case/wks-fin-042/Sysmon.evtx"),
               evtx_batch(events[5:], "C:/case/srv-dc-01/Security.evtx")]
    try:
        rows_result = UnitResult()
        deferred_rows = [worker._evtx_batch_rows(b.source, b, rows_result) for b in batches]
        columnar_result = UnitResult()
        deferred_columnar = worker._evtx_batches(batches, columnar_result)
        columnar_hits = list(hits_from_rows(worker._hit_tables[0], plan.refs)) if worker._hit_tables else []
        # a second pass is answered from the remembered verdicts: the same hits again
        worker._hit_tables.clear()
        worker._evtx_batches(batches, UnitResult())
        again = list(hits_from_rows(worker._hit_tables[0], plan.refs))
    finally:
        worker.close()
    assert hit_dicts(columnar_hits) == hit_dicts(rows_result.hits)
    assert hit_dicts(again) == hit_dicts(columnar_hits)
    assert [len(b.texts) for b, _ in deferred_columnar] == [len(b.texts) for b, _ in deferred_rows if b.texts]
    assert columnar_result.candidates == rows_result.candidates
    # a hit carries the EventRecordID its record holds (what Event Viewer shows), not the record's position
    record_ids = {(b.source.label, position): json.loads(text)["Event"]["System"]["EventRecordID"]
                  for b in batches for position, text in zip(b.records, b.texts, strict=True)}
    position_of = {(label, record_id): position for (label, position), record_id in record_ids.items()}
    assert all((h.source_file, h.source_record) in position_of for h in columnar_hits)
    titles = {(h.rule_title, h.source_file.split("/")[-2], position_of[h.source_file, h.source_record])
              for h in columnar_hits}
    # UserData's fields are the event's fields (1102 has no EventData)
    assert ("Security Eventlog Cleared By Admin", "srv-dc-01", 4) in titles
    cleared = next(h for h in columnar_hits if h.rule_title == "Security Eventlog Cleared By Admin")
    assert dict(cleared.fields)["SubjectUserName"] == "adm-jdoe"
    # Provider is read from the System block; the Qualifiers form of EventID still routes the event
    assert ("Service Installed From Public Folder", "srv-dc-01", 7) in titles
    # a field spelled in another case is not the field: the renamed-case event matches only by OriginalFileName
    assert ("CMSTP Silent Install", "srv-dc-01", 5) in titles
    # a missing field is NULL for `User: null`
    assert ("Process Without User", "srv-dc-01", 6) in titles
    # the repeated CMSTP event is a hit of its own (same values, another record)
    assert ("CMSTP Silent Install", "wks-fin-042", 1) in titles and ("CMSTP Silent Install", "srv-dc-01", 9) in titles
    assert len(columnar_hits) >= 12


def test_reads_of_generated_python_and_of_sql() -> None:
    source = python_source(
        "lower(Fields['Image']) LIKE '%\\\\cmstp.exe' AND (Fields['CommandLine'] LIKE '%/s%' "
        "OR Provider = 'Service Control Manager')")
    assert source is not None
    reads = reads_of_python(source)
    assert reads.names == frozenset({"Image", "CommandLine"})
    assert reads.provider and not reads.computer and not reads.all_fields
    keyword = python_source("list_bool_or(list_transform(map_values(Fields), "
                            "lambda field_value: lower(field_value) LIKE '%psexesvc%'))")
    assert keyword is not None and reads_of_python(keyword).all_fields
    sql_reads = reads_of_sql("Fields['Threat Name'] = 'Trojan:Win32/Meterpreter' AND Computer LIKE 'srv-%'")
    assert sql_reads.names == frozenset({"Threat Name"}) and sql_reads.computer and not sql_reads.all_fields
    assert reads_of_sql("cardinality(map_keys(Fields)) > 3").all_fields


def test_groups_partition_the_batch_and_keep_each_groups_positions(plan_and_worker: tuple[Any, _Worker]) -> None:
    """Every record of a batch is in exactly one group, and a group's positions (left in Arrow until read) are
    the records that share its route and values: the repeated CMSTP event's two copies, apart from the others."""
    _plan, worker = plan_and_worker
    events = edge_events()
    texts = evtx_batch(events, "C:/case/mixed.evtx").texts
    connection = worker.engine.connection
    try:
        # the first evaluation registers the batch's routes (a route first seen is grouped by event type only)
        worker.columnar.evaluate(connection, texts, list(range(len(texts))), [0] * len(texts), ["mixed.evtx"])
        connection.register(BATCH_TABLE, pa.table({"Position": pa.array(range(len(texts)), pa.int32()),
                                                   "Text": pa.array(texts, pa.string())}))
        groups = worker.columnar._groups(connection, BATCH_TABLE)
    finally:
        connection.unregister(BATCH_TABLE)
        worker.close()
    positions = [list(group[6]) for group in groups]
    assert sorted(p for group in positions for p in group) == list(range(len(texts)))
    assert [len(group[6]) for group in groups] == [len(p) for p in positions]
    repeated = len(events) - 1  # the last event repeats the first, field for field
    assert [0, repeated] in [sorted(p) for p in positions]
