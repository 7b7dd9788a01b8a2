"""The typed KQL syntax tree: immutable nodes for statements, tabular operators and scalar expressions.

Every node keeps ``pos`` (line, col) so the binder can point at the exact place of an unknown column or a type
error. The parser builds these; the binder/lowering walks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Pos = tuple[int, int]


# ---------------------------------------------------------------- scalar expressions

@dataclass(frozen=True)
class Expr:
    pos: Pos


@dataclass(frozen=True)
class Literal(Expr):
    value: Any  # None for typed nulls
    kusto_type: str  # string, long, int, real, bool, datetime, timespan, dynamic, guid


@dataclass(frozen=True)
class Name(Expr):
    name: str


@dataclass(frozen=True)
class Star(Expr):
    pass


@dataclass(frozen=True)
class Member(Expr):
    """``target.name`` (dynamic property access, or ``$left.col`` / ``$right.col`` in join conditions)."""

    target: Expr
    name: str


@dataclass(frozen=True)
class Index(Expr):
    """``target[index]`` (dynamic array index or property by string)."""

    target: Expr
    index: Expr


@dataclass(frozen=True)
class Call(Expr):
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Binary(Expr):
    op: str  # and or + - * / % == != < <= > >= =~ !~ has !has contains ... matches_regex
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # - + not
    operand: Expr


@dataclass(frozen=True)
class InList(Expr):
    op: str  # in, !in, in~, !in~, has_any, has_all, has_any_cs...
    left: Expr
    items: tuple[Expr, ...]  # may hold a single tabular subquery (TabularArg)


@dataclass(frozen=True)
class Between(Expr):
    negated: bool
    operand: Expr
    low: Expr
    high: Expr


@dataclass(frozen=True)
class TabularArg(Expr):
    """A tabular expression used where a scalar list is expected (``x in (T | project c)``, toscalar(T))."""

    query: TabularExpr


# ---------------------------------------------------------------- tabular expressions

@dataclass(frozen=True)
class TabularExpr:
    pos: Pos


@dataclass(frozen=True)
class TableRef(TabularExpr):
    name: str


@dataclass(frozen=True)
class FunctionSource(TabularExpr):
    """A call in source position: a user function (``let f = (...) {...}``), materialize(), view(), table()."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Datatable(TabularExpr):
    columns: tuple[tuple[str, str], ...]
    values: tuple[Expr, ...]


@dataclass(frozen=True)
class ExternalData(TabularExpr):
    """``externaldata(schema) [URL, ...] with (format=..., ...)``: rows of a file the user maps to the URL."""

    columns: tuple[tuple[str, str], ...]
    urls: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Search(TabularExpr):
    """``search [kind=...] [in (T1, T*)] predicate``: the matching rows of every named (or every) table, with
    a ``$table`` column. A bare string in the predicate matches a term in any column; ``Col:"x"`` in Col."""

    tables: tuple[str, ...]
    predicate: Expr
    case_sensitive: bool = False


@dataclass(frozen=True)
class Print(TabularExpr):
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class Range(TabularExpr):
    column: str
    start: Expr
    stop: Expr
    step: Expr


@dataclass(frozen=True)
class Union(TabularExpr):
    sources: tuple[TabularExpr, ...]
    kind: str = "outer"
    withsource: str | None = None
    isfuzzy: bool = False


@dataclass(frozen=True)
class Pipe(TabularExpr):
    source: TabularExpr
    operator: Operator


@dataclass(frozen=True)
class Assignment:
    """``name = expr`` or a bare ``expr`` (name None: derived by Kusto's naming rules)."""

    name: str | None
    expr: Expr
    names: tuple[str, ...] = ()  # ``(a, b) = f(...)`` multi-name assignment (arg_max, percentiles)


@dataclass(frozen=True)
class SortKey:
    expr: Expr
    descending: bool = True  # Kusto's default direction is descending
    nulls_first: bool | None = None  # None: Kusto's default (asc → nulls first, desc → nulls last)


# ---------------------------------------------------------------- tabular operators

@dataclass(frozen=True)
class Operator:
    pos: Pos
    name: str


@dataclass(frozen=True)
class Where(Operator):
    predicate: Expr


@dataclass(frozen=True)
class Extend(Operator):
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class Project(Operator):
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class ProjectColumns(Operator):
    """project-away, project-keep, project-reorder: column names or wildcard patterns."""

    patterns: tuple[tuple[str, Pos, str | None], ...]  # (pattern, pos, asc/desc for project-reorder)


