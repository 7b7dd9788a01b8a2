"""Sigma correlation rules (event_count, value_count, temporal, temporal_ordered) with real sliding windows.

Each referenced rule runs on its routes (SQL, through the same backend); the matching events, with their time,
group-by values and counted field, are then windowed per group: every event opens a window of ``timespan``
(not fixed buckets, so a burst straddling a bucket edge is still found). Windows that satisfy the condition are
reported with the events that make them up; overlapping firing windows of one group are reported once.
"""

from __future__ import annotations

import dataclasses
import operator
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaRuleReference,
)
from sqlglot import exp

from assay.engine import DuckDBEngine
from assay.errors import SigmaError, SourceSpan
from assay.sigma.backend import SqlglotBackend
from assay.sigma.compiler import compile_condition, route_filter
from assay.sigma.evaluation import CorrelationHit, RouteEvaluation, SigmaEvaluation, evaluate_target
from assay.sigma.loading import LoadedRule
from assay.sigma.routes import Route, routes_for_rule_logsource

_OPERATORS: dict[SigmaCorrelationConditionOperator, Callable[[float, float], bool]] = {
    SigmaCorrelationConditionOperator.LT: operator.lt, SigmaCorrelationConditionOperator.LTE: operator.le,
    SigmaCorrelationConditionOperator.GT: operator.gt, SigmaCorrelationConditionOperator.GTE: operator.ge,
    SigmaCorrelationConditionOperator.EQ: operator.eq, SigmaCorrelationConditionOperator.NEQ: operator.ne,
}

_SUPPORTED = {SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT, SigmaCorrelationType.TEMPORAL,
              SigmaCorrelationType.TEMPORAL_ORDERED}


@dataclass(frozen=True)
class _Event:
    timestamp: datetime
    event_id: int
    rule: str
    group: tuple[str | None, ...]
    value: str | None


def _reference_key(reference: SigmaRuleReference) -> str:
    return reference.reference


def _field_for(correlation: SigmaCorrelationRule, reference: str, name: str) -> str:
    """The field name a referenced rule's events use for a group-by/alias name."""
    alias = correlation.aliases.aliases.get(name)
    if alias is None:
        return name
    for ref, field_name in alias.mapping.items():
        if ref.reference == reference:
            return field_name
    return name


def _value_of(backend: SqlglotBackend, correlation: SigmaCorrelationRule, reference: str,
              sigma_field: str) -> exp.Expr:
    """A group-by or counted field of a referenced rule's events, on the backend's route (NULL if absent)."""
    table_field = backend.route.table_field(_field_for(correlation, reference, sigma_field))
    return backend.field_expression(table_field) if table_field else exp.Null()


def _collect_events(rule: LoadedRule, correlation: SigmaCorrelationRule, engine: DuckDBEngine,
                    routes_out: list[RouteEvaluation], route_override: Route | None = None,
                    keep: Callable[[Route], bool] | None = None) -> list[_Event]:
    group_by = list(correlation.group_by or [])
    value_field = correlation.condition.fieldref if isinstance(correlation.condition, SigmaCorrelationCondition) \
        else None
    if isinstance(value_field, list):
        value_field = value_field[0] if value_field else None
    events: list[_Event] = []
    for reference in correlation.rules or []:
        key = _reference_key(reference)
        base = rule.fresh_rule(key)
        routes = [route_override] if route_override is not None else routes_for_rule_logsource(base)
        if keep is not None:
            routes = [r for r in routes if keep(r)]
            if not routes:
                continue  # this referenced rule has no route in the part of the database asked for
        if not routes:
            raise SigmaError(f"correlation {rule.title!r}: referenced rule {base.title!r} has no route",
                             span=SourceSpan.of_file(rule.source))
        for route in routes:
            target = compile_condition(rule, route, select=key)
            outcome = evaluate_target(target, engine)
            routes_out.append(RouteEvaluation(f"{key}@{outcome.route}", outcome.table, outcome.status,
                                              outcome.event_ids, outcome.missing, outcome.rows_in_route,
                                              outcome.sql, outcome.error))
            # A group-by (or counted) field this route cannot read would put every event in one NULL group and
            # fire where the events belong to different users or hosts: the route cannot evaluate the correlation.
            lacking = tuple(name for name in [*group_by, *([value_field] if value_field else [])]
                            if not route.table_field(_field_for(correlation, key, name)))
            if lacking:
                routes_out[-1] = dataclasses.replace(routes_out[-1], status="cannot-evaluate", event_ids=(),
                                                     missing=tuple(dict.fromkeys((*outcome.missing, *lacking))))
                continue
            if not outcome.event_ids:
                continue
            backend = SqlglotBackend(route)
            columns: list[exp.Expr] = [exp.column("AssayEventId", quoted=True), exp.column("Timestamp", quoted=True)]
            columns += [_value_of(backend, correlation, key, g) for g in group_by]
            columns.append(_value_of(backend, correlation, key, value_field) if value_field else exp.Null())
            where: exp.Expr = exp.paren(target.condition.copy(), copy=False)
            row_filter = route_filter(route)
            if row_filter is not None:
                where = exp.and_(row_filter, where, copy=False)
            query = exp.select(*columns).from_(exp.to_table(route.table, quoted=True)).where(where)
            for row in engine.run(query).rows:
                if row[1] is None:
                    continue  # an event without a time cannot be placed in a window
                events.append(_Event(row[1], int(row[0]), key, tuple(row[2:2 + len(group_by)]),
                                     None if row[-1] is None else str(row[-1])))
    return events


