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

from assay.hunt.codecache import compile_cached
from assay.hunt.events import duck_lower
from assay.hunt.pyeval import like_parts

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
    """A (lower-cased) literal as it appears in a JSON record: JSON-escaped (``\\`` → ``\\\\``)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


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
    return duck_lower(text)


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


def literal(key: str | None, text: str) -> Formula:
    """``text`` must occur in the value read by ``key`` (``F:name`` a Fields entry, ``C:name`` a column, ``*`` any
    Fields value). Needles are lower-cased as DuckDB lowers; an unknown operand constrains nothing."""
    if not text or key is None:
        return TRUE
    return ("L", key, duck_lower(text))


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


def operand_key(node: exp.Expr | None) -> str | None:
    """Which value a predicate reads: ``F:<name>`` for ``Fields['name']``, ``C:<column>``, ``*`` for the keyword
    lambda's variable (every Fields value); None when unknown. Wrappers (lower, casts, trim) are looked through:
    they do not change whether a literal can occur (casts of text to text, lower-casing both sides)."""
    while isinstance(node, exp.Lower | exp.Paren | exp.Trim | exp.Cast | exp.TryCast):
        node = node.this
    if isinstance(node, exp.Bracket):
        base, keys = node.this, node.expressions
        if (isinstance(base, exp.Column) and base.name == "Fields" and len(keys) == 1
                and isinstance(keys[0], exp.Literal) and keys[0].is_string):
            return "F:" + str(keys[0].this)
        return None
    if isinstance(node, exp.Identifier) and node.name == "field_value":
        return "*"
    if isinstance(node, exp.Column) and not node.table:
        if node.name == "field_value":
            return "*"
        if node.name in ("EventID", "Channel", "Provider", "Computer"):
            return "C:" + node.name
    return None


def like_formula(key: str | None, pattern: str, escape: str | None) -> Formula:
    """Every literal run of a LIKE pattern must occur (``%`` and ``_`` are wildcards, ``escape`` quotes one)."""
    return all_of(literal(key, text) for kind, text in like_parts(pattern, escape) if kind == "lit")


def _number_formula(key: str | None, value: exp.Expr) -> Formula:
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
            return literal(key, str(abs(int(number))))
    return TRUE


def regex_formula(key: str | None, pattern: str) -> Formula:
    """Literal runs a regular expression cannot match without (a conservative reading of its syntax tree)."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return TRUE
    return _regex_sequence(key, list(parsed))


_REPEATS = tuple(getattr(sre_constants, name) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
                 if hasattr(sre_constants, name))
_ATOMIC = getattr(sre_constants, "ATOMIC_GROUP", None)


def _regex_sequence(key: str | None, items: Sequence[tuple[Any, Any]]) -> Formula:
    parts: list[Formula] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            parts.append(literal(key, "".join(run)))
            run.clear()

    for op, arg in items:
        if op is sre_constants.LITERAL:
            run.append(chr(arg))
            continue
        flush()
        if op is sre_constants.SUBPATTERN:
            # (group, add_flags, del_flags, pattern); an inline case flag does not matter: we compare lower-cased
            parts.append(_regex_sequence(key, list(arg[-1])))
        elif op is sre_constants.BRANCH:
            parts.append(any_of(_regex_sequence(key, list(branch)) for branch in arg[1]))
        elif op in _REPEATS:
            minimum, _maximum, body = arg
            if minimum >= 1:
                parts.append(_regex_sequence(key, list(body)))
        elif _ATOMIC is not None and op is _ATOMIC:
            parts.append(_regex_sequence(key, list(arg)))
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
            return like_formula(operand_key(inner.this), pattern, escape) if pattern is not None else TRUE
        return TRUE
    if isinstance(node, exp.Like | exp.ILike):
        pattern = _string_value(node.expression)
        return like_formula(operand_key(node.this), pattern, None) if pattern is not None else TRUE
    if isinstance(node, exp.EQ):
        for value, other in ((node.expression, node.this), (node.this, node.expression)):
            text = _string_value(value)
            if text is not None:
                return literal(operand_key(other), text)
            if isinstance(value, exp.Literal | exp.Neg) and isinstance(other, exp.TryCast | exp.Cast):
                return _number_formula(operand_key(other), value)
        return TRUE
    if isinstance(node, exp.In):
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            return TRUE
        options: list[Formula] = []
        key = operand_key(node.this)
        for value in node.expressions:
            text = _string_value(value)
            if text is not None:
                options.append(literal(key, text))
            elif isinstance(value, exp.Literal | exp.Neg):
                options.append(_number_formula(key, value))
            else:
                return TRUE
        return any_of(options)
    if isinstance(node, exp.RegexpLike):
        pattern = _string_value(node.expression)
        return regex_formula(operand_key(node.this), pattern) if pattern is not None else TRUE
    if isinstance(node, exp.Anonymous) and str(node.name).lower() == "list_bool_or":
        # keyword search: list_bool_or(list_transform(map_values(Fields), field_value -> predicate))
        transform = node.expressions[0] if node.expressions else None
        lam: exp.Expr | None = None
        if isinstance(transform, exp.Transform):
            lam = transform.expression
        elif isinstance(transform, exp.Anonymous) and str(transform.name).lower() == "list_transform":
            lam = transform.expressions[1] if len(transform.expressions) > 1 else None
        if isinstance(lam, exp.Lambda):
            return necessary_condition(lam.this)
        return TRUE
    return TRUE


