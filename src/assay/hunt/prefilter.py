"""The hunt fast path's prefilter: which rules could match a raw event, found without parsing the event.

A compiled rule condition (a sqlglot tree from the Sigma stage) is reduced to a *necessary condition*: a monotone
formula over literal texts that must occur in the event's raw JSON text for the condition to be true. ``lower(x)
LIKE '%\\cmd.exe'`` needs ``\\\\cmd.exe`` (JSON-escaped, lower-cased) somewhere in the record; ``a AND b`` needs
both; ``a OR b`` either; ``NOT a`` and anything not understood needs nothing (``TRUE``). A record for which the
formula is false cannot match, so the rule's exact SQL only runs on records for which it is true.

All literals of all rules are deduplicated into one Aho-Corasick automaton run once over each lower-cased record;
each rule is *triggered* by a small set of its literals (a cover: the formula implies one of them occurs), and
only triggered rules in the record's route (channel, event id) have their formula checked. Rules with no cover
(e.g. a pure ``not`` or an event-id-only rule) are checked on every record of their route: never a shortcut that
could lose a match.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick
from sqlglot import exp

with warnings.catch_warnings():
    # The regex parser moved to re._parser in 3.11 (sre_parse is a deprecated alias); it is what we need.
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        from re import _constants as sre_constants  # type: ignore[attr-defined]
        from re import _parser as sre_parse  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - Python < 3.11
        import sre_constants
        import sre_parse

#: A necessary-condition formula, as plain tuples (picklable, JSON-able):
#: ``("T",)`` true, ``("F",)`` false, ``("L", needle)``, ``("A", parts)`` all of, ``("O", parts)`` any of.
Formula = tuple[Any, ...]
TRUE: Formula = ("T",)
FALSE: Formula = ("F",)

#: Needles shorter than this are checked with a substring test when a formula needs them, not by the automaton:
#: a two-character needle such as ``\\\\`` occurs dozens of times per record and would flood the match stream.
MIN_AUTOMATON_NEEDLE = 3

_EVENT_ID = re.compile(r'"EventID":\s*(?:"?(\d+)"?|\{[^{}]*?(?:\{[^{}]*\}[^{}]*?)?"#text":\s*"?(\d+))')
_CHANNEL = re.compile(r'"Channel":\s*"([^"\\]*)"')


def needle(text: str) -> str:
    """A literal as it appears in a lower-cased JSON record: JSON-escaped (``\\`` → ``\\\\``), lower-cased."""
    return json.dumps(text, ensure_ascii=False)[1:-1].lower()


def canonical_record_text(text: str, trusted_escaping: bool) -> str:
    """The lower-cased record text the needles are searched in.

    EVTX JSON (serde) escapes only quotes, backslashes and control characters, as ``needle`` does. Other JSON
    writers may escape ``/`` or non-ASCII letters (``\\u00e9``); such records are re-encoded first so a literal
    is found whatever the producer's escaping.
    """
    if not trusted_escaping and ("\\u" in text or "\\/" in text):
        # not JSON: ingestion reports it; searching the raw text keeps the superset property
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    return text.lower()


# -- formulas ----------------------------------------------------------------------------------------------------
def all_of(parts: Iterable[Formula]) -> Formula:
    kept: list[Formula] = []
    for part in parts:
        if part == FALSE:
            return FALSE
        if part == TRUE:
            continue
        if part[0] == "A":
            kept.extend(p for p in part[1] if p not in kept)
        elif part not in kept:
            kept.append(part)
    if not kept:
        return TRUE
    return kept[0] if len(kept) == 1 else ("A", tuple(kept))


def any_of(parts: Iterable[Formula]) -> Formula:
    kept: list[Formula] = []
    for part in parts:
        if part == TRUE:
            return TRUE
        if part == FALSE:
            continue
        if part[0] == "O":
            kept.extend(p for p in part[1] if p not in kept)
        elif part not in kept:
            kept.append(part)
    if not kept:
        return FALSE
    return kept[0] if len(kept) == 1 else ("O", tuple(kept))


def literal(text: str) -> Formula:
    return ("L", needle(text)) if text else TRUE


def formula_from_json(data: Any) -> Formula:
    """A formula back from its JSON form (lists instead of tuples)."""
    kind = data[0]
    if kind in ("A", "O"):
        return (kind, tuple(formula_from_json(p) for p in data[1]))
    return tuple(data)


# -- sqlglot condition → formula ---------------------------------------------------------------------------------
def _string_value(node: exp.Expr | None) -> str | None:
    """The text of a string literal, also through ``lower('…')`` and parentheses."""
    while isinstance(node, exp.Lower | exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    return None


def like_formula(pattern: str, escape: str | None) -> Formula:
    """Every literal run of a LIKE pattern must occur (``%`` and ``_`` are wildcards, ``escape`` quotes one)."""
    runs: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if escape and char == escape and index + 1 < len(pattern):
            current.append(pattern[index + 1])
            index += 2
            continue
        if char in "%_":
            runs.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    runs.append("".join(current))
    return all_of(literal(run) for run in runs if run)


def _number_formula(value: exp.Expr) -> Formula:
    """A number compared with a field's text (``TRY_CAST(trim(x) AS DOUBLE) = 4688``): its digits must occur."""
    if isinstance(value, exp.Neg):
        value = value.this
    if isinstance(value, exp.Literal) and not value.is_string:
        try:
            number = float(value.this)
        except ValueError:
            return TRUE
        if number.is_integer():
            # "4688", " 4688", "04688" and "4688.0" all contain the digits; exponent spellings do not occur in logs.
            return literal(str(abs(int(number))))
    return TRUE


