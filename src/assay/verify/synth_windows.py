"""Synthesis of the Windows identity and configuration events: Security, System and Task Scheduler channels.

Logons (4624/4625/4634/4648/4672), Kerberos (4768/4769/4771), directory access (4662), account and group changes
(47xx), share access (5140/5145), log clearing (1102, System 104), services (System 7045, Security 4697) and
scheduled tasks (4698/4702, TaskScheduler 106/140/200) in the JSON the ``evtx`` package prints for real records
(field order, value types, message-id strings such as ``%%1842``), with the Defender XDR rows and Winlogbeat ECS
documents the same facts give (DeviceLogonEvents, DeviceEvents ServiceInstalled / ScheduledTaskCreated…).
Each function renders one occurrence of a scenario event at a given time.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from xml.sax.saxutils import escape

from assay.catalog.models import (
    REPLICATION_GUIDS,
    AccountChange,
    DirectoryAccess,
    ExplicitCredentials,
    KerberosEvent,
    LogClear,
    Logon,
    ScheduledTask,
    ServiceInstall,
    ShareAccess,
    User,
)
from assay.verify.synth_base import (
    SECURITY_CHANNEL,
    SECURITY_PROVIDER,
    SECURITY_PROVIDER_GUID,
    SYSTEM_LOGON_ID,
    SYSTEM_USER,
    ProcessFacts,
    Telemetry,
    _ip_type,
    _object_id,
    _Synthesizer,
    _upn,
    file_name_of,
)

Defender = dict[str, list[dict[str, Any]]]

SUCCESS_KEYWORDS = "0x8020000000000000"
FAILURE_KEYWORDS = "0x8010000000000000"
EVENTLOG_PROVIDER = "Microsoft-Windows-Eventlog"
EVENTLOG_PROVIDER_GUID = "{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}"
SCM_PROVIDER = "Service Control Manager"
SCM_PROVIDER_GUID = "{555908d1-a6d7-4695-8e1e-26931d2012f4}"
TASK_CHANNEL = "Microsoft-Windows-TaskScheduler/Operational"
TASK_PROVIDER = "Microsoft-Windows-TaskScheduler"
TASK_PROVIDER_GUID = "{de7b24ea-73c8-4a09-985d-5bdadcfa9017}"
SYSTEM_CHANNEL = "System"

#: Logon type number -> Defender's LogonType name and the default LogonProcessName (Windows pads some names).
LOGON_TYPE_FACTS: dict[int, tuple[str, str]] = {
    2: ("Interactive", "User32 "), 3: ("Network", "NtLmSsp "), 4: ("Batch", "Advapi  "), 5: ("Service", "Advapi  "),
    7: ("Unlock", "User32 "), 8: ("NetworkCleartext", "Advapi  "), 9: ("NewCredentials", "seclogo"),
    10: ("RemoteInteractive", "User32 "), 11: ("CachedInteractive", "User32 "),
    12: ("CachedRemoteInteractive", "User32 "), 13: ("CachedUnlock", "User32 "),
}
#: failure -> (Status, SubStatus, FailureReason message id, Defender FailureReason).
LOGON_FAILURES: dict[str, tuple[str, str, str, str]] = {
    "bad-password": ("0xc000006d", "0xc000006a", "%%2313", "InvalidUserNameOrPassword"),
    "unknown-user": ("0xc000006d", "0xc0000064", "%%2313", "InvalidUserNameOrPassword"),
    "locked-out": ("0xc0000234", "0x0", "%%2307", "AccountLocked"),
    "disabled": ("0xc000006e", "0xc0000072", "%%2310", "AccountDisabled"),
    "expired-password": ("0xc000006e", "0xc0000071", "%%2309", "PasswordExpired"),
    "logon-type-not-granted": ("0xc000015b", "0x0", "%%2308", "LogonTypeNotGranted"),
}
ADMIN_PRIVILEGES = ("SeSecurityPrivilege", "SeBackupPrivilege", "SeRestorePrivilege", "SeTakeOwnershipPrivilege",
                    "SeDebugPrivilege", "SeSystemEnvironmentPrivilege", "SeLoadDriverPrivilege",
                    "SeImpersonatePrivilege", "SeDelegateSessionUserImpersonatePrivilege")
ENCRYPTION_TYPES = {"des": "0x3", "aes128": "0x11", "aes256": "0x12", "rc4": "0x17", "rc4-exp": "0x18"}
#: The Kerberos encryption types by their .NET names (Defender for Identity's AdditionalFields.EncryptionType).
IDENTITY_ENCRYPTION_NAMES = {"des": "DesCbcMd5", "aes128": "Aes128CtsHmacSha196", "aes256": "Aes256CtsHmacSha196",
                             "rc4": "Rc4Hmac", "rc4-exp": "Rc4HmacExp"}
#: Account action -> (event id, task).
ACCOUNT_EVENTS: dict[str, int] = {
    "created": 4720, "enabled": 4722, "password-changed": 4723, "password-reset": 4724, "disabled": 4725,
    "deleted": 4726, "changed": 4738,
}
GROUP_EVENTS: dict[tuple[str, str], int] = {
    ("added-to-group", "global"): 4728, ("removed-from-group", "global"): 4729,
    ("added-to-group", "local"): 4732, ("removed-from-group", "local"): 4733,
    ("added-to-group", "universal"): 4756, ("removed-from-group", "universal"): 4757,
}
#: Well-known groups: name (lower case) -> (SID or domain-relative RID, domain name shown).
WELL_KNOWN_GROUPS: dict[str, tuple[str, str | None]] = {
    "administrators": ("S-1-5-32-544", "Builtin"), "users": ("S-1-5-32-545", "Builtin"),
    "guests": ("S-1-5-32-546", "Builtin"), "backup operators": ("S-1-5-32-551", "Builtin"),
    "remote desktop users": ("S-1-5-32-555", "Builtin"), "remote management users": ("S-1-5-32-580", "Builtin"),
    "domain admins": ("-512", None), "domain users": ("-513", None), "schema admins": ("-518", None),
    "enterprise admins": ("-519", None), "group policy creator owners": ("-520", None),
    "account operators": ("S-1-5-32-548", "Builtin"), "server operators": ("S-1-5-32-549", "Builtin"),
    "dnsadmins": ("-1101", None),
}
SERVICE_TYPE_CODES = {"kernel mode driver": "0x1", "file system driver": "0x2", "user own process": "0x10",
                      "user mode service": "0x10"}
SERVICE_START_TEXT = {"boot": ("boot start", "0"), "system": ("system start", "1"), "auto": ("auto start", "2"),
                      "demand": ("demand start", "3"), "disabled": ("disabled", "4")}
SHARE_ACCESS_LISTS = {"0x1": "%%4416\r\n\t\t\t\t", "0x2": "%%4417\r\n\t\t\t\t",
                      "0x3": "%%4416\r\n\t\t\t\t%%4417\r\n\t\t\t\t",
                      "0x83": "%%4416\r\n\t\t\t\t%%4417\r\n\t\t\t\t%%4423\r\n\t\t\t\t",
                      "0x12019f": "%%1538\r\n\t\t\t\t%%1541\r\n\t\t\t\t%%4416\r\n\t\t\t\t%%4417\r\n\t\t\t\t"
                                  "%%4418\r\n\t\t\t\t%%4419\r\n\t\t\t\t%%4420\r\n\t\t\t\t%%4423\r\n\t\t\t\t"
                                  "%%4424\r\n\t\t\t\t"}
DIRECTORY_ACCESS_LISTS = {"0x100": "%%7688", "0x10": "%%7684", "0x20": "%%7685", "0x40000": "%%1539",
                          "0x20000": "%%1538"}


# --------------------------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------------------------


def netbios_domain(syn: _Synthesizer) -> str:
    return (syn.activity.host.domain or "WORKGROUP").split(".")[0].upper()


def dns_domain(syn: _Synthesizer, user: User) -> str:
    """The Kerberos realm: the host's DNS domain, upper case (CORP.CONTOSO.COM), else the user's domain."""
    domain = syn.activity.host.domain
    return (domain if domain and "." in domain else user.domain).upper()


def logon_id_of(syn: _Synthesizer, user: User) -> int:
    return syn.session(user, "Medium", False)[0]


def subject(syn: _Synthesizer, user: User) -> dict[str, Any]:
    """Subject* fields for a user; SYSTEM appears as the machine account (HOST$), as the Security log writes it."""
    if user.sid == SYSTEM_USER.sid:
        return {"SubjectUserSid": SYSTEM_USER.sid, "SubjectUserName": f"{syn.host.name.upper()}$",
                "SubjectDomainName": netbios_domain(syn), "SubjectLogonId": hex(SYSTEM_LOGON_ID)}
    return {"SubjectUserSid": user.sid, "SubjectUserName": user.name, "SubjectDomainName": user.domain,
            "SubjectLogonId": hex(logon_id_of(syn, user))}


def actor(syn: _Synthesizer, user: User | None, process: str | None) -> tuple[User, ProcessFacts | None]:
    """Who did it: the given user, else the process's user, else the activity's user; and the process."""
    facts = syn.processes[process] if process else None
    return user or (facts.user if facts else syn.user), facts


def security_event(syn: _Synthesizer, event_id: int, when: dt.datetime, data: dict[str, Any], *, task: int,
                   version: int = 0, keywords: str = SUCCESS_KEYWORDS, execution_pid: int | None = None,
                   correlated: bool = False) -> dict[str, Any]:
    """A Security-Auditing record; ``correlated``: with the logon activity id local logons and SAM changes carry."""
    return syn.channel_record(channel=SECURITY_CHANNEL, provider=SECURITY_PROVIDER,
                              provider_guid=SECURITY_PROVIDER_GUID, event_id=event_id, version=version, level=0,
                              task=task, keywords=keywords, when=when,
                              execution_pid=syn.lsass_pid if execution_pid is None else execution_pid,
                              user_sid=None, event_data=data,
                              activity_id=activity_id(syn, "lsass") if correlated else None)


def activity_id(syn: _Synthesizer, *parts: object) -> str:
    """An ETW activity id (System/Correlation), stable per host and purpose."""
    return "{" + str(uuid.UUID(syn.seed.hex(32, "activity", syn.host.name, *parts, scoped=False))).upper() + "}"


def guid_text(syn: _Synthesizer, *parts: object) -> str:
    return str(uuid.UUID(syn.seed.hex(32, "guid", *parts))).upper()


def ecs_security(syn: _Synthesizer, record: dict[str, Any], action: str, category: list[str], types: list[str],
                 outcome: str, extra: dict[str, Any]) -> dict[str, Any]:
    """A Winlogbeat document for a Security/System/Task Scheduler record (winlog.event_data is the EventData)."""
    channel = record["Event"]["System"]["Channel"]
    module = {"Security": "security", "System": "system"}.get(channel, "windows")
    doc = syn.ecs_base(record, module, action)
    doc["event"] |= {"category": category, "type": types, "outcome": outcome}
    doc["winlog"]["task"] = action
    data = record["Event"].get("EventData") or {}
    if "SubjectUserName" in data and data.get("SubjectUserName") not in ("-", None):
        doc["user"] = {"id": data.get("SubjectUserSid"), "name": data["SubjectUserName"],
                       "domain": data.get("SubjectDomainName")}
        doc["related"] = {"user": [data["SubjectUserName"]]}
        if data.get("SubjectLogonId"):
            doc["winlog"]["logon"] = {"id": data["SubjectLogonId"]}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


def _default_ip(syn: _Synthesizer, *parts: object) -> str:
    return f"10.{syn.seed.number(1, 254, 'peer-net', *parts)}.{syn.seed.number(1, 254, 'peer-subnet', *parts)}." \
           f"{syn.seed.number(10, 250, 'peer-ip', *parts)}"


def _defender_account(user: User) -> dict[str, Any]:
    return {"AccountDomain": user.domain.lower(), "AccountName": user.name.lower(), "AccountSid": user.sid}


def _system_initiator(syn: _Synthesizer, image: str, when: dt.datetime) -> dict[str, Any]:
    """Initiating-process columns for a system process outside the scenario (lsass.exe, services.exe…)."""
    name = file_name_of(image)
    pid = syn.lsass_pid if name.lower() == "lsass.exe" else syn.seed.pid("system-process", name.lower())
    return {
        "InitiatingProcessAccountDomain": "nt authority", "InitiatingProcessAccountName": "system",
        "InitiatingProcessAccountSid": SYSTEM_USER.sid, "InitiatingProcessFileName": name,
        "InitiatingProcessFolderPath": image.lower(), "InitiatingProcessId": pid,
        "InitiatingProcessCommandLine": name, "InitiatingProcessIntegrityLevel": "System",
        "InitiatingProcessTokenElevation": "TokenElevationTypeDefault",
        "InitiatingProcessCreationTime": when - dt.timedelta(seconds=syn.seed.number(40_000, 400_000, "boot",
                                                                                       syn.host.name,
                                                                                       scoped=False)),
        "InitiatingProcessParentFileName": "wininit.exe",
    }


def _initiator(syn: _Synthesizer, process: ProcessFacts | None, fallback_image: str, when: dt.datetime
               ) -> dict[str, Any]:
    return syn.initiating_columns(process, full=True) if process else _system_initiator(syn, fallback_image, when)


# --------------------------------------------------------------------------------------------------------------
# Logons
# --------------------------------------------------------------------------------------------------------------


def emit_logon(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, logon: Logon, when: dt.datetime,
               instance: int) -> None:
    user = logon.user or syn.user
    logon_type = logon.logon_type
    type_name, default_process_name = LOGON_TYPE_FACTS.get(logon_type, (str(logon_type), "-"))
    remote = logon_type in (3, 8, 10, 12)
    source_ip = logon.source_ip or (_default_ip(syn, "logon-source", user.sid) if remote else "127.0.0.1"
                                    if logon_type in (2, 7, 11) else "-")
    package = logon.auth_package or ("NTLM" if remote and logon_type == 3 else "Negotiate")
    if logon.logon_process is not None:
        logon_process = logon.logon_process
    elif logon_type == 3:
        logon_process = "Kerberos" if package == "Kerberos" else "NtLmSsp "
    else:
        logon_process = default_process_name
    process = syn.processes[logon.process] if logon.process else None
    if process is None and logon_type in (2, 7, 10, 11):
        process_pid, process_name = syn.seed.pid("winlogon", syn.host.name), "C:\\Windows\\System32\\winlogon.exe"
    elif process is None and logon_type in (4, 5, 9):
        process_pid, process_name = syn.seed.pid("services", syn.host.name), (
            "C:\\Windows\\System32\\svchost.exe" if logon_type == 9 else "C:\\Windows\\System32\\services.exe")
    elif process is None:
        process_pid, process_name = 0, "-"
    else:
        process_pid, process_name = process.pid, process.image
    # A local logon is requested by the machine (SYSTEM) or, for seclogo / an explicit process, that process's user.
    if logon_type == 3 or process_name == "-":
        subject_fields = {"SubjectUserSid": "S-1-0-0", "SubjectUserName": "-", "SubjectDomainName": "-",
                          "SubjectLogonId": "0x0"}
    else:
        subject_fields = subject(syn, process.user if process else (user if logon_type == 9 else SYSTEM_USER))
    source_port = logon.source_port if logon.source_port is not None else (
        syn.seed.number(49_152, 65_535, "logon-port", instance, when) if remote else 0)
    workstation = logon.source_workstation or (syn.host.name.upper() if not remote else "-")
    ntlm = package == "NTLM"
    key_length = logon.key_length if logon.key_length is not None else (128 if ntlm else 0)
    lm_package = logon.lm_package or ("NTLM V2" if ntlm else "-")
    logon_id = session_logon_id(syn, logon, when, instance)
    elevated = logon.elevated if logon.elevated is not None else logon.admin
    failed = logon.outcome == "failure"
    if not failed:
        data: dict[str, Any] = {
            **subject_fields,
            "TargetUserSid": user.sid, "TargetUserName": user.name, "TargetDomainName": user.domain,
            "TargetLogonId": hex(logon_id), "LogonType": logon_type, "LogonProcessName": logon_process,
            "AuthenticationPackageName": package, "WorkstationName": workstation,
            "LogonGuid": guid_text(syn, "logon-guid", logon_id) if package == "Kerberos" else
            "00000000-0000-0000-0000-000000000000",
            "TransmittedServices": "-", "LmPackageName": lm_package, "KeyLength": key_length,
            "ProcessId": hex(process_pid), "ProcessName": process_name, "IpAddress": source_ip,
            "IpPort": str(source_port) if source_ip != "-" else "-",
            "ImpersonationLevel": "%%1833", "RestrictedAdminMode": "%%1843" if logon_type == 10 else "-",
            "TargetOutboundUserName": logon.outbound_user or "-",
            "TargetOutboundDomainName": logon.outbound_domain or "-",
            "VirtualAccount": "%%1843",
            "TargetLinkedLogonId": hex(logon_id + 1) if elevated and logon_type in (2, 10, 11) else "0x0",
            "ElevatedToken": "%%1842" if elevated else "%%1843",
        }
        record = security_event(syn, 4624, when, data, task=12544, version=2, correlated=not remote)
    else:
        status, sub_status, reason, _ = LOGON_FAILURES[logon.failure or "bad-password"]
        data = {
            **subject_fields,
            "TargetUserSid": "S-1-0-0", "TargetUserName": user.name, "TargetDomainName": user.domain,
            "Status": status, "FailureReason": reason, "SubStatus": sub_status, "LogonType": logon_type,
            "LogonProcessName": logon_process, "AuthenticationPackageName": package, "WorkstationName": workstation,
            "TransmittedServices": "-", "LmPackageName": "-", "KeyLength": 0, "ProcessId": hex(process_pid),
            "ProcessName": process_name, "IpAddress": source_ip,
            "IpPort": str(source_port) if source_ip != "-" else "-",
        }
        record = security_event(syn, 4625, when, data, task=12544, keywords=FAILURE_KEYWORDS,
                                correlated=not remote)
    telemetry.security.append(record)
    telemetry.ecs.append(ecs_security(
        syn, record, "logon-failed" if failed else "logged-in", ["authentication"], ["start"],
        "failure" if failed else "success", {
            "user": {"id": user.sid if not failed else None, "name": user.name, "domain": user.domain},
            "related": {"user": [user.name], **({"ip": [source_ip]} if source_ip not in ("-",) else {})},
            "winlog": {"logon": {"type": type_name, "id": hex(logon_id) if not failed else None,
                                 **({"failure": {"status": data["Status"], "sub_status": data["SubStatus"]}}
                                    if failed else {})}},
            **({"source": {"ip": source_ip, "port": source_port, "domain": workstation}}
               if source_ip not in ("-",) else {}),
        }))
    initiator = _initiator(syn, process, "C:\\Windows\\System32\\lsass.exe", when)
    defender.setdefault("DeviceLogonEvents", []).append({
        **syn.device_columns(when, "LogonFailed" if failed else "LogonSuccess"),
        "LogonType": type_name,
        **_defender_account(user),
        "Protocol": package,
        "FailureReason": LOGON_FAILURES[logon.failure or "bad-password"][3] if failed else None,
        "IsLocalAdmin": logon.admin,
        "LogonId": None if failed else logon_id,
        "RemoteDeviceName": logon.source_workstation if remote else None,
        "RemoteIP": source_ip if source_ip not in ("-",) else None,
        "RemoteIPType": _ip_type(source_ip) if source_ip not in ("-",) else None,
        "RemotePort": source_port if remote else None,
        **initiator,
        "ReportId": syn.next_report_id(),
        "AdditionalFields": {"IsLocalLogon": not remote},
    })
    if failed:
        return
    if logon.admin:
        privileges = "\r\n\t\t\t".join(ADMIN_PRIVILEGES)
        special = security_event(syn, 4672, when, {
            "SubjectUserSid": user.sid, "SubjectUserName": user.name, "SubjectDomainName": user.domain,
            "SubjectLogonId": hex(logon_id), "PrivilegeList": privileges}, task=12548, correlated=not remote)
        telemetry.security.append(special)
        telemetry.ecs.append(ecs_security(syn, special, "logged-in-special", ["iam"], ["admin"], "success", {}))


def session_logon_id(syn: _Synthesizer, logon: Logon, when: dt.datetime, instance: int) -> int:
    user = logon.user or syn.user
    return logon.logon_id or syn.seed.number(0x100000, 0x9FFFFFF, "logon-session", user.sid, instance, when)


def emit_logoff(syn: _Synthesizer, telemetry: Telemetry, logon: Logon, logged_on: dt.datetime, when: dt.datetime,
                instance: int) -> None:
    """The 4634 that ends a successful logon's session (``logoff_after_seconds``)."""
    user = logon.user or syn.user
    record = security_event(syn, 4634, when, {
        "TargetUserSid": user.sid, "TargetUserName": user.name, "TargetDomainName": user.domain,
        "TargetLogonId": hex(session_logon_id(syn, logon, logged_on, instance)), "LogonType": logon.logon_type},
        task=12545)
    telemetry.security.append(record)
    telemetry.ecs.append(ecs_security(syn, record, "logged-out", ["authentication"], ["end"], "success",
                                      {"user": {"id": user.sid, "name": user.name, "domain": user.domain}}))


