"""The writer: raw JSON text batches → RawEvents (one set-based INSERT per batch) → typed tables (mappings).

DuckDB parses the JSON (one ``json_extract_string`` pass per record), so no per-record Python objects are built.
A database file keeps the events in :data:`RAW_EVENT_STORE`, fields as JSON text, behind a ``RawEvents`` view that
builds the ``Fields`` map for the rows a query reads (:func:`use_compact_raw_events`); a RawEvents base table gets
the map directly. Each event gets an AssayEventId (unique in the database); the mappings then run once per ingest
over the new id range.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from assay.engine import DuckDBEngine
from assay.errors import EngineError
from assay.ingest.mapping import (
    RAW_EVENT_STORE,
    SYSTEM_FIELD_KEYS,
    Mapping,
    defender_insert_sql,
    raw_source,
    sql_string,
    timestamp_sql,
)
from assay.ingest.readers import BadRecord, Batch
from assay.ingest.sources import DEFENDER_CSV, DEFENDER_JSON, ECS, EVTX, EVTX_JSON
from assay.schema import RAW_EVENTS, canonical_tables

_EVTX_SHAPE = (
    '{"Event":{"System":{"Channel":"VARCHAR","Computer":"VARCHAR","EventID":"VARCHAR",'
    '"TimeCreated":{"#attributes":{"SystemTime":"VARCHAR"}},"Provider":{"#attributes":{"Name":"VARCHAR"}},'
    '"EventRecordID":"VARCHAR"},'
    '"EventData":"MAP(VARCHAR, VARCHAR)"}}'
)
_ECS_SHAPE = (
    '{"@timestamp":"VARCHAR","winlog":{"channel":"VARCHAR","event_id":"VARCHAR","provider_name":"VARCHAR",'
    '"computer_name":"VARCHAR","event_data":"MAP(VARCHAR, VARCHAR)","user_data":"MAP(VARCHAR, VARCHAR)"},'
    '"host":{"name":"VARCHAR"}}'
)
_MAP_SHAPE = '"MAP(VARCHAR, VARCHAR)"'
#: The compact store keeps each event's fields as the JSON text of its field object (see RAW_EVENT_STORE).
_ECS_JSON_SHAPE = _ECS_SHAPE.replace('"MAP(VARCHAR, VARCHAR)"', '"JSON"')
#: Channels as Windows spells them: some collectors lower-case them ("security"); routing compares exactly.
KNOWN_CHANNELS = ("Security", "System", "Application", "Microsoft-Windows-Sysmon/Operational",
                  "Microsoft-Windows-PowerShell/Operational", "Windows PowerShell",
                  "Microsoft-Windows-TaskScheduler/Operational", "Microsoft-Windows-Windows Defender/Operational")


def canonical_channel_sql(expr: str) -> str:
    whens = " ".join(f"WHEN {sql_string(c.lower())} THEN {sql_string(c)}" for c in KNOWN_CHANNELS)
    return f"CASE lower({expr}) {whens} ELSE {expr} END"
_PLAIN_RAW_COLUMNS = ("AssayEventId, Timestamp, Channel, Provider, EventID, Computer, SourceFile, SourceRecord, "
                      "SourceFormat")

STAGING = "assay_ingest_staging"
KEY_SETS = "assay_ingest_key_sets"
STAGING_CHUNK_ROWS = 8192
#: A record is loaded only when its text parses as JSON and is an object; the rest are bad records.
_VALID_OBJECT = "json_valid(Text) AND json_type(Text) = 'OBJECT'"


def _object_or_null(expr: str) -> str:
    """A JSON value kept only when it is an object (json_transform to a MAP gives NULL for anything else).

    The value is DuckDB's own minified rendering, so an object starts with ``{``: no second parse is needed.
    """
    return f"CASE WHEN starts_with({expr}, '{{') THEN {expr} END"


def _record_number_sql(source_format: str, event_record_id: str) -> str:
    """The SourceRecord of an event: for EVTX its EventRecordID, the number Event Viewer and every other tool show
    (an exported log keeps it, while its records' positions start again at 1), else the reader's number (the
    position); JSON lines and arrays keep their line or element number, which is how one finds the record there."""
    if source_format != EVTX:
        return "SourceRecord"
    return f"coalesce(TRY_CAST({event_record_id} AS BIGINT), SourceRecord)"


def _evtx_map_select(file_and_format: str, user_data_element: str, valid: str) -> str:
    """The evtx SELECT for a RawEvents base table (Fields as a MAP), e.g. the hunt fast path's scratch database."""
    # EventID is sometimes {"#attributes": {"Qualifiers": …}, "#text": 4688} (VARCHAR gives its JSON text).
    event_id = ("coalesce(TRY_CAST(s.Event.System.EventID AS INTEGER), "
                "TRY_CAST(json_extract_string(s.Event.System.EventID, '$.\"#text\"') AS INTEGER))")
    fields = (f"coalesce(s.Event.EventData, CASE WHEN s.Event.EventData IS NULL THEN "
              f"json_transform({user_data_element}, '{_MAP_SHAPE}') END)")
    return f"""
        SELECT $first_id + Position, {timestamp_sql('s.Event.System.TimeCreated."#attributes".SystemTime')},
               s.Event.System.Channel, s.Event.System.Provider."#attributes".Name, EventID,
               s.Event.System.Computer, {file_and_format}, {fields}
        FROM (SELECT *, {event_id} AS EventID FROM (
              -- One json_transform with the whole shape parses each record once; building the EventData map
              -- from an extracted JSON value instead costs a second parse (2x slower).
              SELECT Position, SourceFile, SourceRecord, Text, json_transform(Text, '{_EVTX_SHAPE}') AS s
              FROM {STAGING} {valid}))
        """


def _raw_select(source_format: str, compact: bool = True) -> str:
    """The SELECT producing RawEvents rows from the staging table for one source format.

    ``compact``: the last column is the field object's JSON text (for :data:`RAW_EVENT_STORE`); otherwise the
    ``MAP(VARCHAR, VARCHAR)`` of a RawEvents base table.
    """
    template = "CAST(SourceFile AS VARCHAR), {record}, $source_format AS SourceFormat"
    file_and_format = template.format(record="SourceRecord")
    if source_format in (EVTX, EVTX_JSON):
        valid = "" if source_format == EVTX else f"WHERE {_VALID_OBJECT}"
        # UserData wraps its fields in one element named after the event (e.g. LogFileCleared); it is read only for
        # events without EventData (declaring it in the shape made every record 40% dearer).
        user_data_element = "json_extract(Text, '$.Event.UserData.*')[1]"
        if not compact:
            record = _record_number_sql(source_format, "s.Event.System.EventRecordID")
            return _evtx_map_select(template.format(record=record), user_data_element, valid)
        # One json_extract_string with the list of paths parses each record once and reads all six values (half
        # the cost of json_transform with the nested shape); an object comes back as its minified JSON text.
        paths = ", ".join(sql_string(p) for p in (
            "$.Event.System.Channel", "$.Event.System.Provider.#attributes.Name", "$.Event.System.EventID",
            "$.Event.System.Computer", "$.Event.System.TimeCreated.#attributes.SystemTime", "$.Event.EventData",
            "$.Event.System.EventRecordID"))
        file_and_format = template.format(record=_record_number_sql(source_format, "v[7]"))
        # EventID is sometimes {"#attributes": {"Qualifiers": …}, "#text": 4688} (then its JSON text here).
        event_id = ("coalesce(TRY_CAST(v[3] AS INTEGER), "
                    "TRY_CAST(json_extract_string(v[3], '$.\"#text\"') AS INTEGER))")
        # An object comes back as its minified JSON text, so it starts with "{". (A string value that merely looks
        # like one is not checked here, which would cost a second parse of every event: the view reads FieldsJson
        # with TRY, so such a value gives a NULL map, as the MAP-typed table gives.)
        event_data = "CASE WHEN starts_with(v[6], '{') THEN v[6] END"
        # The VARCHAR cast keeps the whole expression VARCHAR: a JSON-typed branch made DuckDB cast (and so parse
        # again) every event's fields to JSON.
        user_data = f"CAST({user_data_element} AS VARCHAR)"
        fields = f"coalesce({event_data}, CASE WHEN v[6] IS NULL THEN {_object_or_null(user_data)} END)"
        return f"""
        SELECT $first_id + Position, {timestamp_sql('v[5]')}, v[1], v[2], {event_id}, v[4], {file_and_format},
               {fields}
        FROM (SELECT Position, SourceFile, SourceRecord, Text, json_extract_string(Text, [{paths}]) AS v
              FROM {STAGING} {valid})
        ORDER BY 3, 5, 1
        """
        # ORDER BY Channel, EventID, AssayEventId: each batch is stored grouped by event type (ids still follow
        # the records' order). Every mapping and the field report read FieldsJson for their event types only;
        # zstd decompresses whole runs of values, so with the types interleaved each of those eight scans paid
        # for nearly the whole column (0.33 CPU-s per 1M events to fetch the 5k Security 4688 ones, 0.40 for all).
        # Grouped, the mappings took 10.0 instead of 14.7 CPU-s per 1M events; the sort costs too little to see.
    if source_format == ECS:
        if compact:
            fields = (f"coalesce({_object_or_null('s.winlog.event_data')}, "
                      f"{_object_or_null('s.winlog.user_data')})")
        else:
            fields = "coalesce(s.winlog.event_data, s.winlog.user_data)"
        return f"""
        SELECT $first_id + Position, {timestamp_sql('s."@timestamp"')}, {canonical_channel_sql('s.winlog.channel')},
               s.winlog.provider_name,
               TRY_CAST(s.winlog.event_id AS INTEGER), coalesce(s.winlog.computer_name, s.host.name),
               {file_and_format}, {fields}
        FROM (SELECT Position, SourceFile, SourceRecord,
                     json_transform(Text, '{_ECS_JSON_SHAPE if compact else _ECS_SHAPE}') AS s
              FROM {STAGING} WHERE {_VALID_OBJECT})
        """
    # The other formats' fields are the record's own top-level fields: the compact store keeps the record's text.
    # The map is still built here once, so a record DuckDB cannot read as a field map fails at ingest, not later
    # in every query.
    fields = "CASE WHEN m IS NOT NULL THEN Text END" if compact else "m"
    if source_format in (DEFENDER_CSV, DEFENDER_JSON):
        return f"""
        SELECT $first_id + Position, {timestamp_sql("m['Timestamp']")}, $defender_table, 'Microsoft Defender XDR',
               NULL, m['DeviceName'], {file_and_format}, {fields}
        FROM (SELECT Position, SourceFile, SourceRecord, Text, json_transform(Text, '{_MAP_SHAPE}') AS m
              FROM {STAGING} WHERE {_VALID_OBJECT})
        """
    # OTRF and flat Sigma-style JSON: the record's own fields are the event's fields.
    timestamp = ", ".join(timestamp_sql(f"m['{key}']") for key in ("@timestamp", "UtcTime", "TimeCreated",
                                                                     "EventTime", "Timestamp"))
    return f"""
        SELECT $first_id + Position, coalesce({timestamp}), {canonical_channel_sql("m['Channel']")},
               coalesce(m['SourceName'], m['Provider_Name'], m['ProviderName']),
               TRY_CAST(coalesce(m['EventID'], m['EventId'], m['event_id']) AS INTEGER),
               coalesce(m['Hostname'], m['Computer'], m['host']), {file_and_format}, {fields}
        FROM (SELECT Position, SourceFile, SourceRecord, Text, json_transform(Text, '{_MAP_SHAPE}') AS m
              FROM {STAGING} WHERE {_VALID_OBJECT})
        """


def raw_events_is_compact(connection: duckdb.DuckDBPyConnection) -> bool:
    """Whether this database keeps RawEvents in the compact store (RawEvents is then a view over it)."""
    rows = connection.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = $1 AND NOT internal",
                              [RAW_EVENTS]).fetchall()
    return bool(rows[0][0])


