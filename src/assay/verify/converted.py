"""Converted forms run on real local engines: pySigma's SQLite output on Python's sqlite3, its Databricks / Spark SQL
output on local PySpark, and its Elastic EQL output on the ``eql`` package (AGPL, the optional ``[eql]`` extra).

Each engine gets the scenario's own events, laid out the way that platform stores them:

* SQLite and Spark: one ``logs`` table, a row per event-log record (every event of the scenario, or every record
  of a recording), a column per event field: the layout Zircolite and a Sysmon table in a lakehouse use. The rule
  is converted through pySigma's Sysmon pipeline, so its logsource becomes an event-id condition in the query, as in
  Zircolite's rule sets; that is the only logsource filter. A field the query names but no event carries is a NULL
  column (the platform would have the column, empty). A field
  Windows spells with spaces (``Threat Name`` in Defender's log) is also a column without them (``ThreatName``),
  the spelling Sigma rules use. Whole numbers are stored as numbers (ports compare as numbers). A ``timestamp`` column (ISO 8601, UTC) carries the event time the SQLite backend's
  correlation queries read. SQLite has no ``REGEXP`` function of its own: as Zircolite does, one is registered
  (with RE2, the project's engine for user patterns) for the backend's ``|re`` output.
* EQL: the scenario's Winlogbeat ECS documents, typed by ``event.category``. A real recording has none: its Sysmon
  records are turned into ECS documents with the field names pySigma's ``ecs_windows`` pipeline maps Sysmon fields
  to (what Winlogbeat's Sysmon module writes for them); fields it does not map stay under
  ``winlog.event_data``. The Elasticsearch pipeline reads
  ``<field>.caseless``, a lower-case-normalized keyword sub-field that only exists in an index mapping; it is
  emulated by reading ``<field>`` itself, which is equivalent because EQL's ``:`` and ``like~`` compare
  case-insensitively.

Nothing here claims more than it ran: an engine that is not installed reports why, and its results are skips.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assay.engine import DuckDBEngine
from assay.errors import VerifyError

#: Converted targets Assay executes, and the telemetry their engine reads.
LOCAL_TARGETS: dict[str, str] = {"sqlite": "sysmon", "spark-sql": "sysmon", "elastic-eql": "ecs"}
#: How many times a query is retried after adding a column it named that no event has.
MAX_MISSING_COLUMNS = 64
#: Event columns every ``logs`` row has besides the event's own fields.
RECORD_COLUMNS = ("EventID", "Channel", "Computer", "timestamp", "Provider_Name")


@dataclass(frozen=True)
class LocalResult:
    """What a converted query returned on a local engine."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    #: The statement that ran (for SQLite and Spark the full SELECT, for EQL the query after emulation).
    statement: str
    #: What the run had to do to the data or the query (NULL columns added, sub-fields emulated).
    notes: tuple[str, ...] = ()


ENGINE_LABELS = {"sqlite": f"SQLite {sqlite3.sqlite_version} via Python's sqlite3",
                 "spark-sql": "Apache Spark SQL, local PySpark", "elastic-eql": "the eql package's EQL engine"}


def engine_label(target: str) -> str:
    """The engine a local converted form ran on, for the result's reason."""
    return ENGINE_LABELS.get(target, target)


def engine_unavailable(target: str) -> str | None:
    """Why a local engine cannot run here (None when it can)."""
    if target == "spark-sql":
        from assay.engine.spark_engine import pyspark_available

        reason = pyspark_available()
        return f"Spark is not available: {reason} (pip install 'assay[spark]' and a Java runtime)" if reason else None
    if target == "elastic-eql":
        try:
            import eql  # noqa: F401
        except ImportError:
            return "the eql package is not installed (AGPL-3.0, optional: pip install 'assay[eql]')"
    return None


# --------------------------------------------------------------------------------------------------------------
# Events as a platform stores them
# --------------------------------------------------------------------------------------------------------------