def emit_explicit_credentials(syn: _Synthesizer, telemetry: Telemetry, defender: Defender,
                              item: ExplicitCredentials, when: dt.datetime, instance: int) -> None:
    user, process = actor(syn, item.user, item.process)
    target = item.target_user
    record = security_event(syn, 4648, when, {
        **subject(syn, user),
        "LogonGuid": "00000000-0000-0000-0000-000000000000",
        "TargetUserName": target.name, "TargetDomainName": target.domain,
        "TargetLogonGuid": "00000000-0000-0000-0000-000000000000",
        "TargetServerName": item.target_server, "TargetInfo": item.target_info or item.target_server,
        "ProcessId": hex(process.pid) if process else "0x0", "ProcessName": process.image if process else "-",
        "IpAddress": item.target_ip or "-", "IpPort": "0" if item.target_ip else "-",
    }, task=12544, correlated=True)
    telemetry.security.append(record)
    telemetry.ecs.append(ecs_security(syn, record, "logged-in-explicit", ["authentication"], ["start"], "success",
                                      {"related": {"user": [user.name, target.name]}}))
    defender.setdefault("DeviceLogonEvents", []).append({
        **syn.device_columns(when, "LogonAttempted"),
        "LogonType": "Interactive" if item.target_server in ("localhost", syn.host.name) else "Network",
        **_defender_account(target),
        "Protocol": "Negotiate",
        "IsLocalAdmin": None,
        "RemoteDeviceName": item.target_server if item.target_server != "localhost" else None,
        "RemoteIP": item.target_ip,
        "RemoteIPType": _ip_type(item.target_ip) if item.target_ip else None,
        **_initiator(syn, process, "C:\\Windows\\System32\\lsass.exe", when),
        "ReportId": syn.next_report_id(),
        "AdditionalFields": {"TargetServerName": item.target_server},
    })


