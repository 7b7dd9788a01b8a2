"""Synthesis of the process tree and its side effects: Sysmon 1/3/7/11/13, Security 4688, the Defender rows
(DeviceProcessEvents, DeviceNetworkEvents, DeviceImageLoadEvents, DeviceFileEvents, DeviceRegistryEvents) and the
Winlogbeat documents for them. Each function renders one event of a resolved process (:class:`ProcessFacts`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from assay.catalog.models import FileWrite, ImageLoad, NetworkConnection, RegistryWrite
from assay.verify.binaries import BinaryInfo, binary_info
from assay.verify.synth_base import (
    ELEVATION_TYPES,
    MANDATORY_LABELS,
    REGISTRY_TYPES_DEFENDER,
    SECURITY_CHANNEL,
    SECURITY_PROVIDER,
    SECURITY_PROVIDER_GUID,
    SYSTEM_USER,
    Hashes,
    ProcessFacts,
    Telemetry,
    _dash_to_none,
    _ip_type,
    _object_id,
    _Synthesizer,
    _upn,
    _url_host,
    defender_registry_data,
    defender_registry_key,
    file_name_of,
    folder_of,
    split_command_line,
    sysmon_registry_details,
    sysmon_registry_path,
    utc_time,
)


def emit_process(syn: _Synthesizer, telemetry: Telemetry, defender: dict[str, list[dict[str, Any]]],
                 process: ProcessFacts) -> None:
    """A process creation in every schema: Sysmon 1, Security 4688, DeviceProcessEvents and two ECS documents."""
    record = sysmon_process_create(syn, process)
    telemetry.sysmon.append(record)
    telemetry.ecs.append(ecs_sysmon_process(syn, record, process))
    security = security_process_create(syn, process)
    telemetry.security.append(security)
    telemetry.ecs.append(ecs_security_process(syn, security, process))
    defender.setdefault("DeviceProcessEvents", []).append(defender_process(syn, process))


def sysmon_process_create(syn: _Synthesizer, process: ProcessFacts) -> dict[str, Any]:
    parent = process.parent
    assert parent is not None
    return syn.sysmon_event(1, process.start, {
        "RuleName": "-",
        "UtcTime": utc_time(process.start),
        "ProcessGuid": process.guid,
        "ProcessId": process.pid,
        "Image": process.image,
        "FileVersion": process.info.file_version,
        "Description": process.info.description,
        "Product": process.info.product,
        "Company": process.info.company,
        "OriginalFileName": process.info.original_file_name,
        "CommandLine": process.command_line,
        "CurrentDirectory": process.current_directory,
        "User": process.account,
        "LogonGuid": process.logon_guid,
        "LogonId": hex(process.logon_id),
        "TerminalSessionId": process.terminal_session,
        "IntegrityLevel": process.integrity,
        "Hashes": process.hashes.sysmon(),
        "ParentProcessGuid": parent.guid,
        "ParentProcessId": parent.pid,
        "ParentImage": parent.image,
        "ParentCommandLine": parent.command_line,
        "ParentUser": parent.account,
    })


def security_process_create(syn: _Synthesizer, process: ProcessFacts) -> dict[str, Any]:
    parent = process.parent
    assert parent is not None
    # The subject is the creator's token; the target is set only when the new process runs as someone else.
    same_user = parent.user.sid == process.user.sid
    written = process.start + dt.timedelta(microseconds=syn.seed.number(200, 4_000, "4688", process.ref))
    syn.security_record += syn.seed.number(1, 6, "security-step", syn.security_record)
    return syn.evtx_record(
        provider=SECURITY_PROVIDER, provider_guid=SECURITY_PROVIDER_GUID, event_id=4688, version=2, level=0,
        task=13312, keywords="0x8020000000000000", when=written, record_id=syn.security_record,
        channel=SECURITY_CHANNEL, execution_pid=4, security=None, event_data={
            "SubjectUserSid": parent.user.sid,
            "SubjectUserName": parent.user.name if parent.user.sid != SYSTEM_USER.sid else
            f"{syn.host.name.upper()}$",
            "SubjectDomainName": parent.user.domain if parent.user.sid != SYSTEM_USER.sid else
            (syn.activity.host.domain or "WORKGROUP").split(".")[0].upper(),
            "SubjectLogonId": hex(parent.logon_id),
            "NewProcessId": hex(process.pid),
            "NewProcessName": process.image,
            "TokenElevationType": ELEVATION_TYPES[process.elevation][0],
            "ProcessId": hex(parent.pid),
            "CommandLine": process.command_line,
            "TargetUserSid": "S-1-0-0" if same_user else process.user.sid,
            "TargetUserName": "-" if same_user else process.user.name,
            "TargetDomainName": "-" if same_user else process.user.domain,
            "TargetLogonId": "0x0" if same_user else hex(process.logon_id),
            "ParentProcessName": parent.image,
            "MandatoryLabel": MANDATORY_LABELS[process.integrity],
        })


def sysmon_network(syn: _Synthesizer, process: ProcessFacts, connection: NetworkConnection, when: dt.datetime,
                   local_port: int) -> dict[str, Any]:
    destination_host = _url_host(connection.remote_url) or "-"
    return syn.sysmon_event(3, when, {
        "RuleName": "-",
        "UtcTime": utc_time(when),
        "ProcessGuid": process.guid,
        "ProcessId": process.pid,
        "Image": process.image,
        "User": process.account,
        "Protocol": connection.protocol,
        "Initiated": True,
        "SourceIsIpv6": False,
        "SourceIp": connection.local_ip or syn.host.ip,
        "SourceHostname": syn.host.computer,
        "SourcePort": local_port,
        "SourcePortName": "-",
        "DestinationIsIpv6": ":" in connection.remote_ip,
        "DestinationIp": connection.remote_ip,
        "DestinationHostname": destination_host,
        "DestinationPort": connection.remote_port,
        "DestinationPortName": {80: "http", 443: "https", 445: "microsoft-ds", 53: "domain"}.get(
            connection.remote_port, "-"),
    })


def sysmon_image_load(syn: _Synthesizer, process: ProcessFacts, module: ImageLoad, when: dt.datetime,
                      info: BinaryInfo, hashes: Hashes) -> dict[str, Any]:
    return syn.sysmon_event(7, when, {
        "RuleName": "-",
        "UtcTime": utc_time(when),
        "ProcessGuid": process.guid,
        "ProcessId": process.pid,
        "Image": process.image,
        "ImageLoaded": module.path,
        "FileVersion": info.file_version,
        "Description": info.description,
        "Product": info.product,
        "Company": info.company,
        "OriginalFileName": info.original_file_name,
        "Hashes": hashes.sysmon(),
        "Signed": "true" if module.signed else "false",
        "Signature": module.signature or (info.signer if module.signed else "-"),
        "SignatureStatus": "Valid" if module.signed else "Unavailable",
        "User": process.account,
    })


def sysmon_file_create(syn: _Synthesizer, process: ProcessFacts, file: FileWrite, when: dt.datetime) -> dict[str, Any]:
    return syn.sysmon_event(11, when, {
        "RuleName": "-",
        "UtcTime": utc_time(when),
        "ProcessGuid": process.guid,
        "ProcessId": process.pid,
        "Image": process.image,
        "TargetFilename": file.path,
        "CreationUtcTime": utc_time(when),
        "User": process.account,
    })


def sysmon_registry_set(syn: _Synthesizer, process: ProcessFacts, write: RegistryWrite, when: dt.datetime) -> dict[str, Any]:
    return syn.sysmon_event(13, when, {
        "RuleName": "-",
        "EventType": "SetValue",
        "UtcTime": utc_time(when),
        "ProcessGuid": process.guid,
        "ProcessId": process.pid,
        "Image": process.image,
        "TargetObject": sysmon_registry_path(write.key, process.user.sid) + "\\" + write.value_name,
        "Details": sysmon_registry_details(write.type, write.data),
        "User": process.account,
    })


def defender_process(syn: _Synthesizer, process: ProcessFacts) -> dict[str, Any]:
    parent = process.parent
    assert parent is not None
    return {
        **syn.device_columns(process.start, "ProcessCreated"),
        "FileName": process.file_name,
        "FolderPath": process.image,
        "SHA1": process.hashes.sha1.lower(),
        "SHA256": process.hashes.sha256.lower(),
        "MD5": process.hashes.md5.lower(),
        "FileSize": process.info.size,
        "ProcessVersionInfoCompanyName": _dash_to_none(process.info.company),
        "ProcessVersionInfoProductName": _dash_to_none(process.info.product),
        "ProcessVersionInfoProductVersion": _dash_to_none(process.info.product_version),
        "ProcessVersionInfoInternalFileName": _dash_to_none(process.info.original_file_name.split(".")[0]),
        "ProcessVersionInfoOriginalFileName": _dash_to_none(process.info.original_file_name),
        "ProcessVersionInfoFileDescription": _dash_to_none(process.info.description),
        "ProcessId": process.pid,
        "ProcessCommandLine": process.command_line,
        "ProcessIntegrityLevel": process.integrity,
        "ProcessTokenElevation": ELEVATION_TYPES[process.elevation][1],
        "ProcessCreationTime": process.start,
        "ProcessCurrentWorkingDirectory": process.current_directory,
        "AccountDomain": process.user.domain.lower(),
        "AccountName": process.user.name.lower(),
        "AccountSid": process.user.sid,
        "AccountUpn": _upn(process.user),
        "AccountObjectId": _object_id(syn.seed, process.user),
        "LogonId": process.logon_id,
        **syn.initiating_columns(parent, full=True),
        "ReportId": syn.next_report_id(),
        "AdditionalFields": None,
    }


def ecs_sysmon_process(syn: _Synthesizer, record: dict[str, Any], process: ProcessFacts) -> dict[str, Any]:
    parent = process.parent
    assert parent is not None
    hashes = {"md5": process.hashes.md5.lower(), "sha256": process.hashes.sha256.lower()}
    pe = {"original_file_name": process.info.original_file_name, "description": process.info.description,
          "product": process.info.product, "company": process.info.company,
          "file_version": process.info.file_version, "imphash": process.hashes.imphash.lower()}
    doc = syn.ecs_from_sysmon(record, process, {
        "event": {"category": ["process"], "type": ["start"]},
        "process": {"command_line": process.command_line, "args": split_command_line(process.command_line),
                    "args_count": len(split_command_line(process.command_line)),
                    "working_directory": process.current_directory.rstrip("\\"), "pe": pe, "hash": hashes,
                    "parent": {**syn.ecs_process_fields(parent), "command_line": parent.command_line,
                               "args": split_command_line(parent.command_line)}},
        "hash": hashes,
    })
    doc["related"]["hash"] = [*hashes.values(), process.hashes.imphash.lower()]
    return doc


def ecs_security_process(syn: _Synthesizer, record: dict[str, Any], process: ProcessFacts) -> dict[str, Any]:
    parent = process.parent
    assert parent is not None
    doc = syn.ecs_base(record, "security", "created-process")
    data = record["Event"]["EventData"]
    doc["event"] |= {"category": ["process"], "type": ["start"], "outcome": "success"}
    doc["winlog"]["event_data"]["TokenElevationTypeDescription"] = ELEVATION_TYPES[process.elevation][2]
    doc["winlog"]["logon"] = {"id": data["SubjectLogonId"]}
    doc["user"] = {"id": data["SubjectUserSid"], "name": data["SubjectUserName"],
                   "domain": data["SubjectDomainName"]}
    doc["related"] = {"user": [data["SubjectUserName"]]}
    doc["process"] = {"pid": process.pid, "executable": process.image, "name": process.file_name,
                      "command_line": process.command_line, "args": split_command_line(process.command_line),
                      "args_count": len(split_command_line(process.command_line)),
                      "parent": {"pid": parent.pid, "executable": parent.image, "name": parent.file_name}}
    doc["message"] = ("A new process has been created.\n\nCreator Subject:\n\tSecurity ID:\t\t"
                      f"{data['SubjectUserSid']}\n\tAccount Name:\t\t{data['SubjectUserName']}\n\t"
                      f"Account Domain:\t\t{data['SubjectDomainName']}\n\tLogon ID:\t\t{data['SubjectLogonId']}"
                      f"\n\nProcess Information:\n\tNew Process ID:\t\t{data['NewProcessId']}\n\t"
                      f"New Process Name:\t{data['NewProcessName']}\n\tToken Elevation Type:\t"
                      f"{data['TokenElevationType']}\n\tMandatory Label:\t\t{data['MandatoryLabel']}\n\t"
                      f"Creator Process ID:\t{data['ProcessId']}\n\tCreator Process Name:\t"
                      f"{data['ParentProcessName']}\n\tProcess Command Line:\t{data['CommandLine']}")
    return doc


def emit_file(syn: _Synthesizer, telemetry: Telemetry, defender: dict[str, list[dict[str, Any]]], file: FileWrite,
              when: dt.datetime) -> None:
    process = syn.processes[file.process]
    record = sysmon_file_create(syn, process, file, when)
    telemetry.sysmon.append(record)
    name = file_name_of(file.path)
    telemetry.ecs.append(syn.ecs_from_sysmon(record, process, {
        "event": {"category": ["file"], "type": ["creation"]},
        "file": {"path": file.path, "name": name, "directory": folder_of(file.path),
                 "extension": name.rsplit(".", 1)[-1].lower() if "." in name else ""},
    }))
    sha256 = (file.sha256 or syn.seed.hex(64, "file-sha256", file.path)).lower()
    defender["DeviceFileEvents"].append({
        **syn.device_columns(when, "FileCreated"),
        "FileName": name,
        "FolderPath": file.path,
        "SHA1": syn.seed.hex(40, "file-sha1", file.path).lower(),
        "SHA256": sha256,
        "MD5": syn.seed.hex(32, "file-md5", file.path).lower(),
        "FileSize": len(file.content.encode("utf-8")) if file.content else syn.seed.number(300, 9_000,
                                                                                            "size", file.path),
        "FileOriginUrl": None,
        "PreviousFileName": None,
        "PreviousFolderPath": None,
        "RequestAccountName": None,
        **syn.initiating_columns(process),
        "ReportId": syn.next_report_id(),
        "AdditionalFields": None,
    })


def emit_registry(syn: _Synthesizer, telemetry: Telemetry, defender: dict[str, list[dict[str, Any]]],
                  write: RegistryWrite, when: dt.datetime) -> None:
    process = syn.processes[write.process]
    record = sysmon_registry_set(syn, process, write, when)
    telemetry.sysmon.append(record)
    key = defender_registry_key(write.key, process.user.sid)
    telemetry.ecs.append(syn.ecs_from_sysmon(record, process, {
        "event": {"category": ["configuration", "registry"], "type": ["change"]},
        "registry": {"path": record["Event"]["EventData"]["TargetObject"], "hive": key.split("\\", 1)[0],
                     "key": key.split("\\", 1)[-1], "value": write.value_name,
                     "data": {"strings": [record["Event"]["EventData"]["Details"]],
                              "type": {"REG_DWORD": "SZ_DWORD", "REG_QWORD": "SZ_QWORD",
                                       "REG_BINARY": "SZ_BINARY"}.get(write.type, "SZ_SZ")}},
    }))
    defender["DeviceRegistryEvents"].append({
        **syn.device_columns(when, "RegistryValueSet"),
        "RegistryKey": key,
        "RegistryValueType": REGISTRY_TYPES_DEFENDER[write.type],
        "RegistryValueName": write.value_name,
        "RegistryValueData": defender_registry_data(write.type, write.data),
        "PreviousRegistryKey": None,
        "PreviousRegistryValueName": None,
        "PreviousRegistryValueData": None,
        **syn.initiating_columns(process),
        "ReportId": syn.next_report_id(),
        "AdditionalFields": None,
    })


def emit_network(syn: _Synthesizer, telemetry: Telemetry, defender: dict[str, list[dict[str, Any]]],
                 connection: NetworkConnection, when: dt.datetime, position: int) -> None:
    process = syn.processes[connection.process]
    local_port = connection.local_port or syn.seed.number(49_152, 65_535, "port", position)
    record = sysmon_network(syn, process, connection, when, local_port)
    telemetry.sysmon.append(record)
    local_ip = connection.local_ip or syn.host.ip
    telemetry.ecs.append(syn.ecs_from_sysmon(record, process, {
        "event": {"category": ["network"], "type": ["connection", "start", "protocol"]},
        "source": {"ip": local_ip, "port": local_port, "domain": syn.host.computer},
        "destination": {"ip": connection.remote_ip, "port": connection.remote_port,
                        **({"domain": _url_host(connection.remote_url)} if connection.remote_url else {})},
        "network": {"transport": connection.protocol, "direction": "egress",
                    "type": "ipv6" if ":" in connection.remote_ip else "ipv4"},
    }))
    defender["DeviceNetworkEvents"].append({
        **syn.device_columns(when, "ConnectionSuccess"),
        "RemoteIP": connection.remote_ip,
        "RemotePort": connection.remote_port,
        "RemoteUrl": _url_host(connection.remote_url) if connection.remote_url else None,
        "LocalIP": local_ip,
        "LocalPort": local_port,
        "Protocol": "Tcp" if connection.protocol == "tcp" else "Udp",
        "LocalIPType": _ip_type(local_ip),
        "RemoteIPType": _ip_type(connection.remote_ip),
        **syn.initiating_columns(process),
        "ReportId": syn.next_report_id(),
        "AdditionalFields": None,
    })


def emit_module(syn: _Synthesizer, telemetry: Telemetry, defender: dict[str, list[dict[str, Any]]], module: ImageLoad,
                when: dt.datetime) -> None:
    process = syn.processes[module.process]
    info = binary_info(file_name_of(module.path))
    hashes = syn.hashes(info, module.path)
    record = sysmon_image_load(syn, process, module, when, info, hashes)
    telemetry.sysmon.append(record)
    telemetry.ecs.append(syn.ecs_from_sysmon(record, process, {
        "event": {"category": ["process"], "type": ["change"]},
        "dll": {"path": module.path, "name": file_name_of(module.path),
                "hash": {"md5": hashes.md5.lower(), "sha256": hashes.sha256.lower()},
                "code_signature": {"signed": module.signed, "valid": module.signed,
                                   **({"subject_name": record["Event"]["EventData"]["Signature"]}
                                      if module.signed else {})},
                "pe": {"original_file_name": info.original_file_name, "description": info.description,
                       "product": info.product, "company": info.company, "file_version": info.file_version,
                       "imphash": hashes.imphash.lower()}},
    }))
    defender["DeviceImageLoadEvents"].append({
        **syn.device_columns(when, "ImageLoaded"),
        "FileName": file_name_of(module.path),
        "FolderPath": module.path,
        "SHA1": hashes.sha1.lower(),
        "SHA256": hashes.sha256.lower(),
        "MD5": hashes.md5.lower(),
        "FileSize": info.size,
        **syn.initiating_columns(process),
        "ReportId": syn.next_report_id(),
        "AdditionalFields": None,
    })
