"""The catalog's data model: a detection (``detection.yml``) and its scenarios (``tests.yml``).

Every model is strict (pydantic v2, frozen, unknown keys rejected). ATT&CK names are never stored: a detection
carries only its technique id and the names are derived from the pinned ATT&CK table (``assay.schema.attack``).
A scenario describes the activity as facts (host, user, process tree, files, registry, network, module loads, and
the identity and endpoint events of ``docs/catalog.md`` "Event kinds": logons, Kerberos, account changes, services,
scheduled tasks, process access, PowerShell…) so that a synthesizer can render the same facts as Windows event logs
(Sysmon, Security, System, PowerShell, Task Scheduler), Defender XDR rows and ECS. Hosts, users and processes may be
named fixtures (``detections/_shared/fixtures.yml`` or a ``fixtures:`` block in tests.yml), resolved while validating.

Other stages build on these models: change them only additively.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from assay.errors import SourceSpan

# --------------------------------------------------------------------------------------------------------------
# Small shared types
# --------------------------------------------------------------------------------------------------------------

#: The forms a detection is proven in: the Sigma rule run locally, the native KQL, and the Sigma rule converted to
#: KQL by pySigma's Kusto backend.
Form = Literal["sigma", "kql", "converted"]
FORMS: tuple[Form, ...] = ("sigma", "kql", "converted")

Outcome = Literal["fires", "does-not-fire"]
Severity = Literal["informational", "low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("informational", "low", "medium", "high", "critical")
Confidence = Literal["low", "medium", "high"]
Status = Literal["experimental", "test", "stable", "deprecated"]
ScenarioKind = Literal["attack", "benign"]
IntegrityLevel = Literal["Untrusted", "Low", "Medium", "High", "System"]
RegistryValueType = Literal[
    "REG_SZ", "REG_EXPAND_SZ", "REG_MULTI_SZ", "REG_DWORD", "REG_QWORD", "REG_BINARY", "REG_NONE"
]
Protocol = Literal["tcp", "udp"]

TECHNIQUE_ID_PATTERN = re.compile(r"^T\d{4}(\.\d{3})?$")
SCENARIO_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
PROCESS_REF_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SID_PATTERN = re.compile(r"^S-1-\d+(-\d+)+$")


def _canonical_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError) as error:
        raise ValueError(f"{value!r} is not a UUID (e.g. 6f3c2a8e-...; generate one with `python -c "
                         f"'import uuid; print(uuid.uuid4())'`)") from error


def _technique_id(value: str) -> str:
    if not TECHNIQUE_ID_PATTERN.match(value):
        raise ValueError(f"{value!r} is not an ATT&CK technique id (T1234 or T1234.001)")
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _scenario_id(value: str) -> str:
    if not SCENARIO_ID_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a scenario id (lowercase letters, digits and '-', e.g. atomic-remote-sct)")
    return value


def _process_ref(value: str) -> str:
    if not PROCESS_REF_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a process reference (letters, digits, '_', '.', '-')")
    return value


def _sid(value: str) -> str:
    if not SID_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a Windows SID (S-1-5-21-...)")
    return value


DetectionId = Annotated[str, AfterValidator(_canonical_uuid)]
TechniqueId = Annotated[str, AfterValidator(_technique_id)]
Text = Annotated[str, AfterValidator(_non_blank)]
Url = Annotated[str, AfterValidator(_url)]
ScenarioId = Annotated[str, AfterValidator(_scenario_id)]
ProcessRef = Annotated[str, AfterValidator(_process_ref)]
Sid = Annotated[str, AfterValidator(_sid)]
#: A value a scoring query's output column is expected to hold for the scenario's row.
ColumnValue = bool | int | float | str | None


class StrictModel(BaseModel):
    """Base for every catalog model: frozen, unknown keys rejected, no type coercion surprises."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, str_strip_whitespace=False)


# --------------------------------------------------------------------------------------------------------------
# detection.yml
# --------------------------------------------------------------------------------------------------------------


class HuntingQuery(StrictModel):
    """A KQL hunting query that helps an analyst widen the search around an alert."""

    title: Text
    purpose: Text
    query: Text
    #: Tables the query reads (documentation; lint checks it against the canonical tables).
    tables: tuple[str, ...] = ()


class ResponseStep(StrictModel):
    """One step of the response playbook; the list order is the order to follow."""

    title: Text
    action: Text
    phase: Literal["triage", "containment", "eradication", "recovery", "lessons-learned"] | None = None


class KnownDifference(StrictModel):
    """A declared, justified disagreement between forms, so the proof runner expects it instead of failing."""

    forms: tuple[Form, ...] = Field(min_length=2)
    #: The scenario ids affected, or "all".
    scenarios: Literal["all"] | tuple[ScenarioId, ...]
    reason: Text
    #: The operator or field at the origin of the difference (e.g. "Sigma contains '/s' vs KQL has '/s'").
    operator: str | None = None


class AlertPredicate(StrictModel):
    """When a scoring query's returned row counts as an alert: a KQL predicate over its output columns."""

    predicate: Text
    reason: Text


