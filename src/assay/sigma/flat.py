"""``assay sigma eval``: one rule against flat JSON events (field names as in the rule), event by event.

The events go into an in-memory ``RawEvents`` table and the rule is compiled for the ``flat`` route (no field
mapping, no logsource filter) with the same backend as the table path, so both share one meaning. ``explain``
compiles each selection and each of its items on its own and names the first one that failed.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlglot import exp

from assay.engine import DuckDBEngine
from assay.errors import AssayError, SigmaError, SourceSpan
from assay.ingest.eventdata import element_text
from assay.sigma.compiler import compile_rule
from assay.sigma.loading import LoadedRule, load_rule, load_rule_text
from assay.sigma.lowering import false_when_null

_TIME_KEYS = ("@timestamp", "Timestamp", "TimeCreated", "UtcTime", "TimeGenerated", "timestamp")


@dataclass(frozen=True)
class FlatEventResult:
    """One event's verdict: matched or not, and (with explain) why not."""

    record: int
    matched: bool
    explanation: str | None = None


@dataclass(frozen=True)
class FlatEvaluation:
    """A rule on a list of flat events: per-event verdicts, unreadable records, the SQL condition used."""

    rule_id: str
    title: str
    results: tuple[FlatEventResult, ...]
    bad_records: tuple[str, ...] = ()
    sql: str = ""
    missing: tuple[str, ...] = field(default=())

    @property
    def matched_records(self) -> tuple[int, ...]:
        return tuple(r.record for r in self.results if r.matched)

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "title": self.title,
                "events": [{"record": r.record, "matched": r.matched, "explanation": r.explanation}
                           for r in self.results],
                "matched": len(self.matched_records), "total": len(self.results),
                "bad_records": list(self.bad_records), "missing_fields": list(self.missing)}


def field_text(value: Any) -> str | None:
    """How a JSON value reads as a Sigma field value (text; numbers as written; booleans lower case; an XML
    element as the evtx parser renders it, ``{"#text": …}``, as its text: see :mod:`assay.ingest.eventdata`)."""
    if value is None:
        return None
    is_element, text = element_text(value)
    if is_element:
        return text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def read_jsonl(path: str | Path) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """(line number, event) for each JSON object line; a bad line is reported and the others are kept."""
    events: list[tuple[int, dict[str, Any]]] = []
    bad: list[str] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SigmaError(f"cannot read events: {error}", span=SourceSpan.of_file(path)) from error
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as error:
            bad.append(f"{path}:{number}:{error.colno}: not JSON ({error.msg}); record skipped")
            continue
        if not isinstance(event, dict):
            bad.append(f"{path}:{number}: a JSON object per line is expected, got {type(event).__name__}")
            continue
        events.append((number, event))
    return events, bad


def _timestamp(event: Mapping[str, Any]) -> datetime | None:
    for key in _TIME_KEYS:
        value = event.get(key)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
            except ValueError:
                continue
    return None


def load_flat_events(engine: DuckDBEngine, events: Iterable[tuple[int, Mapping[str, Any]]],
                     source: str = "<events>") -> int:
    """Insert flat events into the engine's RawEvents (AssayEventId = record number); returns the count."""
    rows = []
    for record, event in events:
        keys = [str(k) for k, v in event.items() if v is not None]
        values = [field_text(v) for v in event.values() if v is not None]
        rows.append((record, _timestamp(event), source, record, keys, values))
    if rows:
        engine.connection.executemany(
            'INSERT INTO "RawEvents" ("AssayEventId", "Timestamp", "SourceFile", "SourceRecord", "SourceFormat", '
            '"Fields") VALUES (?, ?, ?, ?, \'flat\', map(?, ?))', rows)
    return len(rows)


def _condition_columns(rule: LoadedRule) -> tuple[exp.Expr, tuple[str, ...]]:
    target = compile_rule(rule, targets=["flat"])[0]
    return target.condition, target.fields


def eval_flat_events(rule_or_path: LoadedRule | str | Path,
                     events: str | Path | Iterable[Mapping[str, Any]], *, explain: bool = False) -> FlatEvaluation:
    """Evaluate one rule on flat events (a JSONL file or dicts): matched or not per event, and why not."""
    rule = rule_or_path if isinstance(rule_or_path, LoadedRule) else load_rule(rule_or_path)
    bad: list[str] = []
    if isinstance(events, str | Path):
        numbered, bad = read_jsonl(events)
        source = str(events)
    else:
        numbered = [(number, dict(event)) for number, event in enumerate(events, start=1)]
        source = "<events>"
    if rule.is_correlation:
        return _eval_flat_correlation(rule, numbered, bad, source)
    condition, fields = _condition_columns(rule)
    probes = _explain_probes(rule) if explain else []
    with DuckDBEngine() as engine:
        load_flat_events(engine, numbered, source)
        columns: list[exp.Expr] = [exp.column("AssayEventId", quoted=True),
                                   false_when_null(condition.copy())]
        columns += [false_when_null(p.condition.copy()) for p in probes]
        query = exp.select(*columns).from_(exp.to_table("RawEvents", quoted=True)).order_by(
            exp.column("AssayEventId", quoted=True))
        result = engine.run(query)
        present = {row[0] for row in engine.connection.execute(
            'SELECT DISTINCT unnest(map_keys("Fields")) FROM "RawEvents"').fetchall()}
    by_record = {record: event for record, event in numbered}
    results = []
    for row in result.rows:
        record, matched = int(row[0]), bool(row[1])
        explanation = None
        if explain:
            explanation = _explain(rule, probes, [bool(v) for v in row[2:]], matched, by_record[record])
        results.append(FlatEventResult(record, matched, explanation))
    missing = tuple(f for f in fields if f not in present)
    return FlatEvaluation(rule_id=rule.id, title=rule.title, results=tuple(results), bad_records=tuple(bad),
                          sql=condition.sql(dialect="duckdb"), missing=missing)


