"""``summarize`` and aggregate calls: key columns, Kusto's default output names, arg_max/arg_min,
percentiles, and expressions over aggregates.
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlglot import exp

from assay.kql import ast
from assay.kql.bind.scalar import ScalarBinder, not_positional
from assay.kql.bind.scope import (
    Environment,
    Relation,
    _AggregateScope,
    aliased,
    argument_is_star,
)
from assay.kql.functions import (
    AGGREGATE_FUNCTIONS,
)
from assay.kql.typed import (
    NUMERIC_TYPES,
    SQL_TYPES,
    Typed,
    as_string,
    cast,
    fn,
    interval_micros,
    number,
    string,
)


class AggregateBinder(ScalarBinder):
    """``summarize`` and aggregate calls."""

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
            select = select.group_by(*[not_positional(t.sql) for _, t in keys], copy=False)
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
            return [self.lower_aggregate_expression(assignment, scope, env, used_names, hidden, key_names)]
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
                                   used_names: set[str], hidden: Any, key_names: set[str] | None = None
                                   ) -> tuple[str, exp.Expr | None, exp.Expr, str]:
        aggregate_scope = _AggregateScope(self, scope, env)
        typed = self.lower_expr(assignment.expr, scope, env, aggregates=aggregate_scope)
        if not aggregate_scope.used:
            self.fail("summarize needs an aggregate function here, e.g. count() or dcount(Column)",
                      assignment.expr.pos)
        for column in typed.sql.find_all(exp.Column):
            if column.name not in (key_names or set()) and not outside_aggregate_is_allowed(column):
                self.fail(f"'{column.name}' is used outside an aggregate in summarize",
                          name_position(assignment.expr, column.name) or assignment.expr.pos,
                          f"aggregate it (e.g. take_any({column.name})) or add it to the by clause")
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
        if name == "take_anyif":
            self.require_bool(args[1], call.args[1])
            return Typed(fn("any_value", when(args[1], args[0].sql)), args[0].kusto_type)
        if name == "make_list_with_nulls":
            return Typed(exp.Coalesce(this=fn("to_json", exp.ArrayAgg(this=args[0].sql)), expressions=[
                cast(string("[]"), "JSON")]), "dynamic")
        if name in ("make_bag", "make_bag_if"):
            bag_values = args[0].sql if name == "make_bag" else when(args[1], args[0].sql)
            bags = fn("list_filter", exp.ArrayAgg(this=bag_values), exp.Lambda(this=exp.not_(exp.Is(
                this=exp.column("x"), expression=exp.null())), expressions=[exp.to_identifier("x")]))
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



#: Aggregates Assay writes as plain function calls (sqlglot parses them as anonymous functions)
ANONYMOUS_AGGREGATES = frozenset({"list", "quantile_disc", "arg_max", "arg_min", "any_value", "stddev_samp",
                                  "stddev_pop", "var_samp", "var_pop", "bool_or", "bool_and", "first", "last"})


def outside_aggregate_is_allowed(column: exp.Column) -> bool:
    """True when ``column`` sits inside an aggregate call (or a subquery/lambda of its own)."""
    node: exp.Expr | None = column.parent
    while node is not None:
        if isinstance(node, exp.AggFunc | exp.Subquery | exp.Lambda | exp.Window):
            return True
        if isinstance(node, exp.Anonymous) and str(node.this).lower() in ANONYMOUS_AGGREGATES:
            return True
        node = node.parent
    return False


def name_position(node: ast.Expr, name: str) -> ast.Pos | None:
    """Where ``name`` is first mentioned in an expression (a dataclass tree walk)."""
    pending: list[object] = [node]
    while pending:
        current = pending.pop(0)
        if isinstance(current, ast.Name) and current.name == name:
            return current.pos
        if isinstance(current, ast.Expr):
            pending.extend(value for value in vars(current).values() if isinstance(value, ast.Expr | tuple))
        elif isinstance(current, tuple):
            pending.extend(item for item in current if isinstance(item, ast.Expr))
    return None
