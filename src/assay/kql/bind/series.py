"""make-series: aggregates per axis bin, gathered into one array per group. The binning and aggregation reuse
``summarize`` (so every aggregate it supports works here); the arrays are then laid on the axis grid with
absent bins taking the default."""

from __future__ import annotations

from sqlglot import exp

from assay.kql import ast
from assay.kql.bind.scope import Environment, Relation, aliased
from assay.kql.bind.tabular import TabularOperators
from assay.kql.typed import NUMERIC_TYPES, Typed, as_string, fn, literal, number

BIN = "__series_bin"


class SeriesOperators(TabularOperators):
    """make-series."""

    def op_make_series(self, source: Relation, operator: ast.MakeSeries, env: Environment) -> Relation:
        scope = self.row_scope(source)
        axis = self.lower_expr(operator.axis, scope, env)
        step = self.lower_expr(operator.step, {}, env)
        if axis.kusto_type == "datetime" and step.kusto_type != "timespan":
            self.fail(f"a datetime axis needs a timespan step, got {step.kusto_type}", operator.step.pos)
        if axis.kusto_type in ("long", "int") and step.kusto_type not in ("long", "int"):
            self.fail(f"a {axis.kusto_type} axis needs a whole-number step", operator.step.pos)
        if axis.kusto_type not in ("datetime", "timespan", "long", "int"):
            self.unsupported(f"make-series over a {axis.kusto_type} axis", operator.axis.pos,
                             "use a datetime, timespan or whole-number axis")
        axis_name = self.derive_name(operator.axis, None) or "Axis"
        bounds: list[Typed | None] = []
        for bound in (operator.start, operator.end):
            typed = self.lower_expr(bound, {}, env) if bound is not None else None
            if typed is not None and typed.kusto_type != axis.kusto_type and not (
                    typed.kusto_type in NUMERIC_TYPES and axis.kusto_type in NUMERIC_TYPES):
                assert bound is not None
                self.fail(f"make-series bound is a {typed.kusto_type}, the axis a {axis.kusto_type}", bound.pos)
            bounds.append(typed)
        start, end = bounds
        # rows outside [from, to) do not count; bins are aligned on `from` when given (bin_at), else on 0
        filtered = source
        conditions: list[ast.Expr] = []
        if operator.start is not None:
            conditions.append(ast.Binary(operator.pos, ">=", operator.axis, operator.start))
        if operator.end is not None:
            conditions.append(ast.Binary(operator.pos, "<", operator.axis, operator.end))
        for condition in conditions:
            filtered = self.op_where(filtered, ast.Where(operator.pos, "where", condition), env)
        binned: ast.Expr = ast.Call(operator.pos, "bin_at", (operator.axis, operator.step, operator.start)) \
            if operator.start is not None else ast.Call(operator.pos, "bin", (operator.axis, operator.step))
        aggregates = tuple(assignment for assignment, _ in operator.aggregates)
        summarized = self.op_summarize(filtered, ast.Summarize(
            operator.pos, "summarize", aggregates, (*operator.by, ast.Assignment(BIN, binned))), env)
        key_names = [name for name, _ in summarized.columns[:len(operator.by)]]
        value_columns = summarized.columns[len(operator.by) + 1:]
        if len(value_columns) != len(operator.aggregates):
            self.unsupported("make-series with an aggregate that returns several columns", operator.pos,
                             "use one aggregate per output column")
        defaults: list[exp.Expr] = []
        for (name, kusto_type), (_, default) in zip(value_columns, operator.aggregates, strict=True):
            if default is None:
                defaults.append(literal(0, kusto_type) if kusto_type in NUMERIC_TYPES else literal(None, kusto_type))
            else:
                typed_default = self.lower_expr(default, {}, env)
                defaults.append(self.coerce(typed_default, kusto_type, default.pos, f"the default of {name}"))
        ordered_bin = exp.Order(expressions=[exp.Ordered(this=exp.column(BIN, quoted=True))])
        gathered = [exp.column(n, quoted=True) for n in key_names] + [
            aliased(exp.WithinGroup(this=fn("list", exp.column(BIN, quoted=True)), expression=ordered_bin.copy()),
                    "__bins", quoted=True)] + [
            aliased(exp.WithinGroup(this=fn("list", exp.column(n, quoted=True)), expression=ordered_bin.copy()),
                    f"__values{index}", quoted=True) for index, (n, _) in enumerate(value_columns)]
        grouped = exp.select(*gathered, copy=False).from_(self.subquery(summarized), copy=False)
        if key_names:
            grouped = grouped.group_by(*[exp.column(n, quoted=True) for n in key_names], copy=False)
        grouped = grouped.having(exp.GT(this=exp.Count(this=exp.Star()), expression=number(0)), copy=False)
        step_sql = step.sql
        first = start.sql if start is not None else fn("list_min", exp.column("__bins", quoted=True))
        last = end.sql if end is not None else exp.Add(this=fn("list_max", exp.column("__bins", quoted=True)),
                                                        expression=step_sql.copy())
        with_grid = exp.select(exp.Star(), aliased(fn("range", first, last, step_sql.copy()), "__grid", quoted=True),
                               copy=False).from_(exp.Subquery(this=grouped, alias=exp.TableAlias(
                                   this=exp.to_identifier(self.alias()))), copy=False)
        variable = exp.to_identifier("__t")
        outputs: list[exp.Expr] = [exp.column(n, quoted=True) for n in key_names]
        columns: list[tuple[str, str]] = [(n, t) for n, t in summarized.columns[:len(operator.by)]]
        for index, ((name, _), default_sql) in enumerate(zip(value_columns, defaults, strict=True)):
            value_at = exp.Bracket(this=exp.column(f"__values{index}", quoted=True), expressions=[
                fn("list_position", exp.column("__bins", quoted=True), exp.column("__t"))])
            series = fn("list_transform", exp.column("__grid", quoted=True), exp.Lambda(
                this=exp.Coalesce(this=value_at, expressions=[default_sql]), expressions=[variable.copy()]))
            outputs.append(aliased(fn("to_json", series), name, quoted=True))
            columns.append((name, "dynamic"))
        shown = as_string(Typed(exp.column("__t"), axis.kusto_type)) if axis.kusto_type == "datetime" else \
            exp.column("__t")
        outputs.append(aliased(fn("to_json", fn("list_transform", exp.column("__grid", quoted=True), exp.Lambda(
            this=shown, expressions=[variable.copy()]))), axis_name, quoted=True))
        columns.append((axis_name, "dynamic"))
        select = exp.select(*outputs, copy=False).from_(exp.Subquery(this=with_grid, alias=exp.TableAlias(
            this=exp.to_identifier(self.alias()))), copy=False)
        if operator.nonempty and not key_names:
            self.unsupported("make-series kind=nonempty", operator.pos, "drop kind=nonempty")
        return Relation(select, columns)