def use_compact_raw_events(connection: duckdb.DuckDBPyConnection) -> None:
    """Make RawEvents a view over :data:`RAW_EVENT_STORE` (once per database; rows already there move over).

    Building a ``MAP(VARCHAR, VARCHAR)`` per event costs DuckDB more than parsing the EVTX record (every map's keys
    are checked for uniqueness), so ingestion stores each event's fields as the JSON text of its field object and
    the view turns it into the map only for the rows a query reads: ``Fields['Image']`` keeps its type and value.
    """
    if raw_events_is_compact(connection):
        return
    columns = canonical_tables()[RAW_EVENTS].columns
    plain = [c.name for c in columns if c.name != "Fields"]
    store_columns = ", ".join(f'"{c.name}" {c.duckdb_type}' for c in columns if c.name != "Fields")
    quoted = ", ".join(f'"{name}"' for name in plain)
    connection.execute("BEGIN TRANSACTION")
    try:
        # zstd for the JSON text: DuckDB's default analysis tries dictionary and FSST on every segment, which
        # measured 1.6 CPU-s and 58 MB per 200k evtx events against 0.8 CPU-s and 11 MB with zstd.
        connection.execute(f'CREATE TABLE IF NOT EXISTS "{RAW_EVENT_STORE}" ({store_columns}, '
                           '"FieldsJson" VARCHAR USING COMPRESSION zstd)')
        if connection.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = $1",
                              [RAW_EVENTS]).fetchall()[0][0]:
            connection.execute(f'INSERT INTO "{RAW_EVENT_STORE}" ({quoted}, "FieldsJson") '
                               f'SELECT {quoted}, to_json("Fields") FROM "{RAW_EVENTS}"')
            connection.execute(f'DROP TABLE "{RAW_EVENTS}"')
        # TRY: text that is not a JSON object gives a NULL map (as json_transform into the MAP-typed table gives)
        # instead of failing every query (about 4% of the map's cost).
        connection.execute(f'CREATE VIEW "{RAW_EVENTS}" AS SELECT {quoted}, '
                           f"TRY(json_transform(\"FieldsJson\", '{_MAP_SHAPE}')) AS \"Fields\" "
                           f'FROM "{RAW_EVENT_STORE}"')
        connection.execute("COMMIT")
    except Exception:
        connection.execute("ROLLBACK")
        raise


