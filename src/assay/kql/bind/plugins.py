"""``evaluate`` plugins: bag_unpack (a property bag's keys become columns) and pivot (a column's values become
columns). Both take their output columns from the data: with an output schema (``: (Col: type, ...)``) they
bind without data; otherwise the binder reads the keys or values from the data first (``run`` only)."""

from __future__ import annotations

from sqlglot import exp

from assay.kql import ast
from assay.kql.bind.aggregate import AggregateBinder
from assay.kql.bind.scope import Environment, Relation, aliased
from assay.kql.typed import Typed, as_string, fn, string, to_type

#: DuckDB json_type() → the Kusto type bag_unpack gives a column whose values all have it
JSON_TYPES = {"BIGINT": "long", "UBIGINT": "long", "DOUBLE": "real", "VARCHAR": "string", "BOOLEAN": "bool"}

#: pivot aggregations → the conditional aggregate each value column uses
PIVOT_AGGREGATES = {"count": "countif", "sum": "sumif", "avg": "avgif", "min": "minif", "max": "maxif",
                    "dcount": "dcountif", "make_set": "make_set_if", "make_list": "make_list_if"}

SUPPORTED_PLUGINS = ("bag_unpack", "pivot")


class PluginOperators(AggregateBinder):
    """evaluate bag_unpack / pivot."""

    def op_evaluate(self, source: Relation, operator: ast.Evaluate, env: Environment) -> Relation:
        if operator.plugin == "bag_unpack":
            return self.bag_unpack(source, operator, env)
        if operator.plugin == "pivot":
            return self.pivot(source, operator, env)
        self.unsupported(f"the evaluate plugin {operator.plugin}() is not supported", operator.pos,
                         f"Assay runs {', '.join(SUPPORTED_PLUGINS)}; see docs/kql-support.md")

    def bag_unpack(self, source: Relation, operator: ast.Evaluate, env: Environment) -> Relation:
        positions = {"column": 0, "outputcolumnprefix": 1, "columnsconflict": 2, "ignoredproperties": 3}
        args: list[ast.Expr | None] = list(operator.args)
        for name, value in operator.named:
            if name not in positions:
                self.fail(f"bag_unpack() has no argument '{name}'", value.pos,
                          "use OutputColumnPrefix, columnsConflict or ignoredProperties")
            while len(args) <= positions[name]:
                args.append(None)
            args[positions[name]] = value
        operator = ast.Evaluate(operator.pos, operator.name, operator.plugin, tuple(
            a if a is not None else ast.Literal(operator.pos, None, "string") for a in args), operator.schema)
        if not operator.args:
            self.fail("bag_unpack() takes the bag column", operator.pos)
        scope = self.row_scope(source)
        bag = self.lower_expr(operator.args[0], scope, env)
        if bag.kusto_type != "dynamic":
            self.fail(f"bag_unpack() needs a dynamic (property bag) column, got {bag.kusto_type}",
                      operator.args[0].pos)
        prefix = ""
        if len(operator.args) > 1:
            prefix_node = self.resolve_literal_arg(operator.args[1], scope, env)
            if not isinstance(prefix_node, ast.Literal) or not isinstance(prefix_node.value, str | type(None)):
                self.fail("bag_unpack()'s second argument is a constant column-name prefix", operator.args[1].pos)
            prefix = prefix_node.value or ""
        conflict = "error"
        if len(operator.args) > 2:
            conflict_node = operator.args[2]
            if not isinstance(conflict_node, ast.Literal) or conflict_node.value not in (
                    "error", "replace_source", "keep_source", None):
                self.fail("bag_unpack()'s columnsConflict is 'error', 'replace_source' or 'keep_source'",
                          conflict_node.pos)
            conflict = str(conflict_node.value or "error")
        ignored: set[str] = set()
        if len(operator.args) > 3:
            ignored_node = operator.args[3]
            if not isinstance(ignored_node, ast.Literal) or not isinstance(ignored_node.value, list | type(None)):
                self.fail("bag_unpack()'s ignoredProperties is a constant dynamic array of names", ignored_node.pos)
            ignored = {str(v) for v in ignored_node.value or []}
        bag_name = self.derive_name(operator.args[0], None)
        kept = [(n, t) for n, t in source.columns if n != bag_name]
        if operator.schema is not None:
            keys = [(name[len(prefix):] if prefix and name.startswith(prefix) else name, kusto_type)
                    for name, kusto_type in operator.schema if name not in dict(kept)]
        else:
            keys = self.bag_keys(source, bag, operator)
        keys = [(key, kusto_type) for key, kusto_type in keys if key not in ignored]
        selections: list[exp.Expr] = []
        columns: list[tuple[str, str]] = []
        kept_names = {n for n, _ in kept}
        unpacked_names = {prefix + key for key, _ in keys}
        for name, kusto_type in kept:
            if name in unpacked_names and conflict == "replace_source":
                continue
            selections.append(exp.column(name, quoted=True))
            columns.append((name, kusto_type))
        for key, kusto_type in keys:
            name = prefix + key
            if name in kept_names:
                if conflict == "error":
                    self.fail(f"bag_unpack(): the property '{key}' would replace the column '{name}'",
                              operator.pos, "pass a prefix, or columnsConflict='replace_source' / 'keep_source'")
                if conflict == "keep_source":
                    continue
            extracted = Typed(fn("json_extract", bag.sql.copy(), string('$."' + key.replace('"', '\\"') + '"')),
                              "dynamic")
            converted = extracted.sql if kusto_type == "dynamic" else to_type(extracted, kusto_type)
            selections.append(aliased(converted, name, quoted=True))
            columns.append((name, kusto_type))
        select = exp.select(*selections, copy=False).from_(self.subquery(source), copy=False)
        return Relation(self._with_order(select, source), columns, source.ordered, source.source_name)

    def bag_keys(self, source: Relation, bag: Typed, operator: ast.Evaluate) -> list[tuple[str, str]]:
        """Every key of the bag column in the data, with the Kusto type its values share (dynamic if mixed)."""
        keyed = exp.select(aliased(exp.Unnest(expressions=[fn("json_keys", bag.sql.copy())]), "k", quoted=True),
                           aliased(bag.sql.copy(), "b", quoted=True), copy=False).from_(
            self.subquery(source), copy=False).where(exp.EQ(this=fn("json_type", bag.sql.copy()),
                                                            expression=string("OBJECT")), copy=False)
        value_type = fn("json_type", fn("json_extract", exp.column("b", quoted=True), exp.DPipe(
            this=exp.DPipe(this=string('$."'), expression=fn("replace", exp.column("k", quoted=True), string('"'),
                                                              string('\\"'))), expression=string('"'))))
        typed = exp.select(exp.column("k", quoted=True), aliased(fn("list_distinct", fn("list", value_type)),
                                                                 "types", quoted=True), copy=False).from_(
            exp.Subquery(this=keyed, alias=exp.TableAlias(this=exp.to_identifier(self.alias()))), copy=False
        ).group_by(exp.column("k", quoted=True), copy=False).order_by(exp.column("k", quoted=True), copy=False)
        keys: list[tuple[str, str]] = []
        for key, types in self.run_probe(typed, operator.pos, "evaluate bag_unpack()"):
            present = [t for t in (types or []) if t not in (None, "NULL")]
            kinds = {JSON_TYPES.get(str(t), "dynamic") for t in present}
            keys.append((str(key), kinds.pop() if len(kinds) == 1 else "dynamic"))
        return keys

    def pivot(self, source: Relation, operator: ast.Evaluate, env: Environment) -> Relation:
        if not operator.args:
            self.fail("pivot() takes the pivot column", operator.pos)
        scope = self.row_scope(source)
        pivot_node = operator.args[0]
        pivot_value = self.lower_expr(pivot_node, scope, env)
        aggregate: ast.Call = ast.Call(operator.pos, "count", ())
        by: list[ast.Expr] = []
        for argument in operator.args[1:]:
            if isinstance(argument, ast.Call) and argument.name in PIVOT_AGGREGATES and not by:
                aggregate = argument
            else:
                by.append(argument)
        if not by:
            # Kusto: without group columns, every column but the pivot column (and the aggregated one) groups
            excluded = {self.derive_name(pivot_node, None)} | {
                self.derive_name(a, None) for a in aggregate.args if isinstance(a, ast.Name)}
            by = [ast.Name(operator.pos, name) for name in source.names() if name not in excluded]
        if operator.schema is not None:
            by_names = {self.derive_name(b, None) for b in by}
            values = [name for name, _ in operator.schema if name not in by_names]
        else:
            distinct = exp.select(aliased(as_string(pivot_value), "v", quoted=True), copy=False).from_(
                self.subquery(source), copy=False).distinct(copy=False).order_by(
                exp.column("v", quoted=True), copy=False)
            values = [str(row[0]) for row in self.run_probe(distinct, operator.pos, "evaluate pivot()")]
        conditional = PIVOT_AGGREGATES[aggregate.name]
        aggregates: list[ast.Assignment] = []
        for value in values:
            matches = ast.Binary(pivot_node.pos, "==", ast.Call(pivot_node.pos, "tostring", (pivot_node,)),
                                 ast.Literal(pivot_node.pos, value, "string"))
            arguments = (matches,) if aggregate.name == "count" else (*aggregate.args[:1], matches,
                                                                      *aggregate.args[1:])
            aggregates.append(ast.Assignment(value, ast.Call(aggregate.pos, conditional, arguments)))
        if not aggregates and not by:
            self.fail("pivot() found no values to pivot on", operator.pos)
        summarize = ast.Summarize(operator.pos, "summarize", tuple(aggregates),
                                  tuple(ast.Assignment(None, b) for b in by))
        return self.op_summarize(source, summarize, env)