def event_records(engine: DuckDBEngine) -> list[dict[str, Any]]:
    """Every event-log record of a scenario database, flat: EventID, Channel, Computer and the event's fields."""
    result = engine.run('SELECT "EventID", "Channel", "Computer", "Fields", "Timestamp", "Provider" FROM "RawEvents" '
                        'ORDER BY "AssayEventId"')
    records = []
    for event_id, channel, computer, fields, when, provider in result.rows:
        # Provider_Name: the System field Sigma rules name the provider by (Service Control Manager for 7045).
        record: dict[str, Any] = {"EventID": str(event_id) if event_id is not None else None, "Channel": channel,
                                  "Computer": computer, "Provider_Name": provider}
        for name, value in dict(fields or {}).items():
            record.setdefault(str(name), value)
            if " " in str(name):
                record.setdefault(str(name).replace(" ", ""), value)
        # The event time, as the SQLite and Databricks backends' correlation queries read it (julianday() /
        # to_timestamp() parse 'YYYY-MM-DD HH:MM:SS.fff'); an event field of that name wins.
        if when is not None and not any(name.lower() == "timestamp" for name in record):
            record["timestamp"] = when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        records.append(record)
    return records


def _columns(records: Sequence[dict[str, Any]]) -> list[str]:
    """Every field name of the records, once: SQLite and Spark compare column names case-insensitively, so
    ``ProcessId`` (Sysmon) and ``ProcessID`` (another provider) are one column, named as first seen."""
    columns = list(RECORD_COLUMNS)
    seen = {name.lower() for name in columns}
    for record in records:
        for name in record:
            if name.lower() not in seen:
                seen.add(name.lower())
                columns.append(name)
    return columns


def _with_named_columns(columns: list[str], query: str, dialect: str) -> list[str]:
    """The columns plus those the query names that no event has (NULL columns), found by parsing the query
    with sqlglot; a query sqlglot cannot parse falls back to the engine's own "no such column" errors."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(query, read=dialect)
    except SqlglotError:
        return columns
    known = {name.lower() for name in columns}
    # Names the query defines itself (CTEs, aliases such as a correlation's ts, eid, g0) and SQLite's built-in row
    # id are not event fields: a NULL column of that name would shadow them.
    known |= {"rowid", "oid", "_rowid_"}
    known |= {alias.alias.lower() for alias in tree.find_all(exp.Alias) if alias.alias}
    known |= {cte.alias.lower() for cte in tree.find_all(exp.CTE) if cte.alias}
    named = [column.name for column in tree.find_all(exp.Column) if column.name and column.name.lower() not in known]
    return [*columns, *dict.fromkeys(named)]


def _row(record: dict[str, Any], columns: Sequence[str]) -> tuple[str | None, ...]:
    """A record's values in column order; a field spelled with other letter case fills its column."""
    folded: dict[str, Any] = {}
    for name, value in record.items():
        if value is not None:
            folded.setdefault(name.lower(), value)
    return tuple(_text(folded.get(name.lower())) for name in columns)


# --------------------------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------------------------

_SQLITE_MISSING = re.compile(r"no such column: (?:logs\.)?\"?([^\s\"]+)\"?")


def run_sqlite(query: str, records: Sequence[dict[str, Any]]) -> LocalResult:
    """The pySigma SQLite backend's ``SELECT … FROM logs WHERE …`` on an in-memory sqlite3 database."""
    # Missing fields come from SQLite's own "no such column" errors, not from parsing: a correlation query's CTEs
    # name columns of their own (ts, g0, rowid…) that must not be added to the table.
    columns = _columns(records)
    added: list[str] = []
    with sqlite3.connect(":memory:") as connection:
        connection.create_function("REGEXP", 2, _regexp, deterministic=True)
        for _ in range(MAX_MISSING_COLUMNS):
            connection.execute("DROP TABLE IF EXISTS logs")
            # Untyped columns, and whole numbers stored as numbers: with TEXT columns SQLite compares
            # DestinationPort >= 49152 as text ('8181' >= '49152' is true), which no log store does.
            quoted = ", ".join('"' + name.replace('"', '""') + '"' for name in columns)
            connection.execute(f"CREATE TABLE logs ({quoted})")
            placeholders = ", ".join("?" for _ in columns)
            connection.executemany(f"INSERT INTO logs VALUES ({placeholders})",
                                   [tuple(_number_or_text(v) for v in _row(record, columns)) for record in records])
            try:
                cursor = connection.execute(query)
            except sqlite3.OperationalError as error:
                missing = _SQLITE_MISSING.search(str(error))
                if missing is None or missing.group(1).lower() in {c.lower() for c in columns}:
                    raise VerifyError(f"SQLite rejected the converted query: {error}") from error
                columns.append(missing.group(1))
                added.append(missing.group(1))
                continue
            names = tuple(description[0] for description in cursor.description or ())
            rows = tuple(tuple(row) for row in cursor.fetchall())
            break
        else:
            raise VerifyError(f"the converted query names more than {MAX_MISSING_COLUMNS} fields no event has")
    connection.close()
    return LocalResult(names, rows, query, _null_note(added))