def _eval_flat_correlation(rule: LoadedRule, numbered: list[tuple[int, dict[str, Any]]], bad: list[str],
                           source: str) -> FlatEvaluation:
    """A correlation rule on flat events (times from @timestamp/Timestamp/UtcTime…): an event matches when it is
    part of a firing window."""
    from assay.sigma.correlation import evaluate_correlation
    from assay.sigma.routes import FLAT_ROUTE

    untimed = [record for record, event in numbered if _timestamp(event) is None]
    with DuckDBEngine() as engine:
        load_flat_events(engine, numbered, source)
        outcome = evaluate_correlation(rule, engine, FLAT_ROUTE)
    window_of: dict[int, str] = {}
    for hit in outcome.correlation_hits:
        group = ", ".join(f"{k}={v}" for k, v in hit.group) or "all events"
        for event_id in hit.event_ids:
            window_of.setdefault(event_id, f"window {hit.start} .. {hit.end} ({group}; value {hit.value:g})")
    results = tuple(FlatEventResult(record, record in window_of, window_of.get(record)) for record, _ in numbered)
    notes = [f"{source}:{record}: no timestamp (@timestamp, Timestamp, UtcTime…): not placed in any window"
             for record in untimed]
    return FlatEvaluation(rule_id=rule.id, title=rule.title, results=results, bad_records=tuple(bad + notes))


# -- explain ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Probe:
    selection: str
    item: str | None  # None: the whole selection
    field: str | None
    condition: exp.Expr


def _probe_rule(rule: LoadedRule, detection: Mapping[str, Any]) -> exp.Expr:
    document = yaml.safe_load(rule.text)
    document = copy.deepcopy(document)
    document["detection"] = dict(detection)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    probe = load_rule_text(text, rule.path)
    return compile_rule(probe, targets=["flat"])[0].condition


def _explain_probes(rule: LoadedRule) -> list[_Probe]:
    document = yaml.safe_load(rule.text)
    detection = document.get("detection") or {}
    probes: list[_Probe] = []
    for name, body in detection.items():
        if name == "condition" or name == "timeframe":
            continue
        try:
            probes.append(_Probe(name, None, None, _probe_rule(rule, {name: body, "condition": name})))
            items: list[tuple[str, Any]] = []
            if isinstance(body, dict):
                items = list(body.items())
            elif isinstance(body, list) and all(isinstance(b, dict) for b in body):
                items = [(k, v) for b in body for k, v in b.items()]
            for key, value in items:
                probes.append(_Probe(name, f"{key}: {json.dumps(value, ensure_ascii=False)}", key.split("|")[0],
                                     _probe_rule(rule, {"probe": {key: value}, "condition": "probe"})))
        except AssayError:
            continue  # a selection that does not compile alone is still explained at selection level
    return probes


def _selection_order(rule: LoadedRule, names: list[str]) -> list[tuple[str, bool]]:
    """Selections in the order the condition names them, with whether they appear under ``not``."""
    document = yaml.safe_load(rule.text)
    condition = document["detection"].get("condition", "")
    condition = " ".join(condition) if isinstance(condition, list) else str(condition)
    ordered: list[tuple[str, bool]] = []
    tokens = re.findall(r"\(|\)|[^\s()]+", condition)
    negated = False
    for token in tokens:
        lowered = token.lower()
        if lowered == "not":
            negated = True
            continue
        if lowered in ("and", "or", "(", ")", "of", "1", "all", "them"):
            if lowered not in ("of", "1", "all"):
                negated = False if lowered in ("and", "or") else negated
            if lowered == "them":
                ordered += [(n, negated) for n in names if (n, negated) not in ordered]
            continue
        for name in names:
            if fnmatch.fnmatchcase(name, token) and (name, negated) not in ordered:
                ordered.append((name, negated))
        negated = False
    return ordered


def _explain(rule: LoadedRule, probes: list[_Probe], values: list[bool], matched: bool,
             event: Mapping[str, Any]) -> str:
    selections = {p.selection: v for p, v in zip(probes, values, strict=True) if p.item is None}
    if matched:
        true_ones = [name for name, value in selections.items() if value]
        return "matched (true: " + ", ".join(true_ones) + ")" if true_ones else "matched"
    for name, negated in _selection_order(rule, list(selections)):
        value = selections.get(name)
        if value is None:
            continue
        if negated and value:
            return f"'{name}' matched and the condition excludes it (not {name})"
        if not negated and not value:
            for probe, item_value in zip(probes, values, strict=True):
                if probe.selection == name and probe.item is not None and not item_value:
                    actual = event.get(probe.field) if probe.field else None
                    shown = "absent" if actual is None else json.dumps(actual, ensure_ascii=False)
                    return f"'{name}' failed at {probe.item} ({probe.field} = {shown})"
            return f"'{name}' did not match"
    return "condition false: " + ", ".join(f"{n}={'true' if v else 'false'}" for n, v in selections.items())