# -- the indexes over all rules --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrefilterTarget:
    """What the prefilter knows of one compiled target: its route and the formula of its condition."""

    channels: tuple[str, ...]  # lower-cased; empty = any channel
    event_ids: tuple[int, ...]  # empty = any event id
    formula: Formula


def text_formula(formula: Formula) -> Formula:
    """A field formula as a raw-record-text formula (for JSON sources the fast path does not parse).

    A string value appears JSON-escaped in the record; a value nested in an object or array is stored by ingestion
    as that object's JSON text, so its literal appears in the record as written: either form may occur.
    """
    kind = formula[0]
    if kind == "L":
        plain = formula[2]
        escaped = needle(plain)
        return ("L", "", escaped) if escaped == plain else any_of([("L", "", escaped), ("L", "", plain)])
    if kind == "A":
        return all_of(text_formula(p) for p in formula[1])
    if kind == "O":
        return any_of(text_formula(p) for p in formula[1])
    return formula


def atom_cost(atom: Formula) -> float:
    """How often an atom is expected to hold (used to pick triggers): short needles and System columns often."""
    length = len(atom[2])
    cost = 1.0 / (length * length)
    if atom[1].startswith("C:"):
        cost *= 4.0
    return cost


def _cover(formula: Formula, usable: Callable[[Formula], bool]) -> tuple[float, frozenset[Formula]] | None:
    """A cheap set of atoms one of which must hold when ``formula`` holds (None if there is no such set)."""
    kind = formula[0]
    if kind == "F":
        return 0.0, frozenset()
    if kind == "L":
        return (atom_cost(formula), frozenset([formula])) if usable(formula) else None
    if kind == "A":
        best: tuple[float, frozenset[Formula]] | None = None
        for part in formula[1]:
            found = _cover(part, usable)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        return best
    if kind == "O":
        cost = 0.0
        union: set[Formula] = set()
        for part in formula[1]:
            found = _cover(part, usable)
            if found is None:
                return None
            cost += found[0]
            union |= found[1]
        return cost, frozenset(union)
    return None


def atoms_of(formula: Formula) -> Iterable[Formula]:
    if formula[0] == "L":
        yield formula
    elif formula[0] in ("A", "O"):
        for part in formula[1]:
            yield from atoms_of(part)


def _check_source(formula: Formula, atom_ids: dict[Formula, int]) -> str:
    """A Python boolean expression over ``h`` (ids of the atoms that hold) and ``t`` (the record text)."""
    kind = formula[0]
    if kind == "T":
        return "True"
    if kind == "F":
        return "False"
    if kind == "L":
        if formula in atom_ids:
            return f"{atom_ids[formula]} in h"
        return f"{formula[2]!r} in t"
    joiner = " and " if kind == "A" else " or "
    return "(" + joiner.join(_check_source(part, atom_ids) for part in formula[1]) + ")"


def _compile_check(source: str) -> Callable[[set[int], str], bool]:
    # Generated from our own formulas (integers and repr() of needle strings): safe to compile.
    function: Callable[[set[int], str], bool] = eval(compile_cached(f"lambda h, t: {source}", "<prefilter>", "eval"))
    return function


class _Checks:
    """Each target's formula check, compiled on first use (a case touches a fraction of the rules)."""

    def __init__(self, formulas: Sequence[Formula], atom_ids: dict[Formula, int]) -> None:
        self.formulas = formulas
        self.atom_ids = atom_ids
        self.compiled: list[Callable[[set[int], str], bool] | None] = [None] * len(formulas)

    def compile(self, index: int) -> Callable[[set[int], str], bool]:
        check = _compile_check(_check_source(self.formulas[index], self.atom_ids))
        self.compiled[index] = check
        return check

    def __call__(self, index: int, hits: set[int], text: str) -> bool:
        check = self.compiled[index]
        if check is None:
            check = self.compile(index)
        return check(hits, text)


