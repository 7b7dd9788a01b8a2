"""Synthesis of the endpoint events beyond the process tree: Sysmon 8/10/17/18/19-21/22/23/26, PowerShell logging
(4104 script blocks split into parts, 4103 module logging), Windows Defender detections (1116/1117) and any other
Defender XDR ``DeviceEvents`` row.

Records have the field order and value types the ``evtx`` package prints for Sysmon 15 and Windows 10/11 (e.g. WMI
names quoted the way Sysmon quotes them, ``QueryStatus`` as text); the Defender rows (DeviceEvents
OpenProcessApiCall, CreateRemoteThreadApiCall, NamedPipeEvent, WmiBindEventFilterToConsumer, DnsQueryResponse,
PowerShellCommand, AntivirusDetection; DeviceFileEvents FileDeleted) and Winlogbeat documents carry the same facts.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from assay.catalog.models import (
    AntivirusDetection,
    DeviceEvent,
    DnsQuery,
    FileDelete,
    NamedPipe,
    PowerShellScript,
    ProcessAccess,
    RemoteThread,
    WmiSubscription,
)
from assay.verify.binaries import binary_info
from assay.verify.synth_base import (
    SYSTEM_USER,
    ProcessFacts,
    Telemetry,
    _ip_type,
    _Synthesizer,
    file_name_of,
    folder_of,
    sysmon_guid,
    utc_time,
)

Defender = dict[str, list[dict[str, Any]]]

POWERSHELL_CHANNEL = "Microsoft-Windows-PowerShell/Operational"
POWERSHELL_PROVIDER = "Microsoft-Windows-PowerShell"
POWERSHELL_PROVIDER_GUID = "A0C1853B-5C40-4B15-8766-3CF1C58F985A"
#: Script block logging splits a long block into parts of about this many characters (MessageNumber of
#: MessageTotal); each part is its own 4104 record with the same ScriptBlockId.
POWERSHELL_PART_CHARS = 10_000
DEFENDER_AV_CHANNEL = "Microsoft-Windows-Windows Defender/Operational"
DEFENDER_AV_PROVIDER = "Microsoft-Windows-Windows Defender"
DEFENDER_AV_PROVIDER_GUID = "11CD958A-C507-4EF3-B3F2-5FD9DFBD2C78"
#: PowerShell aliases and the commands they resolve to (what module logging and Defender record).
POWERSHELL_ALIASES = {
    "iex": "Invoke-Expression", "iwr": "Invoke-WebRequest", "irm": "Invoke-RestMethod", "curl": "Invoke-WebRequest",
    "wget": "Invoke-WebRequest", "saps": "Start-Process", "start": "Start-Process", "gwmi": "Get-WmiObject",
    "icm": "Invoke-Command", "sal": "Set-Alias", "gci": "Get-ChildItem", "ls": "Get-ChildItem",
}
_VERB_NOUN = re.compile(r"(?<![\w$-])([A-Za-z]+-[A-Za-z][A-Za-z0-9]+)(?![\w-])")
_ALIAS = re.compile(r"(?:^|[\s;|({])(" + "|".join(POWERSHELL_ALIASES) + r")(?=[\s;|(]|$)", re.IGNORECASE)
#: Processes that run as SYSTEM when they are a target outside the scenario.
SYSTEM_IMAGES = ("lsass.exe", "winlogon.exe", "services.exe", "svchost.exe", "csrss.exe", "spoolsv.exe", "smss.exe",
                 "wininit.exe", "lsaiso.exe")


# --------------------------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------------------------


class _Target:
    """A process acted on (opened, injected into): one of the scenario's, or a system process outside it."""

    def __init__(self, syn: _Synthesizer, ref: str | None, image: str, pid: int | None) -> None:
        if ref is not None:
            facts = syn.processes[ref]
            self.image, self.pid, self.guid, self.account = facts.image, facts.pid, facts.guid, facts.account
            self.command_line: str | None = facts.command_line
            self.user_sid = facts.user.sid
            return
        name = file_name_of(image).lower()
        self.image = image
        self.pid = pid or (syn.lsass_pid if name == "lsass.exe" else syn.seed.pid("target", name))
        boot = syn.start - dt.timedelta(seconds=syn.seed.number(40_000, 400_000, "boot", syn.host.name,
                                                                scoped=False))
        started = boot if name in SYSTEM_IMAGES else syn.start - dt.timedelta(
            seconds=syn.seed.number(60, 3_600, "target-start", name))
        self.guid = sysmon_guid(syn.host.machine, started, syn.seed.hex(4, "target-guid", name, scoped=False)
                                + "00000000" + syn.seed.hex(2, "guid-tail", scoped=False) + "00")
        system = name in SYSTEM_IMAGES
        self.account = "NT AUTHORITY\\SYSTEM" if system else f"{syn.user.domain}\\{syn.user.name}"
        self.user_sid = SYSTEM_USER.sid if system else syn.user.sid
        self.command_line = None


