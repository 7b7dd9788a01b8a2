"""The synthesizer's core: deterministic values, resolved facts, and the record builders every family uses.

From a ``tests.yml`` activity (host, user, process tree, files, registry, network, module loads) this builds:
Sysmon EID 1/3/7/11/13 and Security 4688 records in exactly the JSON shape the ``evtx`` package prints for a real
EVTX record, Defender XDR advanced-hunting rows (DeviceProcessEvents, DeviceFileEvents, DeviceRegistryEvents,
DeviceNetworkEvents, DeviceImageLoadEvents) and ECS documents as Winlogbeat ships them. The same facts appear in
every schema (command line, parent, user, host, times to the millisecond), and everything not given (GUIDs, PIDs,
hashes, record ids) is derived from the scenario id, so a scenario always renders to the same bytes. The other
event families live in :mod:`assay.verify.synth_process` (the process tree and its side effects),
:mod:`assay.verify.synth_windows` (Security, System, Task Scheduler) and :mod:`assay.verify.synth_endpoint` (Sysmon
8/10/17-23/26, PowerShell, Defender); :mod:`assay.verify.synth` puts them on one timeline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from assay.catalog.models import (
    Activity,
    Process,
    Scenario,
    User,
)
from assay.errors import SourceSpan, VerifyError
from assay.verify.binaries import BinaryInfo, binary_info

SYSMON_PROVIDER = "Microsoft-Windows-Sysmon"
SYSMON_PROVIDER_GUID = "5770385F-C22A-43E0-BF4C-06F5698FFBD9"
SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
SECURITY_PROVIDER = "Microsoft-Windows-Security-Auditing"
SECURITY_PROVIDER_GUID = "54849625-5478-4994-A5BA-3E3B0328C30D"
SECURITY_CHANNEL = "Security"
EVENT_XMLNS = "http://schemas.microsoft.com/win/2004/08/events/event"

SYSTEM_USER = User(domain="NT AUTHORITY", name="SYSTEM", sid="S-1-5-18")
SYSTEM_LOGON_ID = 0x3E7

#: The telemetry schemas a scenario renders to (the runner ingests each into its own database). ``windows`` holds
#: the other Windows event channels (System, PowerShell/Operational, TaskScheduler/Operational, Windows Defender).
SCHEMAS: tuple[str, ...] = ("sysmon", "security", "windows", "defender", "ecs")

#: Sysmon event versions (System/Version) as Sysmon 15 writes them.
SYSMON_EVENT_VERSIONS = {1: 5, 3: 5, 7: 3, 8: 2, 10: 3, 11: 2, 13: 2, 17: 1, 18: 1, 19: 3, 20: 3, 21: 3, 22: 5,
                         23: 5, 26: 5}
SYSMON_TASK_NAMES = {
    1: "Process Create (rule: ProcessCreate)",
    3: "Network connection detected (rule: NetworkConnect)",
    7: "Image loaded (rule: ImageLoad)",
    11: "File created (rule: FileCreate)",
    13: "Registry value set (rule: RegistryEvent)",
    8: "CreateRemoteThread detected (rule: CreateRemoteThread)",
    10: "Process accessed (rule: ProcessAccess)",
    17: "Pipe Created (rule: PipeEvent)",
    18: "Pipe Connected (rule: PipeEvent)",
    19: "WmiEventFilter activity detected (rule: WmiEvent)",
    20: "WmiEventConsumer activity detected (rule: WmiEvent)",
    21: "WmiEventConsumerToFilter activity detected (rule: WmiEvent)",
    22: "Dns query (rule: DnsQuery)",
    23: "File Delete archived (rule: FileDelete)",
    26: "File Delete logged (rule: FileDeleteDetected)",
}
MANDATORY_LABELS = {
    "Untrusted": "S-1-16-0",
    "Low": "S-1-16-4096",
    "Medium": "S-1-16-8192",
    "High": "S-1-16-12288",
    "System": "S-1-16-16384",
}
#: Security 4688 TokenElevationType message ids and their Defender names.
ELEVATION_TYPES = {
    "default": ("%%1936", "TokenElevationTypeDefault", "TokenElevationTypeDefault (1)"),
    "full": ("%%1937", "TokenElevationTypeFull", "TokenElevationTypeFull (2)"),
    "limited": ("%%1938", "TokenElevationTypeLimited", "TokenElevationTypeLimited (3)"),
}
REGISTRY_TYPES_DEFENDER = {
    "REG_SZ": "String", "REG_EXPAND_SZ": "ExpandString", "REG_MULTI_SZ": "MultiString", "REG_DWORD": "Dword",
    "REG_QWORD": "Qword", "REG_BINARY": "Binary", "REG_NONE": "None",
}
#: The usual parent of a process that starts before the scenario (for Defender's InitiatingProcessParent*).
USUAL_PARENTS = {
    "explorer.exe": "userinit.exe", "svchost.exe": "services.exe", "services.exe": "wininit.exe",
    "ccmexec.exe": "services.exe", "wmiprvse.exe": "svchost.exe", "msiexec.exe": "services.exe",
    "gpscript.exe": "svchost.exe", "userinit.exe": "winlogon.exe",
}
SYSTEM_PATH = "C:\\Windows\\System32\\"
WINLOGBEAT_VERSION = "8.15.3"
ECS_VERSION = "8.11.0"


# --------------------------------------------------------------------------------------------------------------
# Deterministic values
# --------------------------------------------------------------------------------------------------------------


class Seed:
    """Deterministic pseudo-random values derived from a scenario id (and a purpose), never from a clock."""

    def __init__(self, scenario_id: str) -> None:
        self.scenario_id = scenario_id

    def digest(self, *parts: object, scoped: bool = True) -> bytes:
        material = "\x1f".join(([self.scenario_id] if scoped else []) + [str(p) for p in parts])
        return hashlib.sha256(material.encode("utf-8")).digest()

    def number(self, low: int, high: int, *parts: object, scoped: bool = True) -> int:
        """An integer in [low, high]."""
        value = int.from_bytes(self.digest(*parts, scoped=scoped)[:8], "big")
        return low + value % (high - low + 1)

    def hex(self, length: int, *parts: object, scoped: bool = True) -> str:
        """``length`` upper-case hex digits."""
        out = ""
        counter = 0
        while len(out) < length:
            out += self.digest(*parts, counter, scoped=scoped).hex()
            counter += 1
        return out[:length].upper()

    def pid(self, *parts: object) -> int:
        """A Windows PID (a multiple of 4)."""
        return self.number(300, 9_999, "pid", *parts) * 4


def event_id_of(record: dict[str, Any]) -> int:
    """A record's event id (``EventID`` is ``{"#attributes": {"Qualifiers": …}, "#text": id}`` for classic
    providers)."""
    value = record["Event"]["System"]["EventID"]
    return int(value["#text"] if isinstance(value, dict) else value)


def sysmon_guid(machine: str, when: dt.datetime, tail: str) -> str:
    """A Sysmon process/logon GUID as the evtx package prints it: machine id, start time (LE words), counter."""
    seconds = int(when.timestamp()) & 0xFFFFFFFF
    return f"{machine}-{seconds & 0xFFFF:04X}-{seconds >> 16:04X}-{tail[:4]}-{tail[4:16]}"


def logon_guid(machine: str, when: dt.datetime, logon_id: int) -> str:
    """Sysmon's LogonGuid: machine id, logon time, then the logon id's little-endian bytes."""
    raw = logon_id.to_bytes(8, "little").hex().upper()
    return sysmon_guid(machine, when, raw[:4] + raw[4:16])


def split_command_line(command_line: str) -> list[str]:
    """Split a Windows command line into arguments the way CommandLineToArgvW does (quotes, no escapes)."""
    args: list[str] = []
    current = ""
    in_quotes = False
    has_token = False
    for char in command_line:
        if char == '"':
            in_quotes = not in_quotes
            has_token = True
        elif char in " \t" and not in_quotes:
            if has_token:
                args.append(current)
                current = ""
                has_token = False
        else:
            current += char
            has_token = True
    if has_token:
        args.append(current)
    return args


def file_name_of(path: str) -> str:
    return re.split(r"[\\/]", path)[-1]


def folder_of(path: str) -> str:
    parts = re.split(r"[\\/]", path)
    return "\\".join(parts[:-1])


def utc_time(when: dt.datetime) -> str:
    """Sysmon's UtcTime: ``2022-02-19 17:35:16.196`` (milliseconds)."""
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def system_time(when: dt.datetime) -> str:
    """The evtx package's TimeCreated/SystemTime: ``2022-02-19T17:35:16.207004Z`` (microseconds)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_ms(when: dt.datetime) -> str:
    """ISO 8601 with milliseconds and Z (ECS @timestamp, Defender Timestamp in exports)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def truncate_ms(when: dt.datetime) -> dt.datetime:
    return when.replace(microsecond=(when.microsecond // 1000) * 1000)


# --------------------------------------------------------------------------------------------------------------
# Resolved facts
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hashes:
    """A file's hashes (upper-case hex, as Sysmon prints them; Defender columns use lower case)."""

    md5: str
    sha1: str
    sha256: str
    imphash: str

    def sysmon(self) -> str:
        """The Hashes field of a Sysmon config hashing MD5, SHA256 and IMPHASH (the common community config)."""
        return f"MD5={self.md5},SHA256={self.sha256},IMPHASH={self.imphash}"


@dataclass(frozen=True)
class ProcessFacts:
    """A process with every value the schemas need, resolved once so every schema says the same."""

    ref: str
    image: str
    command_line: str
    current_directory: str
    pid: int
    guid: str
    start: dt.datetime
    user: User
    logon_id: int
    logon_guid: str
    terminal_session: int
    integrity: str
    elevation: str
    info: BinaryInfo
    hashes: Hashes
    parent: ProcessFacts | None = None
    #: For a process outside the scenario (the root's parent): the name of its usual parent.
    usual_parent_name: str | None = None

    @property
    def file_name(self) -> str:
        return file_name_of(self.image)

    @property
    def account(self) -> str:
        return f"{self.user.domain}\\{self.user.name}"


@dataclass(frozen=True)
class HostFacts:
    """The host as every schema names it, plus the per-host constants (Sysmon's machine id and service PID)."""

    name: str
    computer: str
    device_id: str
    device_name: str
    machine: str
    ip: str
    sysmon_pid: int
    os: str


@dataclass
class Telemetry:
    """A scenario rendered in every schema."""

    scenario_id: str
    host: HostFacts
    processes: dict[str, ProcessFacts]
    #: evtx-JSON records (``{"Event": {...}}``), time-ordered.
    sysmon: list[dict[str, Any]] = field(default_factory=list)
    security: list[dict[str, Any]] = field(default_factory=list)
    #: Other Windows channels (System, PowerShell/Operational, TaskScheduler/Operational, Windows Defender).
    windows: list[dict[str, Any]] = field(default_factory=list)
    #: Defender XDR table name -> rows (column -> value; datetimes as ``datetime``).
    defender: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ecs: list[dict[str, Any]] = field(default_factory=list)

    def events(self, schema: str) -> list[dict[str, Any]]:
        if schema == "sysmon":
            return self.sysmon
        if schema == "security":
            return self.security
        if schema == "windows":
            return self.windows
        if schema == "ecs":
            return self.ecs
        if schema == "defender":
            return [row for rows in self.defender.values() for row in rows]
        raise VerifyError(f"unknown telemetry schema {schema!r} (known: {', '.join(SCHEMAS)})")


# --------------------------------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------------------------------


class _Synthesizer:
    def __init__(self, scenario: Scenario, activity: Activity) -> None:
        self.scenario = scenario
        self.activity = activity
        self.seed = Seed(scenario.id)
        self.start = activity.start.astimezone(dt.UTC)
        host = activity.host
        self.user = activity.user
        computer = host.fqdn
        self.host = HostFacts(
            name=host.name,
            computer=computer,
            device_id=(host.device_id or self.seed.hex(40, "device", host.name, scoped=False)).lower(),
            device_name=computer.lower(),
            machine=self.seed.hex(8, "machine", host.name, scoped=False),
            ip=host.ip or f"10.{self.seed.number(0, 254, 'net', host.name, scoped=False)}."
                          f"{self.seed.number(0, 254, 'subnet', host.name, scoped=False)}."
                          f"{self.seed.number(10, 250, 'ip', host.name, scoped=False)}",
            sysmon_pid=self.seed.number(400, 1_200, "sysmon-pid", host.name, scoped=False) * 4,
            os=host.os or "Windows 10 Enterprise 22H2",
        )
        self.user_logon = self.user.logon_id or self.seed.number(0x30000, 0x9FFFFF, "logon", self.user.sid)
        self.logon_time = self.start - dt.timedelta(seconds=self.seed.number(1_800, 30_000, "logon-time"))
        self.processes: dict[str, ProcessFacts] = {}
        self.sysmon_record = self.seed.number(40_000, 2_000_000, "sysmon-record")
        self.security_record = self.seed.number(10_000, 900_000, "security-record")
        self.report_id = self.seed.number(1_000, 90_000, "report-id")
        #: Record ids of the other channels (System, PowerShell…), each its own counter.
        self.channel_records: dict[str, int] = {}
        #: lsass.exe's PID on this host: the Security log's writer (System/Execution) and the usual dump target.
        self.lsass_pid = self.seed.number(150, 240, "lsass-pid", host.name, scoped=False) * 4

    # -- facts ---------------------------------------------------------------------------------------------------

    def hashes(self, info: BinaryInfo, image: str, sha256: str | None = None) -> Hashes:
        # A known binary is the same file on every host (same hashes in every scenario); anything else is a file
        # of this scenario.
        if info.company == "-" or info.file_version == "-":
            parts: tuple[object, ...] = ("file", image.lower())
            scoped = True
        else:
            parts = ("binary", info.original_file_name.lower(), info.file_version)
            scoped = False
        return Hashes(
            md5=self.seed.hex(32, "md5", *parts, scoped=scoped),
            sha1=self.seed.hex(40, "sha1", *parts, scoped=scoped),
            sha256=(sha256.upper() if sha256 else self.seed.hex(64, "sha256", *parts, scoped=scoped)),
            imphash=self.seed.hex(32, "imphash", *parts, scoped=scoped),
        )

    def session(self, user: User, integrity: str, elevated: bool) -> tuple[int, str, int]:
        """Logon id, logon GUID and terminal session of a token."""
        if user.sid == SYSTEM_USER.sid:
            boot = self.start - dt.timedelta(seconds=self.seed.number(40_000, 400_000, "boot", self.host.name,
                                                                      scoped=False))
            return SYSTEM_LOGON_ID, logon_guid(self.host.machine, boot, SYSTEM_LOGON_ID), 0
        logon = user.logon_id or (self.user_logon if user.sid == self.user.sid else
                                  self.seed.number(0x30000, 0x9FFFFF, "logon", user.sid))
        if (elevated or integrity in ("High", "System")) and user.logon_id is None:
            # An elevated admin token lives in the linked logon session, created with the limited one.
            logon += self.seed.number(2, 60, "linked-logon", user.sid)
        return logon, logon_guid(self.host.machine, self.logon_time, logon), 1

    @staticmethod
    def elevation_of(user: User, integrity: str, elevated: bool) -> str:
        if user.sid == SYSTEM_USER.sid or integrity == "System":
            return "default"
        if elevated or integrity == "High":
            return "full"
        return "limited"

    def outside_parent(self, process: Process) -> ProcessFacts:
        image = process.parent_image or "C:\\Windows\\explorer.exe"
        name = file_name_of(image)
        info = binary_info(name)
        start = self.start - dt.timedelta(seconds=self.seed.number(30, 7_200, "outside-start", process.id))
        is_system_service = name.lower() in ("services.exe", "svchost.exe", "ccmexec.exe", "wmiprvse.exe",
                                             "msiexec.exe", "gpscript.exe")
        user = SYSTEM_USER if is_system_service else self.user
        integrity = "System" if is_system_service else "Medium"
        logon, guid_of_logon, session = self.session(user, integrity, False)
        default_command_line = f'"{image}"' if " " in image else image
        return ProcessFacts(
            ref=f"{process.id}.parent",
            image=image,
            command_line=process.parent_command_line or default_command_line,
            current_directory=SYSTEM_PATH if is_system_service else f"C:\\Users\\{self.user.name}\\",
            pid=self.seed.pid("outside", process.id),
            guid=sysmon_guid(self.host.machine, start, self.seed.hex(4, "guid-counter", process.id, "outside")
                             + "00000000" + self.seed.hex(2, "guid-tail", scoped=False) + "00"),
            start=truncate_ms(start),
            user=user,
            logon_id=logon,
            logon_guid=guid_of_logon,
            terminal_session=session,
            integrity=integrity,
            elevation=self.elevation_of(user, integrity, False),
            info=info,
            hashes=self.hashes(info, image),
            usual_parent_name=USUAL_PARENTS.get(name.lower(), "explorer.exe"),
        )

    def resolve_processes(self) -> None:
        for index, process in enumerate(self.activity.processes):
            parent = self.processes[process.parent] if process.parent else self.outside_parent(process)
            jitter = self.seed.number(40, 400, "jitter", process.id) / 1000
            if process.after_seconds is not None:
                start = truncate_ms(self.start + dt.timedelta(seconds=process.after_seconds))
                if process.parent and start < parent.start:
                    raise VerifyError(
                        f"scenario {self.scenario.id!r}: process {process.id!r} starts at +{process.after_seconds}s, "
                        f"before its parent {process.parent!r}",
                        hint="a child cannot start before its parent: raise its after_seconds")
            else:
                # A small step per process in list order, and never before the parent.
                start = truncate_ms(max(self.start + dt.timedelta(seconds=index * 0.9 + jitter),
                                        parent.start + dt.timedelta(seconds=0.2 + jitter)
                                        if process.parent else self.start))
            user = process.user or (parent.user if process.parent else self.user)
            logon, guid_of_logon, session = self.session(user, process.integrity, process.elevated)
            info = binary_info(process.file_name, process.original_file_name)
            current_directory = process.current_directory or (
                parent.current_directory if process.parent else
                (SYSTEM_PATH if process.integrity in ("High", "System") else f"C:\\Users\\{user.name}\\"))
            if not current_directory.endswith("\\"):
                current_directory += "\\"
            self.processes[process.id] = ProcessFacts(
                ref=process.id,
                image=process.image,
                command_line=process.command_line,
                current_directory=current_directory,
                pid=process.pid or self.seed.pid(process.id),
                guid=sysmon_guid(self.host.machine, start, self.seed.hex(4, "guid-counter", process.id)
                                 + "00000000" + self.seed.hex(2, "guid-tail", scoped=False) + "00"),
                start=start,
                user=user,
                logon_id=logon,
                logon_guid=guid_of_logon,
                terminal_session=session,
                integrity=process.integrity,
                elevation=self.elevation_of(user, process.integrity, process.elevated),
                info=info,
                hashes=self.hashes(info, process.image, process.sha256),
                parent=parent,
            )

    def side_effect_time(self, process_ref: str, after_seconds: float | None, index: int, kind: str) -> dt.datetime:
        if after_seconds is not None:
            return truncate_ms(self.start + dt.timedelta(seconds=after_seconds))
        base = self.processes[process_ref].start
        return truncate_ms(base + dt.timedelta(milliseconds=150 + 60 * index
                                               + self.seed.number(0, 40, kind, index)))

    # -- evtx JSON -----------------------------------------------------------------------------------------------

    def evtx_record(self, *, provider: str, provider_guid: str, event_id: int, version: int, level: int, task: int,
                    keywords: str, when: dt.datetime, record_id: int, channel: str, execution_pid: int,
                    security: dict[str, Any] | None, event_data: dict[str, Any]) -> dict[str, Any]:
        thread = self.seed.number(500, 3_000, "thread", channel, record_id) * 4
        return {"Event": {
            "#attributes": {"xmlns": EVENT_XMLNS},
            "System": {
                "Provider": {"#attributes": {"Name": provider, "Guid": provider_guid}},
                "EventID": event_id,
                "Version": version,
                "Level": level,
                "Task": task,
                "Opcode": 0,
                "Keywords": keywords,
                "TimeCreated": {"#attributes": {"SystemTime": system_time(when)}},
                "EventRecordID": record_id,
                "Correlation": None,
                "Execution": {"#attributes": {"ProcessID": execution_pid, "ThreadID": thread}},
                "Channel": channel,
                "Computer": self.host.computer,
                "Security": security,
            },
            "EventData": event_data,
        }}

    def sysmon_event(self, event_id: int, when: dt.datetime, event_data: dict[str, Any]) -> dict[str, Any]:
        # Sysmon writes the record a few milliseconds after the UtcTime it reports.
        written = when + dt.timedelta(microseconds=self.seed.number(1_500, 19_000, "written", event_id, when))
        self.sysmon_record += self.seed.number(1, 4, "record-step", self.sysmon_record)
        return self.evtx_record(
            provider=SYSMON_PROVIDER, provider_guid=SYSMON_PROVIDER_GUID, event_id=event_id,
            version=SYSMON_EVENT_VERSIONS[event_id], level=4, task=event_id, keywords="0x8000000000000000",
            when=written, record_id=self.sysmon_record, channel=SYSMON_CHANNEL, execution_pid=self.host.sysmon_pid,
            security={"#attributes": {"UserID": "S-1-5-18"}}, event_data=event_data)

    def next_record_id(self, channel: str) -> int:
        """The next EventRecordID of a channel (Sysmon and Security share the counters of their process events)."""
        if channel == SYSMON_CHANNEL:
            self.sysmon_record += self.seed.number(1, 4, "record-step", self.sysmon_record)
            return self.sysmon_record
        if channel == SECURITY_CHANNEL:
            self.security_record += self.seed.number(1, 6, "security-step", self.security_record)
            return self.security_record
        current = self.channel_records.get(channel) or self.seed.number(1_000, 90_000, "channel-record", channel)
        current += self.seed.number(1, 5, "channel-step", channel, current)
        self.channel_records[channel] = current
        return current

    def channel_record(self, *, channel: str, provider: str, provider_guid: str, event_id: int, version: int,
                       level: int, task: int, keywords: str, when: dt.datetime, execution_pid: int,
                       user_sid: str | None, event_data: dict[str, Any] | None = None,
                       user_data: dict[str, Any] | None = None, opcode: int = 0,
                       provider_attributes: dict[str, str] | None = None,
                       activity_id: str | None = None, qualifiers: int | None = None) -> dict[str, Any]:
        """Any Windows event as the evtx package prints it: EventData, or UserData (1102, 104) when given; an
        ``activity_id`` fills Correlation (local logons, PowerShell and Defender write one)."""
        record_id = self.next_record_id(channel)
        thread = self.seed.number(500, 3_000, "thread", channel, record_id) * 4
        event: dict[str, Any] = {
            "#attributes": {"xmlns": EVENT_XMLNS},
            "System": {
                "Provider": {"#attributes": {"Name": provider, "Guid": provider_guid,
                                             **(provider_attributes or {})}},
                # Classic providers (the Service Control Manager) log EventID with its Qualifiers attribute.
                "EventID": {"#attributes": {"Qualifiers": qualifiers}, "#text": event_id} if qualifiers is not None
                else event_id,
                "Version": version,
                "Level": level,
                "Task": task,
                "Opcode": opcode,
                "Keywords": keywords,
                "TimeCreated": {"#attributes": {"SystemTime": system_time(when)}},
                "EventRecordID": record_id,
                "Correlation": {"#attributes": {"ActivityID": activity_id}} if activity_id else None,
                "Execution": {"#attributes": {"ProcessID": execution_pid, "ThreadID": thread}},
                "Channel": channel,
                "Computer": self.host.computer,
                "Security": {"#attributes": {"UserID": user_sid}} if user_sid else None,
            },
        }
        if user_data is not None:
            event["UserData"] = user_data
        else:
            event["EventData"] = event_data or {}
        return {"Event": event}

    # -- Defender XDR --------------------------------------------------------------------------------------------

    def next_report_id(self) -> int:
        self.report_id += self.seed.number(1, 9, "report-step", self.report_id)
        return self.report_id

    def device_columns(self, when: dt.datetime, action: str) -> dict[str, Any]:
        return {"Timestamp": when, "DeviceId": self.host.device_id, "DeviceName": self.host.device_name,
                "ActionType": action}

    def initiating_columns(self, process: ProcessFacts, *, full: bool = False) -> dict[str, Any]:
        parent = process.parent
        columns: dict[str, Any] = {
            "InitiatingProcessAccountDomain": process.user.domain.lower(),
            "InitiatingProcessAccountName": process.user.name.lower(),
            "InitiatingProcessAccountSid": process.user.sid,
            "InitiatingProcessFileName": process.file_name,
            "InitiatingProcessFolderPath": process.image.lower(),
            "InitiatingProcessId": process.pid,
            "InitiatingProcessCommandLine": process.command_line,
            "InitiatingProcessCreationTime": process.start,
            "InitiatingProcessIntegrityLevel": process.integrity,
            "InitiatingProcessSHA256": process.hashes.sha256.lower(),
            "InitiatingProcessParentFileName": (parent.file_name if parent else process.usual_parent_name),
            "InitiatingProcessParentId": (parent.pid if parent else self.seed.pid("grandparent", process.ref)),
        }
        if full:
            columns.update({
                "InitiatingProcessAccountUpn": _upn(process.user),
                "InitiatingProcessAccountObjectId": _object_id(self.seed, process.user),
                "InitiatingProcessLogonId": process.logon_id,
                "InitiatingProcessTokenElevation": ELEVATION_TYPES[process.elevation][1],
                "InitiatingProcessSHA1": process.hashes.sha1.lower(),
                "InitiatingProcessMD5": process.hashes.md5.lower(),
                "InitiatingProcessFileSize": process.info.size,
                "InitiatingProcessVersionInfoOriginalFileName": _dash_to_none(process.info.original_file_name),
                "InitiatingProcessParentCreationTime": parent.start if parent else None,
                "InitiatingProcessSignerType": "OsVendor" if process.info.signer == "Microsoft Windows" else (
                    "Microsoft" if process.info.signer else "None"),
                "InitiatingProcessSignatureStatus": "Valid" if process.info.signer else "Unsigned",
            })
        return columns

    # -- ECS (Winlogbeat) ----------------------------------------------------------------------------------------

    def ecs_base(self, record: dict[str, Any], module: str, action: str) -> dict[str, Any]:
        system = record["Event"]["System"]
        event_id = event_id_of(record)
        when = dt.datetime.strptime(system["TimeCreated"]["#attributes"]["SystemTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
        when = when.replace(tzinfo=dt.UTC)
        agent_id = str(_uuid_from(self.seed.hex(32, "agent", self.host.name, scoped=False)))
        user_block: dict[str, Any] | None = None
        if system.get("Security"):
            user_block = {"identifier": "S-1-5-18", "domain": "NT AUTHORITY", "name": "SYSTEM", "type": "Well Known Group"}
        winlog: dict[str, Any] = {
            "channel": system["Channel"],
            "provider_name": system["Provider"]["#attributes"]["Name"],
            "provider_guid": "{" + system["Provider"]["#attributes"]["Guid"].strip("{}") + "}",
            "event_id": str(event_id),
            "record_id": system["EventRecordID"],
            "computer_name": system["Computer"],
            "api": "wineventlog",
            "opcode": "Info",
            "version": system["Version"],
            "task": SYSMON_TASK_NAMES.get(event_id, "Process Creation") if module == "sysmon" else
            "Process Creation",
            "process": {"pid": system["Execution"]["#attributes"]["ProcessID"],
                        "thread": {"id": system["Execution"]["#attributes"]["ThreadID"]}},
        }
        if "EventData" in record["Event"]:
            winlog["event_data"] = {key: _ecs_string(value) for key, value in record["Event"]["EventData"].items()}
        else:
            # Winlogbeat ships UserData's element (1102, 104) as winlog.user_data, without its XML attributes.
            element = next(iter(record["Event"]["UserData"].values()))
            winlog["user_data"] = {key: _ecs_string(value) for key, value in element.items()
                                   if key != "#attributes" and value is not None}
        if user_block:
            winlog["user"] = user_block
        return {
            "@timestamp": iso_ms(when),
            "agent": {"type": "winlogbeat", "version": WINLOGBEAT_VERSION, "name": self.host.name.lower(),
                      "id": agent_id, "ephemeral_id": str(_uuid_from(self.seed.hex(32, "ephemeral", agent_id)))},
            "ecs": {"version": ECS_VERSION},
            "host": {"name": self.host.name.lower(), "hostname": self.host.name.lower(),
                     "os": {"family": "windows", "platform": "windows", "type": "windows", "name": self.host.os,
                            "kernel": "10.0.19041.4355 (WinBuild.160101.0800)"},
                     "ip": [self.host.ip]},
            "event": {"kind": "event", "code": str(event_id), "provider": system["Provider"]["#attributes"]["Name"],
                      "module": module, "action": action,
                      "created": iso_ms(when + dt.timedelta(seconds=self.seed.number(1, 4, "shipped", when))),
                      "ingested": iso_ms(when + dt.timedelta(seconds=self.seed.number(5, 12, "ingested", when)))},
            "log": {"level": "information"},
            "winlog": winlog,
        }

    def ecs_process_fields(self, process: ProcessFacts) -> dict[str, Any]:
        return {"entity_id": "{" + process.guid + "}", "pid": process.pid, "executable": process.image,
                "name": process.file_name}

    def ecs_from_sysmon(self, record: dict[str, Any], process: ProcessFacts, extra: dict[str, Any]) -> dict[str, Any]:
        event_id = int(record["Event"]["System"]["EventID"])
        action = SYSMON_TASK_NAMES[event_id]
        doc = self.ecs_base(record, "sysmon", action)
        doc["user"] = {"domain": process.user.domain, "name": process.user.name, "id": process.user.sid}
        doc["related"] = {"user": [process.user.name]}
        doc["process"] = self.ecs_process_fields(process)
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(doc.get(key), dict):
                doc[key] = {**doc[key], **value}
            else:
                doc[key] = value
        doc["message"] = _sysmon_message(action, record["Event"]["EventData"])
        return doc








# --------------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------------


def _dash_to_none(value: str) -> str | None:
    return None if value in ("-", "") else value


def _upn(user: User) -> str | None:
    if user.upn:
        return user.upn
    if user.sid.startswith("S-1-5-21-") and user.domain.upper() not in ("NT AUTHORITY", "WORKGROUP"):
        return f"{user.name.lower()}@{user.domain.lower()}.com" if "." not in user.domain else \
            f"{user.name.lower()}@{user.domain.lower()}"
    return None


def _object_id(seed: Seed, user: User) -> str | None:
    if not user.sid.startswith("S-1-5-21-"):
        return None
    return str(_uuid_from(seed.hex(32, "entra-object", user.sid, scoped=False)))


def _uuid_from(hex_digits: str) -> Any:
    import uuid

    raw = bytearray(bytes.fromhex(hex_digits[:32]))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4 layout, as real agent and object ids look
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


def _url_host(url: str | None) -> str | None:
    if not url:
        return None
    match = re.match(r"^(?:[a-z]+://)?([^/:?#]+)", url, re.IGNORECASE)
    return match.group(1) if match else url


def _ip_type(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "Public"
    if address.is_loopback:
        return "Loopback"
    if address.is_private:
        return "Private"
    if address.is_reserved or address.is_multicast:
        return "Reserved"
    return "Public"


def _ecs_string(value: Any) -> str:
    # Winlogbeat ships every EventData value as a string.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sysmon_message(action: str, event_data: dict[str, Any]) -> str:
    title = action.split(" (rule", 1)[0]
    lines = [f"{title}:"] + [f"{key}: {_ecs_string(value)}" for key, value in event_data.items()]
    return "\n".join(lines)


_HIVES = {
    "HKCU": "HKCU", "HKEY_CURRENT_USER": "HKCU", "HKLM": "HKLM", "HKEY_LOCAL_MACHINE": "HKLM",
    "HKU": "HKU", "HKEY_USERS": "HKU", "HKCR": "HKCR", "HKEY_CLASSES_ROOT": "HKCR",
}


def _split_hive(key: str) -> tuple[str, str]:
    hive, _, rest = key.partition("\\")
    canonical = _HIVES.get(hive.upper())
    if canonical is None:
        raise VerifyError(f"registry key {key!r} does not start with a hive (HKLM, HKCU, HKU, HKCR)",
                          SourceSpan(None), hint="write keys like HKCU\\Software\\Microsoft\\...")
    return canonical, rest


def sysmon_registry_path(key: str, user_sid: str) -> str:
    """The key as Sysmon's TargetObject names it (HKCU becomes HKU\\<sid>, HKCR lives under HKLM\\SOFTWARE)."""
    hive, rest = _split_hive(key)
    if hive == "HKCU":
        return f"HKU\\{user_sid}\\{rest}"
    if hive == "HKCR":
        return f"HKLM\\SOFTWARE\\Classes\\{rest}"
    return f"{hive}\\{rest}"


def defender_registry_key(key: str, user_sid: str) -> str:
    """The key as Defender's RegistryKey names it (full hive names, HKCU with the user's SID)."""
    hive, rest = _split_hive(key)
    if hive == "HKCU":
        return f"HKEY_CURRENT_USER\\{user_sid}\\{rest}"
    if hive == "HKCR":
        return f"HKEY_LOCAL_MACHINE\\SOFTWARE\\Classes\\{rest}"
    return {"HKLM": "HKEY_LOCAL_MACHINE", "HKU": "HKEY_USERS"}[hive] + f"\\{rest}"


def _int_data(data: str) -> int:
    text = data.strip().lower()
    return int(text, 16) if text.startswith("0x") else int(text or "0")


def sysmon_registry_details(value_type: str, data: str) -> str:
    if value_type == "REG_DWORD":
        return f"DWORD (0x{_int_data(data):08x})"
    if value_type == "REG_QWORD":
        number = _int_data(data)
        return f"QWORD (0x{number >> 32:08x}-0x{number & 0xFFFFFFFF:08x})"
    if value_type == "REG_BINARY":
        return "Binary Data"
    return data


def defender_registry_data(value_type: str, data: str) -> str:
    if value_type in ("REG_DWORD", "REG_QWORD"):
        return str(_int_data(data))
    return data
