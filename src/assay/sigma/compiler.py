"""Compile a Sigma rule to sqlglot: one ``CompiledTarget`` (condition + SELECT) per route its logsource reaches.

Each route gets a freshly parsed rule (pipelines mutate rules), our ``SqlglotBackend`` and the route's
field-mapping pipeline; the query selects ``AssayEventId`` and ``Timestamp`` of the matching rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sigma.exceptions import SigmaError as PySigmaError
from sigma.rule import SigmaRule
from sqlglot import exp
from sqlglot.errors import SqlglotError

from assay.errors import SigmaError
from assay.sigma.backend import SqlglotBackend
from assay.sigma.loading import LoadedRule, load_rule
from assay.sigma.routes import FLAT_ROUTE, Route, routes_for_rule_logsource


@dataclass(frozen=True)
class CompiledTarget:
    """A rule compiled for one route: the boolean ``condition`` over ``table`` and the ``query`` selecting hits."""

    route: str
    table: str
    condition: exp.Expr
    query: exp.Select
    #: field names the condition reads on this route's table (after field mapping)
    fields: tuple[str, ...]
    #: Sigma fields the route has no place for (always missing there)
    unavailable: tuple[str, ...]
    route_spec: Route

    def sql(self, dialect: str = "duckdb") -> str:
        # copy=False: generating from a copy costs more than the generation itself on rules with 1000s of values;
        # DuckDB/Spark generation does not rewrite this plain SELECT … WHERE … ORDER BY.
        return self.query.sql(dialect=dialect, copy=False)


def route_filter(route: Route) -> exp.Expr | None:
    """Which rows of the route's table belong to it (channel and event id), or None for all rows."""
    predicates: list[exp.Expr] = []
    if route.channels:
        predicates.append(exp.In(this=exp.Lower(this=exp.column("Channel", quoted=True)),
                                 expressions=[exp.Literal.string(c.lower()) for c in route.channels]))
    if route.event_ids:
        predicates.append(exp.In(this=exp.column("EventID", quoted=True),
                                 expressions=[exp.Literal.number(i) for i in route.event_ids]))
    if route.event_logs_only:
        # Defender XDR exports also have RawEvents rows (their table as Channel): not an event log's records
        predicates.append(exp.not_(exp.func("coalesce", exp.Like(this=exp.column("SourceFormat", quoted=True),
                                                                  expression=exp.Literal.string("defender-%")),
                                            exp.false())))
    return exp.and_(*predicates, copy=False) if predicates else None


def as_loaded(rule: LoadedRule | str | Path) -> LoadedRule:
    return rule if isinstance(rule, LoadedRule) else load_rule(rule)


def compile_condition(rule: LoadedRule, route: Route, select: str | None = None) -> CompiledTarget:
    """The rule (or the rule ``select`` of its file) compiled for one route (``SigmaError`` names the problem)."""
    sigma_rule = rule.fresh_rule(select)
    # pySigma returns no query for a rule a correlation references (unless it says generate: true); we need it.
    sigma_rule._output = True
    backend = SqlglotBackend(route)
    try:
        conditions = backend.convert_rule(sigma_rule)
    except SigmaError as error:  # raised by our lowering: add the rule and file it lacks
        if error.span is not None:
            raise
        raise SigmaError(f"rule {sigma_rule.title!r}: {error.message}", span=rule.span("detection", key=True),
                         hint=error.hint) from error
    except PySigmaError as error:
        raise SigmaError(f"rule {sigma_rule.title!r} cannot run locally on route {route.name}: {error}",
                         span=rule.span("detection", key=True)) from error
    except (TypeError, ValueError, NotImplementedError, SqlglotError) as error:
        raise SigmaError(f"rule {sigma_rule.title!r}: unsupported construct on route {route.name}: {error}",
                         span=rule.span("detection", key=True)) from error
    if not conditions:
        raise SigmaError(f"rule {rule.title!r} has no condition", span=rule.span("detection", "condition"))
    condition: exp.Expr = (conditions[0] if len(conditions) == 1
                                 else exp.or_(*(exp.paren(c, copy=False) for c in conditions), copy=False))
    where = condition
    row_filter = route_filter(route)
    if row_filter is not None:
        where = exp.and_(row_filter, exp.paren(condition.copy(), copy=False), copy=False)
    # copy=False: the builder would otherwise deep-copy the whole condition tree at every step
    query = (exp.select(exp.column("AssayEventId", quoted=True), exp.column("Timestamp", quoted=True))
             .from_(exp.to_table(route.table, quoted=True), copy=False).where(where, copy=False)
             .order_by(exp.column("AssayEventId", quoted=True), copy=False))
    return CompiledTarget(route=route.name, table=route.table, condition=condition, query=query,
                          fields=tuple(backend.fields), unavailable=tuple(backend.unavailable), route_spec=route)


def routes_for_rule(rule: LoadedRule) -> list[Route]:
    if not isinstance(rule.rule, SigmaRule):
        return []
    return routes_for_rule_logsource(rule.rule)


def compile_rule(rule: LoadedRule | str | Path, *, targets: Sequence[str] | None = None) -> list[CompiledTarget]:
    """The rule compiled for every route of its logsource (or only the named ``targets``).

    Raises ``SigmaError`` when the rule is a correlation rule (see ``assay.sigma.correlation``), when no route
    fits its logsource, or when a construct cannot run locally.
    """
    loaded = as_loaded(rule)
    if loaded.is_correlation:
        raise SigmaError(f"{loaded.title!r} is a correlation rule: evaluate it with assay.sigma.evaluation",
                         span=loaded.span())
    routes = [FLAT_ROUTE] if targets is not None and list(targets) == ["flat"] else routes_for_rule(loaded)
    if targets is not None and list(targets) != ["flat"]:
        unknown = [t for t in targets if t not in {r.name for r in routes}]
        if unknown:
            raise SigmaError(f"rule {loaded.title!r} has no route {', '.join(unknown)}",
                             span=loaded.span(),
                             hint="its routes: " + (", ".join(r.name for r in routes) or "none"))
        routes = [r for r in routes if r.name in targets]
    if not routes:
        logsource = loaded.rule.logsource if isinstance(loaded.rule, SigmaRule) else None
        raise SigmaError(f"rule {loaded.title!r}: no table holds logsource {_describe(logsource)}",
                         span=loaded.span("logsource", key=True),
                         hint="Assay routes Windows logsources (Sysmon, Security, PowerShell, Defender tables)")
    return [compile_condition(loaded, route) for route in routes]


def _describe(logsource: object) -> str:
    if logsource is None:
        return "(none)"
    parts = [f"{key}={getattr(logsource, key)}" for key in ("product", "category", "service")
             if getattr(logsource, key, None)]
    return ", ".join(parts) or "(empty)"