def regex_formula(pattern: str) -> Formula:
    """Literal runs a regular expression cannot match without (a conservative reading of its syntax tree)."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return TRUE
    return _regex_sequence(list(parsed))


_REPEATS = tuple(getattr(sre_constants, name) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
                 if hasattr(sre_constants, name))
_ATOMIC = getattr(sre_constants, "ATOMIC_GROUP", None)


def _regex_sequence(items: Sequence[tuple[Any, Any]]) -> Formula:
    parts: list[Formula] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            parts.append(literal("".join(run)))
            run.clear()

    for op, arg in items:
        if op is sre_constants.LITERAL:
            run.append(chr(arg))
            continue
        flush()
        if op is sre_constants.SUBPATTERN:
            # (group, add_flags, del_flags, pattern); an inline case flag does not matter: we compare lower-cased
            parts.append(_regex_sequence(list(arg[-1])))
        elif op is sre_constants.BRANCH:
            parts.append(any_of(_regex_sequence(list(branch)) for branch in arg[1]))
        elif op in _REPEATS:
            minimum, _maximum, body = arg
            if minimum >= 1:
                parts.append(_regex_sequence(list(body)))
        elif _ATOMIC is not None and op is _ATOMIC:
            parts.append(_regex_sequence(list(arg)))
        # anything else (classes, anchors, any-char, lookarounds) requires no particular literal
    flush()
    return all_of(parts)


def necessary_condition(node: exp.Expr | None) -> Formula:
    """The formula a record's text must satisfy for ``node`` (a boolean sqlglot tree) to be true on it."""
    if node is None:
        return TRUE
    if isinstance(node, exp.Paren):
        return necessary_condition(node.this)
    if isinstance(node, exp.And):
        return all_of(necessary_condition(part) for part in node.flatten())
    if isinstance(node, exp.Or):
        return any_of(necessary_condition(part) for part in node.flatten())
    if isinstance(node, exp.Boolean):
        return TRUE if node.this else FALSE
    if isinstance(node, exp.Coalesce):
        # coalesce(p, false) is true only where p is true; another fallback could be true on its own
        fallbacks = node.expressions
        if all(isinstance(f, exp.Boolean) and not f.this for f in fallbacks):
            return necessary_condition(node.this)
        return TRUE
    if isinstance(node, exp.Escape):
        inner = node.this
        escape = _string_value(node.expression)
        if isinstance(inner, exp.Like | exp.ILike):
            pattern = _string_value(inner.expression)
            return like_formula(pattern, escape) if pattern is not None else TRUE
        return TRUE
    if isinstance(node, exp.Like | exp.ILike):
        pattern = _string_value(node.expression)
        return like_formula(pattern, None) if pattern is not None else TRUE
    if isinstance(node, exp.EQ):
        for value, other in ((node.expression, node.this), (node.this, node.expression)):
            text = _string_value(value)
            if text is not None:
                return literal(text)
            if isinstance(value, exp.Literal | exp.Neg) and isinstance(other, exp.TryCast | exp.Cast):
                return _number_formula(value)
        return TRUE
    if isinstance(node, exp.In):
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            return TRUE
        options: list[Formula] = []
        for value in node.expressions:
            text = _string_value(value)
            if text is not None:
                options.append(literal(text))
            elif isinstance(value, exp.Literal | exp.Neg):
                options.append(_number_formula(value))
            else:
                return TRUE
        return any_of(options)
    if isinstance(node, exp.RegexpLike):
        pattern = _string_value(node.expression)
        return regex_formula(pattern) if pattern is not None else TRUE
    if isinstance(node, exp.Anonymous) and str(node.name).lower() == "list_bool_or":
        # keyword search: list_bool_or(list_transform(map_values(Fields), v -> predicate(v)))
        transform = node.expressions[0] if node.expressions else None
        if isinstance(transform, exp.Anonymous) and str(transform.name).lower() == "list_transform":
            lam = transform.expressions[1] if len(transform.expressions) > 1 else None
            if isinstance(lam, exp.Lambda):
                return necessary_condition(lam.this)
        return TRUE
    return TRUE


# -- the index over all rules ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrefilterTarget:
    """What the prefilter knows of one compiled target: its route and the formula of its route + condition."""

    channels: tuple[str, ...]  # lower-cased; empty = any channel
    event_ids: tuple[int, ...]  # empty = any event id
    formula: Formula


def needle_cost(text: str) -> float:
    """How often a needle is expected to occur: shorter is commoner (used to pick triggers)."""
    return 1.0 / (len(text) ** 2)


