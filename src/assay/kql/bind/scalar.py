"""Scalar expressions: names, literals, member access, operators, ``in``/``has_any``, and
function calls (through the function table in ``assay.kql.functions``), typed per Kusto's rules.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from sqlglot import exp

from assay.errors import KqlUnsupportedError, did_you_mean
from assay.kql import ast
from assay.kql.bind.scope import (
    ORDINAL,
    BinderBase,
    Environment,
    FunctionLet,
    ScalarLet,
    TabularLet,
    _AggregateScope,
    balanced,
    copy_scope,
)
from assay.kql.functions import (
    AGGREGATE_FUNCTIONS,
    MULTI_COLUMN_FUNCTIONS,
    OFFLINE_FUNCTIONS,
    SCALAR_FUNCTIONS,
    UNSUPPORTED_FUNCTIONS,
    CallContext,
    argument_problem,
    contains,
    dynamic_term_match,
    lower_term_match,
)
from assay.kql.patterns import regex_problem
from assay.kql.typed import (
    NUMERIC_TYPES,
    SQL_TYPES,
    Typed,
    as_string,
    cast,
    common_numeric,
    fn,
    interval_micros,
    literal,
    number,
    string,
    to_type,
)


class ScalarBinder(BinderBase):
    """Scalar expressions."""

    # ---------------------------------------------------------------- scalar expressions
    def unknown_column(self, name: str, pos: ast.Pos, scope: Mapping[str, Typed], env: Environment) -> NoReturn:
        candidates = list(scope) + [n for n, b in env.bindings.items() if isinstance(b, ScalarLet)]
        suggestion = did_you_mean(name, candidates)
        if name in self.tables or isinstance(env.bindings.get(name), TabularLet):
            self.fail(f"'{name}' is a table, not a column or scalar", pos,
                      "use toscalar(...) or a join to bring its values in")
        self.fail(f"unknown column or variable '{name}'", pos,
                  f"did you mean '{suggestion}'?" if suggestion else "check the column names with `| take 1`")

    def assign(self, assignments: Sequence[ast.Assignment], scope: dict[str, Typed], env: Environment,
               context: str, start_index: int = 1) -> list[tuple[str, Typed]]:
        """Lower assignments in order; later ones see earlier ones (Kusto allows extend a=1, b=a+1)."""
        results: list[tuple[str, Typed]] = []
        counter = itertools.count(start_index)
        for assignment in assignments:
            if isinstance(assignment.expr, ast.Call) and assignment.expr.name in MULTI_COLUMN_FUNCTIONS:
                for field_name, field_value in self.lower_multi_column(assignment, assignment.expr, scope, env):
                    results.append((field_name, field_value))
                    scope[field_name] = field_value
                continue
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

    def lower_multi_column(self, assignment: ast.Assignment, call: ast.Call, scope: Mapping[str, Typed],
                           env: Environment) -> list[tuple[str, Typed]]:
        """``extend series_stats(x)`` or ``extend (a, b) = series_fit_line(x)``: one column per field of the
        function's one-bag form; default names are function_argument_field, as Kusto names them."""
        bag_name, fields = MULTI_COLUMN_FUNCTIONS[call.name]
        bag = self.lower_expr(ast.Call(call.pos, bag_name, call.args), scope, env)
        names = list(assignment.names)
        if len(names) > len(fields):
            self.fail(f"{call.name}() returns {len(fields)} columns, {len(names)} names given", call.pos)
        if assignment.name:
            self.fail(f"{call.name}() returns several columns: name them (a, b, ...) = {call.name}(...)",
                      call.pos)
        argument = self.derive_name(call.args[0], None) if call.args else None
        results: list[tuple[str, Typed]] = []
        for index, (field_name, kusto_type) in enumerate(fields):
            name = names[index] if index < len(names) else \
                f"{call.name}_{argument}_{field_name}" if argument else f"{call.name}_{field_name}"
            value = Typed(fn("json_extract", bag.sql.copy(), string(f'$."{field_name}"')), "dynamic")
            results.append((name, Typed(to_type(value, kusto_type), kusto_type) if kusto_type != "dynamic"
                            else value))
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
            value, low = self.align_comparison(value, low)
            value, high = self.align_comparison(value, high)
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

    def align_comparison(self, left: Typed, right: Typed) -> tuple[Typed, Typed]:
        """Operands of a comparison made comparable the way Kusto is lenient: a dynamic value takes the other
        side's type, and a string literal compared with a number or a datetime is converted to it (``RemotePort
        == "3389"`` compares numbers; text that does not convert compares as null, so false)."""
        left, right = self.align_dynamic(left, right)
        for this, other, swap in ((left, right, False), (right, left, True)):
            if this.kusto_type != "string" or not (isinstance(this.sql, exp.Literal) and this.sql.is_string):
                continue  # only a string literal converts: FileName == 4 stays a type error
            if other.kusto_type in NUMERIC_TYPES:
                target = "real" if other.kusto_type == "real" or not self.is_whole_number_text(this) else \
                    other.kusto_type
                converted = Typed(to_type(Typed(this.sql, "string"), "real" if target == "real" else "long"),
                                  "real" if target == "real" else "long")
            elif other.kusto_type == "datetime":
                converted = Typed(to_type(this, "datetime"), "datetime")
            else:
                continue
            return (other, converted) if swap else (converted, other)
        return left, right

    @staticmethod
    def is_whole_number_text(value: Typed) -> bool:
        """A string literal that reads as a whole number ("3389"); other strings compare as reals."""
        return isinstance(value.sql, exp.Literal) and value.sql.is_string and \
            re.fullmatch(r"\s*[-+]?\d+\s*", str(value.sql.this)) is not None

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
            if right.kusto_type not in ("string", "dynamic") and not self.is_null(right):
                self.fail(f"matches regex needs a string pattern, got {right.kusto_type}", node.right.pos)
            pattern = right.sql
            if isinstance(node.right, ast.Literal) and isinstance(node.right.value, str):
                problem = regex_problem(node.right.value)
                if problem is not None:
                    self.fail(f"invalid regular expression: {problem}", node.right.pos,
                              "Kusto regexes use RE2 syntax")
            return Typed(exp.RegexpLike(this=as_string(left), expression=pattern), "bool")
        if op in ("=~", "!~"):
            equal = exp.EQ(this=exp.Lower(this=as_string(left)), expression=exp.Lower(this=as_string(right)))
            return Typed(equal if op == "=~" else exp.not_(exp.Paren(this=equal)), "bool")
        if op in ("==", "!=", "<", "<=", ">", ">="):
            left, right = self.align_comparison(left, right)
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
            if op in ("/", "%") and result_type != "real" and isinstance(node.right, ast.Literal) and \
                    node.right.value == 0:
                self.fail("division by zero", node.right.pos)
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
                for value in flatten(literal_node.value):
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
        tabular_item = node.items[0] if len(node.items) == 1 else None
        if tabular_item is not None and not isinstance(tabular_item, ast.TabularArg) and \
                isinstance(tabular_item, ast.Name | ast.Call) and tabular_item.name not in scope and \
                self.is_tabular_expr(tabular_item, env):
            # x in (SomeTabularLet), has_any (SomeTable): the let's first column
            tabular_item = ast.TabularArg(tabular_item.pos, self.as_tabular(tabular_item))
        if isinstance(tabular_item, ast.TabularArg):
            relation = self.lower_tabular(tabular_item.query, env)
            if not relation.columns:
                self.fail("the subquery has no columns", tabular_item.pos)
            first_name, first_type = relation.columns[0]
            column: exp.Expr = exp.column(first_name, quoted=True)
            if base.startswith(("has_any", "has_all")):
                term_list = exp.Subquery(this=exp.select(fn("list", cast(column, "VARCHAR")), copy=False).from_(
                    self.subquery(relation), copy=False))
                return self.has_terms(base, negated, as_string(left), exp.Coalesce(
                    this=term_list, expressions=[exp.Array(expressions=[])]))
            if base not in ("in", "in~"):
                self.unsupported(f"{op} with a tabular argument", node.pos)
            needle = left.sql if left.kusto_type not in ("string", "guid") else as_string(left)
            if left.kusto_type in ("string", "guid") and first_type not in ("string", "guid"):
                column = cast(column, "VARCHAR")
            elif left.kusto_type in NUMERIC_TYPES and first_type not in NUMERIC_TYPES:
                column = exp.TryCast(this=column if first_type != "dynamic" else fn(
                    "json_extract_string", column, string("$")), to=exp.DataType.build("DOUBLE"))
            elif left.kusto_type != first_type and not (left.kusto_type in NUMERIC_TYPES and
                                                        first_type in NUMERIC_TYPES):
                needle, column = as_string(left), cast(column, "VARCHAR")
            if base == "in~":
                column, needle = exp.Lower(this=cast(column, "VARCHAR")), exp.Lower(this=as_string(left))
            membership = exp.In(this=needle, query=exp.Subquery(this=exp.select(column, copy=False).from_(
                self.subquery(relation), copy=False)))
            return Typed(exp.not_(exp.Paren(this=membership)) if negated else membership, "bool")
        items = self.expand_list_items(node.items, scope, env, aggregates)
        if base in ("has_any", "has_all", "has_any_cs", "has_all_cs"):
            haystack = as_string(left)
            parts: list[exp.Expr] = []
            computed: list[exp.Expr] = []  # lists of terms known only at run time (a column, a non-literal let)
            for item in items:
                if isinstance(item, ast.Literal) and item.value is not None:
                    parts.append(lower_term_match(haystack, str(item.value) if not isinstance(item.value, bool)
                                                  else str(item.value).lower(),
                                                  case_sensitive=base.endswith("_cs")))
                elif isinstance(item, ast.Literal):
                    continue  # null matches nothing
                else:
                    typed_item = item
                    if typed_item.kusto_type == "dynamic":
                        computed.append(exp.Coalesce(this=fn("from_json", typed_item.sql, string('["varchar"]')),
                                                     expressions=[exp.Array(expressions=[])]))
                    else:
                        computed.append(fn("list_value", as_string(typed_item)))
            if computed:
                terms: exp.Expr = computed[0] if len(computed) == 1 else fn("flatten", exp.Array(
                    expressions=computed))
                matched = self.has_terms(base, False, haystack, terms).sql
                if parts:
                    combined_parts = balanced(parts, exp.Or if base.startswith("has_any") else exp.And)
                    matched = (exp.or_ if base.startswith("has_any") else exp.and_)(
                        exp.Paren(this=combined_parts), matched, copy=False)
                return Typed(exp.not_(exp.Paren(this=matched)) if negated else exp.Paren(this=matched), "bool")
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
            aligned_left, aligned = self.align_comparison(needle_typed, value)
            self.check_comparable(aligned_left, aligned, node.pos)
            expressions.append(as_string(aligned) if aligned.kusto_type in ("string", "guid") else aligned.sql)
            needle_typed = aligned_left
        needle = as_string(needle_typed) if needle_typed.kusto_type in ("string", "guid") else needle_typed.sql
        if base == "in~":
            needle = exp.Lower(this=needle)
            expressions = [exp.Lower(this=e) for e in expressions]
        membership = exp.In(this=needle, expressions=expressions)
        return Typed(exp.not_(exp.Paren(this=membership)) if negated else membership, "bool")

    def lower_window_function(self, node: ast.Call, scope: Mapping[str, Typed], env: Environment,
                              aggregates: _AggregateScope | None) -> Typed:
        """prev/next/row_number/row_cumsum over serialized rows: window functions ordered by the hidden order."""
        name = node.name
        low, high = WINDOW_FUNCTIONS[name]
        if not low <= len(node.args) <= high:
            self.fail(f"{name}() takes {low} to {high} arguments, got {len(node.args)}", node.pos)
        if name in ("row_number", "row_cumsum") and len(node.args) == high:
            self.unsupported(f"{name}() with a restart condition", node.args[-1].pos)
        if not self.serialized_rows:
            self.fail(f"{name}() needs serialized rows", node.pos,
                      "put `| serialize` (or a sort) before it; it runs in extend or project")
        order = exp.Order(expressions=[exp.Ordered(this=exp.column(ORDINAL, quoted=True))])
        args = [self.lower_expr(a, scope, env, aggregates) for a in node.args]
        if name == "row_number":
            start = args[0].sql if args else number(1)
            return Typed(exp.Add(this=exp.Window(this=exp.RowNumber(), order=order), expression=exp.Sub(
                this=exp.Paren(this=start), expression=number(1))), "long")
        if name == "row_cumsum":
            if args[0].kusto_type not in NUMERIC_TYPES:
                self.fail(f"row_cumsum() needs a number, got {args[0].kusto_type}", node.args[0].pos)
            frame = exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW")
            return Typed(exp.Window(this=exp.Sum(this=args[0].sql), order=order, spec=frame),
                         "real" if args[0].kusto_type == "real" else "long")
        value = args[0]
        offset = args[1].sql if len(args) > 1 else number(1)
        if len(args) > 1 and args[1].kusto_type not in ("long", "int"):
            self.fail(f"{name}()'s offset must be a whole number", node.args[1].pos)
        window_args = [value.sql, offset]
        if len(args) > 2:
            window_args.append(self.coerce(args[2], value.kusto_type, node.args[2].pos, f"the default of {name}()"))
        shifted = exp.Window(this=exp.Anonymous(this="lag" if name == "prev" else "lead", expressions=window_args),
                             order=order)
        if value.kusto_type in ("string", "guid") and len(args) <= 2:
            return Typed(exp.Coalesce(this=shifted, expressions=[string("")]), value.kusto_type)
        return Typed(shifted, value.kusto_type)

    def has_terms(self, base: str, negated: bool, haystack: exp.Expr, terms: exp.Expr) -> Typed:
        """``has_any``/``has_all`` over a list of terms known only at run time (a tabular let, a column)."""
        variable = exp.to_identifier("__term")
        matches = dynamic_term_match(haystack, exp.column("__term"), case_sensitive=base.endswith("_cs"))
        if base.startswith("has_any"):
            result: exp.Expr = exp.GT(this=fn("len", fn("list_filter", terms, exp.Lambda(
                this=matches, expressions=[variable]))), expression=number(0))
        else:
            result = exp.EQ(this=fn("len", fn("list_filter", terms, exp.Lambda(
                this=exp.not_(exp.Paren(this=matches)), expressions=[variable]))), expression=number(0))
        return Typed(exp.not_(exp.Paren(this=result)) if negated else result, "bool")

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
        if name in WINDOW_FUNCTIONS:
            return self.lower_window_function(node, scope, env, aggregates)
        if name == "ingestion_time":
            if node.args:
                self.fail("ingestion_time() takes no arguments", node.pos)
            # Assay keeps no ingestion time: a table's own _IngestionTime when it has one, else the record's
            # TimeGenerated / Timestamp (when the event was logged), else null
            for column in ("_IngestionTime", "IngestionTime", "TimeGenerated", "Timestamp"):
                if column in scope and scope[column].kusto_type == "datetime":
                    return scope[column]
            return Typed(literal(None, "datetime"), "datetime")
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
        for index, (argument, typed_argument) in enumerate(zip(node.args, args, strict=True)):
            problem = argument_problem(name, index, typed_argument.kusto_type, self.is_null(typed_argument))
            if problem is not None:
                self.fail(problem, argument.pos, "convert it, e.g. todouble(...), todatetime(...), "
                                                 "parse_json(...) or tobool(...)")
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



#: Functions over serialized rows → (fewest, most arguments)
WINDOW_FUNCTIONS = {"prev": (1, 3), "next": (1, 3), "row_number": (0, 2), "row_cumsum": (1, 2)}


def flatten(values: list[Any]) -> list[Any]:
    """Nested arrays flattened into one list of values, as ``in`` reads them (``x in (dynamic([1,[2,3]]))`` is
    ``x in (1,2,3)`` per Microsoft's in-operator documentation)."""
    result: list[Any] = []
    pending = list(reversed(values))
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(reversed(value))
        else:
            result.append(value)
    return result


def not_positional(expression: exp.Expr) -> exp.Expr:
    """SQL reads a bare integer in ORDER BY / GROUP BY as a column position; KQL means the constant."""
    literal_value = expression.this if isinstance(expression, exp.Neg) else expression
    if isinstance(literal_value, exp.Literal) and not literal_value.is_string:
        return exp.Cast(this=expression, to=exp.DataType.build("DOUBLE"))
    return expression
