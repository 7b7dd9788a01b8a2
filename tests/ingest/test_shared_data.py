"""Mappings proven on real public recordings (../shared/data): CMSTP, EVTX-ATTACK-SAMPLES, OTRF zips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assay.engine import DuckDBEngine
from assay.ingest import IngestSummary, ingest_paths

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def shared_db(shared_data: Path) -> Iterator[tuple[DuckDBEngine, IngestSummary]]:
    """All three shared folders ingested once into one in-memory database (the 'done when' run)."""
    engine = DuckDBEngine(None)
    summary = ingest_paths([shared_data / "cmstp", shared_data / "evtx-attack-samples", shared_data / "otrf-sample"],
                           engine=engine)
    yield engine, summary
    engine.close()


def rows(engine: DuckDBEngine, sql: str) -> list[dict[str, object]]:
    return engine.run(sql).as_dicts()


def test_all_shared_folders_ingest_without_damage(shared_db: tuple[DuckDBEngine, IngestSummary]) -> None:
    engine, summary = shared_db
    assert summary.bad_records == 0, summary.bad_record_list[:5]
    evtx_sources = [s for s in summary.sources if s.format == "evtx"]
    assert len(evtx_sources) >= 277  # every EVTX-ATTACK-SAMPLES file plus the two CMSTP recordings
    assert all(s.records > 0 for s in summary.sources if "otrf-sample" in s.label)
    assert engine.row_count("RawEvents") == summary.records_read
    for table in ("DeviceProcessEvents", "DeviceFileEvents", "DeviceRegistryEvents", "DeviceNetworkEvents",
                  "DeviceImageLoadEvents", "SecurityEvent"):
        assert summary.rows_per_table[table] > 0, table


def test_cmstp_recordings_give_cmstp_process_rows_with_parents(shared_db: tuple[DuckDBEngine, IngestSummary]) -> None:
    engine, _ = shared_db
    found = rows(engine, """
        SELECT AssaySource, ProcessCommandLine, InitiatingProcessFileName, InitiatingProcessCommandLine, DeviceName,
               AccountName, ProcessIntegrityLevel, SHA256
        FROM DeviceProcessEvents WHERE FileName ILIKE 'cmstp.exe' AND AssaySource LIKE '%/cmstp/%'""")
    by_file = {Path(str(r["AssaySource"]).split("#")[0]).name: r for r in found}
    panache = by_file["panache_sysmon_vs_EDRTestingScript.evtx"]
    assert "/ni /s https://raw.githubusercontent.com/op7ic/EDR-Testing-Script/master/Payloads/Cmstp.inf" in str(
        panache["ProcessCommandLine"])
    assert panache["InitiatingProcessFileName"] == "cmd.exe"
    assert "cmstp.exe /ni /s" in str(panache["InitiatingProcessCommandLine"])
    assert panache["DeviceName"] == "MSEDGEWIN10" and panache["AccountName"] == "IEUser"
    assert len(str(panache["SHA256"])) == 64 and str(panache["SHA256"]).islower()
    winpwnage = by_file["sysmon_1_13_11_cmstp_ini_uacbypass.evtx"]
    assert "/au" in str(winpwnage["ProcessCommandLine"]) and "tmp.ini" in str(winpwnage["ProcessCommandLine"])
    assert winpwnage["InitiatingProcessFileName"] == "python.exe"
    # The OTRF recording has both a Sysmon 1 and a Security 4688 for the same cmstp.exe.
    otrf = [r for r in found if "psh_cmstp_execution_bypassuac" in str(r["AssaySource"])]
    assert len(otrf) == 2
    for row in otrf:
        assert "/s C:\\ProgramData\\T1218.003_uacbypass.inf /au" in str(row["ProcessCommandLine"])
        assert row["InitiatingProcessFileName"] == "powershell.exe"
        assert row["ProcessIntegrityLevel"] == "High"


def test_security_4688_hex_pids_become_numbers(shared_db: tuple[DuckDBEngine, IngestSummary]) -> None:
    engine, _ = shared_db
    found = rows(engine, """
        SELECT d.FileName, d.ProcessId, d.InitiatingProcessId, d.AccountName, d.FolderPath,
               r.Fields['NewProcessId'] AS hex_pid, r.Fields['ProcessId'] AS hex_parent, r.Fields['NewProcessName'] AS image
        FROM DeviceProcessEvents d JOIN RawEvents r USING (AssayEventId)
        WHERE r.Channel = 'Security' AND r.EventID = 4688 AND d.AssaySource LIKE '%DE_RDP_Tunnel_5156.evtx#%'""")
    plink = next(r for r in found if r["FileName"] == "plink.exe")
    assert str(plink["hex_pid"]).startswith("0x")
    assert plink["ProcessId"] == int(str(plink["hex_pid"]), 16)
    assert plink["InitiatingProcessId"] == int(str(plink["hex_parent"]), 16)
    assert plink["FolderPath"] == plink["image"]
    assert plink["AccountName"] == "user01"
    security = rows(engine, """SELECT Activity, Process, NewProcessId FROM SecurityEvent
                               WHERE AssaySource LIKE '%DE_RDP_Tunnel_5156.evtx#%' AND EventID = 4688""")
    assert {"plink.exe"} <= {r["Process"] for r in security}
    assert all(r["Activity"] == "4688 - A new process has been created." for r in security)


def test_sysmon_file_registry_network_image_load(shared_db: tuple[DuckDBEngine, IngestSummary]) -> None:
    engine, _ = shared_db
    source = "%DE_timestomp_and_dll_sideloading_and_RunPersist.evtx#%"
    file_rows = rows(engine, f"SELECT FileName, FolderPath, InitiatingProcessFileName FROM DeviceFileEvents "
                             f"WHERE AssaySource LIKE '{source}'")
    assert {"FileName": "NvSmart.exe", "FolderPath": "C:\\Users\\IEUser\\AppData\\Roaming\\NvSmart.exe",
            "InitiatingProcessFileName": "Flash_update.exe"} in file_rows
    registry = rows(engine, f"SELECT ActionType, RegistryKey, RegistryValueName, RegistryValueData, "
                            f"InitiatingProcessFileName FROM DeviceRegistryEvents WHERE AssaySource LIKE '{source}'")
    run_key = next(r for r in registry if r["RegistryValueName"] == "360v")
    assert run_key["ActionType"] == "RegistryValueSet"
    assert str(run_key["RegistryKey"]).startswith("HKEY_USERS\\S-1-5-21-")
    assert str(run_key["RegistryKey"]).endswith("\\Software\\Microsoft\\Windows\\CurrentVersion\\Run")
    assert run_key["RegistryValueData"] == "C:\\Users\\IEUser\\AppData\\Roaming\\svchost.exe"
    # Sysmon's short hives (HKLM, HKU…) are spelled out; application hives (\REGISTRY\A\…) have no HKEY name.
    created = rows(engine, "SELECT RegistryKey FROM DeviceRegistryEvents WHERE ActionType = 'RegistryKeyCreated' "
                           "AND RegistryKey NOT LIKE '\\REGISTRY\\A\\%'")
    assert created and all(str(r["RegistryKey"]).startswith("HKEY_") for r in created)
    network = rows(engine, """SELECT RemoteIP, RemotePort, LocalIP, InitiatingProcessFileName, ActionType
                              FROM DeviceNetworkEvents WHERE AssaySource LIKE '%PanacheSysmon_vs_AtomicRedTeam01.evtx#%'""")
    assert {"RemoteIP": "151.101.0.133", "RemotePort": 443, "LocalIP": "10.0.2.15",
            "InitiatingProcessFileName": "regsvr32.exe", "ActionType": "ConnectionSuccess"} in network
    loads = rows(engine, f"SELECT FileName, FolderPath, SHA256, InitiatingProcessFileName FROM DeviceImageLoadEvents "
                         f"WHERE AssaySource LIKE '{source}' AND FileName = 'winmm.dll'")
    assert loads and loads[0]["InitiatingProcessFileName"] == "Flash_update.exe"
    assert len(str(loads[0]["SHA256"])) == 64


def test_otrf_zips_are_read_in_place(shared_db: tuple[DuckDBEngine, IngestSummary]) -> None:
    engine, summary = shared_db
    zipped = [s for s in summary.sources if ".zip!" in s.label]
    assert len(zipped) >= 8 and all(s.format == "otrf" for s in zipped)
    lsass = rows(engine, """SELECT count(*) AS n FROM RawEvents WHERE SourceFile LIKE '%psh_lsass_memory_dump_comsvcs.zip!%'
                            AND Channel = 'Microsoft-Windows-Sysmon/Operational' AND EventID = 10
                            AND Fields['TargetImage'] ILIKE '%lsass.exe'""")
    assert int(str(lsass[0]["n"])) > 0
    # OTRF's lower-case "security" channel is stored as Windows spells it, so routing by Channel works.
    assert rows(engine, "SELECT count(*) AS n FROM RawEvents WHERE Channel = 'security'")[0]["n"] == 0


def test_raw_events_keep_every_original_field(shared_db: tuple[DuckDBEngine, IngestSummary]) -> None:
    engine, summary = shared_db
    # the third record of this exported log: its EventRecordID, what Event Viewer shows, is 16038
    event = rows(engine, """SELECT Fields, EventID, Channel FROM RawEvents
                            WHERE SourceFile LIKE '%sysmon_1_13_11_cmstp_ini_uacbypass.evtx'
                            AND SourceRecord = 16038""")[0]
    fields = event["Fields"]
    assert isinstance(fields, dict)
    for name in ("Image", "CommandLine", "ParentImage", "Hashes", "ProcessGuid", "LogonGuid", "UtcTime"):
        assert fields.get(name), name
    assert event["EventID"] == 1 and event["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    # What no column took is listed in the summary and kept in AdditionalFields.
    assert "ProcessGuid" in summary.unmapped_fields["sysmon-1-process-create"]
    extra = rows(engine, """SELECT AdditionalFields->>'ProcessGuid' AS guid FROM DeviceProcessEvents
                            WHERE AssaySource LIKE '%sysmon_1_13_11_cmstp_ini_uacbypass.evtx#16038'""")
    assert extra[0]["guid"] == fields["ProcessGuid"]


def test_every_channel_but_security_fills_windowsevent(shared_db: tuple[DuckDBEngine, IngestSummary]) -> None:
    """Sentinel's WindowsEvent: each non-Security record once, its fields in the EventData bag (a 4104 script
    block is readable as EventData.ScriptBlockText); Security records go to SecurityEvent only."""
    engine, _ = shared_db
    raw = engine.run("SELECT count(*) FROM RawEvents WHERE Channel IS NOT NULL AND Channel <> 'Security'").rows[0][0]
    windows = engine.run("SELECT count(*) FROM WindowsEvent").rows[0][0]
    assert raw > 1000 and windows == raw
    assert engine.run("SELECT count(*) FROM WindowsEvent WHERE Channel = 'Security'").rows[0][0] == 0
    from assay import kql

    result = kql.run('WindowsEvent | where Channel == "Microsoft-Windows-PowerShell/Operational" and EventID == 4104'
                     ' | extend Script = tostring(EventData.ScriptBlockText)'
                     ' | where Script has "MiniDumpWriteDump" | project Computer, Script', db=engine)
    assert result.rows and all("MiniDumpWriteDump" in row[1] for row in result.rows)
    cleared = kql.run('WindowsEvent | where Channel == "System" and EventID == 104 | count', db=engine)
    assert cleared.rows[0][0] >= 1
