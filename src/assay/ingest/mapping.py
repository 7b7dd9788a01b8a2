"""Declarative mappings (``mappings/*.yml``) from RawEvents to the typed tables, compiled to DuckDB SQL.

One YAML file per source event type says which events it takes (channel, event ids) and how each target column is
computed from the event's fields with a small vocabulary of transforms (``field``, ``basename``, ``pid``, ``hash``…).
The engine turns a mapping into one ``INSERT INTO <table> SELECT … FROM RawEvents WHERE …`` over a range of
AssayEventIds, so a million events map in one set-based statement instead of a million Python calls. Fields a
mapping does not use land in the table's AdditionalFields (JSON) and are listed in the ingest summary.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from assay.errors import IngestError, SourceSpan, did_you_mean
from assay.schema import canonical_tables

#: Keys the writer adds to every evtx-shaped event's Fields (System values); never "unmapped".
SYSTEM_FIELD_KEYS = ("EventID", "Channel", "Computer", "Provider_Name")
#: The compact RawEvents store the mappings read (RawEvents' columns with the field object as JSON text in
#: FieldsJson; RawEvents is a view over it, see :func:`assay.ingest.writer.use_compact_raw_events`).
RAW_EVENT_STORE = "RawEventStore"
#: The same relation over a RawEvents table whose Fields is a MAP (a database ingestion keeps in that form).
RAW_EVENTS_AS_STORE = '(SELECT * EXCLUDE ("Fields"), to_json("Fields") AS FieldsJson FROM "RawEvents")'


def raw_source(compact: bool) -> str:
    """The relation the mappings read: RawEvents' columns and each event's field object as JSON text."""
    return RAW_EVENT_STORE if compact else RAW_EVENTS_AS_STORE
RAW_COLUMNS = ("AssayEventId", "Timestamp", "Channel", "Provider", "EventID", "Computer", "SourceFile",
               "SourceRecord", "SourceFormat")
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_.@#\- ]+$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.@#\- ]+)\}")
HIVES = {
    "HKLM": "HKEY_LOCAL_MACHINE", "HKU": "HKEY_USERS", "HKCU": "HKEY_CURRENT_USER", "HKCR": "HKEY_CLASSES_ROOT",
    "HKCC": "HKEY_CURRENT_CONFIG",
}
TRANSFORMS = ("field", "int", "pid", "basename", "domain", "user", "hash", "timestamp", "raw", "const", "map",
              "registry_key", "registry_parent", "registry_leaf", "sql", "coalesce", "nonempty")


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def field_sql(name: str) -> str:
    """The SQL reading one original field from RawEvents.Fields (NULL when absent)."""
    return f"Fields[{sql_string(name)}]"


def json_path(name: str) -> str:
    """The JSON path of one top-level key, quoted so spaces, dots and ``#`` in field names are literal."""
    return '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def field_alias(name: str) -> str:
    """The column a mapping's inner query gives one field (each field is read once per row, not per use).

    SQL identifiers are case-insensitive but field names are not (``ProcessId`` and ``ProcessID`` are different
    fields of Security events), so the alias carries a digest of the exact name.
    """
    digest = hashlib.blake2s(name.encode("utf-8"), digest_size=4).hexdigest()
    return '"field:' + name.replace('"', '""') + ":" + digest + '"'


def timestamp_sql(expr: str) -> str:
    """A VARCHAR time (ISO 8601 with T or space, Z/UTC suffix, up to 7 decimals, or an offset) as a UTC TIMESTAMP."""
    # DuckDB's TIMESTAMP cast accepts Z, " UTC" and 7 decimals but ignores a non-zero offset; only strings that
    # end in one take the (slower) TIMESTAMPTZ path, converted to UTC whatever the session time zone.
    # A cheap look at the sign position (…+02:00, …-0500) instead of a regular expression on every row.
    return (f"CASE WHEN length({expr}) > 10 AND (substr({expr}, -6, 1) IN ('+', '-') "
            f"OR substr({expr}, -5, 1) IN ('+', '-')) "
            f"THEN timezone('UTC', TRY_CAST({expr} AS TIMESTAMPTZ)) ELSE TRY_CAST({expr} AS TIMESTAMP) END")


