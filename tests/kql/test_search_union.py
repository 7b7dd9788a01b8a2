"""search and table wildcards in union: every table that holds data, matched by term, with $table naming the
source (Microsoft's search-operator and union-operator pages)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import KqlBindError


@pytest.fixture(scope="module")
def workspace() -> Iterator[DuckDBEngine]:
    with DuckDBEngine(None) as engine:
        engine.connection.execute("CREATE TABLE SigninLogs (TimeGenerated TIMESTAMP, UserPrincipalName VARCHAR, "
                                  "IPAddress VARCHAR, ResultType VARCHAR)")
        engine.connection.execute("INSERT INTO SigninLogs VALUES "
                                  "('2024-05-01 10:00', 'alice@contoso.com', '203.0.113.7', '50126'), "
                                  "('2024-05-01 11:00', 'bob@contoso.com', '10.0.0.1', '0')")
        engine.connection.execute("CREATE TABLE SigninLogsArchive (TimeGenerated TIMESTAMP, "
                                  "UserPrincipalName VARCHAR)")
        engine.connection.execute("INSERT INTO SigninLogsArchive VALUES ('2024-04-01 09:00', 'carol@contoso.com')")
        engine.connection.execute("CREATE TABLE AuditLogs (TimeGenerated TIMESTAMP, OperationName VARCHAR, "
                                  "TargetResources VARCHAR)")
        engine.connection.execute("INSERT INTO AuditLogs VALUES ('2024-05-01 10:05', 'Add member to role', "
                                  "'[{\"userPrincipalName\": \"alice@contoso.com\"}]')")
        yield engine


def test_search_a_term_in_every_table(workspace: DuckDBEngine) -> None:
    result = kql.run('search "alice" | project ["$table"], UserPrincipalName, OperationName '
                     '| order by ["$table"] asc', db=workspace)
    assert result.rows == (("AuditLogs", "", "Add member to role"), ("SigninLogs", "alice@contoso.com", ""))


def test_search_is_a_term_match_not_a_substring(workspace: DuckDBEngine) -> None:
    assert kql.run('search "alic" | count', db=workspace).rows == ((0,),)
    assert kql.run('search "alic*" | count', db=workspace).rows == ((2,),)


def test_search_in_named_tables_with_a_column_term_and_a_predicate(workspace: DuckDBEngine) -> None:
    result = kql.run('search in (SigninLogs*) UserPrincipalName:"contoso.com" and TimeGenerated > '
                     'datetime(2024-04-15) | project UserPrincipalName', db=workspace)
    assert sorted(result.rows) == [("alice@contoso.com",), ("bob@contoso.com",)]


def test_search_after_a_pipe_filters_its_input(workspace: DuckDBEngine) -> None:
    result = kql.run('SigninLogs | search "50126" | project UserPrincipalName', db=workspace)
    assert result.rows == (("alice@contoso.com",),)


def test_search_kind_case_sensitive(workspace: DuckDBEngine) -> None:
    assert kql.run('search kind=case_sensitive "ALICE" | count', db=workspace).rows == ((0,),)
    assert kql.run('search "ALICE" | count', db=workspace).rows == ((2,),)


def test_union_star_and_withsource(workspace: DuckDBEngine) -> None:
    result = kql.run("union withsource=SourceTable * | summarize n = count() by SourceTable "
                     "| order by SourceTable asc", db=workspace)
    assert ("AuditLogs", 1) in result.rows and ("SigninLogs", 2) in result.rows
    assert ("SigninLogsArchive", 1) in result.rows


def test_union_table_pattern(workspace: DuckDBEngine) -> None:
    result = kql.run("union withsource=T SigninLogs* | summarize n = count() by T | order by T asc", db=workspace)
    assert result.rows == (("SigninLogs", 2), ("SigninLogsArchive", 1))


def test_union_pattern_without_a_match_is_located(workspace: DuckDBEngine) -> None:
    with pytest.raises(KqlBindError, match="no table matches 'Nope\\*'") as caught:
        kql.run("union SigninLogs, Nope*", db=workspace)
    assert caught.value.span.col == 19
