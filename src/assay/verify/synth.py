"""Scenario synthesis: one scenario's facts rendered as the events every supported schema would record.

A ``tests.yml`` activity (host, user, process tree and side effects, logons, Kerberos, account changes, services,
scheduled tasks, process access, PowerShell…) becomes: Windows event-log records in exactly the JSON shape the
``evtx`` package prints for real EVTX records (Sysmon; Security; System, PowerShell/Operational,
TaskScheduler/Operational and Windows Defender/Operational as the ``windows`` schema), Defender XDR
advanced-hunting rows and ECS documents as Winlogbeat ships them. Every event is put on one timeline (times to
the millisecond, repeated events ``count`` times ``every_seconds`` apart), and everything not given (GUIDs, PIDs,
hashes, record ids) is derived from the scenario id, so a scenario always renders to the same bytes.

The families live in :mod:`assay.verify.synth_process` (process tree), :mod:`assay.verify.synth_windows` and
:mod:`assay.verify.synth_endpoint`, over :mod:`assay.verify.synth_base`; this module orders them and writes the
files ingestion reads.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from assay.catalog.models import Logon, Repeated, Scenario
from assay.errors import VerifyError
from assay.schema import canonical_tables
from assay.verify import synth_endpoint, synth_process, synth_windows
from assay.verify.synth_base import (
    SCHEMAS,
    HostFacts,
    ProcessFacts,
    Seed,
    Telemetry,
    _Synthesizer,
    defender_registry_data,
    defender_registry_key,
    iso_ms,
    logon_guid,
    split_command_line,
    sysmon_guid,
    sysmon_registry_details,
    sysmon_registry_path,
    truncate_ms,
)

__all__ = [
    "SCHEMAS", "HostFacts", "ProcessFacts", "Seed", "Telemetry", "defender_registry_data", "defender_registry_key",
    "iso_ms", "logon_guid", "split_command_line", "synthesize", "sysmon_guid", "sysmon_registry_details",
    "sysmon_registry_path", "write_telemetry",
]

Defender = dict[str, list[dict[str, Any]]]
#: An emitter renders one occurrence of an event: (synthesizer, telemetry, defender rows, item, time, instance).
Emitter = Callable[[_Synthesizer, Telemetry, Defender, Any, dt.datetime, int], None]

#: Activity list -> the function rendering one of its events.
EMITTERS: dict[str, Emitter] = {
    "logons": synth_windows.emit_logon,
    "explicit_credentials": synth_windows.emit_explicit_credentials,
    "kerberos": synth_windows.emit_kerberos,
    "directory_access": synth_windows.emit_directory_access,
    "accounts": synth_windows.emit_account_change,
    "shares": synth_windows.emit_share_access,
    "log_clears": synth_windows.emit_log_clear,
    "services": synth_windows.emit_service,
    "scheduled_tasks": synth_windows.emit_scheduled_task,
    "process_access": synth_endpoint.emit_process_access,
    "remote_threads": synth_endpoint.emit_remote_thread,
    "pipes": synth_endpoint.emit_pipe,
    "wmi": synth_endpoint.emit_wmi,
    "dns": synth_endpoint.emit_dns,
    "file_deletes": synth_endpoint.emit_file_delete,
    "powershell": synth_endpoint.emit_powershell,
    "antivirus": synth_endpoint.emit_antivirus,
    "device_events": synth_endpoint.emit_device_event,
}


class Synthesizer(_Synthesizer):
    """Puts every event of a scenario on one timeline and renders it in every schema."""

    def first_time(self, kind: str, index: int, item: Repeated) -> dt.datetime:
        """When an event (its first occurrence) happens: ``after_seconds``, else just after its process started,
        else a short step per event in list order from the activity's start."""
        if item.after_seconds is not None:
            return truncate_ms(self.start + dt.timedelta(seconds=item.after_seconds))
        process = getattr(item, "process", None)
        if process is not None:
            return self.side_effect_time(process, None, index, kind)
        # Never exactly at ``start``: the KQL's clock is start + 1h, and ``Timestamp > ago(1h)`` is strict.
        return truncate_ms(self.start + dt.timedelta(milliseconds=300 * index + self.seed.number(5, 90, kind,
                                                                                                  index)))

    def run(self) -> Telemetry:
        self.resolve_processes()
        telemetry = Telemetry(scenario_id=self.scenario.id, host=self.host, processes=dict(self.processes))
        timeline: list[tuple[dt.datetime, int, Callable[[], None]]] = []
        defender: Defender = {
            "DeviceProcessEvents": [], "DeviceFileEvents": [], "DeviceRegistryEvents": [],
            "DeviceNetworkEvents": [], "DeviceImageLoadEvents": [],
        }

        def add(when: dt.datetime, action: Callable[[], None]) -> None:
            timeline.append((when, len(timeline), action))

        for process in self.processes.values():
            add(process.start, partial(synth_process.emit_process, self, telemetry, defender, process))
        for index, file in enumerate(self.activity.files):
            when = self.side_effect_time(file.process, file.after_seconds, index, "file")
            add(when, partial(synth_process.emit_file, self, telemetry, defender, file, when))
        for index, write in enumerate(self.activity.registry):
            when = self.side_effect_time(write.process, write.after_seconds, index, "registry")
            add(when, partial(synth_process.emit_registry, self, telemetry, defender, write, when))
        for index, connection in enumerate(self.activity.network):
            when = self.side_effect_time(connection.process, connection.after_seconds, index, "network")
            add(when, partial(synth_process.emit_network, self, telemetry, defender, connection, when, len(timeline)))
        for index, module in enumerate(self.activity.modules):
            when = self.side_effect_time(module.process, module.after_seconds, index, "module")
            add(when, partial(synth_process.emit_module, self, telemetry, defender, module, when))
        instance = 0
        for kind, emitter in EMITTERS.items():
            for index, item in enumerate(getattr(self.activity, kind)):
                first = self.first_time(kind, index, item)
                for repeat in range(item.count):
                    when = truncate_ms(first + dt.timedelta(seconds=repeat * item.every_seconds))
                    add(when, partial(emitter, self, telemetry, defender, item, when, instance))
                    if isinstance(item, Logon) and item.outcome == "success" and \
                            item.logoff_after_seconds is not None:
                        ended = truncate_ms(when + dt.timedelta(seconds=item.logoff_after_seconds))
                        add(ended, partial(synth_windows.emit_logoff, self, telemetry, item, when, ended, instance))
                    instance += 1
        timeline.sort(key=lambda entry: (entry[0], entry[1]))
        for _, _, action in timeline:
            action()
        # Keep to the canonical columns (real exports carry a few more, e.g. InitiatingProcessSHA256 on registry
        # events, which our tables do not model).
        tables = canonical_tables()
        telemetry.defender = {
            table: [{k: v for k, v in row.items() if k in tables[table].column_names} for row in rows]
            for table, rows in defender.items() if rows}
        return telemetry


