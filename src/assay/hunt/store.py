"""The hit store: a hunt's hits spilled to disk, deduplicated, ordered and summarized in SQL on DuckDB.

At ten million events a hunt has millions of hits; as Python objects they would take gigabytes. Hits are
appended in bulk (Arrow hit rows from the fast path's workers, or :class:`Hit` objects from the other paths) as
Parquet parts in a temporary folder; a DuckDB file there, with a low memory limit so its sorts spill, holds the
order and answers the queries. The timeline order, the one-hit-per-(rule, event) rule and the summary are SQL
equal to :mod:`assay.hunt.timeline`'s Python functions; readers stream the timeline back in chunks. The folder
is deleted on close (or when the store is collected).

Why Parquet parts rather than INSERTs into the DuckDB table: appending is the part that runs while the fast
path's workers hold the cores, and writing a part costs ~2.4 µs of CPU per hit against ~6.7 µs for a DuckDB
insert (which compresses at checkpoint, and keeps up to its memory limit cached in the hunting process).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assay.errors import EngineError
from assay.hunt.hitrows import HIT_ROW_SCHEMA, RefLike
from assay.hunt.timeline import LEVEL_ORDER, TIMELINE_COLUMNS, Hit, Summary
from assay.ingest.mapping import sql_string

#: DuckDB memory cap of the store: the fast path's workers need the memory while hits arrive, and the final
#: sort spills to the store's folder beyond this.
STORE_MEMORY_LIMIT = "256MB"
#: Rows fetched per chunk by the streaming readers (and Hit objects converted per bulk insert).
READ_CHUNK_ROWS = 20_000
#: Rendered key-fields cells remembered while writing a CSV timeline (bounded: each holds a hit's key fields).
MAX_FIELD_CELLS = 50_000
#: Threads of the CSV timeline's rendering scan (the store's sorts keep one: see HitStore._db).
SCAN_THREADS = min(os.cpu_count() or 1, 4)
#: Hits buffered before they are written out as one Parquet part (bounds memory and the number of parts).
PART_ROWS = 50_000
#: Rank of a level not in LEVEL_ORDER (as ``LEVEL_ORDER.get(level, 9)`` in timeline.summarize).
UNKNOWN_LEVEL_RANK = 9

RULES_TABLE = "hunt_rules"
ORDER_TABLE = "hunt_order"

#: What a hit row's ``target`` is resolved to: the rule's title, id, level, techniques and the target's route.
RuleKey = tuple[str, str, str, tuple[str, ...], str]

_STORED_SCHEMA = pa.schema([
    pa.field("rule_key", pa.int32()),
    *[HIT_ROW_SCHEMA.field(name) for name in
      ("timestamp", "host", "channel", "event_id", "fields", "source_file", "source_record")],
    pa.field("seq", pa.int64()),
])


def _level_rank_sql(column: str) -> str:
    branches = " ".join(f"WHEN '{level}' THEN {rank}" for level, rank in LEVEL_ORDER.items())
    return f"(CASE {column} {branches} ELSE {UNKNOWN_LEVEL_RANK} END)"


def _field_map(text: str | None) -> dict[str, str]:
    """A hit's key fields from their stored JSON object (values as text, as ``hits_from_rows`` gives them)."""
    if not text:
        return {}
    fields = json.loads(text)
    if all(type(value) is str for value in fields.values()):
        return fields  # type: ignore[no-any-return]
    return {str(name): str(value) for name, value in fields.items()}


def _timeline_order_sql(hit: str, rank: str, arrival: str) -> str:
    """``Hit.sort_key`` then an arrival column as an ORDER BY list; ``rank`` holds the rules' title/route ranks."""
    return (f"{hit}.timestamp IS NULL, {hit}.timestamp, coalesce({hit}.host, ''), {rank}.title_rank, "
            f"{hit}.source_file, coalesce({hit}.source_record, 0), {rank}.route_rank, {hit}.{arrival}")


