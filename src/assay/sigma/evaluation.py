"""Run a Sigma rule on a database: matches per route, and honest "cannot evaluate" when the data lacks a field.

A route whose rows never carry a field the rule reads cannot prove a zero: it is reported as
``cannot-evaluate`` with the missing fields, never as a silent "no match". Matches found despite a missing
field are real matches (the missing field only ever makes its own predicate false) and keep the missing list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlglot import exp

from assay.engine import DuckDBEngine
from assay.errors import AssayError, SigmaError
from assay.sigma.backend import field_value
from assay.sigma.compiler import CompiledTarget, as_loaded, compile_rule, route_filter
from assay.sigma.loading import LoadedRule

RouteStatus = Literal["matched", "no-match", "cannot-evaluate", "no-data", "error"]


@dataclass(frozen=True)
class RouteEvaluation:
    """The outcome of a rule on one route."""

    route: str
    table: str
    status: RouteStatus
    event_ids: tuple[int, ...] = ()
    missing: tuple[str, ...] = ()
    rows_in_route: int = 0
    sql: str = ""
    error: str | None = None

    @property
    def message(self) -> str:
        if self.status == "cannot-evaluate":
            return f"cannot evaluate on this data (missing: {', '.join(self.missing)})"
        if self.status == "no-data":
            return "no events on this route"
        if self.status == "error":
            return f"error: {self.error}"
        text = f"{len(self.event_ids)} match(es)" if self.status == "matched" else "no match"
        if self.missing:
            text += f" (fields absent from this data: {', '.join(self.missing)})"
        return text


@dataclass(frozen=True)
class SigmaEvaluation:
    """A rule's outcome on a database: per route, plus correlation windows for correlation rules."""

    rule_id: str
    title: str
    source: str
    routes: tuple[RouteEvaluation, ...] = ()
    #: correlation rules only: the windows that fired, each with the events that make it up
    correlation_hits: tuple[CorrelationHit, ...] = ()
    is_correlation: bool = False

    @property
    def event_ids(self) -> tuple[int, ...]:
        """Every matching event across routes (for correlation rules: the events of every firing window)."""
        ids: set[int] = set()
        for route in self.routes:
            if not self.is_correlation:
                ids.update(route.event_ids)
        for hit in self.correlation_hits:
            ids.update(hit.event_ids)
        return tuple(sorted(ids))

    @property
    def matched(self) -> bool:
        if self.is_correlation:
            return bool(self.correlation_hits)
        return any(r.status == "matched" for r in self.routes)

    @property
    def cannot_evaluate(self) -> tuple[RouteEvaluation, ...]:
        return tuple(r for r in self.routes if r.status == "cannot-evaluate")

    def to_dict(self) -> dict[str, object]:
        return {
            "rule_id": self.rule_id, "title": self.title, "source": self.source, "matched": self.matched,
            "event_ids": list(self.event_ids),
            "routes": [{"route": r.route, "table": r.table, "status": r.status, "event_ids": list(r.event_ids),
                        "missing": list(r.missing), "rows_in_route": r.rows_in_route, "message": r.message}
                       for r in self.routes],
            "correlation_hits": [{"group": dict(h.group), "start": h.start, "end": h.end,
                                  "event_ids": list(h.event_ids), "value": h.value}
                                 for h in self.correlation_hits],
        }


@dataclass(frozen=True)
class CorrelationHit:
    """One firing window of a correlation rule."""

    group: tuple[tuple[str, str | None], ...]
    start: str
    end: str
    event_ids: tuple[int, ...]
    value: float = 0
    rules: tuple[str, ...] = field(default=())


def _field_presence_expressions(target: CompiledTarget) -> list[tuple[str, exp.Expr]]:
    """(field, expression counting rows that carry it) for every field the target reads."""
    counts: list[tuple[str, exp.Expr]] = []
    for name in target.fields:
        value = field_value(target.route_spec, name)
        if value is not None:
            counts.append((name, exp.Count(this=value)))
    return counts


def evaluate_target(target: CompiledTarget, engine: DuckDBEngine) -> RouteEvaluation:
    """Run one compiled route and check which of its fields the routed rows carry, in a single scan:
    ``SELECT count(*), count(field)…, list(AssayEventId) FILTER (WHERE condition) FROM table WHERE route``."""
    presence = _field_presence_expressions(target)
    hits = exp.Filter(this=exp.func("list", exp.column("AssayEventId", quoted=True)),
                      expression=exp.Where(this=target.condition.copy()))
    scan = exp.select(exp.Count(this=exp.Star()), *(e for _, e in presence), hits).from_(
        exp.to_table(target.table, quoted=True), copy=False)
    row_filter = route_filter(target.route_spec)
    if row_filter is not None:
        scan = scan.where(row_filter, copy=False)
    sql = scan.sql(dialect=engine.dialect, copy=False)
    row = engine.run(sql).rows[0]
    rows_in_route = int(row[0])
    missing = list(target.unavailable)
    for (name, _), count in zip(presence, row[1:-1], strict=True):
        if int(count) == 0 and name not in missing:
            missing.append(name)
    if rows_in_route == 0:
        return RouteEvaluation(target.route, target.table, "no-data", missing=tuple(missing), sql=sql)
    event_ids = tuple(sorted(int(event_id) for event_id in row[-1] or ()))
    if event_ids:
        status: RouteStatus = "matched"
    elif missing:
        status = "cannot-evaluate"
    else:
        status = "no-match"
    return RouteEvaluation(target.route, target.table, status, event_ids, tuple(missing), rows_in_route, sql)


def evaluate(rule_or_path: LoadedRule | str | Path, engine: DuckDBEngine) -> SigmaEvaluation:
    """Evaluate a rule (or correlation rule) on every route of its logsource in the engine's database."""
    rule = as_loaded(rule_or_path)
    if rule.is_correlation:
        from assay.sigma.correlation import evaluate_correlation

        return evaluate_correlation(rule, engine)
    routes: list[RouteEvaluation] = []
    for target in compile_rule(rule):
        try:
            routes.append(evaluate_target(target, engine))
        except AssayError as error:
            routes.append(RouteEvaluation(target.route, target.table, "error", error=str(error)))
    return SigmaEvaluation(rule_id=rule.id, title=rule.title, source=rule.source, routes=tuple(routes))


def evaluate_many(rules: list[LoadedRule], engine: DuckDBEngine) -> list[SigmaEvaluation | SigmaError]:
    """Evaluate several rules; a rule that cannot compile becomes its error and the others keep running."""
    outcomes: list[SigmaEvaluation | SigmaError] = []
    for rule in rules:
        try:
            outcomes.append(evaluate(rule, engine))
        except SigmaError as error:
            outcomes.append(error)
    return outcomes