class _Routing:
    """Targets by route, cached per (channel, event id) seen in the data."""

    def __init__(self, targets: Sequence[PrefilterTarget], untriggered: Sequence[int]) -> None:
        self.targets = targets
        self.untriggered = untriggered
        self.cache: dict[tuple[str | None, int | None], tuple[frozenset[int], tuple[int, ...]]] = {}
        self.by_channel: dict[str, list[int]] = {}
        self.any_channel: list[int] = []
        for index, target in enumerate(targets):
            if target.channels:
                for channel in target.channels:
                    self.by_channel.setdefault(channel, []).append(index)
            else:
                self.any_channel.append(index)

    def admitted(self, channel: str | None, event_id: int | None) -> tuple[frozenset[int], tuple[int, ...]]:
        key = (channel, event_id)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        admitted = []
        if channel is None:
            pool: Iterable[int] = range(len(self.targets))
        else:
            pool = sorted(set(self.by_channel.get(channel, [])) | set(self.any_channel))
        for index in pool:
            target = self.targets[index]
            if event_id is not None and target.event_ids and event_id not in target.event_ids:
                continue
            admitted.append(index)
        admitted_set = frozenset(admitted)
        result = (admitted_set, tuple(i for i in self.untriggered if i in admitted_set))
        self.cache[key] = result
        return result


class TextPrefilter:
    """Raw-text prefilter for JSON sources: one automaton over all needles, run over each lower-cased record."""

    def __init__(self, targets: Sequence[PrefilterTarget]) -> None:
        self.targets = targets
        formulas = [text_formula(t.formula) for t in targets]
        needles = sorted({a for f in formulas for a in atoms_of(f) if len(a[2]) >= MIN_AUTOMATON_NEEDLE})
        self.atom_ids = {atom: i for i, atom in enumerate(needles)}
        self.automaton = ahocorasick.Automaton()
        for atom, ident in self.atom_ids.items():
            self.automaton.add_word(atom[2], ident)
        if self.atom_ids:
            self.automaton.make_automaton()
        self.triggers: dict[int, list[int]] = {}
        untriggered: list[int] = []
        for index, formula in enumerate(formulas):
            cover = _cover(formula, lambda atom: atom in self.atom_ids)
            if cover is None:
                untriggered.append(index)
            else:
                for atom in cover[1]:
                    self.triggers.setdefault(self.atom_ids[atom], []).append(index)
        self.checks = _Checks(formulas, self.atom_ids)
        self.routing = _Routing(targets, untriggered)

    def candidates(self, text: str, trusted_escaping: bool = True) -> list[int]:
        """Indexes of the targets whose exact condition must be checked on this record (sorted)."""
        channel_match = _CHANNEL.search(text)
        channel = channel_match.group(1).lower() if channel_match else None
        id_match = _EVENT_ID.search(text)
        event_id = int(id_match.group(1) or id_match.group(2)) if id_match else None
        admitted, untriggered = self.routing.admitted(channel, event_id)
        lowered = canonical_record_text(text, trusted_escaping)
        hits = {ident for _end, ident in self.automaton.iter(lowered)} if self.atom_ids else set()
        to_check: set[int] = set(untriggered)
        for ident in hits:
            triggered = self.triggers.get(ident)
            if triggered:
                to_check.update(triggered)
        checks = self.checks
        return sorted(i for i in to_check if i in admitted and checks(i, hits, lowered))


#: Values longer than this are matched every time instead of being remembered (script blocks, payloads).
MAX_CACHED_VALUE = 400
MAX_CACHED_VALUES = 300_000


