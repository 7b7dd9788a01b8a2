"""Every error is located: mutated real-style queries (tests/kql/data/fuzz_seeds.kql) give rows or an AssayError
with a line and column, from parse, check and run alike; never a Python exception. Hypothesis drives the
mutations (bounded here; bench/fuzz_kql.py runs long campaigns)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import AssayError
from assay.kql.lexer import TokenKind, tokenize

SEEDS_FILE = Path(__file__).resolve().parent / "data" / "fuzz_seeds.kql"
SEEDS = [block.strip() for block in "\n".join(
    line for line in SEEDS_FILE.read_text(encoding="utf-8").splitlines() if not line.startswith("//")
).split("\n----\n") if block.strip()]

REPLACEMENTS = [
    "|", "(", ")", ",", ";", "==", "!=", "has", "in", "between", "and", "not", "*", "/", "-", "0", "-1",
    "99999999999999999999", "1e308", "0h", "-1d", '""', "@'(['", "@'a(?i)b'", "datetime(2024-13-45)",
    "dynamic([[1],[2,[3]]])", "null", "toscalar(", "todatetime(", "extract(", "bin(", "count()", "make_set(",
    "range(", "hash(", "series_stats(", "_GetWatchlist('w')", "externaldata", "\u00a0", "\u200b",
    "| take 0", "| count", "| summarize count()", "| mv-expand x = dynamic([1])", "| sort by 1 asc",
    "| evaluate bag_unpack(dynamic({}))", "| make-series count() on TimeGenerated step 1h", "| search 'a'",
]


def pieces(query: str) -> list[str]:
    tokens = tokenize(query)
    result: list[str] = []
    previous = 0
    for token in tokens:
        if token.kind is TokenKind.EOF:
            break
        result.append(query[previous:token.end])
        previous = token.end
    return [*result, query[previous:]]


@st.composite
def mutated_queries(draw: st.DrawFn) -> str:
    parts = pieces(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(parts) - 2))
        action = draw(st.sampled_from(["delete", "duplicate", "replace", "insert", "truncate", "append"]))
        if action == "delete":
            del parts[index]
        elif action == "duplicate":
            parts.insert(index, parts[index])
        elif action == "replace":
            parts[index] = " " + draw(st.sampled_from(REPLACEMENTS))
        elif action == "insert":
            parts.insert(index, " " + draw(st.sampled_from(REPLACEMENTS)))
        elif action == "truncate":
            parts = parts[:index + 1]
        else:
            parts.append("\n" + draw(st.sampled_from([r for r in REPLACEMENTS if r.startswith("|")])))
        if len(parts) < 2:
            break
    return "".join(parts)


def assert_located(error: AssayError, query: str) -> None:
    assert error.span is not None and error.span.line is not None and error.span.col is not None, \
        f"unlocated {type(error).__name__}: {error.message}\n{query}"
    assert 1 <= error.span.line <= query.count("\n") + 1, query


def test_every_seed_runs(engine: DuckDBEngine) -> None:
    for seed in SEEDS:
        kql.run(seed, db=engine, now="2024-05-02T00:00:00Z")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(mutated_queries())
def test_check_and_compile_give_rows_or_located_errors(query: str) -> None:
    try:
        kql.check(query)
        kql.compile(query)
    except AssayError as error:
        assert_located(error, query)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(mutated_queries())
def test_run_gives_rows_or_located_errors(engine: DuckDBEngine, query: str) -> None:
    try:
        kql.run(query, db=engine, now="2024-05-02T00:00:00Z")
    except AssayError as error:
        assert_located(error, query)


@pytest.mark.parametrize("query", [
    # found by bench/fuzz_kql.py: each failed in DuckDB (or raised a Python exception) after passing check
    "datatable(a: long) [2, 1] | sort by a desc | mv-expand x = dynamic([1, 2])",
    "datatable(s: string) ['a -enc x y'] | parse s with * '-enc ' Encoded: null ' ' *",
    "print x = 1 | top -1 by x",
    "datatable(a: int) [62546254625]",
    "print d = datetime_diff('minute', now(), 1h)",
    "range Step from 1 to 2 step 1 | extend Hour = Step * 1h "
    "| join kind=leftouter (datatable(Hour: datetime, n: long) [datetime(2024-05-01 03:00), 4]) on Hour",
    "datatable(T: datetime) [datetime(2024-01-01)] | make-series count() on T step 0h",
    "print x = 1 / 0",
    "datatable(a: string, b: long) ['x', 1] | summarize S = make_set(b) =~ a",
    "datatable(a: long) [3, 1] | summarize count() by -1",
    "datatable(a: long) [3, 1] | order by 9223372036854775807 desc",
    "range Step from 1 to 24 step now()",
    "print a = round('x'), b = startofday(5), c = array_length('x'), d = iff('a', 1, 2)",
    "print 'abc' matches regex true",
])
def test_fuzzer_findings_are_rows_or_located_check_errors(engine: DuckDBEngine, query: str) -> None:
    try:
        kql.check(query)
    except AssayError as error:
        assert_located(error, query)
        return
    kql.run(query, db=engine)  # when check accepts it, it runs


def test_a_constant_sort_or_group_key_is_not_a_column_position(engine: DuckDBEngine) -> None:
    # SQL reads ORDER BY 1 as "the first column"; in KQL it is a constant, so the order is unchanged
    assert kql.run("datatable(a: long) [3, 1, 2] | sort by 1 asc", db=engine).rows == ((3,), (1,), (2,))
    assert kql.run("datatable(a: long) [3, 1, 2] | summarize n = count() by k = 1", db=engine).rows == ((1, 3),)