_POSITIONS: list[pa.Array] = [pa.array([], pa.int64())]


def positions(count: int) -> pa.Array:
    """0 … count-1 as int64: a slice of one array kept for the process (``pa.array(range(n))`` costs ~0.2 µs a
    row, a slice nothing)."""
    if len(_POSITIONS[0]) < count:
        _POSITIONS[0] = pa.array(range(max(count, 2 * len(_POSITIONS[0]), 1 << 16)), pa.int64())
    return _POSITIONS[0].slice(0, count)


@dataclass
class WrittenBatch:
    rows: int
    bad: list[BadRecord]


class RawEventWriter:
    """Appends batches to RawEvents; remembers the id range of this run for the mappings."""

    def __init__(self, engine: DuckDBEngine) -> None:
        self.engine = engine
        self.connection = engine.connection
        self.compact = raw_events_is_compact(self.connection)
        rows = self.connection.execute("SELECT coalesce(max(AssayEventId), 0) FROM RawEvents").fetchall()
        self.first_id = int(rows[0][0]) + 1
        self.next_id = self.first_id

    @property
    def last_id(self) -> int:
        return self.next_id - 1

    def write(self, batches: list[Batch]) -> WrittenBatch:
        """Insert batches of one kind (same format and target) in one statement; records that are not JSON
        objects come back as bad records with their line or element."""
        batches = [b for b in batches if b.texts]
        if not batches:
            return WrittenBatch(0, [])
        count = sum(len(b.texts) for b in batches)
        source = batches[0].source
        labels = [b.source.label for b in batches]
        # Small files are common (one recording per technique): many sources share one INSERT, each row keeps
        # its own file name through a dictionary-encoded column. (One Arrow array per source measured slower:
        # hundreds of small conversions per INSERT.)
        file_index = pa.array([i for i, b in enumerate(batches) for _ in range(len(b.texts))], pa.int32())
        staging = pa.table({
            "Position": positions(count),
            "SourceFile": pa.DictionaryArray.from_arrays(file_index, pa.array(labels, pa.string())),
            "SourceRecord": pa.array([r for b in batches for r in b.records], pa.int64()),
            "Text": pa.array([t for b in batches for t in b.texts], pa.string()),
        })
        # DuckDB scans an Arrow table one record batch per task: smaller batches let its threads share the work.
        staging = pa.Table.from_batches(staging.to_batches(max_chunksize=STAGING_CHUNK_ROWS))
        bad: list[BadRecord] = []
        parameters: dict[str, object] = {"first_id": self.next_id, "source_format": source.format}
        if source.defender_table:
            parameters["defender_table"] = source.defender_table
        target, fields = (RAW_EVENT_STORE, "FieldsJson") if self.compact else (RAW_EVENTS, "Fields")
        sql = f"INSERT INTO {target} ({_PLAIN_RAW_COLUMNS}, {fields}) {_raw_select(source.format, self.compact)}"
        self.connection.register(STAGING, staging)
        try:
            inserted = int(self.connection.execute(sql, parameters).fetchall()[0][0])
            if source.format != EVTX and inserted < count:
                rejected = self.connection.execute(
                    f"SELECT CAST(SourceFile AS VARCHAR), SourceRecord, json_valid(Text) FROM {STAGING} "
                    f"WHERE NOT json_valid(Text) OR json_type(Text) <> 'OBJECT' ORDER BY Position").fetchall()
                unit = "element" if source.json_array else "line"
                for label, record, is_valid in rejected:
                    reason = "not a JSON object" if is_valid else "JSON does not parse"
                    bad.append(BadRecord(str(label), f"{unit} {record}", reason))
        except Exception as error:
            import duckdb

            if isinstance(error, duckdb.Error):
                raise EngineError(f"DuckDB failed loading {', '.join(labels[:3])}: {error}", sql=sql) from error
            raise
        finally:
            self.connection.unregister(STAGING)
        self.next_id += count
        return WrittenBatch(inserted, bad)


