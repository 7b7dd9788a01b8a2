"""Exact rule logic in Python: a compiled target's SQL condition turned into a Python function, SQL semantics kept.

DuckDB plans each rule's SQL in milliseconds; with thousands of rules that planning, repeated per chunk, costs more
than the hunt itself. The fast path therefore evaluates candidates with Python code generated from the same
sqlglot tree: three-valued logic (``None`` is SQL NULL), ``lower`` as DuckDB folds, LIKE with its escape, RE2
regular expressions, ``TRY_CAST`` to DOUBLE, ``list_bool_or`` over the map values. A construct outside this
vocabulary makes :func:`python_source` return None, and that target is checked on DuckDB instead. The equality
test (fast path vs one DuckDB query per rule over SigmaHQ and EVTX-ATTACK-SAMPLES) holds both to the same answers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import re2
import sqlglot
from sqlglot import exp

from assay.hunt.codecache import compile_cached
from assay.hunt.events import duck_lower

#: The arguments of a generated predicate: RawEvents.Fields and the System columns.
ARGUMENTS = ("F", "EventID", "Channel", "Provider", "Computer")
_COLUMNS = {"EventID", "Channel", "Provider", "Computer"}


class Unsupported(Exception):
    """A node the Python evaluator does not implement (the target falls back to DuckDB)."""


# -- runtime helpers (the generated code calls these) ------------------------------------------------------------
def h_and(*values: bool | None) -> bool | None:
    result: bool | None = True
    for value in values:
        if value is False:
            return False
        if value is None:
            result = None
    return result


def h_or(*values: bool | None) -> bool | None:
    result: bool | None = False
    for value in values:
        if value is True:
            return True
        if value is None:
            result = None
    return result


def h_not(value: bool | None) -> bool | None:
    return None if value is None else not value


def h_coalesce(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def h_lower(value: Any) -> str | None:
    return None if value is None else duck_lower(value)


def h_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def h_trim(value: Any) -> str | None:
    return None if value is None else str(value).strip(" ")


_NUMBER = re.compile(r"\s*[+-]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?\s*|\s*[+-]?(inf|infinity|nan)\s*",
                     re.IGNORECASE | re.ASCII)


def h_double(value: Any) -> float | None:
    """``TRY_CAST(value AS DOUBLE)``: decimal text (underscores allowed, as DuckDB allows), inf and nan."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    if not _NUMBER.fullmatch(text) or "__" in text:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number


def h_eq(left: Any, right: Any) -> bool | None:
    if left is None or right is None:
        return None
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right):
        return True  # DuckDB orders NaN as equal to itself
    return bool(left == right)


def h_compare(left: Any, right: Any, operator: str) -> bool | None:
    if left is None or right is None:
        return None
    if operator == "<":
        return bool(left < right)
    if operator == "<=":
        return bool(left <= right)
    if operator == ">":
        return bool(left > right)
    return bool(left >= right)


def h_in(value: Any, options: frozenset[Any]) -> bool | None:
    return None if value is None else value in options


def h_any(predicate: Callable[[Any], bool | None], values: Iterable[Any]) -> bool | None:
    """``list_bool_or(list_transform(values, predicate))``: NULL for an empty or all-NULL list."""
    seen_false = False
    for value in values:
        outcome = predicate(value)
        if outcome is True:
            return True
        if outcome is False:
            seen_false = True
    return False if seen_false else None


def h_contains(text: Any, part: Any) -> bool | None:
    return None if text is None or part is None else part in text


def h_starts(text: Any, part: Any) -> bool | None:
    return None if text is None or part is None else text.startswith(part)


def h_ends(text: Any, part: Any) -> bool | None:
    return None if text is None or part is None else text.endswith(part)


@lru_cache(maxsize=65536)
def like_matcher(pattern: str, escape: str | None) -> Callable[[str], bool]:
    """A matcher for ``value LIKE pattern [ESCAPE escape]`` (case as given: callers lower both sides)."""
    parts = like_parts(pattern, escape)
    kinds = [kind for kind, _ in parts]
    if "one" not in kinds:
        middle = [text for kind, text in parts if kind == "lit"]
        starts_any = bool(parts) and parts[0][0] == "any"
        ends_any = bool(parts) and parts[-1][0] == "any"
        if len(middle) == 0:
            return (lambda value: True) if kinds else (lambda value: value == "")
        if len(middle) == 1:
            text = middle[0]
            if starts_any and ends_any:
                return lambda value: text in value
            if starts_any:
                return lambda value: value.endswith(text)
            if ends_any:
                return lambda value: value.startswith(text)
            return lambda value: value == text
    regex = "".join(".*" if kind == "any" else "." if kind == "one" else re.escape(text) for kind, text in parts)
    compiled = re.compile(regex, re.DOTALL)
    return lambda value: compiled.fullmatch(value) is not None


