"""Real recordings the fixtures never had: exported logs, classic events with unnamed ``<Data>``, keyword rules.

Expectations are computed here from the EVTX files themselves (parsed with the evtx library, read the way Event
Viewer shows them), never from the code under test.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import evtx
import pytest
from click.testing import CliRunner

from assay.cli.main import cli
from assay.hunt.rules import load_hunt_rules
from assay.hunt.run import hunt

pytestmark = pytest.mark.shared_data

CMSTP_RULE = r"""
title: CMSTP Started
id: 2c1f0d7e-4e54-4b8a-a8b3-3a6d2f1c0201
level: high
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\cmstp.exe'
    condition: selection
"""


def _records(path: Path) -> list[dict[str, Any]]:
    """Every record of an EVTX file: its position (the record header's number) and its parsed JSON."""
    return [{"position": r["event_record_id"], "event": json.loads(r["data"])["Event"]}
            for r in evtx.PyEvtxParser(str(path)).records_json()]


def _decoded_data(event: dict[str, Any]) -> str | None:
    """``Data`` as Event Viewer lists it: the unnamed values, one per line."""
    data = (event.get("EventData") or {}).get("Data") if isinstance(event.get("EventData"), dict) else None
    if not isinstance(data, dict) or "#text" not in data:
        return None
    values = data["#text"] if isinstance(data["#text"], list) else [data["#text"]]
    return "\n".join("" if v is None else str(v) for v in values)


@pytest.fixture
def exported_log(shared_data: Path) -> Path:
    path = shared_data / "cmstp" / "sysmon_1_13_11_cmstp_ini_uacbypass.evtx"
    if not path.exists():
        pytest.skip("cmstp recording missing from the shared data")
    return path


def test_every_timeline_format_shows_the_event_record_id(exported_log: Path, tmp_path: Path) -> None:
    records = _records(exported_log)
    wanted = {r["event"]["System"]["EventRecordID"] for r in records
              if str(r["event"].get("EventData", {}).get("Image", "")).lower().endswith("\\cmstp.exe")}
    positions = {r["position"] for r in records}
    assert wanted and not wanted & positions  # an exported log: its record ids are not its positions
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "cmstp.yml").write_text(CMSTP_RULE.lstrip(), encoding="utf-8")
    runner = CliRunner()
    outputs = {}
    for output_format in ("json", "jsonl", "csv", "table"):
        result = runner.invoke(cli, ["hunt", str(exported_log), "--rules", str(rules), "--format", output_format,
                                     "--workers", "1", "--no-cache"])
        assert result.exit_code == 0, result.output
        outputs[output_format] = result.stdout
    timeline = json.loads(outputs["json"])["timeline"]
    assert {hit["source_record"] for hit in timeline} == wanted
    lines = [json.loads(line) for line in outputs["jsonl"].splitlines() if line.startswith("{")]
    assert {hit["source_record"] for hit in lines} == wanted
    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert {int(row["source_record"]) for row in rows} == wanted
    table = outputs["table"].splitlines()
    header = table[0].split("\t")
    column = header.index("source_record")
    shown = {int(line.split("\t")[column]) for line in table[1:1 + len(wanted)]}
    assert shown == wanted
    # the reference path says the same
    with hunt([exported_log], [rules], mode="reference", cache_dir=False) as reference:
        assert {h.source_record for h in reference.hits} == wanted


def _classic_files(shared_data: Path) -> list[Path]:
    corpus = shared_data / "evtx-attack-samples"
    if not corpus.is_dir():
        pytest.skip("EVTX-ATTACK-SAMPLES missing from the shared data")
    found = []
    for path in sorted(corpus.rglob("*.evtx")):
        try:
            if any(_decoded_data(r["event"]) is not None for r in _records(path)):
                found.append(path)
        except (OSError, RuntimeError):
            continue
    if not found:
        pytest.skip("no recording with unnamed <Data> values in the shared data")
    return found


DATA_RULES = {
    "data_backslash.yml": r"""
title: Data Holds A Backslash
id: 2c1f0d7e-4e54-4b8a-a8b3-3a6d2f1c0202
level: low
logsource: {product: windows, service: application}
detection:
    selection:
        Data|contains: '\'
    condition: selection
""",
    "data_two_backslashes.yml": r"""
title: Data Holds Two Backslashes
id: 2c1f0d7e-4e54-4b8a-a8b3-3a6d2f1c0203
level: low
logsource: {product: windows, service: application}
detection:
    selection:
        Data|contains: '\\\\'
    condition: selection
""",
    "data_newline.yml": r"""
title: Data Spans Lines
id: 2c1f0d7e-4e54-4b8a-a8b3-3a6d2f1c0204
level: low
logsource: {product: windows, service: powershell-classic}
detection:
    selection:
        Data|re: '=\S*\s+\S+='
    condition: selection
""",
}


