"""The fast path: stream records, prefilter them against all rules at once, check candidates exactly.

Work is split into units of sources (files, zip members) spread over worker processes (one per core). Each
worker streams its units' records from the ingestion readers.

- EVTX records are evaluated in batches across files by :mod:`assay.hunt.columnar`: DuckDB extracts and groups
  the values each route's rules read; per distinct tuple the :class:`~assay.hunt.prefilter.FieldPrefilter` names
  the few targets that could match and those are checked with the rules' exact logic as Python
  (:mod:`assay.hunt.pyeval`). Hits come back as Arrow hit rows. A batch DuckDB cannot parse falls back to rows
  built in Python record by record (:mod:`assay.hunt.events`).
- JSON sources are prefiltered on their raw text (:class:`~assay.hunt.prefilter.TextPrefilter`); candidate
  records are loaded into the worker's own DuckDB by the ingestion writer and checked with the targets' SQL.
- Targets whose SQL has no Python form are checked on DuckDB the same way.

Workers return hits, never whole events; memory stays bounded by one batch and one gathered chunk per worker.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from assay.engine import DuckDBEngine
from assay.engine.heap import keep_freed_heap
from assay.hunt.columnar import ColumnarEvaluator
from assay.hunt.evaluate import TargetRef, evaluate_pairs, hits_for
from assay.hunt.events import EventRow, evtx_row
from assay.hunt.prefilter import FieldPrefilter, PrefilterTarget, TextPrefilter
from assay.hunt.pyeval import Predicate, compile_predicate
from assay.hunt.timeline import Hit, key_fields
from assay.ingest.readers import EVTX_CHUNK_SIZE, BadRecord, Batch, evtx_chunk_count, read_source
from assay.ingest.sources import EVTX, FileOpener, Source
from assay.ingest.writer import RawEventWriter
from assay.schema import RAW_EVENTS

#: Candidate records gathered before one load + evaluation round (bounds a worker's memory).
CANDIDATE_CHUNK = 20_000
#: Bytes of input per work unit (EVTX files hold ~4.6 KB per record with their slack: ~40k records): small enough
#: to balance two workers, large enough that a batch's queries (planned per batch, ~0.1 s) are amortised.
UNIT_BYTES = 192 * 1024 * 1024
#: Per-worker DuckDB memory cap: candidates of one chunk are all it ever holds.
WORKER_MEMORY_LIMIT = "256MB"
#: A worker collects all generations every this many units (the young ones after every unit).
FULL_COLLECTION_EVERY = 8


@dataclass
class UnitResult:
    """What one work unit gave: hits, counts, and bad records (as ingestion reports them)."""

    hits: list[Hit] = field(default_factory=list)
    records: int = 0
    candidates: int = 0
    pairs: int = 0
    bad: list[BadRecord] = field(default_factory=list)
    lost: int = 0
    #: targets whose route (channel, event id) some event of the unit's worker had
    reached: set[int] = field(default_factory=set)
    #: hits of the columnar path, as hit rows (:data:`assay.hunt.hitrows.HIT_ROW_SCHEMA`; ``target`` numbers the
    #: plan's refs); None when there are none
    hit_rows: pa.Table | None = None


class FastPathPlan:
    """Everything a worker needs, built once in the parent (inherited by forked workers)."""

    def __init__(self, refs: Sequence[TargetRef]) -> None:
        self.refs = refs  # RawEvents targets only, numbered 0…n-1
        self.targets = [PrefilterTarget(r.target.channels, r.target.event_ids, r.target.formula) for r in refs]
        self.field_index = FieldPrefilter(self.targets)
        # Compiled on first use: most rules never see a candidate in a given case.
        self._predicates: list[Predicate | None] = [None] * len(refs)
        self._text_index: TextPrefilter | None = None

    def predicate(self, number: int) -> Predicate | None:
        """The target's Python predicate, or None when it must be checked on DuckDB."""
        predicate = self._predicates[number]
        if predicate is None:
            source = self.refs[number].target.python
            if source is None:
                return None
            predicate = compile_predicate(source)
            self._predicates[number] = predicate
        return predicate

    @property
    def text_index(self) -> TextPrefilter:
        """The raw-text prefilter, built on first use (only JSON sources need it)."""
        if self._text_index is None:
            self._text_index = TextPrefilter(self.targets)
        return self._text_index

    def reached(self) -> set[int]:
        """Targets whose route some event seen so far (in this process) belonged to."""
        found: set[int] = set()
        for route in self.field_index.routes_seen():
            found |= route
        if self._text_index is not None:
            for admitted, _untriggered in self._text_index.routing.cache.values():
                found |= admitted
        return found

    @property
    def python_targets(self) -> int:
        return sum(1 for r in self.refs if r.target.python is not None)


