"""KQL lexer: source text → tokens with 1-based line/column, so every later error can point at its place.

Handles Kusto's string forms ('..', "..", verbatim @"..", multi-line ```..```, obfuscated h".."), timespan
literals (``24h``, ``1.5d``, ``100ms``), raw-text literals (``datetime(2024-01-01 10:00)``, ``guid(..)``,
``dynamic({..})``), hyphenated operator names (``mv-expand``, ``project-away``) and negated string operators
(``!has``, ``!contains_cs``, ``!in~``).
"""

from __future__ import annotations

import bisect
import re
from enum import Enum
from typing import NamedTuple

from assay.errors import KqlSyntaxError, SourceSpan


class TokenKind(Enum):
    IDENT = "identifier"
    STRING = "string"
    INT = "integer"
    REAL = "real number"
    TIMESPAN = "timespan"
    RAW = "literal"  # datetime(...), guid(...), dynamic(...) with their raw text
    OP = "operator"
    EOF = "end of query"


class Token(NamedTuple):
    """One token; a NamedTuple because a query has thousands and construction cost shows in compile time."""

    kind: TokenKind
    text: str  # the value: identifier name, decoded string, number text, operator
    line: int
    col: int
    offset: int
    end: int
    raw_kind: str = ""  # for RAW tokens: "datetime", "guid", "dynamic", "timespan"; for TIMESPAN: the unit

    def describe(self) -> str:
        if self.kind is TokenKind.EOF:
            return "end of query"
        if self.kind is TokenKind.STRING:
            return f"string {self.text!r}"
        return f"'{self.text}'"


#: Operator names that contain a hyphen; the lexer joins ``mv`` ``-`` ``expand`` into one identifier.
HYPHENATED_WORDS = frozenset({
    "mv-expand", "mv-apply", "project-away", "project-keep", "project-rename", "project-reorder",
    "project-smart", "make-series", "parse-where", "parse-kv", "top-nested", "top-hitters", "partition-by",
})

#: Words that can follow ``!`` to form a negated operator.
NEGATABLE_WORDS = frozenset({
    "has", "has_cs", "hasprefix", "hasprefix_cs", "hassuffix", "hassuffix_cs", "contains", "contains_cs",
    "startswith", "startswith_cs", "endswith", "endswith_cs", "in", "between", "has_any", "has_all",
})

#: Longest first, so ``==`` wins over ``=``.
PUNCTUATION = (
    "!in~", "in~", "==", "!=", "<>", "<=", ">=", "=~", "!~", "=>", "..",
    "|", "(", ")", "[", "]", "{", "}", ",", ";", ".", "=", "<", ">", "+", "-", "*", "/", "%", ":", "!", "?",
)

PUNCTUATION_BY_FIRST_CHAR: dict[str, tuple[str, ...]] = {
    first: tuple(p for p in PUNCTUATION if p[0] == first and p != "in~") for first in {p[0] for p in PUNCTUATION}
}

#: Timespan suffixes → microseconds per unit (Kusto: d, h, m, s, ms, microsecond, tick and long names).
TIMESPAN_UNITS: dict[str, float] = {
    "d": 86_400_000_000, "day": 86_400_000_000, "days": 86_400_000_000,
    "h": 3_600_000_000, "hr": 3_600_000_000, "hrs": 3_600_000_000, "hour": 3_600_000_000,
    "hours": 3_600_000_000,
    "m": 60_000_000, "min": 60_000_000, "minute": 60_000_000, "minutes": 60_000_000,
    "s": 1_000_000, "sec": 1_000_000, "second": 1_000_000, "seconds": 1_000_000,
    "ms": 1000, "milli": 1000, "millis": 1000, "millisec": 1000, "millisecond": 1000, "milliseconds": 1000,
    "microsecond": 1, "microseconds": 1, "micro": 1, "micros": 1,
    "tick": 0.1, "ticks": 0.1,
}

DIGITS = frozenset("0123456789")  # str.isdigit() also accepts '²' and other Unicode digits

# Whitespace and // comments in one regex match instead of a Python loop per character. Unicode spaces count
# as whitespace, as in Kusto: queries pasted from web pages and documents carry no-break (U+00A0, U+202F),
# zero-width (U+200B..U+200D, U+2060, U+FEFF) and typographic (U+2000..U+200A) spaces.
UNICODE_SPACES = "\u00a0\u1680\u180e\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
_SPACE_AND_COMMENTS = re.compile(r"(?:[ \t\r\n\f\v" + UNICODE_SPACES + r"]+|//[^\n]*)*")
# The rest of a word: \w is exactly str.isalnum() plus "_" (what the character loop tested).
_WORD_TAIL = re.compile(r"\w*")
_NEWLINE = re.compile("\n")