def run_mappings(engine: DuckDBEngine, mappings: tuple[Mapping, ...], defender_tables: set[str], first_id: int,
                 last_id: int, leftover_keys: dict[str, list[str]] | None = None,
                 source: str = RAW_EVENT_STORE) -> dict[str, int]:
    """Map RawEvents ``first_id..last_id`` into the typed tables; rows added per (table, mapping).

    ``leftover_keys``: per mapping, the keys its events have beyond the consumed ones (:func:`field_report`);
    with them the leftover column is built from the same JSON pass as the columns.
    """
    added: dict[str, int] = {}
    if last_id < first_id:
        return added
    connection = engine.connection
    statements = [(m.name, m.insert_sql(first_id, last_id, _constant_leftover_keys(m, leftover_keys), source))
                  for m in mappings]
    statements += [(f"defender:{t}", defender_insert_sql(t, first_id, last_id)) for t in sorted(defender_tables)]
    for name, sql in statements:
        try:
            rows = connection.execute(sql).fetchall()
        except Exception as error:
            raise EngineError(f"mapping {name} failed: {error}", sql=sql) from error
        added[name] = int(rows[0][0]) if rows else 0
    return added


#: Above this many leftover keys (SecurityEvent takes every Security event: 130 keys in evtx-attack-samples) one
#: path per key costs more than listing each event's own keys and values (measured 1.16 vs 0.76 CPU-s per 38k
#: events; with 5 keys, 0.71 vs 1.15 per 36k).
MAX_CONSTANT_LEFTOVER_KEYS = 40