def build_plan(refs: Sequence[TargetRef]) -> FastPathPlan:
    return FastPathPlan([TargetRef(i, ref.rule, ref.target) for i, ref in enumerate(refs)])


def hit_from_row(ref: TargetRef, row: EventRow, source_file: str, source_record: int) -> Hit:
    """A hit from an event built in Python (same values as :func:`assay.hunt.evaluate.make_hit` on DuckDB): the
    record is the event's EventRecordID when it has one, else ``source_record`` (its position)."""
    rule, target = ref.rule, ref.target
    return Hit(timestamp=row.timestamp, host=row.computer, rule_title=rule.title, rule_id=rule.id,
               level=rule.level, techniques=rule.techniques, channel=row.channel, event_id=row.event_id,
               fields=tuple(key_fields(row.fields, target.fields).items()), source_file=source_file,
               source_record=row.record_id if row.record_id is not None else source_record, route=target.route)


def _json_object_problem(text: str) -> str | None:
    """Why a JSON-lines record would be rejected by the ingestion writer, or None when it is a JSON object."""
    try:
        value = json.loads(text)
    except ValueError:
        return "JSON does not parse"
    return None if isinstance(value, dict) else "not a JSON object"


class _Worker:
    """A worker's state: the plan and its own DuckDB (created after fork on first use, never shared)."""

    def __init__(self, plan: FastPathPlan) -> None:
        self.plan = plan
        self._engine: DuckDBEngine | None = None
        self.columnar = ColumnarEvaluator(plan)
        self._hit_tables: list[pa.Table] = []
        self.units = 0  # units run by this worker

    @property
    def engine(self) -> DuckDBEngine:
        if self._engine is None:
            self._engine = DuckDBEngine(None, threads=1)
            self._engine.connection.execute(f"SET memory_limit = '{WORKER_MEMORY_LIMIT}'")
            self._engine.connection.execute("SET preserve_insertion_order = false")
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def run_unit(self, sources: Sequence[Source], batch_rows: int) -> UnitResult:
        result = UnitResult()
        gathered: dict[tuple[str, str | None, bool], list[Batch]] = {}
        gathered_targets: dict[tuple[str, str | None, bool], list[list[int]]] = {}
        gathered_rows = 0
        # EVTX batches of several (often small) files are evaluated together: DuckDB's cost is per query.
        pending: list[Batch] = []
        pending_rows = 0

        def gather(chosen: Batch, chosen_targets: list[list[int]]) -> None:
            nonlocal gathered_rows
            if chosen.texts:
                source = chosen.source
                kind = (source.format, source.defender_table, source.json_array)
                gathered.setdefault(kind, []).append(chosen)
                gathered_targets.setdefault(kind, []).extend(chosen_targets)
                gathered_rows += len(chosen.texts)
            if gathered_rows >= CANDIDATE_CHUNK:
                self._flush(gathered, gathered_targets, result)
                gathered_rows = 0

        for source in sources:
            if source.defender_table:
                continue  # Defender exports run on their typed tables (see assay.hunt.run)
            for batch in read_source(source, batch_rows):
                result.bad.extend(batch.bad)
                result.lost += batch.lost_records
                result.records += len(batch.texts)
                if source.format == EVTX:
                    if batch.texts:
                        pending.append(batch)
                        pending_rows += len(batch.texts)
                    if pending_rows >= batch_rows:
                        for chosen, chosen_targets in self._evtx_batches(pending, result):
                            gather(chosen, chosen_targets)
                        pending, pending_rows = [], 0
                else:
                    gather(*self._text_batch(source, batch, result))
        if pending:
            for chosen, chosen_targets in self._evtx_batches(pending, result):
                gather(chosen, chosen_targets)
        self._flush(gathered, gathered_targets, result)
        result.reached = self.plan.reached()
        if self._hit_tables:
            result.hit_rows = pa.concat_tables(self._hit_tables)
            self._hit_tables = []
        return result

    def _evtx_batches(self, batches: list[Batch], result: UnitResult) -> list[tuple[Batch, list[list[int]]]]:
        """Evaluate evtx batches together on the columnar path; returns, per batch, what must go to DuckDB."""
        import duckdb

        texts = [t for b in batches for t in b.texts]
        records = [r for b in batches for r in b.records]
        files = [i for i, b in enumerate(batches) for _ in range(len(b.texts))]
        labels = [b.source.label for b in batches]
        try:
            outcome = self.columnar.evaluate(self.engine.connection, texts, records, files, labels)
        except duckdb.Error:
            # text DuckDB's JSON reader refuses (the Rust parser never wrote such): record by record instead
            return [self._evtx_batch_rows(b.source, b, result) for b in batches]
        result.candidates += outcome.candidates
        result.pairs += outcome.pairs
        if outcome.hit_rows.num_rows:
            self._hit_tables.append(outcome.hit_rows)
        deferred: list[tuple[Batch, list[list[int]]]] = [(Batch(b.source), []) for b in batches]
        for position, numbers in outcome.deferred:
            chosen, chosen_targets = deferred[files[position]]
            chosen.records.append(records[position])
            chosen.texts.append(texts[position])
            chosen_targets.append(list(numbers))
        return [item for item in deferred if item[0].texts]

    def _evtx_batch_rows(self, source: Source, batch: Batch, result: UnitResult) -> tuple[Batch, list[list[int]]]:
        """Prefilter and check one batch of evtx records in Python, record by record (the fallback)."""
        plan = self.plan
        candidates = plan.field_index.candidates
        predicate_of = plan.predicate
        refs = plan.refs
        label = source.label
        deferred = Batch(source)
        deferred_targets: list[list[int]] = []
        for record, text in zip(batch.records, batch.texts, strict=True):
            row = evtx_row(text)
            if row is None:
                continue  # not the evtx shape: the reader validated the chunk, DuckDB would skip it too
            fields = row.fields if row.fields is not None else {}
            event_id = row.event_id
            columns = {"EventID": str(event_id) if event_id is not None else None, "Channel": row.channel,
                       "Provider": row.provider, "Computer": row.computer}
            found = candidates(fields, columns, row.channel, event_id)
            if not found:
                continue
            result.candidates += 1
            result.pairs += len(found)
            on_duckdb = []
            for number in found:
                predicate = predicate_of(number)
                if predicate is None:
                    on_duckdb.append(number)
                elif predicate(fields, event_id, row.channel, row.provider, row.computer):
                    result.hits.append(hit_from_row(refs[number], row, label, record))
            if on_duckdb:
                deferred.records.append(record)
                deferred.texts.append(text)
                deferred_targets.append(on_duckdb)
        return deferred, deferred_targets

    def _text_batch(self, source: Source, batch: Batch, result: UnitResult) -> tuple[Batch, list[list[int]]]:
        """Prefilter a batch of JSON records on their raw text; candidates go to DuckDB."""
        trusted = False
        # JSON lines are checked by DuckDB only when loaded: check the records the prefilter drops here,
        # so a damaged line is reported as ingestion reports it.
        check_json = not source.json_array
        candidates = self.plan.text_index.candidates
        chosen = Batch(source)
        chosen_targets: list[list[int]] = []
        for record, text in zip(batch.records, batch.texts, strict=True):
            found = candidates(text, trusted)
            if found:
                chosen.records.append(record)
                chosen.texts.append(text)
                chosen_targets.append(found)
                result.candidates += 1
                result.pairs += len(found)
            elif check_json:
                problem = _json_object_problem(text)
                if problem:
                    result.bad.append(BadRecord(source.label, f"line {record}", problem))
        return chosen, chosen_targets

    def _flush(self, gathered: dict[tuple[str, str | None, bool], list[Batch]],
               gathered_targets: dict[tuple[str, str | None, bool], list[list[int]]], result: UnitResult) -> None:
        if not gathered:
            return
        engine = self.engine
        event_ids: list[int] = []
        target_numbers: list[int] = []
        for kind, batches in gathered.items():
            writer = RawEventWriter(engine)
            first = writer.next_id
            written = writer.write(batches)
            result.bad.extend(written.bad)
            for position, found in enumerate(gathered_targets[kind]):
                event_id = first + position
                event_ids.extend([event_id] * len(found))
                target_numbers.extend(found)
        refs = self.plan.refs
        matches = evaluate_pairs(engine, event_ids, target_numbers, refs)
        result.hits.extend(hits_for(engine, matches, refs))
        engine.connection.execute(f"DELETE FROM {RAW_EVENTS}")
        gathered.clear()
        gathered_targets.clear()


