"""Kusto Query Language, run locally: lexer, recursive-descent parser, binder and lowering to sqlglot.

Public API (used by the catalog lint, the proof runner and the CLI)::

    parse(text, file=None) -> ast.Query            syntax only
    check(text, file=None, tables=None) -> None    parse + bind (unknown columns, type errors), raises KqlError
    compile(text, tables=None, now=None, dialect="duckdb") -> Compiled(tree, sql, columns)
    run(text, db=None|path|DuckDBEngine, now=None) -> KqlResult(columns, rows, sql)

Each also takes ``watchlists={alias: csv_path}`` and ``externaldata={url: path}``: local files standing in for
``_GetWatchlist('alias')`` and ``externaldata(...) [url]`` (never fetched: Assay uses no network).

A detection's alert predicate can be evaluated over a query's output by string concatenation:
``run(query + "\\n| where " + predicate)``.
"""

from __future__ import annotations

import builtins
import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlglot import exp

from assay.errors import EngineError, KqlError, KqlSyntaxError, SourceSpan
from assay.kql import ast
from assay.kql.binder import ORDINAL, Binder, Relation, decode_value
from assay.kql.offline import OfflineSources
from assay.kql.parser import parse as _parse
from assay.kql.runtime import located_engine_error

__all__ = ["Compiled", "KqlResult", "check", "compile", "parse", "referenced_tables", "run", "table_schemas"]

TableMap = Mapping[str, Sequence[tuple[str, str]]]
PathMap = Mapping[str, "str | Path"]


def _offline(watchlists: PathMap | None, externaldata: PathMap | None) -> OfflineSources:
    return OfflineSources({k: Path(v) for k, v in (watchlists or {}).items()},
                          {k: Path(v) for k, v in (externaldata or {}).items()})


def parse(text: str, *, file: str | None = None) -> ast.Query:
    """Parse KQL text; raises KqlSyntaxError (line:col, source line) on bad syntax."""
    try:
        return _parse(text, file=file)
    except RecursionError:
        raise KqlSyntaxError("query is nested too deeply", SourceSpan(file, 1, 1, text),
                             "simplify the query or split it with let statements") from None


def _database_columns(engine: Any) -> dict[str, list[tuple[str, str]]]:
    """Every table's columns (DuckDB types) in one catalog query (information_schema is slow per table)."""
    rows = engine.connection.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND NOT internal ORDER BY table_name, column_index").fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table_name, column_name, data_type in rows:
        tables.setdefault(str(table_name), []).append((str(column_name), str(data_type)))
    return tables


def table_schemas(engine: Any | None = None) -> dict[str, list[tuple[str, str]]]:
    """Every known table (``assay.schema.known_tables``: ingest-filled, documented Sentinel / Defender tables)
    plus every table found in the DuckDB engine (Kusto types). A known table that exists in the database is
    read with the database's columns (an older database may lack documented columns added since)."""
    from assay.kql.typed import kusto_type_of_duckdb
    from assay.schema import known_kql_columns

    known = known_kql_columns()
    tables: dict[str, list[tuple[str, str]]] = {name: list(columns) for name, columns in known.items()}
    if engine is not None:
        for table_name, columns in _database_columns(engine).items():
            declared = dict(known.get(table_name, ()))
            if declared and [n for n, _ in known[table_name]] == [n for n, _ in columns]:
                continue
            tables[table_name] = [(name, declared.get(name) or kusto_type_of_duckdb(sql_type))
                                  for name, sql_type in columns]
    return tables


def referenced_tables(tree: exp.Expr) -> list[str]:
    """Names of the tables a compiled tree reads (CTE names included; callers keep the known ones)."""
    return list(dict.fromkeys(str(table.name) for table in tree.find_all(exp.Table) if table.name))


def _json_columns(engine: Any | None) -> dict[str, set[str]]:
    """Columns stored as MAP/LIST/STRUCT in DuckDB: the binder converts them to JSON when read."""
    from assay.schema import RAW_EVENTS

    if engine is None:
        return {RAW_EVENTS: {"Fields"}}
    columns: dict[str, set[str]] = {}
    for table_name, table_columns in _database_columns(engine).items():
        for name, sql_type in table_columns:
            upper = sql_type.upper()
            if upper.startswith(("MAP", "STRUCT")) or upper.endswith("]"):
                columns.setdefault(table_name, set()).add(name)
    return columns


@dataclass(frozen=True)
class Compiled:
    """A bound query: the sqlglot tree, SQL text for the dialect, and output columns (name, Kusto type)."""

    tree: exp.Expr
    sql: str
    columns: tuple[tuple[str, str], ...]
    dialect: str = "duckdb"


