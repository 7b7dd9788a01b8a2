"""Binder and lowering: a parsed KQL query → a typed sqlglot SELECT, resolving tables, columns, lets and types.

Each tabular operator becomes one SELECT over the previous one (DuckDB and Spark flatten these). Name resolution,
type inference and Kusto's semantic rules (strings never null, innerunique joins, sort direction, term matching,
integer division, a fixed ``now()``) are applied here, so an unknown column or a type error is reported with
its line:col before anything runs.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from sqlglot import exp

from assay.errors import KqlBindError, KqlUnsupportedError, SourceSpan, did_you_mean
from assay.kql import ast
from assay.kql.functions import (
    AGGREGATE_FUNCTIONS,
    OFFLINE_FUNCTIONS,
    SCALAR_FUNCTIONS,
    UNSUPPORTED_FUNCTIONS,
    CallContext,
    contains,
    lower_term_match,
)
from assay.kql.typed import (
    NUMERIC_TYPES,
    SQL_TYPES,
    Typed,
    as_string,
    cast,
    common_numeric,
    datetime_literal,
    fn,
    interval_micros,
    literal,
    number,
    string,
    to_type,
)

ORDINAL = "__kql_order"
#: Each operator becomes one nested SELECT; far deeper nesting than real queries use exhausts the SQL generator.
MAX_PIPELINE_OPERATORS = 60

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


class Binder:
    """Lowers one query. ``tables`` maps table names to their columns; ``now`` is fixed for the whole query."""

    def __init__(self, query: ast.Query, tables: Mapping[str, Schema], now: datetime,
                 json_columns: Mapping[str, set[str]] | None = None) -> None:
        self.query = query
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

    def alias(self) -> str:
        return f"_q{next(self.alias_counter)}"

    # ---------------------------------------------------------------- entry points
    def bind(self) -> Relation:
        env = self.bind_lets(self.query.lets, Environment())
        body = self.query.body
        if body is None:
            self.fail("the query has no result expression", (1, 1))
        if isinstance(body, ast.Expr) and not self.is_tabular_expr(body, env):
            # a scalar result: Kusto prints it as a one-column table
            value = self.lower_expr(body, {}, env)
            result = Relation(exp.select(aliased(value.sql, "print_0", quoted=True), copy=False),
                              [("print_0", value.kusto_type)])
        else:
            result = self.lower_tabular(self.as_tabular(body), env)
        result.ctes = list(self.ctes)
        return result

    def bind_lets(self, lets: Sequence[ast.LetStatement], env: Environment) -> Environment:
        for let in lets:
            env = env.child()
            if let.parameters is not None:
                env.bindings[let.name] = FunctionLet(let, env)
                continue
            value = let.value
            assert value is not None
            if isinstance(value, ast.TabularExpr) or self.is_tabular_expr(value, env):
                env.bindings[let.name] = TabularLet(self.as_tabular(value), env)
            else:
                typed = self.lower_expr(value, {}, env)
                literal_node = value if isinstance(value, ast.Literal) else None
                if isinstance(value, ast.Name) and isinstance(env.bindings.get(value.name), ScalarLet):
                    bound = env.bindings[value.name]
                    assert isinstance(bound, ScalarLet)
                    literal_node = bound.literal
                env.bindings[let.name] = ScalarLet(typed, literal_node)
        return env

    def is_tabular_expr(self, expr: ast.Expr | ast.TabularExpr, env: Environment) -> bool:
        if isinstance(expr, ast.TabularExpr | ast.TabularArg):
            return True
        if isinstance(expr, ast.Name):
            binding = env.bindings.get(expr.name)
            if isinstance(binding, TabularLet | RelationLet):
                return True
            if isinstance(binding, ScalarLet):
                return False
            return expr.name in self.tables or (binding is None and self._table_lookup(expr.name) is not None)
        if isinstance(expr, ast.Call):
            binding = env.bindings.get(expr.name)
            if isinstance(binding, FunctionLet):
                body = binding.statement.body
                return body is not None and body.body is not None and self.is_tabular_expr(
                    body.body, self._function_env(binding, expr, env, probe=True))
            return expr.name in ("materialize", "view", "table")
        return False

    def as_tabular(self, expr: ast.Expr | ast.TabularExpr) -> ast.TabularExpr:
        if isinstance(expr, ast.TabularExpr):
            return expr
        if isinstance(expr, ast.TabularArg):
            return expr.query
        if isinstance(expr, ast.Name):
            return ast.TableRef(expr.pos, expr.name)
        if isinstance(expr, ast.Call):
            return ast.FunctionSource(expr.pos, expr.name, expr.args)
        self.fail("expected a tabular expression here", expr.pos)

    def _table_lookup(self, name: str) -> Schema | None:
        return self.tables.get(name)

    # ---------------------------------------------------------------- tabular
    def lower_tabular(self, node: ast.TabularExpr, env: Environment) -> Relation:
        self.depth += 1
        if self.depth > 300:
            self.fail("query is nested too deeply", node.pos)
        try:
            return self._lower_tabular(node, env)
        finally:
            self.depth -= 1

    def _lower_tabular(self, node: ast.TabularExpr, env: Environment) -> Relation:
        if isinstance(node, ast.Pipe):
            # walk the pipeline iteratively: long pipelines must not grow the Python stack
            operators: list[ast.Operator] = []
            base: ast.TabularExpr = node
            while isinstance(base, ast.Pipe):
                operators.append(base.operator)
                base = base.source
            operators.reverse()
            if len(operators) > MAX_PIPELINE_OPERATORS:
                self.unsupported(f"a pipeline of {len(operators)} tabular operators is too long "
                                 f"(the limit is {MAX_PIPELINE_OPERATORS})", operators[MAX_PIPELINE_OPERATORS].pos,
                                 "split it with let statements")
            if isinstance(base, ast.TableRef) and self.pipeline_restricts_columns(operators):
                source = self.lower_table(base, env, keep=self.referenced_names)
            else:
                source = self.lower_tabular(base, env)
            for operator in operators:
                source = self.lower_operator(source, operator, env)
            return source
        if isinstance(node, ast.TableRef):
            return self.lower_table(node, env)
        if isinstance(node, ast.FunctionSource):
            return self.lower_function_source(node, env)
        if isinstance(node, ast.Datatable):
            return self.lower_datatable(node, env)
        if isinstance(node, ast.Print):
            return self.lower_print(node, env)
        if isinstance(node, ast.Range):
            return self.lower_range(node, env)
        if isinstance(node, ast.Union):
            return self.lower_union(None, node.sources, node.kind, node.withsource, node.isfuzzy, env, node.pos)
        self.unsupported(f"unsupported tabular expression {type(node).__name__}", node.pos)

    @staticmethod
    def pipeline_restricts_columns(operators: Sequence[ast.Operator]) -> bool:
        """True when a project/summarize/count/distinct decides the output columns before anything needs them
        all: then the table source may read only the columns the query names (a big win on wide tables)."""
        for operator in operators:
            if isinstance(operator, ast.Project | ast.Count):
                return True
            if isinstance(operator, ast.Distinct):
                return not any(isinstance(c, ast.Star) for c in operator.columns)
            if isinstance(operator, ast.Summarize):
                return not any(isinstance(a, ast.Star) for agg in operator.aggregates
                               if isinstance(agg.expr, ast.Call) for a in agg.expr.args)
            if not isinstance(operator, ast.Where | ast.Extend | ast.Sort | ast.Top | ast.Take | ast.Parse |
                              ast.ProjectRename | ast.NoOp):
                return False
        return False

    def lower_table(self, node: ast.TableRef, env: Environment, keep: set[str] | None = None) -> Relation:
        binding = env.bindings.get(node.name)
        if isinstance(binding, RelationLet):
            known = binding.relation
            return Relation(known.select.copy(), list(known.columns), known.ordered, known.source_name)
        if isinstance(binding, TabularLet):
            # a tabular let becomes one CTE, however often the query reads it (as materialize() would)
            cached = self.let_ctes.get(id(binding))
            if cached is None:
                relation = self.lower_tabular(binding.expr, binding.env)
                if relation.ordinal_builder is not None:
                    relation.select = relation.ordinal_builder()
                    relation.ordinal_builder = None
                    relation.ordered = True
                cte_name = f"_let_{len(self.ctes) + 1}_{re.sub(r'[^0-9A-Za-z_]', '_', node.name)}"
                self.ctes.append((cte_name, relation.select))
                cached = (cte_name, list(relation.columns), relation.ordered)
                self.let_ctes[id(binding)] = cached
            cte_name, columns, ordered = cached
            select = exp.Select(expressions=[exp.Star()]).from_(
                exp.Table(this=exp.to_identifier(cte_name, quoted=True)), copy=False)
            return Relation(select, list(columns), ordered, node.name)
        if isinstance(binding, FunctionLet):
            return self.lower_function_source(ast.FunctionSource(node.pos, node.name, ()), env)
        if isinstance(binding, ScalarLet):
            self.fail(f"'{node.name}' is a scalar, not a table", node.pos)
        schema = self._table_lookup(node.name)
        if schema is None:
            if node.name.startswith("_Get") or node.name.startswith("_ASim") or node.name in OFFLINE_FUNCTIONS:
                self.unsupported(f"'{node.name}' is a Microsoft Sentinel workspace function, not available offline",
                                 node.pos, "export the watchlist or parser output and load it as a table")
            candidates = list(self.tables) + [n for n, b in env.bindings.items() if not isinstance(b, ScalarLet)]
            suggestion = did_you_mean(node.name, candidates)
            self.fail(f"unknown table '{node.name}'", node.pos,
                      f"did you mean '{suggestion}'?" if suggestion else
                      "ingest data with `assay ingest` or check the table name")
        json_columns = self.json_columns.get(node.name, set())
        selections: list[exp.Expr] = []
        if keep is not None:
            schema = [(n, t) for n, t in schema if n in keep]
        for name, kusto_type in schema:
            column = exp.column(name, quoted=True)
            value: exp.Expr = column
            if name in json_columns:
                value = fn("to_json", column)
            if kusto_type in ("string", "guid"):
                value = exp.Coalesce(this=column, expressions=[string("")])  # Kusto strings are never null
            selections.append(alias(value, name))
        select = exp.select(*selections, copy=False).from_(exp.Table(this=exp.to_identifier(node.name, quoted=True)), copy=False)
        return Relation(select, list(schema), source_name=node.name)

    def lower_function_source(self, node: ast.FunctionSource, env: Environment) -> Relation:
        if node.name in ("materialize", "view"):
            if len(node.args) != 1:
                self.fail(f"{node.name}() takes one tabular argument", node.pos)
            return self.lower_tabular(self.as_tabular(node.args[0]), env)
        if node.name == "table":
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Literal):
                self.fail("table() takes a table name string", node.pos)
            return self.lower_table(ast.TableRef(node.pos, str(node.args[0].value)), env)
        binding = env.bindings.get(node.name)
        if not isinstance(binding, FunctionLet):
            if node.name.startswith("_Get") or node.name.startswith("_ASim") or node.name in OFFLINE_FUNCTIONS:
                self.unsupported(f"'{node.name}' is not available offline (a Microsoft Sentinel or cluster function)",
                                 node.pos, "export its data and load it as a table")
            candidates = [n for n, b in env.bindings.items() if isinstance(b, FunctionLet)] + list(self.tables)
            suggestion = did_you_mean(node.name, candidates)
            self.fail(f"unknown tabular function '{node.name}'", node.pos,
                      f"did you mean '{suggestion}'?" if suggestion else "define it with let")
        call = ast.Call(node.pos, node.name, node.args)
        function_env = self._function_env(binding, call, env)
        body = binding.statement.body
        assert body is not None and body.body is not None
        inner_env = self.bind_lets(body.lets, function_env)
        return self.lower_tabular(self.as_tabular(body.body), inner_env)

    def _function_env(self, binding: FunctionLet, call: ast.Call, env: Environment, *,
                      probe: bool = False, row: Mapping[str, Typed] | None = None) -> Environment:
        parameters = binding.statement.parameters or ()
        if len(call.args) > len(parameters) and not probe:
            self.fail(f"{call.name}() takes {len(parameters)} arguments, got {len(call.args)}", call.pos)
        function_env = binding.env.child()
        function_env.bindings[binding.statement.name] = binding  # allow recursion-free self reference by name
        for index, parameter in enumerate(parameters):
            if index < len(call.args):
                argument = call.args[index]
            elif parameter.default is not None:
                argument = parameter.default
            elif probe:
                function_env.bindings[parameter.name] = ScalarLet(Typed(exp.null(), parameter.kusto_type))
                continue
            else:
                self.fail(f"{call.name}() is missing argument '{parameter.name}'", call.pos)
            if parameter.kusto_type == "table":
                function_env.bindings[parameter.name] = TabularLet(self.as_tabular(argument), env)
            elif probe:
                function_env.bindings[parameter.name] = ScalarLet(Typed(exp.null(), parameter.kusto_type))
            else:
                typed = self.lower_expr(argument, row or {}, env)
                if parameter.kusto_type in SQL_TYPES and typed.kusto_type != parameter.kusto_type and \
                        not (typed.kusto_type in NUMERIC_TYPES and parameter.kusto_type in NUMERIC_TYPES):
                    typed = Typed(to_type(typed, parameter.kusto_type), parameter.kusto_type)
                literal_node = argument if isinstance(argument, ast.Literal) else None
                function_env.bindings[parameter.name] = ScalarLet(typed, literal_node)
        return function_env

    def lower_datatable(self, node: ast.Datatable, env: Environment) -> Relation:
        width = len(node.columns)
        rows: list[exp.Expr] = []
        for start in range(0, len(node.values), width):
            values = []
            for (name, kusto_type), value_node in zip(node.columns, node.values[start:start + width], strict=True):
                typed = self.lower_expr(value_node, {}, env)
                values.append(self.coerce(typed, kusto_type, value_node.pos, f"datatable column {name}"))
            rows.append(exp.Tuple(expressions=values))
        alias = self.alias()
        if not rows:
            selections = [aliased(literal(None, t), n, quoted=True) for n, t in node.columns]
            return Relation(exp.select(*selections, copy=False).where(exp.false(), copy=False), list(node.columns))
        value_names = [f"c{i}" for i in range(width)]
        values_table = exp.Values(expressions=rows, alias=exp.TableAlias(
            this=exp.to_identifier(alias), columns=[exp.to_identifier(v) for v in value_names]))
        selections = [aliased(cast(exp.column(v, table=alias), SQL_TYPES[t]), n, quoted=True)
                      for v, (n, t) in zip(value_names, node.columns, strict=True)]
        return Relation(exp.select(*selections, copy=False).from_(values_table, copy=False), list(node.columns))

    def coerce(self, typed: Typed, kusto_type: str, pos: ast.Pos, context: str) -> exp.Expr:
        if typed.kusto_type == kusto_type:
            return typed.sql
        if (isinstance(typed.sql, exp.Cast) and isinstance(typed.sql.this, exp.Null)) or \
                isinstance(typed.sql, exp.Null):
            return literal(None, kusto_type)
        if typed.kusto_type in NUMERIC_TYPES and kusto_type in NUMERIC_TYPES:
            return cast(typed.sql, SQL_TYPES[kusto_type])
        if {typed.kusto_type, kusto_type} <= {"string", "guid"}:
            return typed.sql
        if kusto_type == "dynamic":
            return to_type(typed, "dynamic")
        self.fail(f"a {typed.kusto_type} value cannot be used for {context} ({kusto_type})", pos)

    def lower_print(self, node: ast.Print, env: Environment) -> Relation:
        selections = []
        columns: list[tuple[str, str]] = []
        for index, assignment in enumerate(node.assignments):
            typed = self.lower_expr(assignment.expr, {}, env)
            name = assignment.name or self.derive_name(assignment.expr, None) or f"print_{index}"
            selections.append(aliased(typed.sql, name, quoted=True))
            columns.append((name, typed.kusto_type))
        return Relation(exp.select(*selections, copy=False), columns)

    def lower_range(self, node: ast.Range, env: Environment) -> Relation:
        start = self.lower_expr(node.start, {}, env)
        stop = self.lower_expr(node.stop, {}, env)
        step = self.lower_expr(node.step, {}, env)
        result_type = start.kusto_type
        if start.kusto_type in NUMERIC_TYPES and stop.kusto_type in NUMERIC_TYPES:
            result_type = common_numeric(common_numeric(start.kusto_type, stop.kusto_type), step.kusto_type)
            if result_type == "real":
                self.unsupported("range over real numbers is not supported", node.pos, "use long bounds")
        elif start.kusto_type == "datetime":
            if step.kusto_type != "timespan":
                self.fail("a datetime range needs a timespan step", node.step.pos)
        else:
            self.fail(f"range cannot iterate over {start.kusto_type} values", node.start.pos)
        series = exp.Unnest(expressions=[fn("generate_series", start.sql, stop.sql, step.sql)])
        alias = self.alias()
        select = exp.select(aliased(exp.column("value", table=alias), node.column, quoted=True), copy=False).from_(
            exp.Subquery(this=exp.select(aliased(series, "value"), copy=False), alias=exp.TableAlias(
                this=exp.to_identifier(alias))), copy=False)
        return Relation(select, [(node.column, result_type)])

    # ---------------------------------------------------------------- operators
    def lower_operator(self, source: Relation, operator: ast.Operator, env: Environment) -> Relation:
        if isinstance(operator, ast.Where):
            return self.op_where(source, operator, env)
        if isinstance(operator, ast.Extend):
            return self.op_extend(source, operator, env)
        if isinstance(operator, ast.Project):
            return self.op_project(source, operator, env)
        if isinstance(operator, ast.ProjectColumns):
            return self.op_project_columns(source, operator)
        if isinstance(operator, ast.ProjectRename):
            return self.op_project_rename(source, operator)
        if isinstance(operator, ast.Summarize):
            return self.op_summarize(source, operator, env)
        if isinstance(operator, ast.Sort):
            return self.op_sort(source, operator.keys, None, env)
        if isinstance(operator, ast.Top):
            return self.op_sort(source, (operator.key,), operator.count, env)
        if isinstance(operator, ast.Take):
            return self.op_take(source, operator, env)
        if isinstance(operator, ast.Distinct):
            return self.op_distinct(source, operator, env)
        if isinstance(operator, ast.Count):
            select = exp.select(aliased(cast(exp.Count(this=exp.Star()), "BIGINT"), "Count", quoted=True), copy=False)
            return Relation(select.from_(self.subquery(source), copy=False), [("Count", "long")])
        if isinstance(operator, ast.Join):
            return self.op_join(source, operator, env)
        if isinstance(operator, ast.UnionOp):
            return self.lower_union(source, operator.sources, operator.kind, operator.withsource,
                                    operator.isfuzzy, env, operator.pos)
        if isinstance(operator, ast.MvExpand):
            return self.op_mv_expand(source, operator, env)
        if isinstance(operator, ast.Parse):
            return self.op_parse(source, operator, env)
        if isinstance(operator, ast.NoOp) and operator.name == "getschema":
            return self.op_getschema(source)
        if isinstance(operator, ast.As | ast.NoOp):
            if isinstance(operator, ast.As):
                source.source_name = operator.table_name
            return source
        if isinstance(operator, ast.Invoke):
            binding = env.bindings.get(operator.function)
            if not isinstance(binding, FunctionLet):
                self.fail(f"unknown function '{operator.function}' in invoke", operator.pos)
            parameters = binding.statement.parameters or ()
            if not parameters or parameters[0].kusto_type != "table":
                self.fail(f"invoke needs a function whose first parameter is a table: {operator.function}",
                          operator.pos)
            # the pipe input is the first (tabular) parameter; the call's arguments fill the rest
            rest = self._function_env(
                FunctionLet(ast.LetStatement(binding.statement.pos, binding.statement.name, None,
                                             parameters[1:], binding.statement.body), binding.env),
                ast.Call(operator.pos, operator.function, operator.args), env)
            rest.bindings[parameters[0].name] = RelationLet(source)
            body = binding.statement.body
            assert body is not None and body.body is not None
            inner_env = self.bind_lets(body.lets, rest)
            return self.lower_tabular(self.as_tabular(body.body), inner_env)
        self.unsupported(f"the '{operator.name}' operator is not supported", operator.pos)

    def op_getschema(self, source: Relation) -> Relation:
        """The input's columns as rows: ColumnName, ColumnOrdinal, DataType (.NET name), ColumnType."""
        dotnet = {"string": "System.String", "long": "System.Int64", "int": "System.Int32", "real": "System.Double",
                  "bool": "System.SByte", "datetime": "System.DateTime", "timespan": "System.TimeSpan",
                  "dynamic": "System.Object", "guid": "System.Guid"}
        columns = [("ColumnName", "string"), ("ColumnOrdinal", "int"), ("DataType", "string"),
                   ("ColumnType", "string")]
        rows = [exp.Tuple(expressions=[string(name), number(index), string(dotnet.get(kusto_type, "System.Object")),
                                       string(kusto_type)])
                for index, (name, kusto_type) in enumerate(source.columns)]
        alias_name = self.alias()
        values = exp.Values(expressions=rows, alias=exp.TableAlias(
            this=exp.to_identifier(alias_name), columns=[exp.to_identifier(f"c{i}") for i in range(4)]))
        select = exp.select(*[alias(cast(exp.column(f"c{i}", table=alias_name), SQL_TYPES[t]), n)
                              for i, (n, t) in enumerate(columns)], copy=False).from_(values, copy=False)
        return Relation(select, columns)

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

    def op_where(self, source: Relation, operator: ast.Where, env: Environment) -> Relation:
        scope = self.row_scope(source)
        self.in_where = True
        try:
            predicate = self.lower_expr(operator.predicate, scope, env)
        finally:
            self.in_where = False
        if predicate.kusto_type not in ("bool", "dynamic"):
            self.fail(f"where needs a bool predicate, got {predicate.kusto_type}", operator.predicate.pos,
                      "compare the value, e.g. where Column == \"value\"")
        condition = predicate.sql if predicate.kusto_type == "bool" else exp.TryCast(
            this=fn("json_extract_string", predicate.sql, string("$")), to=exp.DataType.build("BOOLEAN"))
        select = self.star_select(source).where(condition, copy=False)
        select = self._with_order(select, source, star=True)
        return Relation(select, list(source.columns), source.ordered, source.source_name)

    def assign(self, assignments: Sequence[ast.Assignment], scope: dict[str, Typed], env: Environment,
               context: str, start_index: int = 1) -> list[tuple[str, Typed]]:
        """Lower assignments in order; later ones see earlier ones (Kusto allows extend a=1, b=a+1)."""
        results: list[tuple[str, Typed]] = []
        counter = itertools.count(start_index)
        for assignment in assignments:
            if assignment.names:
                self.unsupported(f"multi-name assignment (a, b) = ... in {context}", assignment.expr.pos)
            typed = self.lower_expr(assignment.expr, scope, env)
            if isinstance(assignment.expr, ast.Star):
                self.fail(f"'*' is not allowed in {context}", assignment.expr.pos)
            name = assignment.name or self.derive_name(assignment.expr, None)
            if name is None:
                while True:
                    candidate = f"Column{next(counter)}"
                    if candidate not in scope:
                        name = candidate
                        break
            results.append((name, typed))
            scope[name] = typed
        return results

    def derive_name(self, expr: ast.Expr, default: str | None) -> str | None:
        if isinstance(expr, ast.Name):
            return expr.name
        if isinstance(expr, ast.Member):
            inner = self.derive_name(expr.target, None)
            return f"{inner}_{expr.name}" if inner else None
        if isinstance(expr, ast.Index) and isinstance(expr.index, ast.Literal) and \
                isinstance(expr.index.value, str):
            inner = self.derive_name(expr.target, None)
            return f"{inner}_{expr.index.value}" if inner else None
        if isinstance(expr, ast.Call) and expr.name in ("bin", "floor", "bin_at") and expr.args and \
                isinstance(expr.args[0], ast.Name):
            return expr.args[0].name
        return default

    def op_extend(self, source: Relation, operator: ast.Extend, env: Environment) -> Relation:
        scope = self.row_scope(source)
        assigned = self.assign(operator.assignments, scope, env, "extend")
        columns = list(source.columns)
        for name, typed in assigned:
            replaced = False
            for index, (existing, _) in enumerate(columns):
                if existing == name:
                    columns[index] = (name, typed.kusto_type)
                    replaced = True
            if not replaced:
                columns.append((name, typed.kusto_type))
        source_names = set(source.names())
        if not any(name in source_names for name, _ in assigned):
            # only new columns: SELECT *, expr AS name (short SQL, fast to generate)
            new_names = list(dict.fromkeys(name for name, _ in assigned))
            select = self.star_select(source, *[alias(scope[n].sql, n) for n in new_names])
            return Relation(self._with_order(select, source, star=True), columns, source.ordered,
                            source.source_name)
        select = exp.select(*[alias(scope[n].sql, n) for n, _ in columns], copy=False).from_(
            self.subquery(source), copy=False)
        return Relation(self._with_order(select, source), columns, source.ordered, source.source_name)

    def op_project(self, source: Relation, operator: ast.Project, env: Environment) -> Relation:
        scope = self.row_scope(source)
        columns: list[tuple[str, str]] = []
        selections: list[exp.Expr] = []
        for assignment in operator.assignments:
            if assignment.name is None and isinstance(assignment.expr, ast.Name) and \
                    any(c in assignment.expr.name for c in "*") is False and assignment.expr.name not in scope:
                self.unknown_column(assignment.expr.name, assignment.expr.pos, scope, env)
            [(name, typed)] = self.assign([assignment], copy_scope(scope), env, "project", len(columns) + 1)
            if name in [c for c, _ in columns]:
                self.fail(f"column '{name}' is projected twice", assignment.expr.pos,
                          "rename one of them with name = expression")
            columns.append((name, typed.kusto_type))
            selections.append(aliased(typed.sql, name, quoted=True))
        select = exp.select(*selections, copy=False).from_(self.subquery(source), copy=False)
        return Relation(self._with_order(select, source), columns, source.ordered, source.source_name)

    def match_patterns(self, source: Relation, pattern: str, pos: ast.Pos) -> list[str]:
        if "*" in pattern:
            return [n for n in source.names() if fnmatch.fnmatchcase(n, pattern)]
        if pattern not in source.names():
            suggestion = did_you_mean(pattern, source.names())
            self.fail(f"unknown column '{pattern}'", pos, f"did you mean '{suggestion}'?" if suggestion else None)
        return [pattern]

    def op_project_columns(self, source: Relation, operator: ast.ProjectColumns) -> Relation:
        matched: list[str] = []
        for pattern, pos, _ in operator.patterns:
            for name in self.match_patterns(source, pattern, pos):
                if name not in matched:
                    matched.append(name)
        if operator.name == "project-away":
            columns = [c for c in source.columns if c[0] not in matched]
        elif operator.name == "project-keep":
            columns = [c for c in source.columns if c[0] in matched]
        else:  # project-reorder: matched first (in pattern order), then the rest
            directions = [d for _, _, d in operator.patterns if d]
            if directions:
                reverse = directions[0] in ("desc", "granny-desc")
                matched = sorted(matched, reverse=reverse)
            by_name = dict(source.columns)
            columns = [(n, by_name[n]) for n in matched] + [c for c in source.columns if c[0] not in matched]
        select = exp.select(*[exp.column(n, quoted=True) for n, _ in columns], copy=False).from_(self.subquery(source), copy=False)
        return Relation(self._with_order(select, source), columns, source.ordered, source.source_name)

    def op_project_rename(self, source: Relation, operator: ast.ProjectRename) -> Relation:
        renames: dict[str, str] = {}
        for new, old, pos in operator.renames:
            self.match_patterns(source, old, pos)
            renames[old] = new
        columns = [(renames.get(n, n), t) for n, t in source.columns]
        select = exp.select(*[aliased(exp.column(n, quoted=True), renames.get(n, n), quoted=True)
                              for n, _ in source.columns], copy=False).from_(self.subquery(source), copy=False)
        return Relation(self._with_order(select, source), columns, source.ordered, source.source_name)

    def op_sort(self, source: Relation, keys: Sequence[ast.SortKey], count: ast.Expr | None,
                env: Environment) -> Relation:
        scope = self.row_scope(source)
        ordered: list[exp.Ordered] = []
        for key in keys:
            typed = self.lower_expr(key.expr, scope, env)
            nulls_first = key.nulls_first if key.nulls_first is not None else not key.descending
            ordered.append(exp.Ordered(this=typed.sql, desc=key.descending, nulls_first=nulls_first))
        limit: Typed | None = None
        if count is not None:
            limit = self.lower_expr(count, {}, env)
            if limit.kusto_type not in ("long", "int"):
                self.fail("top needs a whole number of rows", count.pos)
        source_subquery = self.subquery(source)
        names = source.names()

        def plain() -> exp.Expr:
            select = exp.select(*[exp.column(n, quoted=True) for n in names], copy=False).from_(
                source_subquery, copy=False).order_by(*ordered, copy=False)
            return select.limit(limit.sql, copy=False) if limit is not None else select

        def with_ordinal() -> exp.Expr:
            window = exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[o.copy() for o in ordered]))
            select = exp.select(*[exp.column(n, quoted=True) for n in names],
                                aliased(window, ORDINAL, quoted=True), copy=False).from_(
                source_subquery, copy=False)
            if limit is not None:
                select = select.order_by(exp.Ordered(this=exp.column(ORDINAL, quoted=True)),
                                         copy=False).limit(limit.sql, copy=False)
            return select

        return Relation(plain(), list(source.columns), False, source.source_name, with_ordinal)

    def op_take(self, source: Relation, operator: ast.Take, env: Environment) -> Relation:
        limit = self.lower_expr(operator.count, {}, env)
        if limit.kusto_type not in ("long", "int"):
            self.fail("take needs a whole number of rows", operator.count.pos)
        select = self._with_order(self.star_select(source), source, star=True).limit(limit.sql, copy=False)
        return Relation(select, list(source.columns), source.ordered, source.source_name)

    def op_distinct(self, source: Relation, operator: ast.Distinct, env: Environment) -> Relation:
        if len(operator.columns) == 1 and isinstance(operator.columns[0], ast.Star):
            select = exp.select(*[exp.column(n, quoted=True) for n in source.names()], copy=False).from_(
                self.subquery(source), copy=False).distinct(copy=False)
            return Relation(select, list(source.columns))
        scope = self.row_scope(source)
        assigned = self.assign([ast.Assignment(None, c) for c in operator.columns], copy_scope(scope), env,
                               "distinct")
        select = exp.select(*[aliased(t.sql, n, quoted=True) for n, t in assigned], copy=False).from_(
            self.subquery(source), copy=False).distinct(copy=False)
        return Relation(select, [(n, t.kusto_type) for n, t in assigned])

    # ---------------------------------------------------------------- summarize
    def op_summarize(self, source: Relation, operator: ast.Summarize, env: Environment) -> Relation:
        scope = self.row_scope(source)
        keys: list[tuple[str, Typed]] = []
        counter = itertools.count(1)
        for assignment in operator.by:
            typed = self.lower_expr(assignment.expr, scope, env)
            name = assignment.name or self.derive_name(assignment.expr, None) or f"Column{next(counter)}"
            keys.append((name, typed))
        inner_selections: list[exp.Expr] = [aliased(t.sql, n, quoted=True) for n, t in keys]
        outer: list[tuple[str, exp.Expr, str]] = [(n, exp.column(n, quoted=True), t.kusto_type)
                                                         for n, t in keys]
        used_names = {n for n, _ in keys}
        hidden = itertools.count(1)
        for assignment in operator.aggregates:
            for name, inner_expr, outer_expr, kusto_type in self.lower_aggregate(
                    assignment, scope, env, used_names, hidden, {n for n, _ in keys}):
                if inner_expr is not None:
                    inner_selections.append(inner_expr)
                outer.append((name, outer_expr, kusto_type))
                used_names.add(name)
        select = exp.select(*inner_selections, copy=False).from_(self.subquery(source), copy=False)
        if keys:
            select = select.group_by(*[t.sql for _, t in keys], copy=False)
        if not keys and not operator.aggregates:
            self.fail("summarize needs an aggregate or a by clause", operator.pos)
        if not operator.aggregates:
            select = select.distinct(copy=False)
        alias = self.alias()
        # min/max/take_any of strings over no rows give null in SQL; Kusto strings are never null
        outer = [(n, e if t != "string" or (n, t) in [(k, kt.kusto_type) for k, kt in keys]
                  else exp.Coalesce(this=e, expressions=[string("")]), t) for n, e, t in outer]
        final = exp.select(*[aliased(e, n, quoted=True) for n, e, _ in outer], copy=False).from_(
            exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(alias))), copy=False)
        return Relation(final, [(n, t) for n, _, t in outer])

    def lower_aggregate(self, assignment: ast.Assignment, scope: dict[str, Typed], env: Environment,
                        used_names: set[str], hidden: Any, key_names: set[str]
                        ) -> list[tuple[str, exp.Expr | None, exp.Expr, str]]:
        """Returns (output name, inner select item or None, outer expression, Kusto type) per output column."""
        call = assignment.expr
        if not isinstance(call, ast.Call) or call.name not in AGGREGATE_FUNCTIONS:
            # an expression over aggregates, e.g. summarize Ratio = 100.0 * countif(x) / count()
            return [self.lower_aggregate_expression(assignment, scope, env, used_names, hidden)]
        spec = AGGREGATE_FUNCTIONS[call.name]
        if spec.status == "unsupported":
            self.unsupported(f"aggregate {call.name}() is not supported: {spec.note}", call.pos)
        if not spec.min_args <= len(call.args) <= spec.max_args:
            self.fail(f"{call.name}() takes {spec.min_args}..{spec.max_args} arguments, got {len(call.args)}",
                      call.pos)
        name_of_first = self.derive_name(call.args[0], None) if call.args else None

        def default_name(prefix: str) -> str:
            if prefix == "countif_" or (prefix == "count_" and not call.args):
                base = prefix
            elif name_of_first:
                base = prefix + name_of_first
            else:
                base = prefix.rstrip("_") + "_"
            final = base
            suffix = 1
            while final in used_names:  # Kusto: set_y, set_y1 ...
                final = f"{base}{suffix}"
                suffix += 1
            return final

        def hidden_name() -> str:
            return f"__agg{next(hidden)}"

        if call.name in ("arg_max", "arg_min", "take_any", "any"):
            return self.lower_arg_extreme(assignment, call, scope, env, used_names, hidden_name, key_names)
        if call.name in ("percentile", "percentiles"):
            value = self.lower_expr(call.args[0], scope, env)
            results: list[tuple[str, exp.Expr | None, exp.Expr, str]] = []
            names = list(assignment.names)
            for index, percent_node in enumerate(call.args[1:]):
                if not isinstance(percent_node, ast.Literal) or not isinstance(percent_node.value, int | float):
                    self.unsupported("percentile() needs a constant percentage", percent_node.pos)
                percent = percent_node.value
                text = f"{percent:g}".replace(".", "_")
                name = names[index] if index < len(names) else (
                    assignment.name if assignment.name and len(call.args) == 2 else
                    f"percentile_{name_of_first or ''}_{text}")
                inner_name = hidden_name()
                aggregate = fn("quantile_disc", value.sql, number(float(percent) / 100.0))
                results.append((name, aliased(aggregate, inner_name, quoted=True),
                                exp.column(inner_name, quoted=True), value.kusto_type))
            return results
        typed = self.lower_single_aggregate(call, scope, env)
        name = assignment.name or default_name(spec.column_prefix)
        if assignment.names:
            name = assignment.names[0]
        inner_name = hidden_name()
        return [(name, aliased(typed.sql, inner_name, quoted=True), exp.column(inner_name, quoted=True),
                 typed.kusto_type)]

    def lower_aggregate_expression(self, assignment: ast.Assignment, scope: dict[str, Typed], env: Environment,
                                   used_names: set[str], hidden: Any
                                   ) -> tuple[str, exp.Expr | None, exp.Expr, str]:
        aggregate_scope = _AggregateScope(self, scope, env)
        typed = self.lower_expr(assignment.expr, scope, env, aggregates=aggregate_scope)
        if not aggregate_scope.used:
            self.fail("summarize needs an aggregate function here, e.g. count() or dcount(Column)",
                      assignment.expr.pos)
        name = assignment.name or f"Column{len(used_names) + 1}"
        inner_name = f"__agg{next(hidden)}"
        return (name, aliased(typed.sql, inner_name, quoted=True), exp.column(inner_name, quoted=True),
                typed.kusto_type)

    def lower_single_aggregate(self, call: ast.Call, scope: dict[str, Typed], env: Environment) -> Typed:
        args = [self.lower_expr(a, scope, env) if not isinstance(a, ast.Star) else Typed(exp.Star(), "long")
                for a in call.args]
        name = call.name

        def when(predicate: Typed, value: exp.Expr) -> exp.Expr:
            return exp.Case(ifs=[exp.If(this=predicate.sql, true=value)])

        if name == "count":
            # Kusto: count(expr) counts rows, nulls included (summarize-operator docs, "count(y)")
            return Typed(cast(exp.Count(this=exp.Star()), "BIGINT"), "long")
        if name == "countif":
            self.require_bool(args[0], call.args[0])
            return Typed(exp.Coalesce(this=cast(exp.Sum(this=exp.Case(
                ifs=[exp.If(this=args[0].sql, true=number(1))], default=number(0))), "BIGINT"),
                expressions=[number(0)]), "long")
        if name in ("dcount", "count_distinct"):
            return Typed(cast(exp.Count(this=exp.Distinct(expressions=[args[0].sql])), "BIGINT"), "long")
        if name == "dcountif":
            return Typed(cast(exp.Count(this=exp.Distinct(expressions=[when(args[1], args[0].sql)])), "BIGINT"),
                         "long")
        if name in ("sum", "sumif"):
            value = args[0]
            inner = value.sql if name == "sum" else when(args[1], value.sql)
            if value.kusto_type == "timespan":
                total = exp.Sum(this=cast(exp.Mul(this=fn("epoch", inner), expression=number(1_000_000)),
                                              "BIGINT"))
                return Typed(interval_micros(total), "timespan")
            if value.kusto_type not in NUMERIC_TYPES:
                self.fail(f"{name}() needs a number, got {value.kusto_type}", call.args[0].pos)
            result_type = "real" if value.kusto_type == "real" else "long"
            return Typed(cast(exp.Sum(this=inner), SQL_TYPES[result_type]), result_type)
        if name in ("avg", "avgif"):
            inner = args[0].sql if name == "avg" else when(args[1], args[0].sql)
            if args[0].kusto_type == "timespan":
                average = exp.Avg(this=exp.Mul(this=fn("epoch", inner), expression=number(1_000_000)))
                return Typed(interval_micros(average), "timespan")
            return Typed(exp.Avg(this=cast(inner, "DOUBLE")), "real")
        if name in ("min", "max", "minif", "maxif"):
            inner = args[0].sql if len(args) == 1 else when(args[1], args[0].sql)
            cls = exp.Min if name.startswith("min") else exp.Max
            return Typed(cls(this=inner), args[0].kusto_type)
        if name in ("stdev", "variance", "stdevp", "variancep"):
            sql_name = {"stdev": "stddev_samp", "variance": "var_samp", "stdevp": "stddev_pop",
                        "variancep": "var_pop"}[name]
            return Typed(fn(sql_name, cast(args[0].sql, "DOUBLE")), "real")
        if name in ("make_set", "make_list", "make_set_if", "make_list_if"):
            value = args[0]
            element = value.sql
            if value.kusto_type == "datetime":
                element = as_string(value)
            predicate = args[1] if name.endswith("_if") else None
            limit_arg = (call.args[2] if len(call.args) > 2 else None) if predicate else \
                (call.args[1] if len(call.args) > 1 else None)
            if predicate is not None:
                element = when(predicate, element)
            distinct = name.startswith("make_set")
            # make_set: distinct values, sorted (Kusto leaves the order unspecified; sorted is reproducible)
            items: exp.Expr = exp.ArrayAgg(this=exp.Distinct(expressions=[element]) if distinct and
                                           value.kusto_type != "dynamic" else element)
            items = fn("list_filter", items, exp.Lambda(this=exp.not_(exp.Is(
                this=exp.column("x"), expression=exp.null())), expressions=[exp.to_identifier("x")]))
            if distinct and value.kusto_type != "dynamic":
                items = fn("list_sort", items)
            if value.kusto_type == "dynamic":
                # Kusto flattens arrays given to make_set/make_list
                items = fn("flatten", fn("list_transform", items, exp.Lambda(
                    this=exp.Case(ifs=[exp.If(this=exp.EQ(this=fn("json_type", exp.column("x")),
                                                         expression=string("ARRAY")),
                                              true=fn("from_json", exp.column("x"), string('["json"]')))],
                                  default=fn("list_value", exp.column("x"))),
                    expressions=[exp.to_identifier("x")])))
                if distinct:
                    items = fn("list_sort", fn("list_distinct", items))
            if limit_arg is not None:
                limit_value = self.lower_expr(limit_arg, {}, env)
                items = fn("list_slice", items, number(1), limit_value.sql)
            return Typed(exp.Coalesce(this=fn("to_json", items), expressions=[
                cast(string("[]"), "JSON")]), "dynamic")
        if name == "make_bag":
            bags = exp.ArrayAgg(this=args[0].sql)
            merged = fn("list_reduce", bags, exp.Lambda(this=fn("json_merge_patch", exp.column("a"),
                                                                 exp.column("b")),
                                                         expressions=[exp.to_identifier("a"),
                                                                      exp.to_identifier("b")]))
            return Typed(exp.Coalesce(this=merged, expressions=[cast(string("{}"), "JSON")]), "dynamic")
        self.unsupported(f"aggregate {name}() is not supported", call.pos)

    def lower_arg_extreme(self, assignment: ast.Assignment, call: ast.Call, scope: dict[str, Typed],
                          env: Environment, used_names: set[str], hidden_name: Any, key_names: set[str]
                          ) -> list[tuple[str, exp.Expr | None, exp.Expr, str]]:
        is_any = call.name in ("take_any", "any")
        results: list[tuple[str, exp.Expr | None, exp.Expr, str]] = []
        returned: list[tuple[str, Typed]] = []
        explicit_names = list(assignment.names)
        measure: Typed | None = None
        value_args = call.args if is_any else call.args[1:]
        if not is_any:
            measure = self.lower_expr(call.args[0], scope, env)
            measure_name = self.derive_name(call.args[0], None)
            name = explicit_names.pop(0) if explicit_names else (
                assignment.name or measure_name or
                ("max_" if call.name == "arg_max" else "min_") + "expr")
            returned.append((name, measure))
        for argument in value_args:
            if isinstance(argument, ast.Star):
                for column, typed in scope.items():
                    if column in key_names or any(column == n for n, _ in returned):
                        continue
                    returned.append((column, typed))
                continue
            typed = self.lower_expr(argument, scope, env)
            name = explicit_names.pop(0) if explicit_names else (
                self.derive_name(argument, None) or f"Column{len(used_names) + len(returned) + 1}")
            if is_any and not argument_is_star(call) and len(call.args) == 1 and not assignment.name:
                name = self.derive_name(argument, None) or "any_"
            if is_any and assignment.name and len(call.args) == 1:
                name = assignment.name
            returned.append((name, typed))
        struct_name = hidden_name()
        fields = [exp.PropertyEQ(this=exp.to_identifier(f"f{i}"), expression=t.sql) for i, (_, t) in
                  enumerate(returned)]
        struct = exp.Struct(expressions=fields)
        if is_any:
            aggregate: exp.Expr = exp.AnyValue(this=struct)
        else:
            assert measure is not None
            extreme: type[exp.AggFunc] = exp.ArgMax if call.name == "arg_max" else exp.ArgMin
            # Kusto still returns a row for a group whose measure is always null
            aggregate = exp.Coalesce(this=extreme(this=struct, expression=measure.sql),
                                     expressions=[exp.AnyValue(this=struct.copy())])
        seen = set(used_names)
        for index, (name, typed) in enumerate(returned):
            final_name = name
            suffix = 1
            while final_name in seen:
                final_name = f"{name}{suffix}"
                suffix += 1
            seen.add(final_name)
            field_ref = exp.Dot(this=exp.column(struct_name, quoted=True), expression=exp.to_identifier(f"f{index}"))
            results.append((final_name, aliased(aggregate, struct_name, quoted=True) if index == 0 else None,
                            field_ref, typed.kusto_type))
        return results

    def require_bool(self, typed: Typed, node: ast.Expr) -> None:
        if typed.kusto_type != "bool":
            self.fail(f"expected a bool predicate, got {typed.kusto_type}", node.pos)

    # ---------------------------------------------------------------- join / lookup / union
    def op_join(self, left: Relation, operator: ast.Join, env: Environment) -> Relation:
        right = self.lower_tabular(operator.right, env)
        left_alias, right_alias = self.alias(), self.alias()
        pairs: list[tuple[str, str, ast.Pos]] = []
        for condition in operator.on:
            if isinstance(condition, ast.Name):
                pairs.append((condition.name, condition.name, condition.pos))
            elif isinstance(condition, ast.Binary) and condition.op == "==":
                sides = {}
                for side in (condition.left, condition.right):
                    if isinstance(side, ast.Member) and isinstance(side.target, ast.Name) and \
                            side.target.name in ("$left", "$right"):
                        sides[side.target.name] = side.name
                    else:
                        self.unsupported("join conditions must be $left.Column == $right.Column", side.pos)
                if set(sides) != {"$left", "$right"}:
                    self.fail("a join condition needs one $left and one $right column", condition.pos)
                pairs.append((sides["$left"], sides["$right"], condition.pos))
            else:
                self.unsupported("join conditions must be column names or $left.A == $right.B", condition.pos)
        for left_name, right_name, pos in pairs:
            if left_name not in left.names():
                suggestion = did_you_mean(left_name, left.names())
                self.fail(f"unknown column '{left_name}' on the left side of the {operator.name}", pos,
                          f"did you mean '{suggestion}'?" if suggestion else None)
            if right_name not in right.names():
                suggestion = did_you_mean(right_name, right.names())
                self.fail(f"unknown column '{right_name}' on the right side of the {operator.name}", pos,
                          f"did you mean '{suggestion}'?" if suggestion else None)
        kind = operator.kind
        left_source = left
        if kind == "innerunique":
            # Kusto's default join: one left row per key, then an inner join
            partition = [exp.column(ln, quoted=True) for ln, _, _ in pairs]
            window = exp.Window(this=exp.RowNumber(), partition_by=partition)
            ranked = exp.select(*[exp.column(n, quoted=True) for n in left.names()],
                                aliased(window, "__kql_rn", quoted=True), copy=False).from_(self.subquery(left), copy=False)
            deduped = exp.select(*[exp.column(n, quoted=True) for n in left.names()], copy=False).from_(
                exp.Subquery(this=ranked, alias=exp.TableAlias(this=exp.to_identifier(self.alias()))), copy=False).where(
                exp.EQ(this=exp.column("__kql_rn", quoted=True), expression=number(1)), copy=False)
            left_source = Relation(deduped, list(left.columns))
            kind = "inner"
        join_condition: exp.Expr | None = None
        for left_name, right_name, _ in pairs:
            equality = exp.EQ(this=exp.column(left_name, table=left_alias, quoted=True),
                              expression=exp.column(right_name, table=right_alias, quoted=True))
            join_condition = equality if join_condition is None else exp.and_(join_condition, equality, copy=False)
        assert join_condition is not None
        left_sub = self.subquery(left_source, left_alias)
        right_sub = self.subquery(right, right_alias)
        if kind in ("leftsemi", "leftanti", "rightsemi", "rightanti"):
            keep, keep_alias, other, other_sub = (left_source, left_alias, right, right_sub) \
                if kind.startswith("left") else (right, right_alias, left_source, left_sub)
            exists = exp.Exists(this=exp.select(number(1), copy=False).from_(other_sub, copy=False).where(join_condition, copy=False))
            predicate = exists if kind.endswith("semi") else exp.not_(exists)
            keep_sub = left_sub if keep is left_source else right_sub
            select = exp.select(*[exp.column(n, table=keep_alias, quoted=True) for n in keep.names()], copy=False).from_(
                keep_sub, copy=False).where(predicate, copy=False)
            del other
            return Relation(select, list(keep.columns))
        selections: list[exp.Expr] = [aliased(exp.column(n, table=left_alias, quoted=True), n, quoted=True)
                                            for n in left.names()]
        columns = list(left.columns)
        taken = set(left.names())
        lookup_keys = {rn for _, rn, _ in pairs} if operator.is_lookup else set()  # lookup drops right keys
        right_nullable = kind in ("leftouter", "fullouter")
        for name, kusto_type in right.columns:
            if name in lookup_keys:
                continue
            final = name
            suffix = 1
            while final in taken:
                final = f"{name}{suffix}"
                suffix += 1
            taken.add(final)
            value: exp.Expr = exp.column(name, table=right_alias, quoted=True)
            if right_nullable and kusto_type in ("string", "guid"):
                value = exp.Coalesce(this=value, expressions=[string("")])  # strings are never null in Kusto
            selections.append(aliased(value, final, quoted=True))
            columns.append((final, kusto_type))
        if kind in ("rightouter", "fullouter"):
            for index, (name, kusto_type) in enumerate(left.columns):
                if kusto_type in ("string", "guid"):
                    selections[index] = aliased(exp.Coalesce(
                        this=exp.column(name, table=left_alias, quoted=True), expressions=[string("")]),
                        name, quoted=True)
        join_kind = {"inner": ("", "INNER"), "leftouter": ("LEFT", "OUTER"), "rightouter": ("RIGHT", "OUTER"),
                     "fullouter": ("FULL", "OUTER")}[kind]
        join = exp.Join(this=right_sub, on=join_condition, side=join_kind[0] or None, kind=join_kind[1])
        select = exp.select(*selections, copy=False).from_(left_sub, copy=False)
        select.append("joins", join)
        return Relation(select, columns)

    def lower_union(self, first: Relation | None, sources: Sequence[ast.TabularExpr], kind: str,
                    withsource: str | None, isfuzzy: bool, env: Environment, pos: ast.Pos) -> Relation:
        legs: list[Relation] = [] if first is None else [first]
        for index, source in enumerate(sources):
            try:
                relation = self.lower_tabular(source, env)
            except KqlBindError:
                if isfuzzy:
                    continue
                raise
            if relation.source_name is None:
                relation.source_name = source.name if isinstance(source, ast.TableRef) else \
                    f"union_arg{index + (1 if first is not None else 0)}"
            legs.append(relation)
        if not legs:
            self.fail("union has no tables to read (all legs failed with isfuzzy=true)", pos)
        # Kusto: a column name with different types in different legs becomes name_type per type
        types_by_name: dict[str, list[str]] = {}
        for leg in legs:
            for name, kusto_type in leg.columns:
                seen_types = types_by_name.setdefault(name, [])
                if kusto_type not in seen_types:
                    seen_types.append(kusto_type)
        conflicting = {name for name, seen in types_by_name.items() if len(seen) > 1}
        plain_names = {name for name in types_by_name if name not in conflicting}
        final_name: dict[tuple[str, str], str] = {}
        taken = set(plain_names)
        names: list[str] = []
        types: dict[str, str] = {}
        for leg in legs:
            for name, kusto_type in leg.columns:
                key = (name, kusto_type)
                if key in final_name:
                    continue
                if name in conflicting:
                    base = f"{name}_{kusto_type}"
                    candidate, suffix = base, 1
                    while candidate in taken:
                        candidate, suffix = f"{base}{suffix}", suffix + 1
                    taken.add(candidate)
                else:
                    candidate = name
                final_name[key] = candidate
                names.append(candidate)
                types[candidate] = kusto_type
        if kind == "inner":
            names = [n for n in names if all(n in {final_name[(c, t)] for c, t in leg.columns} for leg in legs)]
        selects: list[exp.Select] = []
        for index, leg in enumerate(legs):
            provided = {final_name[(c, t)]: c for c, t in leg.columns}
            items: list[exp.Expr] = []
            if withsource:
                items.append(aliased(string(leg.source_name or f"union_arg{index}"), withsource, quoted=True))
            for name in names:
                if name in provided:
                    items.append(aliased(exp.column(provided[name], quoted=True), name, quoted=True))
                else:
                    missing = string("") if types[name] in ("string", "guid") else literal(None, types[name])
                    items.append(aliased(missing, name, quoted=True))  # strings are never null in Kusto
            selects.append(exp.select(*items, copy=False).from_(self.subquery(leg), copy=False))
        combined: exp.Expr = selects[0]
        for other in selects[1:]:
            combined = exp.union(combined, other, distinct=False, copy=False)
        columns = ([(withsource, "string")] if withsource else []) + [(n, types[n]) for n in names]
        wrapper = exp.select(*[exp.column(n, quoted=True) for n, _ in columns], copy=False).from_(
            exp.Subquery(this=combined, alias=exp.TableAlias(this=exp.to_identifier(self.alias()))), copy=False)
        return Relation(wrapper, columns)

    # ---------------------------------------------------------------- mv-expand / parse
    def op_mv_expand(self, source: Relation, operator: ast.MvExpand, env: Environment) -> Relation:
        scope = self.row_scope(source)
        expanded: dict[str, tuple[exp.Expr, str]] = {}
        order: list[str] = []
        for name, expr, to_type_name in operator.columns:
            typed = self.lower_expr(expr, scope, env)
            column_name = name or self.derive_name(expr, None)
            if column_name is None:
                self.fail("mv-expand needs a column or name = expression", expr.pos)
            if typed.kusto_type != "dynamic":
                self.fail(f"mv-expand needs a dynamic (array) value, got {typed.kusto_type}", expr.pos,
                          "convert with parse_json() or todynamic()")
            value = typed.sql
            items = exp.Case(ifs=[
                exp.If(this=exp.EQ(this=fn("json_type", value), expression=string("ARRAY")),
                       true=fn("from_json", value, string('["json"]'))),
                exp.If(this=exp.EQ(this=fn("json_type", value), expression=string("OBJECT")),
                       true=fn("list_transform", fn("json_keys", value), exp.Lambda(
                           this=fn("json_array" if operator.bag_as_array else "json_object", exp.column("k"),
                                   fn("json_extract", value, exp.DPipe(
                               this=exp.DPipe(this=string('$."'), expression=exp.column("k")),
                               expression=string('"')))), expressions=[exp.to_identifier("k")]))),
            ], default=fn("list_value", value))
            result_type = to_type_name or "dynamic"
            expanded[column_name] = (items, result_type)
            order.append(column_name)
        alias = self.alias()
        inner_items: list[exp.Expr] = []
        for name in source.names():
            if name not in expanded:
                inner_items.append(exp.column(name, quoted=True))
        for index, name in enumerate(order):
            inner_items.append(aliased(exp.Unnest(expressions=[expanded[name][0]]), f"__mv{index}", quoted=True))
        if operator.item_index:
            first_items = expanded[order[0]][0]
            inner_items.append(aliased(exp.Sub(this=exp.Unnest(expressions=[
                fn("generate_series", number(1), fn("len", first_items))]), expression=number(1)),
                "__mv_index", quoted=True))
        if source.ordered:
            inner_items.append(exp.column(ORDINAL, quoted=True))
        inner = exp.select(*inner_items, copy=False).from_(self.subquery(source), copy=False)
        outer_items: list[exp.Expr] = []
        columns: list[tuple[str, str]] = []
        mv_index = {name: index for index, name in enumerate(order)}
        for name, kusto_type in source.columns:
            if name in expanded:
                reference: exp.Expr = exp.column(f"__mv{mv_index[name]}", quoted=True)
                result_type = expanded[name][1]
                if result_type != "dynamic":
                    reference = to_type(Typed(cast(reference, "JSON"), "dynamic"), result_type)
                outer_items.append(aliased(reference, name, quoted=True))
                columns.append((name, result_type))
            else:
                outer_items.append(exp.column(name, quoted=True))
                columns.append((name, kusto_type))
        for name in order:
            if name not in source.names():
                reference = exp.column(f"__mv{mv_index[name]}", quoted=True)
                result_type = expanded[name][1]
                if result_type != "dynamic":
                    reference = to_type(Typed(cast(reference, "JSON"), "dynamic"), result_type)
                outer_items.append(aliased(reference, name, quoted=True))
                columns.append((name, result_type))
        if operator.item_index:
            outer_items.append(aliased(exp.column("__mv_index", quoted=True), operator.item_index, quoted=True))
            columns.append((operator.item_index, "long"))
        outer = exp.select(*outer_items, copy=False).from_(exp.Subquery(this=inner, alias=exp.TableAlias(
            this=exp.to_identifier(alias))), copy=False)
        if operator.limit is not None:
            limit = self.lower_expr(operator.limit, {}, env)
            self.unsupported("mv-expand limit is not supported", operator.limit.pos) if limit.kusto_type not in (
                "long", "int") else None
            outer = outer.where(exp.LT(this=exp.column("__mv_index", quoted=True), expression=limit.sql), copy=False) \
                if operator.item_index else outer
        if source.ordered:
            outer = self._with_order(outer, source)
        return Relation(outer, columns, source.ordered, source.source_name)

    def op_parse(self, source: Relation, operator: ast.Parse, env: Environment) -> Relation:
        scope = self.row_scope(source)
        text = as_string(self.lower_expr(operator.source, scope, env))
        regex_parts: list[str] = []
        targets: list[tuple[str, str, int]] = []  # (column, type, capture group number)
        elements = list(operator.pattern)
        for index, element in enumerate(elements):
            is_last = index == len(elements) - 1
            if isinstance(element, tuple):
                name, kusto_type = element
                number_regex = r"-?\d+" if kusto_type in ("long", "int") else \
                    r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?" if kusto_type == "real" else None
                if number_regex and operator.kind == "relaxed":
                    group = f"{number_regex}|.*?"  # relaxed: a bad number gives null, the rest still parses
                elif number_regex:
                    group = number_regex
                elif operator.kind == "regex":
                    group = ".*"  # Kusto's regex mode: a string column is greedy
                else:
                    group = ".*" if is_last else ".*?"
                try:
                    group_number = re.compile("".join(regex_parts)).groups + 1
                except re.error as error:
                    self.fail(f"invalid regular expression in {operator.name}: {error}", operator.pos)
                regex_parts.append(f"({group})")
                targets.append((name, kusto_type, group_number))
            elif element == "*":
                regex_parts.append(".*" if is_last else ".*?")
            else:
                regex_parts.append(str(element) if operator.kind == "regex" else re.escape(str(element)))
        flags = ""
        if operator.kind == "regex" and operator.flags:
            if "U" in operator.flags:
                self.unsupported("parse flags=U (ungreedy) is not supported", operator.pos)
            flags = "".join(f for f in operator.flags.lower() if f in "ims")
        elif operator.kind != "regex":
            flags = "s"  # simple and relaxed patterns match across line breaks
        pattern = (f"(?{flags})" if flags else "") + "^" + "".join(regex_parts)
        try:
            re.compile(pattern)
        except re.error as error:
            self.fail(f"invalid parse pattern: {error}", operator.pos)
        matched: exp.Expr = exp.RegexpLike(this=text, expression=string(pattern))
        new_scope = copy_scope(scope)
        typed_extracts: list[exp.Expr] = []
        for name, kusto_type, group_number in targets:
            extracted: exp.Expr = fn("regexp_extract", text, string(pattern), number(group_number))
            if kusto_type != "string":
                converted = to_type(Typed(extracted, "string"), kusto_type)
                typed_extracts.append(converted.copy())
                extracted = exp.Case(ifs=[exp.If(this=matched.copy(), true=converted)])
            new_scope[name] = Typed(extracted, kusto_type)
        if operator.where:
            # parse-where keeps a row only when the pattern matched and every typed value converted
            for typed_extract in typed_extracts:
                matched = exp.and_(matched, exp.not_(exp.Is(this=typed_extract, expression=exp.null())), copy=False)
        targets_plain = [(n, t) for n, t, _ in targets]
        columns = list(source.columns)
        for name, kusto_type in targets_plain:
            if name in [c for c, _ in columns]:
                columns = [(c, kusto_type if c == name else t) for c, t in columns]
            else:
                columns.append((name, kusto_type))
        select = exp.select(*[aliased(new_scope[n].sql, n, quoted=True) for n, _ in columns], copy=False).from_(
            self.subquery(source), copy=False)
        if operator.where:
            select = select.where(matched, copy=False)
        return Relation(self._with_order(select, source), columns, source.ordered, source.source_name)

    # ---------------------------------------------------------------- scalar expressions
    def unknown_column(self, name: str, pos: ast.Pos, scope: Mapping[str, Typed], env: Environment) -> NoReturn:
        candidates = list(scope) + [n for n, b in env.bindings.items() if isinstance(b, ScalarLet)]
        suggestion = did_you_mean(name, candidates)
        if name in self.tables or isinstance(env.bindings.get(name), TabularLet):
            self.fail(f"'{name}' is a table, not a column or scalar", pos,
                      "use toscalar(...) or a join to bring its values in")
        self.fail(f"unknown column or variable '{name}'", pos,
                  f"did you mean '{suggestion}'?" if suggestion else "check the column names with `| take 1`")

    def lower_expr(self, node: ast.Expr, scope: Mapping[str, Typed], env: Environment,
                   aggregates: _AggregateScope | None = None) -> Typed:
        self.depth += 1
        if self.depth > 400:
            self.fail("expression is nested too deeply", node.pos)
        try:
            return self._lower_expr(node, scope, env, aggregates)
        finally:
            self.depth -= 1

    def _lower_expr(self, node: ast.Expr, scope: Mapping[str, Typed], env: Environment,
                    aggregates: _AggregateScope | None) -> Typed:
        def sub(child: ast.Expr) -> Typed:
            return self.lower_expr(child, scope, env, aggregates)

        if isinstance(node, ast.Literal):
            return Typed(literal(node.value, node.kusto_type), "string" if node.kusto_type == "guid"
                         else node.kusto_type)
        if isinstance(node, ast.Name):
            if node.name in scope:
                return scope[node.name]
            binding = env.bindings.get(node.name)
            if isinstance(binding, ScalarLet):
                return binding.value
            if isinstance(binding, FunctionLet) and not binding.statement.parameters:
                return self.lower_expr(ast.Call(node.pos, node.name, ()), scope, env, aggregates)
            self.unknown_column(node.name, node.pos, scope, env)
        if isinstance(node, ast.Star):
            self.fail("'*' is not allowed here", node.pos)
        if isinstance(node, ast.Member | ast.Index):
            return self.lower_access(node, scope, env, aggregates)
        if isinstance(node, ast.Unary):
            operand = sub(node.operand)
            if node.op == "not":
                return Typed(exp.not_(self.as_bool(operand, node.operand)), "bool")
            if operand.kusto_type not in (*NUMERIC_TYPES, "timespan"):
                self.fail(f"cannot negate a {operand.kusto_type} value", node.pos)
            return Typed(exp.Neg(this=exp.Paren(this=operand.sql)) if node.op == "-" else operand.sql,
                         operand.kusto_type)
        if isinstance(node, ast.Binary):
            return self.lower_binary(node, sub)
        if isinstance(node, ast.Between):
            value, low, high = sub(node.operand), sub(node.low), sub(node.high)
            if value.kusto_type == "datetime" and high.kusto_type == "timespan":
                high = Typed(exp.Add(this=low.sql, expression=high.sql), "datetime")
            self.check_comparable(value, low, node.pos)
            condition = exp.Between(this=value.sql, low=low.sql, high=high.sql)
            return Typed(exp.not_(exp.Paren(this=condition)) if node.negated else condition, "bool")
        if isinstance(node, ast.InList):
            return self.lower_in(node, scope, env, aggregates)
        if isinstance(node, ast.Call):
            return self.lower_call(node, scope, env, aggregates)
        if isinstance(node, ast.TabularArg):
            self.fail("a tabular expression is not allowed here", node.pos,
                      "use toscalar(...) to turn a one-row result into a value")
        self.unsupported(f"unsupported expression {type(node).__name__}", node.pos)

    def as_bool(self, value: Typed, node: ast.Expr) -> exp.Expr:
        if value.kusto_type == "bool":
            return value.sql
        if value.kusto_type == "dynamic":
            return exp.TryCast(this=fn("json_extract_string", value.sql, string("$")),
                               to=exp.DataType.build("BOOLEAN"))
        self.fail(f"expected a bool value, got {value.kusto_type}", node.pos)

    def lower_access(self, node: ast.Member | ast.Index, scope: Mapping[str, Typed], env: Environment,
                     aggregates: _AggregateScope | None) -> Typed:
        # collect the whole access chain so d.a.b[0] becomes one json_extract(d, '$."a"."b"[0]')
        chain: list[ast.Member | ast.Index] = []
        target: ast.Expr = node
        while isinstance(target, ast.Member | ast.Index):
            chain.append(target)
            target = target.target
        chain.reverse()
        if isinstance(target, ast.Name) and target.name in ("$left", "$right"):
            self.fail(f"{target.name} is only allowed in join conditions", target.pos)
        base = self.lower_expr(target, scope, env, aggregates)
        if base.kusto_type != "dynamic":
            first = chain[0]
            if isinstance(first, ast.Member) and isinstance(target, ast.Name):
                self.fail(f"'{target.name}' is a {base.kusto_type} column and has no property '{first.name}'",
                          first.pos, "parse it first with parse_json() or todynamic()")
            self.fail(f"cannot index a {base.kusto_type} value", first.pos, "convert it with parse_json()")
        path = "$"
        dynamic_parts: list[exp.Expr] = []
        for access in chain:
            if isinstance(access, ast.Member):
                path += '."' + access.name.replace('"', '\\"') + '"'
                continue
            index = access.index
            if isinstance(index, ast.Literal) and isinstance(index.value, str):
                path += '."' + index.value.replace('"', '\\"') + '"'
            elif isinstance(index, ast.Literal) and isinstance(index.value, int):
                path += f"[{index.value}]" if index.value >= 0 else f"[#{index.value}]"
            else:
                index_value = self.lower_expr(index, scope, env, aggregates)
                if index_value.kusto_type in ("long", "int"):
                    dynamic_parts.append(exp.DPipe(this=exp.DPipe(this=string(path + "["), expression=cast(
                        index_value.sql, "VARCHAR")), expression=string("]")))
                else:
                    dynamic_parts.append(exp.DPipe(this=exp.DPipe(this=string(path + '."'), expression=as_string(
                        index_value)), expression=string('"')))
                path = ""
        if dynamic_parts:
            full_path: exp.Expr = dynamic_parts[-1]
            if path:
                full_path = exp.DPipe(this=full_path, expression=string(path))
            if len(dynamic_parts) > 1:
                self.unsupported("more than one computed index in one access chain", node.pos)
            return Typed(fn("json_extract", base.sql, full_path), "dynamic")
        return Typed(fn("json_extract", base.sql, string(path)), "dynamic")

    def check_comparable(self, left: Typed, right: Typed, pos: ast.Pos) -> None:
        lt, rt = left.kusto_type, right.kusto_type
        if lt == rt or "dynamic" in (lt, rt):
            return
        if lt in NUMERIC_TYPES and rt in NUMERIC_TYPES:
            return
        if {lt, rt} <= {"string", "guid"}:
            return
        if self.is_null(left) or self.is_null(right):
            return
        self.fail(f"cannot compare a {lt} value with a {rt} value", pos,
                  "convert one side, e.g. tostring(...), tolong(...) or todatetime(...)")

    @staticmethod
    def is_null(value: Typed) -> bool:
        return isinstance(value.sql, exp.Null) or (isinstance(value.sql, exp.Cast) and isinstance(value.sql.this,
                                                                                                   exp.Null))

    def align_dynamic(self, left: Typed, right: Typed) -> tuple[Typed, Typed]:
        """A dynamic value compared with a typed one is converted to that type (Kusto compares values)."""
        if left.kusto_type == "dynamic" and right.kusto_type != "dynamic":
            left = Typed(to_type(left, right.kusto_type), right.kusto_type)
        elif right.kusto_type == "dynamic" and left.kusto_type != "dynamic":
            right = Typed(to_type(right, left.kusto_type), left.kusto_type)
        return left, right

    def lower_binary(self, node: ast.Binary, sub: Any) -> Typed:
        op = node.op
        if op in ("and", "or"):
            # a chain a or b or c ... is flattened and rebuilt balanced: generated rules OR hundreds of terms,
            # and a left-deep tree that deep would exhaust the Python stack in the SQL generator
            operands: list[ast.Expr] = []
            pending: list[ast.Expr] = [node]
            while pending:
                current = pending.pop()
                if isinstance(current, ast.Binary) and current.op == op:
                    pending.extend((current.right, current.left))
                else:
                    operands.append(current)
            lowered = [self.as_bool(sub(operand), operand) for operand in operands]
            connected: exp.Expr = balanced(lowered, exp.And if op == "and" else exp.Or)
            if not self.in_where:
                connected = exp.Coalesce(this=exp.Paren(this=connected), expressions=[exp.false()])
            return Typed(connected, "bool")
        left = sub(node.left)
        lowered_op = op.lower()
        string_ops = {
            "has", "!has", "has_cs", "!has_cs", "hasprefix", "!hasprefix", "hasprefix_cs", "!hasprefix_cs",
            "hassuffix", "!hassuffix", "hassuffix_cs", "!hassuffix_cs", "contains", "!contains", "contains_cs",
            "!contains_cs", "startswith", "!startswith", "startswith_cs", "!startswith_cs", "endswith",
            "!endswith", "endswith_cs", "!endswith_cs"}
        if lowered_op in string_ops:
            negated = lowered_op.startswith("!")
            base = lowered_op.lstrip("!")
            case_sensitive = base.endswith("_cs")
            base = base.removesuffix("_cs")
            haystack = as_string(left)
            if base in ("has", "hasprefix", "hassuffix"):
                needle = self.constant_string(node.right, sub)
                result = lower_term_match(haystack, needle, prefix=base == "hasprefix", suffix=base == "hassuffix",
                                          case_sensitive=case_sensitive)
            else:
                right = sub(node.right)
                needle_sql = as_string(right)
                if base == "contains":
                    result = contains(haystack, needle_sql, case_sensitive)
                else:
                    edge: type[exp.Func] = exp.StartsWith if base == "startswith" else exp.EndsWith
                    if case_sensitive:
                        result = edge(this=haystack, expression=needle_sql)
                    else:
                        result = edge(this=exp.Lower(this=haystack), expression=exp.Lower(this=needle_sql))
            return Typed(exp.not_(exp.Paren(this=result)) if negated else result, "bool")
        right = sub(node.right)
        if op == "matches regex":
            pattern = right.sql
            if isinstance(node.right, ast.Literal) and isinstance(node.right.value, str):
                try:
                    re.compile(node.right.value)
                except re.error as error:
                    self.fail(f"invalid regular expression: {error}", node.right.pos)
            return Typed(exp.RegexpLike(this=as_string(left), expression=pattern), "bool")
        if op in ("=~", "!~"):
            equal = exp.EQ(this=exp.Lower(this=as_string(left)), expression=exp.Lower(this=as_string(right)))
            return Typed(equal if op == "=~" else exp.not_(exp.Paren(this=equal)), "bool")
        if op in ("==", "!=", "<", "<=", ">", ">="):
            left, right = self.align_dynamic(left, right)
            self.check_comparable(left, right, node.pos)
            comparison: type[exp.Binary] = {"==": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT,
                                             ">=": exp.GTE}[op]
            nullable = left.kusto_type not in ("string", "guid") or right.kusto_type not in ("string", "guid")
            left_sql, right_sql = left.sql, right.sql
            if left.kusto_type in ("string", "guid") and not self.is_null(left):
                left_sql = as_string(left)
            if right.kusto_type in ("string", "guid") and not self.is_null(right):
                right_sql = as_string(right)
            compared: exp.Expr = comparison(this=left_sql, expression=right_sql)
            if nullable and not self.in_where:
                # Kusto: a comparison with a null operand is false, not null (logical-operators docs)
                compared = exp.Coalesce(this=compared, expressions=[exp.false()])
            return Typed(compared, "bool")
        if op in ("+", "-", "*", "/", "%"):
            return self.lower_arithmetic(node, left, right)
        self.unsupported(f"operator '{op}' is not supported", node.pos)

    def constant_string(self, node: ast.Expr, sub: Any) -> str:
        if isinstance(node, ast.Literal) and isinstance(node.value, str):
            return node.value
        raise KqlUnsupportedError("the has operators need a constant string on the right", self.span(node.pos),
                                  "use contains, or a literal / scalar let")

    def lower_arithmetic(self, node: ast.Binary, left: Typed, right: Typed) -> Typed:
        op = node.op
        lt, rt = left.kusto_type, right.kusto_type
        left, right = self.align_dynamic(left, right)
        lt, rt = left.kusto_type, right.kusto_type
        lsql: exp.Expr = exp.Paren(this=left.sql)
        rsql: exp.Expr = exp.Paren(this=right.sql)
        if lt in NUMERIC_TYPES and rt in NUMERIC_TYPES:
            result_type = common_numeric(lt, rt)
            if result_type == "long":
                # Kusto long arithmetic is 64-bit; DuckDB types small literals as INTEGER and would overflow
                lsql = cast(lsql, "BIGINT") if isinstance(left.sql, exp.Literal | exp.Neg) else lsql
                rsql = cast(rsql, "BIGINT") if isinstance(right.sql, exp.Literal | exp.Neg) else rsql
            if op == "/":
                if result_type == "real":
                    return Typed(exp.Div(this=cast(lsql, "DOUBLE"), expression=rsql), "real")
                return Typed(exp.IntDiv(this=lsql, expression=rsql), result_type)
            if op == "%" and result_type != "real":
                # Kusto's modulo is never negative: -14 % 12 == 10, 14 % -12 == 2
                divisor = exp.Abs(this=rsql)
                return Typed(exp.Mod(this=exp.Paren(this=exp.Add(this=exp.Mod(this=lsql, expression=rsql),
                                                                 expression=divisor)),
                                     expression=divisor.copy()), result_type)
            arithmetic: type[exp.Binary] = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul, "%": exp.Mod}[op]
            return Typed(arithmetic(this=lsql, expression=rsql), result_type)
        if lt == "datetime" and rt == "datetime" and op == "-":
            return Typed(exp.Sub(this=lsql, expression=rsql), "timespan")
        if lt == "datetime" and rt == "timespan" and op in ("+", "-"):
            return Typed((exp.Add if op == "+" else exp.Sub)(this=lsql, expression=rsql), "datetime")
        if lt == "timespan" and rt == "datetime" and op == "+":
            return Typed(exp.Add(this=rsql, expression=lsql), "datetime")
        if lt == "timespan" and rt == "timespan":
            if op in ("+", "-"):
                return Typed((exp.Add if op == "+" else exp.Sub)(this=lsql, expression=rsql), "timespan")
            if op == "/":
                return Typed(exp.Div(this=fn("epoch", lsql), expression=fn("epoch", rsql)), "real")
            if op == "%":
                remainder: exp.Expr = exp.Mod(this=cast(exp.Mul(this=fn("epoch", lsql), expression=number(1_000_000)),
                                               "BIGINT"),
                                 expression=cast(exp.Mul(this=fn("epoch", rsql), expression=number(1_000_000)),
                                                     "BIGINT"))
                return Typed(interval_micros(remainder), "timespan")
        if lt == "timespan" and rt in NUMERIC_TYPES and op in ("*", "/"):
            micros = exp.Mul(this=fn("epoch", lsql), expression=number(1_000_000))
            scaled = exp.Mul(this=micros, expression=rsql) if op == "*" else exp.Div(this=micros, expression=rsql)
            return Typed(interval_micros(scaled), "timespan")
        if lt in NUMERIC_TYPES and rt == "timespan" and op == "*":
            micros = exp.Mul(this=fn("epoch", rsql), expression=number(1_000_000))
            return Typed(interval_micros(exp.Mul(this=micros, expression=lsql)), "timespan")
        self.fail(f"operator '{op}' cannot combine {lt} and {rt}", node.pos,
                  "use strcat() to join strings" if "string" in (lt, rt) else None)

    def expand_list_items(self, items: Sequence[ast.Expr], scope: Mapping[str, Typed], env: Environment,
                          aggregates: _AggregateScope | None) -> list[Typed | ast.Literal]:
        """List items with dynamic arrays flattened (``x in (dynamic(["a","b"]))``, a let of such a literal)."""
        result: list[Typed | ast.Literal] = []
        for item in items:
            literal_node: ast.Literal | None = None
            if isinstance(item, ast.Literal):
                literal_node = item
            elif isinstance(item, ast.Name) and item.name not in scope:
                binding = env.bindings.get(item.name)
                if isinstance(binding, ScalarLet) and binding.literal is not None:
                    literal_node = binding.literal
            if literal_node is not None and literal_node.kusto_type == "dynamic" and \
                    isinstance(literal_node.value, list):
                for value in literal_node.value:
                    kusto_type = "string" if isinstance(value, str) else "bool" if isinstance(value, bool) else \
                        "long" if isinstance(value, int) else "real" if isinstance(value, float) else "dynamic"
                    result.append(ast.Literal(item.pos, value, kusto_type))
            elif literal_node is not None:
                result.append(literal_node)
            else:
                typed = self.lower_expr(item, scope, env, aggregates)
                result.append(typed)
        return result

    def lower_in(self, node: ast.InList, scope: Mapping[str, Typed], env: Environment,
                 aggregates: _AggregateScope | None) -> Typed:
        left = self.lower_expr(node.left, scope, env, aggregates)
        op = node.op.lower()
        negated = op.startswith("!")
        base = op.lstrip("!")
        if len(node.items) == 1 and isinstance(node.items[0], ast.TabularArg):
            if base not in ("in", "in~"):
                self.unsupported(f"{op} with a tabular argument", node.pos)
            relation = self.lower_tabular(node.items[0].query, env)
            if not relation.columns:
                self.fail("the subquery has no columns", node.items[0].pos)
            first_name, _ = relation.columns[0]
            column: exp.Expr = exp.column(first_name, quoted=True)
            needle = left.sql if left.kusto_type not in ("string", "guid") else as_string(left)
            if base == "in~":
                column, needle = exp.Lower(this=column), exp.Lower(this=needle)
            membership = exp.In(this=needle, query=exp.Subquery(this=exp.select(column, copy=False).from_(
                self.subquery(relation), copy=False)))
            return Typed(exp.not_(exp.Paren(this=membership)) if negated else membership, "bool")
        items = self.expand_list_items(node.items, scope, env, aggregates)
        if base in ("has_any", "has_all", "has_any_cs", "has_all_cs"):
            haystack = as_string(left)
            parts: list[exp.Expr] = []
            for item in items:
                if isinstance(item, ast.Literal) and item.value is not None:
                    parts.append(lower_term_match(haystack, str(item.value) if not isinstance(item.value, bool)
                                                  else str(item.value).lower(),
                                                  case_sensitive=base.endswith("_cs")))
                else:
                    raise KqlUnsupportedError(f"{base} needs constant strings (or a dynamic array literal)",
                                              self.span(node.pos), "use a literal list or a let of dynamic([...])")
            if not parts:
                return Typed(exp.false() if base.startswith("has_any") else exp.true(), "bool")
            combined = parts[0]
            for part in parts[1:]:
                combined = (exp.or_ if base.startswith("has_any") else exp.and_)(combined, part, copy=False)
            result: exp.Expr = exp.Paren(this=combined)
            return Typed(exp.not_(result) if negated else result, "bool")
        values: list[Typed] = []
        for item in items:
            typed = item if isinstance(item, Typed) else self.lower_expr(item, {}, env)
            if typed.kusto_type == "dynamic" and not isinstance(item, ast.Literal):
                # a non-literal dynamic array: membership test on its elements
                if len(items) != 1:
                    self.unsupported("mixing dynamic arrays and values in an in() list", node.pos)
                elements = fn("from_json", typed.sql, string('["varchar"]'))
                needle = as_string(left)
                if base == "in~":
                    elements = fn("list_transform", elements, exp.Lambda(this=exp.Lower(this=exp.column("x")),
                                                                         expressions=[exp.to_identifier("x")]))
                    needle = exp.Lower(this=needle)
                contained = fn("list_contains", elements, needle)
                return Typed(exp.not_(contained) if negated else contained, "bool")
            values.append(typed)
        if not values:
            return Typed(exp.true() if negated else exp.false(), "bool")
        needle_typed = left
        if base == "in~":
            # in~ is a string operator: values of other types compare by their text (pySigma's kusto backend
            # writes RemotePort in~ ("80", "443"))
            needle_typed = Typed(as_string(left), "string")
            values = [Typed(as_string(v), "string") for v in values]
        expressions = []
        for value in values:
            aligned_left, aligned = self.align_dynamic(needle_typed, value)
            self.check_comparable(aligned_left, aligned, node.pos)
            expressions.append(as_string(aligned) if aligned.kusto_type in ("string", "guid") else aligned.sql)
            needle_typed = aligned_left
        needle = as_string(needle_typed) if needle_typed.kusto_type in ("string", "guid") else needle_typed.sql
        if base == "in~":
            needle = exp.Lower(this=needle)
            expressions = [exp.Lower(this=e) for e in expressions]
        membership = exp.In(this=needle, expressions=expressions)
        return Typed(exp.not_(exp.Paren(this=membership)) if negated else membership, "bool")

    def lower_call(self, node: ast.Call, scope: Mapping[str, Typed], env: Environment,
                   aggregates: _AggregateScope | None) -> Typed:
        name = node.name
        binding = env.bindings.get(name)
        if isinstance(binding, FunctionLet):
            function_env = self._function_env(binding, node, env, row=scope)
            body = binding.statement.body
            assert body is not None and body.body is not None
            inner_env = self.bind_lets(body.lets, function_env)
            if isinstance(body.body, ast.TabularExpr) or self.is_tabular_expr(body.body, inner_env):
                self.fail(f"{name}() returns a table; use it as a query source, not as a value", node.pos)
            return self.lower_expr(body.body, scope, inner_env, aggregates)
        if name == "typeof":
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Name):
                self.fail("typeof() takes a type name, e.g. typeof(string)", node.pos)
            from assay.kql.parser import normalize_type

            kusto_type = normalize_type(node.args[0].name)
            if kusto_type not in SQL_TYPES:
                self.fail(f"unknown type '{node.args[0].name}'", node.args[0].pos)
            return Typed(literal(None, kusto_type), kusto_type)
        if name == "toscalar":
            if len(node.args) != 1:
                self.fail("toscalar() takes one argument", node.pos)
            argument = node.args[0]
            if isinstance(argument, ast.TabularArg) or self.is_tabular_expr(argument, env):
                relation = self.lower_tabular(self.as_tabular(argument), env)
                first_name, first_type = relation.columns[0]
                query = exp.select(exp.column(first_name, quoted=True), copy=False).from_(self.subquery(relation), copy=False).limit(1, copy=False)
                scalar_value: exp.Expr = exp.Subquery(this=query)
                if first_type == "string":  # an empty result is "" for a string, never null
                    scalar_value = exp.Coalesce(this=scalar_value, expressions=[string("")])
                return Typed(scalar_value, first_type)
            value = self.lower_expr(argument, scope, env, aggregates)
            if any(True for _ in value.sql.find_all(exp.Column)):
                return value  # refers to row columns: nothing to evaluate once
            # evaluated once per query, as Kusto does (toscalar(new_guid()) is one value for every row)
            return Typed(exp.Subquery(this=exp.select(value.sql, copy=False)), value.kusto_type)
        if name == "column_ifexists":
            if len(node.args) != 2 or not isinstance(node.args[0], ast.Literal):
                self.fail("column_ifexists() takes a column name string and a default value", node.pos)
            column_name = str(node.args[0].value)
            if column_name in scope:
                return scope[column_name]
            return self.lower_expr(node.args[1], scope, env, aggregates)
        if name in AGGREGATE_FUNCTIONS:
            if aggregates is None:
                self.fail(f"{name}() is an aggregate: use it in summarize", node.pos,
                          "e.g. | summarize " + name + "(...) by Column")
            aggregates.used = True
            return self.lower_single_aggregate(node, copy_scope(scope), env)
        spec = SCALAR_FUNCTIONS.get(name)
        if spec is None:
            if name.startswith("_Get") or name.startswith("_ASim") or name.startswith("_Im_") or \
                    name in OFFLINE_FUNCTIONS:
                self.unsupported(f"'{name}' is not available offline (Microsoft Sentinel workspace or cluster "
                                 "function)", node.pos, "export its data and load it as a table")
            if name in UNSUPPORTED_FUNCTIONS:
                self.unsupported(f"function {name}() is not supported", node.pos)
            suggestion = did_you_mean(name, list(SCALAR_FUNCTIONS) + list(AGGREGATE_FUNCTIONS) +
                                      [n for n, b in env.bindings.items() if isinstance(b, FunctionLet)])
            self.fail(f"unknown function '{name}'", node.pos,
                      f"did you mean '{suggestion}'?" if suggestion else "see docs/kql-support.md")
        if not spec.min_args <= len(node.args) <= spec.max_args:
            expected = str(spec.min_args) if spec.min_args == spec.max_args else \
                f"{spec.min_args} to {spec.max_args}"
            self.fail(f"{name}() takes {expected} argument{'s' if spec.max_args != 1 else ''}, got {len(node.args)}",
                      node.pos)
        resolved_args = tuple(self.resolve_literal_arg(a, scope, env) for a in node.args)
        args = [self.lower_expr(a, scope, env, aggregates) for a in node.args]
        context = CallContext(ast.Call(node.pos, node.name, resolved_args), self.now_sql, self.query.file,
                              self.query.text)
        return spec.lower(context, args)

    def resolve_literal_arg(self, node: ast.Expr, scope: Mapping[str, Typed], env: Environment) -> ast.Expr:
        """A scalar let bound to a literal counts as a constant (regexes, formats are often in lets)."""
        if isinstance(node, ast.Name) and node.name not in scope:
            binding = env.bindings.get(node.name)
            if isinstance(binding, ScalarLet) and binding.literal is not None:
                return binding.literal
        return node


class _AggregateScope:
    """Marks that aggregate calls are allowed while lowering one summarize expression."""

    def __init__(self, binder: Binder, scope: Mapping[str, Typed], env: Environment) -> None:
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
