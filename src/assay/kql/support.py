"""The KQL support matrix, generated from the code (the parser's operator lists, the function tables).

``python -m assay.kql.support > docs/kql-support.md`` (or ``assay kql support --out docs/kql-support.md``)
rewrites the page; a test fails when the committed page differs from what the code says.
"""

from __future__ import annotations

import sys

from assay.kql.functions import (
    AGGREGATE_FUNCTIONS,
    OFFLINE_FUNCTIONS,
    SCALAR_FUNCTIONS,
    UNSUPPORTED_FUNCTIONS,
)
from assay.kql.parser import LIST_OPS, STRING_OPS, TABULAR_OPERATORS, UNSUPPORTED_OPERATORS

#: Operators whose support is partial, or that need a note. Anything in TABULAR_OPERATORS not listed here is
#: supported as documented by Microsoft.
OPERATOR_NOTES: dict[str, tuple[str, str]] = {
    "join": ("supported", "every kind; the default is innerunique (one arbitrary left row per key, as in Kusto); "
                          "conditions are column names or $left.A == $right.B"),
    "lookup": ("supported", "kind=leftouter (default) and inner"),
    "union": ("supported", "withsource, kind=inner/outer, isfuzzy; table-name wildcards (`union *`, "
                           "`union Device*`) read every table that holds data; a column with different types in "
                           "different legs becomes name_type, as in Kusto"),
    "mv-apply": ("supported", "with_itemindex, `to typeof()`, limit; the subquery runs per input row (a LATERAL "
                              "subquery) over that row's expanded arrays and sees only them, as in Kusto"),
    "make-series": ("partial", "aggregates of summarize with `default=`, from/to/step (or `in range(...)`), by; "
                               "without from/to each series spans its own data (as documented); "
                               "kind=nonempty is not supported"),
    "evaluate": ("partial", "plugins bag_unpack (prefix, columnsConflict, ignoredProperties, `: (schema)`) and "
                            "pivot (count/sum/avg/min/max/dcount/make_set/make_list); their columns come from the "
                            "data, so `kql check` needs an output schema; other plugins are rejected by name"),
    "search": ("supported", "a bare string is a term in any string/dynamic column, `Col:\"x\"` a term in Col, "
                            "`x*`/`*x`/`*x*` prefix/suffix/substring; kind=case_sensitive; `in (T1, T*)`; "
                            "without tables it reads every table that holds data and adds `$table`"),
    "mv-expand": ("partial", "arrays and property bags (kind=array gives [key, value]); `to typeof()`, "
                             "with_itemindex, limit, bagexpansion=bag/array"),
    "parse": ("partial", "kind=simple, regex (string columns greedy, as in Kusto) and relaxed; flags=U is not "
                         "supported"),
    "parse-where": ("partial", "as parse; rows whose pattern or typed values do not match are dropped"),
    "summarize": ("supported", "with by, bin(); hints are ignored; see the aggregate table"),
    "sort": ("supported", "Kusto's defaults: descending, nulls last (ascending: nulls first)"),
    "order": ("supported", "alias of sort"),
    "top": ("supported", "same defaults as sort"),
    "distinct": ("supported", ""),
    "render": ("supported", "accepted and ignored (presentation only)"),
    "serialize": ("supported", "fixes the current row order (a hidden row number) so prev(), next(), "
                               "row_number() and row_cumsum() can run"),
    "as": ("supported", "names the input for union withsource"),
    "getschema": ("supported", "ColumnName, ColumnOrdinal, DataType (.NET type name), ColumnType"),
    "invoke": ("supported", "the pipe input becomes the function's first (tabular) parameter"),
    "take": ("supported", "rows are not random: the first rows in the engine's order"),
    "limit": ("supported", "alias of take"),
    "filter": ("supported", "alias of where"),
    "project-reorder": ("supported", "asc/desc ordering of wildcard matches"),
}

