"""Regression tests for the "wrong or crashing" list of issue #16: each query passed ``kql check`` and then failed
in DuckDB, raised a Python exception, or gave a different answer than Kusto's documentation says."""

from __future__ import annotations

from datetime import timedelta

import pytest

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import KqlBindError, KqlError, KqlSyntaxError


@pytest.mark.parametrize("query", [
    "DeviceProcessEvents | count",
    "DeviceProcessEvents | summarize count()",
    "DeviceProcessEvents | take 5 | count",
    "DeviceProcessEvents | summarize Total = count()",
])
def test_counting_a_table_without_naming_a_column_runs(engine: DuckDBEngine, query: str) -> None:
    # the column pruning read no column at all: "SELECT clause without selection list"
    result = kql.run(query, db=engine)
    assert result.rows == ((0,),)


def test_count_over_rows_counts_them(engine: DuckDBEngine) -> None:
    query = "let T = datatable(a: string) ['x', 'y', 'z']; T | take 2 | count"
    assert kql.run(query, db=engine).rows == ((2,),)


def test_abs_of_a_negative_timespan_is_positive(engine: DuckDBEngine) -> None:
    result = kql.run("print a = abs(-1h), b = abs(90m), c = abs(-3)", db=engine)
    assert result.rows == ((timedelta(hours=1), timedelta(minutes=90), 3),)
    assert result.columns[0] == ("a", "timespan")


def test_abs_of_a_string_is_a_located_error() -> None:
    with pytest.raises(KqlBindError) as caught:
        kql.check('print abs("x")')
    assert caught.value.span.col == 7


def test_re2_inline_flag_group_mid_pattern_is_accepted(engine: DuckDBEngine) -> None:
    # RE2 (Kusto's engine) applies (?i) from where it appears; Python's re rejects it
    result = kql.run('print a = "abc" matches regex @"a(?i)B", b = "ABc" matches regex @"a(?i)B"', db=engine)
    assert result.rows == ((True, False),)


def test_extract_with_a_capture_group_above_nine(engine: DuckDBEngine) -> None:
    query = 'print extract(@"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)", 11, "abcdefghijkl")'
    assert kql.run(query, db=engine).rows == (("k",),)


def test_extract_group_beyond_the_regex_is_a_located_error() -> None:
    with pytest.raises(KqlBindError, match="capture group 3") as caught:
        kql.check('print extract(@"(a)(b)", 3, "ab")')
    assert (caught.value.span.line, caught.value.span.col) == (1, 26)  # the group argument


def test_toscalar_over_a_function_call_pipeline(engine: DuckDBEngine) -> None:
    query = "let f = () { datatable(x: long) [1, 2, 3] }; print toscalar(f() | count)"
    assert kql.run(query, db=engine).rows == ((3,),)
    query = "let f = () { datatable(x: long) [1, 2, 3] }; print toscalar(f() | summarize max(x))"
    assert kql.run(query, db=engine).rows == ((3,),)


def test_toscalar_over_the_issue_reproduction(engine: DuckDBEngine) -> None:
    assert kql.run("let f=(){DeviceProcessEvents}; print toscalar(f() | count)", db=engine).rows == ((0,),)


@pytest.mark.parametrize("query", [
    'print extract_all(@"([a-", "abc")',
    'print extract(@"(", 1, "abc")',
    'print replace_regex("abc", @"[", "x")',
    'print trim(@"(", "abc")',
    'print "abc" matches regex "(?P<"',
    "datatable(s: string) ['a'] | parse kind=regex s with @'(' x:string",
])
def test_an_invalid_regex_is_a_located_error_not_re_error(query: str) -> None:
    with pytest.raises(KqlError) as caught:
        kql.check(query)
    assert "regular expression" in caught.value.message or "pattern" in caught.value.message
    assert caught.value.span.line == 1 and caught.value.span.col is not None


@pytest.mark.parametrize(("query", "column"), [
    ("print 99999999999999999999d", 7),
    ("print 99999999999999999999", 7),
    ("print 1e999", 7),
    ("print x = 1, y = 123456789012345678901234567890h", 18),
])
def test_out_of_range_literals_are_located_errors(query: str, column: int) -> None:
    with pytest.raises(KqlSyntaxError) as caught:
        kql.parse(query)
    assert caught.value.span.col == column


def test_datetime_and_timespan_literals_out_of_range_are_located() -> None:
    with pytest.raises(KqlSyntaxError):
        kql.parse("print datetime(99999-01-01)")
    with pytest.raises(KqlSyntaxError):
        kql.parse("print timespan(99999999999999999999.00:00:00)")


def test_in_flattens_nested_dynamic_arrays(engine: DuckDBEngine) -> None:
    # Microsoft's in-operator page: x in (dynamic([1,[2,3]])) becomes x in (1,2,3)
    result = kql.run("print a = 2 in (dynamic([1,[2,3]])), b = 3 !in (dynamic([1,[2,[3]]])), "
                     "c = 'b' in ('a', dynamic(['x', ['b']])), d = 4 in (dynamic([1,[2,3]]))", db=engine)
    assert result.rows == ((True, False, True, False),)


def test_in_over_a_let_of_nested_arrays_flattens(engine: DuckDBEngine) -> None:
    query = ("let Ports = dynamic([[22, 23], [3389]]); datatable(RemotePort: long) [22, 80, 3389] "
             "| where RemotePort in (Ports)")
    assert kql.run(query, db=engine).rows == ((22,), (3389,))