# --------------------------------------------------------------------------------------------------------------
# Kerberos and the directory (domain controller events)
# --------------------------------------------------------------------------------------------------------------


def _domain_sid(user: User) -> str:
    parts = user.sid.split("-")
    return "-".join(parts[:-1]) if user.sid.startswith("S-1-5-21-") else "S-1-5-21-1004336348-1177238915-682003330"


def emit_kerberos(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: KerberosEvent,
                  when: dt.datetime, instance: int) -> None:
    user = item.user or syn.user
    realm = dns_domain(syn, user)
    ip = item.client_ip if ":" in item.client_ip else f"::ffff:{item.client_ip}"
    port = str(item.client_port if item.client_port is not None
               else syn.seed.number(49_152, 65_535, "kerberos-port", instance, when))
    encryption = ENCRYPTION_TYPES[item.encryption]
    failed = item.status.lower() != "0x0"
    if item.kind == "tgt":
        record = security_event(syn, 4768, when, {
            "TargetUserName": user.name, "TargetDomainName": realm.lower() if "." in realm else realm,
            "TargetSid": user.sid, "ServiceName": item.service or "krbtgt",
            "ServiceSid": item.service_sid or f"{_domain_sid(user)}-502",
            "TicketOptions": item.ticket_options or "0x40810010", "Status": item.status,
            "TicketEncryptionType": "0xffffffff" if failed else encryption, "PreAuthType": str(item.pre_auth_type)
            if not failed else "-", "IpAddress": ip, "IpPort": port, "CertIssuerName": "", "CertSerialNumber": "",
            "CertThumbprint": ""}, task=14339, keywords=FAILURE_KEYWORDS if failed else SUCCESS_KEYWORDS)
        action = "kerberos-authentication-ticket-requested"
    elif item.kind == "service-ticket":
        service = item.service or f"{syn.host.name.upper()}$"
        record = security_event(syn, 4769, when, {
            "TargetUserName": f"{user.name}@{realm}", "TargetDomainName": realm, "ServiceName": service,
            "ServiceSid": item.service_sid or f"{_domain_sid(user)}-"
                                              f"{syn.seed.number(1_100, 99_999, 'service-rid', service)}",
            "TicketOptions": item.ticket_options or "0x40810000", "TicketEncryptionType": encryption,
            "IpAddress": ip, "IpPort": port, "Status": item.status,
            "LogonGuid": guid_text(syn, "kerberos-logon", user.sid), "TransmittedServices": "-"},
            task=14337, keywords=FAILURE_KEYWORDS if failed else SUCCESS_KEYWORDS)
        action = "kerberos-service-ticket-requested"
    else:
        record = security_event(syn, 4771, when, {
            "TargetUserName": user.name, "TargetSid": user.sid,
            "ServiceName": item.service or f"krbtgt/{realm}", "TicketOptions": item.ticket_options or "0x40810010",
            "Status": item.status if failed else "0x18", "PreAuthType": str(item.pre_auth_type),
            "IpAddress": ip, "IpPort": port, "CertIssuerName": "", "CertSerialNumber": "", "CertThumbprint": ""},
            task=14339, keywords=FAILURE_KEYWORDS)
        action = "kerberos-preauth-failed"
    telemetry.security.append(record)
    telemetry.ecs.append(ecs_security(
        syn, record, action, ["authentication"], ["start"],
        "failure" if failed or item.kind == "preauth-failed" else "success",
        {"user": {"name": user.name, "domain": realm, "id": user.sid},
         "source": {"ip": item.client_ip, "port": int(port)}, "related": {"user": [user.name]}}))
    # Defender for Identity on the DC: a TGT validates credentials, a service ticket accesses a resource.
    failure = failed or item.kind == "preauth-failed"
    service = record["Event"]["EventData"].get("ServiceName", "")
    defender.setdefault("IdentityLogonEvents", []).append({
        "Timestamp": when, "ActionType": "LogonFailed" if failure else "LogonSuccess",
        "Application": "Active Directory",
        "LogonType": "Resource access" if item.kind == "service-ticket" else "Credentials validation",
        "Protocol": "Kerberos",
        "FailureReason": ("WrongPassword" if item.kind == "preauth-failed" or item.status.lower() == "0x18"
                          else f"Kerberos error {item.status}") if failure else None,
        "AccountName": user.name.lower(), "AccountDomain": realm.lower(), "AccountUpn": _upn(user),
        "AccountSid": user.sid, "AccountObjectId": _object_id(syn.seed, user),
        "AccountDisplayName": user.name,
        "DeviceName": None, "IPAddress": item.client_ip, "Port": int(port),
        "DestinationDeviceName": syn.host.device_name, "DestinationIPAddress": syn.host.ip, "DestinationPort": 88,
        "TargetDeviceName": service.rstrip("$").lower() if item.kind == "service-ticket" and
        service.endswith("$") else None,
        "ReportId": str(syn.next_report_id()),
        "AdditionalFields": {"Spns": service if item.kind == "service-ticket" else f"krbtgt/{realm}",
                             "EncryptionType": IDENTITY_ENCRYPTION_NAMES[item.encryption],
                             "PreAuthType": item.pre_auth_type, "TicketOptions": record["Event"]["EventData"]
                             .get("TicketOptions")},
    })