def registry_key_sql(expr: str) -> str:
    """A Sysmon registry path (``HKLM\\…``, ``HKU\\…``, ``\\REGISTRY\\MACHINE\\…``) in Defender's spelling."""
    result = expr
    for short, long in HIVES.items():
        result = f"regexp_replace({result}, '^{short}(\\\\|$)', '{long}\\1', 'i')"
    result = f"regexp_replace({result}, '^\\\\REGISTRY\\\\MACHINE(\\\\|$)', 'HKEY_LOCAL_MACHINE\\1', 'i')"
    result = f"regexp_replace({result}, '^\\\\REGISTRY\\\\USER(\\\\|$)', 'HKEY_USERS\\1', 'i')"
    return result


@dataclass(frozen=True)
class CompiledColumn:
    name: str
    sql: str


@dataclass(frozen=True)
class Mapping:
    """One source event type → one table: which events, and how each column is computed."""

    name: str
    description: str
    table: str
    channel: str | None
    event_ids: tuple[int, ...]
    columns: tuple[CompiledColumn, ...]
    consumed_fields: frozenset[str]
    leftover_column: str | None  # AdditionalFields / EventData: JSON of the fields no column uses
    file: str
    #: Channels left out (with no ``channel``: every other channel, e.g. WindowsEvent takes all but Security).
    exclude_channels: tuple[str, ...] = ()

    def where_sql(self) -> str:
        conditions = []
        if self.channel is not None:
            conditions.append(f"Channel = {sql_string(self.channel)}")
        if self.exclude_channels:
            listed = ", ".join(sql_string(c) for c in self.exclude_channels)
            conditions.append(f"Channel IS NOT NULL AND Channel NOT IN ({listed})")
        if self.event_ids:
            conditions.append(f"EventID IN ({', '.join(str(i) for i in self.event_ids)})")
        return " AND ".join(conditions) if conditions else "TRUE"

    def excluded_keys_sql(self) -> str:
        """The constant list of the keys a column consumed (plus the System keys): never leftovers."""
        return "[" + ", ".join(sql_string(f) for f in sorted(self.consumed_fields | set(SYSTEM_FIELD_KEYS))) + "]"

    def leftover_sql(self, leftover_keys: Sequence[str] | None = None) -> str:
        """The JSON object of the fields no column used, non-empty values only, as text values.

        Spelled by concatenation, byte for byte what ``to_json(map_from_entries(…))`` of the event's field map
        gives, without building a MAP (DuckDB checks every map's keys for uniqueness, which costs more than parsing
        the JSON). ``leftover_keys``: the keys this ingest's events have beyond the consumed ones (from the
        unmapped-field report, in document order); their values come with the consumed fields' from the one JSON
        pass of :meth:`insert_sql`. Without them every event's keys and values are listed and filtered (slower).
        """
        if leftover_keys is None:
            return ("'{' || array_to_string(list_transform(assay_leftover, "
                    "lambda e: to_json(e[1]) || ':' || to_json(e[2])), ',') || '}'")
        if not leftover_keys:
            return "CASE WHEN FieldsJson IS NOT NULL THEN '{}' END"
        members = ", ".join(
            f"CASE WHEN {alias} <> '' THEN {sql_string(json.dumps(key, ensure_ascii=False) + ':')} || to_json({alias}) END"
            for key, alias in ((k, field_alias(k)) for k in leftover_keys))
        return f"CASE WHEN assay_values IS NOT NULL THEN '{{' || concat_ws(',', {members}) || '}}' END"

    def leftover_entries_sql(self) -> str:
        """(key, value) of the fields no column consumed, empty values dropped (``assay_leftover``)."""
        # list_contains on a constant list measured 25% cheaper than NOT IN (…) inside the lambda.
        return (f"list_filter(list_zip(TRY(json_keys(FieldsJson)), TRY(json_extract_string(FieldsJson, '$.*'))), "
                f"lambda e: NOT list_contains({self.excluded_keys_sql()}, e[1]) AND e[2] IS NOT NULL "
                f"AND e[2] <> '')")

    def insert_sql(self, first_id: int, last_id: int, leftover_keys: Sequence[str] | None = None,
                   source: str = RAW_EVENT_STORE) -> str:
        """The statement that maps store rows ``first_id..last_id`` (of :func:`raw_source`) into the table.

        Every field read (consumed, and the ``leftover_keys`` of :meth:`leftover_sql`) comes from one
        ``json_extract_string`` with the list of their paths: the field object is parsed once per row. TRY: the
        writer does not validate the JSON (a second parse); text that is not an object reads as no fields.
        """
        schema = canonical_tables()[self.table]
        names = [c.name for c in self.columns]
        selects = []
        for column in self.columns:
            duck_type = schema.column(column.name).duckdb_type  # type: ignore[union-attr]
            selects.append(f"TRY_CAST({column.sql} AS {duck_type})")
        read = sorted(self.consumed_fields)
        if self.leftover_column:
            names.append(self.leftover_column)
            selects.append(self.leftover_sql(leftover_keys))
            read += [k for k in leftover_keys or () if k not in self.consumed_fields]
        names += ["AssayEventId", "AssaySource"]
        selects += ["AssayEventId", "SourceFile || '#' || CAST(SourceRecord AS VARCHAR)"]
        quoted = ", ".join(f'"{n}"' for n in names)
        lookups = "".join(f", assay_values[{i}] AS {field_alias(f)}" for i, f in enumerate(read, start=1))
        paths = "[" + ", ".join(sql_string(json_path(f)) for f in read) + "]"
        values = f", TRY(json_extract_string(FieldsJson, {paths})) AS assay_values" if read else ""
        if self.leftover_column and leftover_keys is None:
            values += f", {self.leftover_entries_sql()} AS assay_leftover"
        return (f'INSERT INTO "{self.table}" ({quoted}) SELECT {", ".join(selects)} FROM ('
                f"SELECT *{lookups} FROM (SELECT *{values} FROM {source} "
                f"WHERE AssayEventId BETWEEN {int(first_id)} AND {int(last_id)} AND {self.where_sql()}))")

    def unmapped_sql(self, first_id: int, last_id: int, key_sets: str | None = None) -> str:
        """Field names (and how many events had them) that this mapping left to the leftover column.

        ``key_sets``: a table of (Channel, EventID, Keys, Events) already grouped from RawEvents rows
        ``first_id..last_id`` (the writer builds it once for all mappings); without it RawEvents is scanned.
        """
        excluded = self.excluded_keys_sql()[1:-1]
        if key_sets is not None:
            return (f"SELECT key, sum(Events) FROM (SELECT unnest(Keys) AS key, Events FROM {key_sets} "
                    f"WHERE {self.where_sql()}) WHERE key NOT IN ({excluded}) GROUP BY key "
                    f"ORDER BY sum(Events) DESC, key")
        return (f"SELECT key, count(*) FROM (SELECT unnest(map_keys(Fields)) AS key FROM RawEvents "
                f"WHERE AssayEventId BETWEEN {int(first_id)} AND {int(last_id)} AND {self.where_sql()}) "
                f"WHERE key NOT IN ({excluded}) GROUP BY key ORDER BY count(*) DESC, key")


