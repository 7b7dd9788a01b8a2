"""Hand-written recursive-descent parser: tokens → :mod:`assay.kql.ast`.

Recursive descent gives precise errors ("expected ')' after the arguments of count, found 'by'") and is what
Microsoft's own Kusto parser does. Nesting depth is bounded so hostile input gives a KqlSyntaxError, never a
RecursionError.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, NoReturn

from assay.errors import KqlSyntaxError, KqlUnsupportedError, SourceSpan, did_you_mean
from assay.kql import ast
from assay.kql.lexer import TIMESPAN_UNITS, Token, TokenKind, tokenize

MAX_DEPTH = 200
LONG_MAX = 2**63 - 1

#: Tabular operators we parse (→ supported or a clear KqlUnsupportedError from the parser itself).
TABULAR_OPERATORS = (
    "where", "filter", "extend", "project", "project-away", "project-keep", "project-rename", "project-reorder",
    "summarize", "sort", "order", "top", "take", "limit", "distinct", "count", "join", "lookup", "union",
    "mv-expand", "mv-apply", "make-series", "evaluate", "parse", "parse-where", "as", "invoke", "render",
    "serialize", "getschema", "search",
)
#: Operators Kusto has and Assay does not run (named so the error says so instead of "unknown operator").
UNSUPPORTED_OPERATORS = (
    "sample", "sample-distinct", "top-nested", "top-hitters", "fork",
    "facet", "partition", "scan", "reduce", "project-smart", "parse-kv", "consume", "find",
    "externaldata", "lookup-hint", "partition-by", "sql", "graph-match", "make-graph", "execute",
)
#: Functions that name another service's data: arg("").Resources, workspace("w").T, cluster("c").database("d").T
CROSS_SERVICE_FUNCTIONS = {
    "arg": "Azure Resource Graph", "adx": "an Azure Data Explorer cluster", "cluster": "an Azure Data Explorer "
    "cluster", "database": "another database", "workspace": "another Log Analytics workspace",
    "app": "an Application Insights app", "resource": "an Azure resource's logs",
}
#: Deprecated names still common in published queries → the current name (Kusto still accepts them).
DEPRECATED_OPERATORS = {"mvexpand": "mv-expand", "mvapply": "mv-apply"}
DEPRECATED_FUNCTIONS = {
    "makeset": "make_set", "makelist": "make_list", "make_dictionary": "make_bag", "parsejson": "parse_json",
    "extractjson": "extract_json", "anyif": "take_anyif", "array_strcat": "strcat_array",
    "makeset_if": "make_set_if", "makelist_if": "make_list_if",
}
COMPARISON_OPS = (
    "==", "!=", "<>", "<", "<=", ">", ">=", "=~", "!~",
)
STRING_OPS = (
    "has", "!has", "has_cs", "!has_cs", "hasprefix", "!hasprefix", "hasprefix_cs", "!hasprefix_cs",
    "hassuffix", "!hassuffix", "hassuffix_cs", "!hassuffix_cs", "contains", "!contains", "contains_cs",
    "!contains_cs", "startswith", "!startswith", "startswith_cs", "!startswith_cs", "endswith", "!endswith",
    "endswith_cs", "!endswith_cs", "like", "notlike", "contains_cs",
)
LIST_OPS = ("in", "!in", "in~", "!in~", "has_any", "has_all", "!has_any", "!has_all")
SCALAR_TYPES = ("string", "long", "int", "real", "double", "bool", "boolean", "datetime", "date", "timespan",
                "time", "dynamic", "guid", "decimal", "uniqueid")
TYPE_ALIASES = {"double": "real", "boolean": "bool", "date": "datetime", "time": "timespan", "uniqueid": "guid",
                "decimal": "real", "int64": "long", "int32": "int", "float": "real"}


KNOWN_TYPES = frozenset({"string", "long", "int", "real", "bool", "datetime", "timespan", "dynamic", "guid"})


def normalize_type(name: str) -> str:
    lowered = name.lower()
    return TYPE_ALIASES.get(lowered, lowered)


class Parser:
    def __init__(self, text: str, file: str | None = None) -> None:
        self.text = text
        self.file = file
        self.tokens = tokenize(text, file)
        self.index = 0
        self.depth = 0
        self.in_search = False  # inside a search predicate, Column:"term" is a comparison

    # ---------------------------------------------------------------- helpers
    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def span(self, token: Token | None = None) -> SourceSpan:
        token = token or self.token
        return SourceSpan(self.file, token.line, token.col, self.text)

    def pos(self, token: Token | None = None) -> ast.Pos:
        token = token or self.token
        return (token.line, token.col)

    def fail(self, message: str, token: Token | None = None, hint: str | None = None) -> NoReturn:
        raise KqlSyntaxError(message, self.span(token), hint)

    # the helpers below index self.tokens directly: they run thousands of times per query and the property
    # call behind self.token showed in parse time
    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not TokenKind.EOF:
            self.index += 1
        return token

    def at_end(self) -> bool:
        return self.tokens[self.index].kind is TokenKind.EOF

    def at_op(self, *ops: str) -> bool:
        token = self.tokens[self.index]
        return token.kind is TokenKind.OP and token.text in ops

    def at_word(self, *words: str) -> bool:
        token = self.tokens[self.index]
        return token.kind is TokenKind.IDENT and token.text.lower() in words

    def accept_op(self, op: str) -> bool:
        if self.at_op(op):
            self.advance()
            return True
        return False

    def accept_word(self, word: str) -> bool:
        if self.at_word(word):
            self.advance()
            return True
        return False

    def expect_op(self, op: str, context: str) -> Token:
        if not self.at_op(op):
            self.fail(f"expected '{op}' {context}, found {self.token.describe()}")
        return self.advance()

    def expect_word(self, word: str, context: str) -> Token:
        if not self.at_word(word):
            self.fail(f"expected '{word}' {context}, found {self.token.describe()}")
        return self.advance()

    def expect_ident(self, context: str) -> Token:
        token = self.token
        if token.kind is TokenKind.IDENT:
            return self.advance()
        if token.kind is TokenKind.OP and token.text == "[" and self.peek().kind is TokenKind.STRING \
                and self.peek(2).kind is TokenKind.OP and self.peek(2).text == "]":
            self.advance()
            name = self.advance()
            self.advance()
            return Token(TokenKind.IDENT, name.text, token.line, token.col, token.offset, name.end)
        self.fail(f"expected a name {context}, found {token.describe()}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"query is nested too deeply (more than {MAX_DEPTH} levels)",
                      hint="simplify the expression or split it with let statements")

    def leave(self) -> None:
        self.depth -= 1

    # ---------------------------------------------------------------- statements
    def parse_query(self) -> ast.Query:
        lets: list[ast.LetStatement] = []
        body: ast.Expr | ast.TabularExpr | None = None
        while not self.at_end():
            if self.accept_op(";"):
                continue
            if self.at_word("let"):
                lets.append(self.parse_let())
            elif self.at_word("set"):
                # client request properties (set notruncation;) do not change results here
                while not self.at_op(";") and not self.at_end():
                    self.advance()
            elif self.at_word("declare", "alias", "pattern", "restrict"):
                raise KqlUnsupportedError(f"'{self.token.text}' statements are not supported",
                                          self.span(), "inline the values with let statements")
            else:
                if body is not None:
                    self.fail("a query can have only one result expression; separate statements with ';'",
                              hint="make the earlier expression a let statement")
                body = self.parse_statement_expression()
                if not (self.at_op(";") or self.at_end()):
                    self.fail(f"unexpected {self.token.describe()} after the end of the query",
                              hint="tabular operators must follow a '|'")
        names = frozenset(t.text for t in self.tokens if t.kind in (TokenKind.IDENT, TokenKind.STRING))
        return ast.Query(tuple(lets), body, self.text, self.file, names)

    def parse_let(self) -> ast.LetStatement:
        start = self.expect_word("let", "")
        name = self.expect_ident("after 'let'").text
        self.expect_op("=", f"after 'let {name}'")
        if self.at_word("view") and self.peek().kind is TokenKind.OP and self.peek().text == "(":
            self.advance()
        if self.at_op("(") and self._looks_like_function():
            parameters = self.parse_parameters()
            self.expect_op("{", f"to open the body of function {name}")
            body = self.parse_function_body()
            self.expect_op("}", f"to close the body of function {name}")
            return ast.LetStatement(self.pos(start), name, None, tuple(parameters), body)
        value = self.parse_statement_expression()
        if not (self.at_op(";") or self.at_end()):
            self.fail(f"expected ';' after let {name}, found {self.token.describe()}")
        return ast.LetStatement(self.pos(start), name, value)

    def _looks_like_function(self) -> bool:
        """``(`` starts a parameter list when it closes and is followed by ``{``."""
        depth = 0
        index = self.index
        while index < len(self.tokens):
            token = self.tokens[index]
            if token.kind is TokenKind.OP and token.text == "(":
                depth += 1
            elif token.kind is TokenKind.OP and token.text == ")":
                depth -= 1
                if depth == 0:
                    following = self.tokens[index + 1] if index + 1 < len(self.tokens) else token
                    return following.kind is TokenKind.OP and following.text == "{"
            elif token.kind is TokenKind.EOF:
                return False
            index += 1
        return False

    def parse_parameters(self) -> list[ast.Parameter]:
        self.expect_op("(", "to open the parameter list")
        parameters: list[ast.Parameter] = []
        while not self.at_op(")"):
            name = self.expect_ident("for a parameter").text
            self.expect_op(":", f"after parameter {name}")
            if self.accept_op("("):
                depth = 1
                while depth and not self.at_end():
                    token = self.advance()
                    if token.kind is TokenKind.OP and token.text == "(":
                        depth += 1
                    elif token.kind is TokenKind.OP and token.text == ")":
                        depth -= 1
                kusto_type = "table"
            else:
                kusto_type = self.parse_type_name(f"for the type of parameter {name}")
            default = None
            if self.accept_op("="):
                default = self.parse_expression()
            parameters.append(ast.Parameter(name, kusto_type, default))
            if not self.accept_op(","):
                break
        self.expect_op(")", "to close the parameter list")
        return parameters

    def parse_function_body(self) -> ast.Query:
        lets: list[ast.LetStatement] = []
        body: ast.Expr | ast.TabularExpr | None = None
        while not self.at_op("}") and not self.at_end():
            if self.accept_op(";"):
                continue
            if self.at_word("let"):
                lets.append(self.parse_let())
            else:
                body = self.parse_statement_expression()
        return ast.Query(tuple(lets), body, self.text, self.file)

    # ---------------------------------------------------------------- tabular
    def parse_statement_expression(self) -> ast.Expr | ast.TabularExpr:
        """A tabular expression with pipes, or a scalar expression (decided by what follows)."""
        self.enter()
        try:
            source: ast.Expr | ast.TabularExpr
            if self.token.kind is TokenKind.IDENT and self.token.text.lower() in (
                    "datatable", "print", "range", "union", "externaldata", "external_data", "find", "search",
                    "evaluate", "materialize") and self._tabular_keyword_context():
                source = self.parse_tabular_source()
            elif self.at_op("|"):
                self.fail("a query cannot start with '|'", hint="start with a table name")
            else:
                source = self.parse_expression()
            if not self.at_op("|"):
                return source
            tabular = self.to_tabular(source)
            while self.accept_op("|"):
                tabular = ast.Pipe(tabular.pos, tabular, self.parse_operator())
            return tabular
        finally:
            self.leave()

    def _tabular_keyword_context(self) -> bool:
        word = self.token.text.lower()
        following = self.peek()
        if word == "materialize":
            return True
        if word in ("print", "union", "find", "search", "evaluate"):
            return not (following.kind is TokenKind.OP and following.text in ("=", "==", ".", "|", ";", ")"))
        return (following.kind is TokenKind.OP and following.text == "(") or \
            (word == "range" and following.kind is TokenKind.IDENT)

    def to_tabular(self, source: ast.Expr | ast.TabularExpr) -> ast.TabularExpr:
        if isinstance(source, ast.TabularExpr):
            return source
        if isinstance(source, ast.Member | ast.Index):
            base: ast.Expr = source
            while isinstance(base, ast.Member | ast.Index):
                base = base.target
            if isinstance(base, ast.Call) and base.name.lower() in CROSS_SERVICE_FUNCTIONS:
                raise KqlUnsupportedError(
                    f"{base.name}(...) reads another service ({CROSS_SERVICE_FUNCTIONS[base.name.lower()]}), "
                    "not available offline", SourceSpan(self.file, base.pos[0], base.pos[1], self.text),
                    "export that data and load it as a table (assay ingest), then name the table")
        if isinstance(source, ast.Name):
            return ast.TableRef(source.pos, source.name)
        if isinstance(source, ast.Call):
            return ast.FunctionSource(source.pos, source.name, source.args)
        if isinstance(source, ast.TabularArg):
            return source.query
        if self.at_op("|"):
            self.fail("unexpected '|' after a scalar expression: expected ')' or a table before the '|'",
                      hint="a tabular expression starts with a table name, a let name, datatable, print or range")
        raise KqlSyntaxError("expected a tabular expression here",
                             SourceSpan(self.file, source.pos[0], source.pos[1], self.text),
                             "a tabular expression starts with a table name, a let name, datatable, print or range")

    def parse_tabular_source(self) -> ast.TabularExpr:
        token = self.token
        word = token.text.lower()
        if word == "datatable":
            return self.parse_datatable()
        if word == "print":
            self.advance()
            return ast.Print(self.pos(token), tuple(self.parse_assignments("print")))
        if word == "range":
            self.advance()
            column = self.expect_ident("after 'range'").text
            self.expect_word("from", f"after 'range {column}'")
            start = self.parse_expression()
            self.expect_word("to", "in range")
            stop = self.parse_expression()
            self.expect_word("step", "in range")
            step = self.parse_expression()
            return ast.Range(self.pos(token), column, start, stop, step)
        if word == "union":
            self.advance()
            operator = self.parse_union_body(token)
            return ast.Union(operator.pos, operator.sources, operator.kind, operator.withsource, operator.isfuzzy)
        if word in ("externaldata", "external_data"):
            return self.parse_externaldata()
        if word == "search":
            self.advance()
            case_sensitive, tables, predicate = self.parse_search_body()
            return ast.Search(self.pos(token), tuple(tables or ["*"]), predicate, case_sensitive)
        if word == "materialize":
            self.advance()
            self.expect_op("(", "after materialize")
            inner = self.to_tabular(self.parse_statement_expression())
            self.expect_op(")", "to close materialize(...)")
            return inner
        raise KqlUnsupportedError(f"the '{word}' operator is not supported", self.span(),
                                  "rewrite the query with where/union over named tables")

    def parse_type_name(self, context: str) -> str:
        """A scalar type name (string, long, datetime ...), normalized; anything else is a located error."""
        token = self.expect_ident(context)
        kusto_type = normalize_type(token.text)
        if kusto_type not in KNOWN_TYPES:
            suggestion = did_you_mean(token.text, SCALAR_TYPES)
            self.fail(f"unknown type {token.text!r}", token, f"did you mean {suggestion}?" if suggestion else
                      "use string, long, int, real, bool, datetime, timespan, dynamic or guid")
        return kusto_type

    def parse_search_body(self) -> tuple[bool, list[str] | None, ast.Expr]:
        options = self.parse_options(("kind",))
        case_sensitive = options.get("kind", ("", self.token))[0].lower() == "case_sensitive"
        tables: list[str] | None = None
        if self.at_word("in") and self.peek().kind is TokenKind.OP and self.peek().text == "(":
            self.advance()
            self.advance()
            tables = []
            while not self.at_op(")"):
                tables.append(self.parse_column_pattern("search in (...)"))
                if not self.accept_op(","):
                    break
            self.expect_op(")", "to close the table list of search")
        self.in_search = True
        try:
            predicate = self.parse_expression()
        finally:
            self.in_search = False
        return case_sensitive, tables, predicate

    def parse_schema(self, context: str) -> tuple[tuple[str, str], ...]:
        """``(Name: type, ...)``; a leading ``*,`` (keep the input's columns) is accepted and ignored."""
        self.expect_op("(", f"to open {context}")
        columns = self.parse_typed_columns(f"a column of {context}", "column", star=True)
        self.expect_op(")", f"to close {context}")
        return columns

    def parse_typed_columns(self, what: str, noun: str, *, star: bool = False) -> tuple[tuple[str, str], ...]:
        """``Name: type, ...`` up to the closing parenthesis (not consumed); ``what`` and ``noun`` name the
        column in errors ("for a datatable column", "after datatable column X")."""
        columns: list[tuple[str, str]] = []
        while not self.at_op(")"):
            if star and self.accept_op("*"):
                if not self.accept_op(","):
                    break
                continue
            name = self.expect_ident(f"for {what}").text
            self.expect_op(":", f"after {noun} {name}")
            type_token = self.expect_ident(f"for the type of column {name}")
            kusto_type = normalize_type(type_token.text)
            if kusto_type not in {normalize_type(t) for t in SCALAR_TYPES}:
                self.fail(f"unknown type {type_token.text!r}", type_token,
                          f"did you mean {did_you_mean(type_token.text, SCALAR_TYPES) or 'string'}?")
            columns.append((name, kusto_type))
            if not self.accept_op(","):
                break
        return tuple(columns)

    def parse_externaldata(self) -> ast.TabularExpr:
        token = self.advance()
        self.expect_op("(", "after externaldata")
        columns = self.parse_typed_columns("an externaldata column", "externaldata column")
        self.expect_op(")", "to close the externaldata schema")
        self.expect_op("[", "to open the externaldata URLs")
        urls: list[str] = []
        while not self.at_op("]"):
            url_token = self.token
            if url_token.kind is not TokenKind.STRING:
                self.fail(f"expected a URL string in externaldata, found {url_token.describe()}")
            urls.append(self.advance().text)
            while self.token.kind is TokenKind.STRING:  # adjacent literals concatenate
                urls[-1] += self.advance().text
            if not self.accept_op(","):
                break
        self.expect_op("]", "to close the externaldata URLs")
        options: list[tuple[str, str]] = []
        if self.accept_word("with"):
            self.expect_op("(", "after 'with'")
            while not self.at_op(")"):
                option = self.expect_ident("for an externaldata property").text
                self.expect_op("=", f"after {option}")
                value = self.advance()
                options.append((option.lower(), value.text))
                if not self.accept_op(","):
                    break
            self.expect_op(")", "to close the externaldata properties")
        if not urls:
            self.fail("externaldata needs at least one URL", token)
        return ast.ExternalData(self.pos(token), tuple(columns), tuple(urls), tuple(options))

    def parse_datatable(self) -> ast.TabularExpr:
        token = self.advance()
        self.expect_op("(", "after datatable")
        columns = self.parse_typed_columns("a datatable column", "datatable column")
        self.expect_op(")", "to close the datatable schema")
        self.expect_op("[", "to open the datatable values")
        values: list[ast.Expr] = []
        while not self.at_op("]"):
            values.append(self.parse_expression())
            if not self.accept_op(","):
                break
        self.expect_op("]", "to close the datatable values")
        if columns and len(values) % len(columns):
            self.fail(f"datatable has {len(values)} values for {len(columns)} columns; "
                      "the count must be a multiple of the column count", token)
        return ast.Datatable(self.pos(token), tuple(columns), tuple(values))

    def parse_options(self, allowed: tuple[str, ...] = ()) -> dict[str, tuple[str, Token]]:
        """``kind=inner hint.strategy=shuffle withsource=T`` options before an operator's body. Only the
        operator's own option names (and ``hint.*``) count: ``summarize n = count()`` is not an option."""
        options: dict[str, tuple[str, Token]] = {}
        while self.token.kind is TokenKind.IDENT and self.peek().kind is TokenKind.OP and \
                self.peek().text in ("=", ".") and (self.token.text.lower() in allowed or
                                                   self.token.text.lower() == "hint"):
            start = self.index
            name_parts = [self.advance().text]
            while self.accept_op("."):
                name_parts.append(self.expect_ident("in an option name").text)
            if not self.accept_op("="):
                self.index = start
                break
            value_token = self.advance()
            value = value_token.text
            while value_token.kind is TokenKind.IDENT and self.at_op("."):  # dotted values
                self.advance()
                value += "." + self.advance().text
            options[".".join(name_parts).lower()] = (value, value_token)
        return options

    def parse_operator(self) -> ast.Operator:
        token = self.token
        if token.kind is not TokenKind.IDENT:
            self.fail(f"expected a tabular operator after '|', found {token.describe()}",
                      hint="for example: where, extend, project, summarize")
        word = DEPRECATED_OPERATORS.get(token.text.lower(), token.text.lower())
        if word in UNSUPPORTED_OPERATORS:
            raise KqlUnsupportedError(f"the '{word}' operator is not supported", self.span(),
                                      "see docs/kql-support.md for what Assay runs")
        if word not in TABULAR_OPERATORS:
            suggestion = did_you_mean(word, TABULAR_OPERATORS + UNSUPPORTED_OPERATORS)
            self.fail(f"unknown tabular operator '{token.text}'", token,
                      f"did you mean '{suggestion}'?" if suggestion else "see docs/kql-support.md")
        self.advance()
        pos = self.pos(token)
        if word in ("where", "filter"):
            return ast.Where(pos, "where", self.parse_expression())
        if word == "extend":
            return ast.Extend(pos, word, tuple(self.parse_assignments(word)))
        if word == "project":
            return ast.Project(pos, word, tuple(self.parse_assignments(word)))
        if word in ("project-away", "project-keep", "project-reorder"):
            patterns: list[tuple[str, ast.Pos, str | None]] = []
            while True:
                pattern_token = self.token
                pattern = self.parse_column_pattern(word)
                direction = None
                if word == "project-reorder" and self.at_word("asc", "desc", "granny-asc", "granny-desc"):
                    direction = self.advance().text.lower()
                patterns.append((pattern, self.pos(pattern_token), direction))
                if not self.accept_op(","):
                    break
            return ast.ProjectColumns(pos, word, tuple(patterns))
        if word == "project-rename":
            renames: list[tuple[str, str, ast.Pos]] = []
            while True:
                new_token = self.expect_ident("for the new column name")
                self.expect_op("=", f"after {new_token.text} in project-rename")
                old_token = self.expect_ident("for the column to rename")
                renames.append((new_token.text, old_token.text, self.pos(old_token)))
                if not self.accept_op(","):
                    break
            return ast.ProjectRename(pos, word, tuple(renames))
        if word == "summarize":
            self.parse_options()
            aggregates: list[ast.Assignment] = []
            if not self.at_word("by"):
                aggregates = self.parse_assignments(word)
            by: list[ast.Assignment] = []
            if self.accept_word("by"):
                by = self.parse_assignments("summarize by")
            return ast.Summarize(pos, word, tuple(aggregates), tuple(by))
        if word in ("sort", "order"):
            self.parse_options()
            self.expect_word("by", f"after '{word}'")
            keys = [self.parse_sort_key()]
            while self.accept_op(","):
                keys.append(self.parse_sort_key())
            return ast.Sort(pos, "sort", tuple(keys))
        if word == "top":
            count = self.parse_expression()
            self.expect_word("by", "after 'top N'")
            return ast.Top(pos, word, count, self.parse_sort_key())
        if word in ("take", "limit"):
            self.parse_options()
            return ast.Take(pos, "take", self.parse_expression())
        if word == "distinct":
            if self.at_op("*"):
                star = self.advance()
                return ast.Distinct(pos, word, (ast.Star(self.pos(star)),))
            columns = [self.parse_expression()]
            while self.accept_op(","):
                columns.append(self.parse_expression())
            return ast.Distinct(pos, word, tuple(columns))
        if word == "count":
            return ast.Count(pos, word)
        if word in ("join", "lookup"):
            options = self.parse_options(("kind",))
            default_kind = "innerunique" if word == "join" else "leftouter"
            kind = options.get("kind", (default_kind, token))[0].lower()
            valid = ("innerunique", "inner", "leftouter", "rightouter", "fullouter", "leftanti", "rightanti",
                     "leftsemi", "rightsemi", "leftantisemi", "rightantisemi", "anti", "semi") \
                if word == "join" else ("leftouter", "inner")
            if kind not in valid:
                kind_token = options["kind"][1]
                suggestion = did_you_mean(kind, list(valid))
                self.fail(f"unknown {word} kind '{kind}'", kind_token,
                          f"did you mean '{suggestion}'?" if suggestion else f"use one of {', '.join(valid)}")
            kind = {"leftantisemi": "leftanti", "rightantisemi": "rightanti", "anti": "leftanti",
                    "semi": "leftsemi"}.get(kind, kind)
            right = self.parse_join_right()
            self.expect_word("on", f"after the right side of {word}")
            conditions = [self.parse_expression()]
            while self.accept_op(","):
                conditions.append(self.parse_expression())
            return ast.Join(pos, word, kind, right, tuple(conditions), word == "lookup")
        if word == "union":
            return self.parse_union_body(token)
        if word == "mv-apply":
            return self.parse_mv_apply(pos, token)
        if word == "make-series":
            return self.parse_make_series(pos)
        if word == "search":
            case_sensitive, tables, predicate = self.parse_search_body()
            if tables is not None:
                self.fail("'search in (...)' names tables; after a pipe, search reads its input", token)
            return ast.SearchOp(pos, "search", predicate, case_sensitive)
        if word == "evaluate":
            self.parse_options()
            plugin = self.expect_ident("after 'evaluate' (a plugin name such as bag_unpack)")
            self.expect_op("(", f"after evaluate {plugin.text}")
            named: list[tuple[str, ast.Expr]] = []
            args: list[ast.Expr] = []
            while not self.at_op(")"):
                if self.token.kind is TokenKind.IDENT and self.peek().kind is TokenKind.OP and \
                        self.peek().text == "=":
                    name = self.advance().text
                    self.advance()
                    named.append((name.lower(), self.parse_expression()))
                else:
                    args.append(self.parse_expression())
                if not self.accept_op(","):
                    break
            self.expect_op(")", f"to close evaluate {plugin.text}(...)")
            schema = None
            if self.accept_op(":"):
                schema = self.parse_schema(f"the output schema of {plugin.text}")
            return ast.Evaluate(pos, "evaluate", plugin.text.lower(), tuple(args), schema, tuple(named))
        if word == "mv-expand":
            options = self.parse_options(("kind", "bagexpansion", "with_itemindex"))
            item_index = options["with_itemindex"][0] if "with_itemindex" in options else None
            bag_expansion = options.get("bagexpansion", ("bag", token))[0].lower()
            if bag_expansion not in ("bag", "array"):
                self.fail(f"unknown mv-expand bagexpansion '{bag_expansion}'", options["bagexpansion"][1],
                          "use bagexpansion=bag or bagexpansion=array")
            expansions: list[tuple[str | None, ast.Expr, str | None]] = []
            while True:
                assignment = self.parse_assignment("mv-expand")
                to_type = None
                if self.accept_word("to"):
                    self.expect_word("typeof", "after 'to' in mv-expand")
                    self.expect_op("(", "after typeof")
                    to_type = self.parse_type_name("for the type in typeof(...)")
                    self.expect_op(")", "to close typeof(...)")
                expansions.append((assignment.name, assignment.expr, to_type))
                if not self.accept_op(","):
                    break
            limit = self.parse_expression() if self.accept_word("limit") else None
            bag_as_array = options.get("kind", ("bag", token))[0].lower() == "array" or bag_expansion == "array"
            return ast.MvExpand(pos, word, tuple(expansions), item_index, limit, bag_as_array)
        if word in ("parse", "parse-where"):
            return self.parse_parse(pos, word)
        if word == "as":
            self.parse_options()
            return ast.As(pos, word, self.expect_ident("after 'as'").text)
        if word == "invoke":
            name = self.expect_ident("after 'invoke'").text
            self.expect_op("(", f"after invoke {name}")
            args = self.parse_call_args()
            return ast.Invoke(pos, word, name, tuple(args))
        # render, serialize: no effect on the rows; skip their arguments
        while not self.at_op("|", ";", ")") and not self.at_end():
            if self.at_op("("):
                self.skip_balanced()
            else:
                self.advance()
        return ast.NoOp(pos, word)

    def parse_expansions(self, context: str) -> list[tuple[str | None, ast.Expr, str | None]]:
        """``[Name =] ArrayExpression [to typeof(Type)], ...`` of mv-expand and mv-apply."""
        expansions: list[tuple[str | None, ast.Expr, str | None]] = []
        while True:
            assignment = self.parse_assignment(context)
            to_type = None
            if self.accept_word("to"):
                self.expect_word("typeof", f"after 'to' in {context}")
                self.expect_op("(", "after typeof")
                to_type = self.parse_type_name("for the type in typeof(...)")
                self.expect_op(")", "to close typeof(...)")
            expansions.append((assignment.name, assignment.expr, to_type))
            if not self.accept_op(","):
                return expansions

    def parse_make_series(self, pos: ast.Pos) -> ast.MakeSeries:
        options = self.parse_options(("kind",))
        nonempty = options.get("kind", ("", self.token))[0].lower() == "nonempty"
        aggregates: list[tuple[ast.Assignment, ast.Expr | None]] = []
        while True:
            assignment = self.parse_assignment("make-series")
            default = None
            if self.at_word("default") and self.peek().kind is TokenKind.OP and self.peek().text == "=":
                self.advance()
                self.advance()
                default = self.parse_expression()
            aggregates.append((assignment, default))
            if not self.accept_op(","):
                break
        self.expect_word("on", "after the aggregates of make-series")
        axis = self.parse_expression()
        start = end = step = None
        if self.accept_word("in"):  # the alternative syntax: on Axis in range(start, stop, step)
            self.expect_word("range", "after 'in' in make-series")
            self.expect_op("(", "after range")
            start = self.parse_expression()
            self.expect_op(",", "after the start of range")
            end = self.parse_expression()
            self.expect_op(",", "after the stop of range")
            step = self.parse_expression()
            self.expect_op(")", "to close range(...)")
        else:
            if self.accept_word("from"):
                start = self.parse_expression()
            if self.accept_word("to"):
                end = self.parse_expression()
            self.expect_word("step", "in make-series (step is required)")
            step = self.parse_expression()
        by: list[ast.Assignment] = []
        if self.accept_word("by"):
            by = self.parse_assignments("make-series by")
        return ast.MakeSeries(pos, "make-series", tuple(aggregates), axis, start, end, step, tuple(by), nonempty)

    def parse_mv_apply(self, pos: ast.Pos, token: Token) -> ast.MvApply:
        options = self.parse_options(("with_itemindex",))
        item_index = options["with_itemindex"][0] if "with_itemindex" in options else None
        expansions = self.parse_expansions("mv-apply")
        limit = self.parse_expression() if self.accept_word("limit") else None
        self.expect_word("on", "after the columns of mv-apply")
        self.expect_op("(", "to open the mv-apply subquery")
        operators: list[ast.Operator] = []
        self.enter()
        try:
            while not self.at_op(")"):
                if operators and not self.accept_op("|"):
                    self.fail(f"expected '|' or ')' in the mv-apply subquery, found {self.token.describe()}")
                self.accept_op("|") if not operators else None
                operators.append(self.parse_operator())
        finally:
            self.leave()
        self.expect_op(")", "to close the mv-apply subquery")
        if not operators:
            self.fail("the mv-apply subquery is empty", token, "e.g. mv-apply x = Arr on (where x > 0)")
        return ast.MvApply(pos, "mv-apply", tuple(expansions), item_index, limit, tuple(operators))

    def skip_balanced(self) -> None:
        depth = 0
        while not self.at_end():
            token = self.advance()
            if token.kind is TokenKind.OP and token.text == "(":
                depth += 1
            elif token.kind is TokenKind.OP and token.text == ")":
                depth -= 1
                if depth == 0:
                    return

    def parse_column_pattern(self, context: str) -> str:
        parts: list[str] = []
        start_index = self.index
        while True:
            if self.at_op("*"):
                parts.append("*")
                self.advance()
            elif self.token.kind is TokenKind.IDENT or (self.at_op("[") and self.peek().kind is TokenKind.STRING):
                if parts and parts[-1] != "*":
                    break
                parts.append(self.expect_ident("").text)
            else:
                break
            # a pattern continues only when the next piece touches this one (Init*Name)
            previous = self.tokens[self.index - 1]
            if self.token.offset != previous.end:
                break
        if not parts:
            self.index = start_index
            self.fail(f"expected a column name or pattern in {context}, found {self.token.describe()}")
        return "".join(parts)

    def parse_union_body(self, token: Token) -> ast.UnionOp:
        options = self.parse_options(("kind", "withsource", "isfuzzy"))
        kind = options.get("kind", ("outer", token))[0].lower()
        withsource = options.get("withsource", (None, token))[0]
        isfuzzy = options.get("isfuzzy", ("false", token))[0].lower() == "true"
        sources: list[ast.TabularExpr] = []
        while True:
            source_token = self.token
            if self.at_op("("):
                self.advance()
                sources.append(self.to_tabular(self.parse_statement_expression()))
                self.expect_op(")", "to close the union leg")
            else:
                name = self.parse_column_pattern("union")
                if self.at_op("(") and "*" not in name:
                    self.advance()
                    args = tuple(self.parse_call_args())
                    if self.at_op(".", "["):  # arg("").Resources, workspace("w").Table
                        call: ast.Expr = ast.Call(self.pos(source_token), name, args)
                        sources.append(self.to_tabular(ast.Member(self.pos(), call, "")))
                    sources.append(ast.FunctionSource(self.pos(source_token), name, args))
                else:
                    sources.append(ast.TableRef(self.pos(source_token), name))
            if not self.accept_op(","):
                break
        return ast.UnionOp(self.pos(token), "union", tuple(sources), kind, withsource, isfuzzy)

    def parse_join_right(self) -> ast.TabularExpr:
        if self.accept_op("("):
            right = self.to_tabular(self.parse_statement_expression())
            self.expect_op(")", "to close the right side of the join")
            return right
        token = self.expect_ident("for the right side of the join (a table, or a query in parentheses)")
        if self.at_op("("):
            self.advance()
            return ast.FunctionSource(self.pos(token), token.text, tuple(self.parse_call_args()))
        return ast.TableRef(self.pos(token), token.text)

    def parse_parse(self, pos: ast.Pos, word: str) -> ast.Parse:
        options = self.parse_options(("kind", "flags"))
        kind = options.get("kind", ("simple", self.token))[0].lower()
        if kind not in ("simple", "regex", "relaxed"):
            self.fail(f"unknown parse kind '{kind}'", options["kind"][1], "use simple, regex or relaxed")
        flags = options.get("flags", ("", self.token))[0]
        source = self.parse_expression()
        self.expect_word("with", f"after the source of {word}")
        pattern: list[Any] = []
        while not self.at_op("|", ";", ")") and not self.at_end():
            if self.at_op("*"):
                self.advance()
                pattern.append("*")
            elif self.token.kind is TokenKind.STRING:
                pattern.append(self.advance().text)
            elif self.token.kind is TokenKind.IDENT:
                name = self.advance().text
                kusto_type = "string"
                if self.accept_op(":"):
                    kusto_type = self.parse_type_name(f"for the type of {name}")
                pattern.append((name, kusto_type))
            elif self.accept_op(","):
                continue
            else:
                self.fail(f"unexpected {self.token.describe()} in the {word} pattern",
                          hint="a pattern is string literals, * and Column:type names")
        return ast.Parse(pos, word, kind, source, tuple(pattern), flags, word == "parse-where")

    def parse_sort_key(self) -> ast.SortKey:
        expr = self.parse_expression()
        descending = True
        if self.at_word("asc", "desc"):
            descending = self.advance().text.lower() == "desc"
        nulls_first = None
        if self.accept_word("nulls"):
            if not self.at_word("first", "last"):
                self.fail(f"expected 'first' or 'last' after 'nulls', found {self.token.describe()}")
            nulls_first = self.advance().text.lower() == "first"
        return ast.SortKey(expr, descending, nulls_first)

    def parse_assignments(self, context: str) -> list[ast.Assignment]:
        assignments = [self.parse_assignment(context)]
        while self.accept_op(","):
            assignments.append(self.parse_assignment(context))
        return assignments

    def parse_assignment(self, context: str) -> ast.Assignment:
        # (a, b) = expr
        if self.at_op("(") and self._looks_like_name_tuple():
            self.advance()
            names = [self.expect_ident("in the name list").text]
            while self.accept_op(","):
                names.append(self.expect_ident("in the name list").text)
            self.expect_op(")", "to close the name list")
            self.expect_op("=", "after the name list")
            return ast.Assignment(None, self.parse_expression(), tuple(names))
        is_name = self.token.kind is TokenKind.IDENT or (
            self.at_op("[") and self.peek().kind is TokenKind.STRING and self.peek(2).text == "]")
        if is_name:
            start = self.index
            name_token = self.expect_ident("")
            if self.at_op("=") and not self.at_op("=="):
                self.advance()
                return ast.Assignment(name_token.text, self.parse_expression())
            self.index = start
        if self.at_end() or self.at_op("|", ";", ")"):
            self.fail(f"expected an expression in {context}, found {self.token.describe()}")
        return ast.Assignment(None, self.parse_expression())

    def _looks_like_name_tuple(self) -> bool:
        index = self.index + 1
        while index < len(self.tokens):
            token = self.tokens[index]
            if token.kind is TokenKind.IDENT:
                index += 1
                following = self.tokens[index]
                if following.kind is TokenKind.OP and following.text == ",":
                    index += 1
                    continue
                if following.kind is TokenKind.OP and following.text == ")":
                    after = self.tokens[index + 1] if index + 1 < len(self.tokens) else following
                    return after.kind is TokenKind.OP and after.text == "="
            return False
        return False

    # ---------------------------------------------------------------- scalar expressions
    def parse_expression(self) -> ast.Expr:
        self.enter()
        try:
            return self.parse_or()
        finally:
            self.leave()

    def parse_or(self) -> ast.Expr:
        left = self.parse_and()
        while self.at_word("or"):
            token = self.advance()
            left = ast.Binary(self.pos(token), "or", left, self.parse_and())
        return left

    def parse_and(self) -> ast.Expr:
        left = self.parse_comparison()
        while self.at_word("and"):
            token = self.advance()
            left = ast.Binary(self.pos(token), "and", left, self.parse_comparison())
        return left

    def _comparison_operator(self) -> str | None:
        token = self.token
        if self.in_search and token.kind is TokenKind.OP and token.text == ":":
            return ":"  # search's Column:"term"
        if (token.kind is TokenKind.OP and token.text in (*COMPARISON_OPS, "!in~", "in~")) or \
                (token.kind is TokenKind.OP and token.text.startswith("!") and len(token.text) > 1):
            return token.text
        if token.kind is TokenKind.IDENT:
            lowered = token.text.lower()
            if lowered in STRING_OPS or lowered in LIST_OPS or lowered in ("between", "matches", "has_any_cs",
                                                                           "has_all_cs"):
                return lowered
        return None

    def parse_comparison(self) -> ast.Expr:
        left = self.parse_additive()
        while True:
            op = self._comparison_operator()
            if op is None:
                return left
            token = self.advance()
            pos = self.pos(token)
            if op == "matches":
                self.expect_word("regex", "after 'matches'")
                left = ast.Binary(pos, "matches regex", left, self.parse_additive())
            elif op in ("between", "!between"):
                self.expect_op("(", f"after '{op}'")
                low = self.parse_additive()
                self.expect_op("..", "between the bounds of 'between'")
                high = self.parse_additive()
                self.expect_op(")", "to close 'between'")
                left = ast.Between(pos, op == "!between", left, low, high)
            elif op in LIST_OPS or op in ("has_any_cs", "has_all_cs"):
                self.expect_op("(", f"after '{op}'")
                items: list[ast.Expr] = []
                if (self.token.kind is TokenKind.IDENT and self.peek().kind is TokenKind.OP and \
                        self.peek().text == "|") or self._at_tabular_keyword():
                    query = self.to_tabular(self.parse_statement_expression())
                    items.append(ast.TabularArg(query.pos, query))
                else:
                    while not self.at_op(")"):
                        items.append(self.continue_pipeline(self.parse_expression()))
                        if not self.accept_op(","):
                            break
                self.expect_op(")", f"to close the list of '{op}'")
                left = ast.InList(pos, op, left, tuple(items))
            elif op == ":":
                left = ast.Binary(pos, ":", left, self.parse_additive())
            elif op in ("like", "notlike"):
                self.fail(f"'{op}' is not a Kusto operator", token, "use contains, startswith or matches regex")
            else:
                left = ast.Binary(pos, "!=" if op == "<>" else op, left, self.parse_additive())

    def _at_tabular_keyword(self) -> bool:
        return self.at_word("datatable", "range", "print", "union", "externaldata", "external_data") and \
            self._tabular_keyword_context()

    def parse_additive(self) -> ast.Expr:
        left = self.parse_multiplicative()
        while self.at_op("+", "-"):
            token = self.advance()
            left = ast.Binary(self.pos(token), token.text, left, self.parse_multiplicative())
        return left

    def parse_multiplicative(self) -> ast.Expr:
        left = self.parse_unary()
        while self.at_op("*", "/", "%"):
            token = self.advance()
            left = ast.Binary(self.pos(token), token.text, left, self.parse_unary())
        return left

    def parse_unary(self) -> ast.Expr:
        if self.at_op("-", "+"):
            token = self.advance()
            self.enter()
            try:
                operand = self.parse_unary()
            finally:
                self.leave()
            if token.text == "-" and isinstance(operand, ast.Literal) and operand.value is not None and \
                    operand.kusto_type in ("long", "int", "real", "timespan"):
                return ast.Literal(self.pos(token), -operand.value, operand.kusto_type)
            return ast.Unary(self.pos(token), token.text, operand)
        return self.parse_postfix()

    def parse_postfix(self) -> ast.Expr:
        expr = self.parse_primary()
        tokens = self.tokens
        while True:
            token = tokens[self.index]
            if token.kind is not TokenKind.OP or token.text not in (".", "["):
                return expr  # the common case, decided without the three checks below
            if self.at_op(".") and self.peek().kind in (TokenKind.IDENT, TokenKind.INT) and \
                    self.peek().offset == self.token.end:
                token = self.advance()
                expr = ast.Member(self.pos(token), expr, self.advance().text)
                if self.at_op("(") and self.token.offset == self.tokens[self.index - 1].end:
                    # cluster("c").database("d"): a method-style call, only meaningful for cross-service names
                    self.advance()
                    self.parse_call_args()
            elif self.at_op(".") and self.peek().kind is TokenKind.OP and self.peek().text == "[":
                self.advance()
            elif self.at_op("["):
                token = self.advance()
                index = self.parse_expression()
                self.expect_op("]", "to close the index")
                expr = ast.Index(self.pos(token), expr, index)
            else:
                return expr

    def parse_call_args(self) -> list[ast.Expr]:
        """Arguments after '(' up to and including ')'."""
        args: list[ast.Expr] = []
        while not self.at_op(")"):
            if self.at_op("*"):
                token = self.advance()
                args.append(ast.Star(self.pos(token)))
            elif (self.token.kind is TokenKind.IDENT and self.peek().kind is TokenKind.OP and \
                    self.peek().text == "|") or self._at_tabular_keyword():
                query = self.to_tabular(self.parse_statement_expression())
                args.append(ast.TabularArg(query.pos, query))
            else:
                args.append(self.continue_pipeline(self.parse_expression()))
            if not self.accept_op(","):
                break
        self.expect_op(")", "to close the argument list")
        return args

    def continue_pipeline(self, expr: ast.Expr) -> ast.Expr:
        """``f() | count`` or ``_GetWatchlist('x') | project y`` as an argument: a call or name followed by a
        pipe is a tabular argument (toscalar, in, has_any take one)."""
        if not self.at_op("|") or not isinstance(expr, ast.Call | ast.Name | ast.TabularArg):
            return expr
        tabular = self.to_tabular(expr)
        while self.accept_op("|"):
            tabular = ast.Pipe(tabular.pos, tabular, self.parse_operator())
        return ast.TabularArg(tabular.pos, tabular)

    def parse_primary(self) -> ast.Expr:
        token = self.token
        pos = self.pos(token)
        if token.kind is TokenKind.STRING:
            self.advance()
            value = token.text
            while self.token.kind is TokenKind.STRING:  # adjacent literals concatenate
                value += self.advance().text
            return ast.Literal(pos, value, "string")
        if token.kind is TokenKind.INT:
            whole = int(token.text)
            if whole > LONG_MAX:
                self.fail(f"the number {token.text} is too large for a long (at most {LONG_MAX})", token,
                          "write it as a real, e.g. " + token.text + ".0")
            self.advance()
            return ast.Literal(pos, whole, "long")
        if token.kind is TokenKind.REAL:
            real = float(token.text)
            if real in (float("inf"), float("-inf")):
                self.fail(f"the number {token.text} is too large for a real", token)
            self.advance()
            return ast.Literal(pos, real, "real")
        if token.kind is TokenKind.TIMESPAN:
            micros = float(token.text) * TIMESPAN_UNITS[token.raw_kind]
            try:
                span = timedelta(microseconds=micros)
            except (OverflowError, ValueError):
                self.fail(f"the timespan {token.text}{token.raw_kind} is out of range", token,
                          "a timespan is at most about 10,675,199 days")
            self.advance()
            return ast.Literal(pos, span, "timespan")
        if token.kind is TokenKind.RAW:
            self.advance()
            return self.raw_literal(token)
        if token.kind is TokenKind.OP and token.text == "(":
            self.advance()
            inner = self.parse_statement_expression()
            self.expect_op(")", "to close the parenthesis")
            if isinstance(inner, ast.TabularExpr):
                return ast.TabularArg(inner.pos, inner)
            return inner
        if token.kind is TokenKind.OP and token.text == "[" and self.peek().kind is TokenKind.STRING:
            return ast.Name(pos, self.expect_ident("").text)
        if token.kind is TokenKind.OP and token.text == "*":
            self.advance()
            return ast.Star(pos)
        if token.kind is TokenKind.IDENT:
            word = token.text
            lowered = word.lower()
            if lowered in ("true", "false") and not (self.peek().kind is TokenKind.OP and self.peek().text == "("):
                self.advance()
                return ast.Literal(pos, lowered == "true", "bool")
            if lowered == "not" and self.peek().kind is TokenKind.OP and self.peek().text == "(":
                self.advance()
                self.advance()
                operand = self.parse_expression()
                self.expect_op(")", "to close not(...)")
                return ast.Unary(pos, "not", operand)
            self.advance()
            if self.at_op("(") and self.token.offset >= token.end:
                self.advance()
                if normalize_type(lowered) in ("string", "long", "int", "real", "bool", "timespan") \
                        and self.at_word("null") and self.peek().text == ")":
                    self.advance()
                    self.advance()
                    return ast.Literal(pos, None, normalize_type(lowered))
                args = self.parse_call_args()
                if normalize_type(lowered) in ("long", "int", "real", "bool") and len(args) == 1 and \
                        isinstance(args[0], ast.Literal):
                    return ast.Call(pos, "to" + {"real": "double"}.get(normalize_type(lowered),
                                                                        normalize_type(lowered)), tuple(args))
                return ast.Call(pos, DEPRECATED_FUNCTIONS.get(lowered, word), tuple(args))
            if lowered == "null":
                return ast.Literal(pos, None, "dynamic")
            return ast.Name(pos, word)
        if token.kind is TokenKind.EOF:
            self.fail("unexpected end of query: an expression is missing")
        self.fail(f"unexpected {token.describe()}: expected an expression")

    def raw_literal(self, token: Token) -> ast.Literal:
        from assay.kql.values import parse_datetime_literal, parse_timespan_literal

        pos = self.pos(token)
        raw = token.text
        if token.raw_kind == "datetime":
            if raw.lower() in ("", "null"):
                return ast.Literal(pos, None, "datetime")
            value = parse_datetime_literal(raw)
            if value is None:
                self.fail(f"invalid datetime literal datetime({raw})", token,
                          "use ISO 8601, e.g. datetime(2024-01-31 13:45:00)")
            return ast.Literal(pos, value, "datetime")
        if token.raw_kind == "timespan":
            if raw.lower() == "null":
                return ast.Literal(pos, None, "timespan")
            span = parse_timespan_literal(raw)
            if span is None:
                self.fail(f"invalid timespan literal timespan({raw})", token, "use e.g. 1d, 2h, or 1.02:03:04")
            return ast.Literal(pos, span, "timespan")
        if token.raw_kind == "guid":
            return ast.Literal(pos, None if raw.lower() == "null" else raw.lower(), "guid")
        # dynamic(...)
        value = parse_dynamic_literal(raw)
        if value is _INVALID:
            self.fail(f"invalid dynamic literal dynamic({raw})", token,
                      "write JSON: dynamic([1, \"a\"]) or dynamic({\"key\": \"value\"})")
        return ast.Literal(pos, value, "dynamic")


_INVALID = object()


def parse_dynamic_literal(raw: str) -> Any:
    text = raw.strip()
    if text.lower() == "null" or text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    # Kusto also accepts single-quoted, verbatim (@'C:\x') and obfuscated (h'..') strings inside dynamic literals
    try:
        return json.loads(_kusto_strings_to_json(text))
    except (ValueError, RecursionError):
        return _INVALID


def _kusto_strings_to_json(text: str) -> str:
    """Rewrite the Kusto string literals of a dynamic literal as JSON strings (the rest is kept as is)."""
    out: list[str] = []
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        verbatim = False
        start = index
        if char in "@hH" and index + 1 < length:
            rest = text[index:index + 3].lower()
            for prefix in ("h@", "@", "h"):
                if rest.startswith(prefix) and index + len(prefix) < length and text[index + len(prefix)] in "'\"":
                    verbatim = "@" in prefix
                    index += len(prefix)
                    char = text[index]
                    break
        if char not in "'\"":
            out.append(text[start:index + 1])
            index += 1
            continue
        quote = char
        index += 1
        value: list[str] = []
        while index < length:
            current = text[index]
            if current == quote:
                if verbatim and text.startswith(quote * 2, index):
                    value.append(quote)
                    index += 2
                    continue
                break
            if current == "\\" and not verbatim and index + 1 < length:
                escaped = text[index + 1]
                value.append({"n": "\n", "t": "\t", "r": "\r"}.get(escaped, escaped))
                index += 2
                continue
            value.append(current)
            index += 1
        else:
            raise ValueError("unterminated string in dynamic literal")
        out.append(json.dumps("".join(value)))
        index += 1
    return "".join(out)


def parse(text: str, *, file: str | None = None) -> ast.Query:
    """Parse KQL text into a :class:`ast.Query`; raises KqlSyntaxError with line:col on bad input."""
    parser = Parser(text, file)
    query = parser.parse_query()
    if query.body is None:
        raise KqlSyntaxError("the query has no result expression (only let statements)",
                             SourceSpan(file, parser.token.line, parser.token.col, text),
                             "end the query with a tabular expression such as a table name")
    return query