def emit_directory_access(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: DirectoryAccess,
                          when: dt.datetime, instance: int) -> None:
    user = item.user or syn.user
    object_guid = item.object_guid or str(uuid.UUID(syn.seed.hex(32, "domain-object", syn.activity.host.domain,
                                                                 scoped=False))).lower()
    rights: list[tuple[str, ...]] = []
    if item.replication:
        rights += [(REPLICATION_GUIDS[0],), (REPLICATION_GUIDS[1],)]
    if item.properties:
        rights.append(tuple(item.properties))
    if not rights:
        rights.append(())
    access = DIRECTORY_ACCESS_LISTS.get(item.access_mask.lower(), "%%7688")
    for offset, guids in enumerate(rights):
        lines = "".join(f"\r\n\t\t{{{guid.lower()}}}" for guid in guids)
        record = security_event(syn, 4662, when + dt.timedelta(milliseconds=offset * 3), {
            **subject(syn, user), "ObjectServer": "DS", "ObjectType": f"%{{{item.object_type.lower()}}}",
            "ObjectName": f"%{{{object_guid}}}", "OperationType": "Object Access", "HandleId": "0x0",
            "AccessList": f"{access}\r\n\t\t\t\t", "AccessMask": item.access_mask,
            "Properties": f"{access}{lines}\r\n\t{{{item.object_type.lower()}}}\r\n",
            "AdditionalInfo": "-", "AdditionalInfo2": ""}, task=14080)
        telemetry.security.append(record)
        telemetry.ecs.append(ecs_security(syn, record, "object-operation-performed", ["iam"], ["access"], "success",
                                          {}))


