"""Benchmark: KQL compiled by Assay vs hand-written DuckDB SQL over N DeviceProcessEvents rows, and the hunting
corpus (tests/kql/conformance/hunting): the share of its queries that parse, bind and run, and compile times.

    .venv/bin/python bench/bench_kql.py [--rows 10000000] [--repeat 3] [--threads 2]
    .venv/bin/python bench/bench_kql.py --corpus-only

Prints, per query, the best-of-N wall time of the compiled query and of the hand-written SQL and their ratio
(target: within 1.3x), then the corpus shares and per-query compile time (median, p95), then the parse + bind +
compile time of a 50-line query (target: under 20 ms).
Rows are synthetic but shaped like real process telemetry: 2,000 hosts, a process mix where cmstp.exe is rare,
command lines with switches and paths.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlglot.tokens import SQLGLOTC_INSTALLED

from assay import kql
from assay.engine import DuckDBEngine
from assay.kql.runtime import install_macros

NOW = datetime(2024, 5, 1, 12, 0, 0)

CMSTP_KQL = (Path(__file__).resolve().parents[1] / "detections" / "T1218.003-cmstp" / "sentinel.kql").read_text(
    encoding="utf-8")

CMSTP_SQL = r"""
SELECT "Timestamp", "DeviceName", "AccountName", "ProcessCommandLine", "InitiatingProcessFileName",
       "InitiatingProcessCommandLine",
       regexp_matches("ProcessCommandLine", '(?i)/s(?:$|[^0-9A-Za-z])')
         OR regexp_matches("ProcessCommandLine", '(?i)/au(?:$|[^0-9A-Za-z])') AS "AutoClose",
       regexp_matches("ProcessCommandLine", '(?i)/ns(?:$|[^0-9A-Za-z])')
         OR regexp_matches("ProcessCommandLine", '(?i)/ni(?:$|[^0-9A-Za-z])') AS "NoUserInteraction",
       regexp_matches("ProcessCommandLine", '(?i)\.inf(?:$|[^0-9A-Za-z])') AS "HasINF",
       regexp_matches("ProcessCommandLine",
         '(?i)(?:^|[^0-9A-Za-z])(?:Temp|AppData|Downloads|Public|ProgramData)(?:$|[^0-9A-Za-z])')
         OR contains(lower("ProcessCommandLine"), '\users\') AS "SuspiciousINFPath",
       regexp_matches("ProcessCommandLine", '(?i)(?:^|[^0-9A-Za-z])https?://') AS "RemoteLoad",
       regexp_matches("InitiatingProcessFileName",
         '(?i)(?:^|[^0-9A-Za-z])(?:cmd|powershell|wscript|cscript|mshta|winword|excel|outlook)\.exe(?:$|[^0-9A-Za-z])')
         AS "SuspiciousParent"
FROM "DeviceProcessEvents"
WHERE "Timestamp" > TIMESTAMP '2024-05-01 12:00:00' - INTERVAL 24 HOUR AND lower("FileName") = 'cmstp.exe'
ORDER BY "Timestamp" DESC
"""

HUNT_KQL = r"""DeviceProcessEvents
| where Timestamp > ago(7d)
| where ProcessCommandLine has "-enc" or ProcessCommandLine contains "downloadstring"
| summarize Executions = count(), Hosts = dcount(DeviceName), Last = max(Timestamp) by FileName
| sort by Executions desc
"""

HUNT_SQL = r"""
SELECT "FileName", count(*) AS "Executions", count(DISTINCT "DeviceName") AS "Hosts", max("Timestamp") AS "Last"
FROM "DeviceProcessEvents"
WHERE "Timestamp" > TIMESTAMP '2024-05-01 12:00:00' - INTERVAL 7 DAY
  AND (regexp_matches("ProcessCommandLine", '(?i)(?:^|[^0-9A-Za-z])-enc(?:$|[^0-9A-Za-z])')
       OR contains(lower("ProcessCommandLine"), 'downloadstring'))
GROUP BY "FileName"
ORDER BY "Executions" DESC
"""

FIFTY_LINE_KQL = "\n".join([
    "let lookback = 7d;",
    "let Lolbins = dynamic(['cmstp.exe', 'mshta.exe', 'regsvr32.exe', 'rundll32.exe', 'msiexec.exe']);",
    "let Parents = dynamic(['winword.exe', 'excel.exe', 'outlook.exe', 'powershell.exe', 'cmd.exe']);",
    "let Suspicious = DeviceProcessEvents",
    "| where Timestamp > ago(lookback)",
    "| where FileName in~ (Lolbins)",
    "| where InitiatingProcessFileName has_any (Parents)",
    "| extend Remote = ProcessCommandLine has_any ('http://', 'https://', '\\\\\\\\')",
    "| extend UserWritable = ProcessCommandLine has_any ('Temp', 'AppData', 'Downloads', 'Public')",
    "| extend Encoded = ProcessCommandLine has '-enc' or ProcessCommandLine contains 'base64'",
    "| extend Hour = hourofday(Timestamp), Day = startofday(Timestamp)",
    "| extend OffHours = Hour < 7 or Hour > 19",
    "| extend Score = toint(Remote) * 3 + toint(UserWritable) * 2 + toint(Encoded) * 2 + toint(OffHours)",
    "| project Timestamp, DeviceName, AccountName, FileName, ProcessCommandLine,",
    "          InitiatingProcessFileName, Remote, UserWritable, Encoded, OffHours, Score, Day;",
    "let PerHost = Suspicious",
    "| summarize Events = count(), Lolbins = make_set(FileName), MaxScore = max(Score),",
    "            First = min(Timestamp), Last = max(Timestamp)",
    "  by DeviceName, Day;",
    "let Accounts = Suspicious",
    "| summarize Accounts = dcount(AccountName), AccountList = make_set(AccountName, 10) by DeviceName;",
    "let Network = DeviceNetworkEvents",
    "| where Timestamp > ago(lookback)",
    "| where RemotePort in (80, 443, 8080)",
    "| summarize Connections = count(), RemoteHosts = dcount(RemoteIP) by DeviceName;",
    "PerHost",
    "| join kind=leftouter Accounts on DeviceName",
    "| join kind=leftouter Network on DeviceName",
    "| extend Connections = coalesce(Connections, 0)",
    "| extend Duration = Last - First",
    "| extend Severity = case(MaxScore >= 6, 'High',",
    "                         MaxScore >= 3, 'Medium',",
    "                         'Low')",
    "| extend Summary = strcat(DeviceName, ': ', Events, ' lolbin events, ',",
    "                         array_length(Lolbins), ' binaries, score ', MaxScore)",
    "| where Severity != 'Low' or Connections > 10",
    "| project-away DeviceName1, DeviceName2",
    "| project-reorder Severity, DeviceName, Day",
    "| extend IsWeekend = dayofweek(Day) in (0d, 6d)",
    "| extend DurationMinutes = Duration / 1m",
    "| extend AccountCount = iff(isnull(Accounts), 0, Accounts)",
    "| extend Note = iff(IsWeekend, 'weekend activity', '')",
    "| extend Tag = tolower(Severity)",
    "| extend Rank = MaxScore * 10 + AccountCount",
    "| where Rank > 0",
    "| top 100 by Rank desc",
    "| project Severity, DeviceName, Day, Events, Lolbins, MaxScore, First, Last, Accounts,",
    "          AccountList, Connections, RemoteHosts, Duration, Summary, IsWeekend, DurationMinutes,",
    "          Note, Tag, Rank",
    "| sort by Rank desc, DeviceName asc",
])


def populate(engine: DuckDBEngine, rows: int) -> None:
    """Synthetic process telemetry: one cmstp.exe per ~50,000 rows, realistic command lines, 8 days of time."""
    engine.connection.execute(f"""
        INSERT INTO "DeviceProcessEvents" ("Timestamp", "DeviceName", "AccountName", "FileName", "FolderPath",
            "ProcessCommandLine", "InitiatingProcessFileName", "InitiatingProcessCommandLine", "ProcessId",
            "AssayEventId", "AssaySource")
        SELECT TIMESTAMP '2024-05-01 12:00:00' - to_microseconds(CAST(hash(i) % 691200000000 AS BIGINT)),
               'WS-' || lpad(CAST(i % 2000 AS VARCHAR), 4, '0') || '.contoso.local',
               ['alice', 'bob', 'carol', 'svc_backup', 'SYSTEM'][1 + i % 5],
               CASE WHEN i % 50000 = 7 THEN 'cmstp.exe'
                    ELSE ['svchost.exe', 'chrome.exe', 'powershell.exe', 'cmd.exe', 'conhost.exe',
                          'msedge.exe', 'teams.exe', 'rundll32.exe'][1 + (i // 7) % 8] END,
               'C:\\Windows\\System32\\' || CASE WHEN i % 50000 = 7 THEN 'cmstp.exe' ELSE 'svchost.exe' END,
               CASE WHEN i % 50000 = 7 THEN 'cmstp.exe /s C:\\Users\\Public\\x' || i || '.inf /au'
                    WHEN i % 97 = 0 THEN 'powershell.exe -nop -enc SQBFAFgAIAAoA' || i
                    WHEN i % 89 = 0 THEN 'powershell.exe -c (New-Object Net.WebClient).DownloadString(''http://10.0.0.' || (i % 250) || '/a.ps1'')'
                    ELSE 'C:\\Windows\\System32\\svchost.exe -k netsvcs -p -s Schedule ' || (i % 1000) END,
               ['explorer.exe', 'services.exe', 'cmd.exe', 'winword.exe'][1 + i % 4],
               'C:\\Windows\\Explorer.EXE',
               4000 + i % 60000, i, 'bench#' || i
        FROM range({rows}) AS t(i)
    """)


def best_of(repeat: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


CORPUS = Path(__file__).resolve().parents[1] / "tests" / "kql" / "conformance" / "hunting"


def corpus_report(repeat: int) -> None:
    """Share of the hunting corpus that parses, binds and runs (with the stage that failed), and the compile
    time per query (parse + bind + lower + SQL text), best of ``repeat``."""
    import statistics

    import yaml

    from assay.ingest.rows import load_records, resolve_table

    cases = [case for path in sorted((CORPUS / "cases").glob("*.yml"))
             for case in yaml.safe_load(path.read_text(encoding="utf-8"))]
    engine = DuckDBEngine(None)
    data = yaml.safe_load((CORPUS / "data.yml").read_text(encoding="utf-8"))
    for table, rows in data["tables"].items():
        load_records(engine, resolve_table(table), (("data.yml", i, r) for i, r in enumerate(rows, start=1)))
    tables = kql.table_schemas(engine)
    parsed = bound = ran = 0
    times: list[float] = []
    stage_time = {"parse": 0.0, "bind": 0.0, "run": 0.0}
    files = CORPUS / "files"
    for case in cases:
        text = case["kql"]
        offline = {"watchlists": {k: files / v for k, v in (case.get("watchlists") or {}).items()},
                   "externaldata": {k: files / v for k, v in (case.get("externaldata") or {}).items()}}
        try:
            started = time.perf_counter()
            kql.parse(text)
            stage_time["parse"] += time.perf_counter() - started
            parsed += 1
            started = time.perf_counter()
            kql.check(text, tables=tables, **offline)
            stage_time["bind"] += time.perf_counter() - started
            bound += 1
            started = time.perf_counter()
            kql.run(text, db=engine, now=NOW, **offline)
            stage_time["run"] += time.perf_counter() - started
            ran += 1
        except Exception:  # the share is the measure; the tests say which case fails and why
            continue
        times.append(best_of(repeat, lambda text=text, offline=offline: kql.compile(text, tables=tables, now=NOW,
                                                                                   **offline)))
    engine.close()
    total = len(cases)
    times.sort()
    print(f"hunting corpus: {total} queries; parse {parsed} ({parsed / total:.1%}), bind {bound} "
          f"({bound / total:.1%}), run {ran} ({ran / total:.1%})")
    print(f"  time in stage over the corpus: parse {stage_time['parse'] * 1000:.0f} ms, bind "
          f"{stage_time['bind'] * 1000:.0f} ms, run (compile + DuckDB) {stage_time['run'] * 1000:.0f} ms")
    print(f"  compile per query (best of {repeat}): median {statistics.median(times) * 1000:.2f} ms, "
          f"p95 {times[max(0, int(len(times) * 0.95) - 1)] * 1000:.2f} ms, max {times[-1] * 1000:.2f} ms")


def fifty_line_report() -> None:
    lines = FIFTY_LINE_KQL.count("\n") + 1
    kql.compile(FIFTY_LINE_KQL, now=NOW)  # warm imports and caches
    compile_time = best_of(20, lambda: kql.compile(FIFTY_LINE_KQL, now=NOW))
    check_time = best_of(20, lambda: kql.check(FIFTY_LINE_KQL))
    started_cpu = time.process_time()
    for _ in range(20):
        kql.compile(FIFTY_LINE_KQL, now=NOW)
    compile_cpu = (time.process_time() - started_cpu) / 20
    print(f"parse + bind + compile of a {lines}-line query: {compile_time * 1000:.1f} ms wall, "
          f"{compile_cpu * 1000:.1f} ms CPU (target < 20 ms); parse + bind only (kql.check): "
          f"{check_time * 1000:.1f} ms; sqlglot {'compiled (sqlglotc)' if SQLGLOTC_INSTALLED else 'pure Python'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corpus-only", action="store_true",
                        help="only the hunting-corpus shares and compile times (no synthetic rows)")
    args = parser.parse_args()

    if args.corpus_only:
        corpus_report(args.repeat)
        fifty_line_report()
        return
    engine = DuckDBEngine(None, threads=args.threads)
    install_macros(engine)
    started = time.perf_counter()
    populate(engine, args.rows)
    print(f"generated {args.rows:,} DeviceProcessEvents rows in {time.perf_counter() - started:.1f} s "
          f"({args.threads} DuckDB threads)")

    for name, kql_text, hand_sql in (("cmstp (selective)", CMSTP_KQL, CMSTP_SQL),
                                     ("hunt (full scan + summarize)", HUNT_KQL, HUNT_SQL)):
        compiled = kql.compile(kql_text, now=NOW)
        compiled_rows = engine.connection.execute(compiled.sql).fetchall()
        hand_rows = engine.connection.execute(hand_sql).fetchall()
        assert len(compiled_rows) == len(hand_rows), (name, len(compiled_rows), len(hand_rows))
        compiled_time = best_of(args.repeat, lambda sql=compiled.sql: engine.connection.execute(sql).fetchall())
        hand_time = best_of(args.repeat, lambda sql=hand_sql: engine.connection.execute(sql).fetchall())
        print(f"{name}: {len(compiled_rows):,} rows; compiled KQL {compiled_time * 1000:.0f} ms, "
              f"hand-written SQL {hand_time * 1000:.0f} ms, ratio {compiled_time / hand_time:.2f}x "
              f"(target <= 1.30x)")

    corpus_report(args.repeat)
    fifty_line_report()
    engine.close()


if __name__ == "__main__":
    main()