class FieldPrefilter:
    """Per-field prefilter for parsed events: per field, one automaton over that field's needles, run once per
    distinct lower-cased value (remembered), then triggers and formula checks as in :class:`TextPrefilter`."""

    def __init__(self, targets: Sequence[PrefilterTarget]) -> None:
        self.targets = targets
        atoms = sorted({a for t in targets for a in atoms_of(t.formula)})
        self.atom_ids = {atom: i for i, atom in enumerate(atoms)}
        by_key: dict[str, list[Formula]] = {}
        for atom in atoms:
            by_key.setdefault(atom[1], []).append(atom)
        self.automata: dict[str, Any] = {}
        for key, key_atoms in by_key.items():
            automaton = ahocorasick.Automaton()
            grouped: dict[str, list[int]] = {}
            for atom in key_atoms:
                grouped.setdefault(atom[2], []).append(self.atom_ids[atom])
            for text, idents in grouped.items():
                automaton.add_word(text, tuple(idents))
            automaton.make_automaton()
            self.automata[key] = automaton
        self.triggers: dict[int, list[int]] = {}
        untriggered: list[int] = []
        self.keys_of: list[frozenset[str]] = []
        for index, target in enumerate(targets):
            cover = _cover(target.formula, lambda atom: True)
            if cover is None:
                untriggered.append(index)
            else:
                for atom in cover[1]:
                    self.triggers.setdefault(self.atom_ids[atom], []).append(index)
            self.keys_of.append(frozenset(a[1] for a in atoms_of(target.formula)))
        self.checks = _Checks([t.formula for t in targets], self.atom_ids)
        self.routing = _Routing(targets, untriggered)
        self.matchers = {key: _ValueMatcher(automaton) for key, automaton in self.automata.items()}
        self._routes: dict[tuple[str | None, int | None], _RoutePlan] = {}

    def route_plan(self, channel: str | None, event_id: int | None) -> _RoutePlan:
        """What an event of this (lower-cased) channel and event id needs; the route counts as reached."""
        return self._route(channel, event_id)

    def _route(self, channel: str | None, event_id: int | None) -> _RoutePlan:
        """What an event of this channel and event id needs: its targets, and the matchers of their fields."""
        key = (channel, event_id)
        plan = self._routes.get(key)
        if plan is not None:
            return plan
        admitted, untriggered = self.routing.admitted(channel, event_id)
        keys: set[str] = set()
        for index in admitted:
            keys |= self.keys_of[index]
        plan = _RoutePlan(
            admitted=admitted, untriggered=untriggered,
            fields={k[2:]: self.matchers[k] for k in keys if k.startswith("F:") and k in self.matchers},
            columns=[(k[2:], self.matchers[k]) for k in sorted(keys) if k.startswith("C:") and k in self.matchers],
            any_value=self.matchers.get("*") if "*" in keys else None)
        self._routes[key] = plan
        return plan

    def routes_seen(self) -> list[frozenset[int]]:
        """The admitted targets of every route an event has had so far."""
        return [plan.admitted for plan in self._routes.values()]

    def candidates(self, fields: dict[str, str | None], columns: dict[str, str | None], channel: str | None,
                   event_id: int | None) -> list[int]:
        """Indexes of the targets whose exact condition must be checked on this event."""
        plan = self._route(duck_lower(channel) if channel is not None else None, event_id)
        hits: set[int] = set()
        field_matchers = plan.fields
        for name, value in fields.items():
            matcher = field_matchers.get(name)
            if matcher is not None and value is not None:
                found = matcher.cache.get(value)
                if found is None:
                    found = matcher.compute(value)
                if found:
                    hits.update(found)
        for name, matcher in plan.columns:
            value = columns.get(name)
            if value is not None:
                found = matcher.cache.get(value)
                if found is None:
                    found = matcher.compute(value)
                if found:
                    hits.update(found)
        if plan.any_value is not None:
            matcher = plan.any_value
            for value in fields.values():
                if value is not None:
                    found = matcher.cache.get(value)
                    if found is None:
                        found = matcher.compute(value)
                    if found:
                        hits.update(found)
        to_check: set[int] = set(plan.untriggered)
        route_triggers = plan.triggers
        for ident in hits:
            triggered = route_triggers.get(ident)
            if triggered is None:
                triggered = [i for i in self.triggers.get(ident, ()) if i in plan.admitted]
                route_triggers[ident] = triggered
            if triggered:
                to_check.update(triggered)
        if not to_check:
            return []
        compiled = self.checks.compiled
        chosen = []
        for index in to_check:
            check = compiled[index]
            if check is None:
                check = self.checks.compile(index)
            if check(hits, ""):
                chosen.append(index)
        return chosen


class _ValueMatcher:
    """One field's automaton and the needles found in each value seen (bounded memory)."""

    def __init__(self, automaton: Any) -> None:
        self.automaton = automaton
        self.cache: dict[str, tuple[int, ...]] = {}

    def compute(self, value: str) -> tuple[int, ...]:
        idents: set[int] = set()
        for _end, group in self.automaton.iter(duck_lower(value)):
            idents.update(group)
        result = tuple(idents)
        if len(value) <= MAX_CACHED_VALUE:
            if len(self.cache) >= MAX_CACHED_VALUES:
                self.cache.clear()  # bounded memory: start over rather than grow without limit
            self.cache[value] = result
        return result


@dataclass
class _RoutePlan:
    admitted: frozenset[int]
    untriggered: tuple[int, ...]
    fields: dict[str, _ValueMatcher]
    columns: list[tuple[str, _ValueMatcher]]
    any_value: _ValueMatcher | None
    triggers: dict[int, list[int]] = field(default_factory=dict)  # atom id -> admitted targets it triggers