def _group_facts(syn: _Synthesizer, item: AccountChange) -> tuple[str, str, str]:
    """The group's name, domain and SID as the 47xx events show them."""
    assert item.group is not None
    known = WELL_KNOWN_GROUPS.get(item.group.lower())
    by = item.by or syn.user
    if item.group_sid:
        sid = item.group_sid
    elif known and known[0].startswith("S-"):
        sid = known[0]
    elif known:
        sid = _domain_sid(by) + known[0]
    else:
        sid = f"{_domain_sid(by)}-{syn.seed.number(1_100, 99_999, 'group-rid', item.group)}"
    domain = item.group_domain or (known[1] if known and known[1] else
                                   (netbios_domain(syn) if item.group_scope != "local" else syn.host.name.upper()))
    return item.group, domain, sid


def emit_account_change(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: AccountChange,
                        when: dt.datetime, instance: int) -> None:
    by = item.by or syn.user
    target = item.target
    if item.action in ("added-to-group", "removed-from-group"):
        group, group_domain, group_sid = _group_facts(syn, item)
        event_id = GROUP_EVENTS[(item.action, item.group_scope)]
        member_name = "-" if item.group_scope == "local" and not target.sid.startswith("S-1-5-21-") else (
            f"CN={target.name},CN=Users," + ",".join(f"DC={part}" for part in
                                                    (syn.activity.host.domain or target.domain).split(".")))
        data: dict[str, Any] = {
            "MemberName": member_name, "MemberSid": target.sid, "TargetUserName": group,
            "TargetDomainName": group_domain, "TargetSid": group_sid, **subject(syn, by), "PrivilegeList": "-"}
        record = security_event(syn, event_id, when, data, task=13826, correlated=item.group_scope == "local")
        action = "added-member-to-group" if item.action == "added-to-group" else "removed-member-from-group"
    else:
        event_id = ACCOUNT_EVENTS[item.action]
        base = {"TargetUserName": target.name, "TargetDomainName": target.domain, "TargetSid": target.sid,
                **subject(syn, by)}
        if event_id in (4720, 4738):
            unset = "%%1793" if event_id == 4720 else "-"
            attributes = {
                "PrivilegeList": "-", "SamAccountName": target.name if event_id == 4720 else "-",
                "DisplayName": unset, "UserPrincipalName": target.upn or "-", "HomeDirectory": unset,
                "HomePath": unset, "ScriptPath": unset, "ProfilePath": unset, "UserWorkstations": unset,
                "PasswordLastSet": "%%1794" if event_id == 4720 else "-",
                "AccountExpires": "%%1794" if event_id == 4720 else "-",
                "PrimaryGroupId": "513" if event_id == 4720 else "-", "AllowedToDelegateTo": "-",
                "OldUacValue": "0x0" if event_id == 4720 else "-", "NewUacValue": "0x15" if event_id == 4720 else "-",
                "UserAccountControl": "\r\n\t\t%%2080\r\n\t\t%%2082\r\n\t\t%%2084" if event_id == 4720 else "-",
                "UserParameters": "%%1792" if event_id == 4720 else "-", "SidHistory": "-",
                "LogonHours": "%%1797" if event_id == 4720 else "-"}
            attributes.update(item.attributes)
            data = {**({"Dummy": "-"} if event_id == 4738 else {}), **base, **attributes}
        elif event_id in (4723, 4726):
            data = {**base, "PrivilegeList": "-"}
        else:
            data = base
        record = security_event(syn, event_id, when, data, task=13824)
        action = {4720: "added-user-account", 4722: "enabled-user-account", 4723: "changed-password",
                  4724: "reset-password", 4725: "disabled-user-account", 4726: "deleted-user-account",
                  4738: "modified-user-account"}[event_id]
    telemetry.security.append(record)
    telemetry.ecs.append(ecs_security(syn, record, action, ["iam"], ["change" if "group" in item.action else "user"],
                                      "success", {"related": {"user": [by.name, target.name]}}))
    defender_action = {"created": "UserAccountCreated", "deleted": "UserAccountDeleted",
                       "added-to-group": "UserAccountAddedToLocalGroup",
                       "removed-from-group": "UserAccountRemovedFromLocalGroup"}.get(item.action)
    if defender_action and (item.group_scope == "local" or "group" not in item.action):
        defender.setdefault("DeviceEvents", []).append({
            **syn.device_columns(when, defender_action), **_defender_account(target),
            **_system_initiator(syn, "C:\\Windows\\System32\\lsass.exe", when),
            "InitiatingProcessAccountDomain": by.domain.lower(), "InitiatingProcessAccountName": by.name.lower(),
            "InitiatingProcessAccountSid": by.sid,
            "ReportId": syn.next_report_id(),
            "AdditionalFields": {"GroupName": item.group, "GroupDomainName": record["Event"]["EventData"].get(
                "TargetDomainName"), "GroupSid": record["Event"]["EventData"].get("TargetSid")}
            if item.group else None,
        })