def h_like(value: Any, pattern: str, escape: str | None) -> bool | None:
    if value is None:
        return None
    return like_matcher(pattern, escape)(value)


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> Any:
    return re2.compile(pattern)


def h_regex(value: Any, pattern: str) -> bool | None:
    if value is None:
        return None
    return _regex(pattern).search(value) is not None


HELPERS: dict[str, Any] = {name: value for name, value in globals().items() if name.startswith("h_")}


# -- code generation ---------------------------------------------------------------------------------------------
class _Generator:
    """SQL expression → Python expression with three-valued results (True, False, None for NULL)."""

    def __init__(self) -> None:
        self.lambda_depth = 0

    def operand(self, node: exp.Expr) -> str:
        """A value a comparison reads (the truth generator hoists these into locals)."""
        return self.expression(node)

    def constant_string(self, node: exp.Expr) -> str | None:
        """The value of a string constant, folding lower() and casts of constants as DuckDB does."""
        if isinstance(node, exp.Paren):
            return self.constant_string(node.this)
        if isinstance(node, exp.Lower):
            inner = self.constant_string(node.this)
            return None if inner is None else duck_lower(inner)
        if isinstance(node, exp.Literal) and node.is_string:
            return str(node.this)
        return None

    def expression(self, node: exp.Expr) -> str:
        if isinstance(node, exp.Paren):
            return self.expression(node.this)
        if isinstance(node, exp.And):
            return "h_and(" + ", ".join(self.expression(p) for p in node.flatten()) + ")"
        if isinstance(node, exp.Or):
            return "h_or(" + ", ".join(self.expression(p) for p in node.flatten()) + ")"
        if isinstance(node, exp.Not):
            return f"h_not({self.expression(node.this)})"
        if isinstance(node, exp.Boolean):
            return "True" if node.this else "False"
        if isinstance(node, exp.Null):
            return "None"
        if isinstance(node, exp.Literal):
            if node.is_string:
                return repr(str(node.this))
            text = str(node.this)
            try:
                return repr(int(text)) if re.fullmatch(r"-?\d+", text) else repr(float(text))
            except ValueError as error:
                raise Unsupported(f"number literal {text}") from error
        if isinstance(node, exp.Neg):
            return f"(-{self.expression(node.this)})"
        if isinstance(node, exp.Coalesce):
            return "h_coalesce(" + ", ".join(self.expression(p) for p in [node.this, *node.expressions]) + ")"
        if isinstance(node, exp.Lower):
            constant = self.constant_string(node)
            if constant is not None:
                return repr(constant)
            return f"h_lower({self.expression(node.this)})"
        if isinstance(node, exp.Trim):
            if node.args.get("expression") is not None or node.args.get("position"):
                raise Unsupported("trim with characters or position")
            return f"h_trim({self.expression(node.this)})"
        if isinstance(node, exp.TryCast | exp.Cast):
            target = node.to.sql(dialect="duckdb").upper()
            inner = self.expression(node.this)
            if target in ("VARCHAR", "TEXT", "STRING"):
                return f"h_str({inner})"
            if target == "DOUBLE":
                if isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast):
                    raise Unsupported("CAST to DOUBLE may fail")
                return f"h_double({inner})"
            raise Unsupported(f"cast to {target}")
        if isinstance(node, exp.Bracket):
            base = node.this
            keys = node.expressions
            if (isinstance(base, exp.Column) and base.name == "Fields" and len(keys) == 1
                    and isinstance(keys[0], exp.Literal) and keys[0].is_string):
                return f"F.get({str(keys[0].this)!r})"
            raise Unsupported("subscript other than Fields['name']")
        if isinstance(node, exp.Identifier) and self.lambda_depth and node.name == "field_value":
            return "field_value"
        if isinstance(node, exp.Column):
            if node.table:
                raise Unsupported("qualified column")
            name = node.name
            if self.lambda_depth and name == "field_value":
                return "field_value"
            if name in _COLUMNS:
                return name
            raise Unsupported(f"column {name}")
        if isinstance(node, exp.Escape):
            inner = node.this
            escape = self.constant_string(node.expression)
            if not isinstance(inner, exp.Like) or escape is None:
                raise Unsupported("ESCAPE on something other than LIKE")
            return self.like(inner, escape)
        if isinstance(node, exp.Like):
            return self.like(node, None)
        if isinstance(node, exp.EQ):
            return f"h_eq({self.operand(node.this)}, {self.operand(node.expression)})"
        for kind, operator in ((exp.LT, "<"), (exp.LTE, "<="), (exp.GT, ">"), (exp.GTE, ">=")):
            if isinstance(node, kind):
                return f"h_compare({self.operand(node.this)}, {self.operand(node.expression)}, {operator!r})"
        if isinstance(node, exp.Is):
            if isinstance(node.expression, exp.Null):
                return f"({self.operand(node.this)} is None)"
            raise Unsupported("IS other than IS NULL")
        if isinstance(node, exp.In):
            if node.args.get("query") is not None or node.args.get("unnest") is not None:
                raise Unsupported("IN subquery")
            options = []
            for option in node.expressions:
                constant = self.constant_string(option)
                if constant is not None:
                    options.append(repr(constant))
                elif isinstance(option, exp.Literal):
                    options.append(self.expression(option))
                else:
                    raise Unsupported("IN with a non-constant")
            return f"h_in({self.operand(node.this)}, frozenset(({', '.join(options)},)))"
        if isinstance(node, exp.RegexpLike):
            pattern = self.constant_string(node.expression)
            if pattern is None or node.args.get("flag") is not None:
                raise Unsupported("regexp with non-constant pattern or flags")
            return f"h_regex({self.operand(node.this)}, {pattern!r})"
        if isinstance(node, exp.StartsWith):
            return f"h_starts({self.expression(node.this)}, {self.expression(node.expression)})"
        if isinstance(node, exp.Anonymous | exp.Func):
            return self.function(node)
        raise Unsupported(type(node).__name__)

    def like(self, node: exp.Like, escape: str | None) -> str:
        pattern = self.constant_string(node.expression)
        if pattern is None:
            raise Unsupported("LIKE with a non-constant pattern")
        return f"h_like({self.operand(node.this)}, {pattern!r}, {escape!r})"

    def function(self, node: exp.Expr) -> str:
        name = _function_name(node)
        arguments = list(node.expressions) if isinstance(node, exp.Anonymous) else [
            a for a in (node.args.get("this"), node.args.get("expression")) if a is not None]
        if name == "list_bool_or" and len(arguments) == 1:
            transform = arguments[0]
            values: exp.Expr | None = None
            lam: exp.Expr | None = None
            if isinstance(transform, exp.Transform):
                values, lam = transform.this, transform.expression
            elif isinstance(transform, exp.Anonymous) and str(transform.name).lower() == "list_transform":
                values, lam = transform.expressions
            if (values is not None and isinstance(values, exp.Anonymous | exp.Func)
                    and isinstance(lam, exp.Lambda) and _function_name(values) == "map_values"):
                source = values.expressions[0] if isinstance(values, exp.Anonymous) else values.this
                if not (isinstance(source, exp.Column) and source.name == "Fields"):
                    raise Unsupported("map_values of something other than Fields")
                parameters = [p.name for p in lam.expressions]
                if parameters != ["field_value"]:
                    raise Unsupported("lambda parameter other than field_value")
                self.lambda_depth += 1
                body = self.expression(lam.this)
                self.lambda_depth -= 1
                return f"h_any(lambda field_value: {body}, F.values())"
            raise Unsupported("list_bool_or of something other than list_transform(map_values(Fields), …)")
        helpers = {"contains": "h_contains", "starts_with": "h_starts", "ends_with": "h_ends",
                   "startswith": "h_starts", "endswith": "h_ends", "suffix": "h_ends", "prefix": "h_starts"}
        if name in helpers and len(arguments) == 2:
            return f"{helpers[name]}({self.expression(arguments[0])}, {self.expression(arguments[1])})"
        raise Unsupported(f"function {name}")


