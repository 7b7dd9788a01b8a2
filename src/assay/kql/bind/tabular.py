"""Row-wise tabular operators: where, extend, project (and its -away/-keep/-reorder/-rename forms),
sort/top, take, distinct, getschema.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from sqlglot import exp

from assay.errors import did_you_mean
from assay.kql import ast
from assay.kql.bind.aggregate import AggregateBinder
from assay.kql.bind.scalar import not_positional
from assay.kql.bind.scope import (
    ORDINAL,
    Environment,
    Relation,
    alias,
    aliased,
    copy_scope,
)
from assay.kql.typed import (
    SQL_TYPES,
    Typed,
    cast,
    fn,
    number,
    string,
)


class TabularOperators(AggregateBinder):
    """Row-wise tabular operators."""

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

    def op_serialize(self, source: Relation) -> Relation:
        """``serialize``: rows get a fixed order (their current one) so prev()/next()/row_number() may run."""
        if source.ordered or source.ordinal_builder is not None:
            return source
        select = self.star_select(source, aliased(exp.Window(this=exp.RowNumber()), ORDINAL, quoted=True))
        return Relation(select, list(source.columns), True, source.source_name)

    def op_extend(self, source: Relation, operator: ast.Extend, env: Environment) -> Relation:
        scope = self.row_scope(source)
        with self.window_functions(source):
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
            with self.window_functions(source):
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
            ordered.append(exp.Ordered(this=not_positional(typed.sql), desc=key.descending, nulls_first=nulls_first))
        limit: Typed | None = None
        if count is not None:
            limit = self.lower_expr(count, {}, env)
            if limit.kusto_type not in ("long", "int"):
                self.fail("top needs a whole number of rows", count.pos)
            limit = Typed(self.row_limit(limit, count), limit.kusto_type)
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

    def row_limit(self, limit: Typed, node: ast.Expr) -> exp.Expr:
        """A row count for LIMIT: a negative constant is an error; a computed one below 0 means no rows."""
        if isinstance(node, ast.Literal) and isinstance(node.value, int):
            if node.value < 0:
                self.fail(f"a row count cannot be negative ({node.value})", node.pos)
            return limit.sql
        return exp.Greatest(this=limit.sql, expressions=[number(0)])

    def op_take(self, source: Relation, operator: ast.Take, env: Environment) -> Relation:
        limit = self.lower_expr(operator.count, {}, env)
        if limit.kusto_type not in ("long", "int"):
            self.fail("take needs a whole number of rows", operator.count.pos)
        select = self._with_order(self.star_select(source), source, star=True).limit(
            self.row_limit(limit, operator.count), copy=False)
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