def _thread(syn: _Synthesizer, *parts: object) -> int:
    return syn.seed.number(300, 9_000, "thread-id", *parts) * 4


def _system_dll(name: str) -> str:
    return name if "\\" in name else f"C:\\Windows\\System32\\{name}"


def default_call_trace(syn: _Synthesizer, source: ProcessFacts, via: tuple[str, ...]) -> str:
    """A CallTrace as Sysmon prints it: ntdll and KERNELBASE, the modules in ``via``, the caller, then its start."""
    frames = [f"C:\\Windows\\SYSTEM32\\ntdll.dll+{syn.seed.hex(5, 'ntdll-off', scoped=False).lower()}",
              f"C:\\Windows\\System32\\KERNELBASE.dll+{syn.seed.hex(5, 'kb-off', scoped=False).lower()}"]
    frames += [f"{_system_dll(dll)}+{syn.seed.hex(4, 'via-off', dll, scoped=False).lower()}" for dll in via]
    frames.append(f"{source.image}+{syn.seed.hex(4, 'caller-off', source.image).lower()}")
    frames += [f"C:\\Windows\\System32\\KERNEL32.DLL+{syn.seed.hex(5, 'k32-off', scoped=False).lower()}",
               f"C:\\Windows\\SYSTEM32\\ntdll.dll+{syn.seed.hex(5, 'ntdll-start', scoped=False).lower()}"]
    return "|".join(frames)


def _target_columns(target: _Target) -> dict[str, Any]:
    return {"FileName": file_name_of(target.image), "FolderPath": target.image, "ProcessId": target.pid,
            "ProcessCommandLine": target.command_line}


def _wmi_quoted(text: str) -> str:
    """A WMI string as Sysmon's WMI events print it: a leading space, double quotes, backslashes doubled."""
    return ' "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------------------------------------------
# Sysmon
# --------------------------------------------------------------------------------------------------------------


def emit_process_access(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: ProcessAccess,
                        when: dt.datetime, instance: int) -> None:
    source = syn.processes[item.process]
    target = _Target(syn, item.target, item.target_image, item.target_pid)
    record = syn.sysmon_event(10, when, {
        "RuleName": "-", "UtcTime": utc_time(when), "SourceProcessGUID": source.guid, "SourceProcessId": source.pid,
        "SourceThreadId": _thread(syn, source.ref, instance), "SourceImage": source.image,
        "TargetProcessGUID": target.guid, "TargetProcessId": target.pid, "TargetImage": target.image,
        "GrantedAccess": item.granted_access, "CallTrace": item.call_trace or default_call_trace(syn, source, item.via),
        "SourceUser": source.account, "TargetUser": target.account})
    telemetry.sysmon.append(record)
    telemetry.ecs.append(syn.ecs_from_sysmon(record, source, {
        "event": {"category": ["process"], "type": ["access"]},
        "process": {"target": {"entity_id": "{" + target.guid + "}", "pid": target.pid,
                               "executable": target.image, "name": file_name_of(target.image)}}}))
    defender.setdefault("DeviceEvents", []).append({
        **syn.device_columns(when, "OpenProcessApiCall"), **_target_columns(target),
        **syn.initiating_columns(source, full=True), "ReportId": syn.next_report_id(),
        "AdditionalFields": {"DesiredAccess": int(item.granted_access, 16)}})


def emit_remote_thread(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: RemoteThread,
                       when: dt.datetime, instance: int) -> None:
    source = syn.processes[item.process]
    target = _Target(syn, item.target, item.target_image, item.target_pid)
    record = syn.sysmon_event(8, when, {
        "RuleName": "-", "UtcTime": utc_time(when), "SourceProcessGuid": source.guid, "SourceProcessId": source.pid,
        "SourceImage": source.image, "TargetProcessGuid": target.guid, "TargetProcessId": target.pid,
        "TargetImage": target.image, "NewThreadId": _thread(syn, "remote", instance, when),
        "StartAddress": item.start_address, "StartModule": item.start_module, "StartFunction": item.start_function,
        "SourceUser": source.account, "TargetUser": target.account})
    telemetry.sysmon.append(record)
    telemetry.ecs.append(syn.ecs_from_sysmon(record, source, {"event": {"category": ["process"],
                                                                         "type": ["change"]}}))
    defender.setdefault("DeviceEvents", []).append({
        **syn.device_columns(when, "CreateRemoteThreadApiCall"), **_target_columns(target),
        **syn.initiating_columns(source, full=True), "ReportId": syn.next_report_id(), "AdditionalFields": None})


