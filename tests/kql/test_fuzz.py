"""Bad input never crashes the KQL front end: any text gives a result or a KqlError with a location.

Hypothesis generates both arbitrary text and near-KQL token soup (the interesting case: almost-valid queries).
Deep nesting must give a clear error, never RecursionError.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay import kql
from assay.errors import AssayError, KqlError, UsageError

TABLES = {
    "DeviceProcessEvents": [("Timestamp", "datetime"), ("FileName", "string"), ("ProcessCommandLine", "string"),
                            ("ProcessId", "long"), ("AdditionalFields", "dynamic")],
}

TOKENS = [
    "DeviceProcessEvents", "|", "where", "extend", "project", "summarize", "by", "count()", "sort", "take", "10",
    "FileName", "ProcessCommandLine", "Timestamp", "ProcessId", "AdditionalFields", ".", "[", "]", "(", ")", ",",
    "==", "=~", "!=", "has", "has_any", "contains", "!has", "in", "between", "..", "and", "or", "not", "=",
    '"cmstp.exe"', "'/s'", "ago(1d)", "datetime(2024-01-01)", "1h", "3.5", "-", "+", "*", "/", "%", "let", "x",
    ";", "dynamic([1,2])", "bin(Timestamp, 1h)", "arg_max(Timestamp, *)", "join", "kind=inner", "on", "union",
    "mv-expand", "parse", "with", "*", "datatable(a:string)['x']", "print", "range", "from", "to", "step",
    "iff(", "tostring(", "strcat(", "@'C:\\x'", "```", "//c\n", "\n", "project-away", "top", "asc", "desc",
    "nulls", "first", "materialize(", "toscalar(", "lookup", "distinct", "externaldata", "_GetWatchlist('x')",
]


def _check(text: str) -> None:
    try:
        kql.check(text, tables=TABLES)
    except KqlError as error:
        assert error.span is not None and error.span.line is not None and error.span.col is not None, text
        assert error.message
    except UsageError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_arbitrary_text_never_crashes(text: str) -> None:
    _check(text)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=25))
def test_token_soup_never_crashes(tokens: list[str]) -> None:
    _check(" ".join(tokens))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=15))
def test_token_soup_runs_or_fails_cleanly(tokens: list[str]) -> None:
    """Queries that bind must also run (no engine error) on the canonical, empty tables."""
    from assay.engine import DuckDBEngine

    text = " ".join(tokens)
    try:
        kql.check(text)
    except AssayError:
        return
    with DuckDBEngine(None) as engine:
        try:
            kql.run(text, db=engine, now="2024-01-01")
        except KqlError as error:
            assert error.span is not None
        except AssayError as error:  # EngineError would mean we produced SQL DuckDB rejects
            pytest.fail(f"{text!r} bound but failed to run: {error}")


@pytest.mark.parametrize("depth", [50, 500, 5000])
def test_deep_parentheses_give_a_clear_error(depth: int) -> None:
    text = "print x = " + "(" * depth + "1" + ")" * depth
    if depth <= 50:
        assert kql.run(text).rows == ((1,),)
        return
    with pytest.raises(KqlError, match="nested too deeply") as raised:
        kql.check(text)
    assert raised.value.span is not None and raised.value.span.line == 1


def test_long_pipelines_run_up_to_the_limit_then_fail_clearly() -> None:
    text = "print x = 1" + " | extend x = x + 1" * 50
    assert kql.run(text).rows == ((51,),)
    with pytest.raises(KqlError, match="too long") as raised:
        kql.check("print x = 1" + "\n| extend x = x + 1" * 300)
    assert raised.value.span is not None and raised.value.span.line == 62


def test_deep_binary_chains_give_a_clear_error_or_result() -> None:
    text = "print x = 1" + " + 1" * 3000
    try:
        result = kql.run(text)
        assert result.rows == ((3001,),)
    except KqlError as error:
        assert "nested too deeply" in error.message
