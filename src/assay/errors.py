"""The error model: every failure Assay reports is an ``AssayError`` carrying where it happened.

Rendering (colour, carets, exit codes) happens only in ``assay.cli``; library code raises these.

    AssayError                      base; .span (SourceSpan | None), .hint (what to do)
    ├── UsageError                  bad arguments or options (CLI exit code 2)
    ├── CatalogError                detection.yml / tests.yml / rule files: schema, ATT&CK ids, references
    ├── IngestError                 unreadable or unknown telemetry (bad *records* are counted, not raised)
    ├── SchemaError                 a table schema file (custom tables) that does not load
    ├── KqlError                    KQL parse/bind/compile errors
    │   ├── KqlSyntaxError
    │   ├── KqlBindError            unknown table/column/function, type errors
    │   └── KqlUnsupportedError     a construct Assay does not run (never a wrong answer instead)
    ├── SigmaError                  a rule that does not load, an unknown modifier, an unsupported feature
    ├── EngineError                 the SQL engine failed (keeps the SQL)
    ├── VerifyError                 scenario / test-run problems
    └── SiteError                   site generation (e.g. a path escaping the output folder)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceSpan:
    """A place in a source: file (or None for inline text), 1-based line and column, and the source text."""

    file: str | None = None
    line: int | None = None
    col: int | None = None
    text: str | None = None  # the whole source, so renderers can show the line with a caret

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return where

    def source_line(self) -> str | None:
        """The source line this span points at, or None when unknown."""
        if self.text is None or self.line is None:
            return None
        lines = self.text.splitlines()
        if 1 <= self.line <= len(lines):
            return lines[self.line - 1]
        return None

    @classmethod
    def of_file(cls, path: str | Path, line: int | None = None, col: int | None = None) -> SourceSpan:
        return cls(file=str(path), line=line, col=col)


class AssayError(Exception):
    """Base class: a message saying what went wrong, a span saying where, a hint saying what to do."""

    exit_code = 1

    def __init__(self, message: str, span: SourceSpan | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.span}: {self.message}" if self.span else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def render_caret(self) -> str:
        """The source line and a caret under the column, when both are known (plain text, no colour)."""
        if self.span is None:
            return ""
        line = self.span.source_line()
        if line is None or self.span.col is None:
            return ""
        return f"{line}\n{' ' * (max(self.span.col, 1) - 1)}^"


class UsageError(AssayError):
    exit_code = 2


class CatalogError(AssayError):
    pass


class IngestError(AssayError):
    pass


class SchemaError(AssayError):
    pass


class KqlError(AssayError):
    pass


class KqlSyntaxError(KqlError):
    pass


class KqlBindError(KqlError):
    pass


class KqlUnsupportedError(KqlError):
    pass


class SigmaError(AssayError):
    pass


class EngineError(AssayError):
    def __init__(self, message: str, sql: str | None = None, span: SourceSpan | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, span, hint)
        self.sql = sql


class VerifyError(AssayError):
    pass


class SiteError(AssayError):
    pass


def did_you_mean(name: str, candidates: list[str] | set[str] | tuple[str, ...]) -> str | None:
    """The closest candidate to ``name`` (case-insensitive), for 'did you mean' hints, or None."""
    import difflib

    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None