def _function_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.Func):
        return str(node.sql_name()).lower()
    return type(node).__name__.lower()


def like_parts(pattern: str, escape: str | None) -> list[tuple[str, str]]:
    """A LIKE pattern split into ("lit", text) | ("any", "") | ("one", "") parts, escapes resolved."""
    parts: list[tuple[str, str]] = []
    literal: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if escape and char == escape and index + 1 < len(pattern):
            literal.append(pattern[index + 1])
            index += 2
            continue
        if char in "%_":
            if literal:
                parts.append(("lit", "".join(literal)))
                literal = []
            parts.append(("any" if char == "%" else "one", ""))
        else:
            literal.append(char)
        index += 1
    if literal:
        parts.append(("lit", "".join(literal)))
    return parts


def like_test(value: str, pattern: str, escape: str | None) -> str | None:
    """A direct Python test of ``value LIKE pattern`` for the common shapes (``%x%``, ``x%``, ``%x``, ``x``),
    assuming ``value`` is not None; None for other shapes."""
    parts = like_parts(pattern, escape)
    kinds = [kind for kind, _ in parts]
    literals = [text for kind, text in parts if kind == "lit"]
    if "one" in kinds or len(literals) != 1 or kinds.count("any") > 2:
        return None
    text = literals[0]
    if kinds == ["any", "lit", "any"]:
        return f"{text!r} in {value}"
    if kinds == ["lit", "any"]:
        return f"{value}.startswith({text!r})"
    if kinds == ["any", "lit"]:
        return f"{value}.endswith({text!r})"
    if kinds == ["lit"]:
        return f"{value} == {text!r}"
    return None