def emit_pipe(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: NamedPipe, when: dt.datetime,
              instance: int) -> None:
    process = syn.processes[item.process]
    name = item.name if item.name.startswith("\\") else "\\" + item.name
    created = item.action == "created"
    record = syn.sysmon_event(17 if created else 18, when, {
        "RuleName": "-", "EventType": "CreatePipe" if created else "ConnectPipe", "UtcTime": utc_time(when),
        "ProcessGuid": process.guid, "ProcessId": process.pid, "PipeName": name, "Image": process.image,
        "User": process.account})
    telemetry.sysmon.append(record)
    telemetry.ecs.append(syn.ecs_from_sysmon(record, process, {
        "event": {"category": ["file"], "type": ["creation" if created else "access"]},
        "file": {"name": name.lstrip("\\")}}))
    defender.setdefault("DeviceEvents", []).append({
        **syn.device_columns(when, "NamedPipeEvent"), **syn.initiating_columns(process, full=True),
        "ReportId": syn.next_report_id(),
        "AdditionalFields": {"PipeName": f"\\Device\\NamedPipe{name}",
                             "FileOperation": "File created" if created else "File opened",
                             "NamedPipeEnd": "Server" if created else "Client"}})


def emit_wmi(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: WmiSubscription, when: dt.datetime,
             instance: int) -> None:
    process = syn.processes[item.process] if item.process else None
    user = process.user if process else syn.user
    account = f"{user.domain}\\{user.name}"
    consumer_class = "CommandLineEventConsumer" if item.consumer_type == "command-line" else "ActiveScriptEventConsumer"
    steps = [
        (19, {"RuleName": "-", "EventType": "WmiFilterEvent", "UtcTime": utc_time(when),
              "Operation": item.operation, "User": account, "EventNamespace": _wmi_quoted(item.namespace),
              "Name": _wmi_quoted(item.name), "Query": _wmi_quoted(item.query)}),
        (20, {"RuleName": "-", "EventType": "WmiConsumerEvent", "UtcTime": utc_time(when),
              "Operation": item.operation, "User": account, "Name": _wmi_quoted(item.name),
              "Type": "Command Line" if item.consumer_type == "command-line" else "Script",
              "Destination": _wmi_quoted(item.destination)}),
        (21, {"RuleName": "-", "EventType": "WmiBindingEvent", "UtcTime": utc_time(when),
              "Operation": item.operation, "User": account,
              "Consumer": _wmi_quoted(f'\\\\.\\ROOT\\subscription:{consumer_class}.Name="{item.name}"'),
              "Filter": _wmi_quoted(f'\\\\.\\ROOT\\subscription:__EventFilter.Name="{item.name}"')}),
    ]
    for offset, (event_id, data) in enumerate(steps):
        moment = when + dt.timedelta(milliseconds=offset * 40)
        data["UtcTime"] = utc_time(moment)
        record = syn.sysmon_event(event_id, moment, data)
        telemetry.sysmon.append(record)
        doc = syn.ecs_base(record, "sysmon", "WmiEventFilter activity detected (rule: WmiEvent)")
        doc["event"] |= {"category": ["configuration"], "type": ["change"]}
        doc["user"] = {"domain": user.domain, "name": user.name}
        telemetry.ecs.append(doc)
    initiator = syn.initiating_columns(process, full=True) if process else {}
    defender.setdefault("DeviceEvents", []).append({
        **syn.device_columns(when + dt.timedelta(milliseconds=80), "WmiBindEventFilterToConsumer"), **initiator,
        "ReportId": syn.next_report_id(),
        "AdditionalFields": {"Namespace": item.namespace, "FilterName": item.name, "Query": item.query,
                             "ConsumerName": item.name, "ConsumerType": consumer_class,
                             ("CommandLineTemplate" if item.consumer_type == "command-line" else "ScriptText"):
                                 item.destination}})


