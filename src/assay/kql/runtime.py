"""DuckDB macros the lowered SQL relies on for Kusto formats (timespan text in and out).

Installed on the connection right before a query runs (``CREATE MACRO IF NOT EXISTS``), so a database file
written by Assay needs nothing special; Spark output names these functions and is marked partial for them.
"""

from __future__ import annotations

from typing import Any

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
)


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
