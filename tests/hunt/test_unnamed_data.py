"""Unnamed ``<Data>`` values (classic Application, System and Windows PowerShell events) read as decoded text.

The evtx parser renders ``<EventData><Data>v1</Data><Data>v2</Data></EventData>`` as
``{"Data": {"#text": ["v1", "v2"]}}``. A rule reading ``Data`` must see the text Event Viewer shows (the values
joined by a newline: docs/hunting.md), never that object's JSON text with doubled backslashes and ``\\n``.
The same on the fast path, the reference path, Spark and ``assay sigma eval``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assay.engine.spark_engine import pyspark_available
from assay.hunt.rules import load_hunt_rules
from assay.hunt.run import hunt
from assay.ingest.eventdata import UNNAMED_DATA_SEPARATOR, decode_evtx_json, element_text
from assay.sigma.flat import eval_flat_events
from tests.hunt.conftest import evtx_json_event, write_jsonl

MSI_GUID = "C2D4F3C5-0A4B-4D6C-8E2F-0C1B2E3D4F5A"
POWERSHELL_GUID = "A0C1853B-5C40-4B15-8766-3CF1C58F985A"
HOST = "WKS-FIN-042.corp.example.com"


def _engine_state(host_application: str, script_name: str) -> str:
    """The third value of a Windows PowerShell 400 event: tab-indented lines, CRLF line ends, as Windows writes."""
    lines = ["NewEngineState=Available", "PreviousEngineState=None", "", "SequenceNumber=13", "",
             "HostName=ConsoleHost", "HostVersion=5.1.19041.3803", "HostId=7b3a9c1e-5d2f-4e8a-9b6c-1f2e3d4c5b6a",
             f"HostApplication={host_application}", "EngineVersion=5.1.19041.3803",
             "RunspaceId=0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b", "PipelineId=", "CommandName=", "CommandType=",
             f"ScriptName={script_name}", "CommandPath=", "CommandLine="]
    return "\r\n".join("\t" + line if line else "" for line in lines)


def classic_events() -> list[dict[str, Any]]:
    msi = "MsiInstaller"
    qualifiers = {"#attributes": {"Qualifiers": 0}}
    return [
        evtx_json_event(1, "Application", msi, {**qualifiers, "#text": 1040}, "2024-03-12T10:01:00.0000000Z", HOST,
                        {"Data": {"#text": ["C:\\Users\\jdoe\\AppData\\Local\\Temp\\agent_setup.msi", "4242"]},
                         "Binary": "7B41393243"}, guid=MSI_GUID),
        evtx_json_event(2, "Application", msi, {**qualifiers, "#text": 1040}, "2024-03-12T10:02:00.0000000Z", HOST,
                        {"Data": {"#text": ["\\\\fs01\\deploy$\\agent.msi", "5100"]}, "Binary": "7B41393243"},
                        guid=MSI_GUID),
        evtx_json_event(3, "Application", msi, {**qualifiers, "#text": 11707}, "2024-03-12T10:03:00.0000000Z", HOST,
                        {"Data": {"#text": "Product: Contoso Agent -- Installation completed successfully."},
                         "Binary": "7B41393243"}, guid=MSI_GUID),
        evtx_json_event(4, "Windows PowerShell", "PowerShell", {**qualifiers, "#text": 400},
                        "2024-03-12T10:04:00.0000000Z", HOST, {"Data": {"#text": [
                            "Available", "None",
                            _engine_state("powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA", "")]}},
                        guid=POWERSHELL_GUID),
        # -enc appears on another line than HostApplication: a regex's "." must not cross the line end
        evtx_json_event(5, "Windows PowerShell", "PowerShell", {**qualifiers, "#text": 400},
                        "2024-03-12T10:05:00.0000000Z", HOST, {"Data": {"#text": [
                            "Available", "None",
                            _engine_state("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                                          "C:\\Scripts\\rotate-enc.ps1")]}},
                        guid=POWERSHELL_GUID),
    ]


RULES = {
    "msi_unc.yml": r"""
title: MSI Installed From A Share
id: 6b1f4c1e-1d61-4c1b-9a70-7d3e3c0a0101
level: medium
logsource: {product: windows, service: application}
detection:
    selection:
        Provider_Name: MsiInstaller
        Data|contains: '\\\\'
    condition: selection
""",
    "msi_temp.yml": r"""
title: MSI Installed From User Temp
id: 6b1f4c1e-1d61-4c1b-9a70-7d3e3c0a0102
level: medium
logsource: {product: windows, service: application}
detection:
    selection:
        Data|contains: '\AppData\Local\Temp\'
    condition: selection
""",
    "msi_done.yml": r"""
title: Contoso Agent Installed
id: 6b1f4c1e-1d61-4c1b-9a70-7d3e3c0a0103
level: informational
logsource: {product: windows, service: application}
detection:
    selection:
        Data: 'Product: Contoso Agent -- Installation completed successfully.'
    condition: selection