class _Compiler:
    """Turns one column spec (a one-key dict) into SQL, remembering which source fields it read."""

    def __init__(self, file: str, mapping_name: str) -> None:
        self.file = file
        self.mapping_name = mapping_name
        self.consumed: set[str] = set()

    def error(self, message: str) -> IngestError:
        return IngestError(f"mapping {self.mapping_name!r}: {message}", SourceSpan.of_file(self.file),
                           hint="see src/assay/ingest/mappings/README.md for the transform vocabulary")

    def field(self, name: Any) -> str:
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise self.error(f"bad field name {name!r}")
        self.consumed.add(name)
        return field_alias(name)

    def compile(self, spec: Any, column: str) -> str:
        if isinstance(spec, str):
            return self.field(spec)
        if not isinstance(spec, dict) or len(spec) != 1:
            raise self.error(f"column {column}: expected one transform like {{field: Image}}, got {spec!r}")
        kind, arg = next(iter(spec.items()))
        if kind == "field":
            return self.field(arg)
        if kind == "nonempty":
            return f"nullif(nullif(trim({self.field(arg)}), ''), '-')"
        if kind == "int":
            return f"TRY_CAST({self.field(arg)} AS BIGINT)"
        if kind == "pid":
            # Security log PIDs are hex strings ("0x1a2c"), Sysmon's are decimal; DuckDB casts both.
            value = self.field(arg)
            return f"TRY_CAST(lower(trim({value})) AS BIGINT)"
        if kind == "basename":
            return f"nullif(regexp_extract({self.field(arg)}, '([^\\\\/]*)$', 1), '')"
        if kind == "domain":
            value = self.field(arg)
            return f"CASE WHEN contains({value}, '\\') THEN split_part({value}, '\\', 1) END"
        if kind == "user":
            value = self.field(arg)
            return f"CASE WHEN contains({value}, '\\') THEN split_part({value}, '\\', 2) ELSE {value} END"
        if kind == "hash":
            if not isinstance(arg, dict) or set(arg) != {"field", "name"}:
                raise self.error(f"column {column}: hash takes {{field: Hashes, name: SHA256}}")
            name = str(arg["name"])
            if not re.fullmatch(r"[A-Z0-9]+", name):
                raise self.error(f"column {column}: bad hash name {name!r}")
            # "NAME=" at the start or after a comma, spelled as "after a comma" in the text with one prepended: the
            # same match without the alternation (0.32 vs 0.44 CPU-s per 260k Sysmon 1/7 events and hash).
            return (f"nullif(lower(regexp_extract(',' || {self.field(arg['field'])}, '(?i),{name}=([0-9a-f]+)', 1)), "
                    "'')")
        if kind == "timestamp":
            return timestamp_sql(self.field(arg))
        if kind == "raw":
            if arg not in RAW_COLUMNS:
                hint = did_you_mean(str(arg), RAW_COLUMNS)
                raise self.error(f"column {column}: {arg!r} is no RawEvents column"
                                 + (f" (did you mean {hint}?)" if hint else ""))
            return f'"{arg}"'
        if kind == "const":
            if arg is None:
                return "NULL"
            if isinstance(arg, bool | int | float):
                return str(arg).lower() if isinstance(arg, bool) else str(arg)
            return sql_string(str(arg))
        if kind == "registry_key":
            return registry_key_sql(self.compile(arg, column))
        if kind == "registry_parent":
            value = self.field(arg)
            return registry_key_sql(f"regexp_extract({value}, '^(.*)\\\\[^\\\\]*$', 1)")
        if kind == "registry_leaf":
            return f"regexp_extract({self.field(arg)}, '\\\\([^\\\\]*)$', 1)"
        if kind == "coalesce":
            if not isinstance(arg, list) or not arg:
                raise self.error(f"column {column}: coalesce takes a list of transforms")
            return "coalesce(" + ", ".join(self.compile(item, column) for item in arg) + ")"
        if kind == "map":
            if not isinstance(arg, dict) or "of" not in arg or "values" not in arg:
                raise self.error(f"column {column}: map takes {{of: <transform>, values: {{from: to}}, default: …}}")
            source = self.compile(arg["of"], column)
            values = arg["values"]
            if not isinstance(values, dict):
                raise self.error(f"column {column}: map values must be a mapping")
            whens = " ".join(f"WHEN CAST({source} AS VARCHAR) = {sql_string(str(k))} THEN {sql_string(str(v))}"
                             for k, v in values.items())
            default = arg.get("default")
            otherwise = "NULL" if default is None else self.compile(default, column)
            return f"CASE {whens} ELSE {otherwise} END"
        if kind == "sql":
            if not isinstance(arg, str):
                raise self.error(f"column {column}: sql takes a string with {{Field}} placeholders")
            return _PLACEHOLDER.sub(lambda m: self.field(m.group(1)), arg)
        raise self.error(f"column {column}: unknown transform {kind!r}"
                         + (f" (did you mean {did_you_mean(str(kind), TRANSFORMS)}?)"
                            if did_you_mean(str(kind), TRANSFORMS) else ""))


