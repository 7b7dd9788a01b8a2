"""Operators that reshape rows: mv-expand (one row per array element) and parse (a pattern into
typed columns).
"""

from __future__ import annotations

import re

from sqlglot import exp

from assay.kql import ast
from assay.kql.bind.aggregate import AggregateBinder
from assay.kql.bind.scope import (
    ORDINAL,
    Environment,
    Relation,
    aliased,
    copy_scope,
)
from assay.kql.patterns import capture_groups, regex_problem
from assay.kql.typed import (
    Typed,
    as_string,
    cast,
    fn,
    number,
    string,
    to_type,
)


class ReshapeOperators(AggregateBinder):
    """Operators that reshape rows."""

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
            items = expansion_items(typed.sql, operator.bag_as_array)
            result_type = to_type_name or "dynamic"
            expanded[column_name] = (items, result_type)
            order.append(column_name)
        alias = self.alias()
        source_subquery = self.subquery(source)  # first: after sort it sets source.ordered (the hidden order)
        inner_items: list[exp.Expr] = []
        for name in source.names():
            if name not in expanded:
                inner_items.append(exp.column(name, quoted=True))
        for index, name in enumerate(order):
            inner_items.append(aliased(exp.Unnest(expressions=[expanded[name][0]]), f"__mv{index}", quoted=True))
        if operator.item_index or operator.limit is not None:  # limit counts items per row
            first_items = expanded[order[0]][0]
            inner_items.append(aliased(exp.Sub(this=exp.Unnest(expressions=[
                fn("generate_series", number(1), fn("len", first_items))]), expression=number(1)),
                "__mv_index", quoted=True))
        if source.ordered:
            inner_items.append(exp.column(ORDINAL, quoted=True))
        inner = exp.select(*inner_items, copy=False).from_(source_subquery, copy=False)
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
            if limit.kusto_type not in ("long", "int"):
                self.fail("mv-expand limit needs a whole number", operator.limit.pos)
            outer = outer.where(exp.LT(this=exp.column("__mv_index", quoted=True), expression=limit.sql),
                                copy=False)
        if source.ordered:
            outer = self._with_order(outer, source)
        return Relation(outer, columns, source.ordered, source.source_name)

    def op_mv_apply(self, source: Relation, operator: ast.MvApply, env: Environment) -> Relation:
        """Each input row's arrays become a subtable (a LATERAL subquery that unnests the outer row's values), the
        subquery's operators run on it, and the row's other columns are added to every result row."""
        outer_alias = self.alias()
        outer_scope = self.row_scope(source, table=outer_alias)
        expanded: list[tuple[str, exp.Expr, str]] = []
        for name, expr, to_type_name in operator.columns:
            typed = self.lower_expr(expr, outer_scope, env)
            column_name = name or self.derive_name(expr, None)
            if column_name is None:
                self.fail("mv-apply needs a column or name = expression", expr.pos)
            if typed.kusto_type != "dynamic":
                self.fail(f"mv-apply needs a dynamic (array) value, got {typed.kusto_type}", expr.pos,
                          "convert with parse_json() or todynamic()")
            expanded.append((column_name, expansion_items(typed.sql, False), to_type_name or "dynamic"))
        unnested: list[exp.Expr] = [aliased(exp.Unnest(expressions=[items]), f"__mv{index}", quoted=True)
                                    for index, (_, items, _) in enumerate(expanded)]
        if operator.item_index:
            unnested.append(aliased(exp.Sub(this=exp.Unnest(expressions=[fn("generate_series", number(1), fn(
                "len", expanded[0][1].copy()))]), expression=number(1)), "__mv_index", quoted=True))
        subtable_items: list[exp.Expr] = []
        subtable_columns: list[tuple[str, str]] = []
        for index, (name, _, result_type) in enumerate(expanded):
            reference: exp.Expr = exp.column(f"__mv{index}", quoted=True)
            if result_type != "dynamic":
                reference = to_type(Typed(cast(reference, "JSON"), "dynamic"), result_type)
            subtable_items.append(aliased(reference, name, quoted=True))
            subtable_columns.append((name, result_type))
        inner_from = exp.Subquery(this=exp.select(*unnested, copy=False), alias=exp.TableAlias(
            this=exp.to_identifier(self.alias())))
        if operator.item_index:
            subtable_items.append(aliased(exp.column("__mv_index", quoted=True), operator.item_index, quoted=True))
            subtable_columns.append((operator.item_index, "long"))
        subtable = exp.select(*subtable_items, copy=False).from_(inner_from, copy=False)
        if operator.limit is not None:
            limit = self.lower_expr(operator.limit, {}, env)
            if limit.kusto_type not in ("long", "int"):
                self.fail("mv-apply limit needs a whole number", operator.limit.pos)
            subtable = subtable.limit(limit.sql, copy=False)
        relation = Relation(subtable, subtable_columns)
        for inner_operator in operator.operators:
            relation = self.lower_operator(relation, inner_operator, env)
        inner_alias = self.alias()
        inner_names = relation.names()
        expanded_in_place = {self.derive_name(expr, None) for name, expr, _ in operator.columns
                             if name is None or name == self.derive_name(expr, None)}
        kept = [(n, t) for n, t in source.columns if n not in expanded_in_place and n not in inner_names]
        selections = [exp.column(n, table=outer_alias, quoted=True) for n, _ in kept] + [
            exp.column(n, table=inner_alias, quoted=True) for n in inner_names]
        lateral = exp.Lateral(this=exp.Subquery(this=self.subquery(relation, inner_alias).this), alias=exp.TableAlias(
            this=exp.to_identifier(inner_alias)))
        select = exp.select(*selections, copy=False).from_(self.subquery(source, outer_alias), copy=False)
        select.append("joins", exp.Join(this=lateral))
        return Relation(select, kept + list(relation.columns), source_name=source.source_name)

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
                prefix = "".join(regex_parts)
                problem = regex_problem(prefix)
                if problem is not None:
                    self.fail(f"invalid regular expression in {operator.name}: {problem}", operator.pos)
                group_number = capture_groups(prefix) + 1
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
        problem = regex_problem(pattern)
        if problem is not None:
            self.fail(f"invalid parse pattern: {problem}", operator.pos)
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



def expansion_items(value: exp.Expr, bag_as_array: bool) -> exp.Expr:
    """The list mv-expand unnests: an array's elements, a property bag's {key: value} pairs (or [key, value]
    with kind=array), any other value as a one-element list."""
    return exp.Case(ifs=[
        exp.If(this=exp.EQ(this=fn("json_type", value), expression=string("ARRAY")),
               true=fn("from_json", value.copy(), string('["json"]'))),
        exp.If(this=exp.EQ(this=fn("json_type", value.copy()), expression=string("OBJECT")),
               true=fn("list_transform", fn("json_keys", value.copy()), exp.Lambda(
                   this=fn("json_array" if bag_as_array else "json_object", exp.column("k"),
                           fn("json_extract", value.copy(), exp.DPipe(
                               this=exp.DPipe(this=string('$."'), expression=exp.column("k")),
                               expression=string('"')))), expressions=[exp.to_identifier("k")]))),
    ], default=fn("list_value", value.copy()))