SOURCE_NOTES: list[tuple[str, str, str]] = [
    ("let (scalars, tabular expressions, functions with defaults, view)", "supported", ""),
    ("datatable", "supported", ""),
    ("print", "supported", "runs without a database"),
    ("range", "supported", "long and datetime ranges (not real)"),
    ("materialize()", "supported", "inlined (no cache needed on DuckDB)"),
    ("toscalar()", "supported", "evaluated once per query; over a tabular expression, a let or a function "
                                "call pipeline (`toscalar(f() \\| count)`)"),
    ("externaldata", "offline stand-in", "reads the local file mapped to its URL: `--externaldata URL=FILE` "
                                         "(`externaldata={url: path}` in assay.kql); csv, tsv, psv, scsv, txt, raw, "
                                         "json, multijson; unmapped: a located error naming the flag; never "
                                         "the network"),
    ("_GetWatchlist('alias')", "offline stand-in", "reads the CSV mapped with `--watchlist alias=FILE` "
                                                   "(`watchlists=` in assay.kql; `<detection>/watchlists/alias.csv` "
                                                   "when a detection is verified): the CSV's columns as strings, "
                                                   "plus SearchKey (its SearchKey column, else the first) and "
                                                   "WatchlistItem (the row as a bag)"),
    ("_ASim*, _Im_*, other Sentinel workspace functions", "not available offline",
     "export the data and load it as a table"),
    ("arg(\"\").T, workspace(...).T, cluster(...).database(...).T, app(...)", "not available offline",
     "cross-service data: a located error"),
    ("Defender: AssignedIPAddresses(x, y), invoke DeviceFromIP()", "supported",
     "answered from a local DeviceNetworkInfo table (KQL in assay.kql.bind.defender)"),
    ("Defender: invoke FileProfile(), invoke SeenBy()", "needs the service",
     "global prevalence, signers and device discovery live in Microsoft's cloud: a located error"),
    ("deprecated names: mvexpand, mvapply, makeset, makelist, makeset_if, makelist_if, make_dictionary, "
     "parsejson, extractjson, anyif, array_strcat", "supported", "read as their current names"),
    ("set statements", "supported", "accepted and ignored"),
    ("declare query_parameters, alias, pattern, restrict", "not supported", ""),
]

SEMANTICS = [
    "`has` family: a term is a maximal run of ASCII letters and digits; only the needle's alphanumeric edges need "
    "a term boundary (`has \"/s\"` matches `x /s y`, not `x /su`). Lowered to a substring prefilter plus an "
    "RE2/Java-compatible regex `(?i)(?:^|[^0-9A-Za-z])needle(?:$|[^0-9A-Za-z])`, so DuckDB and Spark agree.",
    "`=~`, `!~`, `has`, `contains`, `startswith`, `endswith`, `in~` are case-insensitive; the `_cs` forms are not.",
    "Strings are never null: table columns are read with `coalesce(column, '')`, outer joins and unions fill "
    "missing strings with `\"\"`, `isnull(string)` is false, `tostring(null)` is `\"\"`.",
    "A comparison with a null operand is false (not null) outside `where`, as documented for Kusto.",
    "`now()` is fixed once per run and settable (`--now`, `run(now=...)`); `ago()` follows it.",
    "long / long is integer division (truncating); a real operand gives real division; `%` is never negative.",
    "Datetimes have microsecond precision (Kusto: 100 ns ticks).",
    "Lenient comparisons, as Kusto: a string literal compared with a number or a datetime is converted to it "
    "(`RemotePort == \"3389\"`, `RemotePort in (\"22\", \"3389\")`, `Timestamp > \"2024-05-01\"`); text that "
    "does not convert matches nothing. A string column compared with a number stays a type error.",
    "Unicode spaces (no-break U+00A0/U+202F, zero-width U+200B-U+200D/U+2060/U+FEFF, typographic "
    "U+2000-U+200A, U+3000) are whitespace in query text; inside strings they are kept.",
    "Regular expressions are RE2 (checked with google-re2 before running): inline flags mid-pattern (`a(?i)b`) "
    "work; `extract()` reads any capture group (DuckDB's limit of 9 is worked around).",
    "`in` and `!in` flatten nested dynamic arrays (`x in (dynamic([1,[2,3]]))` is `x in (1,2,3)`); the right "
    "side of `in`/`has_any`/`has_all` may be a tabular let, a table or a subquery (its first column), or a "
    "dynamic column.",
    "Every error has a line and column: parse, check and bind errors point at the construct; a failure inside "
    "DuckDB at run time is reported at the construct its message names (bench/fuzz_kql.py checks this).",
    "`in~` compares text: a number or datetime operand is converted with tostring() (pySigma's kusto backend "
    "writes `RemotePort in~ (\"80\", \"443\")`). An unknown escape in a string literal (`\"\\*\"`) keeps "
    "the character.",
    "Tabular lets become CTEs (computed once per query); `and`/`or` chains are rebuilt balanced, so generated "
    "rules with hundreds of terms compile.",
    "`dcount`, `dcountif` and `percentile(s)` are exact (Kusto estimates); `make_set` returns its values sorted "
    "(Kusto leaves the order unspecified).",
    "Dynamic values are JSON; `d.a.b[0]` becomes one `json_extract(d, '$.\"a\".\"b\"[0]')`.",
    "Spark SQL (`--sql spark`): generated from the same sqlglot tree; DuckDB-only function names are mapped by "
    "`assay.engine.spark_sql` where Spark has an equivalent (`spark_gaps()` lists the rest).",
]


def _row(name: str, status: str, note: str) -> str:
    return f"| `{name}` | {status} | {note.replace('|', '/')} |"


