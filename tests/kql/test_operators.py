"""Operators and functions on realistic security data: semantics a detection engineer relies on.

Each test states the Kusto rule it checks. Data are small datatables of process and logon events.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import KqlBindError, KqlError, KqlSyntaxError, KqlUnsupportedError

PROCESSES = """let Procs = datatable(Timestamp: datetime, DeviceName: string, FileName: string, CommandLine: string,
                           ParentFileName: string, ProcessId: long, Extra: dynamic) [
    datetime(2024-05-01 08:00:00), "WS-01", "powershell.exe", "powershell.exe -enc SQBFAFgA", "winword.exe", 4100,
        dynamic({"Integrity": "Medium", "Tags": ["office", "encoded"]}),
    datetime(2024-05-01 08:05:00), "WS-01", "cmstp.exe", "cmstp.exe /s C:\\\\Users\\\\Public\\\\x.inf", "powershell.exe",
        4200, dynamic({"Integrity": "High", "Tags": ["lolbin"]}),
    datetime(2024-05-01 09:10:00), "WS-02", "cmd.exe", "cmd.exe /c whoami", "explorer.exe", 5100,
        dynamic({"Integrity": "Medium", "Tags": []}),
    datetime(2024-05-01 09:20:00), "WS-02", "whoami.exe", "whoami /all", "cmd.exe", 5200, dynamic(null),
    datetime(2024-05-01 10:00:00), "SRV-DC1", "powershell.exe", "powershell.exe Get-ADUser", "services.exe", 900,
        dynamic({"Integrity": "System", "Tags": ["admin"]}),
];
"""


def run(engine: DuckDBEngine, query: str) -> kql.KqlResult:
    return kql.run(PROCESSES + query, db=engine, now="2024-05-01T12:00:00Z")


def test_where_extend_project_and_default_sort_direction(engine: DuckDBEngine) -> None:
    result = run(engine, "Procs | where FileName =~ 'POWERSHELL.EXE' | extend Hour = hourofday(Timestamp) "
                         "| project DeviceName, Hour | sort by Hour")
    assert result.rows == (("SRV-DC1", 10), ("WS-01", 8))  # sort is descending unless asc is given


def test_sort_asc_puts_nulls_first_and_desc_puts_them_last(engine: DuckDBEngine) -> None:
    query = "datatable(x: long) [3, long(null), 1] | sort by x asc"
    assert [r[0] for r in kql.run(query, db=engine).rows] == [None, 1, 3]
    query = "datatable(x: long) [3, long(null), 1] | sort by x desc"
    assert [r[0] for r in kql.run(query, db=engine).rows] == [3, 1, None]


def test_summarize_with_bin_count_dcount_countif_and_make_set(engine: DuckDBEngine) -> None:
    result = run(engine, """Procs
        | summarize count(), dcount(FileName), countif(FileName == "powershell.exe"), Files = make_set(FileName)
                  by bin(Timestamp, 1h)
        | sort by Timestamp asc""")
    assert result.column_names == ("Timestamp", "count_", "dcount_FileName", "countif_", "Files")
    assert result.rows == (
        (datetime(2024, 5, 1, 8), 2, 2, 1, ["cmstp.exe", "powershell.exe"]),
        (datetime(2024, 5, 1, 9), 2, 2, 0, ["cmd.exe", "whoami.exe"]),
        (datetime(2024, 5, 1, 10), 1, 1, 1, ["powershell.exe"]),
    )


def test_arg_max_with_star_keeps_the_whole_latest_row(engine: DuckDBEngine) -> None:
    result = run(engine, "Procs | summarize arg_max(Timestamp, *) by DeviceName | sort by DeviceName asc")
    assert result.column_names[:3] == ("DeviceName", "Timestamp", "FileName")
    assert [(r[0], r[2]) for r in result.rows] == [("SRV-DC1", "powershell.exe"), ("WS-01", "cmstp.exe"),
                                                    ("WS-02", "whoami.exe")]


def test_arg_min_with_named_columns(engine: DuckDBEngine) -> None:
    result = run(engine, "Procs | summarize arg_min(Timestamp, FileName, ProcessId) by DeviceName "
                         "| where DeviceName == 'WS-02'")
    assert result.rows == (("WS-02", datetime(2024, 5, 1, 9, 10), "cmd.exe", 5100),)


def test_integer_and_real_division(engine: DuckDBEngine) -> None:
    result = kql.run("print a = 7 / 2, b = 7 / 2.0, c = -7 / 2, d = 7 % 3, e = real(7) / 2", db=engine)
    assert result.rows == ((3, 3.5, -3, 1, 3.5),)


def test_timespan_arithmetic(engine: DuckDBEngine) -> None:
    result = kql.run("print d = datetime(2024-05-02) - datetime(2024-05-01 12:00), "
                     "later = datetime(2024-05-01) + 90m, ratio = 1d / 1h, half = 1d / 2, "
                     "ts = totimespan('01:30:00')", db=engine)
    assert result.rows == ((timedelta(hours=12), datetime(2024, 5, 1, 1, 30), 24.0, timedelta(hours=12),
                            timedelta(hours=1, minutes=30)),)


def test_now_is_fixed_for_the_whole_query_and_settable(engine: DuckDBEngine) -> None:
    result = kql.run("print a = now(), b = ago(1h), c = now(-1d)", db=engine, now="2024-05-01T12:00:00Z")
    assert result.rows == ((datetime(2024, 5, 1, 12), datetime(2024, 5, 1, 11), datetime(2024, 4, 30, 12)),)


def test_dynamic_property_access_and_mv_expand(engine: DuckDBEngine) -> None:
    result = run(engine, """Procs
        | where tostring(Extra.Integrity) in ("High", "System")
        | mv-expand with_itemindex = Index Tag = Extra.Tags to typeof(string)
        | project FileName, Tag, Index, FirstTag = tostring(Extra["Tags"][0])""")
    assert sorted(result.rows) == [("cmstp.exe", "lolbin", 0, "lolbin"), ("powershell.exe", "admin", 0, "admin")]


def test_join_default_kind_is_innerunique(engine: DuckDBEngine) -> None:
    query = """let Logons = datatable(DeviceName: string, AccountName: string) [
        "WS-01", "alice", "WS-01", "alice", "WS-02", "bob"];
    Logons | join (Procs | project DeviceName, FileName) on DeviceName | summarize count() by AccountName"""
    # innerunique: the two identical WS-01 logon rows count once, so alice gets WS-01's 2 processes, not 4
    assert sorted(run(engine, query).rows) == [("alice", 2), ("bob", 2)]


@pytest.mark.parametrize(("kind", "expected"), [
    ("inner", [("WS-01", 2), ("WS-02", 2)]),
    ("leftouter", [("WS-01", 2), ("WS-02", 2), ("WS-09", 1)]),
    ("leftanti", [("WS-09", 1)]),
    ("leftsemi", [("WS-01", 1), ("WS-02", 1)]),
])
def test_join_kinds(engine: DuckDBEngine, kind: str, expected: list[tuple[str, int]]) -> None:
    query = f"""let Hosts = datatable(DeviceName: string, Owner: string) ["WS-01", "alice", "WS-02", "bob",
                                                                        "WS-09", "carol"];
    Hosts | join kind={kind} Procs on DeviceName | summarize count() by DeviceName"""
    assert sorted(run(engine, query).rows) == expected


def test_join_on_differently_named_columns_keeps_both(engine: DuckDBEngine) -> None:
    query = """let Parents = datatable(Pid: long, Name: string) [4100, "powershell"];
    Parents | join kind=inner (Procs | project ProcessId, FileName) on $left.Pid == $right.ProcessId"""
    result = run(engine, query)
    assert result.column_names == ("Pid", "Name", "ProcessId", "FileName")
    assert result.rows == ((4100, "powershell", 4100, "powershell.exe"),)


def test_join_renames_clashing_right_columns(engine: DuckDBEngine) -> None:
    query = """Procs | where FileName == 'cmd.exe' | project DeviceName, FileName
        | join kind=inner (Procs | project DeviceName, FileName) on DeviceName"""
    result = run(engine, query)
    assert result.column_names == ("DeviceName", "FileName", "DeviceName1", "FileName1")
    assert sorted(r[3] for r in result.rows) == ["cmd.exe", "whoami.exe"]


def test_lookup_adds_dimension_columns(engine: DuckDBEngine) -> None:
    query = """let Owners = datatable(DeviceName: string, Owner: string) ["WS-01", "alice"];
    Procs | lookup Owners on DeviceName | project FileName, Owner | sort by FileName asc"""
    assert run(engine, query).rows == (("cmd.exe", ""), ("cmstp.exe", "alice"), ("powershell.exe", "alice"),
                                       ("powershell.exe", ""), ("whoami.exe", ""))


def test_union_withsource_and_missing_columns(engine: DuckDBEngine) -> None:
    query = """let A = datatable(x: long, y: string) [1, "a"];
    let B = datatable(x: long, z: bool) [2, true];
    union withsource = Source A, B | sort by x asc"""
    result = kql.run(query, db=engine)
    assert result.column_names == ("Source", "x", "y", "z")
    assert result.rows == (("A", 1, "a", None), ("B", 2, "", True))  # a missing string is "", never null


def test_let_scalar_tabular_and_function(engine: DuckDBEngine) -> None:
    query = """let threshold = 2;
    let Lolbins = dynamic(["cmstp.exe", "mshta.exe", "regsvr32.exe"]);
    let ByHost = (host: string) { Procs | where DeviceName == host };
    let Counted = materialize(ByHost("WS-01") | summarize n = count() by DeviceName);
    Counted | where n >= threshold | extend HasLolbin = toscalar(Procs | where FileName in (Lolbins) | count) > 0"""
    assert run(engine, query).rows == (("WS-01", 2, True),)


def test_invoke_passes_the_pipe_input(engine: DuckDBEngine) -> None:
    query = """let OnlyShells = (T: (FileName: string), name: string) { T | where FileName == name };
    Procs | invoke OnlyShells("cmd.exe") | project ProcessId"""
    assert run(engine, query).rows == ((5100,),)


def test_getschema_lists_the_columns(engine: DuckDBEngine) -> None:
    result = kql.run("DeviceProcessEvents | project Timestamp, FileName, ProcessId | getschema", db=engine)
    assert result.rows == (("Timestamp", 0, "System.DateTime", "datetime"), ("FileName", 1, "System.String", "string"),
                           ("ProcessId", 2, "System.Int64", "long"))


def test_top_take_distinct_count(engine: DuckDBEngine) -> None:
    assert run(engine, "Procs | top 2 by ProcessId | project ProcessId").rows == ((5200,), (5100,))
    assert len(run(engine, "Procs | take 3").rows) == 3
    assert sorted(run(engine, "Procs | distinct DeviceName").rows) == [("SRV-DC1",), ("WS-01",), ("WS-02",)]
    assert run(engine, "Procs | count").rows == ((5,),)


def test_project_variants(engine: DuckDBEngine) -> None:
    result = run(engine, "Procs | project-away Extra, *Name | project-rename Pid = ProcessId "
                         "| project-reorder Pid | take 1")
    assert result.column_names == ("Pid", "Timestamp", "CommandLine")


def test_parse_and_extract(engine: DuckDBEngine) -> None:
    query = """datatable(Message: string) ["Failed logon for alice from 10.1.2.3 port 445"]
    | parse Message with "Failed logon for " User " from " Ip " port " Port: long
    | extend Octet = extract(@"(\\d+)\\.\\d+\\.\\d+\\.\\d+", 1, Ip), Private = ipv4_is_private(Ip)"""
    result = kql.run(query, db=engine)
    assert result.rows[0][1:] == ("alice", "10.1.2.3", 445, "10", True)


def test_in_with_a_subquery_and_case_insensitive_in(engine: DuckDBEngine) -> None:
    query = """Procs | where ParentFileName in ((Procs | where DeviceName == "WS-02" | project FileName))
        | project FileName"""
    assert run(engine, query).rows == (("whoami.exe",),)
    assert run(engine, "Procs | where FileName in~ ('CMD.EXE', 'WHOAMI.EXE') | count").rows == ((2,),)


def test_iff_case_coalesce_strcat(engine: DuckDBEngine) -> None:
    result = run(engine, """Procs | where DeviceName == "WS-02"
        | extend Kind = case(FileName == "cmd.exe", "shell", FileName endswith ".exe", "binary", "other"),
                 Short = iff(strlen(CommandLine) > 12, substring(CommandLine, 0, 12), CommandLine),
                 Label = strcat(DeviceName, "/", ProcessId), Owner = coalesce("", "unknown")
        | project Kind, Short, Label, Owner | sort by Label asc""")
    assert result.rows == (("shell", "cmd.exe /c w", "WS-02/5100", "unknown"),
                           ("binary", "whoami /all", "WS-02/5200", "unknown"))


def test_between_with_a_datetime_and_a_timespan(engine: DuckDBEngine) -> None:
    query = "Procs | where Timestamp between (datetime(2024-05-01 08:00) .. 1h) | count"
    assert run(engine, query).rows == ((2,),)


def test_toscalar_is_evaluated_once(engine: DuckDBEngine) -> None:
    query = "let g = toscalar(new_guid()); range x from 1 to 3 step 1 | extend g = g | distinct g | count"
    assert kql.run(query, db=engine).rows == ((1,),)


# ---------------------------------------------------------------- errors: where, what, what to do

def test_unknown_column_has_a_location_caret_and_suggestion() -> None:
    with pytest.raises(KqlBindError) as raised:
        kql.check("DeviceProcessEvents\n| where ProcesCommandLine has 'cmstp'", file="q.kql")
    error = raised.value
    assert str(error.span) == "q.kql:2:9"
    assert error.hint == "did you mean 'ProcessCommandLine'?"
    assert error.render_caret() == "| where ProcesCommandLine has 'cmstp'\n        ^"


def test_unknown_operator_function_and_table_get_suggestions() -> None:
    with pytest.raises(KqlSyntaxError, match="unknown tabular operator 'summarise'") as raised:
        kql.check("DeviceProcessEvents | summarise count()")
    assert raised.value.hint == "did you mean 'summarize'?"
    with pytest.raises(KqlBindError, match="unknown function 'tolowercase'") as raised:
        kql.check("DeviceProcessEvents | extend x = tolowercase(FileName)")
    assert raised.value.hint == "did you mean 'tolower'?"
    with pytest.raises(KqlBindError, match="unknown table 'DeviceProcesEvents'") as raised:
        kql.check("DeviceProcesEvents | take 1")
    assert raised.value.hint == "did you mean 'DeviceProcessEvents'?"


def test_type_errors_are_reported_before_running() -> None:
    with pytest.raises(KqlBindError, match="cannot compare a string value with a long value"):
        kql.check("DeviceProcessEvents | where FileName == 4")
    with pytest.raises(KqlBindError, match="ago\\(\\) takes a timespan"):
        kql.check("DeviceProcessEvents | where Timestamp > ago(5)")
    with pytest.raises(KqlBindError, match="is an aggregate"):
        kql.check("DeviceProcessEvents | extend n = count()")


@pytest.mark.parametrize(("query", "message"), [
    ("externaldata(x: string) [@'https://example.com/iocs.csv'] | take 1", "not available offline"),
    ("_GetWatchlist('HighValueAssets') | take 1", "not available offline"),
    ("DeviceProcessEvents | evaluate autocluster()", "evaluate plugin autocluster"),
    ("DeviceProcessEvents | sample 5", "'sample' operator is not supported"),
    ("DeviceProcessEvents | extend p = parse_xml(FileName)", r"parse_xml\(\) is not supported"),
])
def test_unsupported_constructs_are_named(query: str, message: str) -> None:
    with pytest.raises(KqlUnsupportedError, match=message) as raised:
        kql.check(query)
    assert raised.value.span is not None and raised.value.span.line == 1


def test_syntax_error_points_at_the_token() -> None:
    with pytest.raises(KqlSyntaxError) as raised:
        kql.parse("DeviceProcessEvents\n| where (FileName == 'x'\n| take 1")
    assert (raised.value.span.line, raised.value.span.col) == (3, 1)  # type: ignore[union-attr]
    assert "expected ')'" in raised.value.message
    with pytest.raises(KqlSyntaxError, match="expected '\\)' to close the argument list") as raised:
        kql.parse("print x = strcat('a', 'b'")


def test_every_error_is_a_kql_error() -> None:
    for text in ("", "| take 1", "print 'unterminated", "let x = ;", "DeviceProcessEvents | where"):
        with pytest.raises(KqlError):
            kql.check(text)


def test_lookup_with_differently_named_keys_drops_the_right_key(engine: DuckDBEngine) -> None:
    query = """let Owners = datatable(Host: string, Owner: string) ["WS-01", "alice"];
    Procs | where FileName == "cmstp.exe" | lookup Owners on $left.DeviceName == $right.Host
    | project-keep DeviceName, Owner, Host*"""
    result = run(engine, query)
    assert result.column_names == ("DeviceName", "Owner")
    assert result.rows == (("WS-01", "alice"),)
