"""``hunt()``: the whole rule set over a case's logs, into a timeline and a summary.

Three ways to evaluate, one result shape (:class:`HuntResult`), so they can be compared hit for hit:

- ``fast`` (default): stream raw records through the prefilter, exact SQL on candidates only (``fastpath``);
- ``reference``: ingest everything into DuckDB, one query per rule target (slow; the correctness baseline);
- ``spark``: ingest to Parquet, run the same compiled SQL on Apache Spark (``assay.hunt.spark``).

Evtx and event JSON are hunted in their raw form (RawEvents routes: Sysmon, Security, PowerShell… channels);
Defender XDR exports on their typed tables (Device*Events routes). Every path feeds a :class:`HitStore` (hits
on disk, deduplicated, ordered and summarized in SQL), which the result owns until it is closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.engine import DuckDBEngine
from assay.errors import UsageError
from assay.hunt.evaluate import TargetRef, enumerate_targets, evaluate_all, hits_for
from assay.hunt.rules import RuleProblem, RuleSet, load_hunt_rules
from assay.hunt.store import HitStore
from assay.hunt.timeline import Hit, Summary
from assay.ingest.readers import BadRecord
from assay.ingest.sources import Skipped, Source, discover
from assay.schema import RAW_EVENTS

MODES = ("fast", "reference", "spark")
#: Bad records listed one by one in a result (all are counted).
MAX_LISTED_BAD_RECORDS = 1000


@dataclass
class HuntResult:
    """The timeline (in ``store``, sorted hits), its summary, the rules that could not run, and what was read.

    The result owns its :class:`HitStore` (a DuckDB file in a temporary folder): use it as a context manager
    or call :meth:`close` when done. Stream the timeline with ``result.store.iter_hits()`` / ``write_csv`` /
    ``write_jsonl``; :attr:`hits` materializes every hit as a list, for small results only.
    """

    summary: Summary
    problems: list[RuleProblem]
    rules: int
    targets: int
    events: int
    candidates: int = 0
    pairs: int = 0
    bad_records: int = 0
    bad_record_list: list[BadRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    mode: str = "fast"
    seconds: float = 0.0
    rule_seconds: float = 0.0
    rules_compiled: int = 0
    notes: list[str] = field(default_factory=list)
    #: rules none of whose routes had an event in these logs (evaluated, but on nothing)
    no_events: list[RuleProblem] = field(default_factory=list)
    #: routes that cannot provide a field the rule reads (the rule runs; those predicates are false)
    missing_fields: list[RuleProblem] = field(default_factory=list)
    store: HitStore = field(default_factory=HitStore, repr=False)
    _hits: list[Hit] | None = field(default=None, repr=False)

    @property
    def hits(self) -> list[Hit]:
        """Every hit of the timeline, in order, as one list (small results; large ones: stream ``store``)."""
        if self._hits is None:
            self._hits = list(self.store.iter_hits())
        return self._hits

    @property
    def hit_count(self) -> int:
        """Hits in the timeline (one per rule and event), counted in the store."""
        return self.summary.hits

    def close(self) -> None:
        """Delete the hit store (its folder and database). ``hits`` already materialized stay usable."""
        self.store.close()

    def __enter__(self) -> HuntResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def header_dict(self) -> dict[str, Any]:
        """Everything :meth:`as_dict` gives except the timeline (which comes last there)."""
        return {
            "mode": self.mode, "events": self.events, "rules": self.rules, "targets": self.targets,
            "hits": self.hit_count, "candidates": self.candidates, "candidate_pairs": self.pairs,
            "seconds": round(self.seconds, 3), "rule_seconds": round(self.rule_seconds, 3),
            "rules_compiled": self.rules_compiled,
            "summary": self.summary.as_dict(),
            "not_evaluated": [p.as_dict() for p in self.problems],
            "no_events": [p.as_dict() for p in self.no_events],
            "missing_fields": [p.as_dict() for p in self.missing_fields],
            "bad_records": self.bad_records, "bad_record_list": [vars(b) for b in self.bad_record_list],
            "skipped": [{"source": s.label, "reason": s.reason, "damaged": s.is_damage} for s in self.skipped],
            "notes": self.notes,
        }

    def as_dict(self) -> dict[str, Any]:
        """The whole result as one document, the timeline last (materialized: small results)."""
        return {**self.header_dict(), "timeline": [h.as_dict() for h in self.store.iter_hits()]}


#: progress(stage, done, total): stage is "rules" (files compiled) or "events" (work units done; done is units)
HuntProgress = Callable[[str, int, int], None]


def _raw_and_typed(refs: Sequence[TargetRef]) -> tuple[list[TargetRef], list[TargetRef]]:
    raw = [r for r in refs if r.target.table == RAW_EVENTS]
    typed = [r for r in refs if r.target.table != RAW_EVENTS]
    return raw, typed


def hunt(logs: Sequence[str | Path], rules: RuleSet | Iterable[str | Path], *, mode: str = "fast",
         workers: int | None = None, spark_master: str | None = None, cache_dir: Path | bool | None = True,
         progress: HuntProgress | None = None, work_dir: Path | None = None,
         store_dir: Path | None = None) -> HuntResult:
    """Hunt ``logs`` (files, folders, globs, zips) with ``rules`` (a loaded :class:`RuleSet` or rule paths).

    Hits go to a :class:`HitStore` in a new temporary folder (under ``store_dir`` when given); close the result
    (or use it as a context manager) to delete it. ``work_dir`` is where Spark mode writes its Parquet.
    """
    if mode not in MODES:
        raise UsageError(f"unknown hunt mode {mode!r}", hint="use one of: " + ", ".join(MODES))
    started = time.perf_counter()
    if isinstance(rules, RuleSet):
        rule_set = rules
    else:
        rule_set = load_hunt_rules(rules, cache_dir=cache_dir, processes=workers,
                                   progress=(lambda done, total: progress("rules", done, total)) if progress else None)
    refs = enumerate_targets(rule_set.rules)
    if not logs:
        raise UsageError("no logs to hunt", hint="name at least one file, folder, glob or zip")
    sources, skipped = discover(list(logs))
    result = HuntResult(summary=Summary(), problems=list(rule_set.problems), rules=len(rule_set.rules),
                        targets=len(refs), events=0, skipped=skipped, mode=mode, rule_seconds=rule_set.seconds,
                        rules_compiled=rule_set.compiled, store=HitStore(store_dir))
    try:
        for item in skipped:
            if item.is_damage:
                _add_bad(result, [BadRecord(item.label, "file", item.reason)])
        if mode == "fast":
            _hunt_fast(result, refs, sources, workers, progress)
        elif mode == "reference":
            result.store.add_hits(_reference_hits(result, refs, sources, progress))
        else:
            from assay.hunt.spark import hunt_on_spark

            hunt_on_spark(result, refs, sources, skipped, master=spark_master, work_dir=work_dir,
                          progress=progress)
        result.summary = result.store.summary(result.events)
    except BaseException:
        result.close()
        raise
    result.seconds = time.perf_counter() - started
    return result


def _add_bad(result: HuntResult, bad: Sequence[BadRecord], lost: int = 0) -> None:
    result.bad_records += len(bad) + lost
    room = MAX_LISTED_BAD_RECORDS - len(result.bad_record_list)
    if room > 0:
        result.bad_record_list.extend(bad[:room])


def _hunt_fast(result: HuntResult, refs: list[TargetRef], sources: list[Source], workers: int | None,
               progress: HuntProgress | None) -> None:
    from assay.hunt.fastpath import build_plan, run_fast_path

    raw_refs, typed_refs = _raw_and_typed(refs)
    event_sources = [s for s in sources if not s.defender_table]
    defender_sources = [s for s in sources if s.defender_table]
    store = result.store
    reached: set[int] = set()
    if event_sources:
        plan = build_plan(raw_refs)
        callback = (lambda records, done, total: progress("events", done, total)) if progress else None
        for unit in run_fast_path(plan, event_sources, workers=workers, progress=callback):
            # Workers hand back hit rows (Arrow, ``target`` = index into the plan's refs) or Hit objects.
            hit_rows = getattr(unit, "hit_rows", None)
            if hit_rows is not None:
                store.add_rows(hit_rows, plan.refs)
            store.add_hits(unit.hits)
            result.events += unit.records
            result.candidates += unit.candidates
            result.pairs += unit.pairs
            reached |= {raw_refs[i].number for i in unit.reached}
            _add_bad(result, unit.bad, unit.lost)
    if defender_sources:
        reached |= {ref.number for ref in typed_refs}
    _note_coverage(result, refs, reached)
    if defender_sources:
        # Defender exports are modest tables: ingest them and run their typed routes rule by rule.
        store.add_hits(_reference_hits(result, typed_refs, defender_sources, progress))


def _note_coverage(result: HuntResult, refs: Sequence[TargetRef], reached: set[int]) -> None:
    """Rules that had no event of their logsource, and routes that lack a field a rule reads."""
    by_rule: dict[str, list[TargetRef]] = {}
    for ref in refs:
        by_rule.setdefault(ref.rule.source, []).append(ref)
    for source, rule_refs in by_rule.items():
        if not any(ref.number in reached for ref in rule_refs):
            routes = ", ".join(ref.target.route for ref in rule_refs)
            result.no_events.append(RuleProblem(source=source, title=rule_refs[0].rule.title, kind="no-events",
                                                reason=f"no event of its logsource in these logs ({routes})"))
        for ref in rule_refs:
            if ref.number in reached and ref.target.unavailable:
                result.missing_fields.append(RuleProblem(
                    source=source, title=ref.rule.title, kind="missing-fields",
                    reason=f"route {ref.target.route} has no {', '.join(ref.target.unavailable)} "
                           "(predicates on it are false there)"))


def _reference_hits(result: HuntResult, refs: list[TargetRef], sources: list[Source],
                    progress: HuntProgress | None) -> list[Hit]:
    from assay.ingest.pipeline import ingest_sources

    with DuckDBEngine(None) as engine:
        summary = ingest_sources(sources, engine)
        result.events += summary.records_read
        _add_bad(result, summary.bad_record_list, summary.bad_records - len(summary.bad_record_list))
        matches = evaluate_all(engine, refs)
        if progress is not None:
            progress("events", 1, 1)
        return hits_for(engine, matches, refs)