def emit_share_access(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: ShareAccess,
                      when: dt.datetime, instance: int) -> None:
    user = item.user or syn.user
    share = item.share
    local = item.share_local_path if item.share_local_path is not None else {
        "ADMIN$": "\\??\\C:\\Windows", "C$": "\\??\\C:\\", "IPC$": ""}.get(share.rsplit("\\", 1)[-1].upper(), "")
    port = str(item.source_port if item.source_port is not None
               else syn.seed.number(49_152, 65_535, "share-port", instance, when))
    access_list = SHARE_ACCESS_LISTS.get(item.access_mask.lower(), "%%4416\r\n\t\t\t\t")
    common = {**subject(syn, user), "ObjectType": "File", "IpAddress": item.source_ip, "IpPort": port,
              "ShareName": share, "ShareLocalPath": local}
    record = security_event(syn, 5140, when, {**common, "AccessMask": item.access_mask, "AccessList": access_list},
                            task=12808, version=1, execution_pid=4)
    telemetry.security.append(record)
    telemetry.ecs.append(ecs_security(syn, record, "network-share-object-accessed", ["network", "file"], ["access"],
                                      "success", {"source": {"ip": item.source_ip, "port": int(port)}}))
    if item.relative_target is not None:
        detailed = security_event(syn, 5145, when + dt.timedelta(milliseconds=2), {
            **common, "RelativeTargetName": item.relative_target, "AccessMask": item.access_mask,
            "AccessList": access_list, "AccessReason": "-"}, task=12811, execution_pid=4)
        telemetry.security.append(detailed)
        telemetry.ecs.append(ecs_security(syn, detailed, "network-share-object-access-checked", ["network", "file"],
                                          ["access"], "success", {"source": {"ip": item.source_ip,
                                                                             "port": int(port)}}))


