"""Exact evaluation of rules on DuckDB, shared by the fast path and the rule-by-rule reference.

The fast path hands over (event, target) *candidate pairs*; :func:`evaluate_pairs` checks them with the targets'
exact SQL, many targets per statement through one ``CASE`` over the target number (DuckDB evaluates a branch
only on the rows that reach it), so the cost follows the candidates, not rules × events. :func:`evaluate_all`
is the plain one-query-per-target reference. :func:`hits_for` turns matches into timeline hits with evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from assay.engine import DuckDBEngine
from assay.hunt.rules import HuntRule, HuntTarget
from assay.hunt.timeline import Hit, key_fields
from assay.schema import RAW_EVENTS

#: Targets per CASE statement, and the SQL size at which a statement is closed early (pathological rules with
#: thousands of OR'ed values make one target's SQL hundreds of kilobytes).
TARGETS_PER_STATEMENT = 150
MAX_STATEMENT_CHARS = 400_000
PAIRS_TABLE = "assay_hunt_pairs"


@dataclass(frozen=True)
class TargetRef:
    """A target and the rule it belongs to, numbered across the whole rule set."""

    number: int
    rule: HuntRule
    target: HuntTarget


def enumerate_targets(rules: Sequence[HuntRule]) -> list[TargetRef]:
    """Every target of every rule, numbered 0…n-1 in rule order."""
    refs: list[TargetRef] = []
    for rule in rules:
        for target in rule.targets:
            refs.append(TargetRef(len(refs), rule, target))
    return refs


def _statements(numbers: Sequence[int], refs: Sequence[TargetRef]) -> Iterable[list[int]]:
    group: list[int] = []
    size = 0
    for number in numbers:
        length = len(refs[number].target.where_duckdb)
        if group and (len(group) >= TARGETS_PER_STATEMENT or size + length > MAX_STATEMENT_CHARS):
            yield group
            group, size = [], 0
        group.append(number)
        size += length
    if group:
        yield group


def evaluate_pairs(engine: DuckDBEngine, event_ids: Sequence[int], target_numbers: Sequence[int],
                   refs: Sequence[TargetRef]) -> list[tuple[int, int]]:
    """The (target number, AssayEventId) pairs whose exact condition holds, from candidate pairs on RawEvents."""
    if not event_ids:
        return []
    connection = engine.connection
    pairs = pa.table({"AssayEventId": pa.array(event_ids, pa.int64()),
                      "Target": pa.array(target_numbers, pa.int32())})
    connection.register(PAIRS_TABLE, pairs)
    matches: list[tuple[int, int]] = []
    try:
        present = sorted(set(target_numbers))
        for group in _statements(present, refs):
            branches = " ".join(f"WHEN {n} THEN ({refs[n].target.where_duckdb})" for n in group)
            sql = (f"SELECT p.Target, p.AssayEventId FROM {PAIRS_TABLE} p JOIN {RAW_EVENTS} e "
                   f"ON e.AssayEventId = p.AssayEventId WHERE p.Target BETWEEN {group[0]} AND {group[-1]} "
                   f"AND coalesce(CASE p.Target {branches} ELSE FALSE END, FALSE)")
            matches.extend((int(t), int(e)) for t, e in engine.run(sql).rows)
    finally:
        connection.unregister(PAIRS_TABLE)
    return matches


def evaluate_all(engine: DuckDBEngine, refs: Sequence[TargetRef], *,
                 defender_only_typed: bool = True) -> list[tuple[int, int]]:
    """One query per target over the whole database: the reference the fast path must equal.

    RawEvents targets run on every row; typed-table targets (Defender XDR routes) only on rows that came from
    Defender exports, as in the fast path: evtx and event JSON are hunted in their raw form.
    """
    matches: list[tuple[int, int]] = []
    for ref in refs:
        target = ref.target
        if target.table == RAW_EVENTS:
            sql = f"SELECT AssayEventId FROM {RAW_EVENTS} WHERE {target.where_duckdb}"
        else:
            restriction = (f"AssayEventId IN (SELECT AssayEventId FROM {RAW_EVENTS} "
                           "WHERE SourceFormat LIKE 'defender-%') AND " if defender_only_typed else "")
            sql = f'SELECT AssayEventId FROM "{target.table}" WHERE {restriction}({target.where_duckdb})'
        matches.extend((ref.number, int(row[0])) for row in engine.run(sql).rows)
    return matches


EVIDENCE_COLUMNS = ("AssayEventId", "Timestamp", "Computer", "Channel", "EventID", "SourceFile", "SourceRecord",
                    "Fields")


def hits_for(engine: DuckDBEngine, matches: Sequence[tuple[int, int]], refs: Sequence[TargetRef]) -> list[Hit]:
    """Timeline hits for (target number, AssayEventId) matches, with each event's evidence from RawEvents."""
    if not matches:
        return []
    wanted = sorted({event for _, event in matches})
    connection = engine.connection
    ids = pa.table({"AssayEventId": pa.array(wanted, pa.int64())})
    connection.register("assay_hunt_wanted", ids)
    try:
        rows = engine.run(f"SELECT {', '.join(EVIDENCE_COLUMNS)} FROM {RAW_EVENTS} "
                          "WHERE AssayEventId IN (SELECT AssayEventId FROM assay_hunt_wanted)").rows
    finally:
        connection.unregister("assay_hunt_wanted")
    events: dict[int, tuple[Any, ...]] = {int(row[0]): row for row in rows}
    by_number = {ref.number: ref for ref in refs}
    hits = []
    for number, event_id in matches:
        row = events.get(event_id)
        if row is None:
            continue
        hits.append(make_hit(by_number[number], row))
    return hits


def make_hit(ref: TargetRef, row: Sequence[Any]) -> Hit:
    """A hit from an evidence row (``EVIDENCE_COLUMNS`` order)."""
    _event_id, timestamp, computer, channel, event_number, source_file, source_record, fields = row
    rule, target = ref.rule, ref.target
    return Hit(timestamp=timestamp, host=computer, rule_title=rule.title, rule_id=rule.id, level=rule.level,
               techniques=rule.techniques, channel=channel,
               event_id=int(event_number) if event_number is not None else None,
               fields=tuple(key_fields(fields, target.fields).items()), source_file=str(source_file),
               source_record=int(source_record) if source_record is not None else None, route=target.route)
