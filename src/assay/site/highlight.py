"""Server-side syntax highlighting for the site's queries (Pygments), so pages need no script to look right.

KQL, YAML and SQL (SQLite, Spark SQL, QRadar AQL) have Pygments lexers; SPL, ES|QL, EQL, Lucene, YARA-L, LogScale,
PowerQuery and Sumo Logic expressions do not, so a small regex lexer covers their common
shape (strings, numbers, pipes, operators, keywords). Pygments escapes every token, so the output is safe HTML.
"""

from __future__ import annotations

from typing import ClassVar

from markupsafe import Markup
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer, RegexLexer, words
from pygments.lexers import KustoLexer, SqlLexer, TextLexer, YamlLexer
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

#: The CSS scope of highlighted blocks; ``pygments_css()`` generates rules under it.
HIGHLIGHT_CLASS = "highlight"


class PipedQueryLexer(RegexLexer):  # type: ignore[misc]  # pygments ships no type hints
    """SPL, ES|QL, EQL and Lucene: enough structure to read them, no claim to parse them."""

    name = "Piped query"
    aliases: ClassVar[list[str]] = ["piped-query"]
    flags = 0
    tokens: ClassVar[dict[str, list[object]]] = {
        "root": [
            (r"\s+", Whitespace),
            (r"//[^\n]*|```[\s\S]*?```", Comment.Single),
            (r'"(?:\\.|[^"\\])*"', String.Double),
            (r"'(?:\\.|[^'\\])*'", String.Single),
            (r"\|", Punctuation),
            (words((
                "search", "where", "eval", "stats", "table", "fields", "sort", "from", "keep", "limit", "by",
                "and", "or", "not", "AND", "OR", "NOT", "in", "IN", "like", "LIKE", "rlike", "RLIKE", "any",
                "sequence", "with", "maxspan", "process", "file", "registry", "network", "true", "false", "null",
                "FROM", "WHERE", "KEEP", "LIMIT", "SORT", "EVAL", "STATS", "BY", "metadata", "METADATA",
                "index", "source", "sourcetype", "datamodel", "tstats", "count", "values",
            ), suffix=r"\b"), Keyword),
            (r"[A-Za-z_@][\w.\-@]*(?=\s*(:|=|!=|==|<|>|\bin\b|\blike\b|\bLIKE\b|\bIN\b))", Name.Attribute),
            (r"\d+(\.\d+)?", Number),
            (r"==|!=|<=|>=|:|=|<|>|~|\*|\?", Operator),
            (r"[()\[\],]", Punctuation),
            (r"[^\s\"'|()\[\],:=<>!~*?]+", Text),
            (r".", Text),
        ],
    }


def lexer_for(language: str) -> Lexer:
    """The lexer for a query language name as the site labels it (KQL, YAML/Sigma, SPL, ES|QL, EQL, Lucene…)."""
    key = language.strip().lower()
    if key in {"kql", "kusto"}:
        return KustoLexer()
    if key in {"yaml", "sigma", "yml", "elastalert"}:
        return YamlLexer()
    if key in {"sql", "aql", "spark sql", "spark-sql"}:
        return SqlLexer()
    if key in {"spl", "spl2", "es|ql", "esql", "eql", "lucene", "piped-query", "splunk", "elastic", "query",
               "yara-l", "logscale", "powerquery", "cse rule expression"}:
        return PipedQueryLexer()
    return TextLexer()


def highlight(code: str, language: str, formatter: HtmlFormatter | None = None) -> Markup:
    """The code as escaped HTML spans (Pygments classes), without the outer ``<pre>`` (templates add it)."""
    # Pygments strips a trailing newline and, by default, leading ones; keep the text exactly as written.
    lexer = lexer_for(language)
    lexer.stripnl = False
    lexer.ensurenl = False
    return Markup(pygments_highlight(code, lexer, formatter or HtmlFormatter(nowrap=True)))


class Highlighter:
    """``highlight`` for one site build: one formatter (costly to create) and each distinct query highlighted once
    (a detection's hunting queries appear on every one of its platform pages)."""

    def __init__(self) -> None:
        self._formatter = HtmlFormatter(nowrap=True)
        self._done: dict[tuple[str, str], Markup] = {}

    def __call__(self, code: str, language: str) -> Markup:
        key = (code, language)
        if key not in self._done:
            self._done[key] = highlight(code, language, self._formatter)
        return self._done[key]


def pygments_css() -> str:
    """CSS for the token classes, scoped under ``.highlight``; code blocks are dark on every page theme."""
    rules = HtmlFormatter(style="monokai").get_style_defs(f".{HIGHLIGHT_CLASS}")
    # Only token colours: backgrounds and spacing come from site.css.
    token_rules = "\n".join(line for line in rules.splitlines() if line.startswith(f".{HIGHLIGHT_CLASS} ."))
    return f"/* Generated from the Pygments 'monokai' style by assay.site.highlight.pygments_css(). */\n{token_rules}\n"