@dataclass(frozen=True)
class KqlResult:
    """Rows a KQL query returned, its columns (name, Kusto type) and the SQL that ran."""

    columns: tuple[tuple[str, str], ...]
    rows: tuple[tuple[Any, ...], ...]
    sql: str
    now: datetime | None = field(default=None)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def as_dicts(self) -> builtins.list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=True)) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


def _now(now: datetime | str | None) -> datetime:
    if now is None:
        return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    if isinstance(now, str):
        from assay.kql.values import parse_datetime_literal

        parsed = parse_datetime_literal(now)
        if parsed is None:
            from assay.errors import UsageError

            raise UsageError(f"invalid --now value {now!r}", hint="use ISO 8601, e.g. 2024-05-01T12:00:00Z")
        return parsed
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    return now


def _final_select(relation: Relation) -> exp.Expr:
    """The outermost SELECT: visible columns only, ordered by the hidden ordinal when the query sorted, with
    the tabular lets as CTEs."""
    final: exp.Expr
    if not relation.ordered:
        final = relation.select  # unsorted, or ending in sort/top whose SELECT has the ORDER BY
    else:
        final = exp.select(*[exp.column(name, quoted=True) for name, _ in relation.columns], copy=False).from_(
            exp.Subquery(this=relation.select, alias=exp.TableAlias(this=exp.to_identifier("_final"))),
            copy=False).order_by(exp.Ordered(this=exp.column(ORDINAL, quoted=True)), copy=False)
    if relation.ctes:
        if not isinstance(final, exp.Select):  # a bare union: wrap it so it can carry WITH
            final = exp.select(exp.Star(), copy=False).from_(
                exp.Subquery(this=final, alias=exp.TableAlias(this=exp.to_identifier("_body"))), copy=False)
        for name, cte in relation.ctes:
            final = final.with_(exp.to_identifier(name, quoted=True), as_=cte, copy=False)
    return parenthesize(final)


# Parents whose operands sqlglot prints without parentheses where precedence can change the meaning
_NEEDS_PARENS = (exp.Sub, exp.Div, exp.IntDiv, exp.Mod, exp.Mul, exp.Add, exp.DPipe, exp.Neg, exp.Not, exp.Is,
                 exp.Interval, exp.Between, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_OPERATOR_NODES = (exp.Binary, exp.Not, exp.Neg, exp.Between, exp.Is)
_OPERAND_KEYS = ("this", "expression", "low", "high")


def parenthesize(tree: exp.Expr) -> exp.Expr:
    """Wrap nested operators in parentheses: trees built in code carry no Paren nodes, and sqlglot prints
    ``Div(Mul(a, b), Mul(c, d))`` as ``a * b / c * d``. One pass over the finished tree fixes every case."""
    # isinstance against the class tuples is decided once per node class (a tree has ~1,500 nodes, ~60 classes)
    needs_parens = _NEEDS_PARENS_BY_CLASS
    is_operator = _IS_OPERATOR_BY_CLASS
    expression_class = exp.Expr
    stack = [tree]
    pop = stack.pop
    push = stack.append
    while stack:
        node = pop()
        args = node.args
        node_class = type(node)
        needs = needs_parens.get(node_class)
        if needs is None:
            needs = needs_parens[node_class] = issubclass(node_class, _NEEDS_PARENS)
        if needs:
            for key in _OPERAND_KEYS:
                child = args.get(key)
                if child is None:
                    continue
                child_class = type(child)
                operator = is_operator.get(child_class)
                if operator is None:
                    operator = is_operator[child_class] = issubclass(child_class, _OPERATOR_NODES)
                if operator and not (issubclass(node_class, exp.Interval)
                                     and not issubclass(child_class, exp.Binary)):
                    node.set(key, exp.Paren(this=child))
        for child in args.values():
            if isinstance(child, expression_class):
                push(child)
            elif isinstance(child, list):
                for item in child:
                    if isinstance(item, expression_class):
                        push(item)
    return tree


_NEEDS_PARENS_BY_CLASS: dict[type, bool] = {}
_IS_OPERATOR_BY_CLASS: dict[type, bool] = {}


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a query is compiled. Binding allocates thousands of sqlglot
    nodes (each with a parent pointer, so in cycles) and tokens; the allocation count triggers collections that
    walk every live object of the process, which cost a third of compile time. The garbage is collected as
    usual once the collector is back on."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _bind(text: str, file: str | None, tables: TableMap | None, now: datetime | str | None,
          engine: Any | None = None, offline: OfflineSources | None = None) -> tuple[Relation, datetime]:
    query = parse(text, file=file)
    schemas = dict(tables) if tables is not None else table_schemas(engine)
    fixed_now = _now(now)
    try:
        relation = Binder(query, schemas, fixed_now, _json_columns(engine), offline,
                          _prober(engine) if engine is not None else None,
                          set(_database_columns(engine)) if engine is not None else _tables_with_data(schemas)).bind()
    except RecursionError:
        raise KqlSyntaxError("query is nested too deeply", SourceSpan(file, 1, 1, text),
                             "simplify the query or split it with let statements") from None
    return relation, fixed_now


