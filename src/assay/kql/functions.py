"""Kusto scalar and aggregate functions as a table: name → arity, lowering to sqlglot, support status.

Declarative on purpose (as ibis keeps its operation registry): ``docs/kql-support.md`` is generated from these
tables, and a name missing from them is an "unknown function" error with a "did you mean", never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlglot import exp

from assay.errors import KqlBindError, KqlUnsupportedError, SourceSpan
from assay.kql import ast
from assay.kql.patterns import capture_groups, regex_problem
from assay.kql.typed import (
    NUMERIC_TYPES,
    Typed,
    as_string,
    cast,
    common_numeric,
    fn,
    interval_micros,
    number,
    string,
    to_type,
)


@dataclass
class CallContext:
    """What a function lowering may need: the call node, its raw arguments, the fixed now(), error helpers."""

    call: ast.Call
    now: exp.Expr
    file: str | None
    text: str

    def span(self, node: ast.Expr | None = None) -> SourceSpan:
        pos = (node or self.call).pos
        return SourceSpan(self.file, pos[0], pos[1], self.text)

    def error(self, message: str, node: ast.Expr | None = None, hint: str | None = None) -> KqlBindError:
        return KqlBindError(message, self.span(node), hint)

    def constant(self, index: int, kind: type | tuple[type, ...] = str) -> Any:
        """The literal value of argument ``index`` (needed for regexes, formats, units)."""
        arg = self.call.args[index]
        if isinstance(arg, ast.Literal) and isinstance(arg.value, kind):
            return arg.value
        raise KqlUnsupportedError(
            f"argument {index + 1} of {self.call.name}() must be a constant here", self.span(arg),
            "use a literal value (or a scalar let of a literal)")

    def regex(self, index: int) -> str:
        """The constant RE2 pattern of argument ``index``, checked now so a bad pattern is a located error."""
        pattern = str(self.constant(index))
        problem = regex_problem(pattern)
        if problem is not None:
            raise self.error(f"invalid regular expression in {self.call.name}(): {problem}",
                             self.call.args[index], "Kusto regexes use RE2 syntax")
        return pattern


Lowering = Callable[[CallContext, list[Typed]], Typed]


@dataclass(frozen=True)
class ScalarFunction:
    name: str
    min_args: int
    max_args: int
    lower: Lowering
    status: str = "supported"  # supported | partial
    note: str = ""


@dataclass(frozen=True)
class AggregateFunction:
    name: str
    min_args: int
    max_args: int
    column_prefix: str  # Kusto's default output name: count_, sum_X, dcount_X ...
    status: str = "supported"
    note: str = ""
    aliases: tuple[str, ...] = field(default=())


SCALAR_FUNCTIONS: dict[str, ScalarFunction] = {}


def scalar(name: str, min_args: int, max_args: int | None = None, *, status: str = "supported", note: str = "",
           aliases: tuple[str, ...] = ()) -> Callable[[Lowering], Lowering]:
    def register(lower: Lowering) -> Lowering:
        spec = ScalarFunction(name, min_args, min_args if max_args is None else max_args, lower, status, note)
        SCALAR_FUNCTIONS[name] = spec
        for alias in aliases:
            SCALAR_FUNCTIONS[alias] = ScalarFunction(alias, spec.min_args, spec.max_args, lower, status,
                                                     note or f"alias of {name}")
        return lower
    return register


def s(value: Typed) -> exp.Expr:
    return as_string(value)


# ---------------------------------------------------------------- term matching (has family)

ALNUM_CLASS = "[0-9A-Za-z]"
NON_ALNUM = "[^0-9A-Za-z]"


def term_regex(needle: str, *, prefix: bool = False, suffix: bool = False, case_sensitive: bool = False) -> str:
    """An RE2/Java-compatible regex for Kusto's term match.

    A term is a maximal run of ASCII alphanumerics. Only the needle's alphanumeric edges need a term boundary:
    ``has "/s"`` matches ``x /s y`` but not ``x /su``; ``has ".inf"`` matches ``a.inf`` but not ``a.info``.
    ``hasprefix`` checks only the start boundary, ``hassuffix`` only the end boundary.
    """
    body = re.escape(needle)
    start = "" if suffix else (f"(?:^|{NON_ALNUM})" if needle[:1].isascii() and needle[:1].isalnum() else "")
    end = "" if prefix else (f"(?:$|{NON_ALNUM})" if needle[-1:].isascii() and needle[-1:].isalnum() else "")
    flags = "" if case_sensitive else "(?i)"
    return f"{flags}(?s){start}{body}{end}"


def lower_term_match(haystack: exp.Expr, needle: str, *, prefix: bool = False, suffix: bool = False,
                     case_sensitive: bool = False) -> exp.Expr:
    """Kusto ``has``/``hasprefix``/``hassuffix``: a cheap substring prefilter, then the exact term regex."""
    if needle == "":
        return exp.true()
    lowered_haystack = haystack if case_sensitive else exp.Lower(this=haystack)
    lowered_needle = needle if case_sensitive else needle.lower()
    prefilter = exp.GT(this=exp.StrPosition(this=lowered_haystack, substr=string(lowered_needle)),
                       expression=number(0))
    needs_regex = (needle[:1].isascii() and needle[:1].isalnum() and not suffix) or \
                  (needle[-1:].isascii() and needle[-1:].isalnum() and not prefix)
    if not needs_regex:
        if prefix:  # hasprefix with a punctuation start: needle anywhere
            return prefilter
        return prefilter
    regex = exp.RegexpLike(this=haystack, expression=string(term_regex(
        needle, prefix=prefix, suffix=suffix, case_sensitive=case_sensitive)))
    return exp.and_(prefilter, regex, copy=False)


def dynamic_term_match(haystack: exp.Expr, needle: exp.Expr, *, case_sensitive: bool = False) -> exp.Expr:
    """``has`` with a needle known only at run time: the term regex is built in SQL (an empty needle matches,
    as in Kusto; term boundaries only at the needle's alphanumeric edges, as in :func:`term_regex`)."""
    start = exp.Case(ifs=[exp.If(this=exp.RegexpLike(this=needle, expression=string(f"^{ALNUM_CLASS}")),
                                 true=string(f"(?:^|{NON_ALNUM})"))], default=string(""))
    end = exp.Case(ifs=[exp.If(this=exp.RegexpLike(this=needle.copy(), expression=string(f"{ALNUM_CLASS}$")),
                               true=string(f"(?:$|{NON_ALNUM})"))], default=string(""))
    flags = string("(?s)" if case_sensitive else "(?is)")
    pattern = exp.DPipe(this=exp.DPipe(this=exp.DPipe(this=flags, expression=start), expression=fn(
        "regexp_escape", needle.copy())), expression=end)
    return exp.Or(this=exp.EQ(this=needle.copy(), expression=string("")),
                  expression=exp.RegexpLike(this=haystack, expression=pattern))


def contains(haystack: exp.Expr, needle: exp.Expr, case_sensitive: bool) -> exp.Expr:
    if not case_sensitive:
        haystack, needle = exp.Lower(this=haystack), exp.Lower(this=needle)
    return exp.GT(this=exp.StrPosition(this=haystack, substr=needle), expression=number(0))


# ---------------------------------------------------------------- conversions

def _conversion(target: str) -> Lowering:
    def lower(ctx: CallContext, args: list[Typed]) -> Typed:
        return Typed(to_type(args[0], target), target)
    return lower


for _name, _target in (("tostring", "string"), ("toint", "int"), ("tolong", "long"), ("todouble", "real"),
                       ("toreal", "real"), ("tobool", "bool"), ("toboolean", "bool"), ("todatetime", "datetime"),
                       ("totimespan", "timespan"), ("toguid", "guid"), ("todecimal", "real"),
                       ("todynamic", "dynamic"), ("parse_json", "dynamic"), ("todate", "datetime"),
                       ("totime", "timespan")):
    note = ""
    if _target == "dynamic":
        note = "invalid JSON gives null (Kusto keeps the text as a string value)"
    if _name == "todecimal":
        note = "decimal is computed as real (double)"
    scalar(_name, 1, status="partial" if note else "supported", note=note)(_conversion(_target))


@scalar("tohex", 1, 2)
def _tohex(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.Lower(this=fn("hex", args[0].sql)), "string")


# ---------------------------------------------------------------- strings

@scalar("strlen", 1)
def _strlen(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(cast(exp.Length(this=s(args[0])), "BIGINT"), "long")


@scalar("tolower", 1)
def _tolower(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.Lower(this=s(args[0])), "string")


@scalar("toupper", 1)
def _toupper(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.Upper(this=s(args[0])), "string")


@scalar("strcat", 1, 64)
def _strcat(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.Concat(expressions=[s(a) for a in args]), "string")


@scalar("strcat_delim", 3, 64)
def _strcat_delim(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("concat_ws", s(args[0]), *[s(a) for a in args[1:]]), "string")


@scalar("substring", 2, 3)
def _substring(ctx: CallContext, args: list[Typed]) -> Typed:
    start = exp.Add(this=exp.Paren(this=args[1].sql), expression=number(1))
    parts: list[exp.Expr] = [s(args[0]), start]
    if len(args) == 3:
        parts.append(args[2].sql)
    else:
        parts.append(exp.Length(this=s(args[0])))
    return Typed(exp.Coalesce(this=fn("substr", *parts), expressions=[string("")]), "string")


@scalar("indexof", 2, 5, status="partial", note="start/length/occurrence arguments are not supported")
def _indexof(ctx: CallContext, args: list[Typed]) -> Typed:
    if len(args) > 2:
        raise KqlUnsupportedError("indexof() with start, length or occurrence is not supported", ctx.span())
    return Typed(exp.Sub(this=exp.StrPosition(this=s(args[0]), substr=s(args[1])), expression=number(1)), "long")


@scalar("countof", 2, 3, status="partial", note="kind=regex counts with regexp_extract_all (non-overlapping)")
def _countof(ctx: CallContext, args: list[Typed]) -> Typed:
    kind = ctx.constant(2) if len(args) == 3 else "normal"
    text, search = s(args[0]), s(args[1])
    if kind == "regex":
        if isinstance(ctx.call.args[1], ast.Literal):
            ctx.regex(1)
        return Typed(cast(fn("len", fn("regexp_extract_all", text, search)), "BIGINT"), "long")
    # Kusto counts overlapping plain matches ("aaa" countof "aa" = 2): split-based counting would say 1
    overlapping = fn("len", fn("list_filter", fn("range", number(1), exp.Add(
        this=exp.Length(this=text), expression=number(1))), exp.Lambda(
        this=exp.EQ(this=fn("substr", text, exp.column("i"), exp.Length(this=search)), expression=search),
        expressions=[exp.to_identifier("i")])))
    return Typed(cast(overlapping, "BIGINT"), "long")


@scalar("trim", 2)
def _trim(ctx: CallContext, args: list[Typed]) -> Typed:
    regex = ctx.regex(0)
    return Typed(fn("regexp_replace", s(args[1]), string(f"^(?:{regex})+|(?:{regex})+$"), string(""), string("g")),
                 "string")


@scalar("trim_start", 2)
def _trim_start(ctx: CallContext, args: list[Typed]) -> Typed:
    regex = ctx.regex(0)
    return Typed(fn("regexp_replace", s(args[1]), string(f"^(?:{regex})+"), string("")), "string")


@scalar("trim_end", 2)
def _trim_end(ctx: CallContext, args: list[Typed]) -> Typed:
    regex = ctx.regex(0)
    return Typed(fn("regexp_replace", s(args[1]), string(f"(?:{regex})+$"), string("")), "string")


@scalar("replace_string", 3)
def _replace_string(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("replace", s(args[0]), s(args[1]), s(args[2])), "string")


@scalar("replace_regex", 3, aliases=("replace",))
def _replace_regex(ctx: CallContext, args: list[Typed]) -> Typed:
    replacement = ctx.constant(2)
    # Kusto uses \1 for groups, as RE2/DuckDB do
    return Typed(fn("regexp_replace", s(args[0]), string(ctx.regex(1)), string(replacement), string("g")),
                 "string")


@scalar("reverse", 1)
def _reverse(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("reverse", s(args[0])), "string")


@scalar("split", 2, 3)
def _split(ctx: CallContext, args: list[Typed]) -> Typed:
    parts = fn("string_split", s(args[0]), s(args[1]))
    if len(args) == 3:
        index = exp.Add(this=exp.Paren(this=args[2].sql), expression=number(1))
        element = exp.Bracket(this=parts, expressions=[index])
        return Typed(exp.Case(ifs=[exp.If(this=exp.Is(this=element, expression=exp.null()),
                                          true=cast(string("[]"), "JSON"))],
                              default=fn("to_json", fn("list_value", element))), "dynamic")
    return Typed(fn("to_json", parts), "dynamic")


@scalar("extract", 3, 4)
def _extract(ctx: CallContext, args: list[Typed]) -> Typed:
    regex = ctx.regex(0)
    group = ctx.constant(1, int)
    groups = capture_groups(regex)
    if not 0 <= group <= groups:
        raise ctx.error(f"extract() asks for capture group {group}, but the regex has {groups}",
                        ctx.call.args[1], "count the regex's parentheses (group 0 is the whole match)")
    result: exp.Expr
    if group <= 9:
        result = fn("regexp_extract", s(args[2]), string(regex), number(group))
    else:
        # DuckDB's regexp_extract numbers groups 0..9 only; its named-list form returns a struct of every group
        names = exp.Array(expressions=[string(f"g{index}") for index in range(1, groups + 1)])
        result = exp.Dot(this=exp.Paren(this=fn("regexp_extract", s(args[2]), string(regex), names)),
                         expression=exp.to_identifier(f"g{group}"))
    matched = exp.RegexpLike(this=s(args[2]), expression=string(regex))
    if len(args) == 4:
        # the 4th argument is typeof(T): lowered by the binder to a typed null
        target = args[3].kusto_type
        return Typed(exp.Case(ifs=[exp.If(this=matched, true=to_type(Typed(result, "string"), target))]), target)
    # Kusto: no match → null; DuckDB's regexp_extract gives "" (and strings are never null, so "")
    return Typed(result, "string")


@scalar("extract_all", 2, 3, status="partial", note="returns the list of group 1 (or whole-match) values")
def _extract_all(ctx: CallContext, args: list[Typed]) -> Typed:
    regex = ctx.regex(0)
    source = args[-1]
    group = 1 if capture_groups(regex) else 0
    if len(args) == 3:
        raise KqlUnsupportedError("extract_all() with a capture-group list is not supported", ctx.span())
    values = fn("regexp_extract_all", s(source), string(regex), number(group))
    return Typed(exp.Case(ifs=[exp.If(this=exp.EQ(this=fn("len", values), expression=number(0)),
                                      true=cast(exp.null(), "JSON"))],
                          default=fn("to_json", values)), "dynamic")


@scalar("base64_decode_tostring", 1, aliases=("base64_decodestring",))
def _b64decode(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.Coalesce(this=fn("try", fn("decode", fn("from_base64", s(args[0])))),
                              expressions=[string("")]), "string")


@scalar("base64_encode_tostring", 1, aliases=("base64_encodestring",))
def _b64encode(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("to_base64", fn("encode", s(args[0]))), "string")


@scalar("url_decode", 1)
def _url_decode(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("url_decode", s(args[0])), "string")


@scalar("url_encode", 1, aliases=("url_encode_component",), status="partial",
        note="percent-encodes with upper-case hex and %20 (Kusto: lower-case hex, + for spaces in url_encode)")
def _url_encode(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("url_encode", s(args[0])), "string")


@scalar("hash_sha256", 1)
def _sha256(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("sha256", s(args[0])), "string")


@scalar("hash_md5", 1)
def _md5(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("md5", s(args[0])), "string")


@scalar("hash_sha1", 1)
def _sha1(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("sha1", s(args[0])), "string")


@scalar("isempty", 1)
def _isempty(ctx: CallContext, args: list[Typed]) -> Typed:
    value = args[0]
    if value.kusto_type in ("string", "guid"):
        return Typed(exp.EQ(this=exp.Coalesce(this=value.sql, expressions=[string("")]), expression=string("")),
                     "bool")
    if value.kusto_type == "dynamic":
        text = fn("json_extract_string", value.sql, string("$"))
        return Typed(exp.EQ(this=exp.Coalesce(this=text, expressions=[string("")]), expression=string("")), "bool")
    return Typed(exp.Is(this=value.sql, expression=exp.null()), "bool")


@scalar("isnotempty", 1, aliases=("notempty",))
def _isnotempty(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.not_(_isempty(ctx, args).sql), "bool")


@scalar("isnull", 1)
def _isnull(ctx: CallContext, args: list[Typed]) -> Typed:
    if args[0].kusto_type in ("string", "guid"):
        return Typed(exp.false(), "bool")  # Kusto strings are never null
    return Typed(exp.Is(this=args[0].sql, expression=exp.null()), "bool")


@scalar("isnotnull", 1, aliases=("notnull",))
def _isnotnull(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.not_(_isnull(ctx, args).sql), "bool")


@scalar("isascii", 1)
def _isascii(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.RegexpLike(this=s(args[0]), expression=string(r"^[\x00-\x7F]*$")), "bool")


# ---------------------------------------------------------------- logic

@scalar("iff", 3, aliases=("iif",))
def _iff(ctx: CallContext, args: list[Typed]) -> Typed:
    result_type = _common_type(ctx, [args[1], args[2]])
    return Typed(exp.Case(ifs=[exp.If(this=args[0].sql, true=_coerce(args[1], result_type))],
                          default=_coerce(args[2], result_type)), result_type)


@scalar("case", 3, 255)
def _case(ctx: CallContext, args: list[Typed]) -> Typed:
    if len(args) % 2 == 0:
        raise ctx.error("case() needs pairs of predicate, value and a final else value")
    values = [args[i] for i in range(1, len(args) - 1, 2)] + [args[-1]]
    result_type = _common_type(ctx, values)
    ifs = [exp.If(this=args[i].sql, true=_coerce(args[i + 1], result_type)) for i in range(0, len(args) - 1, 2)]
    return Typed(exp.Case(ifs=ifs, default=_coerce(args[-1], result_type)), result_type)


@scalar("coalesce", 1, 64)
def _coalesce(ctx: CallContext, args: list[Typed]) -> Typed:
    result_type = _common_type(ctx, args)
    if result_type == "string":
        # strings are never null in Kusto: the first non-empty string wins
        parts = [exp.Nullif(this=_coerce(a, "string"), expression=string("")) for a in args]
        return Typed(exp.Coalesce(this=parts[0], expressions=[*parts[1:], string("")]), "string")
    coerced = [_coerce(a, result_type) for a in args]
    return Typed(exp.Coalesce(this=coerced[0], expressions=coerced[1:]), result_type)


@scalar("max_of", 2, 64)
def _max_of(ctx: CallContext, args: list[Typed]) -> Typed:
    result_type = _common_type(ctx, args)
    return Typed(exp.Greatest(this=_coerce(args[0], result_type),
                              expressions=[_coerce(a, result_type) for a in args[1:]]), result_type)


@scalar("min_of", 2, 64)
def _min_of(ctx: CallContext, args: list[Typed]) -> Typed:
    result_type = _common_type(ctx, args)
    return Typed(exp.Least(this=_coerce(args[0], result_type),
                           expressions=[_coerce(a, result_type) for a in args[1:]]), result_type)


def _common_type(ctx: CallContext, values: list[Typed]) -> str:
    types = [v.kusto_type for v in values if not (isinstance(v.sql, exp.Cast) and isinstance(v.sql.this, exp.Null))]
    if not types:
        return values[0].kusto_type
    if all(t in NUMERIC_TYPES for t in types):
        result = types[0]
        for other in types[1:]:
            result = common_numeric(result, other)
        return result
    if len(set(types)) == 1:
        return types[0]
    if "dynamic" in types:
        return "dynamic"
    raise ctx.error(f"arguments of {ctx.call.name}() have different types: {', '.join(types)}",
                    hint="convert them with tostring(), tolong()...")


def _coerce(value: Typed, target: str) -> exp.Expr:
    if value.kusto_type == target:
        return value.sql
    if isinstance(value.sql, exp.Cast) and isinstance(value.sql.this, exp.Null):
        return to_type(value, target)
    if value.kusto_type in NUMERIC_TYPES and target in NUMERIC_TYPES:
        return cast(value.sql, {"real": "DOUBLE", "long": "BIGINT", "int": "INTEGER"}[target])
    return to_type(value, target)


# ---------------------------------------------------------------- numbers

def _math(name: str, sql_name: str, result: str = "real") -> None:
    def lower(ctx: CallContext, args: list[Typed]) -> Typed:
        return Typed(fn(sql_name, *[a.sql for a in args]), result)
    scalar(name, 1)(lower)


for _kql, _sql in (("sqrt", "sqrt"), ("exp", "exp"), ("log", "ln"), ("log10", "log10"), ("log2", "log2"),
                   ("sin", "sin"), ("cos", "cos"), ("tan", "tan"), ("asin", "asin"), ("acos", "acos"),
                   ("atan", "atan"), ("exp2", "exp2"), ("exp10", "exp10")):
    if _kql in ("exp2", "exp10"):
        continue
    _math(_kql, _sql)


@scalar("abs", 1)
def _abs(ctx: CallContext, args: list[Typed]) -> Typed:
    if args[0].kusto_type == "timespan":  # DuckDB has no abs(INTERVAL)
        value = args[0].sql
        return Typed(exp.Case(ifs=[exp.If(this=exp.LT(this=value, expression=interval_micros(number(0))),
                                          true=exp.Neg(this=exp.Paren(this=value.copy())))],
                              default=value.copy()), "timespan")
    if args[0].kusto_type not in NUMERIC_TYPES and args[0].kusto_type != "dynamic":
        raise ctx.error(f"abs() needs a number or a timespan, got {args[0].kusto_type}")
    return Typed(exp.Abs(this=args[0].sql), args[0].kusto_type)


@scalar("sign", 1)
def _sign(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("sign", args[0].sql), args[0].kusto_type)


@scalar("pow", 2)
def _pow(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.Pow(this=cast(args[0].sql, "DOUBLE"), expression=args[1].sql), "real")


@scalar("round", 1, 2)
def _round(ctx: CallContext, args: list[Typed]) -> Typed:
    digits = args[1].sql if len(args) == 2 else number(0)
    return Typed(exp.Round(this=cast(args[0].sql, "DOUBLE"), decimals=digits), "real")


@scalar("pi", 0)
def _pi(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("pi"), "real")


@scalar("rand", 0, 1, status="partial", note="non-deterministic, as in Kusto")
def _rand(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("random"), "real")


@scalar("isnan", 1)
def _isnan(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("isnan", cast(args[0].sql, "DOUBLE")), "bool")


@scalar("isfinite", 1)
def _isfinite(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("isfinite", cast(args[0].sql, "DOUBLE")), "bool")


@scalar("binary_and", 2)
def _binary_and(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.BitwiseAnd(this=args[0].sql, expression=args[1].sql), "long")


@scalar("binary_or", 2)
def _binary_or(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.BitwiseOr(this=args[0].sql, expression=args[1].sql), "long")


@scalar("binary_xor", 2)
def _binary_xor(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("xor", args[0].sql, args[1].sql), "long")


@scalar("binary_shift_left", 2)
def _shl(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.BitwiseLeftShift(this=args[0].sql, expression=args[1].sql), "long")


@scalar("binary_shift_right", 2)
def _shr(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(exp.BitwiseRightShift(this=args[0].sql, expression=args[1].sql), "long")


# ---------------------------------------------------------------- bin / floor

def _timespan_micros(ctx: CallContext, index: int, value: Typed) -> exp.Expr:
    """Microseconds of a timespan argument: a number literal for a constant (portable to Spark, no EPOCH)."""
    node = ctx.call.args[index]
    if isinstance(node, ast.Literal) and isinstance(node.value, timedelta):
        span = node.value
        micros = (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds
        if micros <= 0:
            raise ctx.error(f"{ctx.call.name}() needs a positive bin size", node)
        return number(micros)
    return cast(exp.Mul(this=fn("epoch", value.sql), expression=number(1_000_000)), "BIGINT")


@scalar("bin", 2, aliases=("floor",))
def _bin(ctx: CallContext, args: list[Typed]) -> Typed:
    value, size = args
    size_us: exp.Expr
    if value.kusto_type == "datetime":
        if size.kusto_type != "timespan":
            raise ctx.error("bin() of a datetime needs a timespan size, e.g. bin(Timestamp, 1h)",
                            ctx.call.args[1])
        # Kusto bins datetimes on ticks since 0001-01-01; shifting by that epoch keeps 7d bins aligned like Kusto
        offset = number(62135596800000000)
        size_us = _timespan_micros(ctx, 1, size)
        shifted = exp.Add(this=fn("epoch_us", value.sql), expression=offset)
        floored = exp.Mul(this=fn("floor", exp.Div(this=cast(shifted, "DOUBLE"), expression=size_us)),
                          expression=size_us)
        return Typed(fn("make_timestamp", cast(exp.Sub(this=floored, expression=offset), "BIGINT")),
                     "datetime")
    if value.kusto_type == "timespan":
        size_us = exp.Mul(this=fn("epoch", size.sql), expression=number(1_000_000))
        value_us = exp.Mul(this=fn("epoch", value.sql), expression=number(1_000_000))
        floored = exp.Mul(this=fn("floor", exp.Div(this=value_us, expression=size_us)), expression=size_us)
        return Typed(interval_micros(floored), "timespan")
    if value.kusto_type in NUMERIC_TYPES:
        result_type = common_numeric(value.kusto_type, size.kusto_type)
        floored = exp.Mul(this=fn("floor", exp.Div(this=cast(value.sql, "DOUBLE"),
                                                     expression=size.sql)), expression=size.sql)
        if result_type != "real":
            return Typed(cast(floored, "BIGINT"), "long")
        return Typed(floored, "real")
    raise ctx.error(f"bin() cannot round a {value.kusto_type} value", ctx.call.args[0])


@scalar("bin_at", 3)
def _bin_at(ctx: CallContext, args: list[Typed]) -> Typed:
    value, size, anchor = args
    if value.kusto_type == "datetime":
        size_us = cast(exp.Mul(this=fn("epoch", size.sql), expression=number(1_000_000)), "BIGINT")
        delta = exp.Sub(this=fn("epoch_us", value.sql), expression=fn("epoch_us", anchor.sql))
        floored = exp.Mul(this=fn("floor", exp.Div(this=cast(delta, "DOUBLE"), expression=size_us)),
                          expression=size_us)
        return Typed(fn("make_timestamp", cast(exp.Add(this=floored, expression=fn("epoch_us", anchor.sql)),
                                                   "BIGINT")), "datetime")
    if value.kusto_type == "timespan":
        span_us = exp.Mul(this=fn("epoch", size.sql), expression=number(1_000_000))
        delta_us = exp.Mul(this=fn("epoch", exp.Sub(this=value.sql, expression=anchor.sql)),
                           expression=number(1_000_000))
        floored_us = exp.Mul(this=fn("floor", exp.Div(this=delta_us, expression=span_us)), expression=span_us.copy())
        return Typed(exp.Add(this=interval_micros(floored_us), expression=anchor.sql), "timespan")
    delta = exp.Sub(this=value.sql, expression=anchor.sql)
    floored = exp.Mul(this=fn("floor", exp.Div(this=cast(delta, "DOUBLE"), expression=size.sql)),
                      expression=size.sql)
    result_type = common_numeric(value.kusto_type, size.kusto_type) if value.kusto_type in NUMERIC_TYPES else "real"
    result = exp.Add(this=floored, expression=anchor.sql)
    return Typed(cast(result, "BIGINT") if result_type != "real" else result,
                 "long" if result_type != "real" else "real")


# ---------------------------------------------------------------- datetime

@scalar("now", 0, 1)
def _now(ctx: CallContext, args: list[Typed]) -> Typed:
    if args:
        return Typed(exp.Add(this=ctx.now, expression=args[0].sql), "datetime")
    return Typed(ctx.now, "datetime")


@scalar("ago", 1)
def _ago(ctx: CallContext, args: list[Typed]) -> Typed:
    if args[0].kusto_type != "timespan":
        raise ctx.error(f"ago() takes a timespan, got {args[0].kusto_type}", ctx.call.args[0],
                        "write e.g. ago(24h) or ago(7d)")
    return Typed(exp.Sub(this=ctx.now, expression=args[0].sql), "datetime")


def _trunc(unit: str, offset_days: int = 0) -> Lowering:
    def lower(ctx: CallContext, args: list[Typed]) -> Typed:
        truncated: exp.Expr = cast(fn("date_trunc", string(unit), args[0].sql), "TIMESTAMP")
        if unit == "week":  # Kusto weeks start on Sunday; date_trunc('week') gives Monday
            shifted = exp.Add(this=args[0].sql, expression=timespan_days(1))
            truncated = exp.Sub(this=cast(fn("date_trunc", string("week"), shifted), "TIMESTAMP"),
                                expression=timespan_days(1))
        if len(args) == 2:
            step = exp.Interval(this=args[1].sql, unit=exp.Var(this=unit.upper()))
            truncated = exp.Add(this=truncated, expression=step)
        return Typed(truncated, "datetime")
    return lower


def _end_of(unit: str) -> Lowering:
    start = _trunc(unit)

    def lower(ctx: CallContext, args: list[Typed]) -> Typed:
        begin = start(ctx, args).sql
        one = exp.Interval(this=number(1), unit=exp.Var(this=unit.upper()))
        return Typed(exp.Sub(this=exp.Add(this=begin, expression=one),
                             expression=exp.Interval(this=number(1), unit=exp.Var(this="MICROSECOND"))),
                     "datetime")
    return lower


def timespan_days(days: int) -> exp.Expr:
    return exp.Interval(this=number(days), unit=exp.Var(this="DAY"))


for _unit in ("day", "week", "month", "year"):
    scalar(f"startof{_unit}", 1, 2)(_trunc(_unit))
    scalar(f"endof{_unit}", 1, 2, status="partial",
           note="end is the last microsecond (Kusto: last tick, 100 ns later)")(_end_of(_unit))

_PARTS = {"year": "year", "quarter": "quarter", "month": "month", "week": "week", "day": "day", "hour": "hour",
          "minute": "minute", "second": "second", "millisecond": "millisecond", "microsecond": "microsecond",
          "nanosecond": "nanosecond", "dayofyear": "dayofyear"}


@scalar("datetime_part", 2, aliases=("datepart",))
def _datetime_part(ctx: CallContext, args: list[Typed]) -> Typed:
    part = ctx.constant(0).lower()
    if part not in _PARTS:
        raise ctx.error(f"unknown datetime part {part!r}", ctx.call.args[0], f"use one of {', '.join(_PARTS)}")
    if part == "millisecond":
        return Typed(exp.Mod(this=fn("millisecond", args[1].sql), expression=number(1000)), "int")
    if part == "microsecond":
        return Typed(exp.Mod(this=fn("microsecond", args[1].sql), expression=number(1_000_000)), "int")
    if part == "nanosecond":
        return Typed(exp.Mul(this=exp.Mod(this=fn("microsecond", args[1].sql), expression=number(1_000_000)),
                             expression=number(1000)), "int")
    return Typed(fn("date_part", string(_PARTS[part]), args[1].sql), "int")


@scalar("getyear", 1)
def _getyear(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("year", args[0].sql), "int")


@scalar("getmonth", 1, aliases=("monthofyear",))
def _getmonth(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("month", args[0].sql), "int")


@scalar("hourofday", 1)
def _hourofday(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("hour", args[0].sql), "int")


@scalar("dayofmonth", 1)
def _dayofmonth(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("day", args[0].sql), "int")


@scalar("dayofyear", 1)
def _dayofyear(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("dayofyear", args[0].sql), "int")


@scalar("week_of_year", 1, aliases=("weekofyear",))
def _weekofyear(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("weekofyear", args[0].sql), "int")


@scalar("dayofweek", 1)
def _dayofweek(ctx: CallContext, args: list[Typed]) -> Typed:
    # Kusto: a timespan, days since the preceding Sunday
    return Typed(fn("to_days", cast(fn("dayofweek", args[0].sql), "INTEGER")), "timespan")


@scalar("unixtime_seconds_todatetime", 1)
def _unix_seconds(ctx: CallContext, args: list[Typed]) -> Typed:
    seconds = cast(args[0].sql, "DOUBLE")
    return Typed(fn("make_timestamp", cast(exp.Mul(this=seconds, expression=number(1_000_000)), "BIGINT")),
                 "datetime")


@scalar("unixtime_milliseconds_todatetime", 1)
def _unix_millis(ctx: CallContext, args: list[Typed]) -> Typed:
    millis = cast(args[0].sql, "DOUBLE")
    return Typed(fn("make_timestamp", cast(exp.Mul(this=millis, expression=number(1000)), "BIGINT")),
                 "datetime")


@scalar("unixtime_microseconds_todatetime", 1)
def _unix_micros(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("make_timestamp", cast(args[0].sql, "BIGINT")), "datetime")


@scalar("datetime_add", 3)
def _datetime_add(ctx: CallContext, args: list[Typed]) -> Typed:
    part = ctx.constant(0).lower()
    units = {"year": "YEAR", "quarter": "QUARTER", "month": "MONTH", "week": "WEEK", "day": "DAY", "hour": "HOUR",
             "minute": "MINUTE", "second": "SECOND", "millisecond": "MILLISECOND", "microsecond": "MICROSECOND"}
    if part not in units:
        raise ctx.error(f"unknown datetime part {part!r}", ctx.call.args[0], f"use one of {', '.join(units)}")
    if part == "quarter":
        step = exp.Interval(this=exp.Mul(this=args[1].sql, expression=number(3)), unit=exp.Var(this="MONTH"))
    elif part == "week":
        step = exp.Interval(this=exp.Mul(this=args[1].sql, expression=number(7)), unit=exp.Var(this="DAY"))
    else:
        step = exp.Interval(this=args[1].sql, unit=exp.Var(this=units[part]))
    return Typed(exp.Add(this=args[2].sql, expression=step), "datetime")


@scalar("datetime_diff", 3)
def _datetime_diff(ctx: CallContext, args: list[Typed]) -> Typed:
    part = ctx.constant(0).lower()
    if part not in _PARTS:
        raise ctx.error(f"unknown datetime part {part!r}", ctx.call.args[0], f"use one of {', '.join(_PARTS)}")
    for index in (1, 2):
        node = ctx.call.args[index]
        if args[index].kusto_type not in ("datetime", "dynamic") and not (
                isinstance(node, ast.Literal) and node.value is None):
            raise ctx.error(f"datetime_diff() compares datetimes, argument {index + 1} is a "
                            f"{args[index].kusto_type}", ctx.call.args[index])
    duck_part = part
    if part == "nanosecond":
        return Typed(exp.Mul(this=fn("date_diff", string("microsecond"), args[2].sql, args[1].sql),
                             expression=number(1000)), "long")
    # Kusto counts calendar boundaries crossed (like DuckDB date_diff); weeks start on Sunday in Kusto
    if part == "week":
        # weeks crossed, counting Sunday boundaries (Kusto weeks start on Sunday)
        def sunday(value: exp.Expr) -> exp.Expr:
            return exp.Sub(this=fn("date_trunc", string("week"), exp.Add(this=value, expression=timespan_days(1))),
                           expression=timespan_days(1))
        days = fn("date_diff", string("day"), sunday(args[2].sql), sunday(args[1].sql))
        return Typed(exp.IntDiv(this=days, expression=number(7)), "long")
    return Typed(fn("date_diff", string(duck_part), args[2].sql, args[1].sql), "long")


_FORMAT_TOKENS = [
    ("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("hh", "%I"), ("mm", "%M"),
    ("ss", "%S"), ("fffffff", "%f0"), ("ffffff", "%f"), ("fff", "%g"), ("tt", "%p"), ("M", "%-m"), ("d", "%-d"),
    ("H", "%-H"), ("h", "%-I"), ("m", "%-M"), ("s", "%-S"),
]


@scalar("format_datetime", 2, status="partial", note="common format tokens (yyyy MM dd HH hh mm ss f… tt)")
def _format_datetime(ctx: CallContext, args: list[Typed]) -> Typed:
    pattern = ctx.constant(1)
    out = []
    index = 0
    while index < len(pattern):
        for token, replacement in _FORMAT_TOKENS:
            if pattern.startswith(token, index):
                out.append(replacement)
                index += len(token)
                break
        else:
            out.append(pattern[index].replace("%", "%%"))
            index += 1
    return Typed(exp.Coalesce(this=fn("strftime", args[0].sql, string("".join(out))), expressions=[string("")]),
                 "string")


@scalar("format_timespan", 2, status="partial", note="not supported: custom timespan formats")
def _format_timespan(ctx: CallContext, args: list[Typed]) -> Typed:
    raise KqlUnsupportedError("format_timespan() is not supported", ctx.span(), "use tostring() or totimespan()")


@scalar("make_datetime", 3, 7)
def _make_datetime(ctx: CallContext, args: list[Typed]) -> Typed:
    parts = [a.sql for a in args] + [number(0)] * (6 - len(args))
    return Typed(fn("make_timestamp", *[cast(p, "BIGINT") for p in parts[:5]], cast(parts[5], "DOUBLE")),
                 "datetime")


@scalar("make_timespan", 2, 5)
def _make_timespan(ctx: CallContext, args: list[Typed]) -> Typed:
    if len(args) == 2:
        hours, minutes, seconds, days = args[0].sql, args[1].sql, number(0), number(0)
    elif len(args) == 3:
        hours, minutes, seconds, days = args[0].sql, args[1].sql, args[2].sql, number(0)
    else:
        days, hours, minutes, seconds = args[0].sql, args[1].sql, args[2].sql, args[3].sql
    micros = exp.Add(this=exp.Add(this=exp.Add(
        this=exp.Mul(this=days, expression=number(86_400_000_000)),
        expression=exp.Mul(this=hours, expression=number(3_600_000_000))),
        expression=exp.Mul(this=minutes, expression=number(60_000_000))),
        expression=exp.Mul(this=seconds, expression=number(1_000_000)))
    return Typed(interval_micros(micros), "timespan")


# ---------------------------------------------------------------- dynamic

@scalar("array_length", 1)
def _array_length(ctx: CallContext, args: list[Typed]) -> Typed:
    value = args[0].sql
    is_array = exp.EQ(this=fn("json_type", value), expression=string("ARRAY"))
    return Typed(exp.Case(ifs=[exp.If(this=is_array, true=cast(fn("json_array_length", value), "BIGINT"))]),
                 "long")


@scalar("pack_array", 1, 64)
def _pack_array(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("json_array", *[_json_value(a) for a in args]), "dynamic")


@scalar("pack", 2, 128, aliases=("bag_pack", "pack_dictionary"))
def _pack(ctx: CallContext, args: list[Typed]) -> Typed:
    if len(args) % 2:
        raise ctx.error(f"{ctx.call.name}() needs key, value pairs")
    parts: list[exp.Expr] = []
    for index in range(0, len(args), 2):
        parts.extend([s(args[index]), _json_value(args[index + 1])])
    return Typed(fn("json_object", *parts), "dynamic")


def _json_value(value: Typed) -> exp.Expr:
    if value.kusto_type == "datetime":
        return as_string(value)
    if value.kusto_type == "timespan":
        return as_string(value)
    if value.kusto_type == "dynamic":
        return value.sql
    return value.sql


@scalar("bag_keys", 1)
def _bag_keys(ctx: CallContext, args: list[Typed]) -> Typed:
    is_bag = exp.EQ(this=fn("json_type", args[0].sql), expression=string("OBJECT"))
    return Typed(exp.Case(ifs=[exp.If(this=is_bag, true=fn("to_json", fn("json_keys", args[0].sql)))]), "dynamic")


@scalar("array_index_of", 2, 4, status="partial", note="start/length arguments are not supported")
def _array_index_of(ctx: CallContext, args: list[Typed]) -> Typed:
    items = fn("from_json", args[0].sql, string('["json"]'))
    position = fn("list_position", items, cast(fn("to_json", _json_value(args[1])), "JSON"))
    return Typed(exp.Coalesce(this=exp.Sub(this=position, expression=number(1)), expressions=[number(-1)]), "long")


def ordered_distinct(items: exp.Expr) -> exp.Expr:
    """Distinct elements in first-appearance order (DuckDB's list_distinct does not keep order)."""
    return fn("list_filter", items, exp.Lambda(
        this=exp.EQ(this=fn("list_position", items.copy(), exp.column("x")), expression=exp.column("i")),
        expressions=[exp.to_identifier("x"), exp.to_identifier("i")]))


@scalar("set_union", 2, 64)
def _set_union(ctx: CallContext, args: list[Typed]) -> Typed:
    lists = [fn("from_json", a.sql, string('["json"]')) for a in args]
    combined = lists[0]
    for other in lists[1:]:
        combined = fn("list_concat", combined, other)
    return Typed(fn("to_json", ordered_distinct(combined)), "dynamic")


@scalar("set_intersect", 2, 64)
def _set_intersect(ctx: CallContext, args: list[Typed]) -> Typed:
    # keep the first array's order (Kusto's), which list_intersect does not promise
    kept = fn("from_json", args[0].sql, string('["json"]'))
    for other in args[1:]:
        others = fn("from_json", other.sql, string('["json"]'))
        kept = fn("list_filter", kept, exp.Lambda(this=fn("list_contains", others, exp.column("x")),
                                                  expressions=[exp.to_identifier("x")]))
    return Typed(fn("to_json", ordered_distinct(kept)), "dynamic")


@scalar("set_difference", 2, 64)
def _set_difference(ctx: CallContext, args: list[Typed]) -> Typed:
    first = fn("from_json", args[0].sql, string('["json"]'))
    others = [fn("from_json", a.sql, string('["json"]')) for a in args[1:]]
    rest = others[0]
    for other in others[1:]:
        rest = fn("list_concat", rest, other)
    filtered = fn("list_filter", first, exp.Lambda(
        this=exp.not_(fn("list_contains", rest, exp.column("x"))), expressions=[exp.to_identifier("x")]))
    return Typed(fn("to_json", fn("list_distinct", filtered)), "dynamic")


@scalar("set_has_element", 2)
def _set_has_element(ctx: CallContext, args: list[Typed]) -> Typed:
    items = fn("from_json", args[0].sql, string('["json"]'))
    return Typed(fn("list_contains", items, cast(fn("to_json", _json_value(args[1])), "JSON")), "bool")


@scalar("array_concat", 1, 64)
def _array_concat(ctx: CallContext, args: list[Typed]) -> Typed:
    lists = [fn("from_json", a.sql, string('["json"]')) for a in args]
    combined = lists[0]
    for other in lists[1:]:
        combined = fn("list_concat", combined, other)
    return Typed(fn("to_json", combined), "dynamic")


def _one_based(index: exp.Expr) -> exp.Expr:
    """Kusto index (0-based, negative from the end) → DuckDB list index (1-based, -1 is the last)."""
    return exp.Case(ifs=[exp.If(this=exp.GTE(this=index, expression=number(0)),
                                true=exp.Add(this=index, expression=number(1)))], default=index.copy())


@scalar("array_slice", 3)
def _array_slice(ctx: CallContext, args: list[Typed]) -> Typed:
    items = fn("from_json", args[0].sql, string('["json"]'))
    return Typed(fn("to_json", fn("list_slice", items, _one_based(args[1].sql), _one_based(args[2].sql))),
                 "dynamic")


def _array_sort(direction: str) -> Lowering:
    def lower(ctx: CallContext, args: list[Typed]) -> Typed:
        nulls_last = ctx.constant(1, bool) if len(args) == 2 else True
        items = fn("from_json", args[0].sql, string('["varchar"]'))
        ordered = fn("list_sort", items, string(direction), string("NULLS LAST" if nulls_last else "NULLS FIRST"))
        return Typed(fn("to_json", ordered), "dynamic")
    return lower


scalar("array_sort_asc", 1, 2, status="partial", note="one array only; values sorted as strings")(_array_sort("ASC"))
scalar("array_sort_desc", 1, 2, status="partial", note="one array only; values sorted as strings")(
    _array_sort("DESC"))


@scalar("strcat_array", 2)
def _strcat_array(ctx: CallContext, args: list[Typed]) -> Typed:
    items = fn("from_json", args[0].sql, string('["varchar"]'))
    return Typed(exp.Coalesce(this=fn("array_to_string", items, s(args[1])), expressions=[string("")]), "string")


@scalar("gettype", 1)
def _gettype(ctx: CallContext, args: list[Typed]) -> Typed:
    value = args[0]
    if value.kusto_type != "dynamic":
        return Typed(string({"real": "real", "guid": "guid"}.get(value.kusto_type, value.kusto_type)), "string")
    kind = fn("json_type", value.sql)
    return Typed(exp.Case(ifs=[
        exp.If(this=exp.Is(this=value.sql, expression=exp.null()), true=string("null")),
        exp.If(this=exp.EQ(this=kind, expression=string("ARRAY")), true=string("array")),
        exp.If(this=exp.EQ(this=kind, expression=string("OBJECT")), true=string("dictionary")),
        exp.If(this=exp.EQ(this=kind, expression=string("VARCHAR")), true=string("string")),
        exp.If(this=exp.EQ(this=kind, expression=string("BIGINT")), true=string("long")),
        exp.If(this=exp.EQ(this=kind, expression=string("UBIGINT")), true=string("long")),
        exp.If(this=exp.EQ(this=kind, expression=string("DOUBLE")), true=string("real")),
        exp.If(this=exp.EQ(this=kind, expression=string("BOOLEAN")), true=string("bool")),
        exp.If(this=exp.EQ(this=kind, expression=string("NULL")), true=string("null")),
    ], default=string("string")), "string")


# ---------------------------------------------------------------- parse_path / parse_url / IP

@scalar("parse_path", 1, status="partial", note="Windows and Unix paths; no AlternateDataStreamName")
def _parse_path(ctx: CallContext, args: list[Typed]) -> Typed:
    path = s(args[0])
    directory = fn("regexp_extract", path, string(r"^(.*)[\\/][^\\/]*$"), number(1))
    filename = fn("regexp_extract", path, string(r"([^\\/]*)$"), number(1))
    extension = fn("regexp_extract", filename, string(r"\.([^.]*)$"), number(1))
    root = fn("regexp_extract", path, string(r"^([A-Za-z]:|\\\\[^\\]+\\[^\\]+|/)"), number(1))
    return Typed(fn("json_object", string("Scheme"), string(""), string("RootPath"), root,
                    string("DirectoryPath"), directory, string("DirectoryName"),
                    fn("regexp_extract", directory, string(r"([^\\/]*)$"), number(1)),
                    string("Filename"), filename, string("Extension"), extension,
                    string("AlternateDataStreamName"), string("")), "dynamic")


@scalar("parse_url", 1, status="partial", note="Query Parameters are not split into a bag")
def _parse_url(ctx: CallContext, args: list[Typed]) -> Typed:
    url = s(args[0])
    pattern = r"^(?:([A-Za-z][A-Za-z0-9+.-]*)://)?(?:([^:@/]*)(?::([^@/]*))?@)?([^:/?#]*)(?::(\d+))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$"

    def group(index: int) -> exp.Expr:
        return fn("regexp_extract", url, string(pattern), number(index))
    return Typed(fn("json_object", string("Scheme"), group(1), string("Host"), group(4), string("Port"), group(5),
                    string("Path"), group(6), string("Username"), group(2), string("Password"), group(3),
                    string("Query Parameters"), group(7), string("Fragment"), group(8)), "dynamic")


def _ipv4_to_long(value: exp.Expr) -> exp.Expr:
    octets = [exp.TryCast(this=fn("split_part", value, string("."), number(i)), to=exp.DataType.build("BIGINT"))
              for i in range(1, 5)]
    return exp.Add(this=exp.Add(this=exp.Add(
        this=exp.Mul(this=octets[0], expression=number(16777216)),
        expression=exp.Mul(this=octets[1], expression=number(65536))),
        expression=exp.Mul(this=octets[2], expression=number(256))), expression=octets[3])


_IPV4 = r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$"


@scalar("ipv4_is_private", 1)
def _ipv4_is_private(ctx: CallContext, args: list[Typed]) -> Typed:
    ip = fn("split_part", s(args[0]), string("/"), number(1))
    number_ip = _ipv4_to_long(ip)
    ranges = [("10.0.0.0", 8), ("172.16.0.0", 12), ("192.168.0.0", 16)]
    checks = [_in_cidr(number_ip, base, bits) for base, bits in ranges]
    valid = exp.RegexpLike(this=ip, expression=string(_IPV4))
    return Typed(exp.Case(ifs=[exp.If(this=valid, true=exp.or_(*checks, copy=False))]), "bool")


def _in_cidr(number_ip: exp.Expr, base: str, bits: int) -> exp.Expr:
    parts = [int(p) for p in base.split(".")]
    base_number = (parts[0] << 24) + (parts[1] << 16) + (parts[2] << 8) + parts[3]
    size = 1 << (32 - bits)
    return exp.Between(this=number_ip, low=number(base_number), high=number(base_number + size - 1))


@scalar("ipv4_is_in_range", 2)
def _ipv4_is_in_range(ctx: CallContext, args: list[Typed]) -> Typed:
    ip = s(args[0])
    network = s(args[1])
    base = fn("split_part", network, string("/"), number(1))
    bits_text = fn("split_part", network, string("/"), number(2))
    bits = exp.Coalesce(this=exp.TryCast(this=exp.Nullif(this=bits_text, expression=string("")),
                                         to=exp.DataType.build("BIGINT")), expressions=[number(32)])
    size = exp.Pow(this=number(2), expression=exp.Sub(this=number(32), expression=bits))
    ip_number = _ipv4_to_long(ip)
    base_number = _ipv4_to_long(base)
    start = exp.Mul(this=fn("floor", exp.Div(this=base_number, expression=size)), expression=size)
    return Typed(exp.and_(exp.GTE(this=ip_number, expression=start),
                          exp.LT(this=ip_number, expression=exp.Add(this=start, expression=size)), copy=False), "bool")


def _prefix_bits(text: exp.Expr) -> exp.Expr:
    bits_text = fn("split_part", text, string("/"), number(2))
    return exp.Coalesce(this=exp.TryCast(this=exp.Nullif(this=bits_text, expression=string("")),
                                         to=exp.DataType.build("BIGINT")), expressions=[number(32)])


@scalar("ipv4_compare", 2, 3)
def _ipv4_compare(ctx: CallContext, args: list[Typed]) -> Typed:
    first, second = s(args[0]), s(args[1])
    # the shorter prefix of the two (or the explicit mask) decides how many bits are compared
    bits: exp.Expr = exp.Least(this=_prefix_bits(first), expressions=[_prefix_bits(second)])
    if len(args) == 3:
        bits = exp.Least(this=bits, expressions=[args[2].sql])
    size = exp.Pow(this=number(2), expression=exp.Sub(this=number(32), expression=bits))

    def masked(text: exp.Expr) -> exp.Expr:
        address = _ipv4_to_long(fn("split_part", text, string("/"), number(1)))
        return fn("floor", exp.Div(this=address, expression=size.copy()))
    return Typed(cast(fn("sign", exp.Sub(this=masked(first), expression=masked(second))), "INTEGER"), "int")


@scalar("new_guid", 0, status="partial", note="random, as in Kusto")
def _new_guid(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(cast(fn("uuid"), "VARCHAR"), "guid")


@scalar("hash", 1, 2, status="partial", note="a constant string hashes to Kusto's value (XXH64 of its UTF-8 "
        "text, computed when the query is compiled); a column hashes with the engine's own hash: stable, "
        "but not Kusto's numbers")
def _hash(ctx: CallContext, args: list[Typed]) -> Typed:
    from assay.kql.runtime import kql_hash

    argument = ctx.call.args[0]
    hashed: exp.Expr
    if isinstance(argument, ast.Literal) and isinstance(argument.value, str):
        hashed = number(kql_hash(argument.value) or 0)
    else:
        # DuckDB's hash() is a UBIGINT: fold it into the long range
        hashed = cast(exp.Mod(this=fn("hash", s(args[0])), expression=number(2**63)), "BIGINT")
    if len(args) == 2:
        if args[1].kusto_type not in ("long", "int"):
            raise ctx.error("hash()'s modulo must be a whole number", ctx.call.args[1])
        modulo = exp.Paren(this=args[1].sql)
        # Kusto's modulo is never negative
        hashed = exp.Mod(this=exp.Paren(this=exp.Add(this=exp.Mod(this=hashed, expression=modulo),
                                                     expression=exp.Abs(this=modulo.copy()))),
                         expression=exp.Abs(this=modulo.copy()))
    return Typed(hashed, "long")


@scalar("bag_has_key", 2)
def _bag_has_key(ctx: CallContext, args: list[Typed]) -> Typed:
    key = ctx.constant(1)
    path = key if key.startswith("$") else '$."' + key.replace('"', '\\"') + '"'
    return Typed(exp.Coalesce(this=fn("json_exists", args[0].sql, string(path)), expressions=[exp.false()]),
                 "bool")


@scalar("strcmp", 2)
def _strcmp(ctx: CallContext, args: list[Typed]) -> Typed:
    left, right = s(args[0]), s(args[1])
    return Typed(exp.Case(ifs=[exp.If(this=exp.LT(this=left, expression=right), true=number(-1)),
                               exp.If(this=exp.GT(this=left.copy(), expression=right.copy()), true=number(1))],
                          default=number(0)), "int")


@scalar("strrep", 2, 3)
def _strrep(ctx: CallContext, args: list[Typed]) -> Typed:
    if len(args) == 2:
        return Typed(fn("repeat", s(args[0]), cast(args[1].sql, "BIGINT")), "string")
    copies = fn("list_transform", fn("range", cast(args[1].sql, "BIGINT")), exp.Lambda(
        this=s(args[0]), expressions=[exp.to_identifier("__i")]))
    return Typed(fn("array_to_string", copies, s(args[2])), "string")


@scalar("bag_merge", 2, 64, status="partial", note="top-level keys; the leftmost bag wins, as in Kusto")
def _bag_merge(ctx: CallContext, args: list[Typed]) -> Typed:
    merged = args[-1].sql
    for bag in reversed(args[:-1]):
        merged = fn("json_merge_patch", merged, bag.sql)
    return Typed(merged, "dynamic")


@scalar("array_reverse", 1)
def _array_reverse(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("to_json", fn("list_reverse", fn("from_json", args[0].sql, string('["json"]')))), "dynamic")


@scalar("array_sum", 1)
def _array_sum(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("list_sum", fn("from_json", args[0].sql, string('["double"]'))), "real")


@scalar("string_size", 1)
def _string_size(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(cast(fn("octet_length", fn("encode", s(args[0]))), "BIGINT"), "long")


@scalar("range", 2, 3)
def _range(ctx: CallContext, args: list[Typed]) -> Typed:
    start, stop = args[0], args[1]
    if start.kusto_type == "datetime":
        step = args[2].sql if len(args) == 3 else interval_micros(number(86_400_000_000))
        values = fn("generate_series", start.sql, stop.sql, step)
        shown = fn("list_transform", values, exp.Lambda(this=as_string(Typed(exp.column("__d"), "datetime")),
                                                        expressions=[exp.to_identifier("__d")]))
        return Typed(fn("to_json", shown), "dynamic")
    if start.kusto_type not in NUMERIC_TYPES or stop.kusto_type not in NUMERIC_TYPES:
        raise ctx.error(f"range() needs numbers or datetimes, got {start.kusto_type} and {stop.kusto_type}")
    step_value = args[2] if len(args) == 3 else Typed(number(1), "long")
    if "real" in (start.kusto_type, stop.kusto_type, step_value.kusto_type):
        raise KqlUnsupportedError("range() over real numbers is not supported", ctx.span(),
                                  "use whole numbers, or datetimes")
    if isinstance(ctx.call.args[-1], ast.Literal) and len(args) == 3 and ctx.call.args[-1].value == 0:
        raise ctx.error("range() needs a non-zero step", ctx.call.args[-1])
    return Typed(fn("to_json", fn("generate_series", cast(start.sql, "BIGINT"), cast(stop.sql, "BIGINT"),
                                  cast(step_value.sql, "BIGINT"))), "dynamic")


# ---------------------------------------------------------------- series (arrays from make-series)

def _numbers(value: Typed) -> exp.Expr:
    """A dynamic numeric array as a DuckDB list of doubles."""
    return fn("from_json", value.sql, string('["double"]'))


@scalar("series_fit_line_dynamic", 1)
def _series_fit_line_dynamic(ctx: CallContext, args: list[Typed]) -> Typed:
    return Typed(fn("kql_series_fit_line", _numbers(args[0])), "dynamic")


@scalar("series_stats_dynamic", 1, 2, status="partial", note="the ignore_val argument is not supported")
def _series_stats_dynamic(ctx: CallContext, args: list[Typed]) -> Typed:
    if len(args) == 2:
        raise KqlUnsupportedError("series_stats_dynamic() with ignore_val is not supported", ctx.span())
    return Typed(fn("kql_series_stats", _numbers(args[0])), "dynamic")


#: Functions that return several columns: (the one-bag form, (field, Kusto type) per output column).
MULTI_COLUMN_FUNCTIONS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "series_fit_line": ("series_fit_line_dynamic", (
        ("rsquare", "real"), ("slope", "real"), ("variance", "real"), ("rvariance", "real"),
        ("interception", "real"), ("line_fit", "dynamic"))),
    "series_stats": ("series_stats_dynamic", (
        ("min", "real"), ("min_idx", "long"), ("max", "real"), ("max_idx", "long"), ("avg", "real"),
        ("stdev", "real"), ("variance", "real"))),
}


def _series_elementwise(name: str, operator: Callable[[exp.Expr, exp.Expr], exp.Expr], result: str) -> None:
    def lower(ctx: CallContext, args: list[Typed]) -> Typed:
        left, right = args
        pair = exp.column("__p")
        def side(value: Typed, index: int) -> exp.Expr:
            if value.kusto_type == "dynamic":
                return fn("struct_extract", pair.copy(), number(index))
            return cast(value.sql, "DOUBLE")
        lefts = _numbers(left) if left.kusto_type == "dynamic" else None
        rights = _numbers(right) if right.kusto_type == "dynamic" else None
        first = lefts if lefts is not None else rights
        second = rights if rights is not None else lefts
        if first is None or second is None:
            raise ctx.error(f"{name}() needs at least one dynamic array argument")
        zipped = fn("list_zip", first, second.copy())
        body = operator(side(left, 1), side(right, 2))
        values = fn("list_transform", zipped, exp.Lambda(this=body, expressions=[exp.to_identifier("__p")]))
        return Typed(fn("to_json", values), "dynamic")
    SCALAR_FUNCTIONS[name] = ScalarFunction(name, 2, 2, lower, "partial",
                                            f"element-wise; values are {result}s (Kusto keeps longs long)")


for _name, _operator in (
        ("series_add", lambda a, b: exp.Add(this=a, expression=b)),
        ("series_subtract", lambda a, b: exp.Sub(this=a, expression=b)),
        ("series_multiply", lambda a, b: exp.Mul(this=a, expression=b)),
        ("series_divide", lambda a, b: exp.Div(this=a, expression=exp.func("nullif", b, number(0)))),
        ("series_greater", lambda a, b: exp.GT(this=a, expression=b)),
        ("series_greater_equals", lambda a, b: exp.GTE(this=a, expression=b)),
        ("series_less", lambda a, b: exp.LT(this=a, expression=b)),
        ("series_less_equals", lambda a, b: exp.LTE(this=a, expression=b)),
        ("series_equals", lambda a, b: exp.EQ(this=a, expression=b)),
        ("series_not_equals", lambda a, b: exp.NEQ(this=a, expression=b))):
    _series_elementwise(_name, _operator, "real" if _name in ("series_add", "series_subtract", "series_multiply",
                                                             "series_divide") else "bool")


# ---------------------------------------------------------------- argument kinds (checked by the binder)

#: What each argument must be, so a wrong type is a located error at check time instead of a DuckDB failure:
#: "number", "datetime", "timespan", "dynamic", "bool" ("any" accepts everything; a dynamic value or a null is
#: accepted for every kind: its type is only known at run time). The last kind repeats for extra arguments.
ARGUMENT_KINDS: dict[str, tuple[str, ...]] = {
    **{name: ("number",) for name in (
        "acos", "asin", "atan", "cos", "sin", "tan", "exp", "log", "log10", "log2", "sqrt", "sign", "round",
        "pow", "isnan", "isfinite", "tohex", "binary_and", "binary_or", "binary_xor", "binary_shift_left",
        "binary_shift_right", "unixtime_seconds_todatetime", "unixtime_milliseconds_todatetime",
        "unixtime_microseconds_todatetime", "make_datetime", "make_timespan")},
    **{name: ("datetime",) for name in (
        "startofday", "startofweek", "startofmonth", "startofyear", "endofday", "endofweek", "endofmonth",
        "endofyear", "dayofweek", "dayofmonth", "dayofyear", "hourofday", "getmonth", "getyear", "monthofyear",
        "week_of_year", "weekofyear")},
    **{name: ("dynamic",) for name in (
        "array_length", "bag_keys", "array_concat", "array_sort_asc", "array_sort_desc", "set_union",
        "set_intersect", "set_difference", "array_reverse", "array_sum", "series_fit_line_dynamic",
        "series_stats_dynamic")},
    "startofday": ("datetime", "number"), "startofweek": ("datetime", "number"),
    "startofmonth": ("datetime", "number"), "startofyear": ("datetime", "number"),
    "endofday": ("datetime", "number"), "endofweek": ("datetime", "number"), "endofmonth": ("datetime", "number"),
    "endofyear": ("datetime", "number"),
    "array_sort_asc": ("dynamic", "any"), "array_sort_desc": ("dynamic", "any"),
    "array_index_of": ("dynamic", "any"), "array_slice": ("dynamic", "number"), "set_has_element": ("dynamic", "any"),
    "strcat_array": ("dynamic", "any"), "bag_has_key": ("dynamic", "any"),
    "format_datetime": ("datetime", "any"), "format_timespan": ("timespan", "any"),
    "datetime_add": ("any", "number", "datetime"), "datetime_part": ("any", "datetime"),
    "datepart": ("any", "datetime"), "iff": ("bool", "any"), "iif": ("bool", "any"),
    "substring": ("any", "number"), "strrep": ("any", "number", "any"), "bin_at": ("any", "any", "any"),
}

KIND_TYPES = {"number": NUMERIC_TYPES, "datetime": ("datetime",), "timespan": ("timespan",),
              "dynamic": ("dynamic",), "bool": ("bool",)}


def argument_problem(name: str, index: int, kusto_type: str, is_null: bool) -> str | None:
    """Why argument ``index`` (a ``kusto_type`` value) does not fit function ``name``, or None."""
    kinds = ARGUMENT_KINDS.get(name)
    if kinds is None or is_null or kusto_type == "dynamic":
        return None
    kind = kinds[min(index, len(kinds) - 1)]
    if name in ("case",) or kind == "any" or kusto_type in KIND_TYPES[kind]:
        return None
    article = "an" if kind[0] in "aeiou" else "a"
    return f"argument {index + 1} of {name}() must be {article} {kind}, got {kusto_type}"


# ---------------------------------------------------------------- aggregates (lowered in the binder)

AGGREGATE_FUNCTIONS: dict[str, AggregateFunction] = {a.name: a for a in (
    AggregateFunction("count", 0, 1, "count_"),
    AggregateFunction("countif", 1, 1, "countif_"),
    AggregateFunction("dcount", 1, 2, "dcount_", "partial", "exact distinct count (Kusto estimates with HLL)"),
    AggregateFunction("dcountif", 2, 3, "dcountif_", "partial", "exact distinct count (Kusto estimates with HLL)"),
    AggregateFunction("count_distinct", 1, 1, "count_distinct_"),
    AggregateFunction("sum", 1, 1, "sum_"),
    AggregateFunction("sumif", 2, 2, "sumif_"),
    AggregateFunction("avg", 1, 1, "avg_"),
    AggregateFunction("avgif", 2, 2, "avgif_"),
    AggregateFunction("min", 1, 1, "min_"),
    AggregateFunction("max", 1, 1, "max_"),
    AggregateFunction("minif", 2, 2, "minif_"),
    AggregateFunction("maxif", 2, 2, "maxif_"),
    AggregateFunction("arg_max", 1, 64, "max_"),
    AggregateFunction("arg_min", 1, 64, "min_"),
    AggregateFunction("make_set", 1, 2, "set_"),
    AggregateFunction("make_set_if", 2, 3, "set_"),
    AggregateFunction("make_list", 1, 2, "list_"),
    AggregateFunction("make_list_if", 2, 3, "list_"),
    AggregateFunction("make_bag", 1, 2, "bag_", "partial", "later keys win on conflicts (Kusto: arbitrary)"),
    AggregateFunction("take_any", 1, 64, "any_", aliases=("any",)),
    AggregateFunction("take_anyif", 2, 2, "any_"),
    AggregateFunction("make_list_with_nulls", 1, 1, "list_"),
    AggregateFunction("make_bag_if", 2, 3, "bag_", "partial", "later keys win on conflicts (Kusto: arbitrary)"),
    AggregateFunction("any", 1, 64, "any_"),
    AggregateFunction("percentile", 2, 2, "percentile_", "partial", "exact nearest-rank (Kusto estimates)"),
    AggregateFunction("percentiles", 2, 32, "percentile_", "partial", "exact nearest-rank (Kusto estimates)"),
    AggregateFunction("stdev", 1, 1, "stdev_"),
    AggregateFunction("variance", 1, 1, "variance_"),
    AggregateFunction("stdevp", 1, 1, "stdevp_"),
    AggregateFunction("variancep", 1, 1, "variance_"),
    AggregateFunction("hll", 1, 2, "hll_", "unsupported", "HyperLogLog states are not supported"),
)}

#: Functions that exist in Kusto but not offline (Sentinel workspace functions, network access).
OFFLINE_FUNCTIONS = ("_GetWatchlist", "_GetWatchlistAlias", "_ASim_", "externaldata", "cluster", "database",
                     "workspace", "app", "adx", "arg", "geo_info_from_ip_address", "cursor_after",
                     "current_principal", "current_cluster_endpoint")

#: Known Kusto functions we do not implement (named in errors and in the support matrix).
UNSUPPORTED_FUNCTIONS = (
    "row_window_session", "series_decompose", "series_fir",
    "series_decompose_anomalies", "series_decompose_forecast", "series_periods_detect", "series_outliers",
    "series_iir", "series_fill_linear", "series_fill_forward", "series_fill_backward", "series_fill_const",
    "make_series", "geo_distance_2points", "zip", "treepath", "bag_remove_keys",
    "array_split", "array_iff", "array_rotate_left", "array_rotate_right", "array_shift_left",
    "array_shift_right", "parse_csv", "parse_xml", "parse_user_agent", "parse_version",
    "parse_ipv6", "parse_ipv4", "ipv6_compare", "ipv6_is_match", "ipv4_is_match", "punycode_to_string",
    "format_bytes", "format_ipv4", "format_ipv4_mask", "hash_combine", "hash_many", "hash_xxhash64",
    "base64_decode_toarray", "base64_encode_fromarray", "base64_decode_toguid", "unicode_codepoints_from_string",
    "unicode_codepoints_to_string", "estimate_data_size", "toscalar_tabular", "translate", "jaccard_index",
    "make_string", "datetime_local_to_utc", "datetime_utc_to_local", "dcount_hll", "tdigest", "percentile_tdigest",
    "rank_tdigest", "percentilew", "percentilesw", "buildschema", "binary_all_and", "binary_all_or",
    "binary_all_xor", "has_ipv4", "has_ipv4_prefix", "has_any_ipv4",
)