@dataclass(frozen=True)
class ProjectRename(Operator):
    renames: tuple[tuple[str, str, Pos], ...]  # (new, old, pos)


@dataclass(frozen=True)
class Summarize(Operator):
    aggregates: tuple[Assignment, ...]
    by: tuple[Assignment, ...]


@dataclass(frozen=True)
class Sort(Operator):
    keys: tuple[SortKey, ...]


@dataclass(frozen=True)
class Top(Operator):
    count: Expr
    key: SortKey


@dataclass(frozen=True)
class Take(Operator):
    count: Expr


@dataclass(frozen=True)
class Distinct(Operator):
    columns: tuple[Expr, ...]  # Star for ``distinct *``


@dataclass(frozen=True)
class Count(Operator):
    pass


@dataclass(frozen=True)
class Join(Operator):
    kind: str
    right: TabularExpr
    on: tuple[Expr, ...]  # Name (same column both sides) or Binary(==, $left.a, $right.b)
    is_lookup: bool = False


@dataclass(frozen=True)
class UnionOp(Operator):
    sources: tuple[TabularExpr, ...]
    kind: str = "outer"
    withsource: str | None = None
    isfuzzy: bool = False


@dataclass(frozen=True)
class MvExpand(Operator):
    columns: tuple[tuple[str | None, Expr, str | None], ...]  # (new name, expr, to typeof(type))
    item_index: str | None = None
    limit: Expr | None = None
    bag_as_array: bool = False  # kind=array: a property bag expands to [key, value] arrays


@dataclass(frozen=True)
class MvApply(Operator):
    """``mv-apply [with_itemindex=I] cols [limit N] on (subquery)``: the subquery runs once per input row over
    that row's expanded arrays; the row's other columns are added to each result row."""

    columns: tuple[tuple[str | None, Expr, str | None], ...]
    item_index: str | None
    limit: Expr | None
    operators: tuple[Operator, ...]


@dataclass(frozen=True)
class MakeSeries(Operator):
    """``make-series Agg [default=v], ... on Axis [from a] [to b] step s [by keys]``: one row per group, each
    aggregate an array over the axis bins (absent bins take the default, 0 unless given)."""

    aggregates: tuple[tuple[Assignment, Expr | None], ...]
    axis: Expr
    start: Expr | None
    end: Expr | None
    step: Expr
    by: tuple[Assignment, ...]
    nonempty: bool = False


@dataclass(frozen=True)
class Evaluate(Operator):
    """``evaluate plugin(args) [: (schema)]``: bag_unpack and pivot run; other plugins are named as unsupported."""

    plugin: str
    args: tuple[Expr, ...]
    schema: tuple[tuple[str, str], ...] | None = None
    named: tuple[tuple[str, Expr], ...] = ()  # name = value arguments (columnsConflict='replace_source')


@dataclass(frozen=True)
class SearchOp(Operator):
    """``T | search predicate``: the rows of T the search predicate matches."""

    predicate: Expr
    case_sensitive: bool = False


@dataclass(frozen=True)
class Parse(Operator):
    kind: str  # simple, regex, relaxed
    source: Expr
    pattern: tuple[Any, ...]  # str literals and (column name, type) tuples, "*" wildcard
    flags: str = ""
    where: bool = False  # parse-where drops rows that do not match


@dataclass(frozen=True)
class As(Operator):
    table_name: str


@dataclass(frozen=True)
class Invoke(Operator):
    function: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class NoOp(Operator):
    """Operators that do not change rows for our purposes (render, serialize)."""


# ---------------------------------------------------------------- statements

@dataclass(frozen=True)
class Parameter:
    name: str
    kusto_type: str  # scalar type, or "table" for tabular parameters
    default: Expr | None = None


@dataclass(frozen=True)
class LetStatement:
    pos: Pos
    name: str
    value: Expr | TabularExpr | None = None
    parameters: tuple[Parameter, ...] | None = None  # a function when not None
    body: Query | None = None  # function body (its own lets + a final expression)


@dataclass(frozen=True)
class Query:
    lets: tuple[LetStatement, ...]
    body: Expr | TabularExpr | None  # the final expression statement
    text: str = field(default="", compare=False, repr=False)
    file: str | None = field(default=None, compare=False, repr=False)
    names: frozenset[str] = field(default=frozenset(), compare=False, repr=False)  # identifiers and strings