def _regexp(pattern: str | None, value: str | None) -> bool:
    """SQLite's ``value REGEXP pattern`` (called as regexp(pattern, value)); NULL never matches."""
    import re2

    if pattern is None or value is None:
        return False
    try:
        return re2.search(pattern, str(value)) is not None
    except re2.error as error:
        raise VerifyError(f"the converted query's regular expression {pattern!r} is not valid RE2: {error}") from error


def _number_or_text(value: str | None) -> int | str | None:
    """A decimal whole number as an int (as a log store types a port or an event id), anything else unchanged:
    leading zeros, signs, hex and spaces keep the text."""
    if value is not None and value.isascii() and value.isdigit() and (value == "0" or not value.startswith("0")):
        return int(value)
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _null_note(added: Sequence[str]) -> tuple[str, ...]:
    if not added:
        return ()
    return (f"no event of the scenario has {', '.join(added)}: the logs table has "
            f"{'it' if len(added) == 1 else 'them'} as NULL column{'s' if len(added) > 1 else ''}",)


# --------------------------------------------------------------------------------------------------------------
# Spark SQL
# --------------------------------------------------------------------------------------------------------------

_SPARK_MISSING = re.compile(r"name `([^`]+)` cannot be resolved")


def run_spark(predicate: str, records: Sequence[dict[str, Any]], session: Any) -> LocalResult:
    """The pySigma Databricks backend's predicate as ``SELECT * FROM <view> WHERE <predicate>`` on local Spark."""
    from pyspark.sql.types import StringType, StructField, StructType

    present = _columns(records)
    columns = _with_named_columns(present, f"SELECT * FROM logs WHERE {predicate}", "spark")
    added: list[str] = columns[len(present):]
    view = f"logs_{uuid.uuid4().hex[:12]}"
    try:
        for _ in range(MAX_MISSING_COLUMNS):
            schema = StructType([StructField(name, StringType(), True) for name in columns])
            frame = session.createDataFrame([_row(record, columns) for record in records], schema)
            frame.createOrReplaceTempView(view)
            statement = f"SELECT * FROM {view} WHERE {predicate}"
            try:
                result = session.sql(statement)
                rows = result.collect()
            except Exception as error:  # pyspark raises AnalysisException and friends
                missing = _SPARK_MISSING.search(str(error))
                if missing is None or missing.group(1).lower() in {c.lower() for c in columns}:
                    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                    raise VerifyError(f"Spark rejected the converted query: {first_line}") from error
                columns.append(missing.group(1))
                added.append(missing.group(1))
                continue
            return LocalResult(tuple(result.columns), tuple(tuple(row) for row in rows),
                               statement.replace(view, "logs"), _null_note(added))
        raise VerifyError(f"the converted query names more than {MAX_MISSING_COLUMNS} fields no event has")
    finally:
        session.catalog.dropTempView(view)


# --------------------------------------------------------------------------------------------------------------
# Elastic EQL
# --------------------------------------------------------------------------------------------------------------

_CASELESS = re.compile(r"\b([A-Za-z_@][\w.@]*)\.caseless\b")
#: ECS fields shown as evidence for an EQL match.
EQL_EVIDENCE = ("@timestamp", "event.code", "host.name", "user.name", "process.executable", "process.command_line",
                "process.pe.original_file_name", "process.parent.executable")


