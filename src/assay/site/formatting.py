"""Converted queries laid out for reading: one pipe stage per line, long boolean conditions broken at AND / OR and
nested by parenthesis depth.

pySigma backends emit SPL, ES|QL, Lucene, AQL, LogScale, SQL… on one line. The layout only ever changes whitespace
outside string and regex literals (a newline is whitespace in every one of these languages), and it checks that:
when the query's parentheses do not balance, or the laid-out text differs from the original by anything but
whitespace, the query is shown exactly as the backend wrote it. Multi-line output (a YARA-L rule, a JSON or YAML
rule) is already laid out and is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Lines longer than this are broken (the code block scrolls beyond it).
WIDTH = 96
INDENT = "  "
#: Languages whose ``|`` starts a pipeline stage (in SQL it is part of ``||``).
PIPED_LANGUAGES = {"spl", "spl2", "kql", "es|ql", "esql", "eql", "logscale", "powerquery", "query"}
#: SQL dialects: a line break before these top-level clause keywords.
SQL_LANGUAGES = {"sql", "aql", "spark sql", "sqlite"}
#: SQL dialects whose string literals have no backslash escapes (``'%\cmstp.exe' ESCAPE '\'``); Spark SQL has them.
NO_BACKSLASH_ESCAPES = {"sql", "aql", "sqlite"}
#: Multi-line outputs whose long lines are laid out one by one, keeping their indentation (a YARA-L rule's
#: ``events:`` condition).
LINEWISE_LANGUAGES = {"yara-l"}
SQL_CLAUSES = {"from", "where", "group", "order", "having", "limit", "union"}
BOOLEAN_OPERATORS = {"and", "or"}
#: Languages where whitespace between two conditions is an AND that binds looser than OR (``a OR b c`` is
#: ``(a OR b) AND c``): each such condition gets its own line, so a line break never suggests the wrong grouping.
IMPLICIT_AND_LANGUAGES = {"spl", "logscale"}
_KEYWORDS = {"and", "or", "not", "in", "by", "as"}
#: A group whose text is shorter than this stays on one line even past the width (``max(_time)``).
MIN_BROKEN_GROUP = 40
#: What may come right before a ``/`` that opens a regex literal (``field=/…/i``, ``field matches /…/``).
_REGEX_OPENERS = re.compile(r"(=|=~|!=|:|\bmatches)\s*$", re.IGNORECASE)


@dataclass
class _Group:
    """A parenthesised part of the query: its tokens and nested groups."""

    items: list[str | _Group] = field(default_factory=list)


def _tokens(query: str, backslash_escapes: bool = True) -> list[str] | None:
    """Strings, regex literals, parentheses, pipes, whitespace runs and words; None on an unterminated literal."""
    tokens: list[str] = []
    index = 0
    length = len(query)
    while index < length:
        char = query[index]
        if char in "\"'" or (char == "/" and _REGEX_OPENERS.search("".join(tokens[-2:]))):
            end = index + 1
            while end < length and query[end] != char:
                end += 2 if query[end] == "\\" and (backslash_escapes or char == "/") else 1
            if end >= length:
                return None
            end += 1
            if char == "/":
                while end < length and query[end].isalpha():
                    end += 1  # regex flags: /…/i
            tokens.append(query[index:end])
            index = end
        elif char.isspace():
            end = index
            while end < length and query[end].isspace():
                end += 1
            tokens.append(" ")
            index = end
        elif char in "()|":
            tokens.append(char)
            index += 1
        else:
            end = index
            while end < length and not query[end].isspace() and query[end] not in "()|\"'" and not (
                    query[end] == "/" and _REGEX_OPENERS.search(query[index:end])):
                end += 1
            tokens.append(query[index:end])
            index = end
    return tokens


def _tree(tokens: list[str]) -> _Group | None:
    root = _Group()
    stack = [root]
    for token in tokens:
        if token == "(":
            group = _Group()
            stack[-1].items.append(group)
            stack.append(group)
        elif token == ")":
            if len(stack) == 1:
                return None
            stack.pop()
        else:
            stack[-1].items.append(token)
    return root if len(stack) == 1 else None


def _flat(items: list[str | _Group]) -> str:
    return "".join(f"({_flat(item.items).strip()})" if isinstance(item, _Group) else item for item in items)


def _split_before(items: list[str | _Group], words: set[str]) -> list[list[str | _Group]]:
    """The items cut before each whitespace-preceded word in ``words`` (case-insensitive), whitespace dropped."""
    chunks: list[list[str | _Group]] = [[]]
    for position, item in enumerate(items):
        following = items[position + 1] if position + 1 < len(items) else None
        if item == " " and isinstance(following, str) and following.lower() in words and chunks[-1]:
            chunks.append([])
            continue
        chunks[-1].append(item)
    return [chunk for chunk in chunks if chunk]


def _lines(items: list[str | _Group], depth: int, breaks: set[str]) -> list[str]:
    """``items`` as lines indented ``depth`` levels: flat when it fits, else broken at ``breaks`` then by group."""
    pad = INDENT * depth
    flat = _flat(items).strip()
    if len(pad) + len(flat) <= WIDTH:
        return [pad + flat]
    chunks = _split_before(items, breaks)
    if len(chunks) > 1:
        return [line for chunk in chunks for line in _lines(chunk, depth, breaks)]
    lines: list[str] = []
    current = ""
    for item in chunks[0] if chunks else []:
        if isinstance(item, _Group):
            inner = _flat(item.items).strip()
            if len(pad) + len(current) + len(inner) + 2 <= WIDTH or len(inner) < MIN_BROKEN_GROUP:
                current += f"({inner})"
                continue
            lines.append(pad + (current + "(").lstrip())
            lines.extend(_lines(item.items, depth + 1, BOOLEAN_OPERATORS))
            current = ")"
        else:
            current += item
    if current.strip():
        lines.append(pad + current.strip())
    return lines


def _is_value_end(item: str | _Group) -> bool:
    return isinstance(item, _Group) or (len(item) > 1 and item[0] in "\"'/" and item[-1] in "\"'/ismx")


def _conditions(items: list[str | _Group]) -> list[list[str | _Group]]:
    """A search cut at its implicit ANDs: whitespace after a value (string, regex, group) and before a term."""
    chunks: list[list[str | _Group]] = [[]]
    for position, item in enumerate(items):
        previous = items[position - 1] if position else None
        following = items[position + 1] if position + 1 < len(items) else None
        if (item == " " and previous is not None and following is not None and _is_value_end(previous)
                and not (isinstance(following, str) and following.lower() in _KEYWORDS)):
            chunks.append([])
            continue
        chunks[-1].append(item)
    return [chunk for chunk in chunks if chunk]


def _stage_lines(stage: list[str | _Group], key: str, breaks: set[str]) -> list[str]:
    if key not in IMPLICIT_AND_LANGUAGES or len(_flat(stage).strip()) <= WIDTH:
        return _lines(stage, 0, breaks)
    lines: list[str] = []
    for condition in _conditions(stage):
        condition_lines = _lines(condition, 0, breaks | {"where", "by"})
        lines.append(condition_lines[0])
        lines.extend(INDENT + line for line in condition_lines[1:])
    return lines


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def format_query(query: str, language: str) -> str:
    """The query laid out for reading, or unchanged when it is multi-line already or cannot be laid out safely.

    A multi-line query in a piped language (a KQL conversion: the table, then one long ``| where``) has each of
    its long lines laid out on its own."""
    text = query.strip()
    key = language.strip().lower()
    if not text:
        return query
    if "\n" in text:
        if key in LINEWISE_LANGUAGES:
            return _linewise(query, key)
        if key not in PIPED_LANGUAGES:
            return query
        return "\n".join(_format_line(line, key) if len(line) > WIDTH else line for line in text.splitlines())
    return _format_line(text, key) if len(text) > WIDTH else query


def _linewise(query: str, key: str) -> str:
    """Each long line that starts outside a string literal and is complete in itself laid out on its own (a
    YARA-L rule's meta strings may run over several lines: nothing inside them moves)."""
    lines = []
    in_string = False
    for line in query.splitlines():
        quotes = len(re.findall(r'(?<!\\)"', line))
        complete = not in_string and quotes % 2 == 0
        lines.append(_indented(line, key) if complete else line)
        if quotes % 2:
            in_string = not in_string
    return "\n".join(lines)


def _indented(line: str, key: str) -> str:
    """A long line laid out under its own indentation (lines that are one string literal stay as they are)."""
    if len(line) <= WIDTH:
        return line
    pad = line[:len(line) - len(line.lstrip())]
    return "\n".join(pad + part for part in _format_line(line.strip(), key).splitlines())


def _format_line(text: str, key: str) -> str:
    tokens = _tokens(text, key not in NO_BACKSLASH_ESCAPES)
    tree = _tree(tokens) if tokens is not None else None
    if tree is None:
        return text
    stages = [tree.items]
    if key in PIPED_LANGUAGES:
        stages = [[]]
        for item in tree.items:
            if item == "|":
                stages.append([])
            else:
                stages[-1].append(item)
    breaks = BOOLEAN_OPERATORS | (SQL_CLAUSES if key in SQL_LANGUAGES else set())
    lines: list[str] = []
    for number, stage in enumerate(stages):
        if number == 0 and all(item == " " for item in stage) and len(stages) > 1:
            continue  # the line starts with a pipe: no search before it
        stage_lines = _stage_lines(stage, key, breaks) if any(item != " " for item in stage) else [""]
        if number > 0 or (not lines and text.startswith("|")):
            stage_lines[0] = "| " + stage_lines[0].lstrip()
            stage_lines[1:] = [INDENT + line for line in stage_lines[1:]]
        lines.extend(stage_lines)
    laid_out = "\n".join(line.rstrip() for line in lines)
    if _squeeze(laid_out) != _squeeze(text):
        return text
    return laid_out