def compile_mapping(data: Any, file: str) -> Mapping:
    """Check and compile one mapping document."""
    if not isinstance(data, dict):
        raise IngestError("a mapping file must be a YAML mapping", SourceSpan.of_file(file))
    name = str(data.get("name") or file)
    compiler = _Compiler(file, name)
    known = {"name", "description", "table", "match", "columns", "leftover", "also_consumed"}
    unknown = set(data) - known
    if unknown:
        raise compiler.error(f"unknown keys {sorted(unknown)}")
    table = data.get("table")
    tables = canonical_tables()
    if table not in tables:
        hint = did_you_mean(str(table), list(tables))
        raise compiler.error(f"unknown table {table!r}" + (f" (did you mean {hint}?)" if hint else ""))
    match = data.get("match") or {}
    channel = match.get("channel")
    event_ids = match.get("event_ids") or []
    excluded = match.get("exclude_channels") or []
    if not isinstance(excluded, list) or not all(isinstance(c, str) for c in excluded):
        raise compiler.error("match.exclude_channels must be a list of channel names")
    if not isinstance(event_ids, list) or not all(isinstance(i, int) for i in event_ids):
        raise compiler.error("match.event_ids must be a list of integers")
    schema = tables[table]
    compiled: list[CompiledColumn] = []
    columns = data.get("columns")
    if not isinstance(columns, dict):
        raise compiler.error("columns must be a mapping of target column to transform")
    for column_name, spec in columns.items():
        if schema.column(column_name) is None:
            hint = did_you_mean(column_name, list(schema.column_names))
            raise compiler.error(f"{table} has no column {column_name!r}" + (f" (did you mean {hint}?)" if hint else ""))
        compiled.append(CompiledColumn(column_name, compiler.compile(spec, column_name)))
    leftover = data.get("leftover", "AdditionalFields")
    if leftover is not None and schema.column(leftover) is None:
        raise compiler.error(f"{table} has no leftover column {leftover!r}")
    for extra in data.get("also_consumed") or []:
        compiler.consumed.add(str(extra))
    return Mapping(name, str(data.get("description", "")), str(table), channel, tuple(event_ids), tuple(compiled),
                   frozenset(compiler.consumed), leftover, file, tuple(excluded))