def _dotted(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


#: Sysmon event id -> (Sigma category, ECS event.category).
SYSMON_CATEGORIES: dict[str, tuple[str, str]] = {
    "1": ("process_creation", "process"), "3": ("network_connection", "network"), "5": ("process_termination",
    "process"), "7": ("image_load", "library"), "11": ("file_event", "file"), "12": ("registry_add", "registry"),
    "13": ("registry_set", "registry"), "14": ("registry_rename", "registry"), "22": ("dns_query", "network"),
    "23": ("file_delete", "file")}


def _ecs_mappings() -> tuple[dict[str, Any], dict[str, Any]]:
    """(Sysmon field -> ECS field, Sysmon field -> ((kind, category, ECS field), …)) from pySigma's pipeline."""
    from sigma.pipelines.elasticsearch.windows import ecs_windows, ecs_windows_variable_mappings
    from sigma.processing.transformations import FieldMappingTransformation

    general: dict[str, Any] = {}
    for item in ecs_windows().items:
        if item.identifier == "ecs_windows_field_mapping" and isinstance(item.transformation,
                                                                         FieldMappingTransformation):
            general = {str(name): ecs for name, ecs in item.transformation.mapping.items()}
    return general, dict(ecs_windows_variable_mappings)


def _set_dotted(document: dict[str, Any], path: str, value: Any) -> None:
    parts = path.removesuffix(".caseless").split(".")
    target = document
    for part in parts[:-1]:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            return  # a scalar already sits where a parent object would go: keep the first
        target = child
    target.setdefault(parts[-1], value)


def ecs_documents(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """ECS documents for event-log records (a recording): Sysmon fields at the ECS names the ecs_windows pipeline
    maps them to, ``event.category`` from the Sysmon event id, the raw fields under ``winlog.event_data``."""
    general, variable = _ecs_mappings()
    documents = []
    for record in records:
        if "sysmon" not in str(record.get("Channel") or "").lower():
            continue
        event_id = str(record.get("EventID"))
        sigma_category, ecs_category = SYSMON_CATEGORIES.get(event_id, ("", "any"))
        fields = {k: v for k, v in record.items() if k not in RECORD_COLUMNS and v is not None}
        document: dict[str, Any] = {"event": {"code": event_id, "category": [ecs_category]},
                                    "host": {"name": record.get("Computer")},
                                    "winlog": {"channel": record.get("Channel"), "event_data": fields}}
        for name, value in fields.items():
            targets = [ecs for kind, category, ecs in variable.get(name, ())
                       if kind == "category" and category == sigma_category] or general.get(name) or []
            for ecs_field in [targets] if isinstance(targets, str) else targets:
                _set_dotted(document, str(ecs_field), value)
        documents.append(document)
    return documents


def run_eql(query: str, documents: Sequence[dict[str, Any]]) -> LocalResult:
    """The Elasticsearch backend's EQL on the scenario's ECS documents, with the eql package's engine."""
    import eql

    emulated = sorted(set(_CASELESS.findall(query)))
    statement = _CASELESS.sub(r"\1", query)
    try:
        with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
            parsed = eql.parse_query(statement)
    except eql.EqlError as error:
        raise VerifyError(f"the eql engine cannot parse the converted query: {error}") from error
    hits: list[Any] = []
    engine = eql.PythonEngine()
    engine.add_output_hook(lambda result: hits.extend(result.events))
    engine.add_query(parsed)
    events = []
    for document in documents:
        category = _dotted(document, "event.category")
        kind = category[0] if isinstance(category, list) and category else (category or "any")
        events.append(eql.Event(str(kind), 0, document))
    engine.stream_events(events)
    rows = tuple(tuple(_dotted(hit.data, name) for name in EQL_EVIDENCE) for hit in hits)
    notes = (f"{', '.join(f + '.caseless' for f in emulated)}: a lower-case keyword sub-field of the Elastic index "
             f"mapping, emulated by reading {', '.join(emulated)} (EQL's : and like~ are case-insensitive)",
             ) if emulated else ()
    return LocalResult(EQL_EVIDENCE, rows, statement, notes)