def emit_dns(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: DnsQuery, when: dt.datetime,
             instance: int) -> None:
    process = syn.processes[item.process]
    results = ";".join(f"::ffff:{r}" if re.fullmatch(r"[\d.]+", r) else r for r in item.results)
    record = syn.sysmon_event(22, when, {
        "RuleName": "-", "UtcTime": utc_time(when), "ProcessGuid": process.guid, "ProcessId": process.pid,
        "QueryName": item.query, "QueryStatus": str(item.status), "QueryResults": f"{results};" if results else "-",
        "Image": process.image, "User": process.account})
    telemetry.sysmon.append(record)
    telemetry.ecs.append(syn.ecs_from_sysmon(record, process, {
        "event": {"category": ["network"], "type": ["connection", "protocol", "info"]},
        "dns": {"question": {"name": item.query}, "resolved_ip": [r for r in item.results
                                                                  if re.fullmatch(r"[\d.:a-fA-F]+", r)]},
        "network": {"protocol": "dns"}}))
    defender.setdefault("DeviceEvents", []).append({
        **syn.device_columns(when, "DnsQueryResponse"), **syn.initiating_columns(process, full=True),
        "RemoteUrl": item.query, "ReportId": syn.next_report_id(),
        "AdditionalFields": {"DnsQueryString": item.query, "DnsQueryStatus": item.status,
                             "DnsQueryResult": [{"DnsQueryType": "A", "IpAddress": r} for r in item.results]}})


def emit_file_delete(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: FileDelete,
                     when: dt.datetime, instance: int) -> None:
    process = syn.processes[item.process]
    name = file_name_of(item.path)
    executable = item.is_executable if item.is_executable is not None else \
        name.lower().rsplit(".", 1)[-1] in ("exe", "dll", "sys", "scr", "com")
    hashes = syn.hashes(binary_info(name), item.path)
    data: dict[str, Any] = {
        "RuleName": "-", "UtcTime": utc_time(when), "ProcessGuid": process.guid, "ProcessId": process.pid,
        "User": process.account, "Image": process.image, "TargetFilename": item.path, "Hashes": hashes.sysmon(),
        "IsExecutable": executable}
    if item.archived:
        data["Archived"] = "true"
    record = syn.sysmon_event(23 if item.archived else 26, when, data)
    telemetry.sysmon.append(record)
    telemetry.ecs.append(syn.ecs_from_sysmon(record, process, {
        "event": {"category": ["file"], "type": ["deletion"]},
        "file": {"path": item.path, "name": name, "directory": folder_of(item.path)}}))
    defender.setdefault("DeviceFileEvents", []).append({
        **syn.device_columns(when, "FileDeleted"), "FileName": name, "FolderPath": item.path,
        "SHA1": None, "SHA256": None, "MD5": None, "FileSize": None, "FileOriginUrl": None,
        "PreviousFileName": None, "PreviousFolderPath": None, "RequestAccountName": None,
        **syn.initiating_columns(process), "ReportId": syn.next_report_id(), "AdditionalFields": None})


# --------------------------------------------------------------------------------------------------------------
# PowerShell
# --------------------------------------------------------------------------------------------------------------


def powershell_commands(script: str) -> list[str]:
    """The commands a script runs, as module logging names them: Verb-Noun names and resolved aliases, in order."""
    found: list[tuple[int, str]] = [(m.start(), m.group(1)) for m in _VERB_NOUN.finditer(script)]
    found += [(m.start(1), POWERSHELL_ALIASES[m.group(1).lower()]) for m in _ALIAS.finditer(script)]
    seen: dict[str, None] = {}
    for _, name in sorted(found):
        canonical = "-".join(part[:1].upper() + part[1:] for part in name.split("-", 1))
        seen.setdefault(canonical if name.islower() else name, None)
    return list(seen)


def script_parts(script: str, size: int = POWERSHELL_PART_CHARS) -> list[str]:
    return [script[i:i + size] for i in range(0, len(script), size)] or [""]


def _powershell_record(syn: _Synthesizer, process: ProcessFacts, event_id: int, when: dt.datetime, *, level: int,
                       task: int, opcode: int, data: dict[str, Any]) -> dict[str, Any]:
    return syn.channel_record(channel=POWERSHELL_CHANNEL, provider=POWERSHELL_PROVIDER,
                              provider_guid=POWERSHELL_PROVIDER_GUID, event_id=event_id, version=1, level=level,
                              task=task, opcode=opcode, keywords="0x0", when=when, execution_pid=process.pid,
                              user_sid=process.user.sid, event_data=data,
                              activity_id="{" + str(uuid.UUID(syn.seed.hex(32, "runspace-activity", process.ref)))
                              .upper() + "}")