# --------------------------------------------------------------------------------------------------------------
# Log clearing, services, scheduled tasks
# --------------------------------------------------------------------------------------------------------------

_EVENTLOG_NAMESPACES = {"xmlns:auto-ns3": "http://schemas.microsoft.com/win/2004/08/events",
                        "xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"}


def emit_log_clear(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: LogClear, when: dt.datetime,
                   instance: int) -> None:
    user, process = actor(syn, item.user, item.process)
    eventlog_pid = syn.seed.pid("eventlog-svchost", syn.host.name)
    if item.channel.lower() == "security":
        record = syn.channel_record(
            channel=SECURITY_CHANNEL, provider=EVENTLOG_PROVIDER, provider_guid=EVENTLOG_PROVIDER_GUID,
            event_id=1102, version=0, level=4, task=104, keywords="0x4020000000000000", when=when,
            execution_pid=eventlog_pid, user_sid=None,
            user_data={"LogFileCleared": {"#attributes": dict(_EVENTLOG_NAMESPACES), **subject(syn, user)}})
        telemetry.security.append(record)
    else:
        record = syn.channel_record(
            channel=SYSTEM_CHANNEL, provider=EVENTLOG_PROVIDER, provider_guid=EVENTLOG_PROVIDER_GUID,
            event_id=104, version=0, level=4, task=104, keywords="0x8000000000000000", when=when,
            execution_pid=eventlog_pid, user_sid=user.sid,
            user_data={"LogFileCleared": {"#attributes": dict(_EVENTLOG_NAMESPACES), "SubjectUserName": user.name,
                                          "SubjectDomainName": user.domain, "Channel": item.channel,
                                          "BackupPath": None}})
        telemetry.windows.append(record)
    doc = syn.ecs_base(record, "security" if item.channel.lower() == "security" else "system", "audit-log-cleared")
    doc["event"] |= {"category": ["iam"], "type": ["admin"], "outcome": "success"}
    doc["user"] = {"name": user.name, "domain": user.domain}
    telemetry.ecs.append(doc)
    if process is not None:
        defender.setdefault("DeviceEvents", []).append({
            **syn.device_columns(when, "SecurityLogCleared" if item.channel.lower() == "security" else
                                 "OtherLogCleared"),
            **_defender_account(user), **syn.initiating_columns(process, full=True),
            "ReportId": syn.next_report_id(), "AdditionalFields": {"Channel": item.channel}})


def emit_service(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: ServiceInstall,
                 when: dt.datetime, instance: int) -> None:
    user, process = actor(syn, item.user, item.process)
    start_text, start_code = SERVICE_START_TEXT[item.start_type]
    services_pid = syn.seed.pid("services", syn.host.name)
    system_record = syn.channel_record(
        channel=SYSTEM_CHANNEL, provider=SCM_PROVIDER, provider_guid=SCM_PROVIDER_GUID, event_id=7045, version=0,
        level=4, task=0, keywords="0x8080000000000000", when=when, execution_pid=services_pid, user_sid=user.sid,
        provider_attributes={"EventSourceName": SCM_PROVIDER}, qualifiers=16384,
        event_data={"ServiceName": item.display_name or item.name, "ImagePath": item.image_path,
                    "ServiceType": item.service_type, "StartType": start_text, "AccountName": item.account})
    telemetry.windows.append(system_record)
    doc = syn.ecs_base(system_record, "system", "Service installed")
    doc["event"] |= {"category": ["configuration"], "type": ["creation"], "outcome": "success"}
    doc["service"] = {"name": item.name, "type": item.service_type}
    telemetry.ecs.append(doc)
    security_record = security_event(syn, 4697, when + dt.timedelta(milliseconds=1), {
        **subject(syn, user), "ServiceName": item.name, "ServiceFileName": item.image_path,
        "ServiceType": SERVICE_TYPE_CODES[item.service_type], "ServiceStartType": start_code,
        "ServiceAccount": item.account}, task=12289)
    telemetry.security.append(security_record)
    telemetry.ecs.append(ecs_security(syn, security_record, "service-installed", ["iam", "configuration"],
                                      ["admin", "change"], "success", {"service": {"name": item.name}}))
    executable = _service_executable(item.image_path)
    defender.setdefault("DeviceEvents", []).append({
        **syn.device_columns(when, "ServiceInstalled"),
        "FileName": file_name_of(executable), "FolderPath": executable,
        **_defender_account(user),
        **_initiator(syn, process, "C:\\Windows\\System32\\services.exe", when),
        "ReportId": syn.next_report_id(),
        "AdditionalFields": {"ServiceName": item.name, "ServiceStartType": start_text.title().replace(" ", ""),
                             "ServiceType": item.service_type.title().replace(" ", ""),
                             "ServiceAccount": item.account, "ImagePath": item.image_path},
    })


def _service_executable(image_path: str) -> str:
    text = image_path.strip()
    if text.startswith('"'):
        return text[1:].split('"', 1)[0]
    lowered = text.lower()
    for suffix in (".exe", ".sys", ".dll", ".bat", ".cmd"):
        index = lowered.find(suffix)
        if index != -1:
            return text[:index + len(suffix)]
    return text.split(" ", 1)[0]


_TRIGGERS = {
    "logon": "    <LogonTrigger>\r\n      <Enabled>true</Enabled>\r\n    </LogonTrigger>",
    "boot": "    <BootTrigger>\r\n      <Enabled>true</Enabled>\r\n    </BootTrigger>",
    "idle": "    <IdleTrigger>\r\n      <Enabled>true</Enabled>\r\n    </IdleTrigger>",
}


