"""Spark SQL generation for trees lowered from KQL: DuckDB-named functions mapped to Spark equivalents.

The KQL binder emits some DuckDB function names as anonymous calls (json_extract, regexp_extract, epoch_us...);
sqlglot's Spark generator cannot know them, so this module rewrites them first, as a table (not a pile of ifs).
Functions without a Spark equivalent are left as they are and listed by :func:`spark_gaps`.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp


def _anon(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _json_path(path: exp.Expr) -> exp.Expr:
    """DuckDB '$."a"."b"' → Spark '$.a.b' (get_json_object does not take quoted keys)."""
    if isinstance(path, exp.Literal) and path.is_string:
        text = path.this
        converted = []
        index = 0
        while index < len(text):
            if text.startswith('."', index):
                end = text.index('"', index + 2)
                key = text[index + 2:end]
                converted.append(f".{key}" if key.isidentifier() else f"['{key}']")
                index = end + 1
            else:
                converted.append(text[index])
                index += 1
        return exp.Literal.string("".join(converted))
    return path


def _json_type(value: exp.Expr) -> exp.Expr:
    """DuckDB json_type() names (ARRAY, OBJECT, VARCHAR...) from the first character of the JSON text."""
    first = _anon("left", _anon("ltrim", value), exp.Literal.number(1))
    return exp.Case(ifs=[
        exp.If(this=exp.EQ(this=first, expression=exp.Literal.string("[")), true=exp.Literal.string("ARRAY")),
        exp.If(this=exp.EQ(this=first.copy(), expression=exp.Literal.string("{")),
               true=exp.Literal.string("OBJECT")),
        exp.If(this=exp.EQ(this=first.copy(), expression=exp.Literal.string('"')),
               true=exp.Literal.string("VARCHAR")),
    ], default=exp.Literal.string("NUMBER_OR_BOOL"))


def _json_extract_string(args: list[exp.Expr]) -> exp.Expr:
    """DuckDB ``json_extract_string(json_extract(d, p), '$')`` (tostring of a dynamic value): Spark's
    get_json_object already returns a string value unquoted (and objects/arrays as JSON text), and reading '$'
    of an unquoted string again would give NULL."""
    source, path = args[0], args[1]
    if isinstance(path, exp.Literal) and path.this == "$" and isinstance(source, exp.Anonymous) \
            and source.name.lower() == "get_json_object":
        return source
    return _anon("get_json_object", source, _json_path(path))


def _split(args: list[exp.Expr]) -> exp.Expr:
    """DuckDB string_split splits on a literal separator; Spark's split takes a regex: quote it (\\Q...\\E)."""
    separator = args[1]
    if isinstance(separator, exp.Literal) and separator.is_string:
        quoted: exp.Expr = exp.Literal.string("\\Q" + separator.this.replace("\\E", "\\E\\\\E\\Q") + "\\E")
    else:
        quoted = _anon("concat", exp.Literal.string("\\Q"), separator, exp.Literal.string("\\E"))
    return _anon("split", args[0], quoted, exp.Literal.number(-1))


#: strftime directives -> Java DateTimeFormatter letters (Spark's date_format)
_STRFTIME = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss", "%f": "SSSSSS",
             "%y": "yy", "%b": "MMM", "%B": "MMMM", "%a": "EEE", "%A": "EEEE", "%I": "hh", "%p": "a",
             "%j": "DDD", "%%": "%"}


def _date_format(args: list[exp.Expr]) -> exp.Expr:
    pattern = args[1]
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        text = pattern.this
        out = []
        index = 0
        while index < len(text):
            directive = text[index:index + 2]
            if directive in _STRFTIME:
                out.append(_STRFTIME[directive])
                index += 2
                continue
            char = text[index]
            out.append(f"'{char}'" if char.isalpha() else ("''" if char == "'" else char))
            index += 1
        pattern = exp.Literal.string("".join(out))
    return _anon("date_format", args[0], pattern)


def _json_object(args: list[exp.Expr]) -> exp.Expr:
    """DuckDB json_object(k1, v1, ...): Spark's named_struct needs constant names; a computed name (a property
    bag expanded by mv-expand) becomes a one-entry map instead (its value is kept as text: tostring(),
    the common use, reads the same)."""
    if all(isinstance(name, exp.Literal) and name.is_string for name in args[0::2]):
        return _anon("to_json", _anon("named_struct", *args))
    return _anon("to_json", _anon("map", *args))


def _date_diff(args: list[exp.Expr]) -> exp.Expr:
    unit = args[0]
    if isinstance(unit, exp.Literal) and unit.is_string:
        return _anon("timestampdiff", exp.Var(this=unit.this.upper()), args[1], args[2])
    return _anon("datediff", *args)


