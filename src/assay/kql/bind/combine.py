"""Operators that combine tables: join (Kusto's join kinds, innerunique by default) and union
(columns matched by name, conflicting types split into name_type).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence

from sqlglot import exp

from assay.errors import KqlBindError, did_you_mean
from assay.kql import ast
from assay.kql.bind.aggregate import AggregateBinder
from assay.kql.bind.scope import (
    Environment,
    Relation,
    aliased,
)
from assay.kql.typed import (
    NUMERIC_TYPES,
    literal,
    number,
    string,
)

#: A table wildcard (union *, search) expanding to more tables than this is refused: each table is one leg
MAX_WILDCARD_TABLES = 64


class CombineOperators(AggregateBinder):
    """Operators that combine tables."""

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
            left_type, right_type = left.type_of(left_name), right.type_of(right_name)
            if left_type != right_type and not ({left_type, right_type} <= {"string", "guid"} or (
                    left_type in NUMERIC_TYPES and right_type in NUMERIC_TYPES)):
                self.fail(f"the {operator.name} compares {left_name} ({left_type}) with {right_name} "
                          f"({right_type})", pos, "convert one side first, e.g. extend Key = tostring(...)")
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

    def expand_table_patterns(self, sources: Sequence[ast.TabularExpr]) -> list[ast.TabularExpr]:
        """``union *``, ``union Device*``: a table-name wildcard stands for every known table it matches."""
        expanded: list[ast.TabularExpr] = []
        for source in sources:
            if isinstance(source, ast.TableRef) and "*" in source.name:
                names = self.data_tables if self.data_tables is not None else self.tables
                matches = sorted(n for n in names if n in self.tables and fnmatch.fnmatchcase(n, source.name))
                if not matches:
                    self.fail(f"no table matches '{source.name}'", source.pos,
                              "ingest data with `assay ingest`, or name the tables")
                if len(matches) > MAX_WILDCARD_TABLES:
                    # without data (check, compile) every known schema matches: hundreds of legs
                    self.unsupported(f"'{source.name}' matches {len(matches)} known tables (at most "
                                     f"{MAX_WILDCARD_TABLES} here)", source.pos,
                                     "name the tables (search in (T1, T2) ..., union T1, T2), or run the query on "
                                     "a database, where the wildcard reads only the tables that hold data")
                expanded.extend(ast.TableRef(source.pos, name) for name in matches)
            else:
                expanded.append(source)
        return expanded

    def lower_union(self, first: Relation | None, sources: Sequence[ast.TabularExpr], kind: str,
                    withsource: str | None, isfuzzy: bool, env: Environment, pos: ast.Pos,
                    per_leg: Callable[[Relation], Relation] | None = None) -> Relation:
        legs: list[Relation] = [] if first is None else [per_leg(first) if per_leg else first]
        for index, source in enumerate(self.expand_table_patterns(sources)):
            try:
                relation = self.lower_tabular(source, env)
                if relation.source_name is None:
                    relation.source_name = source.name if isinstance(source, ast.TableRef) else \
                        f"union_arg{index + (1 if first is not None else 0)}"
                if per_leg is not None:
                    name = relation.source_name
                    relation = per_leg(relation)
                    relation.source_name = name
            except KqlBindError:
                if isfuzzy:
                    continue
                raise
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



class SearchOperators(CombineOperators):
    """search: a bare string matches a term in any column, ``Col:"x"`` a term in Col (``*`` wildcards)."""

    def lower_search(self, node: ast.Search, env: Environment) -> Relation:
        sources: list[ast.TabularExpr] = [ast.TableRef(node.pos, name) for name in node.tables]

        def matching(relation: Relation) -> Relation:
            return self.op_search(relation, ast.SearchOp(node.pos, "search", node.predicate, node.case_sensitive),
                                  env)
        # a table without a column the predicate names cannot match it: skip it, as union isfuzzy=true does
        return self.lower_union(None, sources, "outer", "$table", len(sources) > 1 or "*" in node.tables[0],
                                env, node.pos, per_leg=matching)

    def op_search(self, source: Relation, operator: ast.SearchOp, env: Environment) -> Relation:
        predicate = search_predicate(operator.predicate, source.columns, operator.case_sensitive)
        return self.op_where(source, ast.Where(operator.pos, "where", predicate), env)


def search_predicate(node: ast.Expr, columns: Sequence[tuple[str, str]], case_sensitive: bool) -> ast.Expr:
    """The search predicate for one table: terms become ``has`` tests over its string and dynamic columns."""
    if isinstance(node, ast.Literal) and isinstance(node.value, str):
        tests = [term_test(ast.Name(node.pos, name), kusto_type, node.value, case_sensitive, node.pos)
                 for name, kusto_type in columns if kusto_type in ("string", "dynamic", "guid")]
        if not tests:
            return ast.Literal(node.pos, False, "bool")
        result = tests[0]
        for test in tests[1:]:
            result = ast.Binary(node.pos, "or", result, test)
        return result
    if isinstance(node, ast.Binary) and node.op == ":" and isinstance(node.left, ast.Name) and \
            isinstance(node.right, ast.Literal) and isinstance(node.right.value, str):
        kusto_type = dict(columns).get(node.left.name)
        if kusto_type is None:
            return ast.Literal(node.pos, False, "bool")  # a table without the column has no match
        return term_test(node.left, kusto_type, node.right.value, case_sensitive, node.pos)
    if isinstance(node, ast.Binary) and node.op == ":":
        return ast.Binary(node.pos, "has_cs" if case_sensitive else "has", node.left, node.right)
    if isinstance(node, ast.Binary) and node.op in ("and", "or"):
        return ast.Binary(node.pos, node.op, search_predicate(node.left, columns, case_sensitive),
                          search_predicate(node.right, columns, case_sensitive))
    if isinstance(node, ast.Unary) and node.op == "not":
        return ast.Unary(node.pos, "not", search_predicate(node.operand, columns, case_sensitive))
    return node


def term_test(column: ast.Expr, kusto_type: str, term: str, case_sensitive: bool, pos: ast.Pos) -> ast.Expr:
    """``column`` has ``term``; ``x*`` is a prefix, ``*x`` a suffix, ``*x*`` a substring, as search reads them."""
    text: ast.Expr = column if kusto_type in ("string", "guid") else ast.Call(pos, "tostring", (column,))
    suffix = "_cs" if case_sensitive else ""
    core = term.strip("*")
    if "*" in core:
        pieces = [re.escape(piece) for piece in term.split("*")]
        regex = ("" if case_sensitive else "(?i)") + ".*".join(pieces)
        return ast.Binary(pos, "matches regex", text, ast.Literal(pos, regex, "string"))
    if term.startswith("*") and term.endswith("*") and len(term) > 1:
        return ast.Binary(pos, "contains" + suffix, text, ast.Literal(pos, core, "string"))
    if term.endswith("*"):
        return ast.Binary(pos, "hasprefix" + suffix, text, ast.Literal(pos, core, "string"))
    if term.startswith("*"):
        return ast.Binary(pos, "hassuffix" + suffix, text, ast.Literal(pos, core, "string"))
    return ast.Binary(pos, "has" + suffix, text, ast.Literal(pos, term, "string"))
