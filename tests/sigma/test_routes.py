"""Routing and field mapping on the table path, and the honest "cannot evaluate (missing: X)" outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlglot import exp

from assay.cli.main import cli
from assay.engine import DuckDBEngine
from assay.errors import SigmaError
from assay.sigma import compile_rule, evaluate, load_rule
from assay.sigma.lowering import like_pattern, string_match
from tests.conftest import DETECTIONS

SYSMON = "Microsoft-Windows-Sysmon/Operational"

CMSTP_PROCESS = {
    "Image": r"C:\Windows\System32\cmstp.exe",
    "OriginalFileName": "CMSTP.EXE",
    "CommandLine": r"cmstp.exe /s /ns C:\Users\alice\AppData\Local\Temp\corpvpn.inf",
    "ParentImage": r"C:\Windows\System32\cmd.exe",
    "ParentCommandLine": r'cmd.exe /c "C:\Users\alice\Downloads\setup.bat"',
    "User": r"CORP\alice",
    "Hashes": "SHA256=1C3B5E0A0B3F1AB8F1CB4A6D9D23A7A1E9B0E52C1F51F0B8E5A06AB0B5E2D4C7",
}

HASH_RULE = """title: Known Bad Loader Hash
id: 7e2a4c6b-8d0f-4e1a-9b3c-5d7e9f1a3b5c
status: test
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Hashes|contains: 'SHA256=0F5A7C2B9E1D3F4A6B8C0D2E4F6A8B0C1D3E5F7A9B1C3D5E7F9A1B3C5D7E9F1A'
    condition: selection
level: high
"""


def add_raw(engine: DuckDBEngine, event_id: int, channel: str, eid: int, fields: dict[str, str]) -> None:
    engine.connection.execute(
        'INSERT INTO "RawEvents" ("AssayEventId", "Timestamp", "Channel", "Provider", "EventID", "Computer", '
        '"SourceFile", "SourceRecord", "SourceFormat", "Fields") VALUES '
        "(?, TIMESTAMP '2026-03-02 10:02:11', ?, 'p', ?, 'WS-FIN-042', 'case.evtx', ?, 'evtx', map(?, ?))",
        [event_id, channel, eid, event_id, list(fields), list(fields.values())])


def test_process_creation_routes_and_their_field_names() -> None:
    targets = {t.route: t for t in compile_rule(DETECTIONS / "T1218.003-cmstp")}
    assert list(targets) == ["sysmon:1", "security:4688", "DeviceProcessEvents"]
    assert targets["sysmon:1"].fields == ("Image", "OriginalFileName", "CommandLine", "ParentImage")
    assert targets["security:4688"].fields[0] == "NewProcessName"
    assert "ParentProcessName" in targets["security:4688"].fields
    assert targets["DeviceProcessEvents"].fields == (
        "FolderPath", "ProcessVersionInfoOriginalFileName", "ProcessCommandLine", "InitiatingProcessFolderPath")
    for target in targets.values():
        assert isinstance(target.query, exp.Select)
        assert target.query.sql(dialect="duckdb").startswith('SELECT "AssayEventId", "Timestamp" FROM')


def test_sysmon_security_and_defender_rows_all_match() -> None:
    engine = DuckDBEngine()
    add_raw(engine, 1, SYSMON, 1, CMSTP_PROCESS)
    add_raw(engine, 2, "Security", 4688, {
        "NewProcessName": CMSTP_PROCESS["Image"], "CommandLine": CMSTP_PROCESS["CommandLine"],
        "ParentProcessName": CMSTP_PROCESS["ParentImage"], "SubjectUserName": "alice", "NewProcessId": "0x1a2c"})
    add_raw(engine, 3, SYSMON, 1, {**CMSTP_PROCESS, "CommandLine": "cmstp.exe"})  # no /s: no match
    engine.connection.execute(
        'INSERT INTO "DeviceProcessEvents" ("Timestamp", "DeviceName", "ActionType", "FileName", "FolderPath", '
        '"ProcessCommandLine", "ProcessVersionInfoOriginalFileName", "InitiatingProcessFolderPath", "ProcessId", '
        '"AssayEventId", "AssaySource") VALUES (TIMESTAMP \'2026-03-02 10:02:11\', \'ws-fin-042.corp.example\', '
        "'ProcessCreated', 'cmstp.exe', ?, ?, 'CMSTP.EXE', ?, 6700, 4, 'mde.csv#1')",
        [CMSTP_PROCESS["Image"], CMSTP_PROCESS["CommandLine"], CMSTP_PROCESS["ParentImage"]])
    outcome = evaluate(DETECTIONS / "T1218.003-cmstp", engine)
    by_route = {r.route: r for r in outcome.routes}
    assert by_route["sysmon:1"].event_ids == (1,)
    assert by_route["security:4688"].event_ids == (2,)
    assert by_route["security:4688"].missing == ("OriginalFileName",)
    assert by_route["DeviceProcessEvents"].event_ids == (4,)
    assert outcome.event_ids == (1, 2, 4)


def test_missing_field_is_reported_never_a_silent_zero(tmp_path: Path) -> None:
    engine = DuckDBEngine()
    fields = {k: v for k, v in CMSTP_PROCESS.items() if k != "Hashes"}  # Sysmon configured without hashing
    add_raw(engine, 1, SYSMON, 1, fields)
    path = tmp_path / "hash.yml"
    path.write_text(HASH_RULE, encoding="utf-8")
    outcome = evaluate(path, engine)
    sysmon = next(r for r in outcome.routes if r.route == "sysmon:1")
    assert sysmon.status == "cannot-evaluate"
    assert sysmon.message == "cannot evaluate on this data (missing: Hashes)"
    defender = next(r for r in outcome.routes if r.route == "DeviceProcessEvents")
    assert defender.status == "no-data"
    assert not outcome.matched


def test_not_over_a_missing_column_is_true_on_typed_tables() -> None:
    engine = DuckDBEngine()
    engine.connection.execute(
        'INSERT INTO "DeviceProcessEvents" ("Timestamp", "FolderPath", "ProcessCommandLine", "AssayEventId") '
        "VALUES (TIMESTAMP '2026-03-02 10:02:11', 'C:\\Windows\\System32\\rundll32.exe', "
        "'rundll32.exe C:\\ProgramData\\a.dll,Start', 9)")
    rule_text = r"""title: Rundll32 Not From Explorer
