"""The fast path: stream raw records, prefilter them against all rules at once, check candidates exactly.

Work is split into units of sources (files, zip members); each worker process streams its units' records from
the ingestion readers, asks the :class:`~assay.hunt.prefilter.PrefilterIndex` which targets could match each raw
record, loads only the candidate records into its own in-memory DuckDB (through the ingestion writer, so fields
are exactly what ``assay ingest`` stores) and checks the candidate pairs with the targets' exact SQL. Workers
return hits, never whole events; memory stays bounded by one gathered chunk per worker.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from assay.engine import DuckDBEngine
from assay.hunt.evaluate import TargetRef, evaluate_pairs, hits_for
from assay.hunt.prefilter import PrefilterIndex, PrefilterTarget
from assay.hunt.timeline import Hit
from assay.ingest.readers import BadRecord, Batch, read_source
from assay.ingest.sources import EVTX, Source
from assay.ingest.writer import RawEventWriter
from assay.schema import RAW_EVENTS

#: Candidate records gathered before one load + evaluation round (bounds a worker's memory).
CANDIDATE_CHUNK = 20_000
#: Bytes of input per work unit: small enough to balance two workers, large enough to amortise a round.
UNIT_BYTES = 16 * 1024 * 1024
#: Per-worker DuckDB memory cap: candidates of one chunk are all it ever holds.
WORKER_MEMORY_LIMIT = "600MB"


@dataclass
class UnitResult:
    """What one work unit gave: hits, counts, and bad records (as ingestion reports them)."""

    hits: list[Hit] = field(default_factory=list)
    records: int = 0
    candidates: int = 0
    pairs: int = 0
    bad: list[BadRecord] = field(default_factory=list)
    lost: int = 0
    records_by_route_key: dict[tuple[str | None, int | None], int] = field(default_factory=dict)


@dataclass
class FastPathPlan:
    """Everything a worker needs, built once in the parent (inherited by forked workers)."""

    refs: Sequence[TargetRef]  # RawEvents targets only, numbered 0…n-1
    index: PrefilterIndex


def build_plan(refs: Sequence[TargetRef]) -> FastPathPlan:
    renumbered = [TargetRef(i, ref.rule, ref.target) for i, ref in enumerate(refs)]
    targets = [PrefilterTarget(ref.target.channels, ref.target.event_ids, ref.target.formula) for ref in renumbered]
    return FastPathPlan(renumbered, PrefilterIndex(targets))


def _json_object_problem(text: str) -> str | None:
    """Why a JSON-lines record would be rejected by the ingestion writer, or None when it is a JSON object."""
    try:
        value = json.loads(text)
    except ValueError:
        return "JSON does not parse"
    return None if isinstance(value, dict) else "not a JSON object"


class _Worker:
    """A worker's state: the plan and its own DuckDB (created after fork, never shared)."""

    def __init__(self, plan: FastPathPlan) -> None:
        self.plan = plan
        self.engine = DuckDBEngine(None, threads=1)
        self.engine.connection.execute(f"SET memory_limit = '{WORKER_MEMORY_LIMIT}'")
        self.engine.connection.execute("SET preserve_insertion_order = false")

    def run_unit(self, sources: Sequence[Source], batch_rows: int) -> UnitResult:
        result = UnitResult()
        index = self.plan.index
        gathered: dict[tuple[str, str | None, bool], list[Batch]] = {}
        gathered_targets: dict[tuple[str, str | None, bool], list[list[int]]] = {}
        gathered_rows = 0
        for source in sources:
            trusted = source.format == EVTX
            # JSON lines are checked by DuckDB only when loaded: check the records the prefilter drops here,
            # so a damaged line is reported as ingestion reports it (EVTX damage is found by the reader).
            check_json = source.format != EVTX and not source.json_array and source.defender_table is None
            kind = (source.format, source.defender_table, source.json_array)
            if source.defender_table:
                continue  # Defender exports run on their typed tables (see assay.hunt.run)
            for batch in read_source(source, batch_rows):
                result.bad.extend(batch.bad)
                result.lost += batch.lost_records
                result.records += len(batch.texts)
                chosen = Batch(source)
                chosen_targets = gathered_targets.setdefault(kind, [])
                candidates = index.candidates
                for record, text in zip(batch.records, batch.texts, strict=True):
                    found = candidates(text, trusted)
                    if found:
                        chosen.records.append(record)
                        chosen.texts.append(text)
                        chosen_targets.append(found)
                    elif check_json:
                        problem = _json_object_problem(text)
                        if problem:
                            result.bad.append(BadRecord(source.label, f"line {record}", problem))
                if chosen.texts:
                    gathered.setdefault(kind, []).append(chosen)
                    gathered_rows += len(chosen.texts)
                    result.candidates += len(chosen.texts)
                if gathered_rows >= CANDIDATE_CHUNK:
                    self._flush(gathered, gathered_targets, result)
                    gathered_rows = 0
        self._flush(gathered, gathered_targets, result)
        return result

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
        result.pairs += len(event_ids)
        refs = self.plan.refs
        matches = evaluate_pairs(engine, event_ids, target_numbers, refs)
        result.hits.extend(hits_for(engine, matches, refs))
        engine.connection.execute(f"DELETE FROM {RAW_EVENTS}")
        gathered.clear()
        gathered_targets.clear()


#: The plan forked workers inherit, and each worker's state once created (one per process).
_INHERITED: dict[str, Any] = {}


def _worker_run(job: tuple[list[int], int]) -> UnitResult:
    worker = _INHERITED.get("worker")
    if worker is None:
        worker = _Worker(_INHERITED["plan"])
        _INHERITED["worker"] = worker
    source_indexes, batch_rows = job
    sources: list[Source] = _INHERITED["sources"]
    return worker.run_unit([sources[i] for i in source_indexes], batch_rows)


def _source_size(source: Source) -> int:
    label = source.label.split("!", 1)[0]
    try:
        return os.path.getsize(label)
    except OSError:
        return UNIT_BYTES // 4


def plan_units(sources: Sequence[Source]) -> list[list[int]]:
    """Group sources into units of about ``UNIT_BYTES`` (a large file is a unit of its own)."""
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
    """Hunt the sources with the plan; yields each unit's result as it completes (order not guaranteed)."""
    units = plan_units(sources)
    count = workers or os.cpu_count() or 1
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
            worker.engine.close()
        return
    _INHERITED.clear()
    _INHERITED.update(plan=plan, sources=list(sources))
    context = multiprocessing.get_context("fork")
    try:
        with context.Pool(processes=min(count, len(units))) as pool:
            for done, result in enumerate(pool.imap_unordered(_worker_run, jobs), start=1):
                records += result.records
                if progress is not None:
                    progress(records, done, len(units))
                yield result
    finally:
        _INHERITED.clear()
