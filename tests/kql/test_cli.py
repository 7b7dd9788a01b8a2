"""``assay kql``: run, check and support, through the real CLI entry point (click's runner)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from assay.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_print_runs_without_a_database(tmp_path: Path, monkeypatch: object) -> None:
    code, out, _ = invoke("kql", 'print Answer = 6 * 7, Has = "cmstp.exe /s x.inf" has "/s"', "--now",
                          "2024-05-01T00:00:00Z")
    assert code == 0
    assert out.splitlines() == ["Answer\tHas", "42\tTrue"]


def test_json_and_csv_formats() -> None:
    code, out, _ = invoke("kql", "print t = datetime(2024-05-01 10:00), d = dynamic({'a': [1, 2]})",
                          "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["columns"] == [{"name": "t", "type": "datetime"}, {"name": "d", "type": "dynamic"}]
    assert data["rows"] == [{"t": "2024-05-01T10:00:00", "d": {"a": [1, 2]}}]
    assert data["sql"].startswith("SELECT")
    code, out, _ = invoke("kql", "datatable(Name: string, Pid: long) ['cmd.exe', 4, 'a,b', 5]", "--format", "csv")
    assert code == 0
    assert out.splitlines() == ["Name,Pid", "cmd.exe,4", '"a,b",5']


def test_sql_option_prints_duckdb_and_spark(tmp_path: Path) -> None:
    query_file = tmp_path / "cmstp.kql"
    query_file.write_text('DeviceProcessEvents\n| where FileName =~ "cmstp.exe"\n| project Timestamp, DeviceName\n',
                          encoding="utf-8")
    code, out, _ = invoke("kql", str(query_file), "--sql", "spark")
    assert code == 0 and "`DeviceProcessEvents`" in out and "LOWER(" in out
    code, out, _ = invoke("kql", str(query_file), "--sql", "duckdb")
    assert code == 0 and '"DeviceProcessEvents"' in out


def test_errors_exit_1_with_a_caret_and_no_traceback() -> None:
    code, _, err = invoke("kql", "DeviceProcessEvents | where FileNme == 'x'")
    assert code == 1
    assert "<input>:1:29: error: unknown column or variable 'FileNme'" in err
    assert "                            ^" in err
    assert "hint: did you mean 'FileName'?" in err
    assert "Traceback" not in err


def test_missing_query_file_is_a_usage_error() -> None:
    code, _, err = invoke("kql", "no/such/query.kql")
    assert code == 2
    assert "does not exist" in err


def test_check_reports_each_file(tmp_path: Path) -> None:
    good = tmp_path / "good.kql"
    good.write_text("DeviceProcessEvents | where ProcessCommandLine has '/s' | take 5", encoding="utf-8")
    bad = tmp_path / "bad.kql"
    bad.write_text("DeviceProcessEvents\n| summarise count() by DeviceName", encoding="utf-8")
    code, out, err = invoke("kql", "check", str(good), str(bad))
    assert code == 1
    assert f"{bad}:2:3: error: unknown tabular operator 'summarise'" in err
    assert "1 of 2 KQL file(s) OK" in out
    code, out, _ = invoke("kql", "check", str(good), "--format", "json")
    assert code == 0 and json.loads(out)["failed"] == 0


def test_check_accepts_every_catalog_query() -> None:
    queries = sorted((ROOT / "detections").glob("*/sentinel.kql"))
    if not queries:
        return
    code, _, err = invoke("kql", "check", *map(str, queries))
    assert code == 0, err


def test_support_page_is_current() -> None:
    """docs/kql-support.md is generated from the code: regenerate it with `assay kql support --out ...`."""
    from assay.kql.support import render_markdown

    assert (ROOT / "docs" / "kql-support.md").read_text(encoding="utf-8") == render_markdown()


def test_help_everywhere() -> None:
    for args in (["kql", "--help"], ["kql", "run", "--help"], ["kql", "check", "--help"],
                 ["kql", "support", "--help"]):
        code, out, _ = invoke(*args)
        assert code == 0 and "Usage:" in out


def test_table_output_shows_kusto_text_for_datetimes_and_timespans() -> None:
    code, out, _ = invoke("kql", "print t = datetime(2024-05-01 10:00), d = 1d + 90m, n = -5s, f = 1.5s")
    assert code == 0
    assert out.splitlines()[1] == "2024-05-01T10:00:00Z\t1.01:30:00\t-00:00:05\t00:00:01.5000000"
