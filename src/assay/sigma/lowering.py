"""Shared lowering helpers: Sigma string values → case-insensitive SQL predicates (sqlglot trees).

One place decides how a Sigma string compares, so the Sigma backend, ``assay sigma eval`` and the hunt fast path
agree: ``lower(value) LIKE lower(pattern) ESCAPE '\\'`` where ``*``/``?`` become ``%``/``_`` and a literal
``%``, ``_`` or ``\\`` is escaped. Plain values (no wildcard) become ``lower(value) = lower('literal')``.
"""

from __future__ import annotations

from sigma.types import SigmaString, SpecialChars
from sqlglot import exp

from assay.errors import SigmaError

LIKE_ESCAPE = "\\"


def lowered(value: exp.Expr) -> exp.Expr:
    """``lower(value)``: the one spelling of case folding (DuckDB's ``lower`` folds non-ASCII letters too)."""
    return exp.Lower(this=value)


def escape_like_literal(text: str) -> str:
    """A literal text made safe inside a LIKE pattern with ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(value: SigmaString) -> tuple[str, bool]:
    """The LIKE pattern of a Sigma string and whether it has a wildcard (``*`` → ``%``, ``?`` → ``_``)."""
    parts: list[str] = []
    has_wildcard = False
    for part in value.s:
        if isinstance(part, str):
            parts.append(escape_like_literal(part))
        elif part is SpecialChars.WILDCARD_MULTI:
            parts.append("%")
            has_wildcard = True
        elif part is SpecialChars.WILDCARD_SINGLE:
            parts.append("_")
            has_wildcard = True
        else:
            raise SigmaError(
                f"placeholder in value {value!s} cannot run locally",
                hint="expand placeholders with a processing pipeline before evaluating",
            )
    return "".join(parts), has_wildcard


def plain_text(value: SigmaString) -> str:
    """The literal text of a Sigma string that has no wildcard."""
    return "".join(part for part in value.s if isinstance(part, str))


def like(value: exp.Expr, pattern: str) -> exp.Expr:
    """``value LIKE pattern ESCAPE '\\'`` (plain LIKE, never ILIKE: callers lower both sides)."""
    return exp.Escape(this=exp.Like(this=value, expression=exp.Literal.string(pattern)),
                      expression=exp.Literal.string(LIKE_ESCAPE))


def string_match(value: exp.Expr, sigma_value: SigmaString, *, case_sensitive: bool = False) -> exp.Expr:
    """The predicate for ``field = sigma_value`` with Sigma's meaning: anchored, wildcards, case-insensitive."""
    pattern, has_wildcard = like_pattern(sigma_value)
    if case_sensitive:
        if has_wildcard:
            return like(value, pattern)
        return exp.EQ(this=value, expression=exp.Literal.string(plain_text(sigma_value)))
    if has_wildcard:
        # lower() on both sides in SQL (not Python's str.lower) so folding is identical for data and pattern.
        return exp.Escape(
            this=exp.Like(this=lowered(value), expression=lowered(exp.Literal.string(pattern))),
            expression=exp.Literal.string(LIKE_ESCAPE),
        )
    return exp.EQ(this=lowered(value), expression=lowered(exp.Literal.string(plain_text(sigma_value))))


def contains_match(value: exp.Expr, sigma_value: SigmaString) -> exp.Expr:
    """Case-insensitive 'value contains sigma_value' (keywords: full-text search inside a field)."""
    pattern, _ = like_pattern(sigma_value)
    parts = sigma_value.s
    if not parts or parts[0] is not SpecialChars.WILDCARD_MULTI:
        pattern = "%" + pattern
    if not parts or parts[-1] is not SpecialChars.WILDCARD_MULTI:
        pattern = pattern + "%"
    return exp.Escape(
        this=exp.Like(this=lowered(value), expression=lowered(exp.Literal.string(pattern))),
        expression=exp.Literal.string(LIKE_ESCAPE),
    )


def false_when_null(predicate: exp.Expr) -> exp.Expr:
    """``coalesce(predicate, false)``: a predicate over a missing field is false, so ``not`` of it is true."""
    return exp.Coalesce(this=predicate, expressions=[exp.false()])