id: 8f3b5d7c-9e1a-4f2b-8c4d-6e8f0a2b4c6d
status: test
logsource: {category: process_creation, product: windows}
detection:
    selection: {Image|endswith: '\rundll32.exe'}
    filter: {ParentImage|endswith: '\explorer.exe'}
    condition: selection and not filter
level: low
"""
    from assay.sigma.loading import load_rule_text

    outcome = evaluate(load_rule_text(rule_text), engine)
    defender = next(r for r in outcome.routes if r.route == "DeviceProcessEvents")
    assert defender.event_ids == (9,)
    assert defender.missing == ("InitiatingProcessFolderPath",)


def test_file_registry_network_image_load_and_powershell_routes() -> None:
    expectations = {
        "file_event": ["sysmon:11", "DeviceFileEvents"],
        "registry_set": ["sysmon:13", "DeviceRegistryEvents"],
        "network_connection": ["sysmon:3", "DeviceNetworkEvents"],
        "image_load": ["sysmon:7", "DeviceImageLoadEvents"],
        "ps_script": ["powershell:4104"],
        "file_delete": ["sysmon:23,26", "DeviceFileEvents"],
    }
    from sigma.rule import SigmaLogSource

    from assay.sigma.routes import routes_for_logsource

    for category, names in expectations.items():
        routes = routes_for_logsource(SigmaLogSource(category=category, product="windows"))
        assert [r.name for r in routes] == names, category
    assert [r.name for r in routes_for_logsource(SigmaLogSource(product="linux", category="process_creation"))] == []


def test_no_route_and_unknown_route_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "linux.yml"
    path.write_text(HASH_RULE.replace("product: windows", "product: linux"), encoding="utf-8")
    with pytest.raises(SigmaError, match="no table holds logsource product=linux"):
        compile_rule(path)
    with pytest.raises(SigmaError, match="no route sysmon:11"):
        compile_rule(DETECTIONS / "T1218.003-cmstp", targets=["sysmon:11"])


def test_regex_outside_re2_is_refused_not_silently_missed(tmp_path: Path) -> None:
    path = tmp_path / "lookahead.yml"
    path.write_text(HASH_RULE.replace("Hashes|contains: 'SHA256=0F5A7C2B9E1D3F4A6B8C0D2E4F6A8B0C1D3E5F7A9B1C3D5E7F9A1B3C5D7E9F1A'",
                                      "CommandLine|re: 'cmd(?!\\.exe)'"), encoding="utf-8")
    with pytest.raises(SigmaError, match="not RE2"):
        compile_rule(path)


def test_lowering_helper_escapes_like_metacharacters() -> None:
    from sigma.types import SigmaString

    assert like_pattern(SigmaString(r"C:\Temp\50%_off*")) == (r"C:\\Temp\\50\%\_off%", True)
    predicate = string_match(exp.column("FolderPath"), SigmaString(r"*\cmstp.exe"))
    assert predicate.sql(dialect="duckdb") == "LOWER(FolderPath) LIKE LOWER('%\\\\cmstp.exe') ESCAPE '\\'"


# -- assay sigma eval (flat JSON events) -----------------------------------------------------------------------


def test_sigma_eval_explain_and_bad_lines(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = [
        json.dumps(CMSTP_PROCESS),
        "{not json",
        json.dumps({**CMSTP_PROCESS, "CommandLine": "cmstp.exe /s C:\\corp\\vpn.inf", "ParentImage": "C:\\Windows\\explorer.exe"}),
        json.dumps({**CMSTP_PROCESS, "Image": "C:\\Windows\\System32\\notepad.exe", "OriginalFileName": "NOTEPAD.EXE"}),
    ]
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["sigma", "eval", str(DETECTIONS / "T1218.003-cmstp"), str(events),
                                      "--explain", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    verdicts = {e["record"]: e for e in report["events"]}
    assert set(verdicts) == {1, 3, 4}  # line 2 is reported, the others still run
    assert verdicts[1]["matched"] is True
    assert verdicts[3]["matched"] is False
    assert "selection_user_writable_inf" in verdicts[3]["explanation"]
    assert verdicts[4]["matched"] is False
    assert verdicts[4]["explanation"].startswith("'selection_cmstp' failed at Image|endswith")
    assert any(":2:" in bad for bad in report["bad_records"])


def test_sigma_eval_table_output_and_bad_rule(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(CMSTP_PROCESS) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["sigma", "eval", str(DETECTIONS / "T1218.003-cmstp"), str(events)])
    assert result.exit_code == 0
    assert "1 of 1 event(s) matched" in result.output
    bad = tmp_path / "bad.yml"
    bad.write_text(HASH_RULE.replace("|contains", "|contians"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["sigma", "eval", str(bad), str(events)])
    assert result.exit_code == 1
    assert f"{bad}:9:" in result.output and "contians" in result.output
    assert "Traceback" not in result.output


def test_load_rule_keeps_catalog_path() -> None:
    rule = load_rule(DETECTIONS / "T1218.003-cmstp")
    assert rule.source.endswith("rule.sigma.yml")


def test_defender_tables_rebuild_sysmon_hashes_and_accounts(tmp_path: Path) -> None:
    engine = DuckDBEngine()
    engine.connection.execute(
        'INSERT INTO "DeviceProcessEvents" ("Timestamp", "FolderPath", "SHA1", "MD5", "SHA256", "AccountDomain", '
        '"AccountName", "AssayEventId") VALUES (TIMESTAMP \'2026-03-02 10:02:11\', \'C:\\Users\\Public\\ldr.exe\', '
        "'5b1e3f0a9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f', '9e107d9d372bb6826bd81d3542a419d6', "
        "'0f5a7c2b9e1d3f4a6b8c0d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a', 'CORP', 'alice', 21)")
    path = tmp_path / "hash.yml"
    path.write_text(HASH_RULE.replace("        Hashes|contains", "        User: 'corp\\alice'\n        Hashes|contains"),
                    encoding="utf-8")
    outcome = evaluate(path, engine)
    defender = next(r for r in outcome.routes if r.route == "DeviceProcessEvents")
    assert defender.event_ids == (21,)
    assert defender.missing == ()


def test_placeholder_is_refused_with_the_rule_file(tmp_path: Path) -> None:
    path = tmp_path / "placeholder.yml"
    path.write_text(HASH_RULE.replace("Hashes|contains: 'SHA256=0F5A7C2B9E1D3F4A6B8C0D2E4F6A8B0C1D3E5F7A9B1C3D5E7F9A1B3C5D7E9F1A'",
                                      "User|expand: '%admin_users%'"), encoding="utf-8")
    with pytest.raises(SigmaError, match="placeholder") as raised:
        compile_rule(path)
    assert raised.value.span is not None and raised.value.span.file == str(path)


def test_registry_target_object_is_key_and_value_name_on_defender_rows(tmp_path: Path) -> None:
    """Sysmon's TargetObject holds the key and the value name; on DeviceRegistryEvents the route rebuilds it
    from RegistryKey and RegistryValueName, so a value-level rule means the same on both routes."""
    rule = tmp_path / "lua.yml"
    rule.write_text("""title: UAC disabled
id: 7c1d2c55-3b0e-4a7f-9d55-31a1f0f3c2aa
logsource: {category: registry_set, product: windows}
detection:
    selection:
        TargetObject|endswith: '\\\\Policies\\\\System\\\\EnableLUA'
        Details: 'DWORD (0x00000000)'
    condition: selection
""", encoding="utf-8")
    engine = DuckDBEngine()
    key = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System"
    for event_id, value_name in ((1, "EnableLUA"), (2, "ConsentPromptBehaviorAdmin"), (3, "")):
        engine.connection.execute(
            'INSERT INTO "DeviceRegistryEvents" ("Timestamp", "DeviceName", "ActionType", "RegistryKey", '
            '"RegistryValueName", "RegistryValueData", "AssayEventId", "AssaySource") VALUES '
            "(TIMESTAMP '2026-03-02 10:02:11', 'ws1', 'RegistryValueSet', ?, ?, 'DWORD (0x00000000)', ?, 'x#1')",
            [key, value_name, event_id])
    outcome = evaluate(rule, engine)
    defender = next(r for r in outcome.routes if r.route == "DeviceRegistryEvents")
    assert defender.event_ids == (1,)