def test_real_unnamed_data_gives_exactly_the_hits_of_its_decoded_text(shared_data: Path, tmp_path: Path) -> None:
    files = _classic_files(shared_data)
    import re

    expected: set[tuple[str, str, int]] = set()
    for path in files:
        for record in _records(path):
            event = record["event"]
            text = _decoded_data(event)
            if text is None:
                continue
            channel = event["System"].get("Channel")
            record_id = event["System"]["EventRecordID"]
            if channel == "Application":
                if "\\" in text:
                    expected.add(("Data Holds A Backslash", str(path), record_id))
                if "\\\\" in text:
                    expected.add(("Data Holds Two Backslashes", str(path), record_id))
            if channel == "Windows PowerShell" and re.search(r"=\S*\s+\S+=", text):
                expected.add(("Data Spans Lines", str(path), record_id))
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, text in DATA_RULES.items():
        (rules / name).write_text(text.lstrip(), encoding="utf-8")
    rule_set = load_hunt_rules([rules], cache_dir=False)
    with hunt(files, rule_set, workers=1) as fast, hunt(files, rule_set, mode="reference") as reference:
        found = {(h.rule_title, h.source_file, h.source_record) for h in fast.hits}
        assert found == expected
        assert [h.as_dict() for h in fast.hits] == [h.as_dict() for h in reference.hits]
    assert any(title == "Data Spans Lines" for title, _, _ in expected)


KEYWORD_RULE = r"""
title: Credential Dumping Tool Keywords
id: 2c1f0d7e-4e54-4b8a-a8b3-3a6d2f1c0205
level: high
logsource: {product: windows}
detection:
    keywords:
        - 'sekurlsa::'
        - 'lsadump::'
        - 'privilege::debug'
        - 'kerberos::'
        - '\mimilib.dll'
        - 'mimikatz'
    filter:
        EventID: 15
    condition: keywords and not filter
"""
KEYWORDS = ("sekurlsa::", "lsadump::", "privilege::debug", "kerberos::", "\\mimilib.dll", "mimikatz")


def _field_values(event: dict[str, Any]) -> list[str]:
    """An event's field values as a rule reads them: EventData (unnamed Data as its lines), else UserData's."""
    fields = event.get("EventData")
    if not isinstance(fields, dict):
        user_data = event.get("UserData")
        fields = next(iter(user_data.values())) if isinstance(user_data, dict) and user_data else None
    if not isinstance(fields, dict):
        return []
    values = []
    for value in fields.values():
        if isinstance(value, dict) and "#text" in value and set(value) <= {"#text", "#attributes"}:
            items = value["#text"] if isinstance(value["#text"], list) else [value["#text"]]
            values.append("\n".join("" if v is None else str(v) for v in items))
        elif isinstance(value, str):
            values.append(value)
        elif value is not None:
            values.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return values


def test_a_product_only_keyword_rule_runs_over_every_windows_record(shared_data: Path, tmp_path: Path) -> None:
    corpus = shared_data / "evtx-attack-samples"
    if not corpus.is_dir():
        pytest.skip("EVTX-ATTACK-SAMPLES missing from the shared data")
    expected: set[tuple[str, int]] = set()
    channels: set[str] = set()
    for path in sorted(corpus.rglob("*.evtx")):
        try:
            records = _records(path)
        except (OSError, RuntimeError):
            continue
        for record in records:
            event = record["event"]
            event_id = event["System"].get("EventID")
            event_id = event_id.get("#text") if isinstance(event_id, dict) else event_id
            if event_id == 15:
                continue
            values = [v.lower() for v in _field_values(event)]
            if any(k in v for k in KEYWORDS for v in values):
                expected.add((str(path), event["System"]["EventRecordID"]))
                channels.add(event["System"]["Channel"])
    assert len(channels) > 1  # the keywords are found in more than one log
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "keywords.yml").write_text(KEYWORD_RULE.lstrip(), encoding="utf-8")
    rule_set = load_hunt_rules([rules], cache_dir=False)
    assert not rule_set.problems
    with hunt([corpus], rule_set) as fast:
        assert {(h.source_file, h.source_record) for h in fast.hits} == expected
        assert not fast.no_events
        assert {h.route for h in fast.hits} == {"windows"}