def _constant_leftover_keys(mapping: Mapping, leftover_keys: dict[str, list[str]] | None) -> list[str] | None:
    keys = None if leftover_keys is None else leftover_keys.get(mapping.name, [])
    return keys if keys is not None and len(keys) <= MAX_CONSTANT_LEFTOVER_KEYS else None


@dataclass
class FieldReport:
    """Per mapping: the fields no column used and how many events had them (the summary's ``unmapped_fields``),
    and the same keys in document order (what the leftover column is built from)."""

    unmapped: dict[str, dict[str, int]]
    leftover_keys: dict[str, list[str]]


def field_report(engine: DuckDBEngine, mappings: tuple[Mapping, ...], first_id: int, last_id: int,
                 source: str = RAW_EVENT_STORE) -> FieldReport:
    """The fields the mappings leave to their leftover column, from the rows ``first_id..last_id`` of ``source``
    (:func:`assay.ingest.mapping.raw_source`)."""
    report = FieldReport({}, {})
    if last_id < first_id:
        return report
    connection = engine.connection
    # Events of one type nearly always carry the same field names: one scan groups the new events by (Channel,
    # EventID, key list), and each mapping reads the few distinct key lists instead of every event's keys.
    # Only events some mapping takes can have unmapped fields: the others are not parsed again.
    taken = " OR ".join(f"({m.where_sql()})" for m in mappings) or "FALSE"
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE {KEY_SETS} AS SELECT Channel, EventID, TRY(json_keys(FieldsJson)) AS Keys, "
        f"count(*) AS Events FROM {source} WHERE AssayEventId BETWEEN {int(first_id)} AND {int(last_id)} "
        f"AND FieldsJson IS NOT NULL AND ({taken}) GROUP BY ALL").fetchall()
    try:
        for mapping in mappings:
            excluded = mapping.consumed_fields | set(SYSTEM_FIELD_KEYS)
            counts: dict[str, int] = {}
            orders: list[list[str]] = []
            rows = connection.execute(f"SELECT Keys, Events FROM {KEY_SETS} WHERE Keys IS NOT NULL AND {mapping.where_sql()} "
                                      "ORDER BY Events DESC").fetchall()
            for keys, events in rows:
                order = [key for key in keys if key not in excluded]
                orders.append(order)
                for key in order:
                    counts[key] = counts.get(key, 0) + int(events)
            report.leftover_keys[mapping.name] = document_order(orders)
            if counts:
                report.unmapped[mapping.name] = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    finally:
        connection.execute(f"DROP TABLE IF EXISTS {KEY_SETS}").fetchall()
    return report


