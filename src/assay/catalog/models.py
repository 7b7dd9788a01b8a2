"""The catalog's data model: a detection (``detection.yml``) and its scenarios (``tests.yml``).

Every model is strict (pydantic v2, frozen, unknown keys rejected). ATT&CK names are never stored: a detection
carries only its technique id and the names are derived from the pinned ATT&CK table (``assay.schema.attack``).
A scenario describes the activity as facts (host, user, process tree, files, registry, network, module loads) so
that a synthesizer can render the same facts as Sysmon 1/3/7/11/13, Security 4688, Defender XDR rows and ECS.

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

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

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


class Process(StrictModel):
    """A process in the scenario's tree.

    Its parent is either another process of the scenario (``parent``, a ref) or, for a root, an explicit
    ``parent_image`` + ``parent_command_line`` standing for a process that started before the scenario.
    """

    id: ProcessRef
    image: Text
    command_line: Text
    parent: ProcessRef | None = None
    parent_image: str | None = None
    parent_command_line: str | None = None
    integrity: IntegrityLevel = "Medium"
    #: Runs as another user than the activity's user (e.g. SYSTEM).
    user: User | None = None
    #: PE OriginalFileName; synthesizers derive it from the image name when omitted (renamed binaries set it).
    original_file_name: str | None = None
    #: Token elevation (TokenElevationTypeFull); e.g. an auto-elevated COM server child after a UAC bypass.
    elevated: bool = False
    current_directory: str | None = None
    pid: int | None = Field(default=None, ge=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    #: Seconds after the activity's start (defaults: a small step per process in list order).
    after_seconds: float | None = Field(default=None, ge=0)

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


class Activity(StrictModel):
    """What happened, as facts: where, who, when, and the process tree with its side effects."""

    host: Host
    user: User
    start: AwareDatetime
    processes: tuple[Process, ...] = Field(min_length=1)
    files: tuple[FileWrite, ...] = ()
    registry: tuple[RegistryWrite, ...] = ()
    network: tuple[NetworkConnection, ...] = ()
    modules: tuple[ImageLoad, ...] = ()

    @model_validator(mode="after")
    def _references_resolve(self) -> Activity:
        seen: set[str] = set()
        for process in self.processes:
            if process.id in seen:
                raise ValueError(f"duplicate process id {process.id!r}")
            if process.parent is not None and process.parent not in seen:
                raise ValueError(f"process {process.id!r}: parent {process.parent!r} must be a process listed "
                                 "before it")
            seen.add(process.id)
        for kind, items in (("files", self.files), ("registry", self.registry), ("network", self.network),
                            ("modules", self.modules)):
            for item in items:
                if item.process not in seen:
                    raise ValueError(f"{kind}: process {item.process!r} is not one of the scenario's processes "
                                     f"({', '.join(sorted(seen))})")
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
    """The content of ``tests.yml``."""

    scenarios: tuple[Scenario, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> ScenarioFile:
        seen: set[str] = set()
        for scenario in self.scenarios:
            if scenario.id in seen:
                raise ValueError(f"duplicate scenario id {scenario.id!r}")
            seen.add(scenario.id)
        return self


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