@cache
def builtin_mappings() -> tuple[Mapping, ...]:
    """The mappings shipped in ``assay/ingest/mappings`` (sorted by file name)."""
    folder = resources.files("assay.ingest").joinpath("mappings")
    mappings = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yml"):
            continue
        try:
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise IngestError(f"mapping file does not parse: {error}", SourceSpan.of_file(str(entry))) from error
        mappings.append(compile_mapping(data, f"mappings/{entry.name}"))
    return tuple(mappings)


def defender_insert_sql(table: str, first_id: int, last_id: int) -> str:
    """Defender exports already have the table's columns: copy them (typed) from Fields; the rest → AdditionalFields."""
    schema = canonical_tables()[table]
    names: list[str] = []
    selects: list[str] = []
    own = set()
    for column in schema.columns:
        if column.name in ("AssayEventId", "AssaySource"):
            continue
        own.add(column.name)
        names.append(column.name)
        value = field_sql(column.name)
        if column.duckdb_type == "TIMESTAMP":
            selects.append(timestamp_sql(value))
        elif column.name == "AdditionalFields":
            excluded = ", ".join(sql_string(c) for c in schema.column_names)
            selects.append(
                f"coalesce(TRY_CAST(nullif({value}, '') AS JSON), to_json(map_from_entries(list_filter("
                f"map_entries(Fields), lambda e: e.key NOT IN ({excluded}) AND e.value <> '')))) ")
        else:
            selects.append(f"TRY_CAST(nullif({value}, '') AS {column.duckdb_type})")
    names += ["AssayEventId", "AssaySource"]
    selects += ["AssayEventId", "SourceFile || '#' || CAST(SourceRecord AS VARCHAR)"]
    quoted = ", ".join(f'"{n}"' for n in names)
    return (f'INSERT INTO "{table}" ({quoted}) SELECT {", ".join(selects)} FROM RawEvents '
            f"WHERE AssayEventId BETWEEN {int(first_id)} AND {int(last_id)} AND SourceFormat LIKE 'defender-%' "
            f"AND Channel = {sql_string(table)}")