class _TruthGenerator(_Generator):
    """A WHERE condition as a Python function returning whether it IS TRUE, short-circuiting.

    Only TRUE selects a row, so AND/OR/NOT become Python's ``and``/``or``/``not`` over "is true" and "is false"
    tests (exactly three-valued: ``NOT x`` is true when x IS FALSE, not when x is NULL); the values the
    comparisons read (``lower(Fields['Image'])``…) are computed once per call into locals.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hoisted: dict[str, str] = {}

    def operand(self, node: exp.Expr) -> str:
        source = self.expression(node)
        if self.lambda_depth or isinstance(node, exp.Literal | exp.Null | exp.Boolean):
            return source
        if self.constant_string(node) is not None:
            return source
        return self.hoisted.setdefault(source, f"_v{len(self.hoisted)}")

    def _like_node(self, node: exp.Expr) -> tuple[exp.Like, str | None] | None:
        if isinstance(node, exp.Escape) and isinstance(node.this, exp.Like):
            escape = self.constant_string(node.expression)
            return (node.this, escape) if escape is not None else None
        if isinstance(node, exp.Like):
            return node, None
        return None

    def _like_check(self, node: exp.Expr, *, negate: bool) -> str | None:
        """A LIKE with a constant pattern as a direct string test (NULL is neither true nor false), or None."""
        like = self._like_node(node)
        if like is None or self.lambda_depth:
            return None
        pattern = self.constant_string(like[0].expression)
        if pattern is None:
            return None
        value = self.operand(like[0].this)
        test = like_test(value, pattern, like[1])
        if test is None:
            return None
        return f"({value} is not None and not ({test}))" if negate else f"({value} is not None and {test})"

    def _only_false_fallback(self, node: exp.Coalesce) -> bool:
        return all(isinstance(f, exp.Boolean) and not f.this for f in node.expressions)

    def truth(self, node: exp.Expr) -> str:
        if isinstance(node, exp.Paren):
            return self.truth(node.this)
        if isinstance(node, exp.And):
            return "(" + " and ".join(self.truth(p) for p in node.flatten()) + ")"
        if isinstance(node, exp.Or):
            return "(" + " or ".join(self.truth(p) for p in node.flatten()) + ")"
        if isinstance(node, exp.Not):
            return self.falsity(node.this)
        if isinstance(node, exp.Boolean):
            return "True" if node.this else "False"
        if isinstance(node, exp.Coalesce) and self._only_false_fallback(node):
            return self.truth(node.this)
        like = self._like_check(node, negate=False)
        return like if like is not None else f"({self.expression(node)} is True)"

    def falsity(self, node: exp.Expr) -> str:
        if isinstance(node, exp.Paren):
            return self.falsity(node.this)
        if isinstance(node, exp.And):
            return "(" + " or ".join(self.falsity(p) for p in node.flatten()) + ")"
        if isinstance(node, exp.Or):
            return "(" + " and ".join(self.falsity(p) for p in node.flatten()) + ")"
        if isinstance(node, exp.Not):
            return self.truth(node.this)
        if isinstance(node, exp.Boolean):
            return "False" if node.this else "True"
        if isinstance(node, exp.Coalesce) and self._only_false_fallback(node):
            return f"(not {self.truth(node.this)})"
        like = self._like_check(node, negate=True)
        return like if like is not None else f"({self.expression(node)} is False)"

    def function_source(self, tree: exp.Expr) -> str:
        body = self.truth(tree)
        lines = [f"def predicate({', '.join(ARGUMENTS)}):"]
        lines += [f"    {name} = {source}" for source, name in self.hoisted.items()]
        lines.append(f"    return {body}")
        return "\n".join(lines) + "\n"


def python_source(where_sql: str | exp.Expr) -> str | None:
    """Python source of a function ``predicate(F, EventID, Channel, Provider, Computer) -> bool`` telling whether a
    DuckDB WHERE condition (its SQL, or that SQL parsed) is TRUE for a row, or None when the condition uses an
    unsupported construct."""
    try:
        tree = sqlglot.parse_one(where_sql, read="duckdb") if isinstance(where_sql, str) else where_sql
        return _TruthGenerator().function_source(tree)
    except Unsupported:
        return None
    except (sqlglot.errors.ParseError, RecursionError):
        return None


Predicate = Callable[[dict[str, str | None], int | None, str | None, str | None, str | None], bool]


def compile_predicate(source: str) -> Predicate:
    """The function for a generated source (trusted: produced by :func:`python_source` from our own trees)."""
    namespace = dict(HELPERS)
    exec(compile_cached(source, "<assay-rule>", "exec"), namespace)
    function: Predicate = namespace["predicate"]
    return function