def emit_powershell(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: PowerShellScript,
                    when: dt.datetime, instance: int) -> None:
    process = syn.processes[item.process]
    block_id = str(uuid.UUID(syn.seed.hex(32, "script-block", item.script, instance))).lower()
    parts = script_parts(item.script)
    for number, text in enumerate(parts, start=1):
        moment = when + dt.timedelta(milliseconds=number - 1)
        record = _powershell_record(syn, process, 4104, moment, level=3 if item.suspicious else 5, task=2,
                                    opcode=15, data={"MessageNumber": number, "MessageTotal": len(parts),
                                                     "ScriptBlockText": text, "ScriptBlockId": block_id,
                                                     "Path": item.path or ""})
        telemetry.windows.append(record)
        doc = syn.ecs_base(record, "powershell", "Execute a Remote Command")
        doc["event"] |= {"category": ["process"], "type": ["info"]}
        doc["winlog"]["task"] = "Execute a Remote Command"
        doc["powershell"] = {"file": {"script_block_id": block_id, "script_block_text": text},
                             "sequence": number, "total": len(parts)}
        doc["user"] = {"id": process.user.sid, "name": process.user.name, "domain": process.user.domain}
        doc["process"] = {"pid": process.pid, "executable": process.image, "name": process.file_name}
        telemetry.ecs.append(doc)
    commands = list(item.commands) if item.commands is not None else powershell_commands(item.script)
    for offset, command in enumerate(commands):
        moment = when + dt.timedelta(milliseconds=20 + offset * 7)
        if item.module_logging:
            context = "".join(f"        {key} = {value}\r\n" for key, value in (
                ("Severity", "Informational"), ("Host Name", "ConsoleHost"), ("Host Version", "5.1.19041.4291"),
                ("Host ID", str(uuid.UUID(syn.seed.hex(32, "host-id", process.ref))).lower()),
                ("Host Application", process.command_line), ("Engine Version", "5.1.19041.4291"),
                ("Runspace ID", str(uuid.UUID(syn.seed.hex(32, "runspace", process.ref))).lower()),
                ("Pipeline ID", 1), ("Command Name", command),
                ("Command Type", "Function" if "-" not in command else "Cmdlet"), ("Script Name", item.path or ""),
                ("Command Path", ""), ("Sequence Number", 15 + offset * 2),
                ("User", process.account), ("Connected User", ""), ("Shell ID", "Microsoft.PowerShell")))
            record = _powershell_record(syn, process, 4103, moment, level=4, task=106, opcode=20, data={
                "ContextInfo": context, "UserData": "",
                "Payload": f'CommandInvocation({command}): "{command}"\r\n'})
            telemetry.windows.append(record)
            doc = syn.ecs_base(record, "powershell", "Executing Pipeline")
            doc["event"] |= {"category": ["process"], "type": ["info"]}
            doc["winlog"]["task"] = "Executing Pipeline"
            doc["powershell"] = {"command": {"name": command}}
            telemetry.ecs.append(doc)
        defender.setdefault("DeviceEvents", []).append({
            **syn.device_columns(moment, "PowerShellCommand"), **syn.initiating_columns(process, full=True),
            "ReportId": syn.next_report_id(), "AdditionalFields": {"Command": command}})


# --------------------------------------------------------------------------------------------------------------
# Microsoft Defender
# --------------------------------------------------------------------------------------------------------------

_AV_SEVERITY_IDS = {"Low": "1", "Moderate": "2", "High": "4", "Severe": "5"}
_AV_ACTIONS = {"quarantined": ("2", "%%887"), "removed": ("3", "%%809"), "blocked": ("10", "%%810"),
               "allowed": ("6", "%%811")}


