"""DuckDB macros the lowered SQL relies on for Kusto formats (timespan text in and out).

Installed on the connection right before a query runs (``CREATE MACRO IF NOT EXISTS``), so a database file
written by Assay needs nothing special; Spark output names these functions and is marked partial for them.
"""

from __future__ import annotations

import re
from typing import Any

from assay.errors import EngineError, SourceSpan

MACROS = (
    # Kusto prints timespans as [-][d.]hh:mm:ss[.fffffff]
    """CREATE MACRO IF NOT EXISTS kql_format_timespan(t) AS (
        CASE WHEN t IS NULL THEN NULL ELSE
        (CASE WHEN epoch(t) < 0 THEN '-' ELSE '' END) ||
        (CASE WHEN abs(epoch(t)) >= 86400 THEN CAST(floor(abs(epoch(t)) / 86400) AS BIGINT)::VARCHAR || '.'
              ELSE '' END) ||
        lpad(CAST(floor(abs(epoch(t)) % 86400 / 3600) AS BIGINT)::VARCHAR, 2, '0') || ':' ||
        lpad(CAST(floor(abs(epoch(t)) % 3600 / 60) AS BIGINT)::VARCHAR, 2, '0') || ':' ||
        lpad(CAST(floor(abs(epoch(t)) % 60) AS BIGINT)::VARCHAR, 2, '0') ||
        (CASE WHEN CAST(round(abs(epoch(t)) * 10000000) AS BIGINT) % 10000000 = 0 THEN ''
              ELSE '.' || lpad((CAST(round(abs(epoch(t)) * 10000000) AS BIGINT) % 10000000)::VARCHAR, 7, '0')
         END)
        END)""",
    # [-][d.]hh:mm[:ss[.f]] or a number with a unit (2d, 1.5h, 100ms)
    """CREATE MACRO IF NOT EXISTS kql_parse_timespan(s) AS (
        CASE
        WHEN regexp_matches(trim(s), '^-?(\\d+\\.)?\\d{1,2}:\\d{1,2}(:\\d{1,2}(\\.\\d{1,7})?)?$') THEN
            (CASE WHEN starts_with(trim(s), '-') THEN -1 ELSE 1 END) * to_microseconds(CAST(
              (coalesce(TRY_CAST(nullif(regexp_extract(trim(s), '^-?(\\d+)\\.', 1), '') AS BIGINT), 0) * 86400
               + CAST(regexp_extract(trim(s), '(\\d{1,2}):(\\d{1,2})', 1) AS BIGINT) * 3600
               + CAST(regexp_extract(trim(s), '(\\d{1,2}):(\\d{1,2})', 2) AS BIGINT) * 60
               + coalesce(TRY_CAST(nullif(regexp_extract(trim(s), ':\\d{1,2}:(\\d{1,2}(\\.\\d+)?)$', 1), '')
                          AS DOUBLE), 0)) * 1000000 AS BIGINT))
        WHEN regexp_matches(trim(s), '^-?\\d+(\\.\\d+)?(d|h|m|s|ms)$') THEN
            to_microseconds(CAST(CAST(regexp_extract(trim(s), '^(-?\\d+(\\.\\d+)?)', 1) AS DOUBLE) *
              CASE regexp_extract(trim(s), '(d|h|m|s|ms)$', 1)
                WHEN 'd' THEN 86400000000 WHEN 'h' THEN 3600000000 WHEN 'm' THEN 60000000
                WHEN 's' THEN 1000000 ELSE 1000 END AS BIGINT))
        ELSE NULL END)""",
    # series_fit_line: least squares over x = 1..n (Microsoft's example: line_fit starts at slope + b);
    # variance and rvariance divide by n - 1
    """CREATE MACRO IF NOT EXISTS kql_series_slope(v) AS (
        list_sum(list_transform(v, lambda y, i: (i - (len(v) + 1) / 2.0) * (y - list_avg(v))))
        / nullif(len(v) * (len(v) * len(v) - 1) / 12.0, 0))""",
    """CREATE MACRO IF NOT EXISTS kql_series_interception(v) AS (
        list_avg(v) - coalesce(kql_series_slope(v), 0) * (len(v) + 1) / 2.0)""",
    """CREATE MACRO IF NOT EXISTS kql_series_fit_line(v) AS (
        CASE WHEN v IS NULL OR len(v) = 0 THEN NULL ELSE json_object(
            'rsquare', 1 - list_sum(list_transform(v, lambda y, i: pow(y - (coalesce(kql_series_slope(v), 0) * i
                       + kql_series_interception(v)), 2)))
                     / nullif(list_sum(list_transform(v, lambda y: pow(y - list_avg(v), 2))), 0),
            'slope', coalesce(kql_series_slope(v), 0),
            'variance', list_sum(list_transform(v, lambda y: pow(y - list_avg(v), 2))) / nullif(len(v) - 1, 0),
            'rvariance', list_sum(list_transform(v, lambda y, i: pow(y - (coalesce(kql_series_slope(v), 0) * i
                         + kql_series_interception(v)), 2))) / nullif(len(v) - 1, 0),
            'interception', kql_series_interception(v),
            'line_fit', list_transform(v, lambda y, i: coalesce(kql_series_slope(v), 0) * i
                        + kql_series_interception(v)))
        END)""",
    """CREATE MACRO IF NOT EXISTS kql_series_stats(v) AS (
        CASE WHEN v IS NULL OR len(v) = 0 THEN NULL ELSE json_object(
            'min', list_min(v), 'min_idx', list_position(v, list_min(v)) - 1,
            'max', list_max(v), 'max_idx', list_position(v, list_max(v)) - 1,
            'avg', list_avg(v), 'stdev', list_aggregate(v, 'stddev_samp'),
            'variance', list_aggregate(v, 'var_samp'))
        END)""",
)


