"""Binder and lowering: a parsed KQL query → a typed sqlglot SELECT, resolving tables, columns, lets and types.

Each tabular operator becomes one SELECT over the previous one (DuckDB and Spark flatten these). Name resolution,
type inference and Kusto's semantic rules (strings never null, innerunique joins, sort direction, term matching,
integer division, a fixed ``now()``) are applied here, so an unknown column or a type error is reported with
its line:col before anything runs. This module holds the entry points, lets and table sources; each family of
operations has its own visitor module under ``assay.kql.bind`` (scalar, aggregate, tabular, combine, reshape),
which ``Binder`` composes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlglot import exp

from assay.errors import did_you_mean
from assay.kql import ast
from assay.kql.bind.combine import SearchOperators
from assay.kql.bind.defender import LOCAL_FUNCTIONS, SERVICE_FUNCTIONS, DefenderFunctions
from assay.kql.bind.offline import OfflineSourcesBinder
from assay.kql.bind.plugins import PluginOperators
from assay.kql.bind.reshape import ReshapeOperators
from assay.kql.bind.scope import (
    ORDINAL,
    Environment,
    FunctionLet,
    Relation,
    RelationLet,
    ScalarLet,
    Schema,
    TabularLet,
    alias,
    aliased,
    decode_value,
)
from assay.kql.bind.series import SeriesOperators
from assay.kql.bind.tabular import TabularOperators
from assay.kql.functions import (
    OFFLINE_FUNCTIONS,
)
from assay.kql.typed import (
    NUMERIC_TYPES,
    SQL_TYPES,
    Typed,
    cast,
    common_numeric,
    fn,
    literal,
    string,
    to_type,
)

__all__ = ["ORDINAL", "Binder", "Relation", "decode_value"]

#: Defender's built-in tabular functions (answered locally or a "needs the service" error)
BUILTIN_TABULAR_FUNCTIONS = frozenset(LOCAL_FUNCTIONS) | frozenset(SERVICE_FUNCTIONS)

#: Each operator becomes one nested SELECT; far deeper nesting than real queries use exhausts the SQL generator.
MAX_PIPELINE_OPERATORS = 60


class Binder(ReshapeOperators, SearchOperators, SeriesOperators, TabularOperators, PluginOperators,
             OfflineSourcesBinder, DefenderFunctions):
    """Lowers one query. ``tables`` maps table names to their columns; ``now`` is fixed for the whole query.

    This class holds the entry points, lets and table sources; each operator family lives in its visitor
    module under ``assay.kql.bind``."""

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
            return expr.name in ("materialize", "view", "table") or expr.name.lower() == "_getwatchlist" or (
                binding is None and expr.name in BUILTIN_TABULAR_FUNCTIONS)
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
        if isinstance(node, ast.Search):
            return self.lower_search(node, env)
        if isinstance(node, ast.ExternalData):
            return self.lower_externaldata(node, env)
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
            # at least one column: `T | count` names none, and a SELECT needs a selection list
            schema = [(n, t) for n, t in schema if n in keep] or list(schema[:1])
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
        if node.name.lower() == "_getwatchlist" and not isinstance(binding, FunctionLet):
            return self.lower_watchlist(node)
        if binding is None:
            binding = self.builtin_function(node.name, node.pos)
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
            value = typed.sql.this if isinstance(typed.sql, exp.Neg) else typed.sql
            if kusto_type == "int" and isinstance(value, exp.Literal) and not value.is_string:
                number_value = float(value.this) * (-1 if isinstance(typed.sql, exp.Neg) else 1)
                if not -2**31 <= number_value < 2**31:
                    self.fail(f"{value.this} does not fit {context} (int is 32-bit)", pos, "declare the column long")
            return exp.TryCast(this=typed.sql, to=exp.DataType.build(SQL_TYPES[kusto_type]))
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
            if step.kusto_type not in NUMERIC_TYPES:
                self.fail(f"a numeric range needs a numeric step, got {step.kusto_type}", node.step.pos)
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
        if isinstance(operator, ast.SearchOp):
            return self.op_search(source, operator, env)
        if isinstance(operator, ast.Evaluate):
            return self.op_evaluate(source, operator, env)
        if isinstance(operator, ast.MakeSeries):
            return self.op_make_series(source, operator, env)
        if isinstance(operator, ast.MvApply):
            return self.op_mv_apply(source, operator, env)
        if isinstance(operator, ast.MvExpand):
            return self.op_mv_expand(source, operator, env)
        if isinstance(operator, ast.Parse):
            return self.op_parse(source, operator, env)
        if isinstance(operator, ast.NoOp) and operator.name == "serialize":
            return self.op_serialize(source)
        if isinstance(operator, ast.NoOp) and operator.name == "getschema":
            return self.op_getschema(source)
        if isinstance(operator, ast.As | ast.NoOp):
            if isinstance(operator, ast.As):
                source.source_name = operator.table_name
            return source
        if isinstance(operator, ast.Invoke):
            binding = env.bindings.get(operator.function)
            if binding is None:
                binding = self.builtin_function(operator.function, operator.pos)
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