class Detection(StrictModel):
    """The content of ``detection.yml``."""

    id: DetectionId
    title: Text
    description: Text
    #: The ATT&CK technique or sub-technique id; tactic and names are derived from the pinned ATT&CK data.
    technique: TechniqueId
    severity: Severity
    confidence: Confidence
    status: Status
    data_sources: tuple[Text, ...] = Field(min_length=1)
    required_tables: tuple[Text, ...] = Field(min_length=1)
    explanation: Text
    false_positives: tuple[Text, ...] = ()
    tuning: Text
    response: tuple[ResponseStep, ...] = Field(min_length=1)
    investigation: Text
    hunting: tuple[HuntingQuery, ...] = ()
    references: tuple[Url, ...] = ()
    related: tuple[DetectionId, ...] = ()
    author: Text
    created: dt.date
    modified: dt.date
    #: For a query that scores rather than filters: when a returned row is an alert.
    alert: AlertPredicate | None = None
    known_differences: tuple[KnownDifference, ...] = ()

    @model_validator(mode="after")
    def _modified_not_before_created(self) -> Detection:
        if self.modified < self.created:
            raise ValueError(f"modified ({self.modified}) is before created ({self.created})")
        return self


# --------------------------------------------------------------------------------------------------------------
# tests.yml
# --------------------------------------------------------------------------------------------------------------


class AtomicProvenance(StrictModel):
    """An Atomic Red Team test, by its auto-generated GUID and name."""

    guid: DetectionId
    test: Text
    #: The technique folder in atomics/ (defaults to the detection's technique).
    technique: TechniqueId | None = None
    #: Input arguments given to the test instead of its defaults (``Invoke-AtomicTest … -InputArgs @{…}``), e.g.
    #: a real target where the default is a harmless stand-in; the others keep their defaults.
    input_arguments: dict[str, str] = Field(default_factory=dict)


class FalsePositiveProvenance(StrictModel):
    """A false-positive item of this detection (1-based index into ``false_positives``)."""

    index: int = Field(ge=1)
    #: Optional copy of the item's text; lint checks it matches.
    text: str | None = None


class RecordingProvenance(StrictModel):
    """A real recording under ``../shared/data`` (path relative to that folder)."""

    path: Text
    source: str | None = None

    @model_validator(mode="after")
    def _relative_path(self) -> RecordingProvenance:
        path = Path(self.path)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"recording path {self.path!r} must be relative to the shared data folder, "
                             "without '..'")
        return self


class Provenance(StrictModel):
    """Where a scenario comes from: exactly one of atomic, false_positive, recording, own."""

    atomic: AtomicProvenance | None = None
    false_positive: FalsePositiveProvenance | None = None
    recording: RecordingProvenance | None = None
    #: A scenario we wrote ourselves: say why it exists.
    own: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Provenance:
        given = [name for name in ("atomic", "false_positive", "recording", "own") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("provenance needs exactly one of atomic, false_positive, recording, own "
                             f"(got {', '.join(given) or 'none'})")
        return self

    @property
    def kind(self) -> Literal["atomic", "false_positive", "recording", "own"]:
        if self.atomic:
            return "atomic"
        if self.false_positive:
            return "false_positive"
        if self.recording:
            return "recording"
        return "own"


class Expected(StrictModel):
    """The expected outcome per form, plus expected output-column values for scoring queries."""

    sigma: Outcome
    kql: Outcome
    #: The Sigma rule converted to KQL; when omitted, the same as ``sigma``.
    converted: Outcome | None = None
    #: Column values the native query returns for the scenario's row (e.g. {AutoClose: true}).
    columns: dict[str, ColumnValue] = Field(default_factory=dict)

    def outcome(self, form: Form) -> Outcome:
        if form == "sigma":
            return self.sigma
        if form == "kql":
            return self.kql
        return self.converted if self.converted is not None else self.sigma


class Host(StrictModel):
    name: Text
    domain: str | None = None
    #: e.g. "Windows 11 23H2"; synthesizers default to Windows 10/11.
    os: str | None = None
    ip: str | None = None
    device_id: str | None = None

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.domain}" if self.domain and "." in self.domain else self.name


class User(StrictModel):
    domain: Text
    name: Text
    sid: Sid
    upn: str | None = None
    logon_id: int | None = None


# --------------------------------------------------------------------------------------------------------------
# Fixtures: hosts, users and process templates referenced by name
# --------------------------------------------------------------------------------------------------------------

#: The validation context key holding the fixtures in scope (shared ones merged with the file's own).
FIXTURES_CONTEXT = "assay_fixtures"


class Fixtures(StrictModel):
    """Named hosts, users and process templates (``detections/_shared/fixtures.yml`` or tests.yml ``fixtures:``).

    A scenario names them instead of repeating them: ``host: ws-0107``, ``user: alice``, and a process
    ``{use: atomic-powershell}`` (the template's keys, overridden by the process's own; its id defaults to the name).
    """

    hosts: dict[str, Host] = Field(default_factory=dict)
    users: dict[str, User] = Field(default_factory=dict)
    #: Process templates: partial process mappings (image, command_line, parent_image, integrity, user…).
    processes: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def merged(self, other: Fixtures | None) -> Fixtures:
        """These fixtures with ``other``'s added (``other`` wins on a name both define)."""
        if other is None:
            return self
        return Fixtures(hosts={**self.hosts, **other.hosts}, users={**self.users, **other.users},
                        processes={**self.processes, **other.processes})


def _fixtures_of(info: ValidationInfo) -> Fixtures | None:
    context = info.context
    if isinstance(context, dict):
        found = context.get(FIXTURES_CONTEXT)
        if isinstance(found, Fixtures):
            return found
    return None