def task_content(syn: _Synthesizer, item: ScheduledTask, when: dt.datetime, author: str, run_as: str) -> str:
    """The task XML as the Task Scheduler service registers it (4698 TaskContent), lines ending in CRLF."""
    boundary = (when + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    if item.trigger in _TRIGGERS:
        trigger = _TRIGGERS[item.trigger]
    elif item.trigger == "daily":
        trigger = (f"    <CalendarTrigger>\r\n      <StartBoundary>{boundary}</StartBoundary>\r\n      <Enabled>true"
                   "</Enabled>\r\n      <ScheduleByDay>\r\n        <DaysInterval>1</DaysInterval>\r\n      "
                   "</ScheduleByDay>\r\n    </CalendarTrigger>")
    else:
        trigger = (f"    <TimeTrigger>\r\n      <StartBoundary>{boundary}</StartBoundary>\r\n      <Enabled>true"
                   "</Enabled>\r\n    </TimeTrigger>")
    arguments = f"\r\n      <Arguments>{escape(item.arguments)}</Arguments>" if item.arguments else ""
    lines = [
        '<?xml version="1.0" encoding="UTF-16"?>',
        '<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">',
        "  <RegistrationInfo>",
        f"    <Date>{when.strftime('%Y-%m-%dT%H:%M:%S')}</Date>",
        f"    <Author>{escape(author)}</Author>",
        f"    <URI>{escape(item.path)}</URI>",
        "  </RegistrationInfo>",
        "  <Triggers>", trigger, "  </Triggers>",
        "  <Principals>", '    <Principal id="Author">', f"      <UserId>{escape(run_as)}</UserId>",
        "      <LogonType>InteractiveToken</LogonType>" if run_as not in ("S-1-5-18", "SYSTEM") else
        "      <LogonType>ServiceAccount</LogonType>",
        f"      <RunLevel>{item.run_level}</RunLevel>", "    </Principal>", "  </Principals>",
        "  <Settings>", "    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>",
        "    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>",
        "    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>",
        "    <AllowHardTerminate>true</AllowHardTerminate>", "    <StartWhenAvailable>true</StartWhenAvailable>",
        "    <AllowStartOnDemand>true</AllowStartOnDemand>", "    <Enabled>true</Enabled>",
        f"    <Hidden>{'true' if item.hidden else 'false'}</Hidden>",
        "    <ExecutionTimeLimit>P3D</ExecutionTimeLimit>", "    <Priority>7</Priority>", "  </Settings>",
        '  <Actions Context="Author">', "    <Exec>", f"      <Command>{escape(item.command)}</Command>{arguments}",
        "    </Exec>", "  </Actions>", "</Task>"]
    return "\r\n".join(lines)


def emit_scheduled_task(syn: _Synthesizer, telemetry: Telemetry, defender: Defender, item: ScheduledTask,
                        when: dt.datetime, instance: int) -> None:
    user, process = actor(syn, item.user, item.process)
    if item.run_as == "SYSTEM":
        run_as = "S-1-5-18"
        run_as_account = "NT AUTHORITY\\System"
    else:
        runner = item.run_as if isinstance(item.run_as, User) else user
        run_as = runner.sid
        run_as_account = f"{runner.domain}\\{runner.name}"
    author = item.author or f"{user.domain}\\{user.name}"
    content = task_content(syn, item, when, author, run_as)
    created = item.action == "created"
    record = security_event(syn, 4698 if created else 4702, when, {
        **subject(syn, user), "TaskName": item.path, ("TaskContent" if created else "TaskContentNew"): content},
        task=12804)
    telemetry.security.append(record)
    telemetry.ecs.append(ecs_security(syn, record, "scheduled-task-created" if created else "scheduled-task-updated",
                                      ["iam", "configuration"], ["creation" if created else "change"], "success",
                                      {}))
    scheduler_pid = syn.seed.pid("schedule-svchost", syn.host.name)
    registered = syn.channel_record(
        channel=TASK_CHANNEL, provider=TASK_PROVIDER, provider_guid=TASK_PROVIDER_GUID,
        event_id=106 if created else 140, version=0, level=4, task=106 if created else 140,
        keywords="0x8000000000000000", when=when + dt.timedelta(milliseconds=4), execution_pid=scheduler_pid,
        user_sid="S-1-5-18", event_data={"TaskName": item.path, "UserContext" if created else "UserName":
                                         f"{user.domain}\\{user.name}"})
    telemetry.windows.append(registered)
    telemetry.ecs.append(_ecs_windows(syn, registered, "Task registered" if created else "Task registration updated",
                                      ["configuration"], ["creation" if created else "change"]))
    defender.setdefault("DeviceEvents", []).append({
        **syn.device_columns(when, "ScheduledTaskCreated" if created else "ScheduledTaskUpdated"),
        **_defender_account(user),
        **_initiator(syn, process, "C:\\Windows\\System32\\svchost.exe", when),
        "ReportId": syn.next_report_id(),
        "AdditionalFields": {"TaskName": item.path, "TaskContent": content, "SubjectUserName": user.name,
                             "SubjectDomainName": user.domain, "RunAs": run_as_account},
    })
    if item.runs:
        started = syn.channel_record(
            channel=TASK_CHANNEL, provider=TASK_PROVIDER, provider_guid=TASK_PROVIDER_GUID, event_id=200, version=0,
            level=4, task=200, opcode=1, keywords="0x8000000000000000", when=when + dt.timedelta(seconds=1),
            execution_pid=scheduler_pid, user_sid="S-1-5-18", event_data={
                "TaskName": item.path, "ActionName": item.command,
                "TaskInstanceId": "{" + guid_text(syn, "task-instance", item.path, instance).lower() + "}",
                "EnginePID": syn.seed.pid("taskhost", item.path)})
        telemetry.windows.append(started)
        telemetry.ecs.append(_ecs_windows(syn, started, "Action started", ["process"], ["start"]))


def _ecs_windows(syn: _Synthesizer, record: dict[str, Any], action: str, category: list[str], types: list[str]
                 ) -> dict[str, Any]:
    doc = syn.ecs_base(record, "windows", action)
    doc["event"] |= {"category": category, "type": types}
    doc["winlog"]["task"] = action
    return doc