#: ``_csv_cell`` in SQL (NULL → empty cell).
_CSV_CELL_MACRO = """
    CREATE OR REPLACE TEMP MACRO assay_csv_cell(t) AS CASE
        WHEN t IS NULL THEN ''
        WHEN contains(t, '"') THEN '"' || replace(t, '"', '""') || '"'
        WHEN contains(t, ',') OR contains(t, chr(10)) OR contains(t, chr(13)) THEN '"' || t || '"'
        ELSE t END"""


def _csv_cell(text: str) -> str:
    """A CSV cell as ``csv.writer`` (excel dialect, minimal quoting) writes it, without its per-character loop."""
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


@contextmanager
def _store_errors(folder: Path) -> Iterator[None]:
    """DuckDB failures of the store (a full disk, mostly) as an EngineError naming the folder."""
    try:
        yield
    except (duckdb.Error, pa.ArrowException, OSError) as error:
        raise EngineError(f"the hit store in {folder} failed: {error}",
                          hint="the store spills to that folder: free space there, or set TMPDIR to a roomier one") from error


def _close(connection: list[duckdb.DuckDBPyConnection], folder: Path, owner: int) -> None:
    """Close the connection and delete the folder (also run by the finalizer when a store is collected)."""
    if os.getpid() != owner:
        return  # a forked fast-path worker inherited the store: the folder is its parent's to delete
    while connection:
        connection.pop().close()
    shutil.rmtree(folder, ignore_errors=True)