def _named(kind: str, value: Any, info: ValidationInfo) -> Any:
    """A fixture name replaced by the fixture's fields; anything else is left for the model to validate."""
    if not isinstance(value, str):
        return value
    fixtures = _fixtures_of(info)
    table: dict[str, Any] = getattr(fixtures, kind) if fixtures is not None else {}
    if value in table:
        found = table[value]
        return found.model_dump(exclude_none=True) if isinstance(found, BaseModel) else found
    known = ", ".join(sorted(table)) or "none defined"
    raise ValueError(f"{value!r} is not a {kind[:-1]} fixture (known: {known}); define it under `{kind}:` in "
                     "detections/_shared/fixtures.yml or the file's `fixtures:`, or write the mapping inline")


def _host_ref(value: Any, info: ValidationInfo) -> Any:
    return _named("hosts", value, info)


def _user_ref(value: Any, info: ValidationInfo) -> Any:
    return _named("users", value, info)


#: A host, inline or by fixture name.
HostRef = Annotated[Host, BeforeValidator(_host_ref, json_schema_input_type=Host | str)]
#: A user, inline or by fixture name.
UserRef = Annotated[User, BeforeValidator(_user_ref, json_schema_input_type=User | str)]


class Process(StrictModel):
    """A process in the scenario's tree.

    Its parent is either another process of the scenario (``parent``, a ref) or, for a root, an explicit
    ``parent_image`` + ``parent_command_line`` standing for a process that started before the scenario.
    ``use: <template>`` takes the keys of a process fixture (the process's own keys win).
    """

    id: ProcessRef
    image: Text
    command_line: Text
    parent: ProcessRef | None = None
    parent_image: str | None = None
    parent_command_line: str | None = None
    integrity: IntegrityLevel = "Medium"
    #: Runs as another user than the activity's user (e.g. SYSTEM).
    user: UserRef | None = None
    #: PE OriginalFileName; synthesizers derive it from the image name when omitted (renamed binaries set it).
    original_file_name: str | None = None
    #: Token elevation (TokenElevationTypeFull); e.g. an auto-elevated COM server child after a UAC bypass.
    elevated: bool = False
    current_directory: str | None = None
    pid: int | None = Field(default=None, ge=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    #: Seconds after the activity's start (defaults: a small step per process in list order).
    after_seconds: float | None = Field(default=None, ge=0)
    #: The process fixture this process was built from (its keys, overridden by the ones given here).
    use: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _template(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or "use" not in data:
            return data
        name = data["use"]
        fixtures = _fixtures_of(info)
        templates = fixtures.processes if fixtures is not None else {}
        if not isinstance(name, str) or name not in templates:
            known = ", ".join(sorted(templates)) or "none defined"
            raise ValueError(f"use: {name!r} is not a process fixture (known: {known})")
        merged = {"id": name, **templates[name], **data}
        if "parent" in data:
            # A template's root parent gives way to a parent the scenario names.
            for key in ("parent_image", "parent_command_line"):
                if key not in data:
                    merged.pop(key, None)
        return merged

    @model_validator(mode="after")
    def _one_kind_of_parent(self) -> Process:
        if self.parent and (self.parent_image or self.parent_command_line):
            raise ValueError(f"process {self.id!r}: give either parent (a ref) or parent_image/"
                             "parent_command_line, not both")
        if not self.parent and not self.parent_image:
            raise ValueError(f"process {self.id!r}: a root process needs parent_image (and parent_command_line)")
        return self

    @property
    def file_name(self) -> str:
        return re.split(r"[\\/]", self.image)[-1]


class FileWrite(StrictModel):
    """A file the process created or wrote (Sysmon 11, DeviceFileEvents FileCreated)."""

    process: ProcessRef
    path: Text
    #: What the file holds, in words or a short excerpt (e.g. "INF with UnRegisterOCXs -> remote .sct").
    content: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    after_seconds: float | None = Field(default=None, ge=0)


class RegistryWrite(StrictModel):
    """A registry value the process set (Sysmon 13, DeviceRegistryEvents RegistryValueSet)."""

    process: ProcessRef
    key: Text
    value_name: str
    data: str
    type: RegistryValueType = "REG_SZ"
    after_seconds: float | None = Field(default=None, ge=0)


class NetworkConnection(StrictModel):
    """An outbound connection the process made (Sysmon 3, DeviceNetworkEvents ConnectionSuccess)."""

    process: ProcessRef
    remote_ip: Text
    remote_port: int = Field(ge=0, le=65535)
    remote_url: str | None = None
    protocol: Protocol = "tcp"
    local_ip: str | None = None
    local_port: int | None = Field(default=None, ge=0, le=65535)
    after_seconds: float | None = Field(default=None, ge=0)


class ImageLoad(StrictModel):
    """A module (DLL) the process loaded (Sysmon 7, DeviceImageLoadEvents), e.g. scrobj.dll for a scriptlet."""

    process: ProcessRef
    path: Text
    signed: bool = True
    signature: str | None = None
    after_seconds: float | None = Field(default=None, ge=0)


# --------------------------------------------------------------------------------------------------------------
# Identity and endpoint events beyond the process tree (docs/catalog.md, "Event kinds")
# --------------------------------------------------------------------------------------------------------------

#: Windows logon types by name (Security 4624 LogonType); a number 2-13 is accepted too.
LOGON_TYPES: dict[str, int] = {
    "interactive": 2, "network": 3, "batch": 4, "service": 5, "unlock": 7, "network-cleartext": 8,
    "new-credentials": 9, "remote-interactive": 10, "cached-interactive": 11, "cached-remote-interactive": 12,
    "cached-unlock": 13,
}
LogonFailure = Literal["bad-password", "unknown-user", "locked-out", "disabled", "expired-password",
                       "logon-type-not-granted"]
TicketEncryption = Literal["rc4", "aes256", "aes128", "des", "rc4-exp"]


class Repeated(StrictModel):
    """An event that may repeat: ``count`` times, ``every_seconds`` apart, the first ``after_seconds`` after the
    activity's start (or, without it, shortly after the last event listed before it in the same list)."""

    after_seconds: float | None = Field(default=None, ge=0)
    count: int = Field(default=1, ge=1, le=10_000)
    every_seconds: float = Field(default=1.0, ge=0)


class Logon(Repeated):
    """A logon to the activity's host (Security 4624 success / 4625 failure; 4672 for an admin; 4634 at logoff;
    DeviceLogonEvents LogonSuccess / LogonFailed)."""

    #: The account logging on (default: the activity's user).
    user: UserRef | None = None
    #: interactive, network, batch, service, unlock, network-cleartext, new-credentials, remote-interactive,
    #: cached-interactive, or the number.
    type: str | int = "network"
    outcome: Literal["success", "failure"] = "success"
    #: Why a failure failed (Status/SubStatus/FailureReason); default bad-password.
    failure: LogonFailure | None = None
    #: Where the logon came from (IpAddress / RemoteIP); "-" for a local one.
    source_ip: str | None = None
    source_port: int | None = Field(default=None, ge=0, le=65535)
    #: The client's name (WorkstationName / RemoteDeviceName).
    source_workstation: str | None = None
    #: NTLM, Kerberos or Negotiate (default: NTLM for a network logon from an IP, else Negotiate).
    auth_package: Literal["NTLM", "Kerberos", "Negotiate"] | None = None
    #: LogonProcessName (default by type and package: User32, NtLmSsp, Kerberos, Advapi, seclogo…).
    logon_process: str | None = None
    #: LmPackageName for NTLM ("NTLM V2" default, "NTLM V1", "LM").
    lm_package: str | None = None
    #: KeyLength (default 128 for NTLM, 0 otherwise); pass-the-hash tools often show 0.
    key_length: int | None = Field(default=None, ge=0)
    #: ElevatedToken (default: true for admins).
    elevated: bool | None = None
    #: The account is an administrator here: a 4672 with its privileges follows a success; IsLocalAdmin.
    admin: bool = False
    #: The process that asked for the logon (ProcessName/ProcessId, Defender InitiatingProcess*), a ref.
    process: ProcessRef | None = None
    #: For new-credentials (runas /netonly, seclogo): the outbound account (TargetOutboundUserName/DomainName).
    outbound_user: str | None = None
    outbound_domain: str | None = None
    #: Seconds after the logon when its session ends (a 4634); none when omitted.
    logoff_after_seconds: float | None = Field(default=None, ge=0)
    #: The session's logon id (default derived).
    logon_id: int | None = None

    @field_validator("type")
    @classmethod
    def _logon_type(cls, value: str | int) -> str | int:
        if isinstance(value, int):
            if not 2 <= value <= 13:
                raise ValueError(f"logon type {value} is not a Windows logon type (2-13)")
            return value
        if value not in LOGON_TYPES:
            raise ValueError(f"{value!r} is not a logon type (one of {', '.join(LOGON_TYPES)}, or 2-13)")
        return value

    @property
    def logon_type(self) -> int:
        return self.type if isinstance(self.type, int) else LOGON_TYPES[self.type]


class ExplicitCredentials(Repeated):
    """A logon with explicit credentials (Security 4648: runas, PsExec -u, WMIC /user, Invoke-Command -Credential)."""

    #: The process that used them (ProcessName/ProcessId), a ref.
    process: ProcessRef | None = None
    #: The account whose credentials were used.
    target_user: UserRef
    #: The server they were used against (TargetServerName), e.g. "dc01.corp.contoso.com" or "localhost".
    target_server: Text = "localhost"
    #: TargetInfo (default: the server name; e.g. "RPCSS/server" or "cifs/server").
    target_info: str | None = None
    #: Who used them (default: the process's user or the activity's user).
    user: UserRef | None = None
    target_ip: str | None = None


class KerberosEvent(Repeated):
    """A Kerberos event on the activity's host, a domain controller: a TGT request (4768), a service ticket (4769)
    or a pre-authentication failure (4771)."""

    kind: Literal["tgt", "service-ticket", "preauth-failed"]
    #: The requesting account (default: the activity's user).
    user: UserRef | None = None
    #: ServiceName: krbtgt for a TGT; for a service ticket the service account or computer ("svc_sql", "FS01$").
    service: str | None = None
    service_sid: Sid | None = None
    #: TicketEncryptionType: rc4 (0x17), aes256 (0x12), aes128 (0x11), des (0x3), rc4-exp (0x18).
    encryption: TicketEncryption = "aes256"
    #: PreAuthType: 2 encrypted timestamp (default), 0 none (the account does not require pre-authentication:
    #: AS-REP roasting), 15/16/17 PKINIT.
    pre_auth_type: int = Field(default=2, ge=0)
    #: Status: "0x0" success; e.g. "0x18" bad password (4771), "0x6" unknown principal, "0x12" revoked.
    status: str = Field(default="0x0", pattern=r"^0x[0-9a-fA-F]+$")
    #: The client address (IpAddress, written ::ffff:a.b.c.d for IPv4 as DCs log it).
    client_ip: str = "10.0.0.50"
    client_port: int | None = Field(default=None, ge=0, le=65535)
    ticket_options: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]+$")


#: Directory-replication control access rights (4662 Properties): DS-Replication-Get-Changes,
#: DS-Replication-Get-Changes-All and DS-Replication-Get-Changes-In-Filtered-Set.
REPLICATION_GUIDS: tuple[str, ...] = ("1131f6aa-9c07-11d1-f79f-00c04fc2dcd2", "1131f6ad-9c07-11d1-f79f-00c04fc2dcd2",
                                      "89e95b76-444d-4c62-991a-0facbeda640c")


class DirectoryAccess(Repeated):
    """An operation on an Active Directory object (Security 4662 on a domain controller), e.g. DCSync's
    replication requests: ``replication: true`` fills Properties with the replication rights."""

    #: Who performed it (default: the activity's user).
    user: UserRef | None = None
    #: ObjectType's schema class GUID (default domainDNS, 19195a5b-6da0-11d0-afd3-00c04fd930c9).
    object_type: str = "19195a5b-6da0-11d0-afd3-00c04fd930c9"
    #: ObjectName: the object's GUID (default derived from the host's domain).
    object_guid: str | None = None
    #: Request the replication rights (Get-Changes and Get-Changes-All; the filtered set with ``all_rights``).
    replication: bool = False
    #: Property or control-access GUIDs to list in Properties (in addition to the replication ones).
    properties: tuple[str, ...] = ()
    #: AccessMask (0x100 Control Access for extended rights; 0x10 read property; 0x20 write property).
    access_mask: str = Field(default="0x100", pattern=r"^0x[0-9a-fA-F]+$")


AccountAction = Literal["created", "enabled", "disabled", "password-reset", "password-changed", "changed",
                        "deleted", "added-to-group", "removed-from-group"]


class AccountChange(Repeated):
    """A user or group change (Security 4720 created, 4722 enabled, 4725 disabled, 4724 password reset, 4723
    password changed, 4738 changed, 4726 deleted, 4728/4732/4756 member added to a global/local/universal group,
    4729/4733/4757 removed)."""

    action: AccountAction
    #: The account changed, or the member added/removed.
    target: UserRef
    #: For group changes: the group's name ("Administrators", "Domain Admins").
    group: str | None = None
    #: For group changes: local (4732, e.g. Builtin Administrators), global (4728, Domain Admins) or universal (4756).
    group_scope: Literal["local", "global", "universal"] = "local"
    group_domain: str | None = None
    group_sid: Sid | None = None
    #: Who made the change (default: the activity's user).
    by: UserRef | None = None
    #: For 4738/4720: the changed attributes as they would print (e.g. {"UserAccountControl": "%%2089"}).
    attributes: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _group_needed(self) -> AccountChange:
        if self.action in ("added-to-group", "removed-from-group") and not self.group:
            raise ValueError(f"{self.action}: name the group (group: Administrators)")
        return self


class ShareAccess(Repeated):
    """A network share accessed on the activity's host (Security 5140; with ``relative_target`` also the detailed
    5145 for that file or pipe)."""

    #: The share as Windows names it: "\\\\*\\ADMIN$", "\\\\*\\C$", "\\\\*\\IPC$".
    share: Text
    #: The file or pipe opened inside it (RelativeTargetName), e.g. "PSEXESVC.exe" or "svcctl".
    relative_target: str | None = None
    share_local_path: str | None = None
    user: UserRef | None = None
    source_ip: Text = "10.0.0.50"
    source_port: int | None = Field(default=None, ge=0, le=65535)
    #: AccessMask (0x1 read; 0x2 write; 0x12019f read/write).
    access_mask: str = Field(default="0x1", pattern=r"^0x[0-9a-fA-F]+$")


class LogClear(Repeated):
    """An event log cleared: the Security log writes 1102 (in UserData), any other log writes System 104."""

    channel: Text = "Security"
    #: Who cleared it (default: the activity's user).
    user: UserRef | None = None
    #: The process that cleared it (wevtutil.exe cl, Clear-EventLog…), a ref: Defender's initiating process.
    process: ProcessRef | None = None


ServiceStart = Literal["boot", "system", "auto", "demand", "disabled"]


class ServiceInstall(Repeated):
    """A service installed (System 7045, Security 4697, DeviceEvents ServiceInstalled)."""

    name: Text
    #: ImagePath as the SCM stores it (may carry arguments, e.g. %COMSPEC% /c …).
    image_path: Text
    display_name: str | None = None
    service_type: Literal["user mode service", "kernel mode driver", "file system driver",
                          "user own process"] = "user mode service"
    start_type: ServiceStart = "demand"
    account: str = "LocalSystem"
    #: The process that installed it (sc.exe, services.exe for a remote PsExec…), a ref.
    process: ProcessRef | None = None
    #: Who installed it (default: the process's user or the activity's user).
    user: UserRef | None = None


class ScheduledTask(Repeated):
    """A scheduled task registered or updated (Security 4698 / 4702 with the TaskContent XML, TaskScheduler 106,
    DeviceEvents ScheduledTaskCreated / ScheduledTaskUpdated) and, with ``runs``, its action started (TaskScheduler
    200 and the process, when one of the scenario's processes is given as ``started``)."""

    #: The task path, e.g. "\\Microsoft\\Windows\\Updater" (a leading backslash is added when missing).
    name: Text
    command: Text
    arguments: str | None = None
    action: Literal["created", "updated"] = "created"
    #: The account it runs as: SYSTEM, or a user fixture / mapping (default: the creating user).
    run_as: UserRef | Literal["SYSTEM"] | None = None
    trigger: Literal["logon", "boot", "daily", "once", "idle"] = "once"
    run_level: Literal["LeastPrivilege", "HighestAvailable"] = "LeastPrivilege"
    hidden: bool = False
    author: str | None = None
    #: The process that registered it (schtasks.exe, powershell.exe…), a ref.
    process: ProcessRef | None = None
    #: Who registered it (default: the process's user or the activity's user).
    user: UserRef | None = None
    #: The task ran: TaskScheduler 200 (action started) a second after it was registered.
    runs: bool = False

    @property
    def path(self) -> str:
        return self.name if self.name.startswith("\\") else "\\" + self.name


class ProcessAccess(Repeated):
    """A process opened another (Sysmon 10; DeviceEvents OpenProcessApiCall), e.g. a dumper opening lsass.exe."""

    process: ProcessRef
    #: The target: a process of the scenario (ref) or an image path (default lsass.exe).
    target: ProcessRef | None = None
    target_image: str = "C:\\Windows\\System32\\lsass.exe"
    target_pid: int | None = Field(default=None, ge=1)
    #: GrantedAccess as Sysmon prints it: 0x1010, 0x1410, 0x1FFFFF, 0x143A…
    granted_access: str = Field(default="0x1010", pattern=r"^0x[0-9a-fA-F]+$")
    #: CallTrace: "module+offset|module+offset"; default: ntdll, KERNELBASE, then the modules in ``via``
    #: (e.g. dbghelp.dll / dbgcore.dll for MiniDumpWriteDump, comsvcs.dll) and the source image.
    call_trace: str | None = None
    via: tuple[str, ...] = ()


class RemoteThread(Repeated):
    """A thread created in another process (Sysmon 8; DeviceEvents CreateRemoteThreadApiCall)."""

    process: ProcessRef
    target: ProcessRef | None = None
    target_image: str = "C:\\Windows\\System32\\notepad.exe"
    target_pid: int | None = Field(default=None, ge=1)
    start_address: str = Field(default="0x0000023A5C2D0000", pattern=r"^0x[0-9a-fA-F]+$")
    #: The module and function the thread starts in ("" for shellcode in private memory, as Sysmon prints it).
    start_module: str = ""
    start_function: str = ""


class NamedPipe(Repeated):
    """A named pipe created (Sysmon 17) or connected to (Sysmon 18); DeviceEvents NamedPipeEvent."""

    process: ProcessRef
    #: The pipe name with its leading backslash, e.g. "\\PSEXESVC" or "\\MSSE-1234-server".
    name: Text
    action: Literal["created", "connected"] = "created"


class WmiSubscription(Repeated):
    """A permanent WMI event subscription: filter (Sysmon 19), consumer (20) and binding (21); DeviceEvents
    WmiBindEventFilterToConsumer."""

    #: The process that created it (wmic.exe, powershell.exe…), a ref; its user is the subscription's user.
    process: ProcessRef | None = None
    name: Text
    query: Text = ("SELECT * FROM __InstanceModificationEvent WITHIN 60 WHERE TargetInstance ISA "
                   "'Win32_PerfFormattedData_PerfOS_System' AND TargetInstance.SystemUpTime >= 240")
    namespace: str = "root\\CimV2"
    consumer_type: Literal["command-line", "active-script"] = "command-line"
    #: What the consumer runs: a command line (CommandLineEventConsumer) or script text (ActiveScriptEventConsumer).
    destination: Text
    operation: Literal["Created", "Deleted"] = "Created"


class DnsQuery(Repeated):
    """A DNS query a process made (Sysmon 22; DeviceEvents DnsQueryResponse)."""

    process: ProcessRef
    query: Text
    #: The answers as addresses (Sysmon prints "::ffff:a.b.c.d;" each); empty for a failed query.
    results: tuple[str, ...] = ()
    #: QueryStatus: 0 success, 9003 name does not exist (DNS_ERROR_RCODE_NAME_ERROR), 1460 timeout.
    status: int = 0


class FileDelete(Repeated):
    """A file deleted (Sysmon 23 when archived, 26 when only logged; DeviceFileEvents FileDeleted)."""

    process: ProcessRef
    path: Text
    #: Sysmon archived a copy (23, FileDelete) or only logged it (26, FileDeleteDetected).
    archived: bool = False
    is_executable: bool | None = None


class PowerShellScript(Repeated):
    """PowerShell run in a process: script block logging (PowerShell/Operational 4104, split into parts of
    ``POWERSHELL_PART_CHARS`` characters with MessageNumber/MessageTotal), optional module logging (4103 per
    command) and DeviceEvents PowerShellCommand per command."""

    process: ProcessRef
    #: The script block text as PowerShell compiled it (the decoded text for -EncodedCommand).
    script: Text
    #: The script file (4104 Path), when run from a file.
    path: str | None = None
    #: The commands it ran (4103 and Defender's PowerShellCommand); default: the Verb-Noun names in the script.
    commands: tuple[str, ...] | None = None
    #: Also write module logging (4103) for each command.
    module_logging: bool = False
    #: Level 3 (Warning) when PowerShell flags the block as suspicious (default: 5, Verbose).
    suspicious: bool = False


class AntivirusDetection(Repeated):
    """Microsoft Defender Antivirus found a threat (Windows Defender/Operational 1116, and 1117 when it acted;
    DeviceEvents AntivirusDetection)."""

    threat: Text
    #: The file or resource it found (Path), e.g. "C:\\Users\\Public\\mimikatz.exe".
    path: Text
    #: The process involved (Process Name; Defender's initiating process), a ref.
    process: ProcessRef | None = None
    severity: Literal["Low", "Moderate", "High", "Severe"] = "Severe"
    category: str = "Trojan"
    #: What it did: quarantined / removed / blocked write 1117 after 1116; "allowed" only 1116.
    action: Literal["quarantined", "removed", "blocked", "allowed"] = "quarantined"


class DeviceEvent(Repeated):
    """Any other Defender XDR ``DeviceEvents`` row (Defender-only telemetry), e.g. ``ActionType:
    AsrLsassCredentialTheftBlocked``, ``TamperingAttempt``, ``LdapSearch``: the columns are given as they appear."""

    action_type: Text
    #: The initiating process (a ref; its columns are filled from it).
    process: ProcessRef | None = None
    file_name: str | None = None
    folder_path: str | None = None
    process_command_line: str | None = None
    remote_ip: str | None = None
    remote_port: int | None = Field(default=None, ge=0, le=65535)
    remote_url: str | None = None
    registry_key: str | None = None
    registry_value_name: str | None = None
    registry_value_data: str | None = None
    account_name: str | None = None
    account_domain: str | None = None
    account_sid: Sid | None = None
    additional_fields: dict[str, Any] = Field(default_factory=dict)


#: Activity keys holding events of a process (their ``process`` must name one of the scenario's processes).
PROCESS_EVENT_KINDS: tuple[str, ...] = (
    "files", "registry", "network", "modules", "process_access", "remote_threads", "pipes", "dns", "file_deletes",
    "powershell")
#: Activity keys whose events may name a process (optional ``process``).
OPTIONAL_PROCESS_EVENT_KINDS: tuple[str, ...] = (
    "logons", "explicit_credentials", "log_clears", "services", "scheduled_tasks", "wmi", "antivirus",
    "device_events")
#: Every event list of an activity besides ``processes``.
EVENT_KINDS: tuple[str, ...] = (*PROCESS_EVENT_KINDS, *OPTIONAL_PROCESS_EVENT_KINDS, "kerberos", "directory_access",
                                "accounts", "shares")


class Activity(StrictModel):
    """What happened, as facts: where, who, when, the process tree with its side effects, and the identity and
    endpoint events (logons, Kerberos, account changes, services, tasks, process access, PowerShell…)."""

    host: HostRef
    user: UserRef
    start: AwareDatetime
    processes: tuple[Process, ...] = ()
    files: tuple[FileWrite, ...] = ()
    registry: tuple[RegistryWrite, ...] = ()
    network: tuple[NetworkConnection, ...] = ()
    modules: tuple[ImageLoad, ...] = ()
    logons: tuple[Logon, ...] = ()
    explicit_credentials: tuple[ExplicitCredentials, ...] = ()
    kerberos: tuple[KerberosEvent, ...] = ()
    directory_access: tuple[DirectoryAccess, ...] = ()
    accounts: tuple[AccountChange, ...] = ()
    shares: tuple[ShareAccess, ...] = ()
    log_clears: tuple[LogClear, ...] = ()
    services: tuple[ServiceInstall, ...] = ()
    scheduled_tasks: tuple[ScheduledTask, ...] = ()
    process_access: tuple[ProcessAccess, ...] = ()
    remote_threads: tuple[RemoteThread, ...] = ()
    pipes: tuple[NamedPipe, ...] = ()
    wmi: tuple[WmiSubscription, ...] = ()
    dns: tuple[DnsQuery, ...] = ()
    file_deletes: tuple[FileDelete, ...] = ()
    powershell: tuple[PowerShellScript, ...] = ()
    antivirus: tuple[AntivirusDetection, ...] = ()
    device_events: tuple[DeviceEvent, ...] = ()

    @model_validator(mode="after")
    def _references_resolve(self) -> Activity:
        if not self.processes and not any(getattr(self, kind) for kind in EVENT_KINDS):
            raise ValueError("the activity has no events: list processes or at least one event "
                             f"({', '.join(EVENT_KINDS)})")
        seen: set[str] = set()
        for process in self.processes:
            if process.id in seen:
                raise ValueError(f"duplicate process id {process.id!r}")
            if process.parent is not None and process.parent not in seen:
                raise ValueError(f"process {process.id!r}: parent {process.parent!r} must be a process listed "
                                 "before it")
            seen.add(process.id)
        known = ", ".join(sorted(seen)) or "none listed"
        for kind in (*PROCESS_EVENT_KINDS, *OPTIONAL_PROCESS_EVENT_KINDS):
            for item in getattr(self, kind):
                refs = [getattr(item, "process", None), getattr(item, "target", None)
                        if kind in ("process_access", "remote_threads") else None]
                for ref in refs:
                    if ref is not None and ref not in seen:
                        raise ValueError(f"{kind}: process {ref!r} is not one of the scenario's processes ({known})")
        return self

    def process(self, ref: str) -> Process:
        for process in self.processes:
            if process.id == ref:
                return process
        raise KeyError(ref)

    def children(self, ref: str) -> tuple[Process, ...]:
        return tuple(p for p in self.processes if p.parent == ref)


class Scenario(StrictModel):
    """One test scenario: attack (every form must fire) or benign (none may), with its provenance and facts."""

    id: ScenarioId
    title: Text
    kind: ScenarioKind
    provenance: Provenance
    expected: Expected
    #: The telemetry the activity produces, in words ("Sysmon EID 1 cmstp.exe with /s and a Temp path").
    expected_telemetry: tuple[Text, ...] = ()
    #: The facts; required unless the scenario replays a recording.
    activity: Activity | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _activity_or_recording(self) -> Scenario:
        if self.activity is None and self.provenance.recording is None:
            raise ValueError(f"scenario {self.id!r}: activity is required (only a recording scenario may omit it)")
        return self


class ScenarioFile(StrictModel):
    """The content of ``tests.yml``: optional ``fixtures`` (named hosts, users, process templates, added to the
    shared ones) and ``defaults`` (activity keys every scenario's activity gets unless it sets them), then the
    scenarios."""

    fixtures: Fixtures | None = None
    #: Activity keys (host, user, start, processes…) given to every scenario's activity that does not set them.
    defaults: dict[str, Any] = Field(default_factory=dict)
    scenarios: tuple[Scenario, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _fixtures_and_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        local = data.get("fixtures")
        if isinstance(local, dict) and isinstance(info.context, dict):
            # The file's own fixtures join the shared ones for the scenarios below (they are validated again
            # as this model's ``fixtures`` field, with the file's line numbers).
            shared = _fixtures_of(info) or Fixtures()
            info.context[FIXTURES_CONTEXT] = shared.merged(Fixtures.model_validate(local, context=info.context))
        defaults = data.get("defaults")
        if not isinstance(defaults, dict) or not defaults:
            return data
        unknown = sorted(set(defaults) - set(Activity.model_fields))
        if unknown:
            raise ValueError(f"defaults: {', '.join(unknown)} is not an activity key "
                             f"({', '.join(Activity.model_fields)})")
        scenarios = data.get("scenarios")
        if not isinstance(scenarios, list):
            return data
        merged_scenarios = []
        for scenario in scenarios:
            if isinstance(scenario, dict) and isinstance(scenario.get("activity"), dict):
                scenario = {**scenario, "activity": {**defaults, **scenario["activity"]}}
            merged_scenarios.append(scenario)
        return {**data, "scenarios": merged_scenarios}

    @model_validator(mode="after")
    def _unique_ids(self) -> ScenarioFile:
        seen: set[str] = set()
        for scenario in self.scenarios:
            if scenario.id in seen:
                raise ValueError(f"duplicate scenario id {scenario.id!r}")
            seen.add(scenario.id)
        return self


def validate_scenario_file(data: Any, fixtures: Fixtures | None = None) -> ScenarioFile:
    """Validate a tests.yml document with the shared fixtures in scope (the file's own ``fixtures`` join them)."""
    return ScenarioFile.model_validate(data, context={FIXTURES_CONTEXT: fixtures or Fixtures()})


# --------------------------------------------------------------------------------------------------------------
# A loaded detection folder
# --------------------------------------------------------------------------------------------------------------

#: A path into a YAML document: mapping keys and sequence indexes, e.g. ("scenarios", 2, "expected", "kql").
YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlMarks:
    """Where each node of a YAML document starts (1-based line and column), to point errors at the source."""

    file: str
    text: str
    #: node path -> (line, col) of the node's value; ``keys``: node path -> (line, col) of its mapping key.
    nodes: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)

    def span(self, path: YamlPath = (), *, key: bool = False) -> SourceSpan:
        """The span of the node at ``path`` (of its key when ``key``), or of its nearest known ancestor."""
        probe = tuple(path)
        while True:
            found = (self.keys.get(probe) if key else None) or self.nodes.get(probe)
            if found is not None:
                return SourceSpan(self.file, found[0], found[1], self.text)
            if not probe:
                return SourceSpan(self.file, 1, 1, self.text)
            probe = probe[:-1]


@dataclass(frozen=True)
class LoadedDetection:
    """A detection folder, loaded: the model, the rule texts, the scenarios and where every node came from."""

    path: Path
    detection: Detection
    detection_path: Path
    sigma_path: Path | None
    sigma_text: str | None
    kql_path: Path | None
    kql_text: str | None
    tests_path: Path | None
    scenarios: tuple[Scenario, ...]
    #: YAML marks by file kind: "detection", "tests" (and "sigma" when the rule is valid YAML).
    marks: dict[str, YamlMarks] = field(default_factory=dict, compare=False)

    @property
    def id(self) -> str:
        return self.detection.id

    @property
    def forms(self) -> tuple[Form, ...]:
        """The forms this detection can be proven in (``converted`` comes from the Sigma rule)."""
        forms: list[Form] = []
        if self.sigma_text is not None:
            forms.append("sigma")
        if self.kql_text is not None:
            forms.append("kql")
        if self.sigma_text is not None:
            forms.append("converted")
        return tuple(forms)

    def scenario(self, scenario_id: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.id == scenario_id:
                return scenario
        raise KeyError(scenario_id)

    def attack_scenarios(self) -> Iterator[Scenario]:
        return (s for s in self.scenarios if s.kind == "attack")

    def benign_scenarios(self) -> Iterator[Scenario]:
        return (s for s in self.scenarios if s.kind == "benign")

    def span(self, kind: str, path: YamlPath = (), *, key: bool = False) -> SourceSpan:
        """Where a node of one of the folder's YAML files is ("detection", "tests", "sigma")."""
        marks = self.marks.get(kind)
        if marks is None:
            file = {"detection": self.detection_path, "tests": self.tests_path, "sigma": self.sigma_path}.get(kind)
            return SourceSpan(str(file) if file else str(self.path))
        return marks.span(path, key=key)

    def known_difference(self, form_a: Form, form_b: Form, scenario_id: str) -> KnownDifference | None:
        """The declared difference covering this pair of forms on this scenario, if any."""
        for difference in self.detection.known_differences:
            if form_a in difference.forms and form_b in difference.forms and (
                difference.scenarios == "all" or scenario_id in difference.scenarios
            ):
                return difference
        return None


def model_keys(model: type[BaseModel]) -> list[str]:
    """The field names a model accepts (for 'did you mean' on unknown keys)."""
    return list(model.model_fields)


def json_schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()
