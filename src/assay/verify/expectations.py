"""Checking a scenario's ``expected_telemetry`` against the events it actually produced.

``tests.yml`` says in words what telemetry a scenario yields ("Sysmon EID 11 python.exe creates …", "Security 4688
for cmd.exe and cmstp.exe"). The runner holds the events, synthesized or recorded, so it checks the claims it can
read: each Sysmon event id and Security event id named, and the image named right after it. A claim the events do
not back is reported as a note on the scenario (the scenario text or its activity needs fixing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from assay.engine import DuckDBEngine

_SYSMON_CLAIM = re.compile(r"\bSysmon\s+EID\s+(\d+)(?:\s+(\S+))?", re.IGNORECASE)
_SECURITY_CLAIM = re.compile(r"\bSecurity\s+(?:EID\s+)?([14]\d{3}|5\d{3})\b(.*)", re.IGNORECASE)
#: Claims about the other Windows channels: "System 7045", "PowerShell 4104", "TaskScheduler 106", "Defender 1116".
_CHANNEL_CLAIM = re.compile(r"\b(System|PowerShell|Task\s*Scheduler|Defender)\s+(?:EID\s+)?(\d{3,4})\b",
                            re.IGNORECASE)
#: Claim word -> the lower-case channel names it covers.
CLAIM_CHANNELS = {"system": ("system",), "powershell": ("microsoft-windows-powershell/operational",
                                                       "windows powershell"),
                  "taskscheduler": ("microsoft-windows-taskscheduler/operational",),
                  "defender": ("microsoft-windows-windows defender/operational",)}
_EXE = re.compile(r"([\w.$-]+\.exe)\b", re.IGNORECASE)
SYSMON_CHANNEL = "microsoft-windows-sysmon/operational"


@dataclass
class TelemetryInventory:
    """What a scenario's events contain: (source, event id) -> image file names (lower case)."""

    images: dict[tuple[str, int], set[str]] = field(default_factory=dict)

    def add(self, source: str, event_id: int, image: str | None) -> None:
        names = self.images.setdefault((source, event_id), set())
        if image:
            names.add(re.split(r"[\\/]", image)[-1].lower())


def _channel_key(channel: str) -> str | None:
    lowered = channel.lower()
    return next((word for word, channels in CLAIM_CHANNELS.items() if lowered in channels), None)


def inventory_of_events(sysmon: Iterable[dict[str, object]], security: Iterable[dict[str, object]],
                        windows: Iterable[dict[str, object]] = ()) -> TelemetryInventory:
    """The inventory of synthesized evtx-JSON records (``windows``: System, PowerShell, Task Scheduler…)."""
    inventory = TelemetryInventory()
    for record in windows:
        event = record["Event"]
        assert isinstance(event, dict)
        event_id = event["System"]["EventID"]
        key = _channel_key(str(event["System"]["Channel"]))
        if key is not None:
            inventory.add(key, int(event_id["#text"] if isinstance(event_id, dict) else event_id), None)
    for record in sysmon:
        event = record["Event"]
        assert isinstance(event, dict)
        data = event.get("EventData") or {}
        inventory.add("sysmon", int(event["System"]["EventID"]), data.get("Image") or data.get("SourceImage"))
    for record in security:
        event = record["Event"]
        assert isinstance(event, dict)
        data = event.get("EventData") or {}
        # 4688 names the new process; other events the process that asked (4624, 4648: ProcessName).
        inventory.add("security", int(event["System"]["EventID"]), data.get("NewProcessName") or data.get("ProcessName"))
    return inventory


def inventory_of_database(engine: DuckDBEngine) -> TelemetryInventory:
    """The inventory of an ingested recording (from RawEvents)."""
    inventory = TelemetryInventory()
    rows = engine.run('SELECT lower("Channel"), "EventID", coalesce("Fields"[\'Image\'], "Fields"[\'SourceImage\']), '
                      'coalesce("Fields"[\'NewProcessName\'], "Fields"[\'ProcessName\']) FROM "RawEvents"').rows
    for channel, event_id, image, new_process in rows:
        if event_id is None:
            continue
        if channel == SYSMON_CHANNEL:
            inventory.add("sysmon", int(event_id), image)
        elif channel == "security":
            inventory.add("security", int(event_id), new_process)
        elif (key := _channel_key(str(channel))) is not None:
            inventory.add(key, int(event_id), None)
    return inventory


def unbacked_claims(claims: Iterable[str], inventory: TelemetryInventory) -> list[str]:
    """One note per claimed event (or image) the inventory does not hold."""
    notes: list[str] = []
    for claim in claims:
        for match in _SYSMON_CLAIM.finditer(claim):
            key = ("sysmon", int(match.group(1)))
            if key not in inventory.images:
                notes.append(f"expected telemetry {claim!r}: the events hold no Sysmon EID {key[1]}")
                continue
            named = match.group(2) or ""
            image = _EXE.fullmatch(re.split(r"[\\/]", named.rstrip(",;:"))[-1])
            if image and image.group(1).lower() not in inventory.images[key]:
                notes.append(f"expected telemetry {claim!r}: no Sysmon EID {key[1]} event has Image "
                             f"{image.group(1)} (found: {', '.join(sorted(inventory.images[key])) or 'none'})")
        for match in _CHANNEL_CLAIM.finditer(claim):
            word = re.sub(r"\s+", "", match.group(1)).lower()
            channel_key = ("taskscheduler" if word.startswith("task") else word, int(match.group(2)))
            if channel_key not in inventory.images:
                notes.append(f"expected telemetry {claim!r}: the events hold no {match.group(1)} {channel_key[1]}")
        for match in _SECURITY_CLAIM.finditer(claim):
            key = ("security", int(match.group(1)))
            if key not in inventory.images:
                notes.append(f"expected telemetry {claim!r}: the events hold no Security {key[1]}")
                continue
            listed = match.group(2).split("(", 1)[0]  # names in parentheses are commentary
            for name in _EXE.findall(listed):
                if name.lower() not in inventory.images[key]:
                    notes.append(f"expected telemetry {claim!r}: no Security {key[1]} event for {name}")
    return notes