def synthesize(scenario: Scenario) -> Telemetry:
    """Render a scenario's activity in every schema (Sysmon, Security, other Windows channels, Defender XDR, ECS)."""
    if scenario.activity is None:
        raise VerifyError(f"scenario {scenario.id!r} has no activity to synthesize (it replays a recording)",
                          hint="use assay.verify.recordings to load its file instead")
    return Synthesizer(scenario, scenario.activity).run()


# --------------------------------------------------------------------------------------------------------------
# Writing telemetry files for ingestion
# --------------------------------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_ms(value.astimezone(dt.UTC))
    return value


def write_telemetry(telemetry: Telemetry, folder: str | Path,
                    schemas: Iterable[str] = SCHEMAS) -> dict[str, list[Path]]:
    """Write each schema's events as JSON lines under ``folder``; returns schema -> files.

    Event-log records are evtx-JSON lines (what ``evtx_dump -o jsonl`` prints), ECS one Winlogbeat document per
    line, Defender one file per table named after it (``DeviceProcessEvents.json``, the shape of an
    advanced-hunting export), so ingestion recognises each by content and name.
    """
    written: dict[str, list[Path]] = {}
    for schema in schemas:
        target = Path(folder) / schema
        target.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        if schema == "defender":
            for table, rows in telemetry.defender.items():
                path = target / f"{table}.json"
                with path.open("w", encoding="utf-8") as out:
                    for row in rows:
                        out.write(json.dumps({k: _json_value(v) for k, v in row.items()}, ensure_ascii=False)
                                  + "\n")
                files.append(path)
        else:
            events = telemetry.events(schema)
            if events:
                path = target / f"{telemetry.scenario_id}.{schema}.json"
                with path.open("w", encoding="utf-8") as out:
                    for event in events:
                        out.write(json.dumps(event, ensure_ascii=False) + "\n")
                files.append(path)
        written[schema] = files
    return written
