"""Real-world-shaped Sentinel / Defender XDR detection and hunting queries bind and run on the canonical tables.

These use the constructs the issue measured in ~3,300 public detection queries (where, extend, summarize,
project, join, sort, distinct, union, mv-expand, project-reorder; ago, tostring, count, isnotempty, parse_json,
make_set, arg_max; the has family). They run on empty tables: the point is that every one binds and that
DuckDB accepts the SQL, with the output columns a detection engineer expects.
"""

from __future__ import annotations

import pytest

from assay import kql
from assay.engine import DuckDBEngine

QUERIES = {
    "encoded powershell by parent": ("""
let lookback = 7d;
DeviceProcessEvents
| where Timestamp > ago(lookback)
| where FileName in~ ("powershell.exe", "pwsh.exe")
| where ProcessCommandLine has_any ("-enc", "-encodedcommand", "-e ")
| extend Decoded = base64_decode_tostring(extract(@"(?i)-e(nc|ncodedcommand)?\\s+([A-Za-z0-9+/=]{20,})", 2,
                                                  ProcessCommandLine))
| summarize Executions = count(), Devices = dcount(DeviceName), Samples = make_set(Decoded, 5),
            LastSeen = max(Timestamp) by InitiatingProcessFileName, AccountName
| order by Executions desc""", ("InitiatingProcessFileName", "AccountName", "Executions", "Devices", "Samples",
                                 "LastSeen")),
    "latest process per device": ("""
DeviceProcessEvents
| where Timestamp between (ago(1d) .. now())
| where isnotempty(SHA256)
| summarize arg_max(Timestamp, FileName, FolderPath, SHA256) by DeviceId
| project-reorder DeviceId, Timestamp""", ("DeviceId", "Timestamp", "FileName", "FolderPath", "SHA256")),
    "process then network connection": ("""
let Suspicious = DeviceProcessEvents
    | where Timestamp > ago(1h)
    | where FileName =~ "rundll32.exe" and ProcessCommandLine !contains ".dll,"
    | project DeviceId, ProcessId, ProcessStart = Timestamp, ProcessCommandLine;
Suspicious
| join kind=inner (
    DeviceNetworkEvents
    | where Timestamp > ago(1h) and RemotePort in (80, 443) and not(ipv4_is_private(RemoteIP))
    | project DeviceId, InitiatingProcessId, RemoteIP, RemoteUrl, ConnectTime = Timestamp
  ) on DeviceId, $left.ProcessId == $right.InitiatingProcessId
| where ConnectTime between (ProcessStart .. 5m)
| project ProcessStart, DeviceId, ProcessCommandLine, RemoteIP, RemoteUrl""",
        ("ProcessStart", "DeviceId", "ProcessCommandLine", "RemoteIP", "RemoteUrl")),
    "registry run keys with parsed fields": ("""
DeviceRegistryEvents
| where ActionType == "RegistryValueSet"
| where RegistryKey has @"\\CurrentVersion\\Run"
| extend Extra = parse_json(AdditionalFields)
| extend Signer = tostring(Extra.SignerName), Hive = tostring(split(RegistryKey, @"\\")[0])
| project-rename Value = RegistryValueData
| distinct DeviceName, RegistryKey, Value, Signer, Hive""",
        ("DeviceName", "RegistryKey", "Value", "Signer", "Hive")),
    "failed logons then success (SecurityEvent)": ("""
SecurityEvent
| where TimeGenerated > ago(1d)
| where EventID in (4624, 4625)
| summarize Failures = countif(EventID == 4625), Successes = countif(EventID == 4624),
            Sources = make_set(IpAddress) by TargetAccount, Computer, bin(TimeGenerated, 10m)
| where Failures > 10 and Successes > 0
| extend Ratio = round(todouble(Failures) / (Failures + Successes), 2)""",
        ("TargetAccount", "Computer", "TimeGenerated", "Failures", "Successes", "Sources", "Ratio")),
    "union of file and process activity": ("""
union withsource = SourceTable
    (DeviceFileEvents | where FolderPath has_any ("\\\\Temp\\\\", "\\\\Downloads\\\\") | project Timestamp, DeviceName,
        Path = FolderPath),
    (DeviceProcessEvents | where FolderPath has "\\\\Temp\\\\" | project Timestamp, DeviceName, Path = FolderPath)
| summarize Events = count() by SourceTable, DeviceName
| top 20 by Events""", ("SourceTable", "DeviceName", "Events")),
    "image loads expanded": ("""
DeviceImageLoadEvents
| where FileName in~ ("amsi.dll", "dbghelp.dll", "comsvcs.dll")
| summarize Loaders = make_set(InitiatingProcessFileName) by FileName
| mv-expand Loader = Loaders to typeof(string)
| where Loader !in~ ("svchost.exe", "MsMpEng.exe")
| project FileName, Loader""", ("FileName", "Loader")),
    "sysmon raw events through the Fields map": ("""
RawEvents
| where Channel == "Microsoft-Windows-Sysmon/Operational" and EventID == 1
| extend Image = tostring(Fields.Image), CommandLine = tostring(Fields["CommandLine"])
| where Image endswith @"\\cmstp.exe"
| project Timestamp, Computer, Image, CommandLine""", ("Timestamp", "Computer", "Image", "CommandLine")),
    "parse command line switches": ("""
DeviceProcessEvents
| where FileName =~ "schtasks.exe" and ProcessCommandLine has "/create"
| parse kind=regex flags=i ProcessCommandLine with * @"/tn\\s+" TaskName @"\\s" *
| extend HasXml = ProcessCommandLine has "/xml", Hour = hourofday(Timestamp)
| summarize Count = count(), Tasks = make_set(TaskName) by DeviceName, HasXml""",
        ("DeviceName", "HasXml", "Count", "Tasks")),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_detection_query_binds_and_runs(engine: DuckDBEngine, name: str) -> None:
    text, columns = QUERIES[name]
    result = kql.run(text, db=engine, now="2024-05-01T12:00:00Z")
    assert result.column_names == columns
