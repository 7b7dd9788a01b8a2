"""Custom tables from schema files: the accepted forms, and errors located at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from assay.cli.main import cli
from assay.errors import SchemaError
from assay.schema.custom import load_schema_files, load_schema_text

FORMS = """\
tables:
  MyApp_CL:
    description: Sign-ins of the line-of-business app
    columns:
      - [TimeGenerated, datetime]
      - {name: UserName_s, type: string}
      - [Latency_d, double]
  Heartbeat_CL: "TimeGenerated:datetime, Computer:string, Up:boolean"
  Flags_CL:
    columns: {TimeGenerated: datetime, Count: int64}
"""


def test_every_column_form_is_accepted_and_type_aliases_are_mapped() -> None:
    tables = load_schema_text(FORMS, "app.yml")
    assert tables["MyApp_CL"].kql_columns == (("TimeGenerated", "datetime"), ("UserName_s", "string"),
                                              ("Latency_d", "real"))
    assert tables["Heartbeat_CL"].kql_columns == (("TimeGenerated", "datetime"), ("Computer", "string"),
                                                  ("Up", "bool"))
    assert tables["Flags_CL"].kql_columns == (("TimeGenerated", "datetime"), ("Count", "long"))
    assert tables["MyApp_CL"].source == "custom"


def test_a_json_file_with_one_table() -> None:
    text = '{"name": "Proxy_CL", "columns": [["TimeGenerated", "datetime"], ["Url_s", "string"]]}'
    assert list(load_schema_text(text, "proxy.json")) == ["Proxy_CL"]


@pytest.mark.parametrize(("text", "line", "col", "message"), [
    ("tables:\n  A_CL:\n    columns:\n      - [x, strng]\n", 4, 9, "unknown column type 'strng'"),
    ("tables:\n  A_CL:\n    columns:\n      - [x, string]\n      - [X, long]\n", 5, 9, "declared twice"),
    ("tables:\n  A_CL:\n    colums: [[x, string]]\n", 3, 5, "unknown key 'colums'"),
    ("tables:\n  A_CL:\n    columns: [[x, string]\n", 4, 1, "does not parse"),  # where YAML noticed
    ("tables:\n  Bad-Name:\n    columns: [[x, string]]\n", 2, 3, "not a plain Kusto name"),
    ("tables:\n  A_CL: 'x:string, y'\n", 2, 9, "has no type"),
    ("- just a list\n", 1, 1, "mapping"),
])
def test_errors_are_located(text: str, line: int, col: int, message: str) -> None:
    with pytest.raises(SchemaError) as caught:
        load_schema_text(text, "t.yml")
    assert message in caught.value.message
    assert (caught.value.span.file, caught.value.span.line) == ("t.yml", line)  # type: ignore[union-attr]
    if message != "does not parse":
        assert caught.value.span.col == col  # type: ignore[union-attr]


def test_a_table_declared_in_two_files_is_an_error(tmp_path: Path) -> None:
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text("tables:\n  A_CL: 'x:string'\n", encoding="utf-8")
    with pytest.raises(SchemaError, match="both"):
        load_schema_files([tmp_path / "a.yml", tmp_path / "b.yml"])


def test_cli_runs_and_checks_queries_over_declared_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.yml").write_text(FORMS, encoding="utf-8")
    (tmp_path / "q.kql").write_text("MyApp_CL\n| where Latency_d > 1.5\n| project UserName_s\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["kql", "check", "q.kql"])
    assert result.exit_code == 1 and "unknown table 'MyApp_CL'" in result.output
    result = runner.invoke(cli, ["kql", "check", "--schema", "app.yml", "q.kql"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["kql", "q.kql", "--schema", "app.yml", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"rows": []' in result.output
    # the project folder is read without --schema
    (tmp_path / ".assay" / "schemas").mkdir(parents=True)
    (tmp_path / "app.yml").rename(tmp_path / ".assay" / "schemas" / "app.yml")
    assert runner.invoke(cli, ["kql", "check", "q.kql"]).exit_code == 0


def test_cli_reports_a_bad_schema_file_with_its_location(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("tables:\n  A_CL:\n    columns:\n      - [x, strng]\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["kql", "print 1", "--schema", str(tmp_path / "bad.yml")])
    assert result.exit_code == 1
    assert "bad.yml:4:9" in result.output and "did you mean 'string'" in result.output
    assert "Traceback" not in result.output
