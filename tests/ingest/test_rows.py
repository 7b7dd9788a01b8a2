"""``assay ingest --table``: rows of any known or declared table from JSON lines, JSON arrays and CSV; bad rows
are reported with file:line and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from assay import kql
from assay.cli.main import cli
from assay.engine import DuckDBEngine
from assay.ingest.rows import load_rows, resolve_table

SIGNINS = [
    {"TimeGenerated": "2024-05-01T10:00:00.1234567Z", "UserPrincipalName": "alice@contoso.com", "ResultType": "0",
     "IPAddress": "203.0.113.5", "LocationDetails": {"countryOrRegion": "US", "city": "Seattle"},
     "Type": "SigninLogs"},
    {"TimeGenerated": "2024-05-01T10:05:00+02:00", "UserPrincipalName": "bob@contoso.com", "ResultType": 50126,
     "IPAddress": "198.51.100.7", "ConditionalAccessStatus": "notApplied", "NotAColumn": 1},
]


def _write_jsonl(path: Path, rows: list[object], extra_lines: tuple[str, ...] = ()) -> Path:
    path.write_text("\n".join([json.dumps(r) for r in rows] + list(extra_lines)) + "\n", encoding="utf-8")
    return path


def test_json_lines_rows_load_typed_and_queryable(tmp_path: Path) -> None:
    source = _write_jsonl(tmp_path / "signins.jsonl", SIGNINS,
                          ("{not json", '["not", "an object"]', '{"TimeGenerated": "yesterday"}'))
    with DuckDBEngine(None) as engine:
        summary = load_rows(engine, resolve_table("SigninLogs"), [source])
        assert summary.rows == 2 and summary.created
        assert [(b.location, b.reason.split(":")[0]) for b in summary.bad] == [
            ("line 3", "not JSON"), ("line 4", "a row must be a JSON object"), ("line 5", "column TimeGenerated")]
        assert summary.unmapped == {"NotAColumn": 1}
        result = kql.run("SigninLogs | extend Country = tostring(LocationDetails.countryOrRegion) "
                         "| project TimeGenerated, UserPrincipalName, ResultType, Country, Type "
                         "| order by TimeGenerated asc", db=engine)
    rows = [tuple(str(v) for v in row) for row in result.rows]
    # +02:00 is converted to UTC; 100 ns ticks are cut to microseconds; a number becomes the string column's text
    assert rows == [("2024-05-01 08:05:00", "bob@contoso.com", "50126", "", "SigninLogs"),
                    ("2024-05-01 10:00:00.123456", "alice@contoso.com", "0", "US", "SigninLogs")]


def test_csv_rows_of_a_defender_table_fill_both_time_spellings(tmp_path: Path) -> None:
    source = tmp_path / "logons.csv"
    source.write_text("Timestamp,DeviceName,ActionType,RemotePort,IsLocalAdmin,Custom\n"
                      "2024-05-01T09:00:00Z,ws-01,LogonFailed,3389,false,a\n"
                      "2024-05-01T09:01:00Z,ws-01,LogonSuccess,not-a-port,true,b\n"
                      "2024-05-01T09:02:00Z,ws-02\n", encoding="utf-8")
    with DuckDBEngine(None) as engine:
        summary = load_rows(engine, resolve_table("DeviceLogonEvents"), [source])
        assert summary.rows == 1
        assert [(b.location, b.reason) for b in summary.bad] == [
            ("line 3", "column RemotePort: 'not-a-port' is not an integer"),
            ("line 4", "row does not have the header's 6 fields")]
        result = kql.run("DeviceLogonEvents | where TimeGenerated == Timestamp "
                         "| project DeviceName, RemotePort, IsLocalAdmin, Custom = tostring(AdditionalFields.Custom)",
                         db=engine)
    assert result.rows == (("ws-01", 3389, False, "a"),)


def test_sentinel_rows_with_time_generated_fill_a_defender_table(tmp_path: Path) -> None:
    source = _write_jsonl(tmp_path / "events.json", [])
    source.write_text(json.dumps([{"TimeGenerated": "2024-05-01T09:00:00Z", "DeviceName": "ws-03",
                                   "ActionType": "LogonSuccess", "TenantId": "t1"}]), encoding="utf-8")
    with DuckDBEngine(None) as engine:
        summary = load_rows(engine, resolve_table("DeviceLogonEvents"), [source])
        assert summary.rows == 1 and not summary.bad
        result = kql.run("DeviceLogonEvents | project Timestamp, TenantId", db=engine)
    assert [str(v) for v in result.rows[0]] == ["2024-05-01 09:00:00", "t1"]


def test_ingest_table_cli_exit_codes_and_json_summary(tmp_path: Path) -> None:
    source = _write_jsonl(tmp_path / "signins.jsonl", SIGNINS, ("{bad",))
    database = tmp_path / "case.duckdb"
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", "--table", "SigninLogs", str(source), "--db", str(database),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows_added"] == 2 and report["bad"][0]["where"] == "line 3"
    result = runner.invoke(cli, ["ingest", "--table", "SigninLogs", str(source), "--db", str(database), "--strict"])
    assert result.exit_code == 1
    result = runner.invoke(cli, ["ingest", "--table", "SignInLog", str(source), "--db", str(database)])
    assert result.exit_code == 2 and "did you mean 'SigninLogs'" in result.output
    result = runner.invoke(cli, ["kql", "SigninLogs | where isnotempty(UserPrincipalName) | summarize n = count()",
                                 "--db", str(database),
                                 "--format", "csv"])
    assert result.output.splitlines() == ["n", "4"]


def test_ingest_table_of_a_declared_custom_table(tmp_path: Path) -> None:
    (tmp_path / "app.yml").write_text("tables:\n  MyApp_CL: 'TimeGenerated:datetime, User_s:string, Ms_d:real'\n",
                                      encoding="utf-8")
    (tmp_path / "rows.csv").write_text("TimeGenerated,User_s,Ms_d\n2024-05-01 10:00:00,alice,12.5\n", encoding="utf-8")
    database = tmp_path / "case.duckdb"
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", "--table", "MyApp_CL", "--schema", str(tmp_path / "app.yml"),
                                 str(tmp_path / "rows.csv"), "--db", str(database)])
    assert result.exit_code == 0, result.output
    # once loaded, the table is in the database: no schema file needed to query it
    result = runner.invoke(cli, ["kql", "MyApp_CL | project User_s, Ms_d", "--db", str(database), "--format", "csv"])
    assert result.output.splitlines() == ["User_s,Ms_d", "alice,12.5"]