class Lexer:
    """Turns KQL text into tokens; raises KqlSyntaxError with the position of the bad character."""

    def __init__(self, text: str, file: str | None = None) -> None:
        self.text = text
        self.file = file
        self.pos = 0
        # offsets where lines start: line/col are computed from an offset only when a token needs them
        self.line_starts = [0] + [match.end() for match in _NEWLINE.finditer(text)]

    def position(self, offset: int) -> tuple[int, int]:
        line_index = bisect.bisect_right(self.line_starts, offset) - 1
        return line_index + 1, offset - self.line_starts[line_index] + 1

    @property
    def line(self) -> int:
        return self.position(self.pos)[0]

    @property
    def col(self) -> int:
        return self.position(self.pos)[1]

    def error(self, message: str, line: int, col: int, hint: str | None = None) -> KqlSyntaxError:
        return KqlSyntaxError(message, SourceSpan(self.file, line, col, self.text), hint)

    def _advance(self, count: int) -> None:
        self.pos = min(self.pos + count, len(self.text))

    def _skip_space_and_comments(self) -> None:
        match = _SPACE_AND_COMMENTS.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()

    def tokens(self) -> list[Token]:
        result: list[Token] = []
        while True:
            token = self._next()
            result.append(token)
            if token.kind is TokenKind.EOF:
                return result

    def _make(self, kind: TokenKind, value: str, start: int, line: int, col: int, raw_kind: str = "") -> Token:
        return Token(kind, value, line, col, start, self.pos, raw_kind)

    def _next(self) -> Token:
        self._skip_space_and_comments()
        text = self.text
        start = self.pos
        line_starts = self.line_starts
        line_index = bisect.bisect_right(line_starts, start) - 1  # self.position(start), inlined: once per token
        line, col = line_index + 1, start - line_starts[line_index] + 1
        if self.pos >= len(text):
            return Token(TokenKind.EOF, "", line, col, start, start)
        char = text[self.pos]
        # Strings, including prefixed ones: @"verbatim", h"obfuscated", H@"..."
        prefix_len = 0
        if char in "@hH":
            lowered = text[self.pos:self.pos + 3].lower()
            for prefix in ("h@", "@", "h"):
                if lowered.startswith(prefix) and len(text) > self.pos + len(prefix) and \
                        text[self.pos + len(prefix)] in "'\"":
                    prefix_len = len(prefix)
                    break
        if char in "'\"" or prefix_len:
            verbatim = "@" in text[self.pos:self.pos + prefix_len]
            self._advance(prefix_len)
            return self._make(TokenKind.STRING, self._string(verbatim, line, col), start, line, col)
        if char in "`~" and (text.startswith("```", self.pos) or text.startswith("~~~", self.pos)):
            fence = text[self.pos:self.pos + 3]
            end = text.find(fence, self.pos + 3)
            if end < 0:
                raise self.error("unterminated multi-line string", line, col,
                                 f"close it with {fence}")
            value = text[self.pos + 3:end]
            self._advance(end + 3 - self.pos)
            return self._make(TokenKind.STRING, value, start, line, col)
        if char in DIGITS or (char == "." and self.pos + 1 < len(text) and text[self.pos + 1] in DIGITS
                              and not text.startswith("..", self.pos)):
            return self._number(start, line, col)
        if char.isalpha() or char in "_$":
            return self._word(start, line, col)
        if char == "!":
            end = self.pos + 1
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            word = text[self.pos + 1:end]
            if word.lower() in NEGATABLE_WORDS:
                if word.lower() == "in" and end < len(text) and text[end] == "~":
                    end += 1
                value = "!" + text[self.pos + 1:end]
                self._advance(end - self.pos)
                return self._make(TokenKind.OP, value, start, line, col)
        for punctuation in PUNCTUATION_BY_FIRST_CHAR.get(char, ()):
            if text.startswith(punctuation, self.pos):
                self._advance(len(punctuation))
                return self._make(TokenKind.OP, punctuation, start, line, col)
        raise self.error(f"unexpected character {char!r}", line, col,
                         "remove it, or quote it inside a string literal")

    def _string(self, verbatim: bool, line: int, col: int) -> str:
        text = self.text
        quote = text[self.pos]
        self._advance(1)
        parts: list[str] = []
        while True:
            if self.pos >= len(text) or (text[self.pos] == "\n" and not verbatim):
                raise self.error("unterminated string literal", line, col, f"close it with {quote}")
            char = text[self.pos]
            if char == quote:
                if verbatim and text.startswith(quote * 2, self.pos):
                    parts.append(quote)
                    self._advance(2)
                    continue
                self._advance(1)
                return "".join(parts)
            if char == "\\" and not verbatim:
                if self.pos + 1 >= len(text):
                    raise self.error("unterminated string literal", line, col, f"close it with {quote}")
                escaped = text[self.pos + 1]
                simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0",
                          "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
                if escaped in simple:
                    parts.append(simple[escaped])
                    self._advance(2)
                    continue
                if escaped == "u" and self.pos + 6 <= len(text):
                    digits = text[self.pos + 2:self.pos + 6]
                    try:
                        parts.append(chr(int(digits, 16)))
                    except ValueError:
                        raise self.error(f"bad unicode escape \\u{digits}", self.line, self.col) from None
                    self._advance(6)
                    continue
                if escaped == "x" and self.pos + 4 <= len(text):
                    digits = text[self.pos + 2:self.pos + 4]
                    try:
                        parts.append(chr(int(digits, 16)))
                    except ValueError:
                        raise self.error(f"bad hex escape \\x{digits}", self.line, self.col) from None
                    self._advance(4)
                    continue
                # an unknown escape keeps the character (pySigma's kusto backend writes "\\*" for a literal *)
                parts.append(escaped)
                self._advance(2)
                continue
            parts.append(char)
            self._advance(1)

    def _number(self, start: int, line: int, col: int) -> Token:
        text = self.text
        end = self.pos
        if text.startswith(("0x", "0X"), end):
            end += 2
            while end < len(text) and text[end] in "0123456789abcdefABCDEF":
                end += 1
            value = str(int(text[self.pos:end], 16)) if end > self.pos + 2 else "0"
            self._advance(end - self.pos)
            return self._make(TokenKind.INT, value, start, line, col)
        while end < len(text) and text[end] in DIGITS:
            end += 1
        is_real = False
        if end < len(text) and text[end] == "." and not text.startswith("..", end):
            is_real = True
            end += 1
            while end < len(text) and text[end] in DIGITS:
                end += 1
        if end < len(text) and text[end] in "eE":
            exponent = end + 1
            if exponent < len(text) and text[exponent] in "+-":
                exponent += 1
            if exponent < len(text) and text[exponent] in DIGITS:
                is_real = True
                end = exponent
                while end < len(text) and text[end] in DIGITS:
                    end += 1
        number = text[self.pos:end]
        suffix_end = end
        while suffix_end < len(text) and (text[suffix_end].isalpha() or text[suffix_end] == "_"):
            suffix_end += 1
        suffix = text[end:suffix_end]
        if suffix:
            if suffix.lower() in TIMESPAN_UNITS:
                self._advance(suffix_end - self.pos)
                return self._make(TokenKind.TIMESPAN, number, start, line, col, suffix.lower())
            raise self.error(f"unknown number suffix {suffix!r} in {text[start:suffix_end]!r}", line, col,
                             "timespan units are d, h, m, s, ms, microsecond, tick")
        self._advance(end - self.pos)
        return self._make(TokenKind.REAL if is_real else TokenKind.INT, number, start, line, col)

    def _word(self, start: int, line: int, col: int) -> Token:
        text = self.text
        end = _WORD_TAIL.match(text, self.pos + 1).end()  # type: ignore[union-attr]  # \w* always matches
        word = text[self.pos:end]
        # Hyphenated operator names: mv-expand, project-away ...
        if end < len(text) and text[end] == "-":
            tail_end = _WORD_TAIL.match(text, end + 1).end()  # type: ignore[union-attr]
            candidate = text[self.pos:tail_end]
            if candidate.lower() in HYPHENATED_WORDS:
                self._advance(tail_end - self.pos)
                return self._make(TokenKind.IDENT, candidate.lower(), start, line, col)
        # in~ as one operator word
        if word == "in" and end < len(text) and text[end] == "~":
            self._advance(end + 1 - self.pos)
            return self._make(TokenKind.OP, "in~", start, line, col)
        # Raw-text literals whose contents are not KQL tokens: datetime(2024-01-01 10:00), guid(...), dynamic(...)
        lowered = word.lower()
        if lowered in ("datetime", "guid", "dynamic", "timespan", "time"):
            probe = end
            while probe < len(text) and text[probe] in " \t":
                probe += 1
            if probe < len(text) and text[probe] == "(":
                raw, close = self._raw_parenthesized(probe, line, col, lowered)
                if lowered not in ("timespan", "time") or _looks_like_raw_timespan(raw):
                    self._advance(close + 1 - self.pos)
                    kind = "timespan" if lowered == "time" else lowered
                    return self._make(TokenKind.RAW, raw.strip(), start, line, col, kind)
        self.pos = end  # end <= len(text): what self._advance(end - self.pos) would set
        return Token(TokenKind.IDENT, word, line, col, start, end)

    def _raw_parenthesized(self, open_pos: int, line: int, col: int, word: str) -> tuple[str, int]:
        """The text between the parenthesis at ``open_pos`` and its match (strings and nesting respected)."""
        text = self.text
        depth = 0
        position = open_pos
        quote: str | None = None
        verbatim = False
        while position < len(text):
            char = text[position]
            if quote:
                if char == "\\" and not verbatim:
                    position += 2
                    continue
                if char == quote:
                    quote = None
            elif char in "'\"":
                quote = char
                verbatim = position > 0 and text[position - 1] == "@"  # @'C:\' has no escapes
            elif char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
                if depth == 0:
                    return text[open_pos + 1:position], position
            position += 1
        raise self.error(f"unterminated {word}(...) literal", line, col, "close it with )")


def _looks_like_raw_timespan(raw: str) -> bool:
    """``timespan(1.02:03:04)`` style (raw); ``timespan(2d)`` lexes normally too, but raw is simpler."""
    stripped = raw.strip()
    return bool(stripped) and all(c.isalnum() or c in ".:-+ " for c in stripped)


def tokenize(text: str, file: str | None = None) -> list[Token]:
    return Lexer(text, file).tokens()
