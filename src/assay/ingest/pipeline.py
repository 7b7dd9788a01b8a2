"""``ingest_paths``: discover sources, stream their batches into RawEvents, map into the typed tables, summarise.

Reading (Python + the Rust EVTX parser) and loading (DuckDB, which releases the GIL) overlap: batches are handed to
one loader thread through a short queue, so memory stays bounded by a few batches whatever the input size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.engine import DuckDBEngine, default_db_path
from assay.errors import IngestError, UsageError
from assay.ingest.mapping import RAW_EVENT_STORE, builtin_mappings, raw_source, sql_string
from assay.ingest.readers import DEFAULT_BATCH_ROWS, BadRecord, Batch, read_source
from assay.ingest.sources import Skipped, Source, discover
from assay.ingest.writer import (
    RawEventWriter,
    WrittenBatch,
    events_without_mapping,
    field_report,
    raw_events_is_compact,
    run_mappings,
    use_compact_raw_events,
)
from assay.schema import canonical_tables

#: DuckDB memory cap while ingesting into a database the call opens itself (peak RSS stays under ~1 GiB).
DEFAULT_MEMORY_LIMIT = "300MB"
#: Rows loaded between commits (0: one transaction for the whole ingest); see ``_load``. DuckDB's row group size:
#: a commit that ends on a row-group boundary writes only whole row groups (a partial one goes through the WAL and
#: is rewritten at the next commit: 100k-row commits measured 6.6 µs of CPU per 1.1 KB record, 122,880-row ones 3.9).
COMMIT_EVERY_ROWS = 122_880
#: Bad records listed one by one in a summary (all are counted).
MAX_LISTED_BAD_RECORDS = 1000


@dataclass
class SourceSummary:
    """What one source gave: its format, events loaded, bad records."""

    label: str
    format: str
    records: int = 0
    bad: int = 0


@dataclass
class IngestSummary:
    """What an ingest did; ``as_dict()`` is the JSON the CLI prints with ``--format json``."""

    database: str
    records_read: int = 0
    bad_records: int = 0
    bad_record_list: list[BadRecord] = field(default_factory=list)
    sources: list[SourceSummary] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    rows_per_table: dict[str, int] = field(default_factory=dict)
    rows_per_mapping: dict[str, int] = field(default_factory=dict)
    unmapped_fields: dict[str, dict[str, int]] = field(default_factory=dict)
    events_without_mapping: list[tuple[str | None, int | None, int]] = field(default_factory=list)
    parquet_dir: str | None = None
    first_event_id: int = 0
    last_event_id: int = 0
    seconds: float = 0.0

    @property
    def nothing_read(self) -> bool:
        return self.records_read == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "parquet_dir": self.parquet_dir,
            "records_read": self.records_read,
            "bad_records": self.bad_records,
            "seconds": round(self.seconds, 3),
            "rows_per_table": self.rows_per_table,
            "rows_per_mapping": self.rows_per_mapping,
            "sources": [vars(s) for s in self.sources],
            "skipped": [{"source": s.label, "reason": s.reason, "damaged": s.is_damage} for s in self.skipped],
            "bad_record_list": [vars(b) for b in self.bad_record_list],
            "unmapped_fields": self.unmapped_fields,
            "events_without_mapping": [{"Channel": c, "EventID": e, "events": n}
                                       for c, e, n in self.events_without_mapping],
            "assay_event_ids": [self.first_event_id, self.last_event_id],
        }

    def add_bad(self, bad: list[BadRecord], extra_lost: int = 0) -> None:
        self.bad_records += len(bad) + extra_lost
        room = MAX_LISTED_BAD_RECORDS - len(self.bad_record_list)
        if room > 0:
            self.bad_record_list.extend(bad[:room])


#: progress(source label, records loaded so far in the run, sources finished, sources in total)
ProgressCallback = Callable[[str, int, int, int], None]


def ingest_paths(paths: str | Path | list[str | Path] | tuple[str | Path, ...], db: str | Path | None = None, *,
                 output_format: str = "duckdb", out: str | Path | None = None, batch_rows: int = DEFAULT_BATCH_ROWS,
                 threads: int | None = None, progress: ProgressCallback | None = None,
                 engine: DuckDBEngine | None = None, memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
                 compact_fields: bool | None = None) -> IngestSummary:
    """Ingest telemetry files, folders, globs or zips into the canonical tables; return what happened.

    ``db``: DuckDB file (default :func:`assay.engine.default_db_path`); ``output_format="parquet"`` also writes
    one Parquet dataset per table under ``out``; ``threads`` limits DuckDB's threads; ``engine`` reuses an open
    database (tests, the demo); ``memory_limit`` caps DuckDB's memory for a database this call opens (it spills
    to disk beyond it), so ingesting any amount of telemetry stays within about 1 GiB; ``compact_fields``: see
    :func:`ingest_sources`. Bad records are counted, never raised; an unknown explicit file raises
    :class:`IngestError`.
    """
    if output_format not in ("duckdb", "parquet"):
        raise UsageError(f"unknown output format {output_format!r}", hint="use 'duckdb' or 'parquet'")
    if output_format == "parquet" and out is None:
        raise UsageError("parquet output needs an output folder", hint="pass out=… (CLI: --out DIR)")
    path_list = [paths] if isinstance(paths, str | Path) else list(paths)
    if not path_list:
        raise UsageError("nothing to ingest", hint="name at least one file, folder, glob or zip")
    started = time.perf_counter()
    sources, skipped = discover(path_list)
    own_engine = engine is None
    if engine is None:
        db_path = Path(db) if db is not None else default_db_path()
        engine = DuckDBEngine(db_path, threads=threads)
        if memory_limit:
            engine.connection.execute("SET memory_limit = $1", [memory_limit]).fetchall()
    elif threads:
        engine.connection.execute(f"SET threads = {int(threads)}").fetchall()
    try:
        summary = ingest_sources(sources, engine, skipped=skipped, batch_rows=batch_rows, progress=progress,
                                 reader_threads=threads or 1, compact_fields=compact_fields)
        if output_format == "parquet" and out is not None:
            summary.parquet_dir = str(write_parquet(engine, Path(out)))
    finally:
        if own_engine:
            engine.close()
    summary.seconds = time.perf_counter() - started
    return summary


def ingest_sources(sources: list[Source], engine: DuckDBEngine, *, skipped: list[Skipped] | None = None,
                   batch_rows: int = DEFAULT_BATCH_ROWS, progress: ProgressCallback | None = None,
                   reader_threads: int = 1, compact_fields: bool | None = None) -> IngestSummary:
    """Load already discovered sources into an open database and run the mappings (the benchmark's entry).

    ``reader_threads``: threads the EVTX parser may use (Rust, parallel per chunk). ``compact_fields``: keep each
    event's fields as JSON text in RawEventStore, RawEvents becoming a view that builds the ``Fields`` map per row
    read (:func:`assay.ingest.writer.use_compact_raw_events`): about half the load's CPU and a fraction of the
    file, but every query reading ``Fields`` pays the map (2x for a rule-by-rule hunt). Default: compact for a
    database file, a MAP table for an in-memory database (a scratch space queried right away). A database already
    compact stays so.
    """
    started = time.perf_counter()
    summary = IngestSummary(database=str(engine.path) if engine.path else ":memory:", skipped=list(skipped or []))
    for item in summary.skipped:
        if item.is_damage:
            summary.add_bad([BadRecord(item.label, "file", item.reason)])
    before = {name: engine.row_count(name) for name in canonical_tables()}
    connection = engine.connection
    compact = raw_events_is_compact(connection) or (engine.path is not None if compact_fields is None
                                                    else compact_fields)
    if compact:
        use_compact_raw_events(connection)
    source = raw_source(compact)
    # The load runs in transactions of COMMIT_EVERY_ROWS rows: DuckDB then writes whole row groups straight into
    # the database file (optimistic writes) instead of logging every batch in the WAL and copying it again at each
    # checkpoint (about a fifth of the CPU of a bulk load). Each mapping statement commits on its own, which keeps
    # memory bounded whatever the size of the ingest (one transaction for everything measured 1.7 GiB at 1M).
    connection.execute("BEGIN TRANSACTION").fetchall()
    try:
        writer = RawEventWriter(engine)
        _load(sources, writer, summary, batch_rows, progress, reader_threads)
        connection.execute("COMMIT").fetchall()
    except BaseException:
        connection.execute("ROLLBACK").fetchall()
        raise
    first_id, last_id = writer.first_id, writer.last_id
    summary.first_event_id, summary.last_event_id = first_id, max(last_id, first_id - 1)
    mappings = builtin_mappings()
    defender_tables = {s.defender_table for s in sources if s.defender_table}
    # The field report comes first: the leftover columns are built from the keys it finds.
    report = field_report(engine, mappings, first_id, last_id, source)
    summary.rows_per_mapping = run_mappings(engine, mappings, {t for t in defender_tables if t}, first_id, last_id,
                                            report.leftover_keys, source)
    summary.unmapped_fields = report.unmapped
    summary.events_without_mapping = events_without_mapping(engine, mappings, first_id, last_id)
    summary.rows_per_table = {name: engine.row_count(name) - before[name] for name in canonical_tables()}
    summary.seconds = time.perf_counter() - started
    return summary


def _load(sources: list[Source], writer: RawEventWriter, summary: IngestSummary, batch_rows: int,
          progress: ProgressCallback | None, reader_threads: int = 1) -> None:
    """Read every source and load it, reading the next batches while DuckDB loads the previous ones.

    Batches of consecutive sources of one kind are gathered up to ``batch_rows`` rows, so a folder of small
    recordings costs a few INSERTs rather than one per file.
    """
    pending: list[tuple[Future[WrittenBatch], dict[str, int]]] = []
    uncommitted = 0

    def write_and_commit(batches: list[Batch]) -> WrittenBatch:
        # Runs on the loader thread, in submission order. DuckDB keeps a transaction's appended rows in memory
        # until it commits (measured 1.7 GiB peak RSS for 1M events in one transaction), so the load commits every
        # COMMIT_EVERY_ROWS rows; each commit writes whole row groups, never the WAL copy of every batch.
        nonlocal uncommitted
        result = WrittenBatch(0, [])
        while batches:
            # The batches are split where the transaction reaches COMMIT_EVERY_ROWS rows, so commits fall on
            # row-group boundaries whatever the batch size.
            head, batches = (split_batches(batches, COMMIT_EVERY_ROWS - uncommitted) if COMMIT_EVERY_ROWS
                             else (batches, []))
            written = writer.write(head)
            result.rows += written.rows
            result.bad += written.bad
            uncommitted += written.rows
            if COMMIT_EVERY_ROWS and uncommitted >= COMMIT_EVERY_ROWS:
                writer.connection.execute("COMMIT").fetchall()
                writer.connection.execute("BEGIN TRANSACTION").fetchall()
                uncommitted = 0
        return result

    by_label: dict[str, SourceSummary] = {}
    gathered: list[Batch] = []
    gathered_rows = 0

    def settle(keep: int) -> None:
        while len(pending) > keep:
            future, submitted = pending.pop(0)
            written = future.result()
            for label, rows in submitted.items():
                by_label[label].records += rows
            for bad in written.bad:
                by_label[bad.source].records -= 1
                by_label[bad.source].bad += 1
            summary.records_read += written.rows
            summary.add_bad(written.bad)

    def submit(loader: ThreadPoolExecutor) -> None:
        nonlocal gathered, gathered_rows
        if not gathered:
            return
        submitted: dict[str, int] = {}
        for item in gathered:
            submitted[item.source.label] = submitted.get(item.source.label, 0) + len(item.texts)
        # The writer assigns ids in submission order; one loader thread keeps that order.
        pending.append((loader.submit(write_and_commit, gathered), submitted))
        gathered, gathered_rows = [], 0
        settle(keep=1)

    def kind(source: Source) -> tuple[str, str | None, bool]:
        return source.format, source.defender_table, source.json_array

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="assay-ingest-loader") as loader:
        for index, source in enumerate(sources):
            source_summary = SourceSummary(source.label, source.format)
            summary.sources.append(source_summary)
            by_label[source.label] = source_summary
            if gathered and kind(gathered[0].source) != kind(source):
                submit(loader)
            for batch in read_source(source, batch_rows, reader_threads):
                if batch.bad or batch.lost_records:
                    source_summary.bad += len(batch.bad) + batch.lost_records
                    summary.add_bad(batch.bad, batch.lost_records)
                if batch.texts:
                    gathered.append(batch)
                    gathered_rows += len(batch.texts)
                    if gathered_rows >= batch_rows:
                        submit(loader)
            if progress is not None:
                progress(source.label, summary.records_read, index + 1, len(sources))
        submit(loader)
        settle(keep=0)


def split_batches(batches: list[Batch], rows: int) -> tuple[list[Batch], list[Batch]]:
    """The first ``rows`` records of ``batches`` and the rest (a batch straddling the cut is sliced in two)."""
    head: list[Batch] = []
    for index, batch in enumerate(batches):
        if rows <= 0:
            return head, batches[index:]
        if len(batch.texts) <= rows:
            head.append(batch)
            rows -= len(batch.texts)
            continue
        head.append(Batch(batch.source, batch.records[:rows], batch.texts[:rows]))
        rest = Batch(batch.source, batch.records[rows:], batch.texts[rows:])
        return head, [rest, *batches[index + 1:]]
    return head, []


def write_parquet(engine: DuckDBEngine, out: Path) -> Path:
    """One Parquet dataset (folder) per canonical table under ``out``, for Spark and other engines; other tables
    of the database (rows loaded with ``--table``) too."""
    out.mkdir(parents=True, exist_ok=True)
    others = [name for name in engine.table_names() if name not in canonical_tables() and name != RAW_EVENT_STORE
              and not name.startswith("_")]
    for name in [*canonical_tables(), *others]:
        folder = out / name
        folder.mkdir(exist_ok=True)
        target = folder / "part-0.parquet"
        engine.connection.execute(
            f"COPY (SELECT * FROM \"{name}\") TO {sql_string(str(target))} "
            "(FORMAT parquet, COMPRESSION zstd)").fetchall()
    return out


__all__ = ["IngestError", "IngestSummary", "SourceSummary", "ingest_paths"]