def render_markdown() -> str:
    lines = [
        "# KQL support in Assay",
        "",
        "Generated from the code by `assay kql support --out docs/kql-support.md`; do not edit by hand.",
        "Anything not listed as supported is rejected with an error naming the construct, never run with a "
        "different meaning.",
        "",
        "## Semantics",
        "",
        *[f"- {line}" for line in SEMANTICS],
        "",
        "## Query statements and sources",
        "",
        "| construct | status | notes |",
        "|---|---|---|",
        *[f"| {name} | {status} | {note} |" for name, status, note in SOURCE_NOTES],
        "",
        "## Tabular operators",
        "",
        "| operator | status | notes |",
        "|---|---|---|",
    ]
    for name in sorted(TABULAR_OPERATORS):
        status, note = OPERATOR_NOTES.get(name, ("supported", ""))
        lines.append(_row(name, status, note))
    for name in sorted(UNSUPPORTED_OPERATORS):
        lines.append(_row(name, "not supported", ""))
    lines += [
        "",
        "## Scalar operators",
        "",
        "| operator | status | notes |",
        "|---|---|---|",
    ]
    scalar_operators = sorted({*STRING_OPS, *LIST_OPS, "has_any_cs", "has_all_cs"} - {"like", "notlike"})
    for name in ["==", "!=", "<", "<=", ">", ">=", "=~", "!~", "+", "-", "*", "/", "%", "and", "or", "not()",
                 "between", "!between", "matches regex", *scalar_operators]:
        note = ""
        if name.lstrip("!").startswith("has") and name.lstrip("!") not in ("has_any", "has_all"):
            note = "needs a constant right side"
        if name.lstrip("!") in ("has_any", "has_all", "has_any_cs", "has_all_cs"):
            note = "constant strings, dynamic arrays (literal, let or column), or a tabular let / subquery"
        if name in ("in", "!in", "in~", "!in~"):
            note = "values, dynamic arrays (flattened) or a tabular subquery"
        if name in ("between", "!between"):
            note = "numbers and datetimes; datetime .. timespan"
        lines.append(_row(name, "supported", note))
    lines += [
        "",
        "## Scalar functions",
        "",
        "| function | arguments | status | notes |",
        "|---|---|---|---|",
    ]
    for name in sorted(SCALAR_FUNCTIONS):
        spec = SCALAR_FUNCTIONS[name]
        arity = str(spec.min_args) if spec.min_args == spec.max_args else f"{spec.min_args}..{spec.max_args}"
        lines.append(f"| `{name}` | {arity} | {spec.status} | {spec.note} |")
    lines += [
        "| `typeof` | 1 | supported | in extract() and function parameters |",
        "| `toscalar` | 1 | supported | evaluated once per query |",
        "| `column_ifexists` | 2 | supported | |",
        "| `prev`, `next` | 1..3 | supported | over serialized rows (after sort or serialize), in extend/project |",
        "| `row_number`, `row_cumsum` | 0..2 | partial | over serialized rows; a restart condition is not "
        "supported |",
        "| `ingestion_time` | 0 | partial | Assay stores no ingestion time: the row's _IngestionTime, else its "
        "TimeGenerated or Timestamp stands in |",
        "| `series_stats`, `series_fit_line` | 1 | supported | several columns: `extend series_stats(x)` names "
        "them series_stats_x_min ...; `extend (a, b, ...) = series_fit_line(x)` |",
        "",
        "## Aggregate functions (summarize)",
        "",
        "| function | arguments | default column | status | notes |",
        "|---|---|---|---|---|",
    ]
    for name in sorted(AGGREGATE_FUNCTIONS):
        aggregate = AGGREGATE_FUNCTIONS[name]
        arity = str(aggregate.min_args) if aggregate.min_args == aggregate.max_args else \
            f"{aggregate.min_args}..{aggregate.max_args}"
        status = "not supported" if aggregate.status == "unsupported" else aggregate.status
        lines.append(f"| `{name}` | {arity} | `{aggregate.column_prefix}…` | {status} | {aggregate.note} |")
    lines += [
        "",
        "## Known functions that are not supported",
        "",
        ", ".join(f"`{name}`" for name in sorted(UNSUPPORTED_FUNCTIONS)),
        "",
        "## Not available offline",
        "",
        ", ".join(f"`{name}`" for name in sorted(OFFLINE_FUNCTIONS)
                  if name not in ("_GetWatchlist", "externaldata")) +
        " and every `_ASim*`, `_Im_*` Sentinel function. `_GetWatchlist` and `externaldata` read local files "
        "mapped to them (see the sources table).",
        "",
    ]
    from assay.schema.docs import tables_markdown

    lines.append(tables_markdown())
    return "\n".join(lines)


def main() -> None:
    sys.stdout.write(render_markdown())


if __name__ == "__main__":
    main()
