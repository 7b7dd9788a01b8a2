"""Typed SQL fragments: a sqlglot expression paired with its Kusto type, and the conversions between types.

The binder computes a Kusto type for every expression while lowering it; these helpers keep Kusto's rules in one
place (strings are never null, ``tostring(datetime)`` is ISO 8601 with 7 fraction digits, dynamic values are JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlglot import exp

NUMERIC_TYPES = ("int", "long", "real")
KUSTO_TYPES = ("string", "long", "int", "real", "bool", "datetime", "timespan", "dynamic", "guid")

#: Kusto type → DuckDB SQL type used in casts.
SQL_TYPES = {
    "string": "VARCHAR", "guid": "VARCHAR", "long": "BIGINT", "int": "INTEGER", "real": "DOUBLE",
    "bool": "BOOLEAN", "datetime": "TIMESTAMP", "timespan": "INTERVAL", "dynamic": "JSON",
}

#: DuckDB column type (information_schema text) → Kusto type, for tables found in the database file.
DUCKDB_TO_KUSTO = {
    "VARCHAR": "string", "TEXT": "string", "UUID": "guid", "BIGINT": "long", "HUGEINT": "long", "UBIGINT": "long",
    "INTEGER": "int", "SMALLINT": "int", "TINYINT": "int", "UINTEGER": "long", "USMALLINT": "int",
    "UTINYINT": "int", "DOUBLE": "real", "FLOAT": "real", "REAL": "real", "BOOLEAN": "bool",
    "TIMESTAMP": "datetime", "TIMESTAMP WITH TIME ZONE": "datetime", "DATE": "datetime",
    "TIMESTAMP_NS": "datetime", "TIMESTAMP_MS": "datetime", "TIMESTAMP_S": "datetime",
    "INTERVAL": "timespan", "JSON": "dynamic",
}


def kusto_type_of_duckdb(sql_type: str) -> str:
    upper = sql_type.upper()
    if upper in DUCKDB_TO_KUSTO:
        return DUCKDB_TO_KUSTO[upper]
    if upper.startswith("DECIMAL"):
        return "real"
    return "dynamic"  # MAP, LIST, STRUCT: exposed as JSON


@dataclass(frozen=True)
class Typed:
    sql: exp.Expr
    kusto_type: str

    def __repr__(self) -> str:
        return f"Typed({self.sql.sql('duckdb')}, {self.kusto_type})"


@cache
def _data_type(sql_type: str) -> exp.DataType:
    return exp.DataType.build(sql_type)


def cast(expression: exp.Expr, sql_type: str) -> exp.Cast:
    """CAST without copying the operand (sqlglot's exp.cast copies; trees built here are fresh)."""
    return exp.Cast(this=expression, to=_data_type(sql_type).copy())


def fn(name: str, *args: exp.Expr) -> exp.Expr:
    """A DuckDB function call by name (dialect-specific names are mapped for Spark in engine.spark_sql)."""
    return exp.Anonymous(this=name, expressions=list(args))


def string(value: str) -> exp.Expr:
    return exp.Literal.string(value)


def number(value: int | float) -> exp.Expr:
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return cast(exp.Literal.string(repr(value)), "DOUBLE")
        return cast(exp.Literal.number(repr(value)), "DOUBLE")
    literal = exp.Literal.number(abs(value))
    return exp.Neg(this=literal) if value < 0 else literal


def interval_micros(micros: exp.Expr) -> exp.Expr:
    return fn("to_microseconds", cast(micros, "BIGINT"))


def timespan_literal(value: timedelta) -> exp.Expr:
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return exp.Interval(this=exp.Literal.number(micros), unit=exp.Var(this="MICROSECOND")) if micros >= 0 else \
        exp.Neg(this=exp.Paren(this=exp.Interval(this=exp.Literal.number(-micros), unit=exp.Var(this="MICROSECOND"))))


def datetime_literal(value: datetime) -> exp.Expr:
    return cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")


def literal(value: Any, kusto_type: str) -> exp.Expr:
    if value is None:
        if kusto_type == "string":
            return string("")  # Kusto: string(null) is the empty string
        if kusto_type == "guid":
            return cast(exp.null(), "VARCHAR")
        return cast(exp.null(), SQL_TYPES.get(kusto_type, "JSON"))
    if kusto_type in ("string", "guid"):
        return string(str(value))
    if kusto_type == "bool":
        return exp.true() if value else exp.false()
    if kusto_type in ("long", "int"):
        return number(int(value))
    if kusto_type == "real":
        return number(float(value))
    if kusto_type == "datetime":
        return datetime_literal(value)
    if kusto_type == "timespan":
        return timespan_literal(value)
    if kusto_type == "dynamic":
        return cast(exp.Literal.string(json.dumps(value, ensure_ascii=False)), "JSON")
    raise ValueError(f"unknown Kusto type {kusto_type}")


def as_string(value: Typed) -> exp.Expr:
    """Kusto ``tostring``: never null; datetimes as ISO 8601 with 7 fraction digits; dynamic as JSON text."""
    sql = value.sql
    kusto_type = value.kusto_type
    if isinstance(sql, exp.Literal) and sql.is_string:
        return sql  # a string literal is never null
    if kusto_type == "string":
        # The binder keeps every string value non-null at its source (table columns are read with coalesce,
        # string nulls are "", outer joins, unions, aggregates and toscalar coalesce), so no wrapper here.
        return sql
    if kusto_type == "guid":
        converted = sql
    elif kusto_type == "dynamic":
        converted = fn("json_extract_string", sql, string("$"))
    elif kusto_type == "datetime":
        converted = exp.DPipe(this=fn("strftime", sql, string("%Y-%m-%dT%H:%M:%S.%f")), expression=string("0Z"))
    elif kusto_type == "bool":
        converted = exp.Case(ifs=[exp.If(this=sql, true=string("true"))], default=string("false"))
        converted = exp.Case(ifs=[exp.If(this=exp.Is(this=sql, expression=exp.null()), true=string(""))],
                             default=converted)
        return converted
    elif kusto_type == "real":
        # Kusto prints whole reals without ".0"
        converted = exp.Case(
            ifs=[exp.If(this=exp.EQ(this=sql, expression=fn("trunc", sql)),
                        true=cast(cast(sql, "BIGINT"), "VARCHAR"))],
            default=cast(sql, "VARCHAR"))
    elif kusto_type == "timespan":
        converted = fn("kql_format_timespan", sql)
    else:
        converted = cast(sql, "VARCHAR")
    return exp.Coalesce(this=converted, expressions=[string("")])


DATETIME_FORMATS = (
    "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d",
    "%a, %d %b %Y %H:%M:%S GMT", "%a, %d %b %Y %H:%M:%S", "%d %b %Y %H:%M:%S", "%A, %d-%b-%y %H:%M:%S GMT",
    "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ",
)


def to_type(value: Typed, target: str) -> exp.Expr:
    """Convert ``value`` to ``target`` the way Kusto's to<type>() does (invalid → null)."""
    if value.kusto_type == target:
        return value.sql
    if target == "string" or (target == "guid" and value.kusto_type == "guid"):
        return as_string(value)
    source = value.sql
    if value.kusto_type == "dynamic":
        source = fn("json_extract_string", source, string("$"))
    if target == "datetime" and value.kusto_type in ("long", "int"):
        # Kusto: todatetime(long) reads ticks (100 ns) since 0001-01-01
        return fn("make_timestamp", cast(exp.Sub(this=exp.IntDiv(this=source, expression=number(10)),
                                                     expression=number(62135596800000000)), "BIGINT"))
    if target == "bool" and value.kusto_type in ("long", "int", "real"):
        return exp.NEQ(this=source, expression=number(0))
    if target in ("long", "int") and value.kusto_type == "real":
        return exp.TryCast(this=fn("trunc", source), to=exp.DataType.build(SQL_TYPES[target]))
    if target in ("long", "int") and value.kusto_type in ("string", "dynamic"):
        # Kusto truncates "2.5" to 2 for toint/tolong; go through DOUBLE for decimal text
        return exp.TryCast(this=fn("trunc", exp.TryCast(this=source, to=exp.DataType.build("DOUBLE"))),
                           to=exp.DataType.build(SQL_TYPES[target]))
    if target == "real" and value.kusto_type == "timespan":
        return exp.Mul(this=fn("epoch", source), expression=number(10_000_000))
    if target in ("long", "int") and value.kusto_type == "timespan":
        return cast(exp.Mul(this=fn("epoch", source), expression=number(10_000_000)), "BIGINT")
    if target in ("long", "int", "real") and value.kusto_type == "datetime":
        return exp.Add(this=exp.Mul(this=fn("epoch_us", source), expression=number(10)),
                       expression=number(621355968000000000))
    if target == "timespan" and value.kusto_type in ("long", "int", "real"):
        return interval_micros(exp.Div(this=source, expression=number(10)))
    if target == "datetime" and value.kusto_type in ("string", "dynamic"):
        # ISO 8601 first, then the other forms Kusto's todatetime accepts (US dates, RFC 822/850)
        formats = exp.Array(expressions=[string(f) for f in DATETIME_FORMATS])
        return exp.Coalesce(this=exp.TryCast(this=source, to=exp.DataType.build("TIMESTAMP")),
                            expressions=[fn("try_strptime", source, formats)])
    if target == "guid" and value.kusto_type in ("string", "dynamic"):
        hex_digits = fn("regexp_replace", exp.Lower(this=source), string("[-{}]"), string(""), string("g"))
        dashed = fn("regexp_replace", hex_digits, string("^(.{8})(.{4})(.{4})(.{4})(.{12})$"),
                    string("\\1-\\2-\\3-\\4-\\5"))
        return exp.Case(ifs=[exp.If(this=exp.RegexpLike(this=hex_digits, expression=string("^[0-9a-f]{32}$")),
                                    true=dashed)], default=cast(exp.null(), "VARCHAR"))
    if target == "timespan" and value.kusto_type in ("string", "dynamic"):
        return fn("kql_parse_timespan", source)
    if target == "dynamic":
        if value.kusto_type in ("string",):
            return exp.TryCast(this=source, to=exp.DataType.build("JSON"))
        return fn("to_json", source)
    return exp.TryCast(this=source, to=exp.DataType.build(SQL_TYPES[target]))


def common_numeric(left: str, right: str) -> str:
    if "real" in (left, right):
        return "real"
    if "long" in (left, right):
        return "long"
    return "int"
