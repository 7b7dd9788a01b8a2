"""A rule whose logsource is only ``product: windows`` (a keyword rule) runs over every Windows event log record.

Its route has no channel and no event id: Sysmon, Security, System and classic PowerShell records are all read,
on the fast path, rule by rule and on Spark alike; rows of a Defender XDR export are not event log records.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from assay.engine.spark_engine import pyspark_available
from assay.hunt.rules import load_hunt_rules
from assay.hunt.run import hunt
from assay.sigma.routes import routes_for_logsource
from tests.hunt.conftest import SECURITY_GUID, case_events, evtx_json_event, process_creation, write_jsonl

SAMPLE_DEFENDER = Path(__file__).resolve().parents[2] / "samples" / "cmstp-case" / "defender"

RULE = r"""
title: Credential Tool Keywords Anywhere
id: 9a4e2f61-3b7c-4d8e-a1f0-5c6b7d8e0401
level: high
logsource:
    product: windows
detection:
    keywords:
        - 'sekurlsa::logonpasswords'
        - '\mimilib.dll'
        - 'svchost.exe -k netsvcs'
    condition: keywords
"""


def keyword_events() -> list[dict[str, Any]]:
    events = case_events()  # record 3 is svchost -k netsvcs (Sysmon)
    events += [
        process_creation(20, "2024-03-12T11:00:00.0000000Z", "C:\\Users\\Public\\m.exe",
                         'm.exe "privilege::debug" "sekurlsa::logonpasswords" exit', "C:\\Windows\\System32\\cmd.exe",
                         "m.exe"),
        evtx_json_event(21, "Security", "Microsoft-Windows-Security-Auditing", 4614, "2024-03-12T11:01:00.0000000Z",
                        "SRV-DC-01.corp.example.com", {"NotificationPackageName": "C:\\Windows\\System32\\mimilib.dll"},
                        guid=SECURITY_GUID),
        evtx_json_event(22, "Windows PowerShell", "PowerShell", {"#attributes": {"Qualifiers": 0}, "#text": 800},
                        "2024-03-12T11:02:00.0000000Z", "WKS-FIN-042.corp.example.com",
                        {"Data": {"#text": ["Invoke-Mimikatz -Command 'sekurlsa::logonpasswords'",
                                            "\tDetailSequence=1\r\n\tDetailTotal=1"]}}),
        evtx_json_event(23, "System", "Service Control Manager", 7036, "2024-03-12T11:03:00.0000000Z",
                        "SRV-DC-01.corp.example.com", {"param1": "Windows Update", "param2": "running"}),
    ]
    return events


#: lines of events.jsonl: the Sysmon svchost event, and the events recorded as 20, 21, 22 (lines 9-11)
EXPECTED = {3, 9, 10, 11}


@pytest.fixture
def keyword_case(tmp_path: Path) -> tuple[Path, Path]:
    logs = tmp_path / "logs"
    logs.mkdir()
    write_jsonl(logs / "events.jsonl", keyword_events())
    if SAMPLE_DEFENDER.is_dir():  # svchost -k netsvcs is in this export too: not an event log record
        shutil.copytree(SAMPLE_DEFENDER, logs / "defender")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "keywords.yml").write_text(RULE.lstrip(), encoding="utf-8")
    return logs, rules


def test_product_only_logsource_has_a_route_over_every_channel() -> None:
    from sigma.rule import SigmaLogSource

    routes = routes_for_logsource(SigmaLogSource(product="windows"))
    assert [(r.name, r.channels, r.event_ids) for r in routes] == [("windows", (), ())]
    assert routes_for_logsource(SigmaLogSource(product="linux")) == []


def test_keyword_rule_runs_on_every_windows_record_fast_and_rule_by_rule(keyword_case: tuple[Path, Path],
                                                                          cache_dir: Path) -> None:
    logs, rules = keyword_case
    rule_set = load_hunt_rules([rules], cache_dir=cache_dir)
    assert not rule_set.problems
    with hunt([logs], rule_set, workers=1) as fast, hunt([logs], rule_set, mode="reference") as reference:
        assert {h.source_record for h in fast.hits} == EXPECTED
        assert all(h.source_file.endswith("events.jsonl") for h in fast.hits)
        assert [h.as_dict() for h in fast.hits] == [h.as_dict() for h in reference.hits]
        assert not fast.no_events


@pytest.mark.spark
def test_keyword_rule_runs_on_spark(keyword_case: tuple[Path, Path], cache_dir: Path, tmp_path: Path) -> None:
    reason = pyspark_available()
    if reason:
        pytest.skip(reason)
    logs, rules = keyword_case
    with hunt([logs], [rules], mode="spark", spark_master="local[1]", work_dir=tmp_path / "parquet",
              cache_dir=cache_dir) as spark:
        assert {h.source_record for h in spark.hits} == EXPECTED


def test_columnar_path_with_a_keyword_route_equals_the_record_by_record_path(tmp_path: Path,
                                                                            cache_dir: Path) -> None:
    """EVTX batches: the keyword rule's field objects are read only for events holding a keyword (the gate), and
    every rule still gives the answers of the record-by-record path, on narrow and wide routes."""
    from assay.hunt.columnar import text_cover
    from assay.hunt.evaluate import enumerate_targets
    from assay.hunt.fastpath import UnitResult, _Worker, build_plan
    from assay.hunt.hitrows import hits_from_rows
    from assay.schema import RAW_EVENTS
    from tests.hunt.conftest import RULES
    from tests.hunt.test_columnar import evtx_batch, hit_dicts

    folder = tmp_path / "rules"
    folder.mkdir()
    for name, text in {**RULES, "keywords.yml": RULE}.items():
        (folder / name).write_text(text.lstrip(), encoding="utf-8")
    rule_set = load_hunt_rules([folder], cache_dir=cache_dir)
    refs = [r for r in enumerate_targets(rule_set.rules) if r.target.table == RAW_EVENTS]
    keyword = next(r for r in refs if r.target.route == "windows")
    assert text_cover(keyword.target.formula) == {"sekurlsa::logonpasswords", "\\mimilib.dll",
                                                  "svchost.exe -k netsvcs"}
    plan = build_plan(refs)
    worker = _Worker(plan)
    events = keyword_events()
    batches = [evtx_batch(events[:6], "C:/case/wks/Sysmon.evtx"), evtx_batch(events[6:], "C:/case/dc/Other.evtx")]
    try:
        rows_result = UnitResult()
        for batch in batches:
            worker._evtx_batch_rows(batch.source, batch, rows_result)
        columnar = worker._evtx_batches(batches, UnitResult())
        assert not columnar  # nothing left for DuckDB: the keyword route has its Python form
        columnar_hits = list(hits_from_rows(worker._hit_tables[0], plan.refs))
    finally:
        worker.close()
    assert hit_dicts(columnar_hits) == hit_dicts(rows_result.hits)
    keyword_hits = {(h.source_file, h.source_record) for h in columnar_hits if h.route == "windows"}
    assert len(keyword_hits) == 4  # svchost (Sysmon), m.exe (Sysmon), mimilib (Security), Invoke-Mimikatz (800)
    gated = [shape for shape in worker.columnar._shapes.values() if shape.all_fields]
    assert gated and all(shape.gate is not None for shape in gated)
