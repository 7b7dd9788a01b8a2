"""mv-apply: a subquery per input row over that row's expanded arrays. Expectations are the examples of
Microsoft's mv-apply operator page (rows compared as sets: Kusto does not promise an order)."""

from __future__ import annotations

import pytest

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import KqlBindError, KqlSyntaxError

DATA = "let _data = range x from 1 to 8 step 1 | summarize l = make_list(x) by xMod2 = x % 2;\n"


def rows(engine: DuckDBEngine, query: str) -> list[tuple[object, ...]]:
    return sorted(kql.run(query, db=engine).rows, key=repr)


def test_largest_element_of_each_array(engine: DuckDBEngine) -> None:
    result = kql.run(DATA + "_data | mv-apply element = l to typeof(long) on (top 1 by element)", db=engine)
    assert result.columns == (("xMod2", "long"), ("l", "dynamic"), ("element", "long"))
    assert sorted(result.rows) == [(0, [2, 4, 6, 8], 8), (1, [1, 3, 5, 7], 7)]


def test_sum_of_the_two_largest_elements(engine: DuckDBEngine) -> None:
    # the expanded column l is replaced: only the subquery's columns and the other input columns remain
    query = DATA + "_data | mv-apply l to typeof(long) on (top 2 by l | summarize SumOfTop2 = sum(l))"
    result = kql.run(query, db=engine)
    assert result.column_names == ("xMod2", "SumOfTop2")
    assert sorted(result.rows) == [(0, 14), (1, 12)]


def test_select_elements_of_two_arrays(engine: DuckDBEngine) -> None:
    query = """datatable (Val: int, Arr1: dynamic, Arr2: dynamic) [
        1, dynamic(['A1', 'A2', 'A3']), dynamic([10, 30, 7]),
        7, dynamic(['B1', 'B2', 'B5']), dynamic([15, 11, 50]),
        3, dynamic(['C1', 'C2', 'C3', 'C4']), dynamic([6, 40, 20, 8])]
    | mv-apply NewArr1 = Arr1, NewArr2 = Arr2 to typeof(long) on (
        top 2 by NewArr2
        | summarize NewArr1 = make_list(NewArr1), NewArr2 = make_list(NewArr2))"""
    result = kql.run(query, db=engine)
    assert result.column_names == ("Val", "Arr1", "Arr2", "NewArr1", "NewArr2")
    assert sorted((r[0], r[3], r[4]) for r in result.rows) == [
        (1, ["A2", "A1"], [30, 10]), (3, ["C2", "C3"], [40, 20]), (7, ["B5", "B1"], [50, 15])]


def test_item_index_filter_and_row_columns(engine: DuckDBEngine) -> None:
    # a hunting pattern: pick one entry of an array of name/value bags per row
    query = """datatable(DeviceName: string, Props: dynamic) [
        'WS-01', dynamic([{'Name': 'LogonType', 'Value': 'Interactive'}, {'Name': 'Elevated', 'Value': 'true'}]),
        'WS-02', dynamic([{'Name': 'LogonType', 'Value': 'Network'}])]
    | mv-apply with_itemindex = Position Prop = Props on (where Prop.Name == 'Elevated'
        | project Elevated = tostring(Prop.Value), Position)
    | project DeviceName, Elevated, Position"""
    assert rows(engine, query) == [("WS-01", "true", 1)]


def test_summarize_per_row_over_an_empty_array_gives_its_aggregate(engine: DuckDBEngine) -> None:
    query = """datatable(k: string, a: dynamic) ['x', dynamic([1, 2, 3]), 'y', dynamic([])]
    | mv-apply a to typeof(long) on (summarize n = count(), total = sum(a))"""
    assert rows(engine, query) == [("x", 3, 6), ("y", 0, None)]


def test_limit_and_deprecated_spelling(engine: DuckDBEngine) -> None:
    query = "print a = dynamic([5, 6, 7]) | mvapply v = a to typeof(long) limit 2 on (summarize s = sum(v))"
    assert rows(engine, query) == [([5, 6, 7], 11)]


def test_mv_apply_errors_are_located() -> None:
    with pytest.raises(KqlBindError, match="dynamic"):
        kql.check("print a = 1 | mv-apply a on (take 1)")
    with pytest.raises(KqlSyntaxError) as caught:
        kql.check("print a = dynamic([1]) | mv-apply a on ()")
    assert caught.value.span.col == 26
    with pytest.raises(KqlBindError, match="unknown column"):
        kql.check("print a = dynamic([1]) | mv-apply a on (where b > 1)")


def test_mv_expand_limit_without_item_index_and_bagexpansion(engine: DuckDBEngine) -> None:
    # limit counts items per input row (it was silently ignored without with_itemindex)
    query = "datatable(k: long, d: dynamic) [1, dynamic([1, 2, 3]), 2, dynamic([4, 5])] | mv-expand d limit 2"
    assert rows(engine, query) == [(1, 1), (1, 2), (2, 4), (2, 5)]
    query = "print d = dynamic({'a': 1, 'b': 2}) | mv-expand bagexpansion=array d"
    assert rows(engine, query) == [(["a", 1],), (["b", 2],)]