def document_order(orders: list[list[str]]) -> list[str]:
    """One order of keys that keeps the order of every list when there is one (a schema version adding fields
    keeps the others' order), so the leftover JSON lists them as the events do. Ties, and lists that disagree,
    go to the first seen (the lists come commonest first)."""
    first_seen: dict[str, int] = {}
    after: dict[str, set[str]] = {}
    for order in orders:
        for index, key in enumerate(order):
            first_seen.setdefault(key, len(first_seen))
            after.setdefault(key, set())
            if index:
                after[order[index - 1]].add(key)
    waiting = dict.fromkeys(first_seen, 0)
    for followers in after.values():
        for key in followers:
            waiting[key] += 1
    result: list[str] = []
    remaining = set(first_seen)
    while remaining:
        ready = [key for key in remaining if waiting[key] == 0]
        # Nothing ready: the lists disagree (a cycle); the first seen of the rest goes next.
        key = min(ready or remaining, key=first_seen.__getitem__)
        remaining.discard(key)
        result.append(key)
        for follower in after[key]:
            waiting[follower] -= 1
    return result


def unmapped_fields(engine: DuckDBEngine, mappings: tuple[Mapping, ...], first_id: int,
                    last_id: int) -> dict[str, dict[str, int]]:
    """Per mapping: the source fields no column used (kept in AdditionalFields) and how many events had them."""
    compact = raw_events_is_compact(engine.connection)
    return field_report(engine, mappings, first_id, last_id, raw_source(compact)).unmapped


def events_without_mapping(engine: DuckDBEngine, mappings: tuple[Mapping, ...], first_id: int,
                           last_id: int) -> list[tuple[str | None, int | None, int]]:
    """(Channel, EventID, count) of new events no mapping took: they live in RawEvents only."""
    if last_id < first_id:
        return []
    conditions = " OR ".join(f"({m.where_sql()})" for m in mappings) or "FALSE"
    rows = engine.connection.execute(
        f"SELECT Channel, EventID, count(*) FROM RawEvents WHERE AssayEventId BETWEEN {first_id} AND {last_id} "
        f"AND SourceFormat NOT LIKE 'defender-%' AND NOT coalesce({conditions}, FALSE) "
        f"GROUP BY ALL ORDER BY count(*) DESC, Channel, EventID").fetchall()
    return [(r[0], r[1], int(r[2])) for r in rows]


__all__ = ["RAW_EVENT_STORE", "RawEventWriter", "positions", "run_mappings", "sql_string", "use_compact_raw_events"]