SPARK_FUNCTIONS: dict[str, Callable[[list[exp.Expr]], exp.Expr]] = {
    "json_extract": lambda a: _anon("get_json_object", a[0], _json_path(a[1])),
    "json_extract_string": _json_extract_string,
    "regexp_extract": lambda a: _anon("regexp_extract", *a),
    "epoch_us": lambda a: _anon("unix_micros", *a),
    "make_timestamp": lambda a: _anon("timestamp_micros", *a) if len(a) == 1 else _anon("make_timestamp", *a),
    "to_microseconds": lambda a: exp.Interval(this=a[0], unit=exp.Var(this="MICROSECOND")),
    "epoch": lambda a: _anon("extract", exp.Var(this="EPOCH FROM " + a[0].sql("spark"))),
    "regexp_extract_all": lambda a: _anon("regexp_extract_all", *a),
    "string_split": _split,
    "strftime": _date_format,
    "to_json": lambda a: _anon("to_json", *a),
    "len": lambda a: _anon("size", *a),
    "list_value": lambda a: _anon("array", *a),
    "list_contains": lambda a: _anon("array_contains", *a),
    "list_distinct": lambda a: _anon("array_distinct", *a),
    "list_concat": lambda a: _anon("concat", *a),
    "list_intersect": lambda a: _anon("array_intersect", *a),
    "list_filter": lambda a: _anon("filter", *a),
    "list_transform": lambda a: _anon("transform", *a),
    "list_sort": lambda a: _anon("array_sort", a[0]),
    "list_slice": lambda a: _anon("slice", *a),
    "list_position": lambda a: _anon("array_position", *a),
    "json_array": lambda a: _anon("to_json", _anon("array", *a)),
    "json_object": _json_object,
    "json_type": lambda a: _json_type(a[0]),
    "array_to_string": lambda a: _anon("array_join", *a),
    "xor": lambda a: exp.BitwiseXor(this=a[0], expression=a[1]),
    "to_days": lambda a: exp.Interval(this=a[0], unit=exp.Var(this="DAY")),
    "flatten": lambda a: _anon("flatten", *a),
    "from_json": lambda a: _anon("from_json", a[0], exp.Literal.string("array<string>")),
    "json_array_length": lambda a: _anon("json_array_length", *a),
    "json_keys": lambda a: _anon("json_object_keys", *a),
    "generate_series": lambda a: _anon("sequence", *a),
    "quantile_disc": lambda a: _anon("percentile", *a),  # note: Spark interpolates; DuckDB takes the nearest rank
    "sha256": lambda a: _anon("sha2", a[0], exp.Literal.number(256)),
    "regexp_replace": lambda a: _anon("regexp_replace", *a[:3]),
    "concat_ws": lambda a: _anon("concat_ws", *a),
    "substr": lambda a: _anon("substr", *a),
    "trunc": lambda a: _anon("cast", exp.Var(this=a[0].sql("spark") + " AS BIGINT")),
    "date_trunc": lambda a: _anon("date_trunc", *a),
    "date_diff": _date_diff,
    "date_part": lambda a: _anon("date_part", *a),
}

#: Functions kept by name because Spark has the same one.
SPARK_SAME = frozenset({"hour", "day", "month", "year", "dayofyear", "weekofyear", "dayofweek", "md5", "sha1",
                        "reverse", "floor", "sign", "ln", "log10", "log2", "sqrt", "exp", "sin", "cos", "tan",
                        "asin", "acos", "atan", "pi", "random", "isnan", "replace", "split_part", "to_base64",
                        "from_base64", "url_decode", "url_encode", "hex", "decode", "encode", "try", "uuid",
                        "stddev_pop", "stddev_samp", "var_pop", "var_samp"})


def spark_gaps(tree: exp.Expr) -> list[str]:
    """DuckDB function names in ``tree`` with no Spark mapping (the Spark SQL will fail on them)."""
    names = {node.name.lower() for node in tree.find_all(exp.Anonymous)}
    return sorted(n for n in names if n not in SPARK_FUNCTIONS and n not in SPARK_SAME)


def to_spark_sql(tree: exp.Expr) -> str:
    """Spark SQL text for a KQL-lowered tree."""
    copied = tree.copy()
    # Spark has no JSON type: dynamic values are JSON text there
    for cast in list(copied.find_all(exp.Cast)):
        if cast.to.is_type(exp.DataType.Type.JSON) and cast is not copied:
            cast.replace(cast.this)
    # innermost calls first, so a rewritten call's arguments are already rewritten
    for node in reversed(list(copied.find_all(exp.Anonymous, bfs=False))):
        mapping = SPARK_FUNCTIONS.get(node.name.lower())
        if mapping is not None:
            replacement = mapping(list(node.expressions))
            if node is copied:
                copied = replacement
            else:
                node.replace(replacement)
    # UNNEST(x) AS name in a select list (mv-expand) is Spark's explode(x) AS name (sqlglot would print the alias
    # as a second argument of explode)
    for unnest in list(copied.find_all(exp.Unnest)):
        name = unnest.args.get("alias")
        if isinstance(name, exp.Identifier) and isinstance(unnest.parent, exp.Select) \
                and len(unnest.expressions) == 1:
            unnest.replace(exp.Alias(this=_anon("explode", unnest.expressions[0]), alias=name.copy()))
    # Spark requires an ordered window for row_number(); DuckDB numbers rows in any order (innerunique joins
    # keep one arbitrary row per key, as Kusto does)
    for window in list(copied.find_all(exp.Window)):
        if isinstance(window.this, exp.RowNumber) and not window.args.get("order"):
            window.set("order", exp.Order(expressions=[exp.Ordered(this=exp.Literal.number(1))]))
    return copied.sql(dialect="spark", copy=False)
