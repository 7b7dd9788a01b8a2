"""Where Kusto is lenient, Assay is too: strings compared with numbers or datetimes, Unicode spaces in query text,
verbatim strings inside dynamic literals, and tabular lets on the right of in / has_any."""

from __future__ import annotations

import pytest

from assay import kql
from assay.engine import DuckDBEngine

CONNECTIONS = """let Conn = datatable(RemotePort: long, Timestamp: datetime, RemoteUrl: string) [
    3389, datetime(2024-05-01 08:00), "rdp.contoso.com",
    22, datetime(2024-05-01 09:00), "ssh.fabrikam.net",
    443, datetime(2024-05-01 10:00), "login.example.org",
];
"""


def ports(engine: DuckDBEngine, predicate: str) -> list[int]:
    return [row[0] for row in kql.run(CONNECTIONS + f"Conn | where {predicate} | project RemotePort",
                                      db=engine).rows]


@pytest.mark.parametrize(("predicate", "expected"), [
    ('RemotePort == "3389"', [3389]),
    ('"22" == RemotePort', [22]),
    ('RemotePort != "3389"', [22, 443]),
    ('RemotePort > "400"', [3389, 443]),
    ('RemotePort in ("3389", "22")', [3389, 22]),
    ('RemotePort !in ("3389", "22")', [443]),
    ('RemotePort between ("20" .. "30")', [22]),
    ('RemotePort == "not a number"', []),
    ('Timestamp >= "2024-05-01 09:00"', [22, 443]),
])
def test_number_and_datetime_columns_compare_with_string_literals(engine: DuckDBEngine, predicate: str,
                                                                    expected: list[int]) -> None:
    assert ports(engine, predicate) == expected


@pytest.mark.parametrize("space", ["\u00a0", "\u200b", "\u2003", "\u202f", "\ufeff", "\u3000", "\u2060"])
def test_unicode_spaces_in_query_text_are_whitespace(engine: DuckDBEngine, space: str) -> None:
    query = CONNECTIONS + f"Conn{space}|{space}where RemotePort{space}=={space}22{space}| project RemotePort"
    assert kql.run(query, db=engine).rows == ((22,),)


def test_unicode_space_inside_a_string_is_kept(engine: DuckDBEngine) -> None:
    assert kql.run('print s = "a\u00a0b"', db=engine).rows == (("a\u00a0b",),)


def test_verbatim_and_single_quoted_strings_inside_dynamic(engine: DuckDBEngine) -> None:
    result = kql.run("print d = dynamic([@'C:\\Windows\\', @\"say \"\"hi\"\"\", 'a', \"b\\\\c\"])", db=engine)
    assert result.rows == ((["C:\\Windows\\", 'say "hi"', "a", "b\\c"],),)


def test_verbatim_paths_in_a_dynamic_list_filter_rows(engine: DuckDBEngine) -> None:
    query = ("let Paths = dynamic([@'C:\\Windows\\Temp\\', @'C:\\Users\\Public\\']);"
             "datatable(FolderPath: string) [@'C:\\Users\\Public\\x.exe', @'C:\\Program Files\\y.exe']"
             "| where FolderPath startswith Paths[1]")
    assert kql.run(query, db=engine).rows == (("C:\\Users\\Public\\x.exe",),)


TOOLS = """let Tools = datatable(Name: string) ["psexec", "mimikatz"];
let Procs = datatable(FileName: string, CommandLine: string) [
    "psexec", "psexec \\\\\\\\srv -s cmd",
    "cmd.exe", "cmd /c mimikatz.exe sekurlsa",
    "notepad.exe", "notepad psexecsvc.log",
];
"""


def test_in_over_a_tabular_let(engine: DuckDBEngine) -> None:
    result = kql.run(TOOLS + "Procs | where FileName in (Tools) | project FileName", db=engine)
    assert result.rows == (("psexec",),)
    result = kql.run(TOOLS + "Procs | where FileName !in (Tools) | project FileName", db=engine)
    assert result.rows == (("cmd.exe",), ("notepad.exe",))


def test_has_any_over_a_tabular_let_matches_whole_terms(engine: DuckDBEngine) -> None:
    # has is a term match: "psexecsvc" does not have "psexec"; "mimikatz.exe" has "mimikatz"
    result = kql.run(TOOLS + "Procs | where CommandLine has_any (Tools) | project FileName", db=engine)
    assert result.rows == (("psexec",), ("cmd.exe",))


def test_has_all_over_a_tabular_let(engine: DuckDBEngine) -> None:
    query = TOOLS + "Procs | where CommandLine has_all (Tools | where Name == 'mimikatz') | project FileName"
    assert kql.run(query, db=engine).rows == (("cmd.exe",),)


def test_has_any_over_a_dynamic_column(engine: DuckDBEngine) -> None:
    query = ("datatable(Line: string, Terms: dynamic) ['run evil now', dynamic(['evil']), "
             "'evilness', dynamic(['evil']), 'quiet', dynamic([])] | where Line has_any (Terms) | project Line")
    assert kql.run(query, db=engine).rows == (("run evil now",),)


def test_in_over_a_tabular_let_of_another_type(engine: DuckDBEngine) -> None:
    query = ("let Ports = datatable(p: string) ['22', '3389']; " + CONNECTIONS.split(";", 1)[0].removeprefix(
        "let Conn = ") + " | where RemotePort in (Ports) | project RemotePort")
    assert kql.run(query, db=engine).rows == ((3389,), (22,))