#: The plan forked workers inherit, and each worker's state once created (one per process).
_INHERITED: dict[str, Any] = {}


#: A unit's sources as sent to a worker: a file's Source travels with the job (pickled: a few hundred bytes); a
#: zip member's (its opener holds the archive in memory) is an index into the sources the worker inherited.
UnitItems = list["Source | int"]


def _worker_run(job: tuple[UnitItems, int]) -> UnitResult:
    worker = _INHERITED.get("worker")
    if worker is None:
        worker = _Worker(_INHERITED["plan"])
        _INHERITED["worker"] = worker
        # A unit allocates millions of short-lived objects (fetched rows, lists of positions) and no cycles of
        # note: the cyclic collector ran dozens of times a unit for nothing (~3% of a worker). It runs once
        # after each unit instead (the young generations; all of them every few units).
        gc.disable()
        keep_freed_heap()
    items, batch_rows = job
    inherited: list[Source] = _INHERITED["sources"]
    # Sources come with the job, not from the inherited list: touching 300k inherited Source objects (their
    # reference counts) copied their pages into every worker, ~100 MB each at 10M events.
    result = worker.run_unit([item if isinstance(item, Source) else inherited[item] for item in items], batch_rows)
    worker.units += 1
    gc.collect(1 if worker.units % FULL_COLLECTION_EVERY else 2)
    return result