""",
    "ps_host_enc.yml": r"""
title: Classic PowerShell Host With Encoded Command
id: 6b1f4c1e-1d61-4c1b-9a70-7d3e3c0a0104
level: high
logsource: {product: windows, category: ps_classic_start}
detection:
    selection:
        Data|re: 'HostApplication=.*-enc'
    condition: selection
""",
    "ps_state.yml": r"""
title: Classic PowerShell Engine Started
id: 6b1f4c1e-1d61-4c1b-9a70-7d3e3c0a0105
level: informational
logsource: {product: windows, category: ps_classic_start}
detection:
    selection:
        Data|re: 'NewEngineState=Available\s+PreviousEngineState=None'
    condition: selection
""",
}

EXPECTED = {
    ("MSI Installed From A Share", 2),
    ("MSI Installed From User Temp", 1),
    ("Contoso Agent Installed", 3),
    ("Classic PowerShell Host With Encoded Command", 4),
    ("Classic PowerShell Engine Started", 4), ("Classic PowerShell Engine Started", 5),
}


@pytest.fixture
def classic_rules(tmp_path: Path) -> Path:
    folder = tmp_path / "classic-rules"
    folder.mkdir()
    for name, text in RULES.items():
        (folder / name).write_text(text.lstrip(), encoding="utf-8")
    return folder


@pytest.fixture
def classic_logs(tmp_path: Path) -> Path:
    folder = tmp_path / "classic-logs"
    folder.mkdir()
    write_jsonl(folder / "wks-fin-042-classic.jsonl", classic_events())
    return folder


def _keys(result: Any) -> set[tuple[str, int | None]]:
    return {(h.rule_title, h.source_record) for h in result.hits}


def test_element_text_joins_unnamed_values_with_a_newline() -> None:
    assert element_text({"#text": ["a\\b", "", None, "c\nd"]}) == (True, "a\\b\n\n\nc\nd")
    assert element_text({"#text": "C:\\x.msi"}) == (True, "C:\\x.msi")
    assert element_text({"#text": 7}) == (True, "7")
    assert element_text({"#attributes": {"Name": "x"}, "#text": "v"}) == (True, "v")
    assert element_text({"#text": "v", "Other": 1}) == (False, None)  # not an element: left as it is
    assert element_text("plain") == (False, None)
    assert UNNAMED_DATA_SEPARATOR == "\n"


def test_decoded_record_keeps_the_rest_of_the_event() -> None:
    event = classic_events()[0]
    decoded = json.loads(decode_evtx_json(json.dumps(event, separators=(",", ":"))))
    assert decoded["Event"]["EventData"] == {
        "Data": "C:\\Users\\jdoe\\AppData\\Local\\Temp\\agent_setup.msi\n4242", "Binary": "7B41393243"}
    assert decoded["Event"]["System"] == event["Event"]["System"]
    plain = json.dumps(evtx_json_event(9, "Security", "x", 4624, "2024-01-01T00:00:00Z", HOST, {"A": "b"}))
    assert decode_evtx_json(plain) is plain  # nothing to decode: the very same text, no parse


def test_fast_and_reference_paths_read_unnamed_data_as_text(classic_logs: Path, classic_rules: Path,
                                                            cache_dir: Path) -> None:
    rule_set = load_hunt_rules([classic_rules], cache_dir=cache_dir)
    assert not rule_set.problems
    fast = hunt([classic_logs], rule_set, mode="fast", workers=1)
    reference = hunt([classic_logs], rule_set, mode="reference")
    assert _keys(fast) == EXPECTED
    assert [h.as_dict() for h in fast.hits] == [h.as_dict() for h in reference.hits]
    shown = {h.source_record: dict(h.fields) for h in fast.hits}
    assert shown[1]["Data"] == "C:\\Users\\jdoe\\AppData\\Local\\Temp\\agent_setup.msi\n4242"


def test_sigma_eval_reads_an_element_value_as_its_text(classic_rules: Path) -> None:
    events = [{"Provider_Name": "MsiInstaller", **e["Event"]["EventData"]} for e in classic_events()[:3]]
    unc = eval_flat_events(classic_rules / "msi_unc.yml", events)
    temp = eval_flat_events(classic_rules / "msi_temp.yml", events)
    assert unc.matched_records == (2,)
    assert temp.matched_records == (1,)


@pytest.mark.spark
def test_spark_reads_unnamed_data_as_text(classic_logs: Path, classic_rules: Path, cache_dir: Path,
                                          tmp_path: Path) -> None:
    reason = pyspark_available()
    if reason:
        pytest.skip(reason)
    rule_set = load_hunt_rules([classic_rules], cache_dir=cache_dir)
    spark = hunt([classic_logs], rule_set, mode="spark", spark_master="local[1]", work_dir=tmp_path / "parquet")
    assert _keys(spark) == EXPECTED