def emit_antivirus(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: AntivirusDetection,
                   when: dt.datetime, instance: int) -> None:
    process = syn.processes[item.process] if item.process else None
    user = process.user if process else syn.user
    detection_id = "{" + str(uuid.UUID(syn.seed.hex(32, "detection", item.threat, instance))).upper() + "}"
    threat_id = str(syn.seed.number(2_147_600_000, 2_147_799_999, "threat-id", item.threat, scoped=False))
    action_id, action_name = _AV_ACTIONS[item.action]
    base = {
        "Product Name": "%%827", "Product Version": "4.18.24090.11", "Detection ID": detection_id,
        "Detection Time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "Unused": "", "Unused2": "", "Threat ID": threat_id, "Threat Name": item.threat,
        "Severity ID": _AV_SEVERITY_IDS[item.severity], "Severity Name": item.severity,
        "Category ID": "8", "Category Name": item.category,
        "FWLink": f"https://go.microsoft.com/fwlink/?linkid=37020&name={item.threat}&threatid={threat_id}"
                  "&enterprise=0",
        "Status Code": "1", "Status Description": "", "State": "1", "Source ID": "3", "Source Name": "%%818",
        "Process Name": process.image if process else "Unknown",
        "Detection User": f"{user.domain}\\{user.name}", "Unused3": "", "Path": f"file:_{item.path}",
        "Origin ID": "1", "Origin Name": "%%845", "Execution ID": "1", "Execution Name": "%%813",
        "Type ID": "0", "Type Name": "%%822", "Pre Execution Status": "0", "Action ID": "9",
        "Action Name": "%%887", "Unused4": "", "Error Code": "0x00000000",
        "Error Description": "The operation completed successfully. ", "Unused5": "", "Post Clean Status": "0",
        "Additional Actions ID": "0", "Additional Actions String": "No additional actions required",
        "Remediation User": "", "Unused6": "", "Signature Version": "AV: 1.419.163.0, AS: 1.419.163.0, NIS: "
                                                                    "1.419.163.0",
        "Engine Version": "AM: 1.1.24090.11, NIS: 1.1.24090.11"}
    service_pid = syn.seed.pid("msmpeng", syn.host.name)
    records = [(1116, 3, base)]
    if item.action != "allowed":
        records.append((1117, 4, {**base, "Status Code": "103", "State": "2", "Action ID": action_id,
                                  "Action Name": action_name, "Remediation User": "NT AUTHORITY\\SYSTEM"}))
    for offset, (event_id, level, data) in enumerate(records):
        record = syn.channel_record(channel=DEFENDER_AV_CHANNEL, provider=DEFENDER_AV_PROVIDER,
                                    provider_guid=DEFENDER_AV_PROVIDER_GUID, event_id=event_id, version=0,
                                    level=level, task=0, keywords="0x8000000000000000",
                                    when=when + dt.timedelta(milliseconds=offset * 900), execution_pid=service_pid,
                                    user_sid=SYSTEM_USER.sid, event_data=data,
                                    activity_id=None if event_id == 1116 else
                                    "{" + str(uuid.UUID(syn.seed.hex(32, "av-activity", detection_id))).upper() + "}")
        telemetry.windows.append(record)
        doc = syn.ecs_base(record, "windefend", "malware-detected" if event_id == 1116 else "malware-remediated")
        doc["event"] |= {"category": ["malware"], "type": ["info"]}
        doc["threat"] = {"indicator": {"file": {"path": item.path}}}
        telemetry.ecs.append(doc)
    defender.setdefault("DeviceEvents", []).append({
        **syn.device_columns(when, "AntivirusDetection"), "FileName": file_name_of(item.path),
        "FolderPath": item.path, "SHA1": syn.seed.hex(40, "av-sha1", item.path).lower(),
        "SHA256": syn.seed.hex(64, "av-sha256", item.path).lower(),
        **(syn.initiating_columns(process, full=True) if process else {}), "ReportId": syn.next_report_id(),
        "AdditionalFields": {"ThreatName": item.threat, "WasRemediated": item.action != "allowed",
                             "WasExecutingWhileDetected": False, "Action": item.action.title(),
                             "Category": item.category, "Severity": item.severity}})


def emit_device_event(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: DeviceEvent,
                      when: dt.datetime, instance: int) -> None:
    process = syn.processes[item.process] if item.process else None
    defender.setdefault("DeviceEvents", []).append({
        **syn.device_columns(when, item.action_type),
        "FileName": item.file_name or (file_name_of(item.folder_path) if item.folder_path else None),
        "FolderPath": item.folder_path, "ProcessCommandLine": item.process_command_line,
        "RemoteIP": item.remote_ip, "RemotePort": item.remote_port, "RemoteUrl": item.remote_url,
        "RegistryKey": item.registry_key, "RegistryValueName": item.registry_value_name,
        "RegistryValueData": item.registry_value_data, "AccountName": item.account_name,
        "AccountDomain": item.account_domain, "AccountSid": item.account_sid,
        **(syn.initiating_columns(process, full=True) if process else {}),
        "ReportId": syn.next_report_id(), "AdditionalFields": dict(item.additional_fields) or None,
        **({"RemoteIPType": _ip_type(item.remote_ip)} if item.remote_ip else {})})