def _source_size(source: Source) -> int:
    if source.size is not None:
        return source.size
    label = source.label.split("!", 1)[0]
    try:
        return os.path.getsize(label)
    except OSError:
        return UNIT_BYTES // 4


def split_large_evtx(sources: Sequence[Source], unit_bytes: int | None = None) -> list[Source]:
    """The sources, with each EVTX file larger than a unit cut into chunk ranges of about a unit each, so that one
    big log (a domain controller's Security.evtx) keeps every worker busy instead of one."""
    unit = unit_bytes or UNIT_BYTES
    per_part = max(1, unit // EVTX_CHUNK_SIZE)
    parts: list[Source] = []
    for source in sources:
        size = source.size
        if source.format != EVTX or source.chunks is not None or size is None or size <= unit or "!" in source.label:
            parts.append(source)
            continue
        count = evtx_chunk_count(size)
        pieces = -(-count // per_part)
        even = -(-count // pieces)  # pieces of equal size: a 1.5-unit log is two halves, not a unit and a half
        for first in range(0, count, even):
            stop = min(count, first + even)
            parts.append(dataclasses.replace(source, chunks=(first, stop),
                                             size=(stop - first) * EVTX_CHUNK_SIZE))
    return parts


def plan_units(sources: Sequence[Source]) -> list[list[int]]:
    """Group sources into units of about ``UNIT_BYTES`` (a file larger than that is split first: see
    :func:`split_large_evtx`; any other large file is a unit of its own)."""
    units: list[list[int]] = []
    current: list[int] = []
    size = 0
    for number, source in enumerate(sources):
        current.append(number)
        size += _source_size(source)
        if size >= UNIT_BYTES:
            units.append(current)
            current, size = [], 0
    if current:
        units.append(current)
    return units


#: progress(records done, units done, units in total)
UnitProgress = Callable[[int, int, int], None]


def run_fast_path(plan: FastPathPlan, sources: Sequence[Source], *, workers: int | None = None,
                  batch_rows: int = 50_000, progress: UnitProgress | None = None) -> Iterator[UnitResult]:
    """Hunt the sources with the plan; yields each unit's result as it completes (order not guaranteed). Hits of
    the columnar path come as ``unit.hit_rows`` (for the hit store), the others as ``unit.hits``."""
    count = workers or os.cpu_count() or 1
    if count > 1:
        sources = split_large_evtx(sources)
    units = plan_units(sources)
    jobs = [(unit, batch_rows) for unit in units]
    records = 0
    if count <= 1 or len(units) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        worker = _Worker(plan)
        try:
            for done, (unit, rows) in enumerate(jobs, start=1):
                result = worker.run_unit([sources[i] for i in unit], rows)
                records += result.records
                if progress is not None:
                    progress(records, done, len(units))
                yield result
        finally:
            worker.close()
        return
    _INHERITED.clear()
    _INHERITED.update(plan=plan, sources=list(sources))
    sent = [([sources[i] if isinstance(sources[i].opener, FileOpener) else i for i in unit], rows)
            for unit, rows in jobs]
    # The plan (rules, automata, checks: hundreds of MB) is shared with the forked workers copy-on-write; the
    # cyclic collector would write to every object it scans and so copy those pages into each worker: freeze them.
    gc.collect()
    gc.freeze()
    context = multiprocessing.get_context("fork")
    try:
        with context.Pool(processes=min(count, len(units))) as pool:
            for done, result in enumerate(pool.imap_unordered(_worker_run, sent), start=1):
                records += result.records
                if progress is not None:
                    progress(records, done, len(units))
                yield result
    finally:
        _INHERITED.clear()
        gc.unfreeze()
