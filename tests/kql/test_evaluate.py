"""evaluate bag_unpack and pivot, with expectations from Microsoft's plugin pages; their output columns come
from the data, so without data (check) they need an output schema."""

from __future__ import annotations

import pytest

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import KqlBindError, KqlUnsupportedError

PEOPLE = """datatable(d: dynamic) [
    dynamic({"Name": "John", "Age": 20}),
    dynamic({"Name": "Dave", "Age": 40}),
    dynamic({"Name": "Jasmine", "Age": 30}),
]"""


def test_bag_unpack_expands_keys_into_typed_columns(engine: DuckDBEngine) -> None:
    result = kql.run(PEOPLE + " | evaluate bag_unpack(d)", db=engine)
    assert result.columns == (("Age", "long"), ("Name", "string"))
    assert sorted(result.rows) == [(20, "John"), (30, "Jasmine"), (40, "Dave")]


def test_bag_unpack_with_a_prefix(engine: DuckDBEngine) -> None:
    result = kql.run(PEOPLE + " | evaluate bag_unpack(d, 'Property_')", db=engine)
    assert result.column_names == ("Property_Age", "Property_Name")


@pytest.mark.parametrize(("conflict", "expected"), [
    ("replace_source", {"Name": "New_name", "Age": 20}),
    ("keep_source", {"Name": "Old_name", "Age": 20}),
])
def test_bag_unpack_columns_conflict(engine: DuckDBEngine, conflict: str, expected: dict[str, object]) -> None:
    query = ("datatable(Name: string, d: dynamic) ['Old_name', dynamic({'Name': 'New_name', 'Age': 20})]"
             f" | evaluate bag_unpack(d, columnsConflict='{conflict}')")
    assert kql.run(query, db=engine).as_dicts() == [expected]


def test_bag_unpack_conflict_is_an_error_by_default() -> None:
    query = ("datatable(Name: string, d: dynamic) ['Old_name', dynamic({'Name': 'New_name', 'Age': 20})]"
             " | evaluate bag_unpack(d)")
    with pytest.raises(KqlBindError, match="would replace the column 'Name'"):
        kql.run(query)


def test_bag_unpack_ignored_properties_and_mixed_types(engine: DuckDBEngine) -> None:
    query = """datatable(d: dynamic) [dynamic({'Name': 'John', 'Age': 20, 'Address': 'x'}),
                                      dynamic({'Name': 'Mo', 'Age': 'unknown'})]
        | evaluate bag_unpack(d, ignoredProperties=dynamic(['Address']))"""
    result = kql.run(query, db=engine)
    assert result.columns == (("Age", "dynamic"), ("Name", "string"))  # Age holds a number and a string


def test_bag_unpack_of_sign_in_details_keeps_the_other_columns(engine: DuckDBEngine) -> None:
    query = """datatable(UserPrincipalName: string, DeviceDetail: dynamic) [
        'alice@contoso.com', dynamic({'operatingSystem': 'Windows 10', 'browser': 'Edge 120'}),
        'bob@contoso.com', dynamic({'operatingSystem': 'iOS 17'})]
        | evaluate bag_unpack(DeviceDetail)
        | where operatingSystem startswith 'Windows'"""
    assert kql.run(query, db=engine).as_dicts() == [
        {"UserPrincipalName": "alice@contoso.com", "browser": "Edge 120", "operatingSystem": "Windows 10"}]


def test_bag_unpack_without_data_needs_an_output_schema() -> None:
    with pytest.raises(KqlUnsupportedError, match="output columns from the data") as caught:
        kql.check("DeviceProcessEvents | evaluate bag_unpack(AdditionalFields)")
    assert caught.value.span.col == 23
    kql.check("DeviceProcessEvents | evaluate bag_unpack(AdditionalFields) : (Integrity: string) "
              "| where Integrity == 'High'")


STORMS = """datatable(State: string, EventType: string, Damage: long) [
    'TEXAS', 'Hail', 10, 'TEXAS', 'Flood', 30, 'KANSAS', 'Hail', 5, 'KANSAS', 'Hail', 1]"""


def test_pivot_counts_each_value_grouped_by_the_other_columns(engine: DuckDBEngine) -> None:
    # without group columns, Kusto groups by every column but the pivot column
    result = kql.run(STORMS + " | project State, EventType | evaluate pivot(EventType) | order by State asc",
                     db=engine)
    assert result.as_dicts() == [{"State": "KANSAS", "Flood": 0, "Hail": 2},
                                 {"State": "TEXAS", "Flood": 1, "Hail": 1}]
    result = kql.run(STORMS + " | project EventType | evaluate pivot(EventType)", db=engine)
    assert result.as_dicts() == [{"Flood": 1, "Hail": 3}]


def test_pivot_with_an_aggregate_and_group_columns(engine: DuckDBEngine) -> None:
    result = kql.run(STORMS + " | evaluate pivot(EventType, sum(Damage), State) | order by State asc", db=engine)
    assert result.column_names == ("State", "Flood", "Hail")
    assert [(r[0], r[2]) for r in result.rows] == [("KANSAS", 6), ("TEXAS", 10)]
    assert result.rows[1][1] == 30


def test_unknown_plugins_are_named() -> None:
    with pytest.raises(KqlUnsupportedError, match="evaluate plugin python"):
        kql.check("print 1 | evaluate python(typeof(*), 'x')")
