"""Where a Sigma rule runs: its logsource routed to our tables, with the field names each table uses.

A route is one (table, row filter, field mapping) a rule's logsource can land on: ``process_creation`` runs on
Sysmon EID 1 rows of ``RawEvents`` (fields as Sysmon names them), on Security 4688 rows (Image → NewProcessName…)
and on ``DeviceProcessEvents`` (Image → FolderPath…). Channel and event-id tables come from the installed pySigma
pipelines (sysmon, windows) so they stay in step with SigmaHQ; Defender column maps come from the Microsoft XDR
pipeline, restricted to the columns our canonical tables actually have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from sigma.rule import SigmaLogSource, SigmaRule

from assay.schema import RAW_EVENTS, canonical_tables

SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
SECURITY_CHANNEL = "Security"

#: RawEvents columns a Sigma rule may name directly (System fields, not EventData): Sigma name → column.
RAW_EVENT_SYSTEM_FIELDS: Mapping[str, str] = {
    "EventID": "EventID",
    "Channel": "Channel",
    "Computer": "Computer",
    "Provider_Name": "Provider",
}

#: Sigma (Sysmon) taxonomy → Security 4688 EventData names. ``None``: 4688 has a field of that name with another
#: meaning or no counterpart (4688's ProcessId is the *creator's* PID, in hex), so the route cannot evaluate it.
SECURITY_4688_FIELDS: Mapping[str, str | None] = {
    "Image": "NewProcessName",
    "ParentImage": "ParentProcessName",
    "LogonId": "SubjectLogonId",
    "ProcessId": None,
    "ParentProcessId": None,
    "IntegrityLevel": None,
    "User": None,
}


@dataclass(frozen=True)
class Route:
    """One place a rule runs: a table, which of its rows (channels / event ids), and its field names."""

    name: str
    table: str
    channels: tuple[str, ...] = ()
    event_ids: tuple[int, ...] = ()
    #: Sigma field → table field (RawEvents: key of ``Fields``; typed tables: column). ``None`` = unavailable.
    field_map: Mapping[str, str | None] = field(default_factory=dict)
    #: flat JSON events (``assay sigma eval``): every name, System ones included, is a key of ``Fields``.
    flat: bool = False
    #: Windows service logs (Defender…) name EventData fields with spaces ("Threat Name") where Sigma writes
    #: "ThreatName": look both up.
    spaced_names: bool = False
    #: every Windows event log record (any channel, any event id), not the rows of Defender XDR exports
    event_logs_only: bool = False

    @property
    def typed(self) -> bool:
        return self.table != RAW_EVENTS

    def table_field(self, sigma_field: str) -> str | None:
        """The name this route stores a Sigma field under, or None when the route cannot provide it."""
        if sigma_field in self.field_map:
            return self.field_map[sigma_field]
        if self.typed:
            columns = canonical_tables()[self.table].column_names
            return sigma_field if sigma_field in columns else None
        return sigma_field


FLAT_ROUTE = Route(name="flat", table=RAW_EVENTS, flat=True)
#: ``logsource: {product: windows}`` alone: every record of every Windows event log (EVTX, evtx JSON, Winlogbeat,
#: OTRF…), whatever its channel; EventData names as written (spaced service names looked up too).
WINDOWS_ROUTE = Route(name="windows", table=RAW_EVENTS, spaced_names=True, event_logs_only=True)


@cache
def _sysmon_event_ids() -> dict[str, tuple[int, ...]]:
    from sigma.pipelines.sysmon.sysmon import sysmon_generic_logsource_eventid_mapping

    ids: dict[str, tuple[int, ...]] = {}
    for category, value in sysmon_generic_logsource_eventid_mapping.items():
        ids[category] = tuple(int(v) for v in value) if isinstance(value, list) else (int(str(value)),)
    # Sysmon 26 (FileDeleteDetected) is the log-only form of 23; SigmaHQ's file_delete rules cover both.
    ids["file_delete"] = (23, 26)
    return ids


@cache
def _service_channels() -> dict[str, tuple[str, ...]]:
    from sigma.pipelines.common import windows_logsource_mapping

    return {service: tuple(value) if isinstance(value, list) else (str(value),)
            for service, value in windows_logsource_mapping.items()}


@cache
def _category_channels() -> dict[str, tuple[str, int]]:
    from sigma.pipelines.windows.windows import windows_generic_category_channel_mapping

    return {category: (str(info["service"]), int(str(info["EventID"])))
            for category, info in windows_generic_category_channel_mapping.items()}


@cache
def _defender_tables() -> dict[str, str]:
    from sigma.pipelines.microsoftxdr.mappings import CATEGORY_TO_TABLE_MAPPINGS

    tables = canonical_tables()
    return {category: table for category, table in CATEGORY_TO_TABLE_MAPPINGS.items() if table in tables}


@cache
def defender_field_map(table: str) -> dict[str, str | None]:
    """Sigma field → column of a Defender table, from the Microsoft XDR pipeline, kept to columns we have."""
    from sigma.pipelines.microsoftxdr.mappings import MICROSOFT_XDR_FIELD_MAPPINGS

    columns = set(canonical_tables()[table].column_names)
    mapping: dict[str, str | None] = {}
    for sigma_field, target in MICROSOFT_XDR_FIELD_MAPPINGS.table_mappings.get(table, {}).items():
        candidates = target if isinstance(target, list) else [target]
        present = [c for c in candidates if c in columns]
        mapping[sigma_field] = present[0] if present else None
    # Sysmon's Hashes ("SHA1=…,MD5=…,SHA256=…") and DOMAIN\\user accounts are several columns in Defender tables:
    # the backend computes them ("=" names) so values keep Sysmon's shape.
    from assay.sigma.backend import computed_field_names

    for sigma_field in ("Hashes", "User", "ParentUser", "TargetObject"):
        if f"={sigma_field}" in computed_field_names(table):
            mapping[sigma_field] = f"={sigma_field}"
    # The event's host: Sigma (and correlation group-by) says Computer, Defender DeviceName.
    if "Computer" not in mapping and "DeviceName" in columns:
        mapping["Computer"] = "DeviceName"
    return mapping


def routes_for_logsource(logsource: SigmaLogSource) -> list[Route]:
    """Every route a logsource lands on (empty when none of our tables hold that telemetry)."""
    product = (logsource.product or "").lower()
    category = (logsource.category or "").lower()
    service = (logsource.service or "").lower()
    if product not in ("windows", ""):
        return []
    routes: list[Route] = []
    if category:
        sysmon_ids = _sysmon_event_ids().get(category)
        if sysmon_ids is not None:
            name = "sysmon:" + ",".join(str(i) for i in sysmon_ids)
            routes.append(Route(name=name, table=RAW_EVENTS, channels=(SYSMON_CHANNEL,), event_ids=sysmon_ids))
        if category == "process_creation":
            routes.append(Route(name="security:4688", table=RAW_EVENTS, channels=(SECURITY_CHANNEL,),
                                event_ids=(4688,), field_map=SECURITY_4688_FIELDS))
        channel_info = _category_channels().get(category)
        if channel_info is not None:
            channel_service, event_id = channel_info
            channels = _service_channels().get(channel_service, ())
            routes.append(Route(name=f"{channel_service}:{event_id}", table=RAW_EVENTS, channels=channels,
                                event_ids=(event_id,)))
        table = _defender_tables().get(category)
        if table is not None:
            routes.append(Route(name=table, table=table, field_map=defender_field_map(table)))
        return routes
    if service:
        service_channels = _service_channels().get(service)
        if service_channels is not None:
            routes.append(Route(name=f"service:{service}", table=RAW_EVENTS, channels=service_channels,
                                spaced_names=True))
        return routes
    if product == "windows":
        # Only the product (keyword rules such as a Mimikatz keyword list): every Windows event log record.
        routes.append(WINDOWS_ROUTE)
    return routes


def route_names_for_logsource(logsource: SigmaLogSource) -> list[str]:
    return [route.name for route in routes_for_logsource(logsource)]


def rule_event_ids(rule: SigmaRule) -> tuple[int, ...]:
    """The EventID values a rule's detection names (in selections or filters), sorted; () when it names none."""
    found: set[int] = set()

    def visit(item: object) -> None:
        nested = getattr(item, "detection_items", None)
        if nested is not None:
            for child in nested:
                visit(child)
            return
        if getattr(item, "field", None) != "EventID":
            return
        for value in getattr(item, "value", ()) or ():
            text = str(getattr(value, "number", None) or value)
            if text.isdigit():
                found.add(int(text))

    for detection in rule.detection.detections.values():
        visit(detection)
    return tuple(sorted(found))


def routes_for_rule_logsource(rule: SigmaRule) -> list[Route]:
    """The routes of a rule's logsource, a service route named after the event ids the rule reads
    (``security:4624,4625`` rather than ``service:security``) so reports say which events it runs on. The name only:
    the rows a route reads stay the whole channel, since a rule's condition may combine EventID selections freely."""
    routes = routes_for_logsource(rule.logsource)
    event_ids = rule_event_ids(rule)
    if not event_ids:
        return routes
    ids = ",".join(str(i) for i in event_ids)
    return [dataclasses.replace(route, name=f"{route.name.removeprefix('service:')}:{ids}")
            if route.name.startswith("service:") else route for route in routes]
