"""What the binder's visitors share: lowered relations, let bindings, the environment, row scopes, and the
binder's state and error helpers (``BinderBase``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from sqlglot import exp

from assay.errors import KqlBindError, KqlUnsupportedError, SourceSpan
from assay.kql import ast
from assay.kql.offline import OfflineSources
from assay.kql.typed import (
    Typed,
    datetime_literal,
)

ORDINAL = "__kql_order"

Schema = Sequence[tuple[str, str]]  # (column name, Kusto type)


@dataclass
class Relation:
    """A lowered tabular expression: a SELECT, its visible columns and types, and whether it carries an order."""

    select: exp.Expr
    columns: list[tuple[str, str]]
    ordered: bool = False  # carries the hidden ORDINAL column (after sort/top/order-preserving operators)
    source_name: str | None = None
    # After sort/top the SELECT ends in ORDER BY; if another operator follows, this builds the variant that
    # carries the order as a hidden row number instead (an ORDER BY inside a subquery means nothing in SQL).
    ordinal_builder: Callable[[], exp.Expr] | None = None
    ctes: list[tuple[str, exp.Expr]] = field(default_factory=list)  # WITH clauses (set on the query result)

    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def type_of(self, name: str) -> str | None:
        for column, kusto_type in self.columns:
            if column == name:
                return kusto_type
        return None


@dataclass
class ScalarLet:
    value: Typed
    literal: ast.Literal | None = None


@dataclass
class TabularLet:
    expr: ast.TabularExpr
    env: Environment


@dataclass
class FunctionLet:
    statement: ast.LetStatement
    env: Environment


@dataclass
class RelationLet:
    """A tabular name bound to an already-lowered relation (the pipe input of ``invoke``)."""

    relation: Relation


LetBinding = ScalarLet | TabularLet | FunctionLet | RelationLet


@dataclass
class Environment:
    bindings: dict[str, LetBinding] = field(default_factory=dict)

    def child(self) -> Environment:
        return Environment(dict(self.bindings))




class BinderBase:
    """The binder's state (query, tables, fixed ``now``, CTEs of tabular lets) and what every visitor shares:
    located errors, fresh aliases, subqueries that carry the hidden order column. Methods named here but
    defined by another visitor raise until the composed ``Binder`` supplies them."""

    def __init__(self, query: ast.Query, tables: Mapping[str, Schema], now: datetime,
                 json_columns: Mapping[str, set[str]] | None = None, offline: OfflineSources | None = None,
                 probe: Callable[[exp.Expr], list[tuple[Any, ...]]] | None = None,
                 data_tables: set[str] | None = None) -> None:
        self.query = query
        self.serialized_rows = False  # inside extend/project over serialized rows (see window_functions)
        # the tables that hold data (when running): what `union *` and `search` read; None: every known table
        self.data_tables = data_tables
        # runs a SELECT on the data while binding (a sqlglot tree in, rows out): plugins whose output columns depend on
        # the data (bag_unpack, pivot) read them with it; None when there is no data (check, compile)
        self.probe = probe
        self.offline = offline or OfflineSources()  # local files mapped to watchlists and externaldata URLs
        self.tables = tables
        self.now = now
        self.now_sql = datetime_literal(now)
        self.alias_counter = itertools.count(1)
        self.json_columns = json_columns or {}
        self.depth = 0
        # inside a where predicate a null comparison may stay null (null filters like false); elsewhere Kusto
        # shows false, so comparisons are wrapped in coalesce(..., false) only outside where
        self.in_where = False
        self.ctes: list[tuple[str, exp.Expr]] = []  # tabular lets, in definition order
        self.let_ctes: dict[int, tuple[str, list[tuple[str, str]], bool]] = {}
        # every name the query text mentions: the table source reads only these when the pipeline projects
        self.referenced_names = set(query.names)

    # ---------------------------------------------------------------- errors
    def span(self, pos: ast.Pos) -> SourceSpan:
        return SourceSpan(self.query.file, pos[0], pos[1], self.query.text)

    def fail(self, message: str, pos: ast.Pos, hint: str | None = None) -> NoReturn:
        raise KqlBindError(message, self.span(pos), hint)

    def unsupported(self, message: str, pos: ast.Pos, hint: str | None = None) -> NoReturn:
        raise KqlUnsupportedError(message, self.span(pos), hint or "see docs/kql-support.md")

    def run_probe(self, select: exp.Expr, pos: ast.Pos, construct: str) -> list[tuple[Any, ...]]:
        """Rows of ``select`` (with the query's tabular lets as CTEs), for data-dependent output columns."""
        if self.probe is None:
            self.unsupported(f"{construct} takes its output columns from the data, and there is no data here",
                             pos, "run the query (assay kql ... --db FILE), or give the output schema "
                                  "with `: (Column: type, ...)`")
        final = select.copy()
        if self.ctes and isinstance(final, exp.Select):
            for name, cte in self.ctes:
                final = final.with_(exp.to_identifier(name, quoted=True), as_=cte.copy(), copy=False)
        from assay.errors import AssayError

        try:
            return self.probe(final)
        except AssayError as error:
            self.fail(f"{construct}: reading its columns from the data failed: {error.message}", pos)

    @contextmanager
    def window_functions(self, source: Relation) -> Iterator[None]:
        """While lowering extend/project expressions over ``source``: prev(), next(), row_number() and
        row_cumsum() may run when its rows are serialized (they order by the hidden order column)."""
        saved = self.serialized_rows
        self.serialized_rows = source.ordered or source.ordinal_builder is not None
        try:
            yield
        finally:
            self.serialized_rows = saved

    def alias(self) -> str:
        return f"_q{next(self.alias_counter)}"

    def subquery(self, relation: Relation, alias: str | None = None) -> exp.Subquery:
        if relation.ordinal_builder is not None:
            relation.select = relation.ordinal_builder()
            relation.ordinal_builder = None
            relation.ordered = True
        return exp.Subquery(this=relation.select, alias=exp.TableAlias(this=exp.to_identifier(alias or self.alias())))

    def row_scope(self, relation: Relation, table: str | None = None) -> dict[str, Typed]:
        return RowScope(relation.columns, table)

    def _with_order(self, select: exp.Select, source: Relation, table: str | None = None,
                    star: bool = False) -> exp.Select:
        """Carry the hidden order column through an order-preserving operator (``SELECT *`` carries it)."""
        if source.ordered:
            if not star:
                select = select.select(exp.column(ORDINAL, table=table, quoted=True), append=True, copy=False)
            select = select.order_by(exp.Ordered(this=exp.column(ORDINAL, table=table, quoted=True)), copy=False)
        return select

    def star_select(self, source: Relation, *extra: exp.Expr) -> exp.Select:
        """``SELECT *[, extra] FROM (source)``: short SQL for operators that keep every column (the source's
        SELECT lists exactly its visible columns, plus the hidden order column when it is ordered)."""
        return exp.Select(expressions=[exp.Star(), *extra]).from_(self.subquery(source), copy=False)


    # ---------------------------------------------------------------- supplied by the other visitors
    def lower_tabular(self, node: ast.TabularExpr, env: Environment) -> Relation:
        raise NotImplementedError

    def lower_table(self, node: ast.TableRef, env: Environment, keep: set[str] | None = None) -> Relation:
        raise NotImplementedError

    def is_tabular_expr(self, expr: ast.Expr | ast.TabularExpr, env: Environment) -> bool:
        raise NotImplementedError

    def as_tabular(self, expr: ast.Expr | ast.TabularExpr) -> ast.TabularExpr:
        raise NotImplementedError

    def bind_lets(self, lets: Sequence[ast.LetStatement], env: Environment) -> Environment:
        raise NotImplementedError

    def _function_env(self, binding: FunctionLet, call: ast.Call, env: Environment, *,
                      probe: bool = False, row: Mapping[str, Typed] | None = None) -> Environment:
        raise NotImplementedError

    def lower_single_aggregate(self, call: ast.Call, scope: dict[str, Typed], env: Environment) -> Typed:
        raise NotImplementedError

    def lower_operator(self, source: Relation, operator: ast.Operator, env: Environment) -> Relation:
        raise NotImplementedError

    def op_where(self, source: Relation, operator: ast.Where, env: Environment) -> Relation:
        raise NotImplementedError

    def coerce(self, typed: Typed, kusto_type: str, pos: ast.Pos, context: str) -> exp.Expr:
        raise NotImplementedError


class _AggregateScope:
    """Marks that aggregate calls are allowed while lowering one summarize expression."""

    def __init__(self, binder: BinderBase, scope: Mapping[str, Typed], env: Environment) -> None:
        self.binder = binder
        self.scope = scope
        self.env = env
        self.used = False


def ordered_distinct(items: exp.Expr) -> exp.Expr:
    """Distinct list elements in first-appearance order (Kusto's make_set/set_union order)."""
    from assay.kql.functions import ordered_distinct as distinct_in_order

    return distinct_in_order(items)


class RowScope(dict[str, Typed]):
    """The columns visible to an operator's expressions, built on first use: a wide table has ~60 columns and
    most operators touch a few, so creating every column node up front dominated bind time."""

    def __init__(self, columns: Sequence[tuple[str, str]], table: str | None = None) -> None:
        super().__init__()
        self.column_types: dict[str, str] = dict(columns)
        self.table = table

    def __missing__(self, name: str) -> Typed:
        kusto_type = self.column_types.get(name)
        if kusto_type is None:
            raise KeyError(name)
        value = Typed(exp.column(name, table=self.table, quoted=True), kusto_type)
        self[name] = value
        return value

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self.column_types

    def get(self, name: str, default: Any = None) -> Any:
        if name in self:  # not self.get (recursion): __missing__ builds the column on first use
            return self[name]
        return default

    def _names(self) -> list[str]:
        return list(self.column_types) + [n for n in dict.keys(self) if n not in self.column_types]

    def __iter__(self) -> Any:
        return iter(self._names())

    def keys(self) -> Any:
        return self._names()

    def items(self) -> Any:
        return [(name, self[name]) for name in self._names()]

    def values(self) -> Any:
        return [self[name] for name in self._names()]

    def __len__(self) -> int:
        return len(self._names())

    def copy(self) -> RowScope:
        duplicate = RowScope([], self.table)
        duplicate.column_types = dict(self.column_types)
        dict.update(duplicate, dict.items(self))
        return duplicate


def copy_scope(scope: Mapping[str, Typed]) -> dict[str, Typed]:
    return scope.copy() if isinstance(scope, RowScope) else dict(scope)


def balanced(operands: list[exp.Expr], connector: type[exp.Connector]) -> exp.Expr:
    """Combine operands with AND/OR as a balanced tree (depth log n), each side parenthesized."""
    if len(operands) == 1:
        return operands[0]
    middle = len(operands) // 2
    return connector(this=exp.Paren(this=balanced(operands[:middle], connector)),
                     expression=exp.Paren(this=balanced(operands[middle:], connector)))


def aliased(expression: exp.Expr, name: str, quoted: bool | None = None) -> exp.Expr:
    """``exp.alias_`` without its defensive deep copy when no tree holds ``expression`` yet: the copy is only
    needed for a node that is already attached elsewhere (copying every selection cost ~5% of compile time)."""
    return exp.alias_(expression.copy() if expression.parent is not None else expression, name, quoted=quoted,
                      copy=False)


def alias(expression: exp.Expr, name: str) -> exp.Alias:
    """``expression AS "name"`` without copying the expression (exp.alias_ copies; trees here are fresh)."""
    return exp.Alias(this=expression, alias=exp.to_identifier(name, quoted=True))


def argument_is_star(call: ast.Call) -> bool:
    return any(isinstance(a, ast.Star) for a in call.args)


def decode_value(value: Any, kusto_type: str) -> Any:
    """Engine value → Python value as Kusto would show it (dynamic parsed from JSON)."""
    if kusto_type == "dynamic" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