class HitStore:
    """Hits of one hunt in a fresh temporary folder (in ``directory`` when given): Parquet parts and a DuckDB file.

    The database is opened on the first read, so the hunting process holds no DuckDB state (nor its cache)
    while the fast path's workers run. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, directory: Path | None = None, *, memory_limit: str = STORE_MEMORY_LIMIT) -> None:
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="assay-hits-", dir=directory))
        self.memory_limit = memory_limit
        self._connection: list[duckdb.DuckDBPyConnection] = []
        self._finalizer = weakref.finalize(self, _close, self._connection, self.folder, os.getpid())
        self._rule_keys: dict[RuleKey, int] = {}
        self._rules: list[RuleKey] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._parts = 0
        # refs lists seen by add_rows, by id(); the list is kept so its id cannot be reused while cached
        self._ref_maps: dict[int, tuple[Sequence[RefLike], pa.Array]] = {}
        self._added = 0
        self._order_current = False
        self._timeline_current = False
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file (exists once the timeline has been ordered, e.g. by :meth:`summary`)."""
        return self.folder / "hits.duckdb"

    @property
    def parts_folder(self) -> Path:
        """Where the hits are, as Parquet parts of ``PART_ROWS`` hits."""
        return self.folder / "parts"

    @property
    def timeline_path(self) -> Path:
        """The ordered, deduplicated timeline as one Parquet file (written on the first read of hits)."""
        return self.folder / "timeline.parquet"

    def disk_bytes(self) -> int:
        """Bytes the store takes on disk (parts, database, timeline, spill files)."""
        return sum(path.stat().st_size for path in self.folder.rglob("*") if path.is_file())

    def _db(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise ValueError("the hit store is closed")
        if not self._connection:
            connection = duckdb.connect(str(self.path))
            spill = self.folder / "spill"
            spill.mkdir(exist_ok=True)
            connection.execute(f"SET memory_limit = '{self.memory_limit}'")
            connection.execute(f"SET temp_directory = {sql_string(str(spill))}")
            # The timeline is written in order and read back by plain scans: keep insertion order.
            connection.execute("SET preserve_insertion_order = true")
            # One thread for the sorts: two ordered 1M events' hits faster (0.55 s instead of 0.78) but ran out of
            # the memory cap writing the 10M-event timeline in order (1.8M hits); one stays within it.
            connection.execute("SET threads = 1")
            self._connection.append(connection)
        return self._connection[0]

    def close(self) -> None:
        """Close the database and delete its folder. Idempotent."""
        self._closed = True
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> HitStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------------------

    def _rule_key(self, key: RuleKey) -> int:
        number = self._rule_keys.get(key)
        if number is None:
            number = len(self._rules)
            self._rule_keys[key] = number
            self._rules.append(key)
        return number

    def _rules_table(self) -> pa.Table:
        rules = self._rules
        return pa.table({
            "rule_key": pa.array(range(len(rules)), pa.int32()),
            "title": pa.array([r[0] for r in rules], pa.string()),
            "rule_id": pa.array([r[1] for r in rules], pa.string()),
            "level": pa.array([r[2] for r in rules], pa.string()),
            "techniques": pa.array([list(r[3]) for r in rules], pa.list_(pa.string())),
            "route": pa.array([r[4] for r in rules], pa.string()),
            "identity": pa.array([r[1] or r[0] for r in rules], pa.string()),
        })

    def _append(self, rule_keys: pa.Array, columns: dict[str, pa.Array]) -> None:
        count = len(rule_keys)
        if count == 0:
            return
        if self._closed:
            raise ValueError("the hit store is closed")
        seq = pa.array(range(self._added, self._added + count), pa.int64())
        self._pending.append(pa.table({"rule_key": rule_keys, **columns, "seq": seq}, schema=_STORED_SCHEMA))
        self._pending_rows += count
        self._added += count
        self._order_current = self._timeline_current = False
        if self._pending_rows >= PART_ROWS:
            self._write_part()

    def _write_part(self) -> None:
        if not self._pending:
            return
        self.parts_folder.mkdir(exist_ok=True)
        table = pa.concat_tables(self._pending)
        pq.write_table(table, self.parts_folder / f"part-{self._parts:06d}.parquet", compression="snappy")
        self._parts += 1
        self._pending.clear()
        self._pending_rows = 0

    def _hits_sql(self) -> str:
        return f"read_parquet({sql_string(str(self.parts_folder / 'part-*.parquet'))})"

    def _ref_map(self, refs: Sequence[RefLike]) -> pa.Array:
        cached = self._ref_maps.get(id(refs))
        if cached is not None and cached[0] is refs and len(cached[1]) == len(refs):
            return cached[1]
        keys = [self._rule_key((ref.rule.title, ref.rule.id, ref.rule.level, tuple(ref.rule.techniques),
                                ref.target.route)) for ref in refs]
        mapping = pa.array(keys, pa.int32())
        self._ref_maps[id(refs)] = (refs, mapping)
        return mapping

    def add_rows(self, table: pa.Table, refs: Sequence[RefLike]) -> None:
        """Append hit rows (:data:`~assay.hunt.hitrows.HIT_ROW_SCHEMA`); ``target`` indexes ``refs``."""
        if table.num_rows == 0:
            return
        with _store_errors(self.folder):
            self._add_rows(table, refs)

    def _add_rows(self, table: pa.Table, refs: Sequence[RefLike]) -> None:
        table = table.select(HIT_ROW_SCHEMA.names).cast(HIT_ROW_SCHEMA)
        targets = table.column("target")
        if pc.max(targets).as_py() >= len(refs) or pc.min(targets).as_py() < 0:
            raise ValueError(f"hit rows name targets outside the {len(refs)} refs given")
        rule_keys = pc.take(self._ref_map(refs), targets).combine_chunks()
        self._append(rule_keys, {name: table.column(name) for name in _STORED_SCHEMA.names
                                 if name not in ("rule_key", "seq")})

    def add_hits(self, hits: Iterable[Hit]) -> None:
        """Append :class:`Hit` objects (reference and Spark paths), converted in chunks."""
        chunk: list[Hit] = []
        with _store_errors(self.folder):
            for hit in hits:
                chunk.append(hit)
                if len(chunk) >= READ_CHUNK_ROWS:
                    self._add_hit_chunk(chunk)
                    chunk = []
            self._add_hit_chunk(chunk)

    def _add_hit_chunk(self, hits: list[Hit]) -> None:
        if not hits:
            return
        keys = [self._rule_key((h.rule_title, h.rule_id, h.level, tuple(h.techniques), h.route)) for h in hits]
        # ASCII JSON: lone surrogates a damaged log may carry survive the UTF-8 round trip as escapes.
        columns = {
            "timestamp": pa.array([h.timestamp for h in hits], pa.timestamp("us")),
            "host": pa.array([h.host for h in hits], pa.string()),
            "channel": pa.array([h.channel for h in hits], pa.string()),
            "event_id": pa.array([h.event_id for h in hits], pa.int32()),
            "fields": pa.array([json.dumps(dict(h.fields)) if h.fields else None for h in hits], pa.string()),
            "source_file": pa.array([h.source_file for h in hits], pa.string()),
            "source_record": pa.array([h.source_record for h in hits], pa.int64()),
        }
        self._append(pa.array(keys, pa.int32()), columns)

    # -- the timeline ----------------------------------------------------------------------------------------

    def _order(self) -> duckdb.DuckDBPyConnection:
        """The narrow order table: one row per surviving hit (``seq``, ``rule_key``) and its timeline position.

        Dedupe and order work on the sort keys only, so they stay within the memory cap; the wide rows are put
        in that order only when a reader asks (:meth:`_timeline`).
        """
        connection = self._db()
        if self._order_current:
            return connection
        self._write_part()
        connection.register("assay_rules", self._rules_table())
        try:
            connection.execute(f"CREATE OR REPLACE TABLE {RULES_TABLE} AS SELECT * FROM assay_rules")
        finally:
            connection.unregister("assay_rules")
        # Hit.sort_key: None timestamps last, host ('' for None), title, rule id, source file, record (0 for
        # None), route. Ties are broken as dedupe_sorted breaks them: within an identity the first hit seen with
        # the smallest key survives (strict-less replacement); across identities, sorted() is stable over the
        # dict of identities, i.e. over each identity's first arrival (``first_seq``), not its survivor's.
        # Title/rule id and route are ranked once on the small rules table so the big sorts compare integers.
        connection.execute(f"""
            CREATE OR REPLACE TEMP TABLE hunt_rule_ranks AS
            SELECT rule_key, identity,
                   dense_rank() OVER (ORDER BY title, rule_id) AS title_rank,
                   dense_rank() OVER (ORDER BY route) AS route_rank
            FROM {RULES_TABLE}""")
        connection.execute(f"""
            CREATE OR REPLACE TABLE {ORDER_TABLE} AS
            SELECT k.seq, k.rule_key,
                   row_number() OVER (ORDER BY {_timeline_order_sql("k", "k", "first_seq")}) AS position
            FROM (SELECT h.seq, h.rule_key, h.timestamp, h.host, r.title_rank, h.source_file, h.source_record,
                         r.route_rank, min(h.seq) OVER identity AS first_seq
                  FROM {self._hits_sql()} h JOIN hunt_rule_ranks r ON r.rule_key = h.rule_key
                  WINDOW identity AS (PARTITION BY r.identity, h.source_file, h.source_record)
                  QUALIFY row_number() OVER (identity ORDER BY {_timeline_order_sql("h", "r", "seq")}) = 1
                 ) k""")
        self._order_current = True
        return connection

    def _timeline(self) -> duckdb.DuckDBPyConnection:
        """The wide timeline as a Parquet file written in timeline order (rebuilt when hits were added since)."""
        connection = self._order()
        if self._timeline_current:
            return connection
        connection.execute(f"""
            COPY (SELECT h.rule_key, h.timestamp, h.host, h.channel, h.event_id, h.fields, h.source_file,
                         h.source_record
                  FROM {self._hits_sql()} h JOIN {ORDER_TABLE} o ON o.seq = h.seq
                  ORDER BY o.position)
            TO {sql_string(str(self.timeline_path))} (FORMAT parquet, COMPRESSION snappy)""")
        self._timeline_current = True
        return connection

    def count(self) -> int:
        """Hits in the timeline (after dedupe)."""
        if not self._added:
            return 0
        # fetchall, not fetchone: a half-read result would block the connection's next statement
        with _store_errors(self.folder):
            rows = self._order().execute(f"SELECT count(*) FROM {ORDER_TABLE}").fetchall()
        return int(rows[0][0])

    def __len__(self) -> int:
        return self.count()

    def _batches(self, limit: int | None = None) -> Iterator[list[list[Any]]]:
        """The timeline's columns (``rule_key`` … ``source_record``) as Python lists, a chunk at a time."""
        return self._timeline_chunks(
            f"SELECT rule_key, timestamp, host, channel, event_id, fields, source_file, source_record "
            f"FROM read_parquet({sql_string(str(self.timeline_path))})"
            + (f" LIMIT {int(limit)}" if limit is not None else ""))

    def _timeline_chunks(self, sql: str, setup: str | None = None,
                         threads: int = 1) -> Iterator[list[list[Any]]]:
        """The columns of ``sql`` over the timeline as Python lists, ``READ_CHUNK_ROWS`` rows at a time (on a
        cursor of its own, after ``setup``; with ``threads`` for a scan that sorts nothing)."""
        if not self._added:
            return
        with _store_errors(self.folder):
            cursor = self._timeline().cursor()
        try:
            with _store_errors(self.folder):
                if setup is not None:
                    cursor.execute(setup)
                if threads > 1:
                    cursor.execute(f"SET threads = {int(threads)}")
                batches = iter(cursor.sql(sql).to_arrow_reader(READ_CHUNK_ROWS))
            while True:
                with _store_errors(self.folder):
                    batch = next(batches, None)
                if batch is None:
                    return
                yield [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        finally:
            if threads > 1:
                cursor.execute("SET threads = 1")  # the database's setting: sorts stay on one thread
            cursor.close()

    def _scan(self, limit: int | None = None) -> Iterator[Hit]:
        rules = self._rules
        for columns in self._batches(limit):
            for rule_key, timestamp, host, channel, event_id, fields, source_file, source_record in zip(
                    *columns, strict=True):
                title, rule_id, level, techniques, route = rules[rule_key]
                yield Hit(timestamp=timestamp, host=host, rule_title=title, rule_id=rule_id, level=level,
                          techniques=techniques, channel=channel, event_id=event_id,
                          fields=tuple(_field_map(fields).items()), source_file=source_file,
                          source_record=source_record, route=route)

    def iter_hits(self) -> Iterator[Hit]:
        """The timeline in order, one hit per (rule, event), fetched ``READ_CHUNK_ROWS`` at a time."""
        return self._scan()

    def head(self, count: int) -> list[Hit]:
        """The first ``count`` hits of the timeline (for a terminal table)."""
        return list(self._scan(max(0, count)))

    # The writers build each line straight from the columns (no Hit objects: ~3x faster on millions of hits);
    # the cells are those of timeline.write_csv / Hit.as_dict, and the tests hold them byte-identical.

    def write_csv(self, out: TextIO) -> None:
        """The timeline as CSV, byte for byte what :func:`assay.hunt.timeline.write_csv` writes.

        DuckDB renders each hit's own cells (time, host, channel, event id, source file and record) in one ordered
        scan on every core; Python joins them with the rule's cells and the key-fields cell. That cell is
        rendered once per distinct key-fields text (a hunt repeats them: 939 distinct among the 184,952 hits of
        the 1M benchmark), where DuckDB had spent ~4 µs on each hit's MAP.
        """
        out.write(",".join(TIMELINE_COLUMNS) + "\r\n")
        rules = [(f"{_csv_cell(title)},{_csv_cell(level)},{_csv_cell(','.join(techniques))}",
                  f"{_csv_cell(rule_id)},{_csv_cell(route)}\r\n")
                 for title, rule_id, level, techniques, route in self._rules]
        field_cells: dict[str | None, str] = {}
        for rule_keys, heads, middles, raw_fields, tails in self._csv_batches():
            lines = []
            for rule_key, head, middle, raw, tail in zip(rule_keys, heads, middles, raw_fields, tails, strict=True):
                fields = field_cells.get(raw)
                if fields is None:
                    fields = _csv_cell(" ".join(f"{k}={v}" for k, v in _field_map(raw).items()))
                    if len(field_cells) >= MAX_FIELD_CELLS:
                        field_cells.clear()
                    field_cells[raw] = fields
                rule_cells, rule_tail = rules[rule_key]
                lines.append(f"{head},{rule_cells},{middle},{fields},{tail},{rule_tail}")
            out.write("".join(lines))

    def _csv_batches(self) -> Iterator[list[list[Any]]]:
        """Per chunk of the timeline, in order: rule keys, "time,host" cells, "channel,event id" cells, the raw
        key fields (JSON text) and "source file,record" cells."""
        # A scan and projections keep the file's order (preserve_insertion_order).
        sql = f"""
            SELECT rule_key,
                   CASE WHEN timestamp IS NULL THEN ''
                        WHEN epoch_us(timestamp) % 1000000 = 0 THEN strftime(timestamp, '%Y-%m-%d %H:%M:%S')
                        ELSE strftime(timestamp, '%Y-%m-%d %H:%M:%S.%f') END || ',' || assay_csv_cell(host),
                   assay_csv_cell(channel) || ',' || coalesce(CAST(event_id AS VARCHAR), ''),
                   fields,
                   assay_csv_cell(source_file) || ',' || coalesce(CAST(source_record AS VARCHAR), '')
            FROM read_parquet({sql_string(str(self.timeline_path))})"""
        # Rendering the cells needs no sort: every core takes part (order is kept).
        return self._timeline_chunks(sql, setup=_CSV_CELL_MACRO, threads=SCAN_THREADS)

    def write_jsonl(self, out: TextIO) -> None:
        """The timeline as JSON lines, byte for byte what :func:`assay.hunt.timeline.write_jsonl` writes."""
        encode = json.JSONEncoder(ensure_ascii=False).encode
        rules = self._rules
        for columns in self._batches():
            lines = []
            for rule_key, timestamp, host, channel, event_id, fields, source_file, source_record in zip(
                    *columns, strict=True):
                title, rule_id, level, techniques, route = rules[rule_key]
                lines.append(encode({
                    "timestamp": timestamp.isoformat() if timestamp else None, "host": host, "rule": title,
                    "level": level, "techniques": list(techniques), "channel": channel, "event_id": event_id,
                    "fields": _field_map(fields), "source_file": source_file, "source_record": source_record,
                    "rule_id": rule_id, "route": route}) + "\n")
            out.write("".join(lines))

    def summary(self, events: int) -> Summary:
        """Hits by rule, level and technique, by SQL: equal to :func:`assay.hunt.timeline.summarize`."""
        if not self._added:
            return Summary(events=events)
        with _store_errors(self.folder):
            return self._summary(events)

    def _summary(self, events: int) -> Summary:
        connection = self._order()
        rank = _level_rank_sql("r.level")
        joined = f"{ORDER_TABLE} t JOIN {RULES_TABLE} r ON r.rule_key = t.rule_key"
        # Python's sorts are stable over first appearance in the timeline: min(position) breaks the same ties.
        by_rule = connection.execute(f"""
            SELECT r.title, r.level, count(*) AS hits FROM {joined} GROUP BY r.title, r.level
            ORDER BY {rank}, hits DESC, r.title, min(t.position)""").fetchall()
        by_level = connection.execute(f"""
            SELECT r.level, count(*) FROM {joined} GROUP BY r.level ORDER BY {rank}, min(t.position)""").fetchall()
        by_technique = connection.execute(f"""
            SELECT technique, count(*) AS hits FROM (SELECT unnest(r.techniques) AS technique FROM {joined})
            GROUP BY technique ORDER BY hits DESC, technique""").fetchall()
        total = sum(int(row[2]) for row in by_rule)
        return Summary(events=events, hits=total,
                       by_rule=[(str(t), str(lv), int(n)) for t, lv, n in by_rule],
                       by_level={str(lv): int(n) for lv, n in by_level},
                       by_technique={str(t): int(n) for t, n in by_technique})


__all__ = ["STORE_MEMORY_LIMIT", "HitStore"]
