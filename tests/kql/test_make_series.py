"""make-series and the series_* functions hunting queries use. Expectations come from Microsoft's make-series,
series_fit_line and series_stats documentation examples."""

from __future__ import annotations

import pytest

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import KqlBindError, KqlUnsupportedError

METRICS = """let data = datatable(timestamp: datetime, metric: real) [
    datetime(2016-12-31T06:00), 50,
    datetime(2017-01-01), 4,
    datetime(2017-01-02), 3,
    datetime(2017-01-03), 4,
    datetime(2017-01-03T03:00), 6,
    datetime(2017-01-05), 8,
    datetime(2017-01-05T13:40), 13,
    datetime(2017-01-06), 4,
    datetime(2017-01-07), 3,
    datetime(2017-01-08), 8,
    datetime(2017-01-08T21:00), 8,
    datetime(2017-01-09), 2,
    datetime(2017-01-09T12:00), 11,
    datetime(2017-01-10T05:00), 5,
];
let interval = 1d;
let stime = datetime(2017-01-01);
let etime = datetime(2017-01-10);
"""


def test_documented_average_series_with_a_missing_bin(engine: DuckDBEngine) -> None:
    # the row before `from` and the one at/after `to` are out; 2017-01-04 has no data and takes the default 0
    result = kql.run(METRICS + "data | make-series avg(metric) on timestamp from stime to etime step interval",
                     db=engine)
    assert result.columns == (("avg_metric", "dynamic"), ("timestamp", "dynamic"))
    [(values, axis)] = result.rows
    assert values == [4.0, 3.0, 5.0, 0.0, 10.5, 4.0, 3.0, 8.0, 6.5]
    assert axis[0] == "2017-01-01T00:00:00.0000000Z" and axis[-1] == "2017-01-09T00:00:00.0000000Z"
    assert len(axis) == 9


def test_by_columns_come_first_and_default_is_applied(engine: DuckDBEngine) -> None:
    query = """datatable(Timestamp: datetime, AccountName: string) [
        datetime(2024-05-01 01:10), "alice", datetime(2024-05-01 01:50), "alice",
        datetime(2024-05-01 03:05), "alice", datetime(2024-05-01 02:30), "bob"]
    | make-series Logons = count() default = -1 on Timestamp from datetime(2024-05-01 01:00)
        to datetime(2024-05-01 04:00) step 1h by AccountName
    | order by AccountName asc"""
    result = kql.run(query, db=engine)
    assert result.column_names == ("AccountName", "Logons", "Timestamp")
    assert [(r[0], r[1]) for r in result.rows] == [("alice", [2, -1, 1]), ("bob", [-1, 1, -1])]


def test_without_bounds_each_series_spans_its_own_data(engine: DuckDBEngine) -> None:
    query = """datatable(T: datetime, User: string) [
        datetime(2024-01-01 01:20), 'a', datetime(2024-01-01 03:00), 'a', datetime(2024-01-01 03:30), 'b']
    | make-series n = count() on T step 1h by User | order by User asc"""
    result = kql.run(query, db=engine)
    assert [(r[0], r[1], r[2][0]) for r in result.rows] == [
        ("a", [1, 0, 1], "2024-01-01T01:00:00.0000000Z"), ("b", [1], "2024-01-01T03:00:00.0000000Z")]


def test_series_feed_mv_expand_for_hunting_thresholds(engine: DuckDBEngine) -> None:
    query = METRICS + """data
    | make-series total = sum(metric) on timestamp from stime to etime step interval
    | mv-expand total to typeof(real), timestamp to typeof(datetime)
    | where total > 10
    | project timestamp, total"""
    rows = kql.run(query, db=engine).rows
    # daily sums: 4, 3, 10, 0, 21, 4, 3, 16, 13
    assert [(r[0].day, r[1]) for r in rows] == [(5, 21.0), (8, 16.0), (9, 13.0)]


def test_empty_input_gives_no_series(engine: DuckDBEngine) -> None:
    query = "datatable(T: datetime, v: long) [] | make-series sum(v) on T step 1h"
    assert kql.run(query, db=engine).rows == ()


def test_series_fit_line_documented_example(engine: DuckDBEngine) -> None:
    query = """print y = dynamic([2, 5, 6, 8, 11, 15, 17, 18, 25, 26, 30, 30])
    | extend (RSquare, Slope, Variance, RVariance, Interception, LineFit) = series_fit_line(y)"""
    result = kql.run(query, db=engine)
    row = dict(zip(result.column_names, result.rows[0], strict=True))
    assert abs(row["RSquare"] - 0.9829) < 1e-4  # the page shows 0.982 (truncated)
    assert round(row["Slope"], 3) == 2.731 and round(row["Interception"], 3) == -1.667
    assert round(row["Variance"], 3) == 98.629 and round(row["RVariance"], 3) == 1.686
    assert [round(v, 3) for v in row["LineFit"][:3]] == [1.064, 3.795, 6.526]


def test_series_fit_line_dynamic_and_default_column_names(engine: DuckDBEngine) -> None:
    query = "print y = dynamic([1, 3, 5]) | extend fit = series_fit_line_dynamic(y) | project s = todouble(fit.slope)"
    assert kql.run(query, db=engine).rows == ((2.0,),)
    query = "print x = dynamic([10, 20, 5, 30]) | extend series_stats(x) | project-away x"
    result = kql.run(query, db=engine)
    assert result.column_names == ("series_stats_x_min", "series_stats_x_min_idx", "series_stats_x_max",
                                   "series_stats_x_max_idx", "series_stats_x_avg", "series_stats_x_stdev",
                                   "series_stats_x_variance")
    assert result.rows[0][:5] == (5.0, 2, 30.0, 3, 16.25)


def test_element_wise_series_functions(engine: DuckDBEngine) -> None:
    query = "print a = dynamic([1, 2, 3]), b = dynamic([4, 5, 6]) | project s = series_add(a, b), g = series_greater(b, 4)"
    assert kql.run(query, db=engine).rows == (([5.0, 7.0, 9.0], [False, True, True]),)


def test_unsupported_series_functions_and_bad_steps_are_located() -> None:
    with pytest.raises(KqlUnsupportedError, match="series_decompose_anomalies") as caught:
        kql.check("print x = dynamic([1, 2])\n| extend a = series_decompose_anomalies(x)")
    assert (caught.value.span.line, caught.value.span.col) == (2, 14)
    with pytest.raises(KqlBindError, match="timespan step"):
        kql.check("DeviceProcessEvents | make-series count() on Timestamp step 5")