def _tables_with_data(schemas: Mapping[str, Any]) -> set[str]:
    """Without a database, the tables ``union *`` stands for: all but the ~730 documented tables nothing has
    filled (a union over every documented table would be a query of tens of thousands of columns)."""
    from assay.schema import canonical_tables, documented_tables

    filled = canonical_tables()
    return {name for name in schemas if name in filled or name not in documented_tables()}


def _prober(engine: Any) -> Any:
    """Runs a SELECT the binder needs while binding (plugins whose columns come from the data)."""
    def probe(tree: exp.Expr) -> list[tuple[Any, ...]]:
        from assay.kql.runtime import install_macros

        install_macros(engine)
        return list(engine.run(parenthesize(tree).sql(dialect="duckdb")).rows)
    return probe


def check(text: str, *, file: str | None = None, tables: TableMap | None = None,
          watchlists: PathMap | None = None, externaldata: PathMap | None = None) -> None:
    """Parse and bind ``text`` against the canonical tables (or ``tables``); raises KqlError, returns None."""
    with _collector_paused():
        _bind(text, file, tables, None, offline=_offline(watchlists, externaldata))


def compile(text: str, *, tables: TableMap | None = None, now: datetime | str | None = None,
            dialect: str = "duckdb", file: str | None = None, watchlists: PathMap | None = None,
            externaldata: PathMap | None = None) -> Compiled:
    """Bind and lower ``text`` to a sqlglot tree; ``.sql`` is the text for ``dialect`` (duckdb or spark)."""
    with _collector_paused():
        relation, _ = _bind(text, file, tables, now, offline=_offline(watchlists, externaldata))
        tree = _final_select(relation)
        return Compiled(tree, _generate(tree, dialect, text, file), tuple(relation.columns), dialect)


def _generate(tree: exp.Expr, dialect: str, text: str = "", file: str | None = None) -> str:
    try:
        if dialect == "spark":
            from assay.engine.spark_sql import to_spark_sql

            return to_spark_sql(tree)
        return tree.sql(dialect=dialect, copy=False)
    except RecursionError:
        from assay.errors import KqlUnsupportedError

        raise KqlUnsupportedError("the query is too deeply nested to compile (too many nested subqueries)",
                                  SourceSpan(file, 1, 1, text), "split it with let statements") from None


def run(text: str, *, db: Any = None, now: datetime | str | None = None, file: str | None = None,
        watchlists: PathMap | None = None, externaldata: PathMap | None = None) -> KqlResult:
    """Run ``text`` on DuckDB: ``db`` is None (in-memory, canonical tables empty), a path, or a DuckDBEngine."""
    from assay.engine import DuckDBEngine
    from assay.kql.runtime import install_macros

    owns_engine = not isinstance(db, DuckDBEngine)
    if isinstance(db, DuckDBEngine):
        engine = db
    elif db is None:
        engine = DuckDBEngine(None)
    else:
        path = Path(db)
        if not path.exists():
            from assay.errors import UsageError

            raise UsageError(f"database {path} does not exist", hint="create it with `assay ingest ... --db FILE`")
        engine = DuckDBEngine(path, read_only=True)
    try:
        with _collector_paused():
            relation, fixed_now = _bind(text, file, None, now, engine, _offline(watchlists, externaldata))
            tree = _final_select(relation)
            sql = _generate(tree, "duckdb", text, file)
        engine.ensure_tables(referenced_tables(tree))  # documented tables are created when first read
        install_macros(engine)
        try:
            result = engine.run(sql)
        except EngineError as error:
            raise located_engine_error(error, text, file) from None
    except KqlError:
        raise
    finally:
        if owns_engine:
            engine.close()
    rows = tuple(tuple(decode_value(value, kusto_type) for value, (_, kusto_type) in
                       zip(row, relation.columns, strict=True)) for row in result.rows)
    return KqlResult(tuple(relation.columns), rows, result.sql, fixed_now)