def _condition_holds(correlation: SigmaCorrelationRule, measured: float) -> bool:
    condition = correlation.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        raise SigmaError("extended correlation conditions are not supported locally")
    return _OPERATORS[condition.op](measured, condition.count)


def _windows(correlation: SigmaCorrelationRule, events: list[_Event], order: list[str]) -> list[CorrelationHit]:
    span = timedelta(seconds=correlation.timespan.seconds)
    by_group: dict[tuple[str | None, ...], list[_Event]] = defaultdict(list)
    for event in events:
        by_group[event.group].append(event)
    hits: list[CorrelationHit] = []
    group_names = list(correlation.group_by or [])
    for group, group_events in sorted(by_group.items(), key=lambda item: str(item[0])):
        group_events.sort(key=lambda e: (e.timestamp, e.event_id))
        covered_until: datetime | None = None
        for start_index, anchor in enumerate(group_events):
            if covered_until is not None and anchor.timestamp <= covered_until:
                continue
            window = [e for e in group_events[start_index:] if e.timestamp <= anchor.timestamp + span]
            fired, measured, members = _evaluate_window(correlation, window, order)
            if fired:
                hits.append(CorrelationHit(
                    group=tuple(zip(group_names, (None if g is None else str(g) for g in group), strict=True)),
                    start=members[0].timestamp.isoformat(), end=members[-1].timestamp.isoformat(),
                    event_ids=tuple(sorted({e.event_id for e in members})), value=measured,
                    rules=tuple(sorted({e.rule for e in members}))))
                covered_until = members[-1].timestamp
    return hits


def _evaluate_window(correlation: SigmaCorrelationRule, window: list[_Event],
                     order: list[str]) -> tuple[bool, float, list[_Event]]:
    kind = correlation.type
    if kind == SigmaCorrelationType.EVENT_COUNT:
        return _condition_holds(correlation, len(window)), float(len(window)), window
    if kind == SigmaCorrelationType.VALUE_COUNT:
        distinct = {e.value for e in window if e.value is not None}
        return _condition_holds(correlation, len(distinct)), float(len(distinct)), window
    if kind == SigmaCorrelationType.TEMPORAL:
        seen = {e.rule for e in window}
        return set(order) <= seen, float(len(seen)), window
    # temporal_ordered: the window's first event is the first rule, the others follow in order
    if not window or window[0].rule != order[0]:
        return False, 0.0, window
    members = [window[0]]
    position = 1
    for event in window[1:]:
        if position < len(order) and event.rule == order[position]:
            members.append(event)
            position += 1
    return position == len(order), float(position), members


def evaluate_correlation(rule: LoadedRule, engine: DuckDBEngine, route: Route | None = None,
                         keep: Callable[[Route], bool] | None = None) -> SigmaEvaluation:
    """Evaluate a correlation rule whose referenced rules are in the same file (on ``route`` only, if given:
    ``assay sigma eval`` uses the flat route; on the routes ``keep`` accepts, if given: one telemetry's routes, so
    an event and its copy mapped into a Defender table are not counted twice)."""
    correlation = rule.rule
    if not isinstance(correlation, SigmaCorrelationRule):
        raise SigmaError(f"{rule.title!r} is not a correlation rule", span=SourceSpan.of_file(rule.source))
    if correlation.type not in _SUPPORTED:
        raise SigmaError(f"correlation type {correlation.type.name.lower()} is not supported locally",
                         span=SourceSpan.of_file(rule.source),
                         hint="supported: event_count, value_count, temporal, temporal_ordered")
    routes: list[RouteEvaluation] = []
    events = _collect_events(rule, correlation, engine, routes, route, keep)
    order = [_reference_key(r) for r in correlation.rules or []]
    hits = _windows(correlation, events, order)
    return SigmaEvaluation(rule_id=rule.id, title=rule.title, source=rule.source, routes=tuple(routes),
                           correlation_hits=tuple(hits), is_correlation=True)