def _cover(formula: Formula, automaton_needles: set[str]) -> tuple[float, frozenset[str]] | None:
    """A cheap set of automaton needles one of which must occur when ``formula`` holds (None if no such set)."""
    kind = formula[0]
    if kind == "F":
        return 0.0, frozenset()
    if kind == "L":
        return (needle_cost(formula[1]), frozenset([formula[1]])) if formula[1] in automaton_needles else None
    if kind == "A":
        best: tuple[float, frozenset[str]] | None = None
        for part in formula[1]:
            found = _cover(part, automaton_needles)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        return best
    if kind == "O":
        cost = 0.0
        union: set[str] = set()
        for part in formula[1]:
            found = _cover(part, automaton_needles)
            if found is None:
                return None
            cost += found[0]
            union |= found[1]
        return cost, frozenset(union)
    return None


def _needles_of(formula: Formula) -> Iterable[str]:
    if formula[0] == "L":
        yield formula[1]
    elif formula[0] in ("A", "O"):
        for part in formula[1]:
            yield from _needles_of(part)


def _python_source(formula: Formula, needle_ids: dict[str, int]) -> str:
    """A Python boolean expression over ``h`` (set of automaton needle ids found) and ``t`` (the record text)."""
    kind = formula[0]
    if kind == "T":
        return "True"
    if kind == "F":
        return "False"
    if kind == "L":
        text = formula[1]
        if text in needle_ids:
            return f"{needle_ids[text]} in h"
        return f"{text!r} in t"
    joiner = " and " if kind == "A" else " or "
    return "(" + joiner.join(_python_source(part, needle_ids) for part in formula[1]) + ")"


@dataclass
class PrefilterIndex:
    """All targets' formulas, one automaton over their needles, triggers, and a per-route cache."""

    targets: Sequence[PrefilterTarget]
    needle_ids: dict[str, int] = field(init=False)
    automaton: Any = field(init=False)
    triggers: dict[int, list[int]] = field(init=False)
    untriggered: list[int] = field(init=False)
    checks: list[Callable[[set[int], str], bool]] = field(init=False)
    _routes: dict[tuple[str | None, int | None], tuple[frozenset[int], tuple[int, ...]]] = field(init=False)

    def __post_init__(self) -> None:
        all_needles = sorted({n for t in self.targets for n in _needles_of(t.formula)})
        automaton_needles = [n for n in all_needles if len(n) >= MIN_AUTOMATON_NEEDLE]
        self.needle_ids = {n: i for i, n in enumerate(automaton_needles)}
        self.automaton = ahocorasick.Automaton()
        for text, ident in self.needle_ids.items():
            self.automaton.add_word(text, ident)
        if self.needle_ids:
            self.automaton.make_automaton()
        self.triggers = {}
        self.untriggered = []
        self.checks = []
        names = set(self.needle_ids)
        for index, target in enumerate(self.targets):
            cover = _cover(target.formula, names)
            if cover is None:
                self.untriggered.append(index)
            else:
                for text in cover[1]:
                    self.triggers.setdefault(self.needle_ids[text], []).append(index)
            source = _python_source(target.formula, self.needle_ids)
            # Generated from our own formula (integers and repr() of needle strings): safe to compile.
            self.checks.append(eval(compile(f"lambda h, t: {source}", "<prefilter>", "eval")))
        self._routes = {}

    @property
    def needle_count(self) -> int:
        return len(self.needle_ids)

    def route_targets(self, channel: str | None, event_id: int | None) -> tuple[frozenset[int], tuple[int, ...]]:
        """(targets whose route admits this channel/event id, the untriggered ones among them)."""
        key = (channel, event_id)
        cached = self._routes.get(key)
        if cached is not None:
            return cached
        admitted = []
        for index, target in enumerate(self.targets):
            if channel is not None and target.channels and channel not in target.channels:
                continue
            if event_id is not None and target.event_ids and event_id not in target.event_ids:
                continue
            admitted.append(index)
        admitted_set = frozenset(admitted)
        result = (admitted_set, tuple(i for i in self.untriggered if i in admitted_set))
        self._routes[key] = result
        return result

    def candidates(self, text: str, trusted_escaping: bool = True) -> list[int]:
        """Indexes of the targets whose exact condition must be checked on this record (sorted)."""
        channel_match = _CHANNEL.search(text)
        channel = channel_match.group(1).lower() if channel_match else None
        id_match = _EVENT_ID.search(text)
        event_id = int(id_match.group(1) or id_match.group(2)) if id_match else None
        admitted, untriggered = self.route_targets(channel, event_id)
        lowered = canonical_record_text(text, trusted_escaping)
        hits = {ident for _end, ident in self.automaton.iter(lowered)} if self.needle_ids else set()
        to_check: set[int] = set(untriggered)
        triggers = self.triggers
        for ident in hits:
            triggered = triggers.get(ident)
            if triggered:
                to_check.update(triggered)
        checks = self.checks
        return sorted(i for i in to_check if i in admitted and checks[i](hits, lowered))