_P1, _P2, _P3 = 11400714785074694791, 14029467366897019727, 1609587929392839161
_P4, _P5 = 9650029242287828579, 2870177450012600261
_MASK = (1 << 64) - 1


def _rotate(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _round(accumulator: int, lane: int) -> int:
    return (_rotate((accumulator + lane * _P2) & _MASK, 31) * _P1) & _MASK


def xxhash64(data: bytes, seed: int = 0) -> int:
    """XXH64 (Kusto's hash() is XXH64 of the value's UTF-8 text), unsigned."""
    length, index = len(data), 0
    if length >= 32:
        lanes = [(seed + _P1 + _P2) & _MASK, (seed + _P2) & _MASK, seed & _MASK, (seed - _P1) & _MASK]
        while index + 32 <= length:
            for lane in range(4):
                start = index + 8 * lane
                lanes[lane] = _round(lanes[lane], int.from_bytes(data[start:start + 8], "little"))
            index += 32
        result = (_rotate(lanes[0], 1) + _rotate(lanes[1], 7) + _rotate(lanes[2], 12) + _rotate(lanes[3], 18)) & _MASK
        for lane_value in lanes:
            result = (((result ^ _round(0, lane_value)) * _P1) + _P4) & _MASK
    else:
        result = (seed + _P5) & _MASK
    result = (result + length) & _MASK
    while index + 8 <= length:
        result ^= _round(0, int.from_bytes(data[index:index + 8], "little"))
        result = (_rotate(result, 27) * _P1 + _P4) & _MASK
        index += 8
    if index + 4 <= length:
        result ^= (int.from_bytes(data[index:index + 4], "little") * _P1) & _MASK
        result = (_rotate(result, 23) * _P2 + _P3) & _MASK
        index += 4
    while index < length:
        result ^= (data[index] * _P5) & _MASK
        result = (_rotate(result, 11) * _P1) & _MASK
        index += 1
    result ^= result >> 33
    result = (result * _P2) & _MASK
    result ^= result >> 29
    result = (result * _P3) & _MASK
    return result ^ (result >> 32)


def kql_hash(text: str | None) -> int | None:
    """Kusto's hash() of a string as a signed long."""
    if text is None:
        return None
    value = xxhash64(text.encode("utf-8"))
    return value - (1 << 64) if value >= 1 << 63 else value


def install_macros(engine: Any) -> None:
    """Create the macros on ``engine`` (a DuckDBEngine), once per engine; file databases get temporary macros
    so running a query never writes to the user's database."""
    if getattr(engine, "_kql_macros_installed", False):
        return
    for macro in MACROS:
        sql = macro
        if getattr(engine, "path", None) is not None:
            sql = macro.replace("CREATE MACRO IF NOT EXISTS", "CREATE OR REPLACE TEMP MACRO")
        engine.connection.execute(sql)
    engine._kql_macros_installed = True


#: DuckDB function names in error messages → the KQL function that lowers to them
SQL_TO_KQL_FUNCTIONS = {
    "regexp_extract": "extract", "regexp_extract_all": "extract_all", "regexp_matches": "matches regex",
    "regexp_replace": "replace_regex", "strptime": "todatetime", "try_strptime": "todatetime",
    "json_extract": "parse_json", "from_json": "parse_json", "to_json": "tostring", "strftime": "format_datetime",
    "date_trunc": "startofday", "epoch": "totimespan", "to_microseconds": "totimespan", "list_slice": "array_slice",
    "string_split": "split", "substr": "substring", "range": "range", "generate_series": "range",
}


def located_engine_error(error: EngineError, text: str, file: str | None) -> EngineError:
    """A DuckDB failure at run time, pointed at the KQL construct it most likely came from: a function named in
    the message and called in the query, else a quoted name from the message, else the query's first line."""
    detail = error.message.removeprefix("DuckDB failed: ").split("\n")[0].strip()
    construct = None
    position = None
    for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", detail) + re.findall(r"function ([A-Za-z_]\w*)",
                                                                                   detail):
        kql_name = SQL_TO_KQL_FUNCTIONS.get(name.lower(), name)
        pattern = re.escape(kql_name) + (r"\s*\(" if " " not in kql_name else "")
        match = re.search(r"(?<![\w.])" + pattern, text, re.IGNORECASE)
        if match:
            construct, position = f"{kql_name}()" if " " not in kql_name else kql_name, match.start()
            break
    if position is None and "division by zero" in detail.lower():
        match = re.search(r"(?<![/*])[/%](?![/*])", text)
        if match:
            construct, position = "a division", match.start()
    if position is None:
        for quoted in re.findall(r'"([^"]{1,100})"', detail):
            match = re.search(r"(?<![\w.])" + re.escape(quoted) + r"(?!\w)", text)
            if match:
                construct, position = f"'{quoted}'", match.start()
                break
    line, col = 1, 1
    if position is not None:
        line = text.count("\n", 0, position) + 1
        col = position - (text.rfind("\n", 0, position) + 1) + 1
    where = f"in {construct}" if construct else "in the query"
    return EngineError(f"the query failed while running, {where}: {detail}", sql=error.sql,
                       span=SourceSpan(file, line, col, text),
                       hint="kql check did not catch this: the values (or a construct) are outside what Assay "
                            "lowers correctly; please report the query")
