"""Functions and names real hunting queries use (issue #16): hash(), ingestion_time(), deprecated aliases, and
cross-service references as located errors. hash() expectations are Microsoft's hash-function examples."""

from __future__ import annotations

import pytest

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import KqlBindError, KqlUnsupportedError


def test_hash_of_a_constant_is_kustos_xxhash64(engine: DuckDBEngine) -> None:
    assert kql.run('print result = hash("World")', db=engine).rows == ((1846988464401551951,),)
    assert kql.run('print result = hash("World", 100)', db=engine).rows == ((51,),)


def test_hash_of_a_column_is_stable_and_bucketed(engine: DuckDBEngine) -> None:
    query = ("datatable(DeviceId: string) ['a1', 'b2', 'a1'] | extend Bucket = hash(DeviceId, 10) "
             "| summarize Buckets = make_set(Bucket) by DeviceId | order by DeviceId asc")
    rows = kql.run(query, db=engine).rows
    assert [len(r[1]) for r in rows] == [1, 1]  # the same value always lands in the same bucket
    assert all(0 <= b < 10 for r in rows for b in r[1])


def test_ingestion_time_stands_in_with_the_record_time(engine: DuckDBEngine) -> None:
    query = ("datatable(TimeGenerated: datetime, Account: string) [datetime(2024-05-01 10:00), 'alice'] "
             "| where ingestion_time() > datetime(2024-05-01) | project Account, t = ingestion_time()")
    rows = kql.run(query, db=engine).rows
    assert rows[0][0] == "alice" and rows[0][1].hour == 10
    assert kql.run("print ingestion_time()", db=engine).rows == ((None,),)


@pytest.mark.parametrize(("query", "expected"), [
    ("datatable(x: long) [1, 2, 2] | summarize s = makeset(x)", [1, 2]),
    ("datatable(x: long) [1, 2, 2] | summarize s = makelist(x)", [1, 2, 2]),
    ("print s = parsejson('{\"a\": 1}')", {"a": 1}),
])
def test_deprecated_function_names(engine: DuckDBEngine, query: str, expected: object) -> None:
    assert kql.run(query, db=engine).rows == ((expected,),)


def test_deprecated_mvexpand(engine: DuckDBEngine) -> None:
    assert kql.run("print a = dynamic([1, 2]) | mvexpand a", db=engine).rows == ((1,), (2,))


@pytest.mark.parametrize(("query", "service", "column"), [
    ('arg("").Resources | where type == "microsoft.compute/virtualmachines"', "Azure Resource Graph", 1),
    ('cluster("help").database("Samples").StormEvents | take 1', "Azure Data Explorer", 1),
    ('workspace("other").SecurityEvent | take 1', "Log Analytics workspace", 1),
    ('union DeviceProcessEvents, arg("").Resources', "Azure Resource Graph", 28),
    ('DeviceProcessEvents | join (arg("").Resources) on DeviceId', "Azure Resource Graph", 29),
])
def test_cross_service_references_are_located(query: str, service: str, column: int) -> None:
    with pytest.raises(KqlUnsupportedError, match=service) as caught:
        kql.check(query)
    assert caught.value.span.col == column


SESSIONS = """datatable(Timestamp: datetime, Account: string) [
    datetime(2024-05-01 00:00), "alice", datetime(2024-05-01 00:10), "alice", datetime(2024-05-01 02:00), "alice"]
"""


def test_prev_next_row_number_and_row_cumsum_over_sorted_rows(engine: DuckDBEngine) -> None:
    # the window-functions pages: prev(col), prev(col, offset, default), next, row_number(), row_cumsum()
    query = SESSIONS + """| sort by Timestamp asc
        | extend Gap = Timestamp - prev(Timestamp), Next = next(Account, 1, "none"), N = row_number(),
                 Total = row_cumsum(1), Before = prev(Account, 2)
        | project Gap, Next, N, Total, Before"""
    rows = kql.run(query, db=engine).rows
    assert [(r[0].seconds if r[0] else None, r[1], r[2], r[3], r[4]) for r in rows] == [
        (None, "alice", 1, 1, ""), (600, "alice", 2, 2, ""), (6600, "none", 3, 3, "alice")]


def test_serialize_enables_window_functions(engine: DuckDBEngine) -> None:
    query = "datatable(x: long) [3, 1, 2] | serialize | extend p = prev(x), n = row_number(10)"
    assert kql.run(query, db=engine).rows == ((3, None, 10), (1, 3, 11), (2, 1, 12))


def test_window_functions_need_serialized_rows() -> None:
    with pytest.raises(KqlBindError, match="needs serialized rows") as caught:
        kql.check("datatable(x: long) [1] | extend p = prev(x)")
    assert caught.value.span.col == 37


def test_bag_string_and_array_helpers(engine: DuckDBEngine) -> None:
    query = """print a = bag_has_key(dynamic({"a": {"b": 1}}), "a"), b = bag_has_key(dynamic({"a": 1}), "$.a.b"),
        c = strcmp("a", "b"), d = strrep("ab", 3), e = strrep("ab", 2, "-"),
        f = bag_merge(dynamic({"a": 1}), dynamic({"a": 2, "b": 3})), g = array_reverse(dynamic([1, "x"])),
        h = array_sum(dynamic([1, 2.5])), i = string_size("é")"""
    assert kql.run(query, db=engine).rows == (
        (True, False, -1, "ababab", "ab-ab", {"a": 1, "b": 3}, ["x", 1], 3.5, 2),)


def test_conditional_and_null_keeping_aggregates(engine: DuckDBEngine) -> None:
    query = """datatable(Account: string, Failures: long) ["alice", 1, "bob", 5, "carol", 7]
        | summarize Any = take_anyif(Account, Failures > 6), All = make_list_with_nulls(iff(Failures > 1,
                    Failures, long(null))), Bag = make_bag_if(bag_pack(Account, Failures), Failures < 6)"""
    assert kql.run(query, db=engine).rows == (("carol", [None, 5, 7], {"alice": 1, "bob": 5}),)
