"""Functions and names real hunting queries use (issue #16): hash(), ingestion_time(), deprecated aliases, and
cross-service references as located errors. hash() expectations are Microsoft's hash-function examples."""

from __future__ import annotations

import pytest

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import KqlUnsupportedError


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
